#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <fcgiapp.h>

#include "auth.h"
#include "cgroup.h"
#include "execute.h"
#include "log.h"
#include "mime.h"
#include "reply.h"
#include "sandbox.h"
#include "server.h"
#include "util.h"

#define ROUTE_MAX 64          /* bytes of a route name we look at */

volatile sig_atomic_t server_stopping;
static volatile sig_atomic_t cancel_run, orphaned;

static void on_term(int sig)
{
	(void)sig;
	server_stopping = 1;
	FCGX_ShutdownPending();
}

/* The master is gone (its parent-death signal): nobody would clean up
 * after this worker, so the run in hand is stopped, not finished. */
static void on_orphan(int sig)
{
	(void)sig;
	orphaned = 1;
	cancel_run = 1;
	server_stopping = 1;
	FCGX_ShutdownPending();
}

static int sink_write(void *ctx, const void *buf, size_t len)
{
	FCGX_Request *r = ctx;
	const char *p = buf;

	/* FCGX_PutStr takes an int: write in pieces that fit. */
	while (len > 0) {
		int n = len > (1 << 20) ? (1 << 20) : (int)len;

		if (FCGX_PutStr(p, n, r->out) != n)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Ends the request's output streams: libfcgi sends FCGI_END_REQUEST and the
 * web server can answer its client while this worker cleans up. */
static int sink_end(void *ctx)
{
	FCGX_Request *r = ctx;
	int rc = FCGX_FClose(r->err);

	return FCGX_FClose(r->out) != 0 || rc != 0 ? -1 : 0;
}

static ssize_t body_read(void *ctx, void *buf, size_t len)
{
	FCGX_Request *r = ctx;
	int n = FCGX_GetStr(buf, len > INT32_MAX ? INT32_MAX : (int)len, r->in);

	if (n < 0 || (n == 0 && FCGX_GetError(r->in) != 0))
		return -1;
	return n;
}

/* The last non-empty segment of the path, without the query. */
static void route_of(FCGX_Request *r, char *out, size_t outlen)
{
	const char *uri = FCGX_GetParam("REQUEST_URI", r->envp);
	const char *end, *start;
	size_t len;

	if (uri == NULL)
		uri = FCGX_GetParam("SCRIPT_NAME", r->envp);
	if (uri == NULL)
		uri = "";
	end = uri + strcspn(uri, "?#");
	while (end > uri && end[-1] == '/')
		end--;
	start = end;
	while (start > uri && start[-1] != '/')
		start--;
	len = (size_t)(end - start);
	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, start, len);
	out[len] = '\0';
}

static int64_t content_length_of(FCGX_Request *r)
{
	const char *s = FCGX_GetParam("CONTENT_LENGTH", r->envp);
	uint64_t v;

	if (s == NULL || *s == '\0' || util_parse_size(s, INT64_MAX, &v) < 0 ||
	    strspn(s, "0123456789") != strlen(s))
		return -1;
	return (int64_t)v;
}

/* /healthz: the layer in force and what enforces each limit, honestly. */
#define HEALTHZ_PATH_MAX 200   /* bytes of the cgroup path shown */

static int healthz_body(const struct server *srv, char *buf, size_t len)
{
	const struct sandbox_config *sb = srv->sandbox_cfg;
	const struct cgroup_config *cg = srv->cgroup;
	char cgpath[HEALTHZ_PATH_MAX + 4];
	const char *memory = !(cg && cg->memory) ? "RLIMIT_AS"
			     : cg->version == 1 ? "cgroup memory.limit_in_bytes" : "cgroup memory.max";
	size_t i = 0;
	int n;

	/* Shown in JSON without escapes: anything but plain path characters
	 * becomes '?', and a long path is cut. */
	for (const char *p = cg ? cg->path : ""; *p != '\0' && i < HEALTHZ_PATH_MAX; p++, i++)
		cgpath[i] = (isalnum((unsigned char)*p) || strchr("/._-@:+", *p) != NULL) ? *p : '?';
	cgpath[i] = '\0';
	if (cg != NULL && strlen(cg->path) > HEALTHZ_PATH_MAX)
		strcpy(cgpath + i, "...");
	n = snprintf(buf, len,
		     "{\"status\":\"ok\",\"sandbox\":\"%s\",\"version\":\"%s\",\"workers\":%u,"
		     "\"dependencies\":%s,"
		     "\"cgroup\":%s%s%s,"
		     "\"run_ids\":\"%s\",\"run_uid\":%lu,\"run_gid\":%lu,"
		     "\"enforced\":{\"wall_time\":\"supervisor\",\"cpu_time\":\"%s\","
		     "\"memory\":\"%s\",\"processes\":\"%s\","
		     "\"file_size\":\"RLIMIT_FSIZE\",\"disk\":\"%s\",\"network\":\"%s\","
		     "\"filesystem\":\"%s\",\"syscalls\":\"%s\",\"proc\":\"%s\","
		     "\"memfd\":\"%s\"}}\n",
		     srv->sandbox, PACKAGE_VERSION, srv->workers,
		     srv->cache != NULL && srv->cache->usable ? "true" : "false",
		     cg ? "\"" : "", cg ? cgpath : "null", cg ? "\"" : "",
		     sb && sb->run_uid != sb->uid ? "subordinate" : "shared",
		     (unsigned long)(sb ? sb->run_uid : getuid()),
		     (unsigned long)(sb ? sb->run_gid : getgid()),
		     !(cg && cg->cpu) ? "RLIMIT_CPU"
		     : cg->version == 1 ? "cgroup cpuacct.usage, RLIMIT_CPU"
					: "cgroup cpu.stat, RLIMIT_CPU",
		     memory,
		     cg && cg->pids ? "cgroup pids.max, RLIMIT_NPROC" : "RLIMIT_NPROC",
		     sb ? "tmpfs of max_disk" : "none",
		     sb ? (sb->network ? "host" : "none (own namespace)") : "host",
		     sb ? "read-only system, private /work and /tmp" : "host (pyexec's user)",
		     sb ? "seccomp" : "none",
		     sb ? (sb->proc ? "private" : "none") : "host",
		     /* RLIMIT_AS does not count a memfd's pages */
		     sb ? (sb->memory_cgroup ? memory : "refused")
			: (cg && cg->memory ? memory : "unbounded"));
	return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Checks the bearer token of a request; when it is missing or unknown,
 * answers 401 (RFC 6750 §3) and returns 0. */
static int authorized(const struct server *srv, FCGX_Request *r, struct reply_sink *sink,
		      struct log_request *log, const char *id)
{
	enum auth_result a = auth_check(srv->auth, FCGX_GetParam("HTTP_AUTHORIZATION", r->envp));

	if (a == AUTH_OK)
		return 1;
	log->status = 401;
	log->error = "unauthorized";
	if (a == AUTH_MISSING)
		reply_write_error(sink, 401, "unauthorized",
				  "This service needs a token: send Authorization: Bearer <token>.",
				  id, "WWW-Authenticate: Bearer realm=\"pyexec\"\r\n");
	else
		reply_write_error(sink, 401, "unauthorized", "The token is not valid here.", id,
				  "WWW-Authenticate: Bearer realm=\"pyexec\", "
				  "error=\"invalid_token\"\r\n");
	return 0;
}

static void handle(const struct server *srv, const struct execute_ctx *ectx, FCGX_Request *r,
		   int64_t arrived_ns)
{
	const char *method = FCGX_GetParam("REQUEST_METHOD", r->envp);
	struct reply_sink sink = { .write = sink_write, .end = sink_end, .ctx = r };
	struct log_request log;
	struct execute_request req;
	char route[ROUTE_MAX], id[33], body[1024], shown[ROUTE_MAX * 4];
	int n, counted = 0;

	if (method == NULL)
		method = "";
	if (util_random_hex(id, 16) < 0)
		snprintf(id, sizeof(id), "%016" PRIx64, (uint64_t)util_now_ns());
	route_of(r, route, sizeof(route));
	util_sanitize(route, strlen(route), shown, sizeof(shown));
	memset(&log, 0, sizeof(log));
	log.id = id;
	log.method = method;
	log.route = shown;
	log.upload_ns = log.deps_ns = log.run_ns = log.reply_ns = -1;
	cancel_run = orphaned;
	metrics_busy(srv->metrics, +1);

	if (srv->auth != NULL &&
	    (strcmp(route, "execute") == 0 ||
	     (strcmp(route, "metrics") == 0 && srv->cfg->auth_metrics)) &&
	    !authorized(srv, r, &sink, &log, id)) {
		/* answered 401 */
	} else if (strcmp(route, "execute") == 0) {
		if (strcmp(method, "POST") != 0) {
			log.status = 405;
			reply_write_error(&sink, 405, "method_not_allowed",
					  "Use POST to run a program.", id, "Allow: POST\r\n");
		} else {
			memset(&req, 0, sizeof(req));
			req.request_id = id;
			req.query = FCGX_GetParam("QUERY_STRING", r->envp);
			req.content_type = FCGX_GetParam("CONTENT_TYPE", r->envp);
			req.accept = FCGX_GetParam("HTTP_ACCEPT", r->envp);
			req.content_length = content_length_of(r);
			req.read = body_read;
			req.read_ctx = r;
			req.conn_fd = r->ipcFd;
			execute_handle(ectx, &req, &sink, &log);
		}
	} else if (strcmp(route, "healthz") == 0) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
			log.status = 405;
			reply_write_error(&sink, 405, "method_not_allowed",
					  "Use GET for the health check.", id, "Allow: GET, HEAD\r\n");
		} else {
			n = healthz_body(srv, body, sizeof(body));
			log.status = n < 0 ? 500 : 200;
			if (n < 0)
				reply_write_error(&sink, 500, "internal",
						  "The health report is larger than its buffer.", id, NULL);
			else
				reply_write_simple(&sink, 200, "application/json", body,
						   strcmp(method, "HEAD") == 0 ? 0 : (size_t)n, id);
		}
	} else if (strcmp(route, "metrics") == 0) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
			log.status = 405;
			reply_write_error(&sink, 405, "method_not_allowed",
					  "Use GET for the metrics.", id, "Allow: GET, HEAD\r\n");
		} else {
			static char page[METRICS_TEXT_MAX];

			/* This request is counted too, as Prometheus expects. */
			metrics_count_request(srv->metrics, "metrics", 200);
			struct metrics_state st = { srv->workers, srv->sandbox, 0, 0, 0 };

			st.cache_known = srv->cache != NULL &&
					 cache_usage(srv->cache, &st.cache_bytes,
						     &st.cache_entries) == 0;
			n = metrics_render(srv->metrics, &st, page, sizeof(page));
			log.status = n < 0 ? 500 : 200;
			if (n < 0)
				reply_write_error(&sink, 500, "internal",
						  "The metrics page is larger than its buffer.", id, NULL);
			else
				reply_write_simple(&sink, 200, "text/plain; version=0.0.4", page,
						   strcmp(method, "HEAD") == 0 ? 0 : (size_t)n, id);
			counted = 1;
		}
	} else {
		log.status = 404;
		snprintf(body, sizeof(body),
			 "There is no route '%s'; the routes are execute (POST), healthz (GET) "
			 "and metrics (GET).", shown);
		reply_write_error(&sink, 404, "not_found", body, id, NULL);
	}
	log.bytes_out = sink.body_bytes;
	log.total_ns = util_now_ns() - arrived_ns;
	log_request(&log);
	if (!counted)
		metrics_count_request(srv->metrics, route, log.status);
	if (log.exec_status != NULL && log.run_ns >= 0)
		metrics_count_run(srv->metrics, log.exec_status);
	metrics_observe(srv->metrics, METRICS_PHASE_UPLOAD, (double)log.upload_ns / 1e9);
	/* 0 when the request named no dependencies: not a phase it had */
	if (log.deps_ns > 0)
		metrics_observe(srv->metrics, METRICS_PHASE_DEPENDENCIES,
				(double)log.deps_ns / 1e9);
	metrics_observe(srv->metrics, METRICS_PHASE_RUN, (double)log.run_ns / 1e9);
	metrics_observe(srv->metrics, METRICS_PHASE_REPLY, (double)log.reply_ns / 1e9);
	metrics_busy(srv->metrics, -1);
}

int server_worker_main(const struct server *srv)
{
	struct sigaction sa;
	struct execute_ctx ectx;
	FCGX_Request req;
	struct mime *mime = srv->mime;
	struct sockaddr_storage ss;
	struct cgroup_slot slot;
	struct sandbox_spare spare;
	socklen_t ss_len;
	int unix_listener;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;  /* no SA_RESTART: accept() must return */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_orphan;
	sigaction(SERVER_ORPHAN_SIGNAL, &sa, NULL);
	if (run_become_subreaper() < 0)
		log_msg(LOG_LEVEL_WARN, "worker: cannot become a child subreaper: %s",
			strerror(errno));
	memset(&ectx, 0, sizeof(ectx));
	ectx.cfg = srv->cfg;
	ectx.mime = mime;
	ectx.spawner = NULL;
	ectx.cancel = &cancel_run;
	ectx.cache = srv->cache;
	ectx.sandbox = srv->sandbox_cfg;
	sandbox_spare_init(&spare);
	ectx.spare = srv->sandbox_cfg != NULL && srv->spares ? &spare : NULL;
	ectx.metrics = srv->metrics;
	if (srv->cgroup != NULL) {
		if (cgroup_slot_open(srv->cgroup, getpid(), &slot) < 0) {
			log_msg(LOG_LEVEL_ERROR, "worker: cannot create its run cgroup in %s: %s",
				srv->cgroup->path, strerror(errno));
			return 1;
		}
		ectx.cgroup = &slot;
	}

	if (FCGX_Init() != 0 ||
	    FCGX_InitRequest(&req, srv->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_msg(LOG_LEVEL_ERROR, "worker: cannot initialise libfcgi");
		return 1;
	}
	/* libfcgi closes a connection by shutting down its side and waiting
	 * up to 2 s for the web server to close, so that a TCP peer is never
	 * sent a reset over data it has not read. A Unix socket keeps what it
	 * was sent after the sender closes: once the whole request was read,
	 * the wait would only keep this worker from its next request. */
	ss_len = sizeof(ss);
	unix_listener = getsockname(srv->listen_fd, (struct sockaddr *)&ss, &ss_len) == 0 &&
			ss.ss_family == AF_UNIX;
	while (!server_stopping) {
		/* The next run's sandbox is set up while this worker waits for
		 * its request, off the request's path. */
		if (ectx.spare != NULL)
			(void)sandbox_spare_make(&spare, srv->sandbox_cfg, srv->cfg->work_root,
						 ectx.cgroup);
		if (FCGX_Accept_r(&req) < 0) {
			if (server_stopping)
				break;
			if (errno == EINTR)
				continue;
			log_msg(LOG_LEVEL_ERROR, "worker: accept: %s", strerror(errno));
			usleep(100000);
			continue;
		}
		handle(srv, &ectx, &req, util_now_ns());
		if (unix_listener && FCGX_HasSeenEOF(req.in) == EOF)
			FCGX_Detach(&req);
		FCGX_Finish_r(&req);
	}
	FCGX_Free(&req, 1);
	sandbox_spare_discard(&spare);
	if (ectx.cgroup != NULL)
		cgroup_slot_close(&slot);
	if (orphaned)
		log_msg(LOG_LEVEL_WARN, "worker: the master is gone; its run in hand (if any) was "
			"stopped, and it exits");
	return 0;
}
