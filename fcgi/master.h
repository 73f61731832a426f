/* master: the process that holds the listening socket and keeps the
 * workers (one struct master from start-up to the stop). Started as root, it
 * drops to pyexec's user in master_prepare. */
#ifndef PYEXEC_MASTER_H
#define PYEXEC_MASTER_H

#include <limits.h>
#include <sys/types.h>

#include "auth.h"
#include "cache.h"
#include "cgroup.h"
#include "conf.h"
#include "sandbox.h"
#include "server.h"

/* What the command line said, kept for a reload (argv is wiped). */
struct cmdline {
	char *config_path;      /* NULL = no file */
	char **sets;            /* -o KEY=VALUE, nsets of them */
	int nsets;
	char *listen_opt, *workers_opt;
};

/* Each worker's runs: ids of their own, or pyexec's (own = 0). */
struct run_ids {
	int own;
	unsigned long first_uid, first_gid;     /* worker slot i gets first + i */
};

struct worker;                  /* one per slot, master.c's */

/* What the master holds from start-up to its stop. */
struct master {
	struct config cfg;
	struct cmdline cl;
	char *prefetch;                 /* --prefetch's value; NULL when serving */
	char *prefetch_python;          /* --python's: the interpreter (NULL: default) */
	pid_t pid;
	int as_root;
	uid_t uid;                      /* pyexec's user and group, as root */
	gid_t gid;
	int listen_fd;
	char unix_path[PATH_MAX];       /* the socket pyexec made, unlinked at the stop */
	struct cache caches[CONFIG_PYTHONS_MAX]; /* per interpreter, the default first */
	unsigned npythons;
	struct sandbox_config sbcfg;
	struct cgroup_config cgcfg;
	struct auth auth;
	struct mime *mime;
	struct server srv;
	unsigned nworkers;
	int single;                     /* under mod_fcgid: this process serves */
	struct run_ids run_ids;
	struct worker *workers;         /* nworkers of them */
	int zygote_fd;                  /* pyexec-zygote, opened before privileges
	                                 * are dropped; -1 when it cannot be */
	char zygote_why[256];           /* why not, then */
};

/* Builds m->cfg from the defaults, m->cl's file, its -o options, then -l
 * and -w; 0, or -1 with err. A reload builds its candidate the same way. */
int master_configure(struct master *m, char *err, size_t errlen);

/* As root: pyexec's user, the socket (unless m->prefetch), the
 * directories and cgroup v1's, then privileges dropped; then tokens_file
 * and the dependency cache. 0, or -1 with err. */
int master_prepare(struct master *m, char *err, size_t errlen);

/* Unprivileged: sweeps work_root, loads libmagic, sets up the cgroup and
 * the sandbox, and logs what is in force. 0, or -1 with err. */
int master_start(struct master *m, char *err, size_t errlen);

/* Under mod_fcgid (m->single): serves in this process until SIGTERM;
 * returns the exit status. */
int master_serve_alone(struct master *m);

/* Pre-forks the workers and keeps them until SIGTERM or SIGINT (SIGHUP
 * reloads). 0 once they stopped, or -1 with err. */
int master_loop(struct master *m, char *err, size_t errlen);

/* After a stop: removes the cgroups, the socket and work_root's leftovers,
 * and logs "stopped". */
void master_stop(struct master *m);

/* Frees what m holds (m->cl, m->prefetch, tokens, libmagic, workers). */
void master_free(struct master *m);

#endif
