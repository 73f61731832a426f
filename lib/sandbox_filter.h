/* sandbox_filter: the seccomp filter the sandbox's payload loads last,
 * just before execve. A second wall, not the only one (the payload holds
 * no capability): it refuses, with EPERM, what reaches into other
 * processes, mounts, new namespaces, the kernel's larger attack surface
 * (bpf, io_uring, userfaultfd, ...), file watches, SysV IPC and host
 * administration; with ENOSYS clone3 (glibc then uses clone, whose
 * CLONE_NEW* flags are refused) and, without a memory cgroup,
 * memfd_create; ioctl's TIOCSTI and TIOCLINUX; personality changes;
 * sockets other than AF_UNIX, AF_INET and AF_INET6 (EAFNOSUPPORT); and it
 * kills a process that makes a system call of another architecture (x32,
 * i386). The full list is in sandbox_filter.c. */
#ifndef PYEXEC_SANDBOX_FILTER_H
#define PYEXEC_SANDBOX_FILTER_H

#include <linux/filter.h>
#include <stddef.h>

/* The filter, with memfd_create allowed (memfd_ok: runs are in a memory
 * cgroup, which counts a memfd's pages) or refused (memory is RLIMIT_AS,
 * which does not). Compiled the first time each variant is asked for and
 * kept until exit (the caller must not free it). NULL with errno and, in
 * err (errlen bytes), the sentence that says what failed. */
const struct sock_fprog *sandbox_filter_get(int memfd_ok, char *err, size_t errlen);

#endif
