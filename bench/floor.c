/* floor.c — the ceiling of any warm start that forks an initialised
 * Python, measured on this machine: bench.py (part f) builds and runs it
 * next to its other figures.
 *
 * It starts Python as `python3 -s -B` would, then for --duration seconds
 * keeps 8 (argv[2]) children of it going at a time, each running a hello
 * world as __main__ and exiting through Python's own finalisation, and
 * prints their rate: first forked as they are, then each in new mount,
 * pid, ipc, uts and network namespaces (what the namespace layer makes
 * for every run; the pid namespace needs one more fork). No sandbox, no
 * mounts, no cgroup, no HTTP: what pyexec adds to this is its own cost.
 * Like pyexec's zygote, it lives in a user namespace of its own.
 *
 * Usage: floor SECONDS CONCURRENCY. Prints "fork RATE" and "namespaces
 * RATE" (or "namespaces unavailable: WHY"), one per line.
 *
 * Build: cc -O2 floor.c -I<python include> -L<libdir> -lpython3.X */
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char hello[] = "print('hello world')\n";

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Root in a user namespace of our own, as pyexec's zygote is: unshare of
 * the others then needs no privilege, and costs what it costs there. */
static int own_userns(void)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int fd;

	if (unshare(CLONE_NEWUSER) < 0)
		return -1;
	fd = open("/proc/self/setgroups", O_WRONLY);
	if (fd >= 0) {
		(void)!write(fd, "deny", 4);
		close(fd);
	}
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
	fd = open("/proc/self/uid_map", O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) < 0)
		return -1;
	close(fd);
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
	fd = open("/proc/self/gid_map", O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) < 0)
		return -1;
	close(fd);
	return 0;
}

static pid_t start(int namespaces, int devnull)
{
	pid_t pid;

	PyOS_BeforeFork();
	pid = fork();
	if (pid != 0) {
		PyOS_AfterFork_Parent();
		return pid;
	}
	PyOS_AfterFork_Child();
	if (namespaces) {
		pid_t c;
		int st;

		if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
			    CLONE_NEWNET) < 0)
			_exit(98);
		c = fork();
		if (c < 0)
			_exit(97);
		if (c > 0) {
			if (waitpid(c, &st, 0) < 0 || !WIFEXITED(st))
				_exit(96);
			_exit(WEXITSTATUS(st));
		}
	}
	if (dup2(devnull, 1) < 0)
		_exit(95);
	if (PyRun_SimpleString(hello) != 0)
		_exit(1);
	_exit(Py_FinalizeEx() < 0 ? 120 : 0);
}

/* Children per second, conc at a time for seconds; -1 when one failed
 * (its exit status in *bad). */
static double rate(int namespaces, double seconds, int conc, int devnull, int *bad)
{
	double t0 = now(), t;
	int running = 0, done = 0, st;

	*bad = 0;
	while ((t = now()) - t0 < seconds || running > 0) {
		while (running < conc && t - t0 < seconds) {
			if (start(namespaces, devnull) < 0) {
				*bad = 256 + errno;
				break;
			}
			running++;
		}
		if (wait(&st) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		running--;
		done++;
		if (st != 0 && *bad == 0)
			*bad = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	return *bad != 0 ? -1 : done / (now() - t0);
}

int main(int argc, char **argv)
{
	PyConfig c;
	PyStatus s;
	double seconds = argc > 1 ? atof(argv[1]) : 4;
	int conc = argc > 2 ? atoi(argv[2]) : 8;
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int userns = own_userns() < 0 ? errno : 0;
	int bad;
	double r;
	char *pyargv[] = { "python3", "-s", "-B", "-c", "pass", NULL };

	if (devnull < 0 || seconds <= 0 || conc < 1) {
		fprintf(stderr, "usage: floor SECONDS CONCURRENCY\n");
		return 2;
	}
	PyConfig_InitPythonConfig(&c);
	c.parse_argv = 1;
	s = PyConfig_SetBytesArgv(&c, 5, pyargv);
	if (!PyStatus_Exception(s))
		s = Py_InitializeFromConfig(&c);
	PyConfig_Clear(&c);
	if (PyStatus_Exception(s)) {
		fprintf(stderr, "floor: Python did not start\n");
		return 1;
	}
	r = rate(0, seconds, conc, devnull, &bad);
	if (r < 0) {
		printf("fork failed: status %d\n", bad);
		return 1;
	}
	printf("fork %.1f\n", r);
	if (userns != 0) {
		printf("namespaces unavailable: no user namespace (%s)\n", strerror(userns));
		return 0;
	}
	r = rate(1, seconds, conc, devnull, &bad);
	if (r < 0)
		printf("namespaces unavailable: a child's status %d (98: unshare refused)\n", bad);
	else
		printf("namespaces %.1f\n", r);
	return 0;
}
