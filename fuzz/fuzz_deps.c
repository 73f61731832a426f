/* libFuzzer target for lib/deps.c: the dependencies parameter is client
 * text that ends up on pip's command line, so whatever deps_parse() accepts
 * must be, byte for byte, the normalised grammar of deps.h and nothing that
 * pip could read as an option, a URL, a path or a marker.
 *
 * Input layout: [0] max (0..254; 255 stands for 1000, which must clamp to
 * DEPS_COUNT_MAX),
 * [1] errlen (0..255), then the parameter value up to the first NUL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static struct deps_set set, again;

static const char *const archive_ext[] = {
	".zip", ".whl", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz",
	".tar.lzma", ".tar.gz", ".tgz", ".tar", NULL
};

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A normalised name or extra (PEP 503): [a-z0-9]+ ("-" [a-z0-9]+)*, at
 * most DEPS_NAME_MAX bytes. Returns its length, 0 when there is none. */
static size_t norm_name(const char *s)
{
	size_t n = 0;

	while (is_lower_alnum(s[n]) || (s[n] == '-' && n > 0 && s[n - 1] != '-'))
		n++;
	if (n == 0 || s[n - 1] == '-' || n > DEPS_NAME_MAX)
		return 0;
	return n;
}

static size_t op_len(const char *s)
{
	static const char *const ops[] = { "===", "==", "!=", "<=", ">=", "~=", "<", ">" };

	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		if (strncmp(s, ops[k], strlen(ops[k])) == 0)
			return strlen(ops[k]);
	return 0;
}

/* One requirement exactly as deps.h says a normalised one reads:
 * name, optional sorted unique extras, optional sorted unique clauses. */
static void check_req(const char *r)
{
	const char *p = r, *prev = NULL;
	size_t n, prev_n = 0, len = strlen(r);

	CHECK(len > 0 && len < DEPS_REQ_MAX);
	/* what pip must never be given, whatever the grammar */
	CHECK(r[0] != '-' && r[0] != '.' && r[0] != '~');
	CHECK(strpbrk(r, "/\\:@;# \t\"'") == NULL);
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)r[i] > 0x20 && (unsigned char)r[i] < 0x7f);
	/* pip reads a requirement ending like an archive as a file (pip's
	 * ARCHIVE_EXTENSIONS) */
	for (const char *const *e = archive_ext; *e != NULL; e++)
		CHECK(len <= strlen(*e) || strcasecmp(r + len - strlen(*e), *e) != 0);

	CHECK((n = norm_name(p)) > 0);
	p += n;
	if (*p == '[') {
		do {
			p++;
			CHECK((n = norm_name(p)) > 0);
			if (prev != NULL) {
				int c = strncmp(prev, p, prev_n < n ? prev_n : n);
				CHECK(c < 0 || (c == 0 && prev_n < n));
			}
			prev = p;
			prev_n = n;
			p += n;
		} while (*p == ',');
		CHECK(*p++ == ']');
	}
	prev = NULL;
	while (*p != '\0') {
		const char *clause = p;
		size_t op = op_len(p);

		CHECK(op > 0);
		p += op;
		CHECK(is_lower_alnum(*p) || (*p >= 'A' && *p <= 'Z'));
		while (*p != '\0' && *p != ',' && strchr("abcdefghijklmnopqrstuvwxyz"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+!_-", *p) != NULL)
			p++;
		if (*p == '*') {
			/* '.*' only at the end of an == or != version */
			CHECK(p[-1] == '.' && op == 2 && (clause[0] == '=' || clause[0] == '!'));
			p++;
		}
		n = (size_t)(p - clause);
		/* sorted by strcmp of the whole clause, no duplicates */
		if (prev != NULL) {
			int c = strncmp(prev, clause, prev_n < n ? prev_n : n);
			CHECK(c < 0 || (c == 0 && prev_n < n));
		}
		prev = clause;
		prev_n = n;
		if (*p == ',')
			CHECK(*++p != '\0');
		else
			CHECK(*p == '\0');
	}
}

/* err holds a C string within errlen bytes, and nothing past them changed. */
static void check_err(const char *err, size_t errlen, size_t cap)
{
	if (errlen > 0)
		CHECK(memchr(err, '\0', errlen) != NULL);
	for (size_t i = errlen; i < cap; i++)
		CHECK(err[i] == (char)0xa5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256 + 16], err2[sizeof(err)], key[DEPS_KEY_HEX + 1], key2[sizeof(key)];
	char *value, *joined, *norm, *norm2;
	unsigned max;
	size_t errlen, vlen, o = 0;
	int rc;

	if (size < 2)
		return 0;
	max = data[0] == 0xff ? 1000 : data[0];
	errlen = data[1];
	vlen = size - 2;
	/* the value as the query decoder leaves it: a C string */
	value = malloc(vlen + 1);
	CHECK(value != NULL);
	memcpy(value, data + 2, vlen);
	value[vlen] = '\0';
	vlen = strlen(value);

	/* deps_normalize_name on raw bytes: never longer, idempotent. */
	norm = malloc(vlen + 1);
	norm2 = malloc(vlen + 1);
	CHECK(norm != NULL && norm2 != NULL);
	deps_normalize_name(value, vlen, norm);
	CHECK(strlen(norm) <= vlen);
	CHECK(strpbrk(norm, "_.ABCDEFGHIJKLMNOPQRSTUVWXYZ") == NULL && !strstr(norm, "--"));
	deps_normalize_name(norm, strlen(norm), norm2);
	CHECK(strcmp(norm, norm2) == 0);
	free(norm);
	free(norm2);

	memset(err, 0xa5, sizeof(err));
	rc = deps_parse(value, max, &set, err, errlen);
	check_err(err, errlen, sizeof(err));
	if (rc != 0) {
		CHECK(rc == -1 && set.n == 0);
		/* a sentence that names the parameter, when there is room */
		if (errlen > 14)
			CHECK(strncmp(err, "dependencies: ", 14) == 0);
		free(value);
		return 0;
	}
	CHECK(errlen == 0 || err[0] == '\0');
	CHECK(set.n <= max && set.n <= DEPS_COUNT_MAX);
	for (unsigned k = 0; k < set.n; k++) {
		check_req(set.req[k]);
		if (k > 0)
			CHECK(strcmp(set.req[k - 1], set.req[k]) < 0);
	}

	/* The key is a function of the set and the salt alone. */
	deps_key(&set, "fuzz", key);
	deps_key(&set, "fuzz", key2);
	CHECK(strlen(key) == DEPS_KEY_HEX && strspn(key, "0123456789abcdef") == DEPS_KEY_HEX);
	CHECK(strcmp(key, key2) == 0);

	/* Normalising is a fixed point: the set, spelt out again with commas
	 * as a client would, parses to itself and so to the same key. */
	joined = malloc((size_t)set.n * DEPS_REQ_MAX + 1);
	CHECK(joined != NULL);
	joined[0] = '\0';
	for (unsigned k = 0; k < set.n; k++) {
		size_t n = strlen(set.req[k]);

		if (k > 0)
			joined[o++] = ',';
		memcpy(joined + o, set.req[k], n + 1);
		o += n;
	}
	rc = deps_parse(joined, max, &again, err2, sizeof(err2));
	CHECK(rc == 0);
	CHECK(again.n == set.n);
	for (unsigned k = 0; k < set.n; k++)
		CHECK(strcmp(again.req[k], set.req[k]) == 0);
	deps_key(&again, "fuzz", key2);
	CHECK(strcmp(key, key2) == 0);
	free(joined);
	free(value);
	return 0;
}
