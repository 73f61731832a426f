/* sandbox_init: init and the payload, after clone (sandbox_init.h).
 *
 * The rule for this whole file: it runs in the child of clone, a copy of
 * a possibly multi-threaded supervisor whose locks and heap may have been
 * caught mid-change. So it calls system calls and async-signal-safe
 * functions only (asyncsafe.h, sandbox_proto.h, util_write_all,
 * util_title_set, sandbox_list_next): no malloc, no stdio, no locale.
 * What needs more is prepared before clone (struct sandbox_init_args).
 *
 * init's setup is a straight list of steps (init_setup, then init_enter
 * with the request); each failure ends init through init_fail, which
 * tells the supervisor the step, the path and the errno. The payload's
 * failures go to the program's stderr, like run.c's child's. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncsafe.h"
#include "collect.h"
#include "run.h"
#include "sandbox.h"
#include "figures.h"
#include "sandbox_init.h"
#include "sandbox_proto.h"
#include "util.h"

/* The new root: a tmpfs holding only mount points, directories and the few
 * files written into /etc. Read-only once set up. */
#define SANDBOX_ROOT_OPTS     "mode=0755,size=1m"
/* A mask over a directory of pyexec's own that a bind shows: an empty
 * tmpfs, read-only once the dependency entry (which may lie below it) is
 * bound; over a file, a read-only bind of an empty file made here. */
#define SANDBOX_MASK_OPTS     "mode=0755,size=64k,nr_inodes=64"
#define SANDBOX_MASK_FILE     ".mask"

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define SB_MOUNT_ATTR_RDONLY  0x00000001ULL
#define SB_MOUNT_ATTR_NOSUID  0x00000002ULL
#define SB_MOUNT_ATTR_NODEV   0x00000004ULL

/* Tells the supervisor what failed and ends init. */
__attribute__((noreturn))
static void init_fail(const struct sandbox_init_args *a, int step, const char *what,
		      const char *path, int err)
{
	char text[SANDBOX_MSG_TEXT];

	(void)asyncsafe_errmsg(text, sizeof(text), what, path, err);
	/* Messages the supervisor sent meanwhile stay unread: its receive
	 * reads past the reset that leaves (sandbox_msg_recv). */
	(void)sandbox_msg_send_text(a->sock, MSG_ERROR, err, step, text);
	_exit(1);
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

static void init_mkdir(const struct sandbox_init_args *a, const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		init_fail(a, STEP_SETUP, "create the directory", path, errno);
}

/* mkdir -p of a relative path in the new root. */
static void init_mkdir_p(const struct sandbox_init_args *a, const char *path)
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
static void init_mkdir_parents(const struct sandbox_init_args *a, const char *path)
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

static void init_write_file(const struct sandbox_init_args *a, const char *path, const char *text)
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
static void init_touch(const struct sandbox_init_args *a, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		init_fail(a, STEP_SETUP, "create", path, errno);
	(void)close(fd);
}

int sandbox_test_old_kernel;

/* Binds src at dst, read-only, nosuid, nodev; errors name shown. */
static void init_bind_ro_as(const struct sandbox_init_args *a, const char *src, const char *dst,
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
static void init_bind_ro(const struct sandbox_init_args *a, const char *src, const char *dst)
{
	init_bind_ro_as(a, src, dst, src);
}

/* A host path as it is on the host: the same symlink, a read-only bind of a
 * directory or of a regular file, or nothing when it does not exist. */
static void init_mirror(const struct sandbox_init_args *a, const char *host)
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

/* Whether path is dir or below it. */
static int path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void init_etc(const struct sandbox_init_args *a)
{
	char buf[4096] __attribute__((aligned(8)));
	char host[PATH_MAX];
	long n;
	int dfd;

	init_mkdir(a, "etc", 0755);
	for (size_t i = 0; i < sizeof(etc_entries) / sizeof(etc_entries[0]); i++)
		init_mirror(a, etc_entries[i]);
	for (const char *p = sandbox_list_next(a->cfg->etc_extra, NULL); p != NULL;
	     p = sandbox_list_next(a->cfg->etc_extra, p))
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

static void init_loopback_up(const struct sandbox_init_args *a)
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

static void init_dev(const struct sandbox_init_args *a)
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
static void init_disk(const struct sandbox_init_args *a)
{
	init_mkdir(a, ".disk", 0700);
	if (mount("tmpfs", ".disk", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, a->disk_opts) < 0)
		init_fail(a, STEP_MOUNT, "mount the disk tmpfs on", a->root, errno);
	init_mkdir(a, ".disk/work", 0755);
	init_mkdir(a, ".disk/tmp", 0755);
	init_mkdir(a, ".disk/shm", 0755);
	if (chmod(".disk/tmp", 01777) < 0 || chmod(".disk/shm", 01777) < 0)
		init_fail(a, STEP_SETUP, "set the mode of", "/tmp", errno);
	/* A run with ids of its own writes where the worker writes the
	 * uploads (no one else sees this disk). */
	if (a->cfg->run_uid != a->cfg->uid && chmod(".disk/work", 0777) < 0)
		init_fail(a, STEP_SETUP, "set the mode of", SANDBOX_WORK, errno);
	init_mkdir(a, "work", 0755);
	init_mkdir(a, "tmp", 0755);
	if (mount(".disk/work", "work", NULL, MS_BIND, NULL) < 0)
		init_fail(a, STEP_MOUNT, "bind-mount the disk on", SANDBOX_WORK, errno);
	if (mount(".disk/tmp", "tmp", NULL, MS_BIND, NULL) < 0)
		init_fail(a, STEP_MOUNT, "bind-mount the disk on", "/tmp", errno);
}

static void init_proc(const struct sandbox_init_args *a)
{
	/* Read-only in the fresh /proc, as bubblewrap does: kernel settings
	 * (writable by a uid 0 mapped to itself even without capabilities). */
	static const char *const ro[] = { "proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus" };

	init_mkdir(a, "proc", 0555);
	/* The zygote has no pid namespace of its own to show. */
	if (!a->cfg->proc || a->zygote_fd >= 0)
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
 * system directory, an interpreter's directory (python_dirs), or a mirrored
 * entry of /etc.
 * Never what the interpreters' binds lie below. */
static int mask_applies(const struct sandbox_config *cfg, const char *host)
{
	int shown = path_under(host, "/usr") && strcmp(host, "/usr") != 0;

	for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
		shown |= path_under(host, system_dirs[i]) && strcmp(host, system_dirs[i]) != 0;
	for (size_t i = 0; i < sizeof(etc_entries) / sizeof(etc_entries[0]); i++)
		shown |= path_under(host, etc_entries[i]);
	for (const char *p = sandbox_list_next(cfg->etc_extra, NULL); p != NULL;
	     p = sandbox_list_next(cfg->etc_extra, p))
		shown |= path_under(host, p);
	for (const char *p = sandbox_list_next(cfg->python_dirs, NULL); p != NULL;
	     p = sandbox_list_next(cfg->python_dirs, p)) {
		if (path_under(p, host))
			return 0;
		shown |= path_under(host, p);
	}
	return shown;
}

/* The next path to mask (hidden_paths, then cfg->hide), NULL at the end;
 * *i starts at 0. */
static const char *mask_next(const struct sandbox_config *cfg, size_t *i, const char **cur)
{
	const size_t nfixed = sizeof(hidden_paths) / sizeof(hidden_paths[0]);

	if (*i < nfixed)
		return hidden_paths[(*i)++];
	*cur = sandbox_list_next(cfg->hide, *cur);
	return *cur;
}

/* Masks one path of pyexec's own where the new root shows it (seal 0),
 * or makes its mask read-only (seal 1: a directory's tmpfs). */
static void init_mask(const struct sandbox_init_args *a, const char *host, int seal)
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
static void init_masks(const struct sandbox_init_args *a)
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
static void init_masks_seal(const struct sandbox_init_args *a)
{
	const char *cur = NULL, *host;
	size_t i = 0;

	while ((host = mask_next(a->cfg, &i, &cur)) != NULL)
		init_mask(a, host, 1);
}

/* Everything that does not depend on the request, up to pivot_root: the
 * host's root stays reachable at /.host (for init alone) until init_enter.
 * Returns /work's fd. */
static int init_setup(const struct sandbox_init_args *a)
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
	for (const char *p = sandbox_list_next(cfg->python_dirs, NULL); p != NULL;
	     p = sandbox_list_next(cfg->python_dirs, p)) {
		init_mkdir_p(a, rel(p));
		init_bind_ro(a, p, rel(p));
	}
	/* pyexec's own modules, at a path of their own: a run learns nothing
	 * of where the server keeps them */
	if (cfg->figures_dir[0] != '\0') {
		init_mkdir(a, rel(FIGURES_SANDBOX_DIR), 0755);
		init_bind_ro(a, cfg->figures_dir, rel(FIGURES_SANDBOX_DIR));
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

/* The request's strings (see struct sandbox_req), each NUL-ended and
 * inside the q->len bytes received, into r. 0, or -1 when malformed. */
static int init_req_parse(const struct sandbox_req *q, struct init_req *r)
{
	size_t want = 2 + (size_t)q->argc + (size_t)q->envc, off = 0;

	for (size_t i = 0, k = 0; i < want; i++) {
		const char *str = init_req_strs + off;
		const char *nul = off < q->len ? memchr(str, '\0', q->len - off) : NULL;

		if (nul == NULL)
			return -1;
		off = (size_t)(nul - init_req_strs) + 1;
		if (i == 0)
			r->deps_path = str[0] != '\0' ? str : NULL;
		else if (i == 1)
			r->spec.path = str;
		else {
			r->vec[k++] = (char *)str;
			if (i == 1 + (size_t)q->argc)
				r->vec[k++] = NULL;
		}
	}
	r->vec[q->argc + q->envc + 1] = NULL;
	r->spec.argv = r->vec;
	r->spec.envp = r->vec + q->argc + 1;
	r->spec.lim = q->lim;
	r->spec.stdin_fd = -1;
	r->spec.watch_fd = -1;
	return 0;
}

/* Waits for the run's request (a spare waits here) and fills r. The
 * supervisor's end of file ends init quietly; a malformed request ends it
 * with a report. */
static void init_recv_request(const struct sandbox_init_args *a, struct init_req *r)
{
	struct sandbox_msg m;
	struct sandbox_req q;
	struct iovec iov[3] = {
		{ &m, sizeof(m) }, { &q, sizeof(q) }, { init_req_strs, sizeof(init_req_strs) }
	};
	int fds[SANDBOX_MSG_FDS] = { -1, -1, -1 };
	size_t nfd;
	ssize_t n = sandbox_msg_recv_fds(a->sock, iov, 3, fds, SANDBOX_MSG_FDS, &nfd);

	if (n == 0)
		_exit(1);             /* the supervisor let this sandbox go */
	if (n < 0 && errno != EMSGSIZE)
		init_fail(a, STEP_HANDSHAKE, "receive the run's request", NULL, errno);
	if (n < 0 || (size_t)n < sizeof(m) + sizeof(q) || m.type != MSG_REQUEST ||
	    q.len != (size_t)n - sizeof(m) - sizeof(q) || q.argc == 0 ||
	    q.argc > SANDBOX_REQ_VEC || q.envc > SANDBOX_REQ_VEC - q.argc ||
	    nfd != (q.has_stdin ? 3U : 2U) || init_req_parse(&q, r) < 0)
		init_fail(a, STEP_HANDSHAKE, "read the run's request", NULL, EPROTO);
	r->stdin_fd = q.has_stdin ? fds[0] : -1;
	r->out_w = fds[nfd - 2];
	r->err_w = fds[nfd - 1];
}

/* The request's part of the setup: its dependency entry bound read-only at
 * its own path, the host's root detached, the new root made read-only.
 * Then MSG_READY tells the supervisor the sandbox is ready. */
/* A dependency entry, read-only at its own path in the new root. */
static void init_bind_deps(const struct sandbox_init_args *a, const char *path)
{
	char src[PATH_MAX];

	if (old_root_path(src, sizeof(src), path) < 0)
		init_fail(a, STEP_SETUP, "bind-mount", path, ENAMETOOLONG);
	init_mkdir_p(a, rel(path));
	init_bind_ro_as(a, src, rel(path), path);
}

static void init_enter(const struct sandbox_init_args *a, const struct init_req *r)
{
	if (r->deps_path != NULL)
		init_bind_deps(a, r->deps_path);
	init_masks_seal(a);
	/* The host's root is gone for good. */
	if (umount2(SANDBOX_OLD_ROOT, MNT_DETACH) < 0)
		init_fail(a, STEP_MOUNT, "detach the old root", NULL, errno);
	if (rmdir(SANDBOX_OLD_ROOT) < 0)
		init_fail(a, STEP_SETUP, "remove", "/" SANDBOX_OLD_ROOT, errno);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
		  NULL) < 0)
		init_fail(a, STEP_MOUNT, "make the new root read-only", NULL, errno);
	/* Setup done. (/work is a bind of the disk tmpfs, not the root's
	 * mount: its fd, with the supervisor since MSG_WORK, stays writable.) */
	if (sandbox_msg_send(a->sock, MSG_READY) < 0)
		_exit(1);
}

/* The new root set up: /work's fd goes to the supervisor, which writes the
 * uploads through it, while init waits for its request. */
static void init_send_work(const struct sandbox_init_args *a, int wfd)
{
	struct sandbox_msg m;
	struct iovec iov = { &m, sizeof(m) };

	memset(&m, 0, sizeof(m));
	m.type = MSG_WORK;
	if (sandbox_msg_send_fds(a->sock, &iov, 1, &wfd, 1) < 0)
		_exit(1);
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
static void payload_main(const struct sandbox_init_args *a, const struct init_req *r)
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
	/* An execve would make the program dumpable again (its ids do not
	 * change in it); a program that does not exec says so itself. */
	if (a->payload_exec != NULL && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		asyncsafe_fail(STDERR_FILENO, "make the program dumpable", NULL, errno);
	/* Last: after it, nothing here may need a refused call. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, a->filter, 0, 0) < 0)
		asyncsafe_fail(STDERR_FILENO, "load the seccomp filter", NULL, errno);
	if (a->payload_exec != NULL)
		a->payload_exec(&copy);
	run_child_exec(&copy);
}

/* What a run with ids of its own made in /work becomes pyexec's, so that
 * the supervisor can collect it whatever its mode (tempfile makes 0600
 * files). Depth as deep as collect searches; nothing is followed. Uploads
 * the run left alone are pyexec's already and keep their times. */
static void init_give_back(const struct sandbox_init_args *a, int dfd, unsigned depth)
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

/* Up to the maps: init dies with the supervisor, holds none of its fds,
 * says hello and waits until its uid_map and gid_map are written. */
static void init_await_maps(const struct sandbox_init_args *a)
{
	const int keep[] = { a->sock, a->status_w, a->zygote_fd, a->log_fd };

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
	util_title_set(a->zygote_fd >= 0 ? "zygote" : "sandbox (spare)");
	if (sandbox_msg_send(a->sock, MSG_HELLO) < 0 ||
	    sandbox_msg_recv_type(a->sock) != MSG_MAPS)
		_exit(1);
	(void)prctl(PR_SET_DUMPABLE, 0);
}

/* Forks the payload and waits for it: its wait status. Orphans of the
 * program come here too; they are reaped on the way. */
/* Reaps until payload (> 0) has ended: its wait status. */
static int init_wait_payload(pid_t payload)
{
	int status = 0;
	pid_t r_pid;

	while (payload > 0) {
		r_pid = waitpid(-1, &status, __WALL);
		if (r_pid == payload)
			break;
		if (r_pid < 0 && errno != EINTR) {
			status = W_EXITCODE(127, 0);
			break;
		}
	}
	return status;
}

static int init_run_payload(const struct sandbox_init_args *a, const struct init_req *r)
{
	pid_t payload = fork();

	if (payload == 0)
		payload_main(a, r);
	if (payload < 0)
		asyncsafe_say(r->err_w, "start the program", NULL, errno);
	if (r->stdin_fd >= 0)
		(void)close(r->stdin_fd);
	(void)close(r->out_w);
	(void)close(r->err_w);
	return payload > 0 ? init_wait_payload(payload) : W_EXITCODE(127, 0);
}

/* When the program ends, so does every process it left. init kills and
 * reaps them itself rather than leave them to the namespace's end: the
 * kernel reaps those without accounting, and the CPU they burnt would be
 * missing from the run's (X-CPU-Time). A process that will not die keeps
 * init here until the supervisor's deadline kills it. */
static void init_end_leftovers(const struct sandbox_init_args *a)
{
	pid_t r_pid;

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
}

/* The request, the part of the setup it asks for, and the supervisor's
 * go: in init, or in a payload forked ahead. The umask back to umask_was. */
static void init_take_request(const struct sandbox_init_args *a, struct init_req *r,
			      mode_t umask_was)
{
	memset(r, 0, sizeof(*r));
	init_recv_request(a, r);
	util_title_set("sandbox");
	init_enter(a, r);
	if (sandbox_msg_recv_type(a->sock) != MSG_GO)
		_exit(1);
	(void)close(a->sock);
	(void)umask(umask_was);
}

/* From the maps on: the new root, the run's request, the payload. */
__attribute__((noreturn))
static void init_serve(const struct sandbox_init_args *a)
{
	struct init_req r;
	mode_t umask_was;
	int status;

	umask_was = umask(022);
	init_send_work(a, init_setup(a));
	/* Made ahead of its request, a sandbox waits here: init, or its
	 * payload forked ahead, which init then waits for. */
	if (a->payload_ahead != NULL) {
		pid_t payload = fork();

		if (payload == 0) {
			a->payload_ahead(a->sock);
			init_take_request(a, &r, umask_was);
			payload_main(a, &r);
		}
		if (payload < 0)
			init_fail(a, STEP_SETUP, "start the program", NULL, errno);
		(void)close(a->sock);
		status = init_wait_payload(payload);
	} else {
		init_take_request(a, &r, umask_was);
		status = init_run_payload(a, &r);
	}
	init_end_leftovers(a);
	(void)util_write_all(a->status_w, &status, sizeof(status));
	_exit(0);
}

void sandbox_init_main(const struct sandbox_init_args *a)
{
	init_await_maps(a);
	init_serve(a);
}

/* Every capability init has (all of them, in its user namespace) kept
 * through execve as an ambient one: the zygote is not root there. */
static void zygote_keep_caps(const struct sandbox_init_args *a)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		init_fail(a, STEP_SETUP, "read the capabilities", NULL, errno);
	data[0].inheritable = data[0].permitted;
	data[1].inheritable = data[1].permitted;
	if (syscall(SYS_capset, &hdr, data) < 0)
		init_fail(a, STEP_SETUP, "make the capabilities inheritable", NULL, errno);
	for (unsigned long cap = 0; cap < 64; cap++) {
		int have = (cap < 32 ? data[0].permitted >> cap
				     : data[1].permitted >> (cap - 32)) & 1;

		if (have && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			init_fail(a, STEP_SETUP, "keep the capabilities", NULL, errno);
	}
}

const char *sandbox_exec_zygote(int binary_fd, int log_fd, int sock, char *const *argv,
				char *const *envp)
{
	int p[2], in, log, s;

	if (pipe2(p, O_CLOEXEC) < 0)
		return "create the zygote's stdin";
	(void)close(p[1]);
	/* Above the numbers they go to, so that no dup2 closes another. */
	in = fcntl(p[0], F_DUPFD_CLOEXEC, ZYGOTE_SOCK_FD + 1);
	log = fcntl(log_fd, F_DUPFD_CLOEXEC, ZYGOTE_SOCK_FD + 1);
	s = fcntl(sock, F_DUPFD_CLOEXEC, ZYGOTE_SOCK_FD + 1);
	if (in < 0 || log < 0 || s < 0 || dup2(in, 0) < 0 || dup2(log, 1) < 0 ||
	    dup2(log, 2) < 0 || dup2(s, ZYGOTE_SOCK_FD) < 0)
		return "set up the zygote's fds";
	/* Nothing else goes with it, whatever its maker held at the time (a
	 * worker launches one while a request's connection is open). */
	{
		const int keep[] = { 0, 1, 2, ZYGOTE_SOCK_FD, binary_fd };

		asyncsafe_close_except(keep, sizeof(keep) / sizeof(keep[0]));
	}
	syscall(SYS_execveat, binary_fd, "", argv, envp, AT_EMPTY_PATH);
	return "execute the zygote";
}

void sandbox_init_zygote_main(const struct sandbox_init_args *a)
{
	const char *what;
	mode_t umask_was;
	int wfd;

	init_await_maps(a);
	umask_was = umask(022);
	wfd = init_setup(a);
	(void)close(wfd);
	/* A dependency set's zygote sees its entry where a run of the set does. */
	if (a->zygote_deps != NULL)
		init_bind_deps(a, a->zygote_deps);
	(void)umask(umask_was);
	/* Python starts where a run's does: its main.py is /work/main.py. */
	if (chdir(SANDBOX_WORK) < 0)
		init_fail(a, STEP_SETUP, "change directory to", SANDBOX_WORK, errno);
	zygote_keep_caps(a);
	/* Python sets its own up as it does in a run: from the defaults. */
	run_child_signals_default(a->log_fd);
	what = sandbox_exec_zygote(a->zygote_fd, a->log_fd, a->sock, a->zygote_argv,
				   a->zygote_envp);
	init_fail(a, STEP_SETUP, what, NULL, errno);
}

/* Back to the host's root, which the zygote's new root keeps at
 * SANDBOX_OLD_ROOT, with the zygote's root put at a->root and detached:
 * this sandbox is then set up from nothing, as one cloned by the
 * supervisor is. */
static void init_leave_zygote(const struct sandbox_init_args *a)
{
	if (chdir("/" SANDBOX_OLD_ROOT) < 0)
		init_fail(a, STEP_SETUP, "change directory to", "/" SANDBOX_OLD_ROOT, errno);
	if (syscall(SYS_pivot_root, ".", rel(a->root)) < 0)
		init_fail(a, STEP_MOUNT, "go back to the host's root from", a->root, errno);
	if (chdir("/") < 0)
		init_fail(a, STEP_SETUP, "change directory to", "/", errno);
	if (umount2(a->root, MNT_DETACH) < 0)
		init_fail(a, STEP_MOUNT, "detach the zygote's root from", a->root, errno);
}

void sandbox_init_warm_main(const struct sandbox_init_args *a)
{
	init_await_maps(a);
	if (a->new_cgroup_ns && unshare(CLONE_NEWCGROUP) < 0)
		init_fail(a, STEP_SETUP, "create a cgroup namespace", NULL, errno);
	init_leave_zygote(a);
	init_serve(a);
}
