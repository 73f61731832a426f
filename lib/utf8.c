#include "config.h"

#include "utf8.h"

static int utf8_is_continuation(unsigned char c)
{
	return c >= 0x80 && c <= 0xbf;
}

/* Whether p[1..need] are all continuation bytes within len. */
static int utf8_continues(const unsigned char *p, size_t len, size_t need)
{
	for (size_t i = 1; i <= need; i++)
		if (i >= len || !utf8_is_continuation(p[i]))
			return 0;
	return 1;
}

enum utf8_step utf8_next(const unsigned char *p, size_t len, size_t *used)
{
	unsigned char b = p[0], lo = 0x80, hi = 0xbf;
	enum utf8_step low = UTF8_OVERLONG, high = UTF8_ABOVE_MAX;
	size_t need;

	*used = 1;
	if (b < 0x80)
		return UTF8_OK;
	if (b < 0xc0)
		return UTF8_CONTINUATION;
	if (b < 0xc2)
		return UTF8_OVERLONG;
	if (b < 0xe0) {
		need = 1;
	} else if (b < 0xf0) {
		need = 2;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed) {
			hi = 0x9f;
			high = UTF8_SURROGATE;
		}
	} else if (b < 0xf5) {
		need = 3;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
	} else if (b < 0xf8) {
		return UTF8_ABOVE_MAX;
	} else {
		return UTF8_NEVER;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= len) {
			*used = i;
			return UTF8_SHORT;
		}
		if (p[i] < lo || p[i] > hi) {
			*used = i;
			if (!utf8_continues(p, len, need))
				return UTF8_TRUNCATED;
			return p[i] < lo ? low : high;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	*used = need + 1;
	return UTF8_OK;
}
