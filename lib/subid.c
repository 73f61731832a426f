#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "subid.h"
#include "util.h"

/* What the helper may print before it is cut, and how long it may take. */
#define SUBID_MSG_MAX 256
#define SUBID_MAP_TIMEOUT_MS 5000

/* A decimal id of at most 32 bits, the whole of [s, end). */
static int parse_id(const char *s, const char *end, unsigned long *out)
{
	uint64_t v;

	/* at most the 10 digits of 2^32 - 1, leading zeros included */
	if (end - s > 10 ||
	    util_parse_uint(s, (size_t)(end - s), 0, 0xffffffffUL, &v) != UTIL_NUM_OK)
		return -1;
	*out = (unsigned long)v;
	return 0;
}

/* One "owner:first:count" line (no newline) of name or id: 1 with the
 * range, 0 for a line of someone else or one that does not parse. */
static int parse_line(const char *line, const char *name, unsigned long id,
		      unsigned long *first, unsigned long *count)
{
	const char *c1 = strchr(line, ':'), *c2, *end = line + strlen(line);
	unsigned long owner;

	if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL)
		return 0;
	if (!((name != NULL && (size_t)(c1 - line) == strlen(name) &&
	       memcmp(line, name, strlen(name)) == 0) ||
	      (parse_id(line, c1, &owner) == 0 && owner == id)))
		return 0;
	return parse_id(c1 + 1, c2, first) == 0 && parse_id(c2 + 1, end, count) == 0;
}

int subid_find(const char *path, const char *name, unsigned long owner, unsigned long own,
	       unsigned need, unsigned long *first)
{
	char line[SUBID_LINE_MAX + 2];
	FILE *f = fopen(path, "re");
	int skipping = 0;

	if (f == NULL)
		return -1;
	for (unsigned n = 0; n < SUBID_LINES_MAX && fgets(line, sizeof(line), f) != NULL; n++) {
		size_t len = strlen(line);
		unsigned long s, count;

		if (len == 0 || line[len - 1] != '\n') {
			/* too long (or the last line without a newline) */
			skipping = len + 1 >= sizeof(line);
			if (skipping)
				continue;
		} else {
			line[--len] = '\0';
			if (skipping) {
				skipping = 0;
				continue;
			}
		}
		if (!parse_line(line, name, owner, &s, &count) || count < need || need == 0)
			continue;
		/* Never 0 (root), never pyexec's own id, never past 2^32 - 1. */
		if (s == 0 || s + need - 1 > 0xfffffffeUL || (own >= s && own < s + need))
			continue;
		*first = s;
		fclose(f);
		return 0;
	}
	if (ferror(f)) {
		int saved = errno;

		fclose(f);
		errno = saved;
		return -1;
	}
	fclose(f);
	errno = ENOENT;
	return -1;
}

int subid_map(pid_t pid, int gid, unsigned long own, unsigned long run, char *err,
	      size_t errlen)
{
	const char *tool = gid ? SUBID_NEWGIDMAP : SUBID_NEWUIDMAP;
	char spid[24], sown[24], srun[24], one[] = "1";
	char *argv[] = { (char *)tool, spid, sown, sown, one, srun, srun, one, NULL };
	char *envp[] = { NULL };
	char msg[SUBID_MSG_MAX], shown[2 * SUBID_MSG_MAX], sink[64];
	size_t got = 0;
	int p[2], st = 0, saved;
	int64_t until;
	pid_t child;

	snprintf(spid, sizeof(spid), "%ld", (long)pid);
	snprintf(sown, sizeof(sown), "%lu", own);
	snprintf(srun, sizeof(srun), "%lu", run);
	if (pipe2(p, O_CLOEXEC) < 0) {
		util_errorf(err, errlen, "%s: pipe: %s", tool, strerror(errno));
		return -1;
	}
	child = fork();
	if (child == 0) {
		/* stdout and stderr into the pipe, stdin from nothing */
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(127);
		execve(tool, argv, envp);
		_exit(127);
	}
	saved = errno;
	(void)close(p[1]);
	if (child < 0) {
		(void)close(p[0]);
		util_errorf(err, errlen, "%s: fork: %s", tool, strerror(saved));
		return -1;
	}
	/* Its output, kept up to msg's size, until it closes the pipe. */
	until = util_now_ns() + (int64_t)SUBID_MAP_TIMEOUT_MS * 1000000;
	for (;;) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		int64_t left = (until - util_now_ns()) / 1000000;
		int room = got < sizeof(msg);
		ssize_t n;

		if (left <= 0) {
			(void)kill(child, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			break;
		n = read(p[0], room ? msg + got : sink, room ? sizeof(msg) - got : sizeof(sink));
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
		if (n > 0 && room)
			got += (size_t)n;
	}
	(void)close(p[0]);
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	while (got > 0 && (msg[got - 1] == '\n' || msg[got - 1] == ' '))
		got--;
	util_sanitize(msg, got, shown, sizeof(shown));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && got == 0)
		util_errorf(err, errlen, "cannot run %s (is uidmap installed?)", tool);
	else
		util_errorf(err, errlen, "%s %s %s %s 1 %s %s 1 failed: %s", tool, spid, sown,
			    sown, srun, srun, got > 0 ? shown : "no message");
	return -1;
}
