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
};

/* init, in the child of clone(CLONE_NEWUSER | CLONE_NEWNS | ...): follows
 * the protocol to its end and exits (0 once the payload's wait status is
 * written; 1 when the setup fails, after MSG_ERROR, or when the supervisor
 * lets the sandbox go). Never returns. */
__attribute__((noreturn))
void sandbox_init_main(const struct sandbox_init_args *a);

#endif
