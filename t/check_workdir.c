#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "workdir.h"

#define NOBODY 65534

static char base[PATH_MAX];     /* private to one test */
static char root[PATH_MAX];     /* base/root: the work_root */
static char outside[PATH_MAX];  /* base/outside: must survive everything */

/* snprintf into a PATH_MAX buffer, failing the test on truncation. */
static void pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && n < PATH_MAX, "path too long");
}

static void setup(void)
{
	pathf(base, "/tmp/check_workdir.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	pathf(root, "%s/root", base);
	pathf(outside, "%s/outside", base);
	ck_assert_int_eq(mkdir(root, 0700), 0);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	umask(022);
}

static void teardown(void)
{
	int fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	/* outside may have been left 0500 on purpose. */
	(void)chmod(outside, 0755);
	if (fd >= 0) {
		(void)workdir_rmtree_at(fd, base + strlen("/tmp/"));
		close(fd);
	}
}

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void put_file(int dfd, const char *name, const char *content, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "create %s: %s", name, strerror(errno));
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static int file_is(const char *path, const char *content)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)strlen(content) && memcmp(buf, content, (size_t)n) == 0;
}

static int open_dir_at(int dfd, const char *name)
{
	return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* The outside world: a 0500 directory holding a file, and a lone file. */
static void make_outside(void)
{
	char p[PATH_MAX];
	int fd = open(outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mkdirat(fd, "dir", 0755), 0);
	pathf(p, "%s/dir", outside);
	{
		int d = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		ck_assert_int_ge(d, 0);
		put_file(d, "keep.txt", "keep me", 0644);
		ck_assert_int_eq(mkdirat(d, "sub", 0755), 0);
		close(d);
	}
	ck_assert_int_eq(chmod(p, 0500), 0);
	put_file(fd, "secret", "do not touch", 0600);
	close(fd);
}

static void check_outside(void)
{
	char p[PATH_MAX];
	struct stat st;

	pathf(p, "%s/dir", outside);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert_msg(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0500,
		      "outside dir mode changed to %o", (unsigned)(st.st_mode & 07777));
	pathf(p, "%s/dir/keep.txt", outside);
	ck_assert_msg(file_is(p, "keep me"), "outside file removed or changed");
	pathf(p, "%s/dir/sub", outside);
	ck_assert(exists(p));
	pathf(p, "%s/secret", outside);
	ck_assert(file_is(p, "do not touch"));
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
}

/* Everything a hostile program can leave in dfd (its work directory).
 * Returns 0, or -1 with a reason in *why (used from a child too, where
 * ck_assert cannot be used). */
static int plant_hostile(int dfd, const char *dpath, const char **why)
{
	char p[PATH_MAX], sub[PATH_MAX];
	struct sockaddr_un sa;
	int fd, s;

#define TRY(e, msg)                      \
	do {                             \
		if (!(e)) {              \
			*why = msg;      \
			return -1;       \
		}                        \
	} while (0)
	/* A full directory at mode 000, with a 000 directory inside it. */
	TRY(mkdirat(dfd, "d000", 0700) == 0, "mkdir d000");
	TRY((fd = open_dir_at(dfd, "d000")) >= 0, "open d000");
	TRY(mkdirat(fd, "inner", 0700) == 0, "mkdir inner");
	TRY((s = openat(fd, "inner/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0, "f");
	close(s);
	TRY((s = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0, "f");
	close(s);
	TRY(fchmodat(fd, "inner", 0, 0) == 0, "chmod inner");
	TRY(fchmod(fd, 0) == 0, "chmod d000");
	close(fd);
	/* A read-only directory (entries cannot be unlinked). */
	TRY(mkdirat(dfd, "d500", 0700) == 0, "mkdir d500");
	TRY((fd = open_dir_at(dfd, "d500")) >= 0, "open d500");
	for (int i = 0; i < 5; i++) {
		char n[16];

		snprintf(n, sizeof(n), "f%d", i);
		TRY((s = openat(fd, n, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0, "f");
		close(s);
	}
	TRY(fchmod(fd, 0500) == 0, "chmod d500");
	close(fd);
	/* Write-only, search-only and read-only-without-search directories. */
	TRY(mkdirat(dfd, "d300", 0700) == 0 && mkdirat(dfd, "d100", 0700) == 0 &&
	    mkdirat(dfd, "d400", 0700) == 0, "mkdir");
	TRY(mkdirat(dfd, "d300/x", 0700) == 0 && mkdirat(dfd, "d100/x", 0700) == 0 &&
	    mkdirat(dfd, "d400/x", 0700) == 0, "mkdir");
	TRY(fchmodat(dfd, "d300", 0300, 0) == 0 && fchmodat(dfd, "d100", 0100, 0) == 0 &&
	    fchmodat(dfd, "d400", 0400, 0) == 0, "chmod");
	/* A sticky, world-writable directory with a file. */
	TRY(mkdirat(dfd, "sticky", 0700) == 0, "mkdir sticky");
	TRY((s = openat(dfd, "sticky/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0, "f");
	close(s);
	TRY(fchmodat(dfd, "sticky", 01777, 0) == 0, "chmod sticky");
	/* Files with odd modes. */
	TRY((s = openat(dfd, "m000", O_WRONLY | O_CREAT | O_CLOEXEC, 0)) >= 0, "m000");
	close(s);
	TRY((s = openat(dfd, "m7777", O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0, "m7777");
	TRY(fchmod(s, 07777) == 0 || fchmod(s, 01777) == 0, "chmod m7777");
	close(s);
	/* A FIFO, a socket inode, and a socket actually bound. */
	TRY(mkfifoat(dfd, "fifo", 0600) == 0, "mkfifo");
	TRY(mknodat(dfd, "sock_node", S_IFSOCK | 0600, 0) == 0, "mknod sock");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	TRY((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dpath) <
	    sizeof(sa.sun_path), "socket path too long");
	TRY((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0, "socket");
	TRY(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	TRY(listen(s, 1) == 0, "listen");
	close(s);
	/* Symlinks: to a directory outside, to a file outside, into a loop,
	 * dangling, and one to the work directory's own parent. */
	pathf(sub, "%s/dir", outside);
	TRY(symlinkat(sub, dfd, "to_outside_dir") == 0, "symlink");
	pathf(p, "%s/secret", outside);
	TRY(symlinkat(p, dfd, "to_outside_file") == 0, "symlink");
	TRY(symlinkat("loop_b", dfd, "loop_a") == 0 && symlinkat("loop_a", dfd, "loop_b") == 0,
	    "symlink loop");
	TRY(symlinkat("/nonexistent/x", dfd, "dangling") == 0, "symlink");
	TRY(symlinkat("..", dfd, "up") == 0, "symlink");
	/* And a symlink inside a 000 directory. */
	TRY(mkdirat(dfd, "hidden", 0700) == 0, "mkdir hidden");
	TRY(symlinkat(sub, dfd, "hidden/link") == 0, "symlink");
	TRY(fchmodat(dfd, "hidden", 0, 0) == 0, "chmod hidden");
	return 0;
#undef TRY
}

START_TEST(test_create_layout)
{
	struct workdir wd;
	char p[PATH_MAX];
	struct stat st, st2;

	ck_assert_int_eq(workdir_create(&wd, root, "req-1_A"), 0);
	ck_assert_int_ge(wd.root_fd, 0);
	ck_assert_int_ge(wd.req_fd, 0);
	ck_assert_int_ge(wd.work_fd, 0);
	ck_assert_str_eq(wd.id, "req-1_A");
	pathf(p, "%s/req-1_A", root);
	ck_assert_str_eq(wd.path, p);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	pathf(p, "%s/req-1_A/work", root);
	ck_assert_str_eq(wd.work_path, p);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(fstat(wd.work_fd, &st2), 0);
	ck_assert(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
	/* No tmp/: a run's temporary directory is its sandbox's /tmp, or the
	 * short one workdir_make_short_tmp makes. */
	ck_assert_str_eq(wd.tmp_path, "");
	ck_assert_int_eq(count_entries(wd.path), 1);
	ck_assert_int_eq(fcntl(wd.work_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(wd.req_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(wd.root_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(count_entries(root), 0);
	ck_assert_int_eq(wd.root_fd, -1);
	ck_assert_int_eq(wd.req_fd, -1);
	ck_assert_int_eq(wd.work_fd, -1);
	/* Safe to call twice. */
	ck_assert_int_eq(workdir_remove(&wd), 0);
}
END_TEST

START_TEST(test_create_relative_root)
{
	struct workdir wd;
	char real[PATH_MAX], want[PATH_MAX];

	ck_assert_ptr_nonnull(realpath(base, real));
	ck_assert_int_eq(chdir(base), 0);
	ck_assert_int_eq(workdir_create(&wd, "root//", "r"), 0);
	pathf(want, "%s/root/r", real);
	ck_assert_str_eq(wd.path, want);
	pathf(want, "%s/root/r/work", real);
	ck_assert_str_eq(wd.work_path, want);
	ck_assert_str_eq(wd.tmp_path, "");
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(chdir("/"), 0);
}
END_TEST

START_TEST(test_create_ids_validated)
{
	static const char *const bad[] = {
		"", ".", "..", "../x", "a/b", "a.b", "a b", "caf\xc3\xa9", "x\n", "/abs",
		"0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
	};
	struct workdir wd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(workdir_create(&wd, root, bad[i]) == -1, "id \"%s\" accepted", bad[i]);
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_int_eq(wd.root_fd, -1);
		ck_assert_int_eq(wd.req_fd, -1);
		ck_assert_int_eq(wd.work_fd, -1);
		/* Nothing to remove, and no fd (not even 0) closed. */
		ck_assert_int_eq(workdir_remove(&wd), 0);
	}
	ck_assert_int_eq(workdir_create(&wd, root, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(count_entries(root), 0);
	ck_assert_int_eq(count_entries(base), 2);
	/* 63 bytes is the longest id. */
	ck_assert_int_eq(workdir_create(&wd, root,
		"012345678901234567890123456789012345678901234567890123456789012"), 0);
	ck_assert_int_eq(workdir_remove(&wd), 0);
}
END_TEST

START_TEST(test_create_existing_left_alone)
{
	struct workdir wd;
	char p[PATH_MAX];
	int fd;

	pathf(p, "%s/dup", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	put_file(fd, "theirs", "someone else's", 0644);
	close(fd);
	errno = 0;
	ck_assert_int_eq(workdir_create(&wd, root, "dup"), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(wd.root_fd, -1);
	pathf(p, "%s/dup/theirs", root);
	ck_assert(file_is(p, "someone else's"));
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert(file_is(p, "someone else's"));
}
END_TEST

START_TEST(test_create_missing_root)
{
	struct workdir wd;
	char p[PATH_MAX];

	pathf(p, "%s/nope", base);
	errno = 0;
	ck_assert_int_eq(workdir_create(&wd, p, "r"), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(wd.root_fd, -1);
	ck_assert(!exists(p));
}
END_TEST

START_TEST(test_create_file_nested)
{
	struct workdir wd;
	char p[PATH_MAX];
	struct stat st;
	int fd;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	fd = workdir_create_file(&wd, "pkg/sub/util.py");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY);
	ck_assert_int_eq(write(fd, "x = 1\n", 6), 6);
	close(fd);
	pathf(p, "%s/pkg/sub/util.py", wd.work_path);
	ck_assert(file_is(p, "x = 1\n"));
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	pathf(p, "%s/pkg", wd.work_path);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0755);
	/* A sibling reuses the directories made on the way. */
	fd = workdir_create_file(&wd, "pkg/__init__.py");
	ck_assert_int_ge(fd, 0);
	close(fd);
	fd = workdir_create_file(&wd, "main.py");
	ck_assert_int_ge(fd, 0);
	close(fd);
	pathf(p, "%s/main.py", wd.work_path);
	ck_assert(exists(p));
	ck_assert_int_eq(count_entries(wd.work_path), 2);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(count_entries(root), 0);
}
END_TEST

START_TEST(test_create_file_duplicate)
{
	struct workdir wd;
	char p[PATH_MAX];
	int fd;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	fd = workdir_create_file(&wd, "a.txt");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "first", 5), 5);
	close(fd);
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "a.txt"), -1);
	ck_assert_int_eq(errno, EEXIST);
	pathf(p, "%s/a.txt", wd.work_path);
	ck_assert(file_is(p, "first"));
	fd = workdir_create_file(&wd, "d/x");
	ck_assert_int_ge(fd, 0);
	close(fd);
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "d/x"), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(workdir_remove(&wd), 0);
}
END_TEST

START_TEST(test_create_file_clash)
{
	struct workdir wd;
	int fd;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	fd = workdir_create_file(&wd, "a");
	ck_assert_int_ge(fd, 0);
	close(fd);
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "a/b"), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	fd = workdir_create_file(&wd, "d/x");
	ck_assert_int_ge(fd, 0);
	close(fd);
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "d"), -1);
	ck_assert_int_eq(errno, EISDIR);
	ck_assert_int_eq(workdir_remove(&wd), 0);
}
END_TEST

START_TEST(test_create_file_symlink_parent_not_followed)
{
	struct workdir wd;
	char p[PATH_MAX];

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	ck_assert_int_eq(symlinkat(outside, wd.work_fd, "link"), 0);
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "link/x"), -1);
	ck_assert_int_eq(errno, ELOOP);
	ck_assert_int_eq(workdir_create_file(&wd, "link/new/x"), -1);
	/* Deeper: a real directory, then the symlink. */
	ck_assert_int_eq(mkdirat(wd.work_fd, "real", 0755), 0);
	ck_assert_int_eq(symlinkat(outside, wd.work_fd, "real/link"), 0);
	ck_assert_int_eq(workdir_create_file(&wd, "real/link/y"), -1);
	/* Dangling: mkdirat must not create the target through the link. */
	pathf(p, "%s/ghost", outside);
	ck_assert_int_eq(symlinkat(p, wd.work_fd, "ghost"), 0);
	ck_assert_int_eq(workdir_create_file(&wd, "ghost/z"), -1);
	ck_assert(!exists(p));
	/* A symlink to a directory by relative path, "..". */
	ck_assert_int_eq(symlinkat("..", wd.work_fd, "up"), 0);
	ck_assert_int_eq(workdir_create_file(&wd, "up/private"), -1);
	pathf(p, "%s/private", wd.path);
	ck_assert(!exists(p));
	ck_assert_int_eq(count_entries(outside), 0);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(count_entries(outside), 0);
	ck_assert(exists(outside));
}
END_TEST

START_TEST(test_create_file_symlink_final_not_followed)
{
	struct workdir wd;
	char p[PATH_MAX];

	make_outside();
	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	pathf(p, "%s/target", outside);
	ck_assert_int_eq(symlinkat(p, wd.work_fd, "f"), 0);
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "f"), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert(!exists(p));
	pathf(p, "%s/secret", outside);
	ck_assert_int_eq(symlinkat(p, wd.work_fd, "g"), 0);
	ck_assert_int_eq(workdir_create_file(&wd, "g"), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	check_outside();
}
END_TEST

START_TEST(test_create_file_bad_names)
{
	static const char *const bad[] = {
		"../x", "../../etc/x", "/etc/x", "a//b", "", "a/", ".", "./a", "a\\b", "a\x01",
		"\xc0\xaf", "x/../../y",
	};
	struct workdir wd;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(workdir_create_file(&wd, bad[i]) == -1, "\"%s\" accepted", bad[i]);
		ck_assert_int_eq(errno, EINVAL);
	}
	ck_assert_int_eq(workdir_create_file(&wd, NULL), -1);
	ck_assert_int_eq(count_entries(wd.work_path), 0);
	ck_assert_int_eq(count_entries(wd.path), 1);
	ck_assert_int_eq(count_entries(outside), 0);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	/* After removal there is no work_fd to create in. */
	errno = 0;
	ck_assert_int_eq(workdir_create_file(&wd, "main.py"), -1);
	ck_assert_int_eq(errno, EBADF);
}
END_TEST

START_TEST(test_private_file)
{
	static const char *const bad[] = { "", "a/b", "work", "tmp", ".", "..", "/stdin" };
	struct workdir wd;
	char p[PATH_MAX];
	struct stat st;
	int fd;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	fd = workdir_private_file(&wd, "stdout");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	ck_assert_int_eq(write(fd, "out", 3), 3);
	close(fd);
	pathf(p, "%s/stdout", wd.path);
	ck_assert(file_is(p, "out"));
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(count_entries(wd.work_path), 0);
	errno = 0;
	ck_assert_int_eq(workdir_private_file(&wd, "stdout"), -1);
	ck_assert_int_eq(errno, EEXIST);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(workdir_private_file(&wd, bad[i]) == -1, "\"%s\" accepted", bad[i]);
		ck_assert_int_eq(errno, EINVAL);
	}
	ck_assert_int_eq(count_entries(wd.path), 2);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(count_entries(root), 0);
}
END_TEST

START_TEST(test_remove_hostile_leftovers)
{
	struct workdir wd;
	const char *why = "";
	char p[PATH_MAX];
	struct stat st;
	int fd;

	make_outside();
	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	ck_assert_msg(plant_hostile(wd.work_fd, wd.work_path, &why) == 0, "%s", why);
	/* A hard link to an outside file shares its inode: only the link goes. */
	pathf(p, "%s/secret", outside);
	ck_assert_int_eq(linkat(AT_FDCWD, p, wd.work_fd, "hardlink", 0), 0);
	/* The private side and the short temporary directory get leftovers too. */
	fd = workdir_private_file(&wd, "stdin");
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(workdir_make_short_tmp(&wd), 0);
	pathf(p, "%s", wd.tmp_path);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mkfifoat(fd, "fifo", 0600), 0);
	ck_assert_int_eq(mkdirat(fd, "x", 0700), 0);
	ck_assert_int_eq(fchmod(fd, 0), 0);
	close(fd);
	/* Last, the program locks its own work directory. */
	ck_assert_int_eq(fchmod(wd.work_fd, 0), 0);

	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(count_entries(root), 0);
	check_outside();
	pathf(p, "%s/secret", outside);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert_int_eq(st.st_nlink, 1);
}
END_TEST

/* A chain of depth directories "d" below dfd, with a file every 100 levels
 * and a 000 directory every 1000; only one fd held at a time. */
static int make_deep(int dfd, int depth)
{
	int fd = dup(dfd);

	if (fd < 0)
		return -1;
	for (int i = 0; i < depth; i++) {
		int nfd;

		if (i % 100 == 0) {
			int f = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

			if (f < 0)
				goto fail;
			close(f);
		}
		if (mkdirat(fd, "d", 0700) < 0)
			goto fail;
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			goto fail;
		if (i % 1000 == 999 && fchmod(fd, 0) < 0)
			goto fail;
		close(fd);
		fd = nfd;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

START_TEST(test_remove_deep_few_fds)
{
	struct workdir wd;
	struct rlimit old, rl;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	ck_assert_int_eq(make_deep(wd.work_fd, 5000), 0);
	/* One fd per level would need 5000. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = 64;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_int_eq(count_entries(root), 0);
}
END_TEST

struct deep_job {
	int dirfd;
	const char *name;
	int ret, err;
};

static void *deep_remove_thread(void *arg)
{
	struct deep_job *j = arg;

	j->ret = workdir_rmtree_at(j->dirfd, j->name);
	j->err = errno;
	return NULL;
}

START_TEST(test_remove_deep_small_stack)
{
	struct deep_job job;
	pthread_attr_t attr;
	pthread_t th;
	int fd, rfd;

	rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(rfd, 0);
	ck_assert_int_eq(mkdirat(rfd, "deep", 0700), 0);
	fd = openat(rfd, "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(make_deep(fd, 10000), 0);
	close(fd);
	/* 256 KiB of stack: recursion over 10000 levels would need more. */
	job.dirfd = rfd;
	job.name = "deep";
	job.ret = -2;
	ck_assert_int_eq(pthread_attr_init(&attr), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
	ck_assert_int_eq(pthread_create(&th, &attr, deep_remove_thread, &job), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	pthread_attr_destroy(&attr);
	ck_assert_msg(job.ret == 0, "rmtree: %s", strerror(job.err));
	ck_assert_int_eq(count_entries(root), 0);
	close(rfd);
}
END_TEST

/* A bushy tree deeper than the streams kept open: every level has three
 * subdirectories with files, one of them mode 000, so parents are reopened
 * through ".." and listed again. Recursion is fine here: depth <= 40. */
static void make_bushy(int dfd, int depth)
{
	for (int k = 0; k < 3; k++) {
		char n[16];
		int fd;

		snprintf(n, sizeof(n), "s%d", k);
		ck_assert_int_eq(mkdirat(dfd, n, 0700), 0);
		fd = open_dir_at(dfd, n);
		ck_assert_int_ge(fd, 0);
		put_file(fd, "a", "a", 0644);
		put_file(fd, "b", "b", 0);
		if (k == 0 && depth > 0)
			make_bushy(fd, depth - 1);
		else if (k == 1)
			ck_assert_int_eq(mkfifoat(fd, "p", 0600), 0);
		if (k == 2)
			ck_assert_int_eq(fchmod(fd, 0), 0);
		close(fd);
	}
}

START_TEST(test_remove_bushy_tree)
{
	struct workdir wd;

	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	make_bushy(wd.work_fd, 40);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(count_entries(root), 0);
}
END_TEST

START_TEST(test_rmtree_at_kinds)
{
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char p[PATH_MAX];

	ck_assert_int_ge(rfd, 0);
	make_outside();
	/* Missing is success. */
	ck_assert_int_eq(workdir_rmtree_at(rfd, "missing"), 0);
	put_file(rfd, "file", "x", 0);
	ck_assert_int_eq(workdir_rmtree_at(rfd, "file"), 0);
	ck_assert_int_eq(mkfifoat(rfd, "fifo", 0600), 0);
	ck_assert_int_eq(workdir_rmtree_at(rfd, "fifo"), 0);
	/* A symlink to a directory: the link goes, never what it points to. */
	pathf(p, "%s/dir", outside);
	ck_assert_int_eq(symlinkat(p, rfd, "link"), 0);
	ck_assert_int_eq(workdir_rmtree_at(rfd, "link"), 0);
	ck_assert_int_eq(count_entries(root), 0);
	check_outside();
	/* A mode-000 directory at the top. */
	ck_assert_int_eq(mkdirat(rfd, "top", 0700), 0);
	ck_assert_int_eq(mkdirat(rfd, "top/in", 0700), 0);
	put_file(rfd, "top/in/f", "f", 0644);
	ck_assert_int_eq(fchmodat(rfd, "top/in", 0, 0), 0);
	ck_assert_int_eq(fchmodat(rfd, "top", 0, 0), 0);
	ck_assert_int_eq(workdir_rmtree_at(rfd, "top"), 0);
	ck_assert_int_eq(count_entries(root), 0);
	/* Names that are not one entry of dirfd. */
	errno = 0;
	ck_assert_int_eq(workdir_rmtree_at(rfd, ".."), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(workdir_rmtree_at(rfd, "."), -1);
	ck_assert_int_eq(workdir_rmtree_at(rfd, ""), -1);
	ck_assert_int_eq(workdir_rmtree_at(rfd, "../outside"), -1);
	ck_assert_int_eq(errno, EINVAL);
	check_outside();
	close(rfd);
}
END_TEST

START_TEST(test_sweep)
{
	static const char *const ids[] = { "a1", "b2", "c3" };
	struct workdir wd[3];
	const char *why = "";
	char p[PATH_MAX];

	make_outside();
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(workdir_create(&wd[i], root, ids[i]), 0);
		ck_assert_msg(plant_hostile(wd[i].work_fd, wd[i].work_path, &why) == 0, "%s", why);
		ck_assert_int_eq(fchmod(wd[i].work_fd, 0), 0);
		/* A crashed worker: its fds are gone, its directory is not. */
		close(wd[i].work_fd);
		close(wd[i].req_fd);
		close(wd[i].root_fd);
	}
	pathf(p, "%s/stray", root);
	put_file(AT_FDCWD, p, "stray", 0);
	pathf(p, "%s/link", root);
	ck_assert_int_eq(symlink(outside, p), 0);
	ck_assert_int_eq(workdir_sweep(root), 5);
	ck_assert_int_eq(count_entries(root), 0);
	check_outside();
	ck_assert_int_eq(workdir_sweep(root), 0);
	pathf(p, "%s/missing", base);
	ck_assert_int_eq(workdir_sweep(p), -1);

	/* Another live process's request stays; a dead one's goes. */
	pathf(p, "%s/%d-0123abcd", root, (int)getppid());
	ck_assert_int_eq(mkdir(p, 0700), 0);
	pathf(p, "%s/%d-0123abcd", root, INT_MAX - 1);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(workdir_sweep(root), 1);
	ck_assert_int_eq(count_entries(root), 1);
	pathf(p, "%s/%d-0123abcd", root, (int)getppid());
	ck_assert_int_eq(rmdir(p), 0);
}
END_TEST

/* The short temporary directory: private, short, removed with the request,
 * and by a sweep after a crash; a link planted to name something else is
 * never followed. */
START_TEST(test_short_tmp)
{
	struct workdir wd;
	struct stat st;
	char p[PATH_MAX], kept[PATH_MAX], victim[] = "/tmp/pyexec-XXXXXX";

	ck_assert_int_eq(workdir_create(&wd, root, "t1"), 0);
	ck_assert_int_eq(workdir_make_short_tmp(&wd), 0);
	ck_assert_uint_eq(strlen(wd.tmp_path), strlen(WORKDIR_SHORT_TMP));
	ck_assert_int_eq(strncmp(wd.tmp_path, "/tmp/pyexec-", 12), 0);
	ck_assert_int_eq(lstat(wd.tmp_path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	pathf(p, "%s/x", wd.tmp_path);
	put_file(AT_FDCWD, p, "x", 0);
	strcpy(kept, wd.tmp_path);
	ck_assert_int_eq(workdir_remove(&wd), 0);
	ck_assert_int_eq(lstat(kept, &st), -1);
	ck_assert_int_eq(count_entries(root), 0);

	/* A crashed worker's: the sweep removes both. */
	ck_assert_int_eq(workdir_create(&wd, root, "t2"), 0);
	ck_assert_int_eq(workdir_make_short_tmp(&wd), 0);
	strcpy(kept, wd.tmp_path);
	close(wd.work_fd);
	close(wd.req_fd);
	close(wd.root_fd);
	ck_assert_int_eq(workdir_sweep(root), 1);
	ck_assert_int_eq(lstat(kept, &st), -1);

	/* A link that names another directory, or one outside /tmp/pyexec-*,
	 * takes only itself with it. */
	ck_assert_ptr_nonnull(mkdtemp(victim));
	pathf(p, "%s/t3", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	pathf(p, "%s/t3/" WORKDIR_TMP_LINK, root);
	ck_assert_int_eq(symlink(base, p), 0);
	pathf(p, "%s/t4", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	pathf(p, "%s/t4/" WORKDIR_TMP_LINK, root);
	snprintf(kept, sizeof(kept), "%s/../..", victim);
	ck_assert_int_eq(symlink(kept, p), 0);
	ck_assert_int_eq(workdir_sweep(root), 2);
	ck_assert_int_eq(lstat(base, &st), 0);
	ck_assert_int_eq(lstat(victim, &st), 0);
	ck_assert_int_eq(rmdir(victim), 0);
}
END_TEST

/* Builds the hostile tree and removes it as uid/gid 65534 in a child, where
 * mode 000 really is a barrier (it is not for root). Exit status 0 = good. */
static int unprivileged_child(void)
{
	struct workdir wd;
	const char *why = "";
	int fd;

	/* Not root already: mode 000 is a barrier for this user as it is. */
	if (geteuid() == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
		    setresuid(NOBODY, NOBODY, NOBODY) < 0) {
			fprintf(stderr, "drop privileges: %s\n", strerror(errno));
			return 10;
		}
		if (geteuid() != NOBODY)
			return 11;
	}
	if (workdir_create(&wd, root, "r") < 0)
		return 12;
	if (plant_hostile(wd.work_fd, wd.work_path, &why) < 0) {
		fprintf(stderr, "plant: %s: %s\n", why, strerror(errno));
		return 13;
	}
	if (make_deep(wd.work_fd, 300) < 0)
		return 14;
	/* The barrier is real for this user. */
	fd = openat(wd.work_fd, "d000", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || errno != EACCES)
		return 15;
	if (unlinkat(wd.work_fd, "d500/f0", 0) == 0 || errno != EACCES)
		return 16;
	if (fchmod(wd.work_fd, 0) < 0)
		return 17;
	if (workdir_remove(&wd) < 0)
		return 18;
	if (count_entries(root) != 0)
		return 19;
	return 0;
}

START_TEST(test_remove_as_unprivileged_owner)
{
	pid_t pid;
	int status;

	make_outside();
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
		ck_assert_int_eq(chown(root, NOBODY, NOBODY), 0);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(unprivileged_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "unprivileged removal failed, status %d", status);
	check_outside();
}
END_TEST

/* Names and modes workdir_copy_tree's on_file saw, one per line. */
static char copied[1024];

static int note_copy(void *arg, const char *name, const struct stat *st)
{
	size_t n = strlen(copied);

	(void)arg;
	snprintf(copied + n, sizeof(copied) - n, "%s %o %lld\n", name,
		 (unsigned)(st->st_mode & 07777), (long long)st->st_size);
	return 0;
}

static int fail_on_b(void *arg, const char *name, const struct stat *st)
{
	(void)arg;
	(void)st;
	if (strcmp(name, "d/b.txt") == 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* src/ with a file, a read-only directory holding a file, a symlink and a
 * FIFO; dst/ empty. Their fds into *src, *dst. */
static void make_copy_dirs(int *src, int *dst)
{
	char p[PATH_MAX];
	int d;

	pathf(p, "%s/src", base);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	pathf(p, "%s/dst", base);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	*src = open_dir_at(AT_FDCWD, base);
	ck_assert_int_ge(*src, 0);
	*dst = open_dir_at(*src, "dst");
	d = open_dir_at(*src, "src");
	close(*src);
	*src = d;
	ck_assert_int_ge(*dst, 0);
	ck_assert_int_ge(*src, 0);
	put_file(*src, "a.txt", "alpha", 0640);
	ck_assert_int_eq(mkdirat(*src, "d", 0755), 0);
	d = open_dir_at(*src, "d");
	ck_assert_int_ge(d, 0);
	put_file(d, "b.txt", "beta!", 0600);
	close(d);
	ck_assert_int_eq(fchmodat(*src, "d", 0555, 0), 0);
	ck_assert_int_eq(symlinkat("/etc/passwd", *src, "link"), 0);
	ck_assert_int_eq(mkfifoat(*src, "fifo", 0600), 0);
}

START_TEST(test_copy_tree)
{
	struct workdir_copy c = { .dir_bits = 0, .file_bits = 0, .max_depth = 4,
				  .on_file = note_copy, .arg = NULL };
	char p[PATH_MAX];
	struct stat st;
	int src, dst;

	make_copy_dirs(&src, &dst);
	copied[0] = '\0';
	ck_assert_int_eq(workdir_copy_tree(src, dst, &c), 0);
	pathf(p, "%s/dst/a.txt", base);
	ck_assert(file_is(p, "alpha"));
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	pathf(p, "%s/dst/d/b.txt", base);
	ck_assert(file_is(p, "beta!"));
	pathf(p, "%s/dst/d", base);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0555);
	/* neither the symlink nor the FIFO: regular files and directories only */
	pathf(p, "%s/dst", base);
	ck_assert_int_eq(count_entries(p), 2);
	ck_assert_msg(strstr(copied, "a.txt 640 5\n") != NULL, "%s", copied);
	ck_assert_msg(strstr(copied, "d/b.txt 600 5\n") != NULL, "%s", copied);
	ck_assert_int_eq((int)strlen(copied), (int)strlen("a.txt 640 5\nd/b.txt 600 5\n"));
	pathf(p, "%s/dst/d", base);
	ck_assert_int_eq(chmod(p, 0755), 0);
	close(src);
	close(dst);
}
END_TEST

/* Bits added to every copy's mode: a run with ids of its own may change
 * its uploads. */
START_TEST(test_copy_tree_mode_bits)
{
	struct workdir_copy c = { .dir_bits = 0777, .file_bits = 0666, .max_depth = 4 };
	char p[PATH_MAX];
	struct stat st;
	int src, dst;

	make_copy_dirs(&src, &dst);
	ck_assert_int_eq(workdir_copy_tree(src, dst, &c), 0);
	pathf(p, "%s/dst/a.txt", base);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0666);
	pathf(p, "%s/dst/d", base);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0777);
	close(src);
	close(dst);
}
END_TEST

/* A failure names the upload it happened on and keeps its errno: too
 * deep, a name already in dst, on_file's own. */
START_TEST(test_copy_tree_failures)
{
	struct workdir_copy c = { .max_depth = 0 };
	int src, dst, bfd;

	make_copy_dirs(&src, &dst);
	errno = 0;
	ck_assert_int_eq(workdir_copy_tree(src, dst, &c), -1);
	ck_assert_int_eq(errno, ELOOP);
	ck_assert_str_eq(c.failed, "d");

	c.max_depth = 4;
	c.on_file = fail_on_b;
	close(dst);
	bfd = open_dir_at(AT_FDCWD, base);
	ck_assert_int_eq(workdir_rmtree_at(bfd, "dst"), 0);
	ck_assert_int_eq(mkdirat(bfd, "dst", 0700), 0);
	dst = open_dir_at(bfd, "dst");
	close(bfd);
	errno = 0;
	ck_assert_int_eq(workdir_copy_tree(src, dst, &c), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_str_eq(c.failed, "d/b.txt");

	/* what was copied stays: a second copy into the same dst clashes */
	c.on_file = NULL;
	errno = 0;
	ck_assert_int_eq(workdir_copy_tree(src, dst, &c), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_msg(strcmp(c.failed, "a.txt") == 0 || strcmp(c.failed, "d") == 0,
		      "failed on %s", c.failed);
	close(src);
	close(dst);
}
END_TEST

static Suite *workdir_suite(void)
{
	Suite *s = suite_create("workdir");
	TCase *tc = tcase_create("workdir");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_layout);
	tcase_add_test(tc, test_copy_tree);
	tcase_add_test(tc, test_copy_tree_mode_bits);
	tcase_add_test(tc, test_copy_tree_failures);
	tcase_add_test(tc, test_short_tmp);
	tcase_add_test(tc, test_create_relative_root);
	tcase_add_test(tc, test_create_ids_validated);
	tcase_add_test(tc, test_create_existing_left_alone);
	tcase_add_test(tc, test_create_missing_root);
	tcase_add_test(tc, test_create_file_nested);
	tcase_add_test(tc, test_create_file_duplicate);
	tcase_add_test(tc, test_create_file_clash);
	tcase_add_test(tc, test_create_file_symlink_parent_not_followed);
	tcase_add_test(tc, test_create_file_symlink_final_not_followed);
	tcase_add_test(tc, test_create_file_bad_names);
	tcase_add_test(tc, test_private_file);
	tcase_add_test(tc, test_remove_hostile_leftovers);
	tcase_add_test(tc, test_remove_deep_few_fds);
	tcase_add_test(tc, test_remove_deep_small_stack);
	tcase_add_test(tc, test_remove_bushy_tree);
	tcase_add_test(tc, test_rmtree_at_kinds);
	tcase_add_test(tc, test_sweep);
	tcase_add_test(tc, test_remove_as_unprivileged_owner);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(workdir_suite)
