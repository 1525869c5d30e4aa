/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * OCSP (ocsp.c): a DER request in, an OCSPResponse out, with its validity;
 * nothing of HTTP. The answer's HTTP headers are routes.c's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "responder/ctx.h"
#include "responder/metrics.h"

/* An answer: its DER and, for a successful one, its validity. */
struct answer {
	uint8_t *der; /* owned when |owned|, else borrowed from the cache until the next call */
	size_t len;
	bool owned;
	bool cacheable; /* no nonce: the same for every client until nextUpdate */
	int64_t produced_at, this_update, next_update;
	/* The note (cache.h) of the cache entry the answer came from or went
	 * into, or NULL: what the HTTP layer made of it once. */
	const uint8_t *note;
};

struct worker;
/* ocsp_answer answers the DER request |req|; it always produces an OCSP
 * response (an error status when it must). */
void ocsp_answer(struct worker *w, const uint8_t *req, size_t len, struct answer *out);
void answer_release(struct answer *a);

int ocsp_init(void);
/* ocsp_rca_free frees the per-worker signing contexts of |ca| (ctx.c, when
 * the snapshot goes). */
void ocsp_rca_free(struct rca *ca);

/* The status of one certificate, as an answer gives it. */
struct ocsp_status {
	enum cert_result cr;
	int reason; /* CRLReason, or OCSP_REVOKED_STATUS_NOSTATUS */
	int64_t revoked_at;
	bool has_invalidity;
	int64_t invalidity;
	bool ext_revoke; /* the extended-revoke extension (RFC 6960 §4.4.8) */
};
/* One SingleResponse to write: the client's CertID (its DER when the caller
 * has it already, else it is encoded from |cid|) and its status. */
struct ocsp_single {
	OCSP_CERTID *cid;
	const uint8_t *cid_der;
	size_t cid_len;
	struct ocsp_status st;
};
/* ocsp_build writes and signs the OCSPResponse (successful, a
 * BasicOCSPResponse) for |n| singles with |ca|'s signer, echoing the request
 * nonce extension |nonce| (or NULL), with producedAt and thisUpdate |now|.
 * The DER is in |*der| (OPENSSL_malloc'd). -EAGAIN when the signer failed
 * (counted in |w|'s metrics and the signer's health), -EKEYEXPIRED when the
 * signer's certificate has expired (nothing signed), -ENOMEM otherwise.
 * nextUpdate is ocsp_next_update. */
int ocsp_build(struct worker *w, struct rca *ca, const struct ocsp_single *s, int n,
               const X509_EXTENSION *nonce, int64_t now, uint8_t **der, size_t *len);
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
/* ocsp_refresh_at is when a cached answer with |this_update| and |validity|
 * (seconds) is signed again: after |percent| of its validity, but never later
 * than the Baseline Requirements §4.9.10 allow for updating OCSP information
 * (validity of 16 hours or more: at least 8 hours before nextUpdate and at
 * most 4 days after thisUpdate; shorter: before half the validity is left). */
int64_t ocsp_refresh_at(int64_t this_update, int64_t validity, int percent);
/* ocsp_error_der returns a static unsigned OCSPResponse with |status|. */
const uint8_t *ocsp_error_der(int status, size_t *len);
