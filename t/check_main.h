/* The main() of every unit suite: runs the suite, TAP on stdout (one line
 * per test case, read by automake's tap-driver), exit status 1 on failure. */
#ifndef PYEXEC_CHECK_MAIN_H
#define PYEXEC_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define CHECK_MAIN(suite_fn)                                   \
	int main(void)                                         \
	{                                                      \
		SRunner *sr = srunner_create(suite_fn());      \
		int failed;                                    \
		srunner_set_tap(sr, "-");                      \
		srunner_run_all(sr, CK_SILENT);                \
		failed = srunner_ntests_failed(sr);            \
		srunner_free(sr);                              \
		return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE; \
	}

#endif
