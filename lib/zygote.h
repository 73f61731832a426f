/* zygote: the warm start. A worker keeps one zygote: an interpreter
 * initialised exactly as the run's `python -s -B main.py` would be (the
 * same binary's libpython, argv, environment, and the same sandbox view:
 * cwd /work, the same read-only system), which then only ever forks. Each
 * sandbox is then an init the zygote forks (sandbox_init_warm_main) rather
 * than one the worker clones: it sets up a fresh sandbox as every init
 * does, and its payload, instead of exec'ing python, calls Py_RunMain()
 * in the copy of the initialised interpreter it already is.
 *
 *   worker                                zygote (pyexec-zygote)
 *   ------------------------------        -------------------------------
 *   clones its init (sandbox.c: own       init: maps, the new root (no
 *   user, mount, net, ipc, uts ns)  ───▶  /proc), cwd /work, execs the
 *   MSG_ZCONFIG: the sandbox's            zygote with its capabilities
 *   configuration and filter        ───▶  Py_InitializeFromConfig(argv)
 *                                   ◀───  MSG_ZREADY: Py_GetVersion()
 *   per sandbox: MSG_ZFORK, the new       clone(CLONE_PARENT | CLONE_NEW*):
 *   root's mount point, fds: init's ───▶  the worker is the new init's
 *   socket and status pipe                parent, as for one it clones
 *                                   ◀───  MSG_ZFORKED: its pid
 *
 * Nothing of a request ever reaches the zygote: it gets the configuration
 * and fds, never an upload, argv, environment or byte from a client. A
 * run whose argv or environment differ from the zygote's (a dependency
 * entry on PYTHONPATH, say) still gets a sandbox from it, and its payload
 * execs python as a cold run does (zygote_matches says which).
 *
 * The rlimits layer has no namespaces to give either of them: its zygote
 * (a plain one) is forked and exec'd by the worker with the run's command
 * line and environment, cwd a directory of its own in work_root. Ahead of
 * each request (a spare) it forks a child with CLONE_PARENT, which the
 * worker puts in the run's cgroup, and which waits for MSG_ZRUN: the run's
 * fds, directory, limits, and the values of the variables that name them
 * (zygote_run). It then sets itself up as run_child_setup does for a cold
 * run, points the interpreter at its own main.py and environment, and
 * calls Py_RunMain(). */
#ifndef PYEXEC_ZYGOTE_H
#define PYEXEC_ZYGOTE_H

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "run.h"
#include "sandbox.h"
#include "sandbox_init.h"
#include "sandbox_proto.h"

/* The messages between a worker and its zygote (after the init messages
 * of sandbox_proto.h, on the same socket). */
enum { MSG_ZCONFIG = 32, MSG_ZREADY, MSG_ZFORK, MSG_ZFORKED, MSG_ZRUN };

#define ZYGOTE_FILTER_MAX 4096   /* instructions of the payload's filter */
#define ZYGOTE_VEC_MAX    64     /* argv + environment entries */
#define ZYGOTE_STRS_MAX   8192   /* bytes of their strings */
#define ZYGOTE_PRELOAD_LEN 1024  /* bytes of the list of modules to preload */
/* How MSG_ERROR's text starts when a module to preload broke a rule. */
#define ZYGOTE_PRELOAD_REFUSED "warm_preload: "

/* MSG_ZCONFIG, after the struct sandbox_msg: what init needs (the pointers
 * of args are meaningless here), then filter_len struct sock_filter. */
struct zygote_config {
	struct sandbox_config cfg;
	struct sandbox_init_args args;
	char preload[ZYGOTE_PRELOAD_LEN]; /* modules to preload, comma-separated */
	int32_t plain;            /* 1: the rlimits layer's (cfg, args, filter unused) */
	int32_t runs_import;      /* 1: its runs import the preloads (a dependency
	                           * set's zygote): it learns the pages their exit
	                           * writes with them imported */
	uint32_t filter_len;
};

/* MSG_ZFORK, after the struct sandbox_msg; carries init's socket and its
 * status pipe (SCM_RIGHTS). */
struct zygote_fork {
	char root[PATH_MAX];      /* the new root's mount point on the host */
	int32_t new_cgroup_ns;
};

/* The variables of a plain zygote's run whose values are the run's own
 * (its directories): python's start-up reads none of them. The zygote's
 * are stand-ins of the same lengths, which the run writes its own over,
 * in place, so that /proc/self/environ shows them as a cold run's does;
 * any other difference from the zygote's environment makes a run cold. */
#define ZYGOTE_RUN_VARS { "HOME", "TMPDIR", "OUTPUT_DIR" }
#define ZYGOTE_RUN_NVARS 3

/* The index in ZYGOTE_RUN_VARS of the variable an environment entry
 * ("NAME=value") sets, or -1. */
static inline int zygote_run_var(const char *entry)
{
	static const char *const vars[ZYGOTE_RUN_NVARS] = ZYGOTE_RUN_VARS;

	for (int i = 0; i < ZYGOTE_RUN_NVARS; i++) {
		size_t len = strlen(vars[i]);

		if (strncmp(entry, vars[i], len) == 0 && entry[len] == '=')
			return i;
	}
	return -1;
}

/* A plain zygote's MSG_ZFORK is a struct sandbox_msg alone with one fd:
 * the socket its child (a spare until its run comes) waits on. MSG_ZRUN,
 * on that socket, after the struct sandbox_msg, with the run's stdin,
 * stdout and stderr (SCM_RIGHTS): */
struct zygote_run {
	char cwd[PATH_MAX];
	char values[ZYGOTE_RUN_NVARS][PATH_MAX]; /* of ZYGOTE_RUN_VARS, in order */
	struct run_limits lim;
};

/* MSG_ZFORKED is a struct sandbox_msg alone: err is 0 and step the new
 * init's pid, or err is the errno of the failed clone. */

/* A worker's zygote. */
struct zygote {
	struct sandbox_spare sp;  /* its init, then the zygote itself (pid, pidfd,
	                           * sock, root) */
	int log_r;                /* what it writes on stdout and stderr; -1 */
	int ready;                /* 1: it answered MSG_ZREADY */
	int plain;                /* 1: the rlimits layer's (zygote_launch_plain) */
	char version[SANDBOX_MSG_TEXT]; /* its Py_GetVersion() */
	char why[256];            /* why there is none, when there is none */
	char strs[ZYGOTE_STRS_MAX];     /* its argv and environment, for zygote_matches */
	char *argv[ZYGOTE_VEC_MAX + 2];
	char **envp;
	char deps[PATH_MAX];      /* a dependency set's zygote: its entry, on its
	                           * PYTHONPATH and (namespace layer) bound in its
	                           * sandbox; "" for the zygote of runs without */
	uint64_t generation;      /* a number of its own, new at each launch */
	uint64_t forks;           /* sandboxes it forked */
	int64_t launched_ns;      /* util_now_ns() of zygote_launch; 0: not launched */
	int64_t ready_ns;         /* ... and of its MSG_ZREADY */
};

/* An empty zygote (no process; why is ""). */
void zygote_init(struct zygote *z);

/* Launches z for cfg: its init is cloned into new namespaces with its new
 * root's mount point in dir (a "<pid>-zygote.XXXXXX"), and execs binary_fd
 * (pyexec-zygote, left open for the caller) with argv (the run's python argv, whose argv[0] is python's path) and
 * envp (the run's environment), and preload (modules it imports and vets,
 * comma-separated: README "Warm start"); z->deps, when not "", is bound
 * in its sandbox; its interpreter then starts while the caller goes on.
 * 0, or -1 with z->why (z then holds nothing). */
int zygote_launch(struct zygote *z, const struct sandbox_config *cfg, const char *dir,
		  int binary_fd, char *const *argv, char *const *envp, const char *preload);

/* Waits until deadline (util_now_ns(); now: just looks) for a launched z
 * to say it is ready: 1 when it is (z->version filled), 0 when it has not
 * yet, -1 when it failed (z->why; z stopped). Past
 * SANDBOX_SETUP_TIMEOUT_MS after its launch, not yet is a failure (so
 * INT64_MAX waits as long as a start may take). */
int zygote_await(struct zygote *z, int64_t deadline);

/* Whether z is ready and its process alive (reaped when it is not). */
int zygote_alive(struct zygote *z);

/* Asks z to fork an init with init_sock and status_w (the caller's fds
 * stay the caller's) for the new root's mount point root. Its pid (a child
 * of the caller, in its own process group), or -1 with a sentence in err.
 * A zygote that fails here is stopped. */
pid_t zygote_fork(struct zygote *z, int init_sock, int status_w, const char *root,
		  int new_cgroup_ns, char *err, size_t errlen);

/* Whether a run of spec would be the zygote's program: the same path,
 * argv and environment (1), or not (0). For a plain zygote the values of
 * ZYGOTE_RUN_VARS may differ, not their lengths. */
int zygote_matches(const struct zygote *z, const struct run_spec *spec);

/* As zygote_launch, for the rlimits layer: z is forked and exec'd
 * straight from this process (in a session of its own, dying with it),
 * its cwd a new "<pid>-zygote.XXXXXX" in dir (which it removes once
 * Python has started); envp's ZYGOTE_RUN_VARS are stand-ins. */
int zygote_launch_plain(struct zygote *z, const char *dir, int binary_fd, char *const *argv,
			char *const *envp, const char *preload);

/* For a plain zygote: makes sure this process has a run forked by z
 * ahead of its request, waiting in cg (NULL: no cgroup), which stays the
 * caller's child until it is used or discarded: one from an earlier z
 * serves as well. Between requests: in cgroup v1 the move into cg waits
 * for the kernel. 0, or -1 with a sentence in err (a zygote that fails
 * here is stopped). */
int zygote_spare_make(struct zygote *z, const struct cgroup_slot *cg, char *err, size_t errlen);
/* Kills and reaps that run, if any. */
void zygote_spare_discard(void);

/* For a plain zygote: the run of spec with its fds, the spare (made now
 * when there is none in spec->cgroup), a child of the caller in its own
 * process group. Its pid, or -1 with a sentence in err. */
pid_t zygote_run(struct zygote *z, const struct run_spec *spec, int stdin_fd, int out_w,
		 int err_w, char *err, size_t errlen);

/* The run spawner of the rlimits layer with a zygote: arg is a struct
 * zygote_spawn. A run zygote_matches goes to the zygote in use; any other,
 * or one the zygote fails (logged), is spawned cold (run_spawner_rlimits). */
struct zygote_spawn {
	int warm;                 /* out: 1 when the zygote forked the run */
};
extern const struct run_spawner zygote_spawner;

/* From now on, this process's runs and sandboxes are forked by z while it
 * is alive, and started cold as before when it is not or the fork fails;
 * NULL: always cold. */
void zygote_use(struct zygote *z);
/* The zygotes of dependency sets this process may also fork runs and
 * sandboxes from (n of them, each ready): zygote_for picks among them and
 * the one in use. The array is the caller's and must stay valid until the
 * next call. */
void zygote_use_sets(struct zygote *const *sets, size_t n);
/* The ready zygote (in use, or of a set) whose program a run of spec
 * would be (zygote_matches), or NULL. */
struct zygote *zygote_for(const struct run_spec *spec);
/* The ready zygote of the set whose entry is deps, or NULL: as the
 * worker's finder says (it may wait for one that is starting); none
 * without a finder. */
struct zygote *zygote_of_set(const char *deps);
void zygote_set_finder(struct zygote *(*fn)(const char *deps, void *arg), void *arg);

/* What the request in hand uses of the dependency cache, told at once to
 * the worker's hook (warm.h), so that a zygote the set earns starts while
 * the request that earned it runs: the entry deps and lock_fd, the shared
 * lock of the request's use (the hook dups it for a lease of its own), or
 * NULL and -1 when it uses none (or its path is over PATH_MAX). Nothing
 * without a hook. */
void zygote_note_set(const char *deps, int lock_fd);
void zygote_note_hook(void (*fn)(const char *deps, int lock_fd, void *arg), void *arg);

/* The zygote the sandboxes and runs made ahead of a request are forked by
 * (the one of the set the worker's last request used, while it has one);
 * NULL: the one in use. */
void zygote_use_for_spares(struct zygote *z);
struct zygote *zygote_for_spares(void);

/* Whether z, forked by zygote z (NULL: cloned) of generation gen, is still
 * that zygote (not replaced since). */
static inline int zygote_same(const struct zygote *z, uint64_t gen)
{
	return z != NULL && z->generation == gen;
}

/* The zygote zygote_use named last. */
struct zygote *zygote_in_use(void);

/* Kills and reaps z's process and closes its fds; z is then empty, why
 * kept. */
void zygote_stop(struct zygote *z);

#endif
