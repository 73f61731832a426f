/* metrics: counters shared by the master and all its workers (one anonymous
 * shared mapping made before the workers are forked, updated with atomic
 * adds), rendered in the Prometheus text format for GET /metrics. */
#ifndef PYEXEC_METRICS_H
#define PYEXEC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_TEXT_MAX 32768  /* bytes of a rendered page, at most */

struct metrics;

/* Maps the shared counters; NULL with errno. Call before forking. */
struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* Counts a finished request by route ("execute", "healthz", "metrics", any
 * other is "other") and HTTP status (an unlisted one counts as "other"). */
void metrics_count_request(struct metrics *m, const char *route, int status);
/* Counts a run by X-Execution-Status. */
void metrics_count_run(struct metrics *m, const char *exec_status);
/* The phases of a request, each a histogram of seconds. */
enum metrics_phase { METRICS_PHASE_UPLOAD, METRICS_PHASE_DEPENDENCIES, METRICS_PHASE_RUN,
		     METRICS_PHASE_REPLY, METRICS_PHASE_N };
/* Observes one phase's duration (negative: the phase did not happen). */
void metrics_observe(struct metrics *m, enum metrics_phase phase, double seconds);
/* Dependency cache events: a miss is a set that was not cached (it is then
 * installed, fails, or the client leaves during the install). */
enum metrics_deps { METRICS_DEPS_HIT, METRICS_DEPS_MISS, METRICS_DEPS_INSTALL,
		    METRICS_DEPS_FAILURE, METRICS_DEPS_EVICTION, METRICS_DEPS_N };
void metrics_count_deps(struct metrics *m, enum metrics_deps what, unsigned n);
/* Where a run's namespace sandbox was set up: ahead of the request (a
 * worker's spare), or on its path. */
enum metrics_setup { METRICS_SETUP_AHEAD, METRICS_SETUP_REQUEST, METRICS_SETUP_N };
void metrics_count_setup(struct metrics *m, enum metrics_setup when);

/* How a run's program started (X-Execution-Start). */
void metrics_count_start(struct metrics *m, int warm);
/* A worker's zygotes: one ready (started, or replacing another), one that
 * replaced another after warm_runs or warm_seconds, one that failed to
 * start or died. */
enum metrics_zygote { METRICS_ZYGOTE_STARTED, METRICS_ZYGOTE_REFRESHED, METRICS_ZYGOTE_LOST,
		      METRICS_ZYGOTE_N };
void metrics_count_zygote(struct metrics *m, enum metrics_zygote what);

/* Runs with a dependency set, by how they started: warm (forked by the
 * set's zygote) or cold. */
void metrics_count_set_start(struct metrics *m, int warm);
/* Zygotes of dependency sets: ready (each generation), replaced after
 * warm_runs or warm_seconds, retired (warm_zygotes_max), lost (failed to
 * start, or died). */
enum metrics_set_zygote { METRICS_SET_ZYGOTE_STARTED, METRICS_SET_ZYGOTE_REFRESHED,
			  METRICS_SET_ZYGOTE_RETIRED, METRICS_SET_ZYGOTE_LOST,
			  METRICS_SET_ZYGOTE_N };
void metrics_count_set_zygote(struct metrics *m, enum metrics_set_zygote what);
/* Zygotes of dependency sets there are now, and their resident memory, by
 * set (the first 16 hex digits of its key): each worker adds its own as
 * they come (+) and go (-). A set beyond METRICS_SETS at once is counted
 * under "other". */
#define METRICS_SETS 64
void metrics_set_zygotes(struct metrics *m, const char *set, int count, int64_t bytes);

/* A worker starts (+1) or ends (-1) handling a request. */
void metrics_busy(struct metrics *m, int delta);

/* What the page shows besides the counters. */
struct metrics_state {
	unsigned workers;             /* configured */
	const char *sandbox;          /* layer in force */
	int cache_known;              /* the cache's size could be read */
	uint64_t cache_bytes;         /* entries' total size */
	unsigned cache_entries;
};

/* Renders the page into buf (len bytes); returns its length, or -1 when it
 * does not fit. */
int metrics_render(const struct metrics *m, const struct metrics_state *st, char *buf,
		   size_t len);

#endif
