#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "collect.h"
#include "execute.h"
#include "multipart.h"
#include "names.h"
#include "query.h"
#include "sandbox.h"
#include "util.h"
#include "workdir.h"

/* The seed's words, which its clients may match on. */
#define MISSING_MAIN_DETAIL "main.py not found. Please upload a valid main.py file."

#define DETAIL_MAX 512
#define ENV_MAX 16

/* The state of one request while its body streams in. */
struct upload {
	const struct execute_ctx *ctx;
	struct workdir *wd;
	struct collect_snapshot *snap;
	struct multipart_disposition disp;
	int have_disp;
	int fd;                    /* file being written, -1 between parts */
	int is_stdin;
	int have_stdin;
	int stdin_fd;              /* kept open for the run */
	unsigned files;
	char name[NAMES_PATH_MAX + 1];
	/* the error reply, when a callback refused the body */
	int status;
	const char *error;
	char detail[DETAIL_MAX];
};

static void upload_fail(struct upload *u, int status, const char *error,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void upload_fail(struct upload *u, int status, const char *error,
			const char *fmt, ...)
{
	va_list ap;

	if (u->status != 0)
		return;
	u->status = status;
	u->error = error;
	va_start(ap, fmt);
	vsnprintf(u->detail, sizeof(u->detail), fmt, ap);
	va_end(ap);
}

/* A failed write to the work directory: the disk, or pyexec itself. */
static void upload_fail_errno(struct upload *u, int err, const char *what)
{
	if (err == ENOSPC || err == EDQUOT)
		upload_fail(u, 507, "disk_full",
			    "The server has no space left to store the upload; try again later.");
	else {
		log_msg(LOG_LEVEL_ERROR, "%s: %s", what, strerror(err));
		upload_fail(u, 500, "internal", "The server could not store the upload.");
	}
}

static int on_part_begin(void *data)
{
	struct upload *u = data;

	u->have_disp = 0;
	u->is_stdin = 0;
	return 0;
}

static int on_header(void *data, const char *name, size_t name_len,
		     const char *value, size_t value_len)
{
	struct upload *u = data;
	const char *why;

	if (name_len != 19 || strncasecmp(name, "Content-Disposition", 19) != 0)
		return 0;
	if (u->have_disp) {
		upload_fail(u, 400, "bad_multipart",
			    "A part of the body has two Content-Disposition headers.");
		return -1;
	}
	if (multipart_parse_disposition(value, value_len, &u->disp, &why) < 0) {
		upload_fail(u, 400, "bad_multipart",
			    "A part's Content-Disposition header is malformed: %s.", why);
		return -1;
	}
	u->have_disp = 1;
	return 0;
}

static int on_headers_complete(void *data)
{
	struct upload *u = data;
	const struct config *cfg = u->ctx->cfg;
	char shown[256];
	const char *why;

	if (!u->have_disp || !u->disp.form_data) {
		upload_fail(u, 400, "bad_multipart",
			    "A part of the body has no Content-Disposition: form-data header.");
		return -1;
	}
	if (!u->disp.has_filename) {
		util_sanitize(u->disp.name, u->disp.name_len, shown, sizeof(shown));
		if (!u->disp.has_name || strcmp(u->disp.name, "stdin") != 0 ||
		    u->disp.name_len != 5) {
			upload_fail(u, 400, "unexpected_field",
				    "The form field '%s' is not a file; send files with a filename, "
				    "and standard input as a field named 'stdin'.", shown);
			return -1;
		}
		if (u->have_stdin) {
			upload_fail(u, 400, "unexpected_field",
				    "The field 'stdin' is given twice.");
			return -1;
		}
		u->fd = workdir_private_file(u->wd, "stdin");
		if (u->fd < 0) {
			upload_fail_errno(u, errno, "stdin file");
			return -1;
		}
		u->is_stdin = 1;
		u->have_stdin = 1;
		return 0;
	}
	util_sanitize(u->disp.filename, u->disp.filename_len, shown, sizeof(shown));
	if (names_check(u->disp.filename, u->disp.filename_len, &why) < 0) {
		upload_fail(u, 400, "bad_file_name", "The file name '%s' %s.", shown, why);
		return -1;
	}
	if (++u->files > cfg->max_files) {
		upload_fail(u, 413, "too_many_files",
			    "The request has more than %u files, the server's limit.",
			    cfg->max_files);
		return -1;
	}
	memcpy(u->name, u->disp.filename, u->disp.filename_len);
	u->name[u->disp.filename_len] = '\0';
	u->fd = workdir_create_file(u->wd, u->name);
	if (u->fd < 0) {
		if (errno == EEXIST)
			upload_fail(u, 400, "duplicate_file",
				    "The file name '%s' is given twice.", shown);
		else if (errno == ENOTDIR || errno == EISDIR)
			upload_fail(u, 400, "bad_file_name",
				    "The file name '%s' clashes with a directory of another file.",
				    shown);
		else
			upload_fail_errno(u, errno, "upload file");
		return -1;
	}
	return 0;
}

static int on_data(void *data, const char *at, size_t len)
{
	struct upload *u = data;

	if (util_write_all(u->fd, at, len) < 0) {
		upload_fail_errno(u, errno, "writing the upload");
		return -1;
	}
	return 0;
}

static int on_part_end(void *data)
{
	struct upload *u = data;
	struct stat st;

	if (u->is_stdin) {
		u->stdin_fd = u->fd;    /* the run reads it from offset 0 */
		u->fd = -1;
		return 0;
	}
	if (fstat(u->fd, &st) < 0 || collect_snapshot_add(u->snap, u->name, &st) < 0) {
		upload_fail_errno(u, errno, "recording the upload");
		return -1;
	}
	if (close(u->fd) < 0) {
		u->fd = -1;
		upload_fail_errno(u, errno, "closing the upload");
		return -1;
	}
	u->fd = -1;
	return 0;
}

static const struct multipart_callbacks upload_callbacks = {
	.on_part_begin = on_part_begin,
	.on_header = on_header,
	.on_headers_complete = on_headers_complete,
	.on_data = on_data,
	.on_part_end = on_part_end,
	.on_body_end = NULL,
};

/* Reads and drops what is left of the body (bounded), so that the web
 * server, which sends the whole body before it reads the reply, is not
 * cut off mid-request and answers the client with our reply. */
static void drain_body(const struct execute_request *req, uint64_t limit)
{
	char buf[16384];
	uint64_t n = 0;
	ssize_t r;

	while (n < limit && (r = req->read(req->read_ctx, buf, sizeof(buf))) > 0)
		n += (uint64_t)r;
}

/* The bounds of an execution reply: its size, and its time from now (a
 * web server that reads slowly holds the worker no longer). */
static void reply_bounds(const struct execute_ctx *ctx, const struct execute_request *req,
			 struct reply_execution *rx)
{
	rx->max_reply = ctx->cfg->max_reply;
	rx->deadline_ns = util_now_ns() + EXECUTE_REPLY_SECONDS * 1000000000LL;
	rx->send_fd = req->conn_fd;
}

/* The one error-reply path of this module. */
static int reply_error(struct reply_sink *sink, struct log_request *log, int status,
		       const char *error, const char *detail, const char *request_id)
{
	log->status = status;
	log->error = error;
	if (status >= 500)
		log_msg(LOG_LEVEL_ERROR, "request %s: %s", request_id, detail);
	return reply_write_error(sink, status, error, detail, request_id, NULL);
}

/* The environment of SPEC §3, built from nothing. */
/* In the namespace sandbox the program sees /work and its own /tmp; with
 * the rlimits layer, the request's real directories. */
static void build_env(char env[][CONFIG_PATH_MAX + 32], char **envp, const struct workdir *wd,
		      const char *deps_path, int sandboxed)
{
	const char *tmp = sandboxed ? "/tmp" : wd->tmp_path;
	int n = 0;

	snprintf(env[n++], sizeof(env[0]), "PATH=/usr/local/bin:/usr/bin:/bin");
	snprintf(env[n++], sizeof(env[0]), "HOME=%s", tmp);
	snprintf(env[n++], sizeof(env[0]), "TMPDIR=%s", tmp);
	snprintf(env[n++], sizeof(env[0]), "LANG=C.UTF-8");
	snprintf(env[n++], sizeof(env[0]), "PYTHONUNBUFFERED=1");
	snprintf(env[n++], sizeof(env[0]), "PYTHONDONTWRITEBYTECODE=1");
	snprintf(env[n++], sizeof(env[0]), "MPLBACKEND=Agg");
	snprintf(env[n++], sizeof(env[0]), "OUTPUT_DIR=%s",
		 sandboxed ? SANDBOX_WORK : wd->work_path);
	/* The dependency entry: its sitecustomize.py adds its packages with
	 * site semantics (.pth files), ahead of the system's. */
	if (deps_path != NULL)
		snprintf(env[n++], sizeof(env[0]), "PYTHONPATH=%s", deps_path);
	for (int i = 0; i < n; i++)
		envp[i] = env[i];
	envp[n] = NULL;
}

static const char *type_file(void *ctx, int fd, char *out)
{
	return mime_type_fd(ctx, fd, out);
}

static int open_result(void *ctx, const char *name)
{
	return collect_open(*(const int *)ctx, name);
}

/* Finds or installs the request's dependency set. 1 when the entry is held
 * in use (*word says "cached" or "installed"); 0 when an answer was written
 * (424 with pip's output, 503, 500); -1 when the client went away. */
static int acquire_deps(const struct execute_ctx *ctx, const struct execute_request *req,
			const struct deps_set *set, struct cache_use *use, const char **word,
			int json, struct reply_sink *sink, struct log_request *log)
{
	struct reply_execution rx;
	enum cache_result r;
	int64_t t0 = util_now_ns();
	int out_fd, truncated = 0, evicted = 0, rc;

	out_fd = memfd_create("pyexec-pip", MFD_CLOEXEC);
	if (out_fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "request %s: memfd_create: %s", req->request_id,
			strerror(errno));
		return reply_error(sink, log, 500, "internal",
				   "The server could not prepare the dependency install.",
				   req->request_id) < 0 ? -1 : 0;
	}
	r = cache_acquire(ctx->cache, set, use, out_fd, &truncated, req->conn_fd, ctx->cancel,
			  &evicted);
	log->deps_ns = util_now_ns() - t0;
	metrics_count_deps(ctx->metrics, METRICS_DEPS_EVICTION, (unsigned)evicted);
	switch (r) {
	case CACHE_HIT:
		metrics_count_deps(ctx->metrics, METRICS_DEPS_HIT, 1);
		*word = "cached";
		rc = 1;
		break;
	case CACHE_INSTALLED:
		metrics_count_deps(ctx->metrics, METRICS_DEPS_MISS, 1);
		metrics_count_deps(ctx->metrics, METRICS_DEPS_INSTALL, 1);
		*word = "installed";
		rc = 1;
		break;
	case CACHE_PIP_FAILED:
		/* The seed's reply shape, with pip's words as stderr. */
		metrics_count_deps(ctx->metrics, METRICS_DEPS_MISS, 1);
		metrics_count_deps(ctx->metrics, METRICS_DEPS_FAILURE, 1);
		if (truncated)
			log_msg(LOG_LEVEL_WARN, "request %s: pip's output was cut at max_output",
				req->request_id);
		memset(&rx, 0, sizeof(rx));
		rx.status = 424;
		rx.exec_status = "dependency_error";
		rx.run = NULL;
		rx.request_id = req->request_id;
		rx.dependencies = "none";
		rx.stdout_fd = -1;
		rx.stderr_fd = out_fd;
		rx.json = json;
		reply_bounds(ctx, req, &rx);
		log->status = 424;
		log->error = "dependency_error";
		rc = reply_write_execution(sink, &rx) < 0 ? -1 : 0;
		break;
	case CACHE_UNUSABLE:
		rc = reply_error(sink, log, 503, "dependencies_unavailable", ctx->cache->why,
				 req->request_id) < 0 ? -1 : 0;
		break;
	case CACHE_CANCELLED:
		metrics_count_deps(ctx->metrics, METRICS_DEPS_MISS, 1);
		log->status = 499;
		log->error = "client_gone";
		rc = -1;
		break;
	default:
		rc = reply_error(sink, log, 500, "internal",
				 "The server could not install the dependencies; its log says why.",
				 req->request_id) < 0 ? -1 : 0;
		break;
	}
	close(out_fd);
	return rc;
}

int execute_handle(const struct execute_ctx *ctx, const struct execute_request *req,
		   struct reply_sink *sink, struct log_request *log)
{
	const struct config *cfg = ctx->cfg;
	struct query_limits qlim = { cfg->timeout_max_ms, cfg->memory_max };
	struct query_params *q = NULL;
	struct deps_set *set = NULL;
	struct sandbox_run sb;
	struct run_spawner sb_spawner;
	const struct run_spawner *spawner = ctx->spawner;
	struct collect_snapshot *sb_snap = NULL;
	int have_sb = 0, results_fd = -1;
	struct cache_use use = { .lock_fd = -1 };
	const char *deps = "none";
	struct multipart_parser *mp = NULL;
	struct multipart_limits mlim;
	struct workdir wd;
	struct upload u;
	struct run_spec spec;
	struct run_result res;
	struct collect_result files = { 0 };
	struct reply_execution rx;
	char boundary[MULTIPART_BOUNDARY_MAX + 1];
	char detail[DETAIL_MAX];
	char dirname[96];
	char *buf = NULL;
	static char env[ENV_MAX][CONFIG_PATH_MAX + 32];
	char *envp[ENV_MAX + 1];
	char *argv[6];
	const char *why;
	int is_415 = 0, have_wd = 0, rc = 0, stdout_fd = -1, stderr_fd = -1, json = 0;
	uint64_t received = 0;
	int64_t t0, t1;
	ssize_t r;
	struct stat st;

	memset(&u, 0, sizeof(u));
	u.fd = -1;
	u.stdin_fd = -1;
	log->exec_status = NULL;

	/* Everything that can be refused is refused before the body is read. */
	q = calloc(1, sizeof(*q));
	set = calloc(1, sizeof(*set));
	mp = malloc(sizeof(*mp));
	buf = malloc(EXECUTE_READ_CHUNK);
	u.snap = collect_snapshot_new();
	if (q == NULL || set == NULL || mp == NULL || buf == NULL || u.snap == NULL) {
		rc = reply_error(sink, log, 500, "internal", "The server is out of memory.",
				 req->request_id);
		goto out;
	}
	if (query_parse(req->query, &qlim, q, detail, sizeof(detail)) < 0) {
		drain_body(req, cfg->max_upload + EXECUTE_DRAIN_EXTRA);
		rc = reply_error(sink, log, 400, "bad_parameter", detail, req->request_id);
		goto out;
	}
	if (q->has_dependencies &&
	    deps_parse(q->dependencies, cfg->max_dependencies, set, detail, sizeof(detail)) < 0) {
		drain_body(req, cfg->max_upload + EXECUTE_DRAIN_EXTRA);
		rc = reply_error(sink, log, 400, "bad_dependency", detail, req->request_id);
		goto out;
	}
	if (multipart_boundary_from_content_type(req->content_type, boundary, &why,
						 &is_415) < 0) {
		drain_body(req, cfg->max_upload + EXECUTE_DRAIN_EXTRA);
		if (is_415)
			rc = reply_error(sink, log, 415, "unsupported_media_type",
					 "The request body must be multipart/form-data with the "
					 "files as parts (curl -F files=@main.py).",
					 req->request_id);
		else {
			snprintf(detail, sizeof(detail),
				 "The multipart/form-data Content-Type is unusable: %s.", why);
			rc = reply_error(sink, log, 400, "bad_multipart", detail, req->request_id);
		}
		goto out;
	}
	if (req->content_length > 0 && (uint64_t)req->content_length > cfg->max_upload) {
		snprintf(detail, sizeof(detail),
			 "The request body of %lld bytes is over the server's limit of %llu bytes.",
			 (long long)req->content_length, (unsigned long long)cfg->max_upload);
		drain_body(req, cfg->max_upload + EXECUTE_DRAIN_EXTRA);
		rc = reply_error(sink, log, 413, "too_large", detail, req->request_id);
		goto out;
	}

	/* The work directory is named after the worker, so that the master can
	 * sweep what a crashed worker leaves behind. */
	snprintf(dirname, sizeof(dirname), "%ld-%s", (long)getpid(), req->request_id);
	if (workdir_create(&wd, cfg->work_root, dirname) < 0) {
		int err = errno;

		drain_body(req, cfg->max_upload + EXECUTE_DRAIN_EXTRA);
		if (err == ENOSPC || err == EDQUOT)
			rc = reply_error(sink, log, 507, "disk_full",
					 "The server has no space left for a work directory; "
					 "try again later.", req->request_id);
		else
			rc = reply_error(sink, log, 500, "internal",
					 "The server could not create a work directory.",
					 req->request_id);
		goto out;
	}
	have_wd = 1;
	u.ctx = ctx;
	u.wd = &wd;

	/* The body streams from the web server into the files, one chunk at a
	 * time: an upload is never held whole in memory. */
	memset(&mlim, 0, sizeof(mlim));
	mlim.part_max = cfg->max_file_size;
	mlim.parts_max = (uint64_t)cfg->max_files + 2;
	if (multipart_init(mp, boundary, strlen(boundary), &mlim, &upload_callbacks, &u) < 0) {
		rc = reply_error(sink, log, 400, "bad_multipart",
				 "The multipart boundary is unusable.", req->request_id);
		goto out;
	}
	t0 = util_now_ns();
	for (;;) {
		r = req->read(req->read_ctx, buf, EXECUTE_READ_CHUNK);
		if (r < 0) {
			log_msg(LOG_LEVEL_WARN, "request %s: the client went away during the upload",
				req->request_id);
			log->status = 499;
			log->error = "client_gone";
			rc = -1;
			goto out;
		}
		if (r == 0)
			break;
		received += (uint64_t)r;
		log->bytes_in = received;
		if (received > cfg->max_upload) {
			upload_fail(&u, 413, "too_large",
				    "The request body is over the server's limit of %llu bytes.",
				    (unsigned long long)cfg->max_upload);
			break;
		}
		if (u.status == 0 && multipart_execute(mp, buf, (size_t)r) < (size_t)r)
			break;
	}
	if (u.status == 0) {
		enum multipart_error e = multipart_finish(mp);

		if (e == MULTIPART_E_PART_TOO_LARGE)
			upload_fail(&u, 413, "too_large",
				    "A file of the request is over the server's limit of %llu bytes.",
				    (unsigned long long)cfg->max_file_size);
		else if (e == MULTIPART_E_TOO_MANY_PARTS)
			upload_fail(&u, 413, "too_many_files",
				    "The request has more than %u files, the server's limit.",
				    cfg->max_files);
		else if (e != MULTIPART_E_OK && e != MULTIPART_E_CALLBACK)
			upload_fail(&u, 400, "bad_multipart",
				    "The multipart/form-data body is malformed: %s (at byte %llu).",
				    multipart_error_str(e),
				    (unsigned long long)multipart_error_offset(mp));
	}
	log->upload_ns = util_now_ns() - t0;
	if (u.status != 0) {
		drain_body(req, cfg->max_upload + EXECUTE_DRAIN_EXTRA);
		rc = reply_error(sink, log, u.status, u.error, u.detail, req->request_id);
		goto out;
	}
	if (fstatat(wd.work_fd, "main.py", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
		rc = reply_error(sink, log, 400, "missing_main", MISSING_MAIN_DETAIL,
				 req->request_id);
		goto out;
	}

	json = q->json || reply_prefers_json(req->accept);

	/* The dependencies, after the upload: a refused body installs nothing. */
	if (set->n > 0) {
		rc = acquire_deps(ctx, req, set, &use, &deps, json, sink, log);
		if (rc <= 0)
			goto out;
		rc = 0;
	}

	/* The run. */
	/* Captured output lives in memory files: bounded by max_output, and
	 * no file system metadata work on the request's hot path. */
	stdout_fd = memfd_create("pyexec-stdout", MFD_CLOEXEC);
	stderr_fd = memfd_create("pyexec-stderr", MFD_CLOEXEC);
	if (stdout_fd < 0 || stderr_fd < 0) {
		int err = errno;

		log_msg(LOG_LEVEL_ERROR, "request %s: memfd_create: %s", req->request_id,
			strerror(err));
		rc = reply_error(sink, log, 500, "internal",
				 "The server could not prepare the run.", req->request_id);
		goto out;
	}
	/* Without a sandbox's own /tmp, a short one (AF_UNIX paths under it). */
	if (ctx->sandbox == NULL && workdir_make_short_tmp(&wd) < 0) {
		int full = errno == ENOSPC || errno == EDQUOT;

		rc = reply_error(sink, log, full ? 507 : 500, full ? "disk_full" : "internal",
				 "The server could not make the run's temporary directory.",
				 req->request_id);
		goto out;
	}
	build_env(env, envp, &wd, use.lock_fd >= 0 ? use.path : NULL, ctx->sandbox != NULL);
	argv[0] = (char *)cfg->python;
	argv[1] = "-s";
	argv[2] = "-B";
	argv[3] = "main.py";
	argv[4] = NULL;
	memset(&spec, 0, sizeof(spec));
	spec.path = cfg->python;
	spec.argv = argv;
	spec.envp = envp;
	spec.cwd = wd.work_path;
	spec.stdin_fd = u.stdin_fd;
	spec.stdout_fd = stdout_fd;
	spec.stderr_fd = stderr_fd;
	spec.lim.wall_ms = q->has_timeout ? q->timeout_ms : cfg->timeout_ms;
	spec.lim.cpu_ms = cfg->cpu_time_ms != 0 ? cfg->cpu_time_ms : spec.lim.wall_ms;
	spec.lim.memory = q->has_memory ? q->memory : cfg->memory;
	spec.lim.file_size = cfg->max_file_size;
	spec.lim.max_output = cfg->max_output;
	spec.lim.nproc = cfg->max_processes;
	spec.lim.nofile = cfg->max_open_files;
	spec.cancel = ctx->cancel;
	spec.watch_fd = req->conn_fd;
	if (ctx->cgroup != NULL) {
		if (cgroup_slot_prepare(ctx->cgroup, spec.lim.memory, spec.lim.nproc) < 0) {
			log_msg(LOG_LEVEL_ERROR, "request %s: cannot set the limits of the run's "
				"cgroup: %s", req->request_id, strerror(errno));
			rc = reply_error(sink, log, 503, "sandbox_unavailable",
					 "The server could not set up the limits of this run; "
					 "its log says why.", req->request_id);
			goto out;
		}
		spec.cgroup = ctx->cgroup;
		/* memory.max holds the whole run; an address-space limit per
		 * process would only refuse what threads merely reserve. */
		if (ctx->cgroup->memory)
			spec.lim.memory = 0;
	}
	if (set->n == 0)
		log->deps_ns = 0;
	t1 = util_now_ns();
	if (ctx->sandbox != NULL) {
		/* The sandbox copies the uploads into its own /work and records
		 * them; results are collected from there. */
		sb_snap = collect_snapshot_new();
		if (sb_snap == NULL) {
			rc = reply_error(sink, log, 500, "internal", "The server is out of memory.",
					 req->request_id);
			goto out;
		}
		sandbox_run_init(&sb, ctx->sandbox, wd.path, wd.work_fd,
				 use.lock_fd >= 0 ? use.path : NULL, sb_snap);
		sb.spare = ctx->spare;
		have_sb = 1;
		sb_spawner = sandbox_spawner;
		sb_spawner.arg = &sb;
		spawner = &sb_spawner;
	}
	if (run_program(&spec, spawner, &res) < 0) {
		if (have_sb && sb.uploads_too_big) {
			snprintf(detail, sizeof(detail),
				 "The uploaded files do not fit in the run's disk of %llu bytes "
				 "(max_disk).", (unsigned long long)cfg->max_disk);
			rc = reply_error(sink, log, 413, "too_large", detail, req->request_id);
		} else if (have_sb) {
			log_msg(LOG_LEVEL_ERROR, "request %s: sandbox: %s", req->request_id,
				sb.error[0] ? sb.error : strerror(errno));
			rc = reply_error(sink, log, 503, "sandbox_unavailable",
					 "The server could not set up the sandbox for this run; "
					 "its log says why.", req->request_id);
		} else {
			rc = reply_error(sink, log, 500, "internal",
					 "The server could not start the program.", req->request_id);
		}
		goto out;
	}
	log->run_ns = util_now_ns() - t1;
	if (have_sb)
		metrics_count_setup(ctx->metrics, sb.spare_used ? METRICS_SETUP_AHEAD
							       : METRICS_SETUP_REQUEST);
	if (ctx->cgroup != NULL && cgroup_slot_empty(ctx->cgroup) < 0)
		log_msg(LOG_LEVEL_ERROR, "request %s: the run's cgroup is not empty: %s",
			req->request_id, strerror(errno));
	cache_release(&use);
	log->exec_status = run_status_name(res.status);
	if (res.cancelled) {
		log_msg(LOG_LEVEL_WARN, "request %s: the client went away; the run was stopped",
			req->request_id);
		log->status = 499;
		log->error = "client_gone";
		rc = -1;
		goto out;
	}

	results_fd = have_sb ? sb.work_fd : wd.work_fd;
	if (collect_files(results_fd, have_sb ? sb_snap : u.snap, cfg->max_generated_files,
			  cfg->max_generated_bytes, &files) < 0) {
		rc = reply_error(sink, log, 500, "internal",
				 "The server could not collect the generated files.",
				 req->request_id);
		goto out;
	}

	memset(&rx, 0, sizeof(rx));
	rx.status = 200;
	rx.exec_status = run_status_name(res.status);
	rx.run = &res;
	rx.request_id = req->request_id;
	rx.dependencies = deps;
	rx.stdout_fd = stdout_fd;
	rx.stderr_fd = stderr_fd;
	rx.files = &files;
	rx.work_fd = results_fd;
	rx.typer = type_file;
	rx.typer_ctx = ctx->mime;
	rx.open_file = open_result;
	rx.open_ctx = &results_fd;
	rx.json = json;
	reply_bounds(ctx, req, &rx);
	log->status = 200;
	t1 = util_now_ns();
	rc = reply_write_execution(sink, &rx);
	/* failed while planning it (a file gone, the time out): nothing sent yet */
	if (rc < 0 && !sink->in_body)
		rc = reply_error(sink, log, 500, "internal",
				 "The server could not read what the program generated.",
				 req->request_id);
	log->reply_ns = util_now_ns() - t1;

out:
	log->bytes_out = sink->body_bytes;
	/* The client has its answer before the clean-up below. */
	if (reply_end(sink) < 0 && rc == 0)
		rc = -1;
	if (u.fd >= 0)
		close(u.fd);
	if (u.stdin_fd >= 0)
		close(u.stdin_fd);
	if (stdout_fd >= 0)
		close(stdout_fd);
	if (stderr_fd >= 0)
		close(stderr_fd);
	collect_result_free(&files);
	if (have_sb)
		sandbox_run_close(&sb);
	collect_snapshot_free(sb_snap);
	cache_release(&use);
	if (have_wd)
		workdir_remove(&wd);
	collect_snapshot_free(u.snap);
	free(buf);
	free(mp);
	free(set);
	free(q);
	return rc;
}
