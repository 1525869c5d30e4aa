/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of common/der.c, the writer and the reader (vg_cbs), checked
 * against OpenSSL's DER parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>

#include "common/der.h"

static void test_hdr(void **state)
{
	(void)state;
	uint8_t h[9];
	assert_int_equal(der_hdr_len(0), 2);
	assert_int_equal(der_hdr_len(127), 2);
	assert_int_equal(der_hdr_len(128), 3);
	assert_int_equal(der_hdr_len(255), 3);
	assert_int_equal(der_hdr_len(256), 4);
	assert_int_equal(der_hdr_len(65535), 4);
	assert_int_equal(der_hdr_len(65536), 5);
	assert_int_equal(der_hdr_len((size_t)1 << 24), 6);
	assert_int_equal(der_put_hdr(h, 0x30, 300), 4);
	assert_memory_equal(h, "\x30\x82\x01\x2c", 4);
	assert_int_equal(der_put_hdr(h, 0x04, 5), 2);
	assert_memory_equal(h, "\x04\x05", 2);
}

/* check_integer parses |der| with OpenSSL and compares it with |v|. */
static void check_integer(const uint8_t *der, size_t len, uint64_t v)
{
	const unsigned char *p = der;
	ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &p, (long)len);
	assert_non_null(ai);
	assert_ptr_equal(p, der + len);
	uint64_t got = 0;
	assert_int_equal(ASN1_INTEGER_get_uint64(&got, ai), 1);
	assert_true(got == v);
	/* Re-encoding gives the same bytes: ours is minimal DER. */
	unsigned char *re = NULL;
	int n = i2d_ASN1_INTEGER(ai, &re);
	assert_int_equal(n, (int)len);
	assert_memory_equal(re, der, len);
	OPENSSL_free(re);
	ASN1_INTEGER_free(ai);
}

static void test_uint(void **state)
{
	(void)state;
	static const uint64_t vals[] = {0,         1,      127,    128,         255,
	                                256,       0x7fff, 0x8000, 0xffffffffu, 1700000000123456ull,
	                                UINT64_MAX};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t mem[16];
		struct der_buf b;
		der_init(&b, mem, sizeof(mem));
		assert_true(der_add_uint(&b, DER_INTEGER, vals[i]));
		assert_true(der_ok(&b));
		check_integer(mem, b.len, vals[i]);
	}
}

static void test_uint_bytes(void **state)
{
	(void)state;
	uint8_t mem[64];
	struct der_buf b;
	/* A 20-octet serial with the top bit set needs a 0x00 pad. */
	uint8_t mag[20];
	memset(mag, 0xab, sizeof(mag));
	der_init(&b, mem, sizeof(mem));
	assert_true(der_add_uint_bytes(&b, mag, sizeof(mag)));
	assert_int_equal(b.len, 23);
	assert_int_equal(mem[1], 21);
	assert_int_equal(mem[2], 0);
	const unsigned char *p = mem;
	ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &p, (long)b.len);
	assert_non_null(ai);
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	assert_false(BN_is_negative(bn));
	assert_int_equal(BN_num_bytes(bn), 20);
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	/* Leading zero octets are refused: the store never gives them. */
	der_init(&b, mem, sizeof(mem));
	assert_false(der_add_uint_bytes(&b, (const uint8_t *)"\x00\x01", 2));
	assert_false(der_ok(&b));
	/* Zero is one 0x00 octet. */
	der_init(&b, mem, sizeof(mem));
	assert_true(der_add_uint_bytes(&b, (const uint8_t *)"\x00", 1));
	check_integer(mem, b.len, 0);
}

static void check_time(int64_t t, bool generalized, int tag, const char *text)
{
	uint8_t mem[32];
	struct der_buf b;
	der_init(&b, mem, sizeof(mem));
	assert_true(der_add_time(&b, t, generalized));
	assert_int_equal(mem[0], tag);
	assert_int_equal(mem[1], strlen(text));
	assert_memory_equal(mem + 2, text, strlen(text));
	const unsigned char *p = mem;
	ASN1_TIME *at = d2i_ASN1_TIME(NULL, &p, (long)b.len);
	assert_non_null(at);
	time_t tt = 0;
	struct tm tm;
	assert_int_equal(ASN1_TIME_to_tm(at, &tm), 1);
	tt = timegm(&tm);
	assert_true((int64_t)tt == t);
	ASN1_TIME_free(at);
}

static void test_time(void **state)
{
	(void)state;
	check_time(0, false, DER_UTCTIME, "700101000000Z");
	check_time(0, true, DER_GENERALIZEDTIME, "19700101000000Z");
	check_time(1795000000, false, DER_UTCTIME, "261118110640Z");
	/* 2049-12-31T23:59:59Z is the last UTCTime; 2050 is GeneralizedTime. */
	check_time(2524607999, false, DER_UTCTIME, "491231235959Z");
	check_time(2524608000, false, DER_GENERALIZEDTIME, "20500101000000Z");
	/* Before 1950 as well. */
	check_time(-631152001, false, DER_GENERALIZEDTIME, "19491231235959Z");
	check_time(-631152000, false, DER_UTCTIME, "500101000000Z");
	/* Leap day. */
	check_time(951782400, false, DER_UTCTIME, "000229000000Z");
}

static void test_nesting(void **state)
{
	(void)state;
	uint8_t mem[1024];
	uint8_t blob[300];
	memset(blob, 'x', sizeof(blob));
	struct der_buf b;
	der_init(&b, mem, sizeof(mem));
	assert_true(der_open(&b, DER_SEQUENCE));
	assert_true(der_open(&b, DER_SEQUENCE));
	assert_true(der_add_tlv(&b, DER_OCTET_STRING, blob, 200));
	assert_true(der_close(&b));
	assert_true(der_add_tlv(&b, DER_OCTET_STRING, blob, 100));
	assert_true(der_close(&b));
	assert_true(der_ok(&b));
	/* 30 82 01 34 | 30 81 cb | 04 81 c8 <200> | 04 64 <100> */
	assert_int_equal(b.len, 4 + 3 + 3 + 200 + 2 + 100);
	assert_memory_equal(mem, "\x30\x82\x01\x34\x30\x81\xcb\x04\x81\xc8", 10);
	assert_memory_equal(mem + 210, "\x04\x64", 2);
	/* OpenSSL reads it as a SEQUENCE of the right size. */
	const unsigned char *p = mem;
	long len;
	int tag, cls;
	assert_int_equal(ASN1_get_object(&p, &len, &tag, &cls, (long)b.len) & 0x80, 0);
	assert_int_equal(tag, V_ASN1_SEQUENCE);
	assert_int_equal(len, 0x134);
}

static void test_bounds(void **state)
{
	(void)state;
	uint8_t mem[8];
	struct der_buf b;
	der_init(&b, mem, sizeof(mem));
	assert_true(der_open(&b, DER_SEQUENCE));
	assert_false(der_add_tlv(&b, DER_OCTET_STRING, "0123456789", 10));
	/* Sticky: later calls fail too. */
	assert_false(der_add_bytes(&b, "a", 1));
	assert_false(der_close(&b));
	assert_false(der_ok(&b));
	/* Unclosed elements are not ok. */
	der_init(&b, mem, sizeof(mem));
	assert_true(der_open(&b, DER_SEQUENCE));
	assert_false(der_ok(&b));
	/* Closing more than opened fails. */
	der_init(&b, mem, sizeof(mem));
	assert_false(der_close(&b));
	/* Depth is bounded. */
	uint8_t big[64];
	der_init(&b, big, sizeof(big));
	for (int i = 0; i < DER_MAX_DEPTH; i++)
		assert_true(der_open(&b, DER_SEQUENCE));
	assert_false(der_open(&b, DER_SEQUENCE));
	/* A length that needs more room than is left when closing. */
	uint8_t m2[130];
	der_init(&b, m2, sizeof(m2));
	assert_true(der_open(&b, DER_SEQUENCE));
	assert_true(der_add_tlv(&b, DER_OCTET_STRING, big, 60));
	assert_true(der_add_tlv(&b, DER_OCTET_STRING, big, 64));
	assert_false(der_close(&b)); /* content 128 needs 0x81 0x80: 131 bytes */
}

static void test_gmtime_range(void **state)
{
	(void)state;
	int y, mo, d, h, mi, s;
	assert_true(der_gmtime(253402300799, &y, &mo, &d, &h, &mi, &s)); /* 9999-12-31 */
	assert_int_equal(y, 9999);
	assert_false(der_gmtime(253402300800, &y, &mo, &d, &h, &mi, &s));
	uint8_t mem[32];
	struct der_buf b;
	der_init(&b, mem, sizeof(mem));
	assert_false(der_add_time(&b, INT64_MAX / 2, false));
}

/* ---- The reader ----------------------------------------------------------------- */

#define CBS(lit) cbs_of((const uint8_t *)(lit), sizeof(lit) - 1)

static struct vg_cbs cbs_of(const uint8_t *p, size_t n)
{
	struct vg_cbs c;
	vg_cbs_init(&c, p, n);
	return c;
}

/* agree_with_openssl checks that what the reader accepts as the element at
 * |p| OpenSSL's ASN1_get_object reads the same way. */
static void agree_with_openssl(const uint8_t *p, size_t n)
{
	struct vg_cbs c = cbs_of(p, n), el;
	unsigned tag;
	size_t hl;
	if (!vg_cbs_get_any_asn1_element(&c, &el, &tag, &hl))
		return;
	const unsigned char *q = p;
	long len;
	int t, cls;
	int r = ASN1_get_object(&q, &len, &t, &cls, (long)n);
	assert_int_equal(r & 0x81, 0);
	assert_int_equal((unsigned)t, tag & 0x1f);
	assert_int_equal((unsigned)cls, tag & 0xc0);
	assert_int_equal(r & 0x20, tag & 0x20);
	assert_int_equal((size_t)(q - p), hl);
	assert_int_equal((size_t)len, vg_cbs_len(&el) - hl);
}

static void test_cbs_basic(void **state)
{
	(void)state;
	struct vg_cbs c = CBS("\x30\x07\x02\x01\x05\x04\x02"
	                      "ab"
	                      "\x05\x00"),
	              seq, v;
	uint64_t u;
	assert_true(vg_cbs_peek_asn1_tag(&c, DER_SEQUENCE));
	assert_false(vg_cbs_peek_asn1_tag(&c, DER_SET));
	/* A wrong tag reads nothing. */
	assert_false(vg_cbs_get_asn1(&c, &seq, DER_SET));
	assert_int_equal(vg_cbs_len(&c), 11);
	assert_true(vg_cbs_get_asn1(&c, &seq, DER_SEQUENCE));
	assert_int_equal(vg_cbs_len(&seq), 7);
	assert_int_equal(vg_cbs_len(&c), 2); /* trailing data left to the caller */
	assert_true(vg_cbs_get_asn1_uint64(&seq, &u));
	assert_int_equal(u, 5);
	bool present;
	assert_true(vg_cbs_get_optional_asn1(&seq, &v, &present, DER_CTX_CONS(0)));
	assert_false(present);
	assert_int_equal(vg_cbs_len(&seq), 4);
	assert_true(vg_cbs_get_optional_asn1(&seq, &v, &present, DER_OCTET_STRING));
	assert_true(present);
	assert_int_equal(vg_cbs_len(&v), 2);
	assert_memory_equal(vg_cbs_data(&v), "ab", 2);
	assert_int_equal(vg_cbs_len(&seq), 0);
	assert_false(vg_cbs_get_asn1(&seq, &v, DER_NULL)); /* empty */
	assert_false(vg_cbs_peek_asn1_tag(&seq, 0));
	struct vg_cbs el;
	assert_true(vg_cbs_get_asn1_element(&c, &el, DER_NULL));
	assert_int_equal(vg_cbs_len(&el), 2);
	assert_int_equal(vg_cbs_len(&c), 0);
	/* Bytes. */
	c = CBS("\x01\x02\x03");
	uint8_t b;
	assert_true(vg_cbs_get_u8(&c, &b));
	assert_int_equal(b, 1);
	assert_false(vg_cbs_skip(&c, 3));
	assert_false(vg_cbs_get_bytes(&c, &v, 3));
	assert_true(vg_cbs_get_bytes(&c, &v, 1));
	assert_int_equal(*vg_cbs_data(&v), 2);
	assert_true(vg_cbs_skip(&c, 1));
	assert_false(vg_cbs_get_u8(&c, &b));
	/* An element of the right tag that does not parse fails the OPTIONAL. */
	c = CBS("\xa0\x05\x01");
	assert_false(vg_cbs_get_optional_asn1(&c, &v, &present, DER_CTX_CONS(0)));
	assert_int_equal(vg_cbs_len(&c), 3);
	assert_true(vg_cbs_skip_asn1(&(struct vg_cbs){(const uint8_t *)"\x04\x00", 2},
	                             DER_OCTET_STRING));
}

/* Every cut of a valid element fails, and leaves the view as it was; the
 * header alone reads as soon as it is all there. */
static void test_cbs_truncated(void **state)
{
	(void)state;
	uint8_t d[4 + 300];
	d[0] = DER_OCTET_STRING;
	memcpy(d + 1, "\x82\x01\x2c", 3);
	for (size_t i = 4; i < sizeof(d); i++)
		d[i] = (uint8_t)i;
	for (size_t n = 0; n <= sizeof(d); n++) {
		struct vg_cbs c = cbs_of(d, n), el, h = c;
		bool whole = vg_cbs_get_any_asn1_element(&c, &el, NULL, NULL);
		assert_int_equal(whole, n == sizeof(d));
		if (!whole)
			assert_int_equal(vg_cbs_len(&c), n);
		unsigned tag;
		size_t hl, cl;
		bool hdr = vg_cbs_get_asn1_header(&h, &tag, &hl, &cl);
		assert_int_equal(hdr, n >= 4);
		if (hdr) {
			assert_int_equal(tag, DER_OCTET_STRING);
			assert_int_equal(hl, 4);
			assert_int_equal(cl, 300);
			assert_int_equal(vg_cbs_len(&h), n - 4);
			assert_ptr_equal(vg_cbs_data(&h), d + 4);
		} else {
			assert_int_equal(vg_cbs_len(&h), n);
		}
		agree_with_openssl(d, n);
	}
	/* The head of a huge element: 4 GiB - 1 declared, nothing of it here. */
	struct vg_cbs c = CBS("\x30\x84\xff\xff\xff\xff"), el;
	size_t hl, cl;
	assert_true(vg_cbs_get_asn1_header(&c, NULL, &hl, &cl));
	assert_int_equal(hl, 6);
	assert_int_equal(cl, 0xffffffffu);
	assert_int_equal(vg_cbs_len(&c), 0);
	c = CBS("\x30\x84\xff\xff\xff\xff\x00");
	assert_false(vg_cbs_get_asn1(&c, &el, DER_SEQUENCE));
	assert_false(vg_cbs_get_any_asn1_element(&c, &el, NULL, NULL));
	/* 8 length octets, the most. */
	c = CBS("\x04\x88\x7f\xff\xff\xff\xff\xff\xff\xff");
	assert_true(vg_cbs_get_asn1_header(&c, NULL, &hl, &cl));
	assert_int_equal(cl, (size_t)INT64_MAX);
	assert_false(vg_cbs_get_any_asn1_element(
	        &(struct vg_cbs){(const uint8_t *)"\x04\x88\xff\xff\xff\xff\xff\xff\xff\xff\x00",
	                         11},
	        &el, NULL, NULL));
}

static void test_cbs_long_form(void **state)
{
	(void)state;
	static const size_t lens[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 70000};
	uint8_t *d = malloc(70000 + 8), h[9];
	assert_non_null(d);
	memset(d, 0x5a, 70000 + 8);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		/* What the writer writes, the reader reads. */
		size_t hl = der_put_hdr(h, DER_OCTET_STRING, lens[i]);
		memcpy(d, h, hl);
		struct vg_cbs c = cbs_of(d, hl + lens[i] + 1), v;
		assert_true(vg_cbs_get_asn1(&c, &v, DER_OCTET_STRING));
		assert_int_equal(vg_cbs_len(&v), lens[i]);
		assert_ptr_equal(vg_cbs_data(&v), d + hl);
		assert_int_equal(vg_cbs_len(&c), 1);
		agree_with_openssl(d, hl + lens[i]);
	}
	free(d);
}

/* What BER allows and DER does not is refused. */
static void test_cbs_refused(void **state)
{
	(void)state;
	static const struct {
		const char *d;
		size_t n;
	} bad[] = {
	        {"\x04\x81\x05"
	         "abcde",
	         8}, /* long form for a short length */
	        {"\x04\x81\x7f", 3},
	        {"\x04\x82\x00\x80", 4}, /* a leading zero length octet */
	        {"\x04\x82\x00\x05"
	         "abcde",
	         9},
	        {"\x30\x80\x05\x00\x00\x00", 6},                      /* indefinite */
	        {"\x04\xff", 2},                                      /* reserved */
	        {"\x04\x89\x01\x00\x00\x00\x00\x00\x00\x00\x00", 11}, /* over 8 octets */
	        {"\x1f\x20\x00", 3},                                  /* high tag number */
	        {"\xbf\x81\x00\x00", 4},
	        {"\x5f\x01\x00", 3},
	        {"\x04", 1},
	        {"", 0},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vg_cbs c = cbs_of((const uint8_t *)bad[i].d, bad[i].n), el, h = c;
		assert_false(vg_cbs_get_any_asn1_element(&c, &el, NULL, NULL));
		assert_false(vg_cbs_get_asn1_header(&h, NULL, NULL, NULL));
		assert_int_equal(vg_cbs_len(&c), bad[i].n);
		assert_int_equal(vg_cbs_len(&h), bad[i].n);
	}
	/* Tag numbers up to 30 are fine, in every class. */
	struct vg_cbs c = CBS("\x1e\x00\x5e\x00\x9e\x00\xfe\x00"), el;
	unsigned tag;
	assert_true(vg_cbs_get_any_asn1_element(&c, &el, &tag, NULL));
	assert_int_equal(tag, 0x1e);
	assert_true(vg_cbs_get_any_asn1_element(&c, &el, &tag, NULL));
	assert_true(vg_cbs_get_any_asn1_element(&c, &el, &tag, NULL));
	assert_true(vg_cbs_get_asn1(&c, &el, 0xfe));
	/* INTEGERs: negative, not minimal, over 64 bits, empty. */
	uint64_t u;
	assert_true(
	        vg_cbs_get_asn1_uint64(&(struct vg_cbs){(const uint8_t *)"\x02\x01\x00", 3}, &u));
	assert_int_equal(u, 0);
	c = CBS("\x02\x09\x00\xff\xff\xff\xff\xff\xff\xff\xff");
	assert_true(vg_cbs_get_asn1_uint64(&c, &u));
	assert_int_equal(u, UINT64_MAX);
	c = CBS("\x02\x02\x00\x80");
	assert_true(vg_cbs_get_asn1_uint64(&c, &u));
	assert_int_equal(u, 128);
	static const char *const ints[] = {
	        "\x02\x01\x80",     "\x02\x02\x00\x7f",
	        "\x02\x00",         "\x02\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00",
	        "\x02\x02\xff\x7f", "\x0a\x01\x01"};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		c = cbs_of((const uint8_t *)ints[i], 2 + (uint8_t)ints[i][1]);
		assert_false(vg_cbs_get_asn1_uint64(&c, &u));
		assert_int_equal(vg_cbs_len(&c), 2 + (uint8_t)ints[i][1]);
	}
}

/* Nested elements written by der_buf read back level by level, and a walk
 * of 1000 nested SEQUENCEs needs no recursion. */
static void test_cbs_nesting(void **state)
{
	(void)state;
	uint8_t mem[512];
	struct der_buf b;
	der_init(&b, mem, sizeof(mem));
	der_open(&b, DER_SEQUENCE);
	der_open(&b, DER_CTX_CONS(0));
	der_open(&b, DER_SEQUENCE);
	der_add_uint(&b, DER_INTEGER, 300);
	uint8_t fill[200];
	memset(fill, 7, sizeof(fill));
	der_add_tlv(&b, DER_OCTET_STRING, fill, sizeof(fill));
	der_close(&b);
	der_close(&b);
	der_add_tlv(&b, DER_NULL, NULL, 0);
	der_close(&b);
	assert_true(der_ok(&b));
	struct vg_cbs c = cbs_of(mem, b.len), seq, ctx, inner, v;
	uint64_t u;
	assert_true(vg_cbs_get_asn1(&c, &seq, DER_SEQUENCE));
	assert_int_equal(vg_cbs_len(&c), 0);
	assert_true(vg_cbs_get_asn1(&seq, &ctx, DER_CTX_CONS(0)));
	assert_true(vg_cbs_get_asn1(&ctx, &inner, DER_SEQUENCE));
	assert_int_equal(vg_cbs_len(&ctx), 0);
	assert_true(vg_cbs_get_asn1_uint64(&inner, &u));
	assert_int_equal(u, 300);
	assert_true(vg_cbs_get_asn1(&inner, &v, DER_OCTET_STRING));
	assert_memory_equal(vg_cbs_data(&v), fill, sizeof(fill));
	assert_int_equal(vg_cbs_len(&inner), 0);
	assert_true(vg_cbs_get_asn1(&seq, &v, DER_NULL));
	assert_int_equal(vg_cbs_len(&v), 0);
	assert_int_equal(vg_cbs_len(&seq), 0);
	/* An inner element may not pass its parent's end. */
	static const uint8_t over[] = {0x30, 0x03, 0x04, 0x05, 'a', 'b', 'c', 'd', 'e'};
	c = cbs_of(over, sizeof(over));
	assert_true(vg_cbs_get_asn1(&c, &seq, DER_SEQUENCE));
	assert_false(vg_cbs_get_asn1(&seq, &v, DER_OCTET_STRING));
	/* Deep: 1000 levels, each SEQUENCE { SEQUENCE { ... } }. */
	enum { DEPTH = 1000 };
	uint8_t *deep = malloc(DEPTH * 4);
	assert_non_null(deep);
	size_t len = 0, o = DEPTH * 4;
	for (int i = 0; i < DEPTH; i++) {
		uint8_t h[9];
		size_t hl = der_put_hdr(h, DER_SEQUENCE, len);
		o -= hl;
		memcpy(deep + o, h, hl);
		len += hl;
	}
	c = cbs_of(deep + o, len);
	for (int i = 0; i < DEPTH; i++) {
		assert_true(vg_cbs_get_asn1(&c, &seq, DER_SEQUENCE));
		assert_int_equal(vg_cbs_len(&c), 0);
		c = seq;
	}
	assert_int_equal(vg_cbs_len(&c), 0);
	free(deep);
}

/* Random bytes: whatever the reader accepts, OpenSSL reads the same way, and
 * nothing is read outside the view (ASan watches). */
static void test_cbs_random(void **state)
{
	(void)state;
	uint32_t x = 12345;
	int accepted = 0;
	for (int round = 0; round < 200000; round++) {
		uint8_t d[12];
		size_t n = (size_t)(round % 12) + 1;
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			d[i] = (uint8_t)(x >> 16);
		}
		if (round % 3 == 1) /* long forms often */
			d[1] = (uint8_t)(0x80 | (d[1] & 3));
		else if (round % 3 == 2 && n > 1) /* lengths that may fit */
			d[1] = (uint8_t)(d[1] % n);
		uint8_t *h = malloc(n);
		assert_non_null(h);
		memcpy(h, d, n);
		agree_with_openssl(h, n);
		struct vg_cbs c = cbs_of(h, n), el;
		accepted += vg_cbs_get_any_asn1_element(&c, &el, NULL, NULL);
		c = cbs_of(h, n);
		while (vg_cbs_get_asn1_header(&c, NULL, NULL, NULL))
			;
		free(h);
	}
	assert_true(accepted > 20000); /* the comparison was made often */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hdr),           cmocka_unit_test(test_uint),
	        cmocka_unit_test(test_uint_bytes),    cmocka_unit_test(test_time),
	        cmocka_unit_test(test_nesting),       cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_gmtime_range),  cmocka_unit_test(test_cbs_basic),
	        cmocka_unit_test(test_cbs_truncated), cmocka_unit_test(test_cbs_long_form),
	        cmocka_unit_test(test_cbs_refused),   cmocka_unit_test(test_cbs_nesting),
	        cmocka_unit_test(test_cbs_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
