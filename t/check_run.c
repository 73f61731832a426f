#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "run.h"
#include "util.h"

#define SH "/bin/sh"
#define PY "/usr/bin/python3"
#define MIB (1024 * 1024)

static char tmpdir[64];
static int out_fd = -1, err_fd = -1;
static char *argv_buf[8];
static char *env_default[] = { "PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL };
static struct run_spec spec;
static struct run_result res;

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_run.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	out_fd = memfd_create("stdout", MFD_CLOEXEC);
	err_fd = memfd_create("stderr", MFD_CLOEXEC);
	ck_assert_int_ge(out_fd, 0);
	ck_assert_int_ge(err_fd, 0);
	memset(&spec, 0, sizeof(spec));
	memset(&res, 0, sizeof(res));
	spec.argv = argv_buf;
	spec.envp = env_default;
	spec.cwd = tmpdir;
	spec.stdin_fd = -1;
	spec.watch_fd = -1;
	spec.stdout_fd = out_fd;
	spec.stderr_fd = err_fd;
	spec.lim.wall_ms = 10000;
	spec.lim.cpu_ms = 10000;
	spec.lim.max_output = MIB;
}

static void teardown(void)
{
	struct dirent *de;
	DIR *d;

	close(out_fd);
	close(err_fd);
	/* only plain files this suite made, in its own mkdtemp directory */
	d = opendir(tmpdir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			ck_assert_int_eq(unlinkat(dirfd(d), de->d_name, 0), 0);
	closedir(d);
	ck_assert_int_eq(rmdir(tmpdir), 0);
}

static void use_sh(const char *script)
{
	spec.path = SH;
	argv_buf[0] = "sh";
	argv_buf[1] = "-c";
	argv_buf[2] = (char *)script;
	argv_buf[3] = NULL;
}

static void use_py(const char *code)
{
	spec.path = PY;
	argv_buf[0] = "python3";
	argv_buf[1] = "-c";
	argv_buf[2] = (char *)code;
	argv_buf[3] = NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs spec and returns the seconds run_program() took; asserts it returned 0. */
static double run(void)
{
	double t0 = now_s();

	ck_assert_int_eq(run_program(&spec, NULL, &res), 0);
	return now_s() - t0;
}

/* The whole content of fd (read from offset 0), NUL-terminated; caller frees. */
static char *slurp(int fd, size_t *len)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *buf;

	ck_assert_int_ge(size, 0);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)size, 0), size);
	buf[size] = '\0';
	if (len != NULL)
		*len = (size_t)size;
	return buf;
}

static void assert_file_eq(int fd, const char *want)
{
	char *got = slurp(fd, NULL);

	ck_assert_str_eq(got, want);
	free(got);
}

static pid_t read_pid(const char *name)
{
	char path[128], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "%s was not written", path);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_int_gt(atoi(buf), 1);
	return (pid_t)atoi(buf);
}

static void assert_dead(pid_t pid)
{
	errno = 0;
	ck_assert_int_eq(kill(pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
}

static int count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(exit_zero_is_ok)
{
	use_sh("exit 0");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	ck_assert_int_eq(res.exit_code, 0);
	ck_assert_int_eq(res.signal, 0);
	ck_assert_str_eq(res.note, "");
	ck_assert_int_gt(res.wall_ns, 0);
	assert_file_eq(out_fd, "");
	assert_file_eq(err_fd, "");
}
END_TEST

/* A child of the caller: killed and reaped by the run's clean-up, unless
 * it is the one kept (a sandbox holding a request's uploads). */
static void other_child_after_a_run(int keep)
{
	pid_t other = fork();
	int st;

	ck_assert_int_ge(other, 0);
	if (other == 0) {
		pause();
		_exit(0);
	}
	if (keep)
		run_keep_child(other);
	use_sh("exit 0");
	run();
	run_keep_child(0);
	ck_assert_int_eq(res.status, RUN_OK);
	if (keep) {
		ck_assert_int_eq(waitpid(other, &st, WNOHANG), 0);
		ck_assert_int_eq(kill(other, SIGKILL), 0);
		ck_assert_int_eq(waitpid(other, &st, 0), other);
	} else {
		errno = 0;
		ck_assert_int_eq(waitpid(other, &st, WNOHANG), -1);
		ck_assert_int_eq(errno, ECHILD);
	}
}

START_TEST(other_children_are_killed)
{
	other_child_after_a_run(0);
}
END_TEST

START_TEST(kept_child_survives_the_run)
{
	other_child_after_a_run(1);
}
END_TEST

START_TEST(zero_wall_limit_means_none)
{
	use_sh("/bin/sleep 0.2");
	spec.lim.wall_ms = 0;
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	/* The clock starts once the parent is back from fork: on a loaded
	 * machine the child may have slept a little of its time before. */
	ck_assert_int_ge(res.wall_ns, 150000000LL);
}
END_TEST

START_TEST(exit_three_is_error)
{
	use_sh("echo failing >&2; exit 3");
	run();
	ck_assert_int_eq(res.status, RUN_ERROR);
	ck_assert_int_eq(res.exit_code, 3);
	ck_assert_int_eq(res.signal, 0);
	ck_assert_str_eq(res.note, "");
	assert_file_eq(err_fd, "failing\n");
}
END_TEST

START_TEST(stdout_and_stderr_are_separate_and_exact)
{
	static const char want_out[] = "a\0b\377\n";
	static const char want_err[] = "E1\nE2";
	size_t len;
	char *got;
	int fds = count_fds();

	use_py("import sys\n"
	       "sys.stdout.buffer.write(b'a\\x00b\\xff\\n')\n"
	       "sys.stderr.buffer.write(b'E1\\nE2')\n");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	got = slurp(out_fd, &len);
	ck_assert_uint_eq(len, sizeof(want_out) - 1);
	ck_assert_mem_eq(got, want_out, len);
	free(got);
	assert_file_eq(err_fd, want_err);
	ck_assert_uint_eq(res.stdout_bytes, sizeof(want_out) - 1);
	ck_assert_uint_eq(res.stderr_bytes, sizeof(want_err) - 1);
	ck_assert_int_eq(res.stdout_truncated, 0);
	ck_assert_int_eq(res.stderr_truncated, 0);
	/* no pipe or pidfd left open in the supervisor */
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* Left in a 1 MiB pipe (many reads' worth) by a program that then exits at
 * once: all of it is kept. */
START_TEST(output_written_just_before_exit_is_kept)
{
	use_py("import fcntl, os\n"
	       "fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1 << 20)\n"
	       "b = b'z' * 900000\n"
	       "while b:\n"
	       "    b = b[os.write(1, b):]\n"
	       "os._exit(0)\n");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	ck_assert_uint_eq(res.stdout_bytes, 900000);
	ck_assert_int_eq(lseek(out_fd, 0, SEEK_END), 900000);
}
END_TEST

/* The program has exited before the supervisor reads anything, leaving far
 * more than one read's worth in the pipe: a spawner that fills the pipe and
 * waits for the exit makes that order certain. */
static pid_t prefilled_spawn(void *arg, const struct run_spec *s, int in, int out, int err)
{
	static char chunk[65536];
	siginfo_t si;
	pid_t pid;

	(void)arg;
	ck_assert_int_ge(fcntl(out, F_SETPIPE_SZ, MIB), MIB);
	memset(chunk, 'p', sizeof(chunk));
	for (int i = 0; i < 12; i++)
		ck_assert_int_eq(write(out, chunk, sizeof(chunk)), sizeof(chunk));
	pid = run_spawner_rlimits.spawn(NULL, s, in, out, err);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	return pid;
}

START_TEST(output_left_in_pipe_at_exit_is_drained)
{
	const struct run_spawner sp = { .spawn = prefilled_spawn, .name = "prefilled" };

	use_sh("exit 0");
	ck_assert_int_eq(run_program(&spec, &sp, &res), 0);
	ck_assert_int_eq(res.status, RUN_OK);
	ck_assert_uint_eq(res.stdout_bytes, 12 * 65536);
	ck_assert_int_eq(lseek(out_fd, 0, SEEK_END), 12 * 65536);
}
END_TEST

START_TEST(stdin_from_file_read_from_start)
{
	static const char text[] = "line one\nline two\n";
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/stdin", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	/* the offset is left at the end, as a writer leaves it */
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	spec.stdin_fd = fd;
	spec.path = "/bin/cat";
	argv_buf[0] = "cat";
	argv_buf[1] = NULL;
	run();
	close(fd);
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, text);
}
END_TEST

/* The program's stdin is a pipe: it cannot fallocate, write, truncate or
 * name the host's file, and a large input arrives whole. */
START_TEST(stdin_is_a_pipe_not_the_file)
{
	char path[128];
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "%s/stdin", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	/* 3 MiB: many times what a pipe holds */
	for (int i = 0; i < 3 * 1024; i++) {
		char kib[1024];

		memset(kib, 'a' + i % 26, sizeof(kib));
		ck_assert_int_eq(write(fd, kib, sizeof(kib)), (ssize_t)sizeof(kib));
	}
	spec.stdin_fd = fd;
	use_py("import errno, hashlib, os, stat, sys\n"
	       "print(stat.S_ISFIFO(os.fstat(0).st_mode), os.readlink('/proc/self/fd/0')[:5])\n"
	       "for name, call in [('fallocate', lambda: os.posix_fallocate(0, 0, 1 << 30)),\n"
	       "                   ('write', lambda: os.write(0, b'x')),\n"
	       "                   ('truncate', lambda: os.ftruncate(0, 0))]:\n"
	       "    try:\n"
	       "        call()\n"
	       "        print(name, 'ok')\n"
	       "    except OSError as e:\n"
	       "        print(name, 'refused')\n"
	       "data = sys.stdin.buffer.read()\n"
	       "print(len(data), hashlib.sha256(data).hexdigest()[:16])\n");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	{
		char want[256], sum[65];
		FILE *p;

		/* the same digest, computed outside */
		snprintf(want, sizeof(want), "sha256sum < %s", path);
		p = popen(want, "r");
		ck_assert_ptr_nonnull(p);
		ck_assert_ptr_nonnull(fgets(sum, 17, p));
		pclose(p);
		snprintf(want, sizeof(want),
			 "True pipe:\nfallocate refused\nwrite refused\ntruncate refused\n"
			 "3145728 %s\n", sum);
		assert_file_eq(out_fd, want);
	}
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_int_eq(sb.st_size, 3 * 1024 * 1024);
	ck_assert_int_le(sb.st_blocks, 2 * 3 * 1024 * 2);
	close(fd);
}
END_TEST

/* A program that ends without reading a large input ends the run at once,
 * and the broken pipe does not touch the supervisor. */
START_TEST(unread_stdin_does_not_hold_the_run)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/stdin", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 8 * 1024 * 1024), 0);
	spec.stdin_fd = fd;
	spec.lim.wall_ms = 20000;
	use_sh("head -c 10 >/dev/null; echo done");
	run();
	close(fd);
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "done\n");
	ck_assert_int_lt(res.wall_ns, 10000LL * 1000 * 1000);
}
END_TEST

START_TEST(stdin_defaults_to_an_empty_pipe)
{
	use_py("import os, sys\n"
	       "print(os.readlink('/proc/self/fd/0')[:6])\n"
	       "print(repr(sys.stdin.read()), sys.stdin.seekable())\n");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "pipe:[\n'' False\n");
}
END_TEST

START_TEST(output_over_cap_is_counted_not_kept)
{
	use_sh("printf 'hello world'; printf 'abcdefghij' >&2");
	spec.lim.max_output = 5;
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "hello");
	assert_file_eq(err_fd, "abcde");
	ck_assert_uint_eq(res.stdout_bytes, 11);
	ck_assert_uint_eq(res.stderr_bytes, 10);
	ck_assert_int_eq(res.stdout_truncated, 1);
	ck_assert_int_eq(res.stderr_truncated, 1);
}
END_TEST

START_TEST(output_at_cap_is_not_truncated)
{
	use_sh("printf 'hello'");
	spec.lim.max_output = 5;
	run();
	assert_file_eq(out_fd, "hello");
	ck_assert_int_eq(res.stdout_truncated, 0);
}
END_TEST

/* 50 MiB on each pipe, interleaved: no deadlock, capped, counted, and the
 * supervisor's memory does not grow with the output. */
START_TEST(fifty_mib_interleaved)
{
	struct rusage before, after;
	char *got;
	size_t len;

	use_py("import sys\n"
	       "o, e = b'o' * 65536, b'e' * 65536\n"
	       "for _ in range(800):\n"
	       "    sys.stdout.buffer.write(o)\n"
	       "    sys.stderr.buffer.write(e)\n");
	spec.lim.wall_ms = 20000;
	getrusage(RUSAGE_SELF, &before);
	run();
	getrusage(RUSAGE_SELF, &after);
	ck_assert_int_eq(res.status, RUN_OK);
	ck_assert_uint_eq(res.stdout_bytes, 800ULL * 65536);
	ck_assert_uint_eq(res.stderr_bytes, 800ULL * 65536);
	ck_assert_int_eq(res.stdout_truncated, 1);
	ck_assert_int_eq(res.stderr_truncated, 1);
	got = slurp(out_fd, &len);
	ck_assert_uint_eq(len, MIB);
	ck_assert_int_eq(got[0], 'o');
	ck_assert_int_eq(got[MIB - 1], 'o');
	ck_assert_ptr_null(memchr(got, 'e', len));
	free(got);
	got = slurp(err_fd, &len);
	ck_assert_uint_eq(len, MIB);
	ck_assert_ptr_null(memchr(got, 'o', len));
	free(got);
	ck_assert_int_lt(after.ru_maxrss - before.ru_maxrss, 4096);
}
END_TEST

START_TEST(wall_timeout_keeps_output_and_appends_note)
{
	double took;

	use_sh("echo partial; printf oops >&2; exec /bin/sleep 30");
	spec.lim.wall_ms = 1500;
	took = run();
	ck_assert_double_ge(took, 1.4);
	ck_assert_double_lt(took, 2.5);
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_int_eq(res.signal, SIGKILL);
	ck_assert_int_eq(res.exit_code, -1);
	ck_assert_int_ge(res.wall_ns, 1500000000LL);
	ck_assert_int_lt(res.wall_ns, 2000000000LL);
	ck_assert_str_eq(res.note,
			 "pyexec: wall time limit of 1.5 s reached; the program was killed");
	assert_file_eq(out_fd, "partial\n");
	assert_file_eq(err_fd, "oops\npyexec: wall time limit of 1.5 s reached; "
			       "the program was killed\n");
}
END_TEST

START_TEST(note_is_appended_past_the_cap)
{
	use_sh("printf abcdefgh >&2; exec /bin/sleep 30");
	spec.lim.wall_ms = 300;
	spec.lim.max_output = 4;
	run();
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_int_eq(res.stderr_truncated, 1);
	ck_assert_uint_eq(res.stderr_bytes, 8);
	assert_file_eq(err_fd, "abcd\npyexec: wall time limit of 0.3 s reached; "
			       "the program was killed\n");
}
END_TEST

START_TEST(cpu_limit_is_timeout)
{
	use_py("while True: pass\n");
	spec.lim.cpu_ms = 1000;
	run();
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_int_eq(res.signal, SIGXCPU);
	/* The rusage of a reaped child splits its runtime by tick samples and
	 * can read well under the limit on a loaded machine (0.85 s seen). */
	ck_assert_int_ge(res.cpu_ns, 500000000LL);
	ck_assert_str_eq(res.note,
			 "pyexec: CPU time limit of 1 s reached; the program was killed");
	assert_file_eq(err_fd, "pyexec: CPU time limit of 1 s reached; "
			       "the program was killed\n");
}
END_TEST

/* SIGXCPU ignored: the hard limit (a second later) is a SIGKILL. */
START_TEST(cpu_limit_with_sigxcpu_ignored_is_timeout)
{
	use_py("import signal\n"
	       "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
	       "while True: pass\n");
	spec.lim.cpu_ms = 1000;
	run();
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_int_eq(res.signal, SIGKILL);
	/* Past the soft limit: the hard one (2 s) ended it. rusage counts in
	 * ticks and under load reads a little below the kernel's own clock. */
	ck_assert_int_ge(res.cpu_ns, 1500000000LL);
	ck_assert_str_eq(res.note,
			 "pyexec: CPU time limit of 1 s reached; the program was killed");
}
END_TEST

START_TEST(memory_error_is_memory)
{
	char *err;

	use_py("x = bytearray(1 << 30)\n");
	spec.lim.memory = 256ULL * MIB;
	run();
	ck_assert_int_eq(res.status, RUN_MEMORY);
	ck_assert_int_eq(res.exit_code, 1);
	ck_assert_str_eq(res.note, "");
	err = slurp(err_fd, NULL);
	ck_assert_ptr_nonnull(strstr(err, "\nMemoryError\n"));
	free(err);
}
END_TEST

/* The last line is found after far more stderr than the tail ring holds. */
START_TEST(memory_error_after_long_stderr)
{
	use_py("import sys\n"
	       "sys.stderr.write('y' * 100000 + '\\n')\n"
	       "raise MemoryError('out of it')\n");
	run();
	ck_assert_int_eq(res.status, RUN_MEMORY);
}
END_TEST

START_TEST(memory_error_not_on_last_line_is_error)
{
	use_py("import sys\n"
	       "print('MemoryError', file=sys.stderr)\n"
	       "print('but then something else', file=sys.stderr)\n"
	       "sys.exit(1)\n");
	run();
	ck_assert_int_eq(res.status, RUN_ERROR);
	ck_assert_int_eq(res.exit_code, 1);
}
END_TEST

/* A last line longer than the tail ring, which here happens to start with
 * "MemoryError": the line's real start is unknown, so not memory. */
START_TEST(memory_error_inside_long_line_is_error)
{
	use_py("import sys\n"
	       "sys.stderr.write('x' * 44 + 'MemoryError' + 'y' * 244 + '\\n')\n"
	       "sys.exit(1)\n");
	run();
	ck_assert_int_eq(res.status, RUN_ERROR);
}
END_TEST

START_TEST(signal_is_killed)
{
	char buf[16];

	use_sh("kill -SEGV $$");
	run();
	ck_assert_int_eq(res.status, RUN_KILLED);
	ck_assert_int_eq(res.signal, SIGSEGV);
	ck_assert_int_eq(res.exit_code, -1);
	ck_assert_str_eq(util_signal_name(res.signal, buf, sizeof(buf)), "SIGSEGV");
	ck_assert_str_eq(res.note, "");
}
END_TEST

/* A double-forked daemon in its own session, holding the output pipes: the
 * run still ends when the main process does, and the daemon is gone. */
START_TEST(double_forked_daemon_is_killed)
{
	double took;
	char *out;

	use_py("import os, sys, time\n"
	       "r, w = os.pipe()\n"
	       "if os.fork() == 0:\n"
	       "    os.setsid()\n"
	       "    if os.fork() == 0:\n"
	       "        open('daemon.pid', 'w').write(str(os.getpid()))\n"
	       "        print('daemon alive', flush=True)\n"
	       "        os.write(w, b'x')\n"
	       "        time.sleep(60)\n"
	       "    os._exit(0)\n"
	       "os.read(r, 1)\n"
	       "print('main done', flush=True)\n");
	took = run();
	ck_assert_double_lt(took, 3.0);
	ck_assert_int_eq(res.status, RUN_OK);
	out = slurp(out_fd, NULL);
	ck_assert_str_eq(out, "daemon alive\nmain done\n");
	free(out);
	assert_dead(read_pid("daemon.pid"));
}
END_TEST

START_TEST(background_child_holding_stdout_is_killed)
{
	double took;

	use_sh("/bin/sleep 30 & echo $! > bg.pid; printf tail");
	took = run();
	ck_assert_double_lt(took, 3.0);
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "tail");
	assert_dead(read_pid("bg.pid"));
}
END_TEST

/* Everything stopped (main and a child in another session): SIGKILL still
 * ends them at the wall limit. */
START_TEST(stopped_tree_is_killed_at_timeout)
{
	double took;

	use_py("import os, signal\n"
	       "pid = os.fork()\n"
	       "if pid == 0:\n"
	       "    os.setsid()\n"
	       "    os.kill(os.getpid(), signal.SIGSTOP)\n"
	       "    os._exit(0)\n"
	       "open('stopped.pid', 'w').write(str(pid))\n"
	       "print('stopping', flush=True)\n"
	       "os.kill(os.getpid(), signal.SIGSTOP)\n");
	spec.lim.wall_ms = 1000;
	took = run();
	ck_assert_double_lt(took, 2.0);
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_int_eq(res.signal, SIGKILL);
	assert_file_eq(out_fd, "stopping\n");
	assert_dead(read_pid("stopped.pid"));
}
END_TEST

/* The main process moves into another process group (of a child it made):
 * killing the group named after it is not enough. */
START_TEST(main_leaving_its_group_is_killed_at_timeout)
{
	double took;

	use_py("import os, time\n"
	       "pid = os.fork()\n"
	       "if pid == 0:\n"
	       "    time.sleep(60)\n"
	       "    os._exit(0)\n"
	       "os.setpgid(pid, pid)\n"
	       "os.setpgid(0, pid)\n"
	       "print(os.getpgid(0) == pid, flush=True)\n"
	       "time.sleep(60)\n");
	spec.lim.wall_ms = 500;
	took = run();
	ck_assert_double_lt(took, 1.5);
	ck_assert_int_eq(res.status, RUN_TIMEOUT);
	ck_assert_int_eq(res.signal, SIGKILL);
	assert_file_eq(out_fd, "True\n");
}
END_TEST

START_TEST(other_fds_are_closed)
{
	int fd = open("/dev/null", O_RDONLY);  /* no O_CLOEXEC on purpose */

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, 100), 100);
	use_py("import os\n"
	       "print(' '.join(sorted(os.listdir('/proc/self/fd'), key=int)))\n");
	run();
	close(fd);
	close(100);
	ck_assert_int_eq(res.status, RUN_OK);
	/* 3 is the directory listdir itself opened */
	assert_file_eq(out_fd, "0 1 2 3\n");
}
END_TEST

START_TEST(environment_is_exactly_envp)
{
	static char *envp[] = { "A=1", "B=two words", "LANG=C.UTF-8", NULL };

	ck_assert_int_eq(setenv("PYEXEC_SECRET", "do not leak", 1), 0);
	spec.envp = envp;
	use_py("import os\n"
	       "for k in sorted(os.environ): print(k + '=' + os.environ[k])\n");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "A=1\nB=two words\nLANG=C.UTF-8\n");
}
END_TEST

START_TEST(working_directory_is_cwd)
{
	char want[128];

	use_py("import os; print(os.getcwd())\n");
	run();
	snprintf(want, sizeof(want), "%s\n", tmpdir);
	assert_file_eq(out_fd, want);
}
END_TEST

START_TEST(limits_are_visible_in_child)
{
	use_py("import resource as r\n"
	       "for l in (r.RLIMIT_NOFILE, r.RLIMIT_NPROC, r.RLIMIT_FSIZE,\n"
	       "          r.RLIMIT_CPU, r.RLIMIT_AS, r.RLIMIT_CORE):\n"
	       "    print(*r.getrlimit(l))\n");
	spec.lim.nofile = 64;
	spec.lim.nproc = 100;
	spec.lim.file_size = MIB;
	spec.lim.cpu_ms = 1500;
	spec.lim.memory = 512ULL * MIB;
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "64 64\n100 100\n1048576 1048576\n2 3\n"
			       "536870912 536870912\n0 0\n");
}
END_TEST

START_TEST(signals_are_default_and_unblocked)
{
	sigset_t set;

	/* what a server typically has: SIGPIPE ignored, SIGTERM blocked */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	use_sh("grep -E '^(SigBlk|SigIgn)' /proc/self/status");
	spec.envp = env_default;
	run();
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}
END_TEST

START_TEST(exec_failure_is_127_with_message)
{
	spec.path = "/nonexistent/pyexec-test";
	argv_buf[0] = "x";
	argv_buf[1] = NULL;
	run();
	ck_assert_int_eq(res.status, RUN_ERROR);
	ck_assert_int_eq(res.exit_code, 127);
	assert_file_eq(err_fd, "pyexec: cannot execute /nonexistent/pyexec-test: "
			       "No such file or directory\n");
}
END_TEST

START_TEST(chdir_failure_is_127_with_message)
{
	use_sh("exit 0");
	spec.cwd = "/nonexistent/dir";
	run();
	ck_assert_int_eq(res.exit_code, 127);
	assert_file_eq(err_fd, "pyexec: cannot change directory to /nonexistent/dir: "
			       "No such file or directory\n");
}
END_TEST

static volatile sig_atomic_t cancel_flag;

static void on_alarm(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

START_TEST(cancel_kills_the_run)
{
	struct itimerval it = { { 0, 0 }, { 0, 300000 } };
	struct sigaction sa;
	double took;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	cancel_flag = 0;
	spec.cancel = &cancel_flag;
	use_sh("echo started; exec /bin/sleep 30");
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	took = run();
	signal(SIGALRM, SIG_DFL);
	ck_assert_double_ge(took, 0.25);
	ck_assert_double_lt(took, 1.5);
	ck_assert_int_eq(res.status, RUN_KILLED);
	ck_assert_int_eq(res.signal, SIGKILL);
	ck_assert_str_eq(res.note, "pyexec: the request was cancelled");
	assert_file_eq(out_fd, "started\n");
	assert_file_eq(err_fd, "pyexec: the request was cancelled\n");
}
END_TEST

START_TEST(cancel_already_set)
{
	double took;

	cancel_flag = 1;
	spec.cancel = &cancel_flag;
	use_sh("exec /bin/sleep 30");
	took = run();
	ck_assert_double_lt(took, 1.0);
	ck_assert_int_eq(res.status, RUN_KILLED);
	ck_assert_str_eq(res.note, "pyexec: the request was cancelled");
}
END_TEST

/* The client's connection closing mid-run cancels it. */
START_TEST(watch_fd_hangup_cancels)
{
	int sv[2];
	pid_t closer;
	double took;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	closer = fork();
	ck_assert_int_ge(closer, 0);
	if (closer == 0) {
		close(sv[0]);
		usleep(300000);
		_exit(0);       /* closes sv[1]: the peer hangs up */
	}
	close(sv[1]);
	spec.watch_fd = sv[0];
	use_sh("echo started; exec /bin/sleep 30");
	took = run();
	waitpid(closer, NULL, 0);
	close(sv[0]);
	ck_assert_double_ge(took, 0.25);
	ck_assert_double_lt(took, 1.5);
	ck_assert_int_eq(res.status, RUN_KILLED);
	ck_assert_int_eq(res.cancelled, 1);
	ck_assert_str_eq(res.note, "pyexec: the request was cancelled");
	assert_file_eq(out_fd, "started\n");
}
END_TEST

/* Data on the connection is not a hang-up: the run goes on to its end. */
START_TEST(watch_fd_data_does_not_cancel)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	spec.watch_fd = sv[0];
	use_sh("/bin/sleep 0.3; echo done");
	run();
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(res.status, RUN_OK);
	ck_assert_int_eq(res.cancelled, 0);
	assert_file_eq(out_fd, "done\n");
}
END_TEST

START_TEST(cpu_time_includes_descendants)
{
	use_sh(PY " -c 'import time\nwhile time.process_time() < 0.4: pass'");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	/* rusage splits runtime by tick samples: under load it can read 15%
	 * low (see cpu_limit_is_timeout). */
	ck_assert_int_ge(res.cpu_ns, 250000000LL);
}
END_TEST

START_TEST(max_rss_of_main_process)
{
	use_py("b = b'x' * (64 << 20)\n");
	run();
	ck_assert_int_eq(res.status, RUN_OK);
	ck_assert_int_ge(res.max_rss_kib, 64 * 1024);
	ck_assert_int_lt(res.max_rss_kib, 512 * 1024);
}
END_TEST

static int spawn_calls;

static pid_t counting_spawn(void *arg, const struct run_spec *s, int in, int out, int err)
{
	spawn_calls++;
	ck_assert_ptr_eq(arg, &spawn_calls);
	return run_spawner_rlimits.spawn(run_spawner_rlimits.arg, s, in, out, err);
}

START_TEST(custom_spawner_is_used)
{
	const struct run_spawner sp = { .spawn = counting_spawn, .arg = &spawn_calls, .name = "counting" };

	spawn_calls = 0;
	use_sh("echo via custom");
	ck_assert_int_eq(run_program(&spec, &sp, &res), 0);
	ck_assert_int_eq(spawn_calls, 1);
	ck_assert_int_eq(res.status, RUN_OK);
	assert_file_eq(out_fd, "via custom\n");
}
END_TEST

/* A sandbox's init exits 0 and reports its payload's status through the
 * hook: what the hook says is what the result says. */
static int payload_killed_by_segv(void *arg, int status)
{
	(void)arg;
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return SIGSEGV;   /* a wait status: killed by SIGSEGV */
}

START_TEST(wait_status_hook_translates)
{
	const struct run_spawner sp = { .spawn = counting_spawn, .arg = &spawn_calls,
					.wait_status = payload_killed_by_segv, .name = "hook" };

	use_sh("exit 0");
	ck_assert_int_eq(run_program(&spec, &sp, &res), 0);
	ck_assert_int_eq(res.status, RUN_KILLED);
	ck_assert_int_eq(res.signal, SIGSEGV);
	ck_assert_int_eq(res.exit_code, -1);
}
END_TEST

static pid_t failing_spawn(void *arg, const struct run_spec *s, int in, int out, int err)
{
	(void)arg; (void)s; (void)in; (void)out; (void)err;
	errno = EAGAIN;
	return -1;
}

START_TEST(spawn_failure_is_reported)
{
	const struct run_spawner sp = { .spawn = failing_spawn, .name = "failing" };
	int fds = count_fds();

	use_sh("exit 0");
	errno = 0;
	ck_assert_int_eq(run_program(&spec, &sp, &res), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(ignored_sigchld_is_refused)
{
	use_sh("exit 0");
	signal(SIGCHLD, SIG_IGN);
	errno = 0;
	ck_assert_int_eq(run_program(&spec, NULL, &res), -1);
	ck_assert_int_eq(errno, EINVAL);
	signal(SIGCHLD, SIG_DFL);
}
END_TEST

START_TEST(status_names)
{
	ck_assert_str_eq(run_status_name(RUN_OK), "ok");
	ck_assert_str_eq(run_status_name(RUN_ERROR), "error");
	ck_assert_str_eq(run_status_name(RUN_TIMEOUT), "timeout");
	ck_assert_str_eq(run_status_name(RUN_MEMORY), "memory");
	ck_assert_str_eq(run_status_name(RUN_KILLED), "killed");
}
END_TEST

START_TEST(signal_names)
{
	char buf[16], small[5];

	ck_assert_str_eq(util_signal_name(SIGKILL, buf, sizeof(buf)), "SIGKILL");
	ck_assert_str_eq(util_signal_name(SIGXCPU, buf, sizeof(buf)), "SIGXCPU");
	ck_assert_str_eq(util_signal_name(200, buf, sizeof(buf)), "SIG200");
	ck_assert_str_eq(util_signal_name(SIGSEGV, small, sizeof(small)), "SIGS");
}
END_TEST

static Suite *run_suite(void)
{
	Suite *s = suite_create("run");
	TCase *tc = tcase_create("run");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, exit_zero_is_ok);
	tcase_add_test(tc, zero_wall_limit_means_none);
	tcase_add_test(tc, exit_three_is_error);
	tcase_add_test(tc, stdout_and_stderr_are_separate_and_exact);
	tcase_add_test(tc, output_written_just_before_exit_is_kept);
	tcase_add_test(tc, output_left_in_pipe_at_exit_is_drained);
	tcase_add_test(tc, stdin_from_file_read_from_start);
	tcase_add_test(tc, stdin_defaults_to_an_empty_pipe);
	tcase_add_test(tc, stdin_is_a_pipe_not_the_file);
	tcase_add_test(tc, unread_stdin_does_not_hold_the_run);
	tcase_add_test(tc, output_over_cap_is_counted_not_kept);
	tcase_add_test(tc, output_at_cap_is_not_truncated);
	tcase_add_test(tc, fifty_mib_interleaved);
	tcase_add_test(tc, wall_timeout_keeps_output_and_appends_note);
	tcase_add_test(tc, note_is_appended_past_the_cap);
	tcase_add_test(tc, cpu_limit_is_timeout);
	tcase_add_test(tc, cpu_limit_with_sigxcpu_ignored_is_timeout);
	tcase_add_test(tc, memory_error_is_memory);
	tcase_add_test(tc, memory_error_after_long_stderr);
	tcase_add_test(tc, memory_error_not_on_last_line_is_error);
	tcase_add_test(tc, memory_error_inside_long_line_is_error);
	tcase_add_test(tc, signal_is_killed);
	tcase_add_test(tc, double_forked_daemon_is_killed);
	tcase_add_test(tc, other_children_are_killed);
	tcase_add_test(tc, kept_child_survives_the_run);
	tcase_add_test(tc, background_child_holding_stdout_is_killed);
	tcase_add_test(tc, stopped_tree_is_killed_at_timeout);
	tcase_add_test(tc, main_leaving_its_group_is_killed_at_timeout);
	tcase_add_test(tc, other_fds_are_closed);
	tcase_add_test(tc, environment_is_exactly_envp);
	tcase_add_test(tc, working_directory_is_cwd);
	/* Between fork and execve the child is valgrind's, and so are its
	 * rlimits (make check-valgrind sets PYEXEC_UNDER_VALGRIND). */
	if (getenv("PYEXEC_UNDER_VALGRIND") == NULL)
		tcase_add_test(tc, limits_are_visible_in_child);
	else
		printf("# limits_are_visible_in_child: not run under valgrind, whose own "
		       "rlimits a child has until execve\n");
	tcase_add_test(tc, signals_are_default_and_unblocked);
	tcase_add_test(tc, exec_failure_is_127_with_message);
	tcase_add_test(tc, chdir_failure_is_127_with_message);
	tcase_add_test(tc, cancel_kills_the_run);
	tcase_add_test(tc, cancel_already_set);
	tcase_add_test(tc, watch_fd_hangup_cancels);
	tcase_add_test(tc, watch_fd_data_does_not_cancel);
	tcase_add_test(tc, cpu_time_includes_descendants);
	tcase_add_test(tc, max_rss_of_main_process);
	tcase_add_test(tc, custom_spawner_is_used);
	tcase_add_test(tc, wait_status_hook_translates);
	tcase_add_test(tc, spawn_failure_is_reported);
	tcase_add_test(tc, ignored_sigchld_is_refused);
	tcase_add_test(tc, status_names);
	tcase_add_test(tc, signal_names);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(run_suite)
