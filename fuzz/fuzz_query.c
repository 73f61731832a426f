/* libFuzzer target for lib/query.c: the query string of POST execute is
 * client text; what query_parse() accepts sets the run's limits, so an
 * accepted value must lie within the limits it was given, and a refusal
 * must leave a well-formed sentence for the 400 reply.
 *
 * Input layout: [0] timeout_max in seconds, [1] memory_max in 16 MiB
 * steps, [2] errlen, then the query string up to the first NUL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)
#define MIB (1024ULL * 1024)

static struct query_params params;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct query_limits lim;
	char err[256 + 16], *qs, *dst;
	size_t errlen, len;
	long n;
	int rc;

	if (size < 3)
		return 0;
	/* 0 is a limit too: then nothing passes */
	lim.timeout_max_ms = (uint64_t)data[0] * 1000 + (data[0] & 1 ? 500 : 0);
	lim.memory_max = (uint64_t)data[1] * 16 * MIB + (data[1] & 1 ? 123 : 0);
	errlen = data[2];
	len = size - 3;
	qs = malloc(len + 1);
	dst = malloc(len + 1);
	CHECK(qs != NULL && dst != NULL);
	memcpy(qs, data + 3, len);
	qs[len] = '\0';

	/* query_decode on the raw bytes, NULs included: never longer than its
	 * source, NUL-ended, and a NUL never decoded into the output. */
	n = query_decode(qs, len, dst);
	CHECK(n >= -1 && n <= (long)len);
	if (n >= 0)
		CHECK(dst[n] == '\0' && strlen(dst) == (size_t)n);

	memset(err, 0xa5, sizeof(err));
	rc = query_parse(qs, &lim, &params, err, errlen);
	for (size_t i = errlen; i < sizeof(err); i++)
		CHECK(err[i] == (char)0xa5);
	if (rc != 0) {
		CHECK(rc == -1);
		if (errlen > 0)
			CHECK(memchr(err, '\0', errlen) != NULL);
		if (errlen > 1)
			CHECK(err[0] != '\0');
	} else {
		CHECK(params.json == 0 || params.json == 1);
		CHECK(params.has_format == 0 || params.has_format == 1);
		CHECK(params.json == 0 || params.has_format == 1);
		CHECK((params.stream == 0 || params.stream == 1) &&
		      (params.stream == 0 || params.has_stream == 1));
		if (params.has_timeout)
			CHECK(params.timeout_ms > 0 && params.timeout_ms <= lim.timeout_max_ms);
		else
			CHECK(params.timeout_ms == 0);
		if (params.has_memory)
			CHECK(params.memory >= 16 * MIB && params.memory <= lim.memory_max &&
			      params.memory % MIB == 0);
		else
			CHECK(params.memory == 0);
		if (params.has_dependencies)
			CHECK(memchr(params.dependencies, '\0', sizeof(params.dependencies)) != NULL);
		else
			CHECK(params.dependencies[0] == '\0');
	}
	/* The same query string, NULL err: the same answer. */
	CHECK(query_parse(qs, &lim, &params, NULL, 0) == rc);
	free(qs);
	free(dst);
	return 0;
}
