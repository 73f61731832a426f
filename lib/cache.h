/* cache: the dependency cache (README, "Dependencies"). One directory per requirement set,
 * named by its key (deps_key), installed once by pip and shared read-only:
 *
 *   <deps_cache>/<key>/            an entry: sitecustomize.py and site/
 *   <deps_cache>/.staging/<key>.*  installs in progress (swept at start)
 *   <deps_cache>/.locks/<key>      flock: shared while a request uses the
 *                                  entry, exclusive to install or evict it
 *   <deps_cache>/.sizes/<key>      the entry's size in bytes; its mtime is
 *                                  the entry's last use (LRU)
 *   <deps_cache>/.home/            HOME and TMPDIR of pip
 *   <deps_cache>/.wanted/<key>     eviction wanted the entry while it was in use
 *   <deps_cache>/.prefetched/<key> put there by --prefetch: a zygote at start
 *
 * An entry appears by rename(2) of a complete staging directory, so nobody
 * sees half an install; concurrent requests for a new set wait on its lock
 * and find the entry the first one installed. */
#ifndef PYEXEC_CACHE_H
#define PYEXEC_CACHE_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "deps.h"

#define CACHE_SALT_MAX 2048        /* bytes of the key's salt */
#define CACHE_WAIT_EXTRA_MS 30000  /* waiting for another install: pip_timeout + this */

/* One interpreter of the configuration (pythons) and its part of the
 * dependency cache: the directory is shared, and the interpreter's
 * identity in the salt gives its sets keys of their own. */
struct cache {
	const struct config *cfg;
	char name[CONFIG_PYTHON_NAME_MAX + 1]; /* as ?python= names it */
	char python[CONFIG_PATH_MAX];  /* its path: pip and runs use it */
	char salt[CACHE_SALT_MAX];     /* interpreter identity + pip settings */
	int usable;                    /* pip answered at start */
	char python_version[256];      /* the interpreter's sys.version, one line
	                                * ("" when it did not say) */
	char why[CONFIG_PATH_MAX + 512]; /* why not, a sentence for the operator */
};

enum cache_result {
	CACHE_HIT,          /* the entry existed */
	CACHE_INSTALLED,    /* installed now */
	CACHE_PIP_FAILED,   /* pip failed or timed out; its output is in out_fd */
	CACHE_UNUSABLE,     /* pip is not available (cache->why says why) */
	CACHE_CANCELLED,    /* the client went away (watch_fd, cancel) */
	CACHE_ERROR,        /* a fault of pyexec or the disk (logged) */
};

/* An entry held in use: the lock keeps eviction away until release. */
struct cache_use {
	int lock_fd;
	char key[DEPS_KEY_HEX + 1];
	char path[PATH_MAX];           /* the entry: goes on PYTHONPATH */
};

/* Creates the cache's directories (deps_cache must be writable), removes
 * stale staging directories, and asks the interpreter py (copied) for its
 * identity and pip's version (one short run of it). A missing pip is not
 * an error: c->usable is 0 and c->why says what to install. 0, or -1 with
 * a sentence in err. */
int cache_init(struct cache *c, const struct config *cfg, const struct config_python *py,
	       char *err, size_t errlen);

/* Finds or installs set's entry and holds it in use. pip's output (stdout and
 * stderr together, capped at max_output) goes to out_fd; *truncated is set
 * when the cap cut it. watch_fd/cancel as in run_spec. On CACHE_HIT and
 * CACHE_INSTALLED use is filled and must be released; otherwise nothing is
 * held and nothing is left in the cache. After an install, entries are
 * evicted down to deps_cache_max; *evicted says how many. */
enum cache_result cache_acquire(struct cache *c, const struct deps_set *set,
				struct cache_use *use, int out_fd, int *truncated,
				int watch_fd, volatile sig_atomic_t *cancel, int *evicted);

/* Ends the use of an entry. Safe to call again, and after an acquire that
 * held nothing (lock_fd is -1 then). */
void cache_release(struct cache_use *use);

/* Evicts least-recently-used entries not in use until the entries' total is
 * at most deps_cache_max. Returns the number evicted, or -1 (logged). */
int cache_evict(struct cache *c);

/* The path of the entry named key (deps_cache/key) into out (len bytes).
 * 0, or -1 (ENAMETOOLONG). */
int cache_entry_path(const struct config *cfg, const char *key, char *out, size_t len);

/* --prefetch's mark on the entry named key: a server started later gives
 * its set a zygote at once (README "Warm start"). 0, or -1 with errno. */
int cache_mark_prefetched(const struct config *cfg, const char *key);
/* The keys (at most max) of prefetched entries that are there now. */
size_t cache_prefetched(const struct config *cfg, char (*keys)[DEPS_KEY_HEX + 1], size_t max);
/* A lease on the entry named key, as a zygote of its set holds: a shared
 * lock on it, the fd (close it to let go), or -1 (no such entry, or an
 * install or eviction holds it). */
int cache_lease(const struct config *cfg, const char *key);

/* Whether eviction wanted the entry named key and could not have it, as
 * it was in use (a zygote of its set holds it: README "Warm start"), since
 * it was last used. */
int cache_wanted(const struct config *cfg, const char *key);

/* The entries' recorded total size and count (for /metrics). 0, or -1 when
 * the cache cannot be read. */
int cache_usage(const struct cache *c, uint64_t *bytes, unsigned *entries);

#endif
