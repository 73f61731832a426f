/* pyexec-fcgi: the FastCGI responder. The command line, then the master
 * (master.h): it opens the socket, drops privileges, pre-forks workers
 * (server.h) and keeps them until SIGTERM. --prefetch fills the dependency
 * cache and exits. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "deps.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "util.h"

#define DEFAULT_CONFIG SYSCONFDIR "/pyexec/pyexec.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pyexec-fcgi [-c FILE] [-l ADDR] [-w N] [-o KEY=VALUE]... [-t]\n"
		"                   [--prefetch DEPS [--python NAME]]\n"
		"  -c, --config FILE    configuration file (default " DEFAULT_CONFIG ", if present)\n"
		"  -l, --listen ADDR    unix:/path, tcp:HOST:PORT or fd:N (default: the socket\n"
		"                       systemd passes (LISTEN_FDS), fd 0 when started on a\n"
		"                       socket, else " LISTEN_DEFAULT ")\n"
		"  -w, --workers N      concurrent requests (default: number of CPUs + 1)\n"
		"  -o, --set KEY=VALUE  set any pyexec.conf key, after the file\n"
		"  -t, --test-config    check the configuration and exit\n"
		"      --prefetch DEPS  install a dependency set (as in ?dependencies=) into\n"
		"                       the cache and exit: 0 when it is there\n"
		"      --python NAME    ... for this interpreter of pythons (default: the first)\n"
		"  -h, --help           this text\n"
		"  -V, --version        the version\n");
}

/* --prefetch: one dependency set into the cache of the interpreter named
 * python (NULL: the default), then exit. */
static int prefetch_main(struct master *m, const char *value, const char *python)
{
	struct cache *c = &m->caches[0];
	static struct deps_set set;
	struct cache_use use;
	char err[512], buf[4096];
	int out_fd, truncated, evicted, rc = 1;
	enum cache_result r;
	ssize_t n;

	for (unsigned i = 0; python != NULL && i < m->npythons; i++)
		if (strcmp(m->caches[i].name, python) == 0)
			c = &m->caches[i], python = NULL;
	if (python != NULL) {
		log_msg(LOG_LEVEL_ERROR, "--python: %s is not an interpreter of pythons", python);
		return 2;
	}
	if (deps_parse(value, DEPS_COUNT_MAX, &set, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_ERROR, "--prefetch: %s", err);
		return 2;
	}
	if (set.n == 0) {
		log_msg(LOG_LEVEL_ERROR, "--prefetch: no requirement given");
		return 2;
	}
	out_fd = memfd_create("pyexec-pip", MFD_CLOEXEC);
	if (out_fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "--prefetch: memfd_create: %s", strerror(errno));
		return 1;
	}
	r = cache_acquire(c, &set, &use, out_fd, &truncated, -1, NULL, &evicted);
	if (r == CACHE_HIT || r == CACHE_INSTALLED) {
		printf("%s %s\n", r == CACHE_HIT ? "cached" : "installed", use.key);
		/* zygotes embed the default interpreter: its sets alone get one */
		if (c == &m->caches[0] && cache_mark_prefetched(c->cfg, use.key) < 0)
			log_msg(LOG_LEVEL_WARN, "--prefetch: cannot mark %s as prefetched: %s",
				use.key, strerror(errno));
		cache_release(&use);
		rc = 0;
	} else if (r == CACHE_UNUSABLE) {
		log_msg(LOG_LEVEL_ERROR, "--prefetch: %s", c->why);
	} else {
		log_msg(LOG_LEVEL_ERROR, "--prefetch: the install failed; pip said:");
		for (off_t off = 0; (n = pread(out_fd, buf, sizeof(buf), off)) > 0; off += n)
			(void)util_write_all(STDERR_FILENO, buf, (size_t)n);
	}
	close(out_fd);
	return rc;
}

/* Every interpreter of the configuration can be executed. 0, or -1 with err. */
static int pythons_executable(const struct config *cfg, char *err, size_t errlen)
{
	static struct config_python list[CONFIG_PYTHONS_MAX];
	unsigned n = config_pythons(cfg, list);

	for (unsigned i = 0; i < n; i++) {
		if (access(list[i].path, X_OK) == 0)
			continue;
		if (n > 1)
			snprintf(err, errlen, "pythons: %s: %s is not executable: %s", list[i].name,
				 list[i].path, strerror(errno));
		else
			snprintf(err, errlen, "python %s is not executable: %s", list[i].path,
				 strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads the options into m->cl (copies: argv is wiped later) and
 * m->prefetch. 0 to go on; 1 to exit with *status (after --help,
 * --version, a usage error); -1 with err. */
static int read_cmdline(int argc, char **argv, struct master *m, int *test_only, int *status,
			char *err, size_t errlen)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "workers", required_argument, NULL, 'w' },
		{ "set", required_argument, NULL, 'o' },
		{ "test-config", no_argument, NULL, 't' },
		{ "prefetch", required_argument, NULL, 'P' },
		{ "python", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *workers_opt = NULL, *listen_opt = NULL;
	const char *prefetch = NULL, *python = NULL;
	struct cmdline *cl = &m->cl;
	char **sets;
	int nsets = 0, c;
	struct stat st;

	*status = 1;
	sets = calloc((size_t)argc, sizeof(*sets));
	if (sets == NULL)
		return 1;
	while ((c = getopt_long(argc, argv, "c:l:w:o:thV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'l': listen_opt = optarg; break;
		case 'w': workers_opt = optarg; break;
		case 'o': sets[nsets++] = optarg; break;
		case 't': *test_only = 1; break;
		case 'P': prefetch = optarg; break;
		case 'p': python = optarg; break;
		case 'h': usage(stdout); *status = 0; goto done;
		case 'V': printf("pyexec-fcgi %s\n", PACKAGE_VERSION); *status = 0; goto done;
		default: usage(stderr); *status = 2; goto done;
		}
	}
	if (optind != argc || (python != NULL && prefetch == NULL)) {
		usage(stderr);
		*status = 2;
		goto done;
	}
	if (config_path == NULL && stat(DEFAULT_CONFIG, &st) == 0)
		config_path = DEFAULT_CONFIG;
	cl->config_path = config_path != NULL ? strdup(config_path) : NULL;
	cl->listen_opt = listen_opt != NULL ? strdup(listen_opt) : NULL;
	cl->workers_opt = workers_opt != NULL ? strdup(workers_opt) : NULL;
	cl->sets = calloc((size_t)nsets + 1, sizeof(*cl->sets));
	while (cl->sets != NULL && cl->nsets < nsets &&
	       (cl->sets[cl->nsets] = strdup(sets[cl->nsets])) != NULL)
		cl->nsets++;
	free(sets);
	m->prefetch = prefetch != NULL ? strdup(prefetch) : NULL;
	m->prefetch_python = python != NULL ? strdup(python) : NULL;
	if ((config_path != NULL && cl->config_path == NULL) || cl->nsets != nsets ||
	    (listen_opt != NULL && cl->listen_opt == NULL) ||
	    (workers_opt != NULL && cl->workers_opt == NULL) ||
	    (prefetch != NULL && m->prefetch == NULL) ||
	    (python != NULL && m->prefetch_python == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
done:
	free(sets);
	return 1;
}

int main(int argc, char **argv)
{
	static struct master m;
	char err[2 * PATH_MAX];
	int test_only = 0, status, rc;

	m.pid = getpid();
	m.uid = (uid_t)-1;
	m.gid = (gid_t)-1;
	m.listen_fd = -1;
	m.zygote_fd = -1;
	rc = read_cmdline(argc, argv, &m, &test_only, &status, err, sizeof(err));
	if (rc > 0) {
		master_free(&m);
		return status;
	}
	if (rc < 0 || master_configure(&m, err, sizeof(err)) < 0)
		goto fatal;
	/* The arguments may carry secrets (a pip index URL with a password):
	 * once read, they are wiped, so neither `ps` nor a sandboxed program
	 * reading its init's /proc/1/cmdline (init is a copy of a worker) can
	 * see them. */
	util_title_init(argc, argv, "pyexec-fcgi");
	util_title_set("master");
	if (pythons_executable(&m.cfg, err, sizeof(err)) < 0)
		goto fatal;
	if (test_only) {
		printf("configuration ok\n");
		master_free(&m);
		return 0;
	}
	if (master_prepare(&m, err, sizeof(err)) < 0)
		goto fatal;
	if (m.prefetch != NULL) {
		rc = prefetch_main(&m, m.prefetch, m.prefetch_python);
		master_free(&m);
		return rc;
	}
	if (master_start(&m, err, sizeof(err)) < 0)
		goto fatal;
	if (m.single)
		rc = master_serve_alone(&m);
	else if (master_loop(&m, err, sizeof(err)) < 0)
		goto fatal;
	else
		rc = 0;
	master_stop(&m);
	master_free(&m);
	return rc;

fatal:
	master_free(&m);
	log_msg(LOG_LEVEL_ERROR, "%s", err);
	return 1;
}
