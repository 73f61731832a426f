#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "reply.h"
#include "util.h"

#define REPLY_OUT_BUF 8192           /* small writes are gathered up to this */
#define REPLY_LINE_MAX 512           /* one formatted header line or JSON field */
#define REPLY_TYPE_MAX 128           /* what a reply_typer may write */
#define REPLY_B64_IN (REPLY_CHUNK / 3 * 3) /* whole 3-byte groups per read */
#define REPLY_FALLBACK_TYPE "application/octet-stream"

/* Gathers small pieces (headers, JSON punctuation, escapes) into one sink
 * write; large pieces go straight through. Failure is sticky. */
struct out {
	struct reply_sink *sink;
	size_t n;
	int failed;
	char buf[REPLY_OUT_BUF];
};

static int sink_write(struct reply_sink *sink, const void *buf, size_t len)
{
	if (sink->write(sink->ctx, buf, len) < 0)
		return -1;
	if (sink->in_body)
		sink->body_bytes += len;
	return 0;
}

static void out_init(struct out *o, struct reply_sink *sink)
{
	o->sink = sink;
	o->n = 0;
	o->failed = 0;
}

static int out_flush(struct out *o)
{
	if (o->failed)
		return -1;
	if (o->n > 0 && sink_write(o->sink, o->buf, o->n) < 0) {
		o->failed = 1;
		return -1;
	}
	o->n = 0;
	return 0;
}

static int out_put(struct out *o, const void *p, size_t len)
{
	if (o->failed)
		return -1;
	if (len > sizeof(o->buf) - o->n) {
		if (out_flush(o) < 0)
			return -1;
		if (len >= sizeof(o->buf)) {
			if (sink_write(o->sink, p, len) < 0) {
				o->failed = 1;
				return -1;
			}
			return 0;
		}
	}
	memcpy(o->buf + o->n, p, len);
	o->n += len;
	return 0;
}

static int out_str(struct out *o, const char *s)
{
	return out_put(o, s, strlen(s));
}

static int out_printf(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int out_printf(struct out *o, const char *fmt, ...)
{
	char line[REPLY_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		log_msg(LOG_LEVEL_ERROR, "reply: a formatted line is over %d bytes", REPLY_LINE_MAX);
		o->failed = 1;
		return -1;
	}
	return out_put(o, line, (size_t)n);
}

/* A header value must not end the header block early or start another. */
static int header_value_ok(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 0;
	return 1;
}

static int out_header(struct out *o, const char *name, const char *value)
{
	if (!header_value_ok(value)) {
		log_msg(LOG_LEVEL_ERROR, "reply: refusing a control character in %s", name);
		o->failed = 1;
		return -1;
	}
	out_str(o, name);
	out_put(o, ": ", 2);
	out_str(o, value);
	return out_put(o, "\r\n", 2);
}

static int out_begin(struct out *o, struct reply_sink *sink, int status)
{
	out_init(o, sink);
	if (sink == NULL || sink->write == NULL) {
		log_msg(LOG_LEVEL_ERROR, "reply: no sink");
		return -1;
	}
	/* a second header block would land in the body of the first reply */
	if (sink->in_body) {
		log_msg(LOG_LEVEL_ERROR, "reply: the reply has already started; cannot send %d", status);
		return -1;
	}
	return out_printf(o, "Status: %d %s\r\n", status, reply_status_text(status));
}

/* The blank line; what follows counts as body bytes. */
static int out_end_headers(struct out *o)
{
	out_put(o, "\r\n", 2);
	if (out_flush(o) < 0)
		return -1;
	o->sink->in_body = 1;
	return 0;
}

#define ACCEPT_RANGE_MAX 128   /* bytes of one media range looked at */

/* RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ),
 * in thousandths; anything else counts as 0 (not acceptable). */
static int accept_weight(const char *v)
{
	int q = 0, scale = 100;

	if (v[0] == '1')
		return 1000;
	if (v[0] != '0')
		return 0;
	if (v[1] == '.')
		for (v += 2; *v >= '0' && *v <= '9' && scale > 0; v++, scale /= 10)
			q += (*v - '0') * scale;
	return q;
}

/* q of the most specific range of accept matching type/subtype (exact,
 * then type/ *, then * / *), in thousandths; -1 when none matches. */
static int accept_q(const char *accept, const char *type, const char *subtype)
{
	int best = -1, best_spec = -1;

	for (const char *p = accept; *p != '\0';) {
		size_t n = strcspn(p, ",");
		char range[ACCEPT_RANGE_MAX], *params, *slash, *t, *sub;
		int q = 1000, spec;

		if (n < sizeof(range)) {
			memcpy(range, p, n);
			range[n] = '\0';
			params = strchr(range, ';');
			if (params != NULL)
				*params++ = '\0';
			t = range + strspn(range, " \t");
			t[strcspn(t, " \t")] = '\0';
			slash = strchr(t, '/');
			if (slash != NULL) {
				*slash = '\0';
				sub = slash + 1;
				spec = strcmp(t, "*") == 0 && strcmp(sub, "*") == 0 ? 0 :
				       strcasecmp(t, type) == 0 && strcmp(sub, "*") == 0 ? 1 :
				       strcasecmp(t, type) == 0 && strcasecmp(sub, subtype) == 0 ? 2 : -1;
				/* "q=0.5": the weight, to three decimals */
				for (char *a = params; spec >= 0 && a != NULL && *a != '\0';) {
					a += strspn(a, " \t");
					if ((a[0] == 'q' || a[0] == 'Q') && a[1] == '=')
						q = accept_weight(a + 2);
					a = strchr(a, ';');
					if (a != NULL)
						a++;
				}
				if (spec > best_spec) {
					best_spec = spec;
					best = q;
				}
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return best;
}

int reply_prefers_json(const char *accept)
{
	int json, multipart;

	if (accept == NULL)
		return 0;
	json = accept_q(accept, "application", "json");
	multipart = accept_q(accept, "multipart", "form-data");
	return json > 0 && json > multipart;
}

int reply_end(struct reply_sink *sink)
{
	if (sink->end == NULL || sink->ended)
		return 0;
	sink->ended = 1;
	return sink->end(sink->ctx);
}

const char *reply_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 424: return "Failed Dependency";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

/* ---- UTF-8 and JSON strings ---- */

enum utf8_step { UTF8_OK, UTF8_BAD, UTF8_SHORT };

/* Looks at the sequence at p (len >= 1). UTF8_OK: a well-formed scalar of
 * *used bytes. UTF8_BAD: *used bytes are one maximal ill-formed subpart
 * (Unicode ch. 3, "U+FFFD substitution of maximal subparts"). UTF8_SHORT:
 * the *used bytes left are a valid start cut off by the end of p. */
static enum utf8_step utf8_next(const unsigned char *p, size_t len, size_t *used)
{
	unsigned char b = p[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (b < 0x80) {
		*used = 1;
		return UTF8_OK;
	}
	if (b >= 0xc2 && b <= 0xdf) {
		need = 1;
	} else if (b >= 0xe0 && b <= 0xef) {
		need = 2;
		if (b == 0xe0)
			lo = 0xa0;       /* overlong */
		else if (b == 0xed)
			hi = 0x9f;       /* surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 3;
		if (b == 0xf0)
			lo = 0x90;       /* overlong */
		else if (b == 0xf4)
			hi = 0x8f;       /* over U+10FFFF */
	} else {
		*used = 1;
		return UTF8_BAD;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= len) {
			*used = i;
			return UTF8_SHORT;
		}
		if (p[i] < lo || p[i] > hi) {
			*used = i;
			return UTF8_BAD;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	*used = need + 1;
	return UTF8_OK;
}

/* Checks len bytes for well-formed UTF-8. 1 or 0; when !final, a valid
 * start cut off at the end is not judged and *consumed stops before it. */
static int utf8_valid(const unsigned char *p, size_t len, int final, size_t *consumed)
{
	size_t i = 0, used;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		switch (utf8_next(p + i, len - i, &used)) {
		case UTF8_OK:
			i += used;
			break;
		case UTF8_SHORT:
			if (!final) {
				*consumed = i;
				return 1;
			}
			return 0;
		case UTF8_BAD:
			return 0;
		}
	}
	*consumed = len;
	return 1;
}

static int json_escape_byte(struct out *o, unsigned char c)
{
	char esc[8];

	switch (c) {
	case '"': return out_put(o, "\\\"", 2);
	case '\\': return out_put(o, "\\\\", 2);
	case '\b': return out_put(o, "\\b", 2);
	case '\f': return out_put(o, "\\f", 2);
	case '\n': return out_put(o, "\\n", 2);
	case '\r': return out_put(o, "\\r", 2);
	case '\t': return out_put(o, "\\t", 2);
	default:
		snprintf(esc, sizeof(esc), "\\u%04x", c);
		return out_put(o, esc, 6);
	}
}

/* Writes p as the inside of a JSON string. When !final, a valid UTF-8
 * start cut off at the end is left for the next call and *consumed says
 * how far this call got. 0 or -1. */
static int json_escape(struct out *o, const unsigned char *p, size_t len, int final,
		       size_t *consumed)
{
	size_t i = 0, start = 0, used;

	while (i < len) {
		unsigned char c = p[i];

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c < 0x80) {
			out_put(o, p + start, i - start);
			json_escape_byte(o, c);
			start = ++i;
			continue;
		}
		switch (utf8_next(p + i, len - i, &used)) {
		case UTF8_OK:
			/* U+2028/U+2029 end a line in JavaScript */
			if (used == 3 && c == 0xe2 && p[i + 1] == 0x80 &&
			    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
				out_put(o, p + start, i - start);
				out_str(o, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
				start = i + 3;
			}
			i += used;
			break;
		case UTF8_SHORT:
			if (!final) {
				*consumed = i;
				return out_put(o, p + start, i - start);
			}
			/* cut off at the very end: ill-formed */
			__attribute__((fallthrough));
		case UTF8_BAD:
			out_put(o, p + start, i - start);
			out_put(o, "\xef\xbf\xbd", 3);
			i += used;
			start = i;
			break;
		}
	}
	*consumed = len;
	return out_put(o, p + start, i - start);
}

static int json_string(struct out *o, const char *s)
{
	size_t consumed;

	if (s == NULL)
		return out_put(o, "null", 4);
	out_put(o, "\"", 1);
	json_escape(o, (const unsigned char *)s, strlen(s), 1, &consumed);
	return out_put(o, "\"", 1);
}

int reply_json_string_body(struct reply_sink *sink, const void *buf, size_t len)
{
	struct out o;
	size_t consumed;

	if (sink == NULL || sink->write == NULL || (buf == NULL && len > 0))
		return -1;
	out_init(&o, sink);
	json_escape(&o, buf, len, 1, &consumed);
	return out_flush(&o);
}

/* ---- reading captured output and generated files ---- */

/* pread until len bytes or the end of the file: the count, or -1. */
static ssize_t pread_full(int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Captured stdout or stderr, whole, raw (json == 0) or JSON-escaped. */
static int stream_output(struct out *o, int fd, const char *what, int json,
			 unsigned char *chunk)
{
	off_t off = 0;

	if (fd < 0)
		return 0;
	for (;;) {
		ssize_t n = pread_full(fd, chunk, REPLY_CHUNK, off);
		size_t used = (size_t)n;

		if (n < 0) {
			log_msg(LOG_LEVEL_ERROR, "reply: cannot read the captured %s: %s",
				what, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		/* a short read is the end of the file: nothing is left to wait for */
		if (json ? json_escape(o, chunk, used, n < REPLY_CHUNK, &used) < 0
			 : out_put(o, chunk, used) < 0)
			return -1;
		if (n < REPLY_CHUNK)
			return 0;
		off += (off_t)used;
	}
}

/* One generated file, opened, checked and typed. */
struct reply_file {
	const char *name;
	int fd;
	uint64_t size;
	char type_buf[REPLY_TYPE_MAX + 1];
	const char *type;
};

static int file_open(const struct reply_execution *e, const char *name, struct reply_file *f)
{
	struct stat st;
	const char *t = NULL;

	f->name = name;
	f->fd = e->open_file(e->open_ctx, name);
	if (f->fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "reply: cannot open the generated file %s: %s",
			name, strerror(errno));
		return -1;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_msg(LOG_LEVEL_ERROR, "reply: the generated file %s is not a regular file",
			name);
		close(f->fd);
		f->fd = -1;
		return -1;
	}
	f->size = (uint64_t)st.st_size;
	f->type_buf[0] = '\0';
	f->type_buf[REPLY_TYPE_MAX] = '\0';
	if (e->typer != NULL)
		t = e->typer(e->typer_ctx, f->fd, f->type_buf);
	if (t == NULL || t[0] == '\0' || strnlen(t, REPLY_TYPE_MAX + 1) > REPLY_TYPE_MAX ||
	    !header_value_ok(t) || strchr(t, '"') != NULL)
		t = REPLY_FALLBACK_TYPE;
	f->type = t;
	return 0;
}

static void file_close(struct reply_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* How the file's bytes are written, one read at a time. */
enum file_pass { PASS_RAW, PASS_CHECK_UTF8, PASS_JSON, PASS_BASE64 };

static int base64_put(struct out *o, const unsigned char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char enc[1024];
	size_t k = 0;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (unsigned)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		enc[k++] = tab[(v >> 18) & 63];
		enc[k++] = tab[(v >> 12) & 63];
		enc[k++] = left > 1 ? tab[(v >> 6) & 63] : '=';
		enc[k++] = left > 2 ? tab[v & 63] : '=';
		if (k > sizeof(enc) - 4) {
			if (out_put(o, enc, k) < 0)
				return -1;
			k = 0;
		}
	}
	return out_put(o, enc, k);
}

/* Reads exactly f->size bytes from offset 0, in REPLY_CHUNK pieces. For
 * PASS_CHECK_UTF8, *valid says whether they are well-formed UTF-8. A file
 * shorter than its size is an error: a part of the wrong length is never
 * sent. 0 or -1. */
static int file_pass(struct out *o, struct reply_file *f, enum file_pass pass,
		     unsigned char *chunk, int *valid)
{
	uint64_t off = 0;
	size_t piece = pass == PASS_BASE64 ? REPLY_B64_IN : REPLY_CHUNK;

	if (valid != NULL)
		*valid = 1;
	while (off < f->size) {
		size_t want = f->size - off < piece ? (size_t)(f->size - off) : piece;
		ssize_t n = pread_full(f->fd, chunk, want, (off_t)off);
		size_t used = want;
		int final;

		if (n < 0) {
			log_msg(LOG_LEVEL_ERROR, "reply: cannot read the generated file %s: %s",
				f->name, strerror(errno));
			return -1;
		}
		if ((size_t)n < want) {
			log_msg(LOG_LEVEL_ERROR, "reply: the generated file %s shrank below "
				"%llu bytes while being sent", f->name,
				(unsigned long long)f->size);
			return -1;
		}
		final = off + want == f->size;
		switch (pass) {
		case PASS_RAW:
			if (out_put(o, chunk, want) < 0)
				return -1;
			break;
		case PASS_CHECK_UTF8:
			if (!utf8_valid(chunk, want, final, &used)) {
				*valid = 0;
				return 0;
			}
			break;
		case PASS_JSON:
			if (json_escape(o, chunk, want, final, &used) < 0)
				return -1;
			break;
		case PASS_BASE64:
			if (base64_put(o, chunk, want) < 0)
				return -1;
			break;
		}
		off += used;
	}
	return 0;
}

/* ---- the execution reply ---- */

static void format_seconds(char *buf, size_t len, int64_t ns)
{
	int64_t ms;

	if (ns < 0)
		ns = 0;
	ms = ns / 1000000 + (ns % 1000000 >= 500000);
	snprintf(buf, len, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* "SIGKILL"; run_signal_name() lives in run.c, which this module does not
 * link, so the name comes from libc here. */
static const char *signal_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev != NULL)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "SIG%d", sig);
	return buf;
}

/* Writes "stdout,stderr,files" (sep ",") or "\"stdout\",..." (JSON). */
static int truncated_list(const struct reply_execution *e, char *buf, size_t len, int json)
{
	const char *names[3];
	size_t n = 0, k = 0;

	if (e->run != NULL && e->run->stdout_truncated)
		names[n++] = "stdout";
	if (e->run != NULL && e->run->stderr_truncated)
		names[n++] = "stderr";
	if (e->files != NULL && e->files->truncated)
		names[n++] = "files";
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + k, len - k, json ? "%s\"%s\"" : "%s%s",
				 i > 0 ? "," : "", names[i]);
		if (w > 0)
			k += (size_t)w;
	}
	return (int)n;
}

/* Content-Disposition names: '"' is %22, and backslash, CR, LF and any
 * other control byte %XX, as HTML forms do, so no name can end the quoted
 * string or the header. */
static int out_disposition_name(struct out *o, const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t start = 0, i;
	char esc[4];

	for (i = 0; p[i] != '\0'; i++) {
		if (p[i] >= 0x20 && p[i] != 0x7f && p[i] != '"' && p[i] != '\\')
			continue;
		out_put(o, p + start, i - start);
		snprintf(esc, sizeof(esc), "%%%02X", p[i]);
		out_put(o, esc, 3);
		start = i + 1;
	}
	return out_put(o, p + start, i - start);
}

static int write_headers(struct out *o, const struct reply_execution *e,
			 const char *boundary)
{
	char buf[64];

	if (e->json)
		out_header(o, "Content-Type", "application/json");
	else
		out_printf(o, "Content-Type: multipart/form-data; boundary=%s\r\n", boundary);
	out_header(o, "X-Execution-Status", e->exec_status);
	if (e->run != NULL) {
		if (e->run->signal != 0)
			out_header(o, "X-Signal", signal_name(e->run->signal, buf, sizeof(buf)));
		else
			out_printf(o, "X-Exit-Code: %d\r\n", e->run->exit_code);
		format_seconds(buf, sizeof(buf), e->run->wall_ns);
		out_header(o, "X-Execution-Time", buf);
		format_seconds(buf, sizeof(buf), e->run->cpu_ns);
		out_header(o, "X-CPU-Time", buf);
		out_printf(o, "X-Max-RSS: %ld\r\n", e->run->max_rss_kib);
	}
	if (truncated_list(e, buf, sizeof(buf), 0) > 0)
		out_header(o, "X-Truncated", buf);
	if (e->dependencies != NULL)
		out_header(o, "X-Dependencies", e->dependencies);
	if (e->request_id != NULL)
		out_header(o, "X-Request-Id", e->request_id);
	out_header(o, "Cache-Control", "no-store");
	return out_end_headers(o);
}

static int write_multipart(struct out *o, const struct reply_execution *e,
			   const char *boundary, unsigned char *chunk)
{
	static const char *const outputs[] = { "stdout", "stderr" };
	const int fds[] = { e->stdout_fd, e->stderr_fd };
	size_t nfiles = e->files != NULL ? e->files->n : 0;

	for (size_t i = 0; i < 2; i++) {
		out_printf(o, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n",
			   boundary, outputs[i]);
		if (stream_output(o, fds[i], outputs[i], 0, chunk) < 0)
			return -1;
		if (out_put(o, "\r\n", 2) < 0)
			return -1;
	}
	for (size_t i = 0; i < nfiles; i++) {
		struct reply_file f;
		int rc;

		if (file_open(e, e->files->files[i].name, &f) < 0)
			return -1;
		out_printf(o, "--%s\r\nContent-Disposition: form-data; name=\"", boundary);
		out_disposition_name(o, f.name);
		out_str(o, "\"; filename=\"");
		out_disposition_name(o, f.name);
		out_str(o, "\"\r\n");
		out_header(o, "Content-Type", f.type);
		out_put(o, "\r\n", 2);
		rc = file_pass(o, &f, PASS_RAW, chunk, NULL);
		file_close(&f);
		if (rc < 0 || out_put(o, "\r\n", 2) < 0)
			return -1;
	}
	out_printf(o, "--%s--\r\n", boundary);
	return out_flush(o);
}

static int write_json_file(struct out *o, const struct reply_execution *e, const char *name,
			   unsigned char *chunk)
{
	struct reply_file f;
	int utf8 = 0;

	if (file_open(e, name, &f) < 0)
		return -1;
	out_str(o, "{\"name\":");
	json_string(o, f.name);
	out_str(o, ",\"content_type\":");
	json_string(o, f.type);
	out_printf(o, ",\"size\":%llu,\"encoding\":", (unsigned long long)f.size);
	/* a file is read twice at most: once to learn whether it is text */
	if (file_pass(o, &f, PASS_CHECK_UTF8, chunk, &utf8) < 0)
		goto fail;
	out_str(o, utf8 ? "\"utf-8\",\"content\":\"" : "\"base64\",\"content\":\"");
	if (file_pass(o, &f, utf8 ? PASS_JSON : PASS_BASE64, chunk, NULL) < 0)
		goto fail;
	file_close(&f);
	return out_str(o, "\"}");
fail:
	file_close(&f);
	return -1;
}

static int write_json(struct out *o, const struct reply_execution *e, unsigned char *chunk)
{
	const struct run_result *r = e->run;
	char buf[64];
	size_t nfiles = e->files != NULL ? e->files->n : 0;

	out_str(o, "{\"status\":");
	json_string(o, e->exec_status);
	if (r == NULL)
		out_str(o, ",\"exit_code\":null,\"signal\":null");
	else if (r->signal != 0)
		out_printf(o, ",\"exit_code\":null,\"signal\":\"%s\"",
			   signal_name(r->signal, buf, sizeof(buf)));
	else
		out_printf(o, ",\"exit_code\":%d,\"signal\":null", r->exit_code);
	out_str(o, ",\"stdout\":\"");
	if (stream_output(o, e->stdout_fd, "stdout", 1, chunk) < 0)
		return -1;
	out_str(o, "\",\"stderr\":\"");
	if (stream_output(o, e->stderr_fd, "stderr", 1, chunk) < 0)
		return -1;
	out_put(o, "\"", 1);
	if (r != NULL) {
		out_str(o, ",\"time\":{\"wall\":");
		format_seconds(buf, sizeof(buf), r->wall_ns);
		out_str(o, buf);
		out_str(o, ",\"cpu\":");
		format_seconds(buf, sizeof(buf), r->cpu_ns);
		out_str(o, buf);
		out_printf(o, "},\"max_rss_kib\":%ld", r->max_rss_kib);
	} else {
		out_str(o, ",\"time\":null,\"max_rss_kib\":null");
	}
	truncated_list(e, buf, sizeof(buf), 1);
	out_printf(o, ",\"truncated\":[%s],\"dependencies\":", buf);
	json_string(o, e->dependencies);
	out_str(o, ",\"files\":[");
	for (size_t i = 0; i < nfiles; i++) {
		if (i > 0)
			out_put(o, ",", 1);
		if (write_json_file(o, e, e->files->files[i].name, chunk) < 0)
			return -1;
	}
	out_str(o, "]}");
	return out_flush(o);
}

int reply_write_execution(struct reply_sink *sink, const struct reply_execution *e)
{
	struct out o;
	/* the one buffer every file and output passes through */
	unsigned char chunk[REPLY_CHUNK];
	/* made after the run ended, so the program could not have written it */
	char boundary[2 * REPLY_BOUNDARY_BYTES + 1];

	if (e == NULL || e->exec_status == NULL) {
		log_msg(LOG_LEVEL_ERROR, "reply: an execution reply without a status");
		return -1;
	}
	if (e->files != NULL && e->files->n > 0 && e->open_file == NULL) {
		log_msg(LOG_LEVEL_ERROR, "reply: generated files but no way to open them");
		return -1;
	}
	if (util_random_hex(boundary, REPLY_BOUNDARY_BYTES) < 0) {
		log_msg(LOG_LEVEL_ERROR, "reply: getrandom: %s", strerror(errno));
		return -1;
	}
	if (out_begin(&o, sink, e->status) < 0 || write_headers(&o, e, boundary) < 0)
		return -1;
	if (e->json)
		return write_json(&o, e, chunk);
	return write_multipart(&o, e, boundary, chunk);
}

int reply_write_error(struct reply_sink *sink, int status, const char *error,
		      const char *detail, const char *request_id,
		      const char *extra_headers)
{
	struct out o;

	if (out_begin(&o, sink, status) < 0)
		return -1;
	out_header(&o, "Content-Type", "application/json");
	if (request_id != NULL)
		out_header(&o, "X-Request-Id", request_id);
	out_header(&o, "Cache-Control", "no-store");
	if (extra_headers != NULL)
		out_str(&o, extra_headers);
	if (out_end_headers(&o) < 0)
		return -1;
	out_str(&o, "{\"detail\": ");
	json_string(&o, detail != NULL ? detail : reply_status_text(status));
	out_str(&o, ", \"error\": ");
	json_string(&o, error != NULL ? error : "error");
	out_put(&o, "}", 1);
	return out_flush(&o);
}

int reply_write_simple(struct reply_sink *sink, int status, const char *content_type,
		       const char *body, size_t len, const char *request_id)
{
	struct out o;

	if (out_begin(&o, sink, status) < 0)
		return -1;
	out_header(&o, "Content-Type", content_type != NULL ? content_type : REPLY_FALLBACK_TYPE);
	out_printf(&o, "Content-Length: %zu\r\n", len);
	if (request_id != NULL)
		out_header(&o, "X-Request-Id", request_id);
	out_header(&o, "Cache-Control", "no-store");
	if (out_end_headers(&o) < 0)
		return -1;
	if (len > 0)
		out_put(&o, body, len);
	return out_flush(&o);
}
