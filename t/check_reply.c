#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "reply.h"
#include "util.h"

/* ---- a sink that keeps everything, or fails after a number of bytes ---- */

struct cap {
	char *buf;
	size_t len, size;
	long fail_after;          /* -1: never */
	int failed;
	int writes_after_failure;
	size_t writes;
	size_t largest_write;
};

static int cap_write(void *ctx, const void *buf, size_t len)
{
	struct cap *c = ctx;

	if (c->failed) {
		c->writes_after_failure++;
		return -1;
	}
	if (c->fail_after >= 0 && c->len + len > (size_t)c->fail_after) {
		c->failed = 1;
		return -1;
	}
	if (c->len + len + 1 > c->size) {
		size_t n = (c->len + len + 1) * 2;
		char *p = realloc(c->buf, n);
		ck_assert_ptr_nonnull(p);
		c->buf = p;
		c->size = n;
	}
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	c->buf[c->len] = '\0';
	c->writes++;
	if (len > c->largest_write)
		c->largest_write = len;
	return 0;
}

static struct cap cap;
static struct reply_sink sink;

/* The sink and capture as fresh, for a second reply in one test. */
static void cap_reset(void)
{
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));
	cap.fail_after = -1;
	sink.body_bytes = 0;
	sink.in_body = 0;
	sink.ended = 0;
}

/* ---- a work directory with files ---- */

static char tmpdir[64];
static int dir_fd = -1;

static void setup(void)
{
	memset(&cap, 0, sizeof(cap));
	cap.fail_after = -1;
	memset(&sink, 0, sizeof(sink));
	sink.write = cap_write;
	sink.ctx = &cap;
	strcpy(tmpdir, "/tmp/check_reply.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	dir_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dir_fd, 0);
}

static void remove_tree(int fd)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			ck_assert_int_ge(sub, 0);
			remove_tree(sub);
			ck_assert_int_eq(unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR), 0);
		} else {
			ck_assert_int_eq(unlinkat(dirfd(d), de->d_name, 0), 0);
		}
	}
	closedir(d);
}

static void teardown(void)
{
	remove_tree(dir_fd);
	dir_fd = -1;
	ck_assert_int_eq(rmdir(tmpdir), 0);
	free(cap.buf);
}

static void put_file(const char *name, const void *buf, size_t len)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* A file with these bytes, open for reading at an offset that is not 0
 * (the reply must read from offset 0 regardless). */
static int output_fd(const char *name, const void *buf, size_t len)
{
	int fd;

	put_file(name, buf, len);
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	if (len > 0)
		ck_assert_int_eq(lseek(fd, (off_t)len, SEEK_SET), (off_t)len);
	return fd;
}

static int shrink_on_type;      /* the typer cuts the file short */

static int test_open(void *ctx, const char *name)
{
	int fd = *(int *)ctx;

	return openat(fd, name, (shrink_on_type ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
}

/* Types by content like mime would: PNG signature, a NUL byte, or text. */
static const char *test_typer(void *ctx, int fd, char *out)
{
	unsigned char head[8];
	ssize_t n = pread(fd, head, sizeof(head), 0);

	(void)ctx;
	if (shrink_on_type)
		ck_assert_int_eq(ftruncate(fd, 10), 0);
	if (n == 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0)
		strcpy(out, "image/png");
	else if (n > 0 && memchr(head, 0, (size_t)n) != NULL)
		strcpy(out, "application/octet-stream");
	else
		strcpy(out, "text/plain; charset=utf-8");
	return out;
}

static const char *bad_typer(void *ctx, int fd, char *out)
{
	(void)ctx;
	(void)fd;
	strcpy(out, "text/plain\r\nX-Injected: 1");
	return out;
}

/* A collect_result over names; sizes are not used by reply. */
static struct collect_file files_buf[8];
static struct collect_result files_res;

static const struct collect_result *files_of(const char *const *names, size_t n, int truncated)
{
	ck_assert_uint_le(n, 8);
	for (size_t i = 0; i < n; i++) {
		files_buf[i].name = (char *)names[i];
		files_buf[i].size = 0;
	}
	files_res.files = files_buf;
	files_res.n = n;
	files_res.bytes = 0;
	files_res.truncated = truncated;
	return &files_res;
}

static struct run_result run_ok;

static struct reply_execution exec_base(void)
{
	struct reply_execution e;

	memset(&run_ok, 0, sizeof(run_ok));
	run_ok.status = RUN_OK;
	run_ok.exit_code = 0;
	run_ok.signal = 0;
	run_ok.wall_ns = 1234567891;   /* 1.235 s */
	run_ok.cpu_ns = 120000000;     /* 0.120 s */
	run_ok.max_rss_kib = 20480;

	memset(&e, 0, sizeof(e));
	e.status = 200;
	e.exec_status = "ok";
	e.run = &run_ok;
	e.request_id = "0123abcd";
	e.dependencies = "none";
	e.stdout_fd = -1;
	e.stderr_fd = -1;
	e.files = NULL;
	e.work_fd = dir_fd;
	e.open_file = test_open;
	e.open_ctx = &dir_fd;
	e.typer = test_typer;
	e.typer_ctx = NULL;
	e.json = 0;
	return e;
}

/* ---- reading the reply back ---- */

static const char *body_of(const struct cap *c, size_t *len)
{
	const char *end = strstr(c->buf, "\r\n\r\n");

	ck_assert_ptr_nonnull(end);
	*len = c->len - (size_t)(end + 4 - c->buf);
	return end + 4;
}

/* The body of a JSON reply with these generated files. */
static const char *json_reply_of(const char *const *names, size_t n, size_t *len)
{
	struct reply_execution e = exec_base();

	e.json = 1;
	e.files = files_of(names, n, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	return body_of(&cap, len);
}

/* The value of header name in the header block, copied into out; NULL when
 * absent. Fails the test when the header appears twice. */
static const char *header(const struct cap *c, const char *name, char *out, size_t outlen)
{
	const char *end = strstr(c->buf, "\r\n\r\n");
	const char *p = c->buf, *found = NULL;
	size_t nlen = strlen(name);

	ck_assert_ptr_nonnull(end);
	while (p < end) {
		const char *eol = strstr(p, "\r\n");
		if (strncmp(p, name, nlen) == 0 && p[nlen] == ':' && p[nlen + 1] == ' ') {
			size_t vlen = (size_t)(eol - (p + nlen + 2));
			ck_assert_ptr_null(found);
			ck_assert_uint_lt(vlen, outlen);
			memcpy(out, p + nlen + 2, vlen);
			out[vlen] = '\0';
			found = out;
		}
		p = eol + 2;
	}
	return found;
}

static const char *boundary_of(const struct cap *c, char *out, size_t outlen)
{
	static const char prefix[] = "multipart/form-data; boundary=";
	char ct[256];

	ck_assert_ptr_nonnull(header(c, "Content-Type", ct, sizeof(ct)));
	ck_assert_int_eq(strncmp(ct, prefix, sizeof(prefix) - 1), 0);
	ck_assert_uint_lt(strlen(ct + sizeof(prefix) - 1), outlen);
	strcpy(out, ct + sizeof(prefix) - 1);
	return out;
}

struct part {
	char headers[1024];       /* the part's header lines, CRLF-separated */
	const char *data;
	size_t len;
};

/* Splits a multipart body by its boundary, strictly: it must start with the
 * first delimiter and end with the close delimiter and nothing after it.
 * The number of parts. */
static size_t parse_multipart(const char *body, size_t len, const char *b,
			      struct part *parts, size_t max)
{
	char delim[128];
	size_t dlen, n = 0;
	const char *p = body, *end = body + len;

	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", b);
	/* the first delimiter has no CRLF before it */
	ck_assert_uint_ge(len, dlen);
	ck_assert_int_eq(memcmp(p, delim + 2, dlen - 2), 0);
	p += dlen - 2;
	for (;;) {
		const char *hend, *next;
		size_t hlen;

		ck_assert_uint_ge((size_t)(end - p), 2);
		if (memcmp(p, "--", 2) == 0) {
			ck_assert_uint_eq((size_t)(end - p), 4);
			ck_assert_int_eq(memcmp(p, "--\r\n", 4), 0);
			return n;
		}
		ck_assert_int_eq(memcmp(p, "\r\n", 2), 0);
		p += 2;
		ck_assert_uint_lt(n, max);
		hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		ck_assert_ptr_nonnull(hend);
		hlen = (size_t)(hend - p);
		ck_assert_uint_lt(hlen, sizeof(parts[n].headers));
		memcpy(parts[n].headers, p, hlen);
		parts[n].headers[hlen] = '\0';
		parts[n].data = hend + 4;
		next = memmem(parts[n].data, (size_t)(end - parts[n].data), delim, dlen);
		ck_assert_ptr_nonnull(next);
		parts[n].len = (size_t)(next - parts[n].data);
		n++;
		p = next + dlen;
	}
}

static void assert_part(const struct part *pt, const char *headers, const void *data, size_t len)
{
	ck_assert_str_eq(pt->headers, headers);
	ck_assert_uint_eq(pt->len, len);
	ck_assert_int_eq(memcmp(pt->data, data, len), 0);
}

static size_t b64_decode(const char *in, size_t len, unsigned char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;

	ck_assert_uint_eq(len % 4, 0);
	for (size_t i = 0; i < len; i += 4) {
		unsigned v = 0;
		int pad = 0;
		for (size_t k = 0; k < 4; k++) {
			const char *c;
			v <<= 6;
			if (in[i + k] == '=') {
				ck_assert_uint_eq(i + 4, len);
				pad++;
				continue;
			}
			ck_assert_int_eq(pad, 0);
			c = strchr(tab, in[i + k]);
			ck_assert_msg(c != NULL && *c != '\0', "bad base64 byte");
			v |= (unsigned)(c - tab);
		}
		out[n++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)v;
	}
	return n;
}

static void fill_random_bytes(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (unsigned char)(seed >> 16);
	}
}

/* ---- multipart ---- */

START_TEST(test_multipart_parses_back)
{
	/* bytes that look like delimiters and header ends */
	static const unsigned char png[] = "\x89PNG\r\n\x1a\n\r\n--\r\n\r\n--x--\r\n\0\xff";
	static const char out_bytes[] = "hello\r\n--\r\nworld\n";
	static const unsigned char err_bytes[] = "warn\0\x01\xfe\r\n--";
	static const char *const names[] = { "plot.png", "sub/data.txt" };
	struct reply_execution e = exec_base();
	struct part parts[8];
	char b[128];
	const char *body;
	size_t len;

	ck_assert_int_eq(mkdirat(dir_fd, "sub", 0700), 0);
	put_file("plot.png", png, sizeof(png));
	put_file("sub/data.txt", "a,b\n1,2\n", 8);
	e.stdout_fd = output_fd("stdout.cap", out_bytes, sizeof(out_bytes) - 1);
	e.stderr_fd = output_fd("stderr.cap", err_bytes, sizeof(err_bytes) - 1);
	e.files = files_of(names, 2, 0);

	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_int_eq(strncmp(cap.buf, "Status: 200 OK\r\n", 16), 0);
	body = body_of(&cap, &len);
	ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)), parts, 8), 4);
	assert_part(&parts[0], "Content-Disposition: form-data; name=\"stdout\"",
		    out_bytes, sizeof(out_bytes) - 1);
	assert_part(&parts[1], "Content-Disposition: form-data; name=\"stderr\"",
		    err_bytes, sizeof(err_bytes) - 1);
	assert_part(&parts[2], "Content-Disposition: form-data; name=\"plot.png\"; "
		    "filename=\"plot.png\"\r\nContent-Type: image/png", png, sizeof(png));
	assert_part(&parts[3], "Content-Disposition: form-data; name=\"sub/data.txt\"; "
		    "filename=\"sub/data.txt\"\r\nContent-Type: text/plain; charset=utf-8",
		    "a,b\n1,2\n", 8);
	/* the sink was told where the body starts and how long it is */
	ck_assert_int_eq(sink.in_body, 1);
	ck_assert_uint_eq(sink.body_bytes, len);
	close(e.stdout_fd);
	close(e.stderr_fd);
}
END_TEST

START_TEST(test_multipart_empty_outputs)
{
	struct reply_execution e = exec_base();
	char b[128], want[512];
	const char *body;
	size_t len;

	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	boundary_of(&cap, b, sizeof(b));
	snprintf(want, sizeof(want),
		 "--%s\r\nContent-Disposition: form-data; name=\"stdout\"\r\n\r\n\r\n"
		 "--%s\r\nContent-Disposition: form-data; name=\"stderr\"\r\n\r\n\r\n"
		 "--%s--\r\n", b, b, b);
	body = body_of(&cap, &len);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_str_eq(body, want);
}
END_TEST

START_TEST(test_headers_exited)
{
	struct reply_execution e = exec_base();
	char v[256];

	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_int_eq(strncmp(cap.buf, "Status: 200 OK\r\n", 16), 0);
	ck_assert_str_eq(header(&cap, "X-Execution-Status", v, sizeof(v)), "ok");
	ck_assert_str_eq(header(&cap, "X-Exit-Code", v, sizeof(v)), "0");
	ck_assert_ptr_null(header(&cap, "X-Signal", v, sizeof(v)));
	ck_assert_str_eq(header(&cap, "X-Execution-Time", v, sizeof(v)), "1.235");
	ck_assert_str_eq(header(&cap, "X-CPU-Time", v, sizeof(v)), "0.120");
	ck_assert_str_eq(header(&cap, "X-Max-RSS", v, sizeof(v)), "20480");
	ck_assert_ptr_null(header(&cap, "X-Execution-Start", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Truncated", v, sizeof(v)));
	ck_assert_str_eq(header(&cap, "X-Dependencies", v, sizeof(v)), "none");
	ck_assert_str_eq(header(&cap, "X-Request-Id", v, sizeof(v)), "0123abcd");
	e.start = "warm";
	cap_reset();
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_str_eq(header(&cap, "X-Execution-Start", v, sizeof(v)), "warm");
	ck_assert_str_eq(header(&cap, "Cache-Control", v, sizeof(v)), "no-store");
}
END_TEST

START_TEST(test_headers_signalled_and_truncated)
{
	struct reply_execution e = exec_base();
	char v[256];

	run_ok.status = RUN_TIMEOUT;
	run_ok.exit_code = -1;
	run_ok.signal = SIGKILL;
	run_ok.wall_ns = 10000400000;  /* 10.0004 s rounds down */
	run_ok.cpu_ns = 999500000;     /* 0.9995 s rounds up */
	run_ok.stdout_truncated = 1;
	run_ok.stderr_truncated = 1;
	e.exec_status = "timeout";
	e.files = files_of(NULL, 0, 1);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_str_eq(header(&cap, "X-Execution-Status", v, sizeof(v)), "timeout");
	ck_assert_str_eq(header(&cap, "X-Signal", v, sizeof(v)), "SIGKILL");
	ck_assert_ptr_null(header(&cap, "X-Exit-Code", v, sizeof(v)));
	ck_assert_str_eq(header(&cap, "X-Execution-Time", v, sizeof(v)), "10.000");
	ck_assert_str_eq(header(&cap, "X-CPU-Time", v, sizeof(v)), "1.000");
	ck_assert_str_eq(header(&cap, "X-Truncated", v, sizeof(v)), "stdout,stderr,files");
}
END_TEST

START_TEST(test_headers_truncated_one)
{
	struct reply_execution e = exec_base();
	char v[256];

	run_ok.stderr_truncated = 1;
	run_ok.exit_code = 2;
	e.exec_status = "error";
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_str_eq(header(&cap, "X-Truncated", v, sizeof(v)), "stderr");
	ck_assert_str_eq(header(&cap, "X-Exit-Code", v, sizeof(v)), "2");
}
END_TEST

START_TEST(test_dependency_failure_no_run)
{
	static const char pip[] = "ERROR: No matching distribution found for nosuchpkg\n";
	struct reply_execution e = exec_base();
	struct part parts[4];
	char v[256], b[128];
	const char *body;
	size_t len;

	e.status = 424;
	e.exec_status = "dependency_error";
	e.run = NULL;
	e.dependencies = NULL;
	e.stderr_fd = output_fd("pip.log", pip, sizeof(pip) - 1);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_int_eq(strncmp(cap.buf, "Status: 424 Failed Dependency\r\n", 31), 0);
	ck_assert_str_eq(header(&cap, "X-Execution-Status", v, sizeof(v)), "dependency_error");
	ck_assert_ptr_null(header(&cap, "X-Exit-Code", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Signal", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Execution-Time", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-CPU-Time", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Max-RSS", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Execution-Start", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Truncated", v, sizeof(v)));
	ck_assert_ptr_null(header(&cap, "X-Dependencies", v, sizeof(v)));
	ck_assert_str_eq(header(&cap, "X-Request-Id", v, sizeof(v)), "0123abcd");
	body = body_of(&cap, &len);
	ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)), parts, 4), 2);
	assert_part(&parts[1], "Content-Disposition: form-data; name=\"stderr\"",
		    pip, sizeof(pip) - 1);
	close(e.stderr_fd);
}
END_TEST

START_TEST(test_dependency_failure_json)
{
	struct reply_execution e = exec_base();
	size_t len;

	e.status = 424;
	e.exec_status = "dependency_error";
	e.run = NULL;
	e.json = 1;
	e.stderr_fd = output_fd("pip.log", "no wheel\n", 9);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_str_eq(body_of(&cap, &len),
			 "{\"status\":\"dependency_error\",\"exit_code\":null,\"signal\":null,"
			 "\"stdout\":\"\",\"stdout_encoding\":\"utf-8\","
			 "\"stderr\":\"no wheel\\n\",\"stderr_encoding\":\"utf-8\",\"time\":null,"
			 "\"max_rss_kib\":null,\"start\":null,\"truncated\":[],\"dependencies\":\"none\","
			 "\"files\":[]}");
	close(e.stderr_fd);
}
END_TEST

START_TEST(test_boundary_random_hex)
{
	struct reply_execution e = exec_base();
	char b1[128], b2[128];

	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	boundary_of(&cap, b1, sizeof(b1));
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));
	cap.fail_after = -1;
	memset(&sink, 0, sizeof(sink));
	sink.write = cap_write;
	sink.ctx = &cap;
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	boundary_of(&cap, b2, sizeof(b2));
	ck_assert_uint_eq(strlen(b1), 2 * REPLY_BOUNDARY_BYTES);
	ck_assert_uint_eq(strlen(b1), 48);
	ck_assert_uint_eq(strspn(b1, "0123456789abcdef"), 48);
	ck_assert_uint_eq(strlen(b2), 48);
	ck_assert_uint_eq(strspn(b2, "0123456789abcdef"), 48);
	ck_assert_str_ne(b1, b2);
}
END_TEST

/* '"', '\\', controls and bytes that are not UTF-8 are %XX; UTF-8 stays. */
START_TEST(test_file_name_escaped)
{
	static const struct {
		const char *name, *written;
	} cases[] = {
		{ "we\"ird\\na\r\nme.txt", "we%22ird%5Cna%0D%0Ame.txt" },
		{ "\xc3\xa9t\xe9\xe2\x82", "\xc3\xa9t%E9%E2%82" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *names[] = { cases[i].name };
		struct reply_execution e = exec_base();
		struct part parts[4];
		char b[128], want[256];
		const char *body;
		size_t len;

		cap_reset();
		put_file(names[0], "x", 1);
		e.files = files_of(names, 1, 0);
		ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
		body = body_of(&cap, &len);
		ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)),
						  parts, 4), 3);
		snprintf(want, sizeof(want), "Content-Disposition: form-data; name=\"%s\"; "
			 "filename=\"%s\"\r\nContent-Type: text/plain; charset=utf-8",
			 cases[i].written, cases[i].written);
		assert_part(&parts[2], want, "x", 1);
		ck_assert_int_eq(unlinkat(dir_fd, names[0], 0), 0);
	}
}
END_TEST

START_TEST(test_large_file_streamed)
{
	static const char *const names[] = { "big.bin" };
	size_t size = REPLY_CHUNK * 3 + 12345;
	unsigned char *data = malloc(size);
	struct reply_execution e = exec_base();
	struct part parts[4];
	char b[128];
	const char *body;
	size_t len;

	ck_assert_ptr_nonnull(data);
	fill_random_bytes(data, size, 7);
	data[0] = 0;
	put_file("big.bin", data, size);
	e.files = files_of(names, 1, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	body = body_of(&cap, &len);
	ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)), parts, 4), 3);
	assert_part(&parts[2], "Content-Disposition: form-data; name=\"big.bin\"; "
		    "filename=\"big.bin\"\r\nContent-Type: application/octet-stream", data, size);
	/* streamed in pieces, never in one write */
	ck_assert_uint_le(cap.largest_write, REPLY_CHUNK);
	free(data);
}
END_TEST

START_TEST(test_large_output_streamed)
{
	size_t size = REPLY_CHUNK * 3 + 77;
	unsigned char *data = malloc(size);
	struct reply_execution e = exec_base();
	struct part parts[4];
	char b[128];
	const char *body;
	size_t len;

	ck_assert_ptr_nonnull(data);
	fill_random_bytes(data, size, 3);
	e.stdout_fd = output_fd("stdout.cap", data, size);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	body = body_of(&cap, &len);
	ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)), parts, 4), 2);
	assert_part(&parts[0], "Content-Disposition: form-data; name=\"stdout\"", data, size);
	ck_assert_uint_le(cap.largest_write, REPLY_CHUNK);
	close(e.stdout_fd);
	free(data);
}
END_TEST

START_TEST(test_file_shrinks_is_error)
{
	static const char *const names[] = { "shrinks.txt" };
	struct reply_execution e = exec_base();
	char text[1000], b[128], close_delim[160];

	memset(text, 'a', sizeof(text));
	put_file("shrinks.txt", text, sizeof(text));
	e.files = files_of(names, 1, 0);
	shrink_on_type = 1;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	shrink_on_type = 0;
	/* cut short: no close delimiter, and no part passed off as the file */
	snprintf(close_delim, sizeof(close_delim), "--%s--", boundary_of(&cap, b, sizeof(b)));
	ck_assert_ptr_null(strstr(cap.buf, close_delim));
	ck_assert_ptr_null(strstr(cap.buf, "aaaaaaaaaa"));
}
END_TEST

START_TEST(test_file_shrinks_json_is_error)
{
	static const char *const names[] = { "shrinks.txt" };
	struct reply_execution e = exec_base();
	char text[1000];

	memset(text, 'a', sizeof(text));
	put_file("shrinks.txt", text, sizeof(text));
	e.files = files_of(names, 1, 0);
	e.json = 1;
	shrink_on_type = 1;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	shrink_on_type = 0;
	/* found out while planning: nothing sent */
	ck_assert_uint_eq(cap.len, 0);
	ck_assert_int_eq(sink.in_body, 0);
}
END_TEST

START_TEST(test_missing_file_is_error)
{
	static const char *const names[] = { "gone.png" };
	struct reply_execution e = exec_base();

	e.files = files_of(names, 1, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	/* found out while planning: nothing sent, an error reply can follow */
	ck_assert_uint_eq(cap.len, 0);
	ck_assert_int_eq(sink.in_body, 0);
}
END_TEST

START_TEST(test_open_file_required)
{
	static const char *const names[] = { "a.txt" };
	struct reply_execution e = exec_base();

	put_file("a.txt", "a", 1);
	e.files = files_of(names, 1, 0);
	e.open_file = NULL;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	ck_assert_uint_eq(cap.len, 0);
	ck_assert_int_eq(sink.in_body, 0);
}
END_TEST

START_TEST(test_typer_fallbacks)
{
	static const char *const names[] = { "a.txt" };
	struct reply_execution e = exec_base();
	struct part parts[4];
	char b[128];
	const char *body;
	size_t len;

	put_file("a.txt", "abc", 3);
	e.files = files_of(names, 1, 0);
	e.typer = bad_typer;
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_ptr_null(strstr(cap.buf, "X-Injected"));
	body = body_of(&cap, &len);
	ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)), parts, 4), 3);
	assert_part(&parts[2], "Content-Disposition: form-data; name=\"a.txt\"; "
		    "filename=\"a.txt\"\r\nContent-Type: application/octet-stream", "abc", 3);

	free(cap.buf);
	memset(&cap, 0, sizeof(cap));
	cap.fail_after = -1;
	memset(&sink, 0, sizeof(sink));
	sink.write = cap_write;
	sink.ctx = &cap;
	e.typer = NULL;
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_ptr_nonnull(strstr(cap.buf, "\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n"));
}
END_TEST

START_TEST(test_header_injection_refused)
{
	struct reply_execution e = exec_base();

	e.request_id = "id\r\nSet-Cookie: x=1";
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	ck_assert_uint_eq(cap.len, 0);
}
END_TEST

START_TEST(test_sink_failure)
{
	static const char *const names[] = { "big.bin" };
	size_t size = REPLY_CHUNK * 2;
	unsigned char *data = malloc(size);
	struct reply_execution e = exec_base();

	ck_assert_ptr_nonnull(data);
	fill_random_bytes(data, size, 11);
	put_file("big.bin", data, size);
	e.files = files_of(names, 1, 0);

	/* fails on the header block */
	cap.fail_after = 0;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	ck_assert_int_eq(cap.writes_after_failure, 0);

	/* fails in the middle of the file: stops writing at once */
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));
	memset(&sink, 0, sizeof(sink));
	sink.write = cap_write;
	sink.ctx = &cap;
	cap.fail_after = REPLY_CHUNK;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	ck_assert_int_eq(cap.failed, 1);
	ck_assert_int_eq(cap.writes_after_failure, 0);

	/* the same in JSON */
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));
	memset(&sink, 0, sizeof(sink));
	sink.write = cap_write;
	sink.ctx = &cap;
	cap.fail_after = REPLY_CHUNK;
	e.json = 1;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	ck_assert_int_eq(cap.failed, 1);
	ck_assert_int_eq(cap.writes_after_failure, 0);
	free(data);
}
END_TEST

START_TEST(test_second_reply_refused)
{
	struct reply_execution e = exec_base();
	size_t len;

	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	len = cap.len;
	ck_assert_int_eq(reply_write_error(&sink, 500, "internal", "late", NULL, NULL), -1);
	ck_assert_uint_eq(cap.len, len);
}
END_TEST

/* ---- JSON ---- */

START_TEST(test_json_text_and_binary_files)
{
	static const char *const names[] = { "a.txt", "b.bin" };
	static const unsigned char bin[] = { 0x00, 0xff, 0x10, '\r', '\n' };
	static const char out_bytes[] = "hi \"q\" \\ \n\x01\xc3\xa9";
	struct reply_execution e = exec_base();
	char v[256];
	size_t len;

	put_file("a.txt", "x\ny\n", 4);
	put_file("b.bin", bin, sizeof(bin));
	run_ok.status = RUN_ERROR;
	run_ok.exit_code = 3;
	run_ok.stdout_truncated = 1;
	e.exec_status = "error";
	e.dependencies = "cached";
	e.start = "warm";
	e.json = 1;
	e.files = files_of(names, 2, 0);
	e.stdout_fd = output_fd("stdout.cap", out_bytes, sizeof(out_bytes) - 1);
	e.stderr_fd = output_fd("stderr.cap", "Traceback\n", 10);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_str_eq(header(&cap, "Content-Type", v, sizeof(v)), "application/json");
	ck_assert_str_eq(header(&cap, "X-Exit-Code", v, sizeof(v)), "3");
	ck_assert_str_eq(body_of(&cap, &len),
			 "{\"status\":\"error\",\"exit_code\":3,\"signal\":null,"
			 "\"stdout\":\"aGkgInEiIFwgCgHDqQ==\",\"stdout_encoding\":\"base64\","
			 "\"stderr\":\"Traceback\\n\",\"stderr_encoding\":\"utf-8\","
			 "\"time\":{\"wall\":1.235,\"cpu\":0.120},\"max_rss_kib\":20480,"
			 "\"start\":\"warm\","
			 "\"truncated\":[\"stdout\"],\"dependencies\":\"cached\",\"files\":["
			 "{\"name\":\"a.txt\",\"content_type\":\"text/plain; charset=utf-8\","
			 "\"size\":4,\"encoding\":\"utf-8\",\"content\":\"x\\ny\\n\"},"
			 "{\"name\":\"b.bin\",\"content_type\":\"application/octet-stream\","
			 "\"size\":5,\"encoding\":\"base64\",\"content\":\"AP8QDQo=\"}]}");
	ck_assert_uint_eq(sink.body_bytes, len);
	close(e.stdout_fd);
	close(e.stderr_fd);
}
END_TEST

START_TEST(test_json_signal)
{
	struct reply_execution e = exec_base();
	size_t len;

	run_ok.status = RUN_MEMORY;
	run_ok.exit_code = -1;
	run_ok.signal = SIGKILL;
	run_ok.wall_ns = 0;
	run_ok.cpu_ns = 5000000;
	e.exec_status = "memory";
	e.json = 1;
	e.files = files_of(NULL, 0, 1);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_str_eq(body_of(&cap, &len),
			 "{\"status\":\"memory\",\"exit_code\":null,\"signal\":\"SIGKILL\","
			 "\"stdout\":\"\",\"stdout_encoding\":\"utf-8\","
			 "\"stderr\":\"\",\"stderr_encoding\":\"utf-8\","
			 "\"time\":{\"wall\":0.000,\"cpu\":0.005},\"max_rss_kib\":20480,"
			 "\"start\":\"cold\","
			 "\"truncated\":[\"files\"],\"dependencies\":\"none\",\"files\":[]}");
}
END_TEST

START_TEST(test_json_invalid_utf8_stdout)
{
	/* a stray continuation, a lone lead, a cut-off 3-byte start, a surrogate,
	 * and a 2-byte start cut off by the end of the output */
	static const char out_bytes[] = "a\x80" "b\xff" "c\xe2\x82" "d\xed\xa0\x80" "e\xc3";
	struct reply_execution e = exec_base();
	size_t len;

	e.json = 1;
	e.stdout_fd = output_fd("stdout.cap", out_bytes, sizeof(out_bytes) - 1);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	/* whole, as base64: "a\x80b\xffc\xe2\x82d\xed\xa0\x80e\xc3" */
	ck_assert_ptr_nonnull(strstr(body_of(&cap, &len),
		"\"stdout\":\"YYBi/2PigmTtoIBlww==\",\"stdout_encoding\":\"base64\","));
	close(e.stdout_fd);
}
END_TEST

/* A character split by the chunk boundary of a read is not "invalid". */
START_TEST(test_json_utf8_across_chunks)
{
	size_t size = REPLY_CHUNK * 2 + 5;
	char *data = malloc(size);
	struct reply_execution e = exec_base();
	const char *body, *s;
	size_t len, n = 0;

	ck_assert_ptr_nonnull(data);
	memset(data, 'a', size);
	/* "€" (3 bytes) straddling the first boundary, "é" the second */
	memcpy(data + REPLY_CHUNK - 1, "\xe2\x82\xac", 3);
	memcpy(data + 2 * REPLY_CHUNK - 1, "\xc3\xa9", 2);
	e.json = 1;
	e.stdout_fd = output_fd("stdout.cap", data, size);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	body = body_of(&cap, &len);
	ck_assert_ptr_null(strstr(body, "\xef\xbf\xbd"));
	s = strstr(body, "\"stdout\":\"") + 10;
	ck_assert_int_eq(memcmp(s, data, size), 0);
	ck_assert_int_eq(s[size], '"');
	for (const char *p = body; (p = strstr(p, "\xe2\x82\xac")) != NULL; p++)
		n++;
	ck_assert_uint_eq(n, 1);
	close(e.stdout_fd);
	free(data);
}
END_TEST

START_TEST(test_json_large_files)
{
	static const char *const names[] = { "big.bin", "big.txt" };
	size_t size = REPLY_CHUNK * 3 + 1001;
	unsigned char *bin = malloc(size), *dec = malloc(size + 3);
	char *txt = malloc(size);
	struct reply_execution e = exec_base();
	const char *body, *s, *q;
	size_t len;

	ck_assert_ptr_nonnull(bin);
	ck_assert_ptr_nonnull(dec);
	ck_assert_ptr_nonnull(txt);
	fill_random_bytes(bin, size, 5);
	bin[0] = 0;
	/* 2-byte characters from an odd offset: every chunk boundary splits one */
	memset(txt, 'z', size);
	for (size_t i = 1; i + 2 < size; i += 2)
		memcpy(txt + i, "\xc3\xa9", 2);
	put_file("big.bin", bin, size);
	put_file("big.txt", txt, size);
	e.json = 1;
	e.files = files_of(names, 2, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	body = body_of(&cap, &len);

	s = strstr(body, "{\"name\":\"big.bin\"");
	ck_assert_ptr_nonnull(s);
	s = strstr(s, "\"encoding\":\"base64\",\"content\":\"");
	ck_assert_ptr_nonnull(s);
	s += strlen("\"encoding\":\"base64\",\"content\":\"");
	q = strchr(s, '"');
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_eq(b64_decode(s, (size_t)(q - s), dec), size);
	ck_assert_int_eq(memcmp(dec, bin, size), 0);

	s = strstr(body, "{\"name\":\"big.txt\"");
	ck_assert_ptr_nonnull(s);
	s = strstr(s, "\"encoding\":\"utf-8\",\"content\":\"");
	ck_assert_ptr_nonnull(s);
	s += strlen("\"encoding\":\"utf-8\",\"content\":\"");
	ck_assert_int_eq(memcmp(s, txt, size), 0);
	ck_assert_str_eq(s + size, "\"}]}");
	ck_assert_uint_le(cap.largest_write, REPLY_CHUNK);
	free(bin);
	free(dec);
	free(txt);
}
END_TEST

/* A file whose only invalid byte sits after the first chunk is base64. */
START_TEST(test_json_late_invalid_utf8_is_base64)
{
	static const char *const names[] = { "late.txt" };
	size_t size = REPLY_CHUNK + 100;
	char *data = malloc(size);
	struct reply_execution e = exec_base();
	size_t len;

	ck_assert_ptr_nonnull(data);
	memset(data, 'x', size);
	data[REPLY_CHUNK + 50] = (char)0xff;
	put_file("late.txt", data, size);
	e.json = 1;
	e.files = files_of(names, 1, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_ptr_nonnull(strstr(body_of(&cap, &len), "\"encoding\":\"base64\",\"content\":\"eHh4"));
	free(data);
}
END_TEST

/* ---- bounds: encodings, max_reply, the deadline ---- */

/* A file of NULs (a sparse file, say) is base64 in JSON: 4/3 its size,
 * not the 6 x of "\u0000" each. */
START_TEST(test_json_nul_file_is_base64)
{
	static const char *const names[] = { "zeros.bin" };
	size_t size = 3 * REPLY_CHUNK + 1;
	int fd = openat(dir_fd, "zeros.bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len;
	const char *body;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
	body = json_reply_of(names, 1, &len);
	ck_assert_ptr_nonnull(strstr(body, "\"encoding\":\"base64\",\"content\":\"AAAA"));
	ck_assert_ptr_null(strstr(body, "\\u0000"));
	ck_assert_uint_le(len, (size + 2) / 3 * 4 + 512);
}
END_TEST

/* Text is text when printable: tab, CR, LF, quotes, U+2028 and non-ASCII
 * stay; a control character (ESC, DEL, C1) makes the whole output base64. */
START_TEST(test_json_printable_text)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "a\tb\r\n\"q\" \\ \xc3\xa9\xe2\x80\xa8", "\"stdout\":\"a\\tb\\r\\n\\\"q\\\" \\\\ "
		  "\xc3\xa9\\u2028\",\"stdout_encoding\":\"utf-8\"" },
		{ "\x1b[1mbold", "\"stdout\":\"G1sxbWJvbGQ=\",\"stdout_encoding\":\"base64\"" },
		{ "del\x7f", "\"stdout\":\"ZGVsfw==\",\"stdout_encoding\":\"base64\"" },
		{ "c1\xc2\x85", "\"stdout\":\"YzHChQ==\",\"stdout_encoding\":\"base64\"" },
		{ "nbsp\xc2\xa0", "\"stdout\":\"nbsp\xc2\xa0\",\"stdout_encoding\":\"utf-8\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reply_execution e = exec_base();
		size_t len;

		cap_reset();
		e.json = 1;
		e.stdout_fd = output_fd("stdout.cap", cases[i].in, strlen(cases[i].in));
		ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
		ck_assert_msg(strstr(body_of(&cap, &len), cases[i].want) != NULL,
			      "case %zu: %s", i, body_of(&cap, &len));
		close(e.stdout_fd);
	}
}
END_TEST

static int has_file_part(const char *body, const char *name)
{
	char want[128];

	snprintf(want, sizeof(want), "filename=\"%s\"", name);
	return strstr(body, want) != NULL;
}

/* A file that would pass max_reply is left out whole; a later, smaller one
 * still fits; X-Truncated says so. In both forms, at every cap from the
 * smallest to one that fits everything, the body never passes the cap. */
START_TEST(test_max_reply_leaves_files_out)
{
	static const char *const names[] = { "a.txt", "big.bin", "z.txt" };
	static unsigned char big[40000];
	char v[128];

	fill_random_bytes(big, sizeof(big), 7);
	put_file("a.txt", "first\n", 6);
	put_file("big.bin", big, sizeof(big));
	put_file("z.txt", "last\n", 5);
	for (int json = 0; json <= 1; json++) {
		uint64_t whole;

		cap_reset();
		{
			struct reply_execution e = exec_base();

			e.json = json;
			e.files = files_of(names, 3, 0);
			ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
			ck_assert_ptr_null(header(&cap, "X-Truncated", v, sizeof(v)));
			whole = sink.body_bytes;
		}
		for (uint64_t cap_at = 400; cap_at < whole + 100; cap_at += 997) {
			struct reply_execution e = exec_base();
			size_t len;
			const char *body;

			cap_reset();
			e.json = json;
			e.files = files_of(names, 3, 0);
			e.max_reply = cap_at;
			ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
			body = body_of(&cap, &len);
			ck_assert_uint_le(sink.body_bytes, cap_at);
			if (cap_at < whole) {
				ck_assert_str_eq(header(&cap, "X-Truncated", v, sizeof(v)),
						 "files,reply");
				if (json)
					ck_assert_ptr_nonnull(strstr(body,
						"\"truncated\":[\"files\",\"reply\"]"));
			}
			if (cap_at >= 1000 && cap_at < 40000) {
				/* the small ones fit around the big one */
				ck_assert(json ? strstr(body, "\"name\":\"z.txt\"") != NULL
					       : has_file_part(body, "z.txt"));
				ck_assert(json ? strstr(body, "big.bin") == NULL
					       : !has_file_part(body, "big.bin"));
			}
		}
	}
}
END_TEST

/* In multipart the plan is exact: a cap of the whole size sends it all. */
START_TEST(test_max_reply_exact_fit)
{
	static const char *const names[] = { "a.txt", "b.txt" };
	char v[128];
	uint64_t whole;
	struct reply_execution e = exec_base();

	put_file("a.txt", "aaaa", 4);
	put_file("b.txt", "bbbb", 4);
	e.files = files_of(names, 2, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	whole = sink.body_bytes;
	cap_reset();
	e.max_reply = whole;
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_uint_eq(sink.body_bytes, whole);
	ck_assert_ptr_null(header(&cap, "X-Truncated", v, sizeof(v)));
	cap_reset();
	e.max_reply = whole - 1;
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	ck_assert_uint_lt(sink.body_bytes, whole);
	ck_assert_str_eq(header(&cap, "X-Truncated", v, sizeof(v)), "files,reply");
	ck_assert(has_file_part(cap.buf, "a.txt"));
	ck_assert(!has_file_part(cap.buf, "b.txt"));
}
END_TEST

/* '%' is escaped too, so a"b and a%22b are two names; a file named stdout
 * or stderr has a part name that is not the output's. */
START_TEST(test_names_unambiguous_multipart)
{
	static const char *const names[] = { "a\"b", "a%22b", "stderr", "stdout", "stdouts" };
	struct reply_execution e = exec_base();
	struct part parts[8];
	char b[128];
	const char *body;
	size_t len;

	for (size_t i = 0; i < 5; i++)
		put_file(names[i], "f", 1);
	e.stdout_fd = output_fd("out.cap", "real", 4);
	e.files = files_of(names, 5, 0);
	ck_assert_int_eq(reply_write_execution(&sink, &e), 0);
	body = body_of(&cap, &len);
	ck_assert_uint_eq(parse_multipart(body, len, boundary_of(&cap, b, sizeof(b)), parts, 8), 7);
	assert_part(&parts[0], "Content-Disposition: form-data; name=\"stdout\"", "real", 4);
	assert_part(&parts[1], "Content-Disposition: form-data; name=\"stderr\"", "", 0);
	assert_part(&parts[2], "Content-Disposition: form-data; name=\"a%22b\"; "
		    "filename=\"a%22b\"\r\nContent-Type: text/plain; charset=utf-8", "f", 1);
	assert_part(&parts[3], "Content-Disposition: form-data; name=\"a%2522b\"; "
		    "filename=\"a%2522b\"\r\nContent-Type: text/plain; charset=utf-8", "f", 1);
	assert_part(&parts[4], "Content-Disposition: form-data; name=\"%73tderr\"; "
		    "filename=\"stderr\"\r\nContent-Type: text/plain; charset=utf-8", "f", 1);
	assert_part(&parts[5], "Content-Disposition: form-data; name=\"%73tdout\"; "
		    "filename=\"stdout\"\r\nContent-Type: text/plain; charset=utf-8", "f", 1);
	assert_part(&parts[6], "Content-Disposition: form-data; name=\"stdouts\"; "
		    "filename=\"stdouts\"\r\nContent-Type: text/plain; charset=utf-8", "f", 1);
	close(e.stdout_fd);
}
END_TEST

/* A name that is not UTF-8 comes whole in "name_b64"; others have none. */
START_TEST(test_json_name_b64)
{
	static const char *const names[] = { "ok.txt", "x\xff.bin", "x\xfe.bin" };
	const char *body;
	size_t len;

	for (size_t i = 0; i < 3; i++)
		put_file(names[i], "f", 1);
	body = json_reply_of(names, 3, &len);
	ck_assert_ptr_nonnull(strstr(body, "{\"name\":\"ok.txt\",\"content_type\""));
	ck_assert_ptr_nonnull(strstr(body, "{\"name\":\"x\xef\xbf\xbd.bin\",\"name_b64\":\"eP8uYmlu\","));
	ck_assert_ptr_nonnull(strstr(body, "{\"name\":\"x\xef\xbf\xbd.bin\",\"name_b64\":\"eP4uYmlu\","));
}
END_TEST

/* Past the deadline nothing more is written. */
START_TEST(test_deadline_passed)
{
	struct reply_execution e = exec_base();

	e.deadline_ns = util_now_ns() - 1;
	e.send_fd = -1;
	ck_assert_int_eq(reply_write_execution(&sink, &e), -1);
	ck_assert_uint_eq(cap.len, 0);
}
END_TEST

static int fd_write(void *ctx, const void *buf, size_t len)
{
	int fd = *(int *)ctx;
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A reader that never reads holds the writer no longer than the deadline,
 * even inside one blocked write. */
START_TEST(test_deadline_slow_reader)
{
	static const char *const names[] = { "big.bin" };
	static unsigned char big[8 << 20];
	struct reply_execution e = exec_base();
	struct reply_sink s = { .write = fd_write };
	int sv[2];
	int64_t t0, took;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	put_file("big.bin", big, sizeof(big));
	s.ctx = &sv[0];
	e.files = files_of(names, 1, 0);
	t0 = util_now_ns();
	e.deadline_ns = t0 + 300 * 1000000LL;
	e.send_fd = sv[0];
	ck_assert_int_eq(reply_write_execution(&s, &e), -1);
	took = util_now_ns() - t0;
	ck_assert_int_ge(took, 250 * 1000000LL);
	ck_assert_int_lt(took, 1500 * 1000000LL);
	ck_assert_uint_lt(s.body_bytes, sizeof(big));
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ---- JSON strings ---- */

static void assert_json_string(const void *in, size_t len, const char *want)
{
	struct cap c = { .fail_after = -1 };
	struct reply_sink s = { .write = cap_write, .ctx = &c };

	ck_assert_int_eq(reply_json_string_body(&s, in, len), 0);
	ck_assert_uint_eq(c.len, strlen(want));
	ck_assert_str_eq(c.buf != NULL ? c.buf : "", want);
	free(c.buf);
}

START_TEST(test_json_string_escapes)
{
	assert_json_string("", 0, "");
	assert_json_string("plain", 5, "plain");
	assert_json_string("\"\\/", 3, "\\\"\\\\/");
	assert_json_string("\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t");
	assert_json_string("\x00\x01\x1f\x7f", 4, "\\u0000\\u0001\\u001f\x7f");
	/* U+2028, U+2029 escaped; U+2027 and an emoji kept */
	assert_json_string("\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xa7\xf0\x9f\x98\x80", 13,
			   "\\u2028\\u2029\xe2\x80\xa7\xf0\x9f\x98\x80");
}
END_TEST

START_TEST(test_json_string_invalid_utf8)
{
	/* one U+FFFD per maximal ill-formed subpart */
	assert_json_string("\xc0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd");          /* overlong */
	assert_json_string("\xe0\x80\x80", 3,
			   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong */
	assert_json_string("\xf4\x90\x80\x80", 4,
			   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");     /* > U+10FFFF */
	assert_json_string("\xe2\x82x", 3, "\xef\xbf\xbdx");                      /* cut short */
	assert_json_string("\xf0\x9f\x98", 3, "\xef\xbf\xbd");                    /* cut at end */
	assert_json_string("\xf8\x88\x80\x80\x80", 5,
			   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_json_string("a\xc3\"", 3, "a\xef\xbf\xbd\\\"");
}
END_TEST

/* ---- errors and simple replies ---- */

START_TEST(test_error_reply)
{
	char v[256];
	size_t len;

	ck_assert_int_eq(reply_write_error(&sink, 405, "method_not_allowed",
					   "use POST", "feed01", "Allow: POST\r\n"), 0);
	ck_assert_int_eq(strncmp(cap.buf, "Status: 405 Method Not Allowed\r\n", 32), 0);
	ck_assert_str_eq(header(&cap, "Content-Type", v, sizeof(v)), "application/json");
	ck_assert_str_eq(header(&cap, "X-Request-Id", v, sizeof(v)), "feed01");
	ck_assert_str_eq(header(&cap, "Cache-Control", v, sizeof(v)), "no-store");
	ck_assert_str_eq(header(&cap, "Allow", v, sizeof(v)), "POST");
	ck_assert_str_eq(body_of(&cap, &len),
			 "{\"detail\": \"use POST\", \"error\": \"method_not_allowed\"}");
	ck_assert_uint_eq(sink.body_bytes, len);
	ck_assert_int_eq(sink.in_body, 1);
}
END_TEST

START_TEST(test_error_detail_escaped)
{
	size_t len;

	ck_assert_int_eq(reply_write_error(&sink, 400, "bad_name",
					   "bad file name \"..\\x\"\n\x01 end", NULL, NULL), 0);
	ck_assert_str_eq(body_of(&cap, &len),
			 "{\"detail\": \"bad file name \\\"..\\\\x\\\"\\n\\u0001 end\", "
			 "\"error\": \"bad_name\"}");
	ck_assert_ptr_null(strstr(cap.buf, "X-Request-Id"));
}
END_TEST

START_TEST(test_simple_reply)
{
	static const char want[] = "Status: 200 OK\r\nContent-Type: application/json\r\n"
		"Content-Length: 15\r\nX-Request-Id: r1\r\nCache-Control: no-store\r\n\r\n"
		"{\"status\":\"ok\"}";

	ck_assert_int_eq(reply_write_simple(&sink, 200, "application/json",
					    "{\"status\":\"ok\"}", 15, "r1"), 0);
	ck_assert_str_eq(cap.buf, want);
	ck_assert_uint_eq(sink.body_bytes, 15);
}
END_TEST

START_TEST(test_status_text)
{
	ck_assert_str_eq(reply_status_text(200), "OK");
	ck_assert_str_eq(reply_status_text(400), "Bad Request");
	ck_assert_str_eq(reply_status_text(401), "Unauthorized");
	ck_assert_str_eq(reply_status_text(404), "Not Found");
	ck_assert_str_eq(reply_status_text(405), "Method Not Allowed");
	ck_assert_str_eq(reply_status_text(413), "Content Too Large");
	ck_assert_str_eq(reply_status_text(415), "Unsupported Media Type");
	ck_assert_str_eq(reply_status_text(424), "Failed Dependency");
	ck_assert_str_eq(reply_status_text(500), "Internal Server Error");
	ck_assert_str_eq(reply_status_text(503), "Service Unavailable");
	ck_assert_str_eq(reply_status_text(507), "Insufficient Storage");
	ck_assert_str_eq(reply_status_text(418), "Unknown");
}
END_TEST

START_TEST(test_prefers_json)
{
	static const struct { const char *accept; int json; } cases[] = {
		{ NULL, 0 },
		{ "", 0 },
		{ "*/*", 0 },
		{ "application/json", 1 },
		{ "Application/JSON", 1 },
		{ "  application/json ; charset=utf-8", 1 },
		{ "application/json;q=0", 0 },
		{ "application/json; q=0.000", 0 },
		{ "multipart/form-data, application/json", 0 },
		{ "application/json, multipart/form-data", 0 },
		{ "application/json, multipart/form-data;q=0.5", 1 },
		{ "multipart/form-data;q=0.9, application/json;q=0.8", 0 },
		{ "application/json, */*;q=0.1", 1 },
		{ "application/*", 1 },
		{ "application/*;q=0.2, multipart/*;q=0.1", 1 },
		{ "text/html, application/xhtml+xml, */*;q=0.8", 0 },
		{ "application/jsonx", 0 },
		{ "application/json,,", 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(reply_prefers_json(cases[i].accept) == cases[i].json,
			      "Accept: %s", cases[i].accept ? cases[i].accept : "(none)");
}
END_TEST

START_TEST(test_wants_events)
{
	static const struct { const char *accept; int events; } cases[] = {
		{ NULL, 0 },
		{ "", 0 },
		{ "*/*", 0 },
		{ "text/*", 0 },
		{ "text/event-stream", 1 },
		{ "Text/Event-Stream", 1 },
		{ " text/event-stream ; charset=utf-8", 1 },
		{ "text/event-stream;q=0", 0 },
		{ "text/event-stream, */*", 1 },
		{ "text/event-stream;q=0.5, application/json", 0 },
		{ "application/json;q=0.5, text/event-stream", 1 },
		{ "text/event-stream, multipart/form-data", 1 },
		{ "text/event-streams", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(reply_wants_events(cases[i].accept) == cases[i].events,
			      "Accept: %s", cases[i].accept ? cases[i].accept : "(none)");
}
END_TEST

static int flushes;

static int count_flush(void *ctx)
{
	(void)ctx;
	flushes++;
	return 0;
}

/* The head, then output events: text as text, a character cut off at the
 * end held back (then sent whole), anything else as base64, each flushed. */
START_TEST(test_stream_events)
{
	struct reply_stream s = { &sink, 0, -1 };
	const unsigned char cut[] = "caf\xc3", rest[] = "\xc3\xa9!", bin[] = "\x00\xff";
	size_t used;

	sink.flush = count_flush;
	flushes = 0;
	ck_assert_int_eq(reply_stream_output(&s, "stdout", cut, 4, 0, &used), -1);
	ck_assert_int_eq(reply_stream_head(&s, "warm", "none", "abc"), 0);
	ck_assert_ptr_nonnull(strstr(cap.buf, "Status: 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(cap.buf, "Content-Type: text/event-stream\r\n"));
	ck_assert_ptr_nonnull(strstr(cap.buf, "X-Accel-Buffering: no\r\n"));
	ck_assert_ptr_nonnull(strstr(cap.buf, "X-Execution-Start: warm\r\n"));
	ck_assert_int_eq(flushes, 1);
	cap.len = 0;
	ck_assert_int_eq(reply_stream_output(&s, "stdout", cut, 4, 0, &used), 0);
	ck_assert_uint_eq(used, 3);
	ck_assert_str_eq(cap.buf, "event: stdout\ndata: {\"data\":\"caf\",\"encoding\":\"utf-8\"}\n\n");
	cap.len = 0;
	ck_assert_int_eq(reply_stream_output(&s, "stderr", rest, 3, 0, &used), 0);
	ck_assert_uint_eq(used, 3);
	ck_assert_str_eq(cap.buf, "event: stderr\ndata: {\"data\":\"\xc3\xa9!\",\"encoding\":\"utf-8\"}\n\n");
	cap.len = 0;
	/* only a cut character: nothing yet; at the end (final) it goes */
	ck_assert_int_eq(reply_stream_output(&s, "stdout", cut + 3, 1, 0, &used), 0);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(cap.len, 0);
	ck_assert_int_eq(reply_stream_output(&s, "stdout", cut + 3, 1, 1, &used), 0);
	ck_assert_uint_eq(used, 1);
	ck_assert_str_eq(cap.buf, "event: stdout\ndata: {\"data\":\"ww==\",\"encoding\":\"base64\"}\n\n");
	cap.len = 0;
	ck_assert_int_eq(reply_stream_output(&s, "stdout", bin, 2, 0, &used), 0);
	ck_assert_uint_eq(used, 2);
	ck_assert_str_eq(cap.buf, "event: stdout\ndata: {\"data\":\"AP8=\",\"encoding\":\"base64\"}\n\n");
	cap.len = 0;
	ck_assert_int_eq(reply_stream_beat(&s), 0);
	ck_assert_str_eq(cap.buf, ":\n\n");
	cap.len = 0;
	ck_assert_int_eq(reply_stream_error(&s, "internal", "a \"quoted\" fault"), 0);
	ck_assert_str_eq(cap.buf, "event: error\ndata: {\"detail\": \"a \\\"quoted\\\" fault\", "
			 "\"error\": \"internal\"}\n\n");
	ck_assert_int_eq(flushes, 7);
	/* a second head would land in the body */
	ck_assert_int_eq(reply_stream_head(&s, "warm", "none", "abc"), -1);
	/* a client gone: -1 */
	cap.fail_after = (long)cap.len;
	ck_assert_int_eq(reply_stream_beat(&s), -1);
}
END_TEST

static Suite *reply_suite(void)
{
	Suite *s = suite_create("reply");
	TCase *tc = tcase_create("reply");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_multipart_parses_back);
	tcase_add_test(tc, test_multipart_empty_outputs);
	tcase_add_test(tc, test_headers_exited);
	tcase_add_test(tc, test_headers_signalled_and_truncated);
	tcase_add_test(tc, test_headers_truncated_one);
	tcase_add_test(tc, test_dependency_failure_no_run);
	tcase_add_test(tc, test_dependency_failure_json);
	tcase_add_test(tc, test_boundary_random_hex);
	tcase_add_test(tc, test_file_name_escaped);
	tcase_add_test(tc, test_large_file_streamed);
	tcase_add_test(tc, test_large_output_streamed);
	tcase_add_test(tc, test_file_shrinks_is_error);
	tcase_add_test(tc, test_file_shrinks_json_is_error);
	tcase_add_test(tc, test_missing_file_is_error);
	tcase_add_test(tc, test_open_file_required);
	tcase_add_test(tc, test_typer_fallbacks);
	tcase_add_test(tc, test_header_injection_refused);
	tcase_add_test(tc, test_sink_failure);
	tcase_add_test(tc, test_second_reply_refused);
	tcase_add_test(tc, test_json_text_and_binary_files);
	tcase_add_test(tc, test_json_signal);
	tcase_add_test(tc, test_json_invalid_utf8_stdout);
	tcase_add_test(tc, test_json_utf8_across_chunks);
	tcase_add_test(tc, test_json_large_files);
	tcase_add_test(tc, test_json_late_invalid_utf8_is_base64);
	tcase_add_test(tc, test_json_nul_file_is_base64);
	tcase_add_test(tc, test_json_printable_text);
	tcase_add_test(tc, test_max_reply_leaves_files_out);
	tcase_add_test(tc, test_max_reply_exact_fit);
	tcase_add_test(tc, test_names_unambiguous_multipart);
	tcase_add_test(tc, test_json_name_b64);
	tcase_add_test(tc, test_deadline_passed);
	tcase_add_test(tc, test_deadline_slow_reader);
	tcase_add_test(tc, test_json_string_escapes);
	tcase_add_test(tc, test_json_string_invalid_utf8);
	tcase_add_test(tc, test_error_reply);
	tcase_add_test(tc, test_error_detail_escaped);
	tcase_add_test(tc, test_simple_reply);
	tcase_add_test(tc, test_status_text);
	tcase_add_test(tc, test_prefers_json);
	tcase_add_test(tc, test_wants_events);
	tcase_add_test(tc, test_stream_events);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(reply_suite)
