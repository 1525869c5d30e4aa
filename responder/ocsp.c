/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCSP: request -> CertIDs -> store -> signed BasicOCSPResponse, with a
 * per-worker cache of signed single answers.
 *
 * Incoming DER is parsed by OpenSSL (d2i_OCSP_REQUEST) and answers are built
 * and signed with the OCSP_* API. A request with one CertID and no nonce is
 * answered from the cache (cache.c) when it can be: the cache is keyed by
 * (CA id, serial) so a change of the store can drop every answer it touches,
 * and the variants under one key are told apart by the exact DER of the
 * CertID, so the answer echoes the CertID the client sent (hash algorithm and
 * its parameters encoding included).
 */
#include "responder/resp.h"
#include "store/common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define NONCE_MAX 128 /* RFC 9654 */
#define CERTID_MAX 512
#define REQ_CACHE_MAX 1024 /* requests indexed by their bytes up to this size */

/* ---- Static pieces ----------------------------------------------------------- */

static uint8_t *err_der[7];
static size_t err_len[7];
static X509_EXTENSION *ext_revoke; /* RFC 6960 §4.4.8, id-pkix-ocsp-extended-revoke */

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
	ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.48.1.9", 1);
	ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
	static const unsigned char null_der[] = {0x05, 0x00};
	if (!obj || !val || !ASN1_OCTET_STRING_set(val, null_der, sizeof(null_der)) ||
	    !(ext_revoke = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, val))) {
		ASN1_OBJECT_free(obj);
		ASN1_OCTET_STRING_free(val);
		return -ENOMEM;
	}
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(val);
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

/* ---- Signer health ----------------------------------------------------------- */

/* Signatures failed in a row per CA (by its stable metrics slot), shared by
 * the workers; reset by the next success. /healthz reads them. */
static _Atomic uint32_t sign_fails[METRIC_SLOTS];

static void signer_failed(const struct rca *ca)
{
	uint32_t n = atomic_fetch_add_explicit(&sign_fails[ca->slot], 1, memory_order_relaxed) + 1;
	if (n == SIGNER_UNHEALTHY_AFTER)
		log_err("event=signer_unhealthy ca=%s failures=%u healthz=503", ca->name, n);
}

static void signer_succeeded(const struct rca *ca)
{
	/* Read first: the common case writes nothing shared. */
	if (atomic_load_explicit(&sign_fails[ca->slot], memory_order_relaxed) == 0)
		return;
	uint32_t n = atomic_exchange_explicit(&sign_fails[ca->slot], 0, memory_order_relaxed);
	if (n >= SIGNER_UNHEALTHY_AFTER)
		log_info("event=signer_recovered ca=%s failures=%u", ca->name, n);
}

bool ocsp_signers_healthy(const struct rctx *ctx, char *reason, size_t len)
{
	for (int i = 0; i < ctx->n_cas; i++) {
		const struct rca *ca = &ctx->cas[i];
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

struct status {
	enum cert_result cr;
	int reason;
	int64_t revoked_at;
	bool has_invalidity;
	int64_t invalidity;
	bool ext_revoke;
};

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
                  struct status *st)
{
	memset(st, 0, sizeof(*st));
	st->cr = CR_UNKNOWN;
	st->reason = OCSP_REVOKED_STATUS_NOSTATUS;
	if (!w->txn_ok)
		return -EAGAIN;
	int rc = -ENOENT;
	if (serial) {
		struct vg_cert cert;
		rc = vg_get(w->txn, ca->id, serial, &cert);
		if (rc == 0) {
			if (cert.status == VG_STATUS_REVOKED) {
				st->cr = CR_REVOKED;
				st->reason =
				    cert.reason < 0 ? OCSP_REVOKED_STATUS_NOSTATUS : cert.reason;
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
	/* Absent: never good. Revoked only when the CA is frozen and so configured. */
	if (ca->not_issued == VG_NOT_ISSUED_REVOKED) {
		struct vg_ca_state cs;
		rc = vg_ca_get(w->txn, ca->name, &cs);
		if (rc < 0)
			return rc;
		if (cs.frozen) {
			st->cr = CR_REVOKED;
			st->reason = OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
			st->revoked_at = 0;
			st->ext_revoke = true;
		}
	}
	return 0;
}

/* ---- Building and signing ------------------------------------------------------- */

struct item {
	OCSP_CERTID *cid;
	int ca; /* index, -1 for a foreign issuer */
	bool serial_ok;
	struct vg_serial serial;
	struct status st;
};

static int add_single(OCSP_BASICRESP *bs, const struct item *it, ASN1_GENERALIZEDTIME *thisupd,
                      ASN1_GENERALIZEDTIME *nextupd)
{
	static const int vstatus[CR_N] = {V_OCSP_CERTSTATUS_GOOD, V_OCSP_CERTSTATUS_REVOKED,
	                                  V_OCSP_CERTSTATUS_UNKNOWN};
	ASN1_GENERALIZEDTIME *rt = NULL;
	int rc = -ENOMEM;
	if (it->st.cr == CR_REVOKED &&
	    !(rt = ASN1_GENERALIZEDTIME_set(NULL, (time_t)it->st.revoked_at)))
		return -ENOMEM;
	OCSP_SINGLERESP *single = OCSP_basic_add1_status(
	    bs, it->cid, vstatus[it->st.cr], it->st.cr == CR_REVOKED ? it->st.reason : 0, rt,
	    thisupd, nextupd);
	if (!single)
		goto out;
	if (it->st.cr == CR_REVOKED && it->st.has_invalidity) {
		ASN1_GENERALIZEDTIME *inv =
		    ASN1_GENERALIZEDTIME_set(NULL, (time_t)it->st.invalidity);
		int ok =
		    inv && OCSP_SINGLERESP_add1_ext_i2d(single, NID_invalidity_date, inv, 0, 0);
		ASN1_GENERALIZEDTIME_free(inv);
		if (!ok)
			goto out;
	}
	rc = 0;
out:
	ASN1_GENERALIZEDTIME_free(rt);
	return rc;
}

/* build signs a response for |items| with |ca|'s signer. On success the DER
 * is in |*der| (OPENSSL_malloc'd); -EAGAIN when the signer failed. */
static int build(struct worker *w, const struct rca *ca, struct item *items, int n,
                 OCSP_REQUEST *nonce_req, int64_t now, uint8_t **der, size_t *len)
{
	int rc = -ENOMEM;
	bool ext = false;
	int64_t validity = ca->validity;
	/* The inclusive validity interval may not exceed ten days (BR 4.9.10). */
	if (validity > 10 * 86400 - 1)
		validity = 10 * 86400 - 1;
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	OCSP_RESPONSE *resp = NULL;
	ASN1_GENERALIZEDTIME *thisupd = ASN1_GENERALIZEDTIME_set(NULL, (time_t)now);
	ASN1_GENERALIZEDTIME *nextupd = ASN1_GENERALIZEDTIME_set(NULL, (time_t)(now + validity));
	if (!bs || !thisupd || !nextupd)
		goto out;
	for (int i = 0; i < n; i++) {
		if (add_single(bs, &items[i], thisupd, nextupd) < 0)
			goto out;
		ext |= items[i].st.ext_revoke;
	}
	if (ext && !OCSP_BASICRESP_add_ext(bs, ext_revoke, -1))
		goto out;
	if (nonce_req && OCSP_copy_nonce(bs, nonce_req) <= 0)
		goto out;
	unsigned long flags = OCSP_RESPID_KEY | (ca->delegated ? 0 : OCSP_NOCERTS);
	uint64_t t0 = uv_hrtime();
	int ok = OCSP_basic_sign(bs, ca->signer, ca->key, ca->md, ca->include, flags);
	m_add(&w->m.sign_ns, uv_hrtime() - t0);
	m_add(&w->m.signs, 1);
	if (!ok) {
		m_add(&w->m.sign_failures, 1);
		signer_failed(ca);
		char e[256];
		log_err("event=sign_failed ca=%s error=\"%s\"", ca->name,
		        (ERR_error_string_n(ERR_peek_error(), e, sizeof(e)), e));
		/* The signer failed, not the request: a token gone or its
		 * session lost (pkcs11: keys). The client may try later. */
		rc = -EAGAIN;
		goto out;
	}
	signer_succeeded(ca);
	resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
	unsigned char *p = NULL;
	int l = resp ? i2d_OCSP_RESPONSE(resp, &p) : -1;
	if (l <= 0)
		goto out;
	*der = p;
	*len = (size_t)l;
	rc = 0;
out:
	ERR_clear_error();
	ASN1_GENERALIZEDTIME_free(thisupd);
	ASN1_GENERALIZEDTIME_free(nextupd);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return rc;
}

static void make_etag(const uint8_t *der, size_t len, char *out)
{
	unsigned char md[32];
	unsigned n = 0;
	EVP_Digest(der, len, md, &n, EVP_sha256(), NULL);
	out[0] = '"';
	for (int i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[33] = '"';
	out[34] = '\0';
}

/* make_hdrs writes the GET cache headers that do not change until nextUpdate. */
static void make_hdrs(struct answer *a)
{
	char lm[40], ex[40];
	http_date((time_t)a->this_update, lm, sizeof(lm));
	http_date((time_t)a->next_update, ex, sizeof(ex));
	snprintf(a->hdrs, sizeof(a->hdrs), "Last-Modified: %s\r\nExpires: %s\r\nETag: %s\r\n", lm,
	         ex, a->etag);
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
	out->this_update = e->this_update;
	out->next_update = e->next_update;
	memcpy(out->etag, e->etag, sizeof(out->etag));
	memcpy(out->hdrs, e->hdrs, sizeof(out->hdrs));
}

void ocsp_answer(struct worker *w, const uint8_t *req_der, size_t len, struct answer *out)
{
	memset(out, 0, sizeof(*out));
	const struct rctx *ctx = w->ctx;
	struct item stack_items[8], *items = stack_items;
	OCSP_REQUEST *req = NULL;
	const unsigned char *p = req_der;
	int64_t now = (int64_t)time(NULL);

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
	if (n <= 0 || n > ctx->conf.max_certids || nonce < 0) {
		set_error(w, out, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, OR_MALFORMED);
		goto done;
	}
	if (n > (int)(sizeof(stack_items) / sizeof(stack_items[0]))) {
		items = calloc((size_t)n, sizeof(*items));
		if (!items) {
			items = stack_items;
			set_error(w, out, OCSP_RESPONSE_STATUS_INTERNALERROR, OR_INTERNAL);
			goto done;
		}
	}
	int signer = -1;
	for (int i = 0; i < n; i++) {
		ASN1_INTEGER *ai = NULL;
		items[i].cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
		items[i].ca = match_ca(ctx, items[i].cid, &ai);
		items[i].serial_ok = items[i].ca >= 0 && serial_of(ai, &items[i].serial);
		if (signer < 0 && items[i].ca >= 0)
			signer = items[i].ca;
	}
	if (signer < 0) {
		set_error(w, out, OCSP_RESPONSE_STATUS_UNAUTHORIZED, OR_UNAUTHORIZED);
		goto done;
	}
	const struct rca *ca = &ctx->cas[signer];
	uint8_t certid[CERTID_MAX];
	size_t certid_len = 0;
	bool use_cache = n == 1 && nonce == 0 && items[0].serial_ok;
	if (use_cache) {
		int l = i2d_OCSP_CERTID(items[0].cid, NULL);
		if (l > 0 && l <= CERTID_MAX) {
			unsigned char *q = certid;
			certid_len = (size_t)i2d_OCSP_CERTID(items[0].cid, &q);
		} else {
			use_cache = false;
		}
		const struct centry *e =
		    use_cache ? cache_get(ca->id, &items[0].serial, certid, certid_len, now) : NULL;
		if (e) {
			answer_from_entry(w, e, out);
			goto done;
		}
		m_add(&w->m.cache_miss, 1);
	}
	for (int i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (it->ca != signer) {
			/* A foreign issuer next to ours: "unknown" (RFC 6960 §2.2). */
			memset(&it->st, 0, sizeof(it->st));
			it->st.cr = CR_UNKNOWN;
			continue;
		}
		int rc = lookup(w, ca, it->serial_ok ? &it->serial : NULL, &it->st);
		if (rc < 0) {
			log_err("event=store_read_failed ca=%s error=%d", ca->name, rc);
			set_error(w, out, OCSP_RESPONSE_STATUS_TRYLATER, OR_TRYLATER);
			goto done;
		}
	}
	uint8_t *der;
	size_t dlen;
	int brc = build(w, ca, items, n, nonce ? req : NULL, now, &der, &dlen);
	if (brc == -EAGAIN && use_cache) {
		/* The signer failed: an answer signed before, past its refresh
		 * point but still valid, beats tryLater. The store's change log
		 * drops cached answers whose status changed; the status just read
		 * must still agree. */
		const struct centry *e =
		    cache_get_stale(ca->id, &items[0].serial, certid, certid_len, now);
		if (e && e->cr == (uint8_t)items[0].st.cr) {
			m_add(&w->m.stale_served, 1);
			answer_from_entry(w, e, out);
			goto done;
		}
	}
	if (brc < 0) {
		if (brc == -EAGAIN)
			set_error(w, out, OCSP_RESPONSE_STATUS_TRYLATER, OR_TRYLATER);
		else
			set_error(w, out, OCSP_RESPONSE_STATUS_INTERNALERROR, OR_INTERNAL);
		goto done;
	}
	m_add(&w->m.ocsp[OR_SUCCESSFUL], 1);
	for (int i = 0; i < n; i++)
		if (items[i].ca >= 0)
			m_add(&w->m.certs[ctx->cas[items[i].ca].slot][items[i].st.cr], 1);
	int64_t validity = ca->validity > 10 * 86400 - 1 ? 10 * 86400 - 1 : ca->validity;
	out->der = der;
	out->len = dlen;
	out->owned = true;
	out->cacheable = nonce == 0;
	out->this_update = now;
	out->next_update = now + validity;
	if (out->cacheable) {
		/* Only answers that may be cached need their HTTP validators. */
		make_etag(der, dlen, out->etag);
		make_hdrs(out);
	}
	if (use_cache) {
		struct centry t;
		memset(&t, 0, sizeof(t));
		t.ca_id = ca->id;
		t.serial = items[0].serial;
		t.cr = (uint8_t)items[0].st.cr;
		t.slot = ca->slot;
		t.this_update = out->this_update;
		t.next_update = out->next_update;
		t.refresh_at = now + validity * w->ctx->conf.refresh_percent / 100;
		memcpy(t.etag, out->etag, sizeof(t.etag));
		memcpy(t.hdrs, out->hdrs, sizeof(t.hdrs));
		t.certid_len = (uint32_t)certid_len;
		t.der_len = (uint32_t)dlen;
		t.req_len = len <= REQ_CACHE_MAX ? (uint32_t)len : 0;
		cache_put(w->counter, &t, certid, der, req_der);
	}
done:
	if (items != stack_items)
		free(items);
	OCSP_REQUEST_free(req);
	ERR_clear_error();
}
