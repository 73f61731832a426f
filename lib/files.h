/* files: reading a whole file, mkdir -p, opening a path's parent. */
#ifndef PYEXEC_FILES_H
#define PYEXEC_FILES_H

#include <stddef.h>
#include <sys/types.h>

/* Opens the directory that holds path's last component (O_RDONLY,
 * O_DIRECTORY, O_CLOEXEC; path's other components are followed). Copies
 * path into buf (buflen bytes) and points *name at the last component in
 * it. The fd, or -1 with errno (ENAMETOOLONG, or EINVAL when path has no
 * '/'). */
int util_open_parent(const char *path, char *buf, size_t buflen, char **name);

/* mkdir -p: makes path (absolute or relative) and every missing parent;
 * parents get 0755, the last component mode. An existing directory is
 * fine. 0, or -1 with errno (ENAMETOOLONG past PATH_MAX). */
int util_mkdir_p(const char *path, mode_t mode);

/* Reads at most buflen-1 bytes of fd from offset 0 (pread: the offset of
 * fd is left as it was) into buf, NUL-ended: "" when nothing could be read.
 * For the short outputs of the programs pyexec runs for itself. */
void util_read_text(int fd, char *buf, size_t buflen);

/* Which step of util_read_file failed; errno says why. */
enum util_read {
	UTIL_READ_OK,
	UTIL_READ_OPEN,
	UTIL_READ_STAT,
	UTIL_READ_DIR,          /* a directory */
	UTIL_READ_NOT_REGULAR,  /* not a regular file (only when asked) */
	UTIL_READ_NOMEM,
	UTIL_READ_READ,
	UTIL_READ_TOO_LARGE,    /* more than max bytes */
};

/* Reads the whole file at path, at most max bytes, into a malloc'd buffer
 * (*out, owned by the caller, NUL-ended; *len bytes before the NUL). With
 * regular_only anything but a regular file is UTIL_READ_NOT_REGULAR (a
 * directory included); without it, only a directory is refused, so a pipe
 * or /dev/stdin can be read. On error *out is NULL and errno is kept. */
enum util_read util_read_file(const char *path, size_t max, int regular_only,
			      char **out, size_t *len);

#endif
