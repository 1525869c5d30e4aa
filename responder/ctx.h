/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The configuration snapshot (ctx.c): CA certificates, signers, the issuer
 * hashes CertIDs are matched on and the constant parts of every answer.
 * The main thread loads one at start and at each SIGHUP; workers take a
 * reference to the published one (ctx_current) and drop it when a newer
 * one appears.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/conf.h"
#include "store/store.h"

/* CertID hash algorithms we precompute issuer hashes for. */
enum { RH_SHA1, RH_SHA256, RH_SHA384, RH_SHA512, RH_N };

/* How a CA's answers are signed (ctx.c decides, ocsp.c signs). */
enum sign_mode {
	SIGN_DIGEST,  /* provider RSA or EC key: digest, then EVP_PKEY_sign on a context set up once
	               */
	SIGN_ONESHOT, /* provider Ed25519/Ed448 key: EVP_DigestSign on a context set up once */
	SIGN_PERCALL, /* engine (pkcs11) or other keys: EVP_DigestSignInit + EVP_DigestSign per
	                 answer */
};
struct rsigns;

struct rca {
	char *name;
	uint32_t id;
	int slot; /* metrics slot, stable across reloads */
	X509 *cert;
	X509 *signer; /* delegated responder cert, or |cert| (borrowed then) */
	/* The signer certificate's notAfter (unix time; 0: none, in tests) and
	 * its file (borrowed from the snapshot's conf): no answer's nextUpdate
	 * is later, and from then on nothing is signed (ocsp.c). */
	int64_t not_after;
	const char *signer_file;
	EVP_PKEY *key;
	const EVP_MD *md; /* NULL for Ed25519/Ed448 */
	bool delegated;
	/* Precomputed parts of every answer (ctx.c), which ocsp.c encodes by
	 * hand (RFC 6960 §4.2.1): */
	uint8_t respid_der[24];  /* responderID byKey: [2] { OCTET STRING SHA-1(signer key) } */
	uint8_t sigalg_der[128]; /* signatureAlgorithm, as OCSP_basic_sign wrote it */
	size_t sigalg_len;
	uint8_t *certs_der; /* certs [0] { SEQUENCE { signer } } when delegated, else NULL */
	size_t certs_len;
	size_t sig_max; /* EVP_PKEY_get_size */
	enum sign_mode sign_mode;
	EVP_MD *sign_md; /* SIGN_DIGEST: the digest, fetched once */
	/* Per-worker signing contexts, made on first use (ocsp.c). */
	_Atomic(struct rsigns *) signs;
	enum vg_not_issued not_issued;
	int64_t validity; /* seconds */
	unsigned hlen[RH_N];
	uint8_t name_hash[RH_N][EVP_MAX_MD_SIZE];
	uint8_t key_hash[RH_N][EVP_MAX_MD_SIZE];
	char *crl_path;
	const struct vg_conf_ca *conf; /* in the rctx's conf: crl_url, the shards */
};

struct rctx {
	atomic_int refs;
	uint64_t generation;
	struct vg_conf conf;
	char *base_path; /* normalised: starts and ends with '/' */
	int n_cas;
	struct rca cas[VG_CONF_MAX_CAS];
};

/* ctx_load builds a snapshot from |path|. On failure it returns a negative
 * errno and a one-line reason in |err|. */
int ctx_load(const char *path, struct rctx **out, char *err, size_t errlen);
struct rctx *ctx_ref(struct rctx *c);
void ctx_unref(struct rctx *c);
/* ctx_current returns a new reference to the published snapshot. */
struct rctx *ctx_current(void);
/* ctx_publish replaces the published snapshot with |c| (taking the caller's reference). */
void ctx_publish(struct rctx *c);
/* ctx_publish_clear drops the published snapshot (at exit). */
void ctx_publish_clear(void);
