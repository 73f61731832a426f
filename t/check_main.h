/* The main() of every unit suite: runs the suite, TAP on stdout (one line
 * per test case, read by automake's tap-driver), exit status 1 on failure.
 *
 * Check has no skip: a test that cannot run here calls CHECK_SKIP("why")
 * and returns. Its TAP line then ends "# SKIP why" instead of "Passed", and
 * the TAP driver counts it as skipped, with the reason. */
#ifndef PYEXEC_CHECK_MAIN_H
#define PYEXEC_CHECK_MAIN_H

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where CHECK_SKIP records "<test>\t<why>\n" (inherited by Check's forks). */
static int check_skip_fd = -1;

static inline void check_skip(const char *fn, const char *why)
{
	size_t n = strlen(fn);

	/* START_TEST(name) defines name_fn */
	if (n > 3 && strcmp(fn + n - 3, "_fn") == 0)
		n -= 3;
	if (check_skip_fd >= 0)
		dprintf(check_skip_fd, "%.*s\t%s\n", (int)n, fn, why);
}

#define CHECK_SKIP(why) check_skip(__func__, (why))

/* Whether the TAP line (without its newline) passes the test a skip record
 * of skips names, and with which reason (in *why, *why_len). */
static inline int check_skipped(const char *line, const char *skips, const char **why,
				size_t *why_len)
{
	const char *end = line + strlen(line), *name;
	static const char passed[] = ": Passed";

	if (strncmp(line, "ok ", 3) != 0 || (size_t)(end - line) < sizeof(passed) ||
	    strcmp(end - (sizeof(passed) - 1), passed) != 0)
		return 0;
	end -= sizeof(passed) - 1;
	for (name = end; name > line && name[-1] != ':'; name--)
		;
	for (const char *p = skips; *p != '\0'; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0)) {
		size_t n = strcspn(p, "\t\n");

		if (p[n] == '\t' && n == (size_t)(end - name) && strncmp(p, name, n) == 0) {
			*why = p + n + 1;
			*why_len = strcspn(*why, "\n");
			return 1;
		}
	}
	return 0;
}

/* Copies the TAP in tap to stdout, a skipped test's line ending in its
 * "# SKIP why". */
static inline void check_copy_tap(FILE *tap, const char *skips)
{
	char *line = NULL;
	size_t cap = 0;

	rewind(tap);
	while (getline(&line, &cap, tap) >= 0) {
		const char *why;
		size_t len = strcspn(line, "\n"), why_len;

		line[len] = '\0';
		if (check_skipped(line, skips, &why, &why_len))
			printf("%.*s # SKIP %.*s\n", (int)(len - (sizeof(": Passed") - 1)), line,
			       (int)why_len, why);
		else
			printf("%s\n", line);
	}
	free(line);
	fflush(stdout);
}

/* An unlinked file in /tmp, read and write, close-on-exec; -1 on error. */
static inline int check_tmp_fd(void)
{
	char path[] = "/tmp/pyexec-check.XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);

	if (fd >= 0)
		unlink(path);
	return fd;
}

/* Runs the suite with its TAP (Check writes it on stdout) into a file of
 * its own, then copies it to stdout. No descriptor is added that a test's
 * children could inherit. */
static inline int check_run_suite(Suite *s)
{
	char skips[16384];
	SRunner *sr = srunner_create(s);
	int failed, out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3), tap_fd = check_tmp_fd();
	FILE *tap;
	ssize_t n;

	check_skip_fd = check_tmp_fd();
	if (out < 0 || tap_fd < 0 || check_skip_fd < 0 || dup2(tap_fd, STDOUT_FILENO) < 0) {
		perror("check_run_suite");
		return EXIT_FAILURE;
	}
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	fflush(stdout);
	if (dup2(out, STDOUT_FILENO) < 0)
		return EXIT_FAILURE;
	close(out);
	n = pread(check_skip_fd, skips, sizeof(skips) - 1, 0);
	skips[n > 0 ? n : 0] = '\0';
	tap = fdopen(tap_fd, "r");
	if (tap == NULL) {
		perror("fdopen");
		return EXIT_FAILURE;
	}
	check_copy_tap(tap, skips);
	fclose(tap);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#define CHECK_MAIN(suite_fn)                                   \
	int main(void)                                         \
	{                                                      \
		return check_run_suite(suite_fn());            \
	}

#endif
