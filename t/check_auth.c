#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "check_main.h"

#define T1 "s3cret-token-number-one"
#define T2 "AbCdEfGhIjKlMnOpQrStUv0123456789+/=="

static char path[64];

/* Writes len bytes to a fresh temporary file, whose name is in path. */
static const char *write_tokens(const char *text, size_t len)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/check_auth.XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void load_ok(struct auth *a, const char *text)
{
	char err[512] = "";

	ck_assert_msg(auth_load(a, write_tokens(text, strlen(text)), err, sizeof(err)) == 0,
		      "%s", err);
	unlink(path);
}

/* The error auth_load gives for text is the file's name then want. */
static void load_fails(const char *text, size_t len, const char *want)
{
	struct auth a = { 0, NULL };
	char err[512] = "", expect[1024];
	const char *f = write_tokens(text, len);

	ck_assert_int_eq(auth_load(&a, f, err, sizeof(err)), -1);
	ck_assert_uint_eq(a.n, 0);
	ck_assert_ptr_null(a.digest);
	snprintf(expect, sizeof(expect), "%s%s", f, want);
	ck_assert_str_eq(err, expect);
	unlink(path);
}

START_TEST(test_tokens_are_recognised)
{
	struct auth a = { 0, NULL };

	load_ok(&a, "# tokens of the grading service\n\n  " T1 "  \n" T2 "\r\n");
	ck_assert_uint_eq(a.n, 2);
	ck_assert_int_eq(auth_check(&a, "Bearer " T1), AUTH_OK);
	ck_assert_int_eq(auth_check(&a, "Bearer " T2), AUTH_OK);
	ck_assert_int_eq(auth_check(&a, "bearer " T1), AUTH_OK);
	ck_assert_int_eq(auth_check(&a, "BEARER\t " T1 " "), AUTH_OK);
	ck_assert_int_eq(auth_check(&a, "  Bearer " T1), AUTH_OK);
	auth_free(&a);
	ck_assert_uint_eq(a.n, 0);
	ck_assert_ptr_null(a.digest);
}
END_TEST

START_TEST(test_other_tokens_are_refused)
{
	struct auth a = { 0, NULL };

	load_ok(&a, T1 "\n");
	ck_assert_int_eq(auth_check(&a, "Bearer s3cret-token-number-on"), AUTH_INVALID);
	ck_assert_int_eq(auth_check(&a, "Bearer " T1 "e"), AUTH_INVALID);
	ck_assert_int_eq(auth_check(&a, "Bearer S3CRET-TOKEN-NUMBER-ONE"), AUTH_INVALID);
	ck_assert_int_eq(auth_check(&a, "Bearer " T1 " x"), AUTH_INVALID);
	ck_assert_int_eq(auth_check(&a, "Bearer  "), AUTH_INVALID);
	ck_assert_int_eq(auth_check(&a, NULL), AUTH_MISSING);
	ck_assert_int_eq(auth_check(&a, ""), AUTH_MISSING);
	ck_assert_int_eq(auth_check(&a, "Bearer"), AUTH_MISSING);
	ck_assert_int_eq(auth_check(&a, "Bearer" T1), AUTH_MISSING);
	ck_assert_int_eq(auth_check(&a, "Basic " T1), AUTH_MISSING);
	ck_assert_int_eq(auth_check(&a, T1), AUTH_MISSING);
	auth_free(&a);
}
END_TEST

START_TEST(test_long_header_is_refused)
{
	struct auth a = { 0, NULL };
	char h[AUTH_TOKEN_MAX + 64];

	load_ok(&a, T1 "\n");
	memset(h, 'a', sizeof(h) - 1);
	h[sizeof(h) - 1] = '\0';
	memcpy(h, "Bearer ", 7);
	ck_assert_int_eq(auth_check(&a, h), AUTH_INVALID);
	auth_free(&a);
}
END_TEST

START_TEST(test_bad_files_are_refused)
{
	char many[(AUTH_TOKENS_MAX + 1) * 24 + 1], *p = many;
	char big[AUTH_TOKEN_MAX + 2];

	load_fails("", 0, ": no token in the file (every request would be refused)");
	load_fails("# only a comment\n\n", 18,
		   ": no token in the file (every request would be refused)");
	load_fails(T1 "\nshort\n", strlen(T1) + 7,
		   ":2: a token must be 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + / "
		   "(then '=' padding), one per line");
	load_fails("token with spaces inside\n", 25,
		   ":1: a token must be 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + / "
		   "(then '=' padding), one per line");
	load_fails("padding==in-the-middle\n", 23,
		   ":1: a token must be 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + / "
		   "(then '=' padding), one per line");
	load_fails(T1 "\0" T2 "\n", strlen(T1) + strlen(T2) + 2, ": holds a NUL byte");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	load_fails(big, strlen(big),
		   ":1: a token must be 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + / "
		   "(then '=' padding), one per line");
	for (int i = 0; i <= AUTH_TOKENS_MAX; i++)
		p += sprintf(p, "token-number-%09d\n", i);
	load_fails(many, (size_t)(p - many), ":1025: more than 1024 tokens");
}
END_TEST

START_TEST(test_missing_file_and_directory)
{
	struct auth a = { 0, NULL };
	char err[512];

	ck_assert_int_eq(auth_load(&a, "/nonexistent/pyexec-tokens", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/pyexec-tokens: No such file or directory");
	ck_assert_int_eq(auth_load(&a, "/tmp", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/tmp: not a regular file");
	ck_assert_uint_eq(a.n, 0);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");

	tcase_add_test(tc, test_tokens_are_recognised);
	tcase_add_test(tc, test_other_tokens_are_refused);
	tcase_add_test(tc, test_long_header_is_refused);
	tcase_add_test(tc, test_bad_files_are_refused);
	tcase_add_test(tc, test_missing_file_and_directory);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(auth_suite)
