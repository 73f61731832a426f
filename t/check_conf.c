#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "check_main.h"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

static char tmpdir[64];
static char path_buf[256];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	/* Only our own mkdtemp directory, made above. */
	snprintf(cmd, sizeof(cmd), "%s/pyexec.conf", tmpdir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/sub", tmpdir);
	rmdir(cmd);
	rmdir(tmpdir);
}

/* Writes len bytes to <tmpdir>/pyexec.conf; returns the path. */
static const char *write_conf(const char *data, size_t len)
{
	FILE *f;

	snprintf(path_buf, sizeof(path_buf), "%s/pyexec.conf", tmpdir);
	f = fopen(path_buf, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return path_buf;
}

static const char *write_conf_str(const char *s)
{
	return write_conf(s, strlen(s));
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
	struct config c;

	memset(&c, 0x5a, sizeof(c));
	config_defaults(&c);
	ck_assert_str_eq(c.listen, "");
	ck_assert_uint_eq(c.workers, 0);
	ck_assert_str_eq(c.user, "nobody");
	ck_assert_str_eq(c.group, "nogroup");
	ck_assert_str_eq(c.python, "/usr/bin/python3");
	ck_assert_str_eq(c.work_root, CONFIG_WORK_ROOT);
	ck_assert_str_eq(c.deps_cache, CONFIG_DEPS_CACHE);
	ck_assert_uint_eq(c.deps_cache_max, 5 * GiB);
	ck_assert_str_eq(c.pip_index_url, "");
	ck_assert_str_eq(c.pip_extra_index_url, "");
	ck_assert_str_eq(c.pip_find_links, "");
	ck_assert_int_eq(c.pip_only_binary, 1);
	ck_assert_uint_eq(c.pip_timeout_ms, 300000);
	ck_assert_uint_eq(c.max_dependencies, 32);
	ck_assert_uint_eq(c.max_upload, 50 * MiB);
	ck_assert_uint_eq(c.max_files, 200);
	ck_assert_uint_eq(c.timeout_ms, 10000);
	ck_assert_uint_eq(c.timeout_max_ms, 60000);
	ck_assert_uint_eq(c.cpu_time_ms, 0);
	ck_assert_uint_eq(c.memory, 512 * MiB);
	ck_assert_uint_eq(c.memory_max, 4 * GiB);
	ck_assert_uint_eq(c.max_processes, 64);
	ck_assert_uint_eq(c.max_open_files, 256);
	ck_assert_uint_eq(c.max_file_size, 64 * MiB);
	ck_assert_uint_eq(c.max_disk, 256 * MiB);
	ck_assert_uint_eq(c.max_output, 1 * MiB);
	ck_assert_uint_eq(c.max_generated_files, 100);
	ck_assert_uint_eq(c.max_generated_bytes, 100 * MiB);
	ck_assert_int_eq(c.network, 0);
	ck_assert_int_eq(c.sandbox, SANDBOX_AUTO);
	ck_assert_str_eq(c.cgroup, "auto");
}
END_TEST

START_TEST(test_defaults_pass_check)
{
	struct config c;
	char err[256] = "";

	config_defaults(&c);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
}
END_TEST

/* ---- every key accepted ---- */

enum kind { K_UINT, K_U64, K_INT, K_STR, K_SANDBOX };

struct good {
	const char *key, *value;
	size_t offset;
	enum kind kind;
	uint64_t num;
	const char *str;
};

#define O(f) offsetof(struct config, f)
static const struct good goods[] = {
	{ "listen", "unix:/run/pyexec/pyexec.sock", O(listen), K_STR, 0, "unix:/run/pyexec/pyexec.sock" },
	{ "listen", "tcp:127.0.0.1:9000", O(listen), K_STR, 0, "tcp:127.0.0.1:9000" },
	{ "listen", "tcp:0.0.0.0:65535", O(listen), K_STR, 0, "tcp:0.0.0.0:65535" },
	{ "listen", "tcp:[::1]:9000", O(listen), K_STR, 0, "tcp:[::1]:9000" },
	{ "listen", "tcp:[2001:db8::7]:1", O(listen), K_STR, 0, "tcp:[2001:db8::7]:1" },
	{ "listen", "fd:0", O(listen), K_STR, 0, "fd:0" },
	{ "listen", "fd:3", O(listen), K_STR, 0, "fd:3" },
	{ "listen", "", O(listen), K_STR, 0, "" },
	{ "workers", "0", O(workers), K_UINT, 0, NULL },
	{ "workers", "1", O(workers), K_UINT, 1, NULL },
	{ "workers", "1024", O(workers), K_UINT, 1024, NULL },
	{ "user", "www-data", O(user), K_STR, 0, "www-data" },
	{ "user", "1000", O(user), K_STR, 0, "1000" },
	{ "group", "pyexec_grp.2", O(group), K_STR, 0, "pyexec_grp.2" },
	{ "python", "/opt/py/bin/python3.12", O(python), K_STR, 0, "/opt/py/bin/python3.12" },
	{ "work_root", "/srv/pyexec/work", O(work_root), K_STR, 0, "/srv/pyexec/work" },
	{ "work_root", "/srv/pyexec/work/", O(work_root), K_STR, 0, "/srv/pyexec/work" },
	{ "deps_cache", "/srv/cache", O(deps_cache), K_STR, 0, "/srv/cache" },
	{ "deps_cache", "/srv/.cache/x", O(deps_cache), K_STR, 0, "/srv/.cache/x" },
	{ "deps_cache_max", "1M", O(deps_cache_max), K_U64, 1 * MiB, NULL },
	{ "deps_cache_max", "10G", O(deps_cache_max), K_U64, 10 * GiB, NULL },
	{ "deps_cache_max", "1024G", O(deps_cache_max), K_U64, 1024 * GiB, NULL },
	{ "pip_index_url", "http://127.0.0.1:8080/simple/", O(pip_index_url), K_STR, 0, "http://127.0.0.1:8080/simple/" },
	{ "pip_index_url", "https://pypi.example/simple", O(pip_index_url), K_STR, 0, "https://pypi.example/simple" },
	{ "pip_index_url", "", O(pip_index_url), K_STR, 0, "" },
	{ "pip_extra_index_url", "file:///srv/index", O(pip_extra_index_url), K_STR, 0, "file:///srv/index" },
	{ "pip_find_links", "/usr/share/python-wheels", O(pip_find_links), K_STR, 0, "/usr/share/python-wheels" },
	{ "pip_find_links", "https://x.example/links.html", O(pip_find_links), K_STR, 0, "https://x.example/links.html" },
	{ "pip_only_binary", "no", O(pip_only_binary), K_INT, 0, NULL },
	{ "pip_only_binary", "Off", O(pip_only_binary), K_INT, 0, NULL },
	{ "pip_only_binary", "false", O(pip_only_binary), K_INT, 0, NULL },
	{ "pip_only_binary", "0", O(pip_only_binary), K_INT, 0, NULL },
	{ "network", "yes", O(network), K_INT, 1, NULL },
	{ "network", "TRUE", O(network), K_INT, 1, NULL },
	{ "network", "on", O(network), K_INT, 1, NULL },
	{ "network", "1", O(network), K_INT, 1, NULL },
	{ "pip_timeout", "1", O(pip_timeout_ms), K_U64, 1000, NULL },
	{ "pip_timeout", "2.5", O(pip_timeout_ms), K_U64, 2500, NULL },
	{ "pip_timeout", "86400", O(pip_timeout_ms), K_U64, 86400000, NULL },
	{ "max_dependencies", "0", O(max_dependencies), K_UINT, 0, NULL },
	{ "max_dependencies", "1024", O(max_dependencies), K_UINT, 1024, NULL },
	{ "max_upload", "1K", O(max_upload), K_U64, 1 * KiB, NULL },
	{ "max_upload", "100M", O(max_upload), K_U64, 100 * MiB, NULL },
	{ "max_upload", "16G", O(max_upload), K_U64, 16 * GiB, NULL },
	{ "max_upload", "1048576", O(max_upload), K_U64, 1 * MiB, NULL },
	{ "max_files", "1", O(max_files), K_UINT, 1, NULL },
	{ "max_files", "100000", O(max_files), K_UINT, 100000, NULL },
	{ "timeout", "0.001", O(timeout_ms), K_U64, 1, NULL },
	{ "timeout", "1.5", O(timeout_ms), K_U64, 1500, NULL },
	{ "timeout", "2.25", O(timeout_ms), K_U64, 2250, NULL },
	{ "timeout", "007", O(timeout_ms), K_U64, 7000, NULL },
	{ "timeout", "00000000000000000000000001.5", O(timeout_ms), K_U64, 1500, NULL },
	{ "timeout", "86400", O(timeout_ms), K_U64, 86400000, NULL },
	{ "timeout_max", "120", O(timeout_max_ms), K_U64, 120000, NULL },
	{ "cpu_time", "0", O(cpu_time_ms), K_U64, 0, NULL },
	{ "cpu_time", "1", O(cpu_time_ms), K_U64, 1000, NULL },
	{ "cpu_time", "30.5", O(cpu_time_ms), K_U64, 30500, NULL },
	{ "memory", "16M", O(memory), K_U64, 16 * MiB, NULL },
	{ "memory", "1048576K", O(memory), K_U64, 1 * GiB, NULL },
	{ "memory", "2g", O(memory), K_U64, 2 * GiB, NULL },
	{ "memory_max", "64G", O(memory_max), K_U64, 64 * GiB, NULL },
	{ "max_processes", "1", O(max_processes), K_UINT, 1, NULL },
	{ "max_processes", "65536", O(max_processes), K_UINT, 65536, NULL },
	{ "max_open_files", "16", O(max_open_files), K_UINT, 16, NULL },
	{ "max_open_files", "1048576", O(max_open_files), K_UINT, 1048576, NULL },
	{ "max_file_size", "1K", O(max_file_size), K_U64, 1 * KiB, NULL },
	{ "max_file_size", "2G", O(max_file_size), K_U64, 2 * GiB, NULL },
	{ "max_disk", "1M", O(max_disk), K_U64, 1 * MiB, NULL },
	{ "max_output", "1k", O(max_output), K_U64, 1 * KiB, NULL },
	{ "max_output", "1G", O(max_output), K_U64, 1 * GiB, NULL },
	{ "max_generated_files", "0", O(max_generated_files), K_UINT, 0, NULL },
	{ "max_generated_files", "100000", O(max_generated_files), K_UINT, 100000, NULL },
	{ "max_generated_bytes", "0", O(max_generated_bytes), K_U64, 0, NULL },
	{ "max_generated_bytes", "500m", O(max_generated_bytes), K_U64, 500 * MiB, NULL },
	{ "sandbox", "namespaces", O(sandbox), K_SANDBOX, SANDBOX_NAMESPACES, NULL },
	{ "sandbox", "rlimits", O(sandbox), K_SANDBOX, SANDBOX_RLIMITS, NULL },
	{ "cgroup", "no", O(cgroup), K_STR, 0, "no" },
	{ "tokens_file", "/etc/pyexec/tokens", O(tokens_file), K_STR, 0, "/etc/pyexec/tokens" },
	{ "tokens_file", "", O(tokens_file), K_STR, 0, "" },
	{ "warm", "no", O(warm), K_INT, 0, NULL },
	{ "warm_runs", "1", O(warm_runs), K_UINT, 1, NULL },
	{ "warm_seconds", "2.5", O(warm_ms), K_U64, 2500, NULL },
	{ "warm_preload", "", O(warm_preload), K_STR, 0, "" },
	{ "warm_deps_after", "0", O(warm_deps_after), K_UINT, 0, NULL },
	{ "warm_deps_after", "7", O(warm_deps_after), K_UINT, 7, NULL },
	{ "warm_zygotes_max", "0", O(warm_zygotes_max), K_UINT, 0, NULL },
	{ "warm_zygotes_max", "16", O(warm_zygotes_max), K_UINT, 16, NULL },
	{ "warm_zygotes_memory", "0", O(warm_zygotes_memory), K_U64, 0, NULL },
	{ "warm_zygotes_memory", "512M", O(warm_zygotes_memory), K_U64, 512 * MiB, NULL },
	{ "warm_preload", " numpy , matplotlib.pyplot,_x9 ", O(warm_preload), K_STR, 0,
	  "numpy,matplotlib.pyplot,_x9" },
	{ "sandbox_etc", "", O(sandbox_etc), K_STR, 0, "" },
	{ "sandbox_etc", "/etc/foo", O(sandbox_etc), K_STR, 0, "/etc/foo" },
	{ "sandbox_etc", "/etc/foo, /etc/bar/baz/ ,/etc/x.conf", O(sandbox_etc), K_STR, 0,
	  "/etc/foo,/etc/bar/baz,/etc/x.conf" },
	{ "auth_metrics", "no", O(auth_metrics), K_INT, 0, NULL },
	{ "cgroup", "auto", O(cgroup), K_STR, 0, "auto" },
	{ "cgroup", "/sys/fs/cgroup/system.slice/pyexec.service/", O(cgroup), K_STR, 0,
	  "/sys/fs/cgroup/system.slice/pyexec.service" },
};

START_TEST(test_set_good)
{
	const struct good *g = &goods[_i];
	struct config c;
	const char *field;
	char err[256] = "";

	config_defaults(&c);
	/* Start away from the expected value so a no-op set cannot pass. */
	if (g->kind == K_STR)
		strcpy((char *)&c + g->offset, "/poison");
	else if (g->kind == K_UINT)
		*(unsigned *)((char *)&c + g->offset) = 77777;
	else if (g->kind == K_U64)
		*(uint64_t *)((char *)&c + g->offset) = 77777;
	else if (g->kind == K_INT)
		*(int *)((char *)&c + g->offset) = !g->num;
	else
		c.sandbox = SANDBOX_AUTO;
	ck_assert_msg(config_set(&c, g->key, g->value, err, sizeof(err)) == 0,
		      "%s = %s: %s", g->key, g->value, err);
	field = (const char *)&c + g->offset;
	switch (g->kind) {
	case K_UINT:    ck_assert_uint_eq(*(const unsigned *)field, g->num); break;
	case K_U64:     ck_assert_uint_eq(*(const uint64_t *)field, g->num); break;
	case K_INT:     ck_assert_int_eq(*(const int *)field, (int)g->num); break;
	case K_STR:     ck_assert_str_eq(field, g->str); break;
	case K_SANDBOX: ck_assert_int_eq(c.sandbox, (int)g->num); break;
	}
}
END_TEST

START_TEST(test_set_sandbox_auto)
{
	struct config c;
	char err[256];

	config_defaults(&c);
	c.sandbox = SANDBOX_RLIMITS;
	ck_assert_int_eq(config_set(&c, "sandbox", "auto", err, sizeof(err)), 0);
	ck_assert_int_eq(c.sandbox, SANDBOX_AUTO);
}
END_TEST

/* ---- every key rejected ---- */

struct bad {
	const char *key, *value, *err;   /* err: the whole message */
};

static const struct bad bads[] = {
	{ "nosuchkey", "1", "unknown key 'nosuchkey'" },
	{ "Timeout", "5", "unknown key 'Timeout'" },
	{ "", "5", "unknown key ''" },
	{ "listen", "/run/x.sock", "listen: '/run/x.sock' must be unix:/absolute/path, tcp:HOST:PORT or fd:N" },
	{ "listen", "unix:run/x.sock", "listen: 'unix:run/x.sock': the socket path must be absolute" },
	{ "listen", "unix:", "listen: 'unix:': the socket path must be absolute" },
	{ "listen", "tcp:localhost:9000", "listen: 'tcp:localhost:9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:127.0.0.1:0", "listen: 'tcp:127.0.0.1:0' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:127.0.0.1:65536", "listen: 'tcp:127.0.0.1:65536' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:127.0.0.1", "listen: 'tcp:127.0.0.1' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:127.0.0.1:", "listen: 'tcp:127.0.0.1:' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:127.0.0.1:9x", "listen: 'tcp:127.0.0.1:9x' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:256.0.0.1:9000", "listen: 'tcp:256.0.0.1:9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp::9000", "listen: 'tcp::9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:::1:9000", "listen: 'tcp:::1:9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:[::1]9000", "listen: 'tcp:[::1]9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:[::1:9000", "listen: 'tcp:[::1:9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "tcp:[127.0.0.1]:9000", "listen: 'tcp:[127.0.0.1]:9000' must be tcp:IPV4:PORT or tcp:[IPV6]:PORT, port 1 to 65535" },
	{ "listen", "fd:", "listen: 'fd:' must be fd:N with N from 0 to 1048576" },
	{ "listen", "fd:-1", "listen: 'fd:-1' must be fd:N with N from 0 to 1048576" },
	{ "listen", "fd:1048577", "listen: 'fd:1048577' must be fd:N with N from 0 to 1048576" },
	{ "listen", "FD:3", "listen: 'FD:3' must be unix:/absolute/path, tcp:HOST:PORT or fd:N" },
	{ "workers", "1025", "workers: 1025 is out of range: must be from 0 to 1024" },
	{ "workers", "99999999999999999999999", "workers: 99999999999999999999999 is out of range: must be from 0 to 1024" },
	{ "workers", "-1", "workers: '-1' is not a whole number" },
	{ "workers", "4x", "workers: '4x' is not a whole number" },
	{ "workers", "", "workers: '' is not a whole number" },
	{ "user", "", "user: '' must be a name or number of letters, digits, '_', '.' and '-'" },
	{ "user", "-root", "user: '-root' must be a name or number of letters, digits, '_', '.' and '-'" },
	{ "user", "a b", "user: 'a b' must be a name or number of letters, digits, '_', '.' and '-'" },
	{ "group", "x:y", "group: 'x:y' must be a name or number of letters, digits, '_', '.' and '-'" },
	{ "python", "python3", "python: 'python3' must be an absolute path" },
	{ "python", "", "python: '' must be an absolute path" },
	{ "python", "/usr/bin/py\tthon", "python: '/usr/bin/py?thon' must be an absolute path" },
	{ "work_root", "/", "work_root: '/' must not be the root directory" },
	{ "work_root", "//", "work_root: '//' must not be the root directory" },
	{ "work_root", "var/work", "work_root: 'var/work' must be an absolute path" },
	{ "work_root", "/var/../etc", "work_root: '/var/../etc' must not contain '.', '..' or '//' components" },
	{ "work_root", "/var/lib/..", "work_root: '/var/lib/..' must not contain '.', '..' or '//' components" },
	{ "deps_cache", "/var//cache", "deps_cache: '/var//cache' must not contain '.', '..' or '//' components" },
	{ "deps_cache", "/var/./cache", "deps_cache: '/var/./cache' must not contain '.', '..' or '//' components" },
	{ "deps_cache", "//var/cache", "deps_cache: '//var/cache' must not contain '.', '..' or '//' components" },
	{ "deps_cache_max", "0", "deps_cache_max: 0 is out of range: must be from 1M to 1024G" },
	{ "deps_cache_max", "1025G", "deps_cache_max: 1025G is out of range: must be from 1M to 1024G" },
	{ "deps_cache_max", "99999999999999999999G", "deps_cache_max: 99999999999999999999G is out of range: must be from 1M to 1024G" },
	{ "deps_cache_max", "5T", "deps_cache_max: '5T' is not a size (a whole number with an optional K, M or G suffix)" },
	{ "deps_cache_max", "5GB", "deps_cache_max: '5GB' is not a size (a whole number with an optional K, M or G suffix)" },
	{ "deps_cache_max", "G", "deps_cache_max: 'G' is not a size (a whole number with an optional K, M or G suffix)" },
	{ "pip_index_url", "ftp://x.example/", "pip_index_url: 'ftp://x.example/' must be an http://, https:// or file:// URL" },
	{ "pip_index_url", "http://", "pip_index_url: 'http://' must be an http://, https:// or file:// URL" },
	{ "pip_index_url", "https://a b/", "pip_index_url: 'https://a b/' must not contain spaces or control characters" },
	{ "pip_extra_index_url", "/srv/wheels", "pip_extra_index_url: '/srv/wheels' must be an http://, https:// or file:// URL" },
	{ "pip_find_links", "wheels", "pip_find_links: 'wheels' must be an http://, https:// or file:// URL or an absolute path" },
	{ "pip_find_links", "--index-url=http://evil/", "pip_find_links: '--index-url=http://evil/' must be an http://, https:// or file:// URL or an absolute path" },
	{ "pip_only_binary", "maybe", "pip_only_binary: 'maybe' is not yes or no" },
	{ "pip_only_binary", "", "pip_only_binary: '' is not yes or no" },
	{ "network", "2", "network: '2' is not yes or no" },
	{ "pip_timeout", "0", "pip_timeout: 0 is out of range: must be from 1 to 86400 seconds" },
	{ "pip_timeout", "0.5", "pip_timeout: 0.5 is out of range: must be from 1 to 86400 seconds" },
	{ "pip_timeout", "86400.001", "pip_timeout: 86400.001 is out of range: must be from 1 to 86400 seconds" },
	{ "pip_timeout", "5m", "pip_timeout: '5m' is not a number of seconds" },
	{ "max_dependencies", "1025", "max_dependencies: 1025 is out of range: must be from 0 to 1024" },
	{ "max_upload", "0", "max_upload: 0 is out of range: must be from 1K to 16G" },
	{ "max_upload", "1023", "max_upload: 1023 is out of range: must be from 1K to 16G" },
	{ "max_upload", "17G", "max_upload: 17G is out of range: must be from 1K to 16G" },
	{ "max_upload", "1.5M", "max_upload: '1.5M' is not a size (a whole number with an optional K, M or G suffix)" },
	{ "max_upload", "-1", "max_upload: '-1' is not a size (a whole number with an optional K, M or G suffix)" },
	{ "max_files", "0", "max_files: 0 is out of range: must be from 1 to 100000" },
	{ "max_files", "100001", "max_files: 100001 is out of range: must be from 1 to 100000" },
	{ "timeout", "0", "timeout: 0 is out of range: must be from 0.001 to 86400 seconds" },
	{ "timeout", "0.000", "timeout: 0.000 is out of range: must be from 0.001 to 86400 seconds" },
	{ "timeout", "86400.001", "timeout: 86400.001 is out of range: must be from 0.001 to 86400 seconds" },
	/* 18446744073709559 s is 7.384 s once multiplied by 1000 in 64 bits. */
	{ "timeout", "18446744073709559", "timeout: 18446744073709559 is out of range: must be from 0.001 to 86400 seconds" },
	{ "timeout", "1.2345", "timeout: '1.2345' has more than 3 decimals (milliseconds)" },
	{ "timeout", "abc", "timeout: 'abc' is not a number of seconds" },
	{ "timeout", "", "timeout: '' is not a number of seconds" },
	{ "timeout", ".5", "timeout: '.5' is not a number of seconds" },
	{ "timeout", "5.", "timeout: '5.' is not a number of seconds" },
	{ "timeout", "-1", "timeout: '-1' is not a number of seconds" },
	{ "timeout", "1e3", "timeout: '1e3' is not a number of seconds" },
	{ "timeout", "10s", "timeout: '10s' is not a number of seconds" },
	{ "timeout_max", "0", "timeout_max: 0 is out of range: must be from 0.001 to 86400 seconds" },
	{ "timeout_max", "100000", "timeout_max: 100000 is out of range: must be from 0.001 to 86400 seconds" },
	{ "cpu_time", "0.5", "cpu_time: 0.5 is out of range: must be 0 (the run's timeout) or from 1 to 86400 seconds" },
	{ "cpu_time", "86401", "cpu_time: 86401 is out of range: must be 0 (the run's timeout) or from 1 to 86400 seconds" },
	{ "cpu_time", "x", "cpu_time: 'x' is not a number of seconds" },
	{ "memory", "15M", "memory: 15M is out of range: must be from 16M to 1024G" },
	{ "memory", "0", "memory: 0 is out of range: must be from 16M to 1024G" },
	{ "memory", "2T", "memory: '2T' is not a size (a whole number with an optional K, M or G suffix)" },
	{ "memory_max", "1025G", "memory_max: 1025G is out of range: must be from 16M to 1024G" },
	{ "max_processes", "0", "max_processes: 0 is out of range: must be from 1 to 65536" },
	{ "max_processes", "65537", "max_processes: 65537 is out of range: must be from 1 to 65536" },
	{ "max_open_files", "15", "max_open_files: 15 is out of range: must be from 16 to 1048576" },
	{ "max_file_size", "0", "max_file_size: 0 is out of range: must be from 1K to 1024G" },
	{ "max_disk", "512K", "max_disk: 512K is out of range: must be from 1M to 1024G" },
	{ "max_output", "0", "max_output: 0 is out of range: must be from 1K to 1G" },
	{ "max_output", "2G", "max_output: 2G is out of range: must be from 1K to 1G" },
	{ "max_generated_files", "100001", "max_generated_files: 100001 is out of range: must be from 0 to 100000" },
	{ "max_generated_bytes", "1025G", "max_generated_bytes: 1025G is out of range: must be from 0 to 1024G" },
	{ "sandbox", "none", "sandbox: 'none' must be auto, namespaces or rlimits" },
	{ "sandbox", "Namespaces", "sandbox: 'Namespaces' must be auto, namespaces or rlimits" },
	{ "cgroup", "yes", "cgroup: 'yes' must be auto, no or an absolute path" },
	{ "tokens_file", "tokens", "tokens_file: 'tokens' must be an absolute path" },
	{ "warm_runs", "0", "warm_runs: 0 is out of range: must be from 1 to 1000000" },
	{ "warm_zygotes_max", "17", "warm_zygotes_max: 17 is out of range: must be from 0 to 16" },
	{ "warm_deps_after", "-1", "warm_deps_after: '-1' is not a whole number" },
	{ "warm_preload", "numpy,", "warm_preload: an empty entry after the last ','" },
	{ "warm_preload", "9lives", "warm_preload: '9lives' is not a module name such as numpy or matplotlib.pyplot (entries are separated by commas)" },
	{ "warm_preload", "a..b", "warm_preload: 'a..b' is not a module name such as numpy or matplotlib.pyplot (entries are separated by commas)" },
	{ "warm_preload", "os.", "warm_preload: 'os.' is not a module name such as numpy or matplotlib.pyplot (entries are separated by commas)" },
	{ "warm_preload", "a-b", "warm_preload: 'a-b' is not a module name such as numpy or matplotlib.pyplot (entries are separated by commas)" },
	{ "sandbox_etc", "/etc", "sandbox_etc: '/etc' must be a path below /etc (entries are separated by commas)" },
	{ "sandbox_etc", "/usr/etc/x", "sandbox_etc: '/usr/etc/x' must be a path below /etc (entries are separated by commas)" },
	{ "sandbox_etc", "/etc/a,,/etc/b", "sandbox_etc: '' must be a path below /etc (entries are separated by commas)" },
	{ "sandbox_etc", "/etc/a,", "sandbox_etc: an empty entry after the last ','" },
	{ "sandbox_etc", "/etc/a b", "sandbox_etc: '/etc/a b' must be a path below /etc (entries are separated by commas)" },
	{ "sandbox_etc", "/etc/../root", "sandbox_etc: '/etc/../root' must not contain '.', '..' or '//' components" },
	{ "sandbox_etc", "/etc/a,/etc/b,/etc/c,/etc/d,/etc/e,/etc/f,/etc/g,/etc/h,/etc/i,/etc/j,/etc/k,/etc/l,/etc/m,/etc/n,/etc/o,/etc/p,/etc/q,/etc/r,/etc/s,/etc/t,/etc/u,/etc/v,/etc/w,/etc/x,/etc/y,/etc/z,/etc/A,/etc/B,/etc/C,/etc/D,/etc/E,/etc/F,/etc/G", "sandbox_etc: more than 32 entries" },
	{ "pythons", "pypy3", "pythons: 'pypy3' must be NAME=PATH, such as pypy3=/usr/bin/pypy3 (entries are separated by commas)" },
	{ "pythons", "pypy3=bin/pypy3", "pythons: 'bin/pypy3' must be an absolute path" },
	{ "pythons", "=/usr/bin/pypy3", "pythons: '=/usr/bin/pypy3': a name is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit" },
	{ "pythons", "-x=/usr/bin/pypy3", "pythons: '-x=/usr/bin/pypy3': a name is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit" },
	{ "pythons", "py py=/usr/bin/pypy3", "pythons: 'py py=/usr/bin/pypy3': a name is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit" },
	{ "pythons", "a23456789012345678901234567890123=/x", "pythons: 'a23456789012345678901234567890123=/x': a name is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit" },
	{ "pythons", "a=/x, b=/y, a=/z", "pythons: the name 'a' is given twice" },
	{ "pythons", "a=/x,", "pythons: an empty entry after the last ','" },
	{ "pythons", "a=/1,b=/2,c=/3,d=/4,e=/5,f=/6,g=/7,h=/8,i=/9", "pythons: more than 8 entries" },
	{ "cgroup", "sys/fs/cgroup", "cgroup: 'sys/fs/cgroup' must be auto, no or an absolute path" },
	{ "cgroup", "/", "cgroup: '/' must not be the root directory" },
	{ "cgroup", "/sys/fs/cgroup/../x", "cgroup: '/sys/fs/cgroup/../x' must not contain '.', '..' or '//' components" },
};

START_TEST(test_set_bad)
{
	const struct bad *b = &bads[_i];
	struct config c, before;
	char err[512] = "";

	config_defaults(&c);
	before = c;
	ck_assert_msg(config_set(&c, b->key, b->value, err, sizeof(err)) == -1,
		      "%s = %s accepted", b->key, b->value);
	ck_assert_str_eq(err, b->err);
	ck_assert_msg(memcmp(&c, &before, sizeof(c)) == 0, "%s changed cfg on error", b->key);
}
END_TEST

/* pythons: every interpreter, the first the default; python alone is one
 * named by its file; the last of the two keys given wins. */
START_TEST(test_pythons)
{
	struct config c;
	struct config_python list[CONFIG_PYTHONS_MAX];
	char err[512] = "";

	config_defaults(&c);
	ck_assert_uint_eq(config_pythons(&c, list), 1);
	ck_assert_str_eq(list[0].name, "python3");
	ck_assert_str_eq(list[0].path, "/usr/bin/python3");
	ck_assert_int_eq(config_set(&c, "pythons", " cp_3.11=/usr/bin/python3 ,pypy3 = /usr/bin/pypy3",
				    err, sizeof(err)), 0);
	ck_assert_str_eq(c.pythons, "cp_3.11=/usr/bin/python3,pypy3=/usr/bin/pypy3");
	ck_assert_uint_eq(config_pythons(&c, list), 2);
	ck_assert_str_eq(list[0].name, "cp_3.11");
	ck_assert_str_eq(list[1].name, "pypy3");
	ck_assert_str_eq(list[1].path, "/usr/bin/pypy3");
	/* the first is python too: the default */
	ck_assert_int_eq(config_set(&c, "pythons", "pypy3=/usr/bin/pypy3, python3=/usr/bin/python3",
				    err, sizeof(err)), 0);
	ck_assert_str_eq(c.python, "/usr/bin/pypy3");
	/* a path with '=' in it, and eight entries */
	ck_assert_int_eq(config_set(&c, "pythons", "a=/x=y,b=/2,c=/3,d=/4,e=/5,f=/6,g=/7,h=/8",
				    err, sizeof(err)), 0);
	ck_assert_uint_eq(config_pythons(&c, list), 8);
	ck_assert_str_eq(list[0].path, "/x=y");
	ck_assert_str_eq(list[7].name, "h");
	/* python given after: it alone, named by its file (or "python") */
	ck_assert_int_eq(config_set(&c, "python", "/opt/py/bin/python3.12", err, sizeof(err)), 0);
	ck_assert_str_eq(c.pythons, "");
	ck_assert_uint_eq(config_pythons(&c, list), 1);
	ck_assert_str_eq(list[0].name, "python3.12");
	ck_assert_int_eq(config_set(&c, "python", "/opt/py/bin/my python", err, sizeof(err)), 0);
	ck_assert_uint_eq(config_pythons(&c, list), 1);
	ck_assert_str_eq(list[0].name, "python");
	ck_assert_str_eq(list[0].path, "/opt/py/bin/my python");
	/* an empty pythons leaves python as it is */
	ck_assert_int_eq(config_set(&c, "pythons", "", err, sizeof(err)), 0);
	ck_assert_str_eq(c.python, "/opt/py/bin/my python");
}
END_TEST

START_TEST(test_set_string_too_long)
{
	struct config c, before;
	char value[CONFIG_PATH_MAX + 1], err[256];

	config_defaults(&c);
	before = c;
	value[0] = '/';
	memset(value + 1, 'a', CONFIG_PATH_MAX - 1);
	value[CONFIG_PATH_MAX] = '\0';            /* CONFIG_PATH_MAX bytes: one too many */
	ck_assert_int_eq(config_set(&c, "python", value, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "python: longer than 4095 bytes");
	ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
	value[CONFIG_PATH_MAX - 1] = '\0';        /* the longest that fits */
	ck_assert_int_eq(config_set(&c, "python", value, err, sizeof(err)), 0);
	ck_assert_str_eq(c.python, value);
}
END_TEST

START_TEST(test_set_user_too_long)
{
	struct config c;
	char value[300], err[256];

	config_defaults(&c);
	memset(value, 'u', 256);
	value[256] = '\0';
	ck_assert_int_eq(config_set(&c, "user", value, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "user: longer than 255 bytes");
	ck_assert_str_eq(c.user, "nobody");
}
END_TEST

START_TEST(test_listen_unix_path_max)
{
	struct config c;
	char value[200], err[256];

	config_defaults(&c);
	strcpy(value, "unix:/");
	memset(value + 6, 's', 106);           /* a 107-byte path fills sun_path */
	value[112] = '\0';
	ck_assert_int_eq(config_set(&c, "listen", value, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, value);
	strcpy(value + 112, "s");               /* 108 bytes: no room for the NUL */
	ck_assert_int_eq(config_set(&c, "listen", value, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "a socket path is at most 107 bytes"));
}
END_TEST

START_TEST(test_unknown_key_sanitized)
{
	struct config c;
	char key[300], err[512], want[128];

	config_defaults(&c);
	strcpy(key, "\x1b[31m\n\xff");       /* 7 bytes */
	memset(key + 7, 'A', 250);
	key[257] = '\0';
	ck_assert_int_eq(config_set(&c, key, "1", err, sizeof(err)), -1);
	/* Controls and high bytes become '?', and only 64 bytes are quoted. */
	snprintf(want, sizeof(want), "unknown key '?[31m??%.*s...'", 57,
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_err_truncated_and_null)
{
	struct config c;
	char err[8];

	config_defaults(&c);
	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(config_set(&c, "timeout", "abc", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "timeout");
	ck_assert_int_eq(config_set(&c, "timeout", "abc", NULL, 0), -1);
	ck_assert_int_eq(config_set(&c, "timeout", "3", NULL, 0), 0);
	ck_assert_uint_eq(c.timeout_ms, 3000);
}
END_TEST

START_TEST(test_sandbox_names)
{
	ck_assert_str_eq(config_sandbox_name(SANDBOX_AUTO), "auto");
	ck_assert_str_eq(config_sandbox_name(SANDBOX_NAMESPACES), "namespaces");
	ck_assert_str_eq(config_sandbox_name(SANDBOX_RLIMITS), "rlimits");
	ck_assert_str_eq(config_sandbox_name((enum sandbox_level)42), "unknown");
}
END_TEST

/* ---- config_check ---- */

START_TEST(test_check_timeout_over_max)
{
	struct config c;
	char err[256];

	config_defaults(&c);
	c.timeout_ms = 60500;
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "timeout (60.5 seconds) is over timeout_max (60 seconds); "
			 "lower timeout or raise timeout_max");
	c.timeout_ms = 60000;
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_check_memory_over_max)
{
	struct config c;
	char err[256];

	config_defaults(&c);
	c.memory = 5 * GiB;
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "memory (5G) is over memory_max (4G); lower memory or raise memory_max");
	c.memory = 4 * GiB;
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), 0);
}
END_TEST

/* stdout and stderr, each up to max_output, always fit in the reply whole */
START_TEST(test_check_reply_room_for_output)
{
	struct config c;
	char err[256];

	config_defaults(&c);
	c.max_output = 4 * MiB;
	c.max_reply = 16 * MiB;
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "max_reply (16M) is under 4 x max_output + 1M (17M), which stdout "
			 "and stderr may take; raise max_reply or lower max_output");
	c.max_reply = 17 * MiB;
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_check_dirs_nested)
{
	struct config c;
	char err[256];

	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "work_root", "/srv/p", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set(&c, "deps_cache", "/srv/p/", err, sizeof(err)), 0);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "work_root (/srv/p) and deps_cache (/srv/p) must be separate "
			 "directories, neither inside the other");
	ck_assert_int_eq(config_set(&c, "deps_cache", "/srv/p/deps", err, sizeof(err)), 0);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -1);
	ck_assert_int_eq(config_set(&c, "deps_cache", "/srv", err, sizeof(err)), 0);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), -1);
	/* A shared prefix is not nesting. */
	ck_assert_int_eq(config_set(&c, "deps_cache", "/srv/pp", err, sizeof(err)), 0);
	ck_assert_int_eq(config_check(&c, err, sizeof(err)), 0);
}
END_TEST

/* ---- files ---- */

START_TEST(test_file_syntax)
{
	struct config c;
	char err[512] = "";
	const char *path = write_conf_str(
		"# pyexec test\n"
		"\n"
		"   \t\n"
		"workers = 4\n"
		"  timeout=2.5   # a comment after a blank\n"
		"\tmemory\t=\t1G\t\n"
		"python = /opt/python3\r\n"
		"#network = yes\n"
		"   # indented comment\n"
		"pip_index_url = http://127.0.0.1:8080/simple/#frag\n"
		"pip_find_links = /srv/links#not-a-comment\n"
		"sandbox = rlimits");   /* no final newline */

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c.workers, 4);
	ck_assert_uint_eq(c.timeout_ms, 2500);
	ck_assert_uint_eq(c.memory, 1 * GiB);
	ck_assert_str_eq(c.python, "/opt/python3");
	ck_assert_int_eq(c.network, 0);
	ck_assert_str_eq(c.pip_index_url, "http://127.0.0.1:8080/simple/#frag");
	ck_assert_str_eq(c.pip_find_links, "/srv/links#not-a-comment");
	ck_assert_int_eq(c.sandbox, SANDBOX_RLIMITS);
}
END_TEST

START_TEST(test_file_value_with_equals)
{
	struct config c;
	char err[512] = "";
	const char *path = write_conf_str("pip_index_url = https://x.example/simple?a=b\n");

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.pip_index_url, "https://x.example/simple?a=b");
}
END_TEST

START_TEST(test_file_last_wins)
{
	struct config c;
	char err[512] = "";
	const char *path = write_conf_str("timeout = 5\nmemory = 64M\ntimeout = 7\n");

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c.timeout_ms, 7000);
	ck_assert_uint_eq(c.memory, 64 * MiB);
}
END_TEST

START_TEST(test_file_empty)
{
	struct config c, d;
	char err[512] = "";
	const char *path = write_conf("", 0);

	config_defaults(&c);
	config_defaults(&d);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
}
END_TEST

START_TEST(test_file_keeps_earlier_settings)
{
	struct config c;
	char err[512] = "";
	const char *path = write_conf_str("memory = 64M\n");

	/* The file overrides only what it names: the caller's values stay. */
	config_defaults(&c);
	c.timeout_ms = 1234;
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.timeout_ms, 1234);
	ck_assert_uint_eq(c.memory, 64 * MiB);
}
END_TEST

START_TEST(test_file_bom)
{
	struct config c;
	char err[512] = "";
	const char *path = write_conf_str("\xef\xbb\xbfworkers = 3\n");

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c.workers, 3);
}
END_TEST

START_TEST(test_file_unknown_key)
{
	struct config c;
	char err[512], want[512];
	const char *path = write_conf_str("# x\nworkers = 2\nfoo = 1\n");

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: unknown key 'foo'", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_bad_value)
{
	struct config c;
	char err[512], want[512];
	const char *path = write_conf_str("\n\n\ntimeout = soon\n");

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:4: timeout: 'soon' is not a number of seconds", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_no_equals)
{
	struct config c;
	char err[512], want[512];
	const char *path = write_conf_str("workers = 1\njust words # trailing\n");

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: 'just words': expected 'key = value'", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_empty_key)
{
	struct config c;
	char err[512], want[512];
	const char *path = write_conf_str("  = 5\n");

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: expected a key before '='", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_error_leaves_cfg)
{
	struct config c, before;
	char err[512];
	const char *path = write_conf_str("workers = 9\nmemory = 64M\nmax_files = lots\n");

	config_defaults(&c);
	before = c;
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ":3: max_files: 'lots' is not a whole number"));
	ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
}
END_TEST

static char *make_lines(size_t first_len)
{
	/* "workers = 2\n" then a comment line of first_len bytes, then a key. */
	char *buf = malloc(first_len + 64);

	ck_assert_ptr_nonnull(buf);
	strcpy(buf, "workers = 2\n#");
	memset(buf + 13, 'c', first_len - 1);
	strcpy(buf + 12 + first_len, "\nmax_files = 5\n");
	return buf;
}

START_TEST(test_file_line_at_max)
{
	struct config c;
	char err[512] = "";
	char *data = make_lines(CONFIG_LINE_MAX);

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, write_conf_str(data), err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c.max_files, 5);
	free(data);
}
END_TEST

START_TEST(test_file_line_too_long)
{
	struct config c;
	char err[512], want[512];
	char *data = make_lines(CONFIG_LINE_MAX + 1);
	const char *path = write_conf_str(data);

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: line longer than 8192 bytes", path);
	ck_assert_str_eq(err, want);
	free(data);
}
END_TEST

START_TEST(test_file_nul_byte)
{
	static const char data[] = "workers = 2\nmax_files = 5\0 0\nmemory = 64M\n";
	struct config c;
	char err[512], want[512];
	const char *path = write_conf(data, sizeof(data) - 1);

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: NUL byte in the line", path);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(c.max_files, 200);
}
END_TEST

static char *make_blank_file(size_t len)
{
	char *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	memset(buf, '\n', len);
	memcpy(buf, "workers = 2\n", 12);
	return buf;
}

START_TEST(test_file_at_max)
{
	struct config c;
	char err[512] = "";
	char *data = make_blank_file(CONFIG_FILE_MAX);

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, write_conf(data, CONFIG_FILE_MAX), err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_uint_eq(c.workers, 2);
	free(data);
}
END_TEST

START_TEST(test_file_too_large)
{
	struct config c;
	char err[512], want[512];
	char *data = make_blank_file(CONFIG_FILE_MAX + 1);
	const char *path = write_conf(data, CONFIG_FILE_MAX + 1);

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(c.workers, 0);
	free(data);
}
END_TEST

START_TEST(test_file_missing)
{
	struct config c;
	char err[512], want[512];

	config_defaults(&c);
	snprintf(path_buf, sizeof(path_buf), "%s/absent.conf", tmpdir);
	ck_assert_int_eq(config_load_file(&c, path_buf, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path_buf);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_directory)
{
	struct config c;
	char err[512], want[512];

	config_defaults(&c);
	snprintf(path_buf, sizeof(path_buf), "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(path_buf, 0700), 0);
	ck_assert_int_eq(config_load_file(&c, path_buf, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: is a directory, not a config file", path_buf);
	ck_assert_str_eq(err, want);
}
END_TEST

/* ---- the shipped example, conf/pyexec.conf ---- */

static char *read_example(size_t *len)
{
	const char *top = getenv("TOP_SRCDIR");
	char path[1024];
	char *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/conf/pyexec.conf", top != NULL ? top : ".");
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	buf = malloc(CONFIG_FILE_MAX + 1);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, CONFIG_FILE_MAX, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_example_is_all_defaults)
{
	struct config c, d;
	char err[512] = "";
	size_t len;
	char *data = read_example(&len);

	config_defaults(&c);
	config_defaults(&d);
	ck_assert_msg(config_load_file(&c, write_conf(data, len), err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
	free(data);
}
END_TEST

/* Uncommenting every "#key = value" line of the example must give the
 * defaults exactly: the documented values are the real ones. */
START_TEST(test_example_uncommented_is_defaults)
{
	static const char *const keys[] = {
		"listen", "workers", "user", "group", "python", "pythons", "work_root",
		"deps_cache", "deps_cache_max", "pip_index_url", "pip_extra_index_url", "pip_find_links",
		"pip_only_binary", "pip_timeout", "max_dependencies", "max_upload",
		"max_files", "timeout", "timeout_max", "cpu_time", "memory", "memory_max",
		"max_processes", "max_open_files", "max_file_size", "max_disk", "max_output",
		"max_generated_files", "max_generated_bytes", "network", "sandbox", "cgroup",
		"sandbox_etc", "tokens_file", "auth_metrics",
	};
	enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
	int seen[NKEYS] = { 0 };
	struct config c, d;
	char err[512] = "";
	size_t len, n = 0;
	char *data = read_example(&len), *out = malloc(len + 1), *p, *nl;

	ck_assert_ptr_nonnull(out);
	for (p = data; *p != '\0'; p = nl + 1) {
		size_t klen = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_");

		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p) - 1;
		if (p[0] == '#' && klen > 0 && strncmp(p + 1 + klen, " =", 2) == 0 &&
		    (p[3 + klen] == ' ' || p[3 + klen] == '\n')) {
			for (size_t i = 0; i < NKEYS; i++) {
				if (strlen(keys[i]) == klen && strncmp(p + 1, keys[i], klen) == 0) {
					ck_assert_msg(!seen[i], "'#%s = ...' twice", keys[i]);
					seen[i] = 1;
				}
			}
			p++;
		}
		memcpy(out + n, p, (size_t)(nl - p) + 1);
		n += (size_t)(nl - p) + 1;
	}
	for (size_t i = 0; i < NKEYS; i++)
		ck_assert_msg(seen[i], "conf/pyexec.conf lacks '#%s = ...'", keys[i]);
	config_defaults(&c);
	config_defaults(&d);
	ck_assert_msg(config_load_file(&c, write_conf(out, n), err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
	free(out);
	free(data);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_defaults_pass_check);
	suite_add_tcase(s, tc);

	tc = tcase_create("set");
	tcase_add_loop_test(tc, test_set_good, 0, (int)(sizeof(goods) / sizeof(goods[0])));
	tcase_add_test(tc, test_set_sandbox_auto);
	tcase_add_loop_test(tc, test_set_bad, 0, (int)(sizeof(bads) / sizeof(bads[0])));
	tcase_add_test(tc, test_pythons);
	tcase_add_test(tc, test_set_string_too_long);
	tcase_add_test(tc, test_set_user_too_long);
	tcase_add_test(tc, test_listen_unix_path_max);
	tcase_add_test(tc, test_unknown_key_sanitized);
	tcase_add_test(tc, test_err_truncated_and_null);
	tcase_add_test(tc, test_sandbox_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("check");
	tcase_add_test(tc, test_check_timeout_over_max);
	tcase_add_test(tc, test_check_memory_over_max);
	tcase_add_test(tc, test_check_reply_room_for_output);
	tcase_add_test(tc, test_check_dirs_nested);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_file_syntax);
	tcase_add_test(tc, test_file_value_with_equals);
	tcase_add_test(tc, test_file_last_wins);
	tcase_add_test(tc, test_file_empty);
	tcase_add_test(tc, test_file_keeps_earlier_settings);
	tcase_add_test(tc, test_file_bom);
	tcase_add_test(tc, test_file_unknown_key);
	tcase_add_test(tc, test_file_bad_value);
	tcase_add_test(tc, test_file_no_equals);
	tcase_add_test(tc, test_file_empty_key);
	tcase_add_test(tc, test_file_error_leaves_cfg);
	tcase_add_test(tc, test_file_line_at_max);
	tcase_add_test(tc, test_file_line_too_long);
	tcase_add_test(tc, test_file_nul_byte);
	tcase_add_test(tc, test_file_at_max);
	tcase_add_test(tc, test_file_too_large);
	tcase_add_test(tc, test_file_missing);
	tcase_add_test(tc, test_file_directory);
	tcase_add_test(tc, test_example_is_all_defaults);
	tcase_add_test(tc, test_example_uncommented_is_defaults);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(config_suite)
