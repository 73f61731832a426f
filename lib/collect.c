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
#include "util.h"
#include "workdir.h"

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

/* Room for one more element (of size bytes) after the n in array p of
 * *cap, doubling *cap (first when 0) when it is full: the array (p, or
 * where it moved), or NULL (ENOMEM; p is left as it was). */
static void *grow(void *p, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap * 2 : first;

	if (n < *cap)
		return p;
	if (ncap > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	p = realloc(p, ncap * size);
	if (p != NULL)
		*cap = ncap;
	return p;
}

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
	e = grow(s->e, &s->cap, s->n, sizeof(*e), 16);
	if (e == NULL)
		return -1;
	s->e = e;
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

/* A collection under way. */
struct collect_walk {
	const struct snap_entry **idx;  /* the snapshot, sorted by name */
	size_t nidx;
	struct collect_file *cand;      /* every file found, before the caps */
	size_t ncand, cap;
	unsigned long seen;             /* entries looked at */
	int truncated;
};

/* A found file joins the candidates. 0, or -1 (ENOMEM). */
static int collect_add(struct collect_walk *cw, const char *path, uint64_t size)
{
	struct collect_file *c = grow(cw->cand, &cw->cap, cw->ncand, sizeof(*c), 32);

	if (c == NULL)
		return -1;
	cw->cand = c;
	cw->cand[cw->ncand].name = strdup(path);
	if (cw->cand[cw->ncand].name == NULL)
		return -1;
	cw->cand[cw->ncand].size = size;
	cw->ncand++;
	return 0;
}

/* Regular files the run made or changed are candidates; directories but
 * __pycache__ are entered, down to COLLECT_DEPTH_MAX; anything else, and
 * whatever cannot be looked at, is skipped. */
static int collect_visit(void *arg, const struct workdir_entry *e, int *sub)
{
	struct collect_walk *cw = arg;
	struct stat st, fst;
	int fd;

	if (++cw->seen > COLLECT_ENTRIES_MAX) {
		cw->truncated = 1;
		return WORKDIR_WALK_STOP;
	}
	if (strlen(e->name) > NAME_MAX || e->path == NULL)
		return WORKDIR_WALK_NEXT;
	if (fstatat(e->dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return collect_fatal(errno) ? -1 : WORKDIR_WALK_NEXT;
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return WORKDIR_WALK_NEXT;     /* symlinks, FIFOs, sockets, devices */
	if (S_ISDIR(st.st_mode) && strcmp(e->name, "__pycache__") == 0)
		return WORKDIR_WALK_NEXT;
	if (S_ISDIR(st.st_mode) && e->depth >= COLLECT_DEPTH_MAX) {
		cw->truncated = 1;
		return WORKDIR_WALK_NEXT;
	}
	fd = openat(e->dfd, e->name, S_ISDIR(st.st_mode) ? DIR_OPEN_FLAGS : FILE_OPEN_FLAGS);
	if (fd < 0)
		return collect_fatal(errno) ? -1 : WORKDIR_WALK_NEXT;
	/* Still the entry looked at: nothing was swapped in between. */
	if (fstat(fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino ||
	    (fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
		close(fd);
		return WORKDIR_WALK_NEXT;
	}
	if (S_ISDIR(fst.st_mode)) {
		*sub = fd;
		return WORKDIR_WALK_ENTER;
	}
	close(fd);
	if (snap_unchanged(cw->idx, cw->nidx, e->path, &fst))
		return WORKDIR_WALK_NEXT;
	return collect_add(cw, e->path, (uint64_t)fst.st_size) < 0 ? -1 : WORKDIR_WALK_NEXT;
}

/* The snapshot's entries sorted by name into cw. 0, or -1 (ENOMEM). */
static int collect_index(struct collect_walk *cw, const struct collect_snapshot *s)
{
	if (s == NULL || s->n == 0)
		return 0;
	cw->idx = malloc(s->n * sizeof(*cw->idx));
	if (cw->idx == NULL)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		cw->idx[i] = &s->e[i];
	cw->nidx = s->n;
	qsort(cw->idx, cw->nidx, sizeof(*cw->idx), snap_cmp);
	return 0;
}

/* The candidates into out, in name order, within max_files and max_bytes
 * (so which files are returned does not depend on the order the file
 * system lists them in); cw gives them up. */
static void collect_caps(struct collect_walk *cw, unsigned max_files, uint64_t max_bytes,
			 struct collect_result *out)
{
	size_t kept = 0;

	if (cw->ncand > 0)
		qsort(cw->cand, cw->ncand, sizeof(*cw->cand), file_cmp);
	for (size_t i = 0; i < cw->ncand; i++) {
		if (kept < max_files && cw->cand[i].size <= max_bytes - out->bytes) {
			out->bytes += cw->cand[i].size;
			cw->cand[kept++] = cw->cand[i];
		} else {
			free(cw->cand[i].name);
			cw->truncated = 1;
		}
	}
	if (kept == 0) {
		free(cw->cand);
		cw->cand = NULL;
	}
	out->files = cw->cand;
	out->n = kept;
	out->truncated = cw->truncated;
	cw->cand = NULL;
	cw->ncand = 0;
}

int collect_files(int work_fd, const struct collect_snapshot *s,
		  unsigned max_files, uint64_t max_bytes,
		  struct collect_result *out)
{
	struct collect_walk cw;
	struct workdir_walk w = {
		.max_depth = COLLECT_DEPTH_MAX, .path_max = COLLECT_NAME_MAX + 1,
		.visit = collect_visit, .arg = &cw,
	};
	int fd, saved;

	memset(out, 0, sizeof(*out));
	memset(&cw, 0, sizeof(cw));
	if (collect_index(&cw, s) < 0)
		return -1;
	/* A fresh open file description: the caller's offset stays its own. */
	fd = openat(work_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && fchmod(work_fd, 0700) == 0) {
		/* The program locked its own working directory; it is ours to
		 * reopen (unreadable subdirectories are skipped instead). */
		fd = openat(work_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0 || workdir_walk(fd, &w) < 0)
		goto fail;
	collect_caps(&cw, max_files, max_bytes, out);
	free(cw.idx);
	return 0;

fail:
	saved = errno;
	for (size_t i = 0; i < cw.ncand; i++)
		free(cw.cand[i].name);
	free(cw.cand);
	free(cw.idx);
	memset(out, 0, sizeof(*out));
	errno = saved;
	return -1;
}

/* A name collect_open may open: relative components, none empty, "." or
 * "..", none longer than NAME_MAX, at most COLLECT_DEPTH_MAX directories
 * deep. 0, or -1 with errno (EINVAL, ENAMETOOLONG). Checked whole before
 * anything is opened, so nothing is opened for a name that could climb. */
static int collect_name_check(const char *name)
{
	const char *p, *slash;
	size_t depth = 0;

	if (name == NULL || name[0] == '\0' || name[0] == '/') {
		errno = EINVAL;
		return -1;
	}
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
			return 0;
	}
}

/* Walks the directories of a checked name from work_fd without following
 * a link, and copies its last component into comp. The fd of the directory
 * that holds it (work_fd itself for a top-level name; any other is the
 * caller's to close), or -1 with errno (ELOOP for a link on the way). */
static int collect_open_dirs(int work_fd, const char *name, char comp[NAME_MAX + 1])
{
	const char *p, *slash;
	int dfd = work_fd, fd;

	for (p = name;; p = slash + 1) {
		size_t n;

		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (slash == NULL)
			return dfd;
		fd = workdir_open_dir(dfd, comp);
		if (fd < 0) {
			if (dfd != work_fd)
				util_close_keep_errno(dfd);
			return -1;
		}
		if (dfd != work_fd)
			close(dfd);
		dfd = fd;
	}
}

/* Opens comp in dfd for reading when it is a regular file, looking before
 * opening (opening a FIFO or a device can have effects) and checking after
 * that the same file was opened. The fd (blocking), or -1 with errno. */
static int collect_open_regular(int dfd, const char *comp)
{
	struct stat st, fst;
	int fd, fl;

	if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (S_ISLNK(st.st_mode)) {
		errno = ELOOP;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	fd = openat(dfd, comp, FILE_OPEN_FLAGS);
	if (fd < 0)
		return -1;
	if (fstat(fd, &fst) < 0)
		goto fail;
	if (!S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		errno = EINVAL;
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	util_close_keep_errno(fd);
	return -1;
}

int collect_open(int work_fd, const char *name)
{
	char comp[NAME_MAX + 1];
	int dfd, fd;

	if (collect_name_check(name) < 0)
		return -1;
	dfd = collect_open_dirs(work_fd, name, comp);
	if (dfd < 0)
		return -1;
	fd = collect_open_regular(dfd, comp);
	if (dfd != work_fd)
		util_close_keep_errno(dfd);
	return fd;
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
