#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "util.h"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

#define SECONDS_MAX_MS (86400ULL * 1000)  /* one day: the bound of every duration */
/* Room for a reply's headers of parts, names and JSON fields besides stdout
 * and stderr: max_reply is at least 4 x max_output + this. */
#define CONFIG_REPLY_ROOM (1 * MiB)
#define FD_NUMBER_MAX 1048576             /* Linux's default fs.nr_open */
#define UNIX_PATH_LEN (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

enum config_type {
	CT_UNSIGNED,    /* unsigned field, plain integer */
	CT_SIZE,        /* uint64_t field, bytes with K/M/G */
	CT_MS,          /* uint64_t field, seconds with <= 3 decimals */
	CT_BOOL,        /* int field */
	CT_SANDBOX,     /* enum sandbox_level field */
	CT_LISTEN,      /* char[] field */
	CT_NAME,        /* char[] field: user or group */
	CT_PATH,        /* char[] field: absolute path */
	CT_DIR,         /* char[] field: absolute directory, not /, canonical */
	CT_URL,         /* char[] field: http(s)/file URL or "" */
	CT_LINKS,       /* char[] field: URL, absolute path or "" */
	CT_CGROUP,      /* char[] field: "auto", "no" or as CT_DIR */
	CT_OPTPATH,     /* char[] field: "" or as CT_PATH */
	CT_ETC,         /* char[] field: paths below /etc, as CT_DIR, comma-separated */
	CT_MODULES,     /* char[] field: Python module names, comma-separated */
	CT_PYTHONS,     /* char[] field: "name=path" entries, comma-separated */
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;
	size_t size;            /* of the field, for strings */
	uint64_t min, max;      /* numeric range, inclusive */
	int zero_ok;            /* 0 is allowed below min (it means "default") */
	const char *zero_means;
};

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)

static const struct config_key config_keys[] = {
	{ "listen", CT_LISTEN, F(listen), 0, 0, 0, NULL },
	{ "workers", CT_UNSIGNED, F(workers), 0, 1024, 0, NULL },
	{ "user", CT_NAME, F(user), 0, 0, 0, NULL },
	{ "group", CT_NAME, F(group), 0, 0, 0, NULL },
	{ "python", CT_PATH, F(python), 0, 0, 0, NULL },
	{ "pythons", CT_PYTHONS, F(pythons), 0, 0, 0, NULL },
	{ "work_root", CT_DIR, F(work_root), 0, 0, 0, NULL },
	{ "deps_cache", CT_DIR, F(deps_cache), 0, 0, 0, NULL },
	{ "deps_cache_max", CT_SIZE, F(deps_cache_max), 1 * MiB, 1024 * GiB, 0, NULL },
	{ "pip_index_url", CT_URL, F(pip_index_url), 0, 0, 0, NULL },
	{ "pip_extra_index_url", CT_URL, F(pip_extra_index_url), 0, 0, 0, NULL },
	{ "pip_find_links", CT_LINKS, F(pip_find_links), 0, 0, 0, NULL },
	{ "pip_only_binary", CT_BOOL, F(pip_only_binary), 0, 0, 0, NULL },
	{ "pip_timeout", CT_MS, F(pip_timeout_ms), 1000, SECONDS_MAX_MS, 0, NULL },
	{ "max_dependencies", CT_UNSIGNED, F(max_dependencies), 0, 1024, 0, NULL },
	{ "max_upload", CT_SIZE, F(max_upload), 1 * KiB, 16 * GiB, 0, NULL },
	{ "max_files", CT_UNSIGNED, F(max_files), 1, 100000, 0, NULL },
	{ "timeout", CT_MS, F(timeout_ms), 1, SECONDS_MAX_MS, 0, NULL },
	{ "timeout_max", CT_MS, F(timeout_max_ms), 1, SECONDS_MAX_MS, 0, NULL },
	/* RLIMIT_CPU counts whole seconds, so less than one cannot be enforced. */
	{ "cpu_time", CT_MS, F(cpu_time_ms), 1000, SECONDS_MAX_MS, 1, "the run's timeout" },
	/* Below 16M the interpreter itself does not start. */
	{ "memory", CT_SIZE, F(memory), 16 * MiB, 1024 * GiB, 0, NULL },
	{ "memory_max", CT_SIZE, F(memory_max), 16 * MiB, 1024 * GiB, 0, NULL },
	{ "max_processes", CT_UNSIGNED, F(max_processes), 1, 65536, 0, NULL },
	/* The interpreter needs a dozen descriptors to import anything. */
	{ "max_open_files", CT_UNSIGNED, F(max_open_files), 16, FD_NUMBER_MAX, 0, NULL },
	{ "max_file_size", CT_SIZE, F(max_file_size), 1 * KiB, 1024 * GiB, 0, NULL },
	{ "max_disk", CT_SIZE, F(max_disk), 1 * MiB, 1024 * GiB, 0, NULL },
	{ "max_output", CT_SIZE, F(max_output), 1 * KiB, 1 * GiB, 0, NULL },
	{ "max_generated_files", CT_UNSIGNED, F(max_generated_files), 0, 100000, 0, NULL },
	{ "max_generated_bytes", CT_SIZE, F(max_generated_bytes), 0, 1024 * GiB, 0, NULL },
	{ "max_reply", CT_SIZE, F(max_reply), 1 * MiB, 1024 * GiB, 0, NULL },
	{ "network", CT_BOOL, F(network), 0, 0, 0, NULL },
	{ "subordinate_ids", CT_BOOL, F(subordinate_ids), 0, 0, 0, NULL },
	{ "warm", CT_BOOL, F(warm), 0, 0, 0, NULL },
	{ "warm_runs", CT_UNSIGNED, F(warm_runs), 1, 1000000, 0, NULL },
	{ "warm_seconds", CT_MS, F(warm_ms), 1000, SECONDS_MAX_MS, 0, NULL },
	{ "warm_preload", CT_MODULES, F(warm_preload), 0, 0, 0, NULL },
	{ "warm_deps_after", CT_UNSIGNED, F(warm_deps_after), 0, 1000000, 0, NULL },
	{ "warm_zygotes_max", CT_UNSIGNED, F(warm_zygotes_max), 0, CONFIG_SET_ZYGOTES_MAX, 0,
	  NULL },
	{ "warm_zygotes_memory", CT_SIZE, F(warm_zygotes_memory), 0, 1024 * GiB, 0, NULL },
	{ "sandbox", CT_SANDBOX, F(sandbox), 0, 0, 0, NULL },
	{ "cgroup", CT_CGROUP, F(cgroup), 0, 0, 0, NULL },
	{ "sandbox_etc", CT_ETC, F(sandbox_etc), 0, 0, 0, NULL },
	{ "tokens_file", CT_OPTPATH, F(tokens_file), 0, 0, 0, NULL },
	{ "auth_metrics", CT_BOOL, F(auth_metrics), 0, 0, 0, NULL },
};

#undef F

static int config_key_is_string(const struct config_key *k)
{
	switch (k->type) {
	case CT_LISTEN: case CT_NAME: case CT_PATH: case CT_DIR: case CT_URL: case CT_LINKS:
	case CT_CGROUP: case CT_OPTPATH: case CT_ETC: case CT_MODULES: case CT_PYTHONS:
		return 1;
	default:
		return 0;
	}
}

static const struct config_key *config_key_find(const char *key)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++)
		if (strcmp(key, config_keys[i].name) == 0)
			return &config_keys[i];
	return NULL;
}

static void config_fmt_size(uint64_t v, char *buf, size_t buflen)
{
	if (v != 0 && v % GiB == 0)
		snprintf(buf, buflen, "%lluG", (unsigned long long)(v / GiB));
	else if (v != 0 && v % MiB == 0)
		snprintf(buf, buflen, "%lluM", (unsigned long long)(v / MiB));
	else if (v != 0 && v % KiB == 0)
		snprintf(buf, buflen, "%lluK", (unsigned long long)(v / KiB));
	else
		snprintf(buf, buflen, "%llu", (unsigned long long)v);
}

static int config_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int config_set_range_err(const struct config_key *k, const char *shown,
				const char *lo, const char *hi, const char *unit,
				char *err, size_t errlen)
{
	if (k->zero_ok)
		util_errorf(err, errlen, "%s: %s is out of range: must be 0 (%s) or from %s to %s%s",
			   k->name, shown, k->zero_means, lo, hi, unit);
	else
		util_errorf(err, errlen, "%s: %s is out of range: must be from %s to %s%s",
			   k->name, shown, lo, hi, unit);
	return -1;
}

static int config_set_number(const struct config_key *k, void *field, const char *value,
			     char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8], lo[32], hi[32];
	const char *unit = "";
	uint64_t v = 0;
	enum util_num ne;
	int syntax_ok, parsed;

	util_shown(value, strlen(value), shown, sizeof(shown));
	switch (k->type) {
	case CT_UNSIGNED:
		ne = util_parse_uint(value, strlen(value), 0, UINT64_MAX, &v);
		parsed = ne == UTIL_NUM_OK;
		if (ne == UTIL_NUM_INVALID) {
			util_errorf(err, errlen, "%s: '%s' is not a whole number", k->name, shown);
			return -1;
		}
		snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
		snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
		break;
	case CT_SIZE: {
		size_t n = strspn(value, "0123456789");

		syntax_ok = n > 0 && (value[n] == '\0' ||
			(strchr("kKmMgG", value[n]) != NULL && value[n + 1] == '\0'));
		if (!syntax_ok) {
			util_errorf(err, errlen,
				   "%s: '%s' is not a size (a whole number with an optional K, M or G suffix)",
				   k->name, shown);
			return -1;
		}
		parsed = util_parse_size(value, UINT64_MAX, &v) == 0;
		config_fmt_size(k->min, lo, sizeof(lo));
		config_fmt_size(k->max, hi, sizeof(hi));
		break;
	}
	case CT_MS:
		ne = util_parse_seconds(value, strlen(value), UINT64_MAX, &v);
		if (ne == UTIL_NUM_INVALID) {
			util_errorf(err, errlen, "%s: '%s' is not a number of seconds", k->name, shown);
			return -1;
		}
		if (ne == UTIL_NUM_DECIMALS) {
			util_errorf(err, errlen, "%s: '%s' has more than %d decimals (milliseconds)",
				   k->name, shown, UTIL_SECONDS_DECIMALS);
			return -1;
		}
		parsed = ne == UTIL_NUM_OK;
		util_format_seconds(lo, sizeof(lo), k->min);
		util_format_seconds(hi, sizeof(hi), k->max);
		unit = " seconds";
		break;
	default:
		return -1;
	}
	if (!parsed || ((v < k->min || v > k->max) && !(k->zero_ok && v == 0)))
		return config_set_range_err(k, shown, lo, hi, unit, err, errlen);

	if (k->type == CT_UNSIGNED)
		*(unsigned *)field = (unsigned)v;
	else
		*(uint64_t *)field = v;
	return 0;
}

static int config_set_bool(const struct config_key *k, int *field, const char *value,
			   char *err, size_t errlen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	char shown[UTIL_SHOWN_MAX + 8];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*field = 1;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*field = 0;
			return 0;
		}
	}
	util_errorf(err, errlen, "%s: '%s' is not yes or no", k->name,
		   util_shown(value, strlen(value), shown, sizeof(shown)));
	return -1;
}

static int config_set_sandbox(const struct config_key *k, enum sandbox_level *field,
			      const char *value, char *err, size_t errlen)
{
	static const enum sandbox_level levels[] = {
		SANDBOX_AUTO, SANDBOX_NAMESPACES, SANDBOX_RLIMITS
	};
	char shown[UTIL_SHOWN_MAX + 8];

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcmp(value, config_sandbox_name(levels[i])) == 0) {
			*field = levels[i];
			return 0;
		}
	}
	util_errorf(err, errlen, "%s: '%s' must be auto, namespaces or rlimits", k->name,
		   util_shown(value, strlen(value), shown, sizeof(shown)));
	return -1;
}

static int config_check_listen(const char *value, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	uint64_t fd;

	if (*value == '\0')
		return 0;
	util_shown(value, strlen(value), shown, sizeof(shown));
	if (strncmp(value, "unix:", 5) == 0) {
		const char *path = value + 5;

		if (path[0] != '/' || config_has_control(path)) {
			util_errorf(err, errlen, "listen: '%s': the socket path must be absolute", shown);
			return -1;
		}
		if (strlen(path) > UNIX_PATH_LEN) {
			util_errorf(err, errlen, "listen: '%s': a socket path is at most %zu bytes",
				   shown, (size_t)UNIX_PATH_LEN);
			return -1;
		}
		return 0;
	}
	if (strncmp(value, "tcp:", 4) == 0) {
		struct sockaddr_storage ss;
		unsigned sslen;

		if (util_parse_hostport(value + 4, &ss, &sslen) < 0) {
			util_errorf(err, errlen,
				   "listen: '%s' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to %d",
				   shown, UTIL_PORT_MAX);
			return -1;
		}
		return 0;
	}
	if (strncmp(value, "fd:", 3) == 0) {
		if (util_parse_uint(value + 3, strlen(value + 3), 0, FD_NUMBER_MAX, &fd) !=
		    UTIL_NUM_OK) {
			util_errorf(err, errlen, "listen: '%s' must be fd:N with N from 0 to %d",
				   shown, FD_NUMBER_MAX);
			return -1;
		}
		return 0;
	}
	util_errorf(err, errlen,
		   "listen: '%s' must be unix:/absolute/path, tcp:HOST:PORT or fd:N", shown);
	return -1;
}

static int config_check_name(const char *key, const char *value, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	size_t n = strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_.-");

	if (*value == '\0' || *value == '-' || value[n] != '\0') {
		util_errorf(err, errlen,
			   "%s: '%s' must be a name or number of letters, digits, '_', '.' and '-'",
			   key, util_shown(value, strlen(value), shown, sizeof(shown)));
		return -1;
	}
	return 0;
}

static int config_check_path(const char *key, const char *value, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];

	if (value[0] != '/' || config_has_control(value)) {
		util_errorf(err, errlen, "%s: '%s' must be an absolute path", key,
			   util_shown(value, strlen(value), shown, sizeof(shown)));
		return -1;
	}
	return 0;
}

/* work_root is swept at start and both directories are compared for nesting,
 * so they must be spelled one way: no ".", "..", "//", and never "/". */
static int config_check_dir(const char *key, const char *value, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	const char *p;

	if (config_check_path(key, value, err, errlen) < 0)
		return -1;
	util_shown(value, strlen(value), shown, sizeof(shown));
	for (p = value; *p == '/'; p++)
		;
	if (*p == '\0') {
		util_errorf(err, errlen, "%s: '%s' must not be the root directory", key, shown);
		return -1;
	}
	for (p = value + 1; *p != '\0';) {
		size_t n = strcspn(p, "/");

		if ((n == 0 && p[0] == '/') || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			util_errorf(err, errlen,
				   "%s: '%s' must not contain '.', '..' or '//' components", key, shown);
			return -1;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
}

/* sandbox_etc: "/etc/a, /etc/b/c" into "/etc/a,/etc/b/c" (out, len bytes);
 * each entry below /etc, spelled as config_check_dir wants. */
/* One entry of a list key, n bytes at item (NUL-ended there): 0 when it
 * is one (it may shorten it, to its canonical spelling: *n then says how
 * long it is), or -1 with err. */
typedef int (*config_item_check)(const char *key, char *item, size_t *n, char *err,
				 size_t errlen);

static int config_etc_item(const char *key, char *item, size_t *n, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];

	util_shown(item, *n, shown, sizeof(shown));
	if (*n == 0 || strncmp(item, "/etc/", 5) != 0 || item[5] == '\0' ||
	    strpbrk(item, " \t") != NULL) {
		util_errorf(err, errlen, "%s: '%s' must be a path below /etc "
			    "(entries are separated by commas)", key, shown);
		return -1;
	}
	if (config_check_dir(key, item, err, errlen) < 0)
		return -1;
	while (*n > 1 && item[*n - 1] == '/')
		item[--*n] = '\0';
	return 0;
}

/* A module's dotted name: identifiers of ASCII letters, digits and '_'
 * (not starting with a digit) joined by single dots. */
static int config_module_item(const char *key, char *item, size_t *n, char *err,
			      size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	int start = 1;

	for (size_t i = 0; i <= *n; i++) {
		char c = item[i];

		if (c == '.' || c == '\0') {
			if (start)
				break;
			if (c == '\0')
				return 0;
			start = 1;
		} else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (!start && c >= '0' && c <= '9')) {
			start = 0;
		} else {
			break;
		}
	}
	util_shown(item, *n, shown, sizeof(shown));
	util_errorf(err, errlen, "%s: '%s' is not a module name such as numpy or "
		    "matplotlib.pyplot (entries are separated by commas)", key, shown);
	return -1;
}

int config_python_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > CONFIG_PYTHON_NAME_MAX || !isalnum((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("._-", name[i]) == NULL)
			return 0;
	return 1;
}

/* "name = /path": a name (config_python_name_ok) and an absolute path,
 * kept as "name=/path". */
static int config_python_item(const char *key, char *item, size_t *n, char *err,
			      size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	char *eq = strchr(item, '='), *path;
	size_t name_len;

	util_shown(item, *n, shown, sizeof(shown));
	if (eq == NULL) {
		util_errorf(err, errlen, "%s: '%s' must be NAME=PATH, such as "
			    "pypy3=/usr/bin/pypy3 (entries are separated by commas)", key, shown);
		return -1;
	}
	name_len = (size_t)(eq - item);
	while (name_len > 0 && (item[name_len - 1] == ' ' || item[name_len - 1] == '\t'))
		name_len--;
	if (!config_python_name_ok(item, name_len)) {
		util_errorf(err, errlen, "%s: '%s': a name is 1 to %d letters, digits, '.', "
			    "'_' or '-', starting with a letter or digit", key, shown,
			    CONFIG_PYTHON_NAME_MAX);
		return -1;
	}
	for (path = eq + 1; *path == ' ' || *path == '\t'; path++)
		;
	if (config_check_path(key, path, err, errlen) < 0)
		return -1;
	memmove(item + name_len + 1, path, strlen(path) + 1);
	item[name_len] = '=';
	*n = strlen(item);
	return 0;
}

/* Walks the canonical "name=path,..." of pythons: the entry after *p into
 * out, advancing *p; 0 at the end. */
static int config_pythons_next(const char **p, struct config_python *out)
{
	size_t n = strcspn(*p, ","), name_len;
	const char *eq;

	if (n == 0)
		return 0;
	eq = memchr(*p, '=', n);
	name_len = eq != NULL ? (size_t)(eq - *p) : 0;
	if (name_len > CONFIG_PYTHON_NAME_MAX)
		name_len = CONFIG_PYTHON_NAME_MAX;
	memcpy(out->name, *p, name_len);
	out->name[name_len] = '\0';
	snprintf(out->path, sizeof(out->path), "%.*s", eq != NULL ? (int)(n - name_len - 1) : 0,
		 eq != NULL ? eq + 1 : "");
	*p += n + ((*p)[n] == ',');
	return 1;
}

/* Every name of canonical pythons given once. */
static int config_pythons_unique(const char *key, const char *canon, char *err, size_t errlen)
{
	static struct config_python seen[CONFIG_PYTHONS_MAX], cur;
	const char *p = canon;
	unsigned n = 0;

	while (n < CONFIG_PYTHONS_MAX && config_pythons_next(&p, &cur)) {
		for (unsigned i = 0; i < n; i++) {
			if (strcmp(seen[i].name, cur.name) == 0) {
				util_errorf(err, errlen, "%s: the name '%s' is given twice", key,
					    cur.name);
				return -1;
			}
		}
		seen[n++] = cur;
	}
	return 0;
}

unsigned config_pythons(const struct config *cfg, struct config_python *out)
{
	const char *p = cfg->pythons, *base;
	unsigned n = 0;
	size_t len;

	while (n < CONFIG_PYTHONS_MAX && config_pythons_next(&p, &out[n]))
		n++;
	if (n > 0)
		return n;
	/* python alone: named by its file, "python" when that is no name */
	base = strrchr(cfg->python, '/');
	base = base != NULL ? base + 1 : cfg->python;
	len = strlen(base);
	if (!config_python_name_ok(base, len))
		base = "python", len = 6;
	memcpy(out[0].name, base, len);
	out[0].name[len] = '\0';
	snprintf(out[0].path, sizeof(out[0].path), "%s", cfg->python);
	return 1;
}

/* A comma-separated list of at most max entries, each checked by check,
 * into out (len bytes) in its canonical spelling: entries without the
 * blanks around them, joined by single commas. 0, or -1 with err. */
static int config_parse_list(const char *key, const char *value, char *out, size_t len,
			     config_item_check check, size_t max, char *err, size_t errlen)
{
	char item[CONFIG_PATH_MAX];
	size_t used = 0, count = 0;
	const char *p = value;

	out[0] = '\0';
	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n >= sizeof(item) || used + n + 2 > len) {
			util_errorf(err, errlen, "%s: longer than %zu bytes", key, len - 1);
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (check(key, item, &n, err, errlen) < 0)
			return -1;
		if (++count > max) {
			util_errorf(err, errlen, "%s: more than %zu entries", key, max);
			return -1;
		}
		if (used > 0)
			out[used++] = ',';
		memcpy(out + used, item, n + 1);
		used += n;
		p += strcspn(p, ",");
		if (*p == ',' && *++p == '\0') {
			util_errorf(err, errlen, "%s: an empty entry after the last ','", key);
			return -1;
		}
	}
	return 0;
}

static int config_check_url(const char *key, const char *value, int path_ok,
			    char *err, size_t errlen)
{
	static const char *const schemes[] = { "http://", "https://", "file://" };
	char shown[UTIL_SHOWN_MAX + 8];

	if (*value == '\0')
		return 0;
	util_shown(value, strlen(value), shown, sizeof(shown));
	if (config_has_control(value) || strchr(value, ' ') != NULL) {
		util_errorf(err, errlen, "%s: '%s' must not contain spaces or control characters",
			   key, shown);
		return -1;
	}
	if (path_ok && value[0] == '/')
		return 0;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncasecmp(value, schemes[i], strlen(schemes[i])) == 0 &&
		    value[strlen(schemes[i])] != '\0')
			return 0;
	util_errorf(err, errlen, path_ok ?
		   "%s: '%s' must be an http://, https:// or file:// URL or an absolute path" :
		   "%s: '%s' must be an http://, https:// or file:// URL", key, shown);
	return -1;
}

static int config_set_string(const struct config_key *k, char *field, const char *value,
			     char *err, size_t errlen)
{
	size_t len = strlen(value);
	int rc = 0;

	if (len >= k->size) {
		util_errorf(err, errlen, "%s: longer than %zu bytes", k->name, k->size - 1);
		return -1;
	}
	switch (k->type) {
	case CT_LISTEN: rc = config_check_listen(value, err, errlen); break;
	case CT_NAME:   rc = config_check_name(k->name, value, err, errlen); break;
	case CT_PATH:   rc = config_check_path(k->name, value, err, errlen); break;
	case CT_DIR:    rc = config_check_dir(k->name, value, err, errlen); break;
	case CT_URL:    rc = config_check_url(k->name, value, 0, err, errlen); break;
	case CT_LINKS:  rc = config_check_url(k->name, value, 1, err, errlen); break;
	case CT_OPTPATH:
		rc = value[0] == '\0' ? 0 : config_check_path(k->name, value, err, errlen);
		break;
	case CT_ETC:
	case CT_MODULES:
	case CT_PYTHONS: {
		char canon[CONFIG_PATH_MAX];
		config_item_check check = k->type == CT_ETC ? config_etc_item
					  : k->type == CT_MODULES ? config_module_item
								  : config_python_item;
		size_t max = k->type == CT_ETC ? CONFIG_ETC_MAX
			     : k->type == CT_MODULES ? CONFIG_PRELOAD_MAX : CONFIG_PYTHONS_MAX;

		/* kept in its canonical spelling, which is never longer */
		if (config_parse_list(k->name, value, canon,
				      k->size < sizeof(canon) ? k->size : sizeof(canon),
				      check, max, err, errlen) < 0)
			return -1;
		if (k->type == CT_PYTHONS && config_pythons_unique(k->name, canon, err,
								   errlen) < 0)
			return -1;
		memcpy(field, canon, strlen(canon) + 1);
		return 0;
	}
	case CT_CGROUP:
		if (strcmp(value, "auto") != 0 && strcmp(value, "no") != 0 &&
		    value[0] != '/') {
			char shown[UTIL_SHOWN_MAX + 8];

			util_errorf(err, errlen, "%s: '%s' must be auto, no or an absolute "
				    "path", k->name,
				    util_shown(value, len, shown, sizeof(shown)));
			rc = -1;
		} else if (value[0] == '/') {
			rc = config_check_dir(k->name, value, err, errlen);
		}
		break;
	default:        rc = -1; break;
	}
	if (rc < 0)
		return -1;
	memcpy(field, value, len + 1);
	if (k->type == CT_DIR || k->type == CT_CGROUP)
		while (len > 1 && field[len - 1] == '/')
			field[--len] = '\0';
	return 0;
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	/* listen "" lets the program choose between fd 0 and its socket. */
	cfg->workers = 0;
	strcpy(cfg->user, "nobody");
	strcpy(cfg->group, "nogroup");
	strcpy(cfg->python, "/usr/bin/python3");
	strcpy(cfg->work_root, CONFIG_WORK_ROOT);
	strcpy(cfg->cgroup, "auto");
	strcpy(cfg->deps_cache, CONFIG_DEPS_CACHE);
	cfg->deps_cache_max = 5 * GiB;
	cfg->pip_only_binary = 1;
	cfg->pip_timeout_ms = 300 * 1000;
	cfg->max_dependencies = 32;
	cfg->max_upload = 50 * MiB;
	cfg->max_files = 200;
	cfg->timeout_ms = 10 * 1000;
	cfg->timeout_max_ms = 60 * 1000;
	cfg->cpu_time_ms = 0;
	cfg->memory = 512 * MiB;
	cfg->memory_max = 4 * GiB;
	cfg->max_processes = 64;
	cfg->max_open_files = 256;
	cfg->max_file_size = 64 * MiB;
	cfg->max_disk = 256 * MiB;
	cfg->max_output = 1 * MiB;
	cfg->max_generated_files = 100;
	cfg->max_generated_bytes = 100 * MiB;
	cfg->max_reply = 160 * MiB;
	cfg->network = 0;
	cfg->subordinate_ids = 1;
	cfg->warm = 1;
	cfg->warm_runs = 200;
	cfg->warm_ms = 300 * 1000;
	cfg->warm_preload[0] = '\0';
	cfg->warm_deps_after = 2;
	cfg->warm_zygotes_max = 4;
	cfg->warm_zygotes_memory = 2 * GiB;
	cfg->sandbox = SANDBOX_AUTO;
	cfg->auth_metrics = 1;
}

int config_set(struct config *cfg, const char *key, const char *value,
	       char *err, size_t errlen)
{
	const struct config_key *k = NULL;
	char shown[UTIL_SHOWN_MAX + 8];
	void *field;

	k = config_key_find(key);
	if (k == NULL) {
		util_errorf(err, errlen, "unknown key '%s'",
			    util_shown(key, strlen(key), shown, sizeof(shown)));
		return -1;
	}
	field = (char *)cfg + k->offset;
	switch (k->type) {
	case CT_UNSIGNED:
	case CT_SIZE:
	case CT_MS:
		return config_set_number(k, field, value, err, errlen);
	case CT_BOOL:
		return config_set_bool(k, field, value, err, errlen);
	case CT_SANDBOX:
		return config_set_sandbox(k, field, value, err, errlen);
	default:
		break;
	}
	if (config_set_string(k, field, value, err, errlen) < 0)
		return -1;
	/* python and pythons say the same thing: the last one given wins */
	if (k->type == CT_PATH && strcmp(k->name, "python") == 0) {
		cfg->pythons[0] = '\0';
	} else if (k->type == CT_PYTHONS && cfg->pythons[0] != '\0') {
		static struct config_python first;
		const char *p = cfg->pythons;

		(void)config_pythons_next(&p, &first);
		memcpy(cfg->python, first.path, strlen(first.path) + 1);
	}
	return 0;
}

/* One line, NUL-ended, without its newline: "key = value", a comment or
 * nothing. 0, or -1 with "reason" (no location) in err. */
static int config_apply_line(struct config *cfg, char *line, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	char *key, *value, *eq, *end, *p;

	/* '#' starts a comment at the start of a line or after a blank, so a
	 * URL's "#fragment" survives. */
	for (p = line; *p != '\0'; p++) {
		if (*p == '#' && (p == line || util_is_line_blank(p[-1]))) {
			*p = '\0';
			break;
		}
	}
	for (end = line + strlen(line); end > line && util_is_line_blank(end[-1]); end--)
		;
	*end = '\0';
	for (key = line; util_is_line_blank(*key); key++)
		;
	if (*key == '\0')
		return 0;
	eq = strchr(key, '=');
	if (eq == NULL) {
		util_errorf(err, errlen, "'%s': expected 'key = value'",
			   util_shown(key, strlen(key), shown, sizeof(shown)));
		return -1;
	}
	for (end = eq; end > key && util_is_line_blank(end[-1]); end--)
		;
	if (end == key) {
		util_errorf(err, errlen, "expected a key before '='");
		return -1;
	}
	*end = '\0';
	for (value = eq + 1; util_is_line_blank(*value); value++)
		;
	return config_set(cfg, key, value, err, errlen);
}

static int config_read_all(const char *path, char **out, size_t *outlen,
			   char *err, size_t errlen)
{
	switch (util_read_file(path, CONFIG_FILE_MAX, 0, out, outlen)) {
	case UTIL_READ_OK:
		return 0;
	case UTIL_READ_OPEN:
		util_errorf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		break;
	case UTIL_READ_STAT:
		util_errorf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		break;
	case UTIL_READ_DIR:
	case UTIL_READ_NOT_REGULAR:
		util_errorf(err, errlen, "%s: is a directory, not a config file", path);
		break;
	case UTIL_READ_NOMEM:
		util_errorf(err, errlen, "%s: out of memory", path);
		break;
	case UTIL_READ_READ:
		util_errorf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		break;
	case UTIL_READ_TOO_LARGE:
		util_errorf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
		break;
	}
	return -1;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char reason[512];
	struct config *tmp = NULL;
	char *buf = NULL, *line;
	size_t len = 0, off = 0;
	unsigned lineno = 0;

	if (config_read_all(path, &buf, &len, err, errlen) < 0)
		return -1;
	/* Work on a copy so a bad file leaves cfg as it was. */
	tmp = malloc(sizeof(*tmp));
	if (tmp == NULL) {
		util_errorf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	memcpy(tmp, cfg, sizeof(*tmp));
	/* Editors on some systems start UTF-8 files with a byte order mark. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		off = 3;
	while (off < len) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t linelen = (nl != NULL ? (size_t)(nl - buf) : len) - off;

		lineno++;
		line = buf + off;
		off += linelen + (nl != NULL ? 1 : 0);
		if (linelen > CONFIG_LINE_MAX) {
			util_errorf(err, errlen, "%s:%u: line longer than %d bytes",
				   path, lineno, CONFIG_LINE_MAX);
			goto fail;
		}
		if (memchr(line, '\0', linelen) != NULL) {
			util_errorf(err, errlen, "%s:%u: NUL byte in the line", path, lineno);
			goto fail;
		}
		line[linelen] = '\0';
		if (config_apply_line(tmp, line, reason, sizeof(reason)) < 0) {
			util_errorf(err, errlen, "%s:%u: %s", path, lineno, reason);
			goto fail;
		}
	}
	memcpy(cfg, tmp, sizeof(*cfg));
	free(tmp);
	free(buf);
	return 0;
fail:
	free(tmp);
	free(buf);
	return -1;
}

/* 1 when dir is inner itself or a directory below it; both are canonical
 * (config_check_dir) and without a trailing slash. */
static int config_dir_within(const char *dir, const char *inner)
{
	size_t n = strlen(dir);

	return strncmp(dir, inner, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

int config_check(const struct config *cfg, char *err, size_t errlen)
{
	char a[32], b[32];

	if (cfg->timeout_ms > cfg->timeout_max_ms) {
		util_format_seconds(a, sizeof(a), cfg->timeout_ms);
		util_format_seconds(b, sizeof(b), cfg->timeout_max_ms);
		util_errorf(err, errlen,
			   "timeout (%s seconds) is over timeout_max (%s seconds); "
			   "lower timeout or raise timeout_max", a, b);
		return -1;
	}
	if (cfg->memory > cfg->memory_max) {
		config_fmt_size(cfg->memory, a, sizeof(a));
		config_fmt_size(cfg->memory_max, b, sizeof(b));
		util_errorf(err, errlen,
			   "memory (%s) is over memory_max (%s); lower memory or raise memory_max",
			   a, b);
		return -1;
	}
	/* stdout and stderr are always sent whole: twice their bytes each as
	 * JSON text at worst, and room for the rest of the reply */
	if (cfg->max_reply < 4 * cfg->max_output + CONFIG_REPLY_ROOM) {
		config_fmt_size(cfg->max_reply, a, sizeof(a));
		config_fmt_size(4 * cfg->max_output + CONFIG_REPLY_ROOM, b, sizeof(b));
		util_errorf(err, errlen,
			   "max_reply (%s) is under 4 x max_output + 1M (%s), which stdout "
			   "and stderr may take; raise max_reply or lower max_output", a, b);
		return -1;
	}
	/* work_root is emptied at start: a cache inside it would be wiped,
	 * and work dirs inside the cache would be served to the sandbox. */
	if (config_dir_within(cfg->work_root, cfg->deps_cache) ||
	    config_dir_within(cfg->deps_cache, cfg->work_root)) {
		util_errorf(err, errlen,
			   "work_root (%s) and deps_cache (%s) must be separate directories, "
			   "neither inside the other", cfg->work_root, cfg->deps_cache);
		return -1;
	}
	return 0;
}

int config_key_equal(const struct config *a, const struct config *b, const char *key)
{
	const struct config_key *k = config_key_find(key);

	if (k == NULL)
		return -1;
	if (config_key_is_string(k))
		return strcmp((const char *)a + k->offset, (const char *)b + k->offset) == 0;
	return memcmp((const char *)a + k->offset, (const char *)b + k->offset, k->size) == 0;
}

int config_key_copy(struct config *dst, const struct config *src, const char *key)
{
	const struct config_key *k = config_key_find(key);

	if (k == NULL)
		return -1;
	memcpy((char *)dst + k->offset, (const char *)src + k->offset, k->size);
	return 0;
}

const char *config_sandbox_name(enum sandbox_level level)
{
	switch (level) {
	case SANDBOX_AUTO:       return "auto";
	case SANDBOX_NAMESPACES: return "namespaces";
	case SANDBOX_RLIMITS:    return "rlimits";
	}
	return "unknown";
}
