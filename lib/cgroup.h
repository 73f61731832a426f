/* cgroup: holds each run in cgroups of its own, on cgroup v2 or v1.
 *
 * cgroup v2: a directory D delegated to pyexec (systemd's Delegate=yes, or
 * one an operator made and chowned to pyexec's user), pyexec's own cgroup
 * or an ancestor of it:
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
 * stay rlimits.
 *
 * cgroup v1 (a hybrid hierarchy: memory and pids bound to v1), in each of
 * the memory, pids and cpuacct hierarchies (memory is required):
 *
 *   I                 the instance: a directory pyexec's user owns, given
 *                     as cgroup = <dir in the memory hierarchy> (the same
 *                     path is used in the others where it is writable), or
 *                     <own cgroup>/pyexec/<master pid>, made by a master
 *                     started as root before it drops privileges (and
 *                     <own cgroup>/pyexec, kept, handed to the run user so
 *                     that the instance can remove I at exit); each
 *                     worker rests in I
 *   I/run-<worker>    as on v2, with memory.limit_in_bytes and
 *                     memory.memsw.limit_in_bytes (no swap) and pids.max.
 *                     v1 has no CLONE_INTO_CGROUP: the worker steps into
 *                     its run cgroups, clones, and steps back, so that a
 *                     run (or a spare sandbox) is born there; v1 has no
 *                     cgroup.kill either: every pid listed is killed until
 *                     none is.
 *
 *      master ── worker (in I) ──step in── clone ──step out──> I
 *                                            └── run (in I/run-<worker>)
 *
 * Either way the supervisor reads the run's CPU time from the cgroup (v2
 * cpu.stat usage_usec, v1 cpuacct.usage): every process of the run counts.
 * Every function here fails with errno set, and the setup with one sentence
 * in err. */
#ifndef PYEXEC_CGROUP_H
#define PYEXEC_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CGROUP_SUPERVISOR "supervisor"
#define CGROUP_RUN_PREFIX "run-"
#define CGROUP_V1_BASE "pyexec"  /* v1: <own cgroup>/pyexec/<master pid> */
#define CGROUP_KILL_WAIT_MS 2000   /* for a killed cgroup to empty */

/* The cgroup v1 hierarchies used, in order. */
enum { CGROUP_V1_MEMORY, CGROUP_V1_PIDS, CGROUP_V1_CPUACCT, CGROUP_V1_N };

struct cgroup_config {
	char path[PATH_MAX];    /* v2: D; v1: I in the memory hierarchy; "" = none */
	int version;            /* 2 or 1; 0 when no cgroup is used */
	int memory;             /* the memory controller holds runs */
	int pids;               /* the pids controller holds runs */
	int cpu;                /* the runs' CPU time can be read */
	char v1[CGROUP_V1_N][PATH_MAX]; /* v1: I in each hierarchy ("" = unused) */
	int made;               /* v1: made by cgroup_setup_root, removed at exit */
};

/* One worker's run cgroup. */
struct cgroup_slot {
	int fd;                 /* v2: D/run-<worker>; v1: I/run-<worker> in
	                         * the memory hierarchy (= run[0]); -1 = none */
	int version;
	int run[CGROUP_V1_N];   /* v1: I/run-<worker> per hierarchy; -1 = none */
	int home[CGROUP_V1_N];  /* v1: I per hierarchy, where the worker rests */
	int memory, pids, cpu;  /* copied from the config */
	uint64_t oom_kills;     /* OOM kills in the slot when the run began */
	uint64_t memory_max;    /* memory limit of the run, bytes (0 = none) */
	int64_t cpu_base_ns;    /* CPU time of the slot when the run began; -1 */
};

/* As root, before privileges are dropped to uid:gid: when want is "auto",
 * pyexec's own cgroup v2 offers no memory controller to uid, and a cgroup
 * v1 memory hierarchy is mounted, makes I in the memory, pids and cpuacct
 * hierarchies for uid, after removing those of instances that are gone.
 * 0 with cfg filled (cgroup_setup then keeps it); 1 when this does not
 * apply (cfg empty); -1 with a sentence in err. */
int cgroup_setup_root(struct cgroup_config *cfg, const char *want, uid_t uid, gid_t gid,
		      char *err, size_t errlen);

/* Finds D: want is "auto" (pyexec's own cgroup, from /proc/self/cgroup and
 * the cgroup2 mount in /proc/self/mountinfo) or a directory (which must
 * hold pyexec's own cgroup), or I: a directory in the cgroup v1 memory
 * hierarchy pyexec's user can write (it and its cgroup.procs). Checks that D is writable by the calling
 * user, moves the calling process into D/supervisor, enables the memory
 * and pids controllers D offers for its children, and removes run cgroups
 * a previous instance left. Call with no children, after privileges are
 * dropped. 0 with cfg filled; -1 with a sentence in err (cfg->path "").
 * With want "auto", a missing or undelegated cgroup is -1 too: the caller
 * logs it and goes on without. cfg must be zeroed or filled by
 * cgroup_setup_root, in which case this returns 0 at once. */
int cgroup_setup(struct cgroup_config *cfg, const char *want, char *err, size_t errlen);

/* The cgroup v2 directory of pid ("self" when 0) from /proc/<pid>/cgroup
 * and /proc/self/mountinfo, into out. 0, or -1 (ENOENT when there is no
 * cgroup v2 mount or line). */
int cgroup_of(pid_t pid, char *out, size_t len);

/* v1: removes the instance cgroup_setup_root made (the caller, when it is
 * in it, leaves it first). Nothing otherwise. */
void cgroup_teardown(const struct cgroup_config *cfg);

/* The cgroup v1 directory of pid ("self" when 0) in the hierarchy of the
 * controller ctrl ("memory"), into out. 0, or -1 (ENOENT when it is not
 * mounted). */
int cgroup_v1_of(pid_t pid, const char *ctrl, char *out, size_t len);

/* Creates (or reuses) the run cgroup(s) of worker and opens them into
 * slot; v1: moves the caller into I. 0 or -1. */
int cgroup_slot_open(const struct cgroup_config *cfg, pid_t worker, struct cgroup_slot *slot);

/* Before a run: sets the memory limit to memory bytes (0 = none), swap to
 * 0, (v2) the OOM killer to kill the whole cgroup, pids.max to pids (0 =
 * max), and records the OOM kill count and the CPU time so far. 0 or -1. */
int cgroup_slot_prepare(struct cgroup_slot *slot, uint64_t memory, unsigned pids);

/* 1 when the kernel's OOM killer killed in the slot since prepare, 0 when
 * not, -1 when it cannot say; 2 when the memory limit was hit on a kernel
 * that does not count OOM kills (cgroup v1 before Linux 4.13): a run
 * killed by SIGKILL then was the OOM killer's. */
int cgroup_slot_oom(const struct cgroup_slot *slot);

/* The CPU time (user + system) of every process in the slot since
 * prepare, in ns, or -1 when it cannot be read. */
int64_t cgroup_slot_cpu_ns(const struct cgroup_slot *slot);

/* After a run: kills whatever is left in the slot and waits (up to
 * CGROUP_KILL_WAIT_MS) until it is empty. 0, or -1 when it stays populated. */
int cgroup_slot_empty(const struct cgroup_slot *slot);

/* Closes the slot (its directory stays: cgroup_remove_worker removes it). */
void cgroup_slot_close(struct cgroup_slot *slot);

/* Empties and removes D/run-<worker> (for a worker that died). 0 when it is
 * gone or was never there, -1 otherwise. */
int cgroup_remove_worker(const struct cgroup_config *cfg, pid_t worker);

/* fork(), or clone() with the namespace flags, straight into the slot's
 * cgroup (v2: clone3 with CLONE_INTO_CGROUP; v1: from inside it; SIGCHLD on
 * exit; slot NULL: no cgroup). Like fork: the child's pid, 0 in the child,
 * -1 with errno. */
pid_t cgroup_clone(const struct cgroup_slot *slot, unsigned long flags);

/* Moves process pid (a child the caller did not clone itself, such as an
 * init the zygote forked) into the slot's cgroup, in every hierarchy of
 * it. 0, or -1 with errno. */
int cgroup_slot_attach(const struct cgroup_slot *slot, pid_t pid);

#endif
