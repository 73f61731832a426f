#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "metrics.h"

static char page[METRICS_TEXT_MAX];

static const char *render(struct metrics *m)
{
	struct metrics_state st = { 8, "rlimits", 1, 123456789, 3 };

	ck_assert_int_gt(metrics_render(m, &st, page, sizeof(page)), 0);
	return page;
}

START_TEST(counts_requests_by_route_and_code)
{
	struct metrics *m = metrics_create();

	ck_assert_ptr_nonnull(m);
	metrics_count_request(m, "execute", 200);
	metrics_count_request(m, "execute", 200);
	metrics_count_request(m, "execute", 400);
	metrics_count_request(m, "nope", 404);
	metrics_count_request(m, "execute", 418);
	render(m);
	ck_assert_ptr_nonnull(strstr(page, "pyexec_requests_total{route=\"execute\",code=\"200\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_requests_total{route=\"execute\",code=\"400\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_requests_total{route=\"other\",code=\"404\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_requests_total{route=\"execute\",code=\"other\"} 1\n"));
	ck_assert_ptr_null(strstr(page, "code=\"500\""));
	metrics_destroy(m);
}
END_TEST

START_TEST(histogram_is_cumulative)
{
	struct metrics *m = metrics_create();

	metrics_count_run(m, "ok");
	metrics_count_run(m, "ok");
	metrics_count_run(m, "timeout");
	metrics_observe(m, METRICS_PHASE_RUN, 0.01);
	metrics_observe(m, METRICS_PHASE_RUN, 0.2);
	metrics_observe(m, METRICS_PHASE_RUN, 100);
	metrics_observe(m, METRICS_PHASE_UPLOAD, 0.0004);
	metrics_observe(m, METRICS_PHASE_REPLY, -1);     /* not reached: not counted */
	render(m);
	ck_assert_ptr_nonnull(strstr(page, "pyexec_executions_total{status=\"ok\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_executions_total{status=\"timeout\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_executions_total{status=\"memory\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_bucket{phase=\"run\",le=\"0.01\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_bucket{phase=\"run\",le=\"0.25\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_bucket{phase=\"run\",le=\"60\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_bucket{phase=\"run\",le=\"300\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_bucket{phase=\"run\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_count{phase=\"run\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_sum{phase=\"run\"} 100.210000\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_bucket{phase=\"upload\",le=\"0.001\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_count{phase=\"reply\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_phase_seconds_count{phase=\"dependencies\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_sandbox_info{layer=\"rlimits\"} 1\n"));
	metrics_destroy(m);
}
END_TEST

START_TEST(counts_dependency_events)
{
	struct metrics *m = metrics_create();

	metrics_count_deps(m, METRICS_DEPS_HIT, 1);
	metrics_count_deps(m, METRICS_DEPS_HIT, 1);
	metrics_count_deps(m, METRICS_DEPS_MISS, 1);
	metrics_count_deps(m, METRICS_DEPS_INSTALL, 1);
	metrics_count_deps(m, METRICS_DEPS_EVICTION, 3);
	render(m);
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_total{event=\"miss\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_bytes 123456789\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_entries 3\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_total{event=\"hit\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_total{event=\"install\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_total{event=\"failure\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_dependency_cache_total{event=\"eviction\"} 3\n"));
	metrics_destroy(m);
}
END_TEST

START_TEST(counts_sandbox_setups)
{
	struct metrics *m = metrics_create();

	render(m);
	ck_assert_ptr_nonnull(strstr(page, "pyexec_sandbox_setups_total{when=\"ahead\"} 0\n"));
	metrics_count_setup(m, METRICS_SETUP_AHEAD);
	metrics_count_setup(m, METRICS_SETUP_AHEAD);
	metrics_count_setup(m, METRICS_SETUP_REQUEST);
	metrics_count_setup(NULL, METRICS_SETUP_REQUEST);
	render(m);
	ck_assert_ptr_nonnull(strstr(page, "# TYPE pyexec_sandbox_setups_total counter\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_sandbox_setups_total{when=\"ahead\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_sandbox_setups_total{when=\"request\"} 1\n"));
	metrics_destroy(m);
}
END_TEST

/* Counters made before fork are shared by every process after it. */
START_TEST(shared_across_fork)
{
	struct metrics *m = metrics_create();
	int st;

	for (int i = 0; i < 4; i++) {
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			for (int k = 0; k < 1000; k++)
				metrics_count_request(m, "healthz", 200);
			metrics_busy(m, 1);
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_gt(wait(&st), 0);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	render(m);
	ck_assert_ptr_nonnull(strstr(page, "pyexec_requests_total{route=\"healthz\",code=\"200\"} 4000\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_workers_busy 4\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_workers_idle 4\n"));
	ck_assert_ptr_nonnull(strstr(page, "pyexec_workers 8\n"));
	metrics_destroy(m);
}
END_TEST

START_TEST(too_small_buffer_fails)
{
	struct metrics *m = metrics_create();
	struct metrics_state st = { 1, "rlimits", 0, 0, 0 };
	char small[64];

	ck_assert_int_eq(metrics_render(m, &st, small, sizeof(small)), -1);
	metrics_destroy(m);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, counts_requests_by_route_and_code);
	tcase_add_test(tc, histogram_is_cumulative);
	tcase_add_test(tc, shared_across_fork);
	tcase_add_test(tc, counts_dependency_events);
	tcase_add_test(tc, counts_sandbox_setups);
	tcase_add_test(tc, too_small_buffer_fails);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(metrics_suite)
