#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "argenv.h"
#include "check_main.h"

static struct argenv *fresh(void)
{
	static struct argenv a;   /* not on Check's stack */

	argenv_init(&a);
	return &a;
}

static int args(struct argenv *a, const char *json, char *err, size_t errlen)
{
	err[0] = '\0';
	return argenv_parse_args(a, json, strlen(json), err, errlen);
}

static int env(struct argenv *a, const char *json, char *err, size_t errlen)
{
	err[0] = '\0';
	return argenv_parse_env(a, json, strlen(json), err, errlen);
}

/* v (n strings, NULL-ended) is want (NULL-ended) */
static void check_vector(char *const *v, size_t n, const char *const *want)
{
	size_t i;

	for (i = 0; want[i] != NULL; i++) {
		ck_assert_msg(v[i] != NULL, "%zu strings, want more", i);
		ck_assert_str_eq(v[i], want[i]);
	}
	ck_assert_ptr_null(v[i]);
	ck_assert_uint_eq(n, i);
}

/* ---- args ---- */

START_TEST(test_args_exact)
{
	struct argenv *a = fresh();
	char err[512];

	/* Unicode (escaped and raw), empty strings, '=' and spaces kept as they are */
	ck_assert_int_eq(args(a, " [\"a b\", \"\", \"x=y=z\", \"caf\\u00e9\", \"\xe2\x98\x83\","
			      " \"\\ud83d\\ude00\", \"-c\"] ", err, sizeof(err)), 0);
	check_vector(a->argv, a->argc, (const char *const[]){ "a b", "", "x=y=z", "caf\xc3\xa9",
		     "\xe2\x98\x83", "\xf0\x9f\x98\x80", "-c", NULL });
	ck_assert_int_eq(a->have_args, 1);
	argenv_free(a);
	ck_assert_uint_eq(a->argc, 0);
	argenv_free(a);
}
END_TEST

START_TEST(test_args_empty_array)
{
	struct argenv *a = fresh();
	char err[512];

	ck_assert_int_eq(args(a, "[]", err, sizeof(err)), 0);
	ck_assert_uint_eq(a->argc, 0);
	ck_assert_int_eq(a->have_args, 1);
	argenv_free(a);
}
END_TEST

static const struct { const char *json, *want; } bad_args[] = {
	{ "", "args: not valid JSON" },
	{ "[\"a\"", "args: not valid JSON" },
	{ "[\"a\"] x", "args: not valid JSON" },
	{ "\"a\"", "args: must be a JSON array of strings" },
	{ "{\"a\": \"b\"}", "args: must be a JSON array of strings" },
	{ "null", "args: must be a JSON array of strings" },
	{ "[\"a\", 1]", "args: item 1 is not a string" },
	{ "[null]", "args: item 0 is not a string" },
	{ "[[\"a\"]]", "args: item 0 is not a string" },
	{ "[\"a\\u0000b\"]", "args: item 0 holds a NUL character" },
	{ "[\"\xff\"]", "args: not valid JSON" },          /* not UTF-8 */
	{ "[\"\\ud800\"]", "args: not valid JSON" },       /* a lone surrogate */
	{ "['a']", "args: not valid JSON" },
};

/* json is refused with a detail that starts with want, and the field is
 * not taken as given. */
static void check_refused(int is_env, const char *json, const char *want)
{
	struct argenv *a = fresh();
	char err[512];

	ck_assert_int_eq((is_env ? env : args)(a, json, err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s: got '%s', want '%s...'", json,
		      err, want);
	ck_assert_int_eq(is_env ? a->have_env : a->have_args, 0);
	argenv_free(a);
}

START_TEST(test_args_refused)
{
	check_refused(0, bad_args[_i].json, bad_args[_i].want);
}
END_TEST

/* ARGENV_ARGS_MAX strings (or ARGENV_ENV_MAX variables) pass, one more
 * is refused with want. */
static void check_count_bound(int is_env, const char *want)
{
	struct argenv *a = fresh();
	char err[512];
	int n = is_env ? ARGENV_ENV_MAX : ARGENV_ARGS_MAX;
	char *json = malloc(16 * ((size_t)n + 1) + 8), *p = json;
	int (*parse)(struct argenv *, const char *, char *, size_t) = is_env ? env : args;

	ck_assert_ptr_nonnull(json);
	*p++ = is_env ? '{' : '[';
	for (int i = 0; i < n; i++)
		p += sprintf(p, is_env ? "%s\"V%d\":\"\"" : "%s\"%d\"", i ? "," : "", i);
	strcpy(p, is_env ? "}" : "]");
	ck_assert_int_eq(parse(a, json, err, sizeof(err)), 0);
	ck_assert_uint_eq(is_env ? a->envc : a->argc, (size_t)n);
	argenv_free(a);
	strcpy(p, is_env ? ",\"X\":\"\"}" : ",\"x\"]");
	ck_assert_int_eq(parse(a, json, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	argenv_free(a);
	free(json);
}

START_TEST(test_args_count_bound)
{
	check_count_bound(0, "args: more than 128 strings");
}
END_TEST

START_TEST(test_field_size_bound)
{
	struct argenv *a = fresh();
	char err[512];
	size_t n = ARGENV_FIELD_MAX + 1;
	char *json = malloc(n);

	ck_assert_ptr_nonnull(json);
	memset(json, ' ', n);
	json[0] = '[';
	json[n - 1] = ']';
	ck_assert_int_eq(argenv_parse_args(a, json, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "args: over 65536 bytes");
	/* the same within the bound parses */
	json[n - 2] = ']';
	ck_assert_int_eq(argenv_parse_args(a, json, n - 1, err, sizeof(err)), 0);
	argenv_free(a);
	free(json);
}
END_TEST

/* args of one string of arg_len bytes, then env of V=<value_len bytes>:
 * what parsing env returns. */
static int args_then_env(struct argenv *a, size_t arg_len, size_t value_len, char *err,
			 size_t errlen)
{
	char *json = malloc((arg_len > value_len ? arg_len : value_len) + 32);
	int rc;

	ck_assert_ptr_nonnull(json);
	strcpy(json, "[\"");
	memset(json + 2, 'a', arg_len);
	strcpy(json + 2 + arg_len, "\"]");
	ck_assert_int_eq(args(a, json, err, errlen), 0);
	strcpy(json, "{\"V\": \"");
	memset(json + 7, 'b', value_len);
	strcpy(json + 7 + value_len, "\"}");
	rc = env(a, json, err, errlen);
	free(json);
	return rc;
}

/* args and env together are bounded in bytes, each string with its NUL */
START_TEST(test_bytes_bound_shared)
{
	struct argenv *a = fresh();
	char err[512];
	size_t half = ARGENV_BYTES_MAX / 2;

	/* an argument of half - 1 bytes is half with its NUL; "V=" + value +
	 * NUL with half - 3 bytes of value fills the rest exactly */
	ck_assert_int_eq(args_then_env(a, half - 1, half - 3, err, sizeof(err)), 0);
	ck_assert_uint_eq(a->bytes, ARGENV_BYTES_MAX);
	argenv_free(a);
	/* one byte more is refused */
	ck_assert_int_eq(args_then_env(a, half - 1, half - 2, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "env: the arguments and environment given are over 32768 bytes");
	argenv_free(a);
}
END_TEST

/* ---- env ---- */

START_TEST(test_env_exact_in_order)
{
	struct argenv *a = fresh();
	char err[512];

	ck_assert_int_eq(env(a, "{\"Z\": \"1\", \"A_b9\": \"x=y\", \"_\": \"\", \"U\": "
			     "\"caf\\u00e9 \xe2\x98\x83\", \"LC_ALL\": \"C\"}", err, sizeof(err)), 0);
	check_vector(a->env, a->envc, (const char *const[]){ "Z=1", "A_b9=x=y", "_=",
		     "U=caf\xc3\xa9 \xe2\x98\x83", "LC_ALL=C", NULL });
	argenv_free(a);
}
END_TEST

static const struct { const char *json, *want; } bad_env[] = {
	{ "[]", "env: must be a JSON object of names to strings" },
	{ "\"A=1\"", "env: must be a JSON object of names to strings" },
	{ "{\"A\": 1}", "env: the value of 'A' is not a string" },
	{ "{\"A\": null}", "env: the value of 'A' is not a string" },
	{ "{\"A\": \"a\\u0000\"}", "env: the value of 'A' holds a NUL character" },
	{ "{\"A\": \"1\", \"A\": \"2\"}", "env: not valid JSON" },
	{ "{\"\": \"1\"}", "env: '' is not a variable name" },
	{ "{\"1A\": \"1\"}", "env: '1A' is not a variable name" },
	{ "{\"A-B\": \"1\"}", "env: 'A-B' is not a variable name" },
	{ "{\"A=B\": \"1\"}", "env: 'A=B' is not a variable name" },
	{ "{\"A B\": \"1\"}", "env: 'A B' is not a variable name" },
	{ "{\"caf\\u00e9\": \"1\"}", "env: 'caf?" "?' is not a variable name" },
	{ "{\"A\\u0000B\": \"1\"}", "env: not valid JSON" },
	{ "{\"PATH\": \"/x\"}", "env: 'PATH' is set by pyexec" },
	{ "{\"HOME\": \"/x\"}", "env: 'HOME' is set by pyexec" },
	{ "{\"TMPDIR\": \"/x\"}", "env: 'TMPDIR' is set by pyexec" },
	{ "{\"OUTPUT_DIR\": \"/x\"}", "env: 'OUTPUT_DIR' is set by pyexec" },
	{ "{\"LANG\": \"C\"}", "env: 'LANG' is set by pyexec" },
	{ "{\"MPLBACKEND\": \"x\"}", "env: 'MPLBACKEND' is set by pyexec" },
	{ "{\"PYTHONPATH\": \"/x\"}", "env: 'PYTHONPATH' starts with PYTHON" },
	{ "{\"PYTHONSTARTUP\": \"/x\"}", "env: 'PYTHONSTARTUP' starts with PYTHON" },
	{ "{\"PYTHON\": \"x\"}", "env: 'PYTHON' starts with PYTHON" },
	{ "{\"LD_PRELOAD\": \"/x.so\"}", "env: 'LD_PRELOAD' starts with LD_" },
	{ "{\"OK\": \"1\", \"LD_LIBRARY_PATH\": \"/x\"}", "env: 'LD_LIBRARY_PATH' starts with LD_" },
};

START_TEST(test_env_refused)
{
	check_refused(1, bad_env[_i].json, bad_env[_i].want);
}
END_TEST

START_TEST(test_env_names_allowed)
{
	/* close to refused ones, but not them */
	static const char *const ok[] = { "path", "Path", "PATH_X", "XPATH", "HOMEDIR", "LD",
					  "LDX", "PYTHO", "pythonpath", "_PYTHON", "a", "_1" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(argenv_refused_name(ok[i]) == NULL, "%s refused", ok[i]);
}
END_TEST

START_TEST(test_env_count_bound)
{
	check_count_bound(1, "env: more than 64 variables");
}
END_TEST

START_TEST(test_given_twice)
{
	struct argenv *a = fresh();
	char err[512];

	ck_assert_int_eq(args(a, "[\"a\"]", err, sizeof(err)), 0);
	ck_assert_int_eq(args(a, "[\"b\"]", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "args: given twice");
	ck_assert_int_eq(env(a, "{}", err, sizeof(err)), 0);
	ck_assert_int_eq(env(a, "{}", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "env: given twice");
	ck_assert_uint_eq(a->argc, 1);
	argenv_free(a);
}
END_TEST

/* A detail is printable text: a hostile name is shown sanitised. */
START_TEST(test_error_text_is_printable)
{
	struct argenv *a = fresh();
	char err[512];

	/* a name, and jansson's quote of the input near an error */
	static const char *const hostile[] = {
		"{\"\\u001b[31m\\n\": \"1\"}", "{\"\x1b[31m\": \"1\"}", "[\"\\u\x0f\x01\"]",
		"\x1b[2J", "[\"a\"] \xc3\xa9\x7f",
	};

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		for (int e = 0; e < 2; e++) {
			ck_assert_int_eq(e ? env(a, hostile[i], err, sizeof(err))
					   : args(a, hostile[i], err, sizeof(err)), -1);
			for (const char *p = err; *p != '\0'; p++)
				ck_assert_msg(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in '%s'",
					      (unsigned char)*p, err);
			argenv_free(a);
		}
	}
}
END_TEST

static Suite *argenv_suite(void)
{
	Suite *s = suite_create("argenv");
	TCase *tc;

	tc = tcase_create("args");
	tcase_add_test(tc, test_args_exact);
	tcase_add_test(tc, test_args_empty_array);
	tcase_add_loop_test(tc, test_args_refused, 0, (int)(sizeof(bad_args) / sizeof(bad_args[0])));
	tcase_add_test(tc, test_args_count_bound);
	tcase_add_test(tc, test_field_size_bound);
	tcase_add_test(tc, test_bytes_bound_shared);
	suite_add_tcase(s, tc);

	tc = tcase_create("env");
	tcase_add_test(tc, test_env_exact_in_order);
	tcase_add_loop_test(tc, test_env_refused, 0, (int)(sizeof(bad_env) / sizeof(bad_env[0])));
	tcase_add_test(tc, test_env_names_allowed);
	tcase_add_test(tc, test_env_count_bound);
	tcase_add_test(tc, test_given_twice);
	tcase_add_test(tc, test_error_text_is_printable);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(argenv_suite)
