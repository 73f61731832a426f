/* asyncsafe: the few helpers a child may call between fork (or clone) and
 * execve, in a copy of a possibly multi-threaded process whose libc state
 * it cannot trust: system calls and async-signal-safe functions only (no
 * malloc, no stdio, no locale). run.c's built-in spawner and the sandbox's
 * init and payload share them.
 *
 * Messages take the form "cannot <what>[ <arg>]: <description of err>";
 * what a child tells the program's stderr is that, prefixed "pyexec: ",
 * on a line of its own. */
#ifndef PYEXEC_ASYNCSAFE_H
#define PYEXEC_ASYNCSAFE_H

#include <limits.h>
#include <stddef.h>

/* Longest message a child writes: "pyexec: cannot <what> <path>: <error>\n". */
#define ASYNCSAFE_MSG_MAX (PATH_MAX + 160)

/* Appends s (NULL = nothing) to dst, which holds n bytes and has room for
 * cap; stops short rather than overflow. dst stays NUL-ended; returns its
 * new length. */
size_t asyncsafe_cat(char *dst, size_t cap, size_t n, const char *s);

/* The description of err ("No such file or directory"), a static string;
 * "Unknown error" for a number the C library does not know. */
const char *asyncsafe_strerror(int err);

/* Writes "cannot <what>[ <arg>]: <err's description>" into dst (cap bytes,
 * NUL-ended, cut short if need be); returns its length. */
size_t asyncsafe_errmsg(char *dst, size_t cap, const char *what, const char *arg, int err);

/* Writes "pyexec: cannot <what>[ <arg>]: <description>\n" to fd (the
 * program's stderr); a failure to write is ignored. */
void asyncsafe_say(int fd, const char *what, const char *arg, int err);

/* asyncsafe_say, then _exit(127), the exit of a program that could not be
 * started. */
__attribute__((noreturn))
void asyncsafe_fail(int fd, const char *what, const char *arg, int err);

/* Closes every fd but the nkeep in keep (-1 entries ignored; at most 8
 * are kept). close_range(2) needs Linux 5.9; before that the open fds are
 * listed from /proc with getdents64 (opendir would allocate), or, without
 * /proc, every fd below the process's limit is closed. */
void asyncsafe_close_except(const int *keep, size_t nkeep);

#endif
