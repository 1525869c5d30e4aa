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
#include "responder/sign.h"

/* The serials an answer names for the edge's tags (edge.h); an answer about
 * more is tagged with its CA only and kept by no shared cache. */
#define ANSWER_TAG_SERIALS 8

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
	/* What a cacheable answer depends on: its CA (an index into the
	 * worker's snapshot, -1: none) and serials (-1: more than
	 * ANSWER_TAG_SERIALS). */
	int tag_ca;
	int n_tag_serials;
	struct vg_serial tag_serials[ANSWER_TAG_SERIALS];
};

struct worker;
/* ocsp_answer answers the DER request |req|; it always produces an OCSP
 * response (an error status when it must). */
void ocsp_answer(struct worker *w, const uint8_t *req, size_t len, struct answer *out);
void answer_release(struct answer *a);

int ocsp_init(void);
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
/* ocsp_refresh_at is when a cached answer with |this_update| and |validity|
 * (seconds) is signed again: after |percent| of its validity, but never later
 * than the Baseline Requirements §4.9.10 allow for updating OCSP information
 * (validity of 16 hours or more: at least 8 hours before nextUpdate and at
 * most 4 days after thisUpdate; shorter: before half the validity is left). */
int64_t ocsp_refresh_at(int64_t this_update, int64_t validity, int percent);
/* ocsp_error_der returns a static unsigned OCSPResponse with |status|. */
const uint8_t *ocsp_error_der(int status, size_t *len);
