/* pyexec-zygote: a worker's warm interpreter (lib/zygote.h).
 *
 * Exec'd by the zygote's init in a sandbox of its own, with argv being the
 * run's python command line (argv[0] python's path), the run's
 * environment, cwd /work, fd ZYGOTE_SOCK_FD its socket to the worker. It
 * reads its configuration, initialises Python from that command line as
 * python's own main() would, says it is ready, and then only forks: each
 * MSG_ZFORK becomes an init (sandbox_init_warm_main) whose payload runs
 * Py_RunMain() in its copy of this interpreter, which runs /work/main.py
 * exactly as `python main.py` does (sys.path[0], __main__, the exit
 * status, SystemExit, KeyboardInterrupt, 120 for a lost stdout).
 *
 * This process runs pyexec's code and Python's start-up only: nothing of a
 * request reaches it. It ends when the worker closes the socket. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_init.h"
#include "sandbox_proto.h"
#include "util.h"
#include "zygote.h"

static struct zygote_config zc;
static struct sock_filter filter[ZYGOTE_FILTER_MAX];
static struct sock_fprog prog;
static struct sandbox_init_args args;
static char **own_argv, **own_envp;
/* The bytes of the command line the kernel shows (/proc/self/cmdline):
 * the zygote and its inits show titles there; a payload puts these back,
 * as python's command line. */
static char *cmdline_area, *cmdline_saved;
static size_t cmdline_len;
/* The signal dispositions Python set up, for the payload: init's reset
 * them to the defaults. */
static struct sigaction python_actions[_NSIG];

static void say(int type, int err, int step, const char *text)
{
	struct sandbox_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.err = err;
	m.step = step;
	if (text != NULL)
		snprintf(m.text, sizeof(m.text), "%s", text);
	(void)send(ZYGOTE_SOCK_FD, &m, sizeof(m), MSG_NOSIGNAL);
}

__attribute__((noreturn))
static void fail(const char *what)
{
	say(MSG_ERROR, EPROTO, STEP_SETUP, what);
	_exit(1);
}

static void read_config(void)
{
	struct sandbox_msg m;
	struct iovec iov[3] = {
		{ &m, sizeof(m) }, { &zc, sizeof(zc) }, { filter, sizeof(filter) }
	};
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 3;
	do
		n = recvmsg(ZYGOTE_SOCK_FD, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		_exit(0);
	if (n < (ssize_t)(sizeof(m) + sizeof(zc)) || m.type != MSG_ZCONFIG ||
	    (mh.msg_flags & MSG_TRUNC) != 0 || zc.filter_len > ZYGOTE_FILTER_MAX ||
	    (size_t)n != sizeof(m) + sizeof(zc) + zc.filter_len * sizeof(filter[0]))
		fail("the zygote's configuration is malformed");
	prog.len = (unsigned short)zc.filter_len;
	prog.filter = filter;
	args = zc.args;
	args.cfg = &zc.cfg;
	args.filter = &prog;
	args.sock = args.status_w = args.zygote_fd = args.log_fd = -1;
}

static int same_vector(char *const *a, char *const *b)
{
	for (; *a != NULL && *b != NULL; a++, b++)
		if (strcmp(*a, *b) != 0)
			return 0;
	return *a == NULL && *b == NULL;
}

/* The payload's last step (sandbox_init_args.payload_exec): when spec is
 * this interpreter's own command line, run it here; else return, and the
 * payload execs python as a cold run does. Runs after seccomp. */
static void warm_payload(const struct run_spec *spec)
{
	if (strcmp(spec->path, own_argv[0]) != 0 || !same_vector(spec->argv, own_argv) ||
	    !same_vector(spec->envp, own_envp))
		return;
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &python_actions[sig], NULL);
	memcpy(cmdline_area, cmdline_saved, cmdline_len);
	PyOS_AfterFork_Child();
	exit(Py_RunMain());
}

static void python_start(int argc, char **argv)
{
	PyStatus st;
	PyConfig c;

	PyConfig_InitPythonConfig(&c);
	st = PyConfig_SetBytesArgv(&c, argc, argv);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&c);
	PyConfig_Clear(&c);
	if (PyStatus_Exception(st)) {
		char text[SANDBOX_MSG_TEXT];

		snprintf(text, sizeof(text), "Python did not start: %s",
			 st.err_msg != NULL ? st.err_msg : "exit");
		fail(text);
	}
	for (int sig = 1; sig < _NSIG; sig++)
		(void)sigaction(sig, NULL, &python_actions[sig]);
}

/* One MSG_ZFORK: an init for its root, with its socket and status pipe. */
static void fork_one(void)
{
	struct sandbox_msg m;
	struct zygote_fork zf;
	struct iovec iov[2] = { { &m, sizeof(m) }, { &zf, sizeof(zf) } };
	char cbuf[CMSG_SPACE(sizeof(int) * SANDBOX_MSG_FDS)];
	int fds[SANDBOX_MSG_FDS] = { -1, -1, -1 };
	int flags = CLONE_PARENT | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
	struct msghdr mh;
	size_t nfd;
	ssize_t n;
	pid_t pid;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(ZYGOTE_SOCK_FD, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		_exit(0);       /* the worker is gone, or let this zygote go */
	nfd = sandbox_msg_take_fds(&mh, fds, SANDBOX_MSG_FDS);
	if ((size_t)n != sizeof(m) + sizeof(zf) || m.type != MSG_ZFORK || nfd != 2 ||
	    memchr(zf.root, '\0', sizeof(zf.root)) == NULL)
		fail("a fork request is malformed");
	if (!zc.cfg.network)
		flags |= CLONE_NEWNET;
	args.sock = fds[0];
	args.status_w = fds[1];
	memcpy(args.root, zf.root, sizeof(args.root));
	args.new_cgroup_ns = zf.new_cgroup_ns != 0;
	args.payload_exec = warm_payload;
	PyOS_BeforeFork();
	pid = (pid_t)syscall(SYS_clone, (unsigned long)flags, NULL, NULL, NULL, 0UL);
	if (pid == 0)
		sandbox_init_warm_main(&args);
	PyOS_AfterFork_Parent();
	say(MSG_ZFORKED, pid < 0 ? errno : 0, pid, NULL);
	(void)close(fds[0]);
	(void)close(fds[1]);
}

/* Copies argv (util_title_init takes over its strings) into own_argv, and
 * the bytes of its strings into cmdline_saved. Exits on failure. */
static void keep_command_line(int argc, char **argv)
{
	char *end = argv[0] + strlen(argv[0]) + 1;

	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	cmdline_area = argv[0];
	cmdline_len = (size_t)(end - argv[0]);
	cmdline_saved = malloc(cmdline_len);
	own_argv = calloc((size_t)argc + 1, sizeof(*own_argv));
	if (cmdline_saved == NULL || own_argv == NULL)
		fail("out of memory");
	memcpy(cmdline_saved, cmdline_area, cmdline_len);
	for (int i = 0; i < argc; i++) {
		own_argv[i] = strdup(argv[i]);
		if (own_argv[i] == NULL)
			fail("out of memory");
	}
}

int main(int argc, char **argv, char **envp)
{
	const char *base;

	if (argc < 2 || fcntl(ZYGOTE_SOCK_FD, F_GETFD) < 0) {
		static const char usage[] =
			"pyexec-zygote: started by pyexec-fcgi only (see pyexec-fcgi(8))\n";

		(void)util_write_all(STDERR_FILENO, usage, sizeof(usage) - 1);
		return 2;
	}
	/* What a run of python shows in /proc/self/comm. */
	base = strrchr(argv[0], '/');
	(void)prctl(PR_SET_NAME, base != NULL ? base + 1 : argv[0], 0, 0, 0);
	own_envp = envp;
	keep_command_line(argc, argv);
	read_config();
	python_start(argc, own_argv);
	util_title_init(argc, argv, "pyexec-fcgi");
	util_title_set("zygote");
	say(MSG_ZREADY, 0, 0, Py_GetVersion());
	for (;;)
		fork_one();
}
