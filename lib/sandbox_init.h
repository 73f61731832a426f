/* sandbox_init: what runs after clone, inside the new namespaces: init
 * (PID 1 there), which sets up the new root, waits for its run, forks the
 * payload and reaps; and the payload, which drops everything and execs the
 * program. The steps are listed in sandbox.h's diagram; the messages
 * init exchanges with the supervisor in sandbox_proto.h.
 *
 * Everything here runs in a copy of the supervisor, whose libc state it
 * cannot trust (see sandbox_init.c): what init needs that takes more than
 * system calls is prepared before clone, in struct sandbox_init_args. */
#ifndef PYEXEC_SANDBOX_INIT_H
#define PYEXEC_SANDBOX_INIT_H

#include <limits.h>
#include <linux/filter.h>

#include "sandbox.h"

/* The zygote's end of its socket with the supervisor, after its exec. */
#define ZYGOTE_SOCK_FD 3

/* Where the host's root waits in the new root, reachable by init alone,
 * until the request's dependency entry is bound (then it is detached);
 * the zygote keeps it there (its preloads are vetted through its /proc). */
#define SANDBOX_OLD_ROOT      ".host"

/* Everything init needs before the request comes, filled by the supervisor
 * before clone: the strings are formatted there. */
struct sandbox_init_args {
	const struct sandbox_config *cfg;
	const struct sock_fprog *filter;  /* the payload's seccomp filter */
	int sock;                     /* init's end of the socket pair */
	int status_w;                 /* the payload's wait status goes here */
	char root[PATH_MAX];          /* the new root's mount point on the host */
	char passwd[160];             /* /etc/passwd and /etc/group: one line each */
	char group[96];
	char disk_opts[128];          /* tmpfs options of the disk, of /dev */
	char dev_opts[64];
	/* The zygote's init (sandbox_init_zygote_main) only: */
	int zygote_fd;                /* the pyexec-zygote binary, exec'd by fd; -1 */
	int log_fd;                   /* the zygote's stdout and stderr; -1 */
	char *const *zygote_argv;     /* its argv and environment */
	char *const *zygote_envp;
	const char *zygote_deps;      /* its dependency entry, bound read-only at
	                               * its own path as a run's is; NULL: none */
	/* An init forked by a zygote (sandbox_init_warm_main) only: */
	int new_cgroup_ns;            /* 1: a cgroup namespace of its own, once the
	                               * supervisor has moved it into the run's cgroup */
	/* The payload's last step before execve: when it returns, the payload
	 * execs spec as usual. NULL: execve only. */
	void (*payload_exec)(const struct run_spec *spec);
	/* When not NULL, the payload is forked ahead of the request, once the
	 * sandbox is set up, and calls this while it waits (the zygote's
	 * inits: it copies the pages its Python would write, until its
	 * argument, the fd the request comes on, is readable); it then takes
	 * the request itself, and init only waits for it. */
	void (*payload_ahead)(int request_fd);
};

/* Execs pyexec-zygote (binary_fd) with argv and envp, its fds set up:
 * 0 an empty pipe (its sys.stdin is made as a run's, from a pipe), 1 and
 * 2 log_fd, ZYGOTE_SOCK_FD sock; the others close at the exec.
 * Async-signal-safe. Returns only on failure: what failed, with errno. */
const char *sandbox_exec_zygote(int binary_fd, int log_fd, int sock, char *const *argv,
				char *const *envp);

/* init, in the child of clone(CLONE_NEWUSER | CLONE_NEWNS | ...): follows
 * the protocol to its end and exits (0 once the payload's wait status is
 * written; 1 when the setup fails, after MSG_ERROR, or when the supervisor
 * lets the sandbox go). Never returns. */
__attribute__((noreturn))
void sandbox_init_main(const struct sandbox_init_args *a);

/* The zygote's init, in the child of clone(CLONE_NEWUSER | CLONE_NEWNS |
 * ...) without CLONE_NEWPID: after its maps, sets up the new root as for
 * a run (without a /proc: it has no pid namespace of its own), keeps the
 * host's root where init keeps it, and execs the zygote binary
 * (a->zygote_fd) in /work, with fd 0 an empty pipe, 1 and 2 a->log_fd, 3
 * the socket, and every capability it has in its user namespace kept as
 * ambient ones (its children set up sandboxes in that namespace). A
 * failure before the exec is reported as init_fail does. Never returns. */
__attribute__((noreturn))
void sandbox_init_zygote_main(const struct sandbox_init_args *a);

/* An init forked by the zygote with clone(CLONE_PARENT | CLONE_NEWNS |
 * CLONE_NEWPID | ...) in the zygote's user namespace: says hello and waits
 * (the supervisor moves it into the run's cgroup meanwhile), takes a cgroup
 * namespace of its own when asked, goes back to the host's root, drops the
 * zygote's, and from there is sandbox_init_main: a fresh new root, the
 * same protocol. Never returns. */
__attribute__((noreturn))
void sandbox_init_warm_main(const struct sandbox_init_args *a);

#endif
