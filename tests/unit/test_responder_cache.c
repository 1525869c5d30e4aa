/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the responder's shared answer cache against a real store, base64. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "responder/cache.h"
#include "responder/metrics.h"
#include "common/text.h"

static struct vg_serial serial_of(unsigned v)
{
	struct vg_serial s = {.len = 2, .b = {(uint8_t)(v >> 8), (uint8_t)v}};
	return s;
}

static void put(uint64_t snap, uint32_t ca, unsigned serial, const char *certid, const char *der,
                int64_t refresh_at)
{
	struct centry t;
	memset(&t, 0, sizeof(t));
	t.ca_id = ca;
	t.serial = serial_of(serial);
	t.refresh_at = refresh_at;
	t.next_update = refresh_at + 100;
	t.certid_len = (uint32_t)strlen(certid);
	t.der_len = (uint32_t)strlen(der);
	/* The request bytes: "req:" and the CertID. */
	char req[64];
	snprintf(req, sizeof(req), "req:%u:%u:%s", ca, serial, certid);
	t.req_len = (uint32_t)strlen(req);
	cache_put(snap, &t, (const uint8_t *)certid, (const uint8_t *)der, (const uint8_t *)req);
}

static const char *get_raw(uint32_t ca, unsigned serial, const char *certid, int64_t now)
{
	static char buf[256];
	char req[64];
	snprintf(req, sizeof(req), "req:%u:%u:%s", ca, serial, certid);
	const struct centry *e = cache_get_raw((const uint8_t *)req, strlen(req), now);
	if (!e)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)e->der_len, (const char *)e->data + e->certid_len);
	return buf;
}

static const char *get_stale(uint32_t ca, unsigned serial, const char *certid, int64_t now)
{
	static char buf[256];
	struct vg_serial s = serial_of(serial);
	const struct centry *e =
	        cache_get_stale(ca, &s, (const uint8_t *)certid, strlen(certid), now);
	if (!e)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)e->der_len, (const char *)e->data + e->certid_len);
	return buf;
}

static const char *get(uint32_t ca, unsigned serial, const char *certid, int64_t now)
{
	static char buf[256];
	struct vg_serial s = serial_of(serial);
	const struct centry *e = cache_get(ca, &s, (const uint8_t *)certid, strlen(certid), now);
	if (!e)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)e->der_len, (const char *)e->data + e->certid_len);
	return buf;
}

static void test_put_get_evict(void **state)
{
	(void)state;
	assert_int_equal(cache_init(3, 2), 0);
	cache_quiescent(0);
	cache_quiescent(1);
	/* Nothing is cached before the store counter is known. */
	put(1, 7, 1, "cid-a", "answer-a", 1000);
	assert_null(get(7, 1, "cid-a", 10));
	assert_int_equal(cache_apply_changes(NULL, 5), 0);
	put(5, 7, 1, "cid-a", "answer-a", 1000);
	assert_string_equal(get(7, 1, "cid-a", 10), "answer-a");
	/* Variants under one key are told apart by the CertID. */
	put(5, 7, 1, "cid-b", "answer-b", 1000);
	assert_string_equal(get(7, 1, "cid-b", 10), "answer-b");
	assert_string_equal(get(7, 1, "cid-a", 10), "answer-a");
	assert_null(get(8, 1, "cid-a", 10));
	assert_null(get(7, 2, "cid-a", 10));
	/* A snapshot older than the applied changes is not cached. */
	put(4, 7, 3, "cid-c", "stale", 1000);
	assert_null(get(7, 3, "cid-c", 10));
	/* Past its refresh point an answer is not served. */
	assert_null(get(7, 1, "cid-a", 1000));
	/* Found by the request bytes too. */
	assert_string_equal(get_raw(7, 1, "cid-a", 10), "answer-a");
	assert_string_equal(get_raw(7, 1, "cid-b", 10), "answer-b");
	assert_null(get_raw(7, 2, "cid-a", 10));
	assert_null(get_raw(7, 1, "cid-a", 1000));
	/* A newer answer for the same CertID replaces the older. */
	put(5, 7, 1, "cid-a", "answer-a2", 1000);
	assert_string_equal(get(7, 1, "cid-a", 10), "answer-a2");
	assert_string_equal(get_raw(7, 1, "cid-a", 10), "answer-a2");
	/* At most 3 entries: the oldest goes. */
	put(5, 7, 4, "cid-d", "answer-d", 1000);
	put(5, 7, 5, "cid-e", "answer-e", 1000);
	assert_null(get(7, 1, "cid-b", 10));
	assert_null(get_raw(7, 1, "cid-b", 10));
	assert_string_equal(get(7, 5, "cid-e", 10), "answer-e");
	size_t n;
	int64_t oldest = cache_sweep(10, &n);
	assert_int_equal(n, 3);
	assert_int_equal(oldest, 1100);
	/* Past its refresh point an answer is no longer found, except as the
	 * stale answer for when signing fails, until its nextUpdate; the sweep
	 * drops it at nextUpdate. */
	put(5, 7, 6, "cid-f", "answer-f", 20);
	assert_null(get(7, 6, "cid-f", 30));
	assert_null(get_raw(7, 6, "cid-f", 30));
	assert_string_equal(get_stale(7, 6, "cid-f", 30), "answer-f");
	assert_null(get_stale(7, 6, "cid-f", 120));
	oldest = cache_sweep(30, &n);
	assert_int_equal(n, 3);
	assert_int_equal(oldest, 120);
	oldest = cache_sweep(120, &n);
	assert_int_equal(n, 2);
	assert_null(get_stale(7, 6, "cid-f", 30));
	cache_quiescent(0);
	cache_quiescent(1);
	cache_clear();
	assert_null(get(7, 5, "cid-e", 10));
	cache_quiescent(0);
	cache_quiescent(1);
	cache_destroy();
}

/* The stale-snapshot guard of cache_put: an answer read from a snapshot
 * older than the changes already applied may carry a status those changes
 * replaced, so it is not kept; one read from that snapshot or a newer one is. */
static void test_stale_snapshot_guard(void **state)
{
	(void)state;
	assert_int_equal(cache_init(16, 2), 0);
	cache_quiescent(0);
	cache_quiescent(1);
	/* No change applied yet: no snapshot is known to be current. */
	put(0, 3, 1, "cid", "before", 1000);
	put(UINT64_MAX, 3, 2, "cid", "before", 1000);
	assert_null(get(3, 1, "cid", 10));
	assert_null(get(3, 2, "cid", 10));
	assert_int_equal(cache_apply_changes(NULL, 7), 0);
	put(6, 3, 1, "cid", "older", 1000);
	assert_null(get(3, 1, "cid", 10));
	assert_null(get_raw(3, 1, "cid", 10));
	put(7, 3, 2, "cid", "same", 1000);
	assert_string_equal(get(3, 2, "cid", 10), "same");
	put(8, 3, 3, "cid", "newer", 1000);
	assert_string_equal(get(3, 3, "cid", 10), "newer");
	/* An older snapshot does not replace the current answer either. */
	put(6, 3, 2, "cid", "older", 1000);
	assert_string_equal(get(3, 2, "cid", 10), "same");
	cache_quiescent(0);
	cache_quiescent(1);
	cache_destroy();
}

static char store_dir[64];

static void rmtree(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_invalidation_from_change_log(void **state)
{
	(void)state;
	struct vg_store *st;
	struct vg_txn *txn;
	uint64_t cnt;
	snprintf(store_dir, sizeof(store_dir), "/tmp/vg-cache-XXXXXX");
	assert_non_null(mkdtemp(store_dir));
	assert_int_equal(vg_store_open(&st, store_dir, VG_STORE_CREATE), 0);
	struct vg_audit who = {"test", "test"};
	struct vg_add_item items[3];
	memset(items, 0, sizeof(items));
	for (int i = 0; i < 3; i++) {
		items[i].serial = serial_of(0x100 + (unsigned)i);
		items[i].cert.status = VG_STATUS_GOOD;
		items[i].cert.reason = VG_REASON_NONE;
	}
	assert_int_equal(vg_store_add(st, "ca1", items, 3, &who, NULL, NULL, NULL), 0);
	uint32_t id = vg_ca_id("ca1");

	assert_int_equal(cache_init(100, 1), 0);
	cache_quiescent(0);
	assert_int_equal(vg_txn_begin(st, &txn), 0);
	assert_int_equal(vg_store_counter(txn, &cnt), 0);
	assert_int_equal(cache_apply_changes(txn, cnt), 0);
	for (unsigned i = 0; i < 3; i++)
		put(cnt, id, 0x100 + i, "cid", "good", 1000);
	put(cnt, id + 1, 0x100, "cid", "other-ca", 1000);

	/* One revocation drops the answers for that serial only. */
	struct vg_serial s = serial_of(0x101);
	struct vg_revocation rev = {.revoked_at = 1000, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(vg_store_revoke(st, "ca1", &s, 1, &rev, &who, NULL, NULL, NULL), 0);
	assert_int_equal(vg_txn_renew(txn), 0);
	uint64_t cnt2;
	assert_int_equal(vg_store_counter(txn, &cnt2), 0);
	assert_true(cnt2 > cnt);
	/* A worker still on the old snapshot cannot cache what it read. */
	assert_int_equal(cache_apply_changes(txn, cnt2), 0);
	put(cnt, id, 0x101, "cid", "stale-good", 1000);
	assert_null(get(id, 0x101, "cid", 10));
	assert_null(get_raw(id, 0x101, "cid", 10));
	assert_string_equal(get_raw(id, 0x100, "cid", 10), "good");
	assert_string_equal(get(id, 0x100, "cid", 10), "good");
	assert_string_equal(get(id, 0x102, "cid", 10), "good");

	/* Freezing the CA drops every answer of it, and none of another CA. */
	assert_int_equal(vg_store_freeze(st, "ca1", true, 2000, &who), 0);
	assert_int_equal(vg_txn_renew(txn), 0);
	assert_int_equal(vg_store_counter(txn, &cnt), 0);
	assert_int_equal(cache_apply_changes(txn, cnt), 0);
	assert_null(get(id, 0x100, "cid", 10));
	assert_null(get(id, 0x102, "cid", 10));
	assert_null(get_raw(id, 0x100, "cid", 10));
	assert_string_equal(get(id + 1, 0x100, "cid", 10), "other-ca");

	vg_txn_end(txn);
	vg_store_close(st);
	cache_quiescent(0);
	cache_destroy();
	rmtree(store_dir);
}

/* Another store under the cache (a restore) or a change log pruned past
 * where it stood: nothing cached survives (issue 16). */
static void test_store_replaced_or_log_pruned(void **state)
{
	(void)state;
	assert_int_equal(cache_init(100, 1), 0);
	cache_quiescent(0);
	/* The counter went back: another store. */
	assert_int_equal(cache_apply_changes(NULL, 9), 0);
	put(9, 7, 1, "cid", "from-old-store", 1000);
	assert_string_equal(get(7, 1, "cid", 10), "from-old-store");
	assert_int_equal(cache_apply_changes(NULL, 4), 0);
	assert_null(get(7, 1, "cid", 10));
	/* cache_reset (a store reopened): cleared, and the next counter seen
	 * is taken as is, even a lower one. */
	put(4, 7, 2, "cid", "x", 1000);
	assert_string_equal(get(7, 2, "cid", 10), "x");
	cache_reset();
	assert_null(get(7, 2, "cid", 10));
	assert_int_equal(cache_apply_changes(NULL, 2), 0);
	put(2, 7, 2, "cid", "y", 1000);
	assert_string_equal(get(7, 2, "cid", 10), "y");
	cache_quiescent(0);
	cache_destroy();

	/* The log pruned past the cache's position: all dropped. */
	struct vg_store *st;
	struct vg_txn *txn;
	snprintf(store_dir, sizeof(store_dir), "/tmp/vg-cache-XXXXXX");
	assert_non_null(mkdtemp(store_dir));
	assert_int_equal(vg_store_open(&st, store_dir, VG_STORE_CREATE), 0);
	struct vg_audit who = {"test", "test"};
	struct vg_add_item it;
	memset(&it, 0, sizeof(it));
	it.cert.status = VG_STATUS_GOOD;
	it.cert.reason = VG_REASON_NONE;
	setenv("VIGIL_NOW", "1700000000", 1);
	for (unsigned i = 0; i < 3; i++) {
		it.serial = serial_of(0x200 + i);
		assert_int_equal(vg_store_add(st, "ca1", &it, 1, &who, NULL, NULL, NULL), 0);
	}
	unsetenv("VIGIL_NOW");
	uint32_t id = vg_ca_id("ca1");
	assert_int_equal(cache_init(100, 1), 0);
	cache_quiescent(0);
	assert_int_equal(cache_apply_changes(NULL, 1), 0); /* the cache stood at 1 */
	put(1, id, 0x999, "cid", "cached", 1000);
	struct vg_prune_ca pc = {.name = "ca1", .certs = false};
	struct vg_prune_result r;
	assert_int_equal(vg_store_prune(st, 1700000000 + 2 * 86400, 86400, 365 * 86400, &pc, 1,
	                                &who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.log_floor, 3);
	assert_int_equal(vg_txn_begin(st, &txn), 0);
	assert_int_equal(cache_apply_changes(txn, 3), 0);
	assert_null(get(id, 0x999, "cid", 10));
	vg_txn_end(txn);
	vg_store_close(st);
	cache_quiescent(0);
	cache_destroy();
	rmtree(store_dir);
}

/* ---- Floods: a keyed hash, short chains ---------------------------------- */

static struct vg_serial serial4(uint32_t v)
{
	struct vg_serial s = {.len = 4,
	                      .b = {0x01, (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v}};
	return s;
}

static void put4(uint64_t snap, uint32_t ca, uint32_t v)
{
	struct centry t;
	memset(&t, 0, sizeof(t));
	t.ca_id = ca;
	t.serial = serial4(v);
	t.refresh_at = 1000;
	t.next_update = 1100;
	char req[32];
	snprintf(req, sizeof(req), "req4:%u:%u", ca, v);
	t.certid_len = 3;
	t.der_len = (uint32_t)strlen(req);
	t.req_len = (uint32_t)strlen(req);
	cache_put(snap, &t, (const uint8_t *)"cid", (const uint8_t *)req, (const uint8_t *)req);
}

static bool found4(uint32_t ca, uint32_t v)
{
	struct vg_serial s = serial4(v);
	char req[32];
	snprintf(req, sizeof(req), "req4:%u:%u", ca, v);
	const struct centry *e = cache_get(ca, &s, (const uint8_t *)"cid", 3, 10);
	const struct centry *r = cache_get_raw((const uint8_t *)req, strlen(req), 10);
	assert_true(e == r);
	return e != NULL;
}

/* The responder's hash before the fix: unkeyed FNV-1a over (CA, serial),
 * folded, which anyone can search offline for serials sharing a bucket. */
static uint32_t fnv_old(uint32_t ca_id, const struct vg_serial *s)
{
	uint32_t h = 2166136261u ^ ca_id;
	h *= 16777619u;
	for (unsigned i = 0; i < s->len; i++) {
		h ^= s->b[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

static void test_siphash_vectors(void **state)
{
	(void)state;
	/* The SipHash paper's Appendix A: key 00..0f, messages 00 01 .. (n-1). */
	uint8_t key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	assert_true(cache_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(cache_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
	assert_true(cache_siphash24(key, msg, 8) == 0x93f5f5799a932462ull);
	assert_true(cache_siphash24(key, msg, 63) == 0x958a324ceb064572ull);
}

static void test_hash_keyed_per_cache(void **state)
{
	(void)state;
	/* Two caches (two processes) place the same serials differently. */
	uint32_t h1[64];
	int differ = 0;
	assert_int_equal(cache_init(100, 1), 0);
	for (uint32_t i = 0; i < 64; i++) {
		struct vg_serial s = serial4(i);
		h1[i] = cache_key_hash(7, &s);
	}
	cache_destroy();
	assert_int_equal(cache_init(100, 1), 0);
	for (uint32_t i = 0; i < 64; i++) {
		struct vg_serial s = serial4(i);
		differ += cache_key_hash(7, &s) != h1[i];
	}
	cache_destroy();
	assert_true(differ >= 60);
}

static void test_fnv_collisions_spread(void **state)
{
	(void)state;
	/* 200 serials that the old hash put into one of 1,024 buckets (the
	 * table cache_init(500) makes), found offline as an attacker would. */
	enum { N = 200 };
	uint32_t v[N];
	int n = 0;
	for (uint32_t i = 0; n < N && i < (1u << 24); i++) {
		struct vg_serial s = serial4(i);
		if ((fnv_old(7, &s) & 1023) == 5)
			v[n++] = i;
	}
	assert_int_equal(n, N);
	assert_int_equal(cache_init(500, 1), 0);
	cache_quiescent(0);
	assert_int_equal(cache_apply_changes(NULL, 5), 0);
	for (int i = 0; i < N; i++)
		put4(5, 7, v[i]);
	/* They spread: no chain is long, and none was evicted. */
	size_t longest = cache_chain_max();
	assert_true(longest <= CACHE_CHAIN_MAX);
	int kept = 0;
	for (int i = 0; i < N; i++)
		kept += found4(7, v[i]);
	assert_int_equal(kept, N);
	cache_quiescent(0);
	cache_destroy();
}

static void test_chain_walk_bounded(void **state)
{
	(void)state;
	/* Whoever knows the key (here: the test) still cannot make a chain
	 * longer than CACHE_CHAIN_MAX: the oldest entries of a full chain go. */
	enum { N = 40 };
	assert_int_equal(cache_init(500, 1), 0);
	cache_quiescent(0);
	assert_int_equal(cache_apply_changes(NULL, 5), 0);
	uint32_t v[N];
	int n = 0;
	struct vg_serial s0 = serial4(0);
	uint32_t bucket = cache_key_hash(7, &s0) & 1023;
	for (uint32_t i = 0; n < N && i < (1u << 24); i++) {
		struct vg_serial s = serial4(i);
		if ((cache_key_hash(7, &s) & 1023) == bucket)
			v[n++] = i;
	}
	assert_int_equal(n, N);
	for (int i = 0; i < N; i++)
		put4(5, 7, v[i]);
	assert_true(cache_chain_max() <= CACHE_CHAIN_MAX);
	for (int i = 0; i < N; i++)
		assert_int_equal(found4(7, v[i]), i >= N - CACHE_CHAIN_MAX);
	size_t count;
	cache_sweep(10, &count);
	assert_int_equal(count, CACHE_CHAIN_MAX);
	cache_quiescent(0);
	cache_destroy();
}

static void test_b64(void **state)
{
	(void)state;
	uint8_t out[64];
	assert_int_equal(vg_b64_decode("TWFu", 4, out), 3);
	assert_memory_equal(out, "Man", 3);
	assert_int_equal(vg_b64_decode("TWE=", 4, out), 2);
	assert_int_equal(vg_b64_decode("TWE", 3, out), 2); /* padding optional */
	assert_int_equal(vg_b64_decode("TQ==", 4, out), 1);
	assert_int_equal(vg_b64_decode("+/+/", 4, out), 3);
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
	assert_int_equal(vg_b64_decode("-_-_", 4, out), 3); /* URL-safe alphabet */
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
	assert_int_equal(vg_b64_decode("TWFuT", 5, out), -1);
	assert_int_equal(vg_b64_decode("TW!u", 4, out), -1);
	assert_int_equal(vg_b64_decode("TW=u", 4, out), -1);
	assert_int_equal(vg_b64_decode("", 0, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_put_get_evict),
	        cmocka_unit_test(test_invalidation_from_change_log),
	        cmocka_unit_test(test_store_replaced_or_log_pruned),
	        cmocka_unit_test(test_stale_snapshot_guard),
	        cmocka_unit_test(test_siphash_vectors),
	        cmocka_unit_test(test_hash_keyed_per_cache),
	        cmocka_unit_test(test_fnv_collisions_spread),
	        cmocka_unit_test(test_chain_walk_bounded),
	        cmocka_unit_test(test_b64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
