#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "metrics.h"

static const char *const routes[] = { "execute", "healthz", "metrics", "other" };
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
static const int codes[] = { 200, 400, 401, 404, 405, 413, 415, 424, 499, 500, 501, 503, 507 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))
static const char *const statuses[] = { "ok", "error", "timeout", "memory", "killed" };
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]))
/* From a millisecond upload to a first install of a large set. */
static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
				  2.5, 5, 10, 30, 60, 300 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))
static const char *const phases[METRICS_PHASE_N] = { "upload", "dependencies", "run", "reply" };

struct metrics {
	uint64_t requests[NROUTES][NCODES + 1];   /* last column: other codes */
	uint64_t runs[NSTATUSES];
	uint64_t bucket[METRICS_PHASE_N][NBUCKETS + 1]; /* last: +Inf */
	uint64_t micros[METRICS_PHASE_N];               /* sums, µs */
	uint64_t deps[METRICS_DEPS_N];
	uint64_t setups[METRICS_SETUP_N];
	uint64_t starts[2];             /* cold, warm */
	uint64_t zygotes[METRICS_ZYGOTE_N];
	uint64_t set_starts[2];         /* cold, warm */
	uint64_t set_zygotes[METRICS_SET_ZYGOTE_N];
	int sets_lock;                  /* held while rows are claimed or freed */
	struct {
		char set[17];           /* "" : a free row */
		int64_t count, bytes;
	} sets[METRICS_SETS + 1];       /* the last: "other" */
	int64_t busy;
};

static void add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

struct metrics *metrics_create(void)
{
	void *p = mmap(NULL, sizeof(struct metrics), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, sizeof(struct metrics));
	return p;
}

void metrics_destroy(struct metrics *m)
{
	if (m != NULL)
		munmap(m, sizeof(*m));
}

void metrics_count_request(struct metrics *m, const char *route, int status)
{
	size_t r = NROUTES - 1, c = NCODES;

	if (m == NULL)
		return;
	for (size_t i = 0; i + 1 < NROUTES; i++)
		if (route != NULL && strcmp(route, routes[i]) == 0)
			r = i;
	for (size_t i = 0; i < NCODES; i++)
		if (codes[i] == status)
			c = i;
	add(&m->requests[r][c], 1);
}

void metrics_count_run(struct metrics *m, const char *exec_status)
{
	if (m == NULL || exec_status == NULL)
		return;
	for (size_t i = 0; i < NSTATUSES; i++)
		if (strcmp(exec_status, statuses[i]) == 0)
			add(&m->runs[i], 1);
}

void metrics_observe(struct metrics *m, enum metrics_phase phase, double seconds)
{
	size_t b = 0;

	if (m == NULL || phase >= METRICS_PHASE_N || seconds < 0)
		return;
	while (b < NBUCKETS && seconds > buckets[b])
		b++;
	add(&m->bucket[phase][b], 1);
	add(&m->micros[phase], (uint64_t)(seconds * 1e6));
}

void metrics_count_deps(struct metrics *m, enum metrics_deps what, unsigned n)
{
	if (m != NULL && what < METRICS_DEPS_N)
		add(&m->deps[what], n);
}

void metrics_count_start(struct metrics *m, int warm)
{
	if (m != NULL)
		add(&m->starts[warm != 0], 1);
}

void metrics_count_zygote(struct metrics *m, enum metrics_zygote what)
{
	if (m != NULL && what < METRICS_ZYGOTE_N)
		add(&m->zygotes[what], 1);
}

void metrics_count_set_start(struct metrics *m, int warm)
{
	if (m != NULL)
		add(&m->set_starts[warm != 0], 1);
}

void metrics_count_set_zygote(struct metrics *m, enum metrics_set_zygote what)
{
	if (m != NULL && what < METRICS_SET_ZYGOTE_N)
		add(&m->set_zygotes[what], 1);
}

/* The rows' lock: the pid of its holder (0: free). A holder that died
 * holding it (a worker killed) is taken over; one that holds it too long
 * makes the caller give up (-1), the counts then left as they are. */
static int sets_lock(struct metrics *m)
{
	int self = (int)getpid();

	for (long spins = 0; spins < 10000000L; spins++) {
		int holder = 0;

		if (__atomic_compare_exchange_n(&m->sets_lock, &holder, self, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 0;
		if (spins % 4096 == 4095 && kill(holder, 0) < 0 && errno == ESRCH &&
		    __atomic_compare_exchange_n(&m->sets_lock, &holder, self, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 0;
	}
	return -1;
}

static void sets_unlock(struct metrics *m)
{
	__atomic_store_n(&m->sets_lock, 0, __ATOMIC_RELEASE);
}

void metrics_set_zygotes(struct metrics *m, const char *set, int count, int64_t bytes)
{
	size_t i, free_row = METRICS_SETS;

	if (m == NULL || set == NULL || sets_lock(m) < 0)
		return;
	for (i = 0; i < METRICS_SETS; i++) {
		if (strncmp(m->sets[i].set, set, 16) == 0 && m->sets[i].set[0] != '\0')
			break;
		if (m->sets[i].set[0] == '\0' && free_row == METRICS_SETS)
			free_row = i;
	}
	if (i == METRICS_SETS) {
		i = free_row;
		if (i < METRICS_SETS)
			snprintf(m->sets[i].set, sizeof(m->sets[i].set), "%.16s", set);
	}
	m->sets[i].count += count;
	m->sets[i].bytes += bytes;
	if (i < METRICS_SETS && m->sets[i].count <= 0) {
		m->sets[i].set[0] = '\0';
		m->sets[i].count = m->sets[i].bytes = 0;
	}
	sets_unlock(m);
}

void metrics_count_setup(struct metrics *m, enum metrics_setup when)
{
	if (m != NULL && when < METRICS_SETUP_N)
		add(&m->setups[when], 1);
}

void metrics_busy(struct metrics *m, int delta)
{
	if (m != NULL)
		__atomic_fetch_add(&m->busy, delta, __ATOMIC_RELAXED);
}

struct out {
	char *buf;
	size_t len, used;
	int full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used)
		o->full = 1;
	else
		o->used += (size_t)n;
}

static void render_requests(struct out *o, const struct metrics *m)
{
	put(o, "# HELP pyexec_requests_total Requests answered, by route and HTTP status.\n"
	       "# TYPE pyexec_requests_total counter\n");
	for (size_t r = 0; r < NROUTES; r++)
		for (size_t c = 0; c <= NCODES; c++) {
			uint64_t v = get(&m->requests[r][c]);

			if (v == 0)
				continue;
			if (c < NCODES)
				put(o, "pyexec_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
				    routes[r], codes[c], (unsigned long long)v);
			else
				put(o, "pyexec_requests_total{route=\"%s\",code=\"other\"} %llu\n",
				    routes[r], (unsigned long long)v);
		}
	put(o, "# HELP pyexec_executions_total Programs run, by X-Execution-Status.\n"
	       "# TYPE pyexec_executions_total counter\n");
	for (size_t i = 0; i < NSTATUSES; i++)
		put(o, "pyexec_executions_total{status=\"%s\"} %llu\n", statuses[i],
		    (unsigned long long)get(&m->runs[i]));
}

static void render_phases(struct out *o, const struct metrics *m)
{
	put(o, "# HELP pyexec_phase_seconds Time of each phase of a request: reading the "
	       "upload, getting the dependencies, the run, writing the reply.\n"
	       "# TYPE pyexec_phase_seconds histogram\n");
	for (size_t p = 0; p < METRICS_PHASE_N; p++) {
		uint64_t cum = 0;

		for (size_t b = 0; b <= NBUCKETS; b++) {
			cum += get(&m->bucket[p][b]);
			if (b < NBUCKETS)
				put(o, "pyexec_phase_seconds_bucket{phase=\"%s\",le=\"%g\"} %llu\n",
				    phases[p], buckets[b], (unsigned long long)cum);
			else
				put(o, "pyexec_phase_seconds_bucket{phase=\"%s\",le=\"+Inf\"} %llu\n",
				    phases[p], (unsigned long long)cum);
		}
		put(o, "pyexec_phase_seconds_sum{phase=\"%s\"} %.6f\n"
		       "pyexec_phase_seconds_count{phase=\"%s\"} %llu\n", phases[p],
		    (double)get(&m->micros[p]) / 1e6, phases[p], (unsigned long long)cum);
	}
}

static void render_cache(struct out *o, const struct metrics *m, const struct metrics_state *st)
{
	static const char *const names[METRICS_DEPS_N] = { "hit", "miss", "install", "failure",
							   "eviction" };

	put(o, "# HELP pyexec_dependency_cache_total Dependency cache events: hits, misses, "
	       "installs, failed installs, evictions.\n"
	       "# TYPE pyexec_dependency_cache_total counter\n");
	for (int i = 0; i < METRICS_DEPS_N; i++)
		put(o, "pyexec_dependency_cache_total{event=\"%s\"} %llu\n", names[i],
		    (unsigned long long)get(&m->deps[i]));
	if (st->cache_known)
		put(o, "# HELP pyexec_dependency_cache_bytes Size of the cached dependency sets.\n"
		       "# TYPE pyexec_dependency_cache_bytes gauge\n"
		       "pyexec_dependency_cache_bytes %llu\n"
		       "# HELP pyexec_dependency_cache_entries Cached dependency sets.\n"
		       "# TYPE pyexec_dependency_cache_entries gauge\n"
		       "pyexec_dependency_cache_entries %u\n",
		    (unsigned long long)st->cache_bytes, st->cache_entries);
}

/* Zygotes of dependency sets by set: how many, their resident memory. */
static void render_sets(struct out *o, struct metrics *m)
{
	put(o, "# HELP pyexec_set_zygotes Zygotes of dependency sets the workers have now, by "
	       "set (its key's first 16 hex digits).\n"
	       "# TYPE pyexec_set_zygotes gauge\n");
	if (sets_lock(m) < 0)
		return;
	for (size_t i = 0; i <= METRICS_SETS; i++)
		if (m->sets[i].count > 0)
			put(o, "pyexec_set_zygotes{set=\"%s\"} %lld\n",
			    i < METRICS_SETS ? m->sets[i].set : "other", (long long)m->sets[i].count);
	put(o, "# HELP pyexec_set_zygotes_resident_bytes Their resident memory, by set, each "
	       "zygote counted whole (pages they share are counted in each).\n"
	       "# TYPE pyexec_set_zygotes_resident_bytes gauge\n");
	for (size_t i = 0; i <= METRICS_SETS; i++)
		if (m->sets[i].count > 0)
			put(o, "pyexec_set_zygotes_resident_bytes{set=\"%s\"} %lld\n",
			    i < METRICS_SETS ? m->sets[i].set : "other", (long long)m->sets[i].bytes);
	sets_unlock(m);
}

static void render_workers(struct out *o, const struct metrics *m, const struct metrics_state *st)
{
	int64_t busy = __atomic_load_n(&m->busy, __ATOMIC_RELAXED);

	if (busy < 0)
		busy = 0;
	if (busy > (int64_t)st->workers)
		busy = st->workers;
	put(o, "# HELP pyexec_workers Workers running (each handles one request at a time).\n"
	       "# TYPE pyexec_workers gauge\n"
	       "pyexec_workers %u\n"
	       "# HELP pyexec_workers_busy Workers handling a request now.\n"
	       "# TYPE pyexec_workers_busy gauge\n"
	       "pyexec_workers_busy %lld\n"
	       "# HELP pyexec_workers_idle Workers waiting for a request.\n"
	       "# TYPE pyexec_workers_idle gauge\n"
	       "pyexec_workers_idle %lld\n", st->workers, (long long)busy,
	    (long long)st->workers - (long long)busy);
	put(o, "# HELP pyexec_sandbox_info The isolation layer in force.\n"
	       "# TYPE pyexec_sandbox_info gauge\n"
	       "pyexec_sandbox_info{layer=\"%s\"} 1\n", st->sandbox);
	put(o, "# HELP pyexec_sandbox_setups_total Namespace sandboxes runs entered, by where "
	       "they were set up: ahead of the request, or on its path.\n"
	       "# TYPE pyexec_sandbox_setups_total counter\n"
	       "pyexec_sandbox_setups_total{when=\"ahead\"} %llu\n"
	       "pyexec_sandbox_setups_total{when=\"request\"} %llu\n",
	    (unsigned long long)get(&m->setups[METRICS_SETUP_AHEAD]),
	    (unsigned long long)get(&m->setups[METRICS_SETUP_REQUEST]));
	put(o, "# HELP pyexec_runs_started_total Programs run, by how they started: in a copy "
	       "of a worker's zygote (warm) or by starting python (cold).\n"
	       "# TYPE pyexec_runs_started_total counter\n"
	       "pyexec_runs_started_total{start=\"warm\"} %llu\n"
	       "pyexec_runs_started_total{start=\"cold\"} %llu\n",
	    (unsigned long long)get(&m->starts[1]), (unsigned long long)get(&m->starts[0]));
	put(o, "# HELP pyexec_zygotes_total Workers' zygotes: ready (each generation), "
	       "replaced after warm_runs or warm_seconds, lost (failed to start, or died).\n"
	       "# TYPE pyexec_zygotes_total counter\n"
	       "pyexec_zygotes_total{event=\"started\"} %llu\n"
	       "pyexec_zygotes_total{event=\"refreshed\"} %llu\n"
	       "pyexec_zygotes_total{event=\"lost\"} %llu\n",
	    (unsigned long long)get(&m->zygotes[METRICS_ZYGOTE_STARTED]),
	    (unsigned long long)get(&m->zygotes[METRICS_ZYGOTE_REFRESHED]),
	    (unsigned long long)get(&m->zygotes[METRICS_ZYGOTE_LOST]));
	put(o, "# HELP pyexec_set_runs_started_total Programs run with a dependency set, by "
	       "how they started: forked by the set's zygote (warm) or not (cold).\n"
	       "# TYPE pyexec_set_runs_started_total counter\n"
	       "pyexec_set_runs_started_total{start=\"warm\"} %llu\n"
	       "pyexec_set_runs_started_total{start=\"cold\"} %llu\n",
	    (unsigned long long)get(&m->set_starts[1]), (unsigned long long)get(&m->set_starts[0]));
	put(o, "# HELP pyexec_set_zygotes_total Zygotes of dependency sets: ready (each "
	       "generation), replaced after warm_runs or warm_seconds, retired for another "
	       "(warm_zygotes_max), lost (failed to start, or died).\n"
	       "# TYPE pyexec_set_zygotes_total counter\n"
	       "pyexec_set_zygotes_total{event=\"started\"} %llu\n"
	       "pyexec_set_zygotes_total{event=\"refreshed\"} %llu\n"
	       "pyexec_set_zygotes_total{event=\"retired\"} %llu\n"
	       "pyexec_set_zygotes_total{event=\"lost\"} %llu\n",
	    (unsigned long long)get(&m->set_zygotes[METRICS_SET_ZYGOTE_STARTED]),
	    (unsigned long long)get(&m->set_zygotes[METRICS_SET_ZYGOTE_REFRESHED]),
	    (unsigned long long)get(&m->set_zygotes[METRICS_SET_ZYGOTE_RETIRED]),
	    (unsigned long long)get(&m->set_zygotes[METRICS_SET_ZYGOTE_LOST]));
	render_sets(o, (struct metrics *)m);
}

int metrics_render(const struct metrics *m, const struct metrics_state *st, char *buf,
		   size_t len)
{
	struct out o = { buf, len, 0, 0 };

	if (len == 0)
		return -1;
	buf[0] = '\0';
	render_requests(&o, m);
	render_phases(&o, m);
	render_cache(&o, m, st);
	render_workers(&o, m, st);
	return o.full ? -1 : (int)o.used;
}
