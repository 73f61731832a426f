/* parse: numbers, sizes, seconds and HOST:PORT as pyexec reads and writes
 * them (declared in parse.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

const char *util_num_error(enum util_num e)
{
	switch (e) {
	case UTIL_NUM_OK: return "";
	case UTIL_NUM_INVALID: return "invalid";
	case UTIL_NUM_TOO_SMALL: return "too small";
	case UTIL_NUM_TOO_LARGE: return "too large";
	case UTIL_NUM_DECIMALS: return "too many decimals";
	}
	return "invalid";
}

static int util_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Accumulates the digits s[0..len) into *v; 0, or -1 once past max (the
 * rest still has to be digits for the caller to tell invalid from large). */
static int util_digits(const char *s, size_t len, uint64_t max, uint64_t *v)
{
	int over = 0;

	*v = 0;
	for (size_t i = 0; i < len; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');

		if (over || *v > max / 10 || max - *v * 10 < d)
			over = 1;
		else
			*v = *v * 10 + d;
	}
	return over ? -1 : 0;
}

static size_t util_span_digits(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && util_is_digit(s[n]))
		n++;
	return n;
}

enum util_num util_parse_uint(const char *s, size_t len, uint64_t min, uint64_t max,
			      uint64_t *out)
{
	uint64_t v;

	if (s == NULL || len == 0 || util_span_digits(s, len) != len)
		return UTIL_NUM_INVALID;
	if (util_digits(s, len, max, &v) < 0)
		return UTIL_NUM_TOO_LARGE;
	if (v < min)
		return UTIL_NUM_TOO_SMALL;
	*out = v;
	return UTIL_NUM_OK;
}

int util_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	size_t n = s == NULL ? 0 : util_span_digits(s, strlen(s));
	uint64_t v, mult = 1;

	if (n == 0)
		return -1;
	switch (s[n]) {
	case '\0': break;
	case 'k': case 'K': mult = 1024ULL; break;
	case 'm': case 'M': mult = 1024ULL * 1024; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; break;
	default: return -1;
	}
	if (mult != 1 && s[n + 1] != '\0')
		return -1;
	if (util_digits(s, n, max / mult, &v) < 0)
		return -1;
	*out = v * mult;
	return 0;
}

enum util_num util_parse_seconds(const char *s, size_t len, uint64_t max_ms,
				 uint64_t *out_ms)
{
	static const uint64_t scale[] = { 1000, 100, 10, 1 };
	size_t whole, decimals = 0;
	uint64_t secs, frac, ms;

	whole = s == NULL ? 0 : util_span_digits(s, len);
	if (whole > 0 && whole < len && s[whole] == '.')
		decimals = util_span_digits(s + whole + 1, len - whole - 1);
	if (whole == 0 || whole + (decimals > 0 ? decimals + 1 : 0) != len)
		return UTIL_NUM_INVALID;
	if (decimals > UTIL_SECONDS_DECIMALS)
		return UTIL_NUM_DECIMALS;
	if (util_digits(s, whole, max_ms / 1000, &secs) < 0)
		return UTIL_NUM_TOO_LARGE;
	(void)util_digits(s + whole + 1, decimals, 999, &frac);
	ms = secs * 1000;
	if (frac * scale[decimals] > max_ms - ms)
		return UTIL_NUM_TOO_LARGE;
	*out_ms = ms + frac * scale[decimals];
	return UTIL_NUM_OK;
}

void util_format_seconds(char *buf, size_t buflen, uint64_t ms)
{
	unsigned frac = (unsigned)(ms % 1000);
	int prec = frac % 10 ? 3 : frac % 100 ? 2 : frac ? 1 : 0;

	if (prec == 0)
		snprintf(buf, buflen, "%llu", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, buflen, "%llu.%0*u", (unsigned long long)(ms / 1000), prec,
			 prec == 1 ? frac / 100 : prec == 2 ? frac / 10 : frac);
}

int util_parse_hostport(const char *s, struct sockaddr_storage *ss, unsigned *sslen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = s;
	size_t hlen;
	uint64_t port;
	int v6 = *s == '[';

	if (v6) {
		const char *close_br = strchr(s, ']');

		if (close_br == NULL || close_br[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(close_br - h);
		colon = close_br + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (util_parse_uint(colon + 1, strlen(colon + 1), 1, UTIL_PORT_MAX, &port) != UTIL_NUM_OK)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -1;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -1;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*sslen = sizeof(*a);
	}
	return 0;
}

void util_format_seconds_fixed(char *buf, size_t buflen, uint64_t ms)
{
	snprintf(buf, buflen, "%llu.%03u", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
}
