#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "argenv.h"
#include "util.h"

void argenv_init(struct argenv *a)
{
	memset(a, 0, sizeof(*a));
}

void argenv_free(struct argenv *a)
{
	for (size_t i = 0; i < a->argc; i++)
		free(a->argv[i]);
	for (size_t i = 0; i < a->envc; i++)
		free(a->env[i]);
	argenv_init(a);
}

/* The field's JSON, of the type wanted (JSON_ARRAY or JSON_OBJECT) with
 * at most max items, when it was not given already; or NULL with err.
 * \u0000 is let through the parser, to be refused with a reason of
 * pyexec's own. */
static json_t *load(const char *field, int given, const char *json, size_t len,
		    json_type want, size_t max, char *err, size_t errlen)
{
	json_error_t e;
	json_t *doc;

	if (given) {
		util_errorf(err, errlen, "%s: given twice", field);
		return NULL;
	}
	if (len > ARGENV_FIELD_MAX) {
		util_errorf(err, errlen, "%s: over %u bytes", field, ARGENV_FIELD_MAX);
		return NULL;
	}
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
			 &e);
	if (doc == NULL) {
		/* jansson's text quotes the input near the error: client bytes */
		char why[sizeof(e.text)];

		util_shown(e.text, strnlen(e.text, sizeof(e.text)), why, sizeof(why));
		util_errorf(err, errlen, "%s: not valid JSON (line %d, column %d: %s)", field,
			    e.line, e.column, why);
		return NULL;
	}
	if (json_typeof(doc) != want) {
		util_errorf(err, errlen, "%s: must be a JSON %s", field,
			    want == JSON_ARRAY ? "array of strings" :
			    "object of names to strings");
		json_decref(doc);
		return NULL;
	}
	if ((want == JSON_ARRAY ? json_array_size(doc) : json_object_size(doc)) > max) {
		util_errorf(err, errlen, "%s: more than %zu %s", field, max,
			    want == JSON_ARRAY ? "strings" : "variables");
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* A string of need bytes fits in what is left of ARGENV_BYTES_MAX: 0 and
 * counted, or -1 with err. */
static int room(struct argenv *a, size_t need, const char *field, char *err, size_t errlen)
{
	if (need > ARGENV_BYTES_MAX - a->bytes) {
		util_errorf(err, errlen, "%s: the arguments and environment given are over %u "
			    "bytes", field, ARGENV_BYTES_MAX);
		return -1;
	}
	a->bytes += need;
	return 0;
}

int argenv_parse_args(struct argenv *a, const char *json, size_t len, char *err, size_t errlen)
{
	json_t *doc = load("args", a->have_args, json, len, JSON_ARRAY, ARGENV_ARGS_MAX, err,
			   errlen), *v;
	size_t i;
	int rc = -1;

	if (doc == NULL)
		return -1;
	json_array_foreach(doc, i, v) {
		const char *s = json_string_value(v);

		if (s == NULL) {
			util_errorf(err, errlen, "args: item %zu is not a string", i);
			goto out;
		}
		if (strlen(s) != json_string_length(v)) {
			util_errorf(err, errlen, "args: item %zu holds a NUL character, which a "
				    "command line cannot", i);
			goto out;
		}
		if (room(a, json_string_length(v) + 1, "args", err, errlen) < 0)
			goto out;
		a->argv[a->argc] = strdup(s);
		if (a->argv[a->argc] == NULL) {
			util_errorf(err, errlen, "args: out of memory");
			goto out;
		}
		a->argc++;
	}
	a->have_args = 1;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

const char *argenv_refused_name(const char *name)
{
	static const char *const own[] = {
		"PATH", "HOME", "TMPDIR", "OUTPUT_DIR", "LANG", "MPLBACKEND"
	};
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= 'a' && name[i] <= 'z') || (i > 0 && name[i] >= '0' && name[i] <= '9')))
			break;
	if (i == 0 || name[i] != '\0')
		return "is not a variable name (letters, digits and _, not starting with a digit)";
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcmp(name, own[i]) == 0)
			return "is set by pyexec";
	if (strncmp(name, "PYTHON", 6) == 0)
		return "starts with PYTHON: those are set by pyexec or change how python runs";
	if (strncmp(name, "LD_", 3) == 0)
		return "starts with LD_: those change how programs are loaded";
	return NULL;
}

int argenv_parse_env(struct argenv *a, const char *json, size_t len, char *err, size_t errlen)
{
	json_t *doc = load("env", a->have_env, json, len, JSON_OBJECT, ARGENV_ENV_MAX, err,
			   errlen), *v;
	char shown[UTIL_SHOWN_MAX + 8];
	const char *name, *why;
	size_t name_len;
	int rc = -1;

	if (doc == NULL)
		return -1;
	json_object_keylen_foreach(doc, name, name_len, v) {
		const char *s = json_string_value(v);
		size_t need;

		util_shown(name, name_len, shown, sizeof(shown));
		why = argenv_refused_name(name);   /* jansson refuses a NUL in a key */
		if (why != NULL) {
			util_errorf(err, errlen, "env: '%s' %s", shown, why);
			goto out;
		}
		if (s == NULL) {
			util_errorf(err, errlen, "env: the value of '%s' is not a string", shown);
			goto out;
		}
		if (strlen(s) != json_string_length(v)) {
			util_errorf(err, errlen, "env: the value of '%s' holds a NUL character, which "
				    "an environment cannot", shown);
			goto out;
		}
		need = name_len + 1 + json_string_length(v) + 1;
		if (room(a, need, "env", err, errlen) < 0)
			goto out;
		a->env[a->envc] = malloc(need);
		if (a->env[a->envc] == NULL) {
			util_errorf(err, errlen, "env: out of memory");
			goto out;
		}
		memcpy(a->env[a->envc], name, name_len);
		a->env[a->envc][name_len] = '=';
		memcpy(a->env[a->envc] + name_len + 1, s, json_string_length(v) + 1);
		a->envc++;
	}
	a->have_env = 1;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}
