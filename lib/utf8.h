/* utf8: the one UTF-8 decoder of pyexec. Well-formed means Unicode's table
 * 3-7 "Well-Formed UTF-8 Byte Sequences": no overlong forms, no UTF-16
 * surrogates (D800..DFFF), nothing above U+10FFFF. */
#ifndef PYEXEC_UTF8_H
#define PYEXEC_UTF8_H

#include <stddef.h>

enum utf8_step {
	UTF8_OK,            /* a well-formed scalar */
	UTF8_SHORT,         /* a valid start cut off by the end of the bytes */
	UTF8_TRUNCATED,     /* a lead byte not followed by enough continuations */
	UTF8_CONTINUATION,  /* a continuation byte without a lead byte */
	UTF8_OVERLONG,      /* an overlong encoding */
	UTF8_SURROGATE,     /* a UTF-16 surrogate */
	UTF8_ABOVE_MAX,     /* a code point above U+10FFFF */
	UTF8_NEVER,         /* a byte that never occurs in UTF-8 (F8..FF) */
};

/* Looks at the sequence at p (len >= 1). UTF8_OK: *used bytes are one
 * scalar. UTF8_SHORT: the *used bytes left are a valid start, cut off by
 * len. Anything else: *used bytes are one maximal ill-formed subpart (as
 * Unicode's "U+FFFD substitution of maximal subparts" counts them), and the
 * value says what is wrong; when a lead byte is followed by a byte that is
 * no continuation, or by too few before len, that is UTF8_TRUNCATED, even
 * where the first continuation also makes the form overlong, a surrogate or
 * too high. */
enum utf8_step utf8_next(const unsigned char *p, size_t len, size_t *used);

#endif
