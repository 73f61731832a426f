/* upload: a request's multipart/form-data body, streamed into its work
 * directory one chunk at a time (an upload is never held whole in memory).
 * Every part with a filename becomes a file under work/ and is recorded in
 * the snapshot; the field "stdin" becomes a private file the run reads as
 * its standard input; the fields "args" and "env" (lib/argenv.h), held in
 * memory (ARGENV_FIELD_MAX bytes each), become the run's arguments and
 * variables. The first refusal (a bad name, a file too many, a
 * full disk) is kept as the error reply to send: status, code and detail,
 * the README's error table. */
#ifndef PYEXEC_UPLOAD_H
#define PYEXEC_UPLOAD_H

#include <stdint.h>
#include <sys/types.h>

#include "argenv.h"
#include "collect.h"
#include "conf.h"
#include "multipart.h"
#include "names.h"
#include "workdir.h"

#define UPLOAD_DETAIL_MAX 512
/* The README's 413 for uploads over the sandbox's disk; its number is max_disk. */
#define UPLOAD_DISK_DETAIL \
	"The uploaded files do not fit in the run's disk of %llu bytes (max_disk)."

struct upload {
	const struct config *cfg;
	struct workdir *wd;
	struct collect_snapshot *snap;  /* borrowed: the uploads are added to it */
	int dir_fd;                /* borrowed: where the files go (-1: wd's work/) */
	mode_t dir_bits, file_bits;/* added to their modes */
	uint64_t disk_bytes;       /* the size of dir_fd's disk, which it fills
	                            * alone (a 413 when full); 0: a shared disk */
	struct multipart_disposition disp;
	int have_disp;
	int fd;                    /* file being written, -1 between parts */
	int is_stdin;
	int have_stdin;
	int stdin_fd;              /* owned: the "stdin" field, kept open for the run */
	const char *field;         /* the field "args" or "env" being read, or NULL */
	char *field_buf;           /* owned: its bytes so far */
	size_t field_len;
	struct argenv ae;          /* owned: the run's arguments and variables */
	unsigned files;
	char name[NAMES_PATH_MAX + 1];
	/* the error reply, when the body was refused; status 0 otherwise */
	int status;
	const char *error;
	char detail[UPLOAD_DETAIL_MAX];
};

/* Prepares u to receive a body into wd, recording its files in snap
 * (both borrowed, and must outlive u). Owns nothing yet. */
void upload_init(struct upload *u, const struct config *cfg, struct workdir *wd,
		 struct collect_snapshot *snap);

/* Sends the files to dir_fd instead (borrowed), a sandbox's /work of
 * disk_bytes, with dir_bits and file_bits added to their modes. The field
 * "stdin" stays in wd. */
void upload_into(struct upload *u, int dir_fd, mode_t dir_bits, mode_t file_bits,
		 uint64_t disk_bytes);

/* Streams the body from read (count, 0 at its end, -1 on error) through the
 * parser mp, made with upload_callbacks and u, reading chunk bytes at a time
 * into buf. Stops at the first refusal (u->status set) or when more than
 * max_upload bytes arrive; *received counts the bytes read. 0 when the body
 * was read (accepted or not), -1 when read failed (the client went away). */
int upload_receive(struct upload *u, struct multipart_parser *mp,
		   ssize_t (*read)(void *ctx, void *buf, size_t len), void *read_ctx,
		   char *buf, size_t chunk, uint64_t *received);

/* Keeps the first refusal: status, error code (static) and a formatted detail. */
void upload_fail(struct upload *u, int status, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Closes what u holds open (the file being written, stdin_fd) and frees
 * its fields (ae). Safe twice. */
void upload_close(struct upload *u);

/* The parser's callbacks; their data is a struct upload. */
extern const struct multipart_callbacks upload_callbacks;

#endif
