#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asyncsafe.h"
#include "sandbox_proto.h"
#include "util.h"

/* One message from the other side; its type, 0 at end of file, -1 on error. */
int sandbox_msg_recv_type(int sock)
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

int sandbox_msg_send_text(int sock, int type, int err, int step, const char *text)
{
	struct sandbox_msg m;
	ssize_t w;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.err = err;
	m.step = step;
	if (text != NULL)
		(void)asyncsafe_cat(m.text, sizeof(m.text), 0, text);
	do
		w = send(sock, &m, sizeof(m), MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof(m) ? 0 : -1;
}

/* One message without payload, either way. */
int sandbox_msg_send(int sock, int type)
{
	return sandbox_msg_send_text(sock, type, 0, 0, NULL);
}

/* One message of iov's parts with nfd fds (SCM_RIGHTS; none when 0), either
 * way; the bytes sent, or -1. */
ssize_t sandbox_msg_send_fds(int sock, struct iovec *iov, size_t niov, const int *fds,
			     size_t nfd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * SANDBOX_MSG_FDS)];
	struct msghdr mh;
	struct cmsghdr *c;
	ssize_t w;

	if (nfd > SANDBOX_MSG_FDS) {
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

size_t sandbox_msg_take_fds(const struct msghdr *mh, int *fds, size_t max)
{
	size_t n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t off = 0; off + sizeof(int) <= c->cmsg_len - CMSG_LEN(0);
		     off += sizeof(int)) {
			int got;

			memcpy(&got, CMSG_DATA(c) + off, sizeof(int));
			if (n < max)
				fds[n++] = got;
			else
				(void)close(got);
		}
	}
	return n;
}

ssize_t sandbox_msg_recv_fds(int sock, struct iovec *iov, size_t niov, int *fds, size_t max,
			     size_t *nfd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * SANDBOX_MSG_FDS)];
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = iov;
	mh.msg_iovlen = niov;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	*nfd = 0;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	*nfd = sandbox_msg_take_fds(&mh, fds, max);
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		while (*nfd > 0)
			(void)close(fds[--*nfd]);
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/* Waits until sock is readable or deadline has passed: 0, or -1 with
 * errno (ETIMEDOUT). */
static int wait_readable(int sock, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN, .revents = 0 };
		int64_t left = deadline - util_now_ns();
		/* A deadline already past still looks once: a message already
		 * there is taken. */
		int r = poll(&pfd, 1, left <= 0 ? 0 : (int)(left / 1000000 + 1));

		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			return 0;
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

int sandbox_msg_recv(int sock, int64_t deadline, struct sandbox_msg *m, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr mh;
	ssize_t n;

	*fd = -1;
	if (wait_readable(sock, deadline) < 0)
		return -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ECONNRESET) {
		/* A peer that closed with messages unread leaves the socket
		 * reset: the kernel says so once, ahead of the messages still
		 * queued for us (the peer's error among them). */
		do
			n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			errno = ECONNRESET;
			return -1;
		}
	}
	if (n < 0)
		return -1;
	(void)sandbox_msg_take_fds(&mh, fd, 1);
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
