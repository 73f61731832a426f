#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
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
#include "warm.h"
#include "zygote.h"

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

/* An event of a streamed reply: what libfcgi holds goes out now. */
static int sink_flush(void *ctx)
{
	FCGX_Request *r = ctx;

	return FCGX_FFlush(r->out) != 0 ? -1 : 0;
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

	if (s == NULL || util_parse_uint(s, strlen(s), 0, INT64_MAX, &v) != UTIL_NUM_OK)
		return -1;
	return (int64_t)v;
}

/* /healthz: the layer in force and what enforces each limit, honestly. */
#define HEALTHZ_PATH_MAX 200   /* bytes of the cgroup path shown */

/* This worker's zygotes when warm is on. */
static struct warm *worker_warm;

/* JSON text without escapes: '"', '\\' and anything unprintable become '?'. */
static void healthz_plain(char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			*s = '?';
}

/* Whether the worker has a zygote ("on"), or why not, for /healthz. */
static void healthz_warm(const struct server *srv, struct zygote *z, char *buf, size_t len)
{
	char why[sizeof(z->why)];
	const char *text = !srv->cfg->warm ? "warm = no"
			   : z == NULL ? "this worker has no zygote"
			   : zygote_alive(z) ? NULL
			   : z->why[0] != '\0' ? z->why : "the zygote is not ready";

	unsigned sets = worker_warm != NULL ? warm_sets_ready(worker_warm) : 0;

	if (text == NULL) {
		snprintf(buf, len, "\"warm\":\"on\",\"set_zygotes\":%u", sets);
		return;
	}
	snprintf(why, sizeof(why), "%s", text);
	healthz_plain(why);
	snprintf(buf, len, "\"warm\":\"off\",\"warm_why\":\"%s\",\"set_zygotes\":%u", why,
		 sets);
}

/* The interpreters runs may ask for (?python=), the default first: their
 * names, versions, and whether they can install dependencies. */
static void healthz_pythons(const struct server *srv, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "\"pythons\":[");

	for (unsigned i = 0; i < srv->npythons && n < len; i++) {
		const struct cache *c = &srv->caches[i];
		char version[sizeof(c->python_version)];

		snprintf(version, sizeof(version), "%s", c->python_version);
		healthz_plain(version);
		n += (size_t)snprintf(buf + n, len - n,
				      "%s{\"name\":\"%s\",\"version\":\"%s\",\"default\":%s,"
				      "\"dependencies\":%s}", i > 0 ? "," : "", c->name, version,
				      i == 0 ? "true" : "false", c->usable ? "true" : "false");
	}
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

static int healthz_body(const struct server *srv, struct zygote *z, char *buf, size_t len)
{
	char warm[400], pythons[CONFIG_PYTHONS_MAX * 400];
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
	healthz_warm(srv, z, warm, sizeof(warm));
	healthz_pythons(srv, pythons, sizeof(pythons));
	n = snprintf(buf, len,
		     "{\"status\":\"ok\",\"sandbox\":\"%s\",\"version\":\"%s\",\"workers\":%u,"
		     "%s,"
		     "\"dependencies\":%s,%s,"
		     "\"cgroup\":%s%s%s,"
		     "\"run_ids\":\"%s\",\"run_uid\":%lu,\"run_gid\":%lu,"
		     "\"enforced\":{\"wall_time\":\"supervisor\",\"cpu_time\":\"%s\","
		     "\"memory\":\"%s\",\"processes\":\"%s\","
		     "\"file_size\":\"RLIMIT_FSIZE\",\"disk\":\"%s\",\"network\":\"%s\","
		     "\"filesystem\":\"%s\",\"syscalls\":\"%s\",\"proc\":\"%s\","
		     "\"memfd\":\"%s\"}}\n",
		     srv->sandbox, PACKAGE_VERSION, srv->workers, warm,
		     srv->caches != NULL && srv->caches[0].usable ? "true" : "false", pythons,
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

/* One request in hand: what every route's handler reads and answers. */
struct exchange {
	const struct server *srv;
	const struct execute_ctx *ectx;
	FCGX_Request *r;
	const char *method;
	const char *id;
	struct reply_sink sink;
	struct log_request log;
	int counted;            /* the handler counted the request in the metrics */
};

/* Checks the bearer token of a request; when it is missing or unknown,
 * answers 401 (RFC 6750 §3) and returns 0. */
static int authorized(struct exchange *x)
{
	enum auth_result a = auth_check(x->srv->auth,
					FCGX_GetParam("HTTP_AUTHORIZATION", x->r->envp));

	if (a == AUTH_OK)
		return 1;
	x->log.status = 401;
	x->log.error = "unauthorized";
	if (a == AUTH_MISSING)
		reply_write_error(&x->sink, 401, "unauthorized",
				  "This service needs a token: send Authorization: Bearer <token>.",
				  x->id, "WWW-Authenticate: Bearer realm=\"pyexec\"\r\n");
	else
		reply_write_error(&x->sink, 401, "unauthorized", "The token is not valid here.",
				  x->id, "WWW-Authenticate: Bearer realm=\"pyexec\", "
				  "error=\"invalid_token\"\r\n");
	return 0;
}

/* A page of n bytes rendered into body (n < 0: it did not fit): 200 with
 * it (no body for HEAD), or 500 saying which page was too large. */
static void reply_page(struct exchange *x, int n, const char *content_type, const char *body,
		       const char *what)
{
	char detail[128];

	x->log.status = n < 0 ? 500 : 200;
	if (n < 0) {
		snprintf(detail, sizeof(detail), "The %s is larger than its buffer.", what);
		reply_write_error(&x->sink, 500, "internal", detail, x->id, NULL);
	} else {
		reply_write_simple(&x->sink, 200, content_type, body,
				   strcmp(x->method, "HEAD") == 0 ? 0 : (size_t)n, x->id);
	}
}

static void serve_execute(struct exchange *x)
{
	struct execute_request req;

	memset(&req, 0, sizeof(req));
	req.request_id = x->id;
	req.query = FCGX_GetParam("QUERY_STRING", x->r->envp);
	req.content_type = FCGX_GetParam("CONTENT_TYPE", x->r->envp);
	req.accept = FCGX_GetParam("HTTP_ACCEPT", x->r->envp);
	req.content_length = content_length_of(x->r);
	req.read = body_read;
	req.read_ctx = x->r;
	req.conn_fd = x->r->ipcFd;
	execute_handle(x->ectx, &req, &x->sink, &x->log);
}

static void serve_healthz(struct exchange *x)
{
	struct zygote *z = worker_warm != NULL ? warm_current(worker_warm) : NULL;
	char body[8192];

	reply_page(x, healthz_body(x->srv, z, body, sizeof(body)),
		   "application/json", body, "health report");
}

static void serve_metrics(struct exchange *x)
{
	static char page[METRICS_TEXT_MAX];
	const struct server *srv = x->srv;
	struct metrics_state st = { srv->workers, srv->sandbox, 0, 0, 0 };

	/* This request is counted too, as Prometheus expects. */
	metrics_count_request(srv->metrics, "metrics", 200);
	x->counted = 1;
	/* the interpreters share the cache's directory: the first counts it */
	st.cache_known = srv->caches != NULL &&
			 cache_usage(&srv->caches[0], &st.cache_bytes, &st.cache_entries) == 0;
	reply_page(x, metrics_render(srv->metrics, &st, page, sizeof(page)),
		   "text/plain; version=0.0.4", page, "metrics page");
}

/* The OpenAPI document (openapi/openapi.json, made a string by make). */
extern const char openapi_json[];

static void serve_openapi(struct exchange *x)
{
	reply_page(x, (int)strlen(openapi_json), "application/json", openapi_json,
		   "OpenAPI document");
}

/* When a route asks for the bearer token (with a tokens_file). */
enum route_auth { ROUTE_OPEN, ROUTE_TOKEN, ROUTE_TOKEN_IF_AUTH_METRICS };

/* The routes, by the last segment of the path. methods is the Allow
 * header's list, its first entry the one a 404 names; use says it in the
 * 405's detail. */
static const struct route {
	const char *segment;
	const char *methods;
	const char *use;
	enum route_auth auth;
	void (*serve)(struct exchange *x);
} routes[] = {
	{ "execute", "POST", "Use POST to run a program.", ROUTE_TOKEN, serve_execute },
	{ "healthz", "GET, HEAD", "Use GET for the health check.", ROUTE_OPEN, serve_healthz },
	{ "metrics", "GET, HEAD", "Use GET for the metrics.", ROUTE_TOKEN_IF_AUTH_METRICS,
	  serve_metrics },
	{ "openapi.json", "GET, HEAD", "Use GET for the OpenAPI document.", ROUTE_OPEN,
	  serve_openapi },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Whether method is one of the route's ("GET, HEAD"). */
static int route_allows(const struct route *rt, const char *method)
{
	size_t len = strlen(method);

	for (const char *p = rt->methods; *p != '\0'; p += strspn(p, ", ")) {
		size_t n = strcspn(p, ", ");

		if (n == len && len > 0 && strncmp(p, method, n) == 0)
			return 1;
		p += n;
	}
	return 0;
}

/* 404, naming every route and the method to use with it. */
static void reply_not_found(struct exchange *x)
{
	char body[1024];
	size_t off;

	off = (size_t)snprintf(body, sizeof(body), "There is no route '%s'; the routes are ",
			       x->log.route);
	for (size_t i = 0; i < NROUTES && off < sizeof(body); i++)
		off += (size_t)snprintf(body + off, sizeof(body) - off, "%s%s (%.*s)",
					i == 0 ? "" : i + 1 == NROUTES ? " and " : ", ",
					routes[i].segment, (int)strcspn(routes[i].methods, ", "),
					routes[i].methods);
	if (off < sizeof(body))
		snprintf(body + off, sizeof(body) - off, ".");
	x->log.status = 404;
	reply_write_error(&x->sink, 404, "not_found", body, x->id, NULL);
}

/* Finds the route, asks for the token where it needs one, checks the
 * method, and lets the route's handler answer. */
static void dispatch(struct exchange *x, const char *segment)
{
	const struct route *rt = NULL;
	char allow[64];

	for (size_t i = 0; i < NROUTES && rt == NULL; i++)
		if (strcmp(segment, routes[i].segment) == 0)
			rt = &routes[i];
	if (rt == NULL) {
		reply_not_found(x);
		return;
	}
	if (x->srv->auth != NULL &&
	    (rt->auth == ROUTE_TOKEN ||
	     (rt->auth == ROUTE_TOKEN_IF_AUTH_METRICS && x->srv->cfg->auth_metrics)) &&
	    !authorized(x))
		return;
	if (!route_allows(rt, x->method)) {
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", rt->methods);
		x->log.status = 405;
		reply_write_error(&x->sink, 405, "method_not_allowed", rt->use, x->id, allow);
		return;
	}
	rt->serve(x);
}

/* After the reply: the request's log line and its metrics. */
static void account(struct exchange *x, const char *segment, int64_t arrived_ns)
{
	const struct server *srv = x->srv;
	struct log_request *log = &x->log;

	log->bytes_out = x->sink.body_bytes;
	log->total_ns = util_now_ns() - arrived_ns;
	log_request(log);
	if (!x->counted)
		metrics_count_request(srv->metrics, segment, log->status);
	if (log->exec_status != NULL && log->run_ns >= 0)
		metrics_count_run(srv->metrics, log->exec_status);
	metrics_observe(srv->metrics, METRICS_PHASE_UPLOAD, (double)log->upload_ns / 1e9);
	/* 0 when the request named no dependencies: not a phase it had */
	if (log->deps_ns > 0)
		metrics_observe(srv->metrics, METRICS_PHASE_DEPENDENCIES,
				(double)log->deps_ns / 1e9);
	metrics_observe(srv->metrics, METRICS_PHASE_RUN, (double)log->run_ns / 1e9);
	metrics_observe(srv->metrics, METRICS_PHASE_REPLY, (double)log->reply_ns / 1e9);
}

static void handle(const struct server *srv, const struct execute_ctx *ectx, FCGX_Request *r,
		   int64_t arrived_ns)
{
	struct exchange x = {
		.srv = srv, .ectx = ectx, .r = r,
		.sink = { .write = sink_write, .end = sink_end, .flush = sink_flush, .ctx = r },
	};
	char segment[ROUTE_MAX], id[EXECUTE_REQUEST_ID_LEN + 1], shown[ROUTE_MAX * 4];

	x.method = FCGX_GetParam("REQUEST_METHOD", r->envp);
	if (x.method == NULL)
		x.method = "";
	if (util_random_hex(id, EXECUTE_REQUEST_ID_LEN / 2) < 0)
		snprintf(id, sizeof(id), "%016" PRIx64, (uint64_t)util_now_ns());
	x.id = id;
	route_of(r, segment, sizeof(segment));
	util_sanitize(segment, strlen(segment), shown, sizeof(shown));
	x.log.id = id;
	x.log.method = x.method;
	x.log.route = shown;
	x.log.upload_ns = x.log.deps_ns = x.log.run_ns = x.log.reply_ns = -1;
	cancel_run = orphaned;
	metrics_busy(srv->metrics, +1);
	dispatch(&x, segment);
	account(&x, segment, arrived_ns);
	metrics_busy(srv->metrics, -1);
}

/* SIGTERM and SIGINT: finish the request in hand; the parent-death
 * signal: stop now. No SA_RESTART: accept() must return. */
static void worker_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_orphan;
	sigaction(SERVER_ORPHAN_SIGNAL, &sa, NULL);
}

/* What execute_handle needs of this worker: the configuration, libmagic,
 * the cache, the sandbox and its spare, and the worker's run cgroup
 * (opened in *slot). 0, or -1 when the cgroup cannot be made. */
static int worker_context(const struct server *srv, struct execute_ctx *ectx,
			  struct sandbox_spare *spare, struct cgroup_slot *slot)
{
	memset(ectx, 0, sizeof(*ectx));
	ectx->cfg = srv->cfg;
	ectx->mime = srv->mime;
	ectx->spawner = NULL;
	ectx->cancel = &cancel_run;
	ectx->caches = srv->caches;
	ectx->npythons = srv->npythons;
	ectx->sandbox = srv->sandbox_cfg;
	sandbox_spare_init(spare);
	ectx->spare = srv->sandbox_cfg != NULL && srv->spares ? spare : NULL;
	ectx->metrics = srv->metrics;
	if (srv->cgroup != NULL) {
		if (cgroup_slot_open(srv->cgroup, getpid(), slot) < 0) {
			log_msg(LOG_LEVEL_ERROR, "worker: cannot create its run cgroup in %s: %s",
				srv->cgroup->path, strerror(errno));
			return -1;
		}
		ectx->cgroup = slot;
	}
	return 0;
}

/* Whether a connection waits on fd within ms (1), or not (0; an error too:
 * accept then says what it is). */
static int worker_await_connection(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) != 0;
}

/* Waits at most ms for a connection on fd or a word on other: 1 when a
 * connection waits, 0 when not (other spoke, or the time is up). */
static int worker_await_connection_or(int fd, int other, int ms)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = other, .events = POLLIN } };

	return poll(p, 2, ms) > 0 && (p[0].revents & POLLIN) != 0;
}

/* Whether fd listens on a Unix socket. */
static int is_unix_listener(int fd)
{
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof(ss);

	return getsockname(fd, (struct sockaddr *)&ss, &ss_len) == 0 && ss.ss_family == AF_UNIX;
}

/* The rlimits layer's zygote's next run, made ahead (zygote_spare_make);
 * without it a run waits while it is made. */
static void plain_spare(const struct execute_ctx *ectx)
{
	char err[256];

	if (zygote_spare_make(warm_spare_zygote(worker_warm), ectx->cgroup, err, sizeof(err)) < 0)
		log_msg(LOG_LEVEL_DEBUG, "worker: no run made ahead: %s", err);
}

/* Accepts and answers requests until server_stopping. */
static void worker_loop(const struct server *srv, const struct execute_ctx *ectx,
			struct sandbox_spare *spare, FCGX_Request *req)
{
	/* libfcgi closes a connection by shutting down its side and waiting
	 * up to 2 s for the web server to close, so that a TCP peer is never
	 * sent a reset over data it has not read. A Unix socket keeps what it
	 * was sent after the sender closes: once the whole request was read,
	 * the wait would only keep this worker from its next request. */
	int unix_listener = is_unix_listener(srv->listen_fd);

	while (!server_stopping) {
		int warm = worker_warm != NULL && warm_tend(worker_warm);
		int pending;

		/* One cloned while there was no zygote gives way to a warm one. */
		if (warm && ectx->spare != NULL && spare->pid > 0 && !spare->warm)
			sandbox_spare_discard(spare);
		/* The next run's sandbox is set up while this worker waits for
		 * its request, off the request's path. */
		if (ectx->spare != NULL)
			(void)sandbox_spare_make(spare, srv->sandbox_cfg, srv->cfg->work_root,
						 ectx->cgroup);
		/* On the rlimits layer, the next run, forked by the zygote. */
		if (warm && srv->sandbox_cfg == NULL && srv->spares)
			plain_spare(ectx);
		/* A worker without its zygote tries again (at most once a
		 * second, or as warm.h backs off) while no request comes. */
		if (worker_warm != NULL && !warm && !worker_await_connection(srv->listen_fd, 1000))
			continue;
		/* A dependency set's zygote on its way is taken in as soon as it
		 * is ready, unless a request comes first; the others are looked
		 * at once a second while none comes (the cache may want a set's
		 * entry back). */
		pending = worker_warm != NULL ? warm_pending_fd(worker_warm) : -1;
		if (pending >= 0 && !worker_await_connection_or(srv->listen_fd, pending, 5000))
			continue;
		if (pending < 0 && worker_warm != NULL && warm_sets_held(worker_warm) &&
		    !worker_await_connection(srv->listen_fd, 1000))
			continue;
		if (FCGX_Accept_r(req) < 0) {
			if (server_stopping)
				break;
			if (errno == EINTR)
				continue;
			log_msg(LOG_LEVEL_ERROR, "worker: accept: %s", strerror(errno));
			usleep(100000);
			continue;
		}
		/* No process this worker starts holds the client's connection. */
		if (req->ipcFd >= 0)
			(void)fcntl(req->ipcFd, F_SETFD, FD_CLOEXEC);
		handle(srv, ectx, req, util_now_ns());
		if (unix_listener && FCGX_HasSeenEOF(req->in) == EOF)
			FCGX_Detach(req);
		FCGX_Finish_r(req);
	}
}

int server_worker_main(const struct server *srv)
{
	struct execute_ctx ectx;
	FCGX_Request req;
	struct cgroup_slot slot;
	struct sandbox_spare spare;
	static struct warm warm;

	worker_catch_signals();
	if (run_become_subreaper() < 0)
		log_msg(LOG_LEVEL_WARN, "worker: cannot become a child subreaper: %s",
			strerror(errno));
	if (worker_context(srv, &ectx, &spare, &slot) < 0)
		return 1;
	if (srv->cfg->warm) {
		warm_init(&warm, srv);
		worker_warm = &warm;
	}
	if (FCGX_Init() != 0 ||
	    FCGX_InitRequest(&req, srv->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_msg(LOG_LEVEL_ERROR, "worker: cannot initialise libfcgi");
		return 1;
	}
	worker_loop(srv, &ectx, &spare, &req);
	FCGX_Free(&req, 1);
	sandbox_spare_discard(&spare);
	if (worker_warm != NULL)
		warm_stop(worker_warm);
	if (ectx.cgroup != NULL)
		cgroup_slot_close(&slot);
	if (orphaned)
		log_msg(LOG_LEVEL_WARN, "worker: the master is gone; its run in hand (if any) was "
			"stopped, and it exits");
	return 0;
}
