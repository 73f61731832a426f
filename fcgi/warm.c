/* warm: a worker's zygotes (warm.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "deps.h"
#include "execute.h"
#include "log.h"
#include "metrics.h"
#include "run.h"
#include "util.h"
#include "figures.h"
#include "warm.h"

/* Between two starts of a zygote: from a second, doubled after each
 * failed start, up to a minute. */
#define WARM_RETRY_NS (1000 * 1000 * 1000LL)
#define WARM_RETRY_MAX_NS (60 * WARM_RETRY_NS)

static void set_noted(const char *deps, int lock_fd, void *arg);
static struct zygote *set_found(const char *deps, void *arg);

void warm_init(struct warm *w, const struct server *srv)
{
	memset(w, 0, sizeof(*w));
	w->srv = srv;
	zygote_init(&w->z[0]);
	zygote_init(&w->z[1]);
	for (size_t i = 0; i < WARM_ASKED_MAX; i++) {
		zygote_init(&w->sets[i].z);
		w->sets[i].lease = -1;
	}
	w->retry_ns = WARM_RETRY_NS;
	zygote_use(&w->z[0]);
	zygote_use_sets(w->ready, 0);
	zygote_note_hook(set_noted, w);
	zygote_set_finder(set_found, w);
}

struct zygote *warm_current(struct warm *w)
{
	return &w->z[w->cur];
}

int warm_open_binary(char *why, size_t len)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	int fd;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/pyexec-zygote", self);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
	}
	snprintf(path, sizeof(path), "%s/pyexec-zygote", PKGLIBEXECDIR);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
	return fd;
}

/* Launches z with the run's command line and environment: a run without
 * dependencies (deps NULL), or one of the set whose entry is deps, on its
 * PYTHONPATH; preload its modules to import. In the namespace sandbox,
 * or for the rlimits layer a plain one, whose runs' directories are their
 * own. 0, or -1 with z->why. */
static int launch(struct warm *w, struct zygote *z, const char *deps, const char *preload)
{
	const struct server *srv = w->srv;
	struct execute_program prog;

	if (srv->zygote_fd < 0) {
		snprintf(z->why, sizeof(z->why), "%s", srv->zygote_why);
		return -1;
	}
	snprintf(z->deps, sizeof(z->deps), "%s", deps != NULL ? deps : "");
	if (srv->sandbox_cfg == NULL) {
		if (execute_program_like(srv->cfg, &prog, deps) < 0) {
			snprintf(z->why, sizeof(z->why), "cannot make the zygote's environment: %s",
				 strerror(errno));
			return -1;
		}
		return zygote_launch_plain(z, srv->cfg->work_root, srv->zygote_fd, prog.argv,
					   prog.envp, preload);
	}
	execute_program(srv->cfg->python, &prog, "/tmp", SANDBOX_WORK, deps, figures_path(1));
	return zygote_launch(z, srv->sandbox_cfg, srv->cfg->work_root, srv->zygote_fd,
			     prog.argv, prog.envp, preload);
}

int warm_vet(const struct server *srv, char *err, size_t errlen)
{
	struct warm w;
	struct zygote *z = &w.z[0];
	const char *refused;
	int rc = 0;

	if (!srv->cfg->warm || srv->cfg->warm_preload[0] == '\0')
		return 0;
	memset(&w, 0, sizeof(w));
	w.srv = srv;
	zygote_init(z);
	if (launch(&w, z, NULL, srv->cfg->warm_preload) == 0 &&
	    zygote_await(z, INT64_MAX) == 1) {
		log_msg(LOG_LEVEL_INFO, "warm_preload: %s imported and vetted",
			srv->cfg->warm_preload);
	} else if ((refused = strstr(z->why, ZYGOTE_PRELOAD_REFUSED)) != NULL) {
		snprintf(err, errlen, "%s%s", refused, strstr(refused, " when imported") != NULL ?
			 "; such a module cannot be preloaded (README, \"Warm start\")" : "");
		rc = -1;
	} else {
		log_msg(LOG_LEVEL_WARN, "warm_preload: not vetted at start: %s", z->why);
	}
	zygote_stop(z);
	return rc;
}

/* 0 when a ready z's interpreter is the configured python's (the version
 * the dependency cache learnt at start); -1 with z->why, z stopped. */
static int same_python(const struct server *srv, struct zygote *z)
{
	const char *cold = srv->caches != NULL ? srv->caches[0].python_version : "";

	if (cold[0] != '\0' && strcmp(cold, z->version) == 0)
		return 0;
	snprintf(z->why, sizeof(z->why), "pyexec-zygote embeds Python %.60s, %.80s is %.60s",
		 z->version, srv->cfg->python, cold[0] != '\0' ? cold : "of unknown version");
	zygote_stop(z);
	return -1;
}

/* A zygote failed to start: logged (the same reason again is not news),
 * counted, and the next try put off. */
static void failed(struct warm *w, struct zygote *z, int64_t now, const char *what)
{
	if (strcmp(w->logged, z->why) != 0)
		log_msg(LOG_LEVEL_WARN, "worker: %s: %s", what, z->why);
	memcpy(w->logged, z->why, sizeof(w->logged));
	metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_LOST);
	w->next_start = w->next_refresh = now + w->retry_ns;
	if (w->retry_ns < WARM_RETRY_MAX_NS)
		w->retry_ns *= 2;
}

/* The zygotes (and their inits) are the worker's helpers: no run's
 * clean-up kills them. */
static void keep(struct warm *w)
{
	pid_t pids[RUN_HELPERS_MAX];
	size_t n = 0;

	pids[n++] = w->z[0].sp.pid;
	pids[n++] = w->z[1].sp.pid;
	for (size_t i = 0; i < WARM_ASKED_MAX && n < RUN_HELPERS_MAX; i++)
		if (w->sets[i].z.sp.pid > 0)
			pids[n++] = w->sets[i].z.sp.pid;
	run_keep_helpers(pids, n);
}

/* z is ready: counted, logged, kept, and the retries start afresh. */
static void took_over(struct warm *w, struct zygote *z, int64_t now)
{
	metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_STARTED);
	w->next_start = now + WARM_RETRY_NS;
	w->retry_ns = WARM_RETRY_NS;
	w->logged[0] = '\0';
	zygote_use(z);
	keep(w);
	log_msg(LOG_LEVEL_DEBUG, "worker: zygote %ld ready (Python %.40s)", (long)z->sp.pid,
		z->version);
}

/* The one in use is gone or was never there: a new one, waited for (runs
 * are cold meanwhile anyway). 1 when it is ready. */
static int start(struct warm *w, int64_t now)
{
	struct zygote *z = &w->z[w->cur];

	if (now < w->next_start)
		return 0;
	if (launch(w, z, NULL, w->srv->cfg->warm_preload) < 0 ||
	    zygote_await(z, INT64_MAX) != 1 ||
	    same_python(w->srv, z) < 0) {
		failed(w, z, now, "no zygote, runs start cold");
		keep(w);
		return 0;
	}
	took_over(w, z, now);
	return 1;
}

/* The one in use has forked warm_runs sandboxes or lived warm_seconds: a
 * new one is launched, and takes over once it says it is ready (looked at
 * between requests, never waited for), the old one then stopped. */
static void refresh(struct warm *w, int64_t now)
{
	const struct config *cfg = w->srv->cfg;
	struct zygote *z = &w->z[w->cur], *next = &w->z[!w->cur];
	int r;

	if (next->launched_ns == 0) {
		if ((z->forks < cfg->warm_runs &&
		     now - z->ready_ns < (int64_t)cfg->warm_ms * 1000000) || now < w->next_refresh)
			return;
		if (launch(w, next, NULL, cfg->warm_preload) < 0)
			failed(w, next, now, "cannot replace the zygote");
		keep(w);
		return;
	}
	r = zygote_await(next, now);
	if (r == 0)
		return;
	if (r < 0 || same_python(w->srv, next) < 0) {
		failed(w, next, now, "cannot replace the zygote");
		keep(w);
		return;
	}
	w->cur = !w->cur;
	zygote_stop(z);
	metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_REFRESHED);
	took_over(w, next, now);
}

/* Dependency sets' zygotes (README "Warm start"). */

/* A set's name in the log: its key, shortened. */
static const char *set_name(const struct warm_set *ws)
{
	const char *slash = strrchr(ws->deps, '/');

	return slash != NULL ? slash + 1 : ws->deps;
}

static int set_has_zygote(const struct warm_set *ws)
{
	return ws->z.launched_ns != 0 || ws->z.ready;
}

/* ws's zygote no longer counted among those ready (metrics). */
static void set_uncount(struct warm *w, struct warm_set *ws)
{
	if (ws->counted != 0)
		metrics_set_zygotes(w->srv->metrics, set_name(ws), -1, -ws->counted);
	ws->counted = 0;
}

/* ... and counted, now that it is ready: its resident memory, from statm
 * (readable even when the zygote is not dumpable). */
static void set_count(struct warm *w, struct warm_set *ws)
{
	char path[64], text[128];
	unsigned long size = 0, resident = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/statm", (long)ws->z.sp.pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		util_read_text(fd, text, sizeof(text));
		(void)close(fd);
		if (sscanf(text, "%lu %lu", &size, &resident) != 2)
			resident = 0;
	}
	set_uncount(w, ws);
	ws->counted = (int64_t)resident * sysconf(_SC_PAGESIZE);
	if (ws->counted == 0)
		ws->counted = 1;      /* counted all the same */
	metrics_set_zygotes(w->srv->metrics, set_name(ws), 1, ws->counted);
}

/* Its zygote stopped and its lease let go; the set must earn a zygote
 * again. */
static void set_retire(struct warm *w, struct warm_set *ws)
{
	set_uncount(w, ws);
	zygote_stop(&ws->z);
	if (ws->lease >= 0)
		(void)close(ws->lease);
	ws->lease = -1;
	ws->asks = 0;
	ws->tries = 0;
}

/* The modules ws's zygote imports: the set's top-level ones (deps.h). */
static void set_modules(struct warm_set *ws)
{
	char site[PATH_MAX + 8];
	int fd;

	ws->preload[0] = '\0';
	snprintf(site, sizeof(site), "%s/site", ws->deps);
	fd = open(site, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		(void)deps_top_level(fd, ws->preload, sizeof(ws->preload));
		(void)close(fd);
	}
}

/* Takes name (the first word of a refusal's text) out of ws->preload.
 * 1 when it was there. */
static int set_drop_module(struct warm_set *ws, const char *why)
{
	const char *refused = strstr(why, ZYGOTE_PRELOAD_REFUSED);
	char name[ZYGOTE_PRELOAD_LEN], out[ZYGOTE_PRELOAD_LEN] = "";
	char *save = NULL, *tok;
	size_t n;
	int dropped = 0;

	if (refused == NULL)
		return 0;
	refused += strlen(ZYGOTE_PRELOAD_REFUSED);
	n = strcspn(refused, " ");
	if (n == 0 || n >= sizeof(name))
		return 0;
	memcpy(name, refused, n);
	name[n] = '\0';
	for (tok = strtok_r(ws->preload, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, name) == 0) {
			dropped = 1;
			continue;
		}
		if (out[0] != '\0')
			strcat(out, ",");
		strcat(out, tok);
	}
	memcpy(ws->preload, out, sizeof(out));
	return dropped;
}

/* Launches ws's zygote: its set's entry on PYTHONPATH, its top-level
 * modules preloaded (one more try). 0, or -1 with ws->z.why. */
static int set_launch(struct warm *w, struct warm_set *ws)
{
	ws->tries++;
	return launch(w, &ws->z, ws->deps, ws->preload);
}

/* The set of entry deps, found or made (the least recently asked one
 * without a zygote gives its slot), or NULL. */
static struct warm_set *set_find(struct warm *w, const char *deps)
{
	struct warm_set *free_one = NULL, *oldest = NULL;

	for (size_t i = 0; i < WARM_ASKED_MAX; i++) {
		struct warm_set *ws = &w->sets[i];

		if (ws->deps[0] != '\0' && strcmp(ws->deps, deps) == 0)
			return ws;
		if (ws->deps[0] == '\0' && free_one == NULL)
			free_one = ws;
		else if (ws->deps[0] != '\0' && !set_has_zygote(ws) &&
			 (oldest == NULL || ws->used_ns < oldest->used_ns))
			oldest = ws;
	}
	if (free_one == NULL)
		free_one = oldest;
	if (free_one != NULL) {
		set_retire(w, free_one);
		snprintf(free_one->deps, sizeof(free_one->deps), "%s", deps);
	}
	return free_one;
}

/* The worker's share of warm_zygotes_memory: its sets' ready zygotes
 * together hold no more than this (0: no bound). */
static uint64_t set_memory_share(const struct warm *w)
{
	unsigned workers = w->srv->workers > 0 ? w->srv->workers : 1;

	return w->srv->cfg->warm_zygotes_memory / workers;
}

/* While this worker's ready set zygotes hold more than its share, the
 * least recently used one (but keep, just made ready) is retired. */
static void set_memory_bound(struct warm *w, const struct warm_set *keep)
{
	uint64_t share = set_memory_share(w);

	for (;;) {
		struct warm_set *oldest = NULL;
		uint64_t total = 0;

		for (size_t i = 0; i < WARM_ASKED_MAX; i++) {
			struct warm_set *ws = &w->sets[i];

			if (ws->counted <= 0)
				continue;
			total += (uint64_t)ws->counted;
			if (ws != keep && (oldest == NULL || ws->used_ns < oldest->used_ns))
				oldest = ws;
		}
		if (share == 0 || total <= share || oldest == NULL)
			return;
		log_msg(LOG_LEVEL_INFO, "worker: the zygote of dependency set %.16s retired "
			"(warm_zygotes_memory: %llu bytes, this worker's share %llu)",
			set_name(oldest), (unsigned long long)total, (unsigned long long)share);
		metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_RETIRED);
		set_retire(w, oldest);
	}
}

/* Room for one more set zygote: the least recently used one retired when
 * warm_zygotes_max are there. 0, or -1 when there may be none. */
static int set_room(struct warm *w)
{
	struct warm_set *oldest = NULL;
	unsigned n = 0;

	for (size_t i = 0; i < WARM_ASKED_MAX; i++) {
		struct warm_set *ws = &w->sets[i];

		if (!set_has_zygote(ws))
			continue;
		n++;
		if (oldest == NULL || ws->used_ns < oldest->used_ns)
			oldest = ws;
	}
	if (w->srv->cfg->warm_zygotes_max == 0)
		return -1;
	if (n < w->srv->cfg->warm_zygotes_max)
		return 0;
	log_msg(LOG_LEVEL_INFO, "worker: the zygote of dependency set %.16s retired "
		"(warm_zygotes_max, least recently used)", set_name(oldest));
	metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_RETIRED);
	set_retire(w, oldest);
	return 0;
}

/* The set of the request in hand (deps, NULL: none) counted; the one that
 * earns it gets a zygote, which leases the entry (a dup of lock_fd). */
static void set_note(struct warm *w, const char *deps, int lock_fd, int64_t now)
{
	struct warm_set *ws;
	int lease;

	w->last = NULL;
	if (deps == NULL)
		return;
	ws = set_find(w, deps);
	w->last = ws;
	if (ws == NULL)
		return;
	ws->used_ns = now;
	if (set_has_zygote(ws) || ++ws->asks < w->srv->cfg->warm_deps_after ||
	    set_room(w) < 0)
		return;
	lease = fcntl(lock_fd, F_DUPFD_CLOEXEC, 3);
	if (lease < 0) {
		log_msg(LOG_LEVEL_WARN, "worker: no zygote for dependency set %.16s: cannot "
			"lease its entry: %s", set_name(ws), strerror(errno));
		return;
	}
	ws->lease = lease;
	ws->tries = 0;
	ws->earned_now = 1;
	set_modules(ws);
	if (set_launch(w, ws) < 0) {
		log_msg(LOG_LEVEL_WARN, "worker: no zygote for dependency set %.16s: %s",
			set_name(ws), ws->z.why);
		metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_LOST);
		set_retire(w, ws);
	}
}

/* Each set's zygote looked at: one that says it is ready is used; one
 * whose preload broke a rule is launched again without that module; one
 * that died, or is due for replacement (warm_runs, warm_seconds), is
 * launched again (runs of its set are cold meanwhile). */
static void set_tend(struct warm *w, struct warm_set *ws, int64_t now, int64_t deadline)
{
	const struct config *cfg = w->srv->cfg;
	struct zygote *z = &ws->z;
	int r;

	if (!set_has_zygote(ws))
		return;
	if (z->ready) {
		if (zygote_alive(z) && z->forks < cfg->warm_runs &&
		    now - z->ready_ns < (int64_t)cfg->warm_ms * 1000000)
			return;
		if (!zygote_alive(z)) {
			log_msg(LOG_LEVEL_WARN, "worker: the zygote of dependency set %.16s is "
				"gone; its runs start cold until it is replaced", set_name(ws));
			metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_LOST);
		} else {
			metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_REFRESHED);
		}
		ws->tries = 0;
		set_uncount(w, ws);
		if (set_launch(w, ws) < 0)
			goto give_up;
		return;
	}
	r = zygote_await(z, deadline);
	if (r == 0)
		return;
	if (r == 1 && same_python(w->srv, z) == 0) {
		set_count(w, ws);
		set_memory_bound(w, ws);
		log_msg(LOG_LEVEL_INFO, "worker: zygote %ld for dependency set %.16s ready "
			"(preloaded: %s)", (long)z->sp.pid, set_name(ws),
			ws->preload[0] != '\0' ? ws->preload : "none");
		metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_STARTED);
		return;
	}
	/* A module of the set that broke a rule is simply not preloaded. */
	if (ws->tries < 8 && set_drop_module(ws, z->why)) {
		log_msg(LOG_LEVEL_INFO, "worker: dependency set %.16s: not preloaded: %s",
			set_name(ws), strstr(z->why, ZYGOTE_PRELOAD_REFUSED) +
			strlen(ZYGOTE_PRELOAD_REFUSED));
		if (set_launch(w, ws) == 0)
			return;
	}
give_up:
	log_msg(LOG_LEVEL_WARN, "worker: no zygote for dependency set %.16s: %s", set_name(ws),
		z->why);
	metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_LOST);
	set_retire(w, ws);
}

/* zygote_note_hook: the set the request in hand uses is counted now, and
 * a zygote it earns starts while the request runs. */
static void set_noted(const char *deps, int lock_fd, void *arg)
{
	struct warm *w = arg;

	set_note(w, deps, lock_fd, util_now_ns());
	keep(w);
}

/* The sets' ready zygotes, for runs (zygote_use_sets). */
static void sets_publish(struct warm *w)
{
	size_t n = 0;

	for (size_t i = 0; i < WARM_ASKED_MAX && n < CONFIG_SET_ZYGOTES_MAX; i++)
		if (w->sets[i].z.ready)
			w->ready[n++] = &w->sets[i].z;
	zygote_use_sets(w->ready, n);
}

/* zygote_set_finder: the ready zygote of the set whose entry is deps. One
 * that is starting (since the request that earned it, or replacing one)
 * is waited for, at most WARM_SET_WAIT_NS: it has had a head start over a
 * cold run of its set, which would start python and import the set. */
#define WARM_SET_WAIT_NS (3 * WARM_RETRY_NS)
static struct zygote *set_found(const char *deps, void *arg)
{
	struct warm *w = arg;
	int64_t deadline = util_now_ns() + WARM_SET_WAIT_NS;

	for (size_t i = 0; i < WARM_ASKED_MAX; i++) {
		struct warm_set *ws = &w->sets[i];

		if (ws->deps[0] == '\0' || strcmp(ws->deps, deps) != 0 || ws->earned_now)
			continue;
		/* a preload refused is launched again without it: waited for too */
		while (set_has_zygote(ws) && !ws->z.ready && util_now_ns() < deadline)
			set_tend(w, ws, util_now_ns(), deadline);
		sets_publish(w);
		keep(w);
		return ws->z.ready && zygote_alive(&ws->z) ? &ws->z : NULL;
	}
	return NULL;
}

/* A set whose cache entry eviction wanted (its least recently used) has
 * its zygote retired, and the entry then goes if the cache is still over
 * deps_cache_max. */
static void set_wanted(struct warm *w, struct warm_set *ws)
{
	struct cache *c = w->srv->caches; /* the default interpreter's */

	if (!set_has_zygote(ws) || c == NULL || !cache_wanted(c->cfg, set_name(ws)))
		return;
	log_msg(LOG_LEVEL_INFO, "worker: the zygote of dependency set %.16s retired: the cache "
		"wants its entry", set_name(ws));
	metrics_count_set_zygote(w->srv->metrics, METRICS_SET_ZYGOTE_RETIRED);
	set_retire(w, ws);
	(void)cache_evict(c);
}

/* Once, at the worker's start: the sets --prefetch put in the cache get
 * their zygotes at once (as many as warm_zygotes_max). */
static void sets_prefetched(struct warm *w, int64_t now)
{
	const struct config *cfg = w->srv->cfg;
	static char keys[CONFIG_SET_ZYGOTES_MAX][DEPS_KEY_HEX + 1];
	size_t n;

	if (w->prefetched_done || w->srv->caches == NULL || cfg->warm_deps_after == 0)
		return;
	w->prefetched_done = 1;
	n = cache_prefetched(cfg, keys, cfg->warm_zygotes_max);
	for (size_t i = 0; i < n; i++) {
		char deps[PATH_MAX];
		struct warm_set *ws;
		int lease;

		if (cache_entry_path(cfg, keys[i], deps, sizeof(deps)) < 0 ||
		    (lease = cache_lease(cfg, keys[i])) < 0)
			continue;
		ws = set_find(w, deps);
		if (ws == NULL || set_has_zygote(ws)) {
			(void)close(lease);
			continue;
		}
		ws->lease = lease;
		ws->asks = cfg->warm_deps_after;
		ws->used_ns = now;
		set_modules(ws);
		if (set_launch(w, ws) < 0) {
			log_msg(LOG_LEVEL_WARN, "worker: no zygote for prefetched dependency set "
				"%.16s: %s", set_name(ws), ws->z.why);
			set_retire(w, ws);
		}
	}
}

static void sets_tend(struct warm *w, int64_t now)
{
	sets_prefetched(w, now);
	for (size_t i = 0; i < WARM_ASKED_MAX; i++) {
		w->sets[i].earned_now = 0;
		set_wanted(w, &w->sets[i]);
		set_tend(w, &w->sets[i], now, now);
	}
	sets_publish(w);
	/* What is made ahead is for a run of the set the last request used. */
	zygote_use_for_spares(w->last != NULL && w->last->z.ready ? &w->last->z : NULL);
	keep(w);
}

struct zygote *warm_spare_zygote(struct warm *w)
{
	struct zygote *z = zygote_for_spares();

	return z != NULL ? z : warm_current(w);
}

int warm_pending_fd(const struct warm *w)
{
	for (size_t i = 0; i < WARM_ASKED_MAX; i++)
		if (w->sets[i].z.launched_ns != 0 && !w->sets[i].z.ready && w->sets[i].z.sp.sock >= 0)
			return w->sets[i].z.sp.sock;
	return -1;
}

int warm_sets_held(const struct warm *w)
{
	for (size_t i = 0; i < WARM_ASKED_MAX; i++)
		if (set_has_zygote(&w->sets[i]))
			return 1;
	return 0;
}

unsigned warm_sets_ready(const struct warm *w)
{
	unsigned n = 0;

	for (size_t i = 0; i < WARM_ASKED_MAX; i++)
		n += w->sets[i].z.ready;
	return n;
}

int warm_tend(struct warm *w)
{
	int64_t now = util_now_ns();
	struct zygote *z = &w->z[w->cur];
	int was_ready = z->ready;

	sets_tend(w, now);
	if (zygote_alive(z)) {
		refresh(w, now);
		return 1;
	}
	if (was_ready)
		metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_LOST);
	/* A replacement under way starts over with the one in use. */
	zygote_stop(&w->z[!w->cur]);
	keep(w);
	return start(w, now);
}

void warm_stop(struct warm *w)
{
	zygote_note_hook(NULL, NULL);
	zygote_set_finder(NULL, NULL);
	zygote_use_sets(NULL, 0);
	zygote_use_for_spares(NULL);
	zygote_spare_discard();
	zygote_stop(&w->z[0]);
	zygote_stop(&w->z[1]);
	for (size_t i = 0; i < WARM_ASKED_MAX; i++)
		set_retire(w, &w->sets[i]);
	run_keep_helpers(NULL, 0);
}
