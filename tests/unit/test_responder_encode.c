/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests: the responder's hand-written OCSP answers (ocsp_build).
 *
 * For RSA, ECDSA P-256 (SHA-256 and SHA-384) and Ed25519 signers, each
 * signing as the CA and as a delegated responder, answers with good, revoked
 * (with and without a reason, with an invalidity date, not-issued with the
 * extended-revoke extension) and unknown singles, SHA-1 and SHA-256 CertIDs
 * (hash parameters NULL or absent), with and without a nonce, are checked by
 * OpenSSL alone: they parse to the last byte, re-encode to the same bytes
 * (DER), verify against the CA, give the statuses, times and nonce put in;
 * and they equal what OpenSSL's OCSP_basic_sign builds from the same input,
 * byte for byte when the signature is deterministic (RSA PKCS#1 v1.5,
 * Ed25519), all but the signature otherwise.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/der.h"
#include "responder/ocsp.h"
#include "responder/worker.h"

static char dir[] = "/tmp/vigil-encode-XXXXXX";
static struct rctx *ctx;
static struct worker w;
static long next_serial = 1;

/* The sections of the configuration, in order. */
static const struct {
	const char *name, *keytype, *digest;
	bool delegated;
} cas[] = {
        {"rsa-ca", "RSA", NULL, false},      {"rsa-del", "RSA", NULL, true},
        {"ec-ca", "EC", NULL, false},        {"ec-del", "EC", NULL, true},
        {"ec384-ca", "EC", "sha384", false}, {"ed-ca", "ED25519", NULL, false},
        {"ed-del", "ED25519", NULL, true},
};
#define N_CAS (sizeof(cas) / sizeof(cas[0]))

static EVP_PKEY *keygen(const char *type)
{
	EVP_PKEY *k = !strcmp(type, "RSA")  ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
	              : !strcmp(type, "EC") ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
	                                    : EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v;
	X509V3_set_ctx_nodb(&v);
	X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, bool ocsp)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++);
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509_NAME_free(n);
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 30 * 86400);
	X509_set_pubkey(x, key);
	if (ocsp) {
		add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		add_ext(x, issuer, NID_ext_key_usage, "OCSPSigning");
	} else {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
	}
	EVP_PKEY *sk = ikey ? ikey : key;
	int id = EVP_PKEY_get_base_id(sk);
	const EVP_MD *md = id == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	assert_true(X509_sign(x, sk, md) > 0);
	return x;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(PEM_write_X509(f, x));
	fclose(f);
}

static void write_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fchmod(fileno(f), 0600), 0);
	assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	char conf[512], path[512], p2[512];
	snprintf(conf, sizeof(conf), "%s/vigil.conf", dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[store]\npath = %s/store\n[crlgen]\nout = %s/crl\n", dir, dir);
	for (size_t i = 0; i < N_CAS; i++) {
		EVP_PKEY *k = keygen(cas[i].keytype);
		X509 *ca = make_cert(k, cas[i].name, NULL, NULL, false);
		snprintf(path, sizeof(path), "%s/%s.pem", dir, cas[i].name);
		write_cert(path, ca);
		fprintf(f, "[ca %s]\ncert = %s\n", cas[i].name, path);
		if (cas[i].digest)
			fprintf(f, "digest = %s\n", cas[i].digest);
		if (cas[i].delegated) {
			EVP_PKEY *ok = keygen(cas[i].keytype);
			X509 *oc = make_cert(ok, "responder", ca, k, true);
			snprintf(path, sizeof(path), "%s/%s-ocsp.pem", dir, cas[i].name);
			snprintf(p2, sizeof(p2), "%s/%s-ocsp.key", dir, cas[i].name);
			write_cert(path, oc);
			write_key(p2, ok);
			fprintf(f, "ocsp_cert = %s\nocsp_key = %s\n", path, p2);
			X509_free(oc);
			EVP_PKEY_free(ok);
		} else {
			snprintf(p2, sizeof(p2), "%s/%s.key", dir, cas[i].name);
			write_key(p2, k);
			fprintf(f, "ocsp_key = %s\n", p2);
		}
		X509_free(ca);
		EVP_PKEY_free(k);
	}
	fclose(f);
	char err[512];
	int rc = ctx_load(conf, &ctx, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "ctx_load: %s\n", err);
		return -1;
	}
	if (ocsp_init() < 0)
		return -1;
	g_nworkers = 1;
	w.idx = 0;
	w.ctx = ctx;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ctx_unref(ctx);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- Input ---------------------------------------------------------------------- */

static OCSP_CERTID *certid_params(const struct rca *ca, const EVP_MD *md, long serial,
                                  const uint8_t *params, size_t plen);

/* certid makes a CertID for |serial| of |ca| with |md|; without |null_params|
 * the hash algorithm has no parameters (as some clients send it). */
static OCSP_CERTID *certid(const struct rca *ca, const EVP_MD *md, long serial, bool null_params)
{
	return certid_params(ca, md, serial, null_params ? (const uint8_t *)"\x05\x00" : NULL,
	                     null_params ? 2 : 0);
}

/* certid_params makes a CertID whose hash algorithm has the parameters
 * |params| (DER, |plen| bytes; none when 0), parsed by OpenSSL; NULL when it
 * refuses them. */
static OCSP_CERTID *certid_params(const struct rca *ca, const EVP_MD *md, long serial,
                                  const uint8_t *params, size_t plen)
{
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	ASN1_INTEGER_set(ai, serial);
	OCSP_CERTID *id = OCSP_cert_id_new(md, X509_get_subject_name(ca->cert),
	                                   X509_get0_pubkey_bitstr(ca->cert), ai);
	ASN1_INTEGER_free(ai);
	assert_non_null(id);
	/* Re-encode with |params| and parse that. */
	ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
	ASN1_OBJECT *alg = NULL;
	ASN1_INTEGER *sn = NULL;
	assert_true(OCSP_id_get0_info(&nh, &alg, &kh, &sn, id));
	uint8_t mem[512];
	struct der_buf b;
	der_init(&b, mem, sizeof(mem));
	der_open(&b, DER_SEQUENCE);
	der_open(&b, DER_SEQUENCE);
	unsigned char *o = NULL;
	int ol = i2d_ASN1_OBJECT(alg, &o);
	der_add_bytes(&b, o, (size_t)ol);
	OPENSSL_free(o);
	der_add_bytes(&b, params, plen);
	der_close(&b);
	der_add_tlv(&b, DER_OCTET_STRING, ASN1_STRING_get0_data(nh),
	            (size_t)ASN1_STRING_length(nh));
	der_add_tlv(&b, DER_OCTET_STRING, ASN1_STRING_get0_data(kh),
	            (size_t)ASN1_STRING_length(kh));
	unsigned char *s = NULL;
	int sl = i2d_ASN1_INTEGER(sn, &s);
	der_add_bytes(&b, s, (size_t)sl);
	OPENSSL_free(s);
	der_close(&b);
	assert_true(der_ok(&b));
	const unsigned char *p = mem;
	OCSP_CERTID *id2 = d2i_OCSP_CERTID(NULL, &p, (long)b.len);
	OCSP_CERTID_free(id);
	if (id2)
		assert_ptr_equal(p, mem + b.len);
	return id2;
}

#define NS 7
static const int64_t T_REV = 1700000000, T_INV = 1690000000;

/* The singles of every test answer, for CA |ca|. */
static void make_singles(const struct rca *ca, struct ocsp_single *s)
{
	memset(s, 0, NS * sizeof(*s));
	for (int i = 0; i < NS; i++) {
		s[i].cid =
		        certid(ca, i % 2 ? EVP_sha256() : EVP_sha1(), 0x1000 + i * 0x3f1, i != 3);
		s[i].st.reason = OCSP_REVOKED_STATUS_NOSTATUS;
	}
	s[0].st.cr = CR_GOOD;
	s[1].st.cr = CR_REVOKED; /* keyCompromise, with an invalidity date */
	s[1].st.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
	s[1].st.revoked_at = T_REV;
	s[1].st.has_invalidity = true;
	s[1].st.invalidity = T_INV;
	s[2].st.cr = CR_REVOKED; /* no reason */
	s[2].st.revoked_at = T_REV + 1;
	s[3].st.cr = CR_UNKNOWN;
	s[4].st.cr = CR_REVOKED; /* unspecified (0): a reason all the same */
	s[4].st.reason = OCSP_REVOKED_STATUS_UNSPECIFIED;
	s[4].st.revoked_at = T_REV + 2;
	s[5].st.cr = CR_GOOD;
	s[6].st.cr = CR_REVOKED; /* never issued: hold at the epoch */
	s[6].st.reason = OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
	s[6].st.revoked_at = 0;
	s[6].st.ext_revoke = true;
}

static void free_singles(struct ocsp_single *s, int n)
{
	for (int i = 0; i < n; i++)
		OCSP_CERTID_free(s[i].cid);
}

/* ---- OpenSSL's own builder: what build() in ocsp.c did before ---------------------- */

static uint8_t *openssl_build(const struct rca *ca, const struct ocsp_single *s, int n,
                              OCSP_REQUEST *nonce_req, int64_t now, size_t *len)
{
	static const int vstatus[CR_N] = {V_OCSP_CERTSTATUS_GOOD, V_OCSP_CERTSTATUS_REVOKED,
	                                  V_OCSP_CERTSTATUS_UNKNOWN};
	int64_t validity = ca->validity > 10 * 86400 - 1 ? 10 * 86400 - 1 : ca->validity;
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	ASN1_GENERALIZEDTIME *tu = ASN1_GENERALIZEDTIME_set(NULL, (time_t)now);
	ASN1_GENERALIZEDTIME *nu = ASN1_GENERALIZEDTIME_set(NULL, (time_t)(now + validity));
	bool ext = false;
	for (int i = 0; i < n; i++) {
		ASN1_GENERALIZEDTIME *rt =
		        s[i].st.cr == CR_REVOKED
		                ? ASN1_GENERALIZEDTIME_set(NULL, s[i].st.revoked_at)
		                : NULL;
		OCSP_SINGLERESP *one = OCSP_basic_add1_status(
		        bs, s[i].cid, vstatus[s[i].st.cr],
		        s[i].st.cr == CR_REVOKED ? s[i].st.reason : 0, rt, tu, nu);
		assert_non_null(one);
		ASN1_GENERALIZEDTIME_free(rt);
		if (s[i].st.cr == CR_REVOKED && s[i].st.has_invalidity) {
			ASN1_GENERALIZEDTIME *inv =
			        ASN1_GENERALIZEDTIME_set(NULL, s[i].st.invalidity);
			assert_true(
			        OCSP_SINGLERESP_add1_ext_i2d(one, NID_invalidity_date, inv, 0, 0));
			ASN1_GENERALIZEDTIME_free(inv);
		}
		ext |= s[i].st.ext_revoke;
	}
	if (ext) {
		ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.48.1.9", 1);
		ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(val, (const unsigned char *)"\x05\x00", 2);
		X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, val);
		assert_true(OCSP_BASICRESP_add_ext(bs, e, -1));
		X509_EXTENSION_free(e);
		ASN1_OBJECT_free(obj);
		ASN1_OCTET_STRING_free(val);
	}
	if (nonce_req)
		assert_true(OCSP_copy_nonce(bs, nonce_req) > 0);
	unsigned long flags = OCSP_RESPID_KEY | (ca->delegated ? 0 : OCSP_NOCERTS);
	assert_true(OCSP_basic_sign(bs, ca->signer, ca->key, ca->md, NULL, flags));
	OCSP_RESPONSE *r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
	unsigned char *p = NULL;
	int l = i2d_OCSP_RESPONSE(r, &p);
	assert_true(l > 0);
	*len = (size_t)l;
	OCSP_RESPONSE_free(r);
	OCSP_BASICRESP_free(bs);
	ASN1_GENERALIZEDTIME_free(tu);
	ASN1_GENERALIZEDTIME_free(nu);
	return p;
}

/* ---- Checks ---------------------------------------------------------------------- */

static OCSP_BASICRESP *parse(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	assert_non_null(r);
	assert_ptr_equal(p, der + len); /* everything consumed */
	unsigned char *again = NULL;
	int l = i2d_OCSP_RESPONSE(r, &again);
	assert_int_equal(l, (int)len); /* DER: OpenSSL writes it the same */
	assert_memory_equal(again, der, len);
	OPENSSL_free(again);
	assert_int_equal(OCSP_response_status(r), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	OCSP_BASICRESP *bs = OCSP_response_get1_basic(r);
	assert_non_null(bs);
	OCSP_RESPONSE_free(r);
	return bs;
}

static void assert_time(const ASN1_GENERALIZEDTIME *t, int64_t want)
{
	assert_non_null(t);
	assert_int_equal(ASN1_STRING_type(t), V_ASN1_GENERALIZEDTIME);
	ASN1_GENERALIZEDTIME *g = ASN1_GENERALIZEDTIME_set(NULL, (time_t)want);
	assert_int_equal(ASN1_STRING_length(t), 15); /* YYYYMMDDHHMMSSZ */
	assert_int_equal(ASN1_TIME_compare(t, g), 0);
	ASN1_GENERALIZEDTIME_free(g);
}

static void check_answer(const struct rca *ca, const uint8_t *der, size_t len,
                         const struct ocsp_single *s, int n, OCSP_REQUEST *req, int64_t now)
{
	OCSP_BASICRESP *bs = parse(der, len);
	/* Signed by the CA or by its responder, which chains to the CA. */
	STACK_OF(X509) *certs = sk_X509_new_null();
	sk_X509_push(certs, ca->cert);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, ca->cert);
	int v = OCSP_basic_verify(bs, certs, store, 0);
	if (v != 1)
		ERR_print_errors_fp(stderr);
	assert_int_equal(v, 1);
	X509 *who = NULL;
	assert_int_equal(OCSP_resp_get0_signer(bs, &who, certs), 1);
	assert_int_equal(X509_cmp(who, ca->signer), 0);
	const STACK_OF(X509) *in = OCSP_resp_get0_certs(bs);
	assert_int_equal(in ? sk_X509_num(in) : 0, ca->delegated ? 1 : 0);
	/* responderID byKey, producedAt. */
	const ASN1_OCTET_STRING *kid = NULL;
	const X509_NAME *byname = NULL;
	assert_true(OCSP_resp_get0_id(bs, &kid, &byname));
	assert_non_null(kid);
	assert_null(byname);
	assert_time(OCSP_resp_get0_produced_at(bs), now);
	int64_t validity = ca->validity > 10 * 86400 - 1 ? 10 * 86400 - 1 : ca->validity;
	assert_int_equal(OCSP_resp_count(bs), n);
	for (int i = 0; i < n; i++) {
		int st = -1, reason = -2;
		ASN1_GENERALIZEDTIME *rev = NULL, *tu = NULL, *nu = NULL;
		assert_int_equal(OCSP_resp_find_status(bs, s[i].cid, &st, &reason, &rev, &tu, &nu),
		                 1);
		static const int vstatus[CR_N] = {V_OCSP_CERTSTATUS_GOOD, V_OCSP_CERTSTATUS_REVOKED,
		                                  V_OCSP_CERTSTATUS_UNKNOWN};
		assert_int_equal(st, vstatus[s[i].st.cr]);
		assert_time(tu, now);
		/* Never past the signer certificate's notAfter. */
		int64_t want_nu = now + validity;
		if (ca->not_after && want_nu > ca->not_after)
			want_nu = ca->not_after;
		assert_time(nu, want_nu);
		if (s[i].st.cr == CR_REVOKED) {
			assert_int_equal(reason, s[i].st.reason);
			assert_time(rev, s[i].st.revoked_at);
		} else {
			assert_null(rev);
		}
		/* The CertID echoed byte for byte, in order. */
		OCSP_SINGLERESP *one = OCSP_resp_get0(bs, i);
		unsigned char *a = NULL, *q = NULL;
		int al = i2d_OCSP_CERTID((OCSP_CERTID *)OCSP_SINGLERESP_get0_id(one), &a);
		int ql = i2d_OCSP_CERTID(s[i].cid, &q);
		assert_int_equal(al, ql);
		assert_memory_equal(a, q, (size_t)ql);
		OPENSSL_free(a);
		OPENSSL_free(q);
		ASN1_GENERALIZEDTIME *inv =
		        OCSP_SINGLERESP_get1_ext_d2i(one, NID_invalidity_date, NULL, NULL);
		if (s[i].st.cr == CR_REVOKED && s[i].st.has_invalidity)
			assert_time(inv, s[i].st.invalidity);
		else
			assert_null(inv);
		assert_int_equal(OCSP_SINGLERESP_get_ext_count(one), inv ? 1 : 0);
		ASN1_GENERALIZEDTIME_free(inv);
	}
	/* The nonce: echoed when asked (2: neither has one). */
	if (req)
		assert_int_equal(OCSP_check_nonce(req, bs), 1);
	else
		assert_int_equal(OCSP_BASICRESP_get_ext_by_NID(bs, NID_id_pkix_OCSP_Nonce, -1), -1);
	X509_STORE_free(store);
	sk_X509_free(certs);
	OCSP_BASICRESP_free(bs);
	ERR_clear_error();
}

/* same_but_signature compares two answers without their signature values. */
static void same_but_signature(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	OCSP_BASICRESP *x = parse(a, alen), *y = parse(b, blen);
	unsigned char *dx = NULL, *dy = NULL;
	int lx = i2d_OCSP_RESPDATA((OCSP_RESPDATA *)OCSP_resp_get0_respdata(x), &dx);
	int ly = i2d_OCSP_RESPDATA((OCSP_RESPDATA *)OCSP_resp_get0_respdata(y), &dy);
	assert_int_equal(lx, ly);
	assert_memory_equal(dx, dy, (size_t)lx);
	OPENSSL_free(dx);
	OPENSSL_free(dy);
	dx = dy = NULL;
	lx = i2d_X509_ALGOR((X509_ALGOR *)OCSP_resp_get0_tbs_sigalg(x), &dx);
	ly = i2d_X509_ALGOR((X509_ALGOR *)OCSP_resp_get0_tbs_sigalg(y), &dy);
	assert_int_equal(lx, ly);
	assert_memory_equal(dx, dy, (size_t)lx);
	OPENSSL_free(dx);
	OPENSSL_free(dy);
	const STACK_OF(X509) *cx = OCSP_resp_get0_certs(x), *cy = OCSP_resp_get0_certs(y);
	assert_int_equal(sk_X509_num(cx), sk_X509_num(cy));
	for (int i = 0; i < sk_X509_num(cx); i++)
		assert_int_equal(X509_cmp(sk_X509_value(cx, i), sk_X509_value(cy, i)), 0);
	OCSP_BASICRESP_free(x);
	OCSP_BASICRESP_free(y);
}

/* build_and_check builds the answer to |n| singles without a nonce, checks
 * it with OpenSSL (check_answer), and returns its length. */
static size_t build_and_check(struct rca *ca, struct ocsp_single *s, int n)
{
	int64_t now = (int64_t)time(NULL);
	uint8_t *der = NULL;
	size_t len = 0;
	assert_int_equal(ocsp_build(&w, ca, s, n, NULL, now, &der, &len), 0);
	check_answer(ca, der, len, s, n, NULL, now);
	OPENSSL_free(der);
	return len;
}

/* nonce_request makes a request whose nonce extension the answer copies. */
static OCSP_REQUEST *nonce_request(bool critical, int len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	assert_non_null(req);
	assert_true(OCSP_request_add1_nonce(req, NULL, len));
	if (critical)
		X509_EXTENSION_set_critical(OCSP_REQUEST_get_ext(req, 0), 1);
	return req;
}

static void one_ca(size_t i, int n, OCSP_REQUEST *req)
{
	struct rca *ca = &ctx->cas[i];
	struct ocsp_single s[NS];
	make_singles(ca, s);
	const X509_EXTENSION *next = req ? OCSP_REQUEST_get_ext(req, 0) : NULL;
	int kid = EVP_PKEY_get_base_id(ca->key);
	bool deterministic = kid == EVP_PKEY_RSA || kid == EVP_PKEY_ED25519;
	for (int tries = 0;; tries++) {
		int64_t now = (int64_t)time(NULL);
		uint8_t *der = NULL;
		size_t len = 0;
		uint64_t signs = w.m.signs;
		assert_int_equal(ocsp_build(&w, ca, s, n, next, now, &der, &len), 0);
		assert_int_equal(w.m.signs, signs + 1);
		check_answer(ca, der, len, s, n, req, now);
		size_t olen = 0;
		uint8_t *ref = openssl_build(ca, s, n, req, now, &olen);
		bool same_second = (int64_t)time(NULL) == now;
		if (same_second || tries == 3) {
			/* OCSP_basic_sign's producedAt is its own clock's. */
			assert_true(same_second);
			same_but_signature(der, len, ref, olen);
			if (deterministic) {
				assert_int_equal(len, olen);
				assert_memory_equal(der, ref, len);
			}
		}
		OPENSSL_free(der);
		OPENSSL_free(ref);
		if (same_second)
			break;
	}
	/* Again with the first CertID's DER given, as the cached path does. */
	unsigned char *cd = NULL;
	int cl = i2d_OCSP_CERTID(s[0].cid, &cd);
	s[0].cid_der = cd;
	s[0].cid_len = (size_t)cl;
	build_and_check(ca, s, 1);
	OPENSSL_free(cd);
	free_singles(s, NS);
}

static void test_all_cas_all_statuses(void **state)
{
	(void)state;
	assert_int_equal(ctx->n_cas, (int)N_CAS);
	for (size_t i = 0; i < N_CAS; i++) {
		/* One single, then all of them; without, then with a nonce. */
		one_ca(i, 1, NULL);
		one_ca(i, NS, NULL);
		OCSP_REQUEST *req = nonce_request(false, 16);
		one_ca(i, 1, req);
		one_ca(i, NS, req);
		OCSP_REQUEST_free(req);
	}
}

static void test_nonce_copied_as_received(void **state)
{
	(void)state;
	/* Critical, short and long (a length of two octets in the answer). */
	const int lens[] = {1, 32, 128};
	for (size_t i = 0; i < N_CAS; i++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			OCSP_REQUEST *req = nonce_request(k == 0, lens[k]);
			one_ca(i, 2, req);
			OCSP_REQUEST_free(req);
		}
	}
}

static void test_many_singles(void **state)
{
	(void)state;
	/* Lengths of three octets in every outer element. */
	enum { MANY = 600 };
	struct rca *ca = &ctx->cas[2];
	struct ocsp_single *s = calloc(MANY, sizeof(*s));
	assert_non_null(s);
	for (int i = 0; i < MANY; i++) {
		s[i].cid = certid(ca, EVP_sha256(), 0x10000 + i, true);
		s[i].st.cr = (enum cert_result)(i % CR_N);
		s[i].st.reason =
		        i % 2 ? OCSP_REVOKED_STATUS_SUPERSEDED : OCSP_REVOKED_STATUS_NOSTATUS;
		s[i].st.revoked_at = T_REV;
	}
	assert_true(build_and_check(ca, s, MANY) > 65536);
	free_singles(s, MANY);
	free(s);
}

static void test_refresh_point(void **state)
{
	(void)state;
	const int64_t t = 1700000000, h = 3600, d = 86400;
	/* The default, 4 days at 50 %: after 2 days. */
	assert_int_equal(ocsp_refresh_at(t, 4 * d, 50), t + 2 * d);
	/* 10 days at 50 % would be 5 days: at most 4 days after thisUpdate. */
	assert_int_equal(ocsp_refresh_at(t, 10 * d - 1, 50), t + 4 * d);
	assert_int_equal(ocsp_refresh_at(t, 10 * d - 1, 30), t + (10 * d - 1) * 30 / 100);
	/* 1 day at 90 %: at least 8 hours before nextUpdate. */
	assert_int_equal(ocsp_refresh_at(t, d, 90), t + 16 * h);
	assert_int_equal(ocsp_refresh_at(t, 16 * h, 90), t + 8 * h);
	/* Under 16 hours: before half the validity is left. */
	assert_int_equal(ocsp_refresh_at(t, 8 * h, 90), t + 4 * h);
	assert_int_equal(ocsp_refresh_at(t, 8 * h, 25), t + 2 * h);
	assert_int_equal(ocsp_refresh_at(t, 16 * h - 1, 60), t + (16 * h - 1) / 2);
}

static void test_odd_hash_parameters(void **state)
{
	(void)state;
	struct rca *ca = &ctx->cas[0];
	/* Parameters OpenSSL writes back as it read them: answered. */
	static const uint8_t octets[] = {0x04, 0x02, 0xab, 0xcd};
	struct ocsp_single s[2];
	memset(s, 0, sizeof(s));
	s[0].cid = certid_params(ca, EVP_sha1(), 0x77, octets, sizeof(octets));
	assert_non_null(s[0].cid);
	s[0].st.cr = CR_UNKNOWN;
	s[0].st.reason = OCSP_REVOKED_STATUS_NOSTATUS;
	build_and_check(ca, s, 1);
	int64_t now = (int64_t)time(NULL);
	uint8_t *der = NULL;
	size_t len = 0;
	/* An empty constructed [UNIVERSAL 0], which OpenSSL accepts but writes
	 * back as 00 00 and then refuses: no answer (-EBADMSG: the client's
	 * mistake, malformedRequest), never one that does not parse. Also when
	 * the caller has the (unparseable) DER already. */
	static const uint8_t eoc[] = {0x20, 0x00};
	s[1] = s[0];
	s[1].cid = certid_params(ca, EVP_sha1(), 0x78, eoc, sizeof(eoc));
	assert_non_null(s[1].cid);
	assert_int_equal(ocsp_build(&w, ca, s, 2, NULL, now, &der, &len), -EBADMSG);
	unsigned char *cd = NULL;
	int cl = i2d_OCSP_CERTID(s[1].cid, &cd);
	assert_true(cl > 0);
	s[1].cid_der = cd;
	s[1].cid_len = (size_t)cl;
	assert_int_equal(ocsp_build(&w, ca, &s[1], 1, NULL, now, &der, &len), -EBADMSG);
	OPENSSL_free(cd);
	free_singles(s, 2);
}

/* An answer's nextUpdate stops at its signer's notAfter, and from then on
 * nothing is signed and /healthz says why (issue 11, item 2). */
static void test_signer_not_after(void **state)
{
	(void)state;
	int64_t now = (int64_t)time(NULL);
	char reason[160];
	for (size_t i = 0; i < N_CAS; i++) {
		struct rca *ca = &ctx->cas[i];
		int64_t saved = ca->not_after;
		/* Read from the certificate: the test certificates outlive any validity. */
		assert_true(saved > now + 10 * 86400);
		struct ocsp_single s[NS];
		make_singles(ca, s);
		ca->not_after = now + 100;
		assert_int_equal(ocsp_next_update(ca, now), now + 100);
		build_and_check(ca, s, NS);
		assert_true(ocsp_signers_healthy(ctx, reason, sizeof(reason)));
		ca->not_after = now;
		uint8_t *der = NULL;
		size_t len = 0;
		assert_true(ocsp_signer_expired(ca, now));
		assert_int_equal(ocsp_build(&w, ca, s, NS, NULL, now, &der, &len), -EKEYEXPIRED);
		assert_null(der);
		assert_false(ocsp_signers_healthy(ctx, reason, sizeof(reason)));
		assert_non_null(strstr(reason, "expired"));
		assert_non_null(strstr(reason, ca->name));
		ca->not_after = saved;
		assert_true(ocsp_signers_healthy(ctx, reason, sizeof(reason)));
		free_singles(s, NS);
	}
}

static void test_precomputed(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_CAS; i++) {
		const struct rca *ca = &ctx->cas[i];
		int kid = EVP_PKEY_get_base_id(ca->key);
		assert_int_equal(ca->sign_mode,
		                 kid == EVP_PKEY_ED25519 ? SIGN_ONESHOT : SIGN_DIGEST);
		assert_int_equal(ca->delegated, cas[i].delegated);
		assert_int_equal(ca->certs_der != NULL, cas[i].delegated);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_precomputed),
	        cmocka_unit_test(test_signer_not_after),
	        cmocka_unit_test(test_all_cas_all_statuses),
	        cmocka_unit_test(test_nonce_copied_as_received),
	        cmocka_unit_test(test_many_singles),
	        cmocka_unit_test(test_odd_hash_parameters),
	        cmocka_unit_test(test_refresh_point),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
