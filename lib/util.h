/* util: small helpers shared by the modules of lib/. */
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

/* Monotonic clock in nanoseconds. */
int64_t util_now_ns(void);

/* Parses a decimal unsigned integer with an optional K/M/G suffix (powers of
 * 1024) into *out; the whole string must be consumed and the result must be
 * <= max. 0, or -1 (malformed or over max). */
int util_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parses a decimal number of seconds ("10", "0.5", "2.250") into
 * milliseconds; at most 3 decimals, result <= max_ms. 0 or -1. */
int util_parse_seconds_ms(const char *s, uint64_t max_ms, uint64_t *out_ms);

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

#endif
