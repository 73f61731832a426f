/* sandbox_probe: the start-up probe (sandbox_probe.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "run.h"
#include "sandbox.h"
#include "sandbox_probe.h"
#include "sandbox_proto.h"
#include "util.h"
#include "workdir.h"

/* The prefix of an interpreter path (/opt/py/bin/python3 -> /opt/py) into
 * out, or "" when it is the system's (under /usr, or /). */
static void python_prefix_of(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	char *slash;

	out[0] = '\0';
	if (strlen(path) >= sizeof(buf))
		return;
	strcpy(buf, path);
	for (int i = 0; i < 2; i++) {
		slash = strrchr(buf, '/');
		if (slash == NULL)
			return;
		*slash = '\0';
	}
	if (buf[0] == '\0' || strcmp(buf, "/usr") == 0 || strncmp(buf, "/usr/", 5) == 0)
		return;
	snprintf(out, len, "%s", buf);
}

static const char hint_userns[] =
	"user namespaces are disabled or restricted: allow them "
	"(`sysctl kernel.unprivileged_userns_clone=1` on Debian-like kernels, "
	"`sysctl user.max_user_namespaces=10000`; on Ubuntu >= 23.10 "
	"`sysctl kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile "
	"that allows userns for pyexec); inside a container, the container must allow "
	"nested user namespaces (no seccomp profile blocking clone/unshare)";
static const char hint_mount[] =
	"the kernel refuses mounts in pyexec's user namespace: on Ubuntu >= 23.10 set "
	"`sysctl kernel.apparmor_restrict_unprivileged_userns=0` or give pyexec an AppArmor "
	"profile that allows userns; inside a container, allow mounts in nested namespaces "
	"(no AppArmor/seccomp profile blocking mount)";

/* What fd holds (len bytes at most; its first line only when first_line)
 * into buf. */
static void probe_read(int fd, char *buf, size_t len, int first_line)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	if (first_line)
		buf[strcspn(buf, "\n")] = '\0';
}

/* 0 when the probe's program printed "ok"; -1 with what it said in err. */
static int probe_verdict(const char *python, const struct run_result *res, int out_fd,
			 int err_fd, char *err, size_t errlen)
{
	char out[64], errtxt[160];

	probe_read(out_fd, out, sizeof(out), 0);
	if (res->status == RUN_OK && strcmp(out, "ok\n") == 0)
		return 0;
	probe_read(err_fd, errtxt, sizeof(errtxt), 1);
	util_errorf(err, errlen, "%s did not run in the sandbox (exit %d, signal %d): %s; "
		    "check that it and its libraries are under /usr or its own prefix",
		    python, res->exit_code, res->signal,
		    errtxt[0] != '\0' ? errtxt : "no message");
	return -1;
}

/* One attempt; 0 when the program printed "ok". */
static int probe_once(struct sandbox_config *cfg, const char *python, const char *dir,
		      int up_fd, struct sandbox_run *run, char *err, size_t errlen)
{
	char *argv[] = { (char *)python, "-c", "import sys; print('ok')", NULL };
	char *envp[] = { "PATH=" UTIL_PATH, "LANG=C.UTF-8", "HOME=/tmp", NULL };
	struct run_spawner sp = sandbox_spawner;
	struct run_spec spec;
	struct run_result res;
	int out_fd = -1, err_fd = -1, rc = -1;

	sandbox_run_init(run, cfg, dir, up_fd, NULL, NULL);
	sp.arg = run;
	out_fd = memfd_create("probe-stdout", MFD_CLOEXEC);
	err_fd = memfd_create("probe-stderr", MFD_CLOEXEC);
	if (out_fd < 0 || err_fd < 0) {
		util_errorf(err, errlen, "cannot create the probe's output files: %s",
			    strerror(errno));
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.path = python;
	spec.argv = argv;
	spec.envp = envp;
	spec.stdin_fd = -1;
	spec.stdout_fd = out_fd;
	spec.stderr_fd = err_fd;
	spec.watch_fd = -1;
	spec.lim.wall_ms = SANDBOX_SETUP_TIMEOUT_MS + 10000;
	spec.lim.max_output = 4096;
	if (run_program(&spec, &sp, &res) < 0) {
		if (run->error[0] == '\0')
			util_errorf(err, errlen, "the probe could not run: %s",
				    strerror(errno));
		goto out;
	}
	rc = probe_verdict(python, &res, out_fd, err_fd, err, errlen);
out:
	if (out_fd >= 0)
		(void)close(out_fd);
	if (err_fd >= 0)
		(void)close(err_fd);
	sandbox_run_close(run);
	return rc;
}

/* Removes the probe's directory dir (in *tmp_fd's) and closes *tmp_fd. */
static void probe_dir_remove(int *tmp_fd, const char *dir)
{
	if (*tmp_fd < 0)
		return;
	if (workdir_rmtree_at(*tmp_fd, strrchr(dir, '/') + 1) < 0)
		log_msg(LOG_LEVEL_WARN, "sandbox: cannot remove %s: %s", dir, strerror(errno));
	(void)close(*tmp_fd);
	*tmp_fd = -1;
}

/* The probe's directory: a new "<pid>-sandbox-probe.XXXXXX" in tmp_dir
 * (named like a request directory: another pyexec sharing tmp_dir as its
 * work_root leaves it alone while this process lives), its name into dir,
 * tmp_dir's fd into *tmp_fd, and an empty "up" in it for the uploads: its
 * fd, or -1 with err (then nothing is left behind, *tmp_fd is -1). */
static int probe_dir_make(const char *tmp_dir, char *dir, size_t len, int *tmp_fd,
			  char *err, size_t errlen)
{
	const char *base;
	int fd = -1, up_fd;

	*tmp_fd = -1;
	if ((size_t)snprintf(dir, len, "%s/%d-sandbox-probe.XXXXXX", tmp_dir,
			     (int)getpid()) >= len) {
		util_errorf(err, errlen, "the temporary directory's path is too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdtemp(dir) == NULL) {
		util_errorf(err, errlen, "cannot create a directory in %s: %s", tmp_dir,
			    strerror(errno));
		return -1;
	}
	base = strrchr(dir, '/') + 1;
	*tmp_fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*tmp_fd < 0) {
		util_errorf(err, errlen, "cannot open %s: %s", tmp_dir, strerror(errno));
		(void)rmdir(dir);
		return -1;
	}
	fd = openat(*tmp_fd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || mkdirat(fd, "up", 0700) < 0) {
		util_errorf(err, errlen, "cannot prepare the probe in %s: %s", dir,
			    strerror(errno));
		up_fd = -1;
	} else {
		up_fd = openat(fd, "up", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (up_fd < 0)
			util_errorf(err, errlen, "cannot open %s/up: %s", dir, strerror(errno));
	}
	if (fd >= 0)
		(void)close(fd);
	if (up_fd < 0)
		probe_dir_remove(tmp_fd, dir);
	return up_fd;
}

/* The failed run's error into err, with the fix when the step that
 * failed says which (user namespaces, or mounts in them). */
static void probe_advice(const struct sandbox_run *run, char *err, size_t errlen)
{
	int userns = run->failed_step == STEP_CLONE || run->failed_step == STEP_MAPS;
	int mounts = (run->failed_step == STEP_MOUNT || run->failed_step == STEP_PROC ||
		      run->failed_step == STEP_SETUP) &&
		     (run->failed_errno == EPERM || run->failed_errno == EACCES);

	if (userns)
		util_errorf(err, errlen, "%s; %s", run->error, hint_userns);
	else if (mounts)
		util_errorf(err, errlen, "%s; %s", run->error, hint_mount);
	else
		util_errorf(err, errlen, "%s", run->error);
}

/* Runs the probe's sandbox in a directory of its own in tmp_dir; proc_retry:
 * when a fresh /proc is refused, try again without (cfg->proc = 0). */
static int probe_in(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
		    int proc_retry, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct sandbox_run run;
	int tmp_fd, up_fd, rc;

	up_fd = probe_dir_make(tmp_dir, dir, sizeof(dir), &tmp_fd, err, errlen);
	if (up_fd < 0)
		return -1;
	rc = probe_once(cfg, python, dir, up_fd, &run, err, errlen);
	if (rc < 0 && run.failed_step == STEP_PROC && proc_retry) {
		log_msg(LOG_LEVEL_WARN, "sandbox: %s; runs get an empty /proc instead",
			run.error);
		cfg->proc = 0;
		if (err != NULL && errlen > 0)
			err[0] = '\0';
		rc = probe_once(cfg, python, dir, up_fd, &run, err, errlen);
	}
	if (rc < 0 && run.error[0] != '\0')
		probe_advice(&run, err, errlen);
	(void)close(up_fd);
	probe_dir_remove(&tmp_fd, dir);
	return rc;
}

/* The prefixes of python that are not under /usr added to cfg's
 * python_dirs, each once: of the file it resolves to, and of the path
 * itself. 0, or -1 with err. */
static int python_dirs_add(struct sandbox_config *cfg, const char *python, char *err,
			   size_t errlen)
{
	char real[PATH_MAX], dir[2][PATH_MAX];

	if (python == NULL || python[0] != '/') {
		util_errorf(err, errlen, "the interpreter must be an absolute path");
		errno = EINVAL;
		return -1;
	}
	if (realpath(python, real) == NULL) {
		util_errorf(err, errlen, "cannot resolve %s: %s", python, strerror(errno));
		return -1;
	}
	python_prefix_of(real, dir[0], sizeof(dir[0]));
	python_prefix_of(python, dir[1], sizeof(dir[1]));
	for (int i = 0; i < 2; i++) {
		int seen = dir[i][0] == '\0';

		for (const char *p = sandbox_list_next(cfg->python_dirs, NULL); p != NULL && !seen;
		     p = sandbox_list_next(cfg->python_dirs, p))
			seen = strcmp(p, dir[i]) == 0;
		if (!seen && sandbox_list_add(cfg->python_dirs, dir[i]) < 0) {
			util_errorf(err, errlen, "%s: too many interpreters' directories to bind "
				    "(%d bytes of paths)", python, SANDBOX_LIST_MAX);
			return -1;
		}
	}
	return 0;
}

int sandbox_probe(struct sandbox_config *cfg, const char *python, uint64_t disk_bytes,
		  int network, const char *tmp_dir, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(cfg->python_dirs, 0, sizeof(cfg->python_dirs));
	cfg->disk_bytes = 0;
	cfg->network = cfg->proc = 0;
	if (python == NULL || python[0] != '/' || tmp_dir == NULL || disk_bytes == 0) {
		util_errorf(err, errlen, "the interpreter must be an absolute path "
			    "and the disk size more than 0");
		errno = EINVAL;
		return -1;
	}
	if (python_dirs_add(cfg, python, err, errlen) < 0)
		return -1;
	cfg->disk_bytes = disk_bytes;
	cfg->network = network != 0;
	cfg->proc = 1;
	cfg->uid = getuid();
	cfg->gid = getgid();
	cfg->run_uid = cfg->uid;
	cfg->run_gid = cfg->gid;
	return probe_in(cfg, python, tmp_dir, 1, err, errlen);
}

int sandbox_probe_python(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
			 char *err, size_t errlen)
{
	char before[SANDBOX_LIST_MAX];
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memcpy(before, cfg->python_dirs, sizeof(before));
	rc = python_dirs_add(cfg, python, err, errlen);
	if (rc == 0)
		rc = probe_in(cfg, python, tmp_dir, 0, err, errlen);
	if (rc < 0)
		memcpy(cfg->python_dirs, before, sizeof(before));
	return rc;
}

int sandbox_probe_run_ids(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
			  uid_t run_uid, gid_t run_gid, char *err, size_t errlen)
{
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	cfg->run_uid = run_uid;
	cfg->run_gid = run_gid;
	rc = probe_in(cfg, python, tmp_dir, 0, err, errlen);
	if (rc < 0) {
		cfg->run_uid = cfg->uid;
		cfg->run_gid = cfg->gid;
	}
	return rc;
}
