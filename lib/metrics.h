/* metrics: counters shared by the master and all its workers (one anonymous
 * shared mapping made before the workers are forked, updated with atomic
 * adds), rendered in the Prometheus text format for GET /metrics. */
#ifndef PYEXEC_METRICS_H
#define PYEXEC_METRICS_H

#include <stddef.h>

#define METRICS_TEXT_MAX 16384  /* bytes of a rendered page, at most */

struct metrics;

/* Maps the shared counters; NULL with errno. Call before forking. */
struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* Counts a finished request by route ("execute", "healthz", "metrics", any
 * other is "other") and HTTP status (an unlisted one counts as "other"). */
void metrics_count_request(struct metrics *m, const char *route, int status);
/* Counts a run by X-Execution-Status, with its wall seconds. */
void metrics_count_run(struct metrics *m, const char *exec_status, double wall_seconds);
/* Dependency cache events. */
enum metrics_deps { METRICS_DEPS_HIT, METRICS_DEPS_INSTALL, METRICS_DEPS_FAILURE,
		    METRICS_DEPS_EVICTION, METRICS_DEPS_N };
void metrics_count_deps(struct metrics *m, enum metrics_deps what, unsigned n);
/* A worker starts (+1) or ends (-1) handling a request. */
void metrics_busy(struct metrics *m, int delta);

/* Renders the page into buf (len bytes) with the configured worker count
 * and sandbox layer; returns its length, or -1 when it does not fit. */
int metrics_render(const struct metrics *m, unsigned workers, const char *sandbox,
		   char *buf, size_t len);

#endif
