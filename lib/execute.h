/* execute: the POST execute pipeline (the README's "POST execute"),
 * independent of FastCGI, one function per phase:
 *
 *   check the request → read the upload → resolve the dependencies →
 *   prepare and run main.py → collect the generated files → reply
 *
 * The first phase that answers ends the request (each refusal is the
 * README's error table). Every outcome, success or error, is answered
 * through the sink; then request_cleanup (lib/request.h) releases all the
 * request took, the work directory last. */
#ifndef PYEXEC_EXECUTE_H
#define PYEXEC_EXECUTE_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "argenv.h"
#include "cache.h"
#include "conf.h"
#include "deps.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "reply.h"
#include "run.h"
#include "sandbox.h"

#define EXECUTE_READ_CHUNK (64 * 1024)  /* bytes read from the body at a time */
#define EXECUTE_DRAIN_EXTRA (1 << 20)   /* bytes drained past max_upload */
/* The reply phase's bound: past it the reply is cut short and the worker
 * moves on, however slowly the web server reads or however big the reply. */
#define EXECUTE_REPLY_SECONDS 60

/* What lives as long as a worker. */
struct execute_ctx {
	const struct config *cfg;
	struct mime *mime;                  /* loaded once per worker */
	const struct run_spawner *spawner;  /* NULL = run_spawner_rlimits */
	volatile sig_atomic_t *cancel;      /* set when the client is gone */
	struct cache *caches;               /* per interpreter, the default first
	                                     * (?python=), with the dependency cache */
	unsigned npythons;
	/* the namespace sandbox, or NULL for the rlimits layer */
	const struct sandbox_config *sandbox;
	/* with it, a sandbox the worker made while it waited, or NULL */
	struct sandbox_spare *spare;
	struct metrics *metrics;            /* NULL: not counted */
	/* the worker's run cgroup (lib/cgroup.h), or NULL for none */
	struct cgroup_slot *cgroup;
};

/* One request, as the web server described it. Strings may be NULL. */
struct execute_request {
	const char *request_id;             /* [0-9a-f], also the log's id */
	const char *query;                  /* QUERY_STRING */
	const char *content_type;
	const char *accept;
	int64_t content_length;             /* -1 when unknown */
	/* reads up to len body bytes: count, 0 at the end, -1 on error */
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	void *read_ctx;
	/* the client's connection, watched during the run: when it ends the
	 * run is stopped; -1 when there is none to watch */
	int conn_fd;
};

/* A run's command line and environment, built from nothing (the
 * README's "POST execute"): python -s -B main.py, then the request's args,
 * and pyexec's variables, then the request's env. */
#define EXECUTE_ENV_MAX 16          /* variables pyexec sets */
#define EXECUTE_ENV_LEN (CONFIG_PATH_MAX + 32)
struct execute_program {
	char env[EXECUTE_ENV_MAX][EXECUTE_ENV_LEN];
	char *envp[EXECUTE_ENV_MAX + ARGENV_ENV_MAX + 1];
	char *argv[5 + ARGENV_ARGS_MAX];
};

/* Fills p for the interpreter python (a path), with tmp as HOME and TMPDIR, work as
 * OUTPUT_DIR, and pythonpath (a dependency entry; NULL: none) then
 * modules (pyexec's own, lib/figures.h; NULL: none) as PYTHONPATH.
 * p's vectors point into p. */
void execute_program(const char *python, struct execute_program *p, const char *tmp,
		     const char *work, const char *pythonpath, const char *modules);

/* Adds ae's arguments and variables (borrowed: ae must outlive p's use)
 * to p, filled by execute_program. */
void execute_program_add(struct execute_program *p, const struct argenv *ae);

/* The hex digits of a request id (X-Request-Id); the request's
 * directory in work_root is "<worker pid>-<id>". */
#define EXECUTE_REQUEST_ID_LEN 32

/* As execute_program for a run of cfg's default python on the rlimits layer
 * (with the dependency entry pythonpath, or NULL), with stand-ins of the
 * lengths its own directories will have (a plain zygote's runs write
 * theirs over them: lib/zygote.h). 0, or -1 with errno. */
int execute_program_like(const struct config *cfg, struct execute_program *p,
			 const char *pythonpath);

/* Handles one POST execute. The whole reply is written to sink and ended
 * (reply_end) before the request's directory is removed; log is
 * filled for log_request(). Returns 0, or -1 when the client went away. */
int execute_handle(const struct execute_ctx *ctx, const struct execute_request *req,
		   struct reply_sink *sink, struct log_request *log);

#endif
