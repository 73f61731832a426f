/* server: a worker's FastCGI loop: accept a request, route it by the last
 * segment of its path, answer it, log it, clean up, repeat. */
#ifndef PYEXEC_SERVER_H
#define PYEXEC_SERVER_H

#include <signal.h>

#include "cache.h"
#include "conf.h"
#include "metrics.h"
#include "sandbox.h"

struct server {
	const struct config *cfg;
	int listen_fd;
	const char *sandbox;               /* layer in force, for /healthz */
	unsigned workers;
	struct metrics *metrics;           /* shared by all workers */
	struct cache *caches;              /* per interpreter (pythons), the
	                                    * default first; with the dependency
	                                    * cache */
	unsigned npythons;
	const struct sandbox_config *sandbox_cfg; /* NULL: the rlimits layer */
	const struct cgroup_config *cgroup; /* NULL: runs are not in a cgroup */
	const struct auth *auth;           /* NULL: no tokens_file, no token needed */
	struct mime *mime;                 /* libmagic, loaded once by the master */
	int spares;                        /* 1: a worker sets up its next run's
	                                    * sandbox while it waits for it */
	int zygote_fd;                     /* pyexec-zygote (warm.h); -1: none, */
	const char *zygote_why;            /* for this reason */
};

/* A worker's parent-death signal: the master is gone, stop at once. */
#define SERVER_ORPHAN_SIGNAL SIGUSR1

/* Set from the worker's SIGTERM handler: finish the request in hand, exit. */
extern volatile sig_atomic_t server_stopping;

/* Runs the worker loop until server_stopping; returns the exit status. */
int server_worker_main(const struct server *srv);

#endif
