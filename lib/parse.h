/* parse: the numbers, sizes, seconds and HOST:PORT pyexec reads (from
 * pyexec.conf, the query string, the command line, kernel files), each with
 * one parser and one error vocabulary; and seconds as pyexec writes them. */
#ifndef PYEXEC_PARSE_H
#define PYEXEC_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_SECONDS_DECIMALS 3   /* decimals of seconds read: milliseconds */

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

#endif
