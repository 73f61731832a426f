/* collect: finds the files a run generated: every regular file under the
 * work directory that the run created or changed (an upload whose device,
 * inode, size, mtime and ctime are all as uploaded is left out), skipping
 * __pycache__ directories, never following a symlink, never opening
 * anything that is not a regular file. */
#ifndef PYEXEC_COLLECT_H
#define PYEXEC_COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define COLLECT_DEPTH_MAX 64    /* deeper directories are not searched */
#define COLLECT_ENTRIES_MAX 100000 /* directory entries looked at, at most */

struct collect_snapshot;        /* the uploads, as written */

/* A new empty snapshot, or NULL (ENOMEM). */
struct collect_snapshot *collect_snapshot_new(void);
/* Records an upload under its relative name (copies name) with the stat of
 * its fd after its last write. 0 or -1 (ENOMEM). */
int collect_snapshot_add(struct collect_snapshot *s, const char *name,
			 const struct stat *st);
void collect_snapshot_free(struct collect_snapshot *s);

struct collect_file {
	char *name;             /* relative to the work directory, owned */
	uint64_t size;
};

struct collect_result {
	struct collect_file *files;  /* sorted by name (bytewise), owned */
	size_t n;
	uint64_t bytes;              /* sum of the sizes returned */
	int truncated;               /* a file was left out for a cap */
};

/* Walks work_fd's directory (not closed) and fills out. Files that would
 * pass max_files or max_bytes are left out and out->truncated is set
 * (taken in name order: a later, smaller file may still fit). A directory
 * deeper than COLLECT_DEPTH_MAX, or entries past COLLECT_ENTRIES_MAX, are
 * not searched and set out->truncated too.
 * 0, or -1 with errno (ENOMEM, EMFILE) and out empty. Unreadable
 * subdirectories, and files the run left unreadable, are skipped; a work
 * directory the run made unreadable is opened again after fchmod 0700 (it
 * belongs to pyexec's user). */
int collect_files(int work_fd, const struct collect_snapshot *s,
		  unsigned max_files, uint64_t max_bytes,
		  struct collect_result *out);

/* Opens name (from a collect_result) under work_fd for reading, component
 * by component with O_NOFOLLOW, and checks it is a regular file.
 * fd (O_RDONLY|O_CLOEXEC) or -1 with errno (ELOOP for a symlink, EINVAL
 * for something that is not a regular file). */
int collect_open(int work_fd, const char *name);

void collect_result_free(struct collect_result *r);

#endif
