/* libFuzzer target for names_check(): every upload file name pyexec writes
 * under a run's directory passes through it, so an accepted name must meet
 * each rule of names.h, checked here by a second, deliberately naive
 * implementation that shares no code with lib/names.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "../t/ref_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* Every rule of names.h, one by one. */
static int ref_ok(const uint8_t *s, size_t n)
{
	size_t start = 0, depth = 0, i;

	if (n == 0 || n > NAMES_PATH_MAX || s[0] == '/')
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
			return 0;   /* NUL is below 0x20 */
	if (!ref_utf8_valid(s, n))
		return 0;
	for (i = 0; i <= n; i++) {
		size_t len;

		if (i < n && s[i] != '/')
			continue;
		len = i - start;
		if (len == 0 || len > NAMES_COMPONENT_MAX ||
		    (len == 1 && s[start] == '.') ||
		    (len == 2 && s[start] == '.' && s[start + 1] == '.'))
			return 0;
		if (++depth > NAMES_DEPTH_MAX)
			return 0;
		start = i + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so ASan sees any read past the name. */
	char *name = malloc(size ? size : 1);
	const char *why = NULL;
	int rc, ref;

	if (name == NULL)
		return 0;
	memcpy(name, data, size);
	rc = names_check(name, size, &why);
	ref = ref_ok(data, size);
	if ((rc == 0) != ref)
		abort();   /* lib/names.c and the rules of names.h disagree */
	/* A refusal always says why; the reason is a C string. */
	if (rc != 0 && (why == NULL || why[0] == '\0'))
		abort();
	free(name);
	return 0;
}
