/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shard numbers (issue 14): the URL of a shard and back (common/conf.c),
 * the shard of a certificate (crlgen/shards.c), and the shard byte of a
 * store record (store/record.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/conf.h"
#include "crlgen/internal.h"
#include "store/record.h"
#include "store/store.h"

static struct vg_conf_ca shard_ca(int n, char *url)
{
	struct vg_conf_ca c;
	memset(&c, 0, sizeof(c));
	c.name = "a";
	c.crl_shards = n;
	c.crl_shard_url = url;
	return c;
}

static void test_shard_url(void **state)
{
	(void)state;
	char tpl[] = "http://crl.example/crl/a/%u.crl", out[128];
	struct vg_conf_ca c = shard_ca(64, tpl);
	assert_int_equal(vg_conf_shard_url(&c, 7, out, sizeof(out)), 30);
	assert_string_equal(out, "http://crl.example/crl/a/7.crl");
	assert_int_equal(vg_conf_shard_url(&c, 7, out, 10), -1); /* does not fit */
	for (unsigned k = 1; k <= 64; k++) {
		int n = vg_conf_shard_url(&c, k, out, sizeof(out));
		assert_int_equal(vg_conf_shard_of_url(&c, out, (size_t)n), k);
		const char *path = vg_conf_url_path(out);
		assert_int_equal(vg_conf_shard_of_path(&c, path, strlen(path)), k);
	}
	static const char *const no[] = {
	        "http://crl.example/crl/a/0.crl",  "http://crl.example/crl/a/65.crl",
	        "http://crl.example/crl/a/07.crl", "http://crl.example/crl/a/.crl",
	        "http://crl.example/crl/a/+7.crl", "http://crl.example/crl/a/7.crl ",
	        "http://crl.example/crl/b/7.crl",  "https://crl.example/crl/a/7.crl",
	        "http://crl.example/crl/a/7.CRL",  "http://crl.example/crl/a/100000.crl",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(vg_conf_shard_of_url(&c, no[i], strlen(no[i])), 0);
	/* Byte for byte: the length given counts, not a NUL. */
	const char *u = "http://crl.example/crl/a/7.crlX";
	assert_int_equal(vg_conf_shard_of_url(&c, u, strlen(u) - 1), 7);
	/* No shards, no match. */
	struct vg_conf_ca none = shard_ca(0, NULL);
	assert_int_equal(vg_conf_shard_of_url(&none, u, strlen(u) - 1), 0);
	assert_null(vg_conf_url_path("ldap://x/y"));
	assert_null(vg_conf_url_path("http://host"));
	assert_null(vg_conf_url_path("http:///path"));
	assert_string_equal(vg_conf_url_path("http://h:8080/p/q.crl"), "/p/q.crl");
}

static void test_shard_of(void **state)
{
	(void)state;
	char tpl[] = "http://c/%u.crl";
	struct vg_conf_ca c = shard_ca(7, tpl);
	struct vg_cert cert = {0};
	/* (serial mod N) + 1, the serial as a big-endian integer. */
	static const struct {
		uint8_t b[4];
		uint8_t len;
		unsigned want;
	} cases[] = {
	        {{0x00}, 1, 1},
	        {{0x06}, 1, 7},
	        {{0x07}, 1, 1},
	        {{0x01, 0x00}, 2, 256 % 7 + 1},
	        {{0xff, 0xff, 0xff, 0xff}, 4, 0xffffffffu % 7 + 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_serial s = {.len = cases[i].len};
		memcpy(s.b, cases[i].b, cases[i].len);
		assert_int_equal(crlgen_shard_of(&c, &s, &cert), cases[i].want);
	}
	/* A stored shard wins; one beyond the configured count does not. */
	struct vg_serial s = {.len = 1, .b = {0x06}};
	cert.flags = VG_CERT_HAS_SHARD;
	cert.crl_shard = 3;
	assert_int_equal(crlgen_shard_of(&c, &s, &cert), 3);
	cert.crl_shard = 8;
	assert_int_equal(crlgen_shard_of(&c, &s, &cert), 7);
	c.crl_shards = 0;
	assert_int_equal(crlgen_shard_of(&c, &s, &cert), 0);
}

static void test_record_shard(void **state)
{
	(void)state;
	uint8_t buf[REC_MAX];
	struct vg_cert c = {.status = VG_STATUS_REVOKED,
	                    .reason = VG_REASON_KEY_COMPROMISE,
	                    .flags = VG_CERT_HAS_NOT_AFTER,
	                    .revoked_at = 1700000000,
	                    .not_after = 1800000000};
	size_t plain = rec_encode(&c, buf);
	for (unsigned k = 1; k <= VG_CRL_SHARDS_MAX; k += 85) {
		c.flags = VG_CERT_HAS_NOT_AFTER | VG_CERT_HAS_SHARD;
		c.crl_shard = (uint16_t)k;
		size_t n = rec_encode(&c, buf);
		assert_int_equal(n, plain + 1); /* one byte */
		assert_int_equal(buf[n - 1], k - 1);
		struct vg_cert d;
		assert_int_equal(rec_decode(buf, n, &d), 0);
		assert_int_equal(d.flags, c.flags);
		assert_int_equal(d.crl_shard, k);
		assert_int_equal(d.not_after, c.not_after);
		assert_int_equal(rec_decode(buf, n - 1, &d), -EBADMSG);
	}
	c.crl_shard = VG_CRL_SHARDS_MAX;
	size_t n = rec_encode(&c, buf);
	assert_int_equal(buf[n - 1], 255);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_shard_url),
	        cmocka_unit_test(test_shard_of),
	        cmocka_unit_test(test_record_shard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
