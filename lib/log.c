#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX 2048

static enum log_level log_level = LOG_LEVEL_INFO;

void log_set_level(enum log_level level)
{
	log_level = level;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[LOG_LINE_MAX];
	int n, m;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "pyexec[%ld]: %s: ", (long)getpid(), names[level]);
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	/* One line per event: a newline inside the text would forge another. */
	for (char *p = line; p < line + n; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	line[n++] = '\n';
	(void)util_write_all(STDERR_FILENO, line, (size_t)n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

static double ms(int64_t ns)
{
	return ns < 0 ? -1.0 : (double)ns / 1e6;
}

void log_request(const struct log_request *r)
{
#define S(x) ((x) != NULL ? (x) : "-")
	log_msg(LOG_LEVEL_INFO,
		"request id=%s method=%s route=%s status=%d exec=%s python=%s error=%s in=%llu "
		"out=%llu upload_ms=%.3f deps_ms=%.3f run_ms=%.3f reply_ms=%.3f total_ms=%.3f",
		S(r->id), S(r->method), S(r->route), r->status, S(r->exec_status),
		r->exec_status != NULL ? S(r->python) : "-", S(r->error),
		(unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
		ms(r->upload_ns), ms(r->deps_ns), ms(r->run_ns), ms(r->reply_ns), ms(r->total_ns));
#undef S
}
