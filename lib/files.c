/* files: whole-file reads, mkdir -p, a path's parent (declared in files.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int util_open_parent(const char *path, char *buf, size_t buflen, char **name)
{
	char *slash;

	if (strlen(path) >= buflen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	slash = strrchr(buf, '/');
	if (slash == NULL) {
		errno = EINVAL;
		return -1;
	}
	*slash = '\0';
	*name = slash + 1;
	return open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = path == NULL ? 0 : strlen(path);

	if (len == 0) {
		errno = ENOENT;
		return -1;
	}
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void util_read_text(int fd, char *buf, size_t buflen)
{
	ssize_t n = pread(fd, buf, buflen - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
}

enum util_read util_read_file(const char *path, size_t max, int regular_only,
			      char **out, size_t *len)
{
	enum util_read r = UTIL_READ_OK;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return UTIL_READ_OPEN;
	if (fstat(fd, &st) < 0) {
		r = UTIL_READ_STAT;
		goto fail;
	}
	if (regular_only && !S_ISREG(st.st_mode)) {
		r = UTIL_READ_NOT_REGULAR;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = UTIL_READ_DIR;
		goto fail;
	}
	/* One byte more than allowed tells "too large" from "exactly max". */
	buf = malloc(max + 2);
	if (buf == NULL) {
		r = UTIL_READ_NOMEM;
		goto fail;
	}
	while (got < max + 1) {
		ssize_t n = read(fd, buf + got, max + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = UTIL_READ_READ;
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max) {
		r = UTIL_READ_TOO_LARGE;
		errno = EFBIG;
		goto fail;
	}
	buf[got] = '\0';
	(void)close(fd);
	*out = buf;
	*len = got;
	return UTIL_READ_OK;
fail:
	free(buf);
	util_close_keep_errno(fd);
	return r;
}
