/* A reference UTF-8 validator for the tests (t/check_names.c and
 * fuzz/fuzz_names.c), written the other way round from lib/names.c: decode
 * by bit patterns to a code point, then reject overlongs, surrogates and
 * anything above U+10FFFF, as Unicode's table 3-7 states them. */
#ifndef PYEXEC_REF_UTF8_H
#define PYEXEC_REF_UTF8_H

#include <stddef.h>

static inline int ref_utf8_valid(const unsigned char *s, size_t n)
{
	static const unsigned long min[] = { 0, 0, 0x80, 0x800, 0x10000 };

	for (size_t i = 0; i < n;) {
		unsigned long cp;
		size_t len;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = s[i] & 0x07;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += len;
	}
	return 1;
}

#endif
