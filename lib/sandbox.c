#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncsafe.h"
#include "cgroup.h"
#include "collect.h"
#include "log.h"
#include "run.h"
#include "sandbox.h"
#include "subid.h"
#include "util.h"
#include "workdir.h"

/* The new root: a tmpfs holding only mount points, directories and the few
 * files written into /etc. Read-only once set up. */
#define SANDBOX_ROOT_OPTS     "mode=0755,size=1m"
/* One inode of the disk tmpfs per this many bytes of it (at least
 * SANDBOX_INODES_MIN): empty files take no blocks, so without a cap on
 * inodes, "many files" would take kernel memory max_disk does not bound. */
#define SANDBOX_BYTES_PER_INODE 4096
#define SANDBOX_INODES_MIN    1024
#define SANDBOX_MSG_TEXT      200     /* a setup error sent by init */
#define SANDBOX_COPY_CHUNK    (1024 * 1024)
/* A mask over a directory of pyexec's own that a bind shows: an empty
 * tmpfs, read-only once the dependency entry (which may lie below it) is
 * bound; over a file, a read-only bind of an empty file made here. */
#define SANDBOX_MASK_OPTS     "mode=0755,size=64k,nr_inodes=64"
#define SANDBOX_MASK_FILE     ".mask"
/* Where the host's root waits in the new root, reachable by init alone,
 * until the request's dependency entry is bound (then it is detached). */
#define SANDBOX_OLD_ROOT      ".host"

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define SB_MOUNT_ATTR_RDONLY  0x00000001ULL
#define SB_MOUNT_ATTR_NOSUID  0x00000002ULL
#define SB_MOUNT_ATTR_NODEV   0x00000004ULL

/* The steps sandbox_probe gives advice for. */
enum sandbox_step {
	STEP_NONE,
	STEP_PREPARE,        /* before clone: the supervisor's own resources */
	STEP_CLONE,          /* clone(CLONE_NEWUSER...) */
	STEP_MAPS,           /* uid_map, gid_map, setgroups */
	STEP_MOUNT,          /* a mount inside the new namespaces */
	STEP_PROC,           /* the fresh /proc */
	STEP_SETUP,          /* anything else in init */
	STEP_HANDSHAKE,      /* init died or did not answer */
	STEP_UPLOADS,        /* copying the uploads into /work */
};

/* Supervisor <-> init, one SOCK_SEQPACKET message each. */
enum { MSG_HELLO = 1, MSG_MAPS, MSG_READY, MSG_ERROR, MSG_GO, MSG_REQUEST };

struct sandbox_msg {
	int type;
	int err;                     /* MSG_ERROR: errno */
	int step;                    /* MSG_ERROR: enum sandbox_step */
	char text[SANDBOX_MSG_TEXT]; /* MSG_ERROR: "cannot ..." */
};

/* MSG_REQUEST, after the struct sandbox_msg: the run's limits and the
 * number of its strings, then req.len bytes of NUL-ended strings: the
 * dependency entry ("" for none), the program's path, argv, envp. Its
 * SCM_RIGHTS carry stdin (when has_stdin), then stdout's and stderr's pipes. */
struct sandbox_req {
	struct run_limits lim;
	uint32_t argc, envc;
	uint32_t has_stdin;
	uint32_t len;
};

#define SANDBOX_REQ_MAX   (64 * 1024)  /* bytes of a request's strings */
#define SANDBOX_REQ_VEC   256          /* argv + envp entries */

/* Everything init needs before the request comes, prepared before clone:
 * after it, init only makes system calls (no malloc, no stdio), so the
 * strings are formatted here. */
struct init_args {
	const struct sandbox_config *cfg;
	int sock;                     /* init's end of the handshake */
	int status_w;                 /* the payload's wait status goes here */
	char root[PATH_MAX];          /* the new root's mount point on the host */
	char passwd[160];
	char group[96];
	char disk_opts[128];
	char dev_opts[64];
};

/* The filter each payload loads with one prctl: set from one of the two
 * variants (memfd_create refused or allowed) just before init is cloned,
 * so that each init holds the one made for its configuration. The
 * variants are compiled once per process (libseccomp allocates, and is
 * slow enough to matter per run) and live until exit. */
static struct sock_fprog sandbox_filter;
static struct sock_fprog sandbox_filters[2];   /* [1]: memfd_create allowed */

/* ---------------------------------------------------------------------- */
/* Init and payload: system calls and async-signal-safe functions only (no
 * malloc, no stdio): they start as a copy of the supervisor, whose libc
 * state they cannot trust. */

/* Tells the supervisor what failed and ends init. */
__attribute__((noreturn))
static void init_fail(const struct init_args *a, int step, const char *what,
		      const char *path, int err)
{
	struct sandbox_msg m;
	ssize_t w;

	memset(&m, 0, sizeof(m));
	m.type = MSG_ERROR;
	m.err = err;
	m.step = step;
	(void)asyncsafe_errmsg(m.text, sizeof(m.text), what, path, err);
	do
		w = send(a->sock, &m, sizeof(m), MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	_exit(1);
}

/* One message from the other side; its type, 0 at end of file, -1 on error. */
static int init_recv(int sock)
{
	struct sandbox_msg m;
	ssize_t n;

	do
		n = recv(sock, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return (int)n;
	if ((size_t)n != sizeof(m))
		return -1;
	return m.type;
}

/* One message without payload, either way. */
static int msg_send(int sock, int type)
{
	struct sandbox_msg m;
	ssize_t w;

	memset(&m, 0, sizeof(m));
	m.type = type;
	do
		w = send(sock, &m, sizeof(m), MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof(m) ? 0 : -1;
}

/* One message of iov's parts with nfd fds (SCM_RIGHTS; none when 0), either
 * way; the bytes sent, or -1. */
static ssize_t msg_send_fds(int sock, struct iovec *iov, size_t niov, const int *fds,
			    size_t nfd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 3)];
	struct msghdr mh;
	struct cmsghdr *c;
	ssize_t w;

	if (nfd > 3) {
		errno = EINVAL;
		return -1;
	}
	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = iov;
	mh.msg_iovlen = niov;
	if (nfd > 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfd);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfd);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfd);
	}
	do
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w;
}

/* A host path as a path relative to the new root (init's cwd). */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return path;
}

/* A host path as init reaches it between pivot_root and init_enter, under
 * the old root; 0, or -1 when it does not fit in len bytes. */
static int old_root_path(char *buf, size_t len, const char *host)
{
	size_t n = asyncsafe_cat(buf, len, 0, "/" SANDBOX_OLD_ROOT);

	return host[0] == '/' && asyncsafe_cat(buf, len, n, host) == n + strlen(host) ? 0 : -1;
}

static void init_mkdir(const struct init_args *a, const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		init_fail(a, STEP_SETUP, "create the directory", path, errno);
}

/* mkdir -p of a relative path in the new root. */
static void init_mkdir_p(const struct init_args *a, const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		init_fail(a, STEP_SETUP, "create the directory", path, ENAMETOOLONG);
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i < len; i++)
		if (buf[i] == '/') {
			buf[i] = '\0';
			init_mkdir(a, buf, 0755);
			buf[i] = '/';
		}
	init_mkdir(a, buf, 0755);
}

/* The parent directories of a relative path. */
static void init_mkdir_parents(const struct init_args *a, const char *path)
{
	char buf[PATH_MAX];
	char *slash;
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		init_fail(a, STEP_SETUP, "create the directory of", path, ENAMETOOLONG);
	memcpy(buf, path, len + 1);
	slash = strrchr(buf, '/');
	if (slash == NULL)
		return;
	*slash = '\0';
	init_mkdir_p(a, buf);
}

static void init_write_file(const struct init_args *a, const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		init_fail(a, STEP_SETUP, "create", path, errno);
	if (util_write_all(fd, text, len) < 0)
		init_fail(a, STEP_SETUP, "write", path, errno);
	(void)close(fd);
}

/* An empty file to bind a file over. */
static void init_touch(const struct init_args *a, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		init_fail(a, STEP_SETUP, "create", path, errno);
	(void)close(fd);
}

int sandbox_test_old_kernel;

/* Binds src at dst, read-only, nosuid, nodev; errors name shown. */
static void init_bind_ro_as(const struct init_args *a, const char *src, const char *dst,
			    const char *shown)
{
	unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
	struct statfs sf;

	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		init_fail(a, STEP_MOUNT, "bind-mount", shown, errno);
#ifdef SYS_mount_setattr
	if (!sandbox_test_old_kernel) {
		/* One call for the bind and every mount below it that MS_REC
		 * brought along (Linux 5.12). It only adds flags: those locked
		 * on the source stay as they are. */
		struct { uint64_t attr_set, attr_clr, propagation, userns_fd; } attr = {
			SB_MOUNT_ATTR_RDONLY | SB_MOUNT_ATTR_NOSUID | SB_MOUNT_ATTR_NODEV, 0, 0, 0
		};

		if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr,
			    sizeof(attr)) == 0)
			return;
		if (errno != ENOSYS)
			init_fail(a, STEP_MOUNT, "make read-only the bind mount of", shown, errno);
	}
#endif
	/* Before 5.12: a remount of the bind itself (mounts below it, rare
	 * under the paths bound here, stay as they are). It must keep the
	 * flags locked on the source mount (made in a more privileged
	 * namespace, such as noexec or an atime mode): dropping one is EPERM. */
	if (statfs(dst, &sf) < 0)
		init_fail(a, STEP_MOUNT, "examine the bind mount of", shown, errno);
	if ((sf.f_flags & ST_NOEXEC) != 0)
		flags |= MS_NOEXEC;
	if ((sf.f_flags & ST_NOATIME) != 0)
		flags |= MS_NOATIME;
	if ((sf.f_flags & ST_NODIRATIME) != 0)
		flags |= MS_NODIRATIME;
	if ((sf.f_flags & ST_RELATIME) != 0)
		flags |= MS_RELATIME;
	if (mount(NULL, dst, NULL, flags, NULL) < 0)
		init_fail(a, STEP_MOUNT, "make read-only the bind mount of", shown, errno);
}

/* Binds src (a host path) at dst, read-only, nosuid, nodev. */
static void init_bind_ro(const struct init_args *a, const char *src, const char *dst)
{
	init_bind_ro_as(a, src, dst, src);
}

/* A host path as it is on the host: the same symlink, a read-only bind of a
 * directory or of a regular file, or nothing when it does not exist. */
static void init_mirror(const struct init_args *a, const char *host)
{
	const char *dst = rel(host);
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(host, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return;
		init_fail(a, STEP_SETUP, "examine", host, errno);
	}
	if (S_ISLNK(st.st_mode)) {
		n = readlink(host, target, sizeof(target) - 1);
		if (n < 0)
			init_fail(a, STEP_SETUP, "read the link", host, errno);
		target[n] = '\0';
		init_mkdir_parents(a, dst);
		if (symlink(target, dst) < 0)
			init_fail(a, STEP_SETUP, "create the link", dst, errno);
	} else if (S_ISDIR(st.st_mode)) {
		init_mkdir_p(a, dst);
		init_bind_ro(a, host, dst);
	} else if (S_ISREG(st.st_mode)) {
		init_mkdir_parents(a, dst);
		init_touch(a, dst);
		init_bind_ro(a, host, dst);
	}
}

/* What Python and the packages a distribution ships for it read in /etc
 * (matplotlib its matplotlibrc, socket.getservbyname services and
 * protocols, tzlocal the time zone); nothing else of the host's /etc is
 * visible (no shadow, no host names, no private keys) but what the
 * operator adds (sandbox_etc). */
static const char *const etc_entries[] = {
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/alternatives", "/etc/localtime", "/etc/timezone", "/etc/mime.types",
	"/etc/fonts", "/etc/matplotlibrc", "/etc/services", "/etc/protocols",
	"/etc/ssl/certs", "/etc/ssl/openssl.cnf",
	"/etc/pki/tls/certs", "/etc/pki/tls/openssl.cnf", "/etc/pki/ca-trust/extracted",
};

/* Masked wherever a bind shows them, besides the configuration's own
 * paths (sandbox_config.hide): where pyexec's configuration lives when
 * installed under a prefix inside /usr. */
static const char *const hidden_paths[] = { "/usr/local/etc", SYSCONFDIR "/pyexec" };

/* The system's directories bound read-only besides /usr (mirrored: most
 * are links into /usr). */
static const char *const system_dirs[] = {
	"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
};

/* The next path of a list (sandbox_config.etc_extra, .hide), NULL at its end. */
static const char *list_next(const char *list, const char *cur)
{
	const char *p = cur == NULL ? list : cur + strlen(cur) + 1;

	return *p != '\0' ? p : NULL;
}

/* Whether path is dir or below it. */
static int path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void init_etc(const struct init_args *a)
{
	char buf[4096] __attribute__((aligned(8)));
	char host[PATH_MAX];
	long n;
	int dfd;

	init_mkdir(a, "etc", 0755);
	for (size_t i = 0; i < sizeof(etc_entries) / sizeof(etc_entries[0]); i++)
		init_mirror(a, etc_entries[i]);
	for (const char *p = list_next(a->cfg->etc_extra, NULL); p != NULL;
	     p = list_next(a->cfg->etc_extra, p))
		init_mirror(a, p);
	if (a->cfg->network)
		init_mirror(a, "/etc/resolv.conf");
	/* /etc/python3, /etc/python3.11, ...: Debian's sitecustomize and the like */
	dfd = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		init_fail(a, STEP_SETUP, "open", "/etc", errno);
	while ((n = getdents64(dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(void *)(buf + off);
			size_t len = 0;

			off += de->d_reclen;
			if (strncmp(de->d_name, "python3", 7) != 0)
				continue;
			len = asyncsafe_cat(host, sizeof(host), len, "/etc/");
			(void)asyncsafe_cat(host, sizeof(host), len, de->d_name);
			init_mirror(a, host);
		}
	}
	if (n < 0)
		init_fail(a, STEP_SETUP, "list", "/etc", errno);
	(void)close(dfd);
	init_write_file(a, "etc/passwd", a->passwd);
	init_write_file(a, "etc/group", a->group);
	init_write_file(a, "etc/hostname", SANDBOX_HOSTNAME "\n");
	init_write_file(a, "etc/hosts", "127.0.0.1 localhost " SANDBOX_HOSTNAME "\n::1 localhost\n");
}

/* The host's devices the program may use; nothing else is in /dev. */
static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom" };

static void init_loopback_up(const struct init_args *a)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		init_fail(a, STEP_SETUP, "open a socket to configure", "lo", errno);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		init_fail(a, STEP_SETUP, "read the flags of", "lo", errno);
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		init_fail(a, STEP_SETUP, "bring up", "lo", errno);
	close(fd);
}

static void init_dev(const struct init_args *a)
{
	static const char *const links[][2] = {
		{ "/proc/self/fd", "dev/fd" },
		{ "/proc/self/fd/0", "dev/stdin" },
		{ "/proc/self/fd/1", "dev/stdout" },
		{ "/proc/self/fd/2", "dev/stderr" },
	};

	init_mkdir(a, "dev", 0755);
	/* nodev on the tmpfs is no obstacle: each node is a bind mount of the
	 * host's, carrying the flags of the host's /dev. */
	if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, a->dev_opts) < 0)
		init_fail(a, STEP_MOUNT, "mount a tmpfs on", "/dev", errno);
	for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		char host[32], dst[32];
		size_t n;

		n = asyncsafe_cat(host, sizeof(host), 0, "/dev/");
		(void)asyncsafe_cat(host, sizeof(host), n, dev_nodes[i]);
		n = asyncsafe_cat(dst, sizeof(dst), 0, "dev/");
		(void)asyncsafe_cat(dst, sizeof(dst), n, dev_nodes[i]);
		init_touch(a, dst);
		if (mount(host, dst, NULL, MS_BIND, NULL) < 0)
			init_fail(a, STEP_MOUNT, "bind-mount", host, errno);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0)
			init_fail(a, STEP_SETUP, "create the link", links[i][1], errno);
	init_mkdir(a, "dev/shm", 0755);
	if (mount(".disk/shm", "dev/shm", NULL, MS_BIND, NULL) < 0)
		init_fail(a, STEP_MOUNT, "bind-mount the disk on", "/dev/shm", errno);
	if (mount(NULL, "dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
		  MS_NOEXEC, NULL) < 0)
		init_fail(a, STEP_MOUNT, "make read-only", "/dev", errno);
}

/* One tmpfs of max_disk bytes behind /work, /tmp and /dev/shm: together they
 * cannot hold more, and a full disk is the program's ENOSPC. */
static void init_disk(const struct init_args *a)
{
	init_mkdir(a, ".disk", 0700);
	if (mount("tmpfs", ".disk", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, a->disk_opts) < 0)
		init_fail(a, STEP_MOUNT, "mount the disk tmpfs on", a->root, errno);
	init_mkdir(a, ".disk/work", 0755);
	init_mkdir(a, ".disk/tmp", 0755);
	init_mkdir(a, ".disk/shm", 0755);
	if (chmod(".disk/tmp", 01777) < 0 || chmod(".disk/shm", 01777) < 0)
		init_fail(a, STEP_SETUP, "set the mode of", "/tmp", errno);
	/* A run with ids of its own writes where the worker copies the uploads
	 * (no one else sees this disk). */
	if (a->cfg->run_uid != a->cfg->uid && chmod(".disk/work", 0777) < 0)
		init_fail(a, STEP_SETUP, "set the mode of", SANDBOX_WORK, errno);
	init_mkdir(a, "work", 0755);
	init_mkdir(a, "tmp", 0755);
	if (mount(".disk/work", "work", NULL, MS_BIND, NULL) < 0)
		init_fail(a, STEP_MOUNT, "bind-mount the disk on", SANDBOX_WORK, errno);
	if (mount(".disk/tmp", "tmp", NULL, MS_BIND, NULL) < 0)
		init_fail(a, STEP_MOUNT, "bind-mount the disk on", "/tmp", errno);
}

static void init_proc(const struct init_args *a)
{
	/* Read-only in the fresh /proc, as bubblewrap does: kernel settings
	 * (writable by a uid 0 mapped to itself even without capabilities). */
	static const char *const ro[] = { "proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus" };

	init_mkdir(a, "proc", 0555);
	if (!a->cfg->proc)
		return;
	if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		init_fail(a, STEP_PROC, "mount a fresh", "/proc", errno);
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		struct stat st;

		if (lstat(ro[i], &st) == 0)
			init_bind_ro(a, ro[i], ro[i]);
	}
}

/* Whether host, a path to mask, shows in the new root: below /usr, a
 * system directory, python's prefix or venv, or a mirrored entry of /etc.
 * Never what python's own binds lie below. */
static int mask_applies(const struct sandbox_config *cfg, const char *host)
{
	int shown = path_under(host, "/usr") && strcmp(host, "/usr") != 0;

	for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
		shown |= path_under(host, system_dirs[i]) && strcmp(host, system_dirs[i]) != 0;
	for (size_t i = 0; i < sizeof(etc_entries) / sizeof(etc_entries[0]); i++)
		shown |= path_under(host, etc_entries[i]);
	for (const char *p = list_next(cfg->etc_extra, NULL); p != NULL;
	     p = list_next(cfg->etc_extra, p))
		shown |= path_under(host, p);
	shown |= path_under(host, cfg->python_prefix) || path_under(host, cfg->python_venv);
	return shown && !path_under(cfg->python_prefix, host) &&
	       !path_under(cfg->python_venv, host);
}

/* The next path to mask (hidden_paths, then cfg->hide), NULL at the end;
 * *i starts at 0. */
static const char *mask_next(const struct sandbox_config *cfg, size_t *i, const char **cur)
{
	const size_t nfixed = sizeof(hidden_paths) / sizeof(hidden_paths[0]);

	if (*i < nfixed)
		return hidden_paths[(*i)++];
	*cur = list_next(cfg->hide, *cur);
	return *cur;
}

/* Masks one path of pyexec's own where the new root shows it (seal 0),
 * or makes its mask read-only (seal 1: a directory's tmpfs). */
static void init_mask(const struct init_args *a, const char *host, int seal)
{
	const char *dst = rel(host);
	char buf[PATH_MAX];
	struct stat st;

	if (!mask_applies(a->cfg, host) || strlen(dst) >= sizeof(buf))
		return;
	/* Each component as it is in the new root, none a link: one could
	 * lead out of it, and a link shows nothing but its target's path. */
	memcpy(buf, dst, strlen(dst) + 1);
	for (char *slash = buf;; slash++) {
		slash = strchr(slash, '/');
		if (slash != NULL)
			*slash = '\0';
		if (lstat(buf, &st) < 0) {
			if (errno == ENOENT || errno == ENOTDIR || errno == EACCES)
				return;     /* not there, or not for pyexec's user either */
			init_fail(a, STEP_SETUP, "examine", host, errno);
		}
		if (S_ISLNK(st.st_mode))
			return;
		if (slash == NULL)
			break;
		*slash = '/';
	}
	if (!S_ISDIR(st.st_mode)) {
		if (!seal)
			init_bind_ro_as(a, SANDBOX_MASK_FILE, dst, host);
		return;
	}
	if (seal) {
		if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
			  MS_NODEV | MS_NOEXEC, NULL) < 0)
			init_fail(a, STEP_MOUNT, "make read-only the mask of", host, errno);
	} else if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			 SANDBOX_MASK_OPTS) < 0) {
		init_fail(a, STEP_MOUNT, "mask", host, errno);
	}
}

/* pyexec's own files out of sight: after every bind of the system. */
static void init_masks(const struct init_args *a)
{
	const char *cur = NULL, *host;
	size_t i = 0;

	init_touch(a, SANDBOX_MASK_FILE);
	while ((host = mask_next(a->cfg, &i, &cur)) != NULL)
		init_mask(a, host, 0);
	if (unlink(SANDBOX_MASK_FILE) < 0)
		init_fail(a, STEP_SETUP, "remove", SANDBOX_MASK_FILE, errno);
}

/* The masks' tmpfs read-only, once the dependency entry is bound. */
static void init_masks_seal(const struct init_args *a)
{
	const char *cur = NULL, *host;
	size_t i = 0;

	while ((host = mask_next(a->cfg, &i, &cur)) != NULL)
		init_mask(a, host, 1);
}

/* Everything that does not depend on the request, up to pivot_root: the
 * host's root stays reachable at /.host (for init alone) until init_enter.
 * Returns /work's fd. */
static int init_setup(const struct init_args *a)
{
	const struct sandbox_config *cfg = a->cfg;
	int wfd;

	/* Nothing mounted from here on may reach the host's mount table. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		init_fail(a, STEP_MOUNT, "make the mounts private", NULL, errno);
	if (mount("tmpfs", a->root, "tmpfs", MS_NOSUID | MS_NODEV, SANDBOX_ROOT_OPTS) < 0)
		init_fail(a, STEP_MOUNT, "mount a tmpfs on", a->root, errno);
	if (chdir(a->root) < 0)
		init_fail(a, STEP_SETUP, "change directory to", a->root, errno);

	init_mkdir(a, "usr", 0755);
	init_bind_ro(a, "/usr", "usr");
	for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
		init_mirror(a, system_dirs[i]);
	init_etc(a);
	init_disk(a);
	/* After /tmp: a path below /tmp then shows through it. */
	if (cfg->python_prefix[0] != '\0') {
		init_mkdir_p(a, rel(cfg->python_prefix));
		init_bind_ro(a, cfg->python_prefix, rel(cfg->python_prefix));
	}
	if (cfg->python_venv[0] != '\0') {
		init_mkdir_p(a, rel(cfg->python_venv));
		init_bind_ro(a, cfg->python_venv, rel(cfg->python_venv));
	}
	init_dev(a);
	init_masks(a);
	/* The binds hold the disk tmpfs; its own mount point goes away. */
	if (umount2(".disk", MNT_DETACH) < 0)
		init_fail(a, STEP_MOUNT, "unmount", ".disk", errno);
	if (rmdir(".disk") < 0)
		init_fail(a, STEP_SETUP, "remove", ".disk", errno);
	/* Before pivot_root: the kernel allows a fresh proc only while a
	 * fully visible one is in the mount namespace. */
	init_proc(a);
	if (sethostname(SANDBOX_HOSTNAME, strlen(SANDBOX_HOSTNAME)) < 0)
		init_fail(a, STEP_SETUP, "set the host name", NULL, errno);
	/* A network namespace of its own has a loopback, but down: the
	 * program's own servers on 127.0.0.1 and ::1 should work. */
	if (!a->cfg->network)
		init_loopback_up(a);

	wfd = open("work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wfd < 0)
		init_fail(a, STEP_SETUP, "open", SANDBOX_WORK, errno);
	init_mkdir(a, SANDBOX_OLD_ROOT, 0700);
	if (syscall(SYS_pivot_root, ".", SANDBOX_OLD_ROOT) < 0)
		init_fail(a, STEP_MOUNT, "pivot_root to", a->root, errno);
	if (chdir("/") < 0)
		init_fail(a, STEP_SETUP, "change directory to", "/", errno);
	/* The new root's mount point is a plain directory again: nothing of
	 * a waiting sandbox stays in work_root (the supervisor removes it if
	 * this fails). */
	{
		char host[PATH_MAX + sizeof(SANDBOX_OLD_ROOT) + 1];

		if (old_root_path(host, sizeof(host), a->root) == 0)
			(void)rmdir(host);
	}
	return wfd;
}

/* The run's request: its strings into init_req_strs, its fds and the
 * payload's spec into r. A malformed request ends init. */
struct init_req {
	struct run_spec spec;
	const char *deps_path;        /* NULL: none */
	int stdin_fd, out_w, err_w;
	char *vec[SANDBOX_REQ_VEC + 2];
};

static char init_req_strs[SANDBOX_REQ_MAX];

static void init_recv_request(const struct init_args *a, struct init_req *r)
{
	struct sandbox_msg m;
	struct sandbox_req q;
	struct iovec iov[3] = {
		{ &m, sizeof(m) }, { &q, sizeof(q) }, { init_req_strs, sizeof(init_req_strs) }
	};
	char cbuf[CMSG_SPACE(sizeof(int) * 3)];
	int fds[3] = { -1, -1, -1 };
	size_t nfd = 0, off = 0, want;
	struct msghdr mh;
	struct cmsghdr *c;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = iov;
	mh.msg_iovlen = 3;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(a->sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		_exit(1);             /* the supervisor let this sandbox go */
	if (n < 0)
		init_fail(a, STEP_HANDSHAKE, "receive the run's request", NULL, errno);
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			for (size_t o = 0; o + sizeof(int) <= c->cmsg_len - CMSG_LEN(0) &&
			     nfd < 3; o += sizeof(int))
				memcpy(&fds[nfd++], CMSG_DATA(c) + o, sizeof(int));
	if ((size_t)n < sizeof(m) + sizeof(q) || m.type != MSG_REQUEST ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
	    q.len != (size_t)n - sizeof(m) - sizeof(q) || q.argc == 0 ||
	    q.argc > SANDBOX_REQ_VEC || q.envc > SANDBOX_REQ_VEC - q.argc ||
	    nfd != (q.has_stdin ? 3U : 2U))
		init_fail(a, STEP_HANDSHAKE, "read the run's request", NULL, EPROTO);
	/* the strings, each NUL-ended and inside what was received */
	want = 2 + (size_t)q.argc + (size_t)q.envc;
	for (size_t i = 0, k = 0; i < want; i++) {
		const char *str = init_req_strs + off;
		const char *nul = off < q.len ? memchr(str, '\0', q.len - off) : NULL;

		if (nul == NULL)
			init_fail(a, STEP_HANDSHAKE, "read the run's request", NULL, EPROTO);
		off = (size_t)(nul - init_req_strs) + 1;
		if (i == 0)
			r->deps_path = str[0] != '\0' ? str : NULL;
		else if (i == 1)
			r->spec.path = str;
		else {
			r->vec[k++] = (char *)str;
			if (i == 1 + (size_t)q.argc)
				r->vec[k++] = NULL;
		}
	}
	r->vec[q.argc + q.envc + 1] = NULL;
	r->spec.argv = r->vec;
	r->spec.envp = r->vec + q.argc + 1;
	r->spec.lim = q.lim;
	r->spec.stdin_fd = -1;
	r->spec.watch_fd = -1;
	r->stdin_fd = q.has_stdin ? fds[0] : -1;
	r->out_w = fds[nfd - 2];
	r->err_w = fds[nfd - 1];
}

/* The request's part of the setup: its dependency entry bound read-only at
 * its own path, the host's root detached, the new root made read-only.
 * Then /work's fd tells the supervisor the sandbox is ready. */
static void init_enter(const struct init_args *a, const struct init_req *r, int wfd)
{
	if (r->deps_path != NULL) {
		char src[PATH_MAX];

		if (old_root_path(src, sizeof(src), r->deps_path) < 0)
			init_fail(a, STEP_SETUP, "bind-mount", r->deps_path, ENAMETOOLONG);
		init_mkdir_p(a, rel(r->deps_path));
		init_bind_ro_as(a, src, rel(r->deps_path), r->deps_path);
	}
	init_masks_seal(a);
	/* The host's root is gone for good. */
	if (umount2(SANDBOX_OLD_ROOT, MNT_DETACH) < 0)
		init_fail(a, STEP_MOUNT, "detach the old root", NULL, errno);
	if (rmdir(SANDBOX_OLD_ROOT) < 0)
		init_fail(a, STEP_SETUP, "remove", "/" SANDBOX_OLD_ROOT, errno);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
		  NULL) < 0)
		init_fail(a, STEP_MOUNT, "make the new root read-only", NULL, errno);

	/* Setup done: /work's fd says so. */
	{
		struct sandbox_msg m;
		struct iovec iov = { &m, sizeof(m) };

		memset(&m, 0, sizeof(m));
		m.type = MSG_READY;
		if (msg_send_fds(a->sock, &iov, 1, &wfd, 1) < 0)
			_exit(1);
	}
	(void)close(wfd);
}

/* Capabilities: none left in any set, and none to be had again by an
 * execve as uid 0 (which is what pyexec's uid is inside when it runs as
 * root): the bounding set is emptied and root's special treatment locked
 * off. */
static void payload_drop_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
		  SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
		  SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED, 0, 0, 0) < 0)
		asyncsafe_fail(STDERR_FILENO, "set the secure bits", NULL, errno);
	for (unsigned long cap = 0;; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			/* EINVAL past the kernel's last capability */
			if (errno == EINVAL && cap > 0)
				break;
			asyncsafe_fail(STDERR_FILENO, "drop the capability bounding set", NULL, errno);
		}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		asyncsafe_fail(STDERR_FILENO, "clear the ambient capabilities", NULL, errno);
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		asyncsafe_fail(STDERR_FILENO, "drop the capabilities", NULL, errno);
}

__attribute__((noreturn))
static void payload_main(const struct init_args *a, const struct init_req *r)
{
	const struct sandbox_config *cfg = a->cfg;
	struct run_spec copy = r->spec;

	copy.cwd = SANDBOX_WORK;
	run_child_setup(&copy, r->stdin_fd, r->out_w, r->err_w, 1, 1);
	/* The run's own uid and gid, with no supplementary group: per-user
	 * limits and file permissions part it from pyexec and other runs. */
	if (cfg->run_uid != cfg->uid &&
	    (setgroups(0, NULL) < 0 || setresgid(cfg->run_gid, cfg->run_gid, cfg->run_gid) < 0 ||
	     setresuid(cfg->run_uid, cfg->run_uid, cfg->run_uid) < 0))
		asyncsafe_fail(STDERR_FILENO, "take the run's user and group", NULL, errno);
	payload_drop_caps();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		asyncsafe_fail(STDERR_FILENO, "set no_new_privs", NULL, errno);
	/* Last: after it, nothing here may need a refused call. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sandbox_filter, 0, 0) < 0)
		asyncsafe_fail(STDERR_FILENO, "load the seccomp filter", NULL, errno);
	run_child_exec(&copy);
}

/* What a run with ids of its own made in /work becomes pyexec's, so that
 * the supervisor can collect it whatever its mode (tempfile makes 0600
 * files). Depth as deep as collect searches; nothing is followed. Uploads
 * the run left alone are pyexec's already and keep their times. */
static void init_give_back(const struct init_args *a, int dfd, unsigned depth)
{
	char buf[2048] __attribute__((aligned(8)));
	long n;

	while ((n = getdents64(dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(void *)(buf + off);
			struct stat st;
			int sub;

			off += de->d_reclen;
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			/* One that stays the run's is what collect cannot read,
			 * and says so. */
			if (st.st_uid == a->cfg->run_uid &&
			    fchownat(dfd, de->d_name, a->cfg->uid, a->cfg->gid,
				     AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (!S_ISDIR(st.st_mode) || depth >= COLLECT_DEPTH_MAX)
				continue;
			sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				init_give_back(a, sub, depth + 1);
				(void)close(sub);
			}
		}
	}
}

__attribute__((noreturn))
static void init_main(const struct init_args *a)
{
	const int keep[] = { a->sock, a->status_w };
	struct init_req r;
	mode_t umask_was;
	int status = 0, type, wfd;
	pid_t payload, r_pid;

	/* The supervisor's death ends the sandbox. Had it died before this
	 * line, its end of the socket is closed and the first recv says so. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* A worker that dropped root is not dumpable, nor is its clone: then
	 * /proc/<init>/uid_map belongs to root and the worker cannot write it.
	 * Undone once the maps are written, so that the program cannot look
	 * into init through /proc/1. */
	(void)prctl(PR_SET_DUMPABLE, 1);
	/* Not the worker's sockets (its listener, a client's connection), nor
	 * its directories. */
	asyncsafe_close_except(keep, sizeof(keep) / sizeof(keep[0]));
	util_title_set("sandbox (spare)");
	if (msg_send(a->sock, MSG_HELLO) < 0 || init_recv(a->sock) != MSG_MAPS)
		_exit(1);
	(void)prctl(PR_SET_DUMPABLE, 0);
	umask_was = umask(022);
	wfd = init_setup(a);
	/* Made ahead of its request, a sandbox waits here. */
	memset(&r, 0, sizeof(r));
	init_recv_request(a, &r);
	util_title_set("sandbox");
	init_enter(a, &r, wfd);
	type = init_recv(a->sock);
	if (type != MSG_GO)
		_exit(1);
	(void)close(a->sock);
	(void)umask(umask_was);

	payload = fork();
	if (payload == 0)
		payload_main(a, &r);
	if (payload < 0) {
		asyncsafe_say(r.err_w, "start the program", NULL, errno);
		status = W_EXITCODE(127, 0);
	}
	if (r.stdin_fd >= 0)
		(void)close(r.stdin_fd);
	(void)close(r.out_w);
	(void)close(r.err_w);
	/* Orphans of the program come here; they are reaped on the way. */
	while (payload > 0) {
		r_pid = waitpid(-1, &status, __WALL);
		if (r_pid == payload)
			break;
		if (r_pid < 0 && errno != EINTR) {
			status = W_EXITCODE(127, 0);
			break;
		}
	}
	/* When the program ends, so does every process it left. init kills
	 * and reaps them itself rather than leave them to the namespace's end:
	 * the kernel reaps those without accounting, and the CPU they burnt
	 * would be missing from the run's (X-CPU-Time). A process that will
	 * not die keeps init here until the supervisor's deadline kills it. */
	(void)kill(-1, SIGKILL);
	while ((r_pid = waitpid(-1, NULL, __WALL)) > 0 || (r_pid < 0 && errno == EINTR))
		;
	if (a->cfg->run_uid != a->cfg->uid) {
		/* The program and everything it left are gone: nothing races
		 * this walk. */
		int w = open(SANDBOX_WORK, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (w >= 0) {
			init_give_back(a, w, 0);
			(void)close(w);
		}
	}
	(void)util_write_all(a->status_w, &status, sizeof(status));
	_exit(0);
}

/* ---------------------------------------------------------------------- */
/* The supervisor's side. */

static void run_error(struct sandbox_run *run, int step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void run_error(struct sandbox_run *run, int step, const char *fmt, ...)
{
	va_list ap;

	if (run->error[0] != '\0')
		return;
	run->failed_step = step;
	run->failed_errno = errno;
	va_start(ap, fmt);
	vsnprintf(run->error, sizeof(run->error), fmt, ap);
	va_end(ap);
}

/* Refused with EPERM (SPEC §6, and a few more):
 *   ptrace and the like: ptrace, process_vm_readv/writev, pidfd_getfd,
 *     process_madvise, kcmp (reach into other processes)
 *   the mount family: mount, umount2, pivot_root, chroot, move_mount,
 *     open_tree, fsopen, fsmount, fspick, mount_setattr
 *   namespaces: unshare, setns (and clone with a CLONE_NEW* flag, below)
 *   kernel attack surface: bpf, perf_event_open, userfaultfd, io_uring_*,
 *     keyctl, add_key, request_key, open_by_handle_at, name_to_handle_at,
 *     lookup_dcookie, uselib, vhangup, modify_ldt, memfd_secret
 *   watching files: inotify_init, inotify_init1, fanotify_init (the
 *     system's files are the host's inodes: a watch on them would tell
 *     which a concurrent run opens)
 *   SysV IPC (not bounded by max_disk): shm*, msg*, sem*
 *   host administration: kexec_*, *_module, reboot, swapon/off, acct,
 *     quotactl, syslog, settimeofday, clock_settime, clock_adjtime, adjtimex,
 *     iopl, ioperm, migrate_pages and move_pages (which act on other
 *     processes' memory)
 * Names this libseccomp does not know are skipped: the payload holds no
 * capability, so this filter is a second wall, not the only one. */
static const char *const seccomp_eperm[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"process_madvise", "kcmp",
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
	"fsopen", "fsmount", "fspick", "mount_setattr", "open_tree_attr",
	"unshare", "setns",
	"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
	"io_uring_register", "keyctl", "add_key", "request_key",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "uselib", "vhangup",
	"modify_ldt", "memfd_secret",
	"inotify_init", "inotify_init1", "fanotify_init",
	"shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
	"semget", "semop", "semtimedop", "semctl",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
	"migrate_pages", "move_pages",
};

static int filter_rule(struct sandbox_run *run, scmp_filter_ctx ctx, uint32_t action,
		       int nr, unsigned n, const struct scmp_arg_cmp *cmp, const char *name)
{
	int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);

	if (rc < 0) {
		errno = -rc;
		run_error(run, STEP_PREPARE, "cannot add the seccomp rule for %s: %s", name,
			  strerror(-rc));
		return -1;
	}
	return 0;
}

/* personality(2) takes an unsigned int: 0xffffffff asks for the current
 * persona, PER_LINUX (0) is what every process has. Any other value sets
 * one (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) and is refused. Such a
 * value has a bit set next to a clear one, reading the 32 bits as a ring:
 * one rule per bit i, "bit i set and bit i+1 clear", covers all of them
 * (libseccomp compares each argument once per rule). */
static int filter_personality(struct sandbox_run *run, scmp_filter_ctx ctx)
{
	int nr = seccomp_syscall_resolve_name("personality");

	if (nr == __NR_SCMP_ERROR || nr < 0)
		return 0;
	for (unsigned i = 0; i < 32; i++) {
		uint64_t bit = 1ULL << i, next = 1ULL << ((i + 1) % 32);
		struct scmp_arg_cmp cmp = { 0, SCMP_CMP_MASKED_EQ, bit | next, bit };

		if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "personality") < 0)
			return -1;
	}
	return 0;
}

static int filter_rules(struct sandbox_run *run, scmp_filter_ctx ctx, int memfd_ok)
{
	static const unsigned long clone_new[] = {
		CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
		CLONE_NEWNET, CLONE_NEWCGROUP,
	};
	/* clone(flags, ...) on x86-64 and arm64; s390 has the stack first */
#if defined(__s390__) || defined(__s390x__)
	const unsigned clone_flags_arg = 1;
#else
	const unsigned clone_flags_arg = 0;
#endif
	struct scmp_arg_cmp cmp;
	int nr;

	for (size_t i = 0; i < sizeof(seccomp_eperm) / sizeof(seccomp_eperm[0]); i++) {
		nr = seccomp_syscall_resolve_name(seccomp_eperm[i]);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue;
		if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EPERM), nr, 0, NULL, seccomp_eperm[i]) < 0)
			return -1;
	}
	nr = seccomp_syscall_resolve_name("clone");
	for (size_t i = 0; i < sizeof(clone_new) / sizeof(clone_new[0]); i++) {
		cmp = (struct scmp_arg_cmp){ clone_flags_arg, SCMP_CMP_MASKED_EQ,
					     clone_new[i], clone_new[i] };
		if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "clone") < 0)
			return -1;
	}
	/* clone3 takes its flags in memory, out of the filter's sight: ENOSYS
	 * makes glibc fall back to clone. */
	nr = seccomp_syscall_resolve_name("clone3");
#ifdef __NR_clone3
	if (nr == __NR_SCMP_ERROR)
		nr = __NR_clone3;
#endif
	if (nr != __NR_SCMP_ERROR && nr >= 0 &&
	    filter_rule(run, ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0, NULL, "clone3") < 0)
		return -1;
	/* Without a memory cgroup, memory is bounded per process by RLIMIT_AS,
	 * which does not count the pages of a memfd filled with write(2): a
	 * run could hold gigabytes in a few of them. ENOSYS, as on a kernel
	 * without memfds, which is what callers fall back from. */
	nr = seccomp_syscall_resolve_name("memfd_create");
	if (!memfd_ok && nr != __NR_SCMP_ERROR && nr >= 0 &&
	    filter_rule(run, ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0, NULL, "memfd_create") < 0)
		return -1;
	if (filter_personality(run, ctx) < 0)
		return -1;
	/* The command is an unsigned int: high bits set must not slip by. */
	nr = seccomp_syscall_resolve_name("ioctl");
	cmp = (struct scmp_arg_cmp){ 1, SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCSTI };
	if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "ioctl") < 0)
		return -1;
	cmp = (struct scmp_arg_cmp){ 1, SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCLINUX };
	if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp, "ioctl") < 0)
		return -1;
	/* Only AF_UNIX (1), AF_INET (2) and AF_INET6 (10). libseccomp takes
	 * one comparison per argument and rule, so the others are refused as
	 * 0, 3..9 and >= 11 (which also catches garbage in the high bits). */
	for (int which = 0; which < 2; which++) {
		const char *name = which == 0 ? "socket" : "socketpair";

		nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue;
		for (uint64_t af = 0; af < AF_INET6; af++) {
			if (af == AF_UNIX || af == AF_INET)
				continue;
			cmp = (struct scmp_arg_cmp){ 0, SCMP_CMP_EQ, af, 0 };
			if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1, &cmp, name) < 0)
				return -1;
		}
		cmp = (struct scmp_arg_cmp){ 0, SCMP_CMP_GT, AF_INET6, 0 };
		if (filter_rule(run, ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1, &cmp, name) < 0)
			return -1;
	}
	return 0;
}

/* Makes sandbox_filter the variant for cfg (memfd_create allowed only
 * with a memory cgroup), compiling it the first time. */
static int filter_build(struct sandbox_run *run, const struct sandbox_config *cfg)
{
	int memfd_ok = cfg->memory_cgroup != 0;
	struct sock_fprog *prog = &sandbox_filters[memfd_ok];
	struct sock_filter *insns = NULL;
	scmp_filter_ctx ctx;
	off_t size;
	int fd = -1, rc;

	if (prog->filter != NULL) {
		sandbox_filter = *prog;
		return 0;
	}
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		errno = ENOMEM;
		run_error(run, STEP_PREPARE, "cannot create the seccomp filter");
		return -1;
	}
	/* x32 and i386 system calls would go around every rule. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 &&
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL)) < 0) {
		errno = -rc;
		run_error(run, STEP_PREPARE, "cannot set the seccomp filter's action for "
			  "foreign architectures: %s", strerror(-rc));
		goto fail;
	}
	/* Every system call of the program runs the filter: a binary tree of
	 * syscall numbers rather than a list (libseccomp 2.5; older ones keep
	 * the list, which is only slower). */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (filter_rules(run, ctx, memfd_ok) < 0)
		goto fail;
	fd = memfd_create("pyexec-seccomp", MFD_CLOEXEC);
	if (fd < 0 || (rc = seccomp_export_bpf(ctx, fd)) < 0) {
		if (fd >= 0)
			errno = -rc;
		run_error(run, STEP_PREPARE, "cannot compile the seccomp filter: %s",
			  strerror(errno));
		goto fail;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(*insns) != 0 ||
	    size / (off_t)sizeof(*insns) > BPF_MAXINSNS) {
		errno = EINVAL;
		run_error(run, STEP_PREPARE, "the seccomp filter has a bad size (%lld bytes)",
			  (long long)size);
		goto fail;
	}
	insns = malloc((size_t)size);
	if (insns == NULL || pread(fd, insns, (size_t)size, 0) != size) {
		if (insns != NULL)
			errno = EIO;
		run_error(run, STEP_PREPARE, "cannot read the seccomp filter: %s", strerror(errno));
		goto fail;
	}
	(void)close(fd);
	seccomp_release(ctx);
	prog->len = (unsigned short)(size / (off_t)sizeof(*insns));
	prog->filter = insns;
	sandbox_filter = *prog;
	return 0;
fail:
	rc = errno;
	free(insns);
	if (fd >= 0)
		(void)close(fd);
	seccomp_release(ctx);
	errno = rc;
	return -1;
}

static int write_proc_file(struct sandbox_run *run, pid_t pid, const char *name,
			   const char *text)
{
	char path[64];
	int fd, saved;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		/* setgroups is new in Linux 3.19; before it gid_map needs nothing */
		if (errno == ENOENT && strcmp(name, "setgroups") == 0)
			return 0;
		goto fail;
	}
	if (util_write_all(fd, text, strlen(text)) < 0) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		goto fail;
	}
	if (close(fd) < 0)
		goto fail;
	return 0;
fail:
	saved = errno;
	run_error(run, STEP_MAPS, "cannot write %s: %s", path, strerror(errno));
	errno = saved;
	return -1;
}

/* Waits for init's answer until deadline: 0 with m and *fd (-1 if none)
 * filled, -1 with errno (ETIMEDOUT, EPIPE at end of file). */
static int recv_answer(int sock, int64_t deadline, struct sandbox_msg *m, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr mh;
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	for (;;) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN, .revents = 0 };
		int64_t left = deadline - util_now_ns();
		int r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&pfd, 1, (int)(left / 1000000 + 1));
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			break;
	}
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t off = 0; off + sizeof(int) <= c->cmsg_len - CMSG_LEN(0);
		     off += sizeof(int)) {
			int got;

			memcpy(&got, CMSG_DATA(c) + off, sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				(void)close(got);
		}
	}
	if (n == 0 || (size_t)n != sizeof(*m)) {
		if (*fd >= 0)
			(void)close(*fd);
		*fd = -1;
		errno = EPIPE;
		return -1;
	}
	m->text[sizeof(m->text) - 1] = '\0';
	return 0;
}

static int copy_file_data(int in, int out)
{
	char *buf = NULL;
	ssize_t n;

	for (;;) {
		n = sendfile(out, in, NULL, SANDBOX_COPY_CHUNK);
		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
	}
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* sendfile refused this pair of files: copy by hand */
	buf = malloc(SANDBOX_COPY_CHUNK);
	if (buf == NULL)
		return -1;
	for (;;) {
		n = read(in, buf, SANDBOX_COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || util_write_all(out, buf, (size_t)n) < 0)
			break;
	}
	free(buf);
	return n == 0 ? 0 : -1;
}

/* Copies the directory src into dst (both open), rel being its name under
 * the upload directory ("" at the top, "a/b/" below). Regular files and
 * directories only, never following a symlink. 0, or -1 with run->error. */
static int copy_tree(struct sandbox_run *run, int src, int dst, char *rel_name,
		     size_t rel_len, int depth)
{
	/* A run with ids of its own must be able to change its uploads, which
	 * are pyexec's: open to all, on a disk that no one else sees. */
	const int own_ids = run->cfg->run_uid != run->cfg->uid;
	const mode_t open_dir = own_ids ? 0777 : 0, open_file = own_ids ? 0666 : 0;
	struct dirent *de;
	DIR *d;
	int dfd, ok = -1;

	dfd = fcntl(src, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			(void)close(dfd);
		run_error(run, STEP_UPLOADS, "cannot read the uploads: %s", strerror(errno));
		return -1;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		size_t nlen = strlen(de->d_name);
		struct stat st, ost;
		int in = -1, out = -1, saved;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* the name and its NUL; a directory needs a '/' more, below */
		if (rel_len + nlen + 1 > PATH_MAX) {
			errno = ENAMETOOLONG;
			goto fail_name;
		}
		memcpy(rel_name + rel_len, de->d_name, nlen + 1);
		if (fstatat(src, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			goto fail_name;
		if (S_ISDIR(st.st_mode)) {
			if (depth >= COLLECT_DEPTH_MAX) {
				errno = ELOOP;
				goto fail_name;
			}
			if (rel_len + nlen + 2 > PATH_MAX) {
				errno = ENAMETOOLONG;
				goto fail_name;
			}
			if (mkdirat(dst, de->d_name, 0700) < 0)
				goto fail_name;
			in = openat(src, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (in < 0)
				goto fail_name;
			out = openat(dst, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (out < 0)
				goto fail_file;
			rel_name[rel_len + nlen] = '/';
			rel_name[rel_len + nlen + 1] = '\0';
			if (copy_tree(run, in, out, rel_name, rel_len + nlen + 1, depth + 1) < 0) {
				(void)close(in);
				(void)close(out);
				goto out;
			}
			rel_name[rel_len + nlen] = '\0';
			/* The mode last: a read-only directory was written into. */
			if (fchmod(out, (st.st_mode & 0777) | open_dir) < 0)
				goto fail_file;
		} else if (S_ISREG(st.st_mode)) {
			in = openat(src, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (in < 0)
				goto fail_name;
			if (fstat(in, &st) < 0)
				goto fail_file;
			if (!S_ISREG(st.st_mode)) {
				(void)close(in);
				continue;
			}
			out = openat(dst, de->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				     O_CLOEXEC, 0600);
			if (out < 0 || copy_file_data(in, out) < 0 ||
			    fchmod(out, (st.st_mode & 0777) | open_file) < 0 || fstat(out, &ost) < 0)
				goto fail_file;
			if (run->snap != NULL && collect_snapshot_add(run->snap, rel_name, &ost) < 0)
				goto fail_file;
		}
		if (in >= 0)
			(void)close(in);
		if (out >= 0 && close(out) < 0) {
			out = -1;
			in = -1;
			goto fail_file;
		}
		continue;
fail_file:
		saved = errno;
		if (in >= 0)
			(void)close(in);
		if (out >= 0)
			(void)close(out);
		errno = saved;
fail_name:
		if (errno == ENOSPC || errno == EDQUOT) {
			run->uploads_too_big = 1;
			errno = ENOSPC;
			run_error(run, STEP_UPLOADS,
				  "the uploads do not fit in the disk of %llu bytes",
				  (unsigned long long)run->cfg->disk_bytes);
		} else {
			run_error(run, STEP_UPLOADS, "cannot copy the upload %s: %s",
				  rel_name, strerror(errno));
		}
		goto out;
	}
	if (errno != 0) {
		run_error(run, STEP_UPLOADS, "cannot read the uploads: %s",
			  strerror(errno));
		goto out;
	}
	ok = 0;
out:
	{
		int saved = errno;

		(void)closedir(d);
		errno = saved;
	}
	return ok;
}

static int init_args_fill(struct init_args *a, struct sandbox_run *run,
			  const struct sandbox_config *cfg, const char *root)
{
	uint64_t inodes = cfg->disk_bytes / SANDBOX_BYTES_PER_INODE;

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->sock = a->status_w = -1;
	if (strlen(root) >= sizeof(a->root)) {
		errno = ENAMETOOLONG;
		run_error(run, STEP_PREPARE, "the sandbox directory's path is too long");
		return -1;
	}
	strcpy(a->root, root);
	if (inodes < SANDBOX_INODES_MIN)
		inodes = SANDBOX_INODES_MIN;
	snprintf(a->passwd, sizeof(a->passwd), "pyexec:x:%lu:%lu:pyexec:/tmp:/usr/sbin/nologin\n",
		 (unsigned long)cfg->run_uid, (unsigned long)cfg->run_gid);
	snprintf(a->group, sizeof(a->group), "pyexec:x:%lu:\n", (unsigned long)cfg->run_gid);
	snprintf(a->disk_opts, sizeof(a->disk_opts), "mode=0755,size=%llu,nr_inodes=%llu",
		 (unsigned long long)cfg->disk_bytes, (unsigned long long)inodes);
	snprintf(a->dev_opts, sizeof(a->dev_opts), "mode=0755,size=%lu",
		 (unsigned long)SANDBOX_DEV_SIZE);
	return 0;
}

/* clone(2) the way fork(2) does it: no stack of its own, the child goes on
 * from here on a copy of ours. (glibc's clone() wants a separate stack, on
 * which AddressSanitizer loses track of init and of the payload forked from
 * it, and says so on the program's stderr.) The pid, 0 in the child, or -1. */
static pid_t sandbox_clone(int flags)
{
#if defined(__s390__) || defined(__s390x__)
	return (pid_t)syscall(SYS_clone, NULL, (unsigned long)flags, NULL, NULL, 0UL);
#else
	return (pid_t)syscall(SYS_clone, (unsigned long)flags, NULL, NULL, NULL, 0UL);
#endif
}

static int path_ok(const char *p)
{
	return p[0] == '/' && strlen(p) < PATH_MAX;
}

static void spare_clear(struct sandbox_spare *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->pidfd = sp->sock = sp->status_r = -1;
}

/* Ends init (if any) and closes what sp holds; sp is then empty. init is
 * reached through its pidfd when there is one, so a sandbox that someone
 * else reaped (run_program's clean-up reaps every child) is never
 * mistaken for a process that reused its pid. */
static void spare_end(struct sandbox_spare *sp)
{
	if (sp->pid > 0) {
		int by_pid = 1;

		if (sp->pidfd >= 0) {
			siginfo_t si;
			int r;

			(void)pidfd_send_signal(sp->pidfd, SIGKILL, NULL, 0);
			memset(&si, 0, sizeof(si));
			do
				r = waitid(P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | __WALL);
			while (r < 0 && errno == EINTR);
			/* Linux 5.3 has pidfds but no P_PIDFD: spares are not kept
			 * there, so this init is ours and still unreaped. */
			by_pid = r < 0 && errno == EINVAL;
		} else {
			(void)kill(sp->pid, SIGKILL);
		}
		if (by_pid)
			while (waitpid(sp->pid, NULL, __WALL) < 0 && errno == EINTR)
				;
	}
	if (sp->pidfd >= 0)
		(void)close(sp->pidfd);
	if (sp->sock >= 0)
		(void)close(sp->sock);
	if (sp->status_r >= 0)
		(void)close(sp->status_r);
	/* init's mount namespace is gone with it: the directory is plain again */
	if (sp->own_root && rmdir(sp->root) < 0 && errno != ENOENT)
		log_msg(LOG_LEVEL_WARN, "sandbox: cannot remove %s: %s", sp->root, strerror(errno));
	spare_clear(sp);
}

/* Clones init into new namespaces (into cg when not NULL) with root as its
 * new root's mount point, writes its maps and lets it set up everything
 * that does not depend on a request. Fills sp; 0, or -1 with run->error. */
static int sandbox_start(struct sandbox_run *run, const struct sandbox_config *cfg,
			 const char *root, const struct cgroup_slot *cg, struct sandbox_spare *sp)
{
	struct init_args a;
	struct sandbox_msg m;
	char map[64];
	sigset_t all, old;
	int sv[2] = { -1, -1 }, stp[2] = { -1, -1 }, wfd = -1;
	int flags, saved;
	int64_t deadline;
	pid_t pid;

	spare_clear(sp);
	if (cfg->disk_bytes == 0 || !path_ok(root) ||
	    (cfg->python_prefix[0] != '\0' && !path_ok(cfg->python_prefix)) ||
	    (cfg->python_venv[0] != '\0' && !path_ok(cfg->python_venv))) {
		errno = EINVAL;
		run_error(run, STEP_PREPARE, "the disk size is 0 or a path is not absolute");
		return -1;
	}
	if (filter_build(run, cfg) < 0 || init_args_fill(&a, run, cfg, root) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(stp, O_CLOEXEC) < 0) {
		run_error(run, STEP_PREPARE, "cannot create a socket pair or pipe: %s",
			  strerror(errno));
		goto fail;
	}
	a.sock = sv[1];
	a.status_w = stp[1];

	flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
		CLONE_NEWCGROUP | SIGCHLD;
	if (!cfg->network)
		flags |= CLONE_NEWNET;
	/* No handler of the caller may run in init. */
	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, &old) < 0) {
		run_error(run, STEP_PREPARE, "sigprocmask: %s", strerror(errno));
		goto fail;
	}
	/* Cloned straight into the run's cgroup: its cgroup namespace is
	 * rooted there. */
	pid = cg != NULL ? cgroup_clone(cg, (unsigned long)flags) : sandbox_clone(flags);
	if (pid == 0)
		init_main(&a);
	saved = errno;
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	(void)close(sv[1]);
	(void)close(stp[1]);
	sv[1] = stp[1] = -1;
	if (pid < 0) {
		errno = saved;
		run_error(run, STEP_CLONE, "cannot create the namespaces (clone): %s",
			  strerror(errno));
		goto fail;
	}
	sp->pid = pid;
	sp->pidfd = pidfd_open(pid, 0);   /* -1 before Linux 5.3 */
	sp->sock = sv[0];
	sp->status_r = stp[0];
	sv[0] = stp[0] = -1;
	memcpy(sp->root, a.root, sizeof(sp->root));
	sp->cfg = cfg;
	sp->cgroup = cg;
	(void)setpgid(pid, pid);
	deadline = util_now_ns() + (int64_t)SANDBOX_SETUP_TIMEOUT_MS * 1000000;

	/* Init is dumpable once it says hello: its /proc files are ours. */
	if (recv_answer(sp->sock, deadline, &m, &wfd) < 0) {
		run_error(run, STEP_HANDSHAKE, "init did not start: %s", strerror(errno));
		goto fail;
	}
	if (m.type != MSG_HELLO || wfd >= 0) {
		errno = EPROTO;
		run_error(run, STEP_HANDSHAKE, "init answered out of turn");
		goto fail;
	}

	if (cfg->run_uid != cfg->uid) {
		/* pyexec's ids and the run's, each mapped to itself, by the
		 * set-uid helpers that check the run's against /etc/subuid and
		 * /etc/subgid */
		char why[512];

		if (subid_map(pid, 0, cfg->uid, cfg->run_uid, why, sizeof(why)) < 0 ||
		    subid_map(pid, 1, cfg->gid, cfg->run_gid, why, sizeof(why)) < 0) {
			errno = EPERM;
			run_error(run, STEP_MAPS, "%s", why);
			goto fail;
		}
	} else {
		/* pyexec's ids mapped to themselves; setgroups must be denied
		 * before an unprivileged gid_map. */
		if (write_proc_file(run, pid, "setgroups", "deny") < 0)
			goto fail;
		snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)cfg->uid,
			 (unsigned long)cfg->uid);
		if (write_proc_file(run, pid, "uid_map", map) < 0)
			goto fail;
		snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)cfg->gid,
			 (unsigned long)cfg->gid);
		if (write_proc_file(run, pid, "gid_map", map) < 0)
			goto fail;
	}
	if (msg_send(sp->sock, MSG_MAPS) < 0) {
		run_error(run, STEP_HANDSHAKE, "cannot release init: %s", strerror(errno));
		goto fail;
	}
	return 0;

fail:
	saved = errno;
	if (wfd >= 0)
		(void)close(wfd);
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			(void)close(sv[i]);
		if (stp[i] >= 0)
			(void)close(stp[i]);
	}
	spare_end(sp);
	errno = saved;
	return -1;
}

/* The request for init: see struct sandbox_req. 0, or -1 with run->error. */
static int send_request(struct sandbox_run *run, int sock, const struct run_spec *spec,
			int stdin_fd, int out_w, int err_w)
{
	const char *deps = run->deps_path != NULL ? run->deps_path : "";
	struct sandbox_msg m;
	struct sandbox_req q;
	int fds[3];
	size_t nfd = 0, len = 0;
	struct iovec iov[3];
	char *strs = NULL, *p;
	ssize_t w;
	int rc = -1;

	memset(&q, 0, sizeof(q));
	q.lim = spec->lim;
	len = strlen(deps) + 1 + strlen(spec->path) + 1;
	for (q.argc = 0; spec->argv[q.argc] != NULL; q.argc++)
		if (q.argc < SANDBOX_REQ_VEC)
			len += strlen(spec->argv[q.argc]) + 1;
	for (q.envc = 0; spec->envp[q.envc] != NULL; q.envc++)
		if (q.envc < SANDBOX_REQ_VEC)
			len += strlen(spec->envp[q.envc]) + 1;
	if (q.argc == 0 || q.argc + q.envc > SANDBOX_REQ_VEC || len > SANDBOX_REQ_MAX) {
		errno = E2BIG;
		run_error(run, STEP_PREPARE, "the program's arguments and environment exceed "
			  "the sandbox's %u entries or %u bytes", SANDBOX_REQ_VEC,
			  SANDBOX_REQ_MAX);
		return -1;
	}
	strs = malloc(len);
	if (strs == NULL) {
		run_error(run, STEP_PREPARE, "out of memory");
		return -1;
	}
	p = stpcpy(strs, deps) + 1;
	p = stpcpy(p, spec->path) + 1;
	for (uint32_t i = 0; i < q.argc; i++)
		p = stpcpy(p, spec->argv[i]) + 1;
	for (uint32_t i = 0; i < q.envc; i++)
		p = stpcpy(p, spec->envp[i]) + 1;
	q.len = (uint32_t)len;
	q.has_stdin = stdin_fd >= 0;
	if (stdin_fd >= 0)
		fds[nfd++] = stdin_fd;
	fds[nfd++] = out_w;
	fds[nfd++] = err_w;

	memset(&m, 0, sizeof(m));
	m.type = MSG_REQUEST;
	iov[0].iov_base = &m;
	iov[0].iov_len = sizeof(m);
	iov[1].iov_base = &q;
	iov[1].iov_len = sizeof(q);
	iov[2].iov_base = strs;
	iov[2].iov_len = len;
	w = msg_send_fds(sock, iov, 3, fds, nfd);
	if (w == (ssize_t)(sizeof(m) + sizeof(q) + len))
		rc = 0;
	else {
		if (w >= 0)
			errno = EMSGSIZE;
		run_error(run, STEP_HANDSHAKE, "cannot send init the run: %s", strerror(errno));
	}
	free(strs);
	return rc;
}

/* Hands a started sandbox its run: the request, then (init ready) the
 * uploads into /work, then "go". On success the run owns init (its pid is
 * returned, sp is left empty); on failure sp still holds it. */
static pid_t sandbox_enter(struct sandbox_run *run, struct sandbox_spare *sp,
			   const struct run_spec *spec, int stdin_fd, int out_w, int err_w)
{
	struct sandbox_msg m;
	char rel_name[PATH_MAX];
	int64_t deadline;
	int wfd = -1;
	pid_t pid = sp->pid;

	if (send_request(run, sp->sock, spec, stdin_fd, out_w, err_w) < 0) {
		/* init may have said why it ended */
		if (recv_answer(sp->sock, util_now_ns() + 1000000, &m, &wfd) == 0 &&
		    m.type == MSG_ERROR) {
			run->error[0] = '\0';
			errno = m.err != 0 ? m.err : EPERM;
			run_error(run, m.step, "%s", m.text);
		}
		goto fail;
	}
	deadline = util_now_ns() + (int64_t)SANDBOX_SETUP_TIMEOUT_MS * 1000000;
	if (recv_answer(sp->sock, deadline, &m, &wfd) < 0) {
		if (errno == ETIMEDOUT)
			run_error(run, STEP_HANDSHAKE, "init was not ready within %d ms",
				  SANDBOX_SETUP_TIMEOUT_MS);
		else
			run_error(run, STEP_HANDSHAKE, "init ended during setup: %s",
				  strerror(errno));
		goto fail;
	}
	if (m.type == MSG_ERROR) {
		errno = m.err != 0 ? m.err : EPERM;
		run_error(run, m.step, "%s", m.text);
		goto fail;
	}
	if (m.type != MSG_READY || wfd < 0) {
		errno = EPROTO;
		run_error(run, STEP_HANDSHAKE, "init answered out of turn");
		goto fail;
	}
	run->work_fd = wfd;
	wfd = -1;
	/* The new root is in place: its mount point on the host is a plain
	 * directory again. */
	if (sp->own_root && rmdir(sp->root) == 0)
		sp->own_root = 0;

	rel_name[0] = '\0';
	if (copy_tree(run, run->upload_fd, run->work_fd, rel_name, 0, 0) < 0)
		goto fail;
	if (msg_send(sp->sock, MSG_GO) < 0) {
		run_error(run, STEP_HANDSHAKE, "cannot start init: %s", strerror(errno));
		goto fail;
	}
	if (util_set_nonblock(sp->status_r) < 0) {
		/* the payload is running: only its status would be lost */
		log_msg(LOG_LEVEL_WARN, "sandbox: fcntl: %s", strerror(errno));
	}
	run->status_fd = sp->status_r;
	sp->status_r = -1;
	sp->pid = 0;                 /* the run's now: run_program reaps it */
	spare_end(sp);
	return pid;

fail:
	if (wfd >= 0)
		(void)close(wfd);
	if (run->work_fd >= 0) {
		(void)close(run->work_fd);
		run->work_fd = -1;
	}
	return -1;
}

static pid_t sandbox_spawn(void *arg, const struct run_spec *spec, int stdin_fd,
			   int out_w, int err_w)
{
	struct sandbox_run *run = arg;
	struct sandbox_spare fresh;
	char root[PATH_MAX];
	int saved;
	pid_t pid;

	if (run == NULL || run->cfg == NULL || run->req_dir == NULL || run->upload_fd < 0 ||
	    spec == NULL) {
		errno = EINVAL;
		return -1;
	}
	run->error[0] = '\0';
	run->failed_step = STEP_NONE;
	run->failed_errno = 0;
	run->uploads_too_big = 0;
	run->spare_used = 0;
	if (run->work_fd >= 0 || run->status_fd >= 0) {
		errno = EBUSY;
		run_error(run, STEP_PREPARE, "this run was started already");
		goto fail;
	}
	if (run->deps_path != NULL && !path_ok(run->deps_path)) {
		errno = EINVAL;
		run_error(run, STEP_PREPARE, "the dependency entry's path is not absolute");
		goto fail;
	}

	/* A sandbox made ahead of the request, when it was made for this
	 * configuration and cgroup. Whatever goes wrong with it (someone
	 * killed it, say), the run gets a fresh one: only a fault of the
	 * request's own (its uploads) ends the run here. */
	if (run->spare != NULL && run->spare->pid > 0) {
		struct sandbox_spare *sp = run->spare;
		int usable = sp->cfg == run->cfg && sp->cgroup == spec->cgroup;

		pid = usable ? sandbox_enter(run, sp, spec, stdin_fd, out_w, err_w) : -1;
		if (pid > 0) {
			run->spare_used = 1;
			return pid;
		}
		saved = errno;
		spare_end(sp);
		errno = saved;
		if (run->failed_step == STEP_UPLOADS)
			goto fail;
		if (usable) {
			log_msg(LOG_LEVEL_DEBUG, "sandbox: the spare sandbox failed (%s); "
				"setting up a new one", run->error);
			run->error[0] = '\0';
			run->failed_step = STEP_NONE;
			run->failed_errno = 0;
		}
	}

	/* The request's tmp/ is the new root's mount point: the namespace
	 * layer's /tmp lives in the disk tmpfs, so that directory is free, and
	 * one directory fewer is made and removed on the host per run. */
	if ((size_t)snprintf(root, sizeof(root), "%s/tmp", run->req_dir) >= sizeof(root)) {
		errno = ENAMETOOLONG;
		run_error(run, STEP_PREPARE, "the request directory's path is too long");
		goto fail;
	}
	if (mkdir(root, 0700) < 0 && errno != EEXIST) {
		run_error(run, STEP_PREPARE, "cannot create %s: %s", root, strerror(errno));
		goto fail;
	}
	if (sandbox_start(run, run->cfg, root, spec->cgroup, &fresh) < 0)
		goto fail;
	pid = sandbox_enter(run, &fresh, spec, stdin_fd, out_w, err_w);
	if (pid > 0)
		return pid;
	saved = errno;
	spare_end(&fresh);
	errno = saved;

fail:
	saved = errno;
	if (run->error[0] == '\0')
		run_error(run, STEP_PREPARE, "%s", strerror(saved));
	/* the caller logs run->error */
	log_msg(LOG_LEVEL_DEBUG, "sandbox: %s", run->error);
	errno = saved;
	return -1;
}

static int sandbox_wait_status(void *arg, int status)
{
	struct sandbox_run *run = arg;
	int st;
	ssize_t n;

	if (run == NULL || run->status_fd < 0)
		return status;
	do
		n = read(run->status_fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	(void)close(run->status_fd);
	run->status_fd = -1;
	/* Nothing written: init itself was killed (the wall time, say). */
	return n == (ssize_t)sizeof(st) ? st : status;
}

const struct run_spawner sandbox_spawner = {
	.spawn = sandbox_spawn,
	.wait_status = sandbox_wait_status,
	.arg = NULL,
	.name = "namespaces",
};

void sandbox_run_init(struct sandbox_run *run, const struct sandbox_config *cfg,
		      const char *req_dir, int upload_fd, const char *deps_path,
		      struct collect_snapshot *snap)
{
	memset(run, 0, sizeof(*run));
	run->cfg = cfg;
	run->req_dir = req_dir;
	run->upload_fd = upload_fd;
	run->deps_path = deps_path;
	run->snap = snap;
	run->work_fd = -1;
	run->status_fd = -1;
	run->spare = NULL;
}

void sandbox_run_close(struct sandbox_run *run)
{
	if (run == NULL)
		return;
	if (run->work_fd >= 0)
		(void)close(run->work_fd);
	if (run->status_fd >= 0)
		(void)close(run->status_fd);
	run->work_fd = run->status_fd = -1;
}

/* Whether sp's init is still alive (1), has ended (0), or cannot be
 * watched through its pidfd (-1: no pidfd, or no P_PIDFD before Linux 5.4). */
static int spare_alive(const struct sandbox_spare *sp)
{
	siginfo_t si;

	if (sp->pidfd < 0)
		return -1;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0)
		return errno == EINVAL ? -1 : 0;
	return si.si_pid == 0;
}

void sandbox_spare_init(struct sandbox_spare *sp)
{
	spare_clear(sp);
}

int sandbox_spare_make(struct sandbox_spare *sp, const struct sandbox_config *cfg,
		       const char *dir, const struct cgroup_slot *cg)
{
	struct sandbox_run err;
	char root[PATH_MAX];

	if (sp->pid > 0) {
		/* still there, and still waiting? */
		if (sp->cfg == cfg && sp->cgroup == cg && spare_alive(sp) == 1)
			return 0;
		spare_end(sp);
	}
	/* Named like a request directory ("<pid>-..."): swept with a dead
	 * worker's, spared by any other pyexec sharing the directory. */
	if ((size_t)snprintf(root, sizeof(root), "%s/%d-sandbox.XXXXXX", dir, (int)getpid()) >=
	    sizeof(root)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdtemp(root) == NULL)
		return -1;
	memset(&err, 0, sizeof(err));
	if (sandbox_start(&err, cfg, root, cg, sp) < 0) {
		int saved = errno;

		log_msg(LOG_LEVEL_DEBUG, "sandbox: no spare sandbox: %s", err.error);
		(void)rmdir(root);
		errno = saved;
		return -1;
	}
	sp->own_root = 1;
	/* Without pidfds that waitid takes (Linux 5.4), a spare that someone
	 * else reaped could not be told from a process that took its pid:
	 * none are kept. */
	if (spare_alive(sp) < 0) {
		spare_end(sp);
		errno = ENOSYS;
		return -1;
	}
	return 0;
}

void sandbox_spare_discard(struct sandbox_spare *sp)
{
	if (sp != NULL)
		spare_end(sp);
}

int sandbox_list_add(char *list, const char *path)
{
	size_t used = 0, len = path != NULL ? strlen(path) : 0;

	if (path == NULL || path[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	for (const char *p = list_next(list, NULL); p != NULL; p = list_next(list, p))
		used = (size_t)(p - list) + strlen(p) + 1;
	/* the path, its NUL, and the empty string that ends the list */
	if (used + len + 2 > SANDBOX_LIST_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(list + used, path, len + 1);
	list[used + len + 1] = '\0';
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The probe. */

/* The prefix of an interpreter path (/opt/py/bin/python3 -> /opt/py) into
 * out, or "" when it is the system's (under /usr, or /). */
static void python_prefix_of(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	char *slash;

	out[0] = '\0';
	if (strlen(path) >= sizeof(buf))
		return;
	strcpy(buf, path);
	for (int i = 0; i < 2; i++) {
		slash = strrchr(buf, '/');
		if (slash == NULL)
			return;
		*slash = '\0';
	}
	if (buf[0] == '\0' || strcmp(buf, "/usr") == 0 || strncmp(buf, "/usr/", 5) == 0)
		return;
	snprintf(out, len, "%s", buf);
}

static const char hint_userns[] =
	"user namespaces are disabled or restricted: allow them "
	"(`sysctl kernel.unprivileged_userns_clone=1` on Debian-like kernels, "
	"`sysctl user.max_user_namespaces=10000`; on Ubuntu >= 23.10 "
	"`sysctl kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile "
	"that allows userns for pyexec); inside a container, the container must allow "
	"nested user namespaces (no seccomp profile blocking clone/unshare)";
static const char hint_mount[] =
	"the kernel refuses mounts in pyexec's user namespace: on Ubuntu >= 23.10 set "
	"`sysctl kernel.apparmor_restrict_unprivileged_userns=0` or give pyexec an AppArmor "
	"profile that allows userns; inside a container, allow mounts in nested namespaces "
	"(no AppArmor/seccomp profile blocking mount)";

/* One attempt; 0 when the program printed "ok". */
static int probe_once(struct sandbox_config *cfg, const char *python, const char *dir,
		      int up_fd, struct sandbox_run *run, char *err, size_t errlen)
{
	char *argv[] = { (char *)python, "-c", "import sys; print('ok')", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp", NULL };
	struct run_spawner sp = sandbox_spawner;
	struct run_spec spec;
	struct run_result res;
	char out[64], errtxt[160];
	int out_fd = -1, err_fd = -1, rc = -1;
	ssize_t n;

	sandbox_run_init(run, cfg, dir, up_fd, NULL, NULL);
	sp.arg = run;
	out_fd = memfd_create("probe-stdout", MFD_CLOEXEC);
	err_fd = memfd_create("probe-stderr", MFD_CLOEXEC);
	if (out_fd < 0 || err_fd < 0) {
		util_errorf(err, errlen, "cannot create the probe's output files: %s",
			    strerror(errno));
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.path = python;
	spec.argv = argv;
	spec.envp = envp;
	spec.stdin_fd = -1;
	spec.stdout_fd = out_fd;
	spec.stderr_fd = err_fd;
	spec.watch_fd = -1;
	spec.lim.wall_ms = SANDBOX_SETUP_TIMEOUT_MS + 10000;
	spec.lim.max_output = 4096;
	if (run_program(&spec, &sp, &res) < 0) {
		if (run->error[0] == '\0')
			util_errorf(err, errlen, "the probe could not run: %s",
				    strerror(errno));
		goto out;
	}
	n = pread(out_fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	if (res.status == RUN_OK && strcmp(out, "ok\n") == 0) {
		rc = 0;
		goto out;
	}
	n = pread(err_fd, errtxt, sizeof(errtxt) - 1, 0);
	errtxt[n > 0 ? n : 0] = '\0';
	errtxt[strcspn(errtxt, "\n")] = '\0';
	util_errorf(err, errlen, "%s did not run in the sandbox (exit %d, signal %d): %s; "
		    "check that it and its libraries are under /usr or its own prefix",
		    python, res.exit_code, res.signal, errtxt[0] != '\0' ? errtxt : "no message");
out:
	if (out_fd >= 0)
		(void)close(out_fd);
	if (err_fd >= 0)
		(void)close(err_fd);
	sandbox_run_close(run);
	return rc;
}

static int probe_in(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
		    int proc_retry, char *err, size_t errlen);

int sandbox_probe(struct sandbox_config *cfg, const char *python, uint64_t disk_bytes,
		  int network, const char *tmp_dir, char *err, size_t errlen)
{
	char real[PATH_MAX];

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	cfg->python_prefix[0] = cfg->python_venv[0] = '\0';
	cfg->disk_bytes = 0;
	cfg->network = cfg->proc = 0;
	if (python == NULL || python[0] != '/' || tmp_dir == NULL || disk_bytes == 0) {
		util_errorf(err, errlen, "the interpreter must be an absolute path "
			    "and the disk size more than 0");
		errno = EINVAL;
		return -1;
	}
	if (realpath(python, real) == NULL) {
		util_errorf(err, errlen, "cannot resolve %s: %s", python, strerror(errno));
		return -1;
	}
	python_prefix_of(real, cfg->python_prefix, sizeof(cfg->python_prefix));
	python_prefix_of(python, cfg->python_venv, sizeof(cfg->python_venv));
	if (strcmp(cfg->python_venv, cfg->python_prefix) == 0)
		cfg->python_venv[0] = '\0';
	cfg->disk_bytes = disk_bytes;
	cfg->network = network != 0;
	cfg->proc = 1;
	cfg->uid = getuid();
	cfg->gid = getgid();
	cfg->run_uid = cfg->uid;
	cfg->run_gid = cfg->gid;
	return probe_in(cfg, python, tmp_dir, 1, err, errlen);
}

int sandbox_probe_run_ids(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
			  uid_t run_uid, gid_t run_gid, char *err, size_t errlen)
{
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	cfg->run_uid = run_uid;
	cfg->run_gid = run_gid;
	rc = probe_in(cfg, python, tmp_dir, 0, err, errlen);
	if (rc < 0) {
		cfg->run_uid = cfg->uid;
		cfg->run_gid = cfg->gid;
	}
	return rc;
}

/* Runs the probe's sandbox in a directory of its own in tmp_dir; proc_retry:
 * when a fresh /proc is refused, try again without (cfg->proc = 0). */
static int probe_in(struct sandbox_config *cfg, const char *python, const char *tmp_dir,
		    int proc_retry, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct sandbox_run run;
	int tmp_fd = -1, up_fd = -1, rc = -1;
	const char *base;

	/* Named like a request directory ("<pid>-..."): another pyexec sharing
	 * tmp_dir as its work_root leaves it alone while this process lives. */
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%d-sandbox-probe.XXXXXX", tmp_dir,
			     (int)getpid()) >= sizeof(dir)) {
		util_errorf(err, errlen, "the temporary directory's path is too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdtemp(dir) == NULL) {
		util_errorf(err, errlen, "cannot create a directory in %s: %s", tmp_dir,
			    strerror(errno));
		return -1;
	}
	base = strrchr(dir, '/') + 1;
	tmp_fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tmp_fd < 0) {
		util_errorf(err, errlen, "cannot open %s: %s", tmp_dir, strerror(errno));
		(void)rmdir(dir);
		return -1;
	}
	up_fd = openat(tmp_fd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (up_fd < 0 || mkdirat(up_fd, "up", 0700) < 0) {
		util_errorf(err, errlen, "cannot prepare the probe in %s: %s", dir,
			    strerror(errno));
		goto out;
	}
	{
		int fd = openat(up_fd, "up", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		(void)close(up_fd);
		up_fd = fd;
		if (up_fd < 0) {
			util_errorf(err, errlen, "cannot open %s/up: %s", dir,
				    strerror(errno));
			goto out;
		}
	}

	rc = probe_once(cfg, python, dir, up_fd, &run, err, errlen);
	if (rc < 0 && run.failed_step == STEP_PROC && proc_retry) {
		log_msg(LOG_LEVEL_WARN, "sandbox: %s; runs get an empty /proc instead",
			run.error);
		cfg->proc = 0;
		if (err != NULL && errlen > 0)
			err[0] = '\0';
		rc = probe_once(cfg, python, dir, up_fd, &run, err, errlen);
	}
	if (rc < 0 && run.error[0] != '\0') {
		int userns = run.failed_step == STEP_CLONE || run.failed_step == STEP_MAPS;
		int mounts = (run.failed_step == STEP_MOUNT || run.failed_step == STEP_PROC ||
			      run.failed_step == STEP_SETUP) &&
			     (run.failed_errno == EPERM || run.failed_errno == EACCES);

		if (userns)
			util_errorf(err, errlen, "%s; %s", run.error, hint_userns);
		else if (mounts)
			util_errorf(err, errlen, "%s; %s", run.error, hint_mount);
		else
			util_errorf(err, errlen, "%s", run.error);
	}
out:
	if (up_fd >= 0)
		(void)close(up_fd);
	if (tmp_fd >= 0) {
		if (workdir_rmtree_at(tmp_fd, base) < 0)
			log_msg(LOG_LEVEL_WARN, "sandbox: cannot remove %s: %s", dir, strerror(errno));
		(void)close(tmp_fd);
	}
	return rc;
}
