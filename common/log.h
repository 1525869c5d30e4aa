/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One line per event on stderr, key=value: journald and log shippers take it
 * as is. vg_log prefixes "ts=RFC3339 level=L prog=P " to the caller's
 * "event=NAME key=value ..." text. Values with spaces must be quoted by the
 * caller (vg_log_quote helps).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

void vg_log_init(const char *prog, int max_level);
void vg_log_set_level(int max_level);
int vg_log_level(void);
void vg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vg_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* vg_log_quote writes |s| as a key=value value into |buf|: bare when it has
 * no space, quote or control character, otherwise double-quoted with \" and
 * \\ escapes and control characters as \xNN. Returns |buf|. */
const char *vg_log_quote(const char *s, char *buf, size_t buflen);

/*
 * A line budget for one kind of event that a client can cause at will (a
 * request refused, a timeout) or that repeats while something stays broken
 * (a signer failing). A flood of such lines would bury the others and fill
 * the disk or make journald drop lines of its own choosing; so at most
 * VG_LOG_BURST lines of a kind are written per VG_LOG_WINDOW_MS, and the rest
 * are counted and reported in one line,
 *     event=log_suppressed what=<kind> count=N
 * where <kind> is the caller's text (e.g. "http_refused status=400"): the
 * lines written plus the counts reported add up to every event. Not locked:
 * one budget per thread and kind.
 */
#define VG_LOG_BURST 10
#define VG_LOG_WINDOW_MS 1000

struct vg_log_budget {
	uint64_t window_start; /* ms, from the caller's monotonic clock */
	uint32_t lines;        /* written in this window */
	uint32_t suppressed;   /* counted, not written, since the last report */
};

/* vg_log_budget_take tells whether one more line of |what| may be written at
 * |now_ms|. When it opens a new window after suppressed lines it reports them
 * first (level |level|), so the report comes before the next line. */
bool vg_log_budget_take(struct vg_log_budget *b, uint64_t now_ms, int level, const char *what);
/* vg_log_budget_flush reports suppressed lines of |what| once their window is
 * over, or at once when |force|: call it from a periodic timer, and with
 * |force| before the budget goes away. Returns the count reported. */
uint32_t vg_log_budget_flush(struct vg_log_budget *b, uint64_t now_ms, bool force, int level,
                             const char *what);

#define log_err(...) vg_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...) vg_log(LOG_WARNING, __VA_ARGS__)
#define log_info(...) vg_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (vg_log_level() >= LOG_DEBUG)                                                   \
			vg_log(LOG_DEBUG, __VA_ARGS__);                                            \
	} while (0)
