/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One line per event on stderr, key=value: journald and log shippers take it
 * as is. vg_log prefixes "ts=RFC3339 level=L prog=P " to the caller's
 * "event=NAME key=value ..." text. Values with spaces must be quoted by the
 * caller (vg_log_quote helps).
 */

#include <stdarg.h>
#include <stddef.h>
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

#define log_err(...) vg_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...) vg_log(LOG_WARNING, __VA_ARGS__)
#define log_info(...) vg_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                            \
	do {                                                                                      \
		if (vg_log_level() >= LOG_DEBUG)                                                   \
			vg_log(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)
