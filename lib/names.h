/* names: the rules an uploaded file name must meet (README, "POST execute"). */
#ifndef PYEXEC_NAMES_H
#define PYEXEC_NAMES_H

#include <stddef.h>

#define NAMES_COMPONENT_MAX 255   /* bytes in one path component */
#define NAMES_DEPTH_MAX 16        /* components in one name */
#define NAMES_PATH_MAX 4096       /* bytes in a whole name */

/* Checks a client-supplied file name of len bytes (which may hold NULs):
 * relative, '/'-separated, no empty, "." or ".." component, no NUL, control
 * character (< 0x20, 0x7f) or backslash, each component <= 255 bytes, depth
 * <= 16, total <= 4096, valid UTF-8 (no overlongs, surrogates or > U+10FFFF).
 * Returns 0, or -1 and sets *why to a static phrase saying what is wrong
 * ("is absolute", "has a '..' component", ...). */
int names_check(const char *name, size_t len, const char **why);

#endif
