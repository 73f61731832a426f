/* libFuzzer target for lib/conf.c: pyexec.conf and command-line options are
 * operator text, not client text, but a typo must end in a sentence, never
 * in a crash, a leak or a half-applied config.
 *
 * The whole input is the config file; the same bytes, split at the first
 * '=' or NUL into key and value, also go to config_set(). [0] picks errlen. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static struct config cfg, before;
static int memfd = -1;
static char path[64];

/* err holds a C string within errlen bytes, and nothing past them changed;
 * a refusal says something when there is room. */
static void check_err(int rc, const char *err, size_t errlen, size_t cap)
{
	for (size_t i = errlen; i < cap; i++)
		CHECK(err[i] == (char)0xa5);
	if (rc != 0 && errlen > 0)
		CHECK(memchr(err, '\0', errlen) != NULL);
	if (rc != 0 && errlen > 1)
		CHECK(err[0] != '\0' && err[0] != (char)0xa5);
}

/* What any accepted config holds, whichever keys were set. */
static void check_config(const struct config *c)
{
	CHECK(memchr(c->listen, '\0', sizeof(c->listen)) != NULL);
	CHECK(memchr(c->user, '\0', sizeof(c->user)) != NULL);
	CHECK(memchr(c->group, '\0', sizeof(c->group)) != NULL);
	CHECK(memchr(c->python, '\0', sizeof(c->python)) != NULL);
	CHECK(memchr(c->pip_index_url, '\0', sizeof(c->pip_index_url)) != NULL);
	CHECK(memchr(c->pip_extra_index_url, '\0', sizeof(c->pip_extra_index_url)) != NULL);
	CHECK(memchr(c->pip_find_links, '\0', sizeof(c->pip_find_links)) != NULL);
	/* the two directories are compared for nesting and swept: absolute */
	CHECK(c->work_root[0] == '/' && memchr(c->work_root, '\0', sizeof(c->work_root)));
	CHECK(c->deps_cache[0] == '/' && memchr(c->deps_cache, '\0', sizeof(c->deps_cache)));
	CHECK(c->pip_only_binary == 0 || c->pip_only_binary == 1);
	CHECK(c->network == 0 || c->network == 1);
	CHECK(c->sandbox == SANDBOX_AUTO || c->sandbox == SANDBOX_NAMESPACES ||
	      c->sandbox == SANDBOX_RLIMITS);
	CHECK(c->timeout_ms >= 1 && c->timeout_max_ms >= 1);
	CHECK(c->memory >= 16 * 1024 * 1024 && c->max_files >= 1);
}

/* After config_load_file or config_set: a failure leaves cfg as it was
 * (before), a success gives a sound config that config_check can judge. */
static void check_outcome(int rc, char *err, size_t errlen, size_t errsize)
{
	check_err(rc, err, errlen, errsize);
	if (rc != 0) {
		CHECK(rc == -1 && memcmp(&cfg, &before, sizeof(cfg)) == 0);
		return;
	}
	check_config(&cfg);
	memset(err, 0xa5, errsize);
	rc = config_check(&cfg, err, errlen);
	CHECK(rc == 0 || rc == -1);
	check_err(rc, err, errlen, errsize);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512 + 16];
	size_t errlen = size > 0 ? data[0] * 2u : sizeof(err) - 16;
	size_t klen;
	char *key, *value;
	int rc;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_conf", MFD_CLOEXEC);
		CHECK(memfd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	CHECK(ftruncate(memfd, 0) == 0);
	CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);

	config_defaults(&cfg);
	memcpy(&before, &cfg, sizeof(cfg));
	memset(err, 0xa5, sizeof(err));
	rc = config_load_file(&cfg, path, err, errlen);
	check_outcome(rc, err, errlen, sizeof(err));

	/* key = value as an option would give them: two C strings */
	for (klen = 0; klen < size && data[klen] != '=' && data[klen] != '\0'; klen++)
		;
	key = malloc(klen + 1);
	value = malloc(size - klen + 1);
	CHECK(key != NULL && value != NULL);
	memcpy(key, data, klen);
	key[klen] = '\0';
	if (klen < size)
		memcpy(value, data + klen + 1, size - klen - 1);
	value[klen < size ? size - klen - 1 : 0] = '\0';

	config_defaults(&cfg);
	memcpy(&before, &cfg, sizeof(cfg));
	memset(err, 0xa5, sizeof(err));
	rc = config_set(&cfg, key, value, err, errlen);
	check_outcome(rc, err, errlen, sizeof(err));
	free(key);
	free(value);
	return 0;
}
