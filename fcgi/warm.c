/* warm: a worker's zygotes (warm.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "execute.h"
#include "log.h"
#include "run.h"
#include "util.h"
#include "warm.h"

/* Between two starts of a zygote: from a second, doubled after each
 * failed start, up to a minute. */
#define WARM_RETRY_NS (1000 * 1000 * 1000LL)
#define WARM_RETRY_MAX_NS (60 * WARM_RETRY_NS)

void warm_init(struct warm *w, const struct server *srv)
{
	memset(w, 0, sizeof(*w));
	w->srv = srv;
	zygote_init(&w->z[0]);
	zygote_init(&w->z[1]);
	w->retry_ns = WARM_RETRY_NS;
	zygote_use(&w->z[0]);
}

struct zygote *warm_current(struct warm *w)
{
	return &w->z[w->cur];
}

int warm_open_binary(char *why, size_t len)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	int fd;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/pyexec-zygote", self);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
	}
	snprintf(path, sizeof(path), "%s/pyexec-zygote", PKGLIBEXECDIR);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
	return fd;
}

/* Launches z with the run's command line and environment (a run without
 * dependencies): in the namespace sandbox, or for the rlimits layer a
 * plain one, whose runs' directories are their own. 0, or -1 with z->why. */
static int launch(struct warm *w, struct zygote *z)
{
	const struct server *srv = w->srv;
	struct execute_program prog;

	if (srv->zygote_fd < 0) {
		snprintf(z->why, sizeof(z->why), "%s", srv->zygote_why);
		return -1;
	}
	if (srv->sandbox_cfg == NULL) {
		if (execute_program_like(srv->cfg, &prog) < 0) {
			snprintf(z->why, sizeof(z->why), "cannot make the zygote's environment: %s",
				 strerror(errno));
			return -1;
		}
		return zygote_launch_plain(z, srv->cfg->work_root, srv->zygote_fd, prog.argv,
					   prog.envp, srv->cfg->warm_preload);
	}
	execute_program(srv->cfg, &prog, "/tmp", SANDBOX_WORK, NULL);
	return zygote_launch(z, srv->sandbox_cfg, srv->cfg->work_root, srv->zygote_fd,
			     prog.argv, prog.envp, srv->cfg->warm_preload);
}

int warm_vet(const struct server *srv, char *err, size_t errlen)
{
	struct warm w;
	struct zygote *z = &w.z[0];
	const char *refused;
	int rc = 0;

	if (!srv->cfg->warm || srv->cfg->warm_preload[0] == '\0')
		return 0;
	memset(&w, 0, sizeof(w));
	w.srv = srv;
	zygote_init(z);
	if (launch(&w, z) == 0 &&
	    zygote_await(z, INT64_MAX) == 1) {
		log_msg(LOG_LEVEL_INFO, "warm_preload: %s imported and vetted",
			srv->cfg->warm_preload);
	} else if ((refused = strstr(z->why, ZYGOTE_PRELOAD_REFUSED)) != NULL) {
		snprintf(err, errlen, "%s%s", refused, strstr(refused, " when imported") != NULL ?
			 "; such a module cannot be preloaded (README, \"Warm start\")" : "");
		rc = -1;
	} else {
		log_msg(LOG_LEVEL_WARN, "warm_preload: not vetted at start: %s", z->why);
	}
	zygote_stop(z);
	return rc;
}

/* 0 when a ready z's interpreter is the configured python's (the version
 * the dependency cache learnt at start); -1 with z->why, z stopped. */
static int same_python(const struct server *srv, struct zygote *z)
{
	const char *cold = srv->cache != NULL ? srv->cache->python_version : "";

	if (cold[0] != '\0' && strcmp(cold, z->version) == 0)
		return 0;
	snprintf(z->why, sizeof(z->why), "pyexec-zygote embeds Python %.60s, %.80s is %.60s",
		 z->version, srv->cfg->python, cold[0] != '\0' ? cold : "of unknown version");
	zygote_stop(z);
	return -1;
}

/* A zygote failed to start: logged (the same reason again is not news),
 * counted, and the next try put off. */
static void failed(struct warm *w, struct zygote *z, int64_t now, const char *what)
{
	if (strcmp(w->logged, z->why) != 0)
		log_msg(LOG_LEVEL_WARN, "worker: %s: %s", what, z->why);
	memcpy(w->logged, z->why, sizeof(w->logged));
	metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_LOST);
	w->next_start = w->next_refresh = now + w->retry_ns;
	if (w->retry_ns < WARM_RETRY_MAX_NS)
		w->retry_ns *= 2;
}

static void keep(struct warm *w)
{
	run_keep_helpers(w->z[0].sp.pid, w->z[1].sp.pid);
}

/* z is ready: counted, logged, kept, and the retries start afresh. */
static void took_over(struct warm *w, struct zygote *z, int64_t now)
{
	metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_STARTED);
	w->next_start = now + WARM_RETRY_NS;
	w->retry_ns = WARM_RETRY_NS;
	w->logged[0] = '\0';
	zygote_use(z);
	keep(w);
	log_msg(LOG_LEVEL_DEBUG, "worker: zygote %ld ready (Python %.40s)", (long)z->sp.pid,
		z->version);
}

/* The one in use is gone or was never there: a new one, waited for (runs
 * are cold meanwhile anyway). 1 when it is ready. */
static int start(struct warm *w, int64_t now)
{
	struct zygote *z = &w->z[w->cur];

	if (now < w->next_start)
		return 0;
	if (launch(w, z) < 0 ||
	    zygote_await(z, INT64_MAX) != 1 ||
	    same_python(w->srv, z) < 0) {
		failed(w, z, now, "no zygote, runs start cold");
		keep(w);
		return 0;
	}
	took_over(w, z, now);
	return 1;
}

/* The one in use has forked warm_runs sandboxes or lived warm_seconds: a
 * new one is launched, and takes over once it says it is ready (looked at
 * between requests, never waited for), the old one then stopped. */
static void refresh(struct warm *w, int64_t now)
{
	const struct config *cfg = w->srv->cfg;
	struct zygote *z = &w->z[w->cur], *next = &w->z[!w->cur];
	int r;

	if (next->launched_ns == 0) {
		if ((z->forks < cfg->warm_runs &&
		     now - z->ready_ns < (int64_t)cfg->warm_ms * 1000000) || now < w->next_refresh)
			return;
		if (launch(w, next) < 0)
			failed(w, next, now, "cannot replace the zygote");
		keep(w);
		return;
	}
	r = zygote_await(next, now);
	if (r == 0)
		return;
	if (r < 0 || same_python(w->srv, next) < 0) {
		failed(w, next, now, "cannot replace the zygote");
		keep(w);
		return;
	}
	w->cur = !w->cur;
	zygote_stop(z);
	metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_REFRESHED);
	took_over(w, next, now);
}

int warm_tend(struct warm *w)
{
	int64_t now = util_now_ns();
	struct zygote *z = &w->z[w->cur];
	int was_ready = z->ready;

	if (zygote_alive(z)) {
		refresh(w, now);
		return 1;
	}
	if (was_ready)
		metrics_count_zygote(w->srv->metrics, METRICS_ZYGOTE_LOST);
	/* A replacement under way starts over with the one in use. */
	zygote_stop(&w->z[!w->cur]);
	keep(w);
	return start(w, now);
}

void warm_stop(struct warm *w)
{
	zygote_spare_discard();
	zygote_stop(&w->z[0]);
	zygote_stop(&w->z[1]);
	run_keep_helpers(0, 0);
}
