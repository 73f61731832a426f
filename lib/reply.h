/* reply: writes replies as a CGI response (a "Status:" header block, a blank
 * line, the body) to a sink, in bounded chunks: files and captured output are
 * streamed from their fds, never read whole into memory.
 *
 * The 200 reply of an execution is multipart/form-data exactly like the
 * seed's (parts "stdout", "stderr", then one part per generated file with a
 * filename and a Content-Type), or JSON. Errors are JSON
 * {"detail": "...", "error": "..."}.
 *
 * Nothing a run writes makes the reply bigger than its caps say: a file
 * (or stdout, stderr) goes into JSON as text only when it is printable
 * UTF-8 (no control character but tab, LF, CR), else as base64, so the
 * JSON body is at most 2 x (text) or 4/3 x (base64) its bytes, and
 * max_reply caps the whole body. Names are unambiguous: the multipart
 * name encoding is injective and no file's part is named "stdout" or
 * "stderr"; JSON adds "name_b64" for a name that is not UTF-8. */
#ifndef PYEXEC_REPLY_H
#define PYEXEC_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "collect.h"
#include "run.h"

#define REPLY_CHUNK (64 * 1024)      /* bytes per read/write when streaming */
#define REPLY_BOUNDARY_BYTES 24      /* random bytes in a boundary (48 hex) */

struct reply_sink {
	/* writes all of buf; 0, or -1 when the client is gone */
	int (*write)(void *ctx, const void *buf, size_t len);
	/* optional: the reply is complete, deliver it now (the caller still
	 * has cleaning up to do); 0 or -1 */
	int (*end)(void *ctx);
	/* optional: deliver what was written so far now (an event of a
	 * stream); 0, or -1 when the client is gone */
	int (*flush)(void *ctx);
	void *ctx;
	uint64_t body_bytes;         /* body bytes written so far (set by reply_*) */
	int in_body;                 /* set by reply_* once the header block ended */
	int ended;                   /* set by reply_end */
};

/* Content type of a generated file: writes at most 128 bytes into out. */
typedef const char *(*reply_typer)(void *ctx, int fd, char *out);

/* Everything a 200 (or 424) execution reply says. */
struct reply_execution {
	int status;                  /* 200, or 424 for a dependency failure */
	const char *exec_status;     /* X-Execution-Status ("ok", ..., "dependency_error") */
	const struct run_result *run;/* NULL when nothing ran (424) */
	const char *start;           /* X-Execution-Start: "warm" or "cold" (with run) */
	const char *request_id;
	const char *dependencies;    /* "none", "cached", "installed" */
	int stdout_fd, stderr_fd;    /* captured output, read from offset 0; -1 = empty */
	const struct collect_result *files; /* NULL = none */
	int work_fd;                 /* where files are; for open_file's use, not read here */
	/* Opens a generated file by its name in files: an fd (O_RDONLY|O_CLOEXEC)
	 * of a regular file, or -1 with errno. Required when files has any;
	 * normally a wrapper of collect_open(work_fd, name) called with open_ctx
	 * (reply.c does not link collect.c, so the unit suite supplies its own). */
	int (*open_file)(void *ctx, const char *name);
	void *open_ctx;
	reply_typer typer;
	void *typer_ctx;
	int json;                    /* JSON instead of multipart */
	/* The JSON body alone, as the last event of a stream whose head was
	 * sent (reply_stream_head): "event: result", "data: " and the body,
	 * then a blank line. */
	int event;
	/* The most body bytes the reply may take; 0 = no cap. stdout and stderr
	 * are always sent whole (the configuration keeps max_reply at least
	 * 4 x max_output + 1M); generated files that would pass it are left out,
	 * whole, in name order (a later, smaller one may still fit), and
	 * X-Truncated says "files,reply". */
	uint64_t max_reply;
	/* util_now_ns() past which every write fails and the reply is cut
	 * short; 0 = none. With it, send_fd (the web server's connection, -1
	 * for none) has its SO_SNDTIMEO kept at the time left before each
	 * write, so one blocked write cannot outlast the deadline either. */
	int64_t deadline_ns;
	int send_fd;
};

/* Writes the whole execution reply: headers (X-Execution-Status,
 * X-Exit-Code or X-Signal, X-Execution-Time, X-CPU-Time, X-Max-RSS,
 * X-Truncated, X-Dependencies, X-Request-Id), then the body. The multipart
 * boundary is random (48 hex digits) and made now. Without a run (424) the
 * run headers are left out and the JSON has exit_code, signal, time and
 * max_rss_kib null. In Content-Disposition, '%', '"', '\\' and control
 * bytes of a file name are written %XX (HTML form style: '"' is %22, and
 * '%' is %25 so the encoding is injective); a file named "stdout" or
 * "stderr" has its part name's first letter written %73 ("%73tdout"), so
 * only the real outputs have those part names. Each generated
 * file is sent as exactly the size fstat gave when it was opened; one that
 * turns out shorter is an error, never a short part. 0, or -1 when the sink
 * failed (the client is gone, or the deadline passed), a header value held
 * a control character, or a file could not be opened or read (then the
 * reply is cut short; logged). Files are opened twice: once to plan the
 * reply (size, type, encoding) before the headers, once to send them. */
int reply_write_execution(struct reply_sink *sink, const struct reply_execution *e);

/* Writes an error reply: status, JSON {"detail","error"}, X-Request-Id, and
 * extra_headers (e.g. "Allow: POST\r\n") verbatim when non-NULL. 0 or -1. */
int reply_write_error(struct reply_sink *sink, int status, const char *error,
		      const char *detail, const char *request_id,
		      const char *extra_headers);

/* Writes a reply with the given status, content type and body, with
 * Content-Length, X-Request-Id (when non-NULL), Cache-Control: no-store. 0 or -1. */
int reply_write_simple(struct reply_sink *sink, int status, const char *content_type,
		       const char *body, size_t len, const char *request_id);

/* Writes len bytes as the inside of a JSON string (no quotes): escapes
 * quote, backslash, controls (\n, \u0001, ...) and U+2028/U+2029; each
 * maximal ill-formed UTF-8 subpart becomes one U+FFFD. 0 or -1. */
int reply_json_string_body(struct reply_sink *sink, const void *buf, size_t len);

/* Content negotiation (RFC 9110 §12.5.1) of an Accept header value (NULL
 * when absent): 1 when it prefers application/json to multipart/form-data
 * (a higher q for the most specific range matching each), 0 otherwise, so a
 * tie, "* / *" or no header keeps the multipart reply. */
int reply_prefers_json(const char *accept);

/* Server-Sent Events (the README's "Live output"): a head, then events,
 * each written whole and flushed through the web server (sink->flush),
 * each write bounded by deadline_ns as reply_execution's are. */
struct reply_stream {
	struct reply_sink *sink;
	int64_t deadline_ns;         /* 0 = none */
	int send_fd;                 /* -1 = none */
};

/* The head: 200, Content-Type: text/event-stream, X-Execution-Start and
 * X-Dependencies (when not NULL), X-Request-Id, Cache-Control: no-store,
 * X-Accel-Buffering: no. 0 or -1. */
int reply_stream_head(const struct reply_stream *s, const char *start, const char *dependencies,
		      const char *request_id);

/* An event "name" (stdout, stderr) of output: data {"data": ...,
 * "encoding": "utf-8"} when the bytes are printable UTF-8 (as the JSON
 * form decides), else "base64". Unless final, an incomplete UTF-8
 * character at the end is left out: *used says how many bytes went (the
 * caller keeps the rest, at most 3, for the next call; 0 sends nothing).
 * 0, or -1 when the client is gone. */
int reply_stream_output(const struct reply_stream *s, const char *name,
			const unsigned char *buf, size_t len, int final, size_t *used);

/* A comment line (":"), which clients ignore: written while the program
 * is silent, it finds out whether the client is still there, and keeps
 * proxies from timing an idle stream out. 0, or -1 when the client is gone. */
int reply_stream_beat(const struct reply_stream *s);

/* An event "error" with the usual {"detail", "error"}: a failure of the
 * server after the stream started. 0 or -1. */
int reply_stream_error(const struct reply_stream *s, const char *error, const char *detail);

/* 1 when an Accept header value (NULL when absent) names
 * text/event-stream itself, with a q above 0 and no lower than those of
 * application/json and multipart/form-data. */
int reply_wants_events(const char *accept);

/* Calls sink->end when set, at most once per reply. 0, or -1 when it failed. */
int reply_end(struct reply_sink *sink);

/* "OK", "Bad Request", ...; "Unknown" for others. */
const char *reply_status_text(int status);

#endif
