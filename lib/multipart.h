/* multipart: a streaming multipart/form-data parser (RFC 7578, RFC 2046 §5.1)
 * in the http-parser shape: callbacks get zero-copy spans of the caller's
 * buffer, multipart_execute() returns the bytes consumed, the first error is
 * sticky, limits are plain fields, nothing is allocated after init.
 *
 * Line endings are CRLF, as RFC 2046 requires; a bare LF where a delimiter or
 * header line must end is an error (MULTIPART_E_LINE_END), never guessed at.
 * Header folding (a line starting with SP or HTAB) is refused. */
#ifndef PYEXEC_MULTIPART_H
#define PYEXEC_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define MULTIPART_BOUNDARY_MAX 70      /* RFC 2046 §5.1.1 */
#define MULTIPART_HEADER_LINE_MAX 8192 /* bytes in one part header line */
#define MULTIPART_NAME_MAX 1024        /* bytes of a decoded name= value */
#define MULTIPART_FILENAME_MAX 4096    /* bytes of a decoded filename */

#define MULTIPART_ERRORS(X)                                                  \
	X(OK, "no error")                                                    \
	X(CALLBACK, "a callback stopped the parser")                         \
	X(BOUNDARY, "a delimiter line is malformed")                         \
	X(LINE_END, "a line does not end with CRLF")                         \
	X(HEADER_TOO_LONG, "a part header line is too long")                 \
	X(HEADER_NO_COLON, "a part header line has no colon")                \
	X(HEADER_FOLDED, "a part header line starts with whitespace")        \
	X(TOO_MANY_HEADERS, "a part has too many header lines")              \
	X(PART_TOO_LARGE, "a part is larger than its limit")                 \
	X(TOO_MANY_PARTS, "the body has too many parts")                     \
	X(NO_PARTS, "the body has no parts")                                 \
	X(TRUNCATED, "the body ends before its closing delimiter")

enum multipart_error {
#define MULTIPART_ENUM(n, s) MULTIPART_E_##n,
	MULTIPART_ERRORS(MULTIPART_ENUM)
#undef MULTIPART_ENUM
};

struct multipart_limits {
	size_t header_line_max;  /* <= MULTIPART_HEADER_LINE_MAX; 0 = that */
	unsigned headers_max;    /* header lines per part; 0 = 16 */
	uint64_t part_max;       /* data bytes per part; 0 = unlimited */
	uint64_t parts_max;      /* parts per body; 0 = unlimited */
};

/* Each returns 0 to go on; anything else stops the parser with
 * MULTIPART_E_CALLBACK (the caller keeps its own reason). */
struct multipart_callbacks {
	int (*on_part_begin)(void *data);
	/* one header line: name and value, value with surrounding blanks trimmed */
	int (*on_header)(void *data, const char *name, size_t name_len,
			 const char *value, size_t value_len);
	int (*on_headers_complete)(void *data);
	/* a span of part data; may be called any number of times per part.
	 * The span is in the caller's buffer, except bytes held back as a
	 * possible delimiter, which come from inside the parser. */
	int (*on_data)(void *data, const char *at, size_t len);
	int (*on_part_end)(void *data);
	/* the closing delimiter was read */
	int (*on_body_end)(void *data);
};

/* Everything lives inside; treat the fields as private. */
struct multipart_parser {
	const struct multipart_callbacks *cb;
	void *data;
	struct multipart_limits lim;
	enum multipart_error err;
	int state;
	char delim[MULTIPART_BOUNDARY_MAX + 4]; /* "\r\n--" boundary */
	size_t delim_len;
	size_t match;                           /* bytes of delim matched */
	char line[MULTIPART_HEADER_LINE_MAX];
	size_t line_len;
	unsigned headers;
	uint64_t part_bytes;
	uint64_t parts;
	uint64_t offset;                        /* bytes consumed so far */
};

/* Prepares p for a body delimited by boundary (1..70 bytes, already taken
 * out of the Content-Type). lim may be NULL for defaults; cb, or any
 * callback in it, may be NULL. 0, or -1 when the boundary is empty, too long
 * or holds CR/LF, or lim->header_line_max is over its maximum; p then takes
 * no bytes. */
int multipart_init(struct multipart_parser *p, const char *boundary, size_t len,
		   const struct multipart_limits *lim,
		   const struct multipart_callbacks *cb, void *data);

/* Feeds len bytes. Returns the bytes consumed: len, or less when an error
 * (sticky, see multipart_get_error) stopped it. Bytes that may begin a
 * delimiter are held inside p and count as consumed. An error can be raised
 * by the last byte too: check multipart_get_error, not only the count. */
size_t multipart_execute(struct multipart_parser *p, const char *buf, size_t len);

/* Says the input has ended. MULTIPART_E_OK when the closing delimiter was
 * seen, else the sticky error or MULTIPART_E_TRUNCATED (or NO_PARTS). */
enum multipart_error multipart_finish(struct multipart_parser *p);

enum multipart_error multipart_get_error(const struct multipart_parser *p);
/* "PART_TOO_LARGE" / "a part is larger than its limit"; static strings. */
const char *multipart_error_name(enum multipart_error e);
const char *multipart_error_str(enum multipart_error e);
/* Byte offset in the body at which the error was raised: the offending byte
 * (for PART_TOO_LARGE the first byte over the limit, which may lie in bytes
 * held back by an earlier call), or just past what a callback that stopped
 * the parser, or a count limit, was about. */
uint64_t multipart_error_offset(const struct multipart_parser *p);

/* Takes the boundary parameter out of a Content-Type value
 * ("multipart/form-data; boundary=xyz", quoted or not). Copies it, NUL-ended,
 * into out (MULTIPART_BOUNDARY_MAX + 1 bytes) and returns its length, or -1
 * with *why a static phrase: not multipart/form-data (*is_415 = 1), boundary
 * missing, empty, over 70 bytes, or with characters RFC 2046 forbids. */
int multipart_boundary_from_content_type(const char *content_type, char *out,
					 const char **why, int *is_415);

/* A decoded Content-Disposition value. */
struct multipart_disposition {
	int form_data;                 /* type is form-data */
	int has_name, has_filename;
	char name[MULTIPART_NAME_MAX + 1];
	size_t name_len;
	char filename[MULTIPART_FILENAME_MAX + 1];
	size_t filename_len;           /* may contain NUL bytes: use the length */
};

/* Parses a Content-Disposition value: the type, then ';'-separated
 * parameters, token or quoted-string values (backslash escapes, ';' inside
 * quotes). filename* (RFC 5987, UTF-8'' only) wins over filename= when both
 * are present. 0, or -1 with *why a static phrase (malformed, a value too
 * long, unknown charset in filename*). */
int multipart_parse_disposition(const char *value, size_t len,
				struct multipart_disposition *d, const char **why);

#endif
