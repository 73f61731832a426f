/* listen: the socket the web server connects to. */
#ifndef PYEXEC_LISTEN_H
#define PYEXEC_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

#define LISTEN_DEFAULT "unix:/run/pyexec/pyexec.sock"
#define LISTEN_BACKLOG 128

/* Opens the listening socket for addr: "unix:/path" (a stale socket file is
 * replaced; the socket is chowned to uid:gid when they are not -1, mode
 * 0660), "tcp:HOST:PORT" (IPv4 or [IPv6]), "fd:N" (an inherited listening
 * socket), or "" (fd 0 when the web server started us on a socket, else
 * LISTEN_DEFAULT). Returns the fd (CLOEXEC), or -1 with a sentence in err.
 * *unix_path receives the socket path to unlink at exit ("" otherwise). */
int listen_open(const char *addr, uid_t uid, gid_t gid, char *unix_path, size_t pathlen,
		char *err, size_t errlen);

/* 1 when fd is a listening stream socket. */
int listen_is_socket(int fd);

#endif
