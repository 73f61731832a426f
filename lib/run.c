#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asyncsafe.h"
#include "cgroup.h"
#include "log.h"
#include "run.h"
#include "util.h"

#define NS_PER_MS         1000000LL
#define NS_PER_S          1000000000LL

/* One read(2) from a pipe; a pipe holds 64 KiB by default. */
#define RUN_READ_CHUNK    65536
/* Tail of stderr kept in memory to find Python's last line ("MemoryError"). */
#define RUN_TAIL_SIZE     256
/* Most bytes moved into the program's stdin pipe by one splice(2). */
#define RUN_FEED_CHUNK    65536
/* Longest sleep in poll when a wake-up could be missed (no pidfd, or a
 * cancel flag set from a signal handler just before poll). */
#define RUN_SLICE_MS      50
#define RUN_CGROUP_POLL_MS 100   /* between reads of the run's cgroup */
/* How long killed processes get to disappear before we give up on them. */
#define RUN_REAP_MAX_NS   (5 * NS_PER_S)
/* How long the pipes are read after every writer was killed. */
#define RUN_DRAIN_MAX_NS  (1 * NS_PER_S)

/* ---------------------------------------------------------------------- */
/* The built-in spawner. Everything between fork() and execve() runs in the
 * child of a possibly multi-threaded caller, so it sticks to async-signal-safe
 * calls (asyncsafe.h). */

/* Lowering a limit is always allowed, raising a hard limit is not (without
 * CAP_SYS_RESOURCE): a request above the inherited hard limit gets the
 * inherited one, which is stricter, rather than failing the run. */
static int child_limit(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit cur, rl;

	if (getrlimit(resource, &cur) < 0)
		return -1;
	rl.rlim_cur = soft;
	rl.rlim_max = hard;
	if (cur.rlim_max != RLIM_INFINITY && rl.rlim_max > cur.rlim_max)
		rl.rlim_max = cur.rlim_max;
	if (rl.rlim_cur > rl.rlim_max)
		rl.rlim_cur = rl.rlim_max;
	return setrlimit(resource, &rl);
}

static rlim_t cpu_limit_seconds(uint64_t cpu_ms)
{
	return (rlim_t)(cpu_ms / 1000 + (cpu_ms % 1000 != 0));
}

void run_child_signals_default(int err_w)
{
	struct sigaction sa;
	/* the kernel's struct sigaction; all zero is SIG_DFL, no flags, empty mask */
	struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } kdfl = { 0 };
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		/* glibc refuses its own real-time signals (32, 33); an ignored
		 * one inherited from whoever started pyexec must not reach the
		 * program, so those go straight to the kernel. */
		if (sigaction(sig, &sa, NULL) < 0 && errno == EINVAL)
			(void)syscall(SYS_rt_sigaction, sig, &kdfl, NULL, (size_t)(_NSIG / 8));
	}
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		asyncsafe_fail(err_w, "unblock signals", NULL, errno);
}

/* stdin_fd (or /dev/null, rewound), out_w and err_w on 0-2, nothing else. */
static void child_fds(int stdin_fd, int out_w, int err_w)
{
	int in = stdin_fd, fin, fout, ferr;

	if (in < 0) {
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in < 0)
			asyncsafe_fail(err_w, "open", "/dev/null", errno);
	}
	/* Lift all three above 2 first: any of them may itself be 0, 1 or 2,
	 * and dup2 onto an fd still needed as a source would lose it. */
	fin = fcntl(in, F_DUPFD_CLOEXEC, 3);
	fout = fcntl(out_w, F_DUPFD_CLOEXEC, 3);
	ferr = fcntl(err_w, F_DUPFD_CLOEXEC, 3);
	if (fin < 0 || fout < 0 || ferr < 0)
		asyncsafe_fail(err_w, "duplicate a descriptor", NULL, errno);
	if (dup2(ferr, STDERR_FILENO) < 0)
		asyncsafe_fail(err_w, "set up standard error", NULL, errno);
	if (dup2(fin, STDIN_FILENO) < 0)
		asyncsafe_fail(STDERR_FILENO, "set up standard input", NULL, errno);
	if (dup2(fout, STDOUT_FILENO) < 0)
		asyncsafe_fail(STDERR_FILENO, "set up standard output", NULL, errno);
	/* The file description is shared with the caller, who wrote it. */
	if (lseek(STDIN_FILENO, 0, SEEK_SET) < 0 && errno != ESPIPE)
		asyncsafe_fail(STDERR_FILENO, "rewind standard input", NULL, errno);
	asyncsafe_close_except((const int[]){ 0, 1, 2 }, 3);
}

/* The rlimits of lim, and no core. */
static void child_limits(const struct run_limits *lim)
{
	if (lim->cpu_ms != 0) {
		rlim_t s = cpu_limit_seconds(lim->cpu_ms);

		/* SIGXCPU at the soft limit, SIGKILL a second later if ignored. */
		if (child_limit(RLIMIT_CPU, s, s + 1) < 0)
			asyncsafe_fail(STDERR_FILENO, "set", "RLIMIT_CPU", errno);
	}
	if (lim->memory != 0 &&
	    child_limit(RLIMIT_AS, (rlim_t)lim->memory, (rlim_t)lim->memory) < 0)
		asyncsafe_fail(STDERR_FILENO, "set", "RLIMIT_AS", errno);
	if (lim->file_size != 0 &&
	    child_limit(RLIMIT_FSIZE, (rlim_t)lim->file_size, (rlim_t)lim->file_size) < 0)
		asyncsafe_fail(STDERR_FILENO, "set", "RLIMIT_FSIZE", errno);
	if (lim->nproc != 0 && child_limit(RLIMIT_NPROC, lim->nproc, lim->nproc) < 0)
		asyncsafe_fail(STDERR_FILENO, "set", "RLIMIT_NPROC", errno);
	if (lim->nofile != 0 && child_limit(RLIMIT_NOFILE, lim->nofile, lim->nofile) < 0)
		asyncsafe_fail(STDERR_FILENO, "set", "RLIMIT_NOFILE", errno);
	if (child_limit(RLIMIT_CORE, 0, 0) < 0)
		asyncsafe_fail(STDERR_FILENO, "set", "RLIMIT_CORE", errno);
}

void run_child_setup(const struct run_spec *spec, int stdin_fd, int out_w, int err_w,
		     pid_t parent, int new_session)
{
	if (new_session ? setsid() < 0 : setpgid(0, 0) < 0)
		asyncsafe_fail(err_w, new_session ? "create a session" : "create a process group",
			       NULL, errno);
	run_child_signals_default(err_w);
	child_fds(stdin_fd, out_w, err_w);
	if (spec->cwd != NULL && chdir(spec->cwd) < 0)
		asyncsafe_fail(STDERR_FILENO, "change directory to", spec->cwd, errno);
	child_limits(&spec->lim);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		asyncsafe_fail(STDERR_FILENO, "set the parent-death signal", NULL, errno);
	/* The parent may have died before the line above: nobody would kill us. */
	if (getppid() != parent)
		_exit(127);
}

void run_child_exec(const struct run_spec *spec)
{
	execve(spec->path, spec->argv, spec->envp);
	asyncsafe_fail(STDERR_FILENO, "execute", spec->path, errno);
}

static pid_t spawn_rlimits(void *arg, const struct run_spec *spec, int stdin_fd,
			   int out_w, int err_w)
{
	sigset_t all, old;
	pid_t parent = getpid(), pid;
	int saved;

	(void)arg;
	/* No handler of the caller may run in the child before it resets them. */
	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, &old) < 0)
		return -1;
	pid = spec->cgroup != NULL ? cgroup_clone(spec->cgroup, 0) : fork();
	if (pid == 0) {
		run_child_setup(spec, stdin_fd, out_w, err_w, parent, 0);
		run_child_exec(spec);
	}
	saved = errno;
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		errno = saved;
		return -1;
	}
	/* Either side may win the race; EACCES once it has exec'd is fine. */
	(void)setpgid(pid, pid);
	return pid;
}

const struct run_spawner run_spawner_rlimits = {
	.spawn = spawn_rlimits,
	.arg = NULL,
	.name = "rlimits",
};

/* ---------------------------------------------------------------------- */
/* Names. */

const char *run_status_name(enum run_status s)
{
	switch (s) {
	case RUN_OK:      return "ok";
	case RUN_ERROR:   return "error";
	case RUN_TIMEOUT: return "timeout";
	case RUN_MEMORY:  return "memory";
	case RUN_KILLED:  return "killed";
	}
	return "unknown";
}

int run_become_subreaper(void)
{
	int on = 0;

	/* Asked of the kernel each time: the flag is not inherited across
	 * fork, so a cached answer would be wrong in a forked worker. */
	if (prctl(PR_GET_CHILD_SUBREAPER, &on) == 0 && on)
		return 0;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		log_msg(LOG_LEVEL_ERROR, "run: cannot become a child subreaper: %s",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Supervision. */

struct run_stream {
	int fd;                  /* read end of the pipe; -1 after EOF */
	int out;                 /* file receiving the kept bytes */
	uint64_t max;            /* bytes kept at most */
	uint64_t total;          /* bytes the program wrote */
	int last;                /* last byte kept, -1 before any */
	int write_errno;         /* first failure writing out; 0 if none */
	unsigned char *tail;     /* ring of the last RUN_TAIL_SIZE bytes, or NULL */
	const struct run_spec *spec; /* its on_output, given the kept bytes */
	int which;               /* 0 stdout, 1 stderr, for on_output */
	int gone;                /* on_output failed: the client is gone */
};

/* One read: keeps what fits under the cap, counts and discards the rest so
 * the program never blocks on a full pipe. 1 data, 0 nothing now, -1 EOF. */
static int stream_read(struct run_stream *s, unsigned char *buf, size_t len)
{
	ssize_t n;
	uint64_t kept, keep;

	do
		n = read(s->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		if (n < 0)
			log_msg(LOG_LEVEL_ERROR, "run: cannot read the program's output: %s",
				strerror(errno));
		(void)close(s->fd);
		s->fd = -1;
		return -1;
	}
	kept = s->total < s->max ? s->total : s->max;
	keep = s->max - kept < (uint64_t)n ? s->max - kept : (uint64_t)n;
	if (keep > 0 && s->write_errno == 0) {
		if (util_write_all(s->out, buf, (size_t)keep) < 0)
			s->write_errno = errno;
		else
			s->last = buf[keep - 1];
	}
	if (keep > 0 && !s->gone && s->spec != NULL && s->spec->on_output != NULL &&
	    s->spec->on_output(s->spec->on_output_arg, s->which, buf, (size_t)keep) < 0)
		s->gone = 1;
	if (s->tail != NULL) {
		size_t from = (size_t)n > RUN_TAIL_SIZE ? (size_t)n - RUN_TAIL_SIZE : 0;
		uint64_t pos = s->total + from;

		for (size_t i = from; i < (size_t)n; i++, pos++)
			s->tail[pos % RUN_TAIL_SIZE] = buf[i];
	}
	s->total += (uint64_t)n;
	return 1;
}

/* Whether the last line the program wrote to stderr starts with
 * "MemoryError": how Python reports an allocation refused by RLIMIT_AS. */
static int stream_tail_is_memory_error(const struct run_stream *s)
{
	static const char word[] = "MemoryError";
	char line[RUN_TAIL_SIZE] = "";
	size_t len = s->total < RUN_TAIL_SIZE ? (size_t)s->total : RUN_TAIL_SIZE;
	uint64_t start = s->total - len;
	size_t begin = 0;

	for (size_t i = 0; i < len; i++)
		line[i] = (char)s->tail[(start + i) % RUN_TAIL_SIZE];
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	for (size_t i = len; i > 0; i--)
		if (line[i - 1] == '\n') {
			begin = i;
			break;
		}
	/* No newline in the tail: the line may start before it, unless the
	 * tail is all the program wrote. */
	if (begin == 0 && start != 0)
		return 0;
	return len - begin >= sizeof(word) - 1 &&
	       memcmp(line + begin, word, sizeof(word) - 1) == 0;
}

/* Reads every pipe until EOF (all writers are dead by now) or until the
 * drain time runs out, for a writer that somehow survived. */
static void streams_drain(struct run_stream *st, size_t nst, unsigned char *buf,
			  size_t len)
{
	int64_t until = util_now_ns() + RUN_DRAIN_MAX_NS;

	for (;;) {
		struct pollfd pfd[2];
		int64_t left = until - util_now_ns();
		int nopen = 0, r;

		for (size_t i = 0; i < nst; i++) {
			pfd[i].fd = st[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
			nopen += st[i].fd >= 0;
		}
		if (nopen == 0)
			return;
		if (left <= 0) {
			log_msg(LOG_LEVEL_WARN, "run: output still open after the run was killed");
			return;
		}
		r = poll(pfd, (nfds_t)nst, (int)((left + NS_PER_MS - 1) / NS_PER_MS));
		if (r < 0 && errno != EINTR) {
			log_msg(LOG_LEVEL_ERROR, "run: poll: %s", strerror(errno));
			return;
		}
		for (size_t i = 0; i < nst && r > 0; i++)
			if (st[i].fd >= 0 && pfd[i].revents != 0)
				while (stream_read(&st[i], buf, len) > 0)
					;
	}
}

static void streams_close(struct run_stream *st, size_t nst)
{
	for (size_t i = 0; i < nst; i++)
		if (st[i].fd >= 0) {
			(void)close(st[i].fd);
			st[i].fd = -1;
		}
}

/* The program's standard input: a pipe the supervisor fills from the file
 * it was given, so the program holds no descriptor of the host's file (it
 * could not grow it with fallocate(2), write to it, or learn its path). */
struct run_feed {
	int src;                 /* the file; -1 when there is no input */
	off_t off;               /* next byte of src to send */
	int fd;                  /* the pipe's write end; -1 once closed */
};

static void feed_close(struct run_feed *f)
{
	if (f->fd >= 0) {
		(void)close(f->fd);
		f->fd = -1;
	}
}

/* Moves what the pipe takes now from the file into it (splice(2): the
 * bytes are not copied through the supervisor). At the end of the file, or
 * when the program closed its end, the pipe is closed: the program reads
 * EOF, or has stopped reading. A broken pipe must not kill the caller, so
 * SIGPIPE is blocked around the call and a pending one consumed. */
static void feed_step(struct run_feed *f)
{
	sigset_t pipe_set, old;
	struct timespec zero = { 0, 0 };
	ssize_t n;
	int saved;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	(void)sigprocmask(SIG_BLOCK, &pipe_set, &old);
	do
		n = splice(f->src, &f->off, f->fd, NULL, RUN_FEED_CHUNK,
			   SPLICE_F_NONBLOCK | SPLICE_F_MORE);
	while (n > 0);
	saved = errno;
	if (n < 0 && saved == EPIPE)
		(void)sigtimedwait(&pipe_set, NULL, &zero);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	if (n == 0)
		feed_close(f);
	else if (saved != EAGAIN && saved != EINTR) {
		if (saved != EPIPE)
			log_msg(LOG_LEVEL_WARN, "run: cannot feed standard input: %s",
				strerror(saved));
		feed_close(f);
	}
}

static void nanosleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / NS_PER_S), (long)(ns % NS_PER_S) };

	(void)nanosleep(&ts, NULL);
}

/* 1 when the main process has ended (still unreaped, so its pid, and the
 * process group named after it, cannot be reused yet), 0 when running. */
static int child_has_ended(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == EINTR ? 0 : 1;  /* ECHILD: someone else reaped it */
	return si.si_pid == pid;
}

/* Reaps the main process (killed already if it had not ended), waiting at
 * most RUN_REAP_MAX_NS. 0, or -1 when it could not be reaped. */
static int child_reap(pid_t pid, int pidfd, int *status, struct rusage *ru)
{
	int64_t until = util_now_ns() + RUN_REAP_MAX_NS;

	for (;;) {
		pid_t r = wait4(pid, status, WNOHANG, ru);
		int64_t left;

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR) {
			log_msg(LOG_LEVEL_ERROR, "run: cannot reap process %ld: %s",
				(long)pid, strerror(errno));
			return -1;
		}
		left = until - util_now_ns();
		if (left <= 0) {
			log_msg(LOG_LEVEL_ERROR, "run: process %ld survives SIGKILL", (long)pid);
			errno = ETIMEDOUT;
			return -1;
		}
		if (pidfd >= 0) {
			struct pollfd pfd = { .fd = pidfd, .events = POLLIN, .revents = 0 };

			(void)poll(&pfd, 1, (int)(left / NS_PER_MS + 1));
		} else {
			nanosleep_ns(left < 5 * NS_PER_MS ? left : 5 * NS_PER_MS);
		}
	}
}

/* The parent pid in /proc/<name>/stat; -1 if gone or unreadable. The command
 * name in parentheses may hold anything, so parse from the last ')'. */
static pid_t proc_ppid(int procfd, const char *name)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	long ppid = 0;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/stat", name) >= sizeof(path))
		return -1;
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* ") S 1234 ..." */
	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return -1;
	p += 4;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9' && ppid < INT_MAX / 10; p++)
		ppid = ppid * 10 + (*p - '0');
	return (pid_t)ppid;
}

static int kept_pid(pid_t pid, const pid_t *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] == pid)
			return 1;
	return 0;
}

/* The children of the calling thread from /proc/self/task/<tid>/children
 * (Linux 3.5 with CONFIG_PROC_CHILDREN): SIGKILLs those not kept. The
 * number killed, or -1 with errno when the file cannot be read. */
static int kill_listed_children(const pid_t *keep, size_t nkeep)
{
	char path[64], buf[4096];
	ssize_t n;
	size_t len = 0;
	int fd, killed = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)syscall(SYS_gettid));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			util_close_keep_errno(fd);
			return -1;
		}
		len += (size_t)n;
	}
	(void)close(fd);
	if (len == sizeof(buf) - 1) {
		errno = E2BIG;          /* more than fits: the long way */
		return -1;
	}
	buf[len] = '\0';
	for (char *p = buf; *p != '\0';) {
		char *end;
		long pid = strtol(p, &end, 10);

		if (end == p)
			break;
		if (pid > 0 && pid <= INT_MAX && !kept_pid((pid_t)pid, keep, nkeep) &&
		    kill((pid_t)pid, SIGKILL) == 0)
			killed++;
		p = end;
	}
	return killed;
}

/* SIGKILLs every child of ours. The caller is a subreaper, so whatever the
 * run started and left behind (a double-forked daemon in its own session)
 * comes back here as our child. A child's pid cannot be reused before we
 * reap it, so killing by pid is safe. The kernel's list of our children
 * when it has one, else every process's parent in /proc. */
int run_kill_children(const pid_t *keep, size_t nkeep)
{
	pid_t self = getpid();
	struct dirent *de;
	DIR *d;
	int killed = kill_listed_children(keep, nkeep);

	if (killed >= 0)
		return killed;
	killed = 0;
	d = opendir("/proc");
	if (d == NULL) {
		log_msg(LOG_LEVEL_ERROR, "run: cannot list /proc to kill leftovers: %s",
			strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || pid > INT_MAX || pid == self ||
		    kept_pid((pid_t)pid, keep, nkeep))
			continue;
		if (proc_ppid(dirfd(d), de->d_name) == self && kill((pid_t)pid, SIGKILL) == 0)
			killed++;
	}
	(void)closedir(d);
	return killed;
}

/* The children run_program's clean-up leaves alive: run_keep_child's and
 * run_keep_helpers' (0: none). */
enum { KEEP_CHILD, KEEP_HELPER, KEEP_N = KEEP_HELPER + RUN_HELPERS_MAX };
static pid_t keep_pids[KEEP_N];

void run_keep_child(pid_t pid)
{
	keep_pids[KEEP_CHILD] = pid;
}

void run_keep_helpers(const pid_t *pids, size_t n)
{
	for (size_t i = 0; i < RUN_HELPERS_MAX; i++)
		keep_pids[KEEP_HELPER + i] = i < n ? pids[i] : 0;
}

/* The kept children, packed into out: how many. */
static size_t kept(pid_t out[KEEP_N])
{
	size_t n = 0;

	for (int i = 0; i < KEEP_N; i++)
		if (keep_pids[i] > 0)
			out[n++] = keep_pids[i];
	return n;
}

/* Reaps every child that has ended (the kept one too: it is then no longer
 * kept). 0, or -1 with errno: ECHILD when no child is left. */
static int reap_ended(void)
{
	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
			return errno == EINTR ? 0 : -1;
		if (si.si_pid == 0)
			return 0;
		for (int i = 0; i < KEEP_N; i++)
			if (si.si_pid == keep_pids[i])
				keep_pids[i] = 0;
		(void)waitpid(si.si_pid, NULL, WNOHANG);
	}
}

/* Kills and reaps every remaining child but the kept one until none is
 * left (ECHILD, or only the kept one alive), which also means no
 * descendant is left: an orphan becomes our child before its parent can
 * be reaped. 0, or -1 when some survive RUN_REAP_MAX_NS. */
static int kill_leftovers(void)
{
	int64_t until = util_now_ns() + RUN_REAP_MAX_NS;
	int64_t nap = NS_PER_MS;

	for (;;) {
		pid_t keep[KEEP_N];
		size_t nkeep;
		int killed;

		if (reap_ended() < 0) {
			if (errno == ECHILD)
				return 0;
			log_msg(LOG_LEVEL_ERROR, "run: waitid: %s", strerror(errno));
			return -1;
		}
		if (util_now_ns() >= until) {
			log_msg(LOG_LEVEL_ERROR, "run: processes of a run survive SIGKILL");
			errno = ETIMEDOUT;
			return -1;
		}
		nkeep = kept(keep);
		killed = run_kill_children(keep, nkeep);
		if (killed == 0 && nkeep > 0)
			return 0;
		nanosleep_ns(nap);
		if (nap < 20 * NS_PER_MS)
			nap *= 2;
	}
}

/* The note goes on a line of its own at the end of the stderr file, even
 * past the cap: the user must see why the run ended. */
static int append_note(struct run_stream *err, const char *note)
{
	if (err->last >= 0 && err->last != '\n' &&
	    util_write_all(err->out, "\n", 1) < 0)
		return -1;
	if (util_write_all(err->out, note, strlen(note)) < 0 ||
	    util_write_all(err->out, "\n", 1) < 0)
		return -1;
	err->last = '\n';
	return 0;
}

static int64_t timeval_ns(const struct timeval *tv)
{
	return (int64_t)tv->tv_sec * NS_PER_S + (int64_t)tv->tv_usec * 1000;
}

static int64_t rusage_cpu_ns(const struct rusage *ru)
{
	return timeval_ns(&ru->ru_utime) + timeval_ns(&ru->ru_stime);
}

/* A caller that ignores SIGCHLD (or sets SA_NOCLDWAIT) gets its children
 * reaped by the kernel: no exit status, no rusage. */
static int sigchld_is_usable(void)
{
	struct sigaction sa;

	if (sigaction(SIGCHLD, NULL, &sa) < 0)
		return 0;
	return sa.sa_handler != SIG_IGN && (sa.sa_flags & SA_NOCLDWAIT) == 0;
}

enum run_end { END_EXITED, END_WALL, END_CPU, END_OOM, END_CANCEL, END_FAILED };

/* What the run's cgroup says of the run as a whole: END_CPU when its
 * processes together used more than cpu_ms, END_OOM when the OOM killer
 * killed one of them (cgroup v1 kills one process, not the run: the rest
 * goes too), else END_EXITED. */
static enum run_end cgroup_check(const struct run_spec *spec)
{
	int64_t cpu;

	if (spec->lim.cpu_ms != 0 && (cpu = cgroup_slot_cpu_ns(spec->cgroup)) >= 0 &&
	    cpu > (int64_t)spec->lim.cpu_ms * NS_PER_MS)
		return END_CPU;
	if (cgroup_slot_oom(spec->cgroup) == 1)
		return END_OOM;
	return END_EXITED;
}

/* One run in flight: what the phases of run_program share. */
struct run_state {
	const struct run_spec *spec;
	const struct run_spawner *spawner;
	unsigned char *buf;             /* RUN_READ_CHUNK bytes, for reading the pipes */
	unsigned char tail[RUN_TAIL_SIZE];
	struct run_stream st[2];        /* stdout, stderr */
	struct run_feed feed;           /* stdin */
	struct rusage before, after;    /* RUSAGE_CHILDREN around the run */
	struct rusage ru;               /* the main process's, once reaped */
	pid_t pid;
	int pidfd;                      /* -1 without pidfds (Linux < 5.3) */
	int status, reaped;             /* its wait status, once reaped */
	int fail_errno;                 /* why the run could not be kept; 0 if none */
	int64_t spawn_ns, end_ns;
	int64_t cg_cpu;                 /* the cgroup's count of the run's CPU; -1 none */
	int64_t beat_ns;                /* on_output's last call */
	enum run_end end;
};

/* What must hold before anything starts. 0, or -1 with errno (logged). */
static int run_check(const struct run_spec *spec)
{
	if (spec == NULL || spec->path == NULL || spec->argv == NULL ||
	    spec->envp == NULL || spec->stdout_fd < 0 || spec->stderr_fd < 0) {
		errno = EINVAL;
		log_msg(LOG_LEVEL_ERROR, "run: incomplete run specification");
		return -1;
	}
	if (!sigchld_is_usable()) {
		errno = EINVAL;
		log_msg(LOG_LEVEL_ERROR, "run: SIGCHLD is ignored; exit statuses would be lost");
		return -1;
	}
	return run_become_subreaper();
}

/* The pipes, the program, and the streams that read it. 0, or -1 with
 * errno (logged) and nothing left open. */
static int run_start(struct run_state *rs)
{
	const struct run_spec *spec = rs->spec;
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 }, saved;

	/* stdin is a pipe whether or not there is anything to feed it: a
	 * program sees the same kind of fd 0 (not seekable) either way, and
	 * a warm run's interpreter was made with one. */
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(inp, O_CLOEXEC) < 0) {
		log_msg(LOG_LEVEL_ERROR, "run: pipe: %s", strerror(errno));
		goto fail;
	}
	if (util_set_nonblock(outp[0]) < 0 || util_set_nonblock(errp[0]) < 0 ||
	    util_set_nonblock(inp[1]) < 0) {
		log_msg(LOG_LEVEL_ERROR, "run: fcntl: %s", strerror(errno));
		goto fail;
	}
	(void)getrusage(RUSAGE_CHILDREN, &rs->before);
	rs->pid = rs->spawner->spawn(rs->spawner->arg, spec, inp[0], outp[1], errp[1]);
	if (rs->pid < 0) {
		log_msg(LOG_LEVEL_ERROR, "run: cannot start %s (%s spawner): %s",
			spec->path, rs->spawner->name, strerror(errno));
		goto fail;
	}
	rs->spawn_ns = rs->beat_ns = util_now_ns();
	(void)close(outp[1]);
	(void)close(errp[1]);
	(void)close(inp[0]);
	if (spec->stdin_fd >= 0) {
		rs->feed.src = spec->stdin_fd;
		rs->feed.fd = inp[1];   /* the write end is the feed's now */
	} else {
		(void)close(inp[1]);    /* nothing to feed: end of file at once */
	}
	/* A pidfd turns readable when the process ends: no SIGCHLD handler,
	 * no polling. Without one (Linux < 5.3) poll sleeps in slices. */
	rs->pidfd = pidfd_open(rs->pid, 0);
	rs->st[0].fd = outp[0];
	rs->st[0].out = spec->stdout_fd;
	rs->st[1].fd = errp[0];
	rs->st[1].out = spec->stderr_fd;
	for (int i = 0; i < 2; i++) {
		rs->st[i].max = spec->lim.max_output;
		rs->st[i].last = -1;
		rs->st[i].spec = spec;
		rs->st[i].which = i;
	}
	rs->st[1].tail = rs->tail;
	return 0;

fail:
	saved = errno;
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			(void)close(outp[i]);
		if (errp[i] >= 0)
			(void)close(errp[i]);
		if (inp[i] >= 0)
			(void)close(inp[i]);
	}
	errno = saved;
	return -1;
}

/* How long poll may sleep at now: until the deadline, but in slices when
 * something must be looked at now and then (no pidfd, a cancel flag, the
 * cgroup's counts). -1 = no bound. */
static int run_poll_timeout(const struct run_state *rs, int64_t deadline, int64_t now)
{
	int64_t left = deadline == INT64_MAX ? -1 : (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
	int timeout = left < 0 || left > INT_MAX ? -1 : (int)left;

	if ((rs->pidfd < 0 || rs->spec->cancel != NULL) &&
	    (timeout < 0 || timeout > RUN_SLICE_MS))
		timeout = RUN_SLICE_MS;
	if (rs->spec->cgroup != NULL && (timeout < 0 || timeout > RUN_CGROUP_POLL_MS))
		timeout = RUN_CGROUP_POLL_MS;
	if (rs->spec->on_output != NULL && (timeout < 0 || timeout > RUN_BEAT_MS))
		timeout = RUN_BEAT_MS;
	return timeout;
}

/* 1 when the web server's connection (watch_fd) is gone: the client left. */
static int client_left(int watch_fd, short revents)
{
	char c;

	return (revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0 ||
	       recv(watch_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Reads the program's output and feeds its input until it ends, the wall
 * deadline passes, the cgroup says the run is over, or the request is
 * cancelled: why it stopped. */
static enum run_end run_wait(struct run_state *rs)
{
	const struct run_spec *spec = rs->spec;
	int watch_fd = spec->watch_fd;
	int64_t deadline, next_check = 0;

	if (spec->lim.wall_ms == 0 ||
	    spec->lim.wall_ms > (uint64_t)((INT64_MAX - rs->spawn_ns) / NS_PER_MS))
		deadline = INT64_MAX;
	else
		deadline = rs->spawn_ns + (int64_t)spec->lim.wall_ms * NS_PER_MS;
	for (int check_exit = 1;;) {
		struct pollfd pfd[5] = {
			{ rs->st[0].fd, POLLIN, 0 },        /* poll skips negative fds */
			{ rs->st[1].fd, POLLIN, 0 },
			{ rs->pidfd, POLLIN, 0 },
			{ watch_fd, POLLIN | POLLRDHUP, 0 },
			{ rs->feed.fd, POLLOUT, 0 },
		};
		int64_t now;
		enum run_end end;

		if (spec->cancel != NULL && *spec->cancel)
			return END_CANCEL;
		if (check_exit && child_has_ended(rs->pid))
			return END_EXITED;
		now = util_now_ns();
		if (now >= deadline)
			return END_WALL;
		if (spec->cgroup != NULL && now >= next_check) {
			next_check = now + RUN_CGROUP_POLL_MS * NS_PER_MS;
			end = cgroup_check(spec);
			if (end != END_EXITED)
				return end;
		}
		if (poll(pfd, 5, run_poll_timeout(rs, deadline, now)) < 0) {
			if (errno == EINTR)
				continue;
			rs->fail_errno = errno;
			log_msg(LOG_LEVEL_ERROR, "run: poll: %s", strerror(errno));
			return END_FAILED;
		}
		for (int i = 0; i < 2; i++)
			if (rs->st[i].fd >= 0 && pfd[i].revents != 0 &&
			    stream_read(&rs->st[i], rs->buf, RUN_READ_CHUNK) > 0)
				rs->beat_ns = util_now_ns();
		if (spec->on_output != NULL && !rs->st[0].gone && !rs->st[1].gone &&
		    util_now_ns() - rs->beat_ns >= RUN_BEAT_MS * NS_PER_MS) {
			rs->beat_ns = util_now_ns();
			if (spec->on_output(spec->on_output_arg, -1, NULL, 0) < 0)
				rs->st[0].gone = 1;
		}
		if (rs->st[0].gone || rs->st[1].gone)
			return END_CANCEL;
		if (rs->feed.fd >= 0 && pfd[4].revents != 0)
			feed_step(&rs->feed);
		check_exit = rs->pidfd < 0 || pfd[2].revents != 0;
		if (watch_fd >= 0 && pfd[3].revents != 0) {
			if (client_left(watch_fd, pfd[3].revents))
				return END_CANCEL;
			watch_fd = -1;
		}
	}
}

/* Everything of the run killed and reaped, its output read to the end. */
static void run_stop(struct run_state *rs)
{
	rs->end_ns = util_now_ns();
	feed_close(&rs->feed);
	/* Kill the group while the main process is unreaped, so its number
	 * still names our group and nobody else's. */
	if (rs->end != END_EXITED)
		(void)kill(rs->pid, SIGKILL);
	(void)kill(-rs->pid, SIGKILL);
	if (child_reap(rs->pid, rs->pidfd, &rs->status, &rs->ru) == 0) {
		rs->reaped = 1;
		if (rs->spawner->wait_status != NULL)
			rs->status = rs->spawner->wait_status(rs->spawner->arg, rs->status);
	} else if (rs->fail_errno == 0) {
		rs->fail_errno = errno;
	}
	if (kill_leftovers() < 0 && rs->fail_errno == 0)
		rs->fail_errno = errno;
	streams_drain(rs->st, 2, rs->buf, RUN_READ_CHUNK);
	streams_close(rs->st, 2);
	if (rs->pidfd >= 0)
		(void)close(rs->pidfd);
	rs->pidfd = -1;
	(void)getrusage(RUSAGE_CHILDREN, &rs->after);
}

/* The figures of the run: times, output sizes, exit code or signal. */
static void run_measure(struct run_state *rs, struct run_result *res)
{
	res->wall_ns = rs->end_ns - rs->spawn_ns;
	res->cpu_ns = rusage_cpu_ns(&rs->after) - rusage_cpu_ns(&rs->before);
	/* The cgroup counts every process of the run, and only the run. */
	if (rs->spec->cgroup != NULL && (rs->cg_cpu = cgroup_slot_cpu_ns(rs->spec->cgroup)) >= 0)
		res->cpu_ns = rs->cg_cpu;
	res->stdout_bytes = rs->st[0].total;
	res->stderr_bytes = rs->st[1].total;
	res->stdout_truncated = rs->st[0].total > rs->st[0].max || rs->st[0].write_errno != 0;
	res->stderr_truncated = rs->st[1].total > rs->st[1].max || rs->st[1].write_errno != 0;
	if (rs->reaped) {
		res->max_rss_kib = rs->ru.ru_maxrss;
		if (WIFEXITED(rs->status))
			res->exit_code = WEXITSTATUS(rs->status);
		else if (WIFSIGNALED(rs->status))
			res->signal = WTERMSIG(rs->status);
	} else if (rs->end != END_EXITED) {
		res->signal = SIGKILL;
	}
}

/* res->status and, when pyexec ended the run, the note that says why. */
static void run_verdict(const struct run_state *rs, struct run_result *res)
{
	const struct run_spec *spec = rs->spec;
	char secs[UTIL_SECONDS_LEN];
	int oom = 0;

	if (rs->end == END_CANCEL) {
		res->status = RUN_KILLED;
		res->cancelled = 1;
		snprintf(res->note, sizeof(res->note), "pyexec: the request was cancelled");
	} else if (rs->end == END_WALL) {
		util_format_seconds(secs, sizeof(secs), spec->lim.wall_ms);
		res->status = RUN_TIMEOUT;
		snprintf(res->note, sizeof(res->note),
			 "pyexec: wall time limit of %s s reached; the program was killed", secs);
	} else if (rs->end == END_CPU || (res->signal != 0 && spec->lim.cpu_ms != 0 &&
					   rs->cg_cpu > (int64_t)spec->lim.cpu_ms * NS_PER_MS)) {
		/* The run as a whole: killed by the supervisor, or by
		 * RLIMIT_CPU of one of its processes after it was over. */
		util_format_seconds(secs, sizeof(secs), spec->lim.cpu_ms);
		res->status = RUN_TIMEOUT;
		snprintf(res->note, sizeof(res->note),
			 "pyexec: CPU time limit of %s s reached; the program was killed", secs);
	} else if (spec->cgroup != NULL &&
		   ((oom = cgroup_slot_oom(spec->cgroup)) == 1 ||
		    (oom == 2 && res->signal == SIGKILL))) {
		res->status = RUN_MEMORY;
		snprintf(res->note, sizeof(res->note),
			 "pyexec: memory limit of %llu MiB reached; the program was killed",
			 (unsigned long long)(spec->cgroup->memory_max >> 20));
	} else if (res->signal != 0) {
		rlim_t cpu_s = cpu_limit_seconds(spec->lim.cpu_ms);

		/* SIGXCPU at the soft limit; SIGKILL at the hard one when the
		 * program ignored SIGXCPU. */
		if (spec->lim.cpu_ms != 0 &&
		    (res->signal == SIGXCPU ||
		     (res->signal == SIGKILL && rs->reaped &&
		      rusage_cpu_ns(&rs->ru) >= (int64_t)cpu_s * NS_PER_S))) {
			res->status = RUN_TIMEOUT;
			snprintf(res->note, sizeof(res->note),
				 "pyexec: CPU time limit of %llu s reached; the program was killed",
				 (unsigned long long)cpu_s);
		} else {
			res->status = RUN_KILLED;
		}
	} else if (res->exit_code == 0) {
		res->status = RUN_OK;
	} else if (stream_tail_is_memory_error(&rs->st[1])) {
		res->status = RUN_MEMORY;
	} else {
		res->status = RUN_ERROR;
	}
}

/* The note on stderr, and whether the output could be kept. 0, or -1 with
 * errno (logged). */
static int run_report(struct run_state *rs, const struct run_result *res)
{
	if (res->note[0] != '\0' && rs->st[1].write_errno == 0 &&
	    append_note(&rs->st[1], res->note) < 0)
		rs->st[1].write_errno = errno;
	for (int i = 0; i < 2 && rs->fail_errno == 0; i++)
		if (rs->st[i].write_errno != 0) {
			rs->fail_errno = rs->st[i].write_errno;
			log_msg(LOG_LEVEL_ERROR, "run: cannot keep the program's %s: %s",
				i == 0 ? "stdout" : "stderr", strerror(rs->fail_errno));
		}
	if (rs->fail_errno != 0) {
		errno = rs->fail_errno;
		return -1;
	}
	return 0;
}

int run_program(const struct run_spec *spec, const struct run_spawner *spawner,
		struct run_result *res)
{
	unsigned char buf[RUN_READ_CHUNK];
	struct run_state rs = { .buf = buf };

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	if (run_check(spec) < 0)
		return -1;
	rs.spec = spec;
	rs.spawner = spawner != NULL ? spawner : &run_spawner_rlimits;
	rs.feed.src = rs.feed.fd = -1;
	rs.st[0].fd = rs.st[1].fd = -1;
	rs.pidfd = -1;
	rs.cg_cpu = -1;
	if (run_start(&rs) < 0)
		return -1;
	rs.end = run_wait(&rs);
	run_stop(&rs);
	run_measure(&rs, res);
	run_verdict(&rs, res);
	return run_report(&rs, res);
}
