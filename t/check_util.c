#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "log.h"
#include "ref_utf8.h"
#include "utf8.h"
#include "util.h"

static enum util_num parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return util_parse_uint(s, strlen(s), min, max, out);
}

START_TEST(uint_reads_the_whole_string_within_bounds)
{
	uint64_t v = 7;

	ck_assert_int_eq(parse_uint("0", 0, 10, &v), UTIL_NUM_OK);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_uint("0010", 0, 10, &v), UTIL_NUM_OK);
	ck_assert_uint_eq(v, 10);
	ck_assert_int_eq(parse_uint("65535", 1, 65535, &v), UTIL_NUM_OK);
	ck_assert_uint_eq(v, 65535);
	ck_assert_int_eq(parse_uint("18446744073709551615", 0, UINT64_MAX, &v), UTIL_NUM_OK);
	ck_assert_uint_eq(v, UINT64_MAX);
	/* only len bytes are read */
	ck_assert_int_eq(util_parse_uint("123x", 3, 0, 1000, &v), UTIL_NUM_OK);
	ck_assert_uint_eq(v, 123);
}
END_TEST

START_TEST(uint_refuses_what_is_not_digits)
{
	static const char *const bad[] = {
		"", " 1", "1 ", "+1", "-1", "1x", "0x10", "1.0", "1e3", "1K", "\t1", "1\n",
	};
	uint64_t v = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_uint(bad[i], 0, UINT64_MAX, &v) == UTIL_NUM_INVALID,
			      "'%s'", bad[i]);
		ck_assert_uint_eq(v, 7);
	}
	ck_assert_int_eq(util_parse_uint(NULL, 0, 0, 1, &v), UTIL_NUM_INVALID);
	ck_assert_int_eq(util_parse_uint("1\0" "2", 3, 0, 1000, &v), UTIL_NUM_INVALID);
}
END_TEST

START_TEST(uint_says_too_small_or_too_large)
{
	uint64_t v = 7;

	ck_assert_int_eq(parse_uint("65536", 1, 65535, &v), UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(parse_uint("0", 1, 65535, &v), UTIL_NUM_TOO_SMALL);
	/* a digit larger than a small max is no wrap-around */
	ck_assert_int_eq(parse_uint("9", 0, 5, &v), UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(parse_uint("18446744073709551616", 0, UINT64_MAX, &v),
			 UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(parse_uint("99999999999999999999999999999", 0, UINT64_MAX, &v),
			 UTIL_NUM_TOO_LARGE);
	/* too large even with a stray byte after the overflow is invalid */
	ck_assert_int_eq(parse_uint("99999999999999999999999x", 0, UINT64_MAX, &v),
			 UTIL_NUM_INVALID);
	/* over max is said before under min */
	ck_assert_int_eq(parse_uint("20", 30, 10, &v), UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(parse_uint("5", 30, 10, &v), UTIL_NUM_TOO_SMALL);
	ck_assert_uint_eq(v, 7);
	ck_assert_str_eq(util_num_error(UTIL_NUM_INVALID), "invalid");
	ck_assert_str_eq(util_num_error(UTIL_NUM_TOO_SMALL), "too small");
	ck_assert_str_eq(util_num_error(UTIL_NUM_TOO_LARGE), "too large");
	ck_assert_str_eq(util_num_error(UTIL_NUM_DECIMALS), "too many decimals");
	ck_assert_str_eq(util_num_error(UTIL_NUM_OK), "");
}
END_TEST

START_TEST(sizes_take_a_k_m_or_g_suffix)
{
	static const char *const bad[] = {
		"", "K", "-1", "+1", " 1", "1 ", "1KB", "1.5K", "1k1", "1T", "0x10",
	};
	uint64_t v = 7;

	ck_assert_int_eq(util_parse_size("0", 0, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(util_parse_size("10K", UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, 10240);
	ck_assert_int_eq(util_parse_size("1m", UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, 1048576);
	ck_assert_int_eq(util_parse_size("2G", UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, 2147483648ULL);
	ck_assert_int_eq(util_parse_size("1K", 1024, &v), 0);
	ck_assert_int_eq(util_parse_size("18446744073709551615", UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(util_parse_size("17179869183G", UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, 17179869183ULL << 30);
	v = 7;
	ck_assert_int_lt(util_parse_size("1K", 1023, &v), 0);
	ck_assert_int_lt(util_parse_size("18446744073709551616", UINT64_MAX, &v), 0);
	ck_assert_int_lt(util_parse_size("17179869184G", UINT64_MAX, &v), 0);
	ck_assert_int_lt(util_parse_size(NULL, UINT64_MAX, &v), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(util_parse_size(bad[i], UINT64_MAX, &v) < 0, "'%s'", bad[i]);
	ck_assert_uint_eq(v, 7);
}
END_TEST

static enum util_num seconds(const char *s, uint64_t max, uint64_t *ms)
{
	return util_parse_seconds(s, strlen(s), max, ms);
}

START_TEST(seconds_read_up_to_three_decimals)
{
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "0", 0 }, { "10", 10000 }, { "0.5", 500 }, { "2.250", 2250 },
		{ "0.001", 1 }, { "007.07", 7070 }, { "86400", 86400000 },
	};
	uint64_t ms = 7;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(seconds(ok[i].s, UINT64_MAX, &ms) == UTIL_NUM_OK, "'%s'", ok[i].s);
		ck_assert_uint_eq(ms, ok[i].ms);
	}
	ck_assert_int_eq(seconds("18446744073709551.615", UINT64_MAX, &ms), UTIL_NUM_OK);
	ck_assert_uint_eq(ms, UINT64_MAX);
	ck_assert_int_eq(util_parse_seconds("1.5x", 3, 10000, &ms), UTIL_NUM_OK);
	ck_assert_uint_eq(ms, 1500);
}
END_TEST

START_TEST(seconds_say_what_is_wrong)
{
	static const char *const bad[] = {
		"", ".5", "1.", "-1", "+1", " 1", "1 ", "1,5", "1.5.0", "1e3", "1.2345x", "0x1",
	};
	uint64_t ms = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(seconds(bad[i], UINT64_MAX, &ms) == UTIL_NUM_INVALID, "'%s'", bad[i]);
	ck_assert_int_eq(seconds("1.2345", UINT64_MAX, &ms), UTIL_NUM_DECIMALS);
	ck_assert_int_eq(seconds("10.001", 10000, &ms), UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(seconds("11", 10000, &ms), UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(seconds("18446744073709551.616", UINT64_MAX, &ms), UTIL_NUM_TOO_LARGE);
	ck_assert_int_eq(seconds("99999999999999999999999", UINT64_MAX, &ms),
			 UTIL_NUM_TOO_LARGE);
	ck_assert_uint_eq(ms, 7);
	ck_assert_int_eq(seconds("10", 10000, &ms), UTIL_NUM_OK);
	ck_assert_uint_eq(ms, 10000);
}
END_TEST

START_TEST(seconds_are_written_in_the_fewest_decimals_and_read_back)
{
	static const struct { uint64_t ms; const char *s; } cases[] = {
		{ 0, "0" }, { 1, "0.001" }, { 10, "0.01" }, { 100, "0.1" }, { 1500, "1.5" },
		{ 2250, "2.25" }, { 2251, "2.251" }, { 86400000, "86400" },
		{ UINT64_MAX, "18446744073709551.615" },
	};
	char buf[UTIL_SECONDS_LEN];
	uint64_t back;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		util_format_seconds(buf, sizeof(buf), cases[i].ms);
		ck_assert_str_eq(buf, cases[i].s);
	}
	util_format_seconds_fixed(buf, sizeof(buf), 0);
	ck_assert_str_eq(buf, "0.000");
	util_format_seconds_fixed(buf, sizeof(buf), 1500);
	ck_assert_str_eq(buf, "1.500");
	util_format_seconds_fixed(buf, sizeof(buf), 12001);
	ck_assert_str_eq(buf, "12.001");
	util_format_seconds_fixed(buf, sizeof(buf), UINT64_MAX);
	ck_assert_str_eq(buf, "18446744073709551.615");
	for (uint64_t ms = 0; ms < 20000; ms += 7) {
		util_format_seconds(buf, sizeof(buf), ms);
		ck_assert_int_eq(seconds(buf, UINT64_MAX, &back), UTIL_NUM_OK);
		ck_assert_uint_eq(back, ms);
	}
}
END_TEST

START_TEST(hostport_reads_ipv4_and_bracketed_ipv6)
{
	struct sockaddr_storage ss;
	unsigned len = 0;

	ck_assert_int_eq(util_parse_hostport("127.0.0.1:9000", &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9000);
	ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x7f000001);
	ck_assert_int_eq(util_parse_hostport("[::1]:65535", &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
}
END_TEST

START_TEST(hostport_refuses_the_rest)
{
	static const char *const bad[] = {
		"", ":9000", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:+80", "127.0.0.1:80 ", " 127.0.0.1:80", "localhost:80", "::1:9000",
		"[::1]9000", "[::1:9000", "[]:80", "[127.0.0.1]:80", "127.0.0.1:80x",
		"1.2.3.4.5:80",
	};
	struct sockaddr_storage ss;
	unsigned len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(util_parse_hostport(bad[i], &ss, &len) < 0, "'%s'", bad[i]);
}
END_TEST

START_TEST(blanks)
{
	ck_assert(util_is_blank(' ') && util_is_blank('\t'));
	ck_assert(!util_is_blank('\r') && !util_is_blank('\n') && !util_is_blank('x') &&
		  !util_is_blank('\0') && !util_is_blank('\v'));
	ck_assert(util_is_line_blank(' ') && util_is_line_blank('\t') &&
		  util_is_line_blank('\r'));
	ck_assert(!util_is_line_blank('\n') && !util_is_line_blank('x') &&
		  !util_is_line_blank('\0'));
	ck_assert_ptr_nonnull(strstr(UTIL_PATH, "/usr/bin"));
	ck_assert_int_eq(util_hex_value('0'), 0);
	ck_assert_int_eq(util_hex_value('9'), 9);
	ck_assert_int_eq(util_hex_value('a'), 10);
	ck_assert_int_eq(util_hex_value('F'), 15);
	ck_assert_int_eq(util_hex_value('g'), -1);
	ck_assert_int_eq(util_hex_value('G'), -1);
	ck_assert_int_eq(util_hex_value('/'), -1);
	ck_assert_int_eq(util_hex_value(':'), -1);
	ck_assert_int_eq(util_hex_value('\0'), -1);
}
END_TEST

START_TEST(signal_names)
{
	char buf[16];

	ck_assert_str_eq(util_signal_name(9, buf, sizeof(buf)), "SIGKILL");
	ck_assert_str_eq(util_signal_name(15, buf, sizeof(buf)), "SIGTERM");
	ck_assert_str_eq(util_signal_name(0, buf, sizeof(buf)), "SIG0");
	ck_assert_str_eq(util_signal_name(1000, buf, sizeof(buf)), "SIG1000");
	ck_assert_str_eq(util_signal_name(9, NULL, 0), "SIG?");
}
END_TEST

START_TEST(close_keeps_errno)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	errno = ENOSPC;
	util_close_keep_errno(fd);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_lt(fcntl(fd, F_GETFD), 0);
	ck_assert_int_eq(errno, EBADF);
	errno = EPERM;
	util_close_keep_errno(-1);
	ck_assert_int_eq(errno, EPERM);
}
END_TEST

START_TEST(same_strings_compares_whole_vectors)
{
	char *a[] = { "python3", "-s", "main.py", NULL };
	char *b[] = { "python3", "-s", "main.py", NULL };
	char *shorter[] = { "python3", "-s", NULL };
	char *other[] = { "python3", "-B", "main.py", NULL };
	char *none[] = { NULL };

	ck_assert_int_eq(util_same_strings(a, b), 1);
	ck_assert_int_eq(util_same_strings(a, shorter), 0);
	ck_assert_int_eq(util_same_strings(shorter, a), 0);
	ck_assert_int_eq(util_same_strings(a, other), 0);
	ck_assert_int_eq(util_same_strings(none, none), 1);
	ck_assert_int_eq(util_same_strings(none, a), 0);
}
END_TEST

/* An error path logs, then returns -1 with the errno of what failed: the
 * log line's own write, even a failed one, must not change it. */
START_TEST(log_keeps_errno)
{
	int saved_stderr = dup(STDERR_FILENO);

	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(close(STDERR_FILENO), 0);     /* the write fails: EBADF */
	errno = ENOSPC;
	log_msg(LOG_LEVEL_ERROR, "check_util: %s", strerror(errno));
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	errno = EPERM;
	log_msg(LOG_LEVEL_ERROR, "check_util: written");
	ck_assert_int_eq(errno, EPERM);
}
END_TEST

static char tmp[64];

static void make_tmp(void)
{
	strcpy(tmp, "/tmp/check_util.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void remove_tmp(void)
{
	char cmd[128];

	if (tmp[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(cmd), 0);
	tmp[0] = '\0';
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	return st.st_mode & 07777;
}

START_TEST(mkdir_p_makes_every_missing_parent)
{
	char path[PATH_MAX], long_path[PATH_MAX + 8];
	mode_t old = umask(022);

	snprintf(path, sizeof(path), "%s/a/b//c", tmp);
	ck_assert_int_eq(util_mkdir_p(path, 0700), 0);
	ck_assert_uint_eq(mode_of(path), 0700);
	snprintf(path, sizeof(path), "%s/a/b", tmp);
	ck_assert_uint_eq(mode_of(path), 0755);
	/* again: nothing to do, no error */
	snprintf(path, sizeof(path), "%s/a/b//c", tmp);
	ck_assert_int_eq(util_mkdir_p(path, 0700), 0);
	/* a file in the way */
	snprintf(path, sizeof(path), "%s/file", tmp);
	ck_assert_int_eq(close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)), 0);
	snprintf(path, sizeof(path), "%s/file/d", tmp);
	ck_assert_int_lt(util_mkdir_p(path, 0700), 0);
	ck_assert_int_eq(errno, ENOTDIR);
	memset(long_path, 'x', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	ck_assert_int_lt(util_mkdir_p(long_path, 0700), 0);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_lt(util_mkdir_p("", 0700), 0);
	ck_assert_int_eq(errno, ENOENT);
	umask(old);
}
END_TEST

START_TEST(open_parent_opens_the_directory_of_the_last_component)
{
	char path[PATH_MAX], buf[PATH_MAX], small[8], *name = NULL;
	struct stat st, there;
	int dfd;

	snprintf(path, sizeof(path), "%s/sub/leaf", tmp);
	ck_assert_int_eq(util_mkdir_p(path, 0700), 0);
	dfd = util_open_parent(path, buf, sizeof(buf), &name);
	ck_assert_int_ge(dfd, 0);
	ck_assert_str_eq(name, "leaf");
	ck_assert_int_eq(fstatat(dfd, name, &st, 0), 0);
	ck_assert_int_eq(stat(path, &there), 0);
	ck_assert_uint_eq(st.st_ino, there.st_ino);
	ck_assert_int_eq(close(dfd), 0);
	ck_assert_int_lt(util_open_parent("leaf", buf, sizeof(buf), &name), 0);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_lt(util_open_parent(path, small, sizeof(small), &name), 0);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	snprintf(path, sizeof(path), "%s/missing/leaf", tmp);
	ck_assert_int_lt(util_open_parent(path, buf, sizeof(buf), &name), 0);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

static void write_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(util_write_all(fd, buf, len), 0);
	ck_assert_int_eq(close(fd), 0);
}

START_TEST(read_file_reads_whole_files_up_to_max)
{
	char path[PATH_MAX], *buf = (char *)1;
	size_t len = 99;

	snprintf(path, sizeof(path), "%s/f", tmp);
	write_bytes(path, "ab\0cd", 5);
	ck_assert_int_eq(util_read_file(path, 5, 1, &buf, &len), UTIL_READ_OK);
	ck_assert_uint_eq(len, 5);
	ck_assert_int_eq(memcmp(buf, "ab\0cd", 6), 0);
	free(buf);
	ck_assert_int_eq(util_read_file(path, 4, 1, &buf, &len), UTIL_READ_TOO_LARGE);
	ck_assert_ptr_null(buf);
	ck_assert_int_eq(errno, EFBIG);
	write_bytes(path, "", 0);
	ck_assert_int_eq(util_read_file(path, 0, 0, &buf, &len), UTIL_READ_OK);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(buf, "");
	free(buf);
}
END_TEST

START_TEST(read_text_reads_from_the_start_and_cuts)
{
	char path[PATH_MAX], buf[4];
	int fd;

	snprintf(path, sizeof(path), "%s/t", tmp);
	write_bytes(path, "hello", 5);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(lseek(fd, 2, SEEK_SET), 2);
	util_read_text(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, "hel");
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 2);
	ck_assert_int_eq(close(fd), 0);
	util_read_text(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(read_file_says_which_step_failed)
{
	char path[PATH_MAX], *buf = (char *)1;
	size_t len;

	snprintf(path, sizeof(path), "%s/missing", tmp);
	ck_assert_int_eq(util_read_file(path, 100, 0, &buf, &len), UTIL_READ_OPEN);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(buf);
	ck_assert_int_eq(util_read_file(tmp, 100, 0, &buf, &len), UTIL_READ_DIR);
	ck_assert_int_eq(util_read_file(tmp, 100, 1, &buf, &len), UTIL_READ_NOT_REGULAR);
	ck_assert_int_eq(util_read_file("/dev/null", 100, 1, &buf, &len),
			 UTIL_READ_NOT_REGULAR);
	/* not asked for a regular file: a character device reads */
	ck_assert_int_eq(util_read_file("/dev/null", 100, 0, &buf, &len), UTIL_READ_OK);
	ck_assert_uint_eq(len, 0);
	free(buf);
}
END_TEST

/* Whether utf8_next says OK all through s. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t used;

	for (size_t i = 0; i < n; i += used)
		if (utf8_next(s + i, n - i, &used) != UTF8_OK)
			return 0;
	return 1;
}

START_TEST(utf8_says_what_is_wrong_and_how_much)
{
	static const struct {
		const char *s;
		size_t len;
		enum utf8_step want;
		size_t used;
	} cases[] = {
		{ "A", 1, UTF8_OK, 1 },
		{ "\xc2\x80", 2, UTF8_OK, 2 },
		{ "\xe2\x82\xac", 3, UTF8_OK, 3 },
		{ "\xf0\x9f\x98\x80", 4, UTF8_OK, 4 },
		{ "\xf4\x8f\xbf\xbf", 4, UTF8_OK, 4 },
		{ "\xe2\x82", 2, UTF8_SHORT, 2 },
		{ "\xf0\x9f\x98", 3, UTF8_SHORT, 3 },
		{ "\xe2", 1, UTF8_SHORT, 1 },
		{ "\x80", 1, UTF8_CONTINUATION, 1 },
		{ "\xbf", 1, UTF8_CONTINUATION, 1 },
		{ "\xc0\xaf", 2, UTF8_OVERLONG, 1 },
		{ "\xc1\xbf", 2, UTF8_OVERLONG, 1 },
		{ "\xe0\x80\xaf", 3, UTF8_OVERLONG, 1 },
		{ "\xf0\x8f\xbf\xbf", 4, UTF8_OVERLONG, 1 },
		{ "\xed\xa0\x80", 3, UTF8_SURROGATE, 1 },
		{ "\xf4\x90\x80\x80", 4, UTF8_ABOVE_MAX, 1 },
		{ "\xf5\x80\x80\x80", 4, UTF8_ABOVE_MAX, 1 },
		{ "\xf8", 1, UTF8_NEVER, 1 },
		{ "\xff", 1, UTF8_NEVER, 1 },
		{ "\xc2" "A", 2, UTF8_TRUNCATED, 1 },
		{ "\xe2\x82" "A", 3, UTF8_TRUNCATED, 2 },
		/* a bad second byte and a missing third: truncated first */
		{ "\xe0\x80" "A", 3, UTF8_TRUNCATED, 1 },
		{ "\xed\xa0", 2, UTF8_TRUNCATED, 1 },
	};
	size_t used;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum utf8_step got = utf8_next((const unsigned char *)cases[i].s, cases[i].len,
					       &used);

		ck_assert_msg(got == cases[i].want, "case %zu: %d, not %d", i, (int)got,
			      (int)cases[i].want);
		ck_assert_msg(used == cases[i].used, "case %zu: used %zu, not %zu", i, used,
			      cases[i].used);
	}
}
END_TEST

START_TEST(utf8_agrees_with_the_reference)
{
	static const unsigned char tails[] = {
		0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xff,
	};
	const size_t nt = sizeof(tails);
	unsigned char b[4];

	/* every lead byte with every second byte (ASCII leads are one byte) */
	for (unsigned a = 0x80; a < 256; a++)
		for (unsigned c = 0; c < 256; c++) {
			b[0] = (unsigned char)a;
			b[1] = (unsigned char)c;
			ck_assert_int_eq(utf8_valid(b, 2), ref_utf8_valid(b, 2));
		}
	for (unsigned a = 0xc0; a < 256; a++)
		for (size_t i = 0; i < nt; i++)
			for (size_t j = 0; j < nt; j++)
				for (size_t k = 0; k < nt; k++) {
					b[0] = (unsigned char)a;
					b[1] = tails[i];
					b[2] = tails[j];
					b[3] = tails[k];
					ck_assert_int_eq(utf8_valid(b, 3), ref_utf8_valid(b, 3));
					ck_assert_int_eq(utf8_valid(b, 4), ref_utf8_valid(b, 4));
				}
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *num = tcase_create("numbers");
	TCase *fs = tcase_create("files");
	TCase *utf8 = tcase_create("utf8");

	tcase_add_test(num, uint_reads_the_whole_string_within_bounds);
	tcase_add_test(num, uint_refuses_what_is_not_digits);
	tcase_add_test(num, uint_says_too_small_or_too_large);
	tcase_add_test(num, sizes_take_a_k_m_or_g_suffix);
	tcase_add_test(num, seconds_read_up_to_three_decimals);
	tcase_add_test(num, seconds_say_what_is_wrong);
	tcase_add_test(num, seconds_are_written_in_the_fewest_decimals_and_read_back);
	tcase_add_test(num, hostport_reads_ipv4_and_bracketed_ipv6);
	tcase_add_test(num, hostport_refuses_the_rest);
	tcase_add_test(num, blanks);
	tcase_add_test(num, signal_names);
	tcase_add_test(num, same_strings_compares_whole_vectors);
	suite_add_tcase(s, num);
	tcase_add_checked_fixture(fs, make_tmp, remove_tmp);
	tcase_add_test(fs, close_keeps_errno);
	tcase_add_test(fs, log_keeps_errno);
	tcase_add_test(fs, mkdir_p_makes_every_missing_parent);
	tcase_add_test(fs, open_parent_opens_the_directory_of_the_last_component);
	tcase_add_test(fs, read_file_reads_whole_files_up_to_max);
	tcase_add_test(fs, read_file_says_which_step_failed);
	tcase_add_test(fs, read_text_reads_from_the_start_and_cuts);
	suite_add_tcase(s, fs);
	tcase_add_test(utf8, utf8_says_what_is_wrong_and_how_much);
	tcase_add_test(utf8, utf8_agrees_with_the_reference);
	tcase_set_timeout(utf8, 60);   /* some 200,000 sequences, under valgrind too */
	suite_add_tcase(s, utf8);
	return s;
}

CHECK_MAIN(util_suite)
