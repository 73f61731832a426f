/* sandbox_proto: the messages between the supervisor (a worker) and the
 * sandbox's init, on a SOCK_SEQPACKET socket pair made before clone: one
 * message per send, each starting with a struct sandbox_msg.
 *
 *   message      way               carries                      when
 *   -----------  ----------------  ---------------------------  --------------------------
 *   MSG_HELLO    init -> sup       nothing                      init runs, and is dumpable:
 *                                                               its uid_map and gid_map
 *                                                               may be written
 *   MSG_MAPS     sup -> init       nothing                      the maps are written: init
 *                                                               sets up the new root
 *   MSG_WORK     init -> sup       SCM_RIGHTS: /work's fd       the new root is set up: the
 *                                                               supervisor writes the
 *                                                               uploads in (a spare waits
 *                                                               for its request here)
 *   MSG_REQUEST  sup -> init       struct sandbox_req, its      the run
 *                                  strings; SCM_RIGHTS: stdin
 *                                  (when has_stdin), stdout's
 *                                  and stderr's pipes
 *   MSG_READY    init -> sup       nothing                      the request's part of the
 *                                                               setup is done
 *   MSG_GO       sup -> init       nothing                      init forks the payload
 *   MSG_ERROR    init -> sup       err, step, text              a setup step failed (any
 *                                                               time after MSG_MAPS);
 *                                                               init then exits 1
 *
 * End of file either way ends the exchange: the supervisor let the sandbox
 * go (init exits 1), or init is gone (the supervisor reports how far it
 * got). After MSG_GO, the socket is closed and init writes one int, the
 * payload's wait status, on a pipe of its own (sandbox_run.status_fd)
 * when the payload has ended and every process it left has been reaped.
 *
 * The functions here are async-signal-safe: init calls them too. */
#ifndef PYEXEC_SANDBOX_PROTO_H
#define PYEXEC_SANDBOX_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "run.h"

/* Where a sandbox's setup failed (MSG_ERROR's step, sandbox_run's
 * failed_step): sandbox_probe gives advice by it. */
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

enum { MSG_HELLO = 1, MSG_MAPS, MSG_READY, MSG_ERROR, MSG_GO, MSG_REQUEST, MSG_WORK };

#define SANDBOX_MSG_TEXT  200          /* bytes of MSG_ERROR's text */
#define SANDBOX_MSG_FDS   4            /* most fds one message carries */
#define SANDBOX_REQ_MAX   (64 * 1024)  /* bytes of a request's strings */
#define SANDBOX_REQ_VEC   256          /* argv + envp entries */

struct sandbox_msg {
	int type;
	int err;                     /* MSG_ERROR: errno */
	int step;                    /* MSG_ERROR: enum sandbox_step */
	char text[SANDBOX_MSG_TEXT]; /* MSG_ERROR: "cannot ..." */
};

/* MSG_REQUEST, after the struct sandbox_msg: the run's limits and the
 * number of its strings, then len bytes of NUL-ended strings: the
 * dependency entry ("" for none), the program's path, argv, envp. */
struct sandbox_req {
	struct run_limits lim;
	uint32_t argc, envc;
	uint32_t has_stdin;
	uint32_t len;
};

/* Sends a message of type with nothing more. 0, or -1 with errno. */
int sandbox_msg_send(int sock, int type);

/* Sends a message of type with its err, step and text (NULL: none; cut to
 * SANDBOX_MSG_TEXT - 1 bytes). 0, or -1 with errno. */
int sandbox_msg_send_text(int sock, int type, int err, int step, const char *text);

/* Sends one message of iov's parts with nfd (at most SANDBOX_MSG_FDS) fds
 * as SCM_RIGHTS (none when 0). The bytes sent, or -1 with errno. */
ssize_t sandbox_msg_send_fds(int sock, struct iovec *iov, size_t niov, const int *fds,
			     size_t nfd);

/* Receives a message without fds: its type, 0 at end of file, -1 on error
 * or when it is not a whole struct sandbox_msg. */
int sandbox_msg_recv_type(int sock);

/* The fds a received message carries (SCM_RIGHTS): the first max into
 * fds, the others closed. How many are in fds. */
size_t sandbox_msg_take_fds(const struct msghdr *mh, int *fds, size_t max);

/* Receives one message into iov's niov parts (EINTR retried) with its fds
 * (CLOEXEC): the first max (at most SANDBOX_MSG_FDS) into fds, *nfd of
 * them, the others closed. The bytes received, 0 at end of file, or -1
 * with errno: EMSGSIZE when the message or its fds did not fit (nothing is
 * then left open). */
ssize_t sandbox_msg_recv_fds(int sock, struct iovec *iov, size_t niov, int *fds, size_t max,
			     size_t *nfd);

/* The supervisor's receive: waits until deadline (util_now_ns; one past
 * takes a message that is there already) for a message into m, the first
 * fd it carries (-1 if none; others are closed) into *fd. 0, or -1 with
 * errno: ETIMEDOUT, or EPIPE at end of file or for a message that is not
 * a whole struct sandbox_msg. */
int sandbox_msg_recv(int sock, int64_t deadline, struct sandbox_msg *m, int *fd);

#endif
