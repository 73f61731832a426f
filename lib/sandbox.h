/* sandbox: layer 1 of the README's Security section, a run_spawner that
 * puts the program in new user, mount, pid, net, ipc, uts and cgroup
 * namespaces, unprivileged.
 *
 * Split where the processes split:
 *   sandbox.c         the supervisor's side: spawn, spares, its half of
 *                     the protocol (this header)
 *   sandbox_proto.h   the messages between supervisor and init
 *   sandbox_init.h    what runs after clone: init and the payload
 *   sandbox_filter.h  the payload's seccomp filter
 *   sandbox_probe.h   the start-up probe
 *
 * The steps, in order (each failure is reported with the step, the path and
 * the errno, and the run does not start):
 *
 *   supervisor (the worker)            init (PID 1 of the new pid namespace)
 *   ----------------------------       ------------------------------------
 *   clone(CLONE_NEW*)  ─────────────▶  waits for its maps
 *   uid_map/gid_map (own uid -> same   mounts: a tmpfs root in a private,
 *   uid), setgroups deny               unpredictable directory; read-only
 *                                      binds of the system; one tmpfs of
 *                                      max_disk bytes (nosuid,nodev,noexec)
 *                                      holding /work, /tmp, /dev/shm; a
 *                                      minimal /dev; a fresh /proc (or none,
 *                                      see SANDBOX_PROC_*); hostname;
 *                                      pivot_root, the host's root kept
 *                                      where only init reaches it
 *   ◀─────────── the /work dirfd ────  sends /work's fd (SCM_RIGHTS)
 *   ─ ─ ─ ─ a spare sandbox made ahead of its request waits here ─ ─ ─ ─
 *   the request takes it
 *   (sandbox_run_take) and writes
 *   its uploads into /work as the
 *   body arrives, recording their
 *   stat for collect
 *   the run: limits, argv, envp, the   the dependency entry bound read-only
 *   dependency entry, stdin/out/err ▶  at its own path; the host's root
 *                                      detached; the root made read-only
 *   ◀─────────────────────── ready ──
 *   "go" ───────────────────────────▶  forks the payload, then reaps until
 *                                      the payload ends, kills and reaps
 *                                      what is left in the ns (so that its
 *                                      CPU time is counted), writes the
 *                                      payload's wait status, exits
 *                                      payload: setsid, rlimits, fds 0-2
 *                                      only, capabilities dropped (bounding
 *                                      set too), no_new_privs, seccomp last,
 *                                      execve
 *
 * Everything above the dashed line depends on the configuration only, so
 * a worker makes it while it waits for a request (sandbox_spare_make) and
 * the request pays only for what is below. A request takes its sandbox
 * before it reads its body and keeps it alive through a dependency install
 * (run_keep_child); one that ends before its run ends its sandbox: a
 * sandbox never serves two requests. A run without a sandbox taken ahead
 * (sandbox_run_take failed) gets one at spawn, which copies the uploads
 * from upload_fd into /work and records them.
 *
 * Inside, the program's uid and gid are its worker's subordinate ids
 * (run_uid, run_gid; init and the uploads keep pyexec's own, and after the
 * run init gives what the program made in /work to pyexec, for collect) or,
 * without them, pyexec's own (mapped to themselves),
 * its cwd is /work, and the paths it sees are /work, /tmp, the system's, and
 * the dependency entry's.
 */
#ifndef PYEXEC_SANDBOX_H
#define PYEXEC_SANDBOX_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "collect.h"
#include "run.h"

#define SANDBOX_WORK "/work"            /* the program's cwd and OUTPUT_DIR */
#define SANDBOX_HOSTNAME "pyexec"
#define SANDBOX_DEV_SIZE (64 * 1024)    /* bytes of the /dev tmpfs */
#define SANDBOX_SETUP_TIMEOUT_MS 10000  /* init must be ready within this */
#define SANDBOX_LIST_MAX 4096           /* bytes of each list of paths in the config */

/* What stays the same for every run of a worker. */
struct sandbox_config {
	char figures_dir[PATH_MAX];     /* pyexec's own modules (lib/figures.h), on runs'
	                                 * PYTHONPATH: bound read-only at
	                                 * FIGURES_SANDBOX_DIR ("" = none); the caller's,
	                                 * kept by sandbox_probe */
	uint64_t disk_bytes;            /* size of the tmpfs for /work, /tmp, /dev/shm */
	int network;                    /* 1: keep the host's network (no CLONE_NEWNET) */
	int proc;                       /* 1: mount a fresh /proc; 0: the kernel refused it */
	int memory_cgroup;              /* 1: runs are in a cgroup with memory.max (the
	                                 * caller says so from its cgroup slot); 0:
	                                 * memory is RLIMIT_AS per process, and
	                                 * memfd_create is refused (ENOSYS) */
	uid_t uid;                      /* pyexec's own uid and gid, mapped to themselves */
	gid_t gid;
	uid_t run_uid;                  /* the program's: a subordinate uid and gid of */
	gid_t run_gid;                  /* pyexec's user, each mapped to itself (newuidmap,
	                                 * newgidmap), or uid and gid (runs share them) */
	/* Lists of host paths, each NUL-ended, one after the other, then an
	 * empty one (a zeroed list is empty); filled with sandbox_list_add. */
	char etc_extra[SANDBOX_LIST_MAX];  /* more of the host's /etc to mirror, besides
	                                    * what Python and its packages read */
	char python_dirs[SANDBOX_LIST_MAX]; /* the interpreters' prefixes that are not
	                                    * under /usr, each bound read-only at its
	                                    * own path: of the file each path resolves
	                                    * to, and of the path itself (a venv whose
	                                    * python links to the system's); filled
	                                    * by the probe */
	char hide[SANDBOX_LIST_MAX];       /* pyexec's own files (its configuration,
	                                    * tokens, cache, work_root): masked, with
	                                    * /usr/local/etc and SYSCONFDIR/pyexec,
	                                    * wherever a bind of the system shows them */
};

/* Appends path to list (a sandbox_config's etc_extra, python_dirs or hide). 0, or -1
 * with EINVAL (not an absolute path) or ENAMETOOLONG (the list is full). */
int sandbox_list_add(char *list, const char *path);
/* The path after cur in list (the first when cur is NULL), NULL at its
 * end. Async-signal-safe (init walks the lists). */
const char *sandbox_list_next(const char *list, const char *cur);

/* A sandbox set up ahead of its request: init, waiting for a run. Owned by
 * one process (a worker), which must not reap it by other means than
 * these functions and run_program (a run_program that reaps every child,
 * as for a pip install, ends it: it is then replaced). */
struct zygote;

struct sandbox_spare {
	pid_t pid;                      /* init; 0 = none */
	int pidfd, sock, status_r;      /* -1 when none */
	int work_fd;                    /* its /work, once init sent it (MSG_WORK); -1 before */
	int own_root;                   /* 1: root is ours to remove */
	int warm;                       /* 1: init was forked by the zygote */
	struct zygote *zygote;          /* ... that one (NULL when cloned), of */
	uint64_t zygote_gen;            /* this generation (zygote_same) */
	char root[PATH_MAX];            /* the new root's mount point on the host */
	const struct sandbox_config *cfg;      /* what it was made for */
	const struct cgroup_slot *cgroup;
};

/* One run. The supervisor fills the inputs; the spawner fills the outputs. */
struct sandbox_run {
	const struct sandbox_config *cfg;
	const char *req_dir;            /* the request's private host directory: the
	                                 * new root's mount point is made inside it */
	int upload_fd;                  /* host directory with the uploads, copied
	                                 * into /work; -1 when they are written
	                                 * there already (sandbox_run_take) */
	const char *deps_path;          /* dependency entry, bound read-only; NULL = none */
	struct collect_snapshot *snap;  /* filled with the stat of each copy in /work */
	struct sandbox_spare *spare;    /* a sandbox to use when it matches cfg and
	                                 * the spec's cgroup (NULL = none): taken
	                                 * (left empty) whether it served or not */
	struct sandbox_spare held;      /* the sandbox taken before the body, which
	                                 * holds the uploads (pid 0: none) */
	struct zygote *zygote;          /* the zygote a new sandbox is forked by (a
	                                 * dependency set's); NULL: the one in use */
	int work_fd;                    /* out: /work inside (a tmpfs), open until
	                                 * sandbox_run_close; -1 before the run */
	int status_fd;                  /* internal: the payload's wait status */
	int uploads_too_big;            /* out: the uploads did not fit in disk_bytes */
	int spare_used;                 /* out: 1 when the spare served the run */
	int warm;                       /* out: 1 when the sandbox came from the
	                                 * zygote (zygote.h) */
	char error[256];                /* out: what failed, when spawn fails */
	int failed_step;                /* internal: the step that failed (enum
	                                 * sandbox_step, sandbox_proto.h) and its */
	int failed_errno;               /* errno, for the advice of sandbox_probe */
};

/* The spawner: arg is a struct sandbox_run *. spec->cwd is ignored (the
 * program starts in /work); spec->envp is used as given. spawn returns the
 * pid of init, which leads the whole namespace: killing it kills everything
 * in it. wait_status turns init's exit into the payload's wait status. */
extern const struct run_spawner sandbox_spawner;

/* For the unit suite: non-zero makes read-only binds take the path of
 * kernels before 5.12 (a remount of each bind, no mount_setattr). */
extern int sandbox_test_old_kernel;

/* Prepares run (work_fd = status_fd = -1) for one request. */
void sandbox_run_init(struct sandbox_run *run, const struct sandbox_config *cfg,
		      const char *req_dir, int upload_fd, const char *deps_path,
		      struct collect_snapshot *snap);
/* Closes what a run kept open (work_fd, status_fd), and ends the sandbox
 * it holds and did not start. Safe to call twice. */
void sandbox_run_close(struct sandbox_run *run);

/* Takes the sandbox the run will use before its uploads are written: the
 * spare when it matches the configuration and cg, else a new one whose
 * root's mount point is the request's tmp/. Waits until its /work is set
 * up and returns that directory's fd (the run's, valid until the run
 * starts or sandbox_run_close), through which the uploads are written
 * (with the modes of sandbox_upload_modes); the run is then spawned in
 * that sandbox alone. -1 with run->error and errno when no sandbox could
 * be set up (the run holds none then). */
int sandbox_run_take(struct sandbox_run *run, const struct cgroup_slot *cg);

/* The bits an upload's directories and files get on top of 0755 and 0644:
 * a program with ids of its own (run_uid) must be able to change the
 * uploads, which are pyexec's: open to all, on a disk no one else sees. */
void sandbox_upload_modes(const struct sandbox_config *cfg, mode_t *dir_bits,
			  mode_t *file_bits);

/* An empty spare. */
void sandbox_spare_init(struct sandbox_spare *sp);
/* Makes sure sp holds a live spare for cfg and cg (NULL = no cgroup): keeps
 * the one it has, or starts a new one whose root's mount point is a new
 * "<pid>-sandbox.XXXXXX" in dir. Returns once init is set off (its setup
 * goes on while the caller does something else). 0, or -1 with errno (the
 * cause logged at debug level; a run then sets up its own sandbox, and
 * says what fails). Needs pidfds (Linux 5.4): ENOSYS without. */
int sandbox_spare_make(struct sandbox_spare *sp, const struct sandbox_config *cfg,
		       const char *dir, const struct cgroup_slot *cg);
/* Whether sp's process is still alive (1), has ended (0), or cannot be
 * watched through its pidfd (-1: no pidfd, or no P_PIDFD before Linux 5.4). */
int sandbox_spare_alive(const struct sandbox_spare *sp);
/* Ends sp's init, reaps it, removes its directory; sp is then empty. */
void sandbox_spare_discard(struct sandbox_spare *sp);

/* For zygote.c: clones the zygote's init into sp, with root as its new
 * root's mount point, binary_fd (exec'd by fd), log_fd, argv and envp
 * (sandbox_init_zygote_main), deps (a dependency entry bound read-only
 * at its path; NULL: none), writes its maps, and sends it MSG_ZCONFIG
 * with preload (zygote.h).
 * 0, or -1 with a sentence in err (sp then empty). */
int sandbox_start_zygote(struct sandbox_spare *sp, const struct sandbox_config *cfg,
			 const char *root, int binary_fd, int log_fd, char *const *argv,
			 char *const *envp, const char *deps, const char *preload, char *err,
			 size_t errlen);

#endif
