/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The OCSP signer (sign.c): signing with a CA's key through a context each
 * worker sets up once, the signer's health and its expiry. ocsp.c builds
 * the answers it signs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rca;
struct rctx;
struct worker;

/* sign_tbs signs |tbs| with |ca|'s key into |sig| (|*siglen| bytes of room;
 * the signature's length on return), with |w|'s context for |ca|. */
bool sign_tbs(struct worker *w, struct rca *ca, const uint8_t *tbs, size_t len, uint8_t *sig,
              size_t *siglen);
/* sign_failed and sign_succeeded count an answer's signature by |ca|'s
 * signer for its health (|by|: what signed, "answer" or "probe"). */
void sign_failed(const struct rca *ca);
void sign_succeeded(const struct rca *ca, const char *by);

/* ocsp_rca_free frees the per-worker signing contexts of |ca| (ctx.c, when
 * the snapshot goes). */
void ocsp_rca_free(struct rca *ca);

/* ocsp_signers_healthy returns false, with the reason in |reason|, when a CA
 * of |ctx| has failed SIGNER_UNHEALTHY_AFTER signatures in a row with no
 * success since. */
#define SIGNER_UNHEALTHY_AFTER 3
bool ocsp_signers_healthy(const struct rctx *ctx, char *reason, size_t len);
/* ocsp_probe_signers signs a fixed text with the signer of each CA that
 * ocsp_signers_healthy calls failing, and calls it healthy again when that
 * works: a token that comes back, or a reload onto a working key, clears a
 * 503 on /healthz without waiting for a client's request (which a load
 * balancer that obeys /healthz would no longer send). Worker 0 calls it
 * every SIGNER_PROBE_MS. (A pkcs11 key whose token failed and came back
 * keeps failing here: libp11 keeps the old session and object handles, and
 * only a restart opens new ones.) */
#define SIGNER_PROBE_MS 2000
void ocsp_probe_signers(struct worker *w);
/* A signer certificate within SIGNER_WARN_DAYS of its notAfter is logged
 * (event=signer_expires_soon) when a snapshot is loaded and then once a day;
 * one past it once (event=signer_expired): ocsp_signer_expiry_check does it
 * for |ctx| at |now| (ctx_load, and worker 0 with each probe), and counts
 * the lines per CA for /metrics (ocsp_signer_expiry_events). Past notAfter
 * /healthz is 503 (ocsp_signers_healthy) and answers that need a signature
 * are tryLater. */
#define SIGNER_WARN_DAYS 30
void ocsp_signer_expiry_check(const struct rctx *ctx, int64_t now);
uint64_t ocsp_signer_expiry_events(int slot);
/* ocsp_next_update is the nextUpdate of an answer |ca| signs at |now|: now +
 * ocsp_validity (at most 10 days less a second), but never past the signer's
 * notAfter. */
int64_t ocsp_next_update(const struct rca *ca, int64_t now);
/* ocsp_signer_expired tells whether |ca|'s signer may no longer sign at |now|. */
bool ocsp_signer_expired(const struct rca *ca, int64_t now);
