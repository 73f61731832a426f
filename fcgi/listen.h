/* listen: the socket the web server connects to. */
#ifndef PYEXEC_LISTEN_H
#define PYEXEC_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#define LISTEN_DEFAULT "unix:" RUNSTATEDIR "/pyexec/pyexec.sock"
#define LISTEN_BACKLOG 128

#define SD_LISTEN_FDS_START 3   /* the first socket systemd passes */

/* Opens the listening socket for addr: "unix:/path" (a stale socket file is
 * replaced; the socket is chowned to uid:gid when they are not -1, mode
 * 0660), "tcp:HOST:PORT" (IPv4 or [IPv6]), "fd:N" (an inherited listening
 * socket), or "" (fd 0 when the web server started us on a socket, else
 * LISTEN_DEFAULT). Returns the fd (CLOEXEC), or -1 with a sentence in err.
 * *unix_path receives the socket path to unlink at exit ("" otherwise).
 *
 * Socket activation (sd_listen_fds(3), no libsystemd) comes first: when
 * LISTEN_PID is our pid and LISTEN_FDS is positive, the socket is fd 3 and
 * addr must be "" (both given is an error), exactly one socket must be
 * passed, and it must be a listening stream socket. systemd owns that
 * socket (SocketUser=, SocketMode=): uid and gid are not applied and
 * nothing is unlinked at exit. LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
 * are unset in every case, so call this before any child is started. */
int listen_open(const char *addr, uid_t uid, gid_t gid, char *unix_path, size_t pathlen,
		char *err, size_t errlen);

/* For the start-up log line: addr, else the unix socket's path, else
 * "fd N" or "fd N from systemd". */
const char *listen_describe(const char *addr, const char *unix_path, int fd);

/* 1 when fd is a listening stream socket. */
int listen_is_socket(int fd);

#endif
