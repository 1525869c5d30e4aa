/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The signer policy, the same for CRLs (crlgen/crl.c) and OCSP answers
 * (responder/ctx.c): which keys may sign and with which digest, and the
 * AlgorithmIdentifier their signatures carry.
 */

#include <stddef.h>
#include <sys/types.h>

#include <openssl/evp.h>

/* The smallest RSA key that may sign (CA/Browser Forum Baseline
 * Requirements §6.1.5). */
#define VG_SIGNER_RSA_MIN_BITS 2048

/* vg_signer_policy checks that |key| may sign: RSA of at least
 * VG_SIGNER_RSA_MIN_BITS bits (PKCS#1 v1.5), EC, Ed25519 or Ed448. RSA and
 * EC sign with |digest|: sha256 (also when |digest| is NULL), sha384 or
 * sha512; EdDSA with none. It sets |*md| to that digest, NULL for EdDSA.
 * Returns 0, or -EINVAL with a one-line reason in |err| that names neither
 * the CA nor the key file (the caller puts them in front). */
int vg_signer_policy(const EVP_PKEY *key, const char *digest, const EVP_MD **md, char *err,
                     size_t errlen);

/* vg_signer_algid writes into |out| (|cap| bytes) the DER AlgorithmIdentifier
 * of |key|'s signatures with |md| (NULL for EdDSA), as OpenSSL writes it in
 * what it signs (X509_CRL_sign, OCSP_basic_sign): a provider key's own answer
 * (OSSL_SIGNATURE_PARAM_ALGORITHM_ID), else, for a key held by an ENGINE
 * (pkcs11: URIs), which does not answer, OpenSSL's table with the
 * parameters RFC 4055 and RFC 5758 want: NULL for RSA, absent for ECDSA.
 * Returns the length, or -EINVAL (OpenSSL's error queue is left to the
 * caller). */
ssize_t vg_signer_algid(EVP_PKEY *key, const EVP_MD *md, uint8_t *out, size_t cap);
