/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming CRL encoder.
 *
 * DER puts every length before its content, and the two big elements of a
 * CRL, the revokedCertificates SEQUENCE and the TBSCertList around it, hold
 * every entry. Rather than building them in memory, crl_write walks the entry
 * source twice inside one store snapshot:
 *
 *   1. measure: add up each entry's length, computed from its fields
 *      (crl_entry_len; an entry is under 128 bytes; nothing is kept);
 *   2. write: emit the headers, whose lengths are now known, then encode
 *      each entry straight into a fixed output buffer that is flushed to the
 *      file and into the signature's digest as it fills.
 *
 * The first walk costs little more than reading the store, and memory is
 * bounded by the output buffer. The second walk must give the same entries
 * and byte count, or the CRL is refused.
 *
 * The outer CertificateList SEQUENCE also needs its length before the TBS,
 * but an ECDSA signature's length is only known after signing. The TBS is
 * therefore written at the offset that the header will take with the longest
 * possible signature; after signing, the header is written at offset 0 with
 * the exact length. When the shorter signature would change the header's size
 * (only when the total crosses 128, 256, 65536 or 2^24 bytes) the signature is
 * made again from a copy of the digest state until it fits.
 *
 * RSA and ECDSA sign incrementally (EVP_DigestSignUpdate per flushed chunk).
 * PureEdDSA (Ed25519, Ed448) hashes the message twice and OpenSSL only signs
 * it in one EVP_DigestSign call, so for those keys the TBS just written is
 * mapped read-only from the output file and signed from the mapping: no heap
 * copy, but the file-backed pages count in the process's RSS while mapped.
 */
#include "crlgen/crl.h"
#include "common/der.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/pki.h"
#include "common/signer.h"

#define OUT_BUF (256u * 1024u)
#define WRITEBACK_EVERY (8 << 20)

/* OIDs, content octets only. */
static const uint8_t oid_reason[] = {0x55, 0x1d, 0x15};          /* 2.5.29.21 cRLReason */
static const uint8_t oid_invalidity[] = {0x55, 0x1d, 0x18};      /* 2.5.29.24 invalidityDate */
static const uint8_t oid_crl_number[] = {0x55, 0x1d, 0x14};      /* 2.5.29.20 cRLNumber */
static const uint8_t oid_delta_indicator[] = {0x55, 0x1d, 0x1b}; /* 2.5.29.27 */
static const uint8_t oid_akid[] = {0x55, 0x1d, 0x23};            /* 2.5.29.35 */
static const uint8_t oid_freshest[] = {0x55, 0x1d, 0x2e};        /* 2.5.29.46 freshestCRL */
static const uint8_t oid_idp[] = {0x55, 0x1d, 0x1c}; /* 2.5.29.28 issuingDistributionPoint */

int crl_signer_init(struct crl_signer *s, EVP_PKEY *key, const char *digest, char *err,
                    size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->key = key;
	/* The policy and the AlgorithmIdentifier are the responder's too. */
	int rc = vg_signer_policy(key, digest, &s->md, err, errlen);
	if (rc < 0)
		return rc;
	s->oneshot = !s->md; /* EdDSA */
	s->sig_max = (size_t)EVP_PKEY_get_size(key);
	ssize_t n = vg_signer_algid(key, s->md, s->alg, sizeof(s->alg));
	if (n < 0) {
		char e[256];
		snprintf(err, errlen, "cannot set up signing: %s", vg_pki_ssl_error(e, sizeof(e)));
		return -EINVAL;
	}
	s->alg_len = (size_t)n;
	return 0;
}

int crl_signer_set_cert(struct crl_signer *s, X509 *cert)
{
	struct tm tm;
	if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm)) {
		ERR_clear_error();
		return -EINVAL;
	}
	s->not_after = (int64_t)timegm(&tm);
	return 0;
}

int crl_signer_check(struct crl_signer *s, const char *ca, const char *cert, int64_t now,
                     int64_t *next_update, char *err, size_t errlen)
{
	if (!s->not_after)
		return 0;
	char na[32];
	vg_time_format(s->not_after, na, sizeof(na));
	/* notAfter is the last second the certificate is valid (RFC 5280
	 * §4.1.2.5); a CRL made then would have no time before its nextUpdate. */
	if (now >= s->not_after) {
		if (!s->expired_said)
			log_err("event=crl_signer_expired ca=%s cert=%s not_after=%s "
			        "action=not_signed",
			        ca, cert, na);
		s->expired_said = true;
		snprintf(err, errlen,
		         "the CA certificate %s expired at %s: no CRL is signed with it", cert, na);
		return -EKEYEXPIRED;
	}
	int64_t left = s->not_after - now;
	if (left <= (int64_t)CRL_SIGNER_WARN_DAYS * 86400 &&
	    (!s->warned_at || now - s->warned_at >= 86400)) {
		s->warned_at = now;
		log_warn("event=crl_signer_expires_soon ca=%s cert=%s not_after=%s days_left=%lld "
		         "seconds_left=%lld",
		         ca, cert, na, (long long)(left / 86400), (long long)left);
	}
	/* A CRL is no good past its signer: no one may rely on it longer. */
	if (*next_update > s->not_after)
		*next_update = s->not_after;
	return 0;
}

/*
 * Entry lengths are computed, not measured, in the first pass: every part of
 * an entry has a fixed or a simply derived size, and the whole entry is under
 * 128 bytes, so every length is one octet. crl_entry_len and crl_encode_entry
 * share these helpers, and crl_write checks each encoded entry against it.
 */
#define REASON_EXT_LEN 12     /* 30 0a | 06 03 55 1d 15 | 04 03 0a 01 NN */
#define INVALIDITY_EXT_LEN 26 /* 30 18 | 06 03 55 1d 18 | 04 11 18 0f YYYYMMDDHHMMSSZ */

static bool has_reason(const struct crl_entry *e)
{
	return e->reason > VG_REASON_UNSPECIFIED;
}

static size_t serial_len(const struct vg_serial *s)
{
	return 2 + s->len + ((s->b[0] & 0x80) != 0);
}

static size_t exts_len(const struct crl_entry *e)
{
	size_t n =
	        (has_reason(e) ? REASON_EXT_LEN : 0) + (e->has_invalidity ? INVALIDITY_EXT_LEN : 0);
	return n ? 2 + n : 0;
}

size_t crl_entry_len(const struct crl_entry *e)
{
	if (e->serial.len == 0 || e->serial.len > VG_SERIAL_MAX || e->reason > 10 || e->reason == 7)
		return 0;
	if (e->serial.len > 1 && e->serial.b[0] == 0)
		return 0;
	size_t tl = der_time_len(e->revoked_at, false);
	if (tl == 0 || (e->has_invalidity && der_time_len(e->invalidity_date, true) == 0))
		return 0;
	return 2 + serial_len(&e->serial) + tl + exts_len(e);
}

size_t crl_encode_entry(const struct crl_entry *e, uint8_t *out)
{
	size_t len = crl_entry_len(e);
	if (len == 0)
		return 0;
	struct der_buf b;
	uint8_t h[9];
	der_init(&b, out, CRL_ENTRY_MAX);
	der_add_bytes(&b, h, der_put_hdr(h, DER_SEQUENCE, len - 2));
	der_add_uint_bytes(&b, e->serial.b, e->serial.len);
	der_add_time(&b, e->revoked_at, false);
	size_t el = exts_len(e);
	if (el) {
		der_add_bytes(&b, h, der_put_hdr(h, DER_SEQUENCE, el - 2));
		if (has_reason(e)) {
			der_add_bytes(&b, h, der_put_hdr(h, DER_SEQUENCE, REASON_EXT_LEN - 2));
			der_add_tlv(&b, DER_OID, oid_reason, sizeof(oid_reason));
			der_add_bytes(&b, h, der_put_hdr(h, DER_OCTET_STRING, 3));
			der_add_uint(&b, DER_ENUMERATED, (uint64_t)e->reason);
		}
		if (e->has_invalidity) {
			der_add_bytes(&b, h, der_put_hdr(h, DER_SEQUENCE, INVALIDITY_EXT_LEN - 2));
			der_add_tlv(&b, DER_OID, oid_invalidity, sizeof(oid_invalidity));
			der_add_bytes(&b, h, der_put_hdr(h, DER_OCTET_STRING, 17));
			der_add_time(&b, e->invalidity_date, true);
		}
	}
	/* The computed length is the contract of the first pass. */
	return der_ok(&b) && b.len == len ? len : 0;
}

/* The output stream: a fixed buffer flushed to the file at |off| and, while
 * |md| is set, into the signature. */
struct out {
	int fd;
	off_t off;
	EVP_MD_CTX *md;
	uint8_t *buf;
	size_t len, cap;
	int err;
	off_t kicked; /* writeback started up to here */
};

static int out_flush(struct out *o)
{
	if (o->err || o->len == 0)
		return o->err;
	if (o->md && EVP_DigestSignUpdate(o->md, o->buf, o->len) != 1) {
		o->err = -EIO;
		return o->err;
	}
	size_t done = 0;
	while (done < o->len) {
		ssize_t n = pwrite(o->fd, o->buf + done, o->len - done, o->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			o->err = -errno;
			return o->err;
		}
		done += (size_t)n;
		o->off += n;
	}
	o->len = 0;
	/* Start writing back every few MiB now, so that the caller's fsync at
	 * the end waits for little: the disk works while we encode. */
	if (o->off - o->kicked >= WRITEBACK_EVERY) {
		sync_file_range(o->fd, o->kicked, o->off - o->kicked, SYNC_FILE_RANGE_WRITE);
		o->kicked = o->off;
	}
	return 0;
}

static int out_put(struct out *o, const void *p, size_t n)
{
	if (o->err)
		return o->err;
	if (n > o->cap - o->len && out_flush(o) < 0)
		return o->err;
	if (n > o->cap) {
		o->err = -EINVAL;
		return o->err;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

static int out_hdr(struct out *o, unsigned tag, size_t len)
{
	uint8_t h[9];
	return out_put(o, h, der_put_hdr(h, tag, len));
}

/* build_prefix encodes the TBSCertList fields before revokedCertificates. */
static bool build_prefix(struct der_buf *b, const struct crl_params *p, const struct crl_signer *s)
{
	der_add_uint(b, DER_INTEGER, 1); /* v2 */
	der_add_bytes(b, s->alg, s->alg_len);
	der_add_bytes(b, p->issuer, p->issuer_len);
	der_add_time(b, p->this_update, false);
	der_add_time(b, p->next_update, false);
	return der_ok(b);
}

/* build_exts encodes the [0] crlExtensions. */
static bool build_exts(struct der_buf *b, const struct crl_params *p)
{
	der_open(b, DER_CTX_CONS(0));
	der_open(b, DER_SEQUENCE);
	if (p->akid_len) {
		der_open(b, DER_SEQUENCE);
		der_add_tlv(b, DER_OID, oid_akid, sizeof(oid_akid));
		der_open(b, DER_OCTET_STRING);
		der_open(b, DER_SEQUENCE);
		der_add_tlv(b, DER_CTX(0), p->akid, p->akid_len);
		der_close(b);
		der_close(b);
		der_close(b);
	}
	der_open(b, DER_SEQUENCE);
	der_add_tlv(b, DER_OID, oid_crl_number, sizeof(oid_crl_number));
	der_open(b, DER_OCTET_STRING);
	der_add_uint(b, DER_INTEGER, p->number);
	der_close(b);
	der_close(b);
	if (p->idp) {
		/* IssuingDistributionPoint ::= SEQUENCE {
		 *   distributionPoint [0] { fullName [0] { [6] URI } },
		 *   onlyContainsUserCerts [1] BOOLEAN DEFAULT FALSE, ... }
		 * critical (RFC 5280 §5.2.5); DER leaves out a FALSE default. */
		static const uint8_t true_ = 0xff;
		der_open(b, DER_SEQUENCE);
		der_add_tlv(b, DER_OID, oid_idp, sizeof(oid_idp));
		der_add_tlv(b, DER_BOOLEAN, &true_, 1);
		der_open(b, DER_OCTET_STRING);
		der_open(b, DER_SEQUENCE);
		der_open(b, DER_CTX_CONS(0));
		der_open(b, DER_CTX_CONS(0));
		der_add_tlv(b, DER_CTX(6), p->idp, strlen(p->idp));
		der_close(b);
		der_close(b);
		if (p->idp_user_certs)
			der_add_tlv(b, DER_CTX(1), &true_, 1);
		der_close(b);
		der_close(b);
		der_close(b);
	}
	if (p->delta) {
		static const uint8_t true_ = 0xff;
		der_open(b, DER_SEQUENCE);
		der_add_tlv(b, DER_OID, oid_delta_indicator, sizeof(oid_delta_indicator));
		der_add_tlv(b, DER_BOOLEAN, &true_, 1);
		der_open(b, DER_OCTET_STRING);
		der_add_uint(b, DER_INTEGER, p->base_number);
		der_close(b);
		der_close(b);
	} else if (p->freshest && *p->freshest) {
		/* CRLDistributionPoints ::= SEQUENCE OF DistributionPoint
		 * { distributionPoint [0] { fullName [0] { [6] URI } } } */
		der_open(b, DER_SEQUENCE);
		der_add_tlv(b, DER_OID, oid_freshest, sizeof(oid_freshest));
		der_open(b, DER_OCTET_STRING);
		der_open(b, DER_SEQUENCE);
		der_open(b, DER_SEQUENCE);
		der_open(b, DER_CTX_CONS(0));
		der_open(b, DER_CTX_CONS(0));
		der_add_tlv(b, DER_CTX(6), p->freshest, strlen(p->freshest));
		der_close(b);
		der_close(b);
		der_close(b);
		der_close(b);
		der_close(b);
		der_close(b);
	}
	der_close(b);
	der_close(b);
	return der_ok(b);
}

/* sign_tbs makes the signature over the TBS written at [tbs_off, tbs_off +
 * tbs_len) of |fd|, or from the digest state in |md| (left untouched, so a
 * retry can sign again). */
static int sign_tbs(const struct crl_signer *s, EVP_MD_CTX *md, int fd, off_t tbs_off,
                    size_t tbs_len, uint8_t *sig, size_t *siglen)
{
	if (!s->oneshot) {
		int rc = -EIO;
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		if (c && EVP_MD_CTX_copy_ex(c, md) == 1 && EVP_DigestSignFinal(c, sig, siglen) == 1)
			rc = 0;
		EVP_MD_CTX_free(c);
		return rc;
	}
	size_t maplen = (size_t)tbs_off + tbs_len;
	uint8_t *map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	int rc = -EIO;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (c && EVP_DigestSignInit(c, NULL, NULL, NULL, s->key) == 1 &&
	    EVP_DigestSign(c, sig, siglen, map + tbs_off, tbs_len) == 1)
		rc = 0;
	EVP_MD_CTX_free(c);
	munmap(map, maplen);
	return rc;
}

struct crl_writer {
	struct out o;
	const struct crl_signer *s;
	EVP_MD_CTX *md;
	uint8_t *exts, *sig;
	size_t exts_len, bufsize;
	size_t tbs_total, hdr_len;
	uint64_t count, rev_len;   /* measured (pass 1) */
	uint64_t count2, rev_len2; /* written */
	bool bad_entry;
};

void crl_writer_free(struct crl_writer *w)
{
	if (!w)
		return;
	EVP_MD_CTX_free(w->md);
	free(w->exts);
	free(w->sig);
	free(w->o.buf);
	free(w);
}

int crl_writer_begin(struct crl_writer **out, int fd, const struct crl_params *p,
                     const struct crl_signer *s, uint64_t count, uint64_t rev_len, size_t bufsize,
                     char *err, size_t errlen)
{
	int rc;
	uint8_t *prefix = NULL;
	struct der_buf pb, eb;
	char e[256];

	*out = NULL;
	if (s->not_after && (p->this_update >= s->not_after || p->next_update > s->not_after)) {
		snprintf(err, errlen,
		         "the signer's certificate expires before the CRL's nextUpdate");
		return -EKEYEXPIRED;
	}
	if (bufsize < 4096)
		bufsize = 4096;
	struct crl_writer *w = calloc(1, sizeof(*w));
	size_t url_len = (p->freshest ? strlen(p->freshest) : 0) + (p->idp ? strlen(p->idp) : 0);
	size_t prefix_cap = 256 + s->alg_len + p->issuer_len;
	size_t exts_cap = 256 + p->akid_len + url_len;
	if (w) {
		w->o.fd = fd;
		w->s = s;
		w->bufsize = bufsize;
		w->count = count;
		w->rev_len = rev_len;
		prefix = malloc(prefix_cap);
		w->exts = malloc(exts_cap);
		w->sig = malloc(s->sig_max);
		w->o.buf = malloc(bufsize);
		w->o.cap = bufsize;
	}
	if (!w || !prefix || !w->exts || !w->sig || !w->o.buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	der_init(&pb, prefix, prefix_cap);
	der_init(&eb, w->exts, exts_cap);
	if (!build_prefix(&pb, p, s) || !build_exts(&eb, p)) {
		rc = -EINVAL;
		snprintf(err, errlen, "cannot encode the CRL header (times or sizes out of range)");
		goto fail;
	}
	w->exts_len = eb.len;

	size_t tbs_content = pb.len + eb.len + (count ? der_hdr_len(rev_len) + rev_len : 0);
	w->tbs_total = der_hdr_len(tbs_content) + tbs_content;
	size_t bits_max = 1 + s->sig_max;
	size_t outer_max = w->tbs_total + s->alg_len + der_hdr_len(bits_max) + bits_max;
	w->hdr_len = der_hdr_len(outer_max);

	/* Write the TBS after the room for the outer header, hashing it. */
	w->o.off = (off_t)w->hdr_len;
	if (!s->oneshot) {
		EVP_PKEY_CTX *pctx = NULL;
		w->md = EVP_MD_CTX_new();
		if (!w->md || EVP_DigestSignInit(w->md, &pctx, s->md, NULL, s->key) != 1 ||
		    (EVP_PKEY_is_a(s->key, "RSA") &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)) {
			rc = -EIO;
			snprintf(err, errlen, "signing: %s", vg_pki_ssl_error(e, sizeof(e)));
			goto fail;
		}
		w->o.md = w->md;
	}
	out_hdr(&w->o, DER_SEQUENCE, tbs_content);
	out_put(&w->o, prefix, pb.len);
	if (count)
		out_hdr(&w->o, DER_SEQUENCE, rev_len);
	free(prefix);
	*out = w;
	return 0;
fail:
	free(prefix);
	crl_writer_free(w);
	return rc;
}

int crl_writer_add(struct crl_writer *w, const struct crl_entry *e)
{
	struct out *o = &w->o;
	if (o->err)
		return o->err;
	/* Encode in place in the output buffer. */
	if (o->cap - o->len < CRL_ENTRY_MAX && out_flush(o) < 0)
		return o->err;
	size_t n = crl_encode_entry(e, o->buf + o->len);
	w->rev_len2 += n;
	/* Never write past what pass 1 measured. */
	if (n == 0 || ++w->count2 > w->count || w->rev_len2 > w->rev_len) {
		w->bad_entry = true;
		return -EIO;
	}
	o->len += n;
	return 0;
}

int crl_writer_end(struct crl_writer *w, struct crl_result *res, char *err, size_t errlen)
{
	struct out *o = &w->o;
	const struct crl_signer *s = w->s;
	char e[256];
	int rc;
	if (o->err)
		goto write_error;
	if (w->bad_entry || w->count2 != w->count || w->rev_len2 != w->rev_len) {
		snprintf(err, errlen, "the store changed between the two passes");
		return -EIO;
	}
	out_put(o, w->exts, w->exts_len);
	if (out_flush(o) < 0) {
		rc = o->err;
		snprintf(err, errlen, "writing: %s",
		         rc == -EIO ? vg_pki_ssl_error(e, sizeof(e)) : strerror(-rc));
		return rc;
	}
	o->md = NULL;

	/* Sign; with ECDSA, again until the outer header has the size reserved. */
	size_t siglen, outer;
	for (int tries = 0;; tries++) {
		siglen = s->sig_max;
		rc = sign_tbs(s, w->md, o->fd, (off_t)w->hdr_len, w->tbs_total, w->sig, &siglen);
		if (rc < 0) {
			snprintf(err, errlen, "signing: %s",
			         rc == -EIO ? vg_pki_ssl_error(e, sizeof(e)) : strerror(-rc));
			return rc;
		}
		outer = w->tbs_total + s->alg_len + der_hdr_len(1 + siglen) + 1 + siglen;
		if (der_hdr_len(outer) == w->hdr_len)
			break;
		if (tries == 64) {
			snprintf(err, errlen, "signing: no signature of the reserved length");
			return -EIO;
		}
	}
	out_put(o, s->alg, s->alg_len);
	out_hdr(o, DER_BIT_STRING, 1 + siglen);
	out_put(o, "", 1); /* no unused bits */
	out_put(o, w->sig, siglen);
	if (out_flush(o) < 0)
		goto write_error;
	o->off = 0;
	out_hdr(o, DER_SEQUENCE, outer);
	if (out_flush(o) < 0)
		goto write_error;
	if (res) {
		res->entries = w->count;
		res->bytes = w->hdr_len + outer;
	}
	return 0;
write_error:
	rc = o->err;
	snprintf(err, errlen, "writing: %s", strerror(-rc));
	return rc;
}

int crl_write(int fd, const struct crl_params *p, const struct crl_signer *s,
              const struct crl_source *src, struct crl_result *res, char *err, size_t errlen)
{
	/* Pass 1: measure. */
	uint64_t count = 0, rev_len = 0;
	struct crl_entry ce;
	int rc = src->begin(src->arg);
	while (rc >= 0 && (rc = src->next(src->arg, &ce)) > 0) {
		size_t n = crl_entry_len(&ce);
		if (n == 0) {
			char hex[2 * VG_SERIAL_MAX + 1];
			vg_serial_format(&ce.serial, hex, sizeof(hex));
			snprintf(err, errlen, "serial %s: cannot encode the entry", hex);
			return -EINVAL;
		}
		rev_len += n;
		count++;
	}
	if (rc < 0) {
		snprintf(err, errlen, "reading the store: %s", strerror(-rc));
		return rc;
	}
	/* Pass 2: write. */
	struct crl_writer *w;
	rc = crl_writer_begin(&w, fd, p, s, count, rev_len, OUT_BUF, err, errlen);
	if (rc < 0)
		return rc;
	if (count) {
		rc = src->begin(src->arg);
		while (rc >= 0 && (rc = src->next(src->arg, &ce)) > 0)
			if (crl_writer_add(w, &ce) < 0)
				break;
		if (rc < 0) {
			snprintf(err, errlen, "reading the store: %s", strerror(-rc));
			crl_writer_free(w);
			return rc;
		}
	}
	rc = crl_writer_end(w, res, err, errlen);
	crl_writer_free(w);
	return rc;
}
