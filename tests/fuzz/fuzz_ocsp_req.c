/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: OCSP request decoding and answer building (responder/ocsp.c).
 * DER bytes in, an OCSPResponse out, through ocsp_answer() with a real
 * store and real signers (fuzz_responder.h). Checks on every answer:
 *  - it parses with d2i_OCSP_RESPONSE, to its last byte, and its status is
 *    one RFC 6960 defines;
 *  - input that is not exactly one DER OCSPRequest is malformedRequest;
 *  - a successful answer has one SingleResponse per request CertID, in
 *    order, echoing each CertID; it is signed by the CA named first (or its
 *    delegated signer) and the signature verifies; the nonce is echoed iff
 *    the request carries one; "good" only for serials the store knows good;
 *  - asking again gives the same status (and the same bytes when the second
 *    comes from the cache);
 *  - with the store unreadable, tryLater (or malformedRequest, unauthorized).
 */
#include "tests/fuzz/fuzz_responder.h"

#include <openssl/ocsp.h>
#include <openssl/pem.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509 *ca_certs[3], *signers[3];
static const char *const good_serials[] = {
        "01", "80", "7F0102030405060708090A0B0C0D0E0F10111213", "10", "05",
};

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	FZ_CHECK(x);
	return x;
}

/* The replay driver calls no LLVMFuzzerInitialize: set up on first use. */
static void init_once(void)
{
	if (ca_certs[0])
		return;
	fz_world_init();
	ca_certs[0] = pem_cert(alpha_cert_pem);
	ca_certs[1] = pem_cert(beta_cert_pem);
	ca_certs[2] = pem_cert(gamma_cert_pem);
	signers[0] = pem_cert(alpha_ocsp_cert_pem);
	signers[1] = ca_certs[1];
	signers[2] = ca_certs[2];
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	init_once();
	return 0;
}

static bool serial_known_good(const ASN1_INTEGER *ai)
{
	for (size_t i = 0; i < sizeof(good_serials) / sizeof(good_serials[0]); i++) {
		BIGNUM *bn = NULL;
		FZ_CHECK(BN_hex2bn(&bn, good_serials[i]));
		ASN1_INTEGER *g = BN_to_ASN1_INTEGER(bn, NULL);
		BN_free(bn);
		bool eq = ASN1_INTEGER_cmp(g, ai) == 0;
		ASN1_INTEGER_free(g);
		if (eq)
			return true;
	}
	return false;
}

/* check_basic checks a successful answer to |req|. */
static void check_basic(OCSP_REQUEST *req, OCSP_BASICRESP *bs)
{
	int n = OCSP_request_onereq_count(req);
	FZ_CHECK(n >= 1 && n <= fz_w.ctx->conf.max_certids);
	FZ_CHECK(OCSP_resp_count(bs) == n);
	/* Which of our CAs each CertID names (by a hash the responder knows), if any;
	 * the first one named signs. */
	int ca = -1, which[1000];
	for (int i = 0; i < n; i++) {
		OCSP_CERTID *qid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
		which[i] = -1;
		ASN1_OBJECT *alg = NULL;
		ASN1_INTEGER *serial = NULL;
		OCSP_id_get0_info(NULL, &alg, NULL, &serial, qid);
		int nid = alg ? OBJ_obj2nid(alg) : NID_undef;
		if (nid != NID_sha1 && nid != NID_sha256 && nid != NID_sha384 && nid != NID_sha512)
			continue;
		for (int k = 0; k < 3 && which[i] < 0; k++) {
			OCSP_CERTID *mine =
			        serial ? OCSP_cert_id_new(EVP_get_digestbynid(nid),
			                                  X509_get_subject_name(ca_certs[k]),
			                                  X509_get0_pubkey_bitstr(ca_certs[k]),
			                                  serial)
			               : NULL;
			if (mine && OCSP_id_issuer_cmp(mine, qid) == 0)
				which[i] = k;
			OCSP_CERTID_free(mine);
			ERR_clear_error();
		}
		if (ca < 0)
			ca = which[i];
	}
	FZ_CHECK(ca >= 0);
	for (int i = 0; i < n; i++) {
		OCSP_CERTID *qid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
		OCSP_SINGLERESP *single = OCSP_resp_get0(bs, i);
		const OCSP_CERTID *aid = OCSP_SINGLERESP_get0_id(single);
		unsigned char *qd = NULL, *ad = NULL;
		int ql = i2d_OCSP_CERTID(qid, &qd);
		int al = i2d_OCSP_CERTID((OCSP_CERTID *)aid, &ad);
		FZ_CHECK(ql > 0 && ql == al && memcmp(qd, ad, (size_t)ql) == 0);
		OPENSSL_free(qd);
		OPENSSL_free(ad);
		int reason = -1;
		ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
		int st = OCSP_single_get0_status(single, &reason, &rev, &thisupd, &nextupd);
		FZ_CHECK(st == V_OCSP_CERTSTATUS_GOOD || st == V_OCSP_CERTSTATUS_REVOKED ||
		         st == V_OCSP_CERTSTATUS_UNKNOWN);
		FZ_CHECK(thisupd && nextupd);
		FZ_CHECK(OCSP_check_validity(thisupd, nextupd, 300, 10 * 86400) == 1);
		int days = 0, secs = 0;
		FZ_CHECK(ASN1_TIME_diff(&days, &secs, thisupd, nextupd));
		FZ_CHECK(days * 86400 + secs > 0 && days * 86400 + secs < 10 * 86400);
		ERR_clear_error();
		if (st == V_OCSP_CERTSTATUS_GOOD) {
			/* Never good for an absent serial or a foreign issuer. */
			ASN1_INTEGER *serial = NULL;
			OCSP_id_get0_info(NULL, NULL, NULL, &serial, qid);
			FZ_CHECK(which[i] == ca);
			FZ_CHECK(serial_known_good(serial));
		}
		if (which[i] != ca)
			FZ_CHECK(st == V_OCSP_CERTSTATUS_UNKNOWN);
	}
	/* Signed by that CA's signer, and the signature verifies. */
	STACK_OF(X509) *certs = sk_X509_new_null();
	sk_X509_push(certs, signers[ca]);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, ca_certs[ca]);
	X509 *who = NULL;
	FZ_CHECK(OCSP_resp_get0_signer(bs, &who, certs) == 1 && X509_cmp(who, signers[ca]) == 0);
	int v = OCSP_basic_verify(bs, certs, store, OCSP_TRUSTOTHER);
	if (v != 1)
		ERR_print_errors_fp(stderr);
	FZ_CHECK(v == 1);
	X509_STORE_free(store);
	sk_X509_free(certs);
	/* The nonce: echoed when asked (2: neither has one). */
	int nc = OCSP_check_nonce(req, bs);
	FZ_CHECK(nc == 1 || nc == 2);
	ERR_clear_error();
}

/* check_answer checks one answer to |data| and returns its status. */
static int check_answer(const uint8_t *data, size_t size, const struct answer *a)
{
	FZ_CHECK(a->der && a->len > 0);
	const unsigned char *p = a->der;
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)a->len);
	FZ_CHECK(resp && p == a->der + a->len);
	int status = OCSP_response_status(resp);
	FZ_CHECK(status >= 0 && status <= 6 && status != 4);
	const unsigned char *q = data;
	OCSP_REQUEST *req = size ? d2i_OCSP_REQUEST(NULL, &q, (long)size) : NULL;
	if (!req || q != data + size)
		FZ_CHECK(status == OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
	if (status == OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		FZ_CHECK(req && bs);
		check_basic(req, bs);
	} else {
		FZ_CHECK(!bs && a->der == ocsp_error_der(status, &(size_t){0}));
		FZ_CHECK(!a->cacheable);
	}
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_once();
	fz_world_reset();
	uint32_t h = fz_hash(data, size);
	/* Now and then the smaller limits of the second snapshot. */
	fz_w.ctx = fz_ctx[(h & 7) == 0];
	/* Now and then a store that cannot be read: never an answer then. */
	fz_w.txn_ok = ((h >> 3) & 15) != 0;
	struct answer a1, a2;
	ocsp_answer(&fz_w, data, size, &a1);
	int s1 = check_answer(data, size, &a1);
	if (!fz_w.txn_ok)
		FZ_CHECK(s1 == OCSP_RESPONSE_STATUS_TRYLATER ||
		         s1 == OCSP_RESPONSE_STATUS_MALFORMEDREQUEST ||
		         s1 == OCSP_RESPONSE_STATUS_UNAUTHORIZED);
	uint64_t hits = fz_w.m.cache_hit;
	ocsp_answer(&fz_w, data, size, &a2);
	int s2 = check_answer(data, size, &a2);
	FZ_CHECK(s1 == s2);
	if (fz_w.m.cache_hit != hits) {
		/* The second answer came from the cache: the same bytes. */
		FZ_CHECK(a1.cacheable && a2.cacheable && a1.len == a2.len &&
		         !memcmp(a1.der, a2.der, a1.len));
		FZ_CHECK(a1.produced_at == a2.produced_at && a1.this_update == a2.this_update &&
		         a1.next_update == a2.next_update);
	}
	answer_release(&a1);
	answer_release(&a2);
	cache_quiescent(0);
	return 0;
}
