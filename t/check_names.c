#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "names.h"
#include "ref_utf8.h"

/* A literal's length without its terminating NUL, so literals may hold NULs. */
#define LIT(s) (s), (sizeof(s) - 1)

static void expect_ok(const char *name, size_t len)
{
	const char *why = "untouched";

	ck_assert_msg(names_check(name, len, &why) == 0,
		      "name of %zu bytes rejected: %s", len, why);
}

static void expect_bad(const char *name, size_t len, const char *phrase)
{
	const char *why = NULL;

	ck_assert_msg(names_check(name, len, &why) == -1,
		      "name of %zu bytes accepted, expected \"%s\"", len, phrase);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, phrase) != NULL,
		      "why is \"%s\", expected it to say \"%s\"", why, phrase);
}

/* A name of n components, each of clen 'a's, joined by '/'. Caller frees. */
static char *make_name(size_t n, size_t clen, size_t *len)
{
	char *s = malloc(n * (clen + 1) + 1);
	size_t o = 0;

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			s[o++] = '/';
		memset(s + o, 'a', clen);
		o += clen;
	}
	s[o] = '\0';
	*len = o;
	return s;
}

START_TEST(test_plain_names_pass)
{
	expect_ok(LIT("main.py"));
	expect_ok(LIT("pkg/util.py"));
	expect_ok(LIT("a/b/c/d.txt"));
	expect_ok(LIT(".hidden"));
	expect_ok(LIT("..."));
	expect_ok(LIT("..x"));
	expect_ok(LIT("x.."));
	expect_ok(LIT("a b-c_d~e+f=g,h;i'j\"k"));
	expect_ok(LIT("x"));
}
END_TEST

START_TEST(test_absolute)
{
	expect_bad(LIT("/etc/passwd"), "is absolute");
	expect_bad(LIT("/"), "is absolute");
	expect_bad(LIT("//x"), "is absolute");
}
END_TEST

START_TEST(test_dotdot)
{
	expect_bad(LIT(".."), "'..'");
	expect_bad(LIT("../x"), "'..'");
	expect_bad(LIT("a/../../x"), "'..'");
	expect_bad(LIT("a/.."), "'..'");
}
END_TEST

START_TEST(test_dot)
{
	expect_bad(LIT("."), "'.' component");
	expect_bad(LIT("./main.py"), "'.' component");
	expect_bad(LIT("a/./b"), "'.' component");
	expect_bad(LIT("a/."), "'.' component");
}
END_TEST

START_TEST(test_empty_components)
{
	expect_bad(LIT(""), "is empty");
	expect_bad(NULL, 0, "is empty");
	expect_bad(LIT("a//b"), "empty component");
	expect_bad(LIT("a/"), "empty component");
	expect_bad(LIT("a/b/"), "empty component");
}
END_TEST

START_TEST(test_nul_inside)
{
	expect_bad(LIT("a\0b"), "NUL");
	expect_bad(LIT("main.py\0"), "NUL");
	expect_bad(LIT("\0"), "NUL");
	expect_bad(LIT("dir/\0/x"), "NUL");
}
END_TEST

START_TEST(test_every_control_char)
{
	for (int c = 1; c < 0x20; c++) {
		char name[] = "ab?cd";

		name[2] = (char)c;
		expect_bad(name, 5, "control character");
		name[0] = (char)c;
		name[2] = 'x';
		expect_bad(name, 5, "control character");
	}
	expect_bad(LIT("a\x7f"), "control character");
	expect_bad(LIT("dir/\x7f"), "control character");
	expect_bad(LIT("evil\r\nContent-Type: x"), "control character");
}
END_TEST

START_TEST(test_backslash)
{
	expect_bad(LIT("a\\b"), "backslash");
	expect_bad(LIT("..\\..\\x"), "backslash");
	expect_bad(LIT("\\"), "backslash");
}
END_TEST

START_TEST(test_component_length)
{
	char buf[300];

	memset(buf, 'a', 255);
	expect_ok(buf, 255);
	memset(buf, 'a', 256);
	expect_bad(buf, 256, "longer than 255 bytes");
	/* Also in a subdirectory, and counted in bytes, not characters. */
	memcpy(buf, "d/", 2);
	memset(buf + 2, 'b', 255);
	expect_ok(buf, 257);
	memset(buf + 2, 'b', 256);
	expect_bad(buf, 258, "longer than 255 bytes");
	for (int i = 0; i < 127; i++)
		memcpy(buf + 2 * i, "\xc3\xa9", 2);  /* 127 x U+00E9 = 254 bytes */
	buf[254] = 'x';
	expect_ok(buf, 255);
	buf[254] = '\xc3';
	buf[255] = '\xa9';
	expect_bad(buf, 256, "longer than 255 bytes");
}
END_TEST

START_TEST(test_depth)
{
	size_t len;
	char *s = make_name(16, 1, &len);

	expect_ok(s, len);
	free(s);
	s = make_name(17, 1, &len);
	expect_bad(s, len, "deeper than 16");
	free(s);
}
END_TEST

START_TEST(test_total_length)
{
	size_t len;
	/* 16 components of 255 bytes: the deepest, longest name allowed. */
	char *s = make_name(16, 255, &len);

	ck_assert_uint_eq(len, 16 * 255 + 15);
	expect_ok(s, len);
	free(s);
	s = malloc(NAMES_PATH_MAX + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, 'a', NAMES_PATH_MAX + 1);
	expect_bad(s, NAMES_PATH_MAX + 1, "longer than 4096 bytes");
	free(s);
}
END_TEST

START_TEST(test_utf8_valid)
{
	expect_ok(LIT("caf\xc3\xa9.txt"));                 /* é, 2 bytes */
	expect_ok(LIT("\xe6\x97\xa5\xe6\x9c\xac/\xe8\xaa\x9e.py")); /* CJK, 3 bytes */
	expect_ok(LIT("\xf0\x9f\x90\x8d.py"));             /* U+1F40D snake, 4 bytes */
	expect_ok(LIT("\xc2\x80"));                        /* U+0080, lowest 2-byte */
	expect_ok(LIT("\xe0\xa0\x80"));                    /* U+0800, lowest 3-byte */
	expect_ok(LIT("\xed\x9f\xbf"));                    /* U+D7FF, below surrogates */
	expect_ok(LIT("\xee\x80\x80"));                    /* U+E000, above surrogates */
	expect_ok(LIT("\xef\xbf\xbd"));                    /* U+FFFD */
	expect_ok(LIT("\xf0\x90\x80\x80"));                /* U+10000, lowest 4-byte */
	expect_ok(LIT("\xf4\x8f\xbf\xbf"));                /* U+10FFFF, highest */
}
END_TEST

START_TEST(test_utf8_overlong)
{
	expect_bad(LIT("\xc0\xaf"), "overlong");           /* '/' in 2 bytes */
	expect_bad(LIT("a\xc0\xae\xc0\xae/x"), "overlong"); /* ".." in 2 bytes */
	expect_bad(LIT("\xc1\xbf"), "overlong");
	expect_bad(LIT("\xe0\x80\xaf"), "overlong");       /* '/' in 3 bytes */
	expect_bad(LIT("\xe0\x9f\xbf"), "overlong");       /* U+07FF in 3 bytes */
	expect_bad(LIT("\xf0\x80\x80\xaf"), "overlong");   /* '/' in 4 bytes */
	expect_bad(LIT("\xf0\x8f\xbf\xbf"), "overlong");   /* U+FFFF in 4 bytes */
	expect_bad(LIT("\xc0\x80"), "overlong");           /* "modified UTF-8" NUL */
}
END_TEST

START_TEST(test_utf8_surrogates)
{
	expect_bad(LIT("\xed\xa0\x80"), "surrogate");      /* U+D800 */
	expect_bad(LIT("\xed\xbf\xbf"), "surrogate");      /* U+DFFF */
	expect_bad(LIT("x\xed\xb0\x80y"), "surrogate");    /* U+DC00 */
	/* CESU-8 style pair for U+1F40D */
	expect_bad(LIT("\xed\xa0\xbd\xed\xb0\x8d"), "surrogate");
}
END_TEST

START_TEST(test_utf8_above_max)
{
	expect_bad(LIT("\xf4\x90\x80\x80"), "above U+10FFFF"); /* U+110000 */
	expect_bad(LIT("\xf5\x80\x80\x80"), "above U+10FFFF");
	expect_bad(LIT("\xf7\xbf\xbf\xbf"), "above U+10FFFF");
	expect_bad(LIT("\xf8\x88\x80\x80\x80"), "UTF-8");
	expect_bad(LIT("\xfe"), "UTF-8");
	expect_bad(LIT("\xff"), "UTF-8");
}
END_TEST

START_TEST(test_utf8_truncated)
{
	expect_bad(LIT("\xc3"), "truncated");
	expect_bad(LIT("ab\xc3"), "truncated");
	expect_bad(LIT("\xe6\x97"), "truncated");
	expect_bad(LIT("\xf0\x9f\x90"), "truncated");
	expect_bad(LIT("\xf0\x9f\x90/x"), "truncated");   /* cut by a '/' */
	expect_bad(LIT("\xe6\x97x"), "truncated");         /* cut by ASCII */
	expect_bad(LIT("\xc3\xc3\xa9"), "truncated");      /* cut by a new lead */
	/* A sequence is not allowed to span a '/': each component stands alone. */
	expect_bad(LIT("\xc3/\xa9"), "truncated");
}
END_TEST

START_TEST(test_utf8_lone_continuation)
{
	expect_bad(LIT("\x80"), "continuation");
	expect_bad(LIT("a\xbf"), "continuation");
	expect_bad(LIT("\xc3\xa9\xa9"), "continuation");  /* one too many */
	expect_bad(LIT("\xf0\x9f\x90\x8d\x8d"), "continuation");
}
END_TEST


/* Every sequence of 1 to 3 bytes drawn from 'a' and 0x80..0xff, and every
 * 4-byte sequence with a lead byte 0xf0..0xff, judged like the reference. */
START_TEST(test_utf8_exhaustive)
{
	unsigned char b[4];
	unsigned long checked = 0;

	for (int n = 1; n <= 3; n++) {
		unsigned long total = 1;

		for (int k = 0; k < n; k++)
			total *= 129;
		for (unsigned long v = 0; v < total; v++) {
			unsigned long x = v;

			for (int k = 0; k < n; k++, x /= 129)
				b[k] = x % 129 == 0 ? 'a' : (unsigned char)(0x7f + x % 129);
			/* ck_assert per case would cost a syscall each. */
			if ((names_check((char *)b, (size_t)n, NULL) == 0) !=
			    ref_utf8_valid(b, (size_t)n))
				ck_abort_msg("disagree on %02x %02x %02x (%d bytes)",
					     b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n);
			checked++;
		}
	}
	for (unsigned lead = 0xf0; lead <= 0xff; lead++)
		for (unsigned long v = 0; v < 64UL * 64 * 64 * 2; v++) {
			b[0] = (unsigned char)lead;
			b[1] = (unsigned char)(0x80 + (v & 63) + (v >> 18 ? 0x40 : 0));
			b[2] = (unsigned char)(0x80 + (v >> 6 & 63));
			b[3] = (unsigned char)(0x80 + (v >> 12 & 63));
			if ((names_check((char *)b, 4, NULL) == 0) != ref_utf8_valid(b, 4))
				ck_abort_msg("disagree on %02x %02x %02x %02x",
					     b[0], b[1], b[2], b[3]);
			checked++;
		}
	ck_assert_uint_gt(checked, 2000000);
}
END_TEST

START_TEST(test_why_optional_and_stable)
{
	const char *why = NULL;

	/* why may be NULL; the verdict does not change. */
	ck_assert_int_eq(names_check(LIT("../x"), NULL), -1);
	ck_assert_int_eq(names_check(LIT("ok.py"), NULL), 0);
	/* On success why is left alone. */
	why = "kept";
	ck_assert_int_eq(names_check(LIT("ok.py"), &why), 0);
	ck_assert_str_eq(why, "kept");
	/* len, not strlen, bounds the check: a prefix of a bad name is fine. */
	ck_assert_int_eq(names_check("a/../b", 1, &why), 0);
	ck_assert_int_eq(names_check("main.py\n", 7, &why), 0);
	/* The phrase reads after the name in a message: "\"/x\" is absolute". */
	ck_assert_int_eq(names_check(LIT("/x"), &why), -1);
	ck_assert_str_eq(why, "is absolute");
	ck_assert_int_eq(names_check(LIT("a/../b"), &why), -1);
	ck_assert_str_eq(why, "has a '..' component");
}
END_TEST

static Suite *names_suite(void)
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("names");

	tcase_add_test(tc, test_plain_names_pass);
	tcase_add_test(tc, test_absolute);
	tcase_add_test(tc, test_dotdot);
	tcase_add_test(tc, test_dot);
	tcase_add_test(tc, test_empty_components);
	tcase_add_test(tc, test_nul_inside);
	tcase_add_test(tc, test_every_control_char);
	tcase_add_test(tc, test_backslash);
	tcase_add_test(tc, test_component_length);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_total_length);
	tcase_add_test(tc, test_utf8_valid);
	tcase_add_test(tc, test_utf8_overlong);
	tcase_add_test(tc, test_utf8_surrogates);
	tcase_add_test(tc, test_utf8_above_max);
	tcase_add_test(tc, test_utf8_truncated);
	tcase_add_test(tc, test_utf8_lone_continuation);
	tcase_add_test(tc, test_why_optional_and_stable);
	suite_add_tcase(s, tc);
	/* Some six million names: a second natively, minutes under valgrind
	 * (make check-valgrind) on a slow machine. */
	tc = tcase_create("exhaustive");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_utf8_exhaustive);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(names_suite)
