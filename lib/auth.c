#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "util.h"

static void digest_of(const char *s, size_t len, uint8_t out[AUTH_DIGEST])
{
	SHA2_CTX ctx;

	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)s, len);
	SHA256Final(out, &ctx);
}

/* RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
 * "+" / "/" ) *"=" */
static int b64token_ok(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && (('a' <= s[i] && s[i] <= 'z') || ('A' <= s[i] && s[i] <= 'Z') ||
			   ('0' <= s[i] && s[i] <= '9') || strchr("-._~+/", s[i]) != NULL))
		i++;
	if (i == 0)
		return 0;
	while (i < len && s[i] == '=')
		i++;
	return i == len;
}

/* The whole file, NUL-ended, into a malloc'd buffer. */
static char *read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
	char *buf;

	switch (util_read_file(path, AUTH_FILE_MAX, 1, &buf, lenp)) {
	case UTIL_READ_OK:
		return buf;
	case UTIL_READ_OPEN:
	case UTIL_READ_READ:
		util_errorf(err, errlen, "%s: %s", path, strerror(errno));
		break;
	case UTIL_READ_STAT:
	case UTIL_READ_DIR:
	case UTIL_READ_NOT_REGULAR:
		util_errorf(err, errlen, "%s: not a regular file", path);
		break;
	case UTIL_READ_TOO_LARGE:
		util_errorf(err, errlen, "%s: larger than %d bytes", path, AUTH_FILE_MAX);
		break;
	case UTIL_READ_NOMEM:
		util_errorf(err, errlen, "%s: out of memory", path);
		break;
	}
	return NULL;
}

int auth_load(struct auth *a, const char *path, char *err, size_t errlen)
{
	char *buf, *line, *next;
	unsigned lineno = 0;
	size_t size = 0;

	a->n = 0;
	a->digest = NULL;
	buf = read_file(path, &size, err, errlen);
	if (buf == NULL)
		return -1;
	if (strlen(buf) != size) {
		util_errorf(err, errlen, "%s: holds a NUL byte", path);
		goto fail;
	}
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		char *end;
		size_t len;

		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		while (util_is_line_blank(*line))
			line++;
		end = line + strlen(line);
		while (end > line && util_is_line_blank(end[-1]))
			*--end = '\0';
		len = (size_t)(end - line);
		if (len == 0 || line[0] == '#')
			continue;
		if (len < AUTH_TOKEN_MIN || len > AUTH_TOKEN_MAX || !b64token_ok(line, len)) {
			util_errorf(err, errlen, "%s:%u: a token must be %d to %d characters of "
				    "A-Z a-z 0-9 - . _ ~ + / (then '=' padding), one per line",
				    path, lineno, AUTH_TOKEN_MIN, AUTH_TOKEN_MAX);
			goto fail;
		}
		if (a->n == AUTH_TOKENS_MAX) {
			util_errorf(err, errlen, "%s:%u: more than %d tokens", path, lineno,
				    AUTH_TOKENS_MAX);
			goto fail;
		}
		if (a->n % 64 == 0) {
			void *p = realloc(a->digest, (a->n + 64) * sizeof(*a->digest));

			if (p == NULL) {
				util_errorf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			a->digest = p;
		}
		digest_of(line, len, a->digest[a->n++]);
	}
	if (a->n == 0) {
		util_errorf(err, errlen, "%s: no token in the file (every request would be "
			    "refused)", path);
		goto fail;
	}
	explicit_bzero(buf, size);
	free(buf);
	return 0;
fail:
	explicit_bzero(buf, size);
	free(buf);
	auth_free(a);
	return -1;
}

enum auth_result auth_check(const struct auth *a, const char *header)
{
	uint8_t d[AUTH_DIGEST];
	unsigned match = 0;
	size_t len;

	if (header == NULL)
		return AUTH_MISSING;
	while (util_is_line_blank(*header))
		header++;
	if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
		return AUTH_MISSING;
	header += 6;
	while (util_is_line_blank(*header))
		header++;
	len = strlen(header);
	while (len > 0 && util_is_line_blank(header[len - 1]))
		len--;
	if (len == 0 || len > AUTH_TOKEN_MAX)
		return AUTH_INVALID;
	digest_of(header, len, d);
	/* Every digest is compared in full, whatever matched before. */
	for (size_t i = 0; i < a->n; i++) {
		unsigned diff = 0;

		for (size_t k = 0; k < AUTH_DIGEST; k++)
			diff |= (unsigned)(a->digest[i][k] ^ d[k]);
		match |= (unsigned)(diff == 0);
	}
	explicit_bzero(d, sizeof(d));
	return match ? AUTH_OK : AUTH_INVALID;
}

void auth_free(struct auth *a)
{
	if (a->digest != NULL)
		explicit_bzero(a->digest, a->n * sizeof(*a->digest));
	free(a->digest);
	a->digest = NULL;
	a->n = 0;
}
