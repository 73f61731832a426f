/* The worker's side of the zygote (lib/zygote.h), against a fake zygote:
 * the other end of a socket pair, answered by the test or by a child. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "util.h"
#include "zygote.h"

static struct zygote z;
static int peer = -1;      /* the fake zygote's end */
static pid_t child;        /* a process standing for the zygote */

/* z looks launched, its socket's other end in peer; its process is a
 * child that sleeps (or none when sleeper is 0). */
static void launched(int sleeper)
{
	int sv[2];

	zygote_init(&z);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	z.sp.sock = sv[0];
	peer = sv[1];
	z.launched_ns = util_now_ns();
	if (sleeper) {
		child = fork();
		ck_assert_int_ge(child, 0);
		if (child == 0) {
			pause();
			_exit(0);
		}
		z.sp.pid = child;
		z.sp.pidfd = pidfd_open(child, 0);
	}
}

static void teardown(void)
{
	zygote_stop(&z);
	if (peer >= 0)
		close(peer);
	peer = -1;
	child = 0;
}

static void peer_says(int type, int err, int step, const char *text)
{
	ck_assert_int_eq(sandbox_msg_send_text(peer, type, err, step, text), 0);
}

START_TEST(ready_takes_the_version)
{
	launched(0);
	ck_assert_int_eq(zygote_await(&z, util_now_ns()), 0);        /* not yet */
	peer_says(MSG_ZREADY, 0, 0, "3.11.2 (main)");
	ck_assert_int_eq(zygote_await(&z, util_now_ns()), 1);        /* a deadline past still looks */
	ck_assert_int_eq(z.ready, 1);
	ck_assert_str_eq(z.version, "3.11.2 (main)");
	ck_assert_int_eq(zygote_await(&z, 0), 1);
}
END_TEST

START_TEST(an_error_says_why_and_stops_it)
{
	launched(0);
	peer_says(MSG_ERROR, EPERM, STEP_SETUP, ZYGOTE_PRELOAD_REFUSED "x printed when imported");
	ck_assert_int_eq(zygote_await(&z, util_now_ns() + 1000000000LL), -1);
	ck_assert_ptr_nonnull(strstr(z.why, "warm_preload: x printed when imported"));
	ck_assert_int_eq(z.ready, 0);
	ck_assert_int_eq(z.sp.sock, -1);
}
END_TEST

START_TEST(out_of_turn_and_silence_are_failures)
{
	launched(0);
	peer_says(MSG_ZFORKED, 0, 12, "");
	ck_assert_int_eq(zygote_await(&z, util_now_ns() + 1000000000LL), -1);
	ck_assert_ptr_nonnull(strstr(z.why, "out of turn"));
	teardown();
	launched(0);
	z.launched_ns = util_now_ns() - (int64_t)(SANDBOX_SETUP_TIMEOUT_MS + 1) * 1000000;
	ck_assert_int_eq(zygote_await(&z, util_now_ns()), -1);
	ck_assert_ptr_nonnull(strstr(z.why, "no answer in time"));
	teardown();
	launched(0);
	close(peer);                     /* the zygote is gone */
	peer = -1;
	ck_assert_int_eq(zygote_await(&z, util_now_ns() + 1000000000LL), -1);
	ck_assert_ptr_nonnull(strstr(z.why, "did not start"));
}
END_TEST

/* The fake zygote answers one MSG_ZFORK with reply (type, err, step) after
 * checking that the request carries two fds and the root. */
static void answer_fork(int type, int err, int step)
{
	struct sandbox_msg m;
	struct zygote_fork zf;
	struct iovec iov[2] = { { &m, sizeof(m) }, { &zf, sizeof(zf) } };
	int fds[SANDBOX_MSG_FDS];
	size_t nfd;
	ssize_t n = sandbox_msg_recv_fds(peer, iov, 2, fds, SANDBOX_MSG_FDS, &nfd);

	if (n != (ssize_t)(sizeof(m) + sizeof(zf)) || m.type != MSG_ZFORK || nfd != 2 ||
	    strcmp(zf.root, "/root/of/it") != 0 || zf.new_cgroup_ns != 1)
		_exit(3);
	_exit(sandbox_msg_send_text(peer, type, err, step, NULL) == 0 ? 0 : 4);
}

static pid_t fork_answering(int type, int err, int step)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		answer_fork(type, err, step);
	return pid;
}

static void reap(pid_t pid)
{
	int st;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fake zygote said %d", st);
}

START_TEST(fork_returns_the_new_inits_pid)
{
	char err[256];
	int p[2];
	pid_t answering;

	launched(1);
	z.ready = 1;
	ck_assert_int_eq(pipe(p), 0);
	answering = fork_answering(MSG_ZFORKED, 0, 4242);
	ck_assert_int_eq(zygote_fork(&z, p[0], p[1], "/root/of/it", 1, err, sizeof(err)), 4242);
	reap(answering);
	ck_assert_uint_eq(z.forks, 1);
	/* its own failure to clone: said, and the zygote stays */
	answering = fork_answering(MSG_ZFORKED, EAGAIN, 0);
	ck_assert_int_eq(zygote_fork(&z, p[0], p[1], "/root/of/it", 1, err, sizeof(err)), -1);
	reap(answering);
	ck_assert_ptr_nonnull(strstr(err, strerror(EAGAIN)));
	ck_assert_int_eq(z.ready, 1);
	/* an answer out of turn: the zygote is stopped */
	answering = fork_answering(MSG_ZREADY, 0, 0);
	ck_assert_int_eq(zygote_fork(&z, p[0], p[1], "/root/of/it", 1, err, sizeof(err)), -1);
	reap(answering);
	ck_assert_ptr_nonnull(strstr(err, "out of turn"));
	ck_assert_int_eq(z.ready, 0);
	ck_assert_int_eq(z.sp.pid, 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(alive_until_its_process_ends)
{
	pid_t pid;

	launched(1);
	pid = child;
	if (z.sp.pidfd < 0) {
		CHECK_SKIP("no pidfd here (valgrind has none, nor Linux before 5.3): a "
			   "zygote's liveness is read through one");
		return;
	}
	ck_assert_int_eq(zygote_alive(&z), 0);    /* not ready yet: not usable */
	z.ready = 1;
	ck_assert_int_eq(zygote_alive(&z), 1);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	while (zygote_alive(&z) == 1)
		usleep(1000);
	ck_assert_str_eq(z.why, "the zygote ended");
	ck_assert_int_eq(z.sp.pid, 0);
	ck_assert_int_eq(kill(pid, 0), -1);        /* reaped */
}
END_TEST

START_TEST(a_run_matches_only_the_zygotes_own_program)
{
	static char *argv[] = { "/usr/bin/python3", "-s", "-B", "main.py", NULL };
	static char *env[] = { "PATH=/usr/bin", "HOME=/tmp", NULL };
	static char *other_env[] = { "PATH=/usr/bin", "HOME=/tmp", "PYTHONPATH=/x", NULL };
	static char *short_argv[] = { "/usr/bin/python3", "-s", "main.py", NULL };
	struct run_spec spec;

	zygote_init(&z);
	memcpy(z.argv, argv, sizeof(argv));
	z.envp = &z.argv[5];
	z.argv[5] = env[0];
	z.argv[6] = env[1];
	z.argv[7] = NULL;
	memset(&spec, 0, sizeof(spec));
	spec.path = "/usr/bin/python3";
	spec.argv = argv;
	spec.envp = env;
	ck_assert_int_eq(zygote_matches(&z, &spec), 1);
	spec.envp = other_env;
	ck_assert_int_eq(zygote_matches(&z, &spec), 0);
	spec.envp = env;
	spec.argv = short_argv;
	ck_assert_int_eq(zygote_matches(&z, &spec), 0);
	spec.argv = argv;
	spec.path = "/usr/bin/python3.11";
	ck_assert_int_eq(zygote_matches(&z, &spec), 0);
}
END_TEST

/* A plain zygote's runs have their own HOME, TMPDIR and OUTPUT_DIR (in the
 * same places, of the lengths of the zygote's stand-ins, which they are
 * written over); any other difference is another program. */
START_TEST(a_plain_zygotes_runs_have_their_own_directories)
{
	static char *argv[] = { "/usr/bin/python3", "-s", "-B", "main.py", NULL };
	static char *zenv[] = { "PATH=/usr/bin", "HOME=/w/XX/t", "TMPDIR=/w/XX/t",
				"OUTPUT_DIR=/w/XX/work", NULL };
	static char *own[] = { "PATH=/usr/bin", "HOME=/w/r1/t", "TMPDIR=/w/r1/t",
			       "OUTPUT_DIR=/w/r1/work", NULL };
	static char *longer[] = { "PATH=/usr/bin", "HOME=/w/r12/t", "TMPDIR=/w/r1/t",
				  "OUTPUT_DIR=/w/r1/work", NULL };
	static char *path[] = { "PATH=/bin", "HOME=/w/r1/t", "TMPDIR=/w/r1/t",
				"OUTPUT_DIR=/w/r1/work", NULL };
	static char *swapped[] = { "PATH=/usr/bin", "TMPDIR=/w/r1/t", "HOME=/w/r1/t",
				   "OUTPUT_DIR=/w/r1/work", NULL };
	static char *more[] = { "PATH=/usr/bin", "HOME=/w/r1/t", "TMPDIR=/w/r1/t",
				"OUTPUT_DIR=/w/r1/work", "PYTHONPATH=/x", NULL };
	static char *fewer[] = { "PATH=/usr/bin", "HOME=/w/r1/t", "TMPDIR=/w/r1/t", NULL };
	static char **others[] = { longer, path, swapped, more, fewer };
	struct run_spec spec;

	zygote_init(&z);
	memcpy(z.argv, argv, sizeof(argv));
	z.envp = &z.argv[5];
	memcpy(z.envp, zenv, sizeof(zenv));
	memset(&spec, 0, sizeof(spec));
	spec.path = "/usr/bin/python3";
	spec.argv = argv;
	spec.envp = own;
	/* a namespace zygote's runs have its very environment */
	ck_assert_int_eq(zygote_matches(&z, &spec), 0);
	z.plain = 1;
	ck_assert_int_eq(zygote_matches(&z, &spec), 1);
	spec.envp = zenv;
	ck_assert_int_eq(zygote_matches(&z, &spec), 1);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		spec.envp = others[i];
		ck_assert_int_eq(zygote_matches(&z, &spec), 0);
	}
}
END_TEST

static Suite *zygote_suite(void)
{
	Suite *s = suite_create("zygote");
	TCase *tc = tcase_create("zygote");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, ready_takes_the_version);
	tcase_add_test(tc, an_error_says_why_and_stops_it);
	tcase_add_test(tc, out_of_turn_and_silence_are_failures);
	tcase_add_test(tc, fork_returns_the_new_inits_pid);
	tcase_add_test(tc, alive_until_its_process_ends);
	tcase_add_test(tc, a_run_matches_only_the_zygotes_own_program);
	tcase_add_test(tc, a_plain_zygotes_runs_have_their_own_directories);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(zygote_suite)
