/* zygote: the worker's side of its zygote (zygote.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncsafe.h"
#include "cgroup.h"
#include "files.h"
#include "log.h"
#include "util.h"
#include "workdir.h"
#include "zygote.h"

/* The zygote whose runs and sandboxes this process forks (NULL: none). */
static struct zygote *in_use;

void zygote_use(struct zygote *z)
{
	in_use = z;
}

struct zygote *zygote_in_use(void)
{
	return in_use;
}

static struct zygote *const *sets_in_use;
static size_t nsets_in_use;

void zygote_use_sets(struct zygote *const *sets, size_t n)
{
	sets_in_use = sets;
	nsets_in_use = sets != NULL ? n : 0;
}

struct zygote *zygote_for(const struct run_spec *spec)
{
	if (in_use != NULL && zygote_alive(in_use) && zygote_matches(in_use, spec))
		return in_use;
	for (size_t i = 0; i < nsets_in_use; i++)
		if (zygote_alive(sets_in_use[i]) && zygote_matches(sets_in_use[i], spec))
			return sets_in_use[i];
	return NULL;
}

static void (*note_fn)(const char *deps, int lock_fd, void *arg);
static void *note_arg;
static struct zygote *for_spares;

void zygote_use_for_spares(struct zygote *z)
{
	for_spares = z;
}

struct zygote *zygote_for_spares(void)
{
	return for_spares != NULL ? for_spares : in_use;
}

void zygote_note_set(const char *deps, int lock_fd)
{
	if (deps == NULL || lock_fd < 0 || strlen(deps) >= PATH_MAX)
		deps = NULL, lock_fd = -1;
	if (note_fn != NULL)
		note_fn(deps, lock_fd, note_arg);
}

void zygote_note_hook(void (*fn)(const char *deps, int lock_fd, void *arg), void *arg)
{
	note_fn = fn;
	note_arg = arg;
}

static struct zygote *(*finder)(const char *, void *);
static void *finder_arg;

void zygote_set_finder(struct zygote *(*fn)(const char *deps, void *arg), void *arg)
{
	finder = fn;
	finder_arg = arg;
}

struct zygote *zygote_of_set(const char *deps)
{
	return finder != NULL && deps != NULL ? finder(deps, finder_arg) : NULL;
}

void zygote_init(struct zygote *z)
{
	memset(z, 0, sizeof(*z));
	sandbox_spare_init(&z->sp);
	z->log_r = -1;
}

/* Copies argv and envp into z (for zygote_matches). 0, or -1 when they
 * exceed ZYGOTE_VEC_MAX entries or ZYGOTE_STRS_MAX bytes. */
static int keep_vectors(struct zygote *z, char *const *argv, char *const *envp)
{
	size_t off = 0, k = 0;

	for (int which = 0; which < 2; which++) {
		char *const *v = which == 0 ? argv : envp;

		if (which == 1)
			z->envp = &z->argv[k];
		for (; *v != NULL; v++) {
			size_t len = strlen(*v) + 1;

			if (k >= ZYGOTE_VEC_MAX || len > sizeof(z->strs) - off)
				return -1;
			memcpy(z->strs + off, *v, len);
			z->argv[k++] = z->strs + off;
			off += len;
		}
		z->argv[k++] = NULL;
	}
	return 0;
}

/* What the zygote wrote on its stdout and stderr, into the log. */
static void log_output(struct zygote *z)
{
	char buf[1024];
	ssize_t n;

	if (z->log_r < 0)
		return;
	while ((n = read(z->log_r, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_msg(LOG_LEVEL_WARN, "zygote: %s", buf);
	}
}

#define ZYGOTE_SETUP_NS ((int64_t)SANDBOX_SETUP_TIMEOUT_MS * 1000000)

int zygote_await(struct zygote *z, int64_t deadline)
{
	struct sandbox_msg m;
	int fd = -1;

	if (z->ready)
		return 1;
	if (z->launched_ns == 0) {
		snprintf(z->why, sizeof(z->why), "the zygote was not launched");
		return -1;
	}
	if (deadline > z->launched_ns + ZYGOTE_SETUP_NS)
		deadline = z->launched_ns + ZYGOTE_SETUP_NS;
	if (sandbox_msg_recv(z->sp.sock, deadline, &m, &fd) < 0) {
		if (errno == ETIMEDOUT && util_now_ns() < z->launched_ns + ZYGOTE_SETUP_NS)
			return 0;
		snprintf(z->why, sizeof(z->why), "the zygote did not start: %s",
			 errno == ETIMEDOUT ? "no answer in time" : strerror(errno));
		goto fail;
	}
	if (fd >= 0)
		(void)close(fd);
	m.text[sizeof(m.text) - 1] = '\0';
	if (m.type == MSG_ERROR) {
		snprintf(z->why, sizeof(z->why), "the zygote did not start: %s", m.text);
		goto fail;
	}
	if (m.type != MSG_ZREADY) {
		snprintf(z->why, sizeof(z->why), "the zygote did not start: it answered out of turn");
		goto fail;
	}
	memcpy(z->version, m.text, sizeof(z->version));
	z->ready = 1;
	z->ready_ns = util_now_ns();
	/* Its new root is in place: the mount point is a plain directory
	 * again (a plain zygote removed its directory itself). */
	if (z->sp.own_root && (rmdir(z->sp.root) == 0 || errno == ENOENT))
		z->sp.own_root = 0;
	return 1;
fail:
	log_output(z);
	zygote_stop(z);
	return -1;
}

/* A launch's start: z stopped and emptied, plain or not, with argv and
 * envp kept, and a new directory "<pid>-zygote.XXXXXX" in dir made at
 * root (PATH_MAX bytes). 0, or -1 with z->why. */
static int launch_begin(struct zygote *z, int plain, const char *dir, char *root,
			char *const *argv, char *const *envp)
{
	static uint64_t generations;

	zygote_stop(z);
	z->plain = plain;
	z->why[0] = '\0';
	z->generation = ++generations;
	z->forks = 0;
	z->launched_ns = z->ready_ns = 0;
	if (keep_vectors(z, argv, envp) < 0) {
		snprintf(z->why, sizeof(z->why), "the run's argv and environment are too long "
			 "for the zygote");
		return -1;
	}
	if ((size_t)snprintf(root, PATH_MAX, "%s/%d-zygote.XXXXXX", dir, (int)getpid()) >=
	    PATH_MAX || mkdtemp(root) == NULL) {
		snprintf(z->why, sizeof(z->why), "cannot create the zygote's directory in %s: %s",
			 dir, strerror(errno));
		root[0] = '\0';
		return -1;
	}
	return 0;
}

/* A launch's end: z's process started, log_r the read end of its output. */
static void launch_done(struct zygote *z, int log_r)
{
	z->log_r = log_r;
	(void)util_set_nonblock(z->log_r);
	z->launched_ns = util_now_ns();
}

int zygote_launch(struct zygote *z, const struct sandbox_config *cfg, const char *dir,
		  int binary_fd, char *const *argv, char *const *envp, const char *preload)
{
	char root[PATH_MAX], err[256];
	int lp[2] = { -1, -1 };

	if (launch_begin(z, 0, dir, root, argv, envp) < 0)
		return -1;
	if (pipe2(lp, O_CLOEXEC) < 0) {
		snprintf(z->why, sizeof(z->why), "pipe: %s", strerror(errno));
		goto fail_dir;
	}
	if (sandbox_start_zygote(&z->sp, cfg, root, binary_fd, lp[1], argv, envp,
				 z->deps[0] != '\0' ? z->deps : NULL, preload, err, sizeof(err)) < 0) {
		snprintf(z->why, sizeof(z->why), "%s", err);
		goto fail_dir;
	}
	z->sp.own_root = 1;
	(void)close(lp[1]);
	launch_done(z, lp[0]);
	return 0;
fail_dir:
	(void)rmdir(root);
	if (lp[0] >= 0)
		(void)close(lp[0]);
	if (lp[1] >= 0)
		(void)close(lp[1]);
	return -1;
}

int zygote_alive(struct zygote *z)
{
	if (!z->ready || z->sp.pid <= 0)
		return 0;
	if (sandbox_spare_alive(&z->sp) == 1)
		return 1;
	log_output(z);
	log_msg(LOG_LEVEL_WARN, "zygote: pid %ld is gone; runs start cold until it is "
		"replaced", (long)z->sp.pid);
	snprintf(z->why, sizeof(z->why), "the zygote ended");
	zygote_stop(z);
	return 0;
}

/* Sends z a request to fork (iov's two parts, with nfd fds) and reads its
 * answer: the new process's pid; 0 when z could not fork (it stays); -1
 * when z failed (it is stopped, z->why). err says why when not a pid. */
static pid_t ask(struct zygote *z, struct iovec *iov, const int *fds, size_t nfd, char *err,
		 size_t errlen)
{
	struct sandbox_msg m;
	int fd = -1;
	ssize_t w = sandbox_msg_send_fds(z->sp.sock, iov, 2, fds, nfd);

	if (w != (ssize_t)(iov[0].iov_len + iov[1].iov_len) ||
	    sandbox_msg_recv(z->sp.sock, util_now_ns() + (int64_t)SANDBOX_SETUP_TIMEOUT_MS *
			     1000000, &m, &fd) < 0) {
		snprintf(err, errlen, "the zygote did not answer: %s", strerror(errno));
		goto fail;
	}
	if (fd >= 0)
		(void)close(fd);
	if (m.type != MSG_ZFORKED || (m.err == 0 && m.step <= 0)) {
		snprintf(err, errlen, "the zygote answered out of turn");
		goto fail;
	}
	if (m.err != 0) {
		snprintf(err, errlen, "the zygote could not fork: %s", strerror(m.err));
		return 0;
	}
	z->forks++;
	return (pid_t)m.step;
fail:
	log_output(z);
	zygote_stop(z);
	snprintf(z->why, sizeof(z->why), "%s", err);
	return -1;
}

pid_t zygote_fork(struct zygote *z, int init_sock, int status_w, const char *root,
		  int new_cgroup_ns, char *err, size_t errlen)
{
	struct sandbox_msg m;
	struct zygote_fork zf;
	struct iovec iov[2];
	int fds[2] = { init_sock, status_w };
	pid_t pid;

	if (!z->ready || strlen(root) >= sizeof(zf.root)) {
		snprintf(err, errlen, "no zygote");
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_ZFORK;
	memset(&zf, 0, sizeof(zf));
	strcpy(zf.root, root);
	zf.new_cgroup_ns = new_cgroup_ns;
	iov[0] = (struct iovec){ &m, sizeof(m) };
	iov[1] = (struct iovec){ &zf, sizeof(zf) };
	pid = ask(z, iov, fds, 2, err, errlen);
	return pid > 0 ? pid : -1;
}

static const char *const run_vars[ZYGOTE_RUN_NVARS] = ZYGOTE_RUN_VARS;

/* Whether two entries are the same variable with the same value, or (for
 * a plain zygote) one of run_vars with a value of the same length. */
static int same_entry(const struct zygote *z, const char *a, const char *b)
{
	int i = z->plain ? zygote_run_var(a) : -1;

	return strcmp(a, b) == 0 || (i >= 0 && zygote_run_var(b) == i && strlen(a) == strlen(b));
}

int zygote_matches(const struct zygote *z, const struct run_spec *spec)
{
	size_t i;

	if (z->argv[0] == NULL || strcmp(spec->path, z->argv[0]) != 0 ||
	    !util_same_strings(spec->argv, z->argv))
		return 0;
	for (i = 0; spec->envp[i] != NULL && z->envp[i] != NULL; i++)
		if (!same_entry(z, spec->envp[i], z->envp[i]))
			return 0;
	return spec->envp[i] == NULL && z->envp[i] == NULL;
}

/* The child of zygote_launch_plain (async-signal-safe only): a session of
 * its own, death with parent, cwd dir, then the zygote with its fds. */
__attribute__((noreturn))
static void plain_child(pid_t parent, const char *dir, int sock, int log_w, int binary_fd,
			char *const *argv, char *const *envp)
{
	(void)setsid();
	run_child_signals_default(log_w);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	if (chdir(dir) < 0)
		asyncsafe_fail(log_w, "change directory to", dir, errno);
	asyncsafe_fail(log_w, sandbox_exec_zygote(binary_fd, log_w, sock, argv, envp), NULL,
		       errno);
}

/* Sends a plain zygote its configuration: preload (runs_import), nothing
 * else. */
static int send_plain_config(int sock, const char *preload, int runs_import)
{
	struct sandbox_msg m;
	static struct zygote_config zc;
	struct iovec iov[2] = { { &m, sizeof(m) }, { &zc, sizeof(zc) } };

	memset(&m, 0, sizeof(m));
	m.type = MSG_ZCONFIG;
	memset(&zc, 0, sizeof(zc));
	zc.plain = 1;
	zc.runs_import = runs_import;
	if (strlen(preload) >= sizeof(zc.preload)) {
		errno = E2BIG;
		return -1;
	}
	snprintf(zc.preload, sizeof(zc.preload), "%s", preload);
	return sandbox_msg_send_fds(sock, iov, 2, NULL, 0) == (ssize_t)(sizeof(m) + sizeof(zc))
	       ? 0 : -1;
}

int zygote_launch_plain(struct zygote *z, const char *dir, int binary_fd, char *const *argv,
			char *const *envp, const char *preload)
{
	int sv[2] = { -1, -1 }, lp[2] = { -1, -1 };
	sigset_t all, old;
	pid_t parent = getpid(), pid;

	if (launch_begin(z, 1, dir, z->sp.root, argv, envp) < 0)
		return -1;
	z->sp.own_root = 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(lp, O_CLOEXEC) < 0) {
		snprintf(z->why, sizeof(z->why), "cannot make the zygote's socket: %s",
			 strerror(errno));
		goto fail;
	}
	/* No handler of this process may run in the child before it resets them. */
	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		plain_child(parent, z->sp.root, sv[1], lp[1], binary_fd, argv, envp);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		snprintf(z->why, sizeof(z->why), "cannot start the zygote: fork: %s",
			 strerror(errno));
		goto fail;
	}
	z->sp.pid = pid;
	z->sp.pidfd = pidfd_open(pid, 0);
	z->sp.sock = sv[0];
	sv[0] = -1;
	(void)close(sv[1]);
	(void)close(lp[1]);
	launch_done(z, lp[0]);
	if (z->sp.pidfd < 0 || send_plain_config(z->sp.sock, preload, z->deps[0] != '\0') < 0) {
		snprintf(z->why, sizeof(z->why), "cannot start the zygote: %s", strerror(errno));
		zygote_stop(z);
		return -1;
	}
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			(void)close(sv[i]);
		if (lp[i] >= 0)
			(void)close(lp[i]);
	}
	zygote_stop(z);
	return -1;
}

/* zr's cwd and values of run_vars from spec. 0, or -1 when one is too long. */
static int run_request(struct zygote_run *zr, const struct run_spec *spec)
{
	memset(zr, 0, sizeof(*zr));
	if (spec->cwd == NULL || strlen(spec->cwd) >= sizeof(zr->cwd))
		return -1;
	strcpy(zr->cwd, spec->cwd);
	for (char *const *e = spec->envp; *e != NULL; e++) {
		int i = zygote_run_var(*e);
		const char *v = *e + (i >= 0 ? strlen(run_vars[i]) + 1 : 0);

		if (i < 0)
			continue;
		if (strlen(v) >= sizeof(zr->values[i]))
			return -1;
		strcpy(zr->values[i], v);
	}
	zr->lim = spec->lim;
	return 0;
}

/* The plain zygote's run forked ahead of its request (zygote_spare_make),
 * and the dependency entry of the zygote that forked it ("": none). It
 * serves a zygote of the same entry (an earlier one's is as good); a run
 * of another zygote discards it first, as it waits in the run's cgroup. */
static struct sandbox_spare spare = { .pidfd = -1, .sock = -1, .status_r = -1, .work_fd = -1 };
static char spare_deps[PATH_MAX];

void zygote_spare_discard(void)
{
	sandbox_spare_discard(&spare);
}

int zygote_spare_make(struct zygote *z, const struct cgroup_slot *cg, char *err, size_t errlen)
{
	struct sandbox_msg m;
	struct iovec iov[2] = { { &m, sizeof(m) }, { NULL, 0 } };
	int sv[2];
	pid_t pid;

	if (spare.pid > 0 && spare.cgroup == cg && z != NULL && strcmp(spare_deps, z->deps) == 0 &&
	    sandbox_spare_alive(&spare) == 1)
		return 0;
	sandbox_spare_discard(&spare);
	if (z == NULL || !z->ready || !z->plain) {
		snprintf(err, errlen, "no zygote");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_ZFORK;
	pid = ask(z, iov, &sv[1], 1, err, errlen);
	(void)close(sv[1]);
	if (pid > 0) {
		spare.pid = pid;
		spare.sock = sv[0];
		spare.pidfd = pidfd_open(pid, 0);
		/* Moved while no request waits: in cgroup v1 a move waits for
		 * the kernel's RCU grace period (milliseconds). */
		if (spare.pidfd >= 0 && (cg == NULL || cgroup_slot_attach(cg, pid) == 0)) {
			spare.cgroup = cg;
			memcpy(spare_deps, z->deps, sizeof(spare_deps));
			return 0;
		}
		snprintf(err, errlen, "cannot move the run into its cgroup: %s", strerror(errno));
		sandbox_spare_discard(&spare);
		return -1;
	}
	(void)close(sv[0]);
	return -1;
}

pid_t zygote_run(struct zygote *z, const struct run_spec *spec, int stdin_fd, int out_w,
		 int err_w, char *err, size_t errlen)
{
	struct sandbox_msg m;
	static struct zygote_run zr;
	struct iovec iov[2] = { { &m, sizeof(m) }, { &zr, sizeof(zr) } };
	int in = stdin_fd, fds[3];
	pid_t pid = -1;

	if (run_request(&zr, spec) < 0) {
		snprintf(err, errlen, "the run's directory is too long for the zygote");
		return -1;
	}
	if (zygote_spare_make(z, spec->cgroup, err, errlen) < 0)
		return -1;
	if (in < 0)
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "cannot open /dev/null: %s", strerror(errno));
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_ZRUN;
	fds[0] = in;
	fds[1] = out_w;
	fds[2] = err_w;
	if (sandbox_msg_send_fds(spare.sock, iov, 2, fds, 3) == (ssize_t)(sizeof(m) + sizeof(zr))) {
		/* from here on the run's: run_program reaps it */
		pid = spare.pid;
		spare.pid = 0;
		sandbox_spare_discard(&spare);
		/* Either side may win the race, as with a cold run. */
		(void)setpgid(pid, pid);
	} else {
		snprintf(err, errlen, "the zygote's run did not take its request: %s",
			 strerror(errno));
		sandbox_spare_discard(&spare);
	}
	if (in != stdin_fd)
		(void)close(in);
	return pid;
}

static pid_t spawn_zygote(void *arg, const struct run_spec *spec, int stdin_fd, int out_w,
			  int err_w)
{
	struct zygote_spawn *zs = arg;
	struct zygote *z = zygote_for(spec);
	char err[256];

	zs->warm = 0;
	if (z != NULL && z->plain) {
		pid_t pid = zygote_run(z, spec, stdin_fd, out_w, err_w, err, sizeof(err));

		if (pid > 0) {
			zs->warm = 1;
			return pid;
		}
		log_msg(LOG_LEVEL_WARN, "zygote: %s; this run starts cold", err);
	}
	return run_spawner_rlimits.spawn(run_spawner_rlimits.arg, spec, stdin_fd, out_w, err_w);
}

const struct run_spawner zygote_spawner = {
	.spawn = spawn_zygote,
	.arg = NULL,
	.name = "rlimits",
};

void zygote_stop(struct zygote *z)
{
	char parent[PATH_MAX], *name;
	int dfd = -1;

	/* A plain zygote's directory holds what a preload that broke the
	 * rule wrote there: it goes whole, once the zygote is gone. */
	if (z->plain && z->sp.own_root) {
		dfd = util_open_parent(z->sp.root, parent, sizeof(parent), &name);
		z->sp.own_root = dfd < 0;
	}
	sandbox_spare_discard(&z->sp);
	if (dfd >= 0) {
		if (workdir_rmtree_at(dfd, name) < 0)
			log_msg(LOG_LEVEL_WARN, "zygote: cannot remove %s/%s: %s", parent, name,
				strerror(errno));
		(void)close(dfd);
	}
	if (z->log_r >= 0)
		(void)close(z->log_r);
	z->log_r = -1;
	z->ready = 0;
	z->launched_ns = 0;
}
