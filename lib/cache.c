#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "log.h"
#include "run.h"
#include "util.h"
#include "workdir.h"

#define LOCK_POLL_MS 20             /* between tries of a busy lock */
#define PROBE_TIMEOUT_MS 30000      /* the interpreter's identity at start */
#define PIP_NOFILE 1024
#define PIP_ARGS_FIXED 24           /* argv slots besides the requirements */

/* What makes the key of a set change besides the set itself. */
static const char probe_source[] =
	"import sys, platform, importlib.metadata as m\n"
	"print(sys.version.replace('\\n', ' '))\n"
	"print(sys.implementation.cache_tag, platform.machine())\n"
	"print('pip', m.version('pip'))\n";

/* Puts an entry's site/ on the import path with site semantics (.pth files
 * run), ahead of the system's packages, so a pinned version wins. Imported
 * by Python at start because the entry is on PYTHONPATH. */
static const char sitecustomize_source[] =
	"# pyexec: this dependency set, on the import path with site semantics.\n"
	"import os as _os, site as _site, sys as _sys\n"
	"_before = list(_sys.path)\n"
	"_site.addsitedir(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), 'site'))\n"
	"_sys.path[:] = [_p for _p in _sys.path if _p not in _before] + _before\n"
	"del _os, _site, _sys, _before\n";

static int path_in(char *out, size_t len, const char *root, const char *a, const char *b)
{
	int n;

	if (b != NULL)
		n = snprintf(out, len, "%s/%s/%s", root, a, b);
	else
		n = snprintf(out, len, "%s/%s", root, a);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int mkdir_in(const char *root, const char *name)
{
	char p[PATH_MAX];

	if (path_in(p, sizeof(p), root, name, NULL) < 0)
		return -1;
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static void first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
}

/* A run of the interpreter for the cache's own work: no stdin, nothing
 * watched, output to the given fds, a wall limit; the caller adds more. */
static void python_spec(struct run_spec *spec, const char *python, char **argv,
			char **envp, const char *cwd, int out_fd, int err_fd,
			uint64_t wall_ms, uint64_t max_output)
{
	memset(spec, 0, sizeof(*spec));
	spec->path = python;
	spec->argv = argv;
	spec->envp = envp;
	spec->cwd = cwd;
	spec->stdin_fd = -1;
	spec->watch_fd = -1;
	spec->stdout_fd = out_fd;
	spec->stderr_fd = err_fd;
	spec->lim.wall_ms = wall_ms;
	spec->lim.max_output = max_output;
}

/* The lock of key's entry taken exclusively now: its fd, or -1 when someone
 * holds it (an install under way, a request using the entry) or it cannot
 * be opened. */
static int key_try_lock(const struct config *cfg, const char *key)
{
	char p[PATH_MAX];
	int fd;

	if (path_in(p, sizeof(p), cfg->deps_cache, ".locks", key) < 0)
		return -1;
	fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The cache's own directories, made when missing. 0, or -1 with err. */
static int cache_dirs(const struct config *cfg, char *err, size_t errlen)
{
	static const char *const dirs[] = { ".staging", ".locks", ".sizes", ".home", ".wanted",
					    ".prefetched" };

	if (mkdir(cfg->deps_cache, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "deps_cache %s: %s", cfg->deps_cache, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (mkdir_in(cfg->deps_cache, dirs[i]) < 0) {
			snprintf(err, errlen, "deps_cache %s/%s: %s", cfg->deps_cache, dirs[i],
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Removes the installs that were under way when pyexec last stopped
 * ("<key>.<rnd>" in .staging). Another pyexec may share this cache
 * (mod_fcgid runs several): an install it has under way holds its key's
 * lock, and stays. */
static void sweep_staging(const struct config *cfg)
{
	char stage[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (path_in(stage, sizeof(stage), cfg->deps_cache, ".staging", NULL) < 0 ||
	    (d = opendir(stage)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char key[DEPS_KEY_HEX + 1];
		int lfd;

		if (de->d_name[0] == '.' || strlen(de->d_name) <= DEPS_KEY_HEX ||
		    de->d_name[DEPS_KEY_HEX] != '.')
			continue;
		memcpy(key, de->d_name, DEPS_KEY_HEX);
		key[DEPS_KEY_HEX] = '\0';
		lfd = key_try_lock(cfg, key);
		if (lfd < 0)
			continue;
		(void)workdir_rmtree_at(dirfd(d), de->d_name);
		close(lfd);
	}
	closedir(d);
}

/* Runs the interpreter's probe: its identity into out, and whether it has
 * pip (c->usable; c->why and a warning when not). 0, or -1 with err. */
static int probe_python(struct cache *c, char *out, size_t outlen, char *err, size_t errlen)
{
	char *argv[] = { c->python, "-s", "-c", (char *)probe_source, NULL };
	char *envp[] = { "PATH=" UTIL_PATH, "LANG=C.UTF-8", NULL };
	char errout[1024], *last;
	struct run_spec spec;
	struct run_result res;
	int ofd = memfd_create("pyexec-probe-out", MFD_CLOEXEC);
	int efd = memfd_create("pyexec-probe-err", MFD_CLOEXEC);
	int rc = -1;

	if (ofd < 0 || efd < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		goto out;
	}
	python_spec(&spec, c->python, argv, envp, "/", ofd, efd, PROBE_TIMEOUT_MS, outlen - 1);
	if (run_program(&spec, NULL, &res) < 0) {
		snprintf(err, errlen, "cannot run %s to learn its version: %s", c->python,
			 strerror(errno));
		goto out;
	}
	util_read_text(ofd, out, outlen);
	rc = 0;
	c->usable = res.status == RUN_OK;
	if (c->usable)
		goto out;
	util_read_text(efd, errout, sizeof(errout));
	/* The last line of a traceback says what is missing. */
	last = errout + strlen(errout);
	while (last > errout && last[-1] == '\n')
		*--last = '\0';
	while (last > errout && last[-1] != '\n')
		last--;
	snprintf(c->why, sizeof(c->why),
		 "pip is not available for %s (%s); install it (apt-get install python3-pip) "
		 "to serve requests with dependencies", c->python, *last ? last : "no output");
	log_msg(LOG_LEVEL_WARN, "dependencies: %s", c->why);
out:
	util_close_keep_errno(ofd);
	util_close_keep_errno(efd);
	return rc;
}

int cache_init(struct cache *c, const struct config *cfg, const struct config_python *py,
	       char *err, size_t errlen)
{
	char out[1024];
	int n;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	snprintf(c->name, sizeof(c->name), "%s", py->name);
	snprintf(c->python, sizeof(c->python), "%s", py->path);
	if (cache_dirs(cfg, err, errlen) < 0)
		return -1;
	sweep_staging(cfg);
	if (probe_python(c, out, sizeof(out), err, errlen) < 0)
		return -1;
	n = snprintf(c->salt, sizeof(c->salt),
		     "pyexec-deps-1\npython=%s\n%sonly_binary=%d\nindex=%s\nextra_index=%s\n"
		     "find_links=%s\n",
		     c->python, out, cfg->pip_only_binary, cfg->pip_index_url,
		     cfg->pip_extra_index_url, cfg->pip_find_links);
	if (n < 0 || (size_t)n >= sizeof(c->salt)) {
		snprintf(err, errlen, "the interpreter's identity is too long");
		return -1;
	}
	first_line(out);
	snprintf(c->python_version, sizeof(c->python_version), "%.255s", out);
	if (c->usable) {
		log_msg(LOG_LEVEL_INFO, "dependencies: cache %s, python %s (%s) %s", cfg->deps_cache,
			c->name, c->python, out);
	}
	return 0;
}

/* flock with a deadline, giving up when the client goes away. */
static int lock_wait(int fd, int op, const struct config *cfg, int watch_fd,
		     volatile sig_atomic_t *cancel)
{
	int64_t deadline = util_now_ns() +
		((int64_t)cfg->pip_timeout_ms + CACHE_WAIT_EXTRA_MS) * 1000000;

	for (;;) {
		struct pollfd pfd = { watch_fd, POLLRDHUP, 0 };

		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (cancel != NULL && *cancel) {
			errno = ECANCELED;
			return -1;
		}
		if (util_now_ns() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, watch_fd >= 0 ? 1 : 0, LOCK_POLL_MS) > 0 &&
		    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
			errno = ECANCELED;
			return -1;
		}
	}
}

static int entry_exists(const struct config *cfg, const char *key)
{
	char p[PATH_MAX];
	struct stat st;

	return path_in(p, sizeof(p), cfg->deps_cache, key, NULL) == 0 &&
	       lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* An entry the cache wanted to evict and could not (in use): its mark in
 * .wanted, seen by the workers whose zygotes hold it (cache_wanted), gone
 * once the entry is used again or evicted. */
static void mark_wanted(const struct config *cfg, const char *key, int wanted)
{
	char p[PATH_MAX];
	int fd;

	if (path_in(p, sizeof(p), cfg->deps_cache, ".wanted", key) < 0)
		return;
	if (!wanted) {
		(void)unlink(p);
		return;
	}
	fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		(void)close(fd);
}

int cache_entry_path(const struct config *cfg, const char *key, char *out, size_t len)
{
	return path_in(out, len, cfg->deps_cache, key, NULL);
}

int cache_mark_prefetched(const struct config *cfg, const char *key)
{
	char p[PATH_MAX];
	int fd;

	if (path_in(p, sizeof(p), cfg->deps_cache, ".prefetched", key) < 0)
		return -1;
	fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	(void)close(fd);
	return 0;
}

size_t cache_prefetched(const struct config *cfg, char (*keys)[DEPS_KEY_HEX + 1], size_t max)
{
	char p[PATH_MAX];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	if (path_in(p, sizeof(p), cfg->deps_cache, ".prefetched", NULL) < 0 ||
	    (d = opendir(p)) == NULL)
		return 0;
	while (n < max && (de = readdir(d)) != NULL)
		if (strlen(de->d_name) == DEPS_KEY_HEX && entry_exists(cfg, de->d_name))
			memcpy(keys[n++], de->d_name, DEPS_KEY_HEX + 1);
	(void)closedir(d);
	return n;
}

int cache_lease(const struct config *cfg, const char *key)
{
	char p[PATH_MAX];
	int fd;

	if (path_in(p, sizeof(p), cfg->deps_cache, ".locks", key) < 0)
		return -1;
	fd = open(p, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 || !entry_exists(cfg, key)) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

int cache_wanted(const struct config *cfg, const char *key)
{
	char p[PATH_MAX];

	return path_in(p, sizeof(p), cfg->deps_cache, ".wanted", key) == 0 &&
	       faccessat(AT_FDCWD, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The entry was used now: its size file's mtime orders eviction (and
 * eviction's mark goes). */
static void touch_entry(const struct config *cfg, const char *key)
{
	char p[PATH_MAX];

	if (path_in(p, sizeof(p), cfg->deps_cache, ".sizes", key) == 0)
		(void)utimensat(AT_FDCWD, p, NULL, AT_SYMLINK_NOFOLLOW);
	mark_wanted(cfg, key, 0);
}

/* nftw walks: one install at a time per process, so a static total is fine. */
static uint64_t walk_total;

static int walk_size(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)path;
	(void)type;
	(void)f;
	walk_total += (uint64_t)st->st_blocks * 512;
	return 0;
}

static int walk_readonly(const char *path, const struct stat *st, int type, struct FTW *f)
{
	/* The top stays writable until it is renamed into place: moving a
	 * directory to another parent rewrites its "..". */
	if (type == FTW_SL || type == FTW_SLN || f->level == 0)
		return 0;
	/* Read-only for everyone, the owner included: the sandbox reads it. */
	if (chmod(path, st->st_mode & 07555) < 0)
		return -1;
	return 0;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	int rc;

	if (fd < 0)
		return -1;
	rc = util_write_all(fd, text, strlen(text));
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* Removes a directory anywhere under the cache. */
static void remove_path(const char *path)
{
	char parent[PATH_MAX], *name;
	int dfd = util_open_parent(path, parent, sizeof(parent), &name);

	if (dfd < 0)
		return;
	if (workdir_rmtree_at(dfd, name) < 0)
		log_msg(LOG_LEVEL_ERROR, "cannot remove %s: %s", path, strerror(errno));
	close(dfd);
}

/* Byte-compiles one file with the configured interpreter. 0 or -1. */
static int compile_file(const char *python, const char *cwd, const char *path)
{
	char *argv[] = { (char *)python, "-s", "-m", "py_compile", (char *)path, NULL };
	char *envp[] = { "PATH=" UTIL_PATH, "LANG=C.UTF-8", NULL };
	struct run_spec spec;
	struct run_result res;
	int fd = memfd_create("pyexec-compile", MFD_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	python_spec(&spec, python, argv, envp, cwd, fd, fd, PROBE_TIMEOUT_MS, 4096);
	rc = run_program(&spec, NULL, &res) == 0 && res.status == RUN_OK ? 0 : -1;
	close(fd);
	return rc;
}

/* pip's command line and environment for one install into site. */
struct pip_cmd {
	char home[CONFIG_PATH_MAX + 32], tmp[CONFIG_PATH_MAX + 32];
	char index[CONFIG_PATH_MAX + 16], extra[CONFIG_PATH_MAX + 24];
	char links[CONFIG_PATH_MAX + 16];
	char *envp[5];
	char **argv;            /* malloc'd */
};

/* Fills cmd for set into site. 0, or -1 out of memory. */
static int pip_cmd_make(struct pip_cmd *cmd, const struct cache *c, const struct deps_set *set,
			char *site)
{
	const struct config *cfg = c->cfg;
	int n = 0;

	cmd->argv = calloc(PIP_ARGS_FIXED + set->n + 1, sizeof(*cmd->argv));
	if (cmd->argv == NULL)
		return -1;
	snprintf(cmd->home, sizeof(cmd->home), "HOME=%s/.home", cfg->deps_cache);
	snprintf(cmd->tmp, sizeof(cmd->tmp), "TMPDIR=%s/.home", cfg->deps_cache);
	cmd->envp[0] = "PATH=" UTIL_PATH;
	cmd->envp[1] = "LANG=C.UTF-8";
	cmd->envp[2] = cmd->home;
	cmd->envp[3] = cmd->tmp;
	cmd->envp[4] = NULL;
	/* No shell, no option from the client: every requirement was
	 * validated by deps_parse and comes after "--". */
	cmd->argv[n++] = (char *)c->python;
	cmd->argv[n++] = "-s";
	cmd->argv[n++] = "-m";
	cmd->argv[n++] = "pip";
	cmd->argv[n++] = "install";
	cmd->argv[n++] = "--isolated";
	cmd->argv[n++] = "--no-input";
	cmd->argv[n++] = "--disable-pip-version-check";
	cmd->argv[n++] = "--no-cache-dir";
	cmd->argv[n++] = "--no-color";
	cmd->argv[n++] = "--progress-bar=off";
	cmd->argv[n++] = "--target";
	cmd->argv[n++] = site;
	if (cfg->pip_only_binary)
		cmd->argv[n++] = "--only-binary=:all:";
	if (cfg->pip_index_url[0]) {
		snprintf(cmd->index, sizeof(cmd->index), "--index-url=%s", cfg->pip_index_url);
		cmd->argv[n++] = cmd->index;
	}
	if (cfg->pip_extra_index_url[0]) {
		snprintf(cmd->extra, sizeof(cmd->extra), "--extra-index-url=%s",
			 cfg->pip_extra_index_url);
		cmd->argv[n++] = cmd->extra;
	}
	if (cfg->pip_find_links[0]) {
		snprintf(cmd->links, sizeof(cmd->links), "--find-links=%s", cfg->pip_find_links);
		cmd->argv[n++] = cmd->links;
	}
	cmd->argv[n++] = "--";
	for (unsigned i = 0; i < set->n; i++)
		cmd->argv[n++] = (char *)set->req[i];
	cmd->argv[n] = NULL;
	return 0;
}

/* Runs pip; on failure, says why on out_fd after pip's own output. */
static enum cache_result pip_run(const struct cache *c, const struct pip_cmd *cmd,
				 const char *stage, const char *key, int out_fd, int *truncated,
				 int watch_fd, volatile sig_atomic_t *cancel)
{
	const struct config *cfg = c->cfg;
	struct run_spec spec;
	struct run_result res;
	char line[256];

	python_spec(&spec, c->python, cmd->argv, (char **)cmd->envp, stage, out_fd, out_fd,
		    cfg->pip_timeout_ms, cfg->max_output);
	spec.watch_fd = watch_fd;
	spec.cancel = cancel;
	spec.lim.memory = cfg->memory_max;
	spec.lim.nproc = cfg->max_processes;
	spec.lim.nofile = PIP_NOFILE;
	if (run_program(&spec, NULL, &res) < 0) {
		log_msg(LOG_LEVEL_ERROR, "dependencies: cannot run pip: %s", strerror(errno));
		return CACHE_ERROR;
	}
	*truncated = res.stdout_truncated || res.stderr_truncated;
	if (res.status == RUN_OK)
		return CACHE_INSTALLED;
	if (res.status == RUN_TIMEOUT)
		snprintf(line, sizeof(line),
			 "pyexec: pip did not finish within pip_timeout; the install was stopped\n");
	else
		snprintf(line, sizeof(line), "pyexec: pip failed (%s %d); nothing was installed\n",
			 res.signal ? "signal" : "exit status",
			 res.signal ? res.signal : res.exit_code);
	(void)util_write_all(out_fd, line, strlen(line));
	log_msg(LOG_LEVEL_WARN, "dependencies: install of %s failed: %s", key, line);
	return res.cancelled ? CACHE_CANCELLED : CACHE_PIP_FAILED;
}

/* What pip installed in stage becomes the entry: the sitecustomize,
 * compiled, everything read-only, renamed into place, its size noted.
 * CACHE_INSTALLED (also when another install of the set won the race), or
 * CACHE_ERROR (logged) with stage left for the caller to remove. */
static enum cache_result stage_publish(const struct cache *c, const char *stage,
				       const char *entry, const char *key)
{
	const struct config *cfg = c->cfg;
	char file[PATH_MAX], size[32];

	if (path_in(file, sizeof(file), stage, "sitecustomize.py", NULL) < 0 ||
	    write_file(file, sitecustomize_source) < 0) {
		log_msg(LOG_LEVEL_ERROR, "dependencies: writing %s: %s", file, strerror(errno));
		return CACHE_ERROR;
	}
	/* Compiled now, while the entry is writable: every run imports it, and
	 * a read-only entry would otherwise have it compiled at every start. */
	if (compile_file(c->python, stage, file) < 0)
		log_msg(LOG_LEVEL_WARN, "dependencies: cannot precompile %s", file);
	walk_total = 0;
	if (nftw(stage, walk_size, 16, FTW_PHYS) != 0 ||
	    nftw(stage, walk_readonly, 16, FTW_PHYS) != 0) {
		log_msg(LOG_LEVEL_ERROR, "dependencies: preparing %s: %s", stage, strerror(errno));
		return CACHE_ERROR;
	}
	if (rename(stage, entry) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			return CACHE_INSTALLED;   /* another install finished first: as good */
		log_msg(LOG_LEVEL_ERROR, "dependencies: rename %s: %s", stage, strerror(errno));
		return CACHE_ERROR;
	}
	if (chmod(entry, 0555) < 0)
		log_msg(LOG_LEVEL_ERROR, "dependencies: chmod %s: %s", entry, strerror(errno));
	snprintf(size, sizeof(size), "%llu\n", (unsigned long long)walk_total);
	if (path_in(file, sizeof(file), cfg->deps_cache, ".sizes", key) < 0 ||
	    write_file(file, size) < 0)
		log_msg(LOG_LEVEL_ERROR, "dependencies: writing %s: %s", file, strerror(errno));
	return CACHE_INSTALLED;
}

/* Runs pip into a staging directory and renames it into place. */
static enum cache_result install(struct cache *c, const struct deps_set *set, const char *key,
				 int out_fd, int *truncated, int watch_fd,
				 volatile sig_atomic_t *cancel)
{
	const struct config *cfg = c->cfg;
	char stage[PATH_MAX], site[PATH_MAX], entry[PATH_MAX], rnd[9];
	static struct pip_cmd zero;
	struct pip_cmd cmd = zero;
	enum cache_result rc;

	if (util_random_hex(rnd, 4) < 0 ||
	    snprintf(stage, sizeof(stage), "%s/.staging/%s.%s", cfg->deps_cache, key, rnd) >=
		    (int)sizeof(stage) ||
	    path_in(site, sizeof(site), stage, "site", NULL) < 0 ||
	    path_in(entry, sizeof(entry), cfg->deps_cache, key, NULL) < 0 ||
	    pip_cmd_make(&cmd, c, set, site) < 0) {
		free(cmd.argv);
		return CACHE_ERROR;
	}
	if (mkdir(stage, 0700) < 0) {
		log_msg(LOG_LEVEL_ERROR, "dependencies: mkdir %s: %s", stage, strerror(errno));
		free(cmd.argv);
		return CACHE_ERROR;
	}
	log_msg(LOG_LEVEL_INFO, "dependencies: installing %s with pip (%u requirements)", key,
		set->n);
	rc = pip_run(c, &cmd, stage, key, out_fd, truncated, watch_fd, cancel);
	if (rc == CACHE_INSTALLED)
		rc = stage_publish(c, stage, entry, key);
	/* What is left of the stage: all of it when pip or the publishing
	 * failed or another install won; nothing once it was renamed. */
	if (access(stage, F_OK) == 0)
		remove_path(stage);
	free(cmd.argv);
	return rc;
}

enum cache_result cache_acquire(struct cache *c, const struct deps_set *set,
				struct cache_use *use, int out_fd, int *truncated,
				int watch_fd, volatile sig_atomic_t *cancel, int *evicted)
{
	const struct config *cfg = c->cfg;
	char lockpath[PATH_MAX];
	enum cache_result r;
	int fd, n;

	memset(use, 0, sizeof(*use));
	use->lock_fd = -1;
	*truncated = 0;
	*evicted = 0;
	if (!c->usable)
		return CACHE_UNUSABLE;
	deps_key(set, c->salt, use->key);
	if (path_in(lockpath, sizeof(lockpath), cfg->deps_cache, ".locks", use->key) < 0 ||
	    cache_entry_path(cfg, use->key, use->path, sizeof(use->path)) < 0)
		return CACHE_ERROR;
	fd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "dependencies: %s: %s", lockpath, strerror(errno));
		return CACHE_ERROR;
	}
	/* Eviction takes the lock exclusively: between the two lock steps the
	 * entry can come and go, so a few rounds may be needed. */
	for (int round = 0; round < 3; round++) {
		if (lock_wait(fd, LOCK_SH, cfg, watch_fd, cancel) < 0)
			goto fail;
		if (entry_exists(cfg, use->key)) {
			touch_entry(cfg, use->key);
			use->lock_fd = fd;
			return CACHE_HIT;
		}
		if (lock_wait(fd, LOCK_EX, cfg, watch_fd, cancel) < 0)
			goto fail;
		if (!entry_exists(cfg, use->key)) {
			r = install(c, set, use->key, out_fd, truncated, watch_fd, cancel);
			if (r != CACHE_INSTALLED) {
				close(fd);
				return r;
			}
			if (flock(fd, LOCK_SH) < 0)
				goto fail;
			use->lock_fd = fd;
			touch_entry(cfg, use->key);
			n = cache_evict(c);
			*evicted = n > 0 ? n : 0;
			return CACHE_INSTALLED;
		}
		/* Another request installed it while we waited. */
		if (flock(fd, LOCK_SH) < 0)
			goto fail;
		if (entry_exists(cfg, use->key)) {
			touch_entry(cfg, use->key);
			use->lock_fd = fd;
			return CACHE_HIT;
		}
	}
	errno = EAGAIN;
fail:
	r = errno == ECANCELED ? CACHE_CANCELLED : CACHE_ERROR;
	log_msg(r == CACHE_CANCELLED ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR,
		"dependencies: waiting for %s: %s", use->key, strerror(errno));
	close(fd);
	return r;
}

void cache_release(struct cache_use *use)
{
	if (use->lock_fd >= 0)
		close(use->lock_fd);   /* closing drops the shared lock */
	use->lock_fd = -1;
}

struct cache_entry {
	char key[DEPS_KEY_HEX + 1];
	uint64_t size;
	struct timespec used;
};

static int by_use(const void *a, const void *b)
{
	const struct cache_entry *x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Every entry's recorded size and last use, from .sizes/: a malloc'd array
 * in *out (n entries; total bytes), or -1 when .sizes cannot be read. */
static int read_entries(const struct config *cfg, struct cache_entry **out, size_t *np,
			uint64_t *totalp)
{
	struct cache_entry *v = NULL, *nv;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	char sizes[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (path_in(sizes, sizeof(sizes), cfg->deps_cache, ".sizes", NULL) < 0 ||
	    (d = opendir(sizes)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char text[32] = "";
		struct stat st;
		int fd;

		if (strlen(de->d_name) != DEPS_KEY_HEX)
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0) {
			close(fd);
			continue;
		}
		util_read_text(fd, text, sizeof(text));
		close(fd);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
		}
		snprintf(v[n].key, sizeof(v[n].key), "%s", de->d_name);
		if (util_parse_uint(text, strcspn(text, "\n"), 0, UINT64_MAX, &v[n].size) !=
		    UTIL_NUM_OK)
			v[n].size = 0;
		v[n].used = st.st_mtim;
		total += v[n].size;
		n++;
	}
	closedir(d);
	*out = v;
	*np = n;
	*totalp = total;
	return 0;
}

int cache_usage(const struct cache *c, uint64_t *bytes, unsigned *entries)
{
	struct cache_entry *v;
	uint64_t total;
	size_t n;

	if (read_entries(c->cfg, &v, &n, &total) < 0)
		return -1;
	free(v);
	*bytes = total;
	*entries = (unsigned)n;
	return 0;
}

int cache_evict(struct cache *c)
{
	const struct config *cfg = c->cfg;
	struct cache_entry *v = NULL;
	size_t n = 0;
	uint64_t total = 0;
	char p[PATH_MAX], gone[PATH_MAX], rnd[9];
	int evicted = 0;

	if (read_entries(cfg, &v, &n, &total) < 0)
		return -1;
	if (total > cfg->deps_cache_max && n > 0)
		qsort(v, n, sizeof(*v), by_use);
	for (size_t i = 0; i < n && total > cfg->deps_cache_max; i++) {
		/* In use (shared lock held) or being installed: not now. A
		 * zygote that holds it sees the mark, and lets it go. */
		int fd = key_try_lock(cfg, v[i].key);

		if (fd < 0) {
			mark_wanted(cfg, v[i].key, 1);
			continue;
		}
		/* The entry's top is read-only, and moving a directory to another
		 * parent rewrites its "..": make it writable first. */
		if (util_random_hex(rnd, 4) == 0 &&
		    path_in(p, sizeof(p), cfg->deps_cache, v[i].key, NULL) == 0 &&
		    snprintf(gone, sizeof(gone), "%s/.staging/%s.evicted.%s", cfg->deps_cache,
			     v[i].key, rnd) < (int)sizeof(gone) &&
		    (chmod(p, 0700) == 0 || errno == ENOENT) &&
		    (rename(p, gone) == 0 || errno == ENOENT)) {
			if (path_in(p, sizeof(p), cfg->deps_cache, ".sizes", v[i].key) == 0)
				(void)unlink(p);
			mark_wanted(cfg, v[i].key, 0);
			if (path_in(p, sizeof(p), cfg->deps_cache, ".prefetched", v[i].key) == 0)
				(void)unlink(p);
			close(fd);      /* the entry is gone from its name: let others in */
			remove_path(gone);
			total -= v[i].size;
			evicted++;
			log_msg(LOG_LEVEL_INFO, "dependencies: evicted %s (%llu bytes)", v[i].key,
				(unsigned long long)v[i].size);
		} else {
			log_msg(LOG_LEVEL_ERROR, "dependencies: cannot evict %s: %s", v[i].key,
				strerror(errno));
			close(fd);
		}
	}
	free(v);
	return evicted;
}
