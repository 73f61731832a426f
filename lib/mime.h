/* mime: content types by libmagic, from a file's bytes, never its name.
 * One handle per worker, loaded once; decompression and external helpers are
 * off. Text types carry their charset ("text/plain; charset=utf-8"); others
 * are the bare type ("image/png", "application/json"). An empty file (which
 * libmagic calls "application/x-empty") is "application/octet-stream". */
#ifndef PYEXEC_MIME_H
#define PYEXEC_MIME_H

#include <stddef.h>

#define MIME_SNIFF_BYTES (256 * 1024)  /* bytes of a file libmagic looks at */
#define MIME_TYPE_MAX 128              /* longest type returned */

struct mime;

/* Loads libmagic's default database (or dbpath when non-NULL). The handle,
 * or NULL with a sentence in err (errlen bytes). */
struct mime *mime_open(const char *dbpath, char *err, size_t errlen);

/* Types the first MIME_SNIFF_BYTES of fd (read with pread, offset kept).
 * Writes the type into out (MIME_TYPE_MAX bytes) and returns out; on any
 * failure writes "application/octet-stream". */
const char *mime_type_fd(struct mime *m, int fd, char *out);

/* Same for a buffer in memory. */
const char *mime_type_buffer(struct mime *m, const void *buf, size_t len, char *out);

void mime_close(struct mime *m);

#endif
