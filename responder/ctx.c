/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration snapshots: CA certificates, signers and precomputed CertID hashes. */
#include "responder/ctx.h"
#include "responder/metrics.h"
#include "responder/ocsp.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/signer.h"
#include "common/der.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rctx *ctx_published;
static uint64_t ctx_generation;

static const char *const rh_names[RH_N] = {"SHA1", "SHA256", "SHA384", "SHA512"};

static void rca_deinit(struct rca *ca)
{
	free(ca->name);
	free(ca->crl_path);
	if (ca->signer != ca->cert)
		X509_free(ca->signer);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	ocsp_rca_free(ca);
	free(ca->certs_der);
	EVP_MD_free(ca->sign_md);
	memset(ca, 0, sizeof(*ca));
}

static void ctx_free(struct rctx *c)
{
	for (int i = 0; i < c->n_cas; i++)
		rca_deinit(&c->cas[i]);
	vg_conf_free(&c->conf);
	free(c->base_path);
	free(c);
}

/* rca_hashes precomputes the issuer name and key hashes a CertID may carry. */
static int rca_hashes(struct rca *ca, char *err, size_t errlen)
{
	unsigned char *name_der = NULL;
	int name_len = i2d_X509_NAME(X509_get_subject_name(ca->cert), &name_der);
	const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(ca->cert);
	int rc = 0;
	if (name_len <= 0 || !key) {
		snprintf(err, errlen, "[ca %s] cannot encode the CA name or key", ca->name);
		rc = -EIO;
		goto out;
	}
	for (int i = 0; i < RH_N; i++) {
		EVP_MD *md = EVP_MD_fetch(NULL, rh_names[i], NULL);
		unsigned n1 = 0, n2 = 0;
		if (!md ||
		    !EVP_Digest(name_der, (size_t)name_len, ca->name_hash[i], &n1, md, NULL) ||
		    !EVP_Digest(ASN1_STRING_get0_data(key), (size_t)ASN1_STRING_length(key),
		                ca->key_hash[i], &n2, md, NULL)) {
			EVP_MD_free(md);
			snprintf(err, errlen, "[ca %s] %s digest unavailable", ca->name,
			         rh_names[i]);
			rc = -EIO;
			goto out;
		}
		EVP_MD_free(md);
		ca->hlen[i] = n1;
	}
out:
	OPENSSL_free(name_der);
	ERR_clear_error();
	return rc;
}

/* rca_sigalg writes the signatureAlgorithm that OCSP_basic_sign
 * (ASN1_item_sign_ctx) writes for |ca|'s key and digest. */
static int rca_sigalg(struct rca *ca)
{
	ssize_t n = vg_signer_algid(ca->key, ca->md, ca->sigalg_der, sizeof(ca->sigalg_der));
	if (n < 0)
		return (int)n;
	ca->sigalg_len = (size_t)n;
	return 0;
}

/* rca_signing precomputes what every answer of |ca| carries (responderID,
 * signatureAlgorithm, certs) and how it is signed. */
static int rca_signing(struct rca *ca, char *err, size_t errlen)
{
	unsigned char kh[EVP_MAX_MD_SIZE];
	unsigned khlen = 0;
	/* byKey: SHA-1 of the signer's subjectPublicKey BIT STRING contents,
	 * as OCSP_RESPID_set_by_key. */
	if (!X509_pubkey_digest(ca->signer, EVP_sha1(), kh, &khlen) || khlen != 20) {
		snprintf(err, errlen, "[ca %s] cannot hash the signer's key", ca->name);
		return -EIO;
	}
	static const uint8_t hdr[] = {DER_CTX_CONS(2), 22, DER_OCTET_STRING, 20};
	memcpy(ca->respid_der, hdr, sizeof(hdr));
	memcpy(ca->respid_der + sizeof(hdr), kh, 20);
	if (rca_sigalg(ca) < 0) {
		snprintf(err, errlen, "[ca %s] no signature algorithm for this key and digest",
		         ca->name);
		return -EINVAL;
	}
	if (ca->delegated) {
		/* certs [0] EXPLICIT SEQUENCE OF Certificate: the signer, as
		 * OCSP_basic_sign adds it without OCSP_NOCERTS. */
		int l = i2d_X509(ca->signer, NULL);
		if (l <= 0)
			return -ENOMEM;
		size_t seq = der_hdr_len((size_t)l) + (size_t)l;
		size_t total = der_hdr_len(seq) + seq;
		ca->certs_der = malloc(total);
		if (!ca->certs_der)
			return -ENOMEM;
		size_t o = der_put_hdr(ca->certs_der, DER_CTX_CONS(0), seq);
		o += der_put_hdr(ca->certs_der + o, DER_SEQUENCE, (size_t)l);
		unsigned char *q = ca->certs_der + o;
		if (i2d_X509(ca->signer, &q) != l)
			return -ENOMEM;
		ca->certs_len = total;
	}
	int sz = EVP_PKEY_get_size(ca->key);
	if (sz <= 0) {
		snprintf(err, errlen, "[ca %s] ocsp_key: unknown signature size", ca->name);
		return -EINVAL;
	}
	ca->sig_max = (size_t)sz;
	int kid = EVP_PKEY_get_base_id(ca->key);
	ca->sign_mode = SIGN_PERCALL;
	if (EVP_PKEY_get0_provider(ca->key)) {
		if ((kid == EVP_PKEY_RSA || kid == EVP_PKEY_EC) && ca->md) {
			ca->sign_md = EVP_MD_fetch(NULL, EVP_MD_get0_name(ca->md), NULL);
			if (!ca->sign_md) {
				snprintf(err, errlen, "[ca %s] digest unavailable", ca->name);
				return -EINVAL;
			}
			ca->sign_mode = SIGN_DIGEST;
		} else if (kid == EVP_PKEY_ED25519 || kid == EVP_PKEY_ED448) {
			ca->sign_mode = SIGN_ONESHOT;
		}
	}
	return 0;
}

static int rca_load(struct rctx *c, struct rca *ca, const struct vg_conf_ca *cc, char *err,
                    size_t errlen)
{
	char e[256];
	int rc;
	ca->name = strdup(cc->name);
	ca->conf = cc;
	ca->id = cc->id;
	ca->slot = metrics_slot(cc->name);
	ca->not_issued = cc->not_issued;
	ca->validity = cc->ocsp_validity;
	if (!ca->name || asprintf(&ca->crl_path, "%s/%s.crl", c->conf.crl_out, cc->name) < 0) {
		ca->crl_path = NULL;
		return -ENOMEM;
	}
	rc = vg_pki_load_cert(cc->cert, &ca->cert, e, sizeof(e));
	if (rc < 0) {
		snprintf(err, errlen, "[ca %s] cert: %s", cc->name, e);
		return rc;
	}
	if (!cc->ocsp_key) {
		snprintf(err, errlen, "[ca %s] no signing key: set ocsp_key (or crl_key)",
		         cc->name);
		return -EINVAL;
	}
	rc = vg_pki_load_key(cc->ocsp_key, &ca->key, e, sizeof(e));
	if (rc < 0) {
		snprintf(err, errlen, "[ca %s] ocsp_key: %s", cc->name, e);
		return rc;
	}
	if (cc->ocsp_cert) {
		rc = vg_pki_load_cert(cc->ocsp_cert, &ca->signer, e, sizeof(e));
		if (rc < 0) {
			snprintf(err, errlen, "[ca %s] ocsp_cert: %s", cc->name, e);
			return rc;
		}
		ca->delegated = true;
		/* Issued by the CA: names and key identifiers (X509_check_issued)
		 * and the CA's signature, which clients check (RFC 6960 §4.2.2.2). */
		EVP_PKEY *capub = X509_get0_pubkey(ca->cert);
		if (X509_check_issued(ca->cert, ca->signer) != X509_V_OK || !capub ||
		    X509_verify(ca->signer, capub) != 1) {
			ERR_clear_error();
			snprintf(err, errlen, "[ca %s] ocsp_cert %s is not issued by the CA cert",
			         cc->name, cc->ocsp_cert);
			return -EINVAL;
		}
		if (X509_cmp_current_time(X509_get0_notBefore(ca->signer)) > 0) {
			snprintf(err, errlen,
			         "[ca %s] ocsp_cert %s is not valid yet (notBefore in the future)",
			         cc->name, cc->ocsp_cert);
			return -EINVAL;
		}
		/* Baseline Requirements §4.9.9: "MUST contain ... id-pkix-ocsp-nocheck".
		 * Clients do not insist, so it is said, not refused. */
		if (X509_get_ext_by_NID(ca->signer, NID_id_pkix_OCSP_noCheck, -1) < 0)
			log_warn("event=signer_lacks_nocheck ca=%s cert=%s", cc->name,
			         cc->ocsp_cert);
		if (!(X509_get_extension_flags(ca->signer) & EXFLAG_XKUSAGE) ||
		    !(X509_get_extended_key_usage(ca->signer) & XKU_OCSP_SIGN)) {
			snprintf(err, errlen,
			         "[ca %s] ocsp_cert %s lacks extendedKeyUsage OCSPSigning",
			         cc->name, cc->ocsp_cert);
			return -EINVAL;
		}
	} else {
		ca->signer = ca->cert;
	}
	if (X509_check_private_key(ca->signer, ca->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "[ca %s] ocsp_key %s does not match %s", cc->name,
		         cc->ocsp_key, ca->delegated ? "ocsp_cert" : "the CA cert");
		return -EINVAL;
	}
	/* Answers signed by an expired responder certificate are refused by
	 * clients: its notAfter caps every nextUpdate, and past it nothing is
	 * signed (ocsp.c). An expired one is loaded all the same (/healthz says
	 * 503, answers are tryLater, CRLs are still served), so that a reload
	 * onto a renewed certificate is all it takes. */
	struct tm tm;
	if (!ASN1_TIME_to_tm(X509_get0_notAfter(ca->signer), &tm)) {
		ERR_clear_error();
		snprintf(err, errlen, "[ca %s] %s: unreadable notAfter", cc->name,
		         ca->delegated ? cc->ocsp_cert : cc->cert);
		return -EINVAL;
	}
	ca->not_after = (int64_t)timegm(&tm);
	ca->signer_file = ca->delegated ? cc->ocsp_cert : cc->cert;
	/* The key and digest policy is crlgen's too (common/signer.h). */
	if ((rc = vg_signer_policy(ca->key, cc->digest, &ca->md, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "[ca %s] ocsp_key %s: %s", cc->name, cc->ocsp_key, e);
		return rc;
	}
	rc = rca_signing(ca, err, errlen);
	ERR_clear_error();
	if (rc < 0)
		return rc;
	return rca_hashes(ca, err, errlen);
}

static char *normalise_base(const char *b)
{
	size_t n = strlen(b);
	char *r = malloc(n + 3);
	if (!r)
		return NULL;
	size_t o = 0;
	if (b[0] != '/')
		r[o++] = '/';
	memcpy(r + o, b, n);
	o += n;
	if (o == 0 || r[o - 1] != '/')
		r[o++] = '/';
	r[o] = '\0';
	return r;
}

int ctx_load(const char *path, struct rctx **out, char *err, size_t errlen)
{
	struct rctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	int rc = vg_conf_load(path, &c->conf, err, errlen);
	if (rc < 0) {
		free(c);
		return rc;
	}
	if (c->conf.n_cas == 0) {
		snprintf(err, errlen, "%s: no [ca NAME] section: nothing to answer for",
		         c->conf.file);
		rc = -EINVAL;
		goto fail;
	}
	c->base_path = normalise_base(c->conf.base_path);
	if (!c->base_path) {
		rc = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < c->conf.n_cas; i++) {
		c->n_cas = i + 1;
		rc = rca_load(c, &c->cas[i], &c->conf.cas[i], err, errlen);
		if (rc < 0) {
			if (rc == -ENOMEM)
				snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	/* Signers near or past their notAfter are said now, at start and
	 * reload (and by --check), then by worker 0 as time passes. */
	ocsp_signer_expiry_check(c, (int64_t)time(NULL));
	*out = c;
	return 0;
fail:
	ctx_free(c);
	return rc;
}

struct rctx *ctx_ref(struct rctx *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void ctx_unref(struct rctx *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		ctx_free(c);
}

struct rctx *ctx_current(void)
{
	pthread_mutex_lock(&ctx_lock);
	struct rctx *c = ctx_published ? ctx_ref(ctx_published) : NULL;
	pthread_mutex_unlock(&ctx_lock);
	return c;
}

void ctx_publish(struct rctx *c)
{
	pthread_mutex_lock(&ctx_lock);
	struct rctx *old = ctx_published;
	c->generation = ++ctx_generation;
	ctx_published = c;
	pthread_mutex_unlock(&ctx_lock);
	ctx_unref(old);
}

void ctx_publish_clear(void)
{
	pthread_mutex_lock(&ctx_lock);
	struct rctx *old = ctx_published;
	ctx_published = NULL;
	pthread_mutex_unlock(&ctx_lock);
	ctx_unref(old);
}
