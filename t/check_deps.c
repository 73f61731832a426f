#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deps.h"
#include "check_main.h"

#define MAX 32   /* max_dependencies' default */

static struct deps_set *set_a(void)
{
	static struct deps_set s;   /* 128K: not on Check's stack */
	return &s;
}

/* Parses value into a set first filled with junk, so a parser that forgets
 * to reset something shows it. */
static int parse_into(struct deps_set *set, const char *value, unsigned max, char *err,
		      size_t errlen)
{
	memset(set, 'x', sizeof(*set));
	set->n = 12345;
	memset(err, 'x', errlen);
	return deps_parse(value, max, set, err, errlen);
}

/* value parses under max into exactly want[] (NULL-ended), in that order. */
static void expect_set(const char *value, unsigned max, const char *const *want)
{
	struct deps_set *s = set_a();
	char err[512];
	unsigned n = 0;

	ck_assert_msg(parse_into(s, value, max, err, sizeof(err)) == 0,
		      "'%s' refused: %s", value ? value : "(null)", err);
	ck_assert_str_eq(err, "");
	while (want[n] != NULL)
		n++;
	ck_assert_uint_eq(s->n, n);
	for (unsigned k = 0; k < n; k++)
		ck_assert_str_eq(s->req[k], want[k]);
}

/* value is refused with exactly the sentence want, and leaves an empty set. */
static void expect_err(const char *value, unsigned max, const char *want)
{
	struct deps_set *s = set_a();
	char err[512];

	ck_assert_msg(parse_into(s, value, max, err, sizeof(err)) == -1,
		      "'%s' accepted", value);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(s->n, 0);
}

#define SET(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })
#define NOT_REQ(item, why) "dependencies: '" item "' is not a requirement: " why

static void key_of(const char *value, const char *salt, char *key)
{
	char err[512];

	ck_assert_msg(parse_into(set_a(), value, MAX, err, sizeof(err)) == 0, "%s", err);
	memset(key, 'x', DEPS_KEY_HEX + 1);
	deps_key(set_a(), salt, key);
}

/* ---- what the seed's clients send ---- */

START_TEST(test_seed_lists)
{
	expect_set("requests", MAX, SET("requests"));
	expect_set("requests,numpy==1.26.*", MAX, SET("numpy==1.26.*", "requests"));
	expect_set("pandas,matplotlib,numpy", MAX, SET("matplotlib", "numpy", "pandas"));
	expect_set("requests, numpy", MAX, SET("numpy", "requests"));
}
END_TEST

START_TEST(test_blanks_and_empty_items)
{
	expect_set(NULL, MAX, NONE);
	expect_set("", MAX, NONE);
	expect_set("  \t ", MAX, NONE);
	expect_set(",", MAX, NONE);
	expect_set(" , ,\t,", MAX, NONE);
	expect_set(",,requests,,", MAX, SET("requests"));
	expect_set("\t requests \t,  six", MAX, SET("requests", "six"));
	expect_set("a , b", 2, SET("a", "b"));
}
END_TEST

/* ---- normalisation ---- */

START_TEST(test_name_spellings_equal)
{
	expect_set("Probe_A, probe-b", MAX, SET("probe-a", "probe-b"));
	expect_set(" probe.b ,PROBE-A ", MAX, SET("probe-a", "probe-b"));
	expect_set("probe__a,Probe-.-A,PROBE.A,probe-a", MAX, SET("probe-a"));
	expect_set("Zope.Interface", MAX, SET("zope-interface"));
}
END_TEST

START_TEST(test_sorted_bytewise_and_merged)
{
	expect_set("B,a,A-1,a.0,a", MAX, SET("a", "a-0", "a-1", "b"));
	/* '!' < '<' < '=' < '>' < '~' */
	expect_set("a>1,<3,==2,!=4,~=2.1", MAX, SET("a!=4,<3,==2,>1,~=2.1"));
	expect_set("a>=1,>=1, >= 1", MAX, SET("a>=1"));
	/* only exact duplicates merge */
	expect_set("a>=1, A", MAX, SET("a", "a>=1"));
	expect_set("a>=1, A>=1", MAX, SET("a>=1"));
}
END_TEST

START_TEST(test_normalize_name)
{
	char out[64];

	deps_normalize_name("Foo__Bar.-baz", 13, out);
	ck_assert_str_eq(out, "foo-bar-baz");
	deps_normalize_name("A", 1, out);
	ck_assert_str_eq(out, "a");
	deps_normalize_name("a---b___c...d", 13, out);
	ck_assert_str_eq(out, "a-b-c-d");
	deps_normalize_name("PyYAML", 6, out);
	ck_assert_str_eq(out, "pyyaml");
	/* only len bytes are read */
	deps_normalize_name("abcDEF", 4, out);
	ck_assert_str_eq(out, "abcd");
	deps_normalize_name("", 0, out);
	ck_assert_str_eq(out, "");
}
END_TEST

/* ---- extras and clauses ---- */

START_TEST(test_extras_with_commas)
{
	expect_set("requests[socks,security]", MAX, SET("requests[security,socks]"));
	expect_set("Requests [ Socks , SECURITY,socks ] >= 2.0", MAX,
		   SET("requests[security,socks]>=2.0"));
	expect_set("a[X_y.Z]", MAX, SET("a[x-y-z]"));
	expect_set("a[x,y]>=1,<2,b", MAX, SET("a[x,y]<2,>=1", "b"));
	expect_set("b[y],a[x]", MAX, SET("a[x]", "b[y]"));
}
END_TEST

START_TEST(test_continuation)
{
	expect_set("numpy>=1,<2", MAX, SET("numpy<2,>=1"));
	expect_set("numpy >= 1.0 , < 2 , != 1.5.* , numpy", MAX,
		   SET("numpy", "numpy!=1.5.*,<2,>=1.0"));
	expect_set("a>=1,,<2", MAX, SET("a<2,>=1"));
	expect_set("a,<2,b,>1", MAX, SET("a<2", "b>1"));
	/* continuing adds to the open requirement, not a new one */
	expect_set("a>=1,<2", 1, SET("a<2,>=1"));
}
END_TEST

START_TEST(test_every_operator)
{
	expect_set("a==1.0", MAX, SET("a==1.0"));
	expect_set("a!=1.0", MAX, SET("a!=1.0"));
	expect_set("a<=1.0", MAX, SET("a<=1.0"));
	expect_set("a>=1.0", MAX, SET("a>=1.0"));
	expect_set("a<1.0", MAX, SET("a<1.0"));
	expect_set("a>1.0", MAX, SET("a>1.0"));
	expect_set("a~=1.2", MAX, SET("a~=1.2"));
	expect_set("a===1.0-Foo", MAX, SET("a===1.0-foo"));
	expect_set("a == 1.0", MAX, SET("a==1.0"));
	expect_set("a==1.0RC1", MAX, SET("a==1.0rc1"));
	expect_set("a==1!2.0+Local_7", MAX, SET("a==1!2.0+local_7"));
	expect_set("a==v1", MAX, SET("a==v1"));
	expect_set("a~=1.2,a===2", MAX, SET("a===2", "a~=1.2"));
}
END_TEST

START_TEST(test_wildcards)
{
	const char *star = "'*' is only allowed as a trailing '.*' after == or !=";
	char want[256];

	expect_set("a==1.*", MAX, SET("a==1.*"));
	expect_set("a!=2.1.*", MAX, SET("a!=2.1.*"));
	expect_set("a == 1.* ", MAX, SET("a==1.*"));
	expect_set("numpy==1.26.*,<1.26.4", MAX, SET("numpy<1.26.4,==1.26.*"));

	const char *bad[] = { "a>=1.*", "a===1.*", "a~=1.*", "a==1*", "a==*", "a*",
			      "a==1.*.2", "a==1.* x", "a==1.**", "a[x*]" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		snprintf(want, sizeof(want), "dependencies: '%s' is not a requirement: %s",
			 bad[k], star);
		expect_err(bad[k], MAX, want);
	}
	expect_err("a,<*", MAX, NOT_REQ("<*", "'*' is only allowed as a trailing '.*' after == or !="));
}
END_TEST

START_TEST(test_clause_without_version)
{
	expect_err("a>=", MAX, NOT_REQ("a>=", "a version clause needs a version"));
	expect_err("a >= ", MAX, NOT_REQ("a >=", "a version clause needs a version"));
	expect_err("a,>=", MAX, NOT_REQ(">=", "a version clause needs a version"));
	expect_err("a==,b", MAX, NOT_REQ("a==", "a version clause needs a version"));
	expect_err("a==.1", MAX, NOT_REQ("a==.1", "a version starts with a letter or digit"));
	expect_err("a>=[1]", MAX, NOT_REQ("a>=[1]", "unexpected '[' where a version belongs"));
	expect_err("a>=1 <2", MAX, NOT_REQ("a>=1 <2", "unexpected '<' after the version"));
	expect_err("a=1", MAX,
		   NOT_REQ("a=1", "only [extras] and version clauses may follow the name"));
}
END_TEST

START_TEST(test_operator_without_requirement)
{
	expect_err(">=1", MAX, NOT_REQ(">=1", "a version clause must follow a project name"));
	expect_err(" , <2", MAX, NOT_REQ("<2", "a version clause must follow a project name"));
	expect_err("~=1.0,a", MAX, NOT_REQ("~=1.0", "a version clause must follow a project name"));
	expect_err("===1", MAX, NOT_REQ("===1", "a version clause must follow a project name"));
}
END_TEST

/* ---- the hostile items of issue 3 ---- */

START_TEST(test_options_refused)
{
	expect_err("-r/etc/passwd", MAX, NOT_REQ("-r/etc/passwd", "options are not allowed"));
	expect_err("--index-url=http://x", MAX,
		   NOT_REQ("--index-url=http://x", "options are not allowed"));
	expect_err("--pre", MAX, NOT_REQ("--pre", "options are not allowed"));
	expect_err("requests, -e .", MAX, NOT_REQ("-e .", "options are not allowed"));
	expect_err("requests,-r/etc/passwd", MAX,
		   NOT_REQ("-r/etc/passwd", "options are not allowed"));
}
END_TEST

START_TEST(test_urls_refused)
{
	expect_err("name @ http://x/y.whl", MAX,
		   NOT_REQ("name @ http://x/y.whl", "URLs are not allowed"));
	expect_err("name@https://x", MAX, NOT_REQ("name@https://x", "URLs are not allowed"));
	expect_err("git+https://x/y", MAX, NOT_REQ("git+https://x/y", "URLs are not allowed"));
	expect_err("a, b @ file:x", MAX, NOT_REQ("b @ file:x", "URLs are not allowed"));
}
END_TEST

START_TEST(test_paths_refused)
{
	expect_err("./dir", MAX, NOT_REQ("./dir", "paths are not allowed"));
	expect_err("/abs", MAX, NOT_REQ("/abs", "paths are not allowed"));
	expect_err("../x", MAX, NOT_REQ("../x", "paths are not allowed"));
	expect_err(".", MAX, NOT_REQ(".", "paths are not allowed"));
	expect_err("~", MAX, NOT_REQ("~", "paths are not allowed"));
	expect_err("~user", MAX, NOT_REQ("~user", "paths are not allowed"));
	expect_err("dir/x", MAX, NOT_REQ("dir/x", "paths are not allowed"));
	expect_err("dir\\x", MAX, NOT_REQ("dir\\x5cx", "paths are not allowed"));
	/* pip opens "<anything>.whl" as a file, even a version that ends so */
	expect_err("a===1.whl", MAX, NOT_REQ("a===1.whl", "paths are not allowed "
		   "(pip reads a requirement ending like this as an archive file)"));
	expect_err("a===1.TAR.GZ", MAX, NOT_REQ("a===1.tar.gz", "paths are not allowed "
		   "(pip reads a requirement ending like this as an archive file)"));
	expect_err("a===1.zip,<2", MAX, NOT_REQ("a<2,===1.zip", "paths are not allowed "
		   "(pip reads a requirement ending like this as an archive file)"));
	/* a name never keeps its dots, so "foo.whl" is the project "foo-whl" */
	expect_set("foo.whl", MAX, SET("foo-whl"));
}
END_TEST

START_TEST(test_markers_refused)
{
	expect_err("name; python_version>\"3\"", MAX,
		   NOT_REQ("name; python_version>\\x223\\x22", "environment markers are not allowed"));
	expect_err("name;os_name=='nt'", MAX,
		   NOT_REQ("name;os_name=='nt'", "environment markers are not allowed"));
}
END_TEST

START_TEST(test_trailing_text_refused)
{
	expect_err("name --pre", MAX,
		   NOT_REQ("name --pre", "only [extras] and version clauses may follow the name"));
	expect_err("name extra", MAX,
		   NOT_REQ("name extra", "only [extras] and version clauses may follow the name"));
	expect_err("name>=1 --pre", MAX,
		   NOT_REQ("name>=1 --pre", "unexpected '-' after the version"));
	expect_err("name (>=1)", MAX,
		   NOT_REQ("name (>=1)", "only [extras] and version clauses may follow the name"));
	expect_err("a[x][y]", MAX,
		   NOT_REQ("a[x][y]", "only [extras] and version clauses may follow the name"));
}
END_TEST

START_TEST(test_control_and_non_ascii_refused)
{
	expect_err("requests\n--index-url=x", MAX,
		   NOT_REQ("requests\\x0a--index-url=x", "it contains a control character"));
	expect_err("requests\r", MAX, NOT_REQ("requests\\x0d", "it contains a control character"));
	expect_err("a,b\x7f", MAX, NOT_REQ("b\\x7f", "it contains a control character"));
	expect_err("a\vb", MAX, NOT_REQ("a\\x0bb", "it contains a control character"));
	expect_err("caf\xc3\xa9", MAX, NOT_REQ("caf\\xc3\\xa9", "it contains a non-ASCII character"));
}
END_TEST

START_TEST(test_bad_names_refused)
{
	const char *why = "the project name must be letters, digits, '.', '_', '-', "
			  "starting and ending with a letter or digit";
	char want[256];

	snprintf(want, sizeof(want), NOT_REQ("_a", "%s"), why);
	expect_err("_a", MAX, want);
	snprintf(want, sizeof(want), NOT_REQ("a_", "%s"), why);
	expect_err("a_", MAX, want);
	snprintf(want, sizeof(want), NOT_REQ("a-[x]", "%s"), why);
	expect_err("a-[x]", MAX, want);
	expect_err("[x]", MAX, NOT_REQ("[x]", "unexpected '[' where a project name belongs"));
	expect_err("(a)", MAX, NOT_REQ("(a)", "unexpected '(' where a project name belongs"));
	expect_err("a$", MAX, NOT_REQ("a$", "only [extras] and version clauses may follow the name"));
}
END_TEST

START_TEST(test_long_names)
{
	char name[301], value[400], want[512], quoted[81];

	memset(name, 'a', 300);
	name[300] = '\0';
	/* the quote is cut: 77 bytes and "..." */
	memset(quoted, 'a', 77);
	memcpy(quoted + 77, "...", 4);
	snprintf(want, sizeof(want), NOT_REQ("%s", "the project name is longer than 128 bytes"),
		 quoted);
	expect_err(name, MAX, want);
	snprintf(value, sizeof(value), "requests,%s==1", name);
	expect_err(value, MAX, want);

	name[DEPS_NAME_MAX + 1] = '\0';
	expect_err(name, MAX, want);
	name[DEPS_NAME_MAX] = '\0';
	expect_set(name, MAX, SET(name));

	/* an extra is bounded the same way */
	memcpy(value, "a[", 2);
	memset(value + 2, 'x', DEPS_NAME_MAX + 1);
	memcpy(value + 2 + DEPS_NAME_MAX + 1, "]", 2);
	ck_assert_int_eq(deps_parse(value, MAX, set_a(), want, sizeof(want)), -1);
	ck_assert_ptr_nonnull(strstr(want, "the extra is longer than 128 bytes"));
}
END_TEST

START_TEST(test_long_requirement)
{
	/* 128 + "==" + 381 = 511 bytes normalised: the most there is room for */
	char value[1024], want[1024];
	struct deps_set *s = set_a();

	memset(value, 'n', 128);
	memcpy(value + 128, "==", 2);
	memset(value + 130, 'v', 381);
	value[511] = '\0';
	ck_assert_int_eq(parse_into(s, value, MAX, want, sizeof(want)), 0);
	ck_assert_uint_eq(s->n, 1);
	ck_assert_uint_eq(strlen(s->req[0]), 511);
	ck_assert_str_eq(s->req[0], value);

	memcpy(value + 511, "v", 2);
	ck_assert_int_eq(parse_into(s, value, MAX, want, sizeof(want)), -1);
	ck_assert_ptr_nonnull(strstr(want, "the requirement is longer than 511 bytes"));

	/* the same limit reached by clauses continued one by one */
	size_t o = (size_t)snprintf(value, sizeof(value), "a");
	for (int k = 0; k < 100; k++)
		o += (size_t)snprintf(value + o, sizeof(value) - o, ",>=%d", 1000 + k);
	ck_assert_int_eq(parse_into(s, value, MAX, want, sizeof(want)), -1);
	ck_assert_ptr_nonnull(strstr(want, "' is not a requirement: the requirement is longer "
				     "than 511 bytes"));
	ck_assert_uint_eq(s->n, 0);
}
END_TEST

START_TEST(test_extras_refused)
{
	const char *why = "the extra must be letters, digits, '.', '_', '-', "
			  "starting and ending with a letter or digit";
	char want[256];

	expect_err("a[]", MAX, NOT_REQ("a[]", "the extras '[]' are empty"));
	expect_err("a[ \t]", MAX, NOT_REQ("a[ \\x09]", "the extras '[]' are empty"));
	snprintf(want, sizeof(want), NOT_REQ("a[x,]", "%s"), why);
	expect_err("a[x,]", MAX, want);
	snprintf(want, sizeof(want), NOT_REQ("a[,x]", "%s"), why);
	expect_err("a[,x]", MAX, want);
	snprintf(want, sizeof(want), NOT_REQ("a[x_]", "%s"), why);
	expect_err("a[x_]", MAX, want);
	expect_err("a[x y]", MAX, NOT_REQ("a[x y]", "unexpected 'y' in the extras"));
	expect_err("a[x, b", MAX, NOT_REQ("a[x, b", "the extras lack a closing ']'"));
	expect_err("a[x>=1]", MAX, NOT_REQ("a[x>=1]", "unexpected '>' in the extras"));
}
END_TEST

START_TEST(test_more_than_max)
{
	char value[4096], last[16];
	size_t o = 0;

	expect_set("a,b", 2, SET("a", "b"));
	expect_set("a,A,b,B,a_b,a-b", 3, SET("a", "a-b", "b"));
	expect_err("a,b,c", 2,
		   "dependencies: 'c' is one requirement too many: at most 2 are allowed");
	expect_err("b,a>=1,<2,c>1", 1,
		   "dependencies: 'a<2,>=1' is one requirement too many: at most 1 are allowed");
	expect_err("a", 0, "dependencies: 'a' is one requirement too many: at most 0 are allowed");
	expect_set("", 0, NONE);

	/* whatever the config says, a set holds DEPS_COUNT_MAX */
	for (int k = 0; k < DEPS_COUNT_MAX; k++)
		o += (size_t)snprintf(value + o, sizeof(value) - o, "p%d,", k);
	ck_assert_int_eq(parse_into(set_a(), value, 100000, last, sizeof(last)), 0);
	ck_assert_uint_eq(set_a()->n, DEPS_COUNT_MAX);
	for (unsigned k = 1; k < set_a()->n; k++)
		ck_assert_int_lt(strcmp(set_a()->req[k - 1], set_a()->req[k]), 0);
	snprintf(value + o, sizeof(value) - o, "q");
	expect_err(value, 100000,
		   "dependencies: 'q' is one requirement too many: at most 256 are allowed");
}
END_TEST

START_TEST(test_error_bounded)
{
	char value[1000], err[24];
	struct deps_set *s = set_a();

	/* a long item is quoted cut, the sentence stays short */
	memset(value, '-', 999);
	value[999] = '\0';
	{
		char big[512];
		ck_assert_int_eq(parse_into(s, value, MAX, big, sizeof(big)), -1);
		ck_assert_uint_lt(strlen(big), 160);
		ck_assert_ptr_nonnull(strstr(big, "---...' is not a requirement"));
	}
	/* a small buffer is filled and ended, never overrun */
	ck_assert_int_eq(parse_into(s, "-r/etc/passwd", MAX, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "dependencies: '-r/etc/p");
	/* no buffer at all is allowed */
	ck_assert_int_eq(deps_parse("-r", MAX, s, NULL, 0), -1);
	ck_assert_int_eq(deps_parse("a", MAX, s, NULL, 0), 0);
	ck_assert_uint_eq(s->n, 1);
}
END_TEST

/* ---- the key ---- */

START_TEST(test_key_vectors)
{
	char key[DEPS_KEY_HEX + 1];

	/* printf 'salt\0probe-a' | sha256sum */
	key_of("Probe_A", "salt", key);
	ck_assert_str_eq(key, "e54531521af5dc3e7e19ef825a07df5bd17f66dc7f89cc0bc56fb3cdde3ef7f4");
	/* printf 'py3.11\0a\nb' | sha256sum */
	key_of("b, A", "py3.11", key);
	ck_assert_str_eq(key, "cd1a1c85b753c690e7cbaf31d3a843ec40a3d6ded29b58d607a45a02e2e851ef");
	/* printf 'salt\0' | sha256sum */
	key_of("", "salt", key);
	ck_assert_str_eq(key, "5da1af2bed4c70944d5fe6a055f1256d30545f0eea1f4c59cfa8ab1c7150e94b");
	/* printf 'salt\0numpy<2,>=1\nrequests[security,socks]' | sha256sum */
	key_of("requests[socks,security],numpy>=1,<2", "salt", key);
	ck_assert_str_eq(key, "93403bc7a284e778ba1e1c559a394f94d479a579d137bef495f558c3dde3c329");
}
END_TEST

START_TEST(test_key_format)
{
	char key[DEPS_KEY_HEX + 1];

	key_of("requests,numpy==1.26.*", "python 3.11.2; index=https://pypi.org/simple", key);
	ck_assert_uint_eq(strlen(key), DEPS_KEY_HEX);
	ck_assert_uint_eq(strspn(key, "0123456789abcdef"), DEPS_KEY_HEX);
}
END_TEST

START_TEST(test_key_equal_for_equivalent_sets)
{
	char k1[DEPS_KEY_HEX + 1], k2[DEPS_KEY_HEX + 1];

	key_of("Probe_A, probe-b", "s", k1);
	key_of(" probe.b ,PROBE-A ", "s", k2);
	ck_assert_str_eq(k1, k2);
	key_of("numpy>=1,<2,requests[socks,security]", "s", k1);
	key_of("Requests[Security, socks, SOCKS] , NumPy <2, >= 1, numpy<2,>=1", "s", k2);
	ck_assert_str_eq(k1, k2);
}
END_TEST

START_TEST(test_key_differs)
{
	char k1[DEPS_KEY_HEX + 1], k2[DEPS_KEY_HEX + 1];

	key_of("probe-a", "s", k1);
	key_of("probe-a,probe-b", "s", k2);
	ck_assert_str_ne(k1, k2);
	key_of("a==1", "s", k1);
	key_of("a==2", "s", k2);
	ck_assert_str_ne(k1, k2);
	key_of("a", "py3.11", k1);
	key_of("a", "py3.12", k2);
	ck_assert_str_ne(k1, k2);
	/* the NUL keeps salt and set apart: "ab"+"c" is not "a"+"bc" */
	key_of("c", "ab", k1);
	key_of("bc", "a", k2);
	ck_assert_str_ne(k1, k2);
	/* the '\n' keeps requirements apart: {"ab"} is not {"a","b"} */
	key_of("ab", "s", k1);
	key_of("a,b", "s", k2);
	ck_assert_str_ne(k1, k2);
	key_of("", "s", k1);
	key_of("a", "s", k2);
	ck_assert_str_ne(k1, k2);
}
END_TEST

/* A site directory of its own, made under TMPDIR (or /tmp), and its fd. */
static char site[PATH_MAX];

static int site_make(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(site, sizeof(site), "%s/check_deps.XXXXXX", tmp != NULL ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(site));
	return open(site, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void site_file(const char *name, const char *text)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", site, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A file of n bytes c. */
static void site_file_of(const char *name, char c, size_t n)
{
	char *text = malloc(n + 1);

	ck_assert_ptr_nonnull(text);
	memset(text, c, n);
	text[n] = '\0';
	site_file(name, text);
	free(text);
}

static void site_dir(const char *name)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", site, name);
	ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void site_remove(int fd)
{
	char cmd[PATH_MAX + 16];

	close(fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", site);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_top_level_from_metadata)
{
	int fd = site_make();
	char out[256];

	/* setuptools' top_level.txt, a private extension module among them */
	site_dir("PyYAML-6.0.dist-info");
	site_file("PyYAML-6.0.dist-info/top_level.txt", "_yaml\nyaml\n");
	site_file("PyYAML-6.0.dist-info/RECORD", "notthis.py,,\n");
	/* no top_level.txt (flit, hatchling): the RECORD's top */
	site_dir("b_dist-1.0.dist-info");
	site_file("b_dist-1.0.dist-info/RECORD",
		  "bpkg/__init__.py,sha256=abc,10\n"
		  "bpkg/sub.py,sha256=abc,10\n"
		  "bmod.py,sha256=abc,10\n"
		  "bext.cpython-311-x86_64-linux-gnu.so,sha256=abc,10\n"
		  "b_dist-1.0.dist-info/METADATA,,\n"
		  "b_dist.pth,,\n"
		  "../../bin/bscript,,\n"
		  "nsonly/mod.py,,\n"
		  "\"q,uoted.py\",,\n"
		  "\"ok_quoted.py\",,\r\n"
		  "__pycache__/bmod.cpython-311.pyc,,\n");
	/* a package inside another's namespace names its first part; names
	 * that are not identifiers are left out; a duplicate counts once */
	site_dir("c-2.dist-info");
	site_file("c-2.dist-info/top_level.txt",
		  "google/protobuf\nos; rm -rf /\na,b\n1abc\n\n  \nyaml\n");
	/* what is not a distribution's metadata is not read */
	site_dir("d-1.data");
	site_file("d-1.data/top_level.txt", "nope\n");
	site_file("e-1.dist-info", "not a directory\n");
	ck_assert_int_eq(deps_top_level(fd, out, sizeof(out)), 7);
	ck_assert_str_eq(out, "_yaml,bext,bmod,bpkg,google,ok_quoted,yaml");
	site_remove(fd);
}
END_TEST

START_TEST(test_top_level_untrusted_files)
{
	int fd = site_make();
	char out[256], p[PATH_MAX * 2];

	/* a symlink is not followed: the RECORD is read instead */
	site_dir("a-1.dist-info");
	snprintf(p, sizeof(p), "%s/a-1.dist-info/top_level.txt", site);
	ck_assert_int_eq(symlink("/etc/hostname", p), 0);
	site_file("a-1.dist-info/RECORD", "amod.py,,\n");
	/* nor is a file over DEPS_META_MAX */
	site_dir("b-1.dist-info");
	site_file_of("b-1.dist-info/top_level.txt", 'x', DEPS_META_MAX + 1);
	/* a path longer than PATH_MAX, unquoted and never ended */
	site_dir("c-1.dist-info");
	site_file_of("c-1.dist-info/RECORD", 'y', 3 * PATH_MAX);
	ck_assert_int_eq(deps_top_level(fd, out, sizeof(out)), 1);
	ck_assert_str_eq(out, "amod");
	site_remove(fd);
}
END_TEST

START_TEST(test_top_level_bounds)
{
	int fd = site_make();
	char out[12];

	site_dir("a-1.dist-info");
	site_file("a-1.dist-info/top_level.txt", "aaaa\nbbbbbbbbbbbb\ncc\n");
	/* what does not fit is left out, what does is kept, whole */
	ck_assert_int_eq(deps_top_level(fd, out, sizeof(out)), 2);
	ck_assert_str_eq(out, "aaaa,cc");
	ck_assert_int_eq(deps_top_level(fd, out, 1), 0);
	ck_assert_str_eq(out, "");
	site_remove(fd);
	/* an empty set, and a directory that cannot be listed */
	fd = site_make();
	ck_assert_int_eq(deps_top_level(fd, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	site_remove(fd);
	ck_assert_int_eq(deps_top_level(-1, out, sizeof(out)), -1);
}
END_TEST

static Suite *deps_suite(void)
{
	Suite *s = suite_create("deps");
	TCase *tc = tcase_create("deps");

	tcase_add_test(tc, test_seed_lists);
	tcase_add_test(tc, test_blanks_and_empty_items);
	tcase_add_test(tc, test_name_spellings_equal);
	tcase_add_test(tc, test_sorted_bytewise_and_merged);
	tcase_add_test(tc, test_normalize_name);
	tcase_add_test(tc, test_extras_with_commas);
	tcase_add_test(tc, test_continuation);
	tcase_add_test(tc, test_every_operator);
	tcase_add_test(tc, test_wildcards);
	tcase_add_test(tc, test_clause_without_version);
	tcase_add_test(tc, test_operator_without_requirement);
	tcase_add_test(tc, test_options_refused);
	tcase_add_test(tc, test_urls_refused);
	tcase_add_test(tc, test_paths_refused);
	tcase_add_test(tc, test_markers_refused);
	tcase_add_test(tc, test_trailing_text_refused);
	tcase_add_test(tc, test_control_and_non_ascii_refused);
	tcase_add_test(tc, test_bad_names_refused);
	tcase_add_test(tc, test_long_names);
	tcase_add_test(tc, test_long_requirement);
	tcase_add_test(tc, test_extras_refused);
	tcase_add_test(tc, test_more_than_max);
	tcase_add_test(tc, test_error_bounded);
	tcase_add_test(tc, test_key_vectors);
	tcase_add_test(tc, test_key_format);
	tcase_add_test(tc, test_key_equal_for_equivalent_sets);
	tcase_add_test(tc, test_key_differs);
	tcase_add_test(tc, test_top_level_from_metadata);
	tcase_add_test(tc, test_top_level_untrusted_files);
	tcase_add_test(tc, test_top_level_bounds);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(deps_suite)
