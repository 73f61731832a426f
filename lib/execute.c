#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "collect.h"
#include "execute.h"
#include "figures.h"
#include "request.h"
#include "sandbox.h"
#include "util.h"
#include "zygote.h"

/* The seed's words, which its clients may match on. */
#define MISSING_MAIN_DETAIL "main.py not found. Please upload a valid main.py file."

/* What a phase returns: PHASE_NEXT to go on to the next one; once the
 * request is answered, 0, or -1 when the client went away. */
#define PHASE_NEXT 1

/* Reads and drops what is left of the body (bounded), so that the web
 * server, which sends the whole body before it reads the reply, is not
 * cut off mid-request and answers the client with our reply. */
static void drain_body(const struct request *r)
{
	uint64_t limit = r->ctx->cfg->max_upload + EXECUTE_DRAIN_EXTRA;
	char buf[16384];
	uint64_t n = 0;
	ssize_t got;

	while (n < limit && (got = r->in->read(r->in->read_ctx, buf, sizeof(buf))) > 0)
		n += (uint64_t)got;
}

/* The one error-reply path of this module: 0, or -1 when the client is gone. */
static int reply_error(struct reply_sink *sink, struct log_request *log, const char *request_id,
		       int status, const char *error, const char *detail)
{
	log->status = status;
	log->error = error;
	if (status >= 500)
		log_msg(LOG_LEVEL_ERROR, "request %s: %s", request_id, detail);
	return reply_write_error(sink, status, error, detail, request_id, NULL);
}

static int answer(struct request *r, int status, const char *error, const char *detail)
{
	/* a stream under way says it in an event of its own */
	if (r->stream && r->sink->in_body) {
		r->log->error = error;
		log_msg(LOG_LEVEL_ERROR, "request %s: %s", r->in->request_id, detail);
		return reply_stream_error(&r->rs, error, detail);
	}
	return reply_error(r->sink, r->log, r->in->request_id, status, error, detail);
}

/* An answer before the body was read: the body is drained first. */
static int refuse(struct request *r, int status, const char *error, const char *detail)
{
	drain_body(r);
	return answer(r, status, error, detail);
}

/* A failed write to the work directory: 507 for the disk, 500 for pyexec. */
static int answer_disk(struct request *r, int err, const char *detail)
{
	int full = err == ENOSPC || err == EDQUOT;

	return answer(r, full ? 507 : 500, full ? "disk_full" : "internal", detail);
}

/* The bounds of an execution reply: its size, and its time from now (a
 * web server that reads slowly holds the worker no longer). */
static void reply_bounds(const struct request *r, struct reply_execution *rx)
{
	rx->max_reply = r->ctx->cfg->max_reply;
	rx->deadline_ns = util_now_ns() + EXECUTE_REPLY_SECONDS * 1000000000LL;
	rx->send_fd = r->in->conn_fd;
	rx->request_id = r->in->request_id;
	rx->json = r->json;
}

/* The interpreter the query names (?python=), or the default (the first
 * of pythons) into r->cache. 0, or -1 with r->detail listing the names. */
static int choose_python(struct request *r)
{
	const struct execute_ctx *ctx = r->ctx;
	char shown[UTIL_SHOWN_MAX + 8];
	size_t n;

	r->cache = ctx->npythons > 0 ? &ctx->caches[0] : NULL;
	if (r->q.has_python) {
		r->cache = NULL;
		for (unsigned i = 0; i < ctx->npythons; i++)
			if (strcmp(ctx->caches[i].name, r->q.python) == 0)
				r->cache = &ctx->caches[i];
	}
	if (r->cache != NULL || !r->q.has_python) {
		r->log->python = r->cache != NULL ? r->cache->name : NULL;
		return 0;
	}
	n = (size_t)snprintf(r->detail, sizeof(r->detail),
			     "python: '%s' is not an interpreter of this server; it has",
			     util_shown(r->q.python, strlen(r->q.python), shown, sizeof(shown)));
	for (unsigned i = 0; i < ctx->npythons && n < sizeof(r->detail); i++)
		n += (size_t)snprintf(r->detail + n, sizeof(r->detail) - n, "%s %s%s",
				      i > 0 ? "," : "", ctx->caches[i].name,
				      i == 0 ? " (the default)" : "");
	if (ctx->npythons == 0 && n < sizeof(r->detail))
		snprintf(r->detail + n, sizeof(r->detail) - n, " none by name");
	return -1;
}

/* Whether the request runs the default interpreter, the one zygotes embed. */
static int default_python(const struct request *r)
{
	return r->cache == NULL || r->cache == &r->ctx->caches[0];
}

/* Phase 1: everything that can be refused is refused before the body is
 * read (the query, the dependencies' syntax, the Content-Type and -Length). */
static int check_request(struct request *r)
{
	const struct config *cfg = r->ctx->cfg;
	const struct execute_request *in = r->in;
	struct query_limits qlim = { cfg->timeout_max_ms, cfg->memory_max };
	const char *why;
	int is_415 = 0;

	if (query_parse(in->query, &qlim, &r->q, r->detail, sizeof(r->detail)) < 0)
		return refuse(r, 400, "bad_parameter", r->detail);
	if (choose_python(r) < 0)
		return refuse(r, 400, "bad_parameter", r->detail);
	if (r->q.has_dependencies &&
	    deps_parse(r->q.dependencies, cfg->max_dependencies, &r->set, r->detail,
		       sizeof(r->detail)) < 0)
		return refuse(r, 400, "bad_dependency", r->detail);
	if (multipart_boundary_from_content_type(in->content_type, r->boundary, &why,
						 &is_415) < 0) {
		if (is_415)
			return refuse(r, 415, "unsupported_media_type",
				      "The request body must be multipart/form-data with the "
				      "files as parts (curl -F files=@main.py).");
		snprintf(r->detail, sizeof(r->detail),
			 "The multipart/form-data Content-Type is unusable: %s.", why);
		return refuse(r, 400, "bad_multipart", r->detail);
	}
	if (in->content_length > 0 && (uint64_t)in->content_length > cfg->max_upload) {
		snprintf(r->detail, sizeof(r->detail),
			 "The request body of %lld bytes is over the server's limit of %llu bytes.",
			 (long long)in->content_length, (unsigned long long)cfg->max_upload);
		return refuse(r, 413, "too_large", r->detail);
	}
	return PHASE_NEXT;
}

/* The name in work_root of the directory of request id, after the worker,
 * so that the master can sweep what a crashed worker leaves behind. */
static void workdir_name(char *buf, size_t len, const char *id)
{
	snprintf(buf, len, "%ld-%s", (long)getpid(), id);
}

/* The request's work directory. PHASE_NEXT, or the request is answered
 * (507, 500). */
static int make_workdir(struct request *r)
{
	char dirname[96];
	int err;

	workdir_name(dirname, sizeof(dirname), r->in->request_id);
	if (workdir_create(&r->wd, r->ctx->cfg->work_root, dirname) == 0) {
		r->have_wd = 1;
		return PHASE_NEXT;
	}
	err = errno;
	drain_body(r);
	if (err == ENOSPC || err == EDQUOT)
		return answer_disk(r, err, "The server has no space left for a work directory; "
				   "try again later.");
	return answer_disk(r, err, "The server could not create a work directory.");
}

/* The zygote of the request's dependency set, when its worker has one
 * (the set is known from the query, its entry from its key), or NULL. */
static struct zygote *set_zygote(const struct request *r)
{
	const struct config *cfg = r->ctx->cfg;
	char key[DEPS_KEY_HEX + 1], entry[PATH_MAX];

	if (r->set.n == 0 || !cfg->warm || cfg->warm_deps_after == 0 || r->cache == NULL ||
	    !r->cache->usable || !default_python(r))
		return NULL;
	deps_key(&r->set, r->cache->salt, key);
	if (cache_entry_path(cfg, key, entry, sizeof(entry)) < 0)
		return NULL;
	return zygote_of_set(entry);
}

/* In the namespace layer the uploads are written once, straight into the
 * run's /work: its sandbox (the worker's spare, or a new one) is taken
 * before the body is read, and kept alive through a dependency install.
 * When none can be set up, they go to the host work directory and the run
 * tries again with a copy, or says why it cannot start (503). */
static void hold_sandbox(struct request *r)
{
	const struct sandbox_config *sbc = r->ctx->sandbox;
	struct sandbox_spare *sp;
	struct zygote *want;
	mode_t dir_bits, file_bits;
	int wfd;

	sandbox_run_init(&r->sb, sbc, r->wd.path, r->wd.work_fd, NULL, NULL);
	r->sb.spare = r->ctx->spare;
	r->have_sb = 1;
	/* A set with a zygote of its own has its sandbox forked by that one.
	 * A spare forked by another zygote than the run's goes first (it waits
	 * in the run's cgroup), and the run's is forked now. */
	r->sb.zygote = set_zygote(r);
	want = r->set.n > 0 ? r->sb.zygote : zygote_in_use();
	sp = r->ctx->spare;
	if (want != NULL && sp != NULL && sp->pid > 0 &&
	    (sp->zygote != want || !zygote_same(want, sp->zygote_gen)))
		sandbox_spare_discard(sp);
	wfd = sandbox_run_take(&r->sb, r->ctx->cgroup);
	if (wfd < 0) {
		log_msg(LOG_LEVEL_DEBUG, "request %s: no sandbox before the upload: %s",
			r->in->request_id, r->sb.error);
		return;
	}
	r->sb.upload_fd = -1;
	run_keep_child(r->sb.held.pid);
	sandbox_upload_modes(sbc, &dir_bits, &file_bits);
	upload_into(&r->up, wfd, dir_bits, file_bits, r->ctx->cfg->max_disk);
}

/* Phase 2: the body streams from the web server into the run's work
 * directory, which must then hold a main.py. */
static int read_upload(struct request *r)
{
	const struct config *cfg = r->ctx->cfg;
	struct multipart_limits mlim;
	struct stat st;
	int64_t t0;
	int rc = make_workdir(r);

	if (rc != PHASE_NEXT)
		return rc;
	if (r->ctx->sandbox != NULL)
		hold_sandbox(r);
	memset(&mlim, 0, sizeof(mlim));
	mlim.part_max = cfg->max_file_size;
	mlim.parts_max = (uint64_t)cfg->max_files + 2;
	if (multipart_init(&r->mp, r->boundary, strlen(r->boundary), &mlim, &upload_callbacks,
			   &r->up) < 0)
		return answer(r, 400, "bad_multipart", "The multipart boundary is unusable.");
	t0 = util_now_ns();
	rc = upload_receive(&r->up, &r->mp, r->in->read, r->in->read_ctx, r->buf,
			    EXECUTE_READ_CHUNK, &r->log->bytes_in);
	if (rc < 0) {
		log_msg(LOG_LEVEL_WARN, "request %s: the client went away during the upload",
			r->in->request_id);
		r->log->status = 499;
		r->log->error = "client_gone";
		return -1;
	}
	r->log->upload_ns = util_now_ns() - t0;
	if (r->up.status != 0)
		return refuse(r, r->up.status, r->up.error, r->up.detail);
	if (fstatat(r->up.dir_fd >= 0 ? r->up.dir_fd : r->wd.work_fd, "main.py", &st,
		    AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return answer(r, 400, "missing_main", MISSING_MAIN_DETAIL);
	return PHASE_NEXT;
}

/* pip could not install the set: the seed's reply shape, 424 with pip's
 * words as stderr. */
static int reply_pip_failed(struct request *r, int out_fd, int truncated)
{
	struct reply_execution rx;

	if (truncated)
		log_msg(LOG_LEVEL_WARN, "request %s: pip's output was cut at max_output",
			r->in->request_id);
	memset(&rx, 0, sizeof(rx));
	rx.status = 424;
	rx.exec_status = "dependency_error";
	rx.run = NULL;
	rx.dependencies = "none";
	rx.stdout_fd = -1;
	rx.stderr_fd = out_fd;
	reply_bounds(r, &rx);
	r->log->status = 424;
	r->log->error = "dependency_error";
	return reply_write_execution(r->sink, &rx);
}

/* What the cache's answer means for the request: PHASE_NEXT when the entry
 * is held, else the request is answered (424, 503, 500) or the client is gone. */
static int deps_outcome(struct request *r, enum cache_result res, int out_fd, int truncated)
{
	struct metrics *m = r->ctx->metrics;

	switch (res) {
	case CACHE_HIT:
		metrics_count_deps(m, METRICS_DEPS_HIT, 1);
		r->deps = "cached";
		return PHASE_NEXT;
	case CACHE_INSTALLED:
		metrics_count_deps(m, METRICS_DEPS_MISS, 1);
		metrics_count_deps(m, METRICS_DEPS_INSTALL, 1);
		r->deps = "installed";
		return PHASE_NEXT;
	case CACHE_PIP_FAILED:
		metrics_count_deps(m, METRICS_DEPS_MISS, 1);
		metrics_count_deps(m, METRICS_DEPS_FAILURE, 1);
		return reply_pip_failed(r, out_fd, truncated) < 0 ? -1 : 0;
	case CACHE_UNUSABLE:
		return answer(r, 503, "dependencies_unavailable", r->cache->why) < 0 ? -1 : 0;
	case CACHE_CANCELLED:
		metrics_count_deps(m, METRICS_DEPS_MISS, 1);
		r->log->status = 499;
		r->log->error = "client_gone";
		return -1;
	default:
		return answer(r, 500, "internal",
			      "The server could not install the dependencies; its log says why.")
		       < 0 ? -1 : 0;
	}
}

/* Phase 3: finds or installs the request's dependency set and holds it in
 * use; after the upload, so that a refused body installs nothing. */
static int resolve_deps(struct request *r)
{
	const struct execute_ctx *ctx = r->ctx;
	enum cache_result res;
	int64_t t0 = util_now_ns();
	int out_fd, truncated = 0, evicted = 0, rc;

	/* the query's word goes before Accept's: format= names a form too */
	r->stream = r->q.has_stream ? r->q.stream
		    : !r->q.has_format && reply_wants_events(r->in->accept);
	/* a stream's errors before the run, and its result, are the JSON form's */
	r->json = r->stream || r->q.json || reply_prefers_json(r->in->accept);
	if (r->set.n == 0) {
		if (ctx->cfg->warm && ctx->cfg->warm_deps_after > 0)
			zygote_note_set(NULL, -1);
		return PHASE_NEXT;
	}
	out_fd = memfd_create("pyexec-pip", MFD_CLOEXEC);
	if (out_fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "request %s: memfd_create: %s", r->in->request_id,
			strerror(errno));
		return answer(r, 500, "internal",
			      "The server could not prepare the dependency install.") < 0 ? -1 : 0;
	}
	res = cache_acquire(r->cache, &r->set, &r->use, out_fd, &truncated, r->in->conn_fd,
			    ctx->cancel, &evicted);
	r->log->deps_ns = util_now_ns() - t0;
	metrics_count_deps(ctx->metrics, METRICS_DEPS_EVICTION, (unsigned)evicted);
	rc = deps_outcome(r, res, out_fd, truncated);
	/* the worker counts the sets asked for, and gives one a zygote (of
	 * the interpreter zygotes embed) */
	if (rc == PHASE_NEXT && ctx->cfg->warm && ctx->cfg->warm_deps_after > 0)
		zygote_note_set(default_python(r) ? r->use.path : NULL, r->use.lock_fd);
	close(out_fd);
	return rc;
}

void execute_program(const char *python, struct execute_program *p, const char *tmp,
		     const char *work, const char *pythonpath, const char *modules)
{
	const size_t len = sizeof(p->env[0]);
	int n = 0;

	snprintf(p->env[n++], len, "PATH=" UTIL_PATH);
	snprintf(p->env[n++], len, "HOME=%s", tmp);
	snprintf(p->env[n++], len, "TMPDIR=%s", tmp);
	snprintf(p->env[n++], len, "LANG=C.UTF-8");
	snprintf(p->env[n++], len, "PYTHONUNBUFFERED=1");
	snprintf(p->env[n++], len, "PYTHONDONTWRITEBYTECODE=1");
	snprintf(p->env[n++], len, "MPLBACKEND=%s",
		 modules != NULL ? "module://" FIGURES_MODULE : "Agg");
	snprintf(p->env[n++], len, "OUTPUT_DIR=%s", work);
	/* The dependency entry: its sitecustomize.py adds its packages with
	 * site semantics (.pth files), ahead of the system's. */
	if (pythonpath != NULL || modules != NULL)
		snprintf(p->env[n++], len, "PYTHONPATH=%s%s%s", pythonpath != NULL ? pythonpath : "",
			 pythonpath != NULL && modules != NULL ? ":" : "",
			 modules != NULL ? modules : "");
	for (int i = 0; i < n; i++)
		p->envp[i] = p->env[i];
	p->envp[n] = NULL;
	p->argv[0] = (char *)python;
	p->argv[1] = "-s";
	p->argv[2] = "-B";
	p->argv[3] = "main.py";
	p->argv[4] = NULL;
}

void execute_program_add(struct execute_program *p, const struct argenv *ae)
{
	size_t n = 0, i;

	while (p->argv[n] != NULL)
		n++;
	for (i = 0; i < ae->argc; i++)
		p->argv[n++] = ae->argv[i];
	p->argv[n] = NULL;
	for (n = 0; p->envp[n] != NULL; n++)
		;
	for (i = 0; i < ae->envc; i++)
		p->envp[n++] = ae->env[i];
	p->envp[n] = NULL;
}

int execute_program_like(const struct config *cfg, struct execute_program *p,
			 const char *pythonpath)
{
	char id[EXECUTE_REQUEST_ID_LEN + 1], dirname[96], work[CONFIG_PATH_MAX];

	memset(id, '0', EXECUTE_REQUEST_ID_LEN);
	id[EXECUTE_REQUEST_ID_LEN] = '\0';
	workdir_name(dirname, sizeof(dirname), id);
	if (workdir_work_path(cfg->work_root, dirname, work, sizeof(work)) < 0)
		return -1;
	execute_program(cfg->python, p, WORKDIR_SHORT_TMP, work, pythonpath, figures_path(0));
	return 0;
}

static int warm(const struct request *r);

/* A streamed reply's head, once: with the first output, or the result. */
static int stream_head(struct request *r)
{
	if (r->sink->in_body)
		return 0;
	return reply_stream_head(&r->rs, warm(r) ? "warm" : "cold", r->deps, r->in->request_id);
}

/* run_spec's on_output: each piece of output, as an event; a UTF-8
 * character cut off by the read waits for the next piece. */
static int stream_output(void *arg, int which, const unsigned char *buf, size_t len)
{
	struct request *r = arg;
	const unsigned char *data = buf;
	size_t n = len, used;

	if (which < 0)          /* a beat: a comment line, which clients ignore */
		return stream_head(r) < 0 || reply_stream_beat(&r->rs) < 0 ? -1 : 0;
	if (r->ncarry[which] > 0) {
		/* the cut character first, then the piece */
		n += r->ncarry[which];
		if (n > r->sbuf_size) {
			unsigned char *p = realloc(r->sbuf, n);

			if (p == NULL) {
				log_msg(LOG_LEVEL_ERROR, "request %s: out of memory for the "
					"stream; stopping the run", r->in->request_id);
				return -1;
			}
			r->sbuf = p;
			r->sbuf_size = n;
		}
		memcpy(r->sbuf, r->carry[which], r->ncarry[which]);
		memcpy(r->sbuf + r->ncarry[which], buf, len);
		data = r->sbuf;
	}
	if (stream_head(r) < 0 ||
	    reply_stream_output(&r->rs, which ? "stderr" : "stdout", data, n, 0, &used) < 0)
		return -1;
	r->ncarry[which] = n - used;
	memcpy(r->carry[which], data + used, n - used);
	return 0;
}

/* What to run, how, and within which limits. In the namespace sandbox the
 * program sees /work and its own /tmp; with the rlimits layer, the
 * request's real directories. */
static void build_spec(struct request *r)
{
	const struct config *cfg = r->ctx->cfg;
	struct run_spec *spec = &r->spec;
	int sandboxed = r->ctx->sandbox != NULL;
	const char *python = r->cache != NULL ? r->cache->python : cfg->python;

	execute_program(python, &r->prog, sandboxed ? "/tmp" : r->wd.tmp_path,
			sandboxed ? SANDBOX_WORK : r->wd.work_path,
			r->use.lock_fd >= 0 ? r->use.path : NULL, figures_path(sandboxed));
	execute_program_add(&r->prog, &r->up.ae);
	memset(spec, 0, sizeof(*spec));
	spec->path = python;
	spec->argv = r->prog.argv;
	spec->envp = r->prog.envp;
	spec->cwd = r->wd.work_path;
	spec->stdin_fd = r->up.stdin_fd;
	spec->stdout_fd = r->stdout_fd;
	spec->stderr_fd = r->stderr_fd;
	spec->lim.wall_ms = r->q.has_timeout ? r->q.timeout_ms : cfg->timeout_ms;
	spec->lim.cpu_ms = cfg->cpu_time_ms != 0 ? cfg->cpu_time_ms : spec->lim.wall_ms;
	spec->lim.memory = r->q.has_memory ? r->q.memory : cfg->memory;
	spec->lim.file_size = cfg->max_file_size;
	spec->lim.max_output = cfg->max_output;
	spec->lim.nproc = cfg->max_processes;
	spec->lim.nofile = cfg->max_open_files;
	spec->cancel = r->ctx->cancel;
	spec->watch_fd = r->in->conn_fd;
	if (r->stream) {
		spec->on_output = stream_output;
		spec->on_output_arg = r;
		r->rs.sink = r->sink;
		r->rs.send_fd = r->in->conn_fd;
		r->rs.deadline_ns = util_now_ns() + (int64_t)spec->lim.wall_ms * 1000000 +
				    EXECUTE_REPLY_SECONDS * 1000000000LL;
	}
}

/* Phase 4a: the run's output files, its /tmp, environment and limits. */
static int prepare_run(struct request *r)
{
	const struct execute_ctx *ctx = r->ctx;

	/* Captured output lives in memory files: bounded by max_output, and
	 * no file system metadata work on the request's hot path. */
	r->stdout_fd = memfd_create("pyexec-stdout", MFD_CLOEXEC);
	r->stderr_fd = memfd_create("pyexec-stderr", MFD_CLOEXEC);
	if (r->stdout_fd < 0 || r->stderr_fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "request %s: memfd_create: %s", r->in->request_id,
			strerror(errno));
		return answer(r, 500, "internal", "The server could not prepare the run.");
	}
	/* Without a sandbox's own /tmp, a short one (AF_UNIX paths under it). */
	if (ctx->sandbox == NULL && workdir_make_short_tmp(&r->wd) < 0)
		return answer_disk(r, errno,
				   "The server could not make the run's temporary directory.");
	build_spec(r);
	if (ctx->cgroup == NULL)
		return PHASE_NEXT;
	if (cgroup_slot_prepare(ctx->cgroup, r->spec.lim.memory, r->spec.lim.nproc) < 0) {
		log_msg(LOG_LEVEL_ERROR, "request %s: cannot set the limits of the run's "
			"cgroup: %s", r->in->request_id, strerror(errno));
		return answer(r, 503, "sandbox_unavailable",
			      "The server could not set up the limits of this run; "
			      "its log says why.");
	}
	r->spec.cgroup = ctx->cgroup;
	/* memory.max holds the whole run; an address-space limit per
	 * process would only refuse what threads merely reserve. */
	if (ctx->cgroup->memory)
		r->spec.lim.memory = 0;
	return PHASE_NEXT;
}

/* The namespace sandbox as the run's spawner: the one that holds the
 * uploads, or (none could be set up before the body) one that copies them
 * into its own /work and records them. Results are collected from there.
 * 0, or -1 when out of memory. */
static int use_sandbox(struct request *r)
{
	if (r->sb.upload_fd >= 0) {
		r->sb_snap = collect_snapshot_new();
		if (r->sb_snap == NULL)
			return -1;
		r->sb.snap = r->sb_snap;
	}
	r->sb.deps_path = r->use.lock_fd >= 0 ? r->use.path : NULL;
	r->sb_spawner = sandbox_spawner;
	r->sb_spawner.arg = &r->sb;
	/* the run reaps it from here on */
	run_keep_child(0);
	return 0;
}

/* run_program failed: the program never ran. */
static int answer_run_failed(struct request *r)
{
	if (r->have_sb && r->sb.uploads_too_big) {
		snprintf(r->detail, sizeof(r->detail), UPLOAD_DISK_DETAIL,
			 (unsigned long long)r->ctx->cfg->max_disk);
		return answer(r, 413, "too_large", r->detail);
	}
	if (r->have_sb) {
		log_msg(LOG_LEVEL_ERROR, "request %s: sandbox: %s", r->in->request_id,
			r->sb.error[0] ? r->sb.error : strerror(errno));
		return answer(r, 503, "sandbox_unavailable",
			      "The server could not set up the sandbox for this run; "
			      "its log says why.");
	}
	return answer(r, 500, "internal", "The server could not start the program.");
}

/* Whether the run was forked from a zygote. */
static int warm(const struct request *r)
{
	return r->have_sb ? r->sb.warm : r->zs.warm;
}

/* Phase 4b: runs main.py, then lets the dependency entry go. */
static int run(struct request *r)
{
	const struct execute_ctx *ctx = r->ctx;
	const struct run_spawner *spawner = ctx->spawner;
	int64_t t0;

	if (r->set.n == 0)
		r->log->deps_ns = 0;
	t0 = util_now_ns();
	if (r->have_sb) {
		if (use_sandbox(r) < 0)
			return answer(r, 500, "internal", "The server is out of memory.");
		spawner = &r->sb_spawner;
	} else if (spawner == NULL && zygote_in_use() != NULL) {
		/* the rlimits layer's zygote, when it has one for this run (a
		 * set's, waited for when it is starting: its entry is the one
		 * the request holds; sets of the default interpreter only) */
		if (r->use.lock_fd >= 0 && default_python(r))
			(void)zygote_of_set(r->use.path);
		r->sb_spawner = zygote_spawner;
		r->sb_spawner.arg = &r->zs;
		spawner = &r->sb_spawner;
	}
	if (run_program(&r->spec, spawner, &r->res) < 0)
		return answer_run_failed(r);
	r->log->run_ns = util_now_ns() - t0;
	if (r->have_sb)
		metrics_count_setup(ctx->metrics, r->sb.spare_used ? METRICS_SETUP_AHEAD
								   : METRICS_SETUP_REQUEST);
	metrics_count_start(ctx->metrics, warm(r));
	if (r->set.n > 0)
		metrics_count_set_start(ctx->metrics, warm(r));
	if (ctx->cgroup != NULL && cgroup_slot_empty(ctx->cgroup) < 0)
		log_msg(LOG_LEVEL_ERROR, "request %s: the run's cgroup is not empty: %s",
			r->in->request_id, strerror(errno));
	cache_release(&r->use);
	r->log->exec_status = run_status_name(r->res.status);
	if (r->res.cancelled) {
		log_msg(LOG_LEVEL_WARN, "request %s: the client went away; the run was stopped",
			r->in->request_id);
		r->log->status = 499;
		r->log->error = "client_gone";
		return -1;
	}
	return PHASE_NEXT;
}

/* Phase 5: the files the run generated. */
static int collect(struct request *r)
{
	const struct config *cfg = r->ctx->cfg;

	r->results_fd = r->have_sb ? r->sb.work_fd : r->wd.work_fd;
	if (collect_files(r->results_fd, r->sb_snap != NULL ? r->sb_snap : r->snap,
			  cfg->max_generated_files, cfg->max_generated_bytes, &r->files) < 0)
		return answer(r, 500, "internal",
			      "The server could not collect the generated files.");
	return PHASE_NEXT;
}

static const char *type_file(void *ctx, int fd, char *out)
{
	return mime_type_fd(ctx, fd, out);
}

static int open_result(void *ctx, const char *name)
{
	return collect_open(*(const int *)ctx, name);
}

/* Phase 6: the reply, streamed: output, then each generated file. */
static int reply(struct request *r)
{
	struct reply_execution rx;
	int64_t t0;
	int rc;

	memset(&rx, 0, sizeof(rx));
	rx.status = 200;
	rx.exec_status = run_status_name(r->res.status);
	rx.run = &r->res;
	rx.start = warm(r) ? "warm" : "cold";
	rx.dependencies = r->deps;
	rx.stdout_fd = r->stdout_fd;
	rx.stderr_fd = r->stderr_fd;
	rx.files = &r->files;
	rx.work_fd = r->results_fd;
	rx.typer = type_file;
	rx.typer_ctx = r->ctx->mime;
	rx.open_file = open_result;
	rx.open_ctx = &r->results_fd;
	reply_bounds(r, &rx);
	r->log->status = 200;
	t0 = util_now_ns();
	if (r->stream) {
		/* the head if nothing was written, the rest of a cut character,
		 * then the JSON form's body as the result event */
		rx.event = 1;
		if (stream_head(r) < 0)
			return -1;
		for (int i = 0; i < 2; i++) {
			size_t used;

			if (r->ncarry[i] > 0 &&
			    reply_stream_output(&r->rs, i ? "stderr" : "stdout", r->carry[i],
						r->ncarry[i], 1, &used) < 0)
				return -1;
		}
	}
	rc = reply_write_execution(r->sink, &rx);
	/* failed while planning it (a file gone, the time out): nothing sent yet */
	if (rc < 0 && !r->sink->in_body)
		rc = answer(r, 500, "internal",
			    "The server could not read what the program generated.");
	r->log->reply_ns = util_now_ns() - t0;
	return rc;
}

/* The phases in their order, each until one answers the request. */
static int run_phases(struct request *r)
{
	static int (*const phases[])(struct request *) = {
		check_request, read_upload, resolve_deps, prepare_run, run, collect, reply,
	};
	int rc = PHASE_NEXT;

	for (size_t i = 0; rc == PHASE_NEXT && i < sizeof(phases) / sizeof(phases[0]); i++)
		rc = phases[i](r);
	return rc;
}

int execute_handle(const struct execute_ctx *ctx, const struct execute_request *req,
		   struct reply_sink *sink, struct log_request *log)
{
	struct request *r = request_new(ctx, req, sink, log);
	int rc;

	log->exec_status = NULL;
	log->python = NULL;
	if (r == NULL)
		rc = reply_error(sink, log, req->request_id, 500, "internal",
				 "The server is out of memory.");
	else
		rc = run_phases(r);
	log->bytes_out = sink->body_bytes;
	/* The client has its answer before the clean-up. */
	if (reply_end(sink) < 0 && rc == 0)
		rc = -1;
	request_cleanup(r);
	return rc;
}
