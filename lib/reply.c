#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "reply.h"
#include "utf8.h"
#include "util.h"

#define REPLY_OUT_BUF 8192           /* small writes are gathered up to this */
#define REPLY_LINE_MAX 512           /* one formatted header line or JSON field */
#define REPLY_TYPE_MAX 128           /* what a reply_typer may write */
#define REPLY_B64_IN (REPLY_CHUNK / 3 * 3) /* whole 3-byte groups per read */
#define REPLY_FALLBACK_TYPE "application/octet-stream"

/* Gathers small pieces (headers, JSON punctuation, escapes) into one sink
 * write; large pieces go straight through. Failure is sticky. Without a
 * sink it only counts: the reply is planned by writing it that way first. */
struct out {
	struct reply_sink *sink;     /* NULL: count only */
	uint64_t counted;            /* bytes put, when counting */
	int64_t deadline_ns;         /* 0 = none */
	int send_fd;                 /* its SO_SNDTIMEO follows the deadline; -1 */
	size_t n;
	int failed;
	char buf[REPLY_OUT_BUF];
};

/* Before a write that may block: the socket's send timeout set to what is
 * left of the reply's time, so a web server that stops reading cannot hold
 * the worker past the deadline. */
static int out_arm(struct out *o)
{
	int64_t left;
	struct timeval tv;

	if (o->deadline_ns == 0)
		return 0;
	left = o->deadline_ns - util_now_ns();
	if (left <= 0) {
		log_msg(LOG_LEVEL_WARN, "reply: the reply's time ran out; cutting it short");
		return -1;
	}
	if (o->send_fd >= 0) {
		tv.tv_sec = (time_t)(left / 1000000000);
		tv.tv_usec = (suseconds_t)(left % 1000000000 / 1000);
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1;      /* 0 would mean "never time out" */
		/* not a socket (a pipe, a file): nothing to arm */
		(void)setsockopt(o->send_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return 0;
}

static int sink_write(struct out *o, const void *buf, size_t len)
{
	struct reply_sink *sink = o->sink;

	if (sink == NULL) {
		o->counted += len;
		return 0;
	}
	if (out_arm(o) < 0 || sink->write(sink->ctx, buf, len) < 0)
		return -1;
	if (sink->in_body)
		sink->body_bytes += len;
	return 0;
}

static void out_init(struct out *o, struct reply_sink *sink)
{
	o->sink = sink;
	o->counted = 0;
	o->deadline_ns = 0;
	o->send_fd = -1;
	o->n = 0;
	o->failed = 0;
}

static int out_flush(struct out *o)
{
	if (o->failed)
		return -1;
	if (o->n > 0 && sink_write(o, o->buf, o->n) < 0) {
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
			if (sink_write(o, p, len) < 0) {
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

/* Bytes put so far, when counting (flushes first). */
static uint64_t out_counted(struct out *o)
{
	out_flush(o);
	return o->counted;
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
 * then type/ *, then * / *), in thousandths; -1 when none matches. *how
 * (when not NULL) says which matched: 2 exact, 1 type/ *, 0 * / *, -1 none. */
static int accept_q_how(const char *accept, const char *type, const char *subtype, int *how)
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
	if (how != NULL)
		*how = best_spec;
	return best;
}

static int accept_q(const char *accept, const char *type, const char *subtype)
{
	return accept_q_how(accept, type, subtype, NULL);
}

int reply_wants_events(const char *accept)
{
	int how, events;

	if (accept == NULL)
		return 0;
	events = accept_q_how(accept, "text", "event-stream", &how);
	return how == 2 && events > 0 && events >= accept_q(accept, "application", "json") &&
	       events >= accept_q(accept, "multipart", "form-data");
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

/* Checks len bytes for well-formed UTF-8, and when printable also for
 * control characters: C0 but tab, LF and CR, DEL, and C1 (U+0080..U+009F),
 * which JSON would write six bytes each. 1 or 0; when !final, a valid
 * start cut off at the end is not judged and *consumed stops before it. */
static int utf8_check(const unsigned char *p, size_t len, int final, int printable,
		      size_t *consumed)
{
	size_t i = 0, used;

	while (i < len) {
		unsigned char c = p[i];

		if (c < 0x80) {
			if (printable && ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
					  c == 0x7f))
				return 0;
			i++;
			continue;
		}
		switch (utf8_next(p + i, len - i, &used)) {
		case UTF8_OK:
			if (printable && c == 0xc2 && p[i + 1] < 0xa0)
				return 0;
			i += used;
			break;
		case UTF8_SHORT:
			if (!final) {
				*consumed = i;
				return 1;
			}
			return 0;
		default:
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
		default:
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

/* How a piece's bytes go into the body. */
enum piece_enc { ENC_RAW, ENC_TEXT, ENC_BASE64 };

/* stdout, stderr or one generated file, as planned before the headers. */
struct piece {
	const char *name;            /* the generated file's name; NULL for an output */
	const char *what;            /* for the log: "stdout", "stderr" or the name */
	int fd;                      /* open while read, else -1 */
	uint64_t size;               /* bytes sent: fstat's size when planned */
	enum piece_enc enc;
	uint64_t encoded;            /* bytes its content takes in the body */
	int sent;                    /* 0: left out for max_reply */
	char type[REPLY_TYPE_MAX + 1];
};

struct plan {
	struct piece out[2];         /* stdout, stderr */
	struct piece *files;         /* one per name of e->files, owned */
	size_t nfiles;
	int cut;                     /* a file was left out for max_reply */
	const char *boundary;
	unsigned char *chunk;        /* the one buffer every read goes through */
};

/* Opens a generated file. The first time its size is taken; afterwards it
 * must be the same, so that the part has the length that was planned. */
static int piece_open(const struct reply_execution *e, struct piece *f, int planned)
{
	struct stat st;

	f->fd = e->open_file(e->open_ctx, f->name);
	if (f->fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "reply: cannot open the generated file %s: %s",
			f->name, strerror(errno));
		return -1;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_msg(LOG_LEVEL_ERROR, "reply: the generated file %s is not a regular file",
			f->name);
		goto fail;
	}
	if (!planned)
		f->size = (uint64_t)st.st_size;
	else if ((uint64_t)st.st_size != f->size) {
		log_msg(LOG_LEVEL_ERROR, "reply: the generated file %s changed size while "
			"being sent", f->name);
		goto fail;
	}
	return 0;
fail:
	close(f->fd);
	f->fd = -1;
	return -1;
}

static void piece_close(struct piece *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* Content type of a file just opened: the typer's, or the fallback. */
static void piece_type(const struct reply_execution *e, struct piece *f)
{
	char buf[REPLY_TYPE_MAX + 1];
	const char *t = NULL;

	buf[0] = '\0';
	buf[REPLY_TYPE_MAX] = '\0';
	if (e->typer != NULL)
		t = e->typer(e->typer_ctx, f->fd, buf);
	if (t == NULL || t[0] == '\0' || strnlen(t, REPLY_TYPE_MAX + 1) > REPLY_TYPE_MAX ||
	    !header_value_ok(t) || strchr(t, '"') != NULL)
		t = REPLY_FALLBACK_TYPE;
	snprintf(f->type, sizeof(f->type), "%s", t);
}

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

/* How a piece's bytes are read: to plan (is it printable text, and how
 * long is it as a JSON string), or to send in one of the encodings. */
enum piece_pass { PASS_SCAN, PASS_RAW, PASS_JSON, PASS_BASE64 };

static int out_late(const struct out *o)
{
	return o->deadline_ns != 0 && util_now_ns() >= o->deadline_ns;
}

/* Reads exactly f->size bytes of f->fd from offset 0, in REPLY_CHUNK
 * pieces. PASS_SCAN writes the JSON string into a counting o and says in
 * *text whether the bytes are printable UTF-8 (it stops at the first that
 * is not). A file shorter than its size is an error: a part of the wrong
 * length is never sent. 0 or -1. */
static int piece_pass(struct out *o, struct piece *f, enum piece_pass pass,
		      unsigned char *chunk, int *text)
{
	uint64_t off = 0;
	size_t piece = pass == PASS_BASE64 ? REPLY_B64_IN : REPLY_CHUNK;

	if (text != NULL)
		*text = 1;
	while (off < f->size) {
		size_t want = f->size - off < piece ? (size_t)(f->size - off) : piece;
		ssize_t n = pread_full(f->fd, chunk, want, (off_t)off);
		size_t used = want;
		int final;

		if (n < 0) {
			log_msg(LOG_LEVEL_ERROR, "reply: cannot read %s: %s", f->what,
				strerror(errno));
			return -1;
		}
		if ((size_t)n < want) {
			log_msg(LOG_LEVEL_ERROR, "reply: %s shrank below %llu bytes while being "
				"sent", f->what, (unsigned long long)f->size);
			return -1;
		}
		if (out_late(o)) {
			log_msg(LOG_LEVEL_WARN, "reply: the reply's time ran out in %s", f->what);
			return -1;
		}
		final = off + want == f->size;
		switch (pass) {
		case PASS_SCAN:
			if (!utf8_check(chunk, want, final, 1, &used)) {
				*text = 0;
				return 0;
			}
			if (json_escape(o, chunk, used, 1, &used) < 0)
				return -1;
			break;
		case PASS_RAW:
			if (out_put(o, chunk, want) < 0)
				return -1;
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

/* Chooses how f goes into the body and how many bytes that takes: raw in
 * multipart; in JSON, text when printable UTF-8, else base64. */
static int piece_plan_encoding(const struct out *o, struct piece *f, int json,
			       unsigned char *chunk)
{
	struct out count;
	int text;

	if (!json) {
		f->enc = ENC_RAW;
		f->encoded = f->size;
		return 0;
	}
	out_init(&count, NULL);
	count.deadline_ns = o->deadline_ns;
	if (f->size > 0 && piece_pass(&count, f, PASS_SCAN, chunk, &text) < 0)
		return -1;
	if (f->size == 0 || text) {
		f->enc = ENC_TEXT;
		f->encoded = out_counted(&count);
	} else {
		f->enc = ENC_BASE64;
		f->encoded = (f->size + 2) / 3 * 4;
	}
	return 0;
}

/* The content of a piece in its planned encoding; counting, its planned
 * length without reading it. */
static int put_content(struct out *o, const struct reply_execution *e, struct piece *f,
		       unsigned char *chunk)
{
	static const enum piece_pass pass[] = {
		[ENC_RAW] = PASS_RAW, [ENC_TEXT] = PASS_JSON, [ENC_BASE64] = PASS_BASE64,
	};
	int rc;

	if (o->sink == NULL) {
		o->counted += f->encoded;
		return o->failed ? -1 : 0;
	}
	if (f->size == 0)
		return 0;
	if (f->name != NULL && piece_open(e, f, 1) < 0)
		return -1;
	rc = piece_pass(o, f, pass[f->enc], chunk, NULL);
	if (f->name != NULL)
		piece_close(f);
	return rc;
}

/* ---- the execution reply ---- */

/* A run's time in ns as seconds, to the nearest millisecond. */
static void format_seconds(char *buf, size_t len, int64_t ns)
{
	int64_t ms;

	if (ns < 0)
		ns = 0;
	ms = ns / 1000000 + (ns % 1000000 >= 500000);
	util_format_seconds_fixed(buf, len, (uint64_t)ms);
}

/* Writes "stdout,stderr,files,reply" (sep ",") or "\"stdout\",..." (JSON). */
static int truncated_list(const struct reply_execution *e, const struct plan *pl,
			  char *buf, size_t len, int json)
{
	const char *names[4];
	size_t n = 0, k = 0;

	if (e->run != NULL && e->run->stdout_truncated)
		names[n++] = "stdout";
	if (e->run != NULL && e->run->stderr_truncated)
		names[n++] = "stderr";
	if ((e->files != NULL && e->files->truncated) || pl->cut)
		names[n++] = "files";
	if (pl->cut)
		names[n++] = "reply";
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + k, len - k, json ? "%s\"%s\"" : "%s%s",
				 i > 0 ? "," : "", names[i]);
		if (w > 0)
			k += (size_t)w;
	}
	return (int)n;
}

/* Content-Disposition names: '%', '"', and backslash, CR, LF and any other
 * control byte %XX, as HTML forms do, so no name can end the quoted string
 * or the header, and no two names are written alike; bytes that are not
 * UTF-8 are %XX too, so the header is UTF-8 and the name comes back whole.
 * In a part's name a file called "stdout" or "stderr" is "%73tdout",
 * "%73tderr": the same name once decoded, never the name of an output's
 * part. */
static int out_disposition_name(struct out *o, const char *name, int part_name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t start = 0, i = 0, len, used;
	char esc[4];

	if (part_name && (strcmp(name, "stdout") == 0 || strcmp(name, "stderr") == 0)) {
		out_put(o, "%73", 3);
		p++;
	}
	len = strlen((const char *)p);
	while (i < len) {
		size_t bad = 0;

		if (p[i] >= 0x80)
			bad = utf8_next(p + i, len - i, &used) == UTF8_OK ? 0 : used;
		else if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '"' || p[i] == '\\' || p[i] == '%')
			bad = used = 1;
		else
			used = 1;
		if (bad > 0) {
			out_put(o, p + start, i - start);
			for (size_t k = 0; k < bad; k++) {
				snprintf(esc, sizeof(esc), "%%%02X", p[i + k]);
				out_put(o, esc, 3);
			}
			start = i + bad;
		}
		i += used;
	}
	return out_put(o, p + start, i - start);
}

static int write_headers(struct out *o, const struct reply_execution *e,
			 const struct plan *pl)
{
	char buf[64];

	if (e->json)
		out_header(o, "Content-Type", "application/json");
	else
		out_printf(o, "Content-Type: multipart/form-data; boundary=%s\r\n", pl->boundary);
	out_header(o, "X-Execution-Status", e->exec_status);
	if (e->run != NULL) {
		if (e->run->signal != 0)
			out_header(o, "X-Signal", util_signal_name(e->run->signal, buf, sizeof(buf)));
		else
			out_printf(o, "X-Exit-Code: %d\r\n", e->run->exit_code);
		format_seconds(buf, sizeof(buf), e->run->wall_ns);
		out_header(o, "X-Execution-Time", buf);
		format_seconds(buf, sizeof(buf), e->run->cpu_ns);
		out_header(o, "X-CPU-Time", buf);
		out_printf(o, "X-Max-RSS: %ld\r\n", e->run->max_rss_kib);
		if (e->start != NULL)
			out_header(o, "X-Execution-Start", e->start);
	}
	if (truncated_list(e, pl, buf, sizeof(buf), 0) > 0)
		out_header(o, "X-Truncated", buf);
	if (e->dependencies != NULL)
		out_header(o, "X-Dependencies", e->dependencies);
	if (e->request_id != NULL)
		out_header(o, "X-Request-Id", e->request_id);
	out_header(o, "Cache-Control", "no-store");
	return out_end_headers(o);
}

static int write_file_part(struct out *o, const struct reply_execution *e,
			   struct plan *pl, struct piece *f)
{
	out_printf(o, "--%s\r\nContent-Disposition: form-data; name=\"", pl->boundary);
	out_disposition_name(o, f->name, 1);
	out_str(o, "\"; filename=\"");
	out_disposition_name(o, f->name, 0);
	out_str(o, "\"\r\n");
	out_header(o, "Content-Type", f->type);
	out_put(o, "\r\n", 2);
	if (put_content(o, e, f, pl->chunk) < 0)
		return -1;
	return out_put(o, "\r\n", 2);
}

static int write_multipart(struct out *o, const struct reply_execution *e, struct plan *pl)
{
	for (size_t i = 0; i < 2; i++) {
		out_printf(o, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n",
			   pl->boundary, pl->out[i].what);
		if (put_content(o, e, &pl->out[i], pl->chunk) < 0 || out_put(o, "\r\n", 2) < 0)
			return -1;
	}
	for (size_t i = 0; i < pl->nfiles; i++)
		if (pl->files[i].sent && write_file_part(o, e, pl, &pl->files[i]) < 0)
			return -1;
	out_printf(o, "--%s--\r\n", pl->boundary);
	return out_flush(o);
}

static const char *encoding_name(enum piece_enc enc)
{
	return enc == ENC_BASE64 ? "base64" : "utf-8";
}

/* A file's JSON object (after a comma unless first); a name that is not
 * UTF-8 (shown with U+FFFD in "name") is also given whole as "name_b64". */
static int write_json_file(struct out *o, const struct reply_execution *e,
			   struct plan *pl, struct piece *f, int first)
{
	size_t len = strlen(f->name), consumed;

	if (!first)
		out_put(o, ",", 1);
	out_str(o, "{\"name\":");
	json_string(o, f->name);
	if (!utf8_check((const unsigned char *)f->name, len, 1, 0, &consumed)) {
		out_str(o, ",\"name_b64\":\"");
		base64_put(o, (const unsigned char *)f->name, len);
		out_put(o, "\"", 1);
	}
	out_str(o, ",\"content_type\":");
	json_string(o, f->type);
	out_printf(o, ",\"size\":%llu,\"encoding\":\"%s\",\"content\":\"",
		   (unsigned long long)f->size, encoding_name(f->enc));
	if (put_content(o, e, f, pl->chunk) < 0)
		return -1;
	return out_str(o, "\"}");
}

static int write_json(struct out *o, const struct reply_execution *e, struct plan *pl)
{
	const struct run_result *r = e->run;
	char buf[64];
	int first = 1;

	out_str(o, "{\"status\":");
	json_string(o, e->exec_status);
	if (r == NULL)
		out_str(o, ",\"exit_code\":null,\"signal\":null");
	else if (r->signal != 0)
		out_printf(o, ",\"exit_code\":null,\"signal\":\"%s\"",
			   util_signal_name(r->signal, buf, sizeof(buf)));
	else
		out_printf(o, ",\"exit_code\":%d,\"signal\":null", r->exit_code);
	for (size_t i = 0; i < 2; i++) {
		out_printf(o, ",\"%s\":\"", pl->out[i].what);
		if (put_content(o, e, &pl->out[i], pl->chunk) < 0)
			return -1;
		out_printf(o, "\",\"%s_encoding\":\"%s\"", pl->out[i].what,
			   encoding_name(pl->out[i].enc));
	}
	if (r != NULL) {
		out_str(o, ",\"time\":{\"wall\":");
		format_seconds(buf, sizeof(buf), r->wall_ns);
		out_str(o, buf);
		out_str(o, ",\"cpu\":");
		format_seconds(buf, sizeof(buf), r->cpu_ns);
		out_str(o, buf);
		out_printf(o, "},\"max_rss_kib\":%ld,\"start\":", r->max_rss_kib);
		json_string(o, e->start != NULL ? e->start : "cold");
	} else {
		out_str(o, ",\"time\":null,\"max_rss_kib\":null,\"start\":null");
	}
	truncated_list(e, pl, buf, sizeof(buf), 1);
	out_printf(o, ",\"truncated\":[%s],\"dependencies\":", buf);
	json_string(o, e->dependencies);
	out_str(o, ",\"files\":[");
	for (size_t i = 0; i < pl->nfiles; i++) {
		if (!pl->files[i].sent)
			continue;
		if (write_json_file(o, e, pl, &pl->files[i], first) < 0)
			return -1;
		first = 0;
	}
	out_str(o, "]}");
	return out_flush(o);
}

static int write_body(struct out *o, const struct reply_execution *e, struct plan *pl)
{
	return e->json ? write_json(o, e, pl) : write_multipart(o, e, pl);
}

/* Keeps the body within e->max_reply: counts it without the files (with
 * the longest truncated list), then takes each file in name order when
 * its part still fits. */
static int plan_budget(const struct reply_execution *e, struct plan *pl)
{
	struct out count;
	uint64_t used;

	for (size_t i = 0; i < pl->nfiles; i++)
		pl->files[i].sent = e->max_reply == 0;
	if (e->max_reply == 0)
		return 0;
	pl->cut = 1;
	out_init(&count, NULL);
	if (write_body(&count, e, pl) < 0)
		return -1;
	used = out_counted(&count);
	if (used > e->max_reply)
		log_msg(LOG_LEVEL_WARN, "reply: stdout and stderr alone take %llu bytes, over "
			"max_reply (%llu)", (unsigned long long)used,
			(unsigned long long)e->max_reply);
	pl->cut = 0;
	for (size_t i = 0; i < pl->nfiles; i++) {
		struct piece *f = &pl->files[i];
		uint64_t cost;

		out_init(&count, NULL);
		if ((e->json ? write_json_file(&count, e, pl, f, 0)
			     : write_file_part(&count, e, pl, f)) < 0)
			return -1;
		cost = out_counted(&count);
		if (used <= e->max_reply && cost <= e->max_reply - used) {
			f->sent = 1;
			used += cost;
		} else {
			pl->cut = 1;
		}
	}
	return 0;
}

/* Everything about the body that the headers depend on, before they are
 * written: each piece's size, type and encoding, and which files fit. */
static int plan_make(const struct out *o, const struct reply_execution *e, struct plan *pl)
{
	const int fds[2] = { e->stdout_fd, e->stderr_fd };
	static const char *const outputs[2] = { "stdout", "stderr" };
	size_t n = e->files != NULL ? e->files->n : 0;

	for (size_t i = 0; i < 2; i++) {
		struct piece *f = &pl->out[i];
		struct stat st;

		memset(f, 0, sizeof(*f));
		f->what = outputs[i];
		f->fd = fds[i];
		f->sent = 1;
		if (f->fd >= 0) {
			if (fstat(f->fd, &st) < 0) {
				log_msg(LOG_LEVEL_ERROR, "reply: cannot stat the captured %s: %s",
					f->what, strerror(errno));
				return -1;
			}
			f->size = (uint64_t)st.st_size;
		}
		if (piece_plan_encoding(o, f, e->json, pl->chunk) < 0)
			return -1;
	}
	if (n > 0) {
		pl->files = calloc(n, sizeof(*pl->files));
		if (pl->files == NULL) {
			log_msg(LOG_LEVEL_ERROR, "reply: out of memory for %zu files", n);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct piece *f = &pl->files[i];
		int rc;

		f->name = f->what = e->files->files[i].name;
		pl->nfiles++;
		if (piece_open(e, f, 0) < 0)
			return -1;
		piece_type(e, f);
		rc = piece_plan_encoding(o, f, e->json, pl->chunk);
		piece_close(f);
		if (rc < 0)
			return -1;
	}
	return plan_budget(e, pl);
}

static int stream_send(struct out *o);

int reply_write_execution(struct reply_sink *sink, const struct reply_execution *e)
{
	struct out o;
	struct plan pl;
	/* the one buffer every file and output passes through */
	unsigned char chunk[REPLY_CHUNK];
	/* made after the run ended, so the program could not have written it */
	char boundary[2 * REPLY_BOUNDARY_BYTES + 1];
	int rc = -1;

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
	memset(&pl, 0, sizeof(pl));
	pl.boundary = boundary;
	pl.chunk = chunk;
	if (e->event) {
		/* the body alone, as the stream's last event */
		if (sink == NULL || !sink->in_body) {
			log_msg(LOG_LEVEL_ERROR, "reply: a result event before the stream's head");
			return -1;
		}
		out_init(&o, sink);
	} else if (out_begin(&o, sink, e->status) < 0) {
		return -1;
	}
	if (e->deadline_ns != 0) {
		o.deadline_ns = e->deadline_ns;
		o.send_fd = e->send_fd;
	}
	if (plan_make(&o, e, &pl) == 0 && (e->event ? out_str(&o, "event: result\ndata: ")
					  : write_headers(&o, e, &pl)) == 0)
		rc = write_body(&o, e, &pl);
	if (rc == 0 && e->event) {
		out_str(&o, "\n\n");
		rc = stream_send(&o);
	}
	free(pl.files);
	return rc;
}

/* An error's JSON body, {"detail": ..., "error": ...}: an error reply's,
 * and a stream's error event's data. */
static void error_body(struct out *o, const char *error, const char *detail)
{
	out_str(o, "{\"detail\": ");
	json_string(o, detail);
	out_str(o, ", \"error\": ");
	json_string(o, error);
	out_put(o, "}", 1);
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
	error_body(&o, error != NULL ? error : "error",
		   detail != NULL ? detail : reply_status_text(status));
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

/* ---- Server-Sent Events ---- */

static int stream_begin(struct out *o, const struct reply_stream *s)
{
	if (s->sink == NULL || s->sink->write == NULL || !s->sink->in_body) {
		log_msg(LOG_LEVEL_ERROR, "reply: an event before the stream's head");
		return -1;
	}
	out_init(o, s->sink);
	o->deadline_ns = s->deadline_ns;
	o->send_fd = s->send_fd;
	return 0;
}

/* What o holds goes to the client now, through the web server. */
static int stream_send(struct out *o)
{
	if (out_flush(o) < 0)
		return -1;
	return o->sink->flush != NULL ? o->sink->flush(o->sink->ctx) : 0;
}

int reply_stream_head(const struct reply_stream *s, const char *start, const char *dependencies,
		      const char *request_id)
{
	struct out o;

	if (out_begin(&o, s->sink, 200) < 0)
		return -1;
	o.deadline_ns = s->deadline_ns;
	o.send_fd = s->send_fd;
	out_header(&o, "Content-Type", "text/event-stream");
	if (start != NULL)
		out_header(&o, "X-Execution-Start", start);
	if (dependencies != NULL)
		out_header(&o, "X-Dependencies", dependencies);
	if (request_id != NULL)
		out_header(&o, "X-Request-Id", request_id);
	out_header(&o, "Cache-Control", "no-store");
	/* nginx passes the events on as they come instead of buffering them */
	out_header(&o, "X-Accel-Buffering", "no");
	if (out_end_headers(&o) < 0)
		return -1;
	return stream_send(&o);
}

int reply_stream_output(const struct reply_stream *s, const char *name,
			const unsigned char *buf, size_t len, int final, size_t *used)
{
	struct out o;
	size_t text_len = 0, consumed;
	int text = utf8_check(buf, len, final, 1, &text_len);

	*used = text ? text_len : len;
	if (*used == 0)
		return 0;
	if (stream_begin(&o, s) < 0)
		return -1;
	out_printf(&o, "event: %s\ndata: {\"data\":\"", name);
	if (text)
		json_escape(&o, buf, text_len, 1, &consumed);
	else
		base64_put(&o, buf, len);
	out_printf(&o, "\",\"encoding\":\"%s\"}\n\n", text ? "utf-8" : "base64");
	return stream_send(&o);
}

int reply_stream_beat(const struct reply_stream *s)
{
	struct out o;

	if (stream_begin(&o, s) < 0)
		return -1;
	out_str(&o, ":\n\n");
	return stream_send(&o);
}

int reply_stream_error(const struct reply_stream *s, const char *error, const char *detail)
{
	struct out o;

	if (stream_begin(&o, s) < 0)
		return -1;
	out_str(&o, "event: error\ndata: ");
	error_body(&o, error, detail);
	out_str(&o, "\n\n");
	return stream_send(&o);
}
