/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCSP signer (sign.h): per-worker signing contexts set up once per CA,
 * the signer's health (failures in a row turn /healthz to 503; worker 0
 * probes a failing signer) and its expiry (nextUpdate capped at its
 * notAfter, nothing signed past it, warnings before).
 */
#include "responder/sign.h"
#include "responder/ctx.h"
#include "responder/metrics.h"
#include "responder/worker.h"
#include "common/log.h"
#include "common/text.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

/* ---- Signer health ----------------------------------------------------------- */

/* Signatures failed in a row per CA (by its stable metrics slot), shared by
 * the workers; reset by the next success. /healthz reads them. */
static _Atomic uint32_t sign_fails[METRIC_SLOTS];

void sign_failed(const struct rca *ca)
{
	uint32_t n = atomic_fetch_add_explicit(&sign_fails[ca->slot], 1, memory_order_relaxed) + 1;
	if (n == SIGNER_UNHEALTHY_AFTER)
		log_err("event=signer_unhealthy ca=%s failures=%u healthz=503", ca->name, n);
}

void sign_succeeded(const struct rca *ca, const char *by)
{
	/* Read first: the common case writes nothing shared. */
	if (atomic_load_explicit(&sign_fails[ca->slot], memory_order_relaxed) == 0)
		return;
	uint32_t n = atomic_exchange_explicit(&sign_fails[ca->slot], 0, memory_order_relaxed);
	if (n >= SIGNER_UNHEALTHY_AFTER)
		log_info("event=signer_recovered ca=%s failures=%u by=%s", ca->name, n, by);
}

/* ---- Signer expiry ----------------------------------------------------------- */

bool ocsp_signer_expired(const struct rca *ca, int64_t now)
{
	/* notAfter is the last second a signature is valid (RFC 5280 §4.1.2.5);
	 * an answer made then would have no time left before its nextUpdate. */
	return ca->not_after && now >= ca->not_after;
}

int64_t ocsp_next_update(const struct rca *ca, int64_t now)
{
	int64_t validity = ca->validity;
	/* The inclusive validity interval may not exceed ten days (BR 4.9.10). */
	if (validity > 10 * 86400 - 1)
		validity = 10 * 86400 - 1;
	int64_t nu = now + validity;
	/* An answer is no good past its signer: a cache (ours, or an edge that
	 * keeps it until nextUpdate) must not keep it longer. */
	return ca->not_after && nu > ca->not_after ? ca->not_after : nu;
}

/* What was said about each CA's signer (by metrics slot), for the signer
 * certificate with |not_after|: a new certificate starts afresh. */
static pthread_mutex_t expiry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int64_t not_after;
	int64_t warned_at; /* last signer_expires_soon line, 0: none */
	bool expired_said;
} expiry[METRIC_SLOTS];
static _Atomic uint64_t expiry_events[METRIC_SLOTS];

void ocsp_signer_expiry_check(const struct rctx *ctx, int64_t now)
{
	pthread_mutex_lock(&expiry_lock);
	for (int i = 0; i < ctx->n_cas; i++) {
		const struct rca *ca = &ctx->cas[i];
		if (!ca->not_after)
			continue;
		if (expiry[ca->slot].not_after != ca->not_after) {
			expiry[ca->slot].not_after = ca->not_after;
			expiry[ca->slot].warned_at = 0;
			expiry[ca->slot].expired_said = false;
		}
		char na[32];
		int64_t left = ca->not_after - now;
		if (ocsp_signer_expired(ca, now)) {
			if (expiry[ca->slot].expired_said)
				continue;
			expiry[ca->slot].expired_said = true;
			vg_time_format(ca->not_after, na, sizeof(na));
			log_err("event=signer_expired ca=%s cert=%s not_after=%s answers=tryLater "
			        "healthz=503",
			        ca->name, ca->signer_file ? ca->signer_file : "-", na);
		} else if (left <= (int64_t)SIGNER_WARN_DAYS * 86400) {
			if (expiry[ca->slot].warned_at && now - expiry[ca->slot].warned_at < 86400)
				continue;
			expiry[ca->slot].warned_at = now;
			vg_time_format(ca->not_after, na, sizeof(na));
			log_warn("event=signer_expires_soon ca=%s cert=%s not_after=%s "
			         "days_left=%lld "
			         "seconds_left=%lld",
			         ca->name, ca->signer_file ? ca->signer_file : "-", na,
			         (long long)(left / 86400), (long long)left);
		} else {
			continue;
		}
		atomic_fetch_add_explicit(&expiry_events[ca->slot], 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&expiry_lock);
}

uint64_t ocsp_signer_expiry_events(int slot)
{
	return atomic_load_explicit(&expiry_events[slot], memory_order_relaxed);
}

bool ocsp_signers_healthy(const struct rctx *ctx, char *reason, size_t len)
{
	int64_t now = (int64_t)time(NULL);
	for (int i = 0; i < ctx->n_cas; i++) {
		const struct rca *ca = &ctx->cas[i];
		if (ocsp_signer_expired(ca, now)) {
			char na[32];
			vg_time_format(ca->not_after, na, sizeof(na));
			snprintf(reason, len, "signer of ca %s expired: notAfter %s\n", ca->name,
			         na);
			return false;
		}
		uint32_t n = atomic_load_explicit(&sign_fails[ca->slot], memory_order_relaxed);
		if (n >= SIGNER_UNHEALTHY_AFTER) {
			snprintf(reason, len,
			         "signer of ca %s failing: %u signatures failed, none since\n",
			         ca->name, n);
			return false;
		}
	}
	return true;
}

/* ---- Signing ----------------------------------------------------------------- */

/* One worker's signing context for one CA, set up on first use: the key, the
 * padding and the digest are fixed once instead of per answer. OpenSSL's
 * contexts are not for concurrent use, so each worker has its own. */
struct rsign {
	EVP_MD_CTX *mctx;   /* SIGN_DIGEST: the digest; SIGN_ONESHOT: EVP_DigestSign's */
	EVP_PKEY_CTX *pctx; /* SIGN_DIGEST: after EVP_PKEY_sign_init, with the digest set */
};

struct rsigns {
	int n;
	struct rsign *v[]; /* by worker index; slot i is only touched by worker i */
};

static void rsign_free(struct rsign *s)
{
	if (!s)
		return;
	EVP_MD_CTX_free(s->mctx);
	EVP_PKEY_CTX_free(s->pctx);
	free(s);
}

void ocsp_rca_free(struct rca *ca)
{
	/* The snapshot is gone: no worker uses its contexts any more. */
	struct rsigns *t = atomic_load_explicit(&ca->signs, memory_order_acquire);
	if (!t)
		return;
	for (int i = 0; i < t->n; i++)
		rsign_free(t->v[i]);
	free(t);
	atomic_store_explicit(&ca->signs, NULL, memory_order_relaxed);
}

static struct rsign *rsign_new(const struct rca *ca)
{
	struct rsign *s = calloc(1, sizeof(*s));
	if (!s || !(s->mctx = EVP_MD_CTX_new()))
		goto fail;
	if (ca->sign_mode == SIGN_ONESHOT) {
		if (EVP_DigestSignInit_ex(s->mctx, NULL, NULL, NULL, NULL, ca->key, NULL) <= 0)
			goto fail;
		return s;
	}
	if (!(s->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, ca->key, NULL)) ||
	    EVP_PKEY_sign_init(s->pctx) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(s->pctx, ca->sign_md) <= 0)
		goto fail;
	return s;
fail:
	rsign_free(s);
	return NULL;
}

/* rsign_slot returns where |w|'s context for |ca| lives, or NULL when the
 * answer is to be signed the slow way (SIGN_PERCALL, out of memory). */
static struct rsign **rsign_slot(struct worker *w, struct rca *ca)
{
	if (ca->sign_mode == SIGN_PERCALL)
		return NULL;
	struct rsigns *t = atomic_load_explicit(&ca->signs, memory_order_acquire);
	if (!t) {
		int n = g_nworkers > w->idx ? g_nworkers : w->idx + 1;
		struct rsigns *nt = calloc(1, sizeof(*nt) + (size_t)n * sizeof(nt->v[0]));
		if (!nt)
			return NULL;
		nt->n = n;
		struct rsigns *expected = NULL;
		if (atomic_compare_exchange_strong_explicit(&ca->signs, &expected, nt,
		                                            memory_order_acq_rel,
		                                            memory_order_acquire)) {
			t = nt;
		} else {
			free(nt);
			t = expected;
		}
	}
	if (w->idx < 0 || w->idx >= t->n)
		return NULL;
	return &t->v[w->idx];
}

bool sign_tbs(struct worker *w, struct rca *ca, const uint8_t *tbs, size_t len, uint8_t *sig,
              size_t *siglen)
{
	struct rsign **slot = rsign_slot(w, ca);
	if (slot && !*slot)
		*slot = rsign_new(ca);
	struct rsign *s = slot ? *slot : NULL;
	if (!s) {
		/* An engine key (pkcs11), whose contexts we do not keep across
		 * a token's failures, or no context: as OCSP_basic_sign did. */
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		bool ok = m && EVP_DigestSignInit(m, NULL, ca->md, NULL, ca->key) > 0 &&
		          EVP_DigestSign(m, sig, siglen, tbs, len) > 0;
		EVP_MD_CTX_free(m);
		return ok;
	}
	bool ok;
	if (ca->sign_mode == SIGN_ONESHOT) {
		/* EdDSA: OpenSSL 3.2 and later refuse a second EVP_DigestSign on
		 * one context (openssl/openssl#23075), so it is set up again for
		 * each answer: a fetch, small beside an Ed25519 signature. */
		ok = EVP_MD_CTX_reset(s->mctx) &&
		     EVP_DigestSignInit_ex(s->mctx, NULL, NULL, NULL, NULL, ca->key, NULL) > 0 &&
		     EVP_DigestSign(s->mctx, sig, siglen, tbs, len) > 0;
	} else {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		ok = EVP_DigestInit_ex2(s->mctx, ca->sign_md, NULL) &&
		     EVP_DigestUpdate(s->mctx, tbs, len) &&
		     EVP_DigestFinal_ex(s->mctx, md, &mdlen) &&
		     EVP_PKEY_sign(s->pctx, sig, siglen, md, mdlen) > 0;
	}
	if (!ok) {
		/* Start afresh next time rather than trust a context that failed. */
		rsign_free(s);
		*slot = NULL;
	}
	return ok;
}

void ocsp_probe_signers(struct worker *w)
{
	static const uint8_t probe[] = "vigil-responder signer probe";
	if (w->ctx)
		ocsp_signer_expiry_check(w->ctx, (int64_t)time(NULL));
	for (int i = 0; w->ctx && i < w->ctx->n_cas; i++) {
		struct rca *ca = &w->ctx->cas[i];
		if (atomic_load_explicit(&sign_fails[ca->slot], memory_order_relaxed) <
		    SIGNER_UNHEALTHY_AFTER)
			continue;
		uint8_t *sig = OPENSSL_malloc(ca->sig_max);
		size_t siglen = ca->sig_max;
		/* Not in the metrics, which count answers' signatures. */
		if (sig && sign_tbs(w, ca, probe, sizeof(probe), sig, &siglen))
			sign_succeeded(ca, "probe");
		OPENSSL_free(sig);
		ERR_clear_error();
	}
}
