/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One CA's material for crlgen (internal.h): its certificate, and unless
 * only the watchdog runs, its CRL key with the signer policy checked, plus
 * the issuer name and key identifier every CRL of the CA carries.
 */
#include "crlgen/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/pki.h"

void crlgen_ca_deinit(struct crlgen_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	OPENSSL_free(ca->issuer);
	free(ca->shard_touched);
	memset(ca, 0, sizeof(*ca));
}

/* ca_init loads what CA |c| needs to sign CRLs. */
int crlgen_ca_init(struct crlgen_ca *ca, const struct vg_conf_ca *c, bool publishes, char *err,
                   size_t errlen)
{
	char e[400];
	int rc;
	ca->conf = c;
	if (c->crl_shards &&
	    !(ca->shard_touched = calloc((size_t)c->crl_shards + 1, sizeof(bool)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!c->crl_key) {
		snprintf(err, errlen, "[ca %s] crl_key is not set", c->name);
		return -EINVAL;
	}
	if ((rc = vg_pki_load_cert(c->cert, &ca->cert, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "[ca %s] cert: %s", c->name, e);
		return rc;
	}
	/* The watchdog verifies with the certificate; it never holds the key
	 * (nor the token's PIN). */
	if (!publishes)
		goto named;
	if ((rc = vg_pki_load_key(c->crl_key, &ca->key, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "[ca %s] crl_key: %s", c->name, e);
		return rc;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "[ca %s] crl_key %s does not match cert %s", c->name,
		         c->crl_key, c->cert);
		return -EINVAL;
	}
	if ((X509_get_extension_flags(ca->cert) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(ca->cert) & KU_CRL_SIGN)) {
		snprintf(err, errlen, "[ca %s] cert %s: keyUsage lacks cRLSign", c->name, c->cert);
		return -EINVAL;
	}
	if ((rc = crl_signer_init(&ca->signer, ca->key, c->digest, e, sizeof(e))) < 0) {
		snprintf(err, errlen, "[ca %s] crl_key %s: %s", c->name, c->crl_key, e);
		return rc;
	}
	if ((rc = crl_signer_set_cert(&ca->signer, ca->cert)) < 0) {
		snprintf(err, errlen, "[ca %s] cert %s: unreadable notAfter", c->name, c->cert);
		return rc;
	}
named:;
	int n = i2d_X509_NAME(X509_get_subject_name(ca->cert), &ca->issuer);
	if (n <= 0) {
		snprintf(err, errlen, "[ca %s] cert %s: cannot encode the subject", c->name,
		         c->cert);
		return -EINVAL;
	}
	ca->issuer_len = (size_t)n;
	/* The AKI's keyIdentifier is the CA's subjectKeyIdentifier, or, when the
	 * certificate has none, the SHA-1 of its public key (RFC 5280 §4.2.1.2). */
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca->cert);
	if (ski && ASN1_STRING_length(ski) > 0 &&
	    (size_t)ASN1_STRING_length(ski) <= sizeof(ca->akid)) {
		ca->akid_len = (size_t)ASN1_STRING_length(ski);
		memcpy(ca->akid, ASN1_STRING_get0_data(ski), ca->akid_len);
	} else {
		unsigned int l = 0;
		if (X509_pubkey_digest(ca->cert, EVP_sha1(), ca->akid, &l) != 1) {
			snprintf(err, errlen, "[ca %s] cannot compute the key identifier", c->name);
			return -EINVAL;
		}
		ca->akid_len = l;
	}
	ERR_clear_error();
	return 0;
}
