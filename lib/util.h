/* util: small helpers shared by the modules of lib/: random bytes, whole
 * writes, the clock, fds, error sentences, the process title. The parsers
 * (parse.h) and the file helpers (files.h) come with it. */
#ifndef PYEXEC_UTIL_H
#define PYEXEC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fills buf with len random bytes from getrandom(2); 0, or -1 with errno. */
int util_random(void *buf, size_t len);

/* Writes 2*len lowercase hex digits of len random bytes and a NUL into out
 * (which holds at least 2*len+1 bytes); 0, or -1 with errno. */
int util_random_hex(char *out, size_t len);

/* Writes all of buf to fd, retrying on EINTR and short writes; 0 or -1. */
int util_write_all(int fd, const void *buf, size_t len);

/* Whether two NULL-ended vectors of strings (an argv, an environment) hold
 * the same strings in the same order: 1, or 0. */
int util_same_strings(char *const *a, char *const *b);

/* Monotonic clock in nanoseconds. */
int64_t util_now_ns(void);

/* The value of the hex digit c (either case), or -1. */
static inline int util_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A blank inside an HTTP header or a query value: space or tab. */
static inline int util_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A blank on a line of a text file pyexec reads (pyexec.conf, the tokens
 * file): space, tab, and the CR of a CRLF line end. */
static inline int util_is_line_blank(char c)
{
	return util_is_blank(c) || c == '\r';
}

/* A limit's value as a string literal, for a fixed message that names it:
 * "longer than " UTIL_STR(NAMES_PATH_MAX) " bytes". */
#define UTIL_STR(x) UTIL_STR_(x)
#define UTIL_STR_(x) #x

#define UTIL_PORT_MAX 65535       /* the largest TCP port */

/* The PATH of every program pyexec starts (pip, python, the payload). */
#define UTIL_PATH "/usr/local/bin:/usr/bin:/bin"

/* close(fd) when fd >= 0, keeping errno as it was: for the error paths that
 * report the errno of what failed before. Async-signal-safe. */
void util_close_keep_errno(int fd);

/* "SIGKILL", or "SIG<n>" for a number libc has no name for, written into
 * buf (len bytes) and returned; "SIG?" when buf is NULL. */
const char *util_signal_name(int sig, char *buf, size_t len);

/* Sets FD_CLOEXEC / O_NONBLOCK on fd; 0 or -1. */
int util_set_cloexec(int fd);
int util_set_nonblock(int fd);

/* vsnprintf into err (errlen bytes) when err is not NULL: the one way the
 * modules fill their error sentences. */
void util_errorf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define UTIL_SHOWN_MAX 64   /* bytes of outside text quoted by util_shown */

/* Quotes outside text (a config value, a query key) in a message: bytes
 * other than printable ASCII become '?', and only the first UTIL_SHOWN_MAX
 * bytes are kept, then "...". Writes into buf (buflen bytes, at least
 * UTIL_SHOWN_MAX + 4 for the whole quote) and returns it. */
const char *util_shown(const char *s, size_t len, char *buf, size_t buflen);

/* Copies len bytes of client text into out (outlen bytes, NUL-ended) for a
 * log line or an error detail: printable ASCII is kept except '"' and '\\',
 * which, like every other byte, become "\\xNN"; cut with "..." when long. */
void util_sanitize(const void *in, size_t len, char *out, size_t outlen);

/* Process titles (what `ps` and /proc/<pid>/cmdline show). title_init
 * takes over the space of argv's strings, wipes them (arguments may carry
 * secrets) and leaves argv[1..] NULL: call it once the arguments are
 * parsed. title_set shows "<program>: <what>", cut to that space; it only
 * writes memory (async-signal-safe), and does nothing before title_init. */
void util_title_init(int argc, char **argv, const char *program);
void util_title_set(const char *what);

#include "parse.h"
#include "files.h"

#endif
