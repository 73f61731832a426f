#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collect.h"

/* The longest relative name a walk can build: COLLECT_DEPTH_MAX directories
 * and a file, NAME_MAX bytes each, joined by '/'. */
#define COLLECT_NAME_MAX ((COLLECT_DEPTH_MAX + 1) * (NAME_MAX + 1))

#define DIR_OPEN_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
/* O_NONBLOCK: should a FIFO slip past the checks, its open does not wait. */
#define FILE_OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

struct snap_entry {
	char *name;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

struct collect_snapshot {
	struct snap_entry *e;
	size_t n, cap;
};

struct collect_snapshot *collect_snapshot_new(void)
{
	return calloc(1, sizeof(struct collect_snapshot));
}

int collect_snapshot_add(struct collect_snapshot *s, const char *name,
			 const struct stat *st)
{
	struct snap_entry *e;

	if (s == NULL || name == NULL || st == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;

		if (cap > SIZE_MAX / sizeof(*e)) {
			errno = ENOMEM;
			return -1;
		}
		e = realloc(s->e, cap * sizeof(*e));
		if (e == NULL)
			return -1;
		s->e = e;
		s->cap = cap;
	}
	e = &s->e[s->n];
	e->name = strdup(name);
	if (e->name == NULL)
		return -1;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtim = st->st_mtim;
	e->ctim = st->st_ctim;
	s->n++;
	return 0;
}

void collect_snapshot_free(struct collect_snapshot *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].name);
	free(s->e);
	free(s);
}

static int snap_cmp(const void *a, const void *b)
{
	const struct snap_entry *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int snap_key_cmp(const void *key, const void *b)
{
	const struct snap_entry *const *y = b;

	return strcmp(key, (*y)->name);
}

/* An upload is left out only when nothing about it moved: a rewrite keeping
 * the size still changes mtime and ctime, and ctime cannot be set back. */
static int snap_unchanged(const struct snap_entry *const *idx, size_t n,
			  const char *name, const struct stat *st)
{
	const struct snap_entry *const *hit;
	const struct snap_entry *e;

	if (n == 0)
		return 0;
	hit = bsearch(name, idx, n, sizeof(*idx), snap_key_cmp);
	if (hit == NULL)
		return 0;
	e = *hit;
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtim.tv_sec == st->st_mtim.tv_sec && e->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       e->ctim.tv_sec == st->st_ctim.tv_sec && e->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

static int file_cmp(const void *a, const void *b)
{
	const struct collect_file *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Running out of fds or memory fails the walk; anything else about one
 * entry (gone, unreadable, swapped) only skips it. */
static int collect_fatal(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM;
}

struct collect_dir {
	DIR *dir;
	size_t plen;            /* bytes of the name buffer that name it */
};

int collect_files(int work_fd, const struct collect_snapshot *s,
		  unsigned max_files, uint64_t max_bytes,
		  struct collect_result *out)
{
	struct collect_dir stack[COLLECT_DEPTH_MAX + 1];
	const struct snap_entry **idx = NULL;
	struct collect_file *cand = NULL;
	size_t depth = 0, ncand = 0, cap = 0, nidx = 0, kept = 0;
	unsigned long seen = 0;
	char *path = NULL;
	int fd, saved, truncated = 0;

	memset(out, 0, sizeof(*out));
	path = malloc(COLLECT_NAME_MAX + 1);
	if (path == NULL)
		return -1;
	if (s != NULL && s->n > 0) {
		idx = malloc(s->n * sizeof(*idx));
		if (idx == NULL)
			goto fail;
		for (size_t i = 0; i < s->n; i++)
			idx[i] = &s->e[i];
		nidx = s->n;
		qsort(idx, nidx, sizeof(*idx), snap_cmp);
	}
	/* A fresh open file description: the caller's offset stays its own. */
	fd = openat(work_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && fchmod(work_fd, 0700) == 0) {
		/* The program locked its own working directory; it is ours to
		 * reopen (unreadable subdirectories are skipped instead). */
		fd = openat(work_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		goto fail;
	stack[0].dir = fdopendir(fd);
	if (stack[0].dir == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	stack[0].plen = 0;
	depth = 1;

	while (depth > 0) {
		struct collect_dir *cur = &stack[depth - 1];
		int dfd = dirfd(cur->dir);
		struct dirent *de;
		struct stat st, fst;
		size_t nlen, plen;

		errno = 0;
		de = readdir(cur->dir);
		if (de == NULL) {
			/* An error mid-listing ends this directory, like an unreadable one. */
			closedir(cur->dir);
			depth--;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++seen > COLLECT_ENTRIES_MAX) {
			truncated = 1;
			break;
		}
		nlen = strlen(de->d_name);
		plen = cur->plen + (cur->plen > 0) + nlen;
		if (nlen > NAME_MAX || plen > COLLECT_NAME_MAX)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (collect_fatal(errno))
				goto fail;
			continue;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			continue;       /* symlinks, FIFOs, sockets, devices */
		if (S_ISDIR(st.st_mode) && strcmp(de->d_name, "__pycache__") == 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth > COLLECT_DEPTH_MAX) {
			truncated = 1;
			continue;
		}
		fd = openat(dfd, de->d_name, S_ISDIR(st.st_mode) ? DIR_OPEN_FLAGS : FILE_OPEN_FLAGS);
		if (fd < 0) {
			if (collect_fatal(errno))
				goto fail;
			continue;
		}
		/* Still the entry looked at: nothing was swapped in between. */
		if (fstat(fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino ||
		    (fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
			close(fd);
			continue;
		}
		if (cur->plen > 0)
			path[cur->plen] = '/';
		memcpy(path + plen - nlen, de->d_name, nlen + 1);
		if (S_ISDIR(fst.st_mode)) {
			stack[depth].dir = fdopendir(fd);
			if (stack[depth].dir == NULL) {
				saved = errno;
				close(fd);
				errno = saved;
				goto fail;
			}
			stack[depth].plen = plen;
			depth++;
			continue;
		}
		close(fd);
		if (!S_ISREG(fst.st_mode) || snap_unchanged(idx, nidx, path, &fst))
			continue;
		if (ncand == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct collect_file *c;

			if (ncap > SIZE_MAX / sizeof(*c)) {
				errno = ENOMEM;
				goto fail;
			}
			c = realloc(cand, ncap * sizeof(*c));
			if (c == NULL)
				goto fail;
			cand = c;
			cap = ncap;
		}
		cand[ncand].name = strdup(path);
		if (cand[ncand].name == NULL)
			goto fail;
		cand[ncand].size = (uint64_t)fst.st_size;
		ncand++;
	}
	while (depth > 0)
		closedir(stack[--depth].dir);

	/* Caps in name order, so which files are returned does not depend on
	 * the order the file system lists them in. */
	if (ncand > 0)
		qsort(cand, ncand, sizeof(*cand), file_cmp);
	for (size_t i = 0; i < ncand; i++) {
		if (kept < max_files && cand[i].size <= max_bytes - out->bytes) {
			out->bytes += cand[i].size;
			cand[kept++] = cand[i];
		} else {
			free(cand[i].name);
			truncated = 1;
		}
	}
	if (kept == 0) {
		free(cand);
		cand = NULL;
	}
	out->files = cand;
	out->n = kept;
	out->truncated = truncated;
	free(idx);
	free(path);
	return 0;

fail:
	saved = errno;
	while (depth > 0)
		closedir(stack[--depth].dir);
	for (size_t i = 0; i < ncand; i++)
		free(cand[i].name);
	free(cand);
	free(idx);
	free(path);
	memset(out, 0, sizeof(*out));
	errno = saved;
	return -1;
}

int collect_open(int work_fd, const char *name)
{
	char comp[NAME_MAX + 1];
	const char *p, *slash;
	struct stat st, fst;
	int dfd = work_fd, fd = -1, fl, saved;
	size_t depth = 0;

	if (name == NULL || name[0] == '\0' || name[0] == '/') {
		errno = EINVAL;
		return -1;
	}
	/* The whole name first: nothing is opened for a name that could climb. */
	for (p = name;; p = slash + 1) {
		size_t n;

		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
		    ++depth > COLLECT_DEPTH_MAX + 1) {
			errno = EINVAL;
			return -1;
		}
		if (n > NAME_MAX) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (slash == NULL)
			break;
	}
	for (p = name;; p = slash + 1) {
		size_t n;

		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (slash == NULL)
			break;
		fd = openat(dfd, comp, DIR_OPEN_FLAGS);
		if (fd < 0) {
			/* Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW. */
			if (errno == ENOTDIR && fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				errno = ELOOP;
			goto fail;
		}
		if (dfd != work_fd)
			close(dfd);
		dfd = fd;
		fd = -1;
	}
	/* Look before opening: opening a FIFO or a device can have effects. */
	if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
		goto fail;
	if (S_ISLNK(st.st_mode)) {
		errno = ELOOP;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	fd = openat(dfd, comp, FILE_OPEN_FLAGS);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &fst) < 0)
		goto fail;
	if (!S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		errno = EINVAL;
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		goto fail;
	if (dfd != work_fd)
		close(dfd);
	return fd;

fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	if (dfd != work_fd)
		close(dfd);
	errno = saved;
	return -1;
}

void collect_result_free(struct collect_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->files[i].name);
	free(r->files);
	memset(r, 0, sizeof(*r));
}
