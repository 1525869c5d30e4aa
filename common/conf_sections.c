/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration file (conf.c), continued: the value readers every
 * section uses (durations, integers, booleans, each with its one-line
 * refusal), the [store] retention keys and the [edge] and [replicate]
 * sections. conf_int.h is what the two files share.
 */
#include "common/conf_int.h"
#include "common/text.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* conf_parse_duration_ms reads "N" (seconds) or N with a unit ms, s, m, h
 * or d into milliseconds. */
bool conf_parse_duration_ms(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || end == v || n < 0)
		return false;
	while (*end == ' ')
		end++;
	int64_t mul;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		mul = (int64_t)DAY * 1000;
	else
		return false;
	if (n > INT64_MAX / mul)
		return false;
	*out = n * mul;
	return true;
}

bool conf_parse_int(const char *v, int lo, int hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < lo || n > hi)
		return false;
	*out = (int)n;
	return true;
}

bool conf_parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
	    !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcasecmp(v, "false") ||
	         !strcmp(v, "0"))
		*out = false;
	else
		return false;
	return true;
}

int conf_handle_int(struct parse_ctx *p, const char *sec, const char *k, const char *v, int lo,
                    int hi, int *dst)
{
	if (!conf_parse_int(v, lo, hi, dst)) {
		conf_set_err(p, "[%s] %s = %s: expected an integer from %d to %d", sec, k, v, lo,
		             hi);
		return 0;
	}
	return 1;
}

int conf_handle_ms(struct parse_ctx *p, const char *sec, const char *k, const char *v, int *dst)
{
	int64_t ms;
	if (!conf_parse_duration_ms(v, &ms) || ms < 100 || ms > 3600 * 1000) {
		conf_set_err(p, "[%s] %s = %s: expected a duration from 100ms to 1h (e.g. 30s)",
		             sec, k, v);
		return 0;
	}
	*dst = (int)ms;
	return 1;
}

/* A token (RFC 9110 5.6.2): what a header field's name may hold. */
static bool valid_token(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!strchr("!#$%&'*+-.^_`|~", *s) &&
		    !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

int conf_handle_edge(struct parse_ctx *p, const char *k, const char *v)
{
	struct vg_conf *c = p->c;
	int64_t ms;
	if (!strcmp(k, "max_age")) {
		if (!conf_parse_duration_ms(v, &ms) || ms % 1000 ||
		    ms > VG_EDGE_MAX_AGE_MAX * 1000LL) {
			conf_set_err(
			        p,
			        "[edge] max_age = %s: expected 0 to %d seconds (0: shared caches "
			        "keep answers until their nextUpdate)",
			        v, VG_EDGE_MAX_AGE_MAX);
			return 0;
		}
		c->edge_max_age = (int)(ms / 1000);
	} else if (!strcmp(k, "tag_header")) {
		if (!valid_token(v)) {
			conf_set_err(p,
			             "[edge] tag_header = %s: expected a header name of 1 to 64 "
			             "letters, "
			             "digits or !#$%%&'*+-.^_`|~ (xkey, Surrogate-Key, Cache-Tag, "
			             "Edge-Cache-Tag)",
			             v);
			return 0;
		}
		SET_STR(c->edge_tag_header, v);
	} else if (!strcmp(k, "purge_varnish") || !strcmp(k, "purge_nginx")) {
		struct vg_http_url u[VG_EDGE_URLS_MAX];
		int n = vg_http_url_list(v, u, VG_EDGE_URLS_MAX);
		if (n <= 0) {
			conf_set_err(
			        p,
			        "[edge] %s = %s: expected up to %d http://HOST[:PORT][/PATH] URLs "
			        "separated by commas%s",
			        k, v, VG_EDGE_URLS_MAX,
			        !strncasecmp(v, "https:", 6)
			                ? " (https is not spoken: purge a local "
			                  "edge, or through a TLS proxy)"
			                : "");
			return 0;
		}
		if (k[6] == 'v')
			SET_STR(c->edge_purge_varnish, v);
		else
			SET_STR(c->edge_purge_nginx, v);
	} else if (!strcmp(k, "purge_command")) {
		char *path = conf_resolve_path(c, v);
		if (!path || access(path, X_OK) < 0) {
			int e = path ? errno : ENOMEM;
			conf_set_err(p, "[edge] purge_command = %s: %s", v,
			             e == EACCES ? "not executable" : strerror(e));
			free(path);
			return 0;
		}
		free(c->edge_purge_command);
		c->edge_purge_command = path;
	} else if (!strcmp(k, "purge_command_timeout")) {
		return conf_handle_ms(p, "edge", k, v, &c->edge_command_timeout_ms);
	} else if (!strcmp(k, "state_dir")) {
		SET_PATH(c->edge_state_dir, v);
	} else {
		conf_set_err(p, "[edge]: unknown key '%s'", k);
		return 0;
	}
	return 1;
}

/* conf_handle_retention reads a [store] retention (log_retention,
 * expired_retention): a duration of 1 day to 100 years (e.g. 30d). Shorter
 * would prune what a reader may still follow. */
int conf_handle_retention(struct parse_ctx *p, const char *k, const char *v, int64_t *dst)
{
	int64_t ms;
	if (!conf_parse_duration_ms(v, &ms) || ms < DAY * 1000 || ms > 36500LL * DAY * 1000) {
		conf_set_err(p, "[store] %s = %s: expected a duration from 1d to 36500d (e.g. 30d)",
		             k, v);
		return 0;
	}
	*dst = ms / 1000;
	return 1;
}

/* conf_handle_replicate reads a [replicate] key: the connection string,
 * never with a password in it, the password file and max_lag. */
int conf_handle_replicate(struct parse_ctx *p, const char *k, const char *v)
{
	struct vg_conf *c = p->c;
	int64_t ms;
	if (!strcmp(k, "postgres")) {
		/* A URI's user:password@ too. */
		const char *uri = !strncmp(v, "postgresql://", 13) ? v + 13
		                  : !strncmp(v, "postgres://", 11) ? v + 11
		                                                   : NULL;
		const char *at = uri ? strchr(uri, '@') : NULL;
		if (strstr(v, "password") || (at && memchr(uri, ':', (size_t)(at - uri)))) {
			conf_set_err(p, "[replicate] postgres: no password in the connection "
			                "string "
			                "(use password_file, PGPASSFILE or PGPASSWORD)");
			return 0;
		}
		SET_STR(c->pg_conninfo, v);
	} else if (!strcmp(k, "password_file"))
		SET_PATH(c->pg_password_file, v);
	else if (!strcmp(k, "max_lag")) {
		if (!conf_parse_duration_ms(v, &ms) || ms < 1000 || ms > DAY * 1000) {
			conf_set_err(p, "[replicate] max_lag = %s: expected 1s to 1d", v);
			return 0;
		}
		c->max_lag = ms / 1000;
	} else {
		conf_set_err(p, "[replicate]: unknown key '%s'", k);
		return 0;
	}
	return 1;
}
