/* SPDX-License-Identifier: Apache-2.0 */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *log_prog = "vigil";
static int log_max = LOG_INFO;

void vg_log_init(const char *prog, int max_level)
{
	log_prog = prog;
	log_max = max_level;
}

void vg_log_set_level(int max_level)
{
	log_max = max_level;
}

int vg_log_level(void)
{
	return log_max;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warn";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void vg_vlog(int level, const char *fmt, va_list ap)
{
	if (level > log_max)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	/* One buffer and one write, so lines from several threads never interleave. */
	char line[4096];
	int n = snprintf(line, sizeof(line),
	                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s prog=%s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, (int)(tv.tv_usec / 1000), level_name(level), log_prog);
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

void vg_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vg_vlog(level, fmt, ap);
	va_end(ap);
}

uint32_t vg_log_budget_flush(struct vg_log_budget *b, uint64_t now_ms, bool force, int level,
                             const char *what)
{
	if (b->suppressed == 0 || (!force && now_ms - b->window_start < VG_LOG_WINDOW_MS))
		return 0;
	uint32_t n = b->suppressed;
	vg_log(level, "event=log_suppressed what=%s count=%u", what, n);
	b->suppressed = 0;
	return n;
}

bool vg_log_budget_take(struct vg_log_budget *b, uint64_t now_ms, int level, const char *what)
{
	if (b->lines == 0 || now_ms - b->window_start >= VG_LOG_WINDOW_MS) {
		vg_log_budget_flush(b, now_ms, true, level, what);
		b->window_start = now_ms;
		b->lines = 0;
	}
	if (b->lines < VG_LOG_BURST) {
		b->lines++;
		return true;
	}
	if (b->suppressed < UINT32_MAX)
		b->suppressed++;
	return false;
}

const char *vg_log_quote(const char *s, char *buf, size_t buflen)
{
	if (buflen == 0)
		return buf;
	if (!s)
		s = "";
	int bare = *s != '\0';
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f) {
			bare = 0;
			break;
		}
	}
	size_t o = 0;
	if (bare) {
		snprintf(buf, buflen, "%s", s);
		return buf;
	}
	if (o + 1 < buflen)
		buf[o++] = '"';
	for (const char *p = s; *p && o + 5 < buflen; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < ' ' || c == 0x7f) {
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	if (o + 1 < buflen)
		buf[o++] = '"';
	buf[o < buflen ? o : buflen - 1] = '\0';
	return buf;
}
