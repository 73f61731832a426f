/* request: one POST execute and everything it holds, from the first byte
 * of its body to the end of its reply. A request owns each resource it
 * takes (buffers, the work directory and its fds, the captured output, the
 * dependency cache entry it uses, the sandbox it runs in, the generated
 * files' list), and request_cleanup releases them all, in one place,
 * whatever phase the request stopped at. lib/execute.c runs the phases. */
#ifndef PYEXEC_REQUEST_H
#define PYEXEC_REQUEST_H

#include <stdint.h>

#include "cache.h"
#include "collect.h"
#include "deps.h"
#include "execute.h"
#include "multipart.h"
#include "query.h"
#include "run.h"
#include "sandbox.h"
#include "upload.h"
#include "workdir.h"
#include "zygote.h"

#define REQUEST_DETAIL_MAX 512

struct request {
	/* borrowed from the caller of execute_handle */
	const struct execute_ctx *ctx;
	const struct execute_request *in;
	struct reply_sink *sink;
	struct log_request *log;

	/* what the request asked for */
	struct query_params q;
	struct deps_set set;
	struct cache *cache;            /* the interpreter (?python=) and its part of the
	                                 * dependency cache; NULL: cfg->python, no cache */
	char boundary[MULTIPART_BOUNDARY_MAX + 1];
	int json;                       /* the reply is JSON */
	int stream;                     /* the reply is Server-Sent Events */
	char detail[REQUEST_DETAIL_MAX];/* an error reply's sentence */

	/* the upload */
	struct multipart_parser mp;
	char *buf;                      /* EXECUTE_READ_CHUNK bytes of body */
	struct workdir wd;
	int have_wd;                    /* wd exists on disk */
	struct collect_snapshot *snap;  /* the uploads, as they were written */
	struct upload up;               /* its open files */

	/* the dependencies */
	struct cache_use use;           /* lock_fd >= 0 while the entry is held */
	const char *deps;               /* "none", "cached", "installed" */

	/* the run */
	int stdout_fd, stderr_fd;       /* memory files of the captured output */
	struct execute_program prog;
	struct run_spec spec;
	struct sandbox_run sb;          /* namespace layer: taken before the body,
	                                 * which is written into its /work */
	int have_sb;                    /* sb is set up (sandbox_run_init) */
	struct run_spawner sb_spawner;  /* the run's spawner: sb, or the rlimits
	                                 * layer's zygote (zs) */
	struct zygote_spawn zs;
	struct collect_snapshot *sb_snap; /* the uploads, as the sandbox copied them
	                                   * (only when none was taken before the
	                                   * body; NULL otherwise) */
	struct run_result res;
	/* a streamed reply: its writes' bounds, and per output the bytes of
	 * a UTF-8 character cut off at the end of a read, for the next */
	struct reply_stream rs;
	unsigned char carry[2][4];
	size_t ncarry[2];
	unsigned char *sbuf;            /* a carry and the next read, together
	                                 * (only when there is a carry) */
	size_t sbuf_size;

	/* what it generated */
	int results_fd;                 /* borrowed: wd's or sb's work directory */
	struct collect_result files;
};

/* A new request with nothing taken yet but its buffers: every fd -1.
 * NULL when out of memory. Free it with request_cleanup. */
struct request *request_new(const struct execute_ctx *ctx, const struct execute_request *in,
			    struct reply_sink *sink, struct log_request *log);

/* Releases whatever r holds, whichever phase it reached (files closed, the
 * cache entry and the sandbox let go, the work directory removed), and
 * frees r. NULL is a no-op. */
void request_cleanup(struct request *r);

#endif
