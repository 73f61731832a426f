/* conf: pyexec.conf, as pyexec.conf(5) describes it: "key = value" lines,
 * '#' comments, every key optional, sizes with K/M/G suffixes, seconds with
 * up to 3 decimals. */
#ifndef PYEXEC_CONF_H
#define PYEXEC_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 4096       /* longest path value */
#define CONFIG_LINE_MAX 8192       /* longest line of the file */
#define CONFIG_FILE_MAX (1 << 20)  /* largest config file read */
#define CONFIG_ETC_MAX 32          /* entries of sandbox_etc */
#define CONFIG_PRELOAD_MAX 32      /* modules of warm_preload */
#define CONFIG_PRELOAD_LEN 1024    /* bytes of warm_preload */
#define CONFIG_SET_ZYGOTES_MAX 16  /* warm_zygotes_max's highest value */
#define CONFIG_PYTHONS_MAX 8       /* interpreters of pythons */
#define CONFIG_PYTHON_NAME_MAX 32  /* bytes of an interpreter's name */

/* The defaults that follow configure's --localstatedir (/var unless told). */
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#define CONFIG_WORK_ROOT LOCALSTATEDIR "/lib/pyexec/work"
#define CONFIG_DEPS_CACHE LOCALSTATEDIR "/cache/pyexec/deps"

enum sandbox_level { SANDBOX_AUTO, SANDBOX_NAMESPACES, SANDBOX_RLIMITS };

struct config {
	char listen[CONFIG_PATH_MAX];   /* "" = fd 0 when it is a socket, else the default */
	unsigned workers;               /* 0 = number of CPUs */
	char user[256], group[256];
	char python[CONFIG_PATH_MAX];   /* the default interpreter: pythons' first */
	char pythons[CONFIG_PATH_MAX];  /* "name=path,..." canonical; "" = python alone */
	char work_root[CONFIG_PATH_MAX];
	char deps_cache[CONFIG_PATH_MAX];
	uint64_t deps_cache_max;        /* bytes */
	char pip_index_url[CONFIG_PATH_MAX];       /* "" = unset */
	char pip_extra_index_url[CONFIG_PATH_MAX]; /* "" = unset */
	char pip_find_links[CONFIG_PATH_MAX];      /* "" = unset */
	int pip_only_binary;            /* bool */
	uint64_t pip_timeout_ms;
	unsigned max_dependencies;
	uint64_t max_upload;            /* bytes */
	unsigned max_files;
	uint64_t timeout_ms, timeout_max_ms;
	uint64_t cpu_time_ms;           /* 0 = same as the run's wall timeout */
	uint64_t memory, memory_max;    /* bytes */
	unsigned max_processes;
	unsigned max_open_files;
	uint64_t max_file_size;         /* bytes */
	uint64_t max_disk;              /* bytes */
	uint64_t max_output;            /* bytes, each of stdout and stderr */
	unsigned max_generated_files;
	uint64_t max_generated_bytes;
	uint64_t max_reply;             /* bytes of a reply's body, as encoded */
	int network;                    /* bool */
	int subordinate_ids;            /* bool: runs take ids of /etc/subuid, /etc/subgid */
	int warm;                       /* bool: each worker keeps a zygote (zygote.h) */
	unsigned warm_runs;             /* a zygote is replaced after forking this many */
	uint64_t warm_ms;               /* ... or after being this old */
	char warm_preload[CONFIG_PRELOAD_LEN]; /* modules a zygote imports, comma-separated */
	unsigned warm_deps_after;       /* a dependency set gets a zygote once asked for
	                                 * this many times (0: never) */
	unsigned warm_zygotes_max;      /* zygotes of dependency sets per worker */
	uint64_t warm_zygotes_memory;   /* their resident bytes, all workers' together */
	enum sandbox_level sandbox;
	char cgroup[CONFIG_PATH_MAX];   /* "auto", "no" or a cgroup v2 or v1 (memory) directory */
	char tokens_file[CONFIG_PATH_MAX]; /* bearer tokens for execute; "" = none */
	char sandbox_etc[CONFIG_PATH_MAX]; /* more of /etc for runs: paths below /etc,
	                                    * joined by ","; "" = none */
	int auth_metrics;               /* bool: /metrics needs a token too */
};

/* An interpreter runs may ask for by name (?python=). */
struct config_python {
	char name[CONFIG_PYTHON_NAME_MAX + 1];
	char path[CONFIG_PATH_MAX];
};

/* Fills cfg with the defaults of pyexec.conf(5). */
void config_defaults(struct config *cfg);

/* Sets one key from its text value. 0, or -1 with a sentence naming the key
 * and what is wrong in err (errlen bytes), cfg unchanged. Used for file
 * lines and options. */
int config_set(struct config *cfg, const char *key, const char *value,
	       char *err, size_t errlen);

/* Reads path and applies each line with config_set (a key given twice: the
 * last wins). 0, or -1 with "path:line: key: reason" in err, cfg unchanged. */
int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen);

/* Checks relations between keys (timeout <= timeout_max, memory <=
 * memory_max, ...). 0, or -1 with a sentence in err. */
int config_check(const struct config *cfg, char *err, size_t errlen);

/* Whether key has the same value in a and b; -1 for an unknown key. */
int config_key_equal(const struct config *a, const struct config *b, const char *key);

/* Copies key's value from src to dst; 0, or -1 for an unknown key. */
int config_key_copy(struct config *dst, const struct config *src, const char *key);

/* The interpreters of cfg into out (CONFIG_PYTHONS_MAX entries), the
 * default first: pythons' entries, or python alone, named by its file's
 * base name ("python3"). Returns how many (at least 1). */
unsigned config_pythons(const struct config *cfg, struct config_python *out);

/* Whether name is one config_pythons could give: 1 to
 * CONFIG_PYTHON_NAME_MAX of [A-Za-z0-9._-], starting with a letter or digit. */
int config_python_name_ok(const char *name, size_t len);

/* The name of a sandbox level as config and /healthz spell it. */
const char *config_sandbox_name(enum sandbox_level level);

#endif
