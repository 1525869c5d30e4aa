/* SPDX-License-Identifier: Apache-2.0 */
#include "common/der.h"

#include <string.h>
#include <time.h>

#include <openssl/asn1.h>

void der_init(struct der_buf *b, uint8_t *mem, size_t cap)
{
	b->p = mem;
	b->len = 0;
	b->cap = cap;
	b->depth = 0;
	b->err = false;
}

bool der_ok(const struct der_buf *b)
{
	return !b->err && b->depth == 0;
}

static bool fail(struct der_buf *b)
{
	b->err = true;
	return false;
}

static bool room(struct der_buf *b, size_t n)
{
	if (b->err)
		return false;
	if (n > b->cap - b->len)
		return fail(b);
	return true;
}

size_t der_hdr_len(size_t content_len)
{
	if (content_len < 0x80)
		return 2;
	size_t n = 2; /* tag, 0x80 | number of length octets */
	for (size_t l = content_len; l; l >>= 8)
		n++;
	return n;
}

size_t der_put_hdr(uint8_t *out, unsigned tag, size_t content_len)
{
	out[0] = (uint8_t)tag;
	if (content_len < 0x80) {
		out[1] = (uint8_t)content_len;
		return 2;
	}
	size_t nlen = der_hdr_len(content_len) - 2;
	out[1] = (uint8_t)(0x80u | nlen);
	for (size_t i = 0; i < nlen; i++)
		out[2 + i] = (uint8_t)(content_len >> (8 * (nlen - 1 - i)));
	return 2 + nlen;
}

bool der_open(struct der_buf *b, unsigned tag)
{
	if (b->depth == DER_MAX_DEPTH)
		return fail(b);
	if (!room(b, 2))
		return false;
	b->p[b->len++] = (uint8_t)tag;
	/* One length octet is reserved; der_close grows it when needed. */
	b->open[b->depth++] = b->len;
	b->p[b->len++] = 0;
	return true;
}

bool der_close(struct der_buf *b)
{
	if (b->err || b->depth == 0)
		return fail(b);
	size_t at = b->open[--b->depth];
	size_t content = b->len - at - 1;
	size_t extra = der_hdr_len(content) - 2;
	if (extra) {
		if (!room(b, extra))
			return false;
		memmove(b->p + at + 1 + extra, b->p + at + 1, content);
		b->len += extra;
	}
	uint8_t hdr[9];
	size_t n = der_put_hdr(hdr, 0, content);
	memcpy(b->p + at, hdr + 1, n - 1);
	return true;
}

bool der_add_bytes(struct der_buf *b, const void *data, size_t len)
{
	if (!room(b, len))
		return false;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return true;
}

uint8_t *der_reserve(struct der_buf *b, size_t len)
{
	if (!room(b, len))
		return NULL;
	uint8_t *at = b->p + b->len;
	b->len += len;
	return at;
}

bool der_unreserve(struct der_buf *b, size_t len)
{
	if (b->err)
		return false;
	/* Never into the header of an open element. */
	size_t floor = b->depth ? b->open[b->depth - 1] + 1 : 0;
	if (len > b->len - floor)
		return fail(b);
	b->len -= len;
	return true;
}

bool der_add_tlv(struct der_buf *b, unsigned tag, const void *data, size_t len)
{
	uint8_t hdr[9];
	size_t n = der_put_hdr(hdr, tag, len);
	if (!room(b, n + len))
		return false;
	memcpy(b->p + b->len, hdr, n);
	b->len += n;
	return der_add_bytes(b, data, len);
}

bool der_add_uint_bytes(struct der_buf *b, const uint8_t *mag, size_t len)
{
	if (len == 0 || len > 126 || (len > 1 && mag[0] == 0))
		return fail(b);
	bool pad = mag[0] & 0x80;
	if (!room(b, 2 + pad + len))
		return false;
	b->p[b->len++] = DER_INTEGER;
	b->p[b->len++] = (uint8_t)(len + pad);
	if (pad)
		b->p[b->len++] = 0;
	memcpy(b->p + b->len, mag, len);
	b->len += len;
	return true;
}

bool der_add_uint(struct der_buf *b, unsigned tag, uint64_t v)
{
	uint8_t mag[8];
	size_t n = 0;
	bool started = false;
	for (int i = 7; i >= 0; i--) {
		uint8_t o = (uint8_t)(v >> (8 * i));
		if (!started && o == 0 && i > 0)
			continue;
		started = true;
		mag[n++] = o;
	}
	size_t at = b->len;
	if (!der_add_uint_bytes(b, mag, n))
		return false;
	b->p[at] = (uint8_t)tag;
	return true;
}

bool der_gmtime(int64_t t, int *year, int *mon, int *day, int *hour, int *min, int *sec)
{
	/* civil_from_days (Howard Hinnant): exact for the proleptic Gregorian
	 * calendar, no libc time zone state. */
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	int64_t rem = t - days * 86400;
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	if (y < 0 || y > 9999)
		return false;
	*year = (int)y;
	*mon = (int)m;
	*day = (int)d;
	*hour = (int)(rem / 3600);
	*min = (int)(rem / 60 % 60);
	*sec = (int)(rem % 60);
	return true;
}

static void put2(uint8_t *o, int v)
{
	o[0] = (uint8_t)('0' + v / 10 % 10);
	o[1] = (uint8_t)('0' + v % 10);
}

/* Bounds of the years 0 to 9999 and of UTCTime's 1950 to 2049. */
#define T_MIN (-62167219200LL)
#define T_MAX 253402300799LL
#define UTC_MIN (-631152000LL)
#define UTC_END 2524608000LL

size_t der_time_len(int64_t t, bool generalized)
{
	if (t < T_MIN || t > T_MAX)
		return 0;
	return !generalized && t >= UTC_MIN && t < UTC_END ? 2 + 13 : 2 + 15;
}

bool der_add_time(struct der_buf *b, int64_t t, bool generalized)
{
	int y, mo, d, h, mi, s;
	if (!der_gmtime(t, &y, &mo, &d, &h, &mi, &s))
		return fail(b);
	uint8_t v[15];
	size_t n = 0;
	bool utc = !generalized && y >= 1950 && y < 2050;
	if (utc) {
		put2(v, y % 100);
		n = 2;
	} else {
		put2(v, y / 100);
		put2(v + 2, y % 100);
		n = 4;
	}
	put2(v + n, mo);
	put2(v + n + 2, d);
	put2(v + n + 4, h);
	put2(v + n + 6, mi);
	put2(v + n + 8, s);
	n += 10;
	v[n++] = 'Z';
	return der_add_tlv(b, utc ? DER_UTCTIME : DER_GENERALIZEDTIME, v, n);
}

/* ---- The reader ---------------------------------------------------------------- */

void vg_cbs_init(struct vg_cbs *cbs, const uint8_t *data, size_t len)
{
	cbs->p = data;
	cbs->len = len;
}

const uint8_t *vg_cbs_data(const struct vg_cbs *cbs)
{
	return cbs->p;
}

size_t vg_cbs_len(const struct vg_cbs *cbs)
{
	return cbs->len;
}

bool vg_cbs_skip(struct vg_cbs *cbs, size_t len)
{
	if (len > cbs->len)
		return false;
	cbs->p += len;
	cbs->len -= len;
	return true;
}

bool vg_cbs_get_u8(struct vg_cbs *cbs, uint8_t *out)
{
	if (cbs->len < 1)
		return false;
	*out = cbs->p[0];
	return vg_cbs_skip(cbs, 1);
}

bool vg_cbs_get_bytes(struct vg_cbs *cbs, struct vg_cbs *out, size_t len)
{
	if (len > cbs->len)
		return false;
	vg_cbs_init(out, cbs->p, len);
	return vg_cbs_skip(cbs, len);
}

/* parse_header reads the header at the front of |cbs| without dropping it. */
static bool parse_header(const struct vg_cbs *cbs, unsigned *tag, size_t *hdr_len,
                         size_t *content_len)
{
	const uint8_t *p = cbs->p;
	size_t n = cbs->len;
	if (n < 2)
		return false;
	if ((p[0] & 0x1f) == 0x1f) /* a high tag number: nothing Vigil reads has one */
		return false;
	size_t len = p[1], hl = 2;
	if (len & 0x80) {
		size_t nb = len & 0x7f;
		/* 0x80 is the indefinite length (BER); 0xff is reserved. */
		if (nb == 0 || nb > sizeof(size_t) || nb > 8 || n - 2 < nb)
			return false;
		if (p[2] == 0) /* a leading zero octet: not the shortest form */
			return false;
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = len << 8 | p[2 + i];
		if (len < 0x80) /* the short form was due */
			return false;
		hl += nb;
	}
	*tag = p[0];
	*hdr_len = hl;
	*content_len = len;
	return true;
}

bool vg_cbs_get_asn1_header(struct vg_cbs *cbs, unsigned *out_tag, size_t *out_header_len,
                            size_t *out_content_len)
{
	unsigned tag;
	size_t hl, len;
	if (!parse_header(cbs, &tag, &hl, &len))
		return false;
	if (out_tag)
		*out_tag = tag;
	if (out_header_len)
		*out_header_len = hl;
	if (out_content_len)
		*out_content_len = len;
	return vg_cbs_skip(cbs, hl);
}

bool vg_cbs_get_any_asn1_element(struct vg_cbs *cbs, struct vg_cbs *out, unsigned *out_tag,
                                 size_t *out_header_len)
{
	unsigned tag;
	size_t hl, len;
	if (!parse_header(cbs, &tag, &hl, &len) || len > cbs->len - hl)
		return false;
	if (out_tag)
		*out_tag = tag;
	if (out_header_len)
		*out_header_len = hl;
	return vg_cbs_get_bytes(cbs, out, hl + len);
}

/* get_asn1 reads the next element of |tag|: |out| is its content, or the
 * whole element with |with_header|. */
static bool get_asn1(struct vg_cbs *cbs, struct vg_cbs *out, unsigned tag, bool with_header)
{
	struct vg_cbs c = *cbs, el;
	unsigned t;
	size_t hl;
	if (!vg_cbs_get_any_asn1_element(&c, &el, &t, &hl) || t != tag)
		return false;
	if (out) {
		*out = el;
		if (!with_header)
			vg_cbs_skip(out, hl);
	}
	*cbs = c;
	return true;
}

bool vg_cbs_get_asn1(struct vg_cbs *cbs, struct vg_cbs *out, unsigned tag)
{
	return get_asn1(cbs, out, tag, false);
}

bool vg_cbs_get_asn1_element(struct vg_cbs *cbs, struct vg_cbs *out, unsigned tag)
{
	return get_asn1(cbs, out, tag, true);
}

bool vg_cbs_skip_asn1(struct vg_cbs *cbs, unsigned tag)
{
	return get_asn1(cbs, NULL, tag, false);
}

bool vg_cbs_peek_asn1_tag(const struct vg_cbs *cbs, unsigned tag)
{
	return cbs->len >= 1 && cbs->p[0] == tag;
}

bool vg_cbs_get_optional_asn1(struct vg_cbs *cbs, struct vg_cbs *out, bool *present, unsigned tag)
{
	*present = false;
	if (!vg_cbs_peek_asn1_tag(cbs, tag))
		return true;
	if (!get_asn1(cbs, out, tag, false))
		return false;
	*present = true;
	return true;
}

bool vg_cbs_get_asn1_uint64(struct vg_cbs *cbs, uint64_t *out)
{
	struct vg_cbs c = *cbs, v;
	if (!vg_cbs_get_asn1(&c, &v, DER_INTEGER) || v.len == 0)
		return false;
	const uint8_t *b = v.p;
	if (b[0] & 0x80) /* negative */
		return false;
	if (v.len > 1 && b[0] == 0 && !(b[1] & 0x80)) /* not minimal */
		return false;
	if (b[0] == 0) {
		b++;
		v.len--;
	}
	if (v.len > 8)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < v.len; i++)
		x = x << 8 | b[i];
	*out = x;
	*cbs = c;
	return true;
}

bool vg_cbs_get_time(struct vg_cbs *c, int64_t *t)
{
	struct vg_cbs el;
	unsigned tag;
	if (!vg_cbs_get_any_asn1_element(c, &el, &tag, NULL) ||
	    (tag != DER_UTCTIME && tag != DER_GENERALIZEDTIME))
		return false;
	const unsigned char *q = vg_cbs_data(&el);
	ASN1_TIME *a = d2i_ASN1_TIME(NULL, &q, (long)vg_cbs_len(&el));
	struct tm tm;
	bool ok = a && ASN1_TIME_to_tm(a, &tm);
	ASN1_TIME_free(a);
	if (ok)
		*t = (int64_t)timegm(&tm);
	return ok;
}
