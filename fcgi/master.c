/* The master of pyexec-fcgi: opens (or inherits) the listening socket,
 * drops privileges, sweeps work_root and pre-forks workers; it restarts a
 * worker that dies, sweeps what the dead worker left, rereads the
 * configuration on SIGHUP, and passes SIGTERM on as a graceful stop. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>

#include "listen.h"
#include "run.h"
#include "auth.h"
#include "cgroup.h"
#include "sandbox.h"
#include "figures.h"
#include "sandbox_probe.h"
#include "subid.h"
#include "log.h"
#include "master.h"
#include "warm.h"
#include "mime.h"
#include "util.h"
#include "workdir.h"

#define WORKERS_MAX 1024
#define RESPAWN_FAST_NS (1000000000LL)  /* a worker dying sooner is "crashing" */
#define STOP_GRACE_EXTRA_S 30           /* beyond timeout_max, before SIGKILL */
#define STRAY_KILL_MAX_NS (5000000000LL) /* to kill what a dead worker left */

static volatile sig_atomic_t got_term, got_chld, got_hup;

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static void cmdline_free(struct cmdline *cl)
{
	for (int i = 0; i < cl->nsets; i++)
		free(cl->sets[i]);
	free(cl->sets);
	free(cl->config_path);
	free(cl->listen_opt);
	free(cl->workers_opt);
	memset(cl, 0, sizeof(*cl));
}

/* Keys a reload cannot change: the socket, the processes and their user,
 * the directories, and what the sandbox probe and the dependency cache's
 * key were built from. */
static const char *const restart_keys[] = {
	"listen", "workers", "user", "group", "python", "pythons", "work_root", "deps_cache",
	"pip_index_url", "pip_extra_index_url", "pip_find_links", "pip_only_binary",
	"network", "sandbox", "cgroup", "subordinate_ids",
};

/* Defaults, then the file, then the options, then the checks. */
static int config_build(struct config *cfg, const struct cmdline *cl, char *err, size_t errlen)
{
	config_defaults(cfg);
	if (cl->config_path != NULL && config_load_file(cfg, cl->config_path, err, errlen) < 0)
		return -1;
	for (int i = 0; i < cl->nsets; i++) {
		char key[128], *eq = strchr(cl->sets[i], '=');

		if (eq == NULL || (size_t)(eq - cl->sets[i]) >= sizeof(key)) {
			snprintf(err, errlen, "-o %s: expected KEY=VALUE", cl->sets[i]);
			return -1;
		}
		memcpy(key, cl->sets[i], (size_t)(eq - cl->sets[i]));
		key[eq - cl->sets[i]] = '\0';
		if (config_set(cfg, key, eq + 1, err, errlen) < 0)
			return -1;
	}
	if (cl->listen_opt != NULL && config_set(cfg, "listen", cl->listen_opt, err, errlen) < 0)
		return -1;
	if (cl->workers_opt != NULL &&
	    config_set(cfg, "workers", cl->workers_opt, err, errlen) < 0)
		return -1;
	return config_check(cfg, err, errlen);
}

int master_configure(struct master *m, char *err, size_t errlen)
{
	return config_build(&m->cfg, &m->cl, err, errlen);
}

/* A decimal id ("65534") up to 2^31 - 1, or -1 when s is not one. */
static long numeric_id(const char *s)
{
	uint64_t v;

	return util_parse_uint(s, strlen(s), 0, 0x7fffffff, &v) == UTIL_NUM_OK ? (long)v : -1;
}

/* The user and group to run as when started as root: names, or numbers
 * (which need no entry in /etc/passwd or /etc/group). */
static int resolve_user(const struct config *cfg, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(cfg->user);
	struct group *gr = getgrnam(cfg->group);
	long nu = numeric_id(cfg->user), ng = numeric_id(cfg->group);

	if (pw == NULL && nu < 0) {
		snprintf(err, errlen, "user '%s' does not exist (set 'user' in pyexec.conf)", cfg->user);
		return -1;
	}
	if (gr == NULL && ng < 0) {
		snprintf(err, errlen, "group '%s' does not exist (set 'group' in pyexec.conf)",
			 cfg->group);
		return -1;
	}
	*uid = pw != NULL ? pw->pw_uid : (uid_t)nu;
	*gid = gr != NULL ? gr->gr_gid : (gid_t)ng;
	if (*uid == 0) {
		snprintf(err, errlen, "user '%s' is root; pyexec runs programs as an unprivileged user",
			 cfg->user);
		return -1;
	}
	if (*gid == 0) {
		snprintf(err, errlen, "group '%s' is root's group; pyexec runs programs as an "
			 "unprivileged group", cfg->group);
		return -1;
	}
	return 0;
}

/* A directory pyexec's user owns (work_root, deps_cache), made if missing. */
static int prepare_dir(const char *key, const char *path, int as_root, uid_t uid, gid_t gid,
		       char *err, size_t errlen)
{
	struct stat st;

	if (util_mkdir_p(path, 0700) < 0 || stat(path, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s %s is not a directory", key, path);
		return -1;
	}
	if (as_root && (chown(path, uid, gid) < 0 || chmod(path, 0700) < 0)) {
		snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
		return -1;
	}
	return 0;
}

static int drop_privileges(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "cannot drop privileges to uid %u: %s", (unsigned)uid,
			 strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "privileges were not dropped (setuid(0) still works)");
		return -1;
	}
	return 0;
}

/* Removes the request directories a dead worker left: "<pid>-<id>". */
static void sweep_worker(const char *root, pid_t pid)
{
	char prefix[32];
	size_t plen;
	struct dirent *de;
	DIR *d;
	int dfd;

	plen = (size_t)snprintf(prefix, sizeof(prefix), "%ld-", (long)pid);
	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		if (workdir_rmtree_at(dfd, de->d_name) < 0)
			log_msg(LOG_LEVEL_ERROR, "cannot remove %s/%s left by worker %ld: %s",
				root, de->d_name, (long)pid, strerror(errno));
		else
			log_msg(LOG_LEVEL_WARN, "removed %s/%s left by worker %ld", root,
				de->d_name, (long)pid);
	}
	closedir(d);
}

/* Whether the parent is Apache httpd: mod_fcgid's process manager (an
 * "apache2" or "httpd" process) starts its FastCGI programs itself, with
 * the listening socket on fd 0 and nothing else to tell them apart (their
 * environment is PATH and FcgidInitialEnv only). It sends each process one
 * request at a time and runs as many processes as it wants concurrency. */
static int parent_is_apache(void)
{
	char path[64], comm[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)getppid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "apache2") == 0 || strcmp(comm, "httpd") == 0;
}

struct worker {
	pid_t pid;              /* 0 when not running */
	pid_t dead;             /* the pid it had, until its leftovers are gone */
	int64_t started_ns;
	int retiring;           /* told to stop by a reload: replace it at once */
};

/* Reaps every child that has ended; a worker among them is marked dead.
 * Returns how many workers died. */
static unsigned reap(struct worker *w, unsigned n, int stopping)
{
	unsigned died = 0;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			if (w[i].pid != pid)
				continue;
			w[i].pid = 0;
			w[i].dead = pid;
			died++;
			if ((stopping || w[i].retiring) && WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0)
				break;
			if (WIFSIGNALED(status))
				log_msg(LOG_LEVEL_ERROR, "worker %ld killed by signal %d",
					(long)pid, WTERMSIG(status));
			else
				log_msg(LOG_LEVEL_ERROR, "worker %ld exited with status %d",
					(long)pid, WEXITSTATUS(status));
		}
	}
	return died;
}

/* Kills every child that is not a live worker (processes of a dead
 * worker's run, re-parented to the master) until none is left; bounded. */
static void kill_strays(struct worker *w, unsigned n)
{
	pid_t keep[WORKERS_MAX];
	unsigned nkeep = 0;
	int64_t until = util_now_ns() + STRAY_KILL_MAX_NS;
	struct timespec nap = { 0, 10000000 };

	do {
		nkeep = 0;
		for (unsigned i = 0; i < n; i++)
			if (w[i].pid > 0)
				keep[nkeep++] = w[i].pid;
		if (run_kill_children(keep, nkeep) == 0)
			return;
		nanosleep(&nap, NULL);
		(void)reap(w, n, 1);
	} while (util_now_ns() < until);
	log_msg(LOG_LEVEL_ERROR, "processes left by a dead worker survive SIGKILL");
}

/* Sets ids->own and the first ids when pyexec's user has ranges in
 * /etc/subuid and /etc/subgid for every worker and a sandbox with them
 * works; otherwise runs share pyexec's ids, and the log says why. */
static void choose_run_ids(const struct config *cfg, struct sandbox_config *sb,
			   unsigned nworkers, int single, struct run_ids *ids)
{
	struct passwd *pw = getpwuid(getuid());
	const char *name = pw != NULL ? pw->pw_name : NULL;
	char err[1024], why[1200];
	unsigned long u, g;

	ids->own = 0;
	if (!cfg->subordinate_ids) {
		log_msg(LOG_LEVEL_INFO, "subordinate_ids = no: runs share pyexec's uid %u",
			(unsigned)getuid());
		return;
	}
	if (single) {
		snprintf(why, sizeof(why), "under mod_fcgid, processes cannot share out "
			 "subordinate ids among them");
	} else if (getuid() == 0) {
		snprintf(why, sizeof(why), "pyexec serves as root (set user)");
	} else if (subid_find(SUBID_UID_FILE, name, getuid(), getuid(), nworkers, &u) < 0 ||
		   subid_find(SUBID_GID_FILE, name, getuid(), getgid(), nworkers, &g) < 0) {
		snprintf(why, sizeof(why), "%s has no range of %u ids in %s and %s (%s; "
			 "usermod --add-subuids N-M --add-subgids N-M %s)",
			 name != NULL ? name : "pyexec's user", nworkers, SUBID_UID_FILE,
			 SUBID_GID_FILE, errno == ENOENT ? "none found" : strerror(errno),
			 name != NULL ? name : "USER");
	} else if (sandbox_probe_run_ids(sb, cfg->python, cfg->work_root, (uid_t)u, (gid_t)g,
					 err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "a sandbox with them fails: %s", err);
	} else {
		ids->own = 1;
		ids->first_uid = u;
		ids->first_gid = g;
		log_msg(LOG_LEVEL_INFO, "runs take subordinate ids: worker i runs as uid %lu+i, "
			"gid %lu+i (%u workers)", u, g, nworkers);
		return;
	}
	log_msg(LOG_LEVEL_WARN, "runs share pyexec's uid %u: %s", (unsigned)getuid(), why);
}

static pid_t spawn_worker(const struct server *srv, pid_t master, unsigned slot,
			  const struct run_ids *ids)
{
	static struct sandbox_config mine;
	static struct server self;
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	if (srv->sandbox_cfg != NULL && ids->own) {
		/* This worker's runs' ids: the slot's, so that a worker that
		 * replaces another takes over its ids and no two share. */
		mine = *srv->sandbox_cfg;
		mine.run_uid = (uid_t)(ids->first_uid + slot);
		mine.run_gid = (gid_t)(ids->first_gid + slot);
		self = *srv;
		self.sandbox_cfg = &mine;
		srv = &self;
	}
	util_title_set("worker");
	/* The worker: it dies with the master, after the request in hand. */
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_IGN);        /* a reload is the master's */
	prctl(PR_SET_PDEATHSIG, SERVER_ORPHAN_SIGNAL);
	if (getppid() != master)
		_exit(0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	_exit(server_worker_main(srv));
}

/* The sandbox's lists from the configuration: the entries of sandbox_etc,
 * and pyexec's own paths (its configuration file, tokens_file, deps_cache,
 * work_root, a pip_find_links directory), resolved, which runs must not
 * see where a bind of the system shows them. 0, or -1 with err. */
static int sandbox_lists(struct sandbox_config *sb, const struct config *cfg,
			 const char *config_path, char *err, size_t errlen)
{
	const char *const own[] = {
		config_path, cfg->tokens_file, cfg->deps_cache, cfg->work_root,
		cfg->pip_find_links[0] == '/' ? cfg->pip_find_links : NULL,
	};
	char item[CONFIG_PATH_MAX], real[PATH_MAX];
	const char *p = cfg->sandbox_etc;

	sb->etc_extra[0] = sb->hide[0] = '\0';
	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		memcpy(item, p, n);         /* conf.c keeps each entry shorter than the key */
		item[n] = '\0';
		if (sandbox_list_add(sb->etc_extra, item) < 0)
			goto full;
		p += n + (p[n] == ',');
	}
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		/* nothing there, nothing to see */
		if (own[i] == NULL || own[i][0] == '\0' || realpath(own[i], real) == NULL)
			continue;
		if (sandbox_list_add(sb->hide, real) < 0)
			goto full;
	}
	return 0;
full:
	snprintf(err, errlen, "sandbox_etc and pyexec's own paths take more than %d bytes",
		 SANDBOX_LIST_MAX);
	return -1;
}

/* SIGHUP: rereads the configuration (and tokens_file). When it is good, the
 * keys a reload can change take effect in new workers, which replace the
 * running ones as each finishes the request in hand; the listening socket
 * stays open throughout, so no request is refused. When it is not, the log
 * says why and everything stays as it was. 0 when reloaded, -1 if not. */
static int reload(struct master *m)
{
	static struct config next;
	static struct sandbox_config lists;
	struct auth fresh = { 0, NULL };
	char err[2 * PATH_MAX];

	if (config_build(&next, &m->cl, err, sizeof(err)) < 0 ||
	    (next.tokens_file[0] != '\0' &&
	     auth_load(&fresh, next.tokens_file, err, sizeof(err)) < 0) ||
	    sandbox_lists(&lists, &next, m->cl.config_path, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_ERROR, "reload refused, the running configuration stays: %s",
			err);
		return -1;
	}
	for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++) {
		if (config_key_equal(&m->cfg, &next, restart_keys[i]) == 0) {
			log_msg(LOG_LEVEL_WARN, "reload: %s changed; it takes effect when pyexec "
				"is restarted", restart_keys[i]);
			(void)config_key_copy(&next, &m->cfg, restart_keys[i]);
		}
	}
	m->cfg = next;
	auth_free(&m->auth);
	m->auth = fresh;
	m->srv.auth = m->auth.n > 0 ? &m->auth : NULL;
	m->sbcfg.disk_bytes = m->cfg.max_disk;
	/* the new workers' sandboxes see the new sandbox_etc and hide the new paths */
	memcpy(m->sbcfg.etc_extra, lists.etc_extra, sizeof(m->sbcfg.etc_extra));
	memcpy(m->sbcfg.hide, lists.hide, sizeof(m->sbcfg.hide));
	for (unsigned i = 0; i < m->nworkers; i++) {
		if (m->workers[i].pid > 0) {
			m->workers[i].retiring = 1;
			(void)kill(m->workers[i].pid, SIGTERM);
		}
	}
	log_msg(LOG_LEVEL_INFO, "reload: configuration reread from %s%s; the workers are "
		"replaced as they finish their requests",
		m->cl.config_path != NULL ? m->cl.config_path : "the command line",
		m->auth.n > 0 ? " (tokens_file too)" : "");
	return 0;
}

/* Each interpreter of pythons asked for its identity, with its part of
 * the dependency cache. 0, or -1 with err naming the one that failed. */
static int master_prepare_pythons(struct master *m, char *err, size_t errlen)
{
	static struct config_python list[CONFIG_PYTHONS_MAX];
	char why[1024];

	m->npythons = config_pythons(&m->cfg, list);
	for (unsigned i = 0; i < m->npythons; i++) {
		if (cache_init(&m->caches[i], &m->cfg, &list[i], why, sizeof(why)) < 0) {
			if (m->npythons > 1)
				snprintf(err, errlen, "pythons: %s: %s", list[i].name, why);
			else
				snprintf(err, errlen, "%s", why);
			return -1;
		}
		/* one of several that prints no sys.version is no Python: a run
		 * asking for it by name would only fail */
		if (m->npythons > 1 && m->caches[i].python_version[0] == '\0') {
			snprintf(err, errlen, "pythons: %s: %s did not say its version (sys.version): "
				 "is it a Python interpreter?", list[i].name, list[i].path);
			return -1;
		}
	}
	return 0;
}

/* As root: pyexec's user, the socket (its directory, /run/pyexec, may need
 * root), the directories it owns and cgroup v1's, then privileges dropped.
 * Then tokens_file and the dependency cache. 0, or -1 with err. */
int master_prepare(struct master *m, char *err, size_t errlen)
{
	const struct config *cfg = &m->cfg;

	m->as_root = geteuid() == 0;
	if (m->as_root && resolve_user(cfg, &m->uid, &m->gid, err, errlen) < 0)
		return -1;
	if (m->prefetch == NULL) {
		m->listen_fd = listen_open(cfg->listen, m->uid, m->gid, m->unix_path,
					   sizeof(m->unix_path), err, errlen);
		if (m->listen_fd < 0)
			return -1;
	}
	if (prepare_dir("work_root", cfg->work_root, m->as_root, m->uid, m->gid, err, errlen) < 0 ||
	    prepare_dir("deps_cache", cfg->deps_cache, m->as_root, m->uid, m->gid, err,
			errlen) < 0)
		return -1;
	/* cgroup v1 directories are made by root, for the run user. */
	if (m->as_root && m->prefetch == NULL && strcmp(cfg->cgroup, "no") != 0 &&
	    cgroup_setup_root(&m->cgcfg, cfg->cgroup, m->uid, m->gid, err, errlen) < 0)
		log_msg(LOG_LEVEL_WARN, "%s", err);
	/* Opened while the path may still be reachable only by root (a build
	 * tree in a private directory): workers exec it by fd. */
	m->zygote_fd = warm_open_binary(m->zygote_why, sizeof(m->zygote_why));
	if (m->as_root && drop_privileges(m->uid, m->gid, err, errlen) < 0)
		return -1;
	if (cfg->tokens_file[0] != '\0' && auth_load(&m->auth, cfg->tokens_file, err, errlen) < 0)
		return -1;
	return master_prepare_pythons(m, err, errlen);
}

/* Before any child exists: the master moves itself into the cgroup's
 * supervisor leaf, and its workers are born there. 0, or -1 with err when
 * cgroup names one that cannot be used. */
static int master_start_cgroup(struct master *m, char *err, size_t errlen)
{
	const struct cgroup_config *cg = &m->cgcfg;
	int v1;

	if (strcmp(m->cfg.cgroup, "no") == 0)
		return 0;
	if (cgroup_setup(&m->cgcfg, m->cfg.cgroup, err, errlen) < 0) {
		if (strcmp(m->cfg.cgroup, "auto") != 0)
			return -1;
		log_msg(LOG_LEVEL_INFO, "%s; runs are held by their process group and "
			"namespaces, and memory is limited per process (RLIMIT_AS)", err);
		return 0;
	}
	v1 = cg->version == 1;
	m->srv.cgroup = cg;
	log_msg(LOG_LEVEL_INFO, "cgroup: runs in %s/%s<worker> (cgroup v%d); "
		"memory: %s; processes: %s; CPU time: %s", cg->path,
		CGROUP_RUN_PREFIX, cg->version,
		!cg->memory ? "RLIMIT_AS (no memory controller offered)"
		: v1 ? "memory.limit_in_bytes (the whole run)"
		     : "memory.max (the whole run)",
		cg->pids ? "pids.max and RLIMIT_NPROC"
			 : "RLIMIT_NPROC (no pids controller offered)",
		!cg->cpu ? "RLIMIT_CPU per process"
		: v1 ? "cpuacct.usage (the whole run) and RLIMIT_CPU"
		     : "cpu.stat (the whole run) and RLIMIT_CPU");
	return 0;
}

/* How many workers: `workers`, or one more than CPUs; and under mod_fcgid
 * one, served by the master itself (m->single). */
static void master_count_workers(struct master *m)
{
	m->nworkers = m->cfg.workers;
	if (m->nworkers == 0) {
		/* One more worker than CPUs: a worker spends part of every
		 * request away from its run (reading the upload, cleaning up,
		 * waiting for the web server), and the kernel is slow to move a
		 * just-started run to a core that fell idle; with one worker per
		 * CPU a core idles about a sixth of the time under load. */
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		m->nworkers = n > 0 ? (unsigned)n + 1 : 1;
	}
	if (m->cfg.workers == 0 && m->listen_fd == 0 && parent_is_apache()) {
		/* mod_fcgid: one request at a time per process, and more
		 * concurrency is more processes (FcgidMaxProcessesPerClass),
		 * which it starts, watches and replaces itself: no pre-fork,
		 * this process serves. */
		m->nworkers = 1;
		m->single = 1;
		log_msg(LOG_LEVEL_INFO, "started by Apache httpd (mod_fcgid), which sends "
			"one request at a time to each process: serving in this process, "
			"without workers");
	}
	if (m->nworkers > WORKERS_MAX)
		m->nworkers = WORKERS_MAX;
}

/* One complete throw-away sandbox, so that what works is known before the
 * first request, and a failure is said once, with its fix. 0, or -1 with
 * err when sandbox = namespaces and it does not work. */
static int master_start_sandbox(struct master *m, char *err, size_t errlen)
{
	const struct config *cfg = &m->cfg;

	if (cfg->sandbox == SANDBOX_RLIMITS)
		return 0;
	if (sandbox_lists(&m->sbcfg, cfg, m->cl.config_path, err, errlen) < 0)
		return -1;
	snprintf(m->sbcfg.figures_dir, sizeof(m->sbcfg.figures_dir), "%s",
		 figures_dir() != NULL ? figures_dir() : "");
	if (sandbox_probe(&m->sbcfg, cfg->python, cfg->max_disk, cfg->network, cfg->work_root,
			  err, errlen) == 0) {
		/* Every worker's run cgroup is made from cgcfg: with its
		 * memory.max, memfds are counted and need not be refused. */
		m->sbcfg.memory_cgroup = m->srv.cgroup != NULL && m->cgcfg.memory;
		/* the other interpreters: each must start in the sandbox too */
		for (unsigned i = 1; i < m->npythons; i++) {
			char why[1024];

			if (sandbox_probe_python(&m->sbcfg, m->caches[i].python, cfg->work_root,
						 why, sizeof(why)) < 0) {
				snprintf(err, errlen, "pythons: %s does not run in the sandbox: %s",
					 m->caches[i].name, why);
				return -1;
			}
		}
		m->srv.sandbox_cfg = &m->sbcfg;
		choose_run_ids(cfg, &m->sbcfg, m->nworkers, m->single, &m->run_ids);
	} else if (cfg->sandbox == SANDBOX_NAMESPACES) {
		return -1;
	} else {
		log_msg(LOG_LEVEL_WARN, "sandbox: %s", err);
		log_msg(LOG_LEVEL_WARN, "sandbox = auto: falling back to the rlimits layer");
	}
	return 0;
}

/* The layer in force, and where pyexec listens. */
static void master_log_started(const struct master *m)
{
	const struct config *cfg = &m->cfg;

	if (m->srv.sandbox_cfg != NULL)
		log_msg(LOG_LEVEL_INFO,
			"sandbox layer: namespaces (user, mount, pid, ipc, uts, cgroup%s; "
			"seccomp%s; %s/proc; /work, /tmp and /dev/shm share %llu bytes)",
			cfg->network ? "; the host's network" : ", net",
			m->sbcfg.memory_cgroup ? "" : ", memfd_create refused (no memory cgroup)",
			m->sbcfg.proc ? "" : "no ", (unsigned long long)cfg->max_disk);
	else
		log_msg(LOG_LEVEL_WARN,
			"sandbox layer: rlimits (process group, resource limits, fresh "
			"environment; no namespaces: programs run as uid %u, the owner of "
			"work_root and deps_cache, and can see the host's files and network)",
			(unsigned)getuid());
	log_msg(LOG_LEVEL_INFO, "pyexec %s listening (%s), %u workers, work_root %s",
		PACKAGE_VERSION, listen_describe(cfg->listen, m->unix_path, m->listen_fd),
		m->nworkers, cfg->work_root);
}

/* Unprivileged now: sweeps work_root, loads libmagic, sets up the cgroup
 * and the sandbox, and says what is in force. 0, or -1 with err. */
int master_start(struct master *m, char *err, size_t errlen)
{
	struct server *srv = &m->srv;

	if (workdir_sweep(m->cfg.work_root) > 0)
		log_msg(LOG_LEVEL_WARN, "removed leftovers of an earlier run from %s",
			m->cfg.work_root);
	/* Once, here: a missing database stops start-up instead of every
	 * worker failing over and over. The workers share it. */
	m->mime = mime_open(NULL, err, errlen);
	if (m->mime == NULL)
		return -1;
	/* plt.show()'s backend: without it, runs do as before */
	if (figures_install(m->cfg.deps_cache, err, errlen) < 0)
		log_msg(LOG_LEVEL_WARN, "figures: %s: plt.show() saves nothing (MPLBACKEND=Agg)",
			err);
	memset(srv, 0, sizeof(*srv));
	if (master_start_cgroup(m, err, errlen) < 0)
		return -1;
	master_count_workers(m);
	if (master_start_sandbox(m, err, errlen) < 0)
		return -1;
	srv->cfg = &m->cfg;
	srv->listen_fd = m->listen_fd;
	srv->sandbox = srv->sandbox_cfg != NULL ? "namespaces" : "rlimits";
	srv->workers = m->nworkers;
	srv->caches = m->caches;
	srv->npythons = m->npythons;
	srv->auth = m->auth.n > 0 ? &m->auth : NULL;
	srv->mime = m->mime;
	/* Under mod_fcgid every process serving is one Apache started, and
	 * nothing else of pyexec's lives beside it. */
	srv->spares = !m->single;
	srv->zygote_fd = m->zygote_fd;
	srv->zygote_why = m->zygote_why;
	srv->metrics = metrics_create();
	if (srv->metrics == NULL) {
		snprintf(err, errlen, "cannot map the shared metrics: %s", strerror(errno));
		return -1;
	}
	if (warm_vet(srv, err, errlen) < 0)
		return -1;
	master_log_started(m);
	return 0;
}

/* Under mod_fcgid: the worker's loop, here (it becomes the runs' subreaper
 * and stops on SIGTERM after the request in hand); a reload is
 * mod_fcgid's: it starts new processes. Returns the exit status. */
int master_serve_alone(struct master *m)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	rc = server_worker_main(&m->srv);
	if (m->srv.cgroup != NULL)
		(void)cgroup_remove_worker(m->srv.cgroup, getpid());
	return rc;
}

/* The master's signals, caught; blocked (the old mask in *old) but while
 * it waits. */
static void master_catch_signals(sigset_t *block, sigset_t *old)
{
	struct sigaction sa;

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = 0;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(block);
	sigaddset(block, SIGCHLD);
	sigaddset(block, SIGTERM);
	sigaddset(block, SIGINT);
	sigaddset(block, SIGHUP);
	sigprocmask(SIG_BLOCK, block, old);
}

static void master_spawn(struct master *m, unsigned slot)
{
	struct worker *w = &m->workers[slot];

	w->pid = spawn_worker(&m->srv, m->pid, slot, &m->run_ids);
	w->started_ns = util_now_ns();
}

/* After workers died: what their runs left is now the master's (it is the
 * subreaper): killed before their directories and cgroups go; then each is
 * replaced, unless pyexec is stopping. */
static void master_replace_dead(struct master *m)
{
	kill_strays(m->workers, m->nworkers);
	for (unsigned i = 0; i < m->nworkers; i++) {
		struct worker *w = &m->workers[i];

		if (w->pid != 0 || w->dead == 0)
			continue;
		sweep_worker(m->cfg.work_root, w->dead);
		if (m->srv.cgroup != NULL && cgroup_remove_worker(m->srv.cgroup, w->dead) < 0)
			log_msg(LOG_LEVEL_ERROR, "cannot remove the run cgroup of worker %d: %s",
				(int)w->dead, strerror(errno));
		w->dead = 0;
		if (got_term)
			continue;
		/* A worker that cannot stay up is not respawned in a tight loop. */
		if (!w->retiring && util_now_ns() - w->started_ns < RESPAWN_FAST_NS)
			sleep(1);
		w->retiring = 0;
		master_spawn(m, i);
	}
}

/* Sends sig to every live worker; returns how many there are. */
static unsigned master_signal_workers(struct master *m, int sig)
{
	unsigned alive = 0;

	for (unsigned i = 0; i < m->nworkers; i++) {
		if (m->workers[i].pid > 0) {
			alive++;
			if (sig != 0)
				kill(m->workers[i].pid, sig);
		}
	}
	return alive;
}

/* Pre-forks the workers and keeps them: replaces those that die, reloads
 * on SIGHUP, and on SIGTERM or SIGINT lets them finish their requests in
 * hand (killed after timeout_max and a grace). 0, or -1 with err. */
int master_loop(struct master *m, char *err, size_t errlen)
{
	int64_t stop_deadline = 0;
	sigset_t block, old;

	/* Orphans of a worker's runs come to the master when the worker dies. */
	if (run_become_subreaper() < 0)
		log_msg(LOG_LEVEL_WARN, "cannot become a child subreaper: %s", strerror(errno));
	m->workers = calloc(m->nworkers, sizeof(*m->workers));
	if (m->workers == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	master_catch_signals(&block, &old);
	for (unsigned i = 0; i < m->nworkers; i++) {
		master_spawn(m, i);
		if (m->workers[i].pid < 0)
			log_msg(LOG_LEVEL_ERROR, "fork: %s", strerror(errno));
	}
	for (;;) {
		if (reap(m->workers, m->nworkers, got_term) > 0)
			master_replace_dead(m);
		if (got_hup && !got_term) {
			got_hup = 0;
			(void)reload(m);
		}
		if (got_term && stop_deadline == 0) {
			log_msg(LOG_LEVEL_INFO, "stopping: the workers finish the requests in hand");
			(void)master_signal_workers(m, SIGTERM);
			stop_deadline = util_now_ns() +
				((int64_t)m->cfg.timeout_max_ms / 1000 + STOP_GRACE_EXTRA_S) *
				1000000000LL;
		}
		if (got_term && master_signal_workers(m, 0) == 0)
			return 0;
		if (got_term && util_now_ns() > stop_deadline) {
			log_msg(LOG_LEVEL_ERROR, "workers did not stop in time; killing them");
			(void)master_signal_workers(m, SIGKILL);
		}
		if (got_term) {
			/* Wake up now and then to enforce the deadline. */
			struct timespec ts = { 1, 0 };
			sigset_t waitset = block;

			sigtimedwait(&waitset, NULL, &ts);
			got_chld = 1;
		} else {
			sigsuspend(&old);
		}
	}
}

/* After a stop: the cgroups, the socket and work_root's leftovers go. */
void master_stop(struct master *m)
{
	cgroup_teardown(&m->cgcfg);
	if (m->unix_path[0] != '\0')
		unlink(m->unix_path);
	workdir_sweep(m->cfg.work_root);
	log_msg(LOG_LEVEL_INFO, "stopped");
}

void master_free(struct master *m)
{
	free(m->workers);
	if (m->mime != NULL)
		mime_close(m->mime);
	auth_free(&m->auth);
	free(m->prefetch);
	free(m->prefetch_python);
	cmdline_free(&m->cl);
}
