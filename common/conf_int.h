/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What common/conf.c and common/conf_sections.c share while they parse a
 * configuration file; not for other callers (common/conf.h is the
 * interface). Each conf_handle_* returns 1 when the key is taken, 0 with
 * the one-line refusal in the parse context (inih's convention).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"

#define DAY (24 * 3600)

struct parse_ctx {
	struct vg_conf *c;
	char msg[512]; /* first error, without the file:line prefix */
	/* Keys already seen, "section\nkey", to refuse duplicates. */
	char **seen;
	size_t n_seen;
};

/* conf_set_err keeps the first refusal of a parse. */
void conf_set_err(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* conf_resolve_path makes |v| absolute against the config file's directory
 * (a pkcs11: URI as it is); NULL when out of memory. */
char *conf_resolve_path(const struct vg_conf *c, const char *v);

/* A string key's value, and a path's (against the directory of the
 * struct vg_conf *c in scope), in place of what |dst| held. */
#define SET_STR(dst, val)                                                                          \
	do {                                                                                       \
		free(dst);                                                                         \
		(dst) = strdup(val);                                                               \
	} while (0)
#define SET_PATH(dst, val)                                                                         \
	do {                                                                                       \
		free(dst);                                                                         \
		(dst) = conf_resolve_path(c, val);                                                 \
	} while (0)

/* The value readers: true when |v| is one. */
bool conf_parse_duration_ms(const char *v, int64_t *out);
bool conf_parse_int(const char *v, int lo, int hi, int *out);
bool conf_parse_bool(const char *v, bool *out);

/* A key of [|sec|]: an integer from |lo| to |hi|; a duration from 100ms to
 * 1h, in milliseconds. */
int conf_handle_int(struct parse_ctx *p, const char *sec, const char *k, const char *v, int lo,
                    int hi, int *dst);
int conf_handle_ms(struct parse_ctx *p, const char *sec, const char *k, const char *v, int *dst);

/* The sections and keys of conf_sections.c. */
int conf_handle_retention(struct parse_ctx *p, const char *k, const char *v, int64_t *dst);
int conf_handle_edge(struct parse_ctx *p, const char *k, const char *v);
int conf_handle_replicate(struct parse_ctx *p, const char *k, const char *v);
