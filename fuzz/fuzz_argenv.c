/* libFuzzer target for lib/argenv.c: the form fields args and env are
 * client JSON that becomes a program's command line and environment. An
 * accepted field must give strings without NUL within the bounds, and
 * names pyexec allows; a refusal must leave a printable sentence that
 * starts with the field's name, for the 400 reply.
 *
 * Input layout: [0] bit 0 chooses args (0) or env (1), bit 1 parses a
 * second field after the first; then the JSON. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "argenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static struct argenv ae;

static void check_err(const char *err, const char *field)
{
	CHECK(strncmp(err, field, strlen(field)) == 0 && err[strlen(field)] == ':');
	for (const char *p = err; *p != '\0'; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
}

static void parse(int env, const char *json, size_t len)
{
	char err[512];
	size_t bytes = 0;
	int rc;

	err[0] = '\0';
	rc = env ? argenv_parse_env(&ae, json, len, err, sizeof(err))
		 : argenv_parse_args(&ae, json, len, err, sizeof(err));
	if (rc < 0) {
		check_err(err, env ? "env" : "args");
		return;
	}
	CHECK(ae.argc <= ARGENV_ARGS_MAX && ae.envc <= ARGENV_ENV_MAX);
	CHECK(ae.argv[ae.argc] == NULL && ae.env[ae.envc] == NULL);
	for (size_t i = 0; i < ae.argc; i++)
		bytes += strlen(ae.argv[i]) + 1;
	for (size_t i = 0; i < ae.envc; i++) {
		const char *eq = strchr(ae.env[i], '=');
		char name[ARGENV_BYTES_MAX + 1];

		CHECK(eq != NULL && eq > ae.env[i]);
		memcpy(name, ae.env[i], (size_t)(eq - ae.env[i]));
		name[eq - ae.env[i]] = '\0';
		CHECK(argenv_refused_name(name) == NULL);
		bytes += strlen(ae.env[i]) + 1;
	}
	CHECK(bytes == ae.bytes && bytes <= ARGENV_BYTES_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	argenv_init(&ae);
	parse(data[0] & 1, (const char *)data + 1, size - 1);
	if (data[0] & 2)
		parse(!(data[0] & 1), (const char *)data + 1, size - 1);
	argenv_free(&ae);
	return 0;
}
