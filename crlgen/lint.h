/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The tls-br profile lint (lint.c): every CRL of a CA with profile = tls-br,
 * full, shard or delta, is read back from its temporary file and checked
 * before it is renamed into place. A CRL that fails is not published; the caller logs the rule
 * and counts it (event=crl_lint_failed rule=..., metric
 * vigil_crlgen_lint_failures_total{ca,rule}).
 *
 * Rules (the names logged):
 *   der                  the file is one DER CertificateList, nothing after
 *   version              v2 (RFC 5280 §5.1.2.1)
 *   signature_algorithm  the same AlgorithmIdentifier inside and outside,
 *                        not SHA-1 (BR 7.1.3.2)
 *   issuer               byte-identical to the CA certificate's subject
 *   validity             nextUpdate present, after thisUpdate, at most 10
 *                        days later (BR 4.9.7); thisUpdate not in the future
 *   aki                  authorityKeyIdentifier present (RFC 5280 §5.2.1)
 *   crl_number           present, non-critical, below 2^159, above the number
 *                        of the CRL it replaces (RFC 5280 §5.2.3); a delta's
 *                        above its BaseCRLNumber (§5.2.4)
 *   delta_indicator      a delta CRL: a critical deltaCRLIndicator whose
 *                        BaseCRLNumber is the number of its base full CRL
 *                        (RFC 5280 §5.2.4); a full CRL or shard: none
 *   idp                  a shard: critical IDP, fullName = exactly one URI,
 *                        byte-identical to its URL, not both onlyContains*;
 *                        a full CRL: no IDP (BR 7.2.2.1)
 *   freshest_crl         a delta CRL: no freshestCRL (RFC 5280 §5.2.6)
 *   reason               no certificateHold, no unspecified (BR 7.2.2.1);
 *                        removeFromCRL in a delta CRL only (RFC 5280 §5.3.1)
 *   entries              every entry the store says it must list is there
 *                        (count, serials strictly ascending: none twice)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crlgen/crl.h"

struct crlgen_ca;

struct lint_expect {
	const struct crlgen_ca *ca;
	const char *idp;   /* a shard's URL; NULL for a full or delta CRL */
	bool delta;        /* a delta CRL (the delta rules) */
	uint64_t base;     /* a delta: the number of its base full CRL */
	uint64_t entries;  /* entries the store walk counted */
	uint64_t previous; /* number of the CRL replaced (0: none) */
	int64_t now;
};

/* lint_crl checks the |len| bytes of |fd| (the written CRL). Returns 0, or
 * -EBADMSG with the rule's name in |*rule| and the detail in |err|. */
int lint_crl(int fd, uint64_t len, const struct lint_expect *x, const char **rule, char *err,
             size_t errlen);

/* lint_check_holds refuses (-EINVAL, one line in |err|) a tls-br CA of
 * |g| whose certificates include holds in the store: every CRL it made
 * would fail the reason rule. Called at start and on reload. */
struct crlgen;
int lint_check_holds(struct crlgen *g, char *err, size_t errlen);

/* A source that passes on the entries of |src| and counts them in |n|, the
 * count the entries rule expects (less, in the CRL, those a lint test
 * leaves out). */
struct lint_count {
	struct crl_source src;
	uint64_t n;
};
struct crl_source lint_count_source(struct lint_count *x);

/* Fault injection for the tests of the lint (VIGIL_CRLGEN_LINT_INJECT=RULE
 * for full CRLs and shards, =delta:RULE for delta CRLs; read once):
 * lint_inject_params spoils |p| for RULE (issuer, validity, aki, idp,
 * crl_number, delta_indicator: a full CRL made a delta, a delta's base
 * number off by one), lint_inject_skip returns 1 for an entry to leave
 * out (entries: the first entry) and lint_inject_entry makes a reason one
 * the profile forbids (reason: certificateHold). Without the variable
 * they do nothing, and they only act on a CRL that the lint will check
 * (lint_inject_arm(true, delta) before it is built): a fault is never
 * published by a CA with profile = private. */
void lint_inject_arm(bool on, bool delta);
void lint_inject_params(struct crl_params *p);
int lint_inject_skip(const struct crl_entry *e);
void lint_inject_entry(struct crl_entry *e);
