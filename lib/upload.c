#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "upload.h"
#include "util.h"

void upload_init(struct upload *u, const struct config *cfg, struct workdir *wd,
		 struct collect_snapshot *snap)
{
	memset(u, 0, sizeof(*u));
	u->cfg = cfg;
	u->wd = wd;
	u->snap = snap;
	u->fd = -1;
	u->stdin_fd = -1;
	u->dir_fd = -1;
	argenv_init(&u->ae);
}

void upload_into(struct upload *u, int dir_fd, mode_t dir_bits, mode_t file_bits,
		 uint64_t disk_bytes)
{
	u->dir_fd = dir_fd;
	u->dir_bits = dir_bits;
	u->file_bits = file_bits;
	u->disk_bytes = disk_bytes;
}

void upload_close(struct upload *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->stdin_fd >= 0)
		close(u->stdin_fd);
	u->fd = -1;
	u->stdin_fd = -1;
	free(u->field_buf);
	u->field_buf = NULL;
	u->field = NULL;
	argenv_free(&u->ae);
}

void upload_fail(struct upload *u, int status, const char *error, const char *fmt, ...)
{
	va_list ap;

	if (u->status != 0)
		return;
	u->status = status;
	u->error = error;
	va_start(ap, fmt);
	vsnprintf(u->detail, sizeof(u->detail), fmt, ap);
	va_end(ap);
}

/* A failed write to the work directory: the run's own disk (too small for
 * the uploads), the server's disk, or pyexec itself. */
static void upload_fail_errno(struct upload *u, int err, const char *what)
{
	if ((err == ENOSPC || err == EDQUOT) && u->disk_bytes != 0 && !u->is_stdin)
		upload_fail(u, 413, "too_large", UPLOAD_DISK_DETAIL,
			    (unsigned long long)u->disk_bytes);
	else if (err == ENOSPC || err == EDQUOT)
		upload_fail(u, 507, "disk_full",
			    "The server has no space left to store the upload; try again later.");
	else {
		log_msg(LOG_LEVEL_ERROR, "%s: %s", what, strerror(err));
		upload_fail(u, 500, "internal", "The server could not store the upload.");
	}
}

static int on_part_begin(void *data)
{
	struct upload *u = data;

	u->have_disp = 0;
	u->is_stdin = 0;
	u->field = NULL;
	return 0;
}

static int on_header(void *data, const char *name, size_t name_len,
		     const char *value, size_t value_len)
{
	struct upload *u = data;
	const char *why;

	if (name_len != 19 || strncasecmp(name, "Content-Disposition", 19) != 0)
		return 0;
	if (u->have_disp) {
		upload_fail(u, 400, "bad_multipart",
			    "A part of the body has two Content-Disposition headers.");
		return -1;
	}
	if (multipart_parse_disposition(value, value_len, &u->disp, &why) < 0) {
		upload_fail(u, 400, "bad_multipart",
			    "A part's Content-Disposition header is malformed: %s.", why);
		return -1;
	}
	u->have_disp = 1;
	return 0;
}

static int is_field(const struct upload *u, const char *name)
{
	return u->disp.has_name && u->disp.name_len == strlen(name) &&
	       memcmp(u->disp.name, name, u->disp.name_len) == 0;
}

/* The field "args" or "env": read into memory, parsed at its end. */
static int open_field(struct upload *u, const char *name)
{
	if (name[0] == 'a' ? u->ae.have_args : u->ae.have_env) {
		upload_fail(u, 400, "bad_field", "%s: given twice", name);
		return -1;
	}
	u->field = name;
	u->field_len = 0;
	if (u->field_buf == NULL)
		u->field_buf = malloc(ARGENV_FIELD_MAX);
	if (u->field_buf == NULL) {
		upload_fail_errno(u, ENOMEM, "a form field");
		return -1;
	}
	return 0;
}

/* A part without a filename: the field "stdin", a private file the run
 * reads as its standard input, or "args" or "env". */
static int open_stdin(struct upload *u)
{
	char shown[256];

	util_sanitize(u->disp.name, u->disp.name_len, shown, sizeof(shown));
	if (is_field(u, "args"))
		return open_field(u, "args");
	if (is_field(u, "env"))
		return open_field(u, "env");
	if (!is_field(u, "stdin")) {
		upload_fail(u, 400, "unexpected_field",
			    "The form field '%s' is not a file; send files with a filename, "
			    "standard input as a field named 'stdin', and the program's "
			    "arguments and environment as fields 'args' and 'env'.", shown);
		return -1;
	}
	if (u->have_stdin) {
		upload_fail(u, 400, "unexpected_field", "The field 'stdin' is given twice.");
		return -1;
	}
	u->is_stdin = 1;
	u->fd = workdir_private_file(u->wd, "stdin");
	if (u->fd < 0) {
		upload_fail_errno(u, errno, "stdin file");
		return -1;
	}
	u->have_stdin = 1;
	return 0;
}

/* A file: its name checked and counted, then created under work/. */
static int open_file(struct upload *u)
{
	const struct config *cfg = u->cfg;
	char shown[256];
	const char *why;

	util_sanitize(u->disp.filename, u->disp.filename_len, shown, sizeof(shown));
	if (names_check(u->disp.filename, u->disp.filename_len, &why) < 0) {
		upload_fail(u, 400, "bad_file_name", "The file name '%s' %s.", shown, why);
		return -1;
	}
	if (++u->files > cfg->max_files) {
		upload_fail(u, 413, "too_many_files",
			    "The request has more than %u files, the server's limit.",
			    cfg->max_files);
		return -1;
	}
	memcpy(u->name, u->disp.filename, u->disp.filename_len);
	u->name[u->disp.filename_len] = '\0';
	u->fd = workdir_create_file_at(u->dir_fd >= 0 ? u->dir_fd : u->wd->work_fd, u->name,
				       u->dir_bits, u->file_bits);
	if (u->fd >= 0)
		return 0;
	if (errno == EEXIST)
		upload_fail(u, 400, "duplicate_file", "The file name '%s' is given twice.", shown);
	else if (errno == ENOTDIR || errno == EISDIR)
		upload_fail(u, 400, "bad_file_name",
			    "The file name '%s' clashes with a directory of another file.", shown);
	else
		upload_fail_errno(u, errno, "upload file");
	return -1;
}

static int on_headers_complete(void *data)
{
	struct upload *u = data;

	if (!u->have_disp || !u->disp.form_data) {
		upload_fail(u, 400, "bad_multipart",
			    "A part of the body has no Content-Disposition: form-data header.");
		return -1;
	}
	return u->disp.has_filename ? open_file(u) : open_stdin(u);
}

static int on_data(void *data, const char *at, size_t len)
{
	struct upload *u = data;

	if (u->field != NULL) {
		if (len > ARGENV_FIELD_MAX - u->field_len) {
			upload_fail(u, 400, "bad_field", "%s: over %u bytes", u->field,
				    ARGENV_FIELD_MAX);
			return -1;
		}
		memcpy(u->field_buf + u->field_len, at, len);
		u->field_len += len;
		return 0;
	}
	if (util_write_all(u->fd, at, len) < 0) {
		upload_fail_errno(u, errno, "writing the upload");
		return -1;
	}
	return 0;
}

static int on_part_end(void *data)
{
	struct upload *u = data;
	struct stat st;

	if (u->field != NULL) {
		char err[UPLOAD_DETAIL_MAX];
		int rc = u->field[0] == 'a'
			 ? argenv_parse_args(&u->ae, u->field_buf, u->field_len, err, sizeof(err))
			 : argenv_parse_env(&u->ae, u->field_buf, u->field_len, err, sizeof(err));

		u->field = NULL;
		if (rc < 0) {
			upload_fail(u, 400, "bad_field", "%s", err);
			return -1;
		}
		return 0;
	}
	if (u->is_stdin) {
		u->stdin_fd = u->fd;    /* the run reads it from offset 0 */
		u->fd = -1;
		return 0;
	}
	if (fstat(u->fd, &st) < 0 || collect_snapshot_add(u->snap, u->name, &st) < 0) {
		upload_fail_errno(u, errno, "recording the upload");
		return -1;
	}
	if (close(u->fd) < 0) {
		u->fd = -1;
		upload_fail_errno(u, errno, "closing the upload");
		return -1;
	}
	u->fd = -1;
	return 0;
}

const struct multipart_callbacks upload_callbacks = {
	.on_part_begin = on_part_begin,
	.on_header = on_header,
	.on_headers_complete = on_headers_complete,
	.on_data = on_data,
	.on_part_end = on_part_end,
	.on_body_end = NULL,
};

/* What the parser found wrong once the body ended, as the reply says it. */
static void upload_finish(struct upload *u, struct multipart_parser *mp)
{
	enum multipart_error e = multipart_finish(mp);

	if (e == MULTIPART_E_PART_TOO_LARGE)
		upload_fail(u, 413, "too_large",
			    "A file of the request is over the server's limit of %llu bytes.",
			    (unsigned long long)u->cfg->max_file_size);
	else if (e == MULTIPART_E_TOO_MANY_PARTS)
		upload_fail(u, 413, "too_many_files",
			    "The request has more than %u files, the server's limit.",
			    u->cfg->max_files);
	else if (e != MULTIPART_E_OK && e != MULTIPART_E_CALLBACK)
		upload_fail(u, 400, "bad_multipart",
			    "The multipart/form-data body is malformed: %s (at byte %llu).",
			    multipart_error_str(e), (unsigned long long)multipart_error_offset(mp));
}

int upload_receive(struct upload *u, struct multipart_parser *mp,
		   ssize_t (*read)(void *ctx, void *buf, size_t len), void *read_ctx,
		   char *buf, size_t chunk, uint64_t *received)
{
	uint64_t max_upload = u->cfg->max_upload;
	ssize_t r;

	for (;;) {
		r = read(read_ctx, buf, chunk);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		*received += (uint64_t)r;
		if (*received > max_upload) {
			upload_fail(u, 413, "too_large",
				    "The request body is over the server's limit of %llu bytes.",
				    (unsigned long long)max_upload);
			break;
		}
		if (u->status == 0 && multipart_execute(mp, buf, (size_t)r) < (size_t)r)
			break;
	}
	if (u->status == 0)
		upload_finish(u, mp);
	return 0;
}
