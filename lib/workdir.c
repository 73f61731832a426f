#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "util.h"
#include "workdir.h"

#define WORKDIR_ID_MAX 63       /* bytes in a request id */

/* Directory streams held open while removing a tree. Deeper ancestors are
 * closed on the way down and reopened through ".." (checked by device and
 * inode) on the way up, so a tree of any depth costs this many fds. */
#define RMTREE_OPEN_MAX 16

#define DIR_OPEN_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

#define WORKDIR_COPY_CHUNK (1024 * 1024)   /* bytes of one sendfile, or read */

static int workdir_id_ok(const char *id)
{
	size_t n;

	if (id == NULL)
		return 0;
	for (n = 0; id[n] != '\0'; n++) {
		char c = id[n];

		if (n >= WORKDIR_ID_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

static void workdir_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* root/id into path (len bytes, with room for "/work" after it), root
 * made absolute and without trailing slashes: the paths are handed to the
 * sandbox and to Python. Its length, or -1 with errno (logged). */
static int request_path(const char *root, const char *id, char *path, size_t len)
{
	char abs_root[PATH_MAX];
	size_t rlen;
	int n;

	if (root[0] != '/') {
		if (realpath(root, abs_root) == NULL) {
			log_msg(LOG_LEVEL_ERROR, "workdir: cannot resolve work root %s: %s",
				root, strerror(errno));
			return -1;
		}
		root = abs_root;
	}
	rlen = strlen(root);
	while (rlen > 0 && root[rlen - 1] == '/')
		rlen--;
	n = snprintf(path, len, "%.*s/%s", (int)rlen, root, id);
	if (n < 0 || (size_t)n + sizeof("/work") > len) {
		path[0] = '\0';
		errno = ENAMETOOLONG;
		log_msg(LOG_LEVEL_ERROR, "workdir: work root path too long: %s", root);
		return -1;
	}
	return n;
}

int workdir_work_path(const char *root, const char *id, char *buf, size_t len)
{
	int n = request_path(root, id, buf, len);

	if (n < 0)
		return -1;
	memcpy(buf + n, "/work", sizeof("/work"));
	return 0;
}

int workdir_create(struct workdir *wd, const char *root, const char *id)
{
	int made = 0, saved, n;

	wd->root_fd = wd->req_fd = wd->work_fd = -1;
	wd->id[0] = wd->path[0] = wd->work_path[0] = wd->tmp_path[0] = '\0';
	if (root == NULL || root[0] == '\0' || !workdir_id_ok(id)) {
		errno = EINVAL;
		log_msg(LOG_LEVEL_ERROR, "workdir: invalid work root or request id");
		return -1;
	}
	n = request_path(root, id, wd->path, sizeof(wd->path));
	if (n < 0)
		return -1;
	memcpy(wd->work_path, wd->path, (size_t)n);
	memcpy(wd->work_path + n, "/work", sizeof("/work"));

	wd->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (wd->root_fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot open work root %s: %s", root,
			strerror(errno));
		goto fail;
	}
	if (mkdirat(wd->root_fd, id, 0700) < 0) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot create %s: %s", wd->path,
			strerror(errno));
		goto fail;
	}
	made = 1;
	wd->req_fd = openat(wd->root_fd, id, DIR_OPEN_FLAGS);
	if (wd->req_fd < 0 || mkdirat(wd->req_fd, "work", 0700) < 0 ||
	    (wd->work_fd = openat(wd->req_fd, "work", DIR_OPEN_FLAGS)) < 0) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot set up %s: %s", wd->path,
			strerror(errno));
		goto fail;
	}
	memcpy(wd->id, id, strlen(id) + 1);
	return 0;

fail:
	saved = errno;
	workdir_close(&wd->work_fd);
	workdir_close(&wd->req_fd);
	/* Only what this call made: an EEXIST directory belongs to someone else. */
	if (made)
		(void)workdir_rmtree_at(wd->root_fd, id);
	workdir_close(&wd->root_fd);
	wd->path[0] = wd->work_path[0] = wd->tmp_path[0] = '\0';
	errno = saved;
	return -1;
}

int workdir_create_file(struct workdir *wd, const char *name)
{
	if (wd == NULL || wd->work_fd < 0) {
		errno = EBADF;
		return -1;
	}
	return workdir_create_file_at(wd->work_fd, name, 0, 0);
}

int workdir_create_file_at(int base, const char *name, mode_t dir_bits, mode_t file_bits)
{
	char comp[NAMES_COMPONENT_MAX + 1];
	const char *p, *slash, *why;
	struct stat st;
	int dfd, fd = -1;

	if (base < 0) {
		errno = EBADF;
		return -1;
	}
	/* Checked again here: this is the one place a client's name meets the
	 * file system, and a NUL would have cut the name short already. */
	if (name == NULL || names_check(name, strlen(name), &why) < 0) {
		errno = EINVAL;
		return -1;
	}
	dfd = base;
	for (p = name; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		size_t n = (size_t)(slash - p);
		int nfd, made;

		memcpy(comp, p, n);
		comp[n] = '\0';
		made = mkdirat(dfd, comp, 0755) == 0;
		if (!made && errno != EEXIST)
			goto done;
		/* O_NOFOLLOW: a symlink planted here (EEXIST above) is not
		 * followed; Linux says ENOTDIR for it, ELOOP says more. */
		nfd = workdir_open_dir(dfd, comp);
		if (nfd < 0)
			goto done;
		if (dfd != base)
			close(dfd);
		dfd = nfd;
		if (made && dir_bits != 0 && fchmod(dfd, 0755 | dir_bits) < 0)
			goto done;
	}
	fd = openat(dfd, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST &&
	    fstatat(dfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		errno = EISDIR;
	if (fd >= 0 && file_bits != 0 && fchmod(fd, 0644 | file_bits) < 0) {
		util_close_keep_errno(fd);
		fd = -1;
	}
done:
	if (dfd != base)
		util_close_keep_errno(dfd);
	return fd;
}

int workdir_private_file(struct workdir *wd, const char *name)
{
	if (wd == NULL || wd->req_fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL ||
	    strlen(name) > NAMES_COMPONENT_MAX || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strcmp(name, "work") == 0 ||
	    strcmp(name, "tmp") == 0 || strcmp(name, WORKDIR_TMP_LINK) == 0) {
		errno = EINVAL;
		return -1;
	}
	return openat(wd->req_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		      0600);
}

/* One directory on the way down. */
struct rm_frame {
	DIR *dir;               /* NULL while closed to bound the fds held */
	dev_t dev;
	ino_t ino;
	char *name;             /* its name in the parent, owned */
	int rewound;            /* listed a second time after ENOTEMPTY */
};

struct rm_walk {
	struct rm_frame *f;
	size_t n, cap;
	int top_pfd;            /* the parent of f[0], the caller's */
	dev_t dev;              /* of f[0]: the walk never leaves its file system */
};

/* The program may leave directories at mode 000 or 0500; as their owner we
 * may give ourselves rwx back. AT_SYMLINK_NOFOLLOW so that a symlink swapped
 * in never lends its target our chmod. */
static int rm_chmod_dir(int pfd, const char *name)
{
	struct stat st;

	if (fchmodat(pfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -1;
	/* glibc emulates the flag through /proc and says EOPNOTSUPP for a
	 * symlink and when /proc is not mounted. By the time a tree is
	 * removed nothing runs in it, so look, then chmod by name. */
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return fchmodat(pfd, name, 0700, 0);
}

int workdir_open_dir(int dfd, const char *name)
{
	struct stat st;
	int fd = openat(dfd, name, DIR_OPEN_FLAGS);

	/* Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW. */
	if (fd < 0 && errno == ENOTDIR && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		errno = ELOOP;
	return fd;
}

/* Opens directory name under pfd for listing and removing its entries. */
static int rm_open_dir(int pfd, const char *name, struct stat *st)
{
	int fd = openat(pfd, name, DIR_OPEN_FLAGS);

	if (fd < 0 && errno == EACCES) {
		if (rm_chmod_dir(pfd, name) < 0)
			return -1;
		fd = openat(pfd, name, DIR_OPEN_FLAGS);
	}
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0) {
		util_close_keep_errno(fd);
		return -1;
	}
	/* Readable is not enough: unlinking entries needs write and search.
	 * When this fails (not the owner) the unlinks below say why. */
	if ((st->st_mode & 0700) != 0700)
		(void)fchmod(fd, 0700);
	return fd;
}

static int rm_push(struct rm_walk *w, int pfd, const char *name)
{
	struct rm_frame *fr;
	struct stat st;
	int fd;

	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct rm_frame *f;

		if (cap > SIZE_MAX / sizeof(*f)) {
			errno = ENOMEM;
			return -1;
		}
		f = realloc(w->f, cap * sizeof(*f));
		if (f == NULL)
			return -1;
		w->f = f;
		w->cap = cap;
	}
	fr = &w->f[w->n];
	memset(fr, 0, sizeof(*fr));
	fr->name = strdup(name);
	if (fr->name == NULL)
		return -1;
	fd = rm_open_dir(pfd, name, &st);
	if (fd < 0)
		goto fail;
	if (w->n > 0 && st.st_dev != w->dev) {
		/* A mount point: rmdir would fail anyway, and its contents are
		 * not ours to delete. */
		close(fd);
		errno = EXDEV;
		goto fail;
	}
	fr->dev = st.st_dev;
	fr->ino = st.st_ino;
	fr->dir = fdopendir(fd);
	if (fr->dir == NULL) {
		util_close_keep_errno(fd);
		goto fail;
	}
	if (w->n == 0)
		w->dev = st.st_dev;
	w->n++;
	if (w->n > RMTREE_OPEN_MAX) {
		struct rm_frame *old = &w->f[w->n - 1 - RMTREE_OPEN_MAX];

		if (old->dir != NULL) {
			closedir(old->dir);
			old->dir = NULL;
		}
	}
	return 0;

fail:
	{
		int saved = errno;

		free(fr->name);
		fr->name = NULL;
		errno = saved;
	}
	return -1;
}

/* The top frame's listing is done: remove it from its parent, reopening the
 * parent through ".." when its stream was closed. A fresh stream starts at
 * the beginning, which is right: what was removed is no longer listed. */
static int rm_pop(struct rm_walk *w)
{
	struct rm_frame *c = &w->f[w->n - 1];
	int pfd = w->top_pfd;

	if (w->n > 1) {
		struct rm_frame *p = &w->f[w->n - 2];

		if (p->dir == NULL) {
			struct stat st;
			int fd = openat(dirfd(c->dir), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (fd < 0)
				return -1;
			if (fstat(fd, &st) < 0 || st.st_dev != p->dev || st.st_ino != p->ino) {
				/* The tree moved under us: never delete in a stranger's directory. */
				close(fd);
				errno = ESTALE;
				return -1;
			}
			p->dir = fdopendir(fd);
			if (p->dir == NULL) {
				util_close_keep_errno(fd);
				return -1;
			}
		}
		pfd = dirfd(p->dir);
	}
	if (unlinkat(pfd, c->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		/* readdir need not list entries while others are removed: list
		 * once more before giving up. */
		if (errno == ENOTEMPTY && !c->rewound) {
			c->rewound = 1;
			rewinddir(c->dir);
			return 0;
		}
		return -1;
	}
	closedir(c->dir);
	free(c->name);
	w->n--;
	return 0;
}

static int rm_unlink(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* Depth first with an explicit stack: a tree of any depth costs heap, not
 * C stack, and at most RMTREE_OPEN_MAX + 1 fds. */
static int rm_tree(int pfd, const char *name)
{
	struct rm_walk w;
	int ret = -1, saved;

	memset(&w, 0, sizeof(w));
	w.top_pfd = pfd;
	if (rm_push(&w, pfd, name) < 0)
		goto done;
	while (w.n > 0) {
		struct rm_frame *f = &w.f[w.n - 1];
		struct dirent *de;
		struct stat st;
		int fd = dirfd(f->dir);

		errno = 0;
		de = readdir(f->dir);
		if (de == NULL) {
			if (errno != 0 || rm_pop(&w) < 0)
				goto done;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) {
			if (unlinkat(fd, de->d_name, 0) == 0 || errno == ENOENT)
				continue;
			if (errno != EISDIR)
				goto done;
		}
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			goto done;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (rm_unlink(fd, de->d_name) < 0)
				goto done;
			continue;
		}
		if (st.st_dev != w.dev) {
			errno = EXDEV;
			goto done;
		}
		if (rm_push(&w, fd, de->d_name) < 0)
			goto done;
	}
	ret = 0;
done:
	saved = errno;
	for (size_t i = 0; i < w.n; i++) {
		if (w.f[i].dir != NULL)
			closedir(w.f[i].dir);
		free(w.f[i].name);
	}
	free(w.f);
	errno = saved;
	return ret;
}

int workdir_rmtree_at(int dirfd, const char *name)
{
	struct stat st;

	if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		errno = EINVAL;
		return -1;
	}
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return rm_unlink(dirfd, name);
	return rm_tree(dirfd, name);
}

/* The directory "/tmp/pyexec-XXXXXX" that the request directory dirfd/name
 * names (WORKDIR_TMP_LINK), removed; a link that names anything else is
 * left alone. 0 when it is gone or there was none. */
static int remove_short_tmp(int dirfd, const char *name)
{
	static const char tmpl[] = WORKDIR_SHORT_TMP;
	const size_t base = sizeof("/tmp/") - 1;
	char link[sizeof(tmpl) + 1];
	ssize_t n;
	int rfd, tfd, ret;

	rfd = openat(dirfd, name, DIR_OPEN_FLAGS);
	if (rfd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	n = readlinkat(rfd, WORKDIR_TMP_LINK, link, sizeof(link));
	(void)close(rfd);
	if (n != (ssize_t)sizeof(tmpl) - 1 || memcmp(link, tmpl, sizeof(tmpl) - 7) != 0 ||
	    memchr(link + base, '/', (size_t)n - base) != NULL)
		return 0;
	link[n] = '\0';
	tfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return -1;
	ret = workdir_rmtree_at(tfd, link + base);
	(void)close(tfd);
	return ret;
}

int workdir_make_short_tmp(struct workdir *wd)
{
	char path[] = WORKDIR_SHORT_TMP;
	int saved;

	if (wd == NULL || wd->req_fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (mkdtemp(path) == NULL) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot create %s: %s", WORKDIR_SHORT_TMP,
			strerror(errno));
		return -1;
	}
	if (symlinkat(path, wd->req_fd, WORKDIR_TMP_LINK) < 0) {
		saved = errno;
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot record %s in %s: %s", path, wd->path,
			strerror(saved));
		(void)rmdir(path);
		errno = saved;
		return -1;
	}
	memcpy(wd->tmp_path, path, sizeof(path));
	return 0;
}

int workdir_remove(struct workdir *wd)
{
	int ret = 0;

	if (wd == NULL || wd->id[0] == '\0')
		return 0;
	workdir_close(&wd->work_fd);
	workdir_close(&wd->req_fd);
	if (wd->root_fd >= 0 && remove_short_tmp(wd->root_fd, wd->id) < 0) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot remove the temporary directory of %s: %s",
			wd->path, strerror(errno));
		ret = -1;
	}
	if (wd->root_fd >= 0 && workdir_rmtree_at(wd->root_fd, wd->id) < 0) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot remove %s: %s", wd->path,
			strerror(errno));
		ret = -1;
	}
	workdir_close(&wd->root_fd);
	wd->id[0] = '\0';
	return ret;
}

/* Whether the process that made the request directory name ("<pid>-<id>")
 * is alive and not the caller: another pyexec-fcgi sharing work_root
 * (mod_fcgid runs several, as may lighttpd's max-procs) is in the middle
 * of that request. */
static int owner_alive(const char *name)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(name, &end, 10);
	if (end == name || *end != '-' || errno != 0 || pid <= 1 || pid == (long)getpid())
		return 0;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int workdir_sweep(const char *root)
{
	DIR *d;
	int fd, removed = 0, failed = 0;

	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot open work root %s: %s", root,
			strerror(errno));
		return -1;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		log_msg(LOG_LEVEL_ERROR, "workdir: cannot list work root %s: %s", root,
			strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				log_msg(LOG_LEVEL_ERROR, "workdir: cannot list work root %s: %s",
					root, strerror(errno));
				failed = 1;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    owner_alive(de->d_name))
			continue;
		if (remove_short_tmp(fd, de->d_name) < 0 || workdir_rmtree_at(fd, de->d_name) < 0) {
			log_msg(LOG_LEVEL_ERROR, "workdir: cannot remove leftover %s/%s: %s",
				root, de->d_name, strerror(errno));
			failed = 1;
			continue;
		}
		if (removed < INT_MAX)
			removed++;
	}
	closedir(d);
	if (removed > 0)
		log_msg(LOG_LEVEL_INFO, "workdir: removed %d leftover entries from %s",
			removed, root);
	return failed ? -1 : removed;
}

/* ---------------------------------------------------------------------- */
/* Walking a tree. */

struct walk_dir {
	DIR *dir;
	size_t plen;            /* bytes of the path buffer that name it */
};

/* fd as the stream of the next level down. 0, or -1 (fd closed). */
static int walk_push(struct walk_dir *stack, size_t *depth, int fd, size_t plen)
{
	DIR *d = fdopendir(fd);

	if (d == NULL) {
		util_close_keep_errno(fd);
		return -1;
	}
	rewinddir(d);
	stack[*depth].dir = d;
	stack[*depth].plen = plen;
	(*depth)++;
	return 0;
}

/* The name's path under the top into path (after the directory's plen
 * bytes), or NULL when it does not fit in len bytes. */
static const char *walk_path(char *path, size_t len, size_t plen, const char *name)
{
	size_t nlen = strlen(name), at = plen + (plen > 0);

	if (at + nlen + 1 > len)
		return NULL;
	if (plen > 0)
		path[plen] = '/';
	memcpy(path + at, name, nlen + 1);
	return path;
}

/* The top directory's listing is over: leave it (its path ends at plen). */
static int walk_pop(struct workdir_walk *w, struct walk_dir *stack, size_t *depth, char *path)
{
	struct walk_dir *cur = &stack[--(*depth)];
	int rc = 0;

	(void)closedir(cur->dir);
	if (*depth > 0 && w->leave != NULL) {
		path[cur->plen] = '\0';
		rc = w->leave(w->arg, path, (unsigned)*depth - 1);
	}
	return rc;
}

int workdir_walk(int fd, struct workdir_walk *w)
{
	struct walk_dir *stack = calloc((size_t)w->max_depth + 1, sizeof(*stack));
	char *path = malloc(w->path_max > 0 ? w->path_max : 1);
	size_t depth = 0;
	int rc = -1;

	w->list_failed = 0;
	if (stack == NULL || path == NULL) {
		util_close_keep_errno(fd);
		goto out;
	}
	path[0] = '\0';
	if (walk_push(stack, &depth, fd, 0) < 0) {
		w->list_failed = 1;
		goto out;
	}
	while (depth > 0) {
		struct walk_dir *cur = &stack[depth - 1];
		struct workdir_entry e;
		struct dirent *de;
		int sub = -1, v;

		errno = 0;
		de = readdir(cur->dir);
		if (de == NULL) {
			if (errno != 0 && w->stop_on_list_error) {
				w->list_failed = 1;
				goto out;
			}
			if (walk_pop(w, stack, &depth, path) < 0)
				goto out;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		e.dfd = dirfd(cur->dir);
		e.name = de->d_name;
		e.path = walk_path(path, w->path_max, cur->plen, de->d_name);
		e.depth = (unsigned)depth - 1;
		v = w->visit(w->arg, &e, &sub);
		if (v < 0)
			goto out;
		if (v == WORKDIR_WALK_STOP)
			break;
		if (v != WORKDIR_WALK_ENTER)
			continue;
		if (depth > w->max_depth || e.path == NULL) {
			util_close_keep_errno(sub);
			errno = depth > w->max_depth ? ELOOP : ENAMETOOLONG;
			goto out;
		}
		if (walk_push(stack, &depth, sub, strlen(e.path)) < 0) {
			w->list_failed = 1;
			goto out;
		}
	}
	rc = 0;
out:
	{
		int saved = errno;

		while (depth > 0)
			(void)closedir(stack[--depth].dir);
		free(stack);
		free(path);
		errno = saved;
	}
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Copying a tree. */

/* in's data to the end into out: sendfile, or read and write where the
 * kernel refuses sendfile for this pair. 0, or -1 with errno. */
static int copy_file_data(int in, int out)
{
	char *buf = NULL;
	ssize_t n;

	for (;;) {
		n = sendfile(out, in, NULL, WORKDIR_COPY_CHUNK);
		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
	}
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	buf = malloc(WORKDIR_COPY_CHUNK);
	if (buf == NULL)
		return -1;
	for (;;) {
		n = read(in, buf, WORKDIR_COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || util_write_all(out, buf, (size_t)n) < 0)
			break;
	}
	free(buf);
	return n == 0 ? 0 : -1;
}

/* The regular file name of src copied into dst. A file swapped for
 * something else since it was listed is skipped. */
static int copy_file(int src, int dst, const char *name, struct workdir_copy *c)
{
	struct stat st, ost;
	int in, out = -1;

	in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		return -1;
	if (fstat(in, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		(void)close(in);
		return 0;
	}
	out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0 || copy_file_data(in, out) < 0 ||
	    fchmod(out, (st.st_mode & 0777) | c->file_bits) < 0 || fstat(out, &ost) < 0)
		goto fail;
	if (c->on_file != NULL && c->on_file(c->arg, c->failed, &ost) < 0)
		goto fail;
	(void)close(in);
	return close(out);
fail:
	util_close_keep_errno(in);
	util_close_keep_errno(out);
	return -1;
}

/* A copy under way: the directory in dst of each level of the walk (the
 * top's at 0), and the mode each gets once its contents are in. */
struct copy_walk {
	struct workdir_copy *c;
	int *dst;
	mode_t *mode;
};

/* The directory e (st) made in dst and entered: its fd into *sub. */
static int copy_enter(struct copy_walk *cw, const struct workdir_entry *e,
		      const struct stat *st, int *sub)
{
	int dst = cw->dst[e->depth], out;

	if (e->depth >= cw->c->max_depth) {
		errno = ELOOP;
		return -1;
	}
	/* its entries' names need a '/' more */
	if (strlen(e->path) + 2 > PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdirat(dst, e->name, 0700) < 0)
		return -1;
	*sub = openat(e->dfd, e->name, DIR_OPEN_FLAGS);
	if (*sub < 0)
		return -1;
	out = openat(dst, e->name, DIR_OPEN_FLAGS);
	if (out < 0) {
		util_close_keep_errno(*sub);
		return -1;
	}
	cw->dst[e->depth + 1] = out;
	cw->mode[e->depth + 1] = st->st_mode;
	return WORKDIR_WALK_ENTER;
}

/* Directories and regular files are copied, anything else is skipped;
 * c->failed names the entry. */
static int copy_visit(void *arg, const struct workdir_entry *e, int *sub)
{
	struct copy_walk *cw = arg;
	struct stat st;

	if (e->path == NULL) {
		snprintf(cw->c->failed, sizeof(cw->c->failed), "%s", e->name);
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(cw->c->failed, e->path, strlen(e->path) + 1);
	if (fstatat(e->dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return copy_enter(cw, e, &st, sub);
	if (S_ISREG(st.st_mode) && copy_file(e->dfd, cw->dst[e->depth], e->name, cw->c) < 0)
		return -1;
	return WORKDIR_WALK_NEXT;
}

/* The mode last: a read-only directory was written into. */
static int copy_leave(void *arg, const char *path, unsigned depth)
{
	struct copy_walk *cw = arg;
	int out = cw->dst[depth + 1], rc;

	memcpy(cw->c->failed, path, strlen(path) + 1);
	rc = fchmod(out, (cw->mode[depth + 1] & 0777) | cw->c->dir_bits);
	util_close_keep_errno(out);
	cw->dst[depth + 1] = -1;
	return rc;
}

int workdir_copy_tree(int src, int dst, struct workdir_copy *c)
{
	struct copy_walk cw = { c, NULL, NULL };
	struct workdir_walk w = {
		.max_depth = c->max_depth, .path_max = sizeof(c->failed),
		.visit = copy_visit, .leave = copy_leave, .arg = &cw,
		.stop_on_list_error = 1,
	};
	int fd, rc = -1;

	c->failed[0] = '\0';
	cw.dst = malloc(((size_t)c->max_depth + 1) * sizeof(*cw.dst));
	cw.mode = malloc(((size_t)c->max_depth + 1) * sizeof(*cw.mode));
	if (cw.dst == NULL || cw.mode == NULL)
		goto out;
	cw.dst[0] = dst;
	for (unsigned i = 1; i <= c->max_depth; i++)
		cw.dst[i] = -1;
	fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
	rc = fd < 0 ? -1 : workdir_walk(fd, &w);
	if (rc < 0 && (fd < 0 || w.list_failed))
		c->failed[0] = '\0';
	for (unsigned i = 1; i <= c->max_depth; i++)
		util_close_keep_errno(cw.dst[i]);
out:
	{
		int saved = errno;

		free(cw.dst);
		free(cw.mode);
		errno = saved;
	}
	return rc;
}
