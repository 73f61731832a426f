/* cgroup: runs in a cgroup v2 directory delegated to pyexec (systemd's
 * Delegate=yes, or one an operator made and chowned to pyexec's user).
 *
 * Layout under the delegated directory D (pyexec's own cgroup, or an
 * ancestor of it):
 *
 *   D/supervisor      the master and its workers (cgroup v2 allows no
 *                     processes in a cgroup whose controllers are enabled
 *                     for its children, so they leave D)
 *   D/run-<worker>    one per worker, reused run after run: memory.max,
 *                     memory.swap.max = 0, memory.oom.group = 1 and
 *                     pids.max are set before each run; a run is cloned
 *                     straight into it (clone3 CLONE_INTO_CGROUP), and is
 *                     emptied with cgroup.kill after it.
 *
 * The memory and pids controllers are used when D offers them; without
 * them the cgroup still holds the run together (cgroup.kill) and the limits
 * stay rlimits. Every function here fails with errno set, and the setup
 * with one sentence in err. */
#ifndef PYEXEC_CGROUP_H
#define PYEXEC_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CGROUP_SUPERVISOR "supervisor"
#define CGROUP_RUN_PREFIX "run-"
#define CGROUP_KILL_WAIT_MS 2000   /* for a killed cgroup to empty */

struct cgroup_config {
	char path[PATH_MAX];    /* D; "" when no cgroup is used */
	int memory;             /* the memory controller is enabled for runs */
	int pids;               /* the pids controller is enabled for runs */
};

/* One worker's run cgroup. */
struct cgroup_slot {
	int fd;                 /* D/run-<worker>, O_DIRECTORY; -1 = none */
	int memory, pids;       /* copied from the config */
	uint64_t oom_kills;     /* memory.events oom_kill when the run began */
	uint64_t memory_max;    /* memory.max of the run, bytes (0 = none) */
};

/* Finds D: want is "auto" (pyexec's own cgroup, from /proc/self/cgroup and
 * the cgroup2 mount in /proc/self/mountinfo) or a directory (which must
 * hold pyexec's own cgroup). Checks that D is writable by the calling
 * user, moves the calling process into D/supervisor, enables the memory
 * and pids controllers D offers for its children, and removes run cgroups
 * a previous instance left. Call with no children, after privileges are
 * dropped. 0 with cfg filled; -1 with a sentence in err (cfg->path "").
 * With want "auto", a missing or undelegated cgroup is -1 too: the caller
 * logs it and goes on without. */
int cgroup_setup(struct cgroup_config *cfg, const char *want, char *err, size_t errlen);

/* The cgroup v2 directory of pid ("self" when 0) from /proc/<pid>/cgroup
 * and /proc/self/mountinfo, into out. 0, or -1 (ENOENT when there is no
 * cgroup v2 mount or line). */
int cgroup_of(pid_t pid, char *out, size_t len);

/* Creates (or reuses) D/run-<worker> and opens it into slot. 0 or -1. */
int cgroup_slot_open(const struct cgroup_config *cfg, pid_t worker, struct cgroup_slot *slot);

/* Before a run: sets memory.max to memory bytes (0 = max), swap to 0, the
 * OOM killer to kill the whole cgroup, pids.max to pids (0 = max), and
 * records the OOM kill count. 0 or -1. */
int cgroup_slot_prepare(struct cgroup_slot *slot, uint64_t memory, unsigned pids);

/* 1 when the kernel's OOM killer killed in the slot since prepare, 0 when
 * not, -1 when it cannot say. */
int cgroup_slot_oom(const struct cgroup_slot *slot);

/* After a run: kills whatever is left in the slot and waits (up to
 * CGROUP_KILL_WAIT_MS) until it is empty. 0, or -1 when it stays populated. */
int cgroup_slot_empty(const struct cgroup_slot *slot);

/* Closes the slot (its directory stays: cgroup_remove_worker removes it). */
void cgroup_slot_close(struct cgroup_slot *slot);

/* Empties and removes D/run-<worker> (for a worker that died). 0 when it is
 * gone or was never there, -1 otherwise. */
int cgroup_remove_worker(const struct cgroup_config *cfg, pid_t worker);

/* fork(), or clone() with the namespace flags, straight into the slot's
 * cgroup (clone3 with CLONE_INTO_CGROUP; SIGCHLD on exit). Like fork: the
 * child's pid, 0 in the child, -1 with errno. */
pid_t cgroup_clone(const struct cgroup_slot *slot, unsigned long flags);

#endif
