#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "asyncsafe.h"

#define KEEP_MAX 8

size_t asyncsafe_cat(char *dst, size_t cap, size_t n, const char *s)
{
	while (s != NULL && *s != '\0' && n + 1 < cap)
		dst[n++] = *s++;
	dst[n] = '\0';
	return n;
}

const char *asyncsafe_strerror(int err)
{
	const char *s = strerrordesc_np(err);

	return s != NULL ? s : "Unknown error";
}

size_t asyncsafe_errmsg(char *dst, size_t cap, const char *what, const char *arg, int err)
{
	size_t n = asyncsafe_cat(dst, cap, 0, "cannot ");

	n = asyncsafe_cat(dst, cap, n, what);
	if (arg != NULL) {
		n = asyncsafe_cat(dst, cap, n, " ");
		n = asyncsafe_cat(dst, cap, n, arg);
	}
	n = asyncsafe_cat(dst, cap, n, ": ");
	return asyncsafe_cat(dst, cap, n, asyncsafe_strerror(err));
}

void asyncsafe_say(int fd, const char *what, const char *arg, int err)
{
	static const char prefix[] = "pyexec: ";
	char msg[ASYNCSAFE_MSG_MAX];
	size_t n = asyncsafe_cat(msg, sizeof(msg) - 1, 0, prefix);
	ssize_t w;

	n += asyncsafe_errmsg(msg + n, sizeof(msg) - 1 - n, what, arg, err);
	msg[n++] = '\n';
	do
		w = write(fd, msg, n);
	while (w < 0 && errno == EINTR);
}

void asyncsafe_fail(int fd, const char *what, const char *arg, int err)
{
	asyncsafe_say(fd, what, arg, err);
	_exit(127);
}

/* keep's fds, without -1 and repeats, in ascending order into k; their
 * number. */
static size_t keep_sorted(const int *keep, size_t nkeep, int k[KEEP_MAX])
{
	size_t n = 0;

	for (size_t i = 0; i < nkeep && n < KEEP_MAX; i++) {
		size_t j;

		if (keep[i] < 0)
			continue;
		for (j = 0; j < n && k[j] != keep[i]; j++)
			;
		if (j < n)
			continue;
		for (j = n; j > 0 && k[j - 1] > keep[i]; j--)
			k[j] = k[j - 1];
		k[j] = keep[i];
		n++;
	}
	return n;
}

static int kept(const int *k, size_t n, long fd)
{
	for (size_t i = 0; i < n; i++)
		if (k[i] == fd)
			return 1;
	return 0;
}

/* close_range over each gap between the kept fds; -1 when the kernel has
 * none (then the gaps before are closed already, and closing them again
 * is harmless). */
static int close_gaps(const int *k, size_t n)
{
	unsigned lo = 0;

	for (size_t i = 0; i <= n; i++) {
		unsigned hi = i < n ? (unsigned)k[i] : ~0U;

		if (hi > lo && close_range(lo, hi - 1, 0) < 0)
			return -1;
		if (i < n)
			lo = (unsigned)k[i] + 1;
	}
	return 0;
}

/* The open fds, as /proc lists them; -1 without /proc. */
static int close_listed(const int *k, size_t n)
{
	char buf[4096] __attribute__((aligned(8)));
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long got;

	if (dfd < 0)
		return -1;
	while ((got = getdents64(dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			struct dirent64 *de = (struct dirent64 *)(void *)(buf + off);
			const char *p = de->d_name;
			long fd = 0;

			off += de->d_reclen;
			if (*p < '0' || *p > '9')
				continue;
			for (; *p >= '0' && *p <= '9' && fd <= 0x7fffffff; p++)
				fd = fd * 10 + (*p - '0');
			if (fd != dfd && !kept(k, n, fd))
				(void)close((int)fd);
		}
	}
	(void)close(dfd);
	return 0;
}

void asyncsafe_close_except(const int *keep, size_t nkeep)
{
	int k[KEEP_MAX];
	size_t n = keep_sorted(keep, nkeep, k);
	long max;

	if (close_gaps(k, n) == 0 || close_listed(k, n) == 0)
		return;
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (long fd = 0; fd < max; fd++)
		if (!kept(k, n, fd))
			(void)close((int)fd);
}
