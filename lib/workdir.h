/* workdir: one private directory per request under work_root:
 *   <work_root>/<id>/        0700, the request's own
 *   <work_root>/<id>/work/   the program's working directory (uploads, results)
 *   <work_root>/<id>/tmp/    the mount point of a sandbox's root, made for
 *                            the request (namespace layer)
 *   <work_root>/<id>/tmpdir  a symlink to the program's HOME and TMPDIR,
 *                            /tmp/pyexec-XXXXXX (rlimits layer; see
 *                            workdir_make_short_tmp)
 *   <work_root>/<id>/...     the request's private files (stdin, stdout, ...)
 * Everything below is reached with *at() calls relative to the fds held here,
 * with O_NOFOLLOW: a symlink the program plants is never followed.
 *
 * Trees are walked here too: workdir_walk, the one walk that copying the
 * uploads (workdir_copy_tree) and collecting the results (collect.c) share,
 * and the removal's own (workdir_rmtree_at: bottom-up, of any depth, with a
 * bounded number of fds). */
#ifndef PYEXEC_WORKDIR_H
#define PYEXEC_WORKDIR_H

#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct workdir {
	int root_fd;              /* work_root */
	int req_fd;               /* <work_root>/<id> */
	int work_fd;              /* <work_root>/<id>/work */
	char id[64];
	char path[PATH_MAX];      /* absolute path of <work_root>/<id> */
	char work_path[PATH_MAX]; /* absolute path of .../work */
	char tmp_path[PATH_MAX];  /* the short temporary directory once
	                           * workdir_make_short_tmp made it, else "" */
};

#define WORKDIR_SHORT_TMP "/tmp/pyexec-XXXXXX"  /* mkdtemp(3) template */
#define WORKDIR_TMP_LINK  "tmpdir"              /* names it in the request dir */

/* Makes <root>/<id> and work/ (root must exist). id is [A-Za-z0-9_-],
 * 1..63 bytes. 0, or -1 with errno (ENOSPC, EDQUOT, EEXIST...), logged. On
 * failure nothing is left behind and wd holds no fd. */
int workdir_create(struct workdir *wd, const char *root, const char *id);

/* The path workdir_create(root, id) gives the request's work directory
 * (root/id/work, root made absolute), into buf. 0, or -1 with errno. */
int workdir_work_path(const char *root, const char *id, char *buf, size_t len);

/* Opens directory name under dfd (O_RDONLY, O_DIRECTORY, O_NOFOLLOW,
 * O_CLOEXEC). The fd, or -1 with errno: ELOOP for a symlink (where Linux
 * says ENOTDIR), as for anything under a work directory. */
int workdir_open_dir(int dfd, const char *name);

/* Creates the upload file name (already accepted by names_check) under
 * work/, making missing parent directories (0755) on the way, never following
 * a symlink. Returns an fd open O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC
 * (mode 0644), or -1 with errno: EEXIST for a duplicate name, ENOTDIR or
 * EISDIR when a name clashes with a directory of another. */
int workdir_create_file(struct workdir *wd, const char *name);
/* The same under the directory base, with dir_bits added to the mode of
 * each directory it makes and file_bits to the file's (0: as above). */
int workdir_create_file_at(int base, const char *name, mode_t dir_bits, mode_t file_bits);

/* Creates a private file of the request (not visible to the program's
 * work/, e.g. "stdin", "stdout"), O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC 0600.
 * fd or -1 with errno. */
int workdir_private_file(struct workdir *wd, const char *name);

/* Makes the program's HOME and TMPDIR for a run without a sandbox of its
 * own: a new private (0700) directory WORKDIR_SHORT_TMP, whose path is short
 * whatever work_root's is, so that the AF_UNIX socket paths Python makes
 * under it fit in sun_path (multiprocessing's forkserver). The request
 * directory names it (WORKDIR_TMP_LINK), so that workdir_remove and
 * workdir_sweep remove it with the request. Sets wd->tmp_path. 0, or -1
 * with errno (logged), nothing left behind. */
int workdir_make_short_tmp(struct workdir *wd);

/* Removes the request directory and everything in it, closes the fds.
 * Survives what the program leaves: mode-000 directories, symlinks, FIFOs,
 * sockets, deep trees (no recursion on the C stack). 0, or -1 (logged) when
 * something could not be removed. Safe to call twice. */
int workdir_remove(struct workdir *wd);

/* Removes every entry of dirfd's directory named name, recursively, the same
 * way; 0 or -1 with errno. ENOENT is success. */
int workdir_rmtree_at(int dirfd, const char *name);

/* Removes every leftover entry under root (at start, or after a worker
 * crashed), with the short temporary directory each names, except a request directory ("<pid>-<id>") whose process is
 * alive and not the caller: several pyexec-fcgi may share one work_root
 * (mod_fcgid starts one per concurrent request). Returns the number of
 * entries removed, or -1 (logged). */
int workdir_sweep(const char *root);

/* One entry of a walk, as workdir_walk shows it to its visitor. */
struct workdir_entry {
	int dfd;                      /* its directory */
	const char *name;             /* its name there */
	const char *path;             /* its name under the top ("a/b.txt"); NULL
	                               * when that would not fit in path_max */
	unsigned depth;               /* 0 for the top's own entries */
};

/* What a visitor returns (or -1 with errno, which fails the walk). */
enum { WORKDIR_WALK_NEXT, WORKDIR_WALK_ENTER, WORKDIR_WALK_STOP };

/* A depth-first walk that lists each directory once, in the order the file
 * system gives, and never enters anything its visitor did not open. */
struct workdir_walk {
	unsigned max_depth;           /* a directory of depth max_depth - 1 is the
	                               * deepest that may be entered (ELOOP) */
	size_t path_max;              /* bytes of the longest path, its NUL included */
	/* Called for each entry but "." and "..": NEXT goes on, STOP ends the
	 * walk (a success), ENTER lists the directory whose fd (open
	 * O_DIRECTORY, the walk's from then on) the visitor put in *sub. */
	int (*visit)(void *arg, const struct workdir_entry *e, int *sub);
	/* When not NULL: called once a directory the visitor entered is
	 * listed, with that directory's own path and depth. -1 fails the walk. */
	int (*leave)(void *arg, const char *path, unsigned depth);
	void *arg;
	int stop_on_list_error;       /* 1: a failed listing fails the walk; 0: it
	                               * ends that directory's listing */
	int list_failed;              /* out: the walk failed listing a directory */
};

/* Walks the directory fd (taken: closed when the walk ends), from its
 * start. 0, or -1 with errno (the visitor's, leave's, a listing's, or
 * ENOMEM). */
int workdir_walk(int fd, struct workdir_walk *w);

/* How workdir_copy_tree copies, and where it failed. */
struct workdir_copy {
	mode_t dir_bits, file_bits;   /* added to each copy's mode (the source's) */
	unsigned max_depth;           /* a directory deeper fails with ELOOP */
	/* When not NULL: called for each regular file copied, with its name
	 * under the top ("a/b.txt") and the copy's stat once written; -1 (with
	 * errno) fails the copy there. */
	int (*on_file)(void *arg, const char *name, const struct stat *st);
	void *arg;
	char failed[PATH_MAX];        /* out: the name the copy failed on; ""
	                               * when listing a directory failed */
};

/* Copies the contents of directory src into directory dst (both open, dst
 * empty): regular files and directories only (anything else is skipped),
 * never following a symlink; each directory gets its mode once its
 * contents are in. src's offset is left alone. 0, or -1 with errno (that
 * of the first failure; what was copied stays) and c->failed. */
int workdir_copy_tree(int src, int dst, struct workdir_copy *c);

#endif
