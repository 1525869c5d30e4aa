/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * vigil-crlgen --plan (plan.c): per CA, the entries, bytes and generation
 * time of the full CRL and of every shard, as they are and as they would be
 * if a set of certificates were revoked, and the shard count that keeps
 * every shard under crl_max_bytes. Changes nothing.
 */

#include <stdint.h>
#include <stdio.h>

struct crlgen;

enum plan_what {
	PLAN_AS_IS = 0,      /* only the CRLs as they are */
	PLAN_REVOKE_ALL = 1, /* and every unexpired good certificate revoked */
	PLAN_ISSUED = 2,     /* and those issued in [after, before) revoked */
};

struct plan_opts {
	enum plan_what what;
	int64_t after;  /* PLAN_ISSUED: notBefore >= after */
	int64_t before; /* PLAN_ISSUED: notBefore < before; 0: no bound */
};

/* crlgen_plan prints the plan of every CA of |g| to |f|, one line per CRL
 * (key=value). Returns the exit status: 0, or 1 when a CA could not be
 * planned (a line on stderr). */
int crlgen_plan(struct crlgen *g, const struct plan_opts *o, FILE *f);
