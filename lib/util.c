#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int util_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_random_hex(char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[64];

	if (len > sizeof(buf)) {
		errno = EINVAL;
		return -1;
	}
	if (util_random(buf, len) < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * len] = '\0';
	return 0;
}

int util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int64_t util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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

void util_close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		(void)close(fd);
	errno = saved;
}

int util_open_parent(const char *path, char *buf, size_t buflen, char **name)
{
	char *slash;

	if (strlen(path) >= buflen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	slash = strrchr(buf, '/');
	if (slash == NULL) {
		errno = EINVAL;
		return -1;
	}
	*slash = '\0';
	*name = slash + 1;
	return open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = path == NULL ? 0 : strlen(path);

	if (len == 0) {
		errno = ENOENT;
		return -1;
	}
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void util_read_text(int fd, char *buf, size_t buflen)
{
	ssize_t n = pread(fd, buf, buflen - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
}

enum util_read util_read_file(const char *path, size_t max, int regular_only,
			      char **out, size_t *len)
{
	enum util_read r = UTIL_READ_OK;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return UTIL_READ_OPEN;
	if (fstat(fd, &st) < 0) {
		r = UTIL_READ_STAT;
		goto fail;
	}
	if (regular_only && !S_ISREG(st.st_mode)) {
		r = UTIL_READ_NOT_REGULAR;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = UTIL_READ_DIR;
		goto fail;
	}
	/* One byte more than allowed tells "too large" from "exactly max". */
	buf = malloc(max + 2);
	if (buf == NULL) {
		r = UTIL_READ_NOMEM;
		goto fail;
	}
	while (got < max + 1) {
		ssize_t n = read(fd, buf + got, max + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = UTIL_READ_READ;
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max) {
		r = UTIL_READ_TOO_LARGE;
		errno = EFBIG;
		goto fail;
	}
	buf[got] = '\0';
	(void)close(fd);
	*out = buf;
	*len = got;
	return UTIL_READ_OK;
fail:
	free(buf);
	util_close_keep_errno(fd);
	return r;
}

const char *util_signal_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;

	if (buf == NULL || len == 0)
		return "SIG?";
	if (abbrev != NULL)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "SIG%d", sig);
	return buf;
}

int util_set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

int util_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

void util_sanitize(const void *in, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t o = 0;

	if (outlen == 0)
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		int plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		size_t need = plain ? 1 : 4;

		/* keep room for "..." and the NUL */
		if (o + need + 4 > outlen) {
			if (outlen >= 4) {
				memcpy(out + (o + 4 <= outlen ? o : outlen - 4), "...", 3);
				o = (o + 4 <= outlen ? o : outlen - 4) + 3;
			}
			break;
		}
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}

void util_errorf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *util_shown(const char *s, size_t len, char *buf, size_t buflen)
{
	size_t i, n = 0;

	for (i = 0; i < len && i < UTIL_SHOWN_MAX && n + 4 < buflen; i++)
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (i < len && n + 4 <= buflen) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static char *title_area;
static size_t title_len;
static const char *title_program;

void util_title_init(int argc, char **argv, const char *program)
{
	char *end;

	if (argc < 1 || argv[0] == NULL)
		return;
	end = argv[0] + strlen(argv[0]) + 1;
	/* only the strings laid out one after the other, as the kernel does */
	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	title_area = argv[0];
	title_len = (size_t)(end - argv[0]);
	title_program = program;
	memset(title_area, 0, title_len);
	for (int i = 1; i < argc; i++)
		argv[i] = NULL;
}

void util_title_set(const char *what)
{
	size_t n = 0;

	if (title_area == NULL || title_len < 2)
		return;
	memset(title_area, 0, title_len);
	for (const char *s = title_program; s != NULL && *s != '\0' && n + 1 < title_len; s++)
		title_area[n++] = *s;
	for (const char *s = ": "; *s != '\0' && n + 1 < title_len; s++)
		title_area[n++] = *s;
	for (const char *s = what; s != NULL && *s != '\0' && n + 1 < title_len; s++)
		title_area[n++] = *s;
}
