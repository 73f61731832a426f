/* log: lines to stderr, one per event, prefixed "pyexec[pid]: ". */
#ifndef PYEXEC_LOG_H
#define PYEXEC_LOG_H

#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Lines below this level are dropped (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level level);

/* Formats one line (a trailing newline is added) and writes it to stderr in
 * a single write(2), so lines of concurrent workers never interleave.
 * errno is as it was before the call, so an error path may log and then
 * return -1 with the errno of what failed. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What one request did; every string may be NULL (logged as "-"). */
struct log_request {
	const char *id;         /* request id, as sent in X-Request-Id */
	const char *method;
	const char *route;      /* "execute", "healthz", ... or the raw path */
	int status;             /* HTTP status answered */
	const char *exec_status; /* X-Execution-Status, NULL when nothing ran */
	const char *python;     /* the interpreter that ran (pythons' name), NULL
	                         * when nothing ran */
	const char *error;      /* error code of an error reply */
	uint64_t bytes_in;      /* request body bytes read */
	uint64_t bytes_out;     /* reply body bytes written */
	int64_t upload_ns, deps_ns, run_ns, reply_ns; /* -1 when not reached */
	int64_t total_ns;       /* from the request's arrival to its log line */
};

/* Writes the one line that sums up a request. */
void log_request(const struct log_request *r);

#endif
