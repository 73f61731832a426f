#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "check_main.h"

/* What the hierarchy itself says: our pid is listed in the cgroup.procs of
 * the directory cgroup_of() finds. */
START_TEST(test_cgroup_of_self_lists_us)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], buf[65536], me[32];
	struct stat st;
	ssize_t n;
	int fd;

	ck_assert_int_eq(cgroup_of(0, dir, sizeof(dir)), 0);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	snprintf(me, sizeof(me), "\n%d\n", (int)getpid());
	/* one pid per line; put a newline in front of the first */
	memmove(buf + 1, buf, (size_t)n + 1);
	buf[0] = '\n';
	ck_assert_msg(strstr(buf, me) != NULL, "pid %d not in %s", (int)getpid(), path);
}
END_TEST

START_TEST(test_cgroup_of_pid_matches_self)
{
	char a[PATH_MAX], b[PATH_MAX];

	ck_assert_int_eq(cgroup_of(0, a, sizeof(a)), 0);
	ck_assert_int_eq(cgroup_of(getpid(), b, sizeof(b)), 0);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(cgroup_of(0, a, 4), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
}
END_TEST

START_TEST(test_setup_refuses_a_cgroup_that_does_not_hold_us)
{
	struct cgroup_config cfg = { .made = 0 };
	char own[PATH_MAX], want[PATH_MAX + 64], err[512];

	ck_assert_int_eq(cgroup_of(0, own, sizeof(own)), 0);
	snprintf(want, sizeof(want), "%s/pyexec-not-ours", strcmp(own, "/") ? own : "");
	ck_assert_int_eq(cgroup_setup(&cfg, want, err, sizeof(err)), -1);
	ck_assert_str_eq(cfg.path, "");
	ck_assert_msg(strstr(err, "which is not inside") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "Delegate=yes") != NULL, "%s", err);
}
END_TEST

/* Without a slot cgroup_clone is a plain fork. */
START_TEST(test_clone_without_slot_forks)
{
	int status;
	pid_t pid = cgroup_clone(NULL, 0);

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(7);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 7);
}
END_TEST

START_TEST(test_closed_slot_refuses)
{
	struct cgroup_slot slot = { .fd = -1 };
	struct cgroup_config none;

	memset(&none, 0, sizeof(none));
	ck_assert_int_eq(cgroup_slot_prepare(&slot, 1 << 20, 8), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(cgroup_slot_oom(&slot), 0);
	ck_assert_int_eq(cgroup_slot_empty(&slot), -1);
	ck_assert_int_eq(cgroup_slot_open(&none, getpid(), &slot), -1);
	ck_assert_int_eq(slot.fd, -1);
	ck_assert_int_eq(cgroup_remove_worker(&none, getpid()), 0);
	cgroup_slot_close(&slot);
}
END_TEST

/* The cgroup v1 memory directory we are in lists us. */
START_TEST(test_v1_of_self_lists_us)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], buf[65536], me[32];
	ssize_t n;
	int fd;

	if (cgroup_v1_of(0, "memory", dir, sizeof(dir)) < 0) {
		ck_assert_int_eq(errno, ENOENT);
		printf("# skip: no cgroup v1 memory hierarchy here\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf + 1, sizeof(buf) - 2);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[0] = '\n';
	buf[n + 1] = '\0';
	snprintf(me, sizeof(me), "\n%d\n", (int)getpid());
	ck_assert_msg(strstr(buf, me) != NULL, "pid %d not in %s", (int)getpid(), path);
	ck_assert_int_eq(cgroup_v1_of(0, "no-such-controller", dir, sizeof(dir)), -1);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* As root with a cgroup v1 memory hierarchy: a v1 directory given to
 * cgroup_setup holds a child born through cgroup_clone, limits its memory
 * (the OOM killer's kill is seen), counts its CPU time, and is emptied. */
START_TEST(test_v1_slot_holds_a_run)
{
	struct cgroup_config cfg = { .made = 0 };
	struct cgroup_slot slot;
	char own[PATH_MAX], dir[PATH_MAX + 64], err[512];
	int status;
	pid_t pid;

	if (geteuid() != 0 || cgroup_v1_of(0, "memory", own, sizeof(own)) < 0) {
		printf("# skip: needs root and a cgroup v1 memory hierarchy\n");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/pyexec-check-%d", strcmp(own, "/") ? own : "",
		 (int)getpid());
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_msg(cgroup_setup(&cfg, dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cfg.version, 1);
	ck_assert_int_eq(cfg.memory, 1);
	ck_assert_str_eq(cfg.path, dir);
	ck_assert_int_eq(cgroup_slot_open(&cfg, getpid(), &slot), 0);
	ck_assert_int_eq(cgroup_slot_prepare(&slot, 32 << 20, 0), 0);
	ck_assert_int_eq(cgroup_slot_oom(&slot), 0);

	pid = cgroup_clone(&slot, 0);
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		volatile char *p = malloc(128 << 20);

		for (size_t i = 0; p != NULL && i < (128 << 20); i += 4096)
			p[i] = 1;
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGKILL);
	ck_assert_int_eq(cgroup_slot_oom(&slot), 1);
	if (slot.cpu)
		ck_assert_int_gt(cgroup_slot_cpu_ns(&slot), 0);

	/* What is left after a run is killed; we (in the instance) are not. */
	pid = cgroup_clone(&slot, 0);
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	ck_assert_int_eq(cgroup_slot_empty(&slot), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	cgroup_slot_close(&slot);

	write_file(own, "cgroup.procs", "0");
	ck_assert_int_eq(cgroup_remove_worker(&cfg, getpid()), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *cgroup_suite(void)
{
	Suite *s = suite_create("cgroup");
	TCase *tc = tcase_create("cgroup");

	tcase_add_test(tc, test_cgroup_of_self_lists_us);
	tcase_add_test(tc, test_cgroup_of_pid_matches_self);
	tcase_add_test(tc, test_setup_refuses_a_cgroup_that_does_not_hold_us);
	tcase_add_test(tc, test_clone_without_slot_forks);
	tcase_add_test(tc, test_closed_slot_refuses);
	tcase_add_test(tc, test_v1_of_self_lists_us);
	tcase_add_test(tc, test_v1_slot_holds_a_run);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(cgroup_suite)
