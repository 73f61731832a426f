#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "request.h"

struct request *request_new(const struct execute_ctx *ctx, const struct execute_request *in,
			    struct reply_sink *sink, struct log_request *log)
{
	struct request *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->ctx = ctx;
	r->in = in;
	r->sink = sink;
	r->log = log;
	r->deps = "none";
	r->use.lock_fd = -1;
	r->stdout_fd = r->stderr_fd = -1;
	r->results_fd = -1;
	r->buf = malloc(EXECUTE_READ_CHUNK);
	r->snap = collect_snapshot_new();
	upload_init(&r->up, ctx->cfg, &r->wd, r->snap);
	if (r->buf == NULL || r->snap == NULL) {
		request_cleanup(r);
		return NULL;
	}
	return r;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* In the reverse order of the phases: what the reply read, the run's
 * sandbox and output, the cache entry, then the upload and its directory. */
void request_cleanup(struct request *r)
{
	if (r == NULL)
		return;
	upload_close(&r->up);
	close_fd(&r->stdout_fd);
	close_fd(&r->stderr_fd);
	collect_result_free(&r->files);
	if (r->have_sb) {
		run_keep_child(0);
		sandbox_run_close(&r->sb);
	}
	collect_snapshot_free(r->sb_snap);
	cache_release(&r->use);
	if (r->have_wd)
		(void)workdir_remove(&r->wd);
	collect_snapshot_free(r->snap);
	free(r->sbuf);
	free(r->buf);
	free(r);
}
