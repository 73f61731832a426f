#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "util.h"

int listen_is_socket(int fd)
{
	int v = 0, type = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
		return 0;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return 0;
	return 1;
}

/* Makes the directory that will hold the socket at path, and its parents. */
static int mkdir_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	return util_mkdir_p(dir, 0755);
}

static int listen_unix(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "listen: unix socket path '%s' must be absolute and under %zu bytes",
			 path, sizeof(sun.sun_path));
		return -1;
	}
	if (mkdir_parent(path) < 0) {
		snprintf(err, errlen, "listen: cannot create the directory of %s: %s", path,
			 strerror(errno));
		return -1;
	}
	/* A socket file left by an earlier run is replaced; anything else is not ours. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "listen: %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen: socket: %s", strerror(errno));
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, 0660) < 0 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0) ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "listen: %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_tcp(const char *hostport, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned sslen;
	int fd, one = 1;

	if (util_parse_hostport(hostport, &ss, &sslen) < 0) {
		snprintf(err, errlen, "listen: '%s' is not HOST:PORT (127.0.0.1:9000 or [::1]:9000)",
			 hostport);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "listen: tcp:%s: %s", hostport, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Set when the socket came from systemd, for listen_describe. */
static int listen_from_systemd;

/* Why fd is not a listening stream socket, as the end of a sentence. */
static const char *listen_why_not(int fd)
{
	struct stat st;
	int v = 0, type = 0;
	socklen_t len = sizeof(v);

	if (fstat(fd, &st) < 0)
		return errno == EBADF ? "is not open" : "cannot be examined";
	if (!S_ISSOCK(st.st_mode))
		return "is not a socket";
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type != SOCK_STREAM)
		return "is not a stream socket (the .socket unit must use ListenStream=)";
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && !v)
		return "is a socket that is not listening (the .socket unit must have Accept=no)";
	return "is not a listening stream socket";
}

/* The sd_listen_fds(3) protocol, without libsystemd: the sockets are for
 * this process when LISTEN_PID is its pid, and LISTEN_FDS of them start at
 * fd SD_LISTEN_FDS_START (3). LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are
 * removed from the environment in every case (as sd_listen_fds(1) does), so
 * no child sees them. Returns 1 with *fd (CLOEXEC) when pyexec was
 * socket-activated, 0 when not, -1 with a sentence in err. */
static int listen_systemd(const char *addr, int *fd, char *err, size_t errlen)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	char shown[UTIL_SHOWN_MAX + 8];
	uint64_t pid, n;
	int rc = 0;

	if (pid_s == NULL || fds_s == NULL ||
	    util_parse_uint(pid_s, strlen(pid_s), 1, INT_MAX, &pid) != UTIL_NUM_OK ||
	    (pid_t)pid != getpid())
		goto out;       /* not socket-activated, or meant for another process */
	if (util_parse_uint(fds_s, strlen(fds_s), 0, INT_MAX - SD_LISTEN_FDS_START, &n) !=
	    UTIL_NUM_OK) {
		snprintf(err, errlen, "listen: LISTEN_FDS='%s' (from systemd) is not a number of "
			 "sockets", util_shown(fds_s, strlen(fds_s), shown, sizeof(shown)));
		rc = -1;
		goto out;
	}
	if (n == 0)
		goto out;
	if (addr[0] != '\0') {
		snprintf(err, errlen, "listen: both a socket from systemd (LISTEN_FDS=%llu) and "
			 "listen = '%s' were given; remove the listen key and -l (the .socket unit "
			 "says where to listen), or start pyexec without its .socket unit",
			 (unsigned long long)n, util_shown(addr, strlen(addr), shown, sizeof(shown)));
		rc = -1;
		goto out;
	}
	if (n > 1) {
		snprintf(err, errlen, "listen: systemd passed %llu sockets (LISTEN_FDS=%llu); pyexec "
			 "listens on exactly one: give its .socket unit a single ListenStream=",
			 (unsigned long long)n, (unsigned long long)n);
		rc = -1;
		goto out;
	}
	if (!listen_is_socket(SD_LISTEN_FDS_START)) {
		snprintf(err, errlen, "listen: fd %d, passed by systemd (LISTEN_FDS=1), %s",
			 SD_LISTEN_FDS_START, listen_why_not(SD_LISTEN_FDS_START));
		rc = -1;
		goto out;
	}
	util_set_cloexec(SD_LISTEN_FDS_START);
	*fd = SD_LISTEN_FDS_START;
	rc = 1;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}

const char *listen_describe(const char *addr, const char *unix_path, int fd)
{
	static char buf[32];

	if (addr[0] != '\0')
		return addr;
	if (unix_path[0] != '\0')
		return unix_path;
	if (listen_from_systemd)
		snprintf(buf, sizeof(buf), "fd %d from systemd", fd);
	else
		snprintf(buf, sizeof(buf), "fd %d", fd);
	return buf;
}

int listen_open(const char *addr, uid_t uid, gid_t gid, char *unix_path, size_t pathlen,
		char *err, size_t errlen)
{
	uint64_t n;
	int fd, r;

	unix_path[0] = '\0';
	/* Socket activation first: systemd made the socket (its owner and
	 * mode are the .socket unit's), and an explicit address besides it
	 * is a contradiction. */
	r = listen_systemd(addr, &fd, err, errlen);
	if (r != 0) {
		listen_from_systemd = r > 0;
		return r > 0 ? fd : -1;
	}
	if (addr[0] == '\0') {
		/* Started by a web server (lighttpd bin-path, mod_fcgid): the
		 * listening socket is fd 0. */
		if (listen_is_socket(0)) {
			util_set_cloexec(0);
			return 0;
		}
		addr = LISTEN_DEFAULT;
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		fd = listen_unix(addr + 5, uid, gid, err, errlen);

		if (fd >= 0)
			snprintf(unix_path, pathlen, "%s", addr + 5);
		return fd;
	}
	if (strncmp(addr, "tcp:", 4) == 0)
		return listen_tcp(addr + 4, err, errlen);
	if (strncmp(addr, "fd:", 3) == 0) {
		if (util_parse_uint(addr + 3, strlen(addr + 3), 0, INT_MAX, &n) != UTIL_NUM_OK) {
			snprintf(err, errlen, "listen: '%s' is not fd:N", addr);
			return -1;
		}
		if (!listen_is_socket((int)n)) {
			snprintf(err, errlen, "listen: fd %d is not a listening stream socket", (int)n);
			return -1;
		}
		util_set_cloexec((int)n);
		return (int)n;
	}
	snprintf(err, errlen, "listen: '%s' must start with unix:, tcp: or fd:", addr);
	return -1;
}
