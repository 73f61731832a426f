#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "collect.h"
#include "workdir.h"

#define NOBODY 65534

static char root[PATH_MAX];
static struct workdir wd;
static struct collect_snapshot *snap;
static struct collect_result res;

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/check_collect.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_int_eq(workdir_create(&wd, root, "r"), 0);
	snap = collect_snapshot_new();
	ck_assert_ptr_nonnull(snap);
	memset(&res, 0, sizeof(res));
	umask(022);
	/* A FIFO that blocks the walk must fail the test, not hang it. */
	alarm(20);
}

static void teardown(void)
{
	alarm(0);
	collect_result_free(&res);
	collect_snapshot_free(snap);
	(void)workdir_remove(&wd);
	{
		int fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			(void)workdir_rmtree_at(fd, root + strlen("/tmp/"));
			close(fd);
		}
	}
}

/* Writes content to name under work/ as an upload would arrive, and records
 * it in the snapshot after its last write. */
static void upload(const char *name, const char *content)
{
	struct stat st;
	int fd = workdir_create_file(&wd, name);

	ck_assert_msg(fd >= 0, "upload %s: %s", name, strerror(errno));
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(collect_snapshot_add(snap, name, &st), 0);
	close(fd);
}

/* What the program does: a plain file under work/ (parents must exist). */
static void generate(const char *name, const char *content)
{
	int fd = openat(wd.work_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "generate %s: %s", name, strerror(errno));
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

static void generate_size(const char *name, size_t size)
{
	int fd = openat(wd.work_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void run_collect(unsigned max_files, uint64_t max_bytes)
{
	collect_result_free(&res);
	ck_assert_msg(collect_files(wd.work_fd, snap, max_files, max_bytes, &res) == 0,
		      "collect_files: %s", strerror(errno));
}

/* The names collected, joined by ',' (for one readable comparison). */
static const char *names(void)
{
	static char buf[8192];
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < res.n; i++) {
		int n = snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "," : "", res.files[i].name);

		ck_assert(n >= 0 && (size_t)n < sizeof(buf) - o);
		o += (size_t)n;
	}
	return buf;
}

static uint64_t size_of(const char *name)
{
	for (size_t i = 0; i < res.n; i++)
		if (strcmp(res.files[i].name, name) == 0)
			return res.files[i].size;
	ck_abort_msg("%s not collected", name);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

START_TEST(test_new_file_returned)
{
	upload("main.py", "print(1)\n");
	generate("out.txt", "hello\n");
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "out.txt");
	ck_assert_uint_eq(size_of("out.txt"), 6);
	ck_assert_uint_eq(res.bytes, 6);
	ck_assert_int_eq(res.truncated, 0);
}
END_TEST

START_TEST(test_empty_work_dir)
{
	run_collect(100, 1 << 20);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_ptr_null(res.files);
	ck_assert_uint_eq(res.bytes, 0);
	ck_assert_int_eq(res.truncated, 0);
	/* No snapshot at all is the same as an empty one. */
	generate("a", "a");
	ck_assert_int_eq(collect_files(wd.work_fd, NULL, 100, 100, &res), 0);
	ck_assert_str_eq(names(), "a");
}
END_TEST

START_TEST(test_unchanged_upload_left_out)
{
	upload("main.py", "print(1)\n");
	upload("pkg/util.py", "X = 1\n");
	upload("data/in.csv", "a,b\n");
	/* Read by the run: reading changes neither mtime nor ctime. */
	{
		char buf[16];
		int fd = openat(wd.work_fd, "data/in.csv", O_RDONLY | O_CLOEXEC);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4);
		close(fd);
	}
	generate("pkg/new.py", "new\n");
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "pkg/new.py");
	ck_assert_int_eq(res.truncated, 0);
}
END_TEST

START_TEST(test_changed_upload_same_size)
{
	struct stat st;
	struct timespec times[2];
	int fd;

	upload("data.txt", "aaaa");
	upload("keep.txt", "kkkk");
	ck_assert_int_eq(fstatat(wd.work_fd, "data.txt", &st, 0), 0);
	sleep_ms(30);   /* past the file system's timestamp granularity */
	fd = openat(wd.work_fd, "data.txt", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "bbbb", 4, 0), 4);
	/* Put mtime back as it was: ctime still tells. */
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	ck_assert_int_eq(futimens(fd, times), 0);
	close(fd);
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "data.txt");
	ck_assert_uint_eq(size_of("data.txt"), 4);
}
END_TEST

START_TEST(test_replaced_upload_returned)
{
	upload("a.txt", "same");
	upload("b.txt", "same");
	sleep_ms(30);
	/* Deleted and written again with the same bytes: a new file. */
	ck_assert_int_eq(unlinkat(wd.work_fd, "a.txt", 0), 0);
	generate("a.txt", "same");
	/* Renamed over: the inode of another upload under this name. */
	ck_assert_int_eq(renameat(wd.work_fd, "b.txt", wd.work_fd, "c.txt"), 0);
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "a.txt,c.txt");
}
END_TEST

/* Each field of the snapshot matters on its own. */
START_TEST(test_snapshot_fields_compared)
{
	static const char *const fields[] = { "dev", "ino", "size", "mtime", "ctime" };
	int fd;

	fd = workdir_create_file(&wd, "f");
	ck_assert_int_ge(fd, 0);
	close(fd);
	for (size_t k = 0; k < 5; k++) {
		struct stat st;

		collect_snapshot_free(snap);
		snap = collect_snapshot_new();
		ck_assert_ptr_nonnull(snap);
		ck_assert_int_eq(fstatat(wd.work_fd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
		switch (k) {
		case 0: st.st_dev++; break;
		case 1: st.st_ino++; break;
		case 2: st.st_size++; break;
		case 3: st.st_mtim.tv_nsec ^= 1; break;
		case 4: st.st_ctim.tv_nsec ^= 1; break;
		}
		ck_assert_int_eq(collect_snapshot_add(snap, "f", &st), 0);
		run_collect(100, 1 << 20);
		ck_assert_msg(strcmp(names(), "f") == 0, "a different %s went unnoticed", fields[k]);
	}
	/* And all equal: left out. */
	{
		struct stat st;

		collect_snapshot_free(snap);
		snap = collect_snapshot_new();
		ck_assert_ptr_nonnull(snap);
		ck_assert_int_eq(fstatat(wd.work_fd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
		ck_assert_int_eq(collect_snapshot_add(snap, "f", &st), 0);
		run_collect(100, 1 << 20);
		ck_assert_str_eq(names(), "");
		/* The snapshot is by name: the same file under another name is new. */
		ck_assert_int_eq(renameat(wd.work_fd, "f", wd.work_fd, "g"), 0);
		ck_assert_int_eq(fstatat(wd.work_fd, "g", &st, AT_SYMLINK_NOFOLLOW), 0);
		collect_snapshot_free(snap);
		snap = collect_snapshot_new();
		ck_assert_int_eq(collect_snapshot_add(snap, "f", &st), 0);
		run_collect(100, 1 << 20);
		ck_assert_str_eq(names(), "g");
	}
}
END_TEST

START_TEST(test_subdirectories)
{
	ck_assert_int_eq(mkdirat(wd.work_fd, "out", 0755), 0);
	ck_assert_int_eq(mkdirat(wd.work_fd, "out/plots", 0755), 0);
	ck_assert_int_eq(mkdirat(wd.work_fd, "empty", 0755), 0);
	generate("out/plots/fig.png", "png");
	generate("out/log.txt", "log");
	generate("top.txt", "t");
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "out/log.txt,out/plots/fig.png,top.txt");
	ck_assert_uint_eq(size_of("out/plots/fig.png"), 3);
	ck_assert_uint_eq(res.bytes, 7);
}
END_TEST

START_TEST(test_sorted_bytewise)
{
	ck_assert_int_eq(mkdirat(wd.work_fd, "a", 0755), 0);
	generate("a/b", "1");
	generate("a.txt", "1");
	generate("B", "1");
	generate("a-", "1");
	generate("caf\xc3\xa9", "1");
	generate("cafe", "1");
	generate("_", "1");
	run_collect(100, 1 << 20);
	/* '-' 0x2d < '.' 0x2e < '/' 0x2f; 'B' < '_' < 'a'; 'e' < 0xc3. */
	ck_assert_str_eq(names(), "B,_,a-,a.txt,a/b,cafe,caf\xc3\xa9");
}
END_TEST

START_TEST(test_pycache_skipped)
{
	ck_assert_int_eq(mkdirat(wd.work_fd, "__pycache__", 0755), 0);
	generate("__pycache__/main.cpython-311.pyc", "pyc");
	ck_assert_int_eq(mkdirat(wd.work_fd, "pkg", 0755), 0);
	ck_assert_int_eq(mkdirat(wd.work_fd, "pkg/__pycache__", 0755), 0);
	generate("pkg/__pycache__/util.cpython-311.pyc", "pyc");
	/* Only a directory of exactly that name. */
	ck_assert_int_eq(mkdirat(wd.work_fd, "__pycache__x", 0755), 0);
	generate("__pycache__x/f", "f");
	generate("pkg/__pycache__.txt", "f");
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "__pycache__x/f,pkg/__pycache__.txt");
}
END_TEST

START_TEST(test_symlinks_not_followed)
{
	char outside[PATH_MAX];
	int fd;

	ck_assert_int_lt(snprintf(outside, sizeof(outside), "%s/outside", root), PATH_MAX);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	fd = open(outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(openat(fd, "secret", O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);
	close(fd);
	ck_assert_int_eq(symlinkat("/etc/passwd", wd.work_fd, "passwd"), 0);
	ck_assert_int_eq(symlinkat(outside, wd.work_fd, "outdir"), 0);
	ck_assert_int_eq(symlinkat("/", wd.work_fd, "rootfs"), 0);
	ck_assert_int_eq(symlinkat("..", wd.work_fd, "up"), 0);
	ck_assert_int_eq(symlinkat("nowhere", wd.work_fd, "dangling"), 0);
	ck_assert_int_eq(mkdirat(wd.work_fd, "d", 0755), 0);
	ck_assert_int_eq(symlinkat("/etc/passwd", wd.work_fd, "d/passwd"), 0);
	generate("real.txt", "r");
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "real.txt");
	/* And collect_open refuses them, final component or on the way. */
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "passwd"), -1);
	ck_assert_int_eq(errno, ELOOP);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "d/passwd"), -1);
	ck_assert_int_eq(errno, ELOOP);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "outdir/secret"), -1);
	ck_assert_int_eq(errno, ELOOP);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "rootfs/etc/passwd"), -1);
	ck_assert_int_eq(errno, ELOOP);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "up/work/real.txt"), -1);
	ck_assert_int_eq(errno, ELOOP);
}
END_TEST

START_TEST(test_fifo_and_socket_not_opened)
{
	int fd;

	ck_assert_int_eq(mkfifoat(wd.work_fd, "fifo", 0644), 0);
	ck_assert_int_eq(mkdirat(wd.work_fd, "d", 0755), 0);
	ck_assert_int_eq(mkfifoat(wd.work_fd, "d/fifo", 0644), 0);
	ck_assert_int_eq(mknodat(wd.work_fd, "sock", S_IFSOCK | 0644, 0), 0);
	generate("out.txt", "x");
	/* Would block for good if opened O_RDONLY (alarm() ends the test). */
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "out.txt");
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "fifo"), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "d/fifo"), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "sock"), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "d"), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* Nobody opened the FIFO: a non-blocking writer finds no reader. */
	fd = openat(wd.work_fd, "fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, ENXIO);
}
END_TEST

START_TEST(test_cap_on_count)
{
	generate("e", "5");
	generate("d", "4");
	generate("c", "3");
	generate("b", "2");
	generate("a", "1");
	run_collect(3, 1 << 20);
	ck_assert_str_eq(names(), "a,b,c");
	ck_assert_int_eq(res.truncated, 1);
	ck_assert_uint_eq(res.bytes, 3);
	run_collect(5, 1 << 20);
	ck_assert_uint_eq(res.n, 5);
	ck_assert_int_eq(res.truncated, 0);
	run_collect(0, 1 << 20);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_ptr_null(res.files);
	ck_assert_int_eq(res.truncated, 1);
}
END_TEST

START_TEST(test_cap_on_bytes)
{
	generate_size("a", 10);
	generate_size("b", 100);
	generate_size("c", 5);
	generate_size("d", 6);
	/* a (10) fits, b (100) would pass 20 and is left out, c (5) still
	 * fits (15), d (6) would make 21. */
	run_collect(100, 20);
	ck_assert_str_eq(names(), "a,c");
	ck_assert_uint_eq(res.bytes, 15);
	ck_assert_int_eq(res.truncated, 1);
	/* Exactly at the cap is fine. */
	run_collect(100, 121);
	ck_assert_str_eq(names(), "a,b,c,d");
	ck_assert_uint_eq(res.bytes, 121);
	ck_assert_int_eq(res.truncated, 0);
	run_collect(100, 120);
	ck_assert_str_eq(names(), "a,b,c");
	ck_assert_int_eq(res.truncated, 1);
	/* Empty files fit a zero cap. */
	generate_size("e", 0);
	run_collect(100, 0);
	ck_assert_str_eq(names(), "e");
	ck_assert_int_eq(res.truncated, 1);
}
END_TEST

START_TEST(test_depth_cap)
{
	char name[16];
	int fd = dup(wd.work_fd);

	ck_assert_int_ge(fd, 0);
	/* Directory level 1..70, a file in each; levels up to 64 are searched. */
	for (int level = 1; level <= 70; level++) {
		int nfd;

		ck_assert_int_eq(mkdirat(fd, "d", 0755), 0);
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(nfd, 0);
		close(fd);
		fd = nfd;
		snprintf(name, sizeof(name), "f%d", level);
		ck_assert_int_eq(close(openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);
	}
	close(fd);
	run_collect(1000, 1 << 20);
	ck_assert_uint_eq(res.n, COLLECT_DEPTH_MAX);
	ck_assert_int_eq(res.truncated, 1);
	/* The deepest one returned is at level 64, and collect_open reaches it. */
	{
		const char *deepest = NULL;
		size_t most = 0;

		for (size_t i = 0; i < res.n; i++) {
			size_t slashes = 0;

			for (const char *p = res.files[i].name; *p != '\0'; p++)
				slashes += *p == '/';
			if (slashes > most) {
				most = slashes;
				deepest = res.files[i].name;
			}
		}
		ck_assert_uint_eq(most, COLLECT_DEPTH_MAX);
		ck_assert_ptr_nonnull(deepest);
		ck_assert_str_eq(strrchr(deepest, '/'), "/f64");
		fd = collect_open(wd.work_fd, deepest);
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
}
END_TEST

START_TEST(test_collect_open_regular)
{
	char buf[32];
	struct stat st;
	int fd;

	ck_assert_int_eq(mkdirat(wd.work_fd, "sub", 0755), 0);
	generate("sub/out.txt", "content");
	fd = collect_open(wd.work_fd, "sub/out.txt");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 7);
	ck_assert_int_eq(memcmp(buf, "content", 7), 0);
	close(fd);
}
END_TEST

START_TEST(test_collect_open_bad_names)
{
	static const char *const bad[] = {
		"", "/etc/passwd", "../r/work/x", "a/../x", "./x", "a//x", "x/", ".", "..",
	};
	char longname[NAME_MAX + 2];

	generate("x", "x");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(collect_open(wd.work_fd, bad[i]) == -1, "\"%s\" opened", bad[i]);
		ck_assert_int_eq(errno, EINVAL);
	}
	ck_assert_int_eq(collect_open(wd.work_fd, NULL), -1);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, longname), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "missing"), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(collect_open(wd.work_fd, "x/y"), -1);
	ck_assert_int_eq(errno, ENOTDIR);
}
END_TEST

START_TEST(test_snapshot_api)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	errno = 0;
	ck_assert_int_eq(collect_snapshot_add(snap, NULL, &st), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(collect_snapshot_add(NULL, "x", &st), -1);
	ck_assert_int_eq(collect_snapshot_add(snap, "x", NULL), -1);
	/* Grows past its first allocation; a name copy is kept. */
	for (int i = 0; i < 1000; i++) {
		char n[16];

		snprintf(n, sizeof(n), "f%04d", i);
		ck_assert_int_eq(collect_snapshot_add(snap, n, &st), 0);
	}
	collect_snapshot_free(NULL);
	collect_result_free(NULL);
}
END_TEST

START_TEST(test_many_uploads_lookup)
{
	/* Enough uploads that lookup order matters; all unchanged but one. */
	for (int i = 999; i >= 0; i--) {
		char n[16];

		snprintf(n, sizeof(n), "u%03d", i);
		upload(n, "x");
	}
	sleep_ms(30);
	generate("u500", "y");
	run_collect(100, 1 << 20);
	ck_assert_str_eq(names(), "u500");
}
END_TEST

START_TEST(test_out_of_fds_fails_clean)
{
	struct rlimit rl, old;
	int fd = dup(wd.work_fd), lowest;

	ck_assert_int_ge(fd, 0);
	for (int level = 0; level < 10; level++) {
		int nfd;

		ck_assert_int_eq(mkdirat(fd, "d", 0755), 0);
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(nfd, 0);
		close(fd);
		fd = nfd;
	}
	generate("top", "t");
	ck_assert_int_eq(close(openat(fd, "deep", O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);
	close(fd);
	lowest = dup(0);
	ck_assert_int_ge(lowest, 0);
	close(lowest);
	/* Room for a few fds, not for ten directory levels. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = (rlim_t)lowest + 4;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	errno = 0;
	ck_assert_int_eq(collect_files(wd.work_fd, snap, 100, 1 << 20, &res), -1);
	ck_assert_int_eq(errno, EMFILE);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_ptr_null(res.files);
	ck_assert_uint_eq(res.bytes, 0);
	ck_assert_int_eq(res.truncated, 0);
	/* Nothing leaked: the same fds are free again. */
	fd = dup(0);
	ck_assert_int_eq(fd, lowest);
	close(fd);
}
END_TEST

/* As uid 65534 (root reads everything): a directory the run locked is
 * skipped, the rest is collected. Exit status 0 = good. */
static int unreadable_child(int work_fd)
{
	struct collect_result r;
	int fd;

	if (geteuid() == 0 &&
	    (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	     setresuid(NOBODY, NOBODY, NOBODY) < 0))
		return 10;
	if (mkdirat(work_fd, "locked", 0700) < 0 || mkdirat(work_fd, "open", 0755) < 0)
		return 11;
	if ((fd = openat(work_fd, "locked/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return 12;
	close(fd);
	if ((fd = openat(work_fd, "open/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return 12;
	close(fd);
	if ((fd = openat(work_fd, "m000", O_WRONLY | O_CREAT | O_CLOEXEC, 0)) < 0)
		return 12;
	close(fd);
	if (fchmodat(work_fd, "locked", 0, 0) < 0)
		return 13;
	if (collect_files(work_fd, NULL, 100, 1 << 20, &r) < 0)
		return 14;
	if (r.n != 1 || strcmp(r.files[0].name, "open/f") != 0)
		return 15;
	collect_result_free(&r);
	return 0;
}

START_TEST(test_unreadable_dir_skipped)
{
	pid_t pid;
	int status;

	if (geteuid() == 0) {
		ck_assert_int_eq(fchown(wd.work_fd, NOBODY, NOBODY), 0);
		ck_assert_int_eq(fchown(wd.req_fd, NOBODY, NOBODY), 0);
		ck_assert_int_eq(chown(root, NOBODY, NOBODY), 0);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(unreadable_child(wd.work_fd));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "unprivileged collect failed, status %d", status);
}
END_TEST

static Suite *collect_suite(void)
{
	Suite *s = suite_create("collect");
	TCase *tc = tcase_create("collect");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_new_file_returned);
	tcase_add_test(tc, test_empty_work_dir);
	tcase_add_test(tc, test_unchanged_upload_left_out);
	tcase_add_test(tc, test_changed_upload_same_size);
	tcase_add_test(tc, test_replaced_upload_returned);
	tcase_add_test(tc, test_snapshot_fields_compared);
	tcase_add_test(tc, test_subdirectories);
	tcase_add_test(tc, test_sorted_bytewise);
	tcase_add_test(tc, test_pycache_skipped);
	tcase_add_test(tc, test_symlinks_not_followed);
	tcase_add_test(tc, test_fifo_and_socket_not_opened);
	tcase_add_test(tc, test_cap_on_count);
	tcase_add_test(tc, test_cap_on_bytes);
	tcase_add_test(tc, test_depth_cap);
	tcase_add_test(tc, test_collect_open_regular);
	tcase_add_test(tc, test_collect_open_bad_names);
	tcase_add_test(tc, test_snapshot_api);
	tcase_add_test(tc, test_many_uploads_lookup);
	tcase_add_test(tc, test_out_of_fds_fails_clean);
	tcase_add_test(tc, test_unreadable_dir_skipped);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(collect_suite)
