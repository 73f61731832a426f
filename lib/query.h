/* query: the query string of POST execute (README, "POST execute"): dependencies, timeout,
 * memory, format, stream, python. Keys and values are percent-decoded ('+' is a space). An
 * unknown key, a key given twice, or a malformed or over-limit value is an
 * error with a sentence that names it. */
#ifndef PYEXEC_QUERY_H
#define PYEXEC_QUERY_H

#include <stddef.h>
#include <stdint.h>

#define QUERY_MAX 16384            /* bytes of a whole query string */
#define QUERY_DEPENDENCIES_MAX 8192 /* bytes of the decoded dependencies value */
#define QUERY_PYTHON_MAX 64        /* bytes of the decoded python value */

struct query_limits {
	uint64_t timeout_max_ms;
	uint64_t memory_max;           /* bytes */
};

struct query_params {
	int has_timeout;  uint64_t timeout_ms;
	int has_memory;   uint64_t memory;  /* bytes; the value is in MiB */
	int has_format;  int json;           /* format=json (1) or multipart (0) */
	int has_stream;  int stream;         /* stream=1: Server-Sent Events */
	int has_python;  char python[QUERY_PYTHON_MAX + 1]; /* an interpreter's name, decoded */
	int has_dependencies;
	char dependencies[QUERY_DEPENDENCIES_MAX + 1]; /* decoded, NUL-ended */
};

/* Parses qs (may be NULL or ""). 0, or -1 with a sentence in err (errlen
 * bytes), e.g. "timeout: 99 is over the maximum of 60 seconds". */
int query_parse(const char *qs, const struct query_limits *lim,
		struct query_params *out, char *err, size_t errlen);

/* Percent-decodes src (len bytes) into dst (at least len+1 bytes), '+' as
 * space; returns the decoded length, or -1 for a bad escape or a NUL. */
long query_decode(const char *src, size_t len, char *dst);

#endif
