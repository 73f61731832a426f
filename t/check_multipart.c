#include "config.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "multipart.h"

/* A literal's length without its terminating NUL, so literals may hold NULs. */
#define LIT(s) (s), (sizeof(s) - 1)

#define CD(n) "Content-Disposition: form-data; name=\"" n "\"\r\n"
#define EV_CD(n) "HContent-Disposition:form-data; name=\"" n "\"\n"

/* ---- allocation counter ----
 * The parser must not allocate. Where glibc is the allocator (not under a
 * sanitizer, which brings its own), this file replaces malloc and friends
 * with counting forwarders, and every multipart_execute() call of the suite
 * is checked to allocate nothing. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SUITE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SUITE_ASAN 1
#endif

#if defined(__GLIBC__) && !defined(SUITE_ASAN)
#define COUNT_ALLOCS 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *q, size_t n);
extern void __libc_free(void *q);

/* volatile: GCC assumes its builtin malloc reads no globals */
static volatile int alloc_counting;
static volatile unsigned long alloc_calls;

void *malloc(size_t n)
{
	if (alloc_counting)
		alloc_calls++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (alloc_counting)
		alloc_calls++;
	return __libc_calloc(n, size);
}

void *realloc(void *q, size_t n)
{
	if (alloc_counting)
		alloc_calls++;
	return __libc_realloc(q, n);
}

void free(void *q)
{
	__libc_free(q);
}
#else
#define COUNT_ALLOCS 0
static volatile int alloc_counting;
static volatile unsigned long alloc_calls;
#endif

static size_t execute_counted(struct multipart_parser *p, const char *buf,
			      size_t len)
{
	size_t got;

	alloc_calls = 0;
	alloc_counting = 1;
	got = multipart_execute(p, buf, len);
	alloc_counting = 0;
	/* not ck_assert: in fork mode each one writes to the parent, and
	 * this runs once per byte of the byte-by-byte feeds */
	if (alloc_calls != 0)
		ck_abort_msg("multipart_execute allocated %lu times", alloc_calls);
	return got;
}

/* ---- event recorder ----
 * Every callback appends one line: "B" part begin, "H<name>:<value>",
 * "C" headers complete, "E" part end, "Z" body end; data is "D" and the
 * bytes of consecutive on_data calls merged (span boundaries depend on the
 * reads, the bytes must not). The end is "=<ERROR>@<offset>". */
#define REC_MAX (4u << 20)

struct rec {
	char *buf;
	size_t len;
	int overflow;
	int in_data;
	char stop_ev;       /* the event whose stop_n-th call returns -1 */
	unsigned stop_n;
	unsigned count;
	uint64_t data_bytes;
	const char *body;   /* for the zero-copy check */
	size_t body_len;
	unsigned foreign_spans;
	unsigned data_calls;
	unsigned empty_spans;   /* checked after each call: Check allocates */
};

static char rec_store[2][REC_MAX];
static struct rec recs[2] = {{.buf = rec_store[0]}, {.buf = rec_store[1]}};

static void rec_add(struct rec *r, const char *s, size_t n)
{
	if (r->len + n > REC_MAX) {
		r->overflow = 1;
		return;
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

static void rec_close_data(struct rec *r)
{
	if (r->in_data)
		rec_add(r, "\n", 1);
	r->in_data = 0;
}

static int rec_stop(struct rec *r, char ev)
{
	if (r->stop_ev == ev && ++r->count == r->stop_n)
		return -1;
	return 0;
}

static int rec_event(void *data, char ev)
{
	struct rec *r = data;
	char line[2] = {ev, '\n'};

	rec_close_data(r);
	rec_add(r, line, 2);
	return rec_stop(r, ev);
}

static int on_part_begin(void *data)
{
	return rec_event(data, 'B');
}

static int on_headers_complete(void *data)
{
	return rec_event(data, 'C');
}

static int on_part_end(void *data)
{
	return rec_event(data, 'E');
}

static int on_body_end(void *data)
{
	return rec_event(data, 'Z');
}

static int on_header(void *data, const char *name, size_t name_len,
		     const char *value, size_t value_len)
{
	struct rec *r = data;

	rec_close_data(r);
	rec_add(r, "H", 1);
	rec_add(r, name, name_len);
	rec_add(r, ":", 1);
	rec_add(r, value, value_len);
	rec_add(r, "\n", 1);
	return rec_stop(r, 'H');
}

static int on_data(void *data, const char *at, size_t len)
{
	struct rec *r = data;

	if (len == 0)
		r->empty_spans++;
	if (!r->in_data)
		rec_add(r, "D", 1);
	r->in_data = 1;
	rec_add(r, at, len);
	r->data_bytes += len;
	r->data_calls++;
	if (r->body != NULL && (at < r->body || at + len > r->body + r->body_len))
		r->foreign_spans++;
	return rec_stop(r, 'D');
}

static const struct multipart_callbacks rec_callbacks = {
	.on_part_begin = on_part_begin,
	.on_header = on_header,
	.on_headers_complete = on_headers_complete,
	.on_data = on_data,
	.on_part_end = on_part_end,
	.on_body_end = on_body_end,
};

static void rec_reset(struct rec *r, char stop_ev, unsigned stop_n)
{
	r->len = 0;
	r->overflow = 0;
	r->in_data = 0;
	r->stop_ev = stop_ev;
	r->stop_n = stop_n;
	r->count = 0;
	r->data_bytes = 0;
	r->data_calls = 0;
	r->foreign_spans = 0;
	r->empty_spans = 0;
	r->body = NULL;
	r->body_len = 0;
}

/* ---- feeding ---- */

struct input {
	const char *boundary;
	const char *body;
	size_t len;
	struct multipart_limits lim;
	char stop_ev;
	unsigned stop_n;
};

static struct multipart_parser parser;

/* Feeds in->body to a fresh parser: chunks end at cuts[0..ncuts) and at the
 * end, or, when step > 0, every step bytes. Checks on every call what the
 * header promises (bytes consumed, sticky errors, no allocation) and
 * records the events and the outcome into r. */
static enum multipart_error feed(const struct input *in, struct rec *r,
				 const size_t *cuts, size_t ncuts, size_t step)
{
	struct multipart_parser *p = &parser;
	size_t off = 0, n, got, c = 0, mark;
	enum multipart_error e;
	uint64_t eo;
	char end[64];

	rec_reset(r, in->stop_ev, in->stop_n);
	r->body = in->body;
	r->body_len = in->len;
	ck_assert_int_eq(multipart_init(p, in->boundary, strlen(in->boundary),
					&in->lim, &rec_callbacks, r), 0);
	while (off < in->len) {
		if (step > 0)
			n = step < in->len - off ? step : in->len - off;
		else if (c < ncuts)
			n = cuts[c++] - off;
		else
			n = in->len - off;
		if (n == 0)
			continue;
		got = execute_counted(p, in->body + off, n);
		if (r->empty_spans != 0)
			ck_abort_msg("on_data got an empty span");
		e = multipart_get_error(p);
		if (e == MULTIPART_E_OK) {
			if (got != n)
				ck_abort_msg("consumed %zu of %zu at %zu", got, n, off);
			off += n;
			continue;
		}
		/* Stopped: the bytes before the error were consumed (the
		 * error may even lie in bytes held back from earlier). */
		eo = multipart_error_offset(p);
		ck_assert_msg(eo <= off + n && eo + MULTIPART_BOUNDARY_MAX + 4 >= off,
			      "error offset %" PRIu64 " outside read at %zu+%zu",
			      eo, off, n);
		ck_assert_uint_eq(got, eo > off ? eo - off : 0);
		/* Sticky: nothing more is taken, nothing is called back. */
		mark = r->len;
		if (off + got < in->len)
			ck_assert_uint_eq(execute_counted(p, in->body + off + got,
							  in->len - off - got), 0);
		ck_assert_uint_eq(execute_counted(p, LIT("\r\n--")), 0);
		ck_assert_int_eq(multipart_get_error(p), e);
		ck_assert_uint_eq(multipart_error_offset(p), eo);
		ck_assert_uint_eq(r->len, mark);
		break;
	}
	e = multipart_finish(p);
	ck_assert_int_eq(multipart_finish(p), e);
	ck_assert_int_eq(multipart_get_error(p), e);
	rec_close_data(r);
	snprintf(end, sizeof(end), "=%s@%" PRIu64 "\n", multipart_error_name(e),
		 multipart_error_offset(p));
	rec_add(r, end, strlen(end));
	return e;
}

static const char *escape(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0, k;

	for (k = 0; k < n && o + 5 < cap; k++) {
		unsigned char c = (unsigned char)s[k];
		if (c == '\n')
			o += (size_t)snprintf(out + o, cap - o, "\\n");
		else if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

static void assert_same(const struct rec *r, const char *exp, size_t exp_len,
			const char *mode, size_t at)
{
	static char a[512], b[512];
	size_t k = 0, from;

	ck_assert_msg(!r->overflow, "%s %zu: recorder overflow", mode, at);
	while (k < r->len && k < exp_len && r->buf[k] == exp[k])
		k++;
	if (k == r->len && k == exp_len)
		return;
	from = k > 60 ? k - 60 : 0;
	ck_abort_msg("%s %zu: events differ at byte %zu\n got: %s\nwant: %s",
		     mode, at, k,
		     escape(r->buf + from, (r->len - from) < 120 ? r->len - from : 120, a, sizeof(a)),
		     escape(exp + from, (exp_len - from) < 120 ? exp_len - from : 120, b, sizeof(b)));
}

#define AT_END UINT64_MAX

/* expect = the events (without the end line); err at err_off (AT_END: the
 * body's length). */
static char *expected(const struct input *in, const char *events,
		      size_t events_len, enum multipart_error err,
		      uint64_t err_off, size_t *len)
{
	char *s = malloc(events_len + 64);
	int n;

	ck_assert_ptr_nonnull(s);
	memcpy(s, events, events_len);
	n = snprintf(s + events_len, 64, "=%s@%" PRIu64 "\n",
		     multipart_error_name(err),
		     err_off == AT_END ? (uint64_t)in->len : err_off);
	*len = events_len + (size_t)n;
	return s;
}

/* Feeds in whole, byte by byte, and split into two at every stride-th
 * offset (1: every offset), and expects the same events each time. */
static void run_stride(const struct input *in, const char *events,
		       size_t events_len, enum multipart_error err,
		       uint64_t err_off, size_t stride)
{
	size_t len, k;
	char *exp = expected(in, events, events_len, err, err_off, &len);

	feed(in, &recs[0], NULL, 0, 0);
	assert_same(&recs[0], exp, len, "whole", 0);
	feed(in, &recs[1], NULL, 0, 1);
	assert_same(&recs[1], exp, len, "byte by byte", 0);
	for (k = 1; k < in->len; k += stride) {
		feed(in, &recs[1], &k, 1, 0);
		assert_same(&recs[1], exp, len, "split at", k);
	}
	free(exp);
}

static void run_all(const struct input *in, const char *events,
		    enum multipart_error err, uint64_t err_off)
{
	run_stride(in, events, strlen(events), err, err_off, 1);
}

/* Offset of the first needle in the body (which may hold NULs). */
static uint64_t body_at(const struct input *in, const char *needle)
{
	const char *q = memmem(in->body, in->len, needle, strlen(needle));

	ck_assert_msg(q != NULL, "\"%s\" not in the body", needle);
	return (uint64_t)(q - in->body);
}

#define INPUT(b) {.boundary = "boundary", .body = (b), .len = sizeof(b) - 1}

/* ---- the body parser ---- */

START_TEST(test_one_part)
{
	struct input in = INPUT("--boundary\r\n" CD("a") "\r\nhello\r\n--boundary--\r\n");

	run_all(&in, "B\n" EV_CD("a") "C\nDhello\nE\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_two_parts_binary_file)
{
	static const char body[] =
		"--boundary\r\n" CD("files")
		"Content-Type: application/octet-stream\r\n\r\n"
		"\0\1\r\n\r\xff-\r\n\r\n"
		"\r\n--boundary\r\n"
		"Content-Disposition: form-data; name=\"stdin\"\r\n\r\n"
		"line 1\nline 2\n"
		"\r\n--boundary--\r\n";
	static const char events[] =
		"B\n" EV_CD("files") "HContent-Type:application/octet-stream\nC\n"
		"D\0\1\r\n\r\xff-\r\n\r\n\nE\n"
		"B\n" EV_CD("stdin") "C\nDline 1\nline 2\n\nE\nZ\n";
	struct input in = {.boundary = "boundary", .body = body, .len = sizeof(body) - 1};

	run_stride(&in, events, sizeof(events) - 1, MULTIPART_E_OK, AT_END, 1);
}
END_TEST

START_TEST(test_empty_parts_and_empty_headers)
{
	/* RFC 2046: body-part := MIME-part-headers [CRLF *OCTET], so the CRLF
	 * of the blank line may be the delimiter's own. */
	struct input in = INPUT("--boundary\r\n\r\n--boundary\r\n\r\n\r\n--boundary\r\n"
				CD("x") "\r\n\r\n--boundary--");

	run_all(&in, "B\nC\nE\nB\nC\nE\nB\n" EV_CD("x") "C\nE\nZ\n",
		MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_boundary_split_across_reads)
{
	struct input in = INPUT("--boundary\r\n" CD("a") "\r\nabc\r\n--boundary\r\n"
				CD("b") "\r\ndef\r\n--boundary--");
	uint64_t second = body_at(&in, "\r\n--boundary\r\n");
	size_t cuts[3] = {(size_t)second + 5, (size_t)second + 9, (size_t)second + 12};
	char *exp;
	size_t len;

	run_all(&in, "B\n" EV_CD("a") "C\nDabc\nE\nB\n" EV_CD("b") "C\nDdef\nE\nZ\n",
		MULTIPART_E_OK, AT_END);
	/* "\r\n--b" | "oun" | "dar" | "y\r\n...": three reads inside it */
	exp = expected(&in, LIT("B\n" EV_CD("a") "C\nDabc\nE\nB\n" EV_CD("b")
				"C\nDdef\nE\nZ\n"), MULTIPART_E_OK, AT_END, &len);
	feed(&in, &recs[0], cuts, 3, 0);
	assert_same(&recs[0], exp, len, "three cuts", 0);
	free(exp);
}
END_TEST

START_TEST(test_crlf_split_across_reads)
{
	struct input in = INPUT("--boundary\r\n" CD("a") "\r\n\r\r\nx\r\n\r\n--boundary--\r\n");
	size_t cuts[16], n = 0, k;
	char *exp;
	size_t len;

	run_all(&in, "B\n" EV_CD("a") "C\nD\r\r\nx\r\n\nE\nZ\n", MULTIPART_E_OK, AT_END);
	/* a read ends after every CR of the body */
	for (k = 0; k < in.len; k++)
		if (in.body[k] == '\r')
			cuts[n++] = k + 1;
	exp = expected(&in, LIT("B\n" EV_CD("a") "C\nD\r\r\nx\r\n\nE\nZ\n"),
		       MULTIPART_E_OK, AT_END, &len);
	feed(&in, &recs[0], cuts, n, 0);
	assert_same(&recs[0], exp, len, "cut after each CR", n);
	free(exp);
}
END_TEST

START_TEST(test_near_miss_boundaries_are_data)
{
	struct input in = INPUT(
		"--boundary\r\n" CD("f") "\r\n"
		"x\r\n--bounda\r\n--boundarX--boundary\r\n-\r\n--\r\r\n--boundar"
		"\r\n--boundary--\r\n");

	run_all(&in, "B\n" EV_CD("f") "C\n"
		"Dx\r\n--bounda\r\n--boundarX--boundary\r\n-\r\n--\r\r\n--boundar\n"
		"E\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_near_miss_at_data_start_and_end)
{
	/* data that begins with a near miss of the boundary, and ends in CR */
	struct input in = INPUT("--boundary\r\n" CD("f") "\r\n--boundarX\r"
				"\r\n--boundary--");

	run_all(&in, "B\n" EV_CD("f") "C\nD--boundarX\r\nE\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_boundary_prefix_is_not_a_delimiter)
{
	/* "--boundaryX" after CRLF: the boundary occurs in the content, which
	 * RFC 2046 forbids; neither data nor a delimiter. */
	struct input a = INPUT("--boundary\r\n" CD("f") "\r\nabc\r\n--boundaryX\r\n"
			       "\r\n--boundary--\r\n");
	struct input b = INPUT("--boundary-x\r\n");
	struct input c = INPUT("--boundary\r\n" CD("f") "\r\n\r\n--boundary\n");

	run_all(&a, "B\n" EV_CD("f") "C\nDabc\n", MULTIPART_E_BOUNDARY,
		body_at(&a, "X"));
	run_all(&b, "", MULTIPART_E_BOUNDARY, body_at(&b, "x"));
	run_all(&c, "B\n" EV_CD("f") "C\n", MULTIPART_E_LINE_END,
		body_at(&c, "y\n") + 1);
}
END_TEST

START_TEST(test_transport_padding)
{
	struct input in = INPUT("--boundary \t \r\n" CD("a") "\r\n1\r\n--boundary\t\r\n"
				CD("b") "\r\n2\r\n--boundary-- \r\n");
	struct input bad = INPUT("--boundary \tx\r\n");
	struct input lf = INPUT("--boundary  \n");

	run_all(&in, "B\n" EV_CD("a") "C\nD1\nE\nB\n" EV_CD("b") "C\nD2\nE\nZ\n",
		MULTIPART_E_OK, AT_END);
	run_all(&bad, "", MULTIPART_E_BOUNDARY, body_at(&bad, "x"));
	run_all(&lf, "", MULTIPART_E_LINE_END, body_at(&lf, "\n"));
}
END_TEST

START_TEST(test_preamble_and_epilogue_ignored)
{
	struct input in = INPUT(
		"This is a preamble --boundary\r\n--boundar\r\n-boundary\r\n"
		"x--boundary\r\n\r\n"
		"--boundary\r\n" CD("a") "\r\nA\r\n--boundary--\r\n"
		"epilogue\r\n--boundary\r\n" CD("b") "\r\nignored\r\n--boundary--\r\n");

	run_all(&in, "B\n" EV_CD("a") "C\nDA\nE\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_close_without_crlf_and_epilogue)
{
	struct input in = INPUT("--boundary\r\n" CD("a") "\r\nA\r\n--boundary--junk");

	run_all(&in, "B\n" EV_CD("a") "C\nDA\nE\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_truncated)
{
	struct input in_headers = INPUT("--boundary\r\nContent-Dispo");
	struct input at_blank = INPUT("--boundary\r\n" CD("a") "\r");
	struct input in_data = INPUT("--boundary\r\n" CD("a") "\r\nhello\r\n--bound");
	struct input after_delim = INPUT("--boundary\r\n");
	struct input in_delim = INPUT("--boundary");
	struct input half_close = INPUT("--boundary\r\n" CD("a") "\r\nx\r\n--boundary-");

	run_all(&in_headers, "B\n", MULTIPART_E_TRUNCATED, AT_END);
	run_all(&at_blank, "B\n" EV_CD("a"), MULTIPART_E_TRUNCATED, AT_END);
	run_all(&in_data, "B\n" EV_CD("a") "C\nDhello\n", MULTIPART_E_TRUNCATED, AT_END);
	run_all(&after_delim, "B\n", MULTIPART_E_TRUNCATED, AT_END);
	run_all(&in_delim, "", MULTIPART_E_TRUNCATED, AT_END);
	run_all(&half_close, "B\n" EV_CD("a") "C\nDx\n", MULTIPART_E_TRUNCATED, AT_END);
}
END_TEST

START_TEST(test_no_parts)
{
	struct input empty = INPUT("");
	struct input close_only = INPUT("--boundary--\r\n");
	struct input preamble_only = INPUT("just text\r\n--boundar");
	struct input other_boundary = INPUT("--other\r\n" CD("a") "\r\nx\r\n--other--\r\n");

	run_all(&empty, "", MULTIPART_E_NO_PARTS, 0);
	run_all(&close_only, "", MULTIPART_E_NO_PARTS, 12);
	run_all(&preamble_only, "", MULTIPART_E_NO_PARTS, AT_END);
	run_all(&other_boundary, "", MULTIPART_E_NO_PARTS, AT_END);
}
END_TEST

START_TEST(test_header_value_trimmed_name_kept)
{
	struct input in = INPUT("--boundary\r\nX-A:   v w \t\r\nX-Empty:\r\n"
				"x-b:c:d\r\n\r\n\r\n--boundary--");

	run_all(&in, "B\nHX-A:v w\nHX-Empty:\nHx-b:c:d\nC\nE\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_header_without_colon)
{
	struct input in = INPUT("--boundary\r\n" CD("a") "Bogus header\r\n\r\nx\r\n--boundary--");
	struct input delim_as_header = INPUT("--boundary\r\n--boundary--\r\n");

	run_all(&in, "B\n" EV_CD("a"), MULTIPART_E_HEADER_NO_COLON,
		body_at(&in, "header\r\n") + 7);
	run_all(&delim_as_header, "B\n", MULTIPART_E_HEADER_NO_COLON,
		body_at(&delim_as_header, "--\r\n") + 3);
}
END_TEST

START_TEST(test_header_starting_with_whitespace)
{
	struct input folded = INPUT("--boundary\r\n" CD("a") " filename=\"x\"\r\n\r\n\r\n--boundary--");
	struct input first = INPUT("--boundary\r\n\tX: y\r\n\r\n\r\n--boundary--");

	run_all(&folded, "B\n" EV_CD("a"), MULTIPART_E_HEADER_FOLDED,
		body_at(&folded, " filename"));
	run_all(&first, "B\n", MULTIPART_E_HEADER_FOLDED, body_at(&first, "\t"));
}
END_TEST

START_TEST(test_lf_only_line_endings)
{
	struct input all_lf = INPUT("--boundary\n" "Content-Disposition: form-data; name=\"a\"\n"
				    "\nx\n--boundary--\n");
	struct input header_lf = INPUT("--boundary\r\n" "Content-Disposition: form-data; name=\"a\"\n"
				       "\r\nx\r\n--boundary--\r\n");
	struct input blank_lf = INPUT("--boundary\r\n" CD("a") "\nx\r\n--boundary--\r\n");
	struct input cr_alone = INPUT("--boundary\r\n" "X: a\rb\r\n\r\n\r\n--boundary--\r\n");
	struct input delim_cr = INPUT("--boundary\rx");

	run_all(&all_lf, "", MULTIPART_E_LINE_END, body_at(&all_lf, "\n"));
	run_all(&header_lf, "B\n", MULTIPART_E_LINE_END, body_at(&header_lf, "\"\n") + 1);
	run_all(&blank_lf, "B\n" EV_CD("a"), MULTIPART_E_LINE_END, body_at(&blank_lf, "\nx"));
	run_all(&cr_alone, "B\n", MULTIPART_E_LINE_END, body_at(&cr_alone, "\rb") + 1);
	run_all(&delim_cr, "", MULTIPART_E_LINE_END, body_at(&delim_cr, "x"));
}
END_TEST

START_TEST(test_too_many_headers)
{
	struct input in = INPUT("--boundary\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n\r\n--boundary--");

	in.lim.headers_max = 3;
	run_all(&in, "B\nHA:1\nHB:2\nHC:3\nC\nE\nZ\n", MULTIPART_E_OK, AT_END);
	in.lim.headers_max = 2;
	run_all(&in, "B\nHA:1\nHB:2\n", MULTIPART_E_TOO_MANY_HEADERS, body_at(&in, "C: 3"));
}
END_TEST

START_TEST(test_default_headers_max_is_16)
{
	char body[512];
	size_t n = 0, len;
	int k;
	struct input in = {.boundary = "b", .body = body};
	char events[512];

	n += (size_t)sprintf(body + n, "--b\r\n");
	len = (size_t)sprintf(events, "B\n");
	for (k = 0; k < 16; k++) {
		n += (size_t)sprintf(body + n, "H%d: v\r\n", k);
		len += (size_t)sprintf(events + len, "HH%d:v\n", k);
	}
	n += (size_t)sprintf(body + n, "\r\n\r\n--b--");
	in.len = n;
	memcpy(events + len, "C\nE\nZ\n", 6);
	run_stride(&in, events, len + 6, MULTIPART_E_OK, AT_END, 7);
	sprintf(body + n - 9, "X: v\r\n\r\n\r\n--b--");
	in.len = n + 6;
	run_stride(&in, events, len, MULTIPART_E_TOO_MANY_HEADERS, n - 9, 7);
}
END_TEST

START_TEST(test_header_line_limit)
{
	/* 20 bytes per line at most, CRLF not counted */
	struct input ok = INPUT("--boundary\r\nX: 34567890123456789\r\n\r\n\r\n--boundary--");
	struct input over = INPUT("--boundary\r\nX: 345678901234567890\r\n\r\n\r\n--boundary--");

	ok.lim.header_line_max = 20;
	over.lim.header_line_max = 20;
	run_all(&ok, "B\nHX:34567890123456789\nC\nE\nZ\n", MULTIPART_E_OK, AT_END);
	run_all(&over, "B\n", MULTIPART_E_HEADER_TOO_LONG, 12 + 20);
}
END_TEST

START_TEST(test_header_line_of_1mib)
{
	const size_t line = 1u << 20;
	char *body = malloc(line + 64);
	size_t n = 0, k;
	struct input in = {.boundary = "boundary", .body = body};
	size_t near[] = {12 + 8191, 12 + 8192, 12 + 8193, 12 + 4096};

	ck_assert_ptr_nonnull(body);
	n += (size_t)sprintf(body, "--boundary\r\nX-Long: ");
	memset(body + n, 'a', line);
	n += line;
	memcpy(body + n, "\r\n\r\nx\r\n--boundary--\r\n", 21);
	in.len = n + 21;
	/* Refused at the first byte past 8192 with the parser's fixed buffer
	 * (execute_counted: no allocation at all). */
	run_stride(&in, LIT("B\n"), MULTIPART_E_HEADER_TOO_LONG, 12 + 8192, 65537);
	for (k = 0; k < sizeof(near) / sizeof(near[0]); k++) {
		feed(&in, &recs[1], &near[k], 1, 0);
		assert_same(&recs[1], recs[0].buf, recs[0].len, "split at", near[k]);
	}
	/* exactly at the limit passes */
	n = (size_t)sprintf(body, "--boundary\r\nX-Long: ");
	memset(body + n, 'a', 8192 - 8);
	n += 8192 - 8;
	memcpy(body + n, "\r\n\r\nx\r\n--boundary--\r\n", 21);
	in.len = n + 21;
	feed(&in, &recs[0], NULL, 0, 0);
	ck_assert_int_eq(multipart_get_error(&parser), MULTIPART_E_OK);
	ck_assert_uint_eq(recs[0].len, 2 + 8 + 8184 + 1 + 2 + 3 + 2 + 2 +
			  strlen("=OK@") + 4 + 1);
	free(body);
}
END_TEST

START_TEST(test_alloc_counter_is_live)
{
	void *volatile q;

	if (!COUNT_ALLOCS)
		return;   /* a sanitizer owns malloc here */
	alloc_calls = 0;
	alloc_counting = 1;
	q = malloc(16);
	alloc_counting = 0;
	free(q);
	ck_assert_uint_eq(alloc_calls, 1);
}
END_TEST

/* n parts with empty data, each with no headers; boundary "b" */
static char *many_parts(unsigned n, size_t *len)
{
	static const char first[] = "--b\r\n\r\n";
	static const char next[] = "\r\n--b\r\n\r\n";
	static const char last[] = "\r\n--b--\r\n";
	char *s = malloc(sizeof(first) + (size_t)n * (sizeof(next) - 1) + sizeof(last));
	size_t o = 0;
	unsigned k;

	ck_assert_ptr_nonnull(s);
	memcpy(s, first, sizeof(first) - 1);
	o = sizeof(first) - 1;
	for (k = 1; k < n; k++) {
		memcpy(s + o, next, sizeof(next) - 1);
		o += sizeof(next) - 1;
	}
	memcpy(s + o, last, sizeof(last) - 1);
	*len = o + sizeof(last) - 1;
	return s;
}

static char *repeat(const char *unit, unsigned n, const char *tail, size_t *len)
{
	size_t u = strlen(unit), t = strlen(tail);
	char *s = malloc(u * n + t + 1);
	unsigned k;

	ck_assert_ptr_nonnull(s);
	for (k = 0; k < n; k++)
		memcpy(s + (size_t)k * u, unit, u);
	memcpy(s + (size_t)u * n, tail, t + 1);
	*len = u * n + t;
	return s;
}

START_TEST(test_100000_empty_parts)
{
	size_t blen, elen;
	char *body = many_parts(100000, &blen);
	char *events = repeat("B\nC\nE\n", 100000, "Z\n", &elen);
	struct input in = {.boundary = "b", .body = body, .len = blen};

	run_stride(&in, events, elen, MULTIPART_E_OK, AT_END, 65521);
	in.lim.parts_max = 100000;
	run_stride(&in, events, elen, MULTIPART_E_OK, AT_END, 131071);
	free(events);
	free(body);
}
END_TEST

START_TEST(test_parts_max_hit)
{
	size_t blen, elen;
	char *body = many_parts(100000, &blen);
	char *events = repeat("B\nC\nE\n", 99999, "", &elen);
	struct input in = {.boundary = "b", .body = body, .len = blen};
	struct input small = INPUT("--boundary\r\n" CD("a") "\r\n1\r\n--boundary\r\n"
				   CD("b") "\r\n2\r\n--boundary--\r\n");

	/* part 100000 would begin after the 100000th delimiter line */
	in.lim.parts_max = 99999;
	run_stride(&in, events, elen, MULTIPART_E_TOO_MANY_PARTS,
		   7 + 99999ull * 9 - 2, 65521);
	small.lim.parts_max = 1;
	run_all(&small, "B\n" EV_CD("a") "C\nD1\nE\n", MULTIPART_E_TOO_MANY_PARTS,
		body_at(&small, CD("b")));
	free(events);
	free(body);
}
END_TEST

START_TEST(test_part_max_crossed_mid_stream)
{
	struct input in = INPUT("--boundary\r\n" CD("f") "\r\n"
				"0123456789abcdefghijklmno\r\n--boundary--\r\n");
	struct input exact = INPUT("--boundary\r\n" CD("a") "\r\n0123456789\r\n--boundary\r\n"
				   CD("b") "\r\nabcdefghij\r\n--boundary--\r\n");

	in.lim.part_max = 10;
	run_all(&in, "B\n" EV_CD("f") "C\nD0123456789\n", MULTIPART_E_PART_TOO_LARGE,
		body_at(&in, "abcdef"));
	exact.lim.part_max = 10;
	run_all(&exact, "B\n" EV_CD("a") "C\nD0123456789\nE\nB\n" EV_CD("b")
		"C\nDabcdefghij\nE\nZ\n", MULTIPART_E_OK, AT_END);
}
END_TEST

START_TEST(test_part_max_crossed_in_held_back_bytes)
{
	/* The limit falls inside "\r\n--boundarX", known to be data only at X. */
	struct input in = INPUT("--boundary\r\n" CD("f") "\r\n"
				"12345678\r\n--boundarX\r\n--boundary--\r\n");

	in.lim.part_max = 10;
	run_all(&in, "B\n" EV_CD("f") "C\nD12345678\r\n\n", MULTIPART_E_PART_TOO_LARGE,
		body_at(&in, "--boundarX"));
}
END_TEST

START_TEST(test_large_file_data_is_zero_copy)
{
	const size_t size = 1u << 20;
	size_t n, k;
	char *body = malloc(size + 256);
	struct input in = {.boundary = "boundary", .body = body};

	ck_assert_ptr_nonnull(body);
	n = (size_t)sprintf(body, "--boundary\r\n" CD("f") "\r\n");
	for (k = 0; k < size; k++)
		body[n + k] = (char)("abc\r\n-"[k % 6]);
	n += size;
	n += (size_t)sprintf(body + n, "\r\n--boundary--\r\n");
	in.len = n;
	feed(&in, &recs[0], NULL, 0, 0);
	ck_assert_int_eq(multipart_get_error(&parser), MULTIPART_E_OK);
	ck_assert_uint_eq(recs[0].data_bytes, size);
	/* a lone CR is held back one byte, then given back from the parser */
	ck_assert_uint_le(recs[0].foreign_spans, size / 6 + 1);
	ck_assert_int_eq(memcmp((const char *)memmem(recs[0].buf, recs[0].len, "Dabc", 4) + 1,
				body + n - size - 16, size), 0);
	feed(&in, &recs[1], NULL, 0, 1);
	assert_same(&recs[1], recs[0].buf, recs[0].len, "byte by byte", 0);
	feed(&in, &recs[1], NULL, 0, 4096);
	assert_same(&recs[1], recs[0].buf, recs[0].len, "reads of", 4096);
	k = n / 2 + 3;
	feed(&in, &recs[1], &k, 1, 0);
	assert_same(&recs[1], recs[0].buf, recs[0].len, "split at", k);
	free(body);
}
END_TEST

START_TEST(test_plain_data_is_one_span_of_the_callers_buffer)
{
	struct input in = INPUT("--boundary\r\n" CD("f") "\r\nno carriage return here"
				"\r\n--boundary--\r\n");

	feed(&in, &recs[0], NULL, 0, 0);
	ck_assert_int_eq(multipart_get_error(&parser), MULTIPART_E_OK);
	ck_assert_uint_eq(recs[0].data_calls, 1);
	ck_assert_uint_eq(recs[0].foreign_spans, 0);
}
END_TEST

START_TEST(test_callback_stops_parser)
{
	static const char body[] = "--boundary\r\n" CD("a") "X: y\r\n\r\n1\r\n--boundary\r\n"
				   CD("b") "\r\n2\r\n--boundary--\r\n";
	struct input in = INPUT(body);
	uint64_t second = body_at(&in, CD("b"));

	in.stop_ev = 'B';
	in.stop_n = 2;
	run_all(&in, "B\n" EV_CD("a") "HX:y\nC\nD1\nE\nB\n", MULTIPART_E_CALLBACK, second);
	in.stop_ev = 'H';
	in.stop_n = 2;
	run_all(&in, "B\n" EV_CD("a") "HX:y\n", MULTIPART_E_CALLBACK, body_at(&in, "\r\n\r\n1") + 2);
	in.stop_ev = 'C';
	in.stop_n = 1;
	run_all(&in, "B\n" EV_CD("a") "HX:y\nC\n", MULTIPART_E_CALLBACK, body_at(&in, "1\r\n"));
	in.stop_ev = 'E';
	in.stop_n = 1;
	run_all(&in, "B\n" EV_CD("a") "HX:y\nC\nD1\nE\n", MULTIPART_E_CALLBACK, second);
	in.stop_ev = 'E';
	in.stop_n = 2;
	run_all(&in, "B\n" EV_CD("a") "HX:y\nC\nD1\nE\nB\n" EV_CD("b") "C\nD2\nE\n",
		MULTIPART_E_CALLBACK, in.len - 2);
	in.stop_ev = 'Z';
	in.stop_n = 1;
	run_all(&in, "B\n" EV_CD("a") "HX:y\nC\nD1\nE\nB\n" EV_CD("b") "C\nD2\nE\nZ\n",
		MULTIPART_E_CALLBACK, in.len - 2);
}
END_TEST

START_TEST(test_callback_error_is_sticky)
{
	struct input in = INPUT("--boundary\r\n" CD("a") "\r\n1\r\n--boundary--\r\n");
	struct multipart_parser *p = &parser;

	rec_reset(&recs[0], 'B', 1);
	ck_assert_int_eq(multipart_init(p, LIT("boundary"), NULL, &rec_callbacks, &recs[0]), 0);
	ck_assert_uint_eq(multipart_execute(p, in.body, in.len), 12);
	ck_assert_int_eq(multipart_get_error(p), MULTIPART_E_CALLBACK);
	ck_assert_uint_eq(multipart_error_offset(p), 12);
	ck_assert_uint_eq(multipart_execute(p, in.body + 12, in.len - 12), 0);
	ck_assert_uint_eq(multipart_execute(p, in.body, in.len), 0);
	ck_assert_int_eq(multipart_get_error(p), MULTIPART_E_CALLBACK);
	ck_assert_uint_eq(multipart_error_offset(p), 12);
	ck_assert_int_eq(multipart_finish(p), MULTIPART_E_CALLBACK);
	ck_assert_uint_eq(recs[0].len, 2);
}
END_TEST

START_TEST(test_data_callback_stop)
{
	/* Span boundaries depend on the reads, so where on_data stops does
	 * too; what must hold is that the offset follows the bytes given. */
	static const char data[] = "0123\r\n--boundarX\r\n--bo\r456";
	struct input in = INPUT("--boundary\r\n" CD("f") "\r\n0123\r\n--boundarX\r\n--bo\r456"
				"\r\n--boundary--\r\n");
	uint64_t start = body_at(&in, "0123");
	size_t k, len;
	char head[] = "B\n" EV_CD("f") "C\nD";
	char *exp;
	struct rec *r = &recs[0];

	in.stop_ev = 'D';
	in.stop_n = 1;
	for (k = 0; k <= in.len; k++) {
		if (k == 0)
			feed(&in, r, NULL, 0, 0);
		else if (k == in.len)
			feed(&in, r, NULL, 0, 1);
		else
			feed(&in, r, &k, 1, 0);
		ck_assert_int_eq(multipart_get_error(&parser), MULTIPART_E_CALLBACK);
		ck_assert_uint_ge(r->data_bytes, 1);
		ck_assert_uint_le(r->data_bytes, sizeof(data) - 1);
		ck_assert_uint_eq(multipart_error_offset(&parser), start + r->data_bytes);
		exp = malloc(sizeof(head) + sizeof(data) + 64);
		ck_assert_ptr_nonnull(exp);
		memcpy(exp, head, sizeof(head) - 1);
		memcpy(exp + sizeof(head) - 1, data, r->data_bytes);
		len = sizeof(head) - 1 + r->data_bytes;
		len += (size_t)sprintf(exp + len, "\n=CALLBACK@%" PRIu64 "\n",
				       start + r->data_bytes);
		assert_same(r, exp, len, "stop in on_data, read", k);
		free(exp);
	}
}
END_TEST

START_TEST(test_missing_callbacks_are_skipped)
{
	static const struct multipart_callbacks none;
	struct multipart_parser *p = &parser;
	static const char body[] = "--boundary\r\n" CD("a") "\r\n1\r\n--boundary--\r\n";

	ck_assert_int_eq(multipart_init(p, LIT("boundary"), NULL, &none, NULL), 0);
	ck_assert_uint_eq(multipart_execute(p, LIT(body)), sizeof(body) - 1);
	ck_assert_int_eq(multipart_finish(p), MULTIPART_E_OK);
	ck_assert_int_eq(multipart_init(p, LIT("boundary"), NULL, NULL, NULL), 0);
	ck_assert_uint_eq(multipart_execute(p, LIT(body)), sizeof(body) - 1);
	ck_assert_int_eq(multipart_finish(p), MULTIPART_E_OK);
}
END_TEST

START_TEST(test_init_checks_boundary_and_limits)
{
	struct multipart_parser *p = &parser;
	struct multipart_limits lim = {.header_line_max = MULTIPART_HEADER_LINE_MAX + 1};
	char b71[72];

	memset(b71, 'b', 71);
	ck_assert_int_eq(multipart_init(p, "", 0, NULL, &rec_callbacks, NULL), -1);
	ck_assert_int_eq(multipart_init(p, NULL, 3, NULL, &rec_callbacks, NULL), -1);
	ck_assert_int_eq(multipart_init(p, b71, 71, NULL, &rec_callbacks, NULL), -1);
	/* a failed init leaves a parser that takes nothing */
	ck_assert_uint_eq(multipart_execute(p, LIT("--bbb\r\n")), 0);
	ck_assert_int_ne(multipart_finish(p), MULTIPART_E_OK);
	ck_assert_int_eq(multipart_init(p, LIT("a\rb"), NULL, &rec_callbacks, NULL), -1);
	ck_assert_int_eq(multipart_init(p, LIT("b"), &lim, &rec_callbacks, NULL), -1);
	ck_assert_int_eq(multipart_init(p, b71, 70, NULL, &rec_callbacks, NULL), 0);
	lim.header_line_max = MULTIPART_HEADER_LINE_MAX;
	ck_assert_int_eq(multipart_init(p, LIT("b"), &lim, &rec_callbacks, NULL), 0);
}
END_TEST

START_TEST(test_longest_boundary)
{
	char body[512], events[256];
	char b70[71];
	size_t n, len;
	struct input in = {.boundary = b70, .body = body};

	memset(b70, 'z', 70);
	b70[70] = '\0';
	n = (size_t)sprintf(body, "--%s\r\n" CD("a") "\r\n--%.69s\r\n--%sx\r\n--%s--",
			    b70, b70, b70, b70);
	in.len = n;
	len = (size_t)sprintf(events, "B\n" EV_CD("a") "C\nD--%.69s\n", b70);
	/* "\r\n--" and all 70 bytes, then "x": not data, not a delimiter */
	run_stride(&in, events, len, MULTIPART_E_BOUNDARY, n - 77, 1);
}
END_TEST

START_TEST(test_error_names_and_strings)
{
	ck_assert_str_eq(multipart_error_name(MULTIPART_E_OK), "OK");
	ck_assert_str_eq(multipart_error_name(MULTIPART_E_CALLBACK), "CALLBACK");
	ck_assert_str_eq(multipart_error_name(MULTIPART_E_PART_TOO_LARGE), "PART_TOO_LARGE");
	ck_assert_str_eq(multipart_error_name(MULTIPART_E_TRUNCATED), "TRUNCATED");
	ck_assert_str_eq(multipart_error_str(MULTIPART_E_PART_TOO_LARGE),
			 "a part is larger than its limit");
	ck_assert_str_eq(multipart_error_str(MULTIPART_E_HEADER_FOLDED),
			 "a part header line starts with whitespace");
	ck_assert_str_eq(multipart_error_str(MULTIPART_E_OK), "no error");
	ck_assert_str_eq(multipart_error_name((enum multipart_error)(MULTIPART_E_TRUNCATED + 1)),
			 "UNKNOWN");
	ck_assert_str_eq(multipart_error_str((enum multipart_error)-1), "unknown error");
}
END_TEST

/* ---- Content-Type ---- */

static void ct_ok(const char *ct, const char *want)
{
	char out[MULTIPART_BOUNDARY_MAX + 1];
	const char *why = NULL;
	int is_415 = -1;
	int n = multipart_boundary_from_content_type(ct, out, &why, &is_415);

	ck_assert_msg(n == (int)strlen(want), "\"%s\": %d (%s)", ct, n, why ? why : "");
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(is_415, 0);
}

static void ct_bad(const char *ct, int want_415, const char *phrase)
{
	char out[MULTIPART_BOUNDARY_MAX + 1];
	const char *why = NULL;
	int is_415 = -1;

	ck_assert_msg(multipart_boundary_from_content_type(ct, out, &why, &is_415) == -1,
		      "\"%s\" accepted as \"%s\"", ct ? ct : "(null)", out);
	ck_assert_int_eq(is_415, want_415);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, phrase) != NULL, "\"%s\": why \"%s\", want \"%s\"",
		      ct ? ct : "(null)", why, phrase);
}

START_TEST(test_ct_token_and_quoted)
{
	ct_ok("multipart/form-data; boundary=abc", "abc");
	ct_ok("multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
	      "----WebKitFormBoundary7MA4YWxkTrZu0gW");
	ct_ok("multipart/form-data; boundary=\"a b:c\"", "a b:c");
	ct_ok("multipart/form-data; boundary=\"=_x?y(z),'+./\"", "=_x?y(z),'+./");
	ct_ok("multipart/form-data; boundary=\"a\\bc\"", "abc");
	ct_ok("multipart/form-data; boundary==_part_1", "=_part_1");
}
END_TEST

START_TEST(test_ct_case_and_parameters)
{
	ct_ok("Multipart/Form-Data; BOUNDARY=xyz", "xyz");
	ct_ok("  multipart/form-data ; charset=utf-8 ;Boundary = x1 ; ", "x1");
	ct_ok("multipart/form-data; foo=\"bo;undary=no\"; boundary=yes", "yes");
}
END_TEST

START_TEST(test_ct_boundary_missing_empty_long)
{
	char ct[200];

	ct_bad("multipart/form-data", 0, "no boundary");
	ct_bad("multipart/form-data; charset=utf-8", 0, "no boundary");
	ct_bad("multipart/form-data; boundary=", 0, "empty");
	ct_bad("multipart/form-data; boundary=\"\"", 0, "empty");
	ct_bad("multipart/form-data; boundary=;x=y", 0, "empty");
	sprintf(ct, "multipart/form-data; boundary=%071d", 0);
	ct_bad(ct, 0, "longer than 70");
	sprintf(ct, "multipart/form-data; boundary=\"%071d\"", 0);
	ct_bad(ct, 0, "longer than 70");
	sprintf(ct, "multipart/form-data; boundary=%070d", 0);
	ct_ok(ct, ct + strlen("multipart/form-data; boundary="));
}
END_TEST

START_TEST(test_ct_forbidden_characters)
{
	ct_bad("multipart/form-data; boundary=abc!", 0, "RFC 2046");
	ct_bad("multipart/form-data; boundary=\"abc \"", 0, "RFC 2046");
	ct_bad("multipart/form-data; boundary=\"a\\\"b\"", 0, "RFC 2046");
	ct_bad("multipart/form-data; boundary=\"a\rb\"", 0, "RFC 2046");
	ct_bad("multipart/form-data; boundary=\"\xc3\xa9\"", 0, "RFC 2046");
}
END_TEST

START_TEST(test_ct_malformed)
{
	ct_bad("multipart/form-data; boundary=\"abc", 0, "malformed");
	ct_bad("multipart/form-data; boundary=abc def", 0, "malformed");
	ct_bad("multipart/form-data; boundary", 0, "malformed");
	ct_bad("multipart/form-data x; boundary=a", 0, "malformed");
	ct_bad("multipart/form-data; boundary=a; boundary=b", 0, "twice");
}
END_TEST

START_TEST(test_ct_not_form_data_is_415)
{
	ct_bad(NULL, 1, "no Content-Type");
	ct_bad("", 1, "not multipart/form-data");
	ct_bad("application/json", 1, "not multipart/form-data");
	ct_bad("multipart/mixed; boundary=abc", 1, "not multipart/form-data");
	ct_bad("multipart/form-datax; boundary=abc", 1, "not multipart/form-data");
	ct_bad("multipart; boundary=abc", 1, "not multipart/form-data");
}
END_TEST

/* ---- Content-Disposition ---- */

static void cd_parse(const char *v, size_t len, struct multipart_disposition *d)
{
	const char *why = NULL;

	ck_assert_msg(multipart_parse_disposition(v, len, d, &why) == 0,
		      "\"%s\" refused: %s", v, why ? why : "");
}

static void cd_bad(const char *v, size_t len, const char *phrase)
{
	static struct multipart_disposition d;
	const char *why = NULL;

	ck_assert_msg(multipart_parse_disposition(v, len, &d, &why) == -1,
		      "\"%s\" accepted", v);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, phrase) != NULL, "\"%s\": why \"%s\", want \"%s\"",
		      v, why, phrase);
}

START_TEST(test_cd_name_and_filename)
{
	static struct multipart_disposition d;

	cd_parse(LIT("form-data; name=\"files\"; filename=\"pkg/util.py\""), &d);
	ck_assert_int_eq(d.form_data, 1);
	ck_assert_int_eq(d.has_name, 1);
	ck_assert_str_eq(d.name, "files");
	ck_assert_uint_eq(d.name_len, 5);
	ck_assert_int_eq(d.has_filename, 1);
	ck_assert_str_eq(d.filename, "pkg/util.py");
	ck_assert_uint_eq(d.filename_len, 11);
	cd_parse(LIT("Form-Data;NAME=stdin"), &d);
	ck_assert_int_eq(d.form_data, 1);
	ck_assert_str_eq(d.name, "stdin");
	ck_assert_int_eq(d.has_filename, 0);
	cd_parse(LIT("form-data; name=a; filename=\"\""), &d);
	ck_assert_int_eq(d.has_filename, 1);
	ck_assert_uint_eq(d.filename_len, 0);
}
END_TEST

START_TEST(test_cd_quoted_escapes_and_semicolons)
{
	static struct multipart_disposition d;

	cd_parse(LIT("form-data; name=\"a\\\"b;c\"; filename=\"x;y\\\\z \\\"q\\\".py\""), &d);
	ck_assert_str_eq(d.name, "a\"b;c");
	ck_assert_str_eq(d.filename, "x;y\\z \"q\".py");
	cd_parse(LIT("form-data; name=\"name=x; filename=evil\""), &d);
	ck_assert_str_eq(d.name, "name=x; filename=evil");
	ck_assert_int_eq(d.has_filename, 0);
	/* curl and browsers send other backslashes as they are */
	cd_parse(LIT("form-data; name=files; filename=\"C:\\Users\\me\\x.txt\""), &d);
	ck_assert_str_eq(d.filename, "C:\\Users\\me\\x.txt");
	cd_parse(LIT("form-data; name=files; filename=\"a\\b.py\""), &d);
	ck_assert_str_eq(d.filename, "a\\b.py");
}
END_TEST

START_TEST(test_cd_filename_star_wins)
{
	static struct multipart_disposition d;

	cd_parse(LIT("form-data; name=f; filename=\"plain.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"), &d);
	ck_assert_str_eq(d.filename, "\xc3\xa9t\xc3\xa9.txt");
	ck_assert_uint_eq(d.filename_len, 9);
	cd_parse(LIT("form-data; filename*=utf-8'en'a%2Fb.py; name=f; filename=\"plain.txt\""), &d);
	ck_assert_str_eq(d.filename, "a/b.py");
	ck_assert_int_eq(d.has_filename, 1);
	cd_parse(LIT("form-data; name=f; filename*=UTF-8''a%00b"), &d);
	ck_assert_uint_eq(d.filename_len, 3);
	ck_assert_int_eq(memcmp(d.filename, "a\0b", 4), 0);
	cd_bad(LIT("form-data; filename*=ISO-8859-1''caf%E9"), "charset");
	cd_bad(LIT("form-data; filename*=''x"), "charset");
	cd_bad(LIT("form-data; filename*=UTF-8''a%2"), "malformed");
	cd_bad(LIT("form-data; filename*=UTF-8''a%zz"), "malformed");
	cd_bad(LIT("form-data; filename*=x.txt"), "malformed");
}
END_TEST

START_TEST(test_cd_missing_type_or_name)
{
	static struct multipart_disposition d;

	cd_bad(LIT(""), "no type");
	cd_bad(LIT("   "), "no type");
	cd_bad(LIT("; name=a"), "no type");
	cd_parse(LIT("form-data"), &d);
	ck_assert_int_eq(d.form_data, 1);
	ck_assert_int_eq(d.has_name, 0);
	cd_parse(LIT("form-data; filename=\"main.py\""), &d);
	ck_assert_int_eq(d.has_name, 0);
	ck_assert_int_eq(d.has_filename, 1);
	cd_parse(LIT("attachment; name=x"), &d);
	ck_assert_int_eq(d.form_data, 0);
	ck_assert_int_eq(d.has_name, 1);
}
END_TEST

START_TEST(test_part_without_disposition)
{
	/* The body parser passes it on; the caller finds no disposition. */
	static struct multipart_disposition d;
	struct input in = INPUT("--boundary\r\nContent-Type: text/plain\r\n\r\nhi\r\n--boundary--");
	const char *why = NULL;

	run_all(&in, "B\nHContent-Type:text/plain\nC\nDhi\nE\nZ\n", MULTIPART_E_OK, AT_END);
	ck_assert_int_eq(multipart_parse_disposition("", 0, &d, &why), -1);
	ck_assert_str_eq(why, "the Content-Disposition has no type");
}
END_TEST

START_TEST(test_quoted_header_passes_through_parser)
{
	struct input in = INPUT("--boundary\r\n"
				"Content-Disposition: form-data; name=\"a\\\";b\"; filename=\"c;d\"\r\n"
				"\r\nx\r\n--boundary--");
	static struct multipart_disposition d;
	const char *v = "form-data; name=\"a\\\";b\"; filename=\"c;d\"";

	run_all(&in, "B\nHContent-Disposition:form-data; name=\"a\\\";b\"; filename=\"c;d\"\n"
		"C\nDx\nE\nZ\n", MULTIPART_E_OK, AT_END);
	cd_parse(v, strlen(v), &d);
	ck_assert_str_eq(d.name, "a\";b");
	ck_assert_str_eq(d.filename, "c;d");
}
END_TEST

START_TEST(test_cd_malformed_and_twice)
{
	cd_bad(LIT("form-data; name=\"abc"), "malformed");
	cd_bad(LIT("form-data; name=\"abc\\"), "malformed");
	cd_bad(LIT("form-data; name"), "malformed");
	cd_bad(LIT("form-data; name="), "malformed");
	cd_bad(LIT("form-data; name=\"a\"x"), "malformed");
	cd_bad(LIT("form-data name=a"), "malformed");
	cd_bad(LIT("form-data; =a"), "malformed");
	cd_bad(LIT("form-data; name=a; name=b"), "twice");
	cd_bad(LIT("form-data; filename=a; FILENAME=b"), "twice");
	cd_bad(LIT("form-data; filename*=UTF-8''a; filename*=UTF-8''b"), "twice");
}
END_TEST

START_TEST(test_cd_value_lengths)
{
	static char v[MULTIPART_FILENAME_MAX + 64];
	static struct multipart_disposition d;
	size_t n;

	n = (size_t)sprintf(v, "form-data; name=\"");
	memset(v + n, 'n', MULTIPART_NAME_MAX);
	n += MULTIPART_NAME_MAX;
	v[n++] = '"';
	cd_parse(v, n, &d);
	ck_assert_uint_eq(d.name_len, MULTIPART_NAME_MAX);
	v[n - 1] = 'n';
	v[n++] = '"';
	cd_bad(v, n, "longer than 1024");

	n = (size_t)sprintf(v, "form-data; filename=");
	memset(v + n, 'f', MULTIPART_FILENAME_MAX);
	n += MULTIPART_FILENAME_MAX;
	cd_parse(v, n, &d);
	ck_assert_uint_eq(d.filename_len, MULTIPART_FILENAME_MAX);
	ck_assert_int_eq(d.filename[MULTIPART_FILENAME_MAX], '\0');
	v[n++] = 'f';
	cd_bad(v, n, "longer than 4096");
}
END_TEST

START_TEST(test_cd_uses_length_not_nul)
{
	static struct multipart_disposition d;

	cd_parse("form-data; name=abcdef", strlen("form-data; name=abc"), &d);
	ck_assert_str_eq(d.name, "abc");
	cd_parse(LIT("form-data; name=\"a\0b\""), &d);
	ck_assert_uint_eq(d.name_len, 3);
}
END_TEST

static Suite *multipart_suite(void)
{
	Suite *s = suite_create("multipart");
	TCase *tc = tcase_create("parser");
	TCase *big = tcase_create("big");
	TCase *hdr = tcase_create("header values");

	tcase_add_test(tc, test_one_part);
	tcase_add_test(tc, test_two_parts_binary_file);
	tcase_add_test(tc, test_empty_parts_and_empty_headers);
	tcase_add_test(tc, test_boundary_split_across_reads);
	tcase_add_test(tc, test_crlf_split_across_reads);
	tcase_add_test(tc, test_near_miss_boundaries_are_data);
	tcase_add_test(tc, test_near_miss_at_data_start_and_end);
	tcase_add_test(tc, test_boundary_prefix_is_not_a_delimiter);
	tcase_add_test(tc, test_transport_padding);
	tcase_add_test(tc, test_preamble_and_epilogue_ignored);
	tcase_add_test(tc, test_close_without_crlf_and_epilogue);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_no_parts);
	tcase_add_test(tc, test_header_value_trimmed_name_kept);
	tcase_add_test(tc, test_header_without_colon);
	tcase_add_test(tc, test_header_starting_with_whitespace);
	tcase_add_test(tc, test_lf_only_line_endings);
	tcase_add_test(tc, test_too_many_headers);
	tcase_add_test(tc, test_default_headers_max_is_16);
	tcase_add_test(tc, test_header_line_limit);
	tcase_add_test(tc, test_alloc_counter_is_live);
	tcase_add_test(tc, test_part_max_crossed_mid_stream);
	tcase_add_test(tc, test_part_max_crossed_in_held_back_bytes);
	tcase_add_test(tc, test_plain_data_is_one_span_of_the_callers_buffer);
	tcase_add_test(tc, test_callback_stops_parser);
	tcase_add_test(tc, test_callback_error_is_sticky);
	tcase_add_test(tc, test_data_callback_stop);
	tcase_add_test(tc, test_missing_callbacks_are_skipped);
	tcase_add_test(tc, test_init_checks_boundary_and_limits);
	tcase_add_test(tc, test_longest_boundary);
	tcase_add_test(tc, test_error_names_and_strings);
	tcase_add_test(tc, test_part_without_disposition);
	tcase_add_test(tc, test_quoted_header_passes_through_parser);
	suite_add_tcase(s, tc);

	tcase_add_test(big, test_header_line_of_1mib);
	tcase_add_test(big, test_100000_empty_parts);
	tcase_add_test(big, test_parts_max_hit);
	tcase_add_test(big, test_large_file_data_is_zero_copy);
	tcase_set_timeout(big, 120);
	suite_add_tcase(s, big);

	tcase_add_test(hdr, test_ct_token_and_quoted);
	tcase_add_test(hdr, test_ct_case_and_parameters);
	tcase_add_test(hdr, test_ct_boundary_missing_empty_long);
	tcase_add_test(hdr, test_ct_forbidden_characters);
	tcase_add_test(hdr, test_ct_malformed);
	tcase_add_test(hdr, test_ct_not_form_data_is_415);
	tcase_add_test(hdr, test_cd_name_and_filename);
	tcase_add_test(hdr, test_cd_quoted_escapes_and_semicolons);
	tcase_add_test(hdr, test_cd_filename_star_wins);
	tcase_add_test(hdr, test_cd_missing_type_or_name);
	tcase_add_test(hdr, test_cd_malformed_and_twice);
	tcase_add_test(hdr, test_cd_value_lengths);
	tcase_add_test(hdr, test_cd_uses_length_not_nul);
	suite_add_tcase(s, hdr);
	return s;
}

CHECK_MAIN(multipart_suite)
