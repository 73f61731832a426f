#include "config.h"

#include <errno.h>
#include <magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"

#define MIME_FALLBACK "application/octet-stream"

struct mime {
	magic_t cookie;
	unsigned char *buf;          /* MIME_SNIFF_BYTES, for mime_type_fd */
};

/* MAGIC_MIME asks for type and charset in one query ("text/plain;
 * charset=utf-8"); compressed data is typed as such, never unpacked, so
 * libmagic runs no external decompressor. */
#define MIME_FLAGS (MAGIC_MIME | MAGIC_NO_CHECK_COMPRESS | MAGIC_ERROR)

struct mime *mime_open(const char *dbpath, char *err, size_t errlen)
{
	struct mime *m;
	size_t bytes_max = MIME_SNIFF_BYTES;

	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "cannot allocate the libmagic handle: %s", strerror(errno));
		return NULL;
	}
	m->buf = malloc(MIME_SNIFF_BYTES);
	if (m->buf == NULL) {
		snprintf(err, errlen, "cannot allocate the libmagic buffer: %s", strerror(errno));
		goto fail;
	}
	m->cookie = magic_open(MIME_FLAGS);
	if (m->cookie == NULL) {
		snprintf(err, errlen, "magic_open: %s", strerror(errno));
		goto fail;
	}
	if (magic_load(m->cookie, dbpath) != 0) {
		const char *why = magic_error(m->cookie);
		const char *path = dbpath != NULL ? dbpath : magic_getpath(NULL, 0);

		snprintf(err, errlen, "cannot load the libmagic database %s%s: %s",
			 path != NULL ? path : "(libmagic's default)",
			 dbpath == NULL && getenv("MAGIC") != NULL ? " (from $MAGIC)" : "",
			 why != NULL ? why : "unknown error");
		goto fail;
	}
	if (magic_setparam(m->cookie, MAGIC_PARAM_BYTES_MAX, &bytes_max) != 0) {
		const char *why = magic_error(m->cookie);
		snprintf(err, errlen, "cannot set the libmagic byte limit: %s",
			 why != NULL ? why : strerror(errno));
		goto fail;
	}
	return m;
fail:
	mime_close(m);
	return NULL;
}

/* The answer becomes a header value: anything but plain printable ASCII
 * (which libmagic never says for a type) is refused. */
static int mime_is_header_safe(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"')
			return 0;
	return 1;
}

/* "type; charset=x" from libmagic: text types keep their charset, others
 * are the bare type; an empty file (libmagic's "application/x-empty") has
 * no type to tell, so it is application/octet-stream. */
static const char *mime_format(const char *magic, char *out)
{
	const char *semi;
	size_t tlen, len;

	if (magic == NULL)
		goto fallback;
	len = strlen(magic);
	semi = strchr(magic, ';');
	tlen = semi != NULL ? (size_t)(semi - magic) : len;
	if (tlen == 0 || len >= MIME_TYPE_MAX || !mime_is_header_safe(magic, len))
		goto fallback;
	if ((tlen == 19 && strncmp(magic, "application/x-empty", tlen) == 0) ||
	    (tlen == 13 && strncmp(magic, "inode/x-empty", tlen) == 0))
		goto fallback;
	if (semi == NULL || strncmp(magic, "text/", 5) != 0 ||
	    strstr(semi, "charset=binary") != NULL)
		len = tlen;
	memcpy(out, magic, len);
	out[len] = '\0';
	return out;
fallback:
	memcpy(out, MIME_FALLBACK, sizeof(MIME_FALLBACK));
	return out;
}

const char *mime_type_buffer(struct mime *m, const void *buf, size_t len, char *out)
{
	if (m == NULL || (buf == NULL && len > 0))
		return mime_format(NULL, out);
	if (len > MIME_SNIFF_BYTES)
		len = MIME_SNIFF_BYTES;
	return mime_format(magic_buffer(m->cookie, len > 0 ? buf : "", len), out);
}

const char *mime_type_fd(struct mime *m, int fd, char *out)
{
	size_t got = 0;

	if (m == NULL || fd < 0)
		return mime_format(NULL, out);
	/* pread: the caller's offset is left where it was */
	while (got < MIME_SNIFF_BYTES) {
		ssize_t n = pread(fd, m->buf + got, MIME_SNIFF_BYTES - got, (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_LEVEL_WARN, "mime: cannot read fd %d: %s", fd, strerror(errno));
			return mime_format(NULL, out);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return mime_type_buffer(m, m->buf, got, out);
}

void mime_close(struct mime *m)
{
	if (m == NULL)
		return;
	if (m->cookie != NULL)
		magic_close(m->cookie);
	free(m->buf);
	free(m);
}
