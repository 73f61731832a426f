/* sandbox_probe: the start-up probe. Before a worker serves a request, the
 * master runs one complete throw-away sandbox (python printing "ok" inside,
 * everything but the uploads), so that a kernel or a container that
 * refuses a step is known at start, with the fix, rather than at the
 * first request; and the probe fills the parts of struct sandbox_config
 * that come from the machine (python's prefix, pyexec's ids, whether a
 * fresh /proc can be mounted). */
#ifndef PYEXEC_SANDBOX_PROBE_H
#define PYEXEC_SANDBOX_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"

/* Fills cfg for python (its prefixes, python_dirs), the disk size, network, uid and gid
 * (memory_cgroup, etc_extra and hide are the caller's, and kept: start
 * from a zeroed cfg), then runs one complete throw-away sandbox (python printing "ok" inside,
 * everything but the uploads) in tmp_dir. 0 when it works; -1 with, in
 * err, one sentence that says which step failed, the errno, and the fix
 * (user namespaces disabled: "sysctl kernel.unprivileged_userns_clone=1";
 * Ubuntu's AppArmor restriction: "kernel.apparmor_restrict_unprivileged_userns=0
 * or an AppArmor profile that allows userns"; a /proc that cannot be mounted
 * fresh falls back to no /proc, with cfg->proc = 0 and a warning logged). */
int sandbox_probe(struct sandbox_config *cfg, const char *python, uint64_t disk_bytes,
		  int network, const char *tmp_dir, char *err, size_t errlen);

/* After sandbox_probe: another interpreter, for runs that ask for it.
 * Adds its prefixes to cfg->python_dirs and runs the probe's sandbox with
 * it. 0 when it works; -1 with the cause in err, and cfg as it was. */
int sandbox_probe_python(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
			 char *err, size_t errlen);

/* After sandbox_probe (which leaves run_uid and run_gid = uid and gid: runs
 * share pyexec's ids): sets run_uid and run_gid and runs the probe's
 * sandbox again with them (newuidmap and newgidmap must accept them). 0
 * when it works; -1 with the cause in err, and cfg as it was. */
int sandbox_probe_run_ids(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
			  uid_t run_uid, gid_t run_gid, char *err, size_t errlen);

#endif
