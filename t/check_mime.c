#include "config.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "mime.h"

/* A complete 1x1 RGBA PNG (signature, IHDR, IDAT, IEND, valid CRCs). */
static const unsigned char png_1x1[] = {
	0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
	0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0,
	0x1f, 0x15, 0xc4, 0x89,
	0, 0, 0, 13, 'I', 'D', 'A', 'T', 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1,
	0x0d, 0x0a, 0x2d, 0xb4,
	0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82,
};

static struct mime *m;
static char tmpdir[64];

static void setup(void)
{
	char err[256] = "";

	m = mime_open(NULL, err, sizeof(err));
	ck_assert_msg(m != NULL, "mime_open: %s", err);
	strcpy(tmpdir, "/tmp/check_mime.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	DIR *d;
	struct dirent *de;

	mime_close(m);
	m = NULL;
	/* only plain files this suite made, in its own mkdtemp directory */
	d = opendir(tmpdir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			ck_assert_int_eq(unlinkat(dirfd(d), de->d_name, 0), 0);
	closedir(d);
	ck_assert_int_eq(rmdir(tmpdir), 0);
}

/* Writes bytes to tmpdir/name and returns an fd open for reading. */
static int file_with(const char *name, const void *buf, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void assert_fd_type(const char *name, const void *buf, size_t len, const char *want)
{
	char out[MIME_TYPE_MAX];
	int fd = file_with(name, buf, len);

	memset(out, 'x', sizeof(out));
	ck_assert_ptr_eq(mime_type_fd(m, fd, out), out);
	ck_assert_str_eq(out, want);
	close(fd);
}

START_TEST(test_png)
{
	assert_fd_type("plot.png", png_1x1, sizeof(png_1x1), "image/png");
}
END_TEST

START_TEST(test_pdf)
{
	static const char pdf[] = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
		"trailer\n<< /Root 1 0 R >>\n%%EOF\n";

	/* libmagic says "application/pdf; charset=us-ascii": not text, so bare */
	assert_fd_type("report.pdf", pdf, sizeof(pdf) - 1, "application/pdf");
}
END_TEST

START_TEST(test_utf8_text)
{
	static const char txt[] = "h\xc3\xa9llo w\xc3\xb6rld, \xe2\x82\xac 5\n";

	assert_fd_type("out.txt", txt, sizeof(txt) - 1, "text/plain; charset=utf-8");
}
END_TEST

START_TEST(test_ascii_text)
{
	static const char txt[] = "hello world\nsecond line\n";

	assert_fd_type("out.txt", txt, sizeof(txt) - 1, "text/plain; charset=us-ascii");
}
END_TEST

START_TEST(test_binary_garbage)
{
	static const unsigned char bin[] = { 0x00, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x90,
					     0x00, 0x13, 0x37, 0xc3, 0x28, 0x00 };

	assert_fd_type("blob", bin, sizeof(bin), "application/octet-stream");
}
END_TEST

START_TEST(test_empty_file)
{
	assert_fd_type("empty.txt", "", 0, "application/octet-stream");
}
END_TEST

START_TEST(test_csv)
{
	static const char csv[] = "a,b,c\n1,2,3\n4,5,6\n";

	assert_fd_type("data.csv", csv, sizeof(csv) - 1, "text/csv; charset=us-ascii");
}
END_TEST

START_TEST(test_json)
{
	static const char js[] = "{\"a\": 1, \"b\": [1, 2, 3], \"c\": \"x\"}\n";

	/* libmagic says "application/json; charset=us-ascii" */
	assert_fd_type("data.json", js, sizeof(js) - 1, "application/json");
}
END_TEST

START_TEST(test_content_not_name)
{
	/* a PNG named .txt is a PNG; text named .png is text */
	assert_fd_type("x.txt", png_1x1, sizeof(png_1x1), "image/png");
	assert_fd_type("y.png", "just text\n", 10, "text/plain; charset=us-ascii");
}
END_TEST

START_TEST(test_offset_kept)
{
	char out[MIME_TYPE_MAX];
	int fd = file_with("plot.png", png_1x1, sizeof(png_1x1));

	ck_assert_int_eq(lseek(fd, 5, SEEK_SET), 5);
	ck_assert_str_eq(mime_type_fd(m, fd, out), "image/png");
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 5);
	close(fd);
}
END_TEST

START_TEST(test_large_file_sniffed)
{
	/* more than MIME_SNIFF_BYTES of text: typed from the first part, no error */
	size_t len = MIME_SNIFF_BYTES * 2 + 17;
	char *buf = malloc(len);
	int fd;
	char out[MIME_TYPE_MAX];

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	fd = file_with("big.txt", buf, len);
	ck_assert_str_eq(mime_type_fd(m, fd, out), "text/plain; charset=us-ascii");
	ck_assert_str_eq(mime_type_buffer(m, buf, len, out), "text/plain; charset=us-ascii");
	close(fd);
	free(buf);
}
END_TEST

START_TEST(test_buffer)
{
	char out[MIME_TYPE_MAX];

	ck_assert_str_eq(mime_type_buffer(m, png_1x1, sizeof(png_1x1), out), "image/png");
	ck_assert_str_eq(mime_type_buffer(m, "plain words\n", 12, out),
			 "text/plain; charset=us-ascii");
	ck_assert_str_eq(mime_type_buffer(m, NULL, 0, out), "application/octet-stream");
}
END_TEST

START_TEST(test_failures_fall_back)
{
	char out[MIME_TYPE_MAX];
	int fd = file_with("dir-probe", "x", 1);
	char dirpath[128];

	ck_assert_str_eq(mime_type_fd(m, -1, out), "application/octet-stream");
	ck_assert_str_eq(mime_type_fd(NULL, fd, out), "application/octet-stream");
	close(fd);
	/* a directory cannot be read: EISDIR */
	snprintf(dirpath, sizeof(dirpath), "%s", tmpdir);
	fd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(mime_type_fd(m, fd, out), "application/octet-stream");
	close(fd);
	/* a closed fd */
	ck_assert_str_eq(mime_type_fd(m, fd, out), "application/octet-stream");
}
END_TEST

START_TEST(test_bad_database)
{
	char err[256] = "";
	struct mime *bad = mime_open("/nonexistent/pyexec-magic.mgc", err, sizeof(err));

	ck_assert_ptr_null(bad);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/pyexec-magic.mgc"));
}
END_TEST

static Suite *mime_suite(void)
{
	Suite *s = suite_create("mime");
	TCase *tc = tcase_create("mime");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_png);
	tcase_add_test(tc, test_pdf);
	tcase_add_test(tc, test_utf8_text);
	tcase_add_test(tc, test_ascii_text);
	tcase_add_test(tc, test_binary_garbage);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_csv);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_content_not_name);
	tcase_add_test(tc, test_offset_kept);
	tcase_add_test(tc, test_large_file_sniffed);
	tcase_add_test(tc, test_buffer);
	tcase_add_test(tc, test_failures_fall_back);
	tcase_add_test(tc, test_bad_database);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(mime_suite)
