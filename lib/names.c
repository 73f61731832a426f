#include "config.h"

#include <stddef.h>
#include <string.h>

#include "names.h"
#include "utf8.h"
#include "util.h"

/* Why the UTF-8 at s (n bytes left) is not well-formed, or NULL when a
 * scalar of *len bytes starts there. */
static const char *names_utf8_why(const unsigned char *s, size_t n, size_t *len)
{
	switch (utf8_next(s, n, len)) {
	case UTF8_OK:
		return NULL;
	case UTF8_SHORT:
	case UTF8_TRUNCATED:
		return "is not valid UTF-8 (a truncated sequence)";
	case UTF8_CONTINUATION:
		return "is not valid UTF-8 (a continuation byte without a lead byte)";
	case UTF8_OVERLONG:
		return "is not valid UTF-8 (an overlong encoding)";
	case UTF8_SURROGATE:
		return "is not valid UTF-8 (a UTF-16 surrogate)";
	case UTF8_ABOVE_MAX:
		return "is not valid UTF-8 (a code point above U+10FFFF)";
	case UTF8_NEVER:
		break;
	}
	return "is not valid UTF-8 (a byte that never occurs in UTF-8)";
}

/* Checks one component s[0..n) (no '/' inside). */
static int names_check_component(const unsigned char *s, size_t n, const char **why)
{
	if (n == 0) {
		*why = "has an empty component (\"//\" or a trailing '/')";
		return -1;
	}
	if (n == 1 && s[0] == '.') {
		*why = "has a '.' component";
		return -1;
	}
	if (n == 2 && s[0] == '.' && s[1] == '.') {
		*why = "has a '..' component";
		return -1;
	}
	if (n > NAMES_COMPONENT_MAX) {
		*why = "has a component longer than " UTIL_STR(NAMES_COMPONENT_MAX) " bytes";
		return -1;
	}
	for (size_t i = 0; i < n;) {
		const char *bad;
		size_t len;

		if (s[i] == '\0') {
			*why = "contains a NUL byte";
			return -1;
		}
		if (s[i] < 0x20 || s[i] == 0x7f) {
			*why = "contains a control character";
			return -1;
		}
		if (s[i] == '\\') {
			*why = "contains a backslash";
			return -1;
		}
		bad = names_utf8_why(s + i, n - i, &len);
		if (bad != NULL) {
			*why = bad;
			return -1;
		}
		i += len;
	}
	return 0;
}

int names_check(const char *name, size_t len, const char **why)
{
	const unsigned char *s = (const unsigned char *)name;
	const char *dummy;
	size_t start = 0, depth = 0;

	if (why == NULL)
		why = &dummy;
	if (name == NULL || len == 0) {
		*why = "is empty";
		return -1;
	}
	if (len > NAMES_PATH_MAX) {
		*why = "is longer than " UTIL_STR(NAMES_PATH_MAX) " bytes";
		return -1;
	}
	if (s[0] == '/') {
		*why = "is absolute";
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		if (++depth > NAMES_DEPTH_MAX) {
			*why = "is nested deeper than " UTIL_STR(NAMES_DEPTH_MAX) " levels";
			return -1;
		}
		if (names_check_component(s + start, i - start, why) < 0)
			return -1;
		start = i + 1;
	}
	return 0;
}
