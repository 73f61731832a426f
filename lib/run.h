/* run: runs one program under limits and captures what it writes.
 *
 * The supervisor (the caller's process) forks the program into its own
 * process group, feeds its stdin through a pipe from a file (the program never
 * holds the file itself), reads stdout and stderr through pipes in one
 * poll(2) loop with a deadline, caps what it keeps, and when the
 * program ends (or the wall time runs out) kills the whole group and every
 * descendant that escaped it (the caller is made a child subreaper, so
 * orphans come back to it and are killed too). Nothing the run started is
 * alive when run_program() returns.
 *
 * The spawn step is a seam: run_spawn_rlimits() is the built-in layer
 * (process group + rlimits + fresh environment); a stronger sandbox supplies
 * its own struct run_spawner and everything else stays as it is. */
#ifndef PYEXEC_RUN_H
#define PYEXEC_RUN_H

#include <stdint.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

struct cgroup_slot;

enum run_status { RUN_OK, RUN_ERROR, RUN_TIMEOUT, RUN_MEMORY, RUN_KILLED };

/* A limit of 0 is not set (the inherited rlimit stays; no wall deadline),
 * except max_output, where 0 keeps nothing. A limit above the inherited hard
 * rlimit gets the inherited one. */
struct run_limits {
	uint64_t wall_ms;        /* wall time; the group is killed when it runs out */
	uint64_t cpu_ms;         /* RLIMIT_CPU (rounded up to whole seconds) */
	uint64_t memory;         /* bytes: RLIMIT_AS */
	uint64_t file_size;      /* bytes: RLIMIT_FSIZE */
	uint64_t max_output;     /* bytes kept of each of stdout and stderr */
	unsigned nproc;          /* RLIMIT_NPROC */
	unsigned nofile;         /* RLIMIT_NOFILE */
};

struct run_spec {
	const char *path;        /* executable, absolute */
	char *const *argv;       /* NULL-ended */
	char *const *envp;       /* NULL-ended; the whole environment */
	const char *cwd;         /* working directory */
	int stdin_fd;            /* a regular file, sent from offset 0 through a
	                          * pipe as the program reads; -1 = /dev/null */
	int stdout_fd, stderr_fd;/* files that receive the kept output */
	struct run_limits lim;
	/* When non-NULL and set non-zero (from a signal handler, say), the run is
	 * killed and reported RUN_KILLED with a note. */
	volatile sig_atomic_t *cancel;
	/* When >= 0, the client's connection: its end (hang-up, error, or end
	 * of file) cancels the run like *cancel does. Data arriving on it is
	 * left unread and it is no longer watched. */
	int watch_fd;
	/* When non-NULL, a prepared cgroup (lib/cgroup.h): the program is
	 * cloned straight into it, and a kill by the kernel's OOM killer in it
	 * is reported RUN_MEMORY. */
	const struct cgroup_slot *cgroup;
	/* When non-NULL: each piece of output kept (within max_output), as it
	 * is read (which: 0 stdout, 1 stderr), and, after RUN_BEAT_MS without
	 * one, a beat (which -1, no bytes): a chance to write something that
	 * finds out whether the client is still there. A return < 0 (the
	 * client is gone) stops the run as cancel does; no more calls come. */
	int (*on_output)(void *arg, int which, const unsigned char *buf, size_t len);
	void *on_output_arg;
};

#define RUN_BEAT_MS 1000

/* How the program is started. spawn() forks (or clones) a child that ends up
 * exec'ing spec->path with fds 0, 1, 2 being stdin_fd (or /dev/null),
 * out_w and err_w, all other fds closed. It returns the child's pid (which
 * leads its own process group), or -1 with errno. */
struct run_spawner {
	pid_t (*spawn)(void *arg, const struct run_spec *spec, int stdin_fd,
		       int out_w, int err_w);
	/* When non-NULL: turns the wait status of the process spawn returned
	 * into the one to report (a sandbox's init reports its payload's). */
	int (*wait_status)(void *arg, int status);
	void *arg;
	const char *name;        /* "rlimits", ... */
};

/* The built-in spawner: fork, setpgid, default signal dispositions, rlimits
 * from spec->lim, fds, chdir, execve. In the child a failure is written to
 * stderr ("pyexec: cannot execute /usr/bin/python3: ...") and it exits 127. */
extern const struct run_spawner run_spawner_rlimits;

/* For spawners, in a freshly forked child: its own process group (or, with
 * new_session, session), default signal dispositions, nothing blocked,
 * stdin_fd (or /dev/null, rewound) and out_w, err_w on 0-2 with every other
 * fd closed, spec->cwd (when not NULL), the rlimits of spec->lim and no core,
 * death with the parent (whose pid is parent). A failure writes "pyexec:
 * cannot ..." to the program's stderr and exits 127. */
void run_child_setup(const struct run_spec *spec, int stdin_fd, int out_w, int err_w,
		     pid_t parent, int new_session);
/* In a freshly forked child: default dispositions for every signal,
 * nothing blocked (dispositions set to SIG_IGN by the server, such as
 * SIGPIPE, would survive execve). A failure is written to err_w and the
 * child exits 127. */
void run_child_signals_default(int err_w);

/* execve of spec->path with spec->argv and spec->envp; on failure the
 * message and exit 127 as above. */
__attribute__((noreturn)) void run_child_exec(const struct run_spec *spec);

struct run_result {
	enum run_status status;
	int exit_code;           /* -1 when a signal ended it */
	int signal;              /* 0 when it exited */
	int64_t wall_ns;
	int64_t cpu_ns;          /* user + system of everything the run started */
	long max_rss_kib;        /* peak RSS of the program's main process */
	uint64_t stdout_bytes, stderr_bytes;  /* written by the program */
	int stdout_truncated, stderr_truncated; /* more was written than kept */
	int cancelled;           /* ended by *cancel or by watch_fd's end */
	char note[160];          /* which limit ended the run, "" otherwise;
				  * also appended to the stderr file as a line */
};

/* Runs spec with spawner (NULL = run_spawner_rlimits) and fills res.
 * 0 when the program was started and has ended (whatever it did); -1 with
 * errno (logged) when it could not be started or supervised, or the output
 * files could not be written (ENOSPC: res is filled all the same).
 * Kills and reaps every child of the calling process but run_keep_child's,
 * so the caller must have no other children of its own meanwhile, and must
 * not ignore or reap SIGCHLD (EINVAL if SIGCHLD is SIG_IGN). */
int run_program(const struct run_spec *spec, const struct run_spawner *spawner,
		struct run_result *res);

/* The one child of the caller that run_program's clean-up leaves alive
 * (0: none), such as the sandbox that holds a request's uploads while its
 * dependencies are installed. Reaped all the same once it has ended (it is
 * then no longer kept): reach it through a pidfd. */
void run_keep_child(pid_t pid);

/* More children left alive the same way, for as long as the caller keeps
 * them (n of them, at most RUN_HELPERS_MAX; 0s are none): the worker's
 * zygote, the one replacing it, and those of dependency sets (zygote.h). */
#define RUN_HELPERS_MAX 18
void run_keep_helpers(const pid_t *pids, size_t n);

/* "ok", "error", "timeout", "memory", "killed": X-Execution-Status. */
const char *run_status_name(enum run_status s);

/* Sends SIGKILL to every child of the calling process (found in /proc)
 * except the nkeep pids in keep; with a subreaper, orphaned descendants are
 * children too. Reaping is the caller's. The number killed, or -1. */
int run_kill_children(const pid_t *keep, size_t nkeep);

/* Makes the calling process a child subreaper (the flag is per process and
 * not inherited across fork). 0 or -1. */
int run_become_subreaper(void);

#endif
