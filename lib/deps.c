#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deps.h"
#include "util.h"

#define DEPS_QUOTE_MAX 81        /* bytes of client text quoted in an error */
#define DEPS_REASON_MAX 160      /* bytes of the reason part of an error */
#define DEPS_ITEMS_MAX (DEPS_REQ_MAX / 2) /* extras or clauses of one requirement */

/* Extras or clauses of the requirement being built, each NUL-ended in pool,
 * without duplicates. Their total is bounded by DEPS_REQ_MAX because the
 * normalised requirement that contains them is. */
struct deps_list {
	char pool[DEPS_REQ_MAX];
	size_t used;
	size_t sum;                  /* bytes of all items, NULs not counted */
	unsigned n;
	const char *item[DEPS_ITEMS_MAX];
};

/* The requirement being built: an item that starts with an operator still
 * adds a clause to it, so it enters the set only when the next one starts. */
struct deps_req {
	int open;
	char name[DEPS_NAME_MAX + 1];
	size_t name_len;
	struct deps_list extras;
	struct deps_list clauses;
};

/* pip takes a requirement that ends like an archive for a file name, even
 * when no such file exists (pip/_internal/utils/filetypes.py,
 * ARCHIVE_EXTENSIONS): "===1.whl" would make it open a file. */
static const char *const deps_archive_ext[] = {
	".zip", ".whl", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz",
	".tar.lzma", ".tar.gz", ".tgz", ".tar",
};

/* The one shape of a refused item: "dependencies: '<item>' is not a
 * requirement: <reason>". */
static int deps_refuse(char *err, size_t errlen, const char *item, size_t len,
		       const char *reason)
{
	char quoted[DEPS_QUOTE_MAX];

	util_sanitize(item, len, quoted, sizeof(quoted));
	util_errorf(err, errlen, "dependencies: '%s' is not a requirement: %s", quoted, reason);
	return -1;
}

static int deps_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int deps_is_name_char(char c)
{
	return deps_is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static int deps_is_version_char(char c)
{
	return deps_is_name_char(c) || c == '+' || c == '!';
}

static char deps_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Length of the version operator at s[0..len), 0 when there is none. The
 * longer spellings are tried first: "===" before "==", "<=" before "<". */
static size_t deps_operator(const char *s, size_t len)
{
	static const char *const ops[] = { "===", "==", "!=", "<=", ">=", "~=", "<", ">" };

	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		size_t n = strlen(ops[k]);

		if (n <= len && memcmp(s, ops[k], n) == 0)
			return n;
	}
	return 0;
}

static size_t deps_skip_blanks(const char *s, size_t len, size_t i)
{
	while (i < len && util_is_blank(s[i]))
		i++;
	return i;
}

static int deps_has(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(s + i, needle, n) == 0)
			return 1;
	return 0;
}

/* What an item must never be, whatever its grammar: checked on the whole
 * item first, so "name @ http://x" is refused as a URL, not as a syntax
 * error somewhere after the name. NULL when none applies. */
static const char *deps_hostile(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "it contains a control character";
		if (c >= 0x80)
			return "it contains a non-ASCII character";
	}
	if (s[0] == '-')
		return "options are not allowed";
	if (memchr(s, '@', len) != NULL || deps_has(s, len, "://"))
		return "URLs are not allowed";
	if (memchr(s, '/', len) != NULL || memchr(s, '\\', len) != NULL || s[0] == '.' ||
	    (s[0] == '~' && (len < 2 || s[1] != '=')))
		return "paths are not allowed";
	if (memchr(s, ';', len) != NULL)
		return "environment markers are not allowed";
	return NULL;
}

/* A byte no rule below accepts, named in the reason. */
static int deps_refuse_char(char *err, size_t errlen, const char *item, size_t len,
			    char c, const char *where)
{
	char reason[DEPS_REASON_MAX], shown[8];

	if (c == '*')
		return deps_refuse(err, errlen, item, len,
				   "'*' is only allowed as a trailing '.*' after == or !=");
	util_sanitize(&c, 1, shown, sizeof(shown));
	snprintf(reason, sizeof(reason), "unexpected '%s' %s", shown, where);
	return deps_refuse(err, errlen, item, len, reason);
}

static void deps_list_reset(struct deps_list *l)
{
	l->used = 0;
	l->sum = 0;
	l->n = 0;
}

static int deps_list_contains(const struct deps_list *l, const char *s)
{
	for (unsigned k = 0; k < l->n; k++)
		if (strcmp(l->item[k], s) == 0)
			return 1;
	return 0;
}

/* Bytes of the normalised requirement, plus what adding s to the extras or
 * clauses would add. */
static size_t deps_req_len(const struct deps_req *r, const struct deps_list *to, size_t slen)
{
	size_t ex_n = r->extras.n + (to == &r->extras), ex_sum = r->extras.sum;
	size_t cl_n = r->clauses.n + (to == &r->clauses), cl_sum = r->clauses.sum;
	size_t len = r->name_len;

	if (to == &r->extras)
		ex_sum += slen;
	else if (to == &r->clauses)
		cl_sum += slen;
	if (ex_n > 0)
		len += 2 + ex_sum + (ex_n - 1);          /* "[" a "," b "]" */
	if (cl_n > 0)
		len += cl_sum + (cl_n - 1);              /* a "," b */
	return len;
}

/* Adds s (a normalised extra or clause) unless it is there already. */
static int deps_req_add(struct deps_req *r, struct deps_list *l, const char *s,
			const char *item, size_t len, char *err, size_t errlen)
{
	size_t slen = strlen(s);
	char reason[DEPS_REASON_MAX];

	if (deps_list_contains(l, s))
		return 0;
	if (deps_req_len(r, l, slen) > DEPS_REQ_MAX - 1 || l->n == DEPS_ITEMS_MAX ||
	    l->used + slen + 1 > sizeof(l->pool)) {
		snprintf(reason, sizeof(reason), "the requirement is longer than %d bytes",
			 DEPS_REQ_MAX - 1);
		return deps_refuse(err, errlen, item, len, reason);
	}
	memcpy(l->pool + l->used, s, slen + 1);
	l->item[l->n++] = l->pool + l->used;
	l->used += slen + 1;
	l->sum += slen;
	return 0;
}

static int deps_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void deps_join(char *out, size_t *o, const struct deps_list *l)
{
	for (unsigned k = 0; k < l->n; k++) {
		size_t n = strlen(l->item[k]);

		if (k > 0)
			out[(*o)++] = ',';
		memcpy(out + *o, l->item[k], n);
		*o += n;
	}
}

static int deps_ends_like_archive(const char *s, size_t len)
{
	for (size_t k = 0; k < sizeof(deps_archive_ext) / sizeof(deps_archive_ext[0]); k++) {
		size_t n = strlen(deps_archive_ext[k]);

		if (n < len && strncasecmp(s + len - n, deps_archive_ext[k], n) == 0)
			return 1;
	}
	return 0;
}

/* Puts the finished requirement into the set, sorted, merging an exact
 * duplicate; refuses the one past max. deps_req_add() kept its length under
 * DEPS_REQ_MAX. */
static int deps_req_close(struct deps_req *r, struct deps_set *set, unsigned max,
			  char *err, size_t errlen)
{
	char text[DEPS_REQ_MAX], quoted[DEPS_QUOTE_MAX];
	size_t o = 0;
	unsigned lo = 0, hi;

	if (!r->open)
		return 0;
	r->open = 0;
	qsort(r->extras.item, r->extras.n, sizeof(r->extras.item[0]), deps_cmp_str);
	qsort(r->clauses.item, r->clauses.n, sizeof(r->clauses.item[0]), deps_cmp_str);
	memcpy(text, r->name, r->name_len);
	o = r->name_len;
	if (r->extras.n > 0) {
		text[o++] = '[';
		deps_join(text, &o, &r->extras);
		text[o++] = ']';
	}
	deps_join(text, &o, &r->clauses);
	text[o] = '\0';
	if (deps_ends_like_archive(text, o)) {
		util_sanitize(text, o, quoted, sizeof(quoted));
		util_errorf(err, errlen, "dependencies: '%s' is not a requirement: paths are not "
			 "allowed (pip reads a requirement ending like this as an archive file)", quoted);
		return -1;
	}

	hi = set->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int c = strcmp(set->req[mid], text);

		if (c == 0)
			return 0;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (set->n >= max) {
		util_sanitize(text, o, quoted, sizeof(quoted));
		util_errorf(err, errlen,
			 "dependencies: '%s' is one requirement too many: at most %u are allowed",
			 quoted, max);
		return -1;
	}
	memmove(set->req[lo + 1], set->req[lo], (size_t)(set->n - lo) * sizeof(set->req[0]));
	memcpy(set->req[lo], text, o + 1);
	set->n++;
	return 0;
}

/* One version clause at s[*i] (which holds an operator) up to the end of
 * the item: operator, blanks, version, an optional ".*" after == or !=,
 * blanks. Writes operator + lowercase version into out (DEPS_REQ_MAX). */
static int deps_parse_clause(const char *s, size_t len, size_t *i, char *out,
			     char *err, size_t errlen)
{
	size_t oplen = deps_operator(s + *i, len - *i);
	size_t v, vlen, o = 0;
	int equality = (oplen == 2 && (s[*i] == '=' || s[*i] == '!'));
	char reason[DEPS_REASON_MAX];

	memcpy(out, s + *i, oplen);
	o = oplen;
	v = deps_skip_blanks(s, len, *i + oplen);
	for (vlen = 0; v + vlen < len && deps_is_version_char(s[v + vlen]); vlen++)
		;
	if (vlen == 0) {
		if (v < len && s[v] != '*')
			return deps_refuse_char(err, errlen, s, len, s[v], "where a version belongs");
		if (v < len)
			return deps_refuse_char(err, errlen, s, len, '*', "");
		return deps_refuse(err, errlen, s, len, "a version clause needs a version");
	}
	if (!deps_is_alnum(s[v]))
		return deps_refuse(err, errlen, s, len,
				   "a version starts with a letter or digit");
	if (o + vlen + 1 > DEPS_REQ_MAX - 1) {
		snprintf(reason, sizeof(reason), "the requirement is longer than %d bytes",
			 DEPS_REQ_MAX - 1);
		return deps_refuse(err, errlen, s, len, reason);
	}
	for (size_t k = 0; k < vlen; k++)
		out[o++] = deps_lower(s[v + k]);
	*i = v + vlen;
	if (*i < len && s[*i] == '*') {
		if (!equality || s[*i - 1] != '.')
			return deps_refuse_char(err, errlen, s, len, '*', "");
		out[o++] = '*';
		(*i)++;
		*i = deps_skip_blanks(s, len, *i);
		if (*i < len)
			return deps_refuse_char(err, errlen, s, len, '*', "");
	}
	out[o] = '\0';
	*i = deps_skip_blanks(s, len, *i);
	if (*i < len)
		return deps_refuse_char(err, errlen, s, len, s[*i], "after the version");
	return 0;
}

/* A name or an extra at s[*i]: PEP 508's identifier, at most DEPS_NAME_MAX
 * bytes, written PEP 503-normalised into out (DEPS_NAME_MAX + 1). */
static int deps_parse_ident(const char *s, size_t len, size_t *i, const char *what,
			    char *out, char *err, size_t errlen)
{
	size_t n = 0;
	char reason[DEPS_REASON_MAX];

	while (*i + n < len && deps_is_name_char(s[*i + n]))
		n++;
	if (n > DEPS_NAME_MAX) {
		snprintf(reason, sizeof(reason), "the %s is longer than %d bytes", what,
			 DEPS_NAME_MAX);
		return deps_refuse(err, errlen, s, len, reason);
	}
	if (n == 0 || !deps_is_alnum(s[*i]) || !deps_is_alnum(s[*i + n - 1])) {
		snprintf(reason, sizeof(reason),
			 "the %s must be letters, digits, '.', '_', '-', "
			 "starting and ending with a letter or digit", what);
		return deps_refuse(err, errlen, s, len, reason);
	}
	deps_normalize_name(s + *i, n, out);
	*i += n;
	return 0;
}

/* NAME [ "[" EXTRA ("," EXTRA)* "]" ] [ CLAUSE ]: the item that starts a
 * requirement. */
static int deps_parse_req(const char *s, size_t len, struct deps_req *r,
			  char *err, size_t errlen)
{
	char buf[DEPS_REQ_MAX];
	size_t i = 0;

	if (!deps_is_name_char(s[0]))
		return deps_refuse_char(err, errlen, s, len, s[0], "where a project name belongs");
	if (deps_parse_ident(s, len, &i, "project name", r->name, err, errlen) < 0)
		return -1;
	r->name_len = strlen(r->name);
	r->open = 1;
	deps_list_reset(&r->extras);
	deps_list_reset(&r->clauses);
	i = deps_skip_blanks(s, len, i);

	if (i < len && s[i] == '[') {
		unsigned seen = 0;

		i++;
		for (;;) {
			i = deps_skip_blanks(s, len, i);
			if (i < len && s[i] == ']' && seen == 0)
				return deps_refuse(err, errlen, s, len, "the extras '[]' are empty");
			if (deps_parse_ident(s, len, &i, "extra", buf, err, errlen) < 0)
				return -1;
			seen++;
			if (deps_req_add(r, &r->extras, buf, s, len, err, errlen) < 0)
				return -1;
			i = deps_skip_blanks(s, len, i);
			if (i == len)
				return deps_refuse(err, errlen, s, len, "the extras lack a closing ']'");
			if (s[i] == ']')
				break;
			if (s[i] != ',')
				return deps_refuse_char(err, errlen, s, len, s[i], "in the extras");
			i++;
		}
		i = deps_skip_blanks(s, len, i + 1);
	}
	if (i == len)
		return 0;
	if (s[i] == '*')
		return deps_refuse_char(err, errlen, s, len, '*', "");
	if (deps_operator(s + i, len - i) == 0)
		return deps_refuse(err, errlen, s, len,
				   "only [extras] and version clauses may follow the name");
	if (deps_parse_clause(s, len, &i, buf, err, errlen) < 0)
		return -1;
	return deps_req_add(r, &r->clauses, buf, s, len, err, errlen);
}

/* One trimmed, non-empty item: a new requirement, or a clause that
 * continues the open one ("numpy>=1,<2" arrives as "numpy>=1" and "<2"). */
static int deps_parse_item(const char *s, size_t len, struct deps_req *r, struct deps_set *set,
			   unsigned max, char *err, size_t errlen)
{
	const char *hostile = deps_hostile(s, len);
	char clause[DEPS_REQ_MAX];
	size_t i = 0;

	if (hostile != NULL)
		return deps_refuse(err, errlen, s, len, hostile);
	if (deps_operator(s, len) > 0) {
		if (!r->open)
			return deps_refuse(err, errlen, s, len,
					   "a version clause must follow a project name");
		if (deps_parse_clause(s, len, &i, clause, err, errlen) < 0)
			return -1;
		return deps_req_add(r, &r->clauses, clause, s, len, err, errlen);
	}
	if (deps_req_close(r, set, max, err, errlen) < 0)
		return -1;
	return deps_parse_req(s, len, r, err, errlen);
}

int deps_parse(const char *value, unsigned max, struct deps_set *set, char *err, size_t errlen)
{
	struct deps_req req = { 0 }, *r = &req;   /* ~5 KiB */
	const char *p = value != NULL ? value : "";

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	set->n = 0;
	if (max > DEPS_COUNT_MAX)
		max = DEPS_COUNT_MAX;

	for (;;) {
		const char *start = p, *end;
		int in_extras = 0;

		/* the seed splits on every comma; only one inside [...] is ours */
		while (*p != '\0' && (*p != ',' || in_extras)) {
			if (*p == '[')
				in_extras = 1;
			else if (*p == ']')
				in_extras = 0;
			p++;
		}
		end = p;
		while (start < end && util_is_blank(*start))
			start++;
		while (end > start && util_is_blank(end[-1]))
			end--;
		if (end > start &&
		    deps_parse_item(start, (size_t)(end - start), r, set, max, err, errlen) < 0)
			goto fail;
		if (*p == '\0')
			break;
		p++;
	}
	if (deps_req_close(r, set, max, err, errlen) < 0)
		goto fail;
	return 0;

fail:
	set->n = 0;
	return -1;
}

void deps_key(const struct deps_set *set, const char *salt, char *key)
{
	SHA2_CTX ctx;
	const char *s = salt != NULL ? salt : "";

	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)s, strlen(s) + 1);   /* with its NUL */
	for (unsigned k = 0; k < set->n; k++) {
		if (k > 0)
			SHA256Update(&ctx, (const uint8_t *)"\n", 1);
		SHA256Update(&ctx, (const uint8_t *)set->req[k], strlen(set->req[k]));
	}
	SHA256End(&ctx, key);
}

void deps_normalize_name(const char *name, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '-' || c == '_' || c == '.') {
			if (o == 0 || out[o - 1] != '-')
				out[o++] = '-';
		} else {
			out[o++] = deps_lower(c);
		}
	}
	out[o] = '\0';
}

/* Top-level modules of an installed set (deps_top_level). */

#define DEPS_TOP_MAX 256          /* names kept of one set */

struct deps_names {
	unsigned n;
	char name[DEPS_TOP_MAX][DEPS_NAME_MAX + 1];
};

static int deps_is_identifier(const char *s, size_t len)
{
	if (len == 0 || len > DEPS_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!deps_is_alnum(s[i]) && s[i] != '_')
			return 0;
	return 1;
}

static void deps_names_add(struct deps_names *names, const char *s, size_t len)
{
	if (!deps_is_identifier(s, len) || names->n >= DEPS_TOP_MAX)
		return;
	for (unsigned i = 0; i < names->n; i++)
		if (strlen(names->name[i]) == len && memcmp(names->name[i], s, len) == 0)
			return;
	memcpy(names->name[names->n], s, len);
	names->name[names->n][len] = '\0';
	names->n++;
}

/* The file name in dirfd, read whole (at most DEPS_META_MAX bytes): a
 * malloc'd NUL-ended buffer, or NULL (none, not a regular file, too big). */
static char *deps_read_meta(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= DEPS_META_MAX &&
	    (buf = malloc((size_t)st.st_size + 1)) != NULL) {
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		buf[got] = '\0';
	}
	(void)close(fd);
	return buf;
}

/* One path of a RECORD, at the top of the set: MOD.py, PKG/__init__.py,
 * MOD.TAG.so. */
static void deps_record_path(struct deps_names *names, const char *p, size_t len)
{
	const char *slash = memchr(p, '/', len);
	const char *dot;

	if (slash != NULL) {
		if ((size_t)(p + len - slash) == sizeof("/__init__.py") - 1 &&
		    memcmp(slash, "/__init__.py", sizeof("/__init__.py") - 1) == 0)
			deps_names_add(names, p, (size_t)(slash - p));
		return;
	}
	dot = memchr(p, '.', len);
	if (dot == NULL)
		return;
	if ((size_t)(p + len - dot) == 3 && memcmp(dot, ".py", 3) == 0)
		deps_names_add(names, p, (size_t)(dot - p));
	else if (len > 3 && memcmp(p + len - 3, ".so", 3) == 0)
		deps_names_add(names, p, (size_t)(dot - p));
}

/* A RECORD: CSV rows whose first field is a path (quoted when it holds a
 * comma or a quote). */
static void deps_record(struct deps_names *names, const char *text)
{
	char path[PATH_MAX];

	while (*text != '\0') {
		size_t n = 0;
		const char *eol = strchr(text, '\n');
		const char *end = eol != NULL ? eol : text + strlen(text);

		if (*text == '"') {
			for (const char *c = text + 1; c < end && n < sizeof(path); c++) {
				if (*c == '"' && c + 1 < end && c[1] == '"')
					path[n++] = *c++;
				else if (*c == '"')
					break;
				else
					path[n++] = *c;
			}
		} else {
			for (const char *c = text; c < end && *c != ',' && n < sizeof(path); c++)
				path[n++] = *c;
		}
		if (n < sizeof(path))
			deps_record_path(names, path, n);
		text = eol != NULL ? eol + 1 : end;
	}
}

/* A top_level.txt: one name a line (a "/" in one names a package inside
 * the first part). */
static void deps_top_level_txt(struct deps_names *names, const char *text)
{
	while (*text != '\0') {
		const char *eol = strchr(text, '\n');
		const char *end = eol != NULL ? eol : text + strlen(text);
		const char *slash = memchr(text, '/', (size_t)(end - text));
		size_t n = (size_t)((slash != NULL ? slash : end) - text);

		while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == ' '))
			n--;
		deps_names_add(names, text, n);
		text = eol != NULL ? eol + 1 : end;
	}
}

static int deps_name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int deps_top_level(int site_fd, char *out, size_t len)
{
	static struct deps_names names;   /* 33K: off the stack */
	int fd = openat(site_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t used = 0;
	int count = 0;

	if (d == NULL) {
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	names.n = 0;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		int info;
		char *text;

		if (n <= sizeof(".dist-info") - 1 ||
		    strcmp(de->d_name + n - (sizeof(".dist-info") - 1), ".dist-info") != 0)
			continue;
		info = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (info < 0)
			continue;
		if ((text = deps_read_meta(info, "top_level.txt")) != NULL) {
			deps_top_level_txt(&names, text);
		} else if ((text = deps_read_meta(info, "RECORD")) != NULL) {
			deps_record(&names, text);
		}
		free(text);
		(void)close(info);
	}
	(void)closedir(d);
	qsort(names.name, names.n, sizeof(names.name[0]), deps_name_cmp);
	if (len > 0)
		out[0] = '\0';
	for (unsigned i = 0; i < names.n; i++) {
		size_t n = strlen(names.name[i]);

		if (used + (used > 0) + n + 1 > len)
			continue;
		if (used > 0)
			out[used++] = ',';
		memcpy(out + used, names.name[i], n + 1);
		used += n;
		count++;
	}
	return count;
}
