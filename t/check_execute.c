#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "check_main.h"
#include "collect.h"
#include "conf.h"
#include "execute.h"
#include "mime.h"
#include "sandbox.h"
#include "sandbox_probe.h"
#include "workdir.h"

/* The pipeline of POST execute without FastCGI: a body fed by a fake
 * source, the reply captured by a fake sink, the rlimits layer. A failure
 * is injected at each phase; each must answer the README's status and
 * leave nothing behind: no directory under work_root, no child, no fd. */

#define BOUNDARY "pyexecboundary"
#define BODY_MAX (256 * 1024)
#define REPLY_MAX (1 << 20)

/* Failures injected through the linker (-Wl,--wrap): fail the next call. */
static int fail_memfd, fail_collect, fail_open;

int __real_memfd_create(const char *name, unsigned flags);
int __wrap_memfd_create(const char *name, unsigned flags);
int __wrap_memfd_create(const char *name, unsigned flags)
{
	if (fail_memfd) {
		errno = EMFILE;
		return -1;
	}
	return __real_memfd_create(name, flags);
}

int __real_collect_files(int work_fd, const struct collect_snapshot *snap, unsigned max_files,
			 uint64_t max_bytes, struct collect_result *out);
int __wrap_collect_files(int work_fd, const struct collect_snapshot *snap, unsigned max_files,
			 uint64_t max_bytes, struct collect_result *out);
int __wrap_collect_files(int work_fd, const struct collect_snapshot *snap, unsigned max_files,
			 uint64_t max_bytes, struct collect_result *out)
{
	if (fail_collect) {
		errno = EIO;
		return -1;
	}
	return __real_collect_files(work_fd, snap, max_files, max_bytes, out);
}

int __real_collect_open(int work_fd, const char *name);
int __wrap_collect_open(int work_fd, const char *name);
int __wrap_collect_open(int work_fd, const char *name)
{
	if (fail_open) {
		errno = ENOENT;
		return -1;
	}
	return __real_collect_open(work_fd, name);
}

/* The fake source: the body, chunk bytes at a time; -1 from fail_at on. */
struct source {
	char body[BODY_MAX];
	size_t len, pos, chunk;
	size_t fail_at;                 /* SIZE_MAX: never */
	int count_host;                 /* at the body's end, count into host_files */
	int host_files;                 /* what the request directories' work/ hold */
};

/* The entries of work/ in every request directory under work_root. */
static int host_work_entries(const char *work_root)
{
	DIR *d = opendir(work_root), *w;
	struct dirent *e, *f;
	char path[512];
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/work", work_root, e->d_name);
		if ((w = opendir(path)) == NULL)
			continue;
		while ((f = readdir(w)) != NULL)
			n += f->d_name[0] != '.';
		closedir(w);
	}
	closedir(d);
	return n;
}

static char root[64];

static ssize_t source_read(void *ctx, void *buf, size_t len)
{
	struct source *s = ctx;
	size_t n = s->len - s->pos;

	if (s->pos >= s->fail_at)
		return -1;
	if (n > len)
		n = len;
	if (n > s->chunk)
		n = s->chunk;
	if (s->fail_at != SIZE_MAX && n > s->fail_at - s->pos)
		n = s->fail_at - s->pos;
	if (n == 0 && s->count_host)
		s->host_files = host_work_entries(root);
	memcpy(buf, s->body + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

/* The fake sink: the whole reply, or -1 once fail_after bytes are written. */
struct sink_buf {
	char data[REPLY_MAX];
	size_t len;
	size_t fail_after;              /* SIZE_MAX: never */
	int ends;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct sink_buf *s = ctx;

	if (s->len + len > s->fail_after || s->len + len > sizeof(s->data) - 1)
		return -1;
	memcpy(s->data + s->len, buf, len);
	s->len += len;
	s->data[s->len] = '\0';
	return 0;
}

static int sink_end(void *ctx)
{
	((struct sink_buf *)ctx)->ends++;
	return 0;
}

static struct config cfg;
static struct mime *mime;
/* the interpreters: the default, and "alt", which does not exist */
static struct cache caches[2];
static volatile sig_atomic_t cancel;
static struct execute_ctx ctx;
static struct source *src;
static struct sink_buf *out;
static struct log_request lg;
static char fds_before[4096];

/* The names in /proc/self/fd, in order, but the one the listing opens. */
static void list_fds(char *buf, size_t len)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int self;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	self = dirfd(d);
	buf[0] = '\0';
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == self)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s ", e->d_name);
		ck_assert_uint_lt(n, len);
	}
	closedir(d);
}

static void setup(void)
{
	char err[256];

	snprintf(root, sizeof(root), "/tmp/check_execute.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	config_defaults(&cfg);
	snprintf(cfg.work_root, sizeof(cfg.work_root), "%s", root);
	snprintf(cfg.python, sizeof(cfg.python), "/usr/bin/python3");
	/* Between fork and execve the child is valgrind's, which needs more
	 * address space and fds than a run is given (make check-valgrind sets
	 * this): those two limits are left unset. */
	if (getenv("PYEXEC_UNDER_VALGRIND") != NULL)
		cfg.memory = cfg.max_open_files = 0;
	mime = mime_open(NULL, err, sizeof(err));
	ck_assert_msg(mime != NULL, "%s", err);
	memset(caches, 0, sizeof(caches));
	for (int i = 0; i < 2; i++) {
		caches[i].cfg = &cfg;
		snprintf(caches[i].why, sizeof(caches[i].why), "The interpreter has no pip.");
	}
	snprintf(caches[0].name, sizeof(caches[0].name), "python3");
	snprintf(caches[0].python, sizeof(caches[0].python), "/usr/bin/python3");
	snprintf(caches[1].name, sizeof(caches[1].name), "alt");
	snprintf(caches[1].python, sizeof(caches[1].python), "%s/no-such-python", root);
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	ctx.mime = mime;
	ctx.cancel = &cancel;
	ctx.caches = caches;
	ctx.npythons = 2;
	src = calloc(1, sizeof(*src));
	out = calloc(1, sizeof(*out));
	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(out);
	src->chunk = 4096;
	src->fail_at = SIZE_MAX;
	out->fail_after = SIZE_MAX;
	fail_memfd = fail_collect = fail_open = 0;
	cancel = 0;
	memset(&lg, 0, sizeof(lg));
	lg.upload_ns = lg.deps_ns = lg.run_ns = lg.reply_ns = -1;
	alarm(60);
	list_fds(fds_before, sizeof(fds_before));
}

static void teardown(void)
{
	int fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	alarm(0);
	/* full_work_root_is_507's tmpfs, in this process's mount namespace */
	(void)umount2(root, MNT_DETACH);
	mime_close(mime);
	free(src);
	free(out);
	if (fd >= 0) {
		(void)workdir_rmtree_at(fd, root + strlen("/tmp/"));
		close(fd);
	}
}

/* Appends a part to the body: a file when filename is non-NULL, else a field. */
static void add_part(const char *field, const char *filename, const char *content)
{
	size_t room = sizeof(src->body) - src->len;
	int n;

	if (filename != NULL)
		n = snprintf(src->body + src->len, room,
			     "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"%s\"; "
			     "filename=\"%s\"\r\n\r\n%s\r\n", field, filename, content);
	else
		n = snprintf(src->body + src->len, room,
			     "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"%s\"\r\n"
			     "\r\n%s\r\n", field, content);
	ck_assert(n > 0 && (size_t)n < room);
	src->len += (size_t)n;
}

static void end_body(void)
{
	size_t room = sizeof(src->body) - src->len;
	int n = snprintf(src->body + src->len, room, "--" BOUNDARY "--\r\n");

	ck_assert(n > 0 && (size_t)n < room);
	src->len += (size_t)n;
}

/* A main.py and a file of size bytes. */
static void big_body(size_t size)
{
	static char big[128 * 1024 + 1];

	ck_assert_uint_lt(size, sizeof(big));
	memset(big, 'x', size);
	big[size] = '\0';
	add_part("files", "main.py", "print(1)\n");
	add_part("files", "big.txt", big);
	end_body();
}

/* Runs the pipeline: execute_handle's return value. */
static int execute_with(const char *query, const char *content_type, int conn_fd)
{
	struct execute_request req = {
		.request_id = "0123456789abcdef",
		.query = query,
		.content_type = content_type,
		.accept = NULL,
		.content_length = (int64_t)src->len,
		.read = source_read,
		.read_ctx = src,
		.conn_fd = conn_fd,
	};
	struct reply_sink sink = { .write = sink_write, .end = sink_end, .ctx = out };

	return execute_handle(&ctx, &req, &sink, &lg);
}

static int execute(const char *query)
{
	return execute_with(query, "multipart/form-data; boundary=" BOUNDARY, -1);
}

/* The reply says needle somewhere. */
static void assert_in(const char *needle)
{
	ck_assert_msg(strstr(out->data, needle) != NULL, "no '%s' in the reply: %.800s", needle,
		      out->data);
}

/* The reply's status line says status, and it was delivered once. */
static void assert_status(int status, const char *error)
{
	char line[64];

	snprintf(line, sizeof(line), "Status: %d ", status);
	ck_assert_msg(strncmp(out->data, line, strlen(line)) == 0, "reply: %.300s", out->data);
	ck_assert_int_eq(lg.status, status);
	if (error != NULL) {
		char field[96];

		snprintf(field, sizeof(field), "\"error\": \"%s\"", error);
		assert_in(field);
		ck_assert_str_eq(lg.error, error);
	}
	ck_assert_int_eq(out->ends, 1);
}

/* Nothing of the request is left: no directory, no child, no fd. */
static void assert_nothing_left(void)
{
	char fds_after[4096];
	DIR *d = opendir(root);
	struct dirent *e;
	int status;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(e->d_name[0] == '.', "left under work_root: %s", e->d_name);
	closedir(d);
	errno = 0;
	ck_assert_int_eq(waitpid(-1, &status, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	list_fds(fds_after, sizeof(fds_after));
	ck_assert_str_eq(fds_after, fds_before);
}

START_TEST(runs_and_replies)
{
	add_part("files", "main.py",
		 "import os, sys\n"
		 "print('hello', sys.stdin.read())\n"
		 "open(os.path.join(os.environ['OUTPUT_DIR'], 'out.txt'), 'w').write('made')\n");
	add_part("stdin", NULL, "from stdin");
	end_body();
	ck_assert_int_eq(execute(NULL), 0);
	assert_status(200, NULL);
	assert_in("X-Execution-Status: ok");
	assert_in("hello from stdin");
	assert_in("filename=\"out.txt\"");
	assert_in("made");
	ck_assert_str_eq(lg.exec_status, "ok");
	ck_assert_uint_eq(lg.bytes_in, src->len);
	ck_assert_int_ge(lg.run_ns, 0);
	ck_assert_int_ge(lg.reply_ns, 0);
	assert_nothing_left();
}
END_TEST

/* A body with a main.py and nothing else. */
static void plain_body(void)
{
	src->len = 0;
	add_part("files", "main.py", "print(1)\n");
	end_body();
}

static void no_failure(void)
{
}

static void small_max_upload(void)
{
	cfg.max_upload = 16;
}

static void cut_body(void)
{
	src->len -= 10;
}

static void escaping_name(void)
{
	src->len = 0;
	add_part("files", "main.py", "print(1)\n");
	add_part("files", "../escape.py", "print(2)\n");
	end_body();
}

static void no_main(void)
{
	src->len = 0;
	add_part("files", "other.py", "print(1)\n");
	end_body();
}

/* A work_root that cannot hold a directory: a file. */
static void file_as_work_root(void)
{
	int fd;

	snprintf(cfg.work_root, sizeof(cfg.work_root), "%s/file", root);
	fd = open(cfg.work_root, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void no_memfd(void)
{
	fail_memfd = 1;
}

static pid_t failing_spawn(void *arg, const struct run_spec *spec, int stdin_fd, int out_w,
			   int err_w)
{
	(void)arg, (void)spec, (void)stdin_fd, (void)out_w, (void)err_w;
	errno = EAGAIN;
	return -1;
}

static void no_spawn(void)
{
	static const struct run_spawner failing = { failing_spawn, NULL, NULL, "failing" };

	ctx.spawner = &failing;
}

static void no_collect(void)
{
	fail_collect = 1;
}

/* A generated file that cannot be opened when the reply is planned. */
static void unreadable_result(void)
{
	src->len = 0;
	add_part("files", "main.py",
		 "import os\nopen(os.environ['OUTPUT_DIR'] + '/out.txt', 'w').write('x')\n");
	end_body();
	fail_open = 1;
}

/* A failure at each phase, and the answer the README's table gives it. */
static const struct failure {
	void (*inject)(void);
	const char *query;
	const char *content_type;       /* NULL: multipart with BOUNDARY */
	int status;
	const char *error;
	const char *detail;             /* a part of the detail */
} failures[] = {
	/* before the body is read */
	{ no_failure, "timeout=soon", NULL, 400, "bad_parameter", "timeout" },
	{ no_failure, "dependencies=%3Bnot-a-name", NULL, 400, "bad_dependency", "not-a-name" },
	{ no_failure, "python=pypy9", NULL, 400, "bad_parameter",
	  "python: 'pypy9' is not an interpreter of this server; it has python3 (the default), "
	  "alt" },
	{ no_failure, "python=", NULL, 400, "bad_parameter", "python: must name an interpreter" },
	{ no_failure, NULL, "text/plain", 415, "unsupported_media_type", "multipart/form-data" },
	{ small_max_upload, NULL, NULL, 413, "too_large", "limit of 16 bytes" },
	{ file_as_work_root, NULL, NULL, 500, "internal", "could not create a work directory" },
	/* the upload */
	{ cut_body, NULL, NULL, 400, "bad_multipart", "malformed" },
	{ escaping_name, NULL, NULL, 400, "bad_file_name", "escape.py" },
	{ no_main, NULL, NULL, 400, "missing_main",
	  "main.py not found. Please upload a valid main.py file." },
	/* the dependencies: an interpreter without pip */
	{ no_failure, "dependencies=requests", NULL, 503, "dependencies_unavailable",
	  "The interpreter has no pip." },
	/* the run */
	{ no_memfd, NULL, NULL, 500, "internal", "could not prepare the run" },
	{ no_spawn, NULL, NULL, 500, "internal", "could not start the program" },
	/* the collection, the reply */
	{ no_collect, NULL, NULL, 500, "internal", "could not collect the generated files" },
	{ unreadable_result, NULL, NULL, 500, "internal",
	  "could not read what the program generated" },
};

/* Each is answered, the body read to its end, and nothing left behind. */
START_TEST(failure_is_answered)
{
	const struct failure *f = &failures[_i];
	const char *type = f->content_type != NULL ? f->content_type
						   : "multipart/form-data; boundary=" BOUNDARY;

	plain_body();
	f->inject();
	ck_assert_int_eq(execute_with(f->query, type, -1), 0);
	assert_status(f->status, f->error);
	assert_in(f->detail);
	ck_assert_uint_eq(src->pos, src->len);
	if (f->inject == file_as_work_root)
		ck_assert_int_eq(unlink(cfg.work_root), 0);
	assert_nothing_left();
}
END_TEST

/* The client goes away while the body arrives. */
START_TEST(client_gone_during_upload)
{
	add_part("files", "main.py", "print(1)\n");
	add_part("files", "data.bin", "0123456789");
	end_body();
	src->chunk = 16;
	src->fail_at = src->len / 2;
	ck_assert_int_eq(execute(NULL), -1);
	ck_assert_int_eq(lg.status, 499);
	ck_assert_str_eq(lg.error, "client_gone");
	ck_assert_uint_eq(lg.bytes_in, src->fail_at);
	ck_assert_uint_eq(out->len, 0);
	assert_nothing_left();
}
END_TEST

/* A work_root that fills up during the upload: a small tmpfs, in a mount
 * namespace of this test's own process. */
START_TEST(full_work_root_is_507)
{
	const char *fork_mode = getenv("CK_FORK");

	if ((fork_mode != NULL && strcmp(fork_mode, "no") == 0) || unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", root, "tmpfs", 0, "size=16k") < 0) {
		fprintf(stderr, "# full_work_root_is_507: skipped: needs a private tmpfs "
			"(root, a mount namespace): %s\n",
			fork_mode != NULL ? "CK_FORK=no" : strerror(errno));
		return;
	}
	big_body(64 * 1024);
	ck_assert_int_eq(execute(NULL), 0);
	assert_status(507, "disk_full");
	assert_nothing_left();
}
END_TEST

/* A python that does not exist: the run happened and says why it failed. */
START_TEST(missing_python_is_an_error_run)
{
	add_part("files", "main.py", "print(1)\n");
	end_body();
	snprintf(caches[0].python, sizeof(caches[0].python), "%s/no-such-python", root);
	ck_assert_int_eq(execute(NULL), 0);
	assert_status(200, NULL);
	assert_in("X-Execution-Status: error");
	assert_in("pyexec: cannot execute");
	assert_nothing_left();
}
END_TEST

/* ?python= names the interpreter that runs: "alt", which does not exist. */
START_TEST(python_names_the_interpreter)
{
	add_part("files", "main.py", "print(1)\n");
	end_body();
	ck_assert_int_eq(execute("python=alt"), 0);
	assert_status(200, NULL);
	assert_in("X-Execution-Status: error");
	assert_in("pyexec: cannot execute");
	assert_in("no-such-python");
	ck_assert_str_eq(lg.python, "alt");
	assert_nothing_left();
}
END_TEST

/* The default interpreter, by its name. */
START_TEST(python_names_the_default)
{
	add_part("files", "main.py", "print(6 * 7)\n");
	end_body();
	ck_assert_int_eq(execute("python=python3"), 0);
	assert_status(200, NULL);
	assert_in("X-Execution-Status: ok");
	assert_in("42");
	ck_assert_str_eq(lg.python, "python3");
	assert_nothing_left();
}
END_TEST

/* The client's connection ends during the run: the run is stopped. */
START_TEST(client_gone_during_run)
{
	int sv[2];

	add_part("files", "main.py", "import time\ntime.sleep(30)\n");
	end_body();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	ck_assert_int_eq(execute_with(NULL, "multipart/form-data; boundary=" BOUNDARY, sv[0]), -1);
	close(sv[0]);
	ck_assert_int_eq(lg.status, 499);
	ck_assert_str_eq(lg.error, "client_gone");
	ck_assert_uint_eq(out->len, 0);
	assert_nothing_left();
}
END_TEST

START_TEST(sink_failure)
{
	add_part("files", "main.py", "print('x' * 100000)\n");
	end_body();
	out->fail_after = 1000;
	ck_assert_int_eq(execute(NULL), -1);
	ck_assert_int_eq(lg.status, 200);
	ck_assert_uint_le(out->len, 1000);
	assert_nothing_left();
}
END_TEST

/* The namespace layer, where the kernel allows it: the same pipeline, the
 * uploads copied into the sandbox's /work. */
static int namespace_layer(struct sandbox_config *scfg, const char *test)
{
	char msg[512];

	memset(scfg, 0, sizeof(*scfg));
	/* valgrind runs only a fork-like clone(), not one that makes namespaces */
	if (getenv("PYEXEC_UNDER_VALGRIND") != NULL) {
		fprintf(stderr, "# %s: skipped: under valgrind\n", test);
		return -1;
	}
	if (sandbox_probe(scfg, cfg.python, 4 << 20, 0, root, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "# %s: skipped: no namespace sandbox here: %s\n", test, msg);
		return -1;
	}
	ctx.sandbox = scfg;
	return 0;
}

START_TEST(runs_in_the_namespace_sandbox)
{
	struct sandbox_config scfg;

	if (namespace_layer(&scfg, "runs_in_the_namespace_sandbox") < 0)
		return;
	add_part("files", "main.py",
		 "import os\nprint(os.getcwd(), os.environ['OUTPUT_DIR'])\n"
		 "open('out.txt', 'w').write('made')\n");
	end_body();
	ck_assert_int_eq(execute(NULL), 0);
	assert_status(200, NULL);
	assert_in("X-Execution-Status: ok");
	assert_in("/work /work");
	assert_in("filename=\"out.txt\"");
	assert_nothing_left();
}
END_TEST

/* Uploads that do not fit in the sandbox's disk. */
START_TEST(uploads_over_the_sandbox_disk_are_413)
{
	struct sandbox_config scfg;

	if (namespace_layer(&scfg, "uploads_over_the_sandbox_disk_are_413") < 0)
		return;
	scfg.disk_bytes = 64 * 1024;
	big_body(128 * 1024);
	ck_assert_int_eq(execute(NULL), 0);
	assert_status(413, "too_large");
	assert_in("max_disk");
	assert_nothing_left();
}
END_TEST

/* Each upload is written once, into the sandbox's /work: the host's work
 * directory holds none of it once the body is read, and the one snapshot
 * still tells a changed upload (a result) from an untouched one. */
static void uploads_written_once(struct sandbox_spare *spare)
{
	add_part("files", "main.py",
		 "print(sorted(n for n in __import__('os').listdir('.')))\n"
		 "open('data/changed.txt', 'a').write('more')\n");
	add_part("files", "data/changed.txt", "one");
	add_part("files", "data/kept.txt", "two");
	end_body();
	src->count_host = 1;
	ctx.spare = spare;
	ck_assert_int_eq(execute(NULL), 0);
	assert_status(200, NULL);
	ck_assert_int_eq(src->host_files, 0);
	assert_in("['data', 'main.py']");
	assert_in("filename=\"data/changed.txt\"");
	ck_assert_msg(strstr(out->data, "kept.txt\"") == NULL, "reply: %.800s", out->data);
}

START_TEST(uploads_are_written_once)
{
	struct sandbox_config scfg;

	if (namespace_layer(&scfg, "uploads_are_written_once") < 0)
		return;
	uploads_written_once(NULL);
	assert_nothing_left();
}
END_TEST

/* The same in the worker's spare, which the request takes before its body. */
START_TEST(uploads_are_written_once_into_the_spare)
{
	struct sandbox_config scfg;
	struct sandbox_spare spare;

	if (namespace_layer(&scfg, "uploads_are_written_once_into_the_spare") < 0)
		return;
	sandbox_spare_init(&spare);
	if (sandbox_spare_make(&spare, &scfg, root, NULL) < 0) {
		fprintf(stderr, "# uploads_are_written_once_into_the_spare: skipped: "
			"no spare sandbox here: %s\n", strerror(errno));
		return;
	}
	uploads_written_once(&spare);
	ck_assert_int_eq(spare.pid, 0);
	ck_assert_int_eq(lg.status, 200);
	assert_nothing_left();
}
END_TEST

static Suite *execute_suite(void)
{
	Suite *s = suite_create("execute");
	TCase *tc = tcase_create("pipeline");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, runs_and_replies);
	tcase_add_loop_test(tc, failure_is_answered, 0, sizeof(failures) / sizeof(failures[0]));
	tcase_add_test(tc, client_gone_during_upload);
	tcase_add_test(tc, full_work_root_is_507);
	tcase_add_test(tc, missing_python_is_an_error_run);
	tcase_add_test(tc, python_names_the_interpreter);
	tcase_add_test(tc, python_names_the_default);
	tcase_add_test(tc, client_gone_during_run);
	tcase_add_test(tc, sink_failure);
	tcase_add_test(tc, runs_in_the_namespace_sandbox);
	tcase_add_test(tc, uploads_over_the_sandbox_disk_are_413);
	tcase_add_test(tc, uploads_are_written_once);
	tcase_add_test(tc, uploads_are_written_once_into_the_spare);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(execute_suite)
