#include "config.h"

#include <stddef.h>
#include <string.h>

#include "names.h"

/* Length of the UTF-8 sequence starting at s[0] (at most n bytes are
 * available), or 0 with *why set. Ranges are those of Unicode 15, table
 * 3-7 "Well-Formed UTF-8 Byte Sequences": they exclude overlong forms,
 * the UTF-16 surrogates D800..DFFF and everything above U+10FFFF. */
static size_t names_utf8_len(const unsigned char *s, size_t n, const char **why)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c < 0xc0) {
		*why = "is not valid UTF-8 (a continuation byte without a lead byte)";
		return 0;
	}
	if (c < 0xc2) {
		*why = "is not valid UTF-8 (an overlong encoding)";
		return 0;
	}
	if (c < 0xe0) {
		len = 2;
	} else if (c < 0xf0) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else if (c < 0xf8) {
		*why = "is not valid UTF-8 (a code point above U+10FFFF)";
		return 0;
	} else {
		*why = "is not valid UTF-8 (a byte that never occurs in UTF-8)";
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if (i >= n || s[i] < 0x80 || s[i] > 0xbf) {
			*why = "is not valid UTF-8 (a truncated sequence)";
			return 0;
		}
	}
	if (s[1] < lo) {
		*why = "is not valid UTF-8 (an overlong encoding)";
		return 0;
	}
	if (s[1] > hi) {
		*why = c == 0xed ? "is not valid UTF-8 (a UTF-16 surrogate)"
				 : "is not valid UTF-8 (a code point above U+10FFFF)";
		return 0;
	}
	return len;
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
		*why = "has a component longer than 255 bytes";
		return -1;
	}
	for (size_t i = 0; i < n;) {
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
		len = names_utf8_len(s + i, n - i, why);
		if (len == 0)
			return -1;
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
		*why = "is longer than 4096 bytes";
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
			*why = "is nested deeper than 16 levels";
			return -1;
		}
		if (names_check_component(s + start, i - start, why) < 0)
			return -1;
		start = i + 1;
	}
	return 0;
}
