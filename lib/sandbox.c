/* sandbox: the supervisor's side (sandbox.h): spawning a run into a
 * sandbox, spares made ahead of their request, and the supervisor's half
 * of the protocol (sandbox_proto.h). What runs inside is sandbox_init.c,
 * the payload's filter sandbox_filter.c, the start-up probe
 * sandbox_probe.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "collect.h"
#include "log.h"
#include "run.h"
#include "sandbox.h"
#include "sandbox_filter.h"
#include "sandbox_init.h"
#include "sandbox_proto.h"
#include "subid.h"
#include "util.h"
#include "workdir.h"
#include "zygote.h"

/* One inode of the disk tmpfs per this many bytes of it (at least
 * SANDBOX_INODES_MIN): empty files take no blocks, so without a cap on
 * inodes, "many files" would take kernel memory max_disk does not bound. */
#define SANDBOX_BYTES_PER_INODE 4096
#define SANDBOX_INODES_MIN    1024

/* ---------------------------------------------------------------------- */
/* Runs and spares. */

static void run_error(struct sandbox_run *run, int step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void run_error(struct sandbox_run *run, int step, const char *fmt, ...)
{
	va_list ap;

	if (run->error[0] != '\0')
		return;
	run->failed_step = step;
	run->failed_errno = errno;
	va_start(ap, fmt);
	vsnprintf(run->error, sizeof(run->error), fmt, ap);
	va_end(ap);
}

/* No error yet: run_error's next sentence is kept. */
static void run_error_clear(struct sandbox_run *run)
{
	run->error[0] = '\0';
	run->failed_step = STEP_NONE;
	run->failed_errno = 0;
}

/* Closes *fd when open, and marks it closed; errno is kept. */
static void fd_close(int *fd)
{
	util_close_keep_errno(*fd);
	*fd = -1;
}

/* When init must have answered: SANDBOX_SETUP_TIMEOUT_MS from now. */
static int64_t setup_deadline(void)
{
	return util_now_ns() + (int64_t)SANDBOX_SETUP_TIMEOUT_MS * 1000000;
}

static int write_proc_file(struct sandbox_run *run, pid_t pid, const char *name,
			   const char *text)
{
	char path[64];
	int fd, saved;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		/* setgroups is new in Linux 3.19; before it gid_map needs nothing */
		if (errno == ENOENT && strcmp(name, "setgroups") == 0)
			return 0;
		goto fail;
	}
	if (util_write_all(fd, text, strlen(text)) < 0) {
		util_close_keep_errno(fd);
		goto fail;
	}
	if (close(fd) < 0)
		goto fail;
	return 0;
fail:
	saved = errno;
	run_error(run, STEP_MAPS, "cannot write %s: %s", path, strerror(errno));
	errno = saved;
	return -1;
}

static int snapshot_add(void *snap, const char *name, const struct stat *st)
{
	return collect_snapshot_add(snap, name, st);
}

/* The uploads copied into /work, each recorded in run->snap. 0, or -1
 * with run->error (and run->uploads_too_big when the disk is full). */
static int copy_uploads(struct sandbox_run *run)
{
	struct workdir_copy c = {
		.max_depth = COLLECT_DEPTH_MAX,
		.on_file = run->snap != NULL ? snapshot_add : NULL,
		.arg = run->snap,
	};

	sandbox_upload_modes(run->cfg, &c.dir_bits, &c.file_bits);
	if (workdir_copy_tree(run->upload_fd, run->work_fd, &c) == 0)
		return 0;
	if (c.failed[0] == '\0') {
		run_error(run, STEP_UPLOADS, "cannot read the uploads: %s", strerror(errno));
	} else if (errno == ENOSPC || errno == EDQUOT) {
		run->uploads_too_big = 1;
		errno = ENOSPC;
		run_error(run, STEP_UPLOADS, "the uploads do not fit in the disk of %llu bytes",
			  (unsigned long long)run->cfg->disk_bytes);
	} else {
		run_error(run, STEP_UPLOADS, "cannot copy the upload %s: %s", c.failed,
			  strerror(errno));
	}
	return -1;
}

/* a for cfg and root: the payload's filter and the strings init needs,
 * formatted here (init may not call snprintf). 0, or -1 with run->error. */
static int init_args_fill(struct sandbox_init_args *a, struct sandbox_run *run,
			  const struct sandbox_config *cfg, const char *root)
{
	uint64_t inodes = cfg->disk_bytes / SANDBOX_BYTES_PER_INODE;

	char err[sizeof(run->error)];

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->sock = a->status_w = a->zygote_fd = a->log_fd = -1;
	a->filter = sandbox_filter_get(cfg->memory_cgroup != 0, err, sizeof(err));
	if (a->filter == NULL) {
		run_error(run, STEP_PREPARE, "%s", err);
		return -1;
	}
	if (strlen(root) >= sizeof(a->root)) {
		errno = ENAMETOOLONG;
		run_error(run, STEP_PREPARE, "the sandbox directory's path is too long");
		return -1;
	}
	strcpy(a->root, root);
	if (inodes < SANDBOX_INODES_MIN)
		inodes = SANDBOX_INODES_MIN;
	snprintf(a->passwd, sizeof(a->passwd), "pyexec:x:%lu:%lu:pyexec:/tmp:/usr/sbin/nologin\n",
		 (unsigned long)cfg->run_uid, (unsigned long)cfg->run_gid);
	snprintf(a->group, sizeof(a->group), "pyexec:x:%lu:\n", (unsigned long)cfg->run_gid);
	snprintf(a->disk_opts, sizeof(a->disk_opts), "mode=0755,size=%llu,nr_inodes=%llu",
		 (unsigned long long)cfg->disk_bytes, (unsigned long long)inodes);
	snprintf(a->dev_opts, sizeof(a->dev_opts), "mode=0755,size=%lu",
		 (unsigned long)SANDBOX_DEV_SIZE);
	return 0;
}

/* clone(2) the way fork(2) does it: no stack of its own, the child goes on
 * from here on a copy of ours. (glibc's clone() wants a separate stack, on
 * which AddressSanitizer loses track of init and of the payload forked from
 * it, and says so on the program's stderr.) The pid, 0 in the child, or -1. */
static pid_t sandbox_clone(int flags)
{
#if defined(__s390__) || defined(__s390x__)
	return (pid_t)syscall(SYS_clone, NULL, (unsigned long)flags, NULL, NULL, 0UL);
#else
	return (pid_t)syscall(SYS_clone, (unsigned long)flags, NULL, NULL, NULL, 0UL);
#endif
}

static int path_ok(const char *p)
{
	return p[0] == '/' && strlen(p) < PATH_MAX;
}

static void spare_clear(struct sandbox_spare *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->pidfd = sp->sock = sp->status_r = sp->work_fd = -1;
}

/* Ends init (if any) and closes what sp holds; sp is then empty. init is
 * reached through its pidfd when there is one, so a sandbox that someone
 * else reaped (run_program's clean-up reaps every child) is never
 * mistaken for a process that reused its pid. errno is kept. */
static void spare_end(struct sandbox_spare *sp)
{
	int saved = errno;

	if (sp->pid > 0) {
		int by_pid = 1;

		if (sp->pidfd >= 0) {
			siginfo_t si;
			int r;

			(void)pidfd_send_signal(sp->pidfd, SIGKILL, NULL, 0);
			memset(&si, 0, sizeof(si));
			do
				r = waitid(P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | __WALL);
			while (r < 0 && errno == EINTR);
			/* Linux 5.3 has pidfds but no P_PIDFD: spares are not kept
			 * there, so this init is ours and still unreaped. */
			by_pid = r < 0 && errno == EINVAL;
		} else {
			(void)kill(sp->pid, SIGKILL);
		}
		if (by_pid)
			while (waitpid(sp->pid, NULL, __WALL) < 0 && errno == EINTR)
				;
	}
	if (sp->pidfd >= 0)
		(void)close(sp->pidfd);
	if (sp->sock >= 0)
		(void)close(sp->sock);
	if (sp->status_r >= 0)
		(void)close(sp->status_r);
	if (sp->work_fd >= 0)
		(void)close(sp->work_fd);
	/* init's mount namespace is gone with it: the directory is plain again */
	if (sp->own_root && rmdir(sp->root) < 0 && errno != ENOENT)
		log_msg(LOG_LEVEL_WARN, "sandbox: cannot remove %s: %s", sp->root, strerror(errno));
	spare_clear(sp);
	errno = saved;
}

/* The request's strings (see struct sandbox_req) packed for spec, q's
 * counts and len filled: a malloc'd buffer, or NULL with run->error. */
static char *req_pack(struct sandbox_run *run, const struct run_spec *spec,
		      struct sandbox_req *q)
{
	const char *deps = run->deps_path != NULL ? run->deps_path : "";
	size_t len = strlen(deps) + 1 + strlen(spec->path) + 1;
	char *strs, *p;

	for (q->argc = 0; spec->argv[q->argc] != NULL; q->argc++)
		if (q->argc < SANDBOX_REQ_VEC)
			len += strlen(spec->argv[q->argc]) + 1;
	for (q->envc = 0; spec->envp[q->envc] != NULL; q->envc++)
		if (q->envc < SANDBOX_REQ_VEC)
			len += strlen(spec->envp[q->envc]) + 1;
	if (q->argc == 0 || q->argc + q->envc > SANDBOX_REQ_VEC || len > SANDBOX_REQ_MAX) {
		errno = E2BIG;
		run_error(run, STEP_PREPARE, "the program's arguments and environment exceed "
			  "the sandbox's %u entries or %u bytes", SANDBOX_REQ_VEC,
			  SANDBOX_REQ_MAX);
		return NULL;
	}
	strs = malloc(len);
	if (strs == NULL) {
		run_error(run, STEP_PREPARE, "out of memory");
		return NULL;
	}
	p = stpcpy(strs, deps) + 1;
	p = stpcpy(p, spec->path) + 1;
	for (uint32_t i = 0; i < q->argc; i++)
		p = stpcpy(p, spec->argv[i]) + 1;
	for (uint32_t i = 0; i < q->envc; i++)
		p = stpcpy(p, spec->envp[i]) + 1;
	q->len = (uint32_t)len;
	return strs;
}

/* MSG_REQUEST for spec, with its fds. 0, or -1 with run->error. */
static int send_request(struct sandbox_run *run, int sock, const struct run_spec *spec,
			int stdin_fd, int out_w, int err_w)
{
	struct sandbox_msg m;
	struct sandbox_req q;
	int fds[SANDBOX_MSG_FDS];
	size_t nfd = 0;
	struct iovec iov[3];
	char *strs;
	ssize_t w;

	memset(&q, 0, sizeof(q));
	q.lim = spec->lim;
	strs = req_pack(run, spec, &q);
	if (strs == NULL)
		return -1;
	q.has_stdin = stdin_fd >= 0;
	if (stdin_fd >= 0)
		fds[nfd++] = stdin_fd;
	fds[nfd++] = out_w;
	fds[nfd++] = err_w;
	memset(&m, 0, sizeof(m));
	m.type = MSG_REQUEST;
	iov[0] = (struct iovec){ &m, sizeof(m) };
	iov[1] = (struct iovec){ &q, sizeof(q) };
	iov[2] = (struct iovec){ strs, q.len };
	w = sandbox_msg_send_fds(sock, iov, 3, fds, nfd);
	if (w != (ssize_t)(sizeof(m) + sizeof(q) + q.len)) {
		if (w >= 0)
			errno = EMSGSIZE;
		run_error(run, STEP_HANDSHAKE, "cannot send init the run: %s", strerror(errno));
		w = -1;
	}
	free(strs);
	return w < 0 ? -1 : 0;
}

/* The maps of init's user namespace: pyexec's ids and the run's, each
 * mapped to itself. 0, or -1 with run->error. */
static int write_maps(struct sandbox_run *run, const struct sandbox_config *cfg, pid_t pid)
{
	char map[64];

	if (cfg->run_uid != cfg->uid) {
		/* by the set-uid helpers, which check the run's ids against
		 * /etc/subuid and /etc/subgid */
		char why[512];

		if (subid_map(pid, 0, cfg->uid, cfg->run_uid, why, sizeof(why)) < 0 ||
		    subid_map(pid, 1, cfg->gid, cfg->run_gid, why, sizeof(why)) < 0) {
			errno = EPERM;
			run_error(run, STEP_MAPS, "%s", why);
			return -1;
		}
		return 0;
	}
	/* pyexec's ids alone: setgroups must be denied before an
	 * unprivileged gid_map. */
	if (write_proc_file(run, pid, "setgroups", "deny") < 0)
		return -1;
	snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)cfg->uid,
		 (unsigned long)cfg->uid);
	if (write_proc_file(run, pid, "uid_map", map) < 0)
		return -1;
	snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)cfg->gid,
		 (unsigned long)cfg->gid);
	return write_proc_file(run, pid, "gid_map", map);
}

/* The socket pair and status pipe of a new init: init's ends into a, the
 * supervisor's into sv[0] and stp[0]. 0, or -1 with run->error. */
static int init_channels(struct sandbox_run *run, struct sandbox_init_args *a, int sv[2],
			 int stp[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(stp, O_CLOEXEC) < 0) {
		run_error(run, STEP_PREPARE, "cannot create a socket pair or pipe: %s",
			  strerror(errno));
		fd_close(&sv[0]);
		fd_close(&sv[1]);
		return -1;
	}
	a->sock = sv[1];
	a->status_w = stp[1];
	return 0;
}

/* sp takes a new init, pid, and the supervisor's ends of its channels. */
static void spare_hold(struct sandbox_spare *sp, pid_t pid, int sock, int status_r)
{
	sp->pid = pid;
	sp->pidfd = pidfd_open(pid, 0);   /* -1 before Linux 5.3 */
	sp->sock = sock;
	sp->status_r = status_r;
	(void)setpgid(pid, pid);
}

/* Clones init (into cg when not NULL) with a's arguments, a->sock and
 * a->status_w being made here; sp gets init and the supervisor's ends.
 * The zygote's init (zygote) has no pid namespace of its own: the inits
 * it forks with CLONE_PARENT could not be this process's children if it
 * were one's init. 0, or -1 with run->error (sp then holds nothing). */
static int clone_init(struct sandbox_run *run, struct sandbox_init_args *a,
		      const struct cgroup_slot *cg, struct sandbox_spare *sp, int zygote)
{
	int sv[2] = { -1, -1 }, stp[2] = { -1, -1 };
	int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
		    CLONE_NEWCGROUP | SIGCHLD;
	sigset_t all, old;
	int saved;
	pid_t pid;

	if (!zygote)
		flags |= CLONE_NEWPID;
	if (!a->cfg->network)
		flags |= CLONE_NEWNET;
	if (init_channels(run, a, sv, stp) < 0)
		return -1;
	/* No handler of the caller may run in init. */
	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, &old) < 0) {
		run_error(run, STEP_PREPARE, "sigprocmask: %s", strerror(errno));
		pid = -1;
	} else {
		/* Cloned straight into the run's cgroup: its cgroup namespace
		 * is rooted there. */
		pid = cg != NULL ? cgroup_clone(cg, (unsigned long)flags) : sandbox_clone(flags);
		if (pid == 0 && zygote)
			sandbox_init_zygote_main(a);
		if (pid == 0)
			sandbox_init_main(a);
		saved = errno;
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		errno = saved;
		if (pid < 0)
			run_error(run, STEP_CLONE, "cannot create the namespaces (clone): %s",
				  strerror(errno));
	}
	fd_close(&sv[1]);
	fd_close(&stp[1]);
	if (pid < 0) {
		fd_close(&sv[0]);
		fd_close(&stp[0]);
		return -1;
	}
	spare_hold(sp, pid, sv[0], stp[0]);
	return 0;
}


/* As clone_init, but init is forked by the zygote (into its user
 * namespace, as this process's child): 0, or -1 with run->error. */
static int fork_init(struct sandbox_run *run, struct sandbox_init_args *a, struct zygote *z,
		     const struct cgroup_slot *cg, struct sandbox_spare *sp)
{
	int sv[2] = { -1, -1 }, stp[2] = { -1, -1 };
	char err[sizeof(run->error)];
	pid_t pid;

	if (init_channels(run, a, sv, stp) < 0)
		return -1;
	pid = zygote_fork(z, sv[1], stp[1], a->root, cg != NULL, err, sizeof(err));
	fd_close(&sv[1]);
	fd_close(&stp[1]);
	if (pid < 0) {
		run_error(run, STEP_CLONE, "%s", err);
		fd_close(&sv[0]);
		fd_close(&stp[0]);
		return -1;
	}
	spare_hold(sp, pid, sv[0], stp[0]);
	sp->warm = 1;
	sp->zygote = z;
	sp->zygote_gen = z->generation;
	return 0;
}

/* Waits for init's hello, then does what must be done from outside before
 * it sets up its root: a cloned init's maps; a forked one's move into cg.
 * Then lets it go on. 0, or -1 with run->error. */
static int release_init(struct sandbox_run *run, const struct sandbox_config *cfg,
			const struct cgroup_slot *cg, struct sandbox_spare *sp)
{
	struct sandbox_msg m;
	int wfd = -1;

	/* Init is dumpable once it says hello: its /proc files are ours. */
	if (sandbox_msg_recv(sp->sock, setup_deadline(), &m, &wfd) < 0) {
		run_error(run, STEP_HANDSHAKE, "init did not start: %s", strerror(errno));
		return -1;
	}
	if (m.type != MSG_HELLO || wfd >= 0) {
		fd_close(&wfd);
		errno = EPROTO;
		run_error(run, STEP_HANDSHAKE, "init answered out of turn");
		return -1;
	}
	if (sp->warm) {
		if (cg != NULL && cgroup_slot_attach(cg, sp->pid) < 0) {
			run_error(run, STEP_PREPARE, "cannot move init into the run's cgroup: %s",
				  strerror(errno));
			return -1;
		}
	} else if (write_maps(run, cfg, sp->pid) < 0) {
		return -1;
	}
	if (sandbox_msg_send(sp->sock, MSG_MAPS) < 0) {
		run_error(run, STEP_HANDSHAKE, "cannot release init: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int start_check(struct sandbox_run *run, const struct sandbox_config *cfg,
		       const char *root)
{
	int dirs_ok = 1;

	for (const char *p = sandbox_list_next(cfg->python_dirs, NULL); p != NULL;
	     p = sandbox_list_next(cfg->python_dirs, p))
		dirs_ok &= path_ok(p);
	if (cfg->disk_bytes == 0 || !path_ok(root) || !dirs_ok ||
	    (cfg->figures_dir[0] != '\0' && !path_ok(cfg->figures_dir))) {
		errno = EINVAL;
		run_error(run, STEP_PREPARE, "the disk size is 0 or a path is not absolute");
		return -1;
	}
	return 0;
}

/* Starts init in new namespaces (into cg when not NULL) with root as its
 * new root's mount point: forked by the zygote when there is one for cfg
 * (run->zygote, or the one in use), else cloned (so too when the zygote
 * fails, which is logged). Lets it
 * set up everything that does not depend on a request. Fills sp; 0, or
 * -1 with run->error and sp empty. */
static int sandbox_start(struct sandbox_run *run, const struct sandbox_config *cfg,
			 const char *root, const struct cgroup_slot *cg, struct sandbox_spare *sp)
{
	struct sandbox_init_args a;
	struct zygote *z = run->zygote != NULL ? run->zygote : zygote_in_use();
	int forked = -1;

	spare_clear(sp);
	if (start_check(run, cfg, root) < 0 || init_args_fill(&a, run, cfg, root) < 0)
		return -1;
	if (z != NULL && z->sp.cfg == cfg && zygote_alive(z)) {
		forked = fork_init(run, &a, z, cg, sp);
		if (forked < 0) {
			log_msg(LOG_LEVEL_WARN, "sandbox: the zygote did not fork (%s); this "
				"sandbox is cloned", run->error);
			run_error_clear(run);
		}
	}
	if (forked < 0 && clone_init(run, &a, cg, sp, 0) < 0)
		return -1;
	memcpy(sp->root, a.root, sizeof(sp->root));
	sp->cfg = cfg;
	sp->cgroup = cg;
	if (release_init(run, cfg, cg, sp) < 0) {
		spare_end(sp);
		return -1;
	}
	return 0;
}

/* MSG_ZCONFIG for a: its configuration, strings and filter. */
static int send_zygote_config(int sock, const struct sandbox_init_args *a,
			      const char *preload)
{
	struct sandbox_msg m;
	struct zygote_config zc;
	struct iovec iov[3];
	ssize_t want, w;

	memset(&m, 0, sizeof(m));
	m.type = MSG_ZCONFIG;
	memset(&zc, 0, sizeof(zc));
	zc.cfg = *a->cfg;
	zc.args = *a;
	zc.args.cfg = NULL;
	zc.args.filter = NULL;
	snprintf(zc.preload, sizeof(zc.preload), "%s", preload);
	zc.runs_import = a->zygote_deps != NULL;
	zc.filter_len = a->filter->len;
	if (zc.filter_len > ZYGOTE_FILTER_MAX || strlen(preload) >= sizeof(zc.preload)) {
		errno = E2BIG;
		return -1;
	}
	iov[0] = (struct iovec){ &m, sizeof(m) };
	iov[1] = (struct iovec){ &zc, sizeof(zc) };
	iov[2] = (struct iovec){ a->filter->filter, sizeof(a->filter->filter[0]) * zc.filter_len };
	want = (ssize_t)(iov[0].iov_len + iov[1].iov_len + iov[2].iov_len);
	w = sandbox_msg_send_fds(sock, iov, 3, NULL, 0);
	if (w >= 0 && w != want)
		errno = EMSGSIZE;
	return w == want ? 0 : -1;
}

int sandbox_start_zygote(struct sandbox_spare *sp, const struct sandbox_config *cfg,
			 const char *root, int binary_fd, int log_fd, char *const *argv,
			 char *const *envp, const char *deps, const char *preload, char *err,
			 size_t errlen)
{
	struct sandbox_run run;
	struct sandbox_init_args a;

	memset(&run, 0, sizeof(run));
	spare_clear(sp);
	if (start_check(&run, cfg, root) < 0 || init_args_fill(&a, &run, cfg, root) < 0)
		goto fail;
	a.zygote_fd = binary_fd;
	a.log_fd = log_fd;
	a.zygote_argv = argv;
	a.zygote_envp = envp;
	a.zygote_deps = deps;
	if (clone_init(&run, &a, NULL, sp, 1) < 0)
		goto fail;
	memcpy(sp->root, a.root, sizeof(sp->root));
	sp->cfg = cfg;
	if (release_init(&run, cfg, NULL, sp) < 0)
		goto fail_end;
	if (send_zygote_config(sp->sock, &a, preload) < 0) {
		run_error(&run, STEP_HANDSHAKE, "cannot send the zygote its configuration: %s",
			  strerror(errno));
		goto fail_end;
	}
	return 0;
fail_end:
	spare_end(sp);
fail:
	snprintf(err, errlen, "%s", run.error);
	return -1;
}

/* When m is init's report of a failed step, it becomes run->error (in
 * place of what the supervisor saw of that failure: init says best what
 * failed); 1 then, else 0. */
static int init_reported(struct sandbox_run *run, const struct sandbox_msg *m)
{
	if (m->type != MSG_ERROR)
		return 0;
	run_error_clear(run);
	errno = m->err != 0 ? m->err : EPERM;
	run_error(run, m->step, "%s", m->text);
	return 1;
}

/* Waits for init's next message, which should be type: 0 when it is (and
 * carries an fd when type is MSG_WORK: into *fd); -1 with run->error
 * otherwise. */
static int await_msg(struct sandbox_run *run, int sock, int type, int *fd)
{
	struct sandbox_msg m;
	int wfd = -1;

	if (sandbox_msg_recv(sock, setup_deadline(), &m, &wfd) < 0) {
		if (errno == ETIMEDOUT)
			run_error(run, STEP_HANDSHAKE, "init was not ready within %d ms",
				  SANDBOX_SETUP_TIMEOUT_MS);
		else
			run_error(run, STEP_HANDSHAKE, "init ended during setup: %s",
				  strerror(errno));
		return -1;
	}
	if (m.type == type && (wfd >= 0) == (type == MSG_WORK)) {
		if (fd != NULL)
			*fd = wfd;
		return 0;
	}
	fd_close(&wfd);
	if (!init_reported(run, &m)) {
		errno = EPROTO;
		run_error(run, STEP_HANDSHAKE, "init answered out of turn");
	}
	return -1;
}

/* sp's /work, once init has set up the new root (sp->work_fd). 0, or -1
 * with run->error. */
static int await_work(struct sandbox_run *run, struct sandbox_spare *sp)
{
	if (sp->work_fd >= 0)
		return 0;
	if (await_msg(run, sp->sock, MSG_WORK, &sp->work_fd) < 0)
		return -1;
	/* The new root is in place: its mount point on the host is a plain
	 * directory again. */
	if (sp->own_root && rmdir(sp->root) == 0)
		sp->own_root = 0;
	return 0;
}

/* Hands a started sandbox its run: (once /work is set up) the request,
 * then (init ready) the uploads copied into /work unless they are there
 * already (no upload_fd), then "go". On success the run owns init (its pid is
 * returned, sp is left empty); on failure (-1 with run->error) sp still
 * holds it. */
static pid_t sandbox_enter(struct sandbox_run *run, struct sandbox_spare *sp,
			   const struct run_spec *spec, int stdin_fd, int out_w, int err_w)
{
	pid_t pid = sp->pid;

	if (await_work(run, sp) < 0)
		return -1;
	if (send_request(run, sp->sock, spec, stdin_fd, out_w, err_w) < 0) {
		/* init may have ended, and said why */
		struct sandbox_msg m;
		int wfd = -1;

		if (sandbox_msg_recv(sp->sock, util_now_ns() + 1000000, &m, &wfd) == 0)
			(void)init_reported(run, &m);
		fd_close(&wfd);
		return -1;
	}
	if (await_msg(run, sp->sock, MSG_READY, NULL) < 0)
		return -1;
	run->work_fd = sp->work_fd;
	sp->work_fd = -1;
	if (run->upload_fd >= 0 && copy_uploads(run) < 0)
		goto fail;
	if (sandbox_msg_send(sp->sock, MSG_GO) < 0) {
		run_error(run, STEP_HANDSHAKE, "cannot start init: %s", strerror(errno));
		goto fail;
	}
	if (util_set_nonblock(sp->status_r) < 0) {
		/* the payload is running: only its status would be lost */
		log_msg(LOG_LEVEL_WARN, "sandbox: fcntl: %s", strerror(errno));
	}
	run->status_fd = sp->status_r;
	sp->status_r = -1;
	/* Its payload runs in the zygote's interpreter when the run is the
	 * zygote's program; else it execs python, as a cold run does. */
	run->warm = sp->warm && zygote_same(sp->zygote, sp->zygote_gen) &&
		    zygote_matches(sp->zygote, spec);
	sp->pid = 0;                 /* the run's now: run_program reaps it */
	spare_end(sp);
	return pid;
fail:
	sandbox_run_close(run);
	return -1;
}

/* A run that can start: not started before, its dependency entry's path
 * absolute. Clears its outputs; 0, or -1 with errno and run->error. */
static int spawn_check(struct sandbox_run *run)
{
	run_error_clear(run);
	run->uploads_too_big = 0;
	if (run->held.pid <= 0)
		run->spare_used = 0;
	if (run->work_fd >= 0 || run->status_fd >= 0) {
		errno = EBUSY;
		run_error(run, STEP_PREPARE, "this run was started already");
		return -1;
	}
	if (run->deps_path != NULL && !path_ok(run->deps_path)) {
		errno = EINVAL;
		run_error(run, STEP_PREPARE, "the dependency entry's path is not absolute");
		return -1;
	}
	return 0;
}

/* The run in run->spare, when there is one made for this configuration
 * and cgroup; the spare is taken (left empty) whatever happens. The pid
 * when it served; 0 when there was none, or it failed for a reason of its
 * own (someone killed it, say: the run then gets a fresh sandbox, and the
 * reason is logged); -1 with run->error when the request's own fault (its
 * uploads) ends the run. */
static pid_t spawn_in_spare(struct sandbox_run *run, const struct run_spec *spec,
			    int stdin_fd, int out_w, int err_w)
{
	struct sandbox_spare *sp = run->spare;
	pid_t pid;

	if (sp == NULL || sp->pid <= 0)
		return 0;
	if (sp->cfg != run->cfg || sp->cgroup != spec->cgroup) {
		spare_end(sp);
		return 0;
	}
	pid = sandbox_enter(run, sp, spec, stdin_fd, out_w, err_w);
	if (pid > 0) {
		run->spare_used = 1;
		return pid;
	}
	spare_end(sp);
	if (run->failed_step == STEP_UPLOADS)
		return -1;
	log_msg(LOG_LEVEL_DEBUG, "sandbox: the spare sandbox failed (%s); "
		"setting up a new one", run->error);
	run_error_clear(run);
	return 0;
}

/* A sandbox of the run's own into sp, whose new root's mount point is the
 * request's tmp/: the namespace layer's /tmp lives in the disk tmpfs, so
 * that directory is free, and one directory fewer is made and removed on
 * the host per run. 0, or -1 with run->error (sp empty). */
static int start_fresh(struct sandbox_run *run, const struct cgroup_slot *cg,
		       struct sandbox_spare *sp)
{
	char root[PATH_MAX];

	spare_clear(sp);
	if ((size_t)snprintf(root, sizeof(root), "%s/tmp", run->req_dir) >= sizeof(root)) {
		errno = ENAMETOOLONG;
		run_error(run, STEP_PREPARE, "the request directory's path is too long");
		return -1;
	}
	if (mkdir(root, 0700) < 0 && errno != EEXIST) {
		run_error(run, STEP_PREPARE, "cannot create %s: %s", root, strerror(errno));
		return -1;
	}
	return sandbox_start(run, run->cfg, root, cg, sp);
}

/* The run in a sandbox of its own. The pid, or -1 with run->error. */
static pid_t spawn_fresh(struct sandbox_run *run, const struct run_spec *spec,
			 int stdin_fd, int out_w, int err_w)
{
	struct sandbox_spare fresh;
	pid_t pid;

	if (start_fresh(run, spec->cgroup, &fresh) < 0)
		return -1;
	pid = sandbox_enter(run, &fresh, spec, stdin_fd, out_w, err_w);
	if (pid < 0)
		spare_end(&fresh);
	return pid;
}

/* The run in the sandbox that holds its uploads (sandbox_run_take): no
 * other will do, since only it has them. The pid, or -1 with run->error. */
static pid_t spawn_held(struct sandbox_run *run, const struct run_spec *spec,
			int stdin_fd, int out_w, int err_w)
{
	pid_t pid = -1;

	if (run->held.cgroup != spec->cgroup) {
		errno = EINVAL;
		run_error(run, STEP_PREPARE, "the sandbox was taken for another cgroup");
	} else {
		pid = sandbox_enter(run, &run->held, spec, stdin_fd, out_w, err_w);
	}
	if (pid < 0)
		spare_end(&run->held);
	return pid;
}

static pid_t sandbox_spawn(void *arg, const struct run_spec *spec, int stdin_fd,
			   int out_w, int err_w)
{
	struct sandbox_run *run = arg;
	pid_t pid;
	int saved;

	if (run == NULL || run->cfg == NULL || run->req_dir == NULL ||
	    (run->upload_fd < 0 && run->held.pid <= 0) || spec == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (spawn_check(run) == 0) {
		if (run->held.pid > 0) {
			pid = spawn_held(run, spec, stdin_fd, out_w, err_w);
		} else {
			pid = spawn_in_spare(run, spec, stdin_fd, out_w, err_w);
			if (pid == 0)
				pid = spawn_fresh(run, spec, stdin_fd, out_w, err_w);
		}
		if (pid > 0)
			return pid;
	}
	saved = errno;
	if (run->error[0] == '\0')
		run_error(run, STEP_PREPARE, "%s", strerror(saved));
	/* the caller logs run->error */
	log_msg(LOG_LEVEL_DEBUG, "sandbox: %s", run->error);
	errno = saved;
	return -1;
}

static int sandbox_wait_status(void *arg, int status)
{
	struct sandbox_run *run = arg;
	int st;
	ssize_t n;

	if (run == NULL || run->status_fd < 0)
		return status;
	do
		n = read(run->status_fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	(void)close(run->status_fd);
	run->status_fd = -1;
	/* Nothing written: init itself was killed (the wall time, say). */
	return n == (ssize_t)sizeof(st) ? st : status;
}

const struct run_spawner sandbox_spawner = {
	.spawn = sandbox_spawn,
	.wait_status = sandbox_wait_status,
	.arg = NULL,
	.name = "namespaces",
};

void sandbox_run_init(struct sandbox_run *run, const struct sandbox_config *cfg,
		      const char *req_dir, int upload_fd, const char *deps_path,
		      struct collect_snapshot *snap)
{
	memset(run, 0, sizeof(*run));
	run->cfg = cfg;
	run->req_dir = req_dir;
	run->upload_fd = upload_fd;
	run->deps_path = deps_path;
	run->snap = snap;
	run->work_fd = -1;
	run->status_fd = -1;
	run->spare = NULL;
	spare_clear(&run->held);
}

void sandbox_run_close(struct sandbox_run *run)
{
	if (run == NULL)
		return;
	if (run->work_fd >= 0)
		(void)close(run->work_fd);
	if (run->status_fd >= 0)
		(void)close(run->status_fd);
	run->work_fd = run->status_fd = -1;
	spare_end(&run->held);
}

int sandbox_run_take(struct sandbox_run *run, const struct cgroup_slot *cg)
{
	struct sandbox_spare *sp = run->spare;

	run->spare = NULL;
	run_error_clear(run);
	if (run->held.pid > 0 || run->work_fd >= 0 || run->req_dir == NULL) {
		errno = EBUSY;
		run_error(run, STEP_PREPARE, "this run has its sandbox already");
		return -1;
	}
	if (sp != NULL && sp->pid > 0 && sp->cfg == run->cfg && sp->cgroup == cg) {
		run->held = *sp;             /* the spare is the run's now */
		spare_clear(sp);
		if (await_work(run, &run->held) == 0) {
			run->spare_used = 1;
			return run->held.work_fd;
		}
		spare_end(&run->held);
		log_msg(LOG_LEVEL_DEBUG, "sandbox: the spare sandbox failed (%s); "
			"setting up a new one", run->error);
		run_error_clear(run);
	} else if (sp != NULL) {
		spare_end(sp);
	}
	run->spare_used = 0;
	if (start_fresh(run, cg, &run->held) == 0 && await_work(run, &run->held) == 0)
		return run->held.work_fd;
	spare_end(&run->held);
	return -1;
}

void sandbox_upload_modes(const struct sandbox_config *cfg, mode_t *dir_bits,
			  mode_t *file_bits)
{
	const int own_ids = cfg->run_uid != cfg->uid;

	*dir_bits = own_ids ? 0777 : 0;
	*file_bits = own_ids ? 0666 : 0;
}

int sandbox_spare_alive(const struct sandbox_spare *sp)
{
	siginfo_t si;

	if (sp->pidfd < 0)
		return -1;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0)
		return errno == EINVAL ? -1 : 0;
	return si.si_pid == 0;
}

void sandbox_spare_init(struct sandbox_spare *sp)
{
	spare_clear(sp);
}

int sandbox_spare_make(struct sandbox_spare *sp, const struct sandbox_config *cfg,
		       const char *dir, const struct cgroup_slot *cg)
{
	struct sandbox_run err;
	char root[PATH_MAX];

	if (sp->pid > 0) {
		struct zygote *want = zygote_for_spares();

		/* still there, still waiting, and of the zygote spares come from? */
		if (sp->cfg == cfg && sp->cgroup == cg && sandbox_spare_alive(sp) == 1 &&
		    (!sp->warm || want == NULL ||
		     (sp->zygote == want && zygote_same(want, sp->zygote_gen))))
			return 0;
		spare_end(sp);
	}
	/* Named like a request directory ("<pid>-..."): swept with a dead
	 * worker's, spared by any other pyexec sharing the directory. */
	if ((size_t)snprintf(root, sizeof(root), "%s/%d-sandbox.XXXXXX", dir, (int)getpid()) >=
	    sizeof(root)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdtemp(root) == NULL)
		return -1;
	memset(&err, 0, sizeof(err));
	err.zygote = zygote_for_spares();
	if (sandbox_start(&err, cfg, root, cg, sp) < 0) {
		int saved = errno;

		log_msg(LOG_LEVEL_DEBUG, "sandbox: no spare sandbox: %s", err.error);
		(void)rmdir(root);
		errno = saved;
		return -1;
	}
	sp->own_root = 1;
	/* Without pidfds that waitid takes (Linux 5.4), a spare that someone
	 * else reaped could not be told from a process that took its pid:
	 * none are kept. */
	if (sandbox_spare_alive(sp) < 0) {
		spare_end(sp);
		errno = ENOSYS;
		return -1;
	}
	return 0;
}

void sandbox_spare_discard(struct sandbox_spare *sp)
{
	if (sp != NULL)
		spare_end(sp);
}

