/* subid: the subordinate user and group ids of pyexec's user (subuid(5),
 * subgid(5)), which give each worker's runs a host uid and gid of their own,
 * and newuidmap(1)/newgidmap(1), the set-uid helpers that map them into a
 * sandbox's user namespace.
 *
 * A line of /etc/subuid or /etc/subgid is "owner:first:count", the owner a
 * user name or a numeric uid. Lines that do not parse are skipped, as
 * shadow's tools skip them. */
#ifndef PYEXEC_SUBID_H
#define PYEXEC_SUBID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SUBID_UID_FILE  "/etc/subuid"
#define SUBID_GID_FILE  "/etc/subgid"
#define SUBID_NEWUIDMAP "/usr/bin/newuidmap"
#define SUBID_NEWGIDMAP "/usr/bin/newgidmap"
#define SUBID_LINE_MAX  512     /* longer lines are skipped */
#define SUBID_LINES_MAX 100000  /* lines read of one file */

/* The first id of the first range in path that belongs to name or to the
 * numeric uid owner, holds at least need ids, and contains neither 0 nor
 * own (pyexec's own uid, or gid for /etc/subgid). 0 with *first set; -1
 * with errno: ENOENT (no such range), or what opening or reading path
 * failed with. */
int subid_find(const char *path, const char *name, unsigned long owner, unsigned long own,
	       unsigned need, unsigned long *first);

/* Maps, in the user namespace of pid, own (the caller's uid or gid) and run
 * to themselves, through newuidmap (gid = 0) or newgidmap (gid = 1), which
 * checks run against the caller's range. Runs the helper with an empty
 * environment and waits for it (its pid only: the caller's other children
 * are left alone). 0, or -1 with what the helper said, or why it could not
 * run, in err. */
int subid_map(pid_t pid, int gid, unsigned long own, unsigned long run, char *err,
	      size_t errlen);

#endif
