#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "query.h"
#include "util.h"

#define QUERY_MEMORY_MIN_MIB 16   /* below this the interpreter does not start */
#define MIB (1024ULL * 1024)

enum query_key { QK_DEPENDENCIES, QK_TIMEOUT, QK_MEMORY, QK_FORMAT, QK_STREAM, QK_PYTHON,
		 QK_COUNT };

static const char *const query_key_names[QK_COUNT] = {
	"dependencies", "timeout", "memory", "format", "stream", "python"
};

long query_decode(const char *src, size_t len, char *dst)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		char c = src[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return -1;
			hi = util_hex_value(src[i + 1]);
			lo = util_hex_value(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0')
			return -1;
		dst[n++] = c;
	}
	dst[n] = '\0';
	return (long)n;
}

static int query_timeout(const char *v, size_t len, const struct query_limits *lim,
			 struct query_params *out, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8], max[UTIL_SECONDS_LEN];
	uint64_t ms = 0;

	util_shown(v, len, shown, sizeof(shown));
	if (len == 0) {
		util_errorf(err, errlen, "timeout: empty; give a number of seconds");
		return -1;
	}
	switch (util_parse_seconds(v, len, lim->timeout_max_ms, &ms)) {
	case UTIL_NUM_OK:
		break;
	case UTIL_NUM_DECIMALS:
		util_errorf(err, errlen, "timeout: '%s' has more than %d decimals", shown,
			    UTIL_SECONDS_DECIMALS);
		return -1;
	case UTIL_NUM_TOO_LARGE:
	case UTIL_NUM_TOO_SMALL:
		util_format_seconds(max, sizeof(max), lim->timeout_max_ms);
		util_errorf(err, errlen, "timeout: %s is over the maximum of %s seconds", shown, max);
		return -1;
	case UTIL_NUM_INVALID:
		util_errorf(err, errlen, "timeout: '%s' is not a number of seconds", shown);
		return -1;
	}
	if (ms == 0) {
		util_errorf(err, errlen, "timeout: must be more than 0 seconds");
		return -1;
	}
	out->has_timeout = 1;
	out->timeout_ms = ms;
	return 0;
}

static int query_memory(const char *v, size_t len, const struct query_limits *lim,
			struct query_params *out, char *err, size_t errlen)
{
	char shown[UTIL_SHOWN_MAX + 8];
	uint64_t mib = 0, max_mib = lim->memory_max / MIB;

	util_shown(v, len, shown, sizeof(shown));
	if (len == 0) {
		util_errorf(err, errlen, "memory: empty; give a whole number of MiB");
		return -1;
	}
	switch (util_parse_uint(v, len, QUERY_MEMORY_MIN_MIB, max_mib, &mib)) {
	case UTIL_NUM_OK:
		break;
	case UTIL_NUM_TOO_LARGE:
		util_errorf(err, errlen, "memory: %s MiB is over the maximum of %llu MiB",
			  shown, (unsigned long long)max_mib);
		return -1;
	case UTIL_NUM_TOO_SMALL:
		util_errorf(err, errlen, "memory: %s MiB is under the minimum of %d MiB",
			  shown, QUERY_MEMORY_MIN_MIB);
		return -1;
	default:
		util_errorf(err, errlen, "memory: '%s' is not a whole number of MiB", shown);
		return -1;
	}
	out->has_memory = 1;
	out->memory = mib * MIB;
	return 0;
}

static int query_value(enum query_key key, const char *v, size_t len,
		       const struct query_limits *lim, struct query_params *out,
		       char *err, size_t errlen)
{
	switch (key) {
	case QK_DEPENDENCIES:
		if (len > QUERY_DEPENDENCIES_MAX) {
			util_errorf(err, errlen, "dependencies: longer than %d bytes",
				  QUERY_DEPENDENCIES_MAX);
			return -1;
		}
		memcpy(out->dependencies, v, len + 1);
		out->has_dependencies = 1;
		return 0;
	case QK_TIMEOUT:
		return query_timeout(v, len, lim, out, err, errlen);
	case QK_MEMORY:
		return query_memory(v, len, lim, out, err, errlen);
	case QK_FORMAT:
		if (strcmp(v, "json") == 0 || strcmp(v, "multipart") == 0) {
			out->json = v[0] == 'j';
			out->has_format = 1;
			return 0;
		}
		util_errorf(err, errlen, "format: must be 'json' or 'multipart'");
		return -1;
	case QK_STREAM:
		if ((v[0] == '0' || v[0] == '1') && v[1] == '\0') {
			out->stream = v[0] == '1';
			out->has_stream = 1;
			return 0;
		}
		util_errorf(err, errlen, "stream: must be 1 (Server-Sent Events) or 0");
		return -1;
	case QK_PYTHON:
		/* which names there are is the server's to say (execute.c) */
		if (len == 0 || len > QUERY_PYTHON_MAX) {
			util_errorf(err, errlen, "python: must name an interpreter in 1 to %d bytes",
				    QUERY_PYTHON_MAX);
			return -1;
		}
		memcpy(out->python, v, len + 1);
		out->has_python = 1;
		return 0;
	default:
		return -1;
	}
}

int query_parse(const char *qs, const struct query_limits *lim,
		struct query_params *out, char *err, size_t errlen)
{
	/* Decoding never lengthens, so a whole query string always fits. */
	char buf[QUERY_MAX + 1], shown[UTIL_SHOWN_MAX + 8];
	int seen[QK_COUNT] = { 0 };
	size_t qslen;
	const char *p, *end;

	memset(out, 0, sizeof(*out));
	if (qs == NULL)
		return 0;
	qslen = strnlen(qs, QUERY_MAX + 1);
	if (qslen > QUERY_MAX) {
		util_errorf(err, errlen, "the query string is longer than %d bytes", QUERY_MAX);
		return -1;
	}
	for (p = qs, end = qs + qslen; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *seg_end = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(seg_end - p));
		const char *key_end = eq != NULL ? eq : seg_end;
		const char *val = eq != NULL ? eq + 1 : seg_end;
		enum query_key key = QK_COUNT;
		long n;

		/* "a=1&&b=2" and a trailing '&' are what many clients send. */
		if (seg_end == p)
			goto next;
		n = query_decode(p, (size_t)(key_end - p), buf);
		if (n < 0) {
			util_errorf(err, errlen,
				  "query parameter '%s': bad percent escape or NUL byte in its name",
				  util_shown(p, (size_t)(key_end - p), shown, sizeof(shown)));
			return -1;
		}
		for (int k = 0; k < QK_COUNT; k++)
			if (strcmp(buf, query_key_names[k]) == 0)
				key = (enum query_key)k;
		if (key == QK_COUNT) {
			util_errorf(err, errlen, "unknown query parameter '%s'",
				  util_shown(buf, (size_t)n, shown, sizeof(shown)));
			return -1;
		}
		if (seen[key]++) {
			util_errorf(err, errlen, "%s: given twice", query_key_names[key]);
			return -1;
		}
		n = query_decode(val, (size_t)(seg_end - val), buf);
		if (n < 0) {
			util_errorf(err, errlen, "%s: bad percent escape or NUL byte in the value",
				  query_key_names[key]);
			return -1;
		}
		if (query_value(key, buf, (size_t)n, lim, out, err, errlen) < 0)
			return -1;
next:
		p = seg_end + 1;
	}
	return 0;
}
