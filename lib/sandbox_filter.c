/* sandbox_filter: the payload's seccomp filter (sandbox_filter.h). */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox_filter.h"

/* The two variants, compiled once per process (libseccomp allocates, and
 * is slow enough to matter per run), kept until exit. */
static struct sock_fprog filters[2];   /* [1]: memfd_create allowed */

/* Where a failure is told: the caller's buffer. */
struct filter_err {
	char *buf;
	size_t len;
};

static void filter_error(struct filter_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fills e with the sentence; errno is kept. */
static void filter_error(struct filter_err *e, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* Refused with EPERM (README, "The sandbox", and a few more):
 *   ptrace and the like: ptrace, process_vm_readv/writev, pidfd_getfd,
 *     process_madvise, kcmp (reach into other processes)
 *   the mount family: mount, umount2, pivot_root, chroot, move_mount,
 *     open_tree, fsopen, fsmount, fspick, mount_setattr
 *   namespaces: unshare, setns (and clone with a CLONE_NEW* flag, below)
 *   kernel attack surface: bpf, perf_event_open, userfaultfd, io_uring_*,
 *     keyctl, add_key, request_key, open_by_handle_at, name_to_handle_at,
 *     lookup_dcookie, uselib, vhangup, modify_ldt, memfd_secret
 *   watching files: inotify_init, inotify_init1, fanotify_init (the
 *     system's files are the host's inodes: a watch on them would tell
 *     which a concurrent run opens)
 *   SysV IPC (not bounded by max_disk): shm*, msg*, sem*
 *   host administration: kexec_*, *_module, reboot, swapon/off, acct,
 *     quotactl, syslog, settimeofday, clock_settime, clock_adjtime, adjtimex,
 *     iopl, ioperm, migrate_pages and move_pages (which act on other
 *     processes' memory)
 * Names this libseccomp does not know are skipped: the payload holds no
 * capability, so this filter is a second wall, not the only one. */
static const char *const seccomp_eperm[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"process_madvise", "kcmp",
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
	"fsopen", "fsmount", "fspick", "mount_setattr", "open_tree_attr",
	"unshare", "setns",
	"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
	"io_uring_register", "keyctl", "add_key", "request_key",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "uselib", "vhangup",
	"modify_ldt", "memfd_secret",
	"inotify_init", "inotify_init1", "fanotify_init",
	"shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
	"semget", "semop", "semtimedop", "semctl",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
	"migrate_pages", "move_pages",
};

static int filter_rule(struct filter_err *e, scmp_filter_ctx ctx, uint32_t action,
		       int nr, unsigned n, const struct scmp_arg_cmp *cmp, const char *name)
{
	int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);

	if (rc < 0) {
		errno = -rc;
		filter_error(e, "cannot add the seccomp rule for %s: %s", name,
			  strerror(-rc));
		return -1;
	}
	return 0;
}

/* personality(2) takes an unsigned int: 0xffffffff asks for the current
 * persona, PER_LINUX (0) is what every process has. Any other value sets
 * one (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) and is refused. Such a
 * value has a bit set next to a clear one, reading the 32 bits as a ring:
 * one rule per bit i, "bit i set and bit i+1 clear", covers all of them
 * (libseccomp compares each argument once per rule). */
static int filter_personality(struct filter_err *e, scmp_filter_ctx ctx)
{
	int nr = seccomp_syscall_resolve_name("personality");

	if (nr == __NR_SCMP_ERROR || nr < 0)
		return 0;
	for (unsigned i = 0; i < 32; i++) {
		uint64_t bit = 1ULL << i, next = 1ULL << ((i + 1) % 32);
		struct scmp_arg_cmp cmp = { 0, SCMP_CMP_MASKED_EQ, bit | next, bit };

		if (filter_rule(e, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "personality") < 0)
			return -1;
	}
	return 0;
}

/* A rule for the system call name when this libseccomp knows it (0
 * otherwise); n comparisons in cmp. */
static int filter_named(struct filter_err *e, scmp_filter_ctx ctx, uint32_t action,
			const char *name, unsigned n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR || nr < 0)
		return 0;
	return filter_rule(e, ctx, action, nr, n, cmp, name);
}

/* New namespaces: clone with any CLONE_NEW* flag; clone3, which takes its
 * flags in memory, out of the filter's sight, answers ENOSYS, and glibc
 * falls back to clone. */
static int filter_clone(struct filter_err *e, scmp_filter_ctx ctx)
{
	static const unsigned long clone_new[] = {
		CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
		CLONE_NEWNET, CLONE_NEWCGROUP,
	};
	/* clone(flags, ...) on x86-64 and arm64; s390 has the stack first */
#if defined(__s390__) || defined(__s390x__)
	const unsigned clone_flags_arg = 1;
#else
	const unsigned clone_flags_arg = 0;
#endif
	int nr = seccomp_syscall_resolve_name("clone");

	for (size_t i = 0; i < sizeof(clone_new) / sizeof(clone_new[0]); i++) {
		struct scmp_arg_cmp cmp = { clone_flags_arg, SCMP_CMP_MASKED_EQ,
					    clone_new[i], clone_new[i] };

		if (filter_rule(e, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "clone") < 0)
			return -1;
	}
	nr = seccomp_syscall_resolve_name("clone3");
#ifdef __NR_clone3
	if (nr == __NR_SCMP_ERROR)
		nr = __NR_clone3;
#endif
	if (nr != __NR_SCMP_ERROR && nr >= 0 &&
	    filter_rule(e, ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0, NULL, "clone3") < 0)
		return -1;
	return 0;
}

/* ioctl's TIOCSTI and TIOCLINUX. The command is an unsigned int: high
 * bits set must not slip by. */
static int filter_ioctl(struct filter_err *e, scmp_filter_ctx ctx)
{
	static const unsigned long refused[] = { TIOCSTI, TIOCLINUX };
	int nr = seccomp_syscall_resolve_name("ioctl");

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct scmp_arg_cmp cmp = { 1, SCMP_CMP_MASKED_EQ, 0xffffffffULL, refused[i] };

		if (filter_rule(e, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "ioctl") < 0)
			return -1;
	}
	return 0;
}

/* Only AF_UNIX (1), AF_INET (2) and AF_INET6 (10). libseccomp takes one
 * comparison per argument and rule, so the others are refused as 0, 3..9
 * and >= 11 (which also catches garbage in the high bits). */
static int filter_sockets(struct filter_err *e, scmp_filter_ctx ctx)
{
	static const char *const calls[] = { "socket", "socketpair" };
	const uint32_t action = SCMP_ACT_ERRNO(EAFNOSUPPORT);

	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		struct scmp_arg_cmp cmp;

		for (uint64_t af = 0; af < AF_INET6; af++) {
			if (af == AF_UNIX || af == AF_INET)
				continue;
			cmp = (struct scmp_arg_cmp){ 0, SCMP_CMP_EQ, af, 0 };
			if (filter_named(e, ctx, action, calls[i], 1, &cmp) < 0)
				return -1;
		}
		cmp = (struct scmp_arg_cmp){ 0, SCMP_CMP_GT, AF_INET6, 0 };
		if (filter_named(e, ctx, action, calls[i], 1, &cmp) < 0)
			return -1;
	}
	return 0;
}

static int filter_rules(struct filter_err *e, scmp_filter_ctx ctx, int memfd_ok)
{
	for (size_t i = 0; i < sizeof(seccomp_eperm) / sizeof(seccomp_eperm[0]); i++)
		if (filter_named(e, ctx, SCMP_ACT_ERRNO(EPERM), seccomp_eperm[i], 0, NULL) < 0)
			return -1;
	if (filter_clone(e, ctx) < 0)
		return -1;
	/* Without a memory cgroup, memory is bounded per process by RLIMIT_AS,
	 * which does not count the pages of a memfd filled with write(2): a
	 * run could hold gigabytes in a few of them. ENOSYS, as on a kernel
	 * without memfds, which is what callers fall back from. */
	if (!memfd_ok &&
	    filter_named(e, ctx, SCMP_ACT_ERRNO(ENOSYS), "memfd_create", 0, NULL) < 0)
		return -1;
	if (filter_personality(e, ctx) < 0 || filter_ioctl(e, ctx) < 0 ||
	    filter_sockets(e, ctx) < 0)
		return -1;
	return 0;
}

/* ctx compiled into prog (its instructions malloc'd). 0, or -1 with errno
 * and e. */
static int filter_export(struct filter_err *e, scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	struct sock_filter *insns = NULL;
	int fd, rc;
	off_t size;

	fd = memfd_create("pyexec-seccomp", MFD_CLOEXEC);
	if (fd < 0 || (rc = seccomp_export_bpf(ctx, fd)) < 0) {
		if (fd >= 0)
			errno = -rc;
		filter_error(e, "cannot compile the seccomp filter: %s", strerror(errno));
		goto fail;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(*insns) != 0 ||
	    size / (off_t)sizeof(*insns) > BPF_MAXINSNS) {
		errno = EINVAL;
		filter_error(e, "the seccomp filter has a bad size (%lld bytes)",
			     (long long)size);
		goto fail;
	}
	insns = malloc((size_t)size);
	if (insns == NULL || pread(fd, insns, (size_t)size, 0) != size) {
		if (insns != NULL)
			errno = EIO;
		filter_error(e, "cannot read the seccomp filter: %s", strerror(errno));
		goto fail;
	}
	(void)close(fd);
	prog->len = (unsigned short)(size / (off_t)sizeof(*insns));
	prog->filter = insns;
	return 0;
fail:
	rc = errno;
	free(insns);
	if (fd >= 0)
		(void)close(fd);
	errno = rc;
	return -1;
}

/* The variant memfd_ok, built into prog. 0, or -1 with errno and e. */
static int filter_build(struct filter_err *e, int memfd_ok, struct sock_fprog *prog)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = -1;

	if (ctx == NULL) {
		errno = ENOMEM;
		filter_error(e, "cannot create the seccomp filter");
		return -1;
	}
	/* x32 and i386 system calls would go around every rule. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 &&
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL)) < 0) {
		errno = -rc;
		filter_error(e, "cannot set the seccomp filter's action for "
			     "foreign architectures: %s", strerror(-rc));
		rc = -1;
		goto out;
	}
	/* Every system call of the program runs the filter: a binary tree of
	 * syscall numbers rather than a list (libseccomp 2.5; older ones keep
	 * the list, which is only slower). */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	rc = filter_rules(e, ctx, memfd_ok) < 0 ? -1 : filter_export(e, ctx, prog);
out:
	{
		int saved = errno;

		seccomp_release(ctx);
		errno = saved;
	}
	return rc;
}

const struct sock_fprog *sandbox_filter_get(int memfd_ok, char *err, size_t errlen)
{
	struct filter_err e = { err, errlen };
	struct sock_fprog *prog = &filters[memfd_ok != 0];

	if (prog->filter == NULL && filter_build(&e, memfd_ok != 0, prog) < 0)
		return NULL;
	return prog;
}
