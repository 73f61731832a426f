/* libFuzzer target for lib/multipart.c: the request body of POST execute is
 * client bytes fed to the parser in whatever pieces FastCGI delivers them,
 * so the outcome must not depend on the pieces, and every promise of
 * multipart.h must hold for any bytes.
 *
 * Input layout:
 *   [0]  boundary: 0xff = the boundary comes from a Content-Type line
 *        (bytes up to the first '\n'), parsed by the header's own function;
 *        anything else = 1 + [0] % 70 raw boundary bytes follow the header
 *   [1]  limits (see pick_limits)
 *   [2]  chunking: seed and largest piece
 *   [3]  1..15 = the callback of the n-th non-data event stops the parser
 *   then the boundary, then the body. */
#define _GNU_SOURCE   /* memmem */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* What one run saw, through its callbacks. */
struct run {
	struct multipart_parser p;
	const char *buf;                /* the piece being executed */
	size_t len;
	int phase;                      /* 0 between parts, 1 headers, 2 data, 3 ended */
	int halted;                     /* an error is set: no callback may follow */
	int stopped_by_us;
	int exec_failed;                /* multipart_execute raised the error */
	unsigned events, stop_at;       /* non-data events; stop at the stop_at-th */
	uint64_t part_bytes, parts, data_run;
	uint64_t hash;                  /* FNV-1a of the events and data */
	/* the part's data so far, then the delimiter, looked for in the body */
	char *want;
	size_t want_len;
	const char *body, *delim;
	size_t body_len, delim_len, cursor;
};

static struct run runs[2];
static struct multipart_disposition disp;

static void mix(struct run *r, const void *s, size_t n)
{
	const unsigned char *c = s;

	for (size_t i = 0; i < n; i++)
		r->hash = (r->hash ^ c[i]) * 0x100000001b3ULL;
}

/* A span handed to a callback: in the piece being executed or, for bytes
 * held back as a possible delimiter and header lines, inside the parser;
 * never in an earlier piece, which this target has already freed. */
static void check_span(const struct run *r, const char *at, size_t n)
{
	const char *pb = (const char *)&r->p;

	CHECK(at != NULL || n == 0);
	if (n == 0)
		return;
	CHECK((at >= r->buf && at + n <= r->buf + r->len) ||
	      (at >= pb && at + n <= pb + sizeof(r->p)));
}

/* The digest merges consecutive data spans: where the spans end depends on
 * the pieces, the bytes must not. */
static int event(struct run *r, char ev)
{
	CHECK(!r->halted);
	if (r->data_run != 0) {
		mix(r, &r->data_run, sizeof(r->data_run));
		r->data_run = 0;
	}
	mix(r, &ev, 1);
	if (r->stop_at != 0 && ++r->events == r->stop_at) {
		r->stopped_by_us = 1;
		return -1;
	}
	return 0;
}

static int on_part_begin(void *d)
{
	struct run *r = d;

	CHECK(r->phase == 0);
	r->phase = 1;
	r->parts++;
	r->part_bytes = 0;
	if (r->p.lim.parts_max != 0)
		CHECK(r->parts <= r->p.lim.parts_max);
	return event(r, 'B');
}

static int on_header(void *d, const char *name, size_t nlen, const char *value,
		     size_t vlen)
{
	struct run *r = d;
	const char *why = NULL;

	CHECK(r->phase == 1);
	check_span(r, name, nlen);
	check_span(r, value, vlen);
	/* One line, without its CRLF, under the line limit; the name ends at
	 * the first colon and does not start folded; the value is trimmed. */
	CHECK(nlen + 1 + vlen <= r->p.lim.header_line_max);
	CHECK(memchr(name, ':', nlen) == NULL);
	CHECK(nlen == 0 || (name[0] != ' ' && name[0] != '\t'));
	CHECK(memchr(name, '\r', nlen) == NULL && memchr(name, '\n', nlen) == NULL);
	CHECK(memchr(value, '\r', vlen) == NULL && memchr(value, '\n', vlen) == NULL);
	CHECK(vlen == 0 || (value[0] != ' ' && value[0] != '\t' &&
			    value[vlen - 1] != ' ' && value[vlen - 1] != '\t'));
	/* pyexec decodes this header of every part: its fields must fit. */
	if (nlen == 19 && strncasecmp(name, "Content-Disposition", 19) == 0) {
		int rc = multipart_parse_disposition(value, vlen, &disp, &why);

		CHECK(rc == 0 || (rc == -1 && why != NULL));
		if (rc == 0) {
			CHECK(disp.name_len <= MULTIPART_NAME_MAX);
			CHECK(disp.name[disp.name_len] == '\0');
			CHECK(disp.filename_len <= MULTIPART_FILENAME_MAX);
			CHECK(disp.filename[disp.filename_len] == '\0');
			mix(r, &disp.form_data, sizeof(disp.form_data));
		}
	}
	mix(r, &nlen, sizeof(nlen));
	mix(r, name, nlen);
	mix(r, &vlen, sizeof(vlen));
	mix(r, value, vlen);
	return event(r, 'H');
}

static int on_headers_complete(void *d)
{
	struct run *r = d;

	CHECK(r->phase == 1);
	r->phase = 2;
	r->want_len = 0;
	return event(r, 'C');
}

static int on_data(void *d, const char *at, size_t len)
{
	struct run *r = d;

	CHECK(!r->halted);
	CHECK(r->phase == 2);
	CHECK(len > 0);
	check_span(r, at, len);
	r->part_bytes += len;
	if (r->p.lim.part_max != 0)
		CHECK(r->part_bytes <= r->p.lim.part_max);
	if (r->data_run == 0)
		mix(r, "D", 1);
	r->data_run += len;
	mix(r, at, len);
	/* a part's data is body bytes: never more of them than the body has */
	CHECK(r->want_len + len <= r->body_len);
	memcpy(r->want + r->want_len, at, len);
	r->want_len += len;
	return 0;
}

static int on_part_end(void *d)
{
	struct run *r = d;
	const char *found;

	CHECK(r->phase == 2);
	r->phase = 0;
	/* Nothing lost, nothing made up: the part's data is a run of body bytes
	 * that a delimiter follows, after where the previous part ended. This
	 * holds however the bytes were cut, so unlike the digest it also
	 * catches a bug that every feeding shares. */
	memcpy(r->want + r->want_len, r->delim, r->delim_len);
	found = memmem(r->body + r->cursor, r->body_len - r->cursor, r->want,
		       r->want_len + r->delim_len);
	CHECK(found != NULL);
	r->cursor = (size_t)(found - r->body) + r->want_len;
	r->want_len = 0;
	return event(r, 'E');
}

static int on_body_end(void *d)
{
	struct run *r = d;

	CHECK(r->phase == 0 && r->parts > 0);
	r->phase = 3;
	return event(r, 'Z');
}

static const struct multipart_callbacks callbacks = {
	on_part_begin, on_header, on_headers_complete, on_data, on_part_end, on_body_end,
};

/* Small limits, so that the fuzzer reaches them with small inputs. */
static void pick_limits(uint8_t b, struct multipart_limits *lim)
{
	static const uint64_t part_max[8] = { 0, 1, 2, 3, 7, 16, 64, 1000 };
	static const uint64_t parts_max[4] = { 0, 1, 2, 5 };
	static const unsigned headers_max[4] = { 0, 1, 2, 4 };

	memset(lim, 0, sizeof(*lim));
	lim->part_max = part_max[b & 7];
	lim->parts_max = parts_max[(b >> 3) & 3];
	lim->headers_max = headers_max[(b >> 5) & 3];
	lim->header_line_max = (b & 0x80) ? 24 : 0;
}

/* Feeds body to r in pieces given by the chunking byte (0 = whole), each
 * piece a separate allocation so that ASan sees a read past it. Returns the
 * bytes consumed in all. */
static uint64_t feed(struct run *r, const char *body, size_t len, uint8_t chunking)
{
	uint32_t seed = 0x9e3779b9u ^ chunking;
	size_t off = 0, most = 1 + chunking % 64;
	uint64_t taken = 0;

	while (off < len) {
		size_t n = len - off, got;
		char *piece;
		enum multipart_error e;
		uint64_t eo;

		if (chunking != 0) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % most;
			if (n > len - off)
				n = len - off;
		}
		piece = malloc(n);
		CHECK(piece != NULL);
		memcpy(piece, body + off, n);
		r->buf = piece;
		r->len = n;
		got = multipart_execute(&r->p, piece, n);
		r->buf = NULL;
		free(piece);
		CHECK(got <= n);
		taken += got;
		e = multipart_get_error(&r->p);
		if (e == MULTIPART_E_OK) {
			CHECK(got == n);
			off += n;
			continue;
		}
		r->halted = 1;
		r->exec_failed = 1;
		CHECK((e == MULTIPART_E_CALLBACK) == r->stopped_by_us);
		/* The error lies in what was fed, and everything before it,
		 * held-back bytes included, was consumed. */
		eo = multipart_error_offset(&r->p);
		CHECK(eo <= off + n);
		CHECK(got == (eo > off ? eo - off : 0));
		/* Sticky: no more bytes taken, no callback, nothing changed. */
		CHECK(multipart_execute(&r->p, body + off, len - off) == 0);
		CHECK(multipart_execute(&r->p, "\r\n--", 4) == 0);
		CHECK(multipart_get_error(&r->p) == e);
		CHECK(multipart_error_offset(&r->p) == eo);
		break;
	}
	return taken;
}

static void finish(struct run *r)
{
	enum multipart_error e = multipart_finish(&r->p);

	r->halted = 1;
	CHECK(multipart_finish(&r->p) == e);
	CHECK(multipart_get_error(&r->p) == e);
	/* OK exactly when the close delimiter was read, unless its own
	 * callback stopped the parser */
	CHECK((e == MULTIPART_E_OK) == (r->phase == 3 && !r->stopped_by_us));
	CHECK(multipart_error_name(e) != NULL && multipart_error_str(e) != NULL);
	mix(r, &e, sizeof(e));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char boundary[MULTIPART_BOUNDARY_MAX + 1], delim[MULTIPART_BOUNDARY_MAX + 4];
	struct multipart_limits lim;
	char *want;
	const char *body;
	size_t blen, hdr = 4;
	uint64_t taken[2];

	if (size < hdr)
		return 0;
	if (data[0] == 0xff) {
		/* the Content-Type as a C string, as the FastCGI params give it */
		const uint8_t *nl = memchr(data + hdr, '\n', size - hdr);
		size_t ctlen = nl != NULL ? (size_t)(nl - data) - hdr : size - hdr;
		char *ct = malloc(ctlen + 1);
		const char *why = NULL;
		int is_415 = -1, n;

		CHECK(ct != NULL);
		memcpy(ct, data + hdr, ctlen);
		ct[ctlen] = '\0';
		n = multipart_boundary_from_content_type(ct, boundary, &why, &is_415);
		free(ct);
		CHECK(is_415 == 0 || is_415 == 1);
		if (n < 0) {
			CHECK(n == -1 && why != NULL);
			return 0;
		}
		CHECK(is_415 == 0);
		CHECK(n >= 1 && n <= MULTIPART_BOUNDARY_MAX && strlen(boundary) == (size_t)n);
		blen = (size_t)n;
		hdr += nl != NULL ? ctlen + 1 : ctlen;
	} else {
		blen = 1 + data[0] % MULTIPART_BOUNDARY_MAX;
		if (size < hdr + blen)
			return 0;
		memcpy(boundary, data + hdr, blen);
		hdr += blen;
	}
	body = (const char *)data + hdr;
	pick_limits(data[1], &lim);
	memcpy(delim, "\r\n--", 4);
	memcpy(delim + 4, boundary, blen);
	want = malloc(size - hdr + sizeof(delim));
	CHECK(want != NULL);

	for (int k = 0; k < 2; k++) {
		struct run *r = &runs[k];

		memset(r, 0, sizeof(*r));
		r->body = body;
		r->body_len = size - hdr;
		r->delim = delim;
		r->delim_len = blen + 4;
		r->want = want;
		r->hash = 0xcbf29ce484222325ULL;
		r->stop_at = data[3] < 16 ? data[3] : 0;
		if (multipart_init(&r->p, boundary, blen, &lim, &callbacks, r) != 0) {
			/* Only a boundary with CR or LF is refused here; a refused
			 * parser takes no byte. */
			CHECK(memchr(boundary, '\r', blen) || memchr(boundary, '\n', blen));
			CHECK(data[0] != 0xff);
			r->halted = 1;
			CHECK(multipart_execute(&r->p, body, size - hdr) == 0);
			CHECK(multipart_get_error(&r->p) != MULTIPART_E_OK);
			free(want);
			return 0;
		}
		/* run 0 takes the body whole, run 1 in the chosen pieces */
		taken[k] = feed(r, body, size - hdr, k == 0 ? 0 : data[2] | 1);
		finish(r);
	}
	/* The pieces change nothing: same events, same data, same outcome. */
	CHECK(runs[0].hash == runs[1].hash);
	for (int k = 0; k < 2; k++) {
		uint64_t eo = multipart_error_offset(&runs[k].p);

		/* Held-back bytes count as consumed when their piece is, so a
		 * piecewise feed may have taken up to a delimiter's length
		 * more than the whole one, which took exactly up to the error. */
		if (!runs[k].exec_failed)
			CHECK(taken[k] == size - hdr);
		else if (k == 0)
			CHECK(taken[k] == eo);
		else
			CHECK(taken[k] >= eo && taken[k] - eo <= MULTIPART_BOUNDARY_MAX + 4);
	}
	CHECK(multipart_get_error(&runs[0].p) == multipart_get_error(&runs[1].p));
	CHECK(multipart_error_offset(&runs[0].p) == multipart_error_offset(&runs[1].p));
	free(want);
	return 0;
}
