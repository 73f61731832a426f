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
#include <sys/wait.h>
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
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	do
		n = write(fd, text, len);
	while (n < 0 && errno == EINTR);
	util_close_keep_errno(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* The decimal number that runs to the end of the line at p, or -1. */
static int64_t number_line(const char *p)
{
	uint64_t v;

	if (util_parse_uint(p, strcspn(p, "\n"), 0, INT64_MAX, &v) != UTIL_NUM_OK)
		return -1;
	return (int64_t)v;
}

/* The value of "key N" in a flat-keyed file (memory.events, cgroup.events);
 * -1 when absent. */
static int64_t keyed_value(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (*p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return number_line(p + klen + 1);
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

/* The first mount of type ("cgroup2", or "cgroup" with the controller ctrl
 * among its super options): its mount point and the hierarchy path it
 * shows. */
static int cgroup_mount(const char *type, const char *ctrl, char *point, size_t plen,
			char *root, size_t rlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0, tlen = strlen(type);
	int found = -1;

	if (f == NULL)
		return -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		/* id parent maj:min root point options [optional...] - type source super */
		char *fields[5], *save = NULL, *sep = strstr(line, " - ");
		char *tok;
		int i;

		if (sep == NULL || strncmp(sep + 3, type, tlen) != 0 || sep[3 + tlen] != ' ')
			continue;
		if (ctrl != NULL) {
			/* the super options: the last field, comma-separated */
			char *super = strrchr(sep, ' '), opts[256];

			if (super == NULL || strlen(super) >= sizeof(opts))
				continue;
			snprintf(opts, sizeof(opts), "%s", super + 1);
			for (char *c = opts; *c != '\0'; c++)
				if (*c == ',' || *c == '\n')
					*c = ' ';
			if (!has_word(opts, ctrl))
				continue;
		}
		*sep = '\0';
		tok = strtok_r(line, " ", &save);
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

static int cgroup2_mount(char *point, size_t plen, char *root, size_t rlen)
{
	return cgroup_mount("cgroup2", NULL, point, plen, root, rlen);
}

/* The directory of pid ("self" when 0) in the hierarchy of ctrl (NULL: the
 * cgroup v2 one), into out. */
static int cgroup_dir_of(pid_t pid, const char *ctrl, char *out, size_t len)
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
	/* "0::/path" is the cgroup v2 line (hierarchy 0, no controllers);
	 * "N:memory:/path" (or "N:cpu,cpuacct:/path") a v1 one. */
	for (char *p = buf, *nl; path == NULL && *p != '\0'; p = nl + 1) {
		char *ctrls, *colon;

		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (ctrl == NULL && strncmp(p, "0::", 3) == 0) {
			path = p + 3;
		} else if (ctrl != NULL && (ctrls = strchr(p, ':')) != NULL &&
			   (colon = strchr(ctrls + 1, ':')) != NULL) {
			*colon = '\0';
			for (char *c = ctrls + 1; *c != '\0'; c++)
				if (*c == ',')
					*c = ' ';
			if (has_word(ctrls + 1, ctrl))
				path = colon + 1;
		}
		if (nl == NULL)
			break;
	}
	if (path == NULL || path[0] != '/' ||
	    cgroup_mount(ctrl == NULL ? "cgroup2" : "cgroup", ctrl, point, sizeof(point), root,
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


int cgroup_of(pid_t pid, char *out, size_t len)
{
	return cgroup_dir_of(pid, NULL, out, len);
}

int cgroup_v1_of(pid_t pid, const char *ctrl, char *out, size_t len)
{
	return cgroup_dir_of(pid, ctrl, out, len);
}

static const char *const v1_ctrl[CGROUP_V1_N] = { "memory", "pids", "cpuacct" };

/* SIGKILL to every pid listed in the cgroup.procs of dirfd but ours. Only
 * whole lines count: a long list is read in part, and a cut number would
 * name another process. The number of others listed (at least 1 when the
 * list was cut), or -1. */
static int kill_listed(int dirfd)
{
	char buf[CGROUP_FILE_MAX];
	ssize_t n = read_small(dirfd, "cgroup.procs", buf, sizeof(buf));
	pid_t me = getpid();
	int others = 0;

	if (n < 0)
		return -1;
	for (char *p = buf, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		uint64_t pid;

		if (util_parse_uint(p, (size_t)(nl - p), 1, INT_MAX, &pid) != UTIL_NUM_OK ||
		    (pid_t)pid == me)
			continue;
		others++;
		(void)kill((pid_t)pid, SIGKILL);
	}
	if ((size_t)n == sizeof(buf) - 1 && others == 0)
		others = 1;
	return others;
}

/* Kills everything in the cgroup dirfd (but the caller) and waits until
 * it is empty. cgroup v2 says so in cgroup.events and kills at once with
 * cgroup.kill (Linux 5.14); cgroup v1 has neither: every process listed
 * is killed, pass after pass, until none is (a process killed cannot fork
 * any more, and pids.max bounds what a fork bomb makes in between). */
static int empty_dir(int dirfd)
{
	char buf[CGROUP_FILE_MAX];
	struct timespec ms = { 0, 1000000 };
	int v2 = faccessat(dirfd, "cgroup.events", F_OK, 0) == 0, killed = 0;

	for (int i = 0; i <= CGROUP_KILL_WAIT_MS; i++) {
		if (v2) {
			if (read_small(dirfd, "cgroup.events", buf, sizeof(buf)) < 0)
				return -1;
			if (keyed_value(buf, "populated") == 0)
				return 0;
			if (i == 0)
				killed = write_small(dirfd, "cgroup.kill", "1") == 0;
		}
		if (!killed) {
			int others = kill_listed(dirfd);

			if (others < 0)
				return -1;
			if (!v2 && others == 0)
				return 0;
		}
		(void)nanosleep(&ms, NULL);
	}
	errno = EBUSY;
	return -1;
}

#define CGROUP_TREE_DEPTH 8     /* levels of cgroups removed below a run's */

static int remove_children(int dfd, const char *prefix, int depth);

/* Empties and removes the cgroup parent/name and the cgroups below it. */
static int remove_tree(int parent, const char *name, int depth)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	rc = depth < CGROUP_TREE_DEPTH ? remove_children(fd, "", depth + 1) : 0;
	if (rc == 0)
		rc = empty_dir(fd);
	(void)close(fd);
	if (rc < 0)
		return -1;
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

static int remove_at(int parent, const char *name)
{
	return remove_tree(parent, name, 0);
}

/* Whether name is a pid that no process has. */
static int pid_is_gone(const char *name)
{
	uint64_t pid;

	return util_parse_uint(name, strlen(name), 1, INT_MAX, &pid) == UTIL_NUM_OK &&
	       kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* The cgroup parent/name of an instance whose master is gone: its run
 * cgroups removed (what is left in them killed), then itself once no
 * process is in it. Its workers, which outlive their master for as long as
 * they take to stop their run and clean up after it, are not killed: they
 * exit by themselves, and a later start removes what stays. */
static int remove_instance(int parent, const char *name)
{
	char buf[CGROUP_FILE_MAX];
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	rc = remove_children(fd, "", 1);
	if (rc == 0 && read_small(fd, "cgroup.procs", buf, sizeof(buf)) > 0) {
		errno = EBUSY;
		rc = -1;
	}
	(void)close(fd);
	if (rc < 0)
		return -1;
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

/* Removes the cgroups below dfd whose names start with prefix ("" = all;
 * NULL = the instances named by the pid of a master that is gone, as
 * remove_instance does). 0, or -1 when one stays. */
static int remove_children(int dfd, const char *prefix, int depth)
{
	int fd = dup(dfd), rc = 0, err = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (d == NULL) {
		(void)close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (prefix == NULL ? !pid_is_gone(de->d_name)
				   : strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if ((prefix == NULL ? remove_instance(dfd, de->d_name)
				    : remove_tree(dfd, de->d_name, depth)) < 0 && rc == 0) {
			/* the first failure's errno: the next child's work (a
			 * kill of a process already gone) must not hide an EBUSY
			 * the caller waits out */
			err = errno;
			rc = -1;
		}
	}
	(void)closedir(d);
	if (rc < 0)
		errno = err;
	return rc;
}

/* Removes run cgroups left by an earlier instance; they are D's children
 * named CGROUP_RUN_PREFIX*. */
static void sweep_runs(int dfd)
{
	(void)remove_children(dfd, CGROUP_RUN_PREFIX, 0);
}

/* Writes pid (0: the caller) into the cgroup.procs of each directory. */
static int move_pid(const int *dirfds, pid_t pid)
{
	char text[24];

	snprintf(text, sizeof(text), "%ld", (long)pid);
	for (int h = 0; h < CGROUP_V1_N; h++)
		if (dirfds[h] >= 0 && write_small(dirfds[h], "cgroup.procs", text) < 0)
			return -1;
	return 0;
}

static int move_self(const int *dirfds)
{
	return move_pid(dirfds, 0);
}

/* Whether pyexec's own cgroup v2 directory offers the memory controller
 * to uid: not the root, memory in cgroup.controllers, owned by uid (what
 * cgroup_setup will check once uid is all there is). */
static int v2_offers_memory(uid_t uid)
{
	char own[PATH_MAX], point[PATH_MAX], root[PATH_MAX], buf[CGROUP_FILE_MAX];
	char file[PATH_MAX + 32];
	size_t olen, slen = strlen("/" CGROUP_SUPERVISOR);
	struct stat st;

	if (cgroup_of(0, own, sizeof(own)) < 0 ||
	    cgroup2_mount(point, sizeof(point), root, sizeof(root)) < 0)
		return 0;
	olen = strlen(own);
	if (olen > slen && strcmp(own + olen - slen, "/" CGROUP_SUPERVISOR) == 0)
		own[olen - slen] = '\0';
	if (strcmp(own, point) == 0 || stat(own, &st) < 0 || st.st_uid != uid ||
	    (size_t)snprintf(file, sizeof(file), "%s/cgroup.controllers", own) >= sizeof(file))
		return 0;
	return read_small(AT_FDCWD, file, buf, sizeof(buf)) >= 0 && has_word(buf, "memory");
}

/* Hands the cgroup dirfd to uid:gid: the directory, so that it can make and
 * remove cgroups in it, and its cgroup.procs, so that it can move its own
 * processes in. */
static int chown_cgroup(int dirfd, uid_t uid, gid_t gid)
{
	if (fchownat(dirfd, "", uid, gid, AT_EMPTY_PATH) < 0 ||
	    fchownat(dirfd, "cgroup.procs", uid, gid, 0) < 0)
		return -1;
	return 0;
}

/* In the v1 hierarchy whose own cgroup is own: makes own/pyexec (kept; it
 * holds the instances of every pyexec started there, so that an instance
 * can remove its own once it runs as uid) and own/pyexec/<our pid>, both
 * handed to uid:gid, after removing the instances whose process is gone.
 * The instance's path into out. */
static int make_instance(const char *own, uid_t uid, gid_t gid, char *out, size_t len,
			 char *err, size_t errlen)
{
	char base[PATH_MAX], name[32];
	int bfd = -1, ifd = -1;

	if ((size_t)snprintf(base, sizeof(base), "%s/" CGROUP_V1_BASE, own) >= sizeof(base) ||
	    (size_t)snprintf(out, len, "%s/%d", base, (int)getpid()) >= len) {
		util_errorf(err, errlen, "cgroup: the path of %s is too long", own);
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(name, sizeof(name), "%d", (int)getpid());
	if ((mkdir(base, 0755) < 0 && errno != EEXIST) ||
	    (bfd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    chown_cgroup(bfd, uid, gid) < 0) {
		util_errorf(err, errlen, "cgroup: cannot make %s for uid %u: %s", base,
			    (unsigned)uid, strerror(errno));
		goto fail;
	}
	(void)remove_children(bfd, NULL, 0);
	if ((mkdirat(bfd, name, 0755) < 0 && errno != EEXIST) ||
	    (ifd = openat(bfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    chown_cgroup(ifd, uid, gid) < 0) {
		util_errorf(err, errlen, "cgroup: cannot make %s for uid %u: %s", out,
			    (unsigned)uid, strerror(errno));
		goto fail;
	}
	(void)close(ifd);
	(void)close(bfd);
	return 0;
fail:
	if (ifd >= 0)
		(void)close(ifd);
	if (bfd >= 0)
		(void)close(bfd);
	out[0] = '\0';
	return -1;
}

static void v1_fill(struct cgroup_config *cfg)
{
	cfg->version = 1;
	snprintf(cfg->path, sizeof(cfg->path), "%s", cfg->v1[CGROUP_V1_MEMORY]);
	cfg->memory = 1;
	cfg->pids = cfg->v1[CGROUP_V1_PIDS][0] != '\0';
	cfg->cpu = cfg->v1[CGROUP_V1_CPUACCT][0] != '\0';
}

int cgroup_setup_root(struct cgroup_config *cfg, const char *want, uid_t uid, gid_t gid,
		      char *err, size_t errlen)
{
	char own[PATH_MAX];

	memset(cfg, 0, sizeof(*cfg));
	if (strcmp(want, "auto") != 0 || v2_offers_memory(uid) ||
	    cgroup_v1_of(0, "memory", own, sizeof(own)) < 0)
		return 1;
	for (int h = 0; h < CGROUP_V1_N; h++) {
		if (cgroup_v1_of(0, v1_ctrl[h], own, sizeof(own)) < 0)
			continue;
		if (make_instance(own, uid, gid, cfg->v1[h], sizeof(cfg->v1[h]), err,
				  errlen) < 0 && h == CGROUP_V1_MEMORY) {
			memset(cfg, 0, sizeof(*cfg));
			return -1;
		}
	}
	v1_fill(cfg);
	cfg->made = 1;
	return 0;
}

/* The v1 memory cgroup want, which pyexec's user owns, with the same path
 * in the pids and cpuacct hierarchies where it is there and writable. */
static int setup_v1_given(struct cgroup_config *cfg, const char *want, const char *rel,
			  char *err, size_t errlen)
{
	for (int h = 0; h < CGROUP_V1_N; h++) {
		char point[PATH_MAX], root[PATH_MAX], *dir = cfg->v1[h];
		int dfd;

		if (h == CGROUP_V1_MEMORY)
			snprintf(dir, PATH_MAX, "%s", want);
		else if (cgroup_mount("cgroup", v1_ctrl[h], point, sizeof(point), root,
				      sizeof(root)) < 0 ||
			 (size_t)snprintf(dir, PATH_MAX, "%s%s", point, rel) >= PATH_MAX)
			continue;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || faccessat(dfd, ".", W_OK, AT_EACCESS) < 0 ||
		    faccessat(dfd, "cgroup.procs", W_OK, AT_EACCESS) < 0) {
			if (h == CGROUP_V1_MEMORY) {
				util_errorf(err, errlen, "cgroup: %s is not pyexec's: uid %u cannot "
					    "write it or its cgroup.procs (%s); make it (mkdir) "
					    "and chown both to pyexec's user", want,
					    (unsigned)geteuid(), strerror(errno));
				if (dfd >= 0)
					(void)close(dfd);
				memset(cfg, 0, sizeof(*cfg));
				return -1;
			}
			dir[0] = '\0';
		} else {
			sweep_runs(dfd);
		}
		if (dfd >= 0)
			(void)close(dfd);
	}
	v1_fill(cfg);
	return 0;
}

/* When want is in the cgroup v1 memory hierarchy, its path there. */
static const char *v1_memory_rel(const char *want)
{
	static char point[PATH_MAX];
	char root[PATH_MAX];
	size_t plen;

	if (cgroup_mount("cgroup", "memory", point, sizeof(point), root, sizeof(root)) < 0)
		return NULL;
	plen = strlen(point);
	if (strncmp(want, point, plen) != 0 || (want[plen] != '/' && want[plen] != '\0'))
		return NULL;
	return want + plen;
}

/* D for want ("auto": pyexec's own cgroup, own, or the one above it when
 * own is an earlier master's supervisor leaf; else want, which must hold
 * own) into cfg->path. 0, or -1 with a sentence in err. */
static int v2_choose(struct cgroup_config *cfg, const char *want, char *own, char *err,
		     size_t errlen)
{
	if (strcmp(want, "auto") == 0) {
		char point[PATH_MAX], root[PATH_MAX];
		size_t olen = strlen(own), slen = strlen("/" CGROUP_SUPERVISOR);

		if (olen > slen && strcmp(own + olen - slen, "/" CGROUP_SUPERVISOR) == 0)
			own[olen - slen] = '\0';
		if (cgroup2_mount(point, sizeof(point), root, sizeof(root)) == 0 &&
		    strcmp(own, point) == 0) {
			util_errorf(err, errlen, "cgroup: pyexec runs in the root cgroup (%s), "
				    "which is not delegated to it", own);
			return -1;
		}
		want = own;
	} else {
		size_t dlen = strlen(want);

		if (strncmp(own, want, dlen) != 0 || (own[dlen] != '/' && own[dlen] != '\0')) {
			util_errorf(err, errlen, "cgroup: pyexec runs in %s, which is not inside "
				    "%s; start it in that cgroup (systemd: Delegate=yes)", own, want);
			return -1;
		}
	}
	if (strlen(want) >= sizeof(cfg->path)) {
		util_errorf(err, errlen, "cgroup: the path of pyexec's cgroup is too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(cfg->path, want);
	return 0;
}

/* Whether D (dfd) is delegated to this user, and which controllers it
 * offers (cfg->memory, cfg->pids). 0, or -1 with a sentence in err. */
static int v2_check(struct cgroup_config *cfg, int dfd, char *err, size_t errlen)
{
	static const char *const need[] = { ".", "cgroup.procs", "cgroup.subtree_control" };
	char buf[CGROUP_FILE_MAX];

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (faccessat(dfd, need[i], W_OK, AT_EACCESS) == 0)
			continue;
		util_errorf(err, errlen, "cgroup: %s is not delegated to uid %u (cannot write "
			    "%s: %s); with systemd use Delegate=yes, or chown the directory and "
			    "its cgroup.procs and cgroup.subtree_control to pyexec's user",
			    cfg->path, (unsigned)geteuid(), need[i], strerror(errno));
		return -1;
	}
	if (read_small(dfd, "cgroup.controllers", buf, sizeof(buf)) < 0) {
		util_errorf(err, errlen, "cgroup: cannot read %s/cgroup.controllers: %s",
			    cfg->path, strerror(errno));
		return -1;
	}
	cfg->memory = has_word(buf, "memory");
	cfg->pids = has_word(buf, "pids");
	return 0;
}

/* Moves the caller into D/supervisor and enables the controllers D offers
 * for its children. 0, or -1 with a sentence in err. */
static int v2_take(struct cgroup_config *cfg, int dfd, char *err, size_t errlen)
{
	char enable[32] = "";
	int sfd;

	if (mkdirat(dfd, CGROUP_SUPERVISOR, 0755) < 0 && errno != EEXIST) {
		util_errorf(err, errlen, "cgroup: cannot create %s/%s: %s", cfg->path,
			    CGROUP_SUPERVISOR, strerror(errno));
		return -1;
	}
	sfd = openat(dfd, CGROUP_SUPERVISOR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || write_small(sfd, "cgroup.procs", "0") < 0) {
		util_errorf(err, errlen, "cgroup: cannot move pyexec into %s/%s: %s", cfg->path,
			    CGROUP_SUPERVISOR, strerror(errno));
		util_close_keep_errno(sfd);
		return -1;
	}
	if (cfg->memory)
		strcat(enable, "+memory ");
	if (cfg->pids)
		strcat(enable, "+pids");
	if (enable[0] != '\0' && write_small(dfd, "cgroup.subtree_control", enable) < 0) {
		util_errorf(err, errlen, "cgroup: cannot enable %s for the children of %s: %s%s",
			    enable, cfg->path, strerror(errno),
			    errno == EBUSY ? " (other processes are in it)" : "");
		util_close_keep_errno(sfd);
		return -1;
	}
	/* cpu.stat's usage_usec is there without the cpu controller (Linux 4.15). */
	cfg->cpu = faccessat(sfd, "cpu.stat", R_OK, 0) == 0;
	(void)close(sfd);
	return 0;
}

int cgroup_setup(struct cgroup_config *cfg, const char *want, char *err, size_t errlen)
{
	char own[PATH_MAX];
	const char *rel;
	int dfd;

	if (cfg->made)
		return 0;
	memset(cfg, 0, sizeof(*cfg));
	if (want[0] == '/' && (rel = v1_memory_rel(want)) != NULL)
		return setup_v1_given(cfg, want, rel, err, errlen);
	if (cgroup_of(0, own, sizeof(own)) < 0) {
		util_errorf(err, errlen, "cgroup: this system has no cgroup v2 hierarchy for "
			    "pyexec (no cgroup2 mount or no 0:: line in /proc/self/cgroup)");
		return -1;
	}
	if (v2_choose(cfg, want, own, err, errlen) < 0)
		goto fail;
	dfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		util_errorf(err, errlen, "cgroup: cannot open %s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	if (v2_check(cfg, dfd, err, errlen) < 0 || v2_take(cfg, dfd, err, errlen) < 0) {
		util_close_keep_errno(dfd);
		goto fail;
	}
	cfg->version = 2;
	sweep_runs(dfd);
	(void)close(dfd);
	return 0;
fail:
	memset(cfg, 0, sizeof(*cfg));
	return -1;
}

void cgroup_teardown(const struct cgroup_config *cfg)
{
	if (!cfg->made)
		return;
	for (int h = 0; h < CGROUP_V1_N; h++) {
		char base[PATH_MAX], *name;
		int bfd;

		if (cfg->v1[h][0] == '\0')
			continue;
		bfd = util_open_parent(cfg->v1[h], base, sizeof(base), &name);
		if (bfd < 0)
			continue;
		/* A process serving alone rests in its instance: it leaves
		 * first. The workers' spare sandboxes die with them, but a
		 * killed process leaves its cgroup only once it has exited:
		 * busy is tried again, for as long as a killed run may take. */
		if (remove_at(bfd, name) < 0 && errno == EBUSY)
			(void)write_small(bfd, "cgroup.procs", "0");
		for (int ms = 0; ms < CGROUP_KILL_WAIT_MS && remove_at(bfd, name) < 0 &&
				 errno == EBUSY; ms += 10) {
			struct timespec tick = { 0, 10 * 1000000L };

			(void)nanosleep(&tick, NULL);
		}
		(void)close(bfd);
	}
}

static void run_name(pid_t worker, char *out, size_t len)
{
	snprintf(out, len, CGROUP_RUN_PREFIX "%d", (int)worker);
}

/* Opens (making it when missing) dir/name into *fd. */
static int open_run_dir(int dfd, const char *name, int *fd)
{
	if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
		return -1;
	*fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return *fd < 0 ? -1 : 0;
}

static void slot_clear(struct cgroup_slot *slot)
{
	memset(slot, 0, sizeof(*slot));
	slot->fd = -1;
	for (int h = 0; h < CGROUP_V1_N; h++)
		slot->run[h] = slot->home[h] = -1;
}

int cgroup_slot_open(const struct cgroup_config *cfg, pid_t worker, struct cgroup_slot *slot)
{
	char name[32];
	int dfd, rc, saved;

	slot_clear(slot);
	slot->version = cfg->version;
	slot->memory = cfg->memory;
	slot->pids = cfg->pids;
	slot->cpu = cfg->cpu;
	if (cfg->path[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	run_name(worker, name, sizeof(name));
	if (cfg->version == 1) {
		/* The worker rests in the instance between runs, and steps into
		 * run-<worker> only to start one (cgroup_clone). */
		for (int h = 0; h < CGROUP_V1_N; h++) {
			if (cfg->v1[h][0] == '\0')
				continue;
			slot->home[h] = open(cfg->v1[h], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (slot->home[h] < 0 || open_run_dir(slot->home[h], name, &slot->run[h]) < 0)
				goto fail;
		}
		if (move_self(slot->home) < 0)
			goto fail;
		slot->fd = slot->run[CGROUP_V1_MEMORY];
		return 0;
	}
	dfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	rc = open_run_dir(dfd, name, &slot->fd);
	util_close_keep_errno(dfd);
	return rc;
fail:
	saved = errno;
	cgroup_slot_close(slot);
	errno = saved;
	return -1;
}

/* The CPU time used in the slot so far, in ns, or -1. */
static int64_t cpu_used_ns(const struct cgroup_slot *slot)
{
	char buf[CGROUP_FILE_MAX];
	int64_t usec;

	if (!slot->cpu)
		return -1;
	if (slot->version == 1) {
		if (read_small(slot->run[CGROUP_V1_CPUACCT], "cpuacct.usage", buf, sizeof(buf)) < 0)
			return -1;
		return number_line(buf);
	}
	if (read_small(slot->fd, "cpu.stat", buf, sizeof(buf)) < 0)
		return -1;
	usec = keyed_value(buf, "usage_usec");
	return usec < 0 ? -1 : usec * 1000;
}

/* The OOM kill count of the slot (v1 before Linux 4.13, which does not
 * count them: how often the limit was hit, and *exact 0), or -1. */
static int64_t oom_count(const struct cgroup_slot *slot, int *exact)
{
	char buf[CGROUP_FILE_MAX];
	int64_t kills;

	*exact = 1;
	if (slot->version == 2) {
		if (read_small(slot->fd, "memory.events", buf, sizeof(buf)) < 0)
			return -1;
		return keyed_value(buf, "oom_kill");
	}
	if (read_small(slot->fd, "memory.oom_control", buf, sizeof(buf)) < 0)
		return -1;
	kills = keyed_value(buf, "oom_kill");
	if (kills >= 0)
		return kills;
	*exact = 0;
	if (read_small(slot->fd, "memory.failcnt", buf, sizeof(buf)) < 0)
		return -1;
	return number_line(buf);
}

/* memory.limit_in_bytes, and memory.memsw.limit_in_bytes (memory and swap
 * together) to the same value where swap is accounted, so that the run
 * gets no swap. The kernel keeps memsw at least the memory limit: it is
 * lifted first. Kernel memory counts in both from Linux 4.6 on. */
static int v1_memory_limit(int fd, const char *limit)
{
	int memsw = faccessat(fd, "memory.memsw.limit_in_bytes", F_OK, 0) == 0;

	if (memsw && write_small(fd, "memory.memsw.limit_in_bytes", "-1") < 0)
		return -1;
	if (write_small(fd, "memory.limit_in_bytes", limit) < 0)
		return -1;
	if (memsw && write_small(fd, "memory.memsw.limit_in_bytes", limit) < 0)
		return -1;
	return 0;
}

int cgroup_slot_prepare(struct cgroup_slot *slot, uint64_t memory, unsigned pids)
{
	int v1 = slot->version == 1, exact;
	char num[32];
	int64_t count;
	int pfd = v1 ? slot->run[CGROUP_V1_PIDS] : slot->fd;

	if (slot->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (slot->memory) {
		if (memory == 0)
			snprintf(num, sizeof(num), v1 ? "-1" : "max");
		else
			snprintf(num, sizeof(num), "%" PRIu64, memory);
		if (v1) {
			if (v1_memory_limit(slot->fd, num) < 0)
				return -1;
		} else {
			if (write_small(slot->fd, "memory.max", num) < 0 ||
			    write_small(slot->fd, "memory.oom.group", "1") < 0)
				return -1;
			/* Absent when the kernel does not account swap: nothing to limit. */
			if (write_small(slot->fd, "memory.swap.max", "0") < 0 && errno != ENOENT)
				return -1;
		}
		count = oom_count(slot, &exact);
		if (count < 0)
			return -1;
		slot->oom_kills = (uint64_t)count;
		slot->memory_max = memory;
	}
	if (slot->pids && pfd >= 0) {
		if (pids == 0)
			snprintf(num, sizeof(num), "max");
		else
			snprintf(num, sizeof(num), "%u", pids);
		if (write_small(pfd, "pids.max", num) < 0)
			return -1;
	}
	slot->cpu_base_ns = cpu_used_ns(slot);
	return 0;
}

int cgroup_slot_oom(const struct cgroup_slot *slot)
{
	int64_t kills;
	int exact;

	if (slot->fd < 0 || !slot->memory)
		return 0;
	kills = oom_count(slot, &exact);
	if (kills < 0)
		return -1;
	if ((uint64_t)kills <= slot->oom_kills)
		return 0;
	return exact ? 1 : 2;
}

int64_t cgroup_slot_cpu_ns(const struct cgroup_slot *slot)
{
	int64_t now;

	if (slot->fd < 0 || slot->cpu_base_ns < 0)
		return -1;
	now = cpu_used_ns(slot);
	return now < slot->cpu_base_ns ? -1 : now - slot->cpu_base_ns;
}

int cgroup_slot_empty(const struct cgroup_slot *slot)
{
	if (slot->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (slot->version == 1) {
		for (int h = 0; h < CGROUP_V1_N; h++)
			if (slot->run[h] >= 0 && empty_dir(slot->run[h]) < 0)
				return -1;
		return 0;
	}
	return empty_dir(slot->fd);
}

void cgroup_slot_close(struct cgroup_slot *slot)
{
	if (slot->version == 1) {
		for (int h = 0; h < CGROUP_V1_N; h++) {
			if (slot->run[h] >= 0)
				(void)close(slot->run[h]);
			if (slot->home[h] >= 0)
				(void)close(slot->home[h]);
		}
	} else if (slot->fd >= 0) {
		(void)close(slot->fd);
	}
	slot_clear(slot);
}

int cgroup_remove_worker(const struct cgroup_config *cfg, pid_t worker)
{
	char name[32];
	int rc = 0;

	if (cfg->path[0] == '\0')
		return 0;
	run_name(worker, name, sizeof(name));
	for (int h = 0; h < CGROUP_V1_N; h++) {
		const char *dir = cfg->version == 1 ? cfg->v1[h] : h == 0 ? cfg->path : "";
		int dfd;

		if (dir[0] == '\0')
			continue;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return -1;
		if (remove_at(dfd, name) < 0)
			rc = -1;
		util_close_keep_errno(dfd);
	}
	return rc;
}

/* fork(), or clone() with flags, like fork: the child goes on on a copy of
 * the stack. */
static pid_t plain_clone(unsigned long flags)
{
	if (flags == 0)
		return fork();
	flags = (flags & ~0xffUL) | SIGCHLD;
#if defined(__s390__) || defined(__s390x__)
	return (pid_t)syscall(SYS_clone, NULL, flags, NULL, NULL, 0UL);
#else
	return (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0UL);
#endif
}

pid_t cgroup_clone(const struct cgroup_slot *slot, unsigned long flags)
{
	struct clone3_args args;

	if (slot == NULL || slot->fd < 0)
		return plain_clone(flags);
	if (slot->version == 1) {
		/* cgroup v1 has no CLONE_INTO_CGROUP: the caller steps into the
		 * run's cgroups, so that the child is born there, and back. */
		pid_t pid;
		int saved;

		if (move_self(slot->run) < 0) {
			saved = errno;
			(void)move_self(slot->home);
			errno = saved;
			return -1;
		}
		pid = plain_clone(flags);
		if (pid == 0)
			return 0;
		saved = errno;
		if (move_self(slot->home) < 0) {
			/* Not a run cgroup's prisoner: the worker would be killed
			 * with the run. */
			saved = errno;
			if (pid > 0) {
				(void)kill(pid, SIGKILL);
				(void)waitpid(pid, NULL, 0);
			}
			pid = -1;
		}
		errno = saved;
		return pid;
	}
	memset(&args, 0, sizeof(args));
	args.flags = (uint64_t)(flags & ~0xffUL) | CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)slot->fd;
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

int cgroup_slot_attach(const struct cgroup_slot *slot, pid_t pid)
{
	int v2[CGROUP_V1_N];

	if (slot == NULL || slot->fd < 0 || pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (slot->version == 1)
		return move_pid(slot->run, pid);
	for (int h = 0; h < CGROUP_V1_N; h++)
		v2[h] = h == 0 ? slot->fd : -1;
	return move_pid(v2, pid);
}
