#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "metrics.h"

static const char *const routes[] = { "execute", "healthz", "metrics", "other" };
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
static const int codes[] = { 200, 400, 401, 404, 405, 413, 415, 424, 499, 500, 501, 503, 507 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))
static const char *const statuses[] = { "ok", "error", "timeout", "memory", "killed" };
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]))
static const double buckets[] = { 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct metrics {
	uint64_t requests[NROUTES][NCODES + 1];   /* last column: other codes */
	uint64_t runs[NSTATUSES];
	uint64_t run_bucket[NBUCKETS + 1];        /* last: +Inf */
	uint64_t run_micros;                      /* sum of wall time, µs */
	uint64_t deps[METRICS_DEPS_N];
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

void metrics_count_run(struct metrics *m, const char *exec_status, double wall_seconds)
{
	size_t b = 0;

	if (m == NULL || exec_status == NULL)
		return;
	for (size_t i = 0; i < NSTATUSES; i++)
		if (strcmp(exec_status, statuses[i]) == 0)
			add(&m->runs[i], 1);
	while (b < NBUCKETS && wall_seconds > buckets[b])
		b++;
	add(&m->run_bucket[b], 1);
	add(&m->run_micros, wall_seconds > 0 ? (uint64_t)(wall_seconds * 1e6) : 0);
}

void metrics_count_deps(struct metrics *m, enum metrics_deps what, unsigned n)
{
	if (m != NULL && what < METRICS_DEPS_N)
		add(&m->deps[what], n);
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

int metrics_render(const struct metrics *m, unsigned workers, const char *sandbox,
		   char *buf, size_t len)
{
	struct out o = { buf, len, 0, 0 };
	uint64_t cum = 0;
	int64_t busy;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	put(&o, "# HELP pyexec_requests_total Requests answered, by route and HTTP status.\n"
		"# TYPE pyexec_requests_total counter\n");
	for (size_t r = 0; r < NROUTES; r++)
		for (size_t c = 0; c <= NCODES; c++) {
			uint64_t v = get(&m->requests[r][c]);

			if (v == 0)
				continue;
			if (c < NCODES)
				put(&o, "pyexec_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
				    routes[r], codes[c], (unsigned long long)v);
			else
				put(&o, "pyexec_requests_total{route=\"%s\",code=\"other\"} %llu\n",
				    routes[r], (unsigned long long)v);
		}
	put(&o, "# HELP pyexec_executions_total Programs run, by X-Execution-Status.\n"
		"# TYPE pyexec_executions_total counter\n");
	for (size_t i = 0; i < NSTATUSES; i++)
		put(&o, "pyexec_executions_total{status=\"%s\"} %llu\n", statuses[i],
		    (unsigned long long)get(&m->runs[i]));
	put(&o, "# HELP pyexec_run_seconds Wall time of runs.\n"
		"# TYPE pyexec_run_seconds histogram\n");
	for (size_t b = 0; b <= NBUCKETS; b++) {
		cum += get(&m->run_bucket[b]);
		if (b < NBUCKETS)
			put(&o, "pyexec_run_seconds_bucket{le=\"%g\"} %llu\n", buckets[b],
			    (unsigned long long)cum);
		else
			put(&o, "pyexec_run_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	put(&o, "pyexec_run_seconds_sum %.6f\npyexec_run_seconds_count %llu\n",
	    (double)get(&m->run_micros) / 1e6, (unsigned long long)cum);
	put(&o, "# HELP pyexec_dependency_cache_total Dependency cache events: hits, installs, "
		"failed installs, evictions.\n"
		"# TYPE pyexec_dependency_cache_total counter\n");
	for (int i = 0; i < METRICS_DEPS_N; i++) {
		static const char *const names[METRICS_DEPS_N] = { "hit", "install", "failure",
								   "eviction" };
		put(&o, "pyexec_dependency_cache_total{event=\"%s\"} %llu\n", names[i],
		    (unsigned long long)get(&m->deps[i]));
	}
	busy = __atomic_load_n(&m->busy, __ATOMIC_RELAXED);
	put(&o, "# HELP pyexec_workers Workers running (each handles one request at a time).\n"
		"# TYPE pyexec_workers gauge\n"
		"pyexec_workers %u\n"
		"# HELP pyexec_workers_busy Workers handling a request now.\n"
		"# TYPE pyexec_workers_busy gauge\n"
		"pyexec_workers_busy %lld\n", workers, (long long)(busy > 0 ? busy : 0));
	put(&o, "# HELP pyexec_sandbox_info The isolation layer in force.\n"
		"# TYPE pyexec_sandbox_info gauge\n"
		"pyexec_sandbox_info{layer=\"%s\"} 1\n", sandbox);
	return o.full ? -1 : (int)o.used;
}
