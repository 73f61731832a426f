/* warm: a worker's zygotes (README "Warm start"): the first started when
 * the worker starts, one that died or failed replaced (at most once a
 * second, backing off to a minute while it fails), one that has forked
 * warm_runs sandboxes or lived warm_seconds replaced by a new one made
 * while it still forks, so that no request waits. */
#ifndef PYEXEC_WARM_H
#define PYEXEC_WARM_H

#include "server.h"
#include "zygote.h"

/* A dependency set that has been asked for: how often, and its zygote once
 * it has one (README "Warm start", "Dependency sets"). */
struct warm_set {
	char deps[PATH_MAX];      /* its entry in the cache ("": a free slot) */
	unsigned asks;            /* requests that used it */
	int64_t used_ns;          /* util_now_ns() of the last one */
	int lease;                /* a shared lock on the entry while it has a
	                           * zygote (the cache does not evict it); -1 */
	int tries;                /* launches of its zygote so far */
	int earned_now;           /* 1: the request in hand earned its zygote
	                           * (which that request does not wait for) */
	char preload[ZYGOTE_PRELOAD_LEN]; /* its top-level modules that passed */
	int64_t counted;          /* resident bytes of its zygote counted in the
	                           * metrics while it is ready; 0: not counted */
	struct zygote z;
};

#define WARM_ASKED_MAX 64         /* sets counted per worker */

struct warm {
	const struct server *srv;
	struct zygote z[2];       /* the one in use, and the one replacing it */
	int cur;                  /* index of the one in use */
	int64_t next_start;       /* util_now_ns() before which none is started */
	int64_t next_refresh;     /* ... nor a replacement, after one failed */
	int64_t retry_ns;
	char logged[sizeof(((struct zygote *)0)->why)]; /* the last failure logged */
	struct warm_set sets[WARM_ASKED_MAX];
	struct zygote *ready[CONFIG_SET_ZYGOTES_MAX]; /* the sets' zygotes in use */
	struct warm_set *last;    /* the set of the last request (NULL: none) */
	int prefetched_done;      /* 1: the prefetched sets were given zygotes */
};

/* Opens pyexec-zygote (O_RDONLY, O_CLOEXEC: workers exec it by fd, so a
 * path only root may reach still works after privileges are dropped): the
 * one next to this program (a build tree), else the installed one. The fd,
 * or -1 with a sentence in why. */
int warm_open_binary(char *why, size_t len);

/* At start, when srv has warm_preload: a zygote
 * imports and vets the modules, then goes. -1 with err when one broke a
 * rule (pyexec does not start then); 0 otherwise (a zygote that cannot
 * start for another reason is the workers' to report). */
int warm_vet(const struct server *srv, char *err, size_t errlen);

/* Sets w up for srv's worker (nothing started yet) and makes the worker's
 * sandboxes come from its zygote (zygote_use). */
void warm_init(struct warm *w, const struct server *srv);

/* Between requests: starts, replaces or finishes replacing the zygote as
 * due. 1 when the worker has a zygote in use, 0 when not (yet). */
int warm_tend(struct warm *w);

/* The zygote a run made ahead is forked by: the one of the last request's
 * set while it has one, else the one in use. */
struct zygote *warm_spare_zygote(struct warm *w);

/* The zygote in use, ready or not (for /healthz). */
struct zygote *warm_current(struct warm *w);

/* The socket of a dependency set's zygote that is starting (it says on it
 * when it is ready), or -1: the worker waits for it or a request. */
int warm_pending_fd(const struct warm *w);

/* Whether the worker has a zygote of a dependency set (ready or not): it
 * then looks at them at least once a second while no request comes. */
int warm_sets_held(const struct warm *w);

/* How many zygotes of dependency sets the worker has (ready ones). */
unsigned warm_sets_ready(const struct warm *w);

/* Stops every zygote. */
void warm_stop(struct warm *w);

#endif
