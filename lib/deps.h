/* deps: the `dependencies` query parameter (README, "Dependencies"). Splits it as the seed
 * does (commas; blanks around items trimmed; empty items ignored), validates
 * every requirement against a strict subset of PEP 508, normalises the set
 * and names it by a SHA-256 key. Nothing that could be a pip option, a URL,
 * a path or an environment marker ever gets through. */
#ifndef PYEXEC_DEPS_H
#define PYEXEC_DEPS_H

#include <stddef.h>

#define DEPS_NAME_MAX 128        /* bytes of a project name */
#define DEPS_REQ_MAX 512         /* bytes of one normalised requirement */
#define DEPS_COUNT_MAX 256       /* requirements in a set, whatever the config */
#define DEPS_KEY_HEX 64          /* hex digits of a key (SHA-256) */

/* A validated, normalised requirement: PEP 503 name ("probe-a"), extras
 * normalised and sorted ("[security,socks]"), version clauses without blanks
 * and sorted (">=1.0,<2" becomes "<2,>=1.0"). */
struct deps_set {
	unsigned n;
	char req[DEPS_COUNT_MAX][DEPS_REQ_MAX];  /* sorted, no duplicates */
};

/* Parses the decoded parameter value into set. A requirement is
 *   NAME [ "[" EXTRA ("," EXTRA)* "]" ] [ CLAUSE ("," CLAUSE)* ]
 * with NAME per PEP 508 (letters, digits, '.', '_', '-'; starts and ends
 * with a letter or digit; at most DEPS_NAME_MAX bytes), CLAUSE an operator
 * (== != <= >= < > ~= ===) and a version ([A-Za-z0-9.+!_-], '.*' allowed at
 * the end after == and !=), blanks allowed between tokens. Because the seed
 * splits on every comma, an item that starts with an operator continues the
 * previous requirement ("numpy>=1,<2"), and a comma inside [...] separates
 * extras. More than max requirements (after duplicates are merged) is an
 * error. 0, or -1 with a sentence in err that quotes the offending item
 * (sanitised). An empty or blank value gives an empty set. */
int deps_parse(const char *value, unsigned max, struct deps_set *set, char *err, size_t errlen);

/* Writes the set's key into key (DEPS_KEY_HEX + 1 bytes): the lowercase hex
 * SHA-256 of salt (the interpreter's identity and the pip settings, which
 * the caller composes), a NUL, and the requirements joined by '\n'. */
void deps_key(const struct deps_set *set, const char *salt, char *key);

/* PEP 503 normalisation of a name of len bytes into out (len + 1 bytes):
 * lowercase, every run of '-', '_', '.' becomes one '-'. */
void deps_normalize_name(const char *name, size_t len, char *out);

/* The top-level modules an installed set provides, from the metadata of
 * the distributions in site_fd (a pip --target directory: one
 * NAME-VERSION.dist-info each): each one's top_level.txt, or else what its
 * RECORD lists at the top (MOD.py, PKG/__init__.py, MOD.TAG.so). Only
 * Python identifiers; a distribution's files are never trusted further
 * (no symlink followed, DEPS_META_MAX bytes of a file read). Writes them
 * into out (len bytes) sorted, without duplicates, comma-separated (""
 * when none); a name that does not fit is left out. The number written,
 * or -1 with errno when site_fd cannot be listed. */
#define DEPS_META_MAX (1 << 20)
int deps_top_level(int site_fd, char *out, size_t len);

#endif
