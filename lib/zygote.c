/* zygote: the worker's side of its zygote (zygote.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "zygote.h"

void zygote_init(struct zygote *z)
{
	memset(z, 0, sizeof(*z));
	sandbox_spare_init(&z->sp);
	z->log_r = -1;
}

/* Copies argv and envp into z (for zygote_matches). 0, or -1 when they
 * exceed ZYGOTE_VEC_MAX entries or ZYGOTE_STRS_MAX bytes. */
static int keep_vectors(struct zygote *z, char *const *argv, char *const *envp)
{
	size_t off = 0, k = 0;

	for (int which = 0; which < 2; which++) {
		char *const *v = which == 0 ? argv : envp;

		if (which == 1)
			z->envp = &z->argv[k];
		for (; *v != NULL; v++) {
			size_t len = strlen(*v) + 1;

			if (k >= ZYGOTE_VEC_MAX || len > sizeof(z->strs) - off)
				return -1;
			memcpy(z->strs + off, *v, len);
			z->argv[k++] = z->strs + off;
			off += len;
		}
		z->argv[k++] = NULL;
	}
	return 0;
}

/* What the zygote wrote on its stdout and stderr, into the log. */
static void log_output(struct zygote *z)
{
	char buf[1024];
	ssize_t n;

	if (z->log_r < 0)
		return;
	while ((n = read(z->log_r, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_msg(LOG_LEVEL_WARN, "zygote: %s", buf);
	}
}

#define ZYGOTE_SETUP_NS ((int64_t)SANDBOX_SETUP_TIMEOUT_MS * 1000000)

int zygote_await(struct zygote *z, int64_t deadline)
{
	struct sandbox_msg m;
	int fd = -1;

	if (z->ready)
		return 1;
	if (z->launched_ns == 0) {
		snprintf(z->why, sizeof(z->why), "the zygote was not launched");
		return -1;
	}
	if (deadline > z->launched_ns + ZYGOTE_SETUP_NS)
		deadline = z->launched_ns + ZYGOTE_SETUP_NS;
	if (sandbox_msg_recv(z->sp.sock, deadline, &m, &fd) < 0) {
		if (errno == ETIMEDOUT && util_now_ns() < z->launched_ns + ZYGOTE_SETUP_NS)
			return 0;
		snprintf(z->why, sizeof(z->why), "the zygote did not start: %s",
			 errno == ETIMEDOUT ? "no answer in time" : strerror(errno));
		goto fail;
	}
	if (fd >= 0)
		(void)close(fd);
	m.text[sizeof(m.text) - 1] = '\0';
	if (m.type == MSG_ERROR) {
		snprintf(z->why, sizeof(z->why), "the zygote did not start: %s", m.text);
		goto fail;
	}
	if (m.type != MSG_ZREADY) {
		snprintf(z->why, sizeof(z->why), "the zygote did not start: it answered out of turn");
		goto fail;
	}
	memcpy(z->version, m.text, sizeof(z->version));
	z->ready = 1;
	z->ready_ns = util_now_ns();
	/* Its new root is in place: the mount point is a plain directory again. */
	if (z->sp.own_root && rmdir(z->sp.root) == 0)
		z->sp.own_root = 0;
	return 1;
fail:
	log_output(z);
	zygote_stop(z);
	return -1;
}

int zygote_launch(struct zygote *z, const struct sandbox_config *cfg, const char *dir,
		  int binary_fd, char *const *argv, char *const *envp, const char *preload)
{
	char root[PATH_MAX], err[256];
	int lp[2] = { -1, -1 };

	zygote_stop(z);
	z->why[0] = '\0';
	z->forks = 0;
	z->launched_ns = z->ready_ns = 0;
	if (keep_vectors(z, argv, envp) < 0) {
		snprintf(z->why, sizeof(z->why), "the run's argv and environment are too long "
			 "for the zygote");
		return -1;
	}
	if ((size_t)snprintf(root, sizeof(root), "%s/%d-zygote.XXXXXX", dir, (int)getpid()) >=
	    sizeof(root) || mkdtemp(root) == NULL) {
		snprintf(z->why, sizeof(z->why), "cannot create the zygote's directory in %s: %s",
			 dir, strerror(errno));
		goto fail;
	}
	if (pipe2(lp, O_CLOEXEC) < 0) {
		snprintf(z->why, sizeof(z->why), "pipe: %s", strerror(errno));
		goto fail_dir;
	}
	if (sandbox_start_zygote(&z->sp, cfg, root, binary_fd, lp[1], argv, envp, preload, err,
				 sizeof(err)) < 0) {
		snprintf(z->why, sizeof(z->why), "%s", err);
		goto fail_dir;
	}
	z->sp.own_root = 1;
	(void)close(lp[1]);
	z->log_r = lp[0];
	(void)util_set_nonblock(z->log_r);
	z->launched_ns = util_now_ns();
	return 0;
fail_dir:
	(void)rmdir(root);
fail:
	if (lp[0] >= 0)
		(void)close(lp[0]);
	if (lp[1] >= 0)
		(void)close(lp[1]);
	return -1;
}

int zygote_alive(struct zygote *z)
{
	siginfo_t si;

	if (!z->ready || z->sp.pid <= 0 || z->sp.pidfd < 0)
		return 0;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)z->sp.pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) == 0 &&
	    si.si_pid == 0)
		return 1;
	log_output(z);
	log_msg(LOG_LEVEL_WARN, "zygote: pid %ld is gone; sandboxes are cloned until it is "
		"replaced", (long)z->sp.pid);
	snprintf(z->why, sizeof(z->why), "the zygote ended");
	zygote_stop(z);
	return 0;
}

pid_t zygote_fork(struct zygote *z, int init_sock, int status_w, const char *root,
		  int new_cgroup_ns, char *err, size_t errlen)
{
	struct sandbox_msg m;
	struct zygote_fork zf;
	struct iovec iov[2];
	int fds[2] = { init_sock, status_w }, fd = -1;
	ssize_t w;

	if (!z->ready || strlen(root) >= sizeof(zf.root)) {
		snprintf(err, errlen, "no zygote");
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_ZFORK;
	memset(&zf, 0, sizeof(zf));
	strcpy(zf.root, root);
	zf.new_cgroup_ns = new_cgroup_ns;
	iov[0] = (struct iovec){ &m, sizeof(m) };
	iov[1] = (struct iovec){ &zf, sizeof(zf) };
	w = sandbox_msg_send_fds(z->sp.sock, iov, 2, fds, 2);
	if (w != (ssize_t)(sizeof(m) + sizeof(zf)) ||
	    sandbox_msg_recv(z->sp.sock, util_now_ns() + (int64_t)SANDBOX_SETUP_TIMEOUT_MS *
			     1000000, &m, &fd) < 0) {
		snprintf(err, errlen, "the zygote did not answer: %s", strerror(errno));
		goto fail;
	}
	if (fd >= 0)
		(void)close(fd);
	if (m.type != MSG_ZFORKED || (m.err == 0 && m.step <= 0)) {
		snprintf(err, errlen, "the zygote answered out of turn");
		goto fail;
	}
	if (m.err != 0) {
		/* its own failure to clone: it stays */
		snprintf(err, errlen, "the zygote could not fork: %s", strerror(m.err));
		return -1;
	}
	z->forks++;
	return (pid_t)m.step;
fail:
	log_output(z);
	zygote_stop(z);
	snprintf(z->why, sizeof(z->why), "%s", err);
	return -1;
}

int zygote_matches(const struct zygote *z, const struct run_spec *spec)
{
	return z->argv[0] != NULL && strcmp(spec->path, z->argv[0]) == 0 &&
	       util_same_strings(spec->argv, z->argv) && util_same_strings(spec->envp, z->envp);
}

void zygote_stop(struct zygote *z)
{
	sandbox_spare_discard(&z->sp);
	if (z->log_r >= 0)
		(void)close(z->log_r);
	z->log_r = -1;
	z->ready = 0;
	z->launched_ns = 0;
}
