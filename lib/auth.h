/* auth: bearer tokens for POST execute (and /metrics), from tokens_file.
 *
 * The file holds one token per line; blank lines and lines starting with
 * '#' are skipped, blanks around a token are trimmed. A token is 16 to
 * AUTH_TOKEN_MAX characters of RFC 6750's b64token alphabet
 * ([A-Za-z0-9-._~+/] then optional '='). Tokens are kept as SHA-256
 * digests, and a presented token is compared with every one of them in
 * constant time, so neither the time nor the length of the answer says
 * which token came close. */
#ifndef PYEXEC_AUTH_H
#define PYEXEC_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_MIN 16          /* characters: shorter ones are guessable */
#define AUTH_TOKEN_MAX 256
#define AUTH_TOKENS_MAX 1024       /* tokens in one file */
#define AUTH_FILE_MAX (1 << 20)    /* bytes of tokens_file read */
#define AUTH_DIGEST 32             /* SHA-256 */

struct auth {
	size_t n;                              /* tokens loaded; 0 = none */
	uint8_t (*digest)[AUTH_DIGEST];        /* n digests, owned */
};

enum auth_result {
	AUTH_OK,          /* a known token was presented */
	AUTH_MISSING,     /* no Authorization header, or not "Bearer" */
	AUTH_INVALID,     /* a bearer token that is not known */
};

/* Reads path into a (which must be zeroed or freed). 0, or -1 with
 * "path:line: reason" (or "path: reason") in err and a left empty. A file
 * without any token is an error: it would lock every client out. */
int auth_load(struct auth *a, const char *path, char *err, size_t errlen);

/* Checks an Authorization header value (NULL when absent): the scheme
 * "Bearer" in any case, one or more blanks, the token. */
enum auth_result auth_check(const struct auth *a, const char *header);

/* Frees what a holds; a is empty after. */
void auth_free(struct auth *a);

#endif
