#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

#define CGROUP_FILE_MAX 4096    /* bytes read of one cgroup or proc file */

/* struct clone_args of linux/sched.h up to the cgroup field (its size is
 * CLONE_ARGS_SIZE_VER2); spelled out so that the kernel's header and
 * glibc's <sched.h> need not meet. */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
	uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* Reads a small file relative to dirfd into buf (NUL-ended). Length or -1. */
static ssize_t read_small(int dirfd, const char *name, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (got < len - 1) {
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	n = errno;
	(void)close(fd);
	errno = (int)n;
	buf[got] = '\0';
	return (ssize_t)got;
}

/* Writes text to a cgroup file in one write(2), as the kernel wants. */
static int write_small(int dirfd, const char *name, const char *text)
{
	size_t len = strlen(text);
	ssize_t n;
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC), saved;

	if (fd < 0)
		return -1;
	do
		n = write(fd, text, len);
	while (n < 0 && errno == EINTR);
	saved = errno;
	(void)close(fd);
	errno = saved;
	return n == (ssize_t)len ? 0 : -1;
}

/* The value of "key N" in a flat-keyed file (memory.events, cgroup.events);
 * -1 when absent. */
static int64_t keyed_value(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (*p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return strtoll(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return -1;
}

/* Whether word is one of the blank-separated words of list. */
static int has_word(const char *list, const char *word)
{
	size_t wlen = strlen(word);

	for (const char *p = list; *p != '\0';) {
		size_t n;

		p += strspn(p, " \n");
		n = strcspn(p, " \n");
		if (n == wlen && strncmp(p, word, n) == 0)
			return 1;
		p += n;
	}
	return 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0'; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* The first cgroup2 mount: its mount point and the hierarchy path it shows. */
static int cgroup2_mount(char *point, size_t plen, char *root, size_t rlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = -1;

	if (f == NULL)
		return -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		/* id parent maj:min root point options [optional...] - type source super */
		char *fields[5], *save = NULL, *sep = strstr(line, " - ");
		char *tok = strtok_r(line, " ", &save);
		int i;

		if (sep == NULL || strncmp(sep, " - cgroup2 ", 11) != 0)
			continue;
		for (i = 0; i < 5 && tok != NULL; i++, tok = strtok_r(NULL, " ", &save))
			fields[i] = tok;
		if (i < 5)
			continue;
		unescape_octal(fields[3]);
		unescape_octal(fields[4]);
		if (strlen(fields[4]) >= plen || strlen(fields[3]) >= rlen)
			continue;
		strcpy(point, fields[4]);
		strcpy(root, fields[3]);
		found = 0;
	}
	free(line);
	(void)fclose(f);
	if (found < 0)
		errno = ENOENT;
	return found;
}

int cgroup_of(pid_t pid, char *out, size_t len)
{
	char file[64], buf[CGROUP_FILE_MAX], point[PATH_MAX], root[PATH_MAX];
	const char *path = NULL, *rest;
	size_t rootlen;

	if (pid == 0)
		snprintf(file, sizeof(file), "/proc/self/cgroup");
	else
		snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
	if (read_small(AT_FDCWD, file, buf, sizeof(buf)) < 0)
		return -1;
	/* "0::/path" is the cgroup v2 line (hierarchy 0, no controllers). */
	for (char *p = buf, *nl; path == NULL && *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(p, "0::", 3) == 0)
			path = p + 3;
		if (nl == NULL)
			break;
	}
	if (path == NULL || path[0] != '/' || cgroup2_mount(point, sizeof(point), root,
							     sizeof(root)) < 0) {
		errno = ENOENT;
		return -1;
	}
	/* A mount of a subtree shows that subtree's path as its root. */
	rootlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
	if (strncmp(path, root, rootlen) != 0 || (path[rootlen] != '/' && path[rootlen] != '\0')) {
		errno = ENOENT;
		return -1;
	}
	rest = path + rootlen;
	if (strcmp(rest, "/") == 0)
		rest = "";
	if ((size_t)snprintf(out, len, "%s%s", strcmp(point, "/") == 0 ? "" : point, rest) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (out[0] == '\0')
		snprintf(out, len, "/");
	return 0;
}

/* Kills everything in the cgroup dirfd and waits until it is empty. */
static int empty_dir(int dirfd)
{
	char buf[CGROUP_FILE_MAX];
	struct timespec ms = { 0, 1000000 };

	for (int i = 0; i <= CGROUP_KILL_WAIT_MS; i++) {
		if (read_small(dirfd, "cgroup.events", buf, sizeof(buf)) < 0)
			return -1;
		if (keyed_value(buf, "populated") == 0)
			return 0;
		if (i == 0 && write_small(dirfd, "cgroup.kill", "1") < 0) {
			/* Before Linux 5.14: one SIGKILL per process listed. */
			if (read_small(dirfd, "cgroup.procs", buf, sizeof(buf)) < 0)
				return -1;
			for (char *p = buf; *p != '\0';) {
				long pid = strtol(p, &p, 10);

				if (pid > 0)
					(void)kill((pid_t)pid, SIGKILL);
				p += strspn(p, "\n");
				if (*p != '\0' && (*p < '0' || *p > '9'))
					break;
			}
		}
		(void)nanosleep(&ms, NULL);
	}
	errno = EBUSY;
	return -1;
}

static int remove_at(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	rc = empty_dir(fd);
	(void)close(fd);
	if (rc < 0)
		return -1;
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

/* Removes run cgroups left by an earlier instance; they are D's children
 * named CGROUP_RUN_PREFIX*. */
static void sweep_runs(int dfd)
{
	int fd = dup(dfd);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		(void)close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, CGROUP_RUN_PREFIX, strlen(CGROUP_RUN_PREFIX)) == 0)
			(void)remove_at(dfd, de->d_name);
	(void)closedir(d);
}

int cgroup_setup(struct cgroup_config *cfg, const char *want, char *err, size_t errlen)
{
	char own[PATH_MAX], buf[CGROUP_FILE_MAX], enable[32] = "";
	const char *miss = NULL;
	size_t dlen;
	int dfd = -1, sfd = -1;

	memset(cfg, 0, sizeof(*cfg));
	if (cgroup_of(0, own, sizeof(own)) < 0) {
		util_errorf(err, errlen, "cgroup: this system has no cgroup v2 hierarchy for "
			    "pyexec (no cgroup2 mount or no 0:: line in /proc/self/cgroup)");
		return -1;
	}
	if (strcmp(want, "auto") == 0) {
		char point[PATH_MAX], root[PATH_MAX];
		size_t olen = strlen(own), slen = strlen("/" CGROUP_SUPERVISOR);

		/* A master started again where an earlier one moved itself
		 * finds D one level up. */
		if (olen > slen && strcmp(own + olen - slen, "/" CGROUP_SUPERVISOR) == 0)
			own[olen - slen] = '\0';
		if (cgroup2_mount(point, sizeof(point), root, sizeof(root)) == 0 &&
		    strcmp(own, point) == 0) {
			util_errorf(err, errlen, "cgroup: pyexec runs in the root cgroup (%s), "
				    "which is not delegated to it", own);
			return -1;
		}
		if (strlen(own) >= sizeof(cfg->path))
			goto toolong;
		strcpy(cfg->path, own);
	} else {
		dlen = strlen(want);
		if (strncmp(own, want, dlen) != 0 || (own[dlen] != '/' && own[dlen] != '\0')) {
			util_errorf(err, errlen, "cgroup: pyexec runs in %s, which is not inside "
				    "%s; start it in that cgroup (systemd: Delegate=yes)", own, want);
			return -1;
		}
		if (dlen >= sizeof(cfg->path))
			goto toolong;
		strcpy(cfg->path, want);
	}

	dfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		util_errorf(err, errlen, "cgroup: cannot open %s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	if (faccessat(dfd, ".", W_OK, AT_EACCESS) < 0)
		miss = ".";
	else if (faccessat(dfd, "cgroup.procs", W_OK, AT_EACCESS) < 0)
		miss = "cgroup.procs";
	else if (faccessat(dfd, "cgroup.subtree_control", W_OK, AT_EACCESS) < 0)
		miss = "cgroup.subtree_control";
	if (miss != NULL) {
		util_errorf(err, errlen, "cgroup: %s is not delegated to uid %u (cannot write "
			    "%s: %s); with systemd use Delegate=yes, or chown the directory and "
			    "its cgroup.procs and cgroup.subtree_control to pyexec's user",
			    cfg->path, (unsigned)geteuid(), miss, strerror(errno));
		goto fail;
	}
	if (read_small(dfd, "cgroup.controllers", buf, sizeof(buf)) < 0) {
		util_errorf(err, errlen, "cgroup: cannot read %s/cgroup.controllers: %s",
			    cfg->path, strerror(errno));
		goto fail;
	}
	cfg->memory = has_word(buf, "memory");
	cfg->pids = has_word(buf, "pids");

	if (mkdirat(dfd, CGROUP_SUPERVISOR, 0755) < 0 && errno != EEXIST) {
		util_errorf(err, errlen, "cgroup: cannot create %s/%s: %s", cfg->path,
			    CGROUP_SUPERVISOR, strerror(errno));
		goto fail;
	}
	sfd = openat(dfd, CGROUP_SUPERVISOR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || write_small(sfd, "cgroup.procs", "0") < 0) {
		util_errorf(err, errlen, "cgroup: cannot move pyexec into %s/%s: %s", cfg->path,
			    CGROUP_SUPERVISOR, strerror(errno));
		goto fail;
	}
	if (cfg->memory)
		strcat(enable, "+memory ");
	if (cfg->pids)
		strcat(enable, "+pids");
	if (enable[0] != '\0' && write_small(dfd, "cgroup.subtree_control", enable) < 0) {
		util_errorf(err, errlen, "cgroup: cannot enable %s for the children of %s: %s%s",
			    enable, cfg->path, strerror(errno),
			    errno == EBUSY ? " (other processes are in it)" : "");
		goto fail;
	}
	sweep_runs(dfd);
	(void)close(sfd);
	(void)close(dfd);
	return 0;

toolong:
	util_errorf(err, errlen, "cgroup: the path of pyexec's cgroup is too long");
	errno = ENAMETOOLONG;
fail:
	if (sfd >= 0)
		(void)close(sfd);
	if (dfd >= 0)
		(void)close(dfd);
	cfg->path[0] = '\0';
	cfg->memory = cfg->pids = 0;
	return -1;
}

static void run_name(pid_t worker, char *out, size_t len)
{
	snprintf(out, len, CGROUP_RUN_PREFIX "%d", (int)worker);
}

int cgroup_slot_open(const struct cgroup_config *cfg, pid_t worker, struct cgroup_slot *slot)
{
	char name[32];
	int dfd, saved;

	slot->fd = -1;
	slot->memory = cfg->memory;
	slot->pids = cfg->pids;
	slot->oom_kills = 0;
	slot->memory_max = 0;
	if (cfg->path[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	run_name(worker, name, sizeof(name));
	dfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST) {
		saved = errno;
		(void)close(dfd);
		errno = saved;
		return -1;
	}
	slot->fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	saved = errno;
	(void)close(dfd);
	errno = saved;
	return slot->fd < 0 ? -1 : 0;
}

int cgroup_slot_prepare(struct cgroup_slot *slot, uint64_t memory, unsigned pids)
{
	char num[32], buf[CGROUP_FILE_MAX];
	int64_t kills;

	if (slot->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (slot->memory) {
		if (memory == 0)
			snprintf(num, sizeof(num), "max");
		else
			snprintf(num, sizeof(num), "%" PRIu64, memory);
		if (write_small(slot->fd, "memory.max", num) < 0 ||
		    write_small(slot->fd, "memory.oom.group", "1") < 0)
			return -1;
		/* Absent when the kernel does not account swap: nothing to limit. */
		if (write_small(slot->fd, "memory.swap.max", "0") < 0 && errno != ENOENT)
			return -1;
		if (read_small(slot->fd, "memory.events", buf, sizeof(buf)) < 0)
			return -1;
		kills = keyed_value(buf, "oom_kill");
		slot->oom_kills = kills > 0 ? (uint64_t)kills : 0;
		slot->memory_max = memory;
	}
	if (slot->pids) {
		if (pids == 0)
			snprintf(num, sizeof(num), "max");
		else
			snprintf(num, sizeof(num), "%u", pids);
		if (write_small(slot->fd, "pids.max", num) < 0)
			return -1;
	}
	return 0;
}

int cgroup_slot_oom(const struct cgroup_slot *slot)
{
	char buf[CGROUP_FILE_MAX];
	int64_t kills;

	if (slot->fd < 0 || !slot->memory)
		return 0;
	if (read_small(slot->fd, "memory.events", buf, sizeof(buf)) < 0)
		return -1;
	kills = keyed_value(buf, "oom_kill");
	if (kills < 0)
		return -1;
	return (uint64_t)kills > slot->oom_kills;
}

int cgroup_slot_empty(const struct cgroup_slot *slot)
{
	if (slot->fd < 0) {
		errno = EBADF;
		return -1;
	}
	return empty_dir(slot->fd);
}

void cgroup_slot_close(struct cgroup_slot *slot)
{
	if (slot->fd < 0)
		return;
	(void)close(slot->fd);
	slot->fd = -1;
}

int cgroup_remove_worker(const struct cgroup_config *cfg, pid_t worker)
{
	char name[32];
	int dfd, rc, saved;

	if (cfg->path[0] == '\0')
		return 0;
	run_name(worker, name, sizeof(name));
	dfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	rc = remove_at(dfd, name);
	saved = errno;
	(void)close(dfd);
	errno = saved;
	return rc;
}

pid_t cgroup_clone(const struct cgroup_slot *slot, unsigned long flags)
{
	struct clone3_args args;

	if ((slot == NULL || slot->fd < 0) && flags == 0)
		return fork();
	memset(&args, 0, sizeof(args));
	args.flags = (uint64_t)(flags & ~0xffUL);
	args.exit_signal = SIGCHLD;
	if (slot != NULL && slot->fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)slot->fd;
	}
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}
