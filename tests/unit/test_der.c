/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of common/der.c, checked against OpenSSL's DER parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
	static const uint64_t vals[] = {
	    0, 1, 127, 128, 255, 256, 0x7fff, 0x8000, 0xffffffffu, 1700000000123456ull, UINT64_MAX};
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hdr),          cmocka_unit_test(test_uint),
	    cmocka_unit_test(test_uint_bytes),   cmocka_unit_test(test_time),
	    cmocka_unit_test(test_nesting),      cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_gmtime_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
