#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "subid.h"

static char path[64];

static void write_file(const char *text)
{
	FILE *f;

	strcpy(path, "/tmp/check_subid.XXXXXX");
	{
		int fd = mkstemp(path);

		ck_assert_int_ge(fd, 0);
		f = fdopen(fd, "w");
	}
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static void teardown(void)
{
	if (path[0] != '\0')
		(void)unlink(path);
	path[0] = '\0';
}

START_TEST(finds_by_name_and_by_number)
{
	unsigned long first = 0;

	write_file("root:100000:65536\n"
		   "nobody:200000:65536\n"
		   "1001:300000:10\n");
	ck_assert_int_eq(subid_find(path, "nobody", 65534, 65534, 8, &first), 0);
	ck_assert_uint_eq(first, 200000);
	ck_assert_int_eq(subid_find(path, "alice", 1001, 1001, 8, &first), 0);
	ck_assert_uint_eq(first, 300000);
	/* a range too small is not one */
	ck_assert_int_eq(subid_find(path, "alice", 1001, 1001, 11, &first), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(subid_find(path, "bob", 1002, 1002, 1, &first), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* A name is matched whole; the first range big enough wins. */
START_TEST(first_fitting_range_of_the_exact_name)
{
	unsigned long first = 0;

	write_file("nobodyx:100000:65536\n"
		   "nobody:200000:4\n"
		   "nobody:300000:64\n"
		   "nobody:400000:64\n");
	ck_assert_int_eq(subid_find(path, "nobody", 65534, 65534, 8, &first), 0);
	ck_assert_uint_eq(first, 300000);
	ck_assert_int_eq(subid_find(path, "nobody", 65534, 65534, 4, &first), 0);
	ck_assert_uint_eq(first, 200000);
}
END_TEST

/* Lines that do not parse are skipped; so are ranges holding root, the
 * user's own id, or ids past 2^32 - 2; a line too long is skipped whole. */
START_TEST(bad_lines_and_dangerous_ranges_are_skipped)
{
	char text[4096];
	unsigned long first = 0;
	size_t n;

	n = (size_t)snprintf(text, sizeof(text),
			     "nobody\n"
			     "nobody:abc:10\n"
			     "nobody:10:\n"
			     "nobody::10\n"
			     "nobody:-5:10\n"
			     "nobody:99999999999:10\n"
			     "nobody:0:65536\n"
			     "nobody:65530:10\n"
			     "nobody:4294967290:10\n"
			     "nobody:10 :10\n"
			     "nobody:");
	memset(text + n, '7', SUBID_LINE_MAX);
	n += SUBID_LINE_MAX;
	snprintf(text + n, sizeof(text) - n, ":10\nnobody:500000:10");
	write_file(text);
	ck_assert_int_eq(subid_find(path, "nobody", 65534, 65534, 10, &first), 0);
	/* the last line, without its newline, still counts */
	ck_assert_uint_eq(first, 500000);
}
END_TEST

START_TEST(missing_file_says_why)
{
	unsigned long first = 0;

	ck_assert_int_eq(subid_find("/nonexistent/subuid", "nobody", 65534, 65534, 1, &first), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* A helper that is not there: the error says which and why. */
START_TEST(map_of_a_process_that_is_not_ours_fails_with_a_message)
{
	char err[512] = "";

	if (access(SUBID_NEWUIDMAP, X_OK) != 0) {
		ck_assert_int_eq(subid_map(getpid(), 0, 0, 1, err, sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "uidmap"));
		return;
	}
	/* Our own process is in no new user namespace: newuidmap refuses. */
	ck_assert_int_eq(subid_map(getpid(), 0, getuid(), 524288, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, SUBID_NEWUIDMAP));
	ck_assert_ptr_nonnull(strstr(err, "failed"));
}
END_TEST

/* The range must not hold pyexec's own id of that kind, which is not its
 * uid in /etc/subgid: a range whose ids in use would hold the gid is passed
 * over. */
START_TEST(range_holding_the_own_gid_is_passed_over)
{
	unsigned long first = 0;

	write_file("alice:1000:10\n"
		   "alice:2000:10\n");
	ck_assert_int_eq(subid_find(path, "alice", 1001, 1002, 4, &first), 0);
	ck_assert_uint_eq(first, 2000);
	ck_assert_int_eq(subid_find(path, "alice", 1001, 3000, 4, &first), 0);
	ck_assert_uint_eq(first, 1000);
}
END_TEST

static Suite *subid_suite(void)
{
	Suite *s = suite_create("subid");
	TCase *tc = tcase_create("subid");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, finds_by_name_and_by_number);
	tcase_add_test(tc, first_fitting_range_of_the_exact_name);
	tcase_add_test(tc, range_holding_the_own_gid_is_passed_over);
	tcase_add_test(tc, bad_lines_and_dangerous_ranges_are_skipped);
	tcase_add_test(tc, missing_file_says_why);
	tcase_add_test(tc, map_of_a_process_that_is_not_ours_fails_with_a_message);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(subid_suite)
