/* SPDX-License-Identifier: Apache-2.0 */
/* The signer policy of CRLs and OCSP answers; see signer.h. */
#include "common/signer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

int vg_signer_policy(const EVP_PKEY *key, const char *digest, const EVP_MD **md, char *err,
                     size_t errlen)
{
	*md = NULL;
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return 0;
	if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC")) {
		snprintf(err, errlen, "key type %s cannot sign (RSA, EC, Ed25519, Ed448)",
		         EVP_PKEY_get0_type_name(key));
		return -EINVAL;
	}
	if (!digest)
		digest = "sha256";
	if (strcmp(digest, "sha256") && strcmp(digest, "sha384") && strcmp(digest, "sha512")) {
		snprintf(err, errlen, "digest %s: expected sha256, sha384 or sha512", digest);
		return -EINVAL;
	}
	*md = EVP_get_digestbyname(digest);
	if (!*md) {
		snprintf(err, errlen, "digest %s: not available", digest);
		return -EINVAL;
	}
	if (EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) < VG_SIGNER_RSA_MIN_BITS) {
		snprintf(err, errlen, "RSA key of %d bits: at least %d are required",
		         EVP_PKEY_get_bits(key), VG_SIGNER_RSA_MIN_BITS);
		*md = NULL;
		return -EINVAL;
	}
	return 0;
}

/* algid_provider asks the provider that holds |key|, as OpenSSL itself does
 * when it signs. */
static ssize_t algid_provider(EVP_PKEY *key, const EVP_MD *md, uint8_t *out, size_t cap)
{
	ssize_t n = -EINVAL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx ||
	    EVP_DigestSignInit_ex(ctx, &pctx, md ? EVP_MD_get0_name(md) : NULL, NULL, NULL, key,
	                          NULL) != 1 ||
	    (EVP_PKEY_is_a(key, "RSA") &&
	     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1))
		goto out;
	OSSL_PARAM params[2] = {
	        OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, out, cap),
	        OSSL_PARAM_construct_end(),
	};
	if (EVP_PKEY_CTX_get_params(pctx, params) == 1 && params[0].return_size > 0 &&
	    params[0].return_size <= cap)
		n = (ssize_t)params[0].return_size;
out:
	EVP_MD_CTX_free(ctx);
	return n;
}

/* algid_table is for keys that OpenSSL 3.0 signs with through its legacy
 * path (an ENGINE's): OpenSSL's table, with ASN1_PKEY_SIGPARAM_NULL's NULL
 * parameters for RSA's PKCS#1 v1.5. */
static ssize_t algid_table(EVP_PKEY *key, const EVP_MD *md, uint8_t *out, size_t cap)
{
	int kid = EVP_PKEY_get_base_id(key), sig_nid = NID_undef;
	if (!md || !OBJ_find_sigid_by_algs(&sig_nid, EVP_MD_get_type(md), kid))
		return -EINVAL;
	ssize_t n = -EINVAL;
	X509_ALGOR *a = X509_ALGOR_new();
	if (a && X509_ALGOR_set0(a, OBJ_nid2obj(sig_nid),
	                         kid == EVP_PKEY_RSA ? V_ASN1_NULL : V_ASN1_UNDEF, NULL)) {
		int l = i2d_X509_ALGOR(a, NULL);
		unsigned char *q = out;
		if (l > 0 && (size_t)l <= cap && i2d_X509_ALGOR(a, &q) == l)
			n = l;
	}
	X509_ALGOR_free(a);
	return n;
}

ssize_t vg_signer_algid(EVP_PKEY *key, const EVP_MD *md, uint8_t *out, size_t cap)
{
	if (EVP_PKEY_get0_provider(key)) {
		ssize_t n = algid_provider(key, md, out, cap);
		if (n > 0)
			return n;
	}
	return algid_table(key, md, out, cap);
}
