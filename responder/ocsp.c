/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCSP: request -> CertIDs -> store -> signed BasicOCSPResponse, with the
 * shared cache of signed single answers (cache.c). An answer is its DER and its
 * validity (producedAt, thisUpdate, nextUpdate); what HTTP makes of them is
 * routes.c's.
 *
 * Incoming DER is parsed by OpenSSL (d2i_OCSP_REQUEST). Answers are written
 * by hand with the bounded DER writer of common/der.c (RFC 6960 §4.2.1),
 * from pieces ctx.c precomputed per CA, and signed with a context each worker
 * set up once per CA: a fresh signature then costs little more than the
 * signature itself (OCSP_basic_sign set up a signing context, checked the
 * key against the certificate and encoded the response twice, per answer).
 * tests/unit/test_responder_encode.c checks the answers against OpenSSL's
 * own OCSP_* builder, byte for byte where the signature is deterministic.
 *
 * A request with one CertID and no nonce is answered from the cache
 * (cache.c) when it can be: the cache is keyed by (CA id, serial) so a change
 * of the store can drop every answer it touches, and the variants under one
 * key are told apart by the exact DER of the CertID, so the answer echoes the
 * CertID the client sent (hash algorithm and its parameters encoding
 * included).
 */
#include "responder/ocsp.h"
#include "responder/cache.h"
#include "responder/worker.h"
#include "common/der.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define NONCE_MAX 128 /* RFC 9654 */
#define CERTID_MAX 512
#define REQ_CACHE_MAX 1024 /* requests indexed by their bytes up to this size */

/* ---- Static pieces ----------------------------------------------------------- */

static uint8_t *err_der[7];
static size_t err_len[7];

/* responseBytes' responseType: id-pkix-ocsp-basic */
static const uint8_t oid_basic[] = {DER_OID, 9, 0x2b, 6, 1, 5, 5, 7, 48, 1, 1};
/* The extension id-pkix-ocsp-extended-revoke (RFC 6960 §4.4.8): NULL, not critical. */
static const uint8_t ext_revoke_der[] = {
        DER_SEQUENCE,     15, DER_OID,  9, 0x2b, 6, 1, 5, 5, 7, 48, 1, 9,
        DER_OCTET_STRING, 2,  DER_NULL, 0};
static const uint8_t oid_nonce[] = {DER_OID, 9, 0x2b, 6, 1, 5, 5, 7, 48, 1, 2};
static const uint8_t oid_invalidity[] = {DER_OID, 3, 0x55, 0x1d, 0x18};

int ocsp_init(void)
{
	for (int s = 1; s <= 6; s++) {
		if (s == 4)
			continue; /* unused status value */
		OCSP_RESPONSE *r = OCSP_response_create(s, NULL);
		unsigned char *p = NULL;
		int n = r ? i2d_OCSP_RESPONSE(r, &p) : -1;
		OCSP_RESPONSE_free(r);
		if (n <= 0)
			return -ENOMEM;
		err_der[s] = p;
		err_len[s] = (size_t)n;
	}
	return 0;
}

const uint8_t *ocsp_error_der(int status, size_t *len)
{
	*len = err_len[status];
	return err_der[status];
}

void answer_release(struct answer *a)
{
	if (a->owned)
		OPENSSL_free(a->der);
	a->der = NULL;
	a->owned = false;
}

static void set_error(struct worker *w, struct answer *out, int status, enum ocsp_result r)
{
	out->der = err_der[status];
	out->len = err_len[status];
	out->owned = false;
	out->cacheable = false;
	m_add(&w->m.ocsp[r], 1);
}

/* ---- Request analysis -------------------------------------------------------- */

/* check_nonce returns 1 with a valid nonce, 0 without one, -1 when it is
 * malformed (empty or longer than 128 octets, RFC 9654). */
static int check_nonce(OCSP_REQUEST *req)
{
	int idx = OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1);
	if (idx < 0)
		return 0;
	if (OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, idx) >= 0)
		return -1; /* twice */
	X509_EXTENSION *ext = OCSP_REQUEST_get_ext(req, idx);
	ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	const unsigned char *p = ASN1_STRING_get0_data(v);
	long vlen = ASN1_STRING_length(v);
	long n = vlen;
	ASN1_OCTET_STRING *inner = d2i_ASN1_OCTET_STRING(NULL, &p, vlen);
	if (inner && p == ASN1_STRING_get0_data(v) + vlen)
		n = ASN1_STRING_length(inner);
	ASN1_OCTET_STRING_free(inner);
	ERR_clear_error();
	return (n >= 1 && n <= NONCE_MAX) ? 1 : -1;
}

/* unknown_critical tells whether the request or one of its n Requests has a
 * critical extension other than the nonce: RFC 6960 §4.4 lets a responder
 * ignore only the unrecognised extensions that are not critical. */
static bool unknown_critical(OCSP_REQUEST *req, int n)
{
	for (int i = 0; i < OCSP_REQUEST_get_ext_count(req); i++) {
		X509_EXTENSION *e = OCSP_REQUEST_get_ext(req, i);
		if (X509_EXTENSION_get_critical(e) &&
		    OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_id_pkix_OCSP_Nonce)
			return true;
	}
	for (int i = 0; i < n; i++) {
		OCSP_ONEREQ *one = OCSP_request_onereq_get0(req, i);
		for (int j = 0; j < OCSP_ONEREQ_get_ext_count(one); j++)
			if (X509_EXTENSION_get_critical(OCSP_ONEREQ_get_ext(one, j)))
				return true;
	}
	return false;
}

static int rh_of(int nid)
{
	switch (nid) {
	case NID_sha1:
		return RH_SHA1;
	case NID_sha256:
		return RH_SHA256;
	case NID_sha384:
		return RH_SHA384;
	case NID_sha512:
		return RH_SHA512;
	default:
		return -1;
	}
}

/* match_ca returns the index of the CA |cid| names, or -1. */
static int match_ca(const struct rctx *ctx, OCSP_CERTID *cid, ASN1_INTEGER **serial)
{
	ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
	ASN1_OBJECT *alg = NULL;
	if (!OCSP_id_get0_info(&nh, &alg, &kh, serial, cid) || !nh || !kh || !alg)
		return -1;
	int h = rh_of(OBJ_obj2nid(alg));
	if (h < 0)
		return -1;
	for (int i = 0; i < ctx->n_cas; i++) {
		const struct rca *ca = &ctx->cas[i];
		if ((unsigned)ASN1_STRING_length(nh) == ca->hlen[h] &&
		    (unsigned)ASN1_STRING_length(kh) == ca->hlen[h] &&
		    memcmp(ASN1_STRING_get0_data(nh), ca->name_hash[h], ca->hlen[h]) == 0 &&
		    memcmp(ASN1_STRING_get0_data(kh), ca->key_hash[h], ca->hlen[h]) == 0)
			return i;
	}
	return -1;
}

/* serial_of converts a CertID serial; false when it cannot be in the store. */
static bool serial_of(const ASN1_INTEGER *ai, struct vg_serial *s)
{
	if (!ai || ASN1_STRING_type(ai) == V_ASN1_NEG_INTEGER)
		return false;
	/* OpenSSL keeps the magnitude; the store wants DER INTEGER content,
	 * where a set top bit needs a leading zero octet to stay positive. */
	uint8_t buf[VG_SERIAL_MAX + 2];
	const uint8_t *b = ASN1_STRING_get0_data(ai);
	size_t len = (size_t)ASN1_STRING_length(ai);
	if (len > VG_SERIAL_MAX + 1)
		return false;
	buf[0] = 0;
	if (len)
		memcpy(buf + 1, b, len);
	return vg_serial_from_bytes(buf, len + 1, s) == 0;
}

/* lookup reads the status of |serial| (NULL: not a possible serial) of |ca|. */
static int lookup(struct worker *w, const struct rca *ca, const struct vg_serial *serial,
                  struct ocsp_status *st)
{
	memset(st, 0, sizeof(*st));
	st->cr = CR_UNKNOWN;
	st->reason = OCSP_REVOKED_STATUS_NOSTATUS;
	if (!w->txn_ok)
		return -EAGAIN;
	int rc = -ENOENT;
	if (serial) {
		struct vg_cert cert;
		rc = vg_store_get(w->txn, ca->id, serial, &cert);
		if (rc == 0) {
			if (cert.status == VG_STATUS_REVOKED) {
				st->cr = CR_REVOKED;
				/* unspecified (0) is left out, as crlgen leaves it out of
				 * CRLs (RFC 5280 §5.3.1: "SHOULD be absent instead";
				 * Baseline Requirements §7.2.2, §7.3.2). */
				st->reason = cert.reason <= OCSP_REVOKED_STATUS_UNSPECIFIED
				                     ? OCSP_REVOKED_STATUS_NOSTATUS
				                     : cert.reason;
				st->revoked_at = cert.revoked_at;
				st->has_invalidity = cert.flags & VG_CERT_HAS_INVALIDITY;
				st->invalidity = cert.invalidity_date;
				st->ext_revoke = cert.flags & VG_CERT_NOT_ISSUED;
			} else {
				st->cr = CR_GOOD;
			}
			return 0;
		}
		if (rc != -ENOENT)
			return rc;
	}
	/* Absent: never good. Revoked only when the CA is frozen and so configured,
	 * and its store complete (never pruned, vg_store_prune). */
	if (ca->not_issued == VG_NOT_ISSUED_REVOKED) {
		struct vg_ca_state cs;
		rc = vg_store_ca_get(w->txn, ca->name, &cs);
		if (rc < 0)
			return rc;
		/* A CA whose expired certificates were pruned is no longer
		 * complete in the store: an absent serial may have been issued,
		 * and must not be called revoked (unknown instead). */
		if (cs.frozen && !cs.pruned) {
			st->cr = CR_REVOKED;
			st->reason = OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
			st->revoked_at = 0;
			st->ext_revoke = true;
		}
	}
	return 0;
}

/* ---- Building ----------------------------------------------------------------- */

struct item {
	int ca; /* index, -1 for a foreign issuer */
	bool serial_ok;
	struct vg_serial serial;
};

/* SINGLE_MAX bounds what add_single writes besides the CertID. */
#define SINGLE_MAX 160

/* certid_reparses tells whether OpenSSL reads back the CertID it wrote,
 * |der|. It does unless the hash algorithm has parameters other than NULL
 * that it re-encodes oddly (a request's empty constructed [UNIVERSAL 0]
 * comes back as an end-of-contents octet pair, which d2i refuses): those
 * are parsed to make sure, as OCSP_basic_add1_status's OCSP_CERTID_dup did. */
static bool certid_reparses(const uint8_t *der, size_t len)
{
	/* The usual CertID needs no parse: SEQUENCE { SEQUENCE { OID [NULL] } ... }
	 * (common/der.h's reader). */
	struct vg_cbs c, cid, alg, oid, null;
	vg_cbs_init(&c, der, len);
	if (vg_cbs_get_asn1(&c, &cid, DER_SEQUENCE) && vg_cbs_len(&c) == 0 &&
	    vg_cbs_get_asn1(&cid, &alg, DER_SEQUENCE) && vg_cbs_get_asn1(&alg, &oid, DER_OID) &&
	    (vg_cbs_len(&alg) == 0 || (vg_cbs_get_asn1(&alg, &null, DER_NULL) &&
	                               vg_cbs_len(&null) == 0 && vg_cbs_len(&alg) == 0)))
		return true;
	const unsigned char *q = der;
	OCSP_CERTID *id = d2i_OCSP_CERTID(NULL, &q, (long)len);
	OCSP_CERTID_free(id);
	return id && q == der + len;
}

/* add_single returns 0, -EBADMSG for a CertID that would not parse back
 * (the client's mistake) or -ENOMEM. */
static int add_single(struct der_buf *b, const struct ocsp_single *s, size_t cid_len,
                      int64_t thisupd, int64_t nextupd)
{
	der_open(b, DER_SEQUENCE);
	/* The CertID as the client sent it (as OpenSSL parsed it: hash
	 * algorithm parameters, NULL or absent, included), so it matches. */
	if (s->cid_der) {
		if (!certid_reparses(s->cid_der, s->cid_len))
			return -EBADMSG;
		der_add_bytes(b, s->cid_der, s->cid_len);
	} else {
		unsigned char *q = der_reserve(b, cid_len), *at = q;
		if (!q || i2d_OCSP_CERTID(s->cid, &q) != (int)cid_len)
			return -ENOMEM;
		if (!certid_reparses(at, cid_len))
			return -EBADMSG;
	}
	switch (s->st.cr) {
	case CR_GOOD:
		der_add_tlv(b, DER_CTX(0), NULL, 0); /* good [0] IMPLICIT NULL */
		break;
	case CR_REVOKED:
		der_open(b, DER_CTX_CONS(1)); /* revoked [1] IMPLICIT RevokedInfo */
		der_add_time(b, s->st.revoked_at, true);
		if (s->st.reason != OCSP_REVOKED_STATUS_NOSTATUS) {
			der_open(b, DER_CTX_CONS(0));
			der_add_uint(b, DER_ENUMERATED, (uint64_t)s->st.reason);
			der_close(b);
		}
		der_close(b);
		break;
	default:
		der_add_tlv(b, DER_CTX(2), NULL, 0); /* unknown [2] IMPLICIT NULL */
		break;
	}
	der_add_time(b, thisupd, true);
	der_open(b, DER_CTX_CONS(0));
	der_add_time(b, nextupd, true);
	der_close(b);
	if (s->st.cr == CR_REVOKED && s->st.has_invalidity) {
		der_open(b, DER_CTX_CONS(1)); /* singleExtensions */
		der_open(b, DER_SEQUENCE);
		der_open(b, DER_SEQUENCE);
		der_add_bytes(b, oid_invalidity, sizeof(oid_invalidity));
		der_open(b, DER_OCTET_STRING);
		der_add_time(b, s->st.invalidity, true);
		der_close(b);
		der_close(b);
		der_close(b);
		der_close(b);
	}
	return der_close(b) ? 0 : -ENOMEM;
}

int ocsp_build(struct worker *w, struct rca *ca, const struct ocsp_single *s, int n,
               const X509_EXTENSION *nonce, int64_t now, uint8_t **der, size_t *len)
{
	/* Past its notAfter a signature fails every client's check. */
	if (ocsp_signer_expired(ca, now))
		return -EKEYEXPIRED;
	int64_t next_update = ocsp_next_update(ca, now);
	/* Room: the outer structure, each single, the extensions, the
	 * signature and the certificates; der_buf checks every write. */
	size_t cap = 128 + sizeof(ca->respid_der) + ca->sigalg_len + ca->sig_max + ca->certs_len;
	bool ext = false;
	for (int i = 0; i < n; i++) {
		int l = s[i].cid_der ? (int)s[i].cid_len : i2d_OCSP_CERTID(s[i].cid, NULL);
		if (l <= 0)
			return -ENOMEM;
		cap += (size_t)l + SINGLE_MAX;
		ext |= s[i].st.ext_revoke;
	}
	const ASN1_OCTET_STRING *nv = NULL;
	if (nonce) {
		nv = X509_EXTENSION_get_data((X509_EXTENSION *)nonce);
		cap += 32 + (size_t)ASN1_STRING_length(nv);
	}
	cap += sizeof(ext_revoke_der) + 16;
	uint8_t *mem = OPENSSL_malloc(cap);
	if (!mem)
		return -ENOMEM;
	struct der_buf b;
	der_init(&b, mem, cap);
	der_open(&b, DER_SEQUENCE);               /* OCSPResponse */
	der_add_tlv(&b, DER_ENUMERATED, "\0", 1); /* successful */
	der_open(&b, DER_CTX_CONS(0));            /* responseBytes */
	der_open(&b, DER_SEQUENCE);
	der_add_bytes(&b, oid_basic, sizeof(oid_basic));
	der_open(&b, DER_OCTET_STRING);
	der_open(&b, DER_SEQUENCE); /* BasicOCSPResponse */
	size_t tbs_at = b.len;
	der_open(&b, DER_SEQUENCE); /* tbsResponseData; version v1 is the default */
	der_add_bytes(&b, ca->respid_der, sizeof(ca->respid_der));
	der_add_time(&b, now, true); /* producedAt */
	der_open(&b, DER_SEQUENCE);
	int rc = -ENOMEM;
	for (int i = 0; i < n; i++) {
		size_t l = s[i].cid_der ? s[i].cid_len : (size_t)i2d_OCSP_CERTID(s[i].cid, NULL);
		if ((rc = add_single(&b, &s[i], l, now, next_update)) < 0)
			goto fail;
	}
	rc = -ENOMEM;
	der_close(&b);
	if (ext || nonce) {
		/* As OCSP_basic_sign had them: extended-revoke, then the nonce. */
		der_open(&b, DER_CTX_CONS(1));
		der_open(&b, DER_SEQUENCE);
		if (ext)
			der_add_bytes(&b, ext_revoke_der, sizeof(ext_revoke_der));
		if (nonce) {
			/* The request's extension, as OCSP_copy_nonce copies it. */
			der_open(&b, DER_SEQUENCE);
			der_add_bytes(&b, oid_nonce, sizeof(oid_nonce));
			if (X509_EXTENSION_get_critical(nonce))
				der_add_tlv(&b, DER_BOOLEAN, "\xff", 1);
			der_add_tlv(&b, DER_OCTET_STRING, ASN1_STRING_get0_data(nv),
			            (size_t)ASN1_STRING_length(nv));
			der_close(&b);
		}
		der_close(&b);
		der_close(&b);
	}
	if (!der_close(&b)) /* tbsResponseData */
		goto fail;
	const uint8_t *tbs = mem + tbs_at;
	size_t tbs_len = b.len - tbs_at;
	der_add_bytes(&b, ca->sigalg_der, ca->sigalg_len);
	der_open(&b, DER_BIT_STRING);
	der_add_bytes(&b, "\0", 1); /* no unused bits */
	uint8_t *sig = der_reserve(&b, ca->sig_max);
	if (!sig)
		goto fail;
	size_t siglen = ca->sig_max;
	uint64_t t0 = uv_hrtime();
	bool ok = sign_tbs(w, ca, tbs, tbs_len, sig, &siglen);
	m_add(&w->m.sign_ns, uv_hrtime() - t0);
	m_add(&w->m.signs, 1);
	if (!ok) {
		m_add(&w->m.sign_failures, 1);
		sign_failed(ca);
		char e[256];
		if (worker_log_sign_ok(w, ca->slot))
			log_err("event=sign_failed ca=%s error=\"%s\"", ca->name,
			        (ERR_error_string_n(ERR_peek_error(), e, sizeof(e)), e));
		ERR_clear_error();
		OPENSSL_free(mem);
		/* The signer failed, not the request: a token gone or its
		 * session lost (pkcs11: keys). The client may try later. */
		return -EAGAIN;
	}
	sign_succeeded(ca, "answer");
	der_unreserve(&b, ca->sig_max - siglen);
	der_close(&b);
	if (ca->certs_der)
		der_add_bytes(&b, ca->certs_der, ca->certs_len);
	for (int i = 0; i < 5; i++)
		der_close(&b);
	if (!der_ok(&b))
		goto fail;
	*der = mem;
	*len = b.len;
	return 0;
fail:
	/* A CertID OpenSSL cannot write back (-EBADMSG), or a bug in the size
	 * bound. */
	OPENSSL_free(mem);
	ERR_clear_error();
	return rc;
}

int64_t ocsp_refresh_at(int64_t this_update, int64_t validity, int percent)
{
	int64_t at = this_update + validity * percent / 100;
	int64_t limit;
	if (validity >= 16 * 3600) {
		/* At least 8 hours before nextUpdate, at most 4 days after thisUpdate. */
		limit = this_update + validity - 8 * 3600;
		if (limit > this_update + 4 * 86400)
			limit = this_update + 4 * 86400;
	} else {
		/* Before half the validity is left. */
		limit = this_update + validity / 2;
	}
	return at < limit ? at : limit;
}

static void answer_from_entry(struct worker *w, const struct centry *e, struct answer *out)
{
	m_add(&w->m.cache_hit, 1);
	m_add(&w->m.ocsp[OR_SUCCESSFUL], 1);
	m_add(&w->m.certs[e->slot][e->cr], 1);
	out->der = (uint8_t *)e->data + e->certid_len;
	out->len = e->der_len;
	out->owned = false;
	out->cacheable = true;
	out->produced_at = e->produced_at;
	out->this_update = e->this_update;
	out->next_update = e->next_update;
	out->note = e->note;
	out->tag_ca = -1;
	for (int i = 0; i < w->ctx->n_cas; i++)
		if (w->ctx->cas[i].id == e->ca_id)
			out->tag_ca = i;
	out->n_tag_serials = 1;
	out->tag_serials[0] = e->serial;
}

void ocsp_answer(struct worker *w, const uint8_t *req_der, size_t len, struct answer *out)
{
	memset(out, 0, sizeof(*out));
	out->tag_ca = -1;
	struct rctx *ctx = w->ctx;
	struct item stack_items[8], *items = stack_items;
	struct ocsp_single stack_singles[8], *singles = stack_singles;
	OCSP_REQUEST *req = NULL;
	const unsigned char *p = req_der;
	int64_t now = (int64_t)time(NULL);

	/* Before the cache, which may still hold an answer a commit made stale. */
	worker_catch_up(w);
	if (len > 0 && len <= REQ_CACHE_MAX) {
		const struct centry *e = cache_get_raw(req_der, len, now);
		if (e) {
			answer_from_entry(w, e, out);
			return;
		}
	}
	if (len > 0 && len < 0x7fffffff)
		req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
	if (!req || p != req_der + len) {
		set_error(w, out, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, OR_MALFORMED);
		goto done;
	}
	int n = OCSP_request_onereq_count(req);
	int nonce = check_nonce(req);
	if (n <= 0 || n > ctx->conf.max_certids || nonce < 0 || unknown_critical(req, n)) {
		set_error(w, out, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, OR_MALFORMED);
		goto done;
	}
	if (n > (int)(sizeof(stack_items) / sizeof(stack_items[0]))) {
		items = calloc((size_t)n, sizeof(*items));
		singles = calloc((size_t)n, sizeof(*singles));
		if (!items || !singles) {
			free(items);
			free(singles);
			items = stack_items;
			singles = stack_singles;
			set_error(w, out, OCSP_RESPONSE_STATUS_INTERNALERROR, OR_INTERNAL);
			goto done;
		}
	}
	int signer = -1;
	for (int i = 0; i < n; i++) {
		ASN1_INTEGER *ai = NULL;
		singles[i].cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
		singles[i].cid_der = NULL;
		items[i].ca = match_ca(ctx, singles[i].cid, &ai);
		items[i].serial_ok = items[i].ca >= 0 && serial_of(ai, &items[i].serial);
		if (signer < 0 && items[i].ca >= 0)
			signer = items[i].ca;
	}
	if (signer < 0) {
		set_error(w, out, OCSP_RESPONSE_STATUS_UNAUTHORIZED, OR_UNAUTHORIZED);
		goto done;
	}
	struct rca *ca = &ctx->cas[signer];
	uint8_t certid[CERTID_MAX];
	size_t certid_len = 0;
	bool use_cache = n == 1 && nonce == 0 && items[0].serial_ok;
	if (use_cache) {
		int l = i2d_OCSP_CERTID(singles[0].cid, NULL);
		if (l > 0 && l <= CERTID_MAX) {
			unsigned char *q = certid;
			certid_len = (size_t)i2d_OCSP_CERTID(singles[0].cid, &q);
			singles[0].cid_der = certid;
			singles[0].cid_len = certid_len;
		} else {
			use_cache = false;
		}
		const struct centry *e =
		        use_cache ? cache_get(ca->id, &items[0].serial, certid, certid_len, now)
		                  : NULL;
		if (e) {
			answer_from_entry(w, e, out);
			goto done;
		}
		m_add(&w->m.cache_miss, 1);
	}
	for (int i = 0; i < n; i++) {
		struct item *it = &items[i];
		struct ocsp_status *st = &singles[i].st;
		if (it->ca != signer) {
			/* A foreign issuer next to ours: "unknown" (RFC 6960 §2.2). */
			memset(st, 0, sizeof(*st));
			st->cr = CR_UNKNOWN;
			st->reason = OCSP_REVOKED_STATUS_NOSTATUS;
			continue;
		}
		int rc = lookup(w, ca, it->serial_ok ? &it->serial : NULL, st);
		if (rc < 0) {
			if (worker_log_ok(w, LK_STORE_READ_FAILED))
				log_err("event=store_read_failed ca=%s error=%d", ca->name, rc);
			set_error(w, out, OCSP_RESPONSE_STATUS_TRYLATER, OR_TRYLATER);
			goto done;
		}
	}
	uint8_t *der;
	size_t dlen;
	X509_EXTENSION *next = NULL;
	if (nonce)
		next = OCSP_REQUEST_get_ext(
		        req, OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1));
	int brc = ocsp_build(w, ca, singles, n, next, now, &der, &dlen);
	if (brc == -EAGAIN && use_cache) {
		/* The signer failed: an answer signed before, past its refresh
		 * point but still valid, beats tryLater. The store's change log
		 * drops cached answers whose status changed; the status just read
		 * must still agree. */
		const struct centry *e =
		        cache_get_stale(ca->id, &items[0].serial, certid, certid_len, now);
		if (e && e->cr == (uint8_t)singles[0].st.cr) {
			m_add(&w->m.stale_served, 1);
			answer_from_entry(w, e, out);
			goto done;
		}
	}
	if (brc < 0) {
		/* A failed signer, or an expired one (logged once by
		 * ocsp_signer_expiry_check, /healthz 503): try later, RFC 6960 §2.3. */
		if (brc == -EAGAIN || brc == -EKEYEXPIRED)
			set_error(w, out, OCSP_RESPONSE_STATUS_TRYLATER, OR_TRYLATER);
		else if (brc == -EBADMSG)
			set_error(w, out, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, OR_MALFORMED);
		else
			set_error(w, out, OCSP_RESPONSE_STATUS_INTERNALERROR, OR_INTERNAL);
		goto done;
	}
	m_add(&w->m.ocsp[OR_SUCCESSFUL], 1);
	for (int i = 0; i < n; i++)
		if (items[i].ca >= 0)
			m_add(&w->m.certs[ctx->cas[items[i].ca].slot][singles[i].st.cr], 1);
	int64_t validity = ca->validity > 10 * 86400 - 1 ? 10 * 86400 - 1 : ca->validity;
	out->der = der;
	out->len = dlen;
	out->owned = true;
	out->cacheable = nonce == 0;
	out->tag_ca = signer;
	for (int i = 0; i < n; i++) {
		if (items[i].ca != signer || !items[i].serial_ok)
			continue;
		if (out->n_tag_serials == ANSWER_TAG_SERIALS) {
			out->n_tag_serials = -1;
			break;
		}
		out->tag_serials[out->n_tag_serials++] = items[i].serial;
	}
	/* As ocsp_build wrote them: producedAt and thisUpdate now, nextUpdate
	 * capped at the signer's notAfter (and so are Expires, max-age and the
	 * cache's keeping of it). */
	out->produced_at = now;
	out->this_update = now;
	out->next_update = ocsp_next_update(ca, now);
	if (use_cache) {
		struct centry t;
		memset(&t, 0, sizeof(t));
		t.ca_id = ca->id;
		t.serial = items[0].serial;
		t.cr = (uint8_t)singles[0].st.cr;
		t.slot = ca->slot;
		t.produced_at = out->produced_at;
		t.this_update = out->this_update;
		t.next_update = out->next_update;
		t.refresh_at = ocsp_refresh_at(now, validity, w->ctx->conf.refresh_percent);
		/* A signer about to expire: a new signature would bring no later
		 * nextUpdate, so this one serves until its own. */
		if (t.refresh_at > t.next_update)
			t.refresh_at = t.next_update;
		t.certid_len = (uint32_t)certid_len;
		t.der_len = (uint32_t)dlen;
		t.req_len = len <= REQ_CACHE_MAX ? (uint32_t)len : 0;
		const struct centry *e = cache_put(w->counter, &t, certid, der, req_der);
		out->note = e ? e->note : NULL;
	}
done:
	if (items != stack_items) {
		free(items);
		free(singles);
	}
	OCSP_REQUEST_free(req);
	ERR_clear_error();
}
