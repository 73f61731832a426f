#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "check_main.h"

#define MIB (1024ULL * 1024)

static const struct query_limits lim = { 60000, 4096 * MIB };

/* Parses qs into a struct first filled with junk, so fields the parser
 * forgets to reset show up. */
static int parse(const char *qs, struct query_params *out, char *err, size_t errlen)
{
	memset(out, 0x5a, sizeof(*out));
	err[0] = '\0';
	return query_parse(qs, &lim, out, err, errlen);
}

static struct query_params *params(void)
{
	static struct query_params p;   /* 8K: not on Check's stack */
	return &p;
}

/* ---- nothing given ---- */

START_TEST(test_null_and_empty)
{
	const char *inputs[] = { NULL, "", "&", "&&&" };
	struct query_params *p = params();
	char err[256];

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		ck_assert_int_eq(parse(inputs[i], p, err, sizeof(err)), 0);
		ck_assert_int_eq(p->has_timeout, 0);
		ck_assert_uint_eq(p->timeout_ms, 0);
		ck_assert_int_eq(p->has_memory, 0);
		ck_assert_uint_eq(p->memory, 0);
		ck_assert_int_eq(p->json, 0);
		ck_assert_int_eq(p->has_dependencies, 0);
		ck_assert_str_eq(p->dependencies, "");
		ck_assert_str_eq(err, "");
	}
}
END_TEST

START_TEST(test_all_keys)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(parse("dependencies=requests&timeout=2.5&memory=256&format=json",
			       p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->has_dependencies, 1);
	ck_assert_str_eq(p->dependencies, "requests");
	ck_assert_int_eq(p->has_timeout, 1);
	ck_assert_uint_eq(p->timeout_ms, 2500);
	ck_assert_int_eq(p->has_memory, 1);
	ck_assert_uint_eq(p->memory, 256 * MIB);
	ck_assert_int_eq(p->json, 1);
}
END_TEST

START_TEST(test_empty_segments_skipped)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(parse("&&timeout=1&&memory=32&", p, err, sizeof(err)), 0);
	ck_assert_uint_eq(p->timeout_ms, 1000);
	ck_assert_uint_eq(p->memory, 32 * MIB);
}
END_TEST

/* ---- timeout ---- */

struct timeout_ok { const char *qs; uint64_t ms; };
static const struct timeout_ok timeouts_ok[] = {
	{ "timeout=10", 10000 },
	{ "timeout=2.5", 2500 },
	{ "timeout=1.50", 1500 },
	{ "timeout=0.001", 1 },
	{ "timeout=007", 7000 },
	{ "timeout=60", 60000 },
	{ "timeout=60.000", 60000 },
	{ "timeout=%32%2E%35", 2500 },
	{ "timeout=000000000000000000000000000002.5", 2500 },
};

START_TEST(test_timeout_ok)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_msg(parse(timeouts_ok[_i].qs, p, err, sizeof(err)) == 0, "%s: %s",
		      timeouts_ok[_i].qs, err);
	ck_assert_int_eq(p->has_timeout, 1);
	ck_assert_uint_eq(p->timeout_ms, timeouts_ok[_i].ms);
	ck_assert_int_eq(p->has_memory, 0);
}
END_TEST

struct bad { const char *qs, *err; };
static const struct bad bads[] = {
	{ "stream=yes", "stream: must be 1 (Server-Sent Events) or 0" },
	{ "stream=", "stream: must be 1 (Server-Sent Events) or 0" },
	{ "stream=10", "stream: must be 1 (Server-Sent Events) or 0" },
	{ "stream=1&stream=1", "stream: given twice" },
	{ "python=", "python: must name an interpreter in 1 to 64 bytes" },
	{ "python=a2345678901234567890123456789012345678901234567890123456789012345", "python: must name an interpreter in 1 to 64 bytes" },
	{ "python=a&python=b", "python: given twice" },
	{ "python=a%00", "python: bad percent escape or NUL byte in the value" },
	{ "timeout=abc", "timeout: 'abc' is not a number of seconds" },
	{ "timeout=-1", "timeout: '-1' is not a number of seconds" },
	{ "timeout=1e3", "timeout: '1e3' is not a number of seconds" },
	{ "timeout=.5", "timeout: '.5' is not a number of seconds" },
	{ "timeout=5.", "timeout: '5.' is not a number of seconds" },
	{ "timeout=1.2.3", "timeout: '1.2.3' is not a number of seconds" },
	{ "timeout=+5", "timeout: ' 5' is not a number of seconds" },
	{ "timeout=5%20", "timeout: '5 ' is not a number of seconds" },
	{ "timeout=5%0A", "timeout: '5?' is not a number of seconds" },
	{ "timeout=1.2345", "timeout: '1.2345' has more than 3 decimals" },
	{ "timeout=99", "timeout: 99 is over the maximum of 60 seconds" },
	{ "timeout=60.001", "timeout: 60.001 is over the maximum of 60 seconds" },
	/* 18446744073709559 s wraps to 7.384 s if multiplied in 64 bits. */
	{ "timeout=18446744073709559", "timeout: 18446744073709559 is over the maximum of 60 seconds" },
	{ "timeout=99999999999999999999999999", "timeout: 99999999999999999999999999 is over the maximum of 60 seconds" },
	{ "timeout=10000000000000000000000061", "timeout: 10000000000000000000000061 is over the maximum of 60 seconds" },
	{ "timeout=0", "timeout: must be more than 0 seconds" },
	{ "timeout=0.000", "timeout: must be more than 0 seconds" },
	{ "timeout=", "timeout: empty; give a number of seconds" },
	{ "timeout", "timeout: empty; give a number of seconds" },
	{ "memory=9999", "memory: 9999 MiB is over the maximum of 4096 MiB" },
	{ "memory=4097", "memory: 4097 MiB is over the maximum of 4096 MiB" },
	{ "memory=999999999999999999999999999", "memory: 999999999999999999999999999 MiB is over the maximum of 4096 MiB" },
	{ "memory=8", "memory: 8 MiB is under the minimum of 16 MiB" },
	{ "memory=0", "memory: 0 MiB is under the minimum of 16 MiB" },
	{ "memory=12.5", "memory: '12.5' is not a whole number of MiB" },
	{ "memory=512M", "memory: '512M' is not a whole number of MiB" },
	{ "memory=-1", "memory: '-1' is not a whole number of MiB" },
	{ "memory=", "memory: empty; give a whole number of MiB" },
	{ "memory", "memory: empty; give a whole number of MiB" },
	{ "format=xml", "format: must be 'json' or 'multipart'" },
	{ "format=JSON", "format: must be 'json' or 'multipart'" },
	{ "format=", "format: must be 'json' or 'multipart'" },
	{ "format", "format: must be 'json' or 'multipart'" },
	{ "dependencies=a&dependencies=b", "dependencies: given twice" },
	{ "dependencies=&dependencies", "dependencies: given twice" },
	{ "timeout=1&memory=64&timeout=2", "timeout: given twice" },
	{ "memory=64&memory=64", "memory: given twice" },
	{ "format=json&format=multipart", "format: given twice" },
	{ "time%6Fut=1&timeout=1", "timeout: given twice" },
	{ "foo=1", "unknown query parameter 'foo'" },
	{ "foo", "unknown query parameter 'foo'" },
	{ "timeout=1&Timeout=2", "unknown query parameter 'Timeout'" },
	{ "=5", "unknown query parameter ''" },
	{ "timeout%3D5", "unknown query parameter 'timeout=5'" },
	{ "dependencies=a;timeout=5", "" },   /* ';' is no separator: a valid deps value */
	{ "%1B%5B31m%0Aevil%FF=1", "unknown query parameter '?[31m?evil?'" },
	{ "time%zzout=1", "query parameter 'time%zzout': bad percent escape or NUL byte in its name" },
	{ "%00=1", "query parameter '%00': bad percent escape or NUL byte in its name" },
	{ "timeout%=1", "query parameter 'timeout%': bad percent escape or NUL byte in its name" },
	{ "dependencies=%zz", "dependencies: bad percent escape or NUL byte in the value" },
	{ "dependencies=a%2", "dependencies: bad percent escape or NUL byte in the value" },
	{ "dependencies=a%", "dependencies: bad percent escape or NUL byte in the value" },
	{ "dependencies=a%00b", "dependencies: bad percent escape or NUL byte in the value" },
	{ "timeout=%", "timeout: bad percent escape or NUL byte in the value" },
	{ "format=js%6", "format: bad percent escape or NUL byte in the value" },
};

START_TEST(test_bad)
{
	struct query_params *p = params();
	char err[512];
	int rc = parse(bads[_i].qs, p, err, sizeof(err));

	if (bads[_i].err[0] == '\0') {
		ck_assert_msg(rc == 0, "%s: %s", bads[_i].qs, err);
		return;
	}
	ck_assert_msg(rc == -1, "%s accepted", bads[_i].qs);
	ck_assert_str_eq(err, bads[_i].err);
}
END_TEST

START_TEST(test_timeout_max_with_decimals)
{
	static const struct query_limits l = { 1500, 64 * MIB };
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(query_parse("timeout=2", &l, p, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "timeout: 2 is over the maximum of 1.5 seconds");
	ck_assert_int_eq(query_parse("timeout=1.5", &l, p, err, sizeof(err)), 0);
	ck_assert_uint_eq(p->timeout_ms, 1500);
	ck_assert_int_eq(query_parse("memory=65", &l, p, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "memory: 65 MiB is over the maximum of 64 MiB");
}
END_TEST

/* ---- memory ---- */

START_TEST(test_memory_ok)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(parse("memory=256", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->has_memory, 1);
	ck_assert_uint_eq(p->memory, 256 * MIB);
	ck_assert_int_eq(parse("memory=16", p, err, sizeof(err)), 0);
	ck_assert_uint_eq(p->memory, 16 * MIB);
	ck_assert_int_eq(parse("memory=4096", p, err, sizeof(err)), 0);
	ck_assert_uint_eq(p->memory, 4096 * MIB);
	ck_assert_int_eq(p->has_timeout, 0);
}
END_TEST

/* ---- format ---- */

START_TEST(test_format)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(parse("format=json", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->json, 1);
	ck_assert_int_eq(p->has_format, 1);
	ck_assert_int_eq(parse("format=multipart", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->json, 0);
	ck_assert_int_eq(p->has_format, 1);
	ck_assert_int_eq(parse("timeout=1", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->has_format, 0);
	ck_assert_int_eq(parse("format=%6Ason", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->json, 1);
}
END_TEST

START_TEST(test_stream)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(parse("stream=1", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->stream, 1);
	ck_assert_int_eq(parse("stream=0&format=json", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->stream, 0);
	ck_assert_int_eq(parse("timeout=1", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->stream, 0);
}
END_TEST

/* python: any name of up to 64 bytes, decoded; which exist is the server's to say */
START_TEST(test_python)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_int_eq(parse("timeout=1", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->has_python, 0);
	ck_assert_int_eq(parse("python=pypy3", p, err, sizeof(err)), 0);
	ck_assert_int_eq(p->has_python, 1);
	ck_assert_str_eq(p->python, "pypy3");
	ck_assert_int_eq(parse("python=a%2Fb+c", p, err, sizeof(err)), 0);
	ck_assert_str_eq(p->python, "a/b c");
	ck_assert_int_eq(parse("python=a234567890123456789012345678901234567890123456789012345678901234",
			       p, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(p->python), 64);
}
END_TEST

/* ---- dependencies ---- */

struct deps { const char *qs, *want; };
static const struct deps deps[] = {
	{ "dependencies=requests", "requests" },
	{ "dependencies=requests%2Cnumpy%3D%3D1.26.*", "requests,numpy==1.26.*" },
	{ "dependencies=requests%2cnumpy", "requests,numpy" },
	{ "dependencies=requests,numpy>=1.0", "requests,numpy>=1.0" },
	{ "dependencies=a+b", "a b" },
	{ "dependencies=a%2Bb", "a+b" },
	{ "dependencies=x%3Dy=z", "x=y=z" },
	{ "dependencies=%E2%9C%93", "\xe2\x9c\x93" },
	{ "dependencies=", "" },
	{ "dependencies", "" },
	{ "depend%65ncies=pkg", "pkg" },
};

START_TEST(test_dependencies)
{
	struct query_params *p = params();
	char err[256];

	ck_assert_msg(parse(deps[_i].qs, p, err, sizeof(err)) == 0, "%s: %s", deps[_i].qs, err);
	ck_assert_int_eq(p->has_dependencies, 1);
	ck_assert_str_eq(p->dependencies, deps[_i].want);
}
END_TEST

START_TEST(test_dependencies_max)
{
	static char qs[QUERY_MAX + 1];
	struct query_params *p = params();
	char err[256];
	size_t n = strlen("dependencies=");

	memcpy(qs, "dependencies=", n);
	memset(qs + n, 'a', QUERY_DEPENDENCIES_MAX);
	qs[n + QUERY_DEPENDENCIES_MAX] = '\0';
	ck_assert_int_eq(parse(qs, p, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(p->dependencies), QUERY_DEPENDENCIES_MAX);

	qs[n + QUERY_DEPENDENCIES_MAX] = 'a';
	qs[n + QUERY_DEPENDENCIES_MAX + 1] = '\0';
	ck_assert_int_eq(parse(qs, p, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "dependencies: longer than 8192 bytes");
}
END_TEST

START_TEST(test_dependencies_max_after_decoding)
{
	/* 3 * 3000 raw bytes decode to 3000; 9000 raw plain bytes do not fit. */
	static char qs[QUERY_MAX + 1];
	struct query_params *p = params();
	char err[256];
	size_t n = strlen("dependencies=");

	memcpy(qs, "dependencies=", n);
	for (size_t i = 0; i < 3000; i++)
		memcpy(qs + n + 3 * i, "%2C", 3);
	qs[n + 9000] = '\0';
	ck_assert_int_eq(parse(qs, p, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(p->dependencies), 3000);
	ck_assert_int_eq(p->dependencies[2999], ',');
}
END_TEST

/* ---- the whole string ---- */

START_TEST(test_query_max)
{
	static char qs[QUERY_MAX + 2];
	struct query_params *p = params();
	char err[256];

	/* Exactly QUERY_MAX bytes: a key and empty segments. */
	memset(qs, '&', QUERY_MAX);
	memcpy(qs, "timeout=3", 9);
	qs[QUERY_MAX] = '\0';
	ck_assert_msg(parse(qs, p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(p->timeout_ms, 3000);

	qs[QUERY_MAX] = '&';
	qs[QUERY_MAX + 1] = '\0';
	ck_assert_int_eq(parse(qs, p, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "the query string is longer than 16384 bytes");
}
END_TEST

START_TEST(test_query_unterminated_overlong)
{
	/* No NUL anywhere: the parser must stop at QUERY_MAX + 1 bytes. */
	struct query_params *p = params();
	char err[256];
	char *qs = malloc(QUERY_MAX + 1);

	ck_assert_ptr_nonnull(qs);
	memset(qs, 'a', QUERY_MAX + 1);
	ck_assert_int_eq(parse(qs, p, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "the query string is longer than 16384 bytes");
	free(qs);
}
END_TEST

START_TEST(test_unknown_key_long_sanitized)
{
	static char qs[1024];
	struct query_params *p = params();
	char err[512], want[512];

	memset(qs, 'K', 300);
	strcpy(qs + 300, "=1");
	ck_assert_int_eq(parse(qs, p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "unknown query parameter '%.64s...'", qs);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_error_text_is_printable)
{
	/* Every byte value as a key: the message stays printable ASCII. */
	struct query_params *p = params();
	char qs[8], err[512];

	for (int c = 1; c < 256; c++) {
		snprintf(qs, sizeof(qs), "%%%02X=1", c);
		if (parse(qs, p, err, sizeof(err)) == 0)
			ck_abort_msg("%s accepted", qs);
		for (const char *e = err; *e != '\0'; e++)
			ck_assert_msg(*e >= 0x20 && *e < 0x7f, "%s: byte 0x%02x in the error",
				      qs, (unsigned char)*e);
	}
}
END_TEST

START_TEST(test_err_truncated_and_null)
{
	struct query_params *p = params();
	char err[8];

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(query_parse("foo=1", &lim, p, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown");
	ck_assert_int_eq(query_parse("foo=1", &lim, p, NULL, 0), -1);
	ck_assert_int_eq(query_parse("timeout=4", &lim, p, NULL, 0), 0);
	ck_assert_uint_eq(p->timeout_ms, 4000);
}
END_TEST

/* ---- query_decode ---- */

struct dec { const char *src; long len; const char *want; };
static const struct dec decs[] = {
	{ "", 0, "" },
	{ "plain", 5, "plain" },
	{ "a%2Cb%2cc+d", 7, "a,b,c d" },
	{ "%41%4a%4A", 3, "AJJ" },
	{ "%25%2B%20", 3, "%+ " },
	{ "%FF%80", 2, "\xff\x80" },
	{ "%", -1, NULL },
	{ "%4", -1, NULL },
	{ "a%g0", -1, NULL },
	{ "%0g", -1, NULL },
	{ "%00", -1, NULL },
	{ "%%41", -1, NULL },
};

START_TEST(test_decode)
{
	const struct dec *d = &decs[_i];
	char dst[64];
	long n;

	memset(dst, 'x', sizeof(dst));
	n = query_decode(d->src, strlen(d->src), dst);
	ck_assert_int_eq(n, d->len);
	if (d->want != NULL) {
		ck_assert_mem_eq(dst, d->want, (size_t)n);
		ck_assert_int_eq(dst[n], '\0');
	}
}
END_TEST

START_TEST(test_decode_uses_len)
{
	char dst[16];

	ck_assert_int_eq(query_decode("abcdef", 3, dst), 3);
	ck_assert_str_eq(dst, "abc");
	/* An escape cut by len is incomplete even if the bytes follow. */
	ck_assert_int_eq(query_decode("a%41", 3, dst), -1);
	/* A raw NUL inside len is refused like %00. */
	ck_assert_int_eq(query_decode("a\0b", 3, dst), -1);
}
END_TEST

static Suite *query_suite(void)
{
	Suite *s = suite_create("query");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_null_and_empty);
	tcase_add_test(tc, test_all_keys);
	tcase_add_test(tc, test_empty_segments_skipped);
	tcase_add_loop_test(tc, test_timeout_ok, 0, (int)(sizeof(timeouts_ok) / sizeof(timeouts_ok[0])));
	tcase_add_test(tc, test_timeout_max_with_decimals);
	tcase_add_test(tc, test_memory_ok);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_stream);
	tcase_add_test(tc, test_python);
	tcase_add_loop_test(tc, test_dependencies, 0, (int)(sizeof(deps) / sizeof(deps[0])));
	tcase_add_test(tc, test_dependencies_max);
	tcase_add_test(tc, test_dependencies_max_after_decoding);
	tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof(bads) / sizeof(bads[0])));
	tcase_add_test(tc, test_query_max);
	tcase_add_test(tc, test_query_unterminated_overlong);
	tcase_add_test(tc, test_unknown_key_long_sanitized);
	tcase_add_test(tc, test_error_text_is_printable);
	tcase_add_test(tc, test_err_truncated_and_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_loop_test(tc, test_decode, 0, (int)(sizeof(decs) / sizeof(decs[0])));
	tcase_add_test(tc, test_decode_uses_len);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(query_suite)
