/* argenv: a run's arguments and environment from the request's form
 * fields (the README's "POST execute"): "args", a JSON array of strings
 * (sys.argv[1:]), and "env", a JSON object of names to strings, added to
 * the environment pyexec builds. Parsed by jansson (strict JSON, valid
 * UTF-8, no duplicate names). A refusal is a detail that starts with the
 * field's name, for the 400 the request answers. */
#ifndef PYEXEC_ARGENV_H
#define PYEXEC_ARGENV_H

#include <stddef.h>

#define ARGENV_FIELD_MAX  (64 * 1024)  /* bytes of a field's JSON */
#define ARGENV_ARGS_MAX   128          /* strings in args */
#define ARGENV_ENV_MAX    64           /* variables in env */
/* bytes of the strings args and env add to the command line and the
 * environment ("NAME=value"), each counted with its terminating NUL */
#define ARGENV_BYTES_MAX  (32 * 1024)

struct argenv {
	char *argv[ARGENV_ARGS_MAX + 1];  /* owned; NULL-ended */
	char *env[ARGENV_ENV_MAX + 1];    /* owned "NAME=value"; NULL-ended */
	size_t argc, envc;
	size_t bytes;                      /* counted against ARGENV_BYTES_MAX */
	int have_args, have_env;
};

void argenv_init(struct argenv *a);

/* The field "args" (len bytes of JSON) into a->argv. 0, or -1 with a
 * detail in err ("args: ..."); what it added stays a's (argenv_free). */
int argenv_parse_args(struct argenv *a, const char *json, size_t len, char *err, size_t errlen);

/* The field "env" into a->env, in the order given. 0, or -1 with a detail
 * in err ("env: ..."). A name must be a shell variable's
 * ([A-Za-z_][A-Za-z0-9_]*) that pyexec does not set itself: not PATH, HOME,
 * TMPDIR, OUTPUT_DIR, LANG, MPLBACKEND, nor one starting with PYTHON or
 * LD_. */
int argenv_parse_env(struct argenv *a, const char *json, size_t len, char *err, size_t errlen);

/* Why name may not be set by a request (static text), or NULL when it may. */
const char *argenv_refused_name(const char *name);

/* Frees what a owns; a is empty again. Safe twice. */
void argenv_free(struct argenv *a);

#endif
