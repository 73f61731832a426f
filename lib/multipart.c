#include "config.h"

#include <string.h>

#include "multipart.h"
#include "util.h"

#define MULTIPART_HEADERS_DEFAULT 16

/* The delimiter is matched as "\r\n--" boundary. The first one may start the
 * body, and the CRLF that ends a header block may double as the CRLF of a
 * delimiter (RFC 2046: body-part := MIME-part-headers [CRLF *OCTET], so an
 * empty part is "--b\r\n\r\n--b"): both states begin with the CRLF taken as
 * already matched ("virtual"), and such bytes are never data. */
enum mp_state {
	S_PREAMBLE,      /* before the first delimiter: bytes ignored */
	S_TAIL,          /* right after a delimiter's boundary */
	S_TAIL_DASH,     /* one '-' of a close delimiter seen */
	S_TAIL_PAD,      /* transport padding after the boundary */
	S_TAIL_CR,       /* the CR that ends a delimiter line */
	S_HEADER,        /* in a header line, or at its start */
	S_HEADER_LF,     /* the CR that ends a header line */
	S_HEADERS_LF,    /* the CR of the blank line that ends the headers */
	S_DATA_FIRST,    /* data, while "\r\n" of the delimiter is virtual */
	S_DATA,
	S_EPILOGUE,      /* after the close delimiter: bytes ignored */
};

static const struct multipart_callbacks no_callbacks;

static const char *const error_names[] = {
#define MULTIPART_NAME(n, s) #n,
	MULTIPART_ERRORS(MULTIPART_NAME)
#undef MULTIPART_NAME
};

static const char *const error_strs[] = {
#define MULTIPART_STR(n, s) s,
	MULTIPART_ERRORS(MULTIPART_STR)
#undef MULTIPART_STR
};

#define ERROR_COUNT (sizeof(error_names) / sizeof(error_names[0]))

const char *multipart_error_name(enum multipart_error e)
{
	if ((unsigned)e >= ERROR_COUNT)
		return "UNKNOWN";
	return error_names[e];
}

const char *multipart_error_str(enum multipart_error e)
{
	if ((unsigned)e >= ERROR_COUNT)
		return "unknown error";
	return error_strs[e];
}

int multipart_init(struct multipart_parser *p, const char *boundary, size_t len,
		   const struct multipart_limits *lim,
		   const struct multipart_callbacks *cb, void *data)
{
	/* The line buffer needs no clearing. */
	memset(p, 0, offsetof(struct multipart_parser, line));
	p->line_len = 0;
	p->headers = 0;
	p->part_bytes = 0;
	p->parts = 0;
	p->offset = 0;
	p->cb = &no_callbacks;
	/* A parser whose init failed refuses every byte. */
	p->err = MULTIPART_E_BOUNDARY;
	if (boundary == NULL || len == 0 || len > MULTIPART_BOUNDARY_MAX)
		return -1;
	/* A CR inside the boundary would break the one-byte restart of the
	 * delimiter match below; RFC 2046 bchars never contain it. */
	if (memchr(boundary, '\r', len) != NULL || memchr(boundary, '\n', len) != NULL)
		return -1;
	if (lim != NULL) {
		if (lim->header_line_max > MULTIPART_HEADER_LINE_MAX)
			return -1;
		p->lim = *lim;
	}
	if (p->lim.header_line_max == 0)
		p->lim.header_line_max = MULTIPART_HEADER_LINE_MAX;
	if (p->lim.headers_max == 0)
		p->lim.headers_max = MULTIPART_HEADERS_DEFAULT;
	p->cb = cb != NULL ? cb : &no_callbacks;
	p->data = data;
	memcpy(p->delim, "\r\n--", 4);
	memcpy(p->delim + 4, boundary, len);
	p->delim_len = len + 4;
	p->state = S_PREAMBLE;
	p->match = 2;
	p->err = MULTIPART_E_OK;
	return 0;
}

/* Records the first error; off is where it was raised (see the header). */
static int fail(struct multipart_parser *p, enum multipart_error e, uint64_t off)
{
	p->err = e;
	p->offset = off;
	return -1;
}

static int notify(struct multipart_parser *p, int (*fn)(void *), uint64_t off)
{
	if (fn != NULL && fn(p->data) != 0)
		return fail(p, MULTIPART_E_CALLBACK, off);
	return 0;
}

/* Delivers len data bytes that start at body offset off, up to part_max:
 * the bytes under the limit are delivered before the error is raised at the
 * first byte over it. */
static int emit_data(struct multipart_parser *p, const char *at, size_t len,
		     uint64_t off)
{
	if (p->lim.part_max != 0) {
		uint64_t room = p->lim.part_max - p->part_bytes;

		if (len > room) {
			if (room > 0 && p->cb->on_data != NULL &&
			    p->cb->on_data(p->data, at, (size_t)room) != 0)
				return fail(p, MULTIPART_E_CALLBACK, off + room);
			p->part_bytes += room;
			return fail(p, MULTIPART_E_PART_TOO_LARGE, off + room);
		}
	}
	p->part_bytes += len;
	if (p->cb->on_data != NULL && p->cb->on_data(p->data, at, len) != 0)
		return fail(p, MULTIPART_E_CALLBACK, off + len);
	return 0;
}

/* A complete header line is in p->line; lf_off is the offset of its LF. */
static int header_line(struct multipart_parser *p, uint64_t lf_off)
{
	const char *line = p->line;
	const char *colon = memchr(line, ':', p->line_len);
	const char *v, *end;

	if (colon == NULL)
		return fail(p, MULTIPART_E_HEADER_NO_COLON, lf_off);
	v = colon + 1;
	end = line + p->line_len;
	while (v < end && util_is_blank(*v))
		v++;
	while (end > v && util_is_blank(end[-1]))
		end--;
	if (p->cb->on_header != NULL &&
	    p->cb->on_header(p->data, line, (size_t)(colon - line), v,
			     (size_t)(end - v)) != 0)
		return fail(p, MULTIPART_E_CALLBACK, lf_off + 1);
	return 0;
}

/* The boundary has matched; a delimiter line is complete at its LF, whose
 * offset is off. */
static int delimiter_line(struct multipart_parser *p, uint64_t off)
{
	if (p->parts > 0 && notify(p, p->cb->on_part_end, off + 1) != 0)
		return -1;
	if (p->lim.parts_max != 0 && p->parts >= p->lim.parts_max)
		return fail(p, MULTIPART_E_TOO_MANY_PARTS, off + 1);
	p->parts++;
	p->headers = 0;
	p->line_len = 0;
	p->part_bytes = 0;
	p->state = S_HEADER;
	return notify(p, p->cb->on_part_begin, off + 1);
}

/* The close delimiter's second '-' is at off. */
static int close_delimiter(struct multipart_parser *p, uint64_t off)
{
	if (p->parts == 0)
		return fail(p, MULTIPART_E_NO_PARTS, off + 1);
	p->state = S_EPILOGUE;
	if (notify(p, p->cb->on_part_end, off + 1) != 0)
		return -1;
	return notify(p, p->cb->on_body_end, off + 1);
}

/* One byte c, at offset off, of a part's header block. */
static int header_byte(struct multipart_parser *p, char c, uint64_t off)
{
	if (c == '\r') {
		p->state = p->line_len == 0 ? S_HEADERS_LF : S_HEADER_LF;
		return 0;
	}
	if (c == '\n')
		return fail(p, MULTIPART_E_LINE_END, off);
	if (p->line_len == 0) {
		if (util_is_blank(c))
			return fail(p, MULTIPART_E_HEADER_FOLDED, off);
		if (p->headers >= p->lim.headers_max)
			return fail(p, MULTIPART_E_TOO_MANY_HEADERS, off);
	}
	if (p->line_len >= p->lim.header_line_max)
		return fail(p, MULTIPART_E_HEADER_TOO_LONG, off);
	p->line[p->line_len++] = c;
	return 0;
}

size_t multipart_execute(struct multipart_parser *p, const char *buf, size_t len)
{
	uint64_t base = p->offset;
	size_t i = 0;

	if (p->err != MULTIPART_E_OK)
		return 0;
	while (i < len) {
		char c = buf[i];
		uint64_t off = base + i;
		const char *cr;
		size_t end, skip, held;

		switch (p->state) {
		case S_PREAMBLE:
		case S_DATA_FIRST:
		case S_DATA:
			if (p->match == 0) {
				cr = memchr(buf + i, '\r', len - i);
				end = cr != NULL ? (size_t)(cr - buf) : len;
				if (p->state != S_PREAMBLE && end > i &&
				    emit_data(p, buf + i, end - i, off) != 0)
					goto stop;
				if (cr == NULL) {
					i = len;
					break;
				}
				i = end + 1;
				p->match = 1;
				break;
			}
			if (c == p->delim[p->match]) {
				i++;
				if (++p->match == p->delim_len) {
					p->match = 0;
					p->state = S_TAIL;
				}
				break;
			}
			/* Not a delimiter: what was held back is data, and the
			 * only restart point is c itself (CR begins the
			 * delimiter and occurs nowhere else in it). */
			skip = p->state == S_DATA_FIRST ? 2 : 0;
			held = p->match - skip;
			p->match = 0;
			if (p->state == S_PREAMBLE)
				break;
			p->state = S_DATA;
			if (held > 0 &&
			    emit_data(p, p->delim + skip, held, off - held) != 0)
				goto stop;
			break;
		case S_TAIL:
			i++;
			if (c == '-')
				p->state = S_TAIL_DASH;
			else if (util_is_blank(c))
				p->state = S_TAIL_PAD;
			else if (c == '\r')
				p->state = S_TAIL_CR;
			else {
				fail(p, c == '\n' ? MULTIPART_E_LINE_END
						  : MULTIPART_E_BOUNDARY, off);
				goto stop;
			}
			break;
		case S_TAIL_DASH:
			if (c != '-') {
				fail(p, MULTIPART_E_BOUNDARY, off);
				goto stop;
			}
			i++;
			if (close_delimiter(p, off) != 0)
				goto stop;
			break;
		case S_TAIL_PAD:
			i++;
			if (c == '\r')
				p->state = S_TAIL_CR;
			else if (!util_is_blank(c)) {
				fail(p, c == '\n' ? MULTIPART_E_LINE_END
						  : MULTIPART_E_BOUNDARY, off);
				goto stop;
			}
			break;
		case S_TAIL_CR:
			if (c != '\n') {
				fail(p, MULTIPART_E_LINE_END, off);
				goto stop;
			}
			i++;
			if (delimiter_line(p, off) != 0)
				goto stop;
			break;
		case S_HEADER:
			if (header_byte(p, c, off) != 0)
				goto stop;
			i++;
			break;
		case S_HEADER_LF:
			if (c != '\n') {
				fail(p, MULTIPART_E_LINE_END, off);
				goto stop;
			}
			i++;
			p->headers++;
			p->state = S_HEADER;
			if (header_line(p, off) != 0)
				goto stop;
			p->line_len = 0;
			break;
		case S_HEADERS_LF:
			if (c != '\n') {
				fail(p, MULTIPART_E_LINE_END, off);
				goto stop;
			}
			i++;
			p->state = S_DATA_FIRST;
			p->match = 2;
			if (notify(p, p->cb->on_headers_complete, off + 1) != 0)
				goto stop;
			break;
		case S_EPILOGUE:
		default:
			i = len;
			break;
		}
	}
	p->offset = base + len;
	return len;
stop:
	/* The error may lie in held-back bytes of an earlier call. */
	return p->offset > base ? (size_t)(p->offset - base) : 0;
}

enum multipart_error multipart_finish(struct multipart_parser *p)
{
	if (p->err != MULTIPART_E_OK)
		return p->err;
	if (p->state == S_EPILOGUE)
		return MULTIPART_E_OK;
	/* Without a single delimiter the body was never multipart at all. */
	p->err = p->state == S_PREAMBLE ? MULTIPART_E_NO_PARTS
					: MULTIPART_E_TRUNCATED;
	return p->err;
}

enum multipart_error multipart_get_error(const struct multipart_parser *p)
{
	return p->err;
}

uint64_t multipart_error_offset(const struct multipart_parser *p)
{
	return p->offset;
}

/* ---- header values ---- */

static void set_why(const char **why, const char *s)
{
	if (why != NULL)
		*why = s;
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* s[0..n) equals the lowercase literal lit, ignoring ASCII case. */
static int ascii_caseeq(const char *s, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)s[i]) != lit[i])
			return 0;
	return 1;
}

static int is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/* RFC 7230 tchar */
static int is_tchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 bcharsnospace */
static int is_bchar_nospace(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("'()+_,-./:=?", c) != NULL);
}

/* Whether s[k] is a backslash that escapes the next byte. In an HTTP
 * header (any_pair) every quoted-pair of RFC 9110 is one. In a part's
 * Content-Disposition, as in browsers' and curl's form encoders (and
 * python-multipart, the seed's parser), only '\"' and '\\' are: other
 * backslashes are the client's bytes ("C:\x.txt" stays as it is, and the
 * name rules then refuse it). */
static int is_escape(const char *s, size_t len, size_t k, int any_pair)
{
	return s[k] == '\\' && k + 1 < len &&
	       (any_pair || s[k + 1] == '"' || s[k + 1] == '\\');
}

/* A parameter value at s[*i], len bytes in all: a quoted-string (with the
 * escapes of is_escape) or a run of bytes up to blank, ';' or '"'. Sets [*a,*b)
 * to the raw content (without quotes) and *quoted; advances *i past it.
 * 0, or -1 when unterminated or empty. */
static int scan_value(const char *s, size_t len, size_t *i, size_t *a,
		      size_t *b, int *quoted, int any_pair)
{
	size_t k = *i;

	if (k < len && s[k] == '"') {
		*quoted = 1;
		*a = ++k;
		while (k < len && s[k] != '"') {
			if (is_escape(s, len, k, any_pair))
				k++;
			k++;
		}
		if (k == len)
			return -1;
		*b = k;
		*i = k + 1;
		return 0;
	}
	*quoted = 0;
	*a = k;
	while (k < len && !util_is_blank(s[k]) && s[k] != ';' && s[k] != '"')
		k++;
	if (k == *a)
		return -1;
	*b = k;
	*i = k;
	return 0;
}

/* One parameter of a header value: the key s[kt..ke), the value as
 * scan_value gives it. */
struct param {
	size_t kt, ke, a, b;
	int quoted;
};

/* The next "; key = value" of a header value from *i, blanks allowed around
 * each part and empty parameters (";;") skipped: 1 with *p, 0 at the end,
 * -1 when malformed. With empty_ok, a "key=" followed by ';' or the end
 * has an empty value. */
static int next_param(const char *s, size_t len, size_t *i, struct param *p, int any_pair,
		      int empty_ok)
{
	for (;;) {
		while (*i < len && util_is_blank(s[*i]))
			(*i)++;
		if (*i == len)
			return 0;
		if (s[*i] != ';')
			return -1;
		(*i)++;
		while (*i < len && util_is_blank(s[*i]))
			(*i)++;
		if (*i < len && s[*i] != ';')
			break;
	}
	p->kt = *i;
	while (*i < len && is_tchar((unsigned char)s[*i]))
		(*i)++;
	if (*i == p->kt)
		return -1;
	p->ke = *i;
	while (*i < len && util_is_blank(s[*i]))
		(*i)++;
	if (*i == len || s[*i] != '=')
		return -1;
	(*i)++;
	while (*i < len && util_is_blank(s[*i]))
		(*i)++;
	if (empty_ok && (*i == len || s[*i] == ';')) {
		p->a = p->b = *i;   /* "boundary=": empty, said by the caller */
		p->quoted = 0;
		return 1;
	}
	return scan_value(s, len, i, &p->a, &p->b, &p->quoted, any_pair) == 0 ? 1 : -1;
}

/* Copies a scanned value into out (cap bytes + NUL), undoing backslash
 * escapes when quoted. 0, or -1 when longer than cap. */
static int copy_value(const char *s, size_t n, int quoted, int any_pair,
		      char *out, size_t cap, size_t *out_len)
{
	size_t k, o = 0;

	for (k = 0; k < n; k++) {
		if (quoted && is_escape(s, n, k, any_pair))
			k++;
		if (o == cap)
			return -1;
		out[o++] = s[k];
	}
	out[o] = '\0';
	*out_len = o;
	return 0;
}

int multipart_boundary_from_content_type(const char *content_type, char *out,
					 const char **why, int *is_415)
{
	const char *s = content_type;
	struct param p;
	size_t len, i = 0, t, n = 0, k;
	int r, found = 0;

	*is_415 = 0;
	out[0] = '\0';
	if (s == NULL) {
		*is_415 = 1;
		set_why(why, "the request has no Content-Type");
		return -1;
	}
	len = strlen(s);
	while (i < len && util_is_blank(s[i]))
		i++;
	t = i;
	while (i < len && (is_tchar((unsigned char)s[i]) || s[i] == '/'))
		i++;
	if (!ascii_caseeq(s + t, i - t, "multipart/form-data")) {
		*is_415 = 1;
		set_why(why, "the body is not multipart/form-data");
		return -1;
	}
	while ((r = next_param(s, len, &i, &p, 1, 1)) > 0) {
		if (!ascii_caseeq(s + p.kt, p.ke - p.kt, "boundary"))
			continue;
		if (found) {
			set_why(why, "the Content-Type gives the boundary twice");
			return -1;
		}
		found = 1;
		if (copy_value(s + p.a, p.b - p.a, p.quoted, 1, out, MULTIPART_BOUNDARY_MAX,
			       &n) != 0) {
			out[0] = '\0';
			set_why(why, "the multipart boundary is longer than "
				     UTIL_STR(MULTIPART_BOUNDARY_MAX) " bytes");
			return -1;
		}
	}
	if (r < 0)
		goto malformed;
	if (!found) {
		set_why(why, "the Content-Type has no boundary");
		return -1;
	}
	if (n == 0) {
		set_why(why, "the multipart boundary is empty");
		return -1;
	}
	for (k = 0; k < n; k++) {
		unsigned char c = (unsigned char)out[k];
		/* bchars; a space only inside, never last (RFC 2046 §5.1.1) */
		if (!is_bchar_nospace(c) && !(c == ' ' && k + 1 < n)) {
			out[0] = '\0';
			set_why(why, "the multipart boundary has characters RFC 2046 forbids");
			return -1;
		}
	}
	return (int)n;
malformed:
	out[0] = '\0';
	set_why(why, "the Content-Type parameters are malformed");
	return -1;
}

#define WHY_MALFORMED "the Content-Disposition value is malformed"
#define WHY_FILENAME_LONG "the file name is longer than " UTIL_STR(MULTIPART_FILENAME_MAX) " bytes"

/* RFC 5987 ext-value: charset "'" [language] "'" pct-encoded chars; only
 * UTF-8. Decoded into d->filename. 0, or -1 with *why. */
static int decode_ext_value(const char *s, size_t n,
			    struct multipart_disposition *d, const char **why)
{
	const char *q1 = memchr(s, '\'', n), *q2;
	size_t k, o = 0;
	int hi, lo;

	if (q1 == NULL ||
	    (q2 = memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - s))) == NULL) {
		set_why(why, WHY_MALFORMED);
		return -1;
	}
	if (!ascii_caseeq(s, (size_t)(q1 - s), "utf-8")) {
		set_why(why, "filename* has a charset other than UTF-8");
		return -1;
	}
	for (k = (size_t)(q2 + 1 - s); k < n; k++) {
		unsigned char c = (unsigned char)s[k];
		if (c <= ' ' || c == 0x7f || c == '"' || c == '\\' || c == '\'') {
			set_why(why, WHY_MALFORMED);
			return -1;
		}
		if (c == '%') {
			if (k + 2 >= n || (hi = util_hex_value(s[k + 1])) < 0 ||
			    (lo = util_hex_value(s[k + 2])) < 0) {
				set_why(why, WHY_MALFORMED);
				return -1;
			}
			c = (unsigned char)(hi << 4 | lo);
			k += 2;
		}
		if (o == MULTIPART_FILENAME_MAX) {
			set_why(why, WHY_FILENAME_LONG);
			return -1;
		}
		d->filename[o++] = (char)c;
	}
	d->filename[o] = '\0';
	d->filename_len = o;
	return 0;
}

int multipart_parse_disposition(const char *value, size_t len,
				struct multipart_disposition *d, const char **why)
{
	const char *s = value;
	struct param p;
	size_t i = 0, t;
	int r, seen_name = 0, seen_fn = 0, seen_fnx = 0;

	memset(d, 0, sizeof(*d));
	while (i < len && util_is_blank(s[i]))
		i++;
	t = i;
	while (i < len && is_tchar((unsigned char)s[i]))
		i++;
	if (i == t) {
		set_why(why, "the Content-Disposition has no type");
		return -1;
	}
	d->form_data = ascii_caseeq(s + t, i - t, "form-data");
	while ((r = next_param(s, len, &i, &p, 0, 0)) > 0) {
		if (ascii_caseeq(s + p.kt, p.ke - p.kt, "name")) {
			if (seen_name++)
				goto twice;
			if (copy_value(s + p.a, p.b - p.a, p.quoted, 0, d->name,
				       MULTIPART_NAME_MAX, &d->name_len) != 0) {
				set_why(why, "the name= value is longer than "
					     UTIL_STR(MULTIPART_NAME_MAX) " bytes");
				return -1;
			}
		} else if (ascii_caseeq(s + p.kt, p.ke - p.kt, "filename")) {
			if (seen_fn++)
				goto twice;
			if (seen_fnx)
				continue;   /* filename* wins */
			if (copy_value(s + p.a, p.b - p.a, p.quoted, 0, d->filename,
				       MULTIPART_FILENAME_MAX,
				       &d->filename_len) != 0) {
				set_why(why, WHY_FILENAME_LONG);
				return -1;
			}
		} else if (ascii_caseeq(s + p.kt, p.ke - p.kt, "filename*")) {
			if (seen_fnx++)
				goto twice;
			if (decode_ext_value(s + p.a, p.b - p.a, d, why) != 0)
				return -1;
		}
	}
	if (r < 0)
		goto malformed;
	d->has_name = seen_name;
	d->has_filename = seen_fn || seen_fnx;
	return 0;
malformed:
	set_why(why, WHY_MALFORMED);
	return -1;
twice:
	set_why(why, "a Content-Disposition parameter appears twice");
	return -1;
}
