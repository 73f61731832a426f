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

/* What a number parser found wrong, strtonum's three answers and one more:
 * UTIL_NUM_INVALID (not the syntax: empty, a sign, a blank, a stray
 * character), UTIL_NUM_TOO_SMALL (< min), UTIL_NUM_TOO_LARGE (> max, or past
 * what 64 bits hold), UTIL_NUM_DECIMALS (seconds with more than UTIL_SECONDS_DECIMALS). */
enum util_num {
	UTIL_NUM_OK,
	UTIL_NUM_INVALID,
	UTIL_NUM_TOO_SMALL,
	UTIL_NUM_TOO_LARGE,
	UTIL_NUM_DECIMALS,
};

/* "invalid", "too small", "too large", "too many decimals" (or "" for OK). */
const char *util_num_error(enum util_num e);

/* The strtonum of pyexec: the whole of s[0..len) must be decimal digits (no
 * sign, no blanks, no suffix), its value in [min, max]. Sets *out on OK
 * only. Over max is checked before under min. */
enum util_num util_parse_uint(const char *s, size_t len, uint64_t min, uint64_t max,
			      uint64_t *out);

/* Parses a size: a decimal unsigned integer with an optional K/M/G suffix
 * (powers of 1024) into *out; the whole string must be consumed and the
 * result must be <= max. 0, or -1 (malformed or over max). A plain integer
 * is util_parse_uint's. */
int util_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parses s[0..len), a decimal number of seconds ("10", "0.5", "2.250"),
 * into milliseconds in [0, max_ms]: digits, then optionally '.' and 1 to
 * UTIL_SECONDS_DECIMALS digits. Leading zeros are allowed; too many digits
 * is TOO_LARGE, not a wrap. Sets *out_ms on OK only. */
enum util_num util_parse_seconds(const char *s, size_t len, uint64_t max_ms,
				 uint64_t *out_ms);

/* Writes ms as seconds in the fewest decimals that say it exactly ("10",
 * "0.5", "2.25", "0.001"), the form util_parse_seconds reads back. */
#define UTIL_SECONDS_LEN 32   /* room for any uint64_t of ms */
void util_format_seconds(char *buf, size_t buflen, uint64_t ms);

/* Writes ms as seconds with always 3 decimals ("0.500", "12.000"): the
 * form of the times in a reply (X-Execution-Time, "time"). */
void util_format_seconds_fixed(char *buf, size_t buflen, uint64_t ms);

struct sockaddr_storage;

/* Parses "HOST:PORT", HOST an IPv4 address or a bracketed IPv6 one
 * ("127.0.0.1:9000", "[::1]:9000"), PORT 1 to 65535 in digits only, into
 * *ss (family, address and port set, the rest zeroed) and *sslen. 0, or -1
 * when s is not that. */
int util_parse_hostport(const char *s, struct sockaddr_storage *ss, unsigned *sslen);

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

#define UTIL_SECONDS_DECIMALS 3   /* decimals of seconds read: milliseconds */
#define UTIL_PORT_MAX 65535       /* the largest TCP port */

/* The PATH of every program pyexec starts (pip, python, the payload). */
#define UTIL_PATH "/usr/local/bin:/usr/bin:/bin"

/* close(fd) when fd >= 0, keeping errno as it was: for the error paths that
 * report the errno of what failed before. Async-signal-safe. */
void util_close_keep_errno(int fd);

/* Opens the directory that holds path's last component (O_RDONLY,
 * O_DIRECTORY, O_CLOEXEC; path's other components are followed). Copies
 * path into buf (buflen bytes) and points *name at the last component in
 * it. The fd, or -1 with errno (ENAMETOOLONG, or EINVAL when path has no
 * '/'). */
int util_open_parent(const char *path, char *buf, size_t buflen, char **name);

/* mkdir -p: makes path (absolute or relative) and every missing parent;
 * parents get 0755, the last component mode. An existing directory is
 * fine. 0, or -1 with errno (ENAMETOOLONG past PATH_MAX). */
int util_mkdir_p(const char *path, mode_t mode);

/* Reads at most buflen-1 bytes of fd from offset 0 (pread: the offset of
 * fd is left as it was) into buf, NUL-ended: "" when nothing could be read.
 * For the short outputs of the programs pyexec runs for itself. */
void util_read_text(int fd, char *buf, size_t buflen);

/* Which step of util_read_file failed; errno says why. */
enum util_read {
	UTIL_READ_OK,
	UTIL_READ_OPEN,
	UTIL_READ_STAT,
	UTIL_READ_DIR,          /* a directory */
	UTIL_READ_NOT_REGULAR,  /* not a regular file (only when asked) */
	UTIL_READ_NOMEM,
	UTIL_READ_READ,
	UTIL_READ_TOO_LARGE,    /* more than max bytes */
};

/* Reads the whole file at path, at most max bytes, into a malloc'd buffer
 * (*out, owned by the caller, NUL-ended; *len bytes before the NUL). With
 * regular_only anything but a regular file is UTIL_READ_NOT_REGULAR (a
 * directory included); without it, only a directory is refused, so a pipe
 * or /dev/stdin can be read. On error *out is NULL and errno is kept. */
enum util_read util_read_file(const char *path, size_t max, int regular_only,
			      char **out, size_t *len);

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

#endif
