/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the store API's semantics on a mkdtemp() directory (the store
 * fixture of tests/common/): serial ordering, the revoked-only index, the
 * change counter and log (a large add collapses it), the revocation rules,
 * hold sync, window revocations, durability across reopen, and a store not
 * initialised or of another schema version. The map and the point index are
 * in test_store_map.c.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "tests/common/store_fixture.h"

static uint64_t counter_of(struct vg_store *st)
{
	struct vg_txn *t;
	uint64_t c;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	assert_int_equal(vg_store_counter(t, &c), 0);
	vg_txn_end(t);
	return c;
}

static void test_serial_order(void **state)
{
	struct store_fx *f = *state;
	/* Given out of order and with different lengths; the store must walk
	 * them as integers. */
	const char *in[] = {"0100", "FF", "01",     "8000000000000000000000000000000000000000",
	                    "00",   "7F", "010000", "FFFF"};
	const char *want[] = {"00",   "01",   "7F",     "FF",
	                      "0100", "FFFF", "010000", "8000000000000000000000000000000000000000"};
	struct vg_add_item items[8];
	for (int i = 0; i < 8; i++)
		items[i] = store_fx_good_item(in[i], 0);
	/* A second CA's certificates must not show up in the first's walk. */
	struct vg_add_item other = store_fx_good_item("05", 0);
	assert_int_equal(vg_store_add(f->st, "other", &other, 1, &store_fx_who, NULL, NULL, NULL),
	                 0);
	struct vg_write_result r;
	assert_int_equal(vg_store_add(f->st, "ca1", items, 8, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(r.added, 8);
	struct vg_txn *t;
	struct vg_iter *it;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_iter_open(t, vg_ca_id("ca1"), 0, &it), 0);
	struct vg_serial s;
	struct vg_cert c;
	char hex[64];
	int n = 0;
	while (vg_iter_next(it, &s, &c) == 1) {
		vg_serial_format(&s, hex, sizeof(hex));
		assert_true(n < 8);
		assert_string_equal(hex, want[n]);
		n++;
	}
	assert_int_equal(n, 8);
	vg_iter_close(it);
	vg_txn_end(t);
}

static void test_revoked_index(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item items[6];
	const char *s[] = {"10", "20", "30", "40", "50", "60"};
	for (int i = 0; i < 6; i++)
		items[i] = store_fx_good_item(s[i], 0);
	assert_int_equal(vg_store_add(f->st, "ca1", items, 6, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_serial rv[] = {store_fx_serial("50"), store_fx_serial("20")};
	struct vg_revocation rev = {.revoked_at = 1000, .reason = VG_REASON_SUPERSEDED};
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", rv, 2, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_serial hold = store_fx_serial("40");
	rev.reason = VG_REASON_CERTIFICATE_HOLD;
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &hold, 1, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(vg_store_release(f->st, "ca1", &hold, &store_fx_who), 0);

	struct vg_txn *t;
	struct vg_iter *it;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_iter_open(t, vg_ca_id("ca1"), VG_ITER_REVOKED, &it), 0);
	struct vg_serial sr;
	struct vg_cert c;
	char hex[64];
	const char *want[] = {"20", "50"};
	int n = 0;
	while (vg_iter_next(it, &sr, &c) == 1) {
		vg_serial_format(&sr, hex, sizeof(hex));
		assert_true(n < 2);
		assert_string_equal(hex, want[n]);
		assert_int_equal(c.status, VG_STATUS_REVOKED);
		assert_int_equal(c.reason, VG_REASON_SUPERSEDED);
		assert_int_equal(c.revoked_at, 1000);
		n++;
	}
	assert_int_equal(n, 2);
	vg_iter_close(it);
	struct vg_ca_state cs;
	assert_int_equal(vg_store_ca_get(t, "ca1", &cs), 0);
	assert_int_equal(cs.n_certs, 6);
	assert_int_equal(cs.n_revoked, 2);
	assert_int_equal(cs.n_hold, 0);
	vg_txn_end(t);
}

struct collect {
	int n;
	struct vg_change c[16];
};

static int collect_cb(const struct vg_change *c, void *arg)
{
	struct collect *col = arg;
	if (col->n < 16)
		col->c[col->n] = *c;
	col->n++;
	return 0;
}

static void test_counter_and_log(void **state)
{
	struct store_fx *f = *state;
	assert_int_equal(counter_of(f->st), 0);
	struct vg_add_item it = store_fx_good_item("AA", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(counter_of(f->st), 1);
	/* A no-op is not a write. */
	it = store_fx_good_item("AA", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(counter_of(f->st), 1);
	struct vg_serial s = store_fx_serial("AA");
	struct vg_revocation rev = {.revoked_at = 5, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &s, 1, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(counter_of(f->st), 2);
	assert_int_equal(vg_store_freeze(f->st, "ca1", true, 77, &store_fx_who), 0);
	assert_int_equal(counter_of(f->st), 3);

	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	struct collect col = {0};
	assert_int_equal(vg_store_changes_foreach(t, 0, collect_cb, &col), 0);
	assert_int_equal(col.n, 3);
	assert_int_equal(col.c[0].counter, 1);
	assert_int_equal(col.c[0].op, VG_CHANGE_ADD);
	assert_int_equal(col.c[1].counter, 2);
	assert_int_equal(col.c[1].op, VG_CHANGE_REVOKE);
	assert_int_equal(col.c[1].serial.len, 1);
	assert_int_equal(col.c[1].serial.b[0], 0xAA);
	assert_int_equal(col.c[1].ca_id, vg_ca_id("ca1"));
	assert_int_equal(col.c[2].op, VG_CHANGE_CA);
	assert_int_equal(col.c[2].serial.len, 0);
	col.n = 0;
	assert_int_equal(vg_store_changes_foreach(t, 2, collect_cb, &col), 0);
	assert_int_equal(col.n, 1);
	struct vg_ca_state cs;
	assert_int_equal(vg_store_ca_get(t, "ca1", &cs), 0);
	assert_true(cs.frozen);
	assert_int_equal(cs.frozen_at, 77);
	vg_txn_end(t);
}

static void test_large_add_collapses_log(void **state)
{
	struct store_fx *f = *state;
	size_t n = 5000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[16];
		snprintf(hex, sizeof(hex), "%zx", i + 1);
		items[i] = store_fx_good_item(hex, 0);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, NULL, NULL), 0);
	free(items);
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	struct collect col = {0};
	assert_int_equal(vg_store_changes_foreach(t, 0, collect_cb, &col), 0);
	assert_int_equal(col.n, 1);
	assert_int_equal(col.c[0].op, VG_CHANGE_CA);
	vg_txn_end(t);
}

static void test_revocation_rules(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item items[] = {store_fx_good_item("01", 0), store_fx_good_item("02", 0),
	                              store_fx_good_item("03", 0)};
	assert_int_equal(vg_store_add(f->st, "ca1", items, 3, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_cert c;
	struct vg_write_result r;
	struct vg_serial s1 = store_fx_serial("01"), s2 = store_fx_serial("02"),
	                 s9 = store_fx_serial("09");

	/* superseded, then keyCompromise: reason raised, time kept. */
	struct vg_revocation rev = {.revoked_at = 100, .reason = VG_REASON_SUPERSEDED};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, 1);
	rev = (struct vg_revocation){.revoked_at = 200,
	                             .reason = VG_REASON_KEY_COMPROMISE,
	                             .has_invalidity = true,
	                             .invalidity_date = 50};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, 1);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "01", &c), 0);
	assert_int_equal(c.reason, VG_REASON_KEY_COMPROMISE);
	assert_int_equal(c.revoked_at, 100);
	assert_true(c.flags & VG_CERT_HAS_INVALIDITY);
	assert_int_equal(c.invalidity_date, 50);
	/* Another reason after keyCompromise changes nothing. */
	rev = (struct vg_revocation){.revoked_at = 300, .reason = VG_REASON_SUPERSEDED};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, 0);
	assert_int_equal(r.unchanged, 1);
	/* A good certificate stays revoked when re-added as good. */
	struct vg_add_item again = store_fx_good_item("01", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &again, 1, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(r.kept, 1);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "01", &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);

	/* Hold, then cessationOfOperation replaces it with its own time. */
	rev = (struct vg_revocation){.revoked_at = 400, .reason = VG_REASON_CERTIFICATE_HOLD};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s2, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	rev = (struct vg_revocation){.revoked_at = 500, .reason = VG_REASON_CESSATION_OF_OPERATION};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s2, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "02", &c), 0);
	assert_int_equal(c.reason, VG_REASON_CESSATION_OF_OPERATION);
	assert_int_equal(c.revoked_at, 500);
	/* Release works only on hold. */
	assert_int_equal(vg_store_release(f->st, "ca1", &s2, &store_fx_who), -EPERM);
	assert_int_equal(vg_store_release(f->st, "ca1", &s9, &store_fx_who), -ENOENT);
	/* Hold on a revoked certificate changes nothing. */
	rev = (struct vg_revocation){.revoked_at = 600, .reason = VG_REASON_CERTIFICATE_HOLD};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s2, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.unchanged, 1);

	/* A serial never seen is recorded as revoked and flagged. */
	rev = (struct vg_revocation){.revoked_at = 700, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s9, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.missing, 1);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "09", &c), 0);
	assert_true(c.flags & VG_CERT_NOT_ISSUED);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "0A", &c), -ENOENT);
	assert_int_equal(store_fx_status_of(f->st, "other", "01", &c), -ENOENT);
}

static void test_hold_sync(void **state)
{
	struct store_fx *f = *state;
	/* The CA's database puts 01 and 02 on hold. */
	struct vg_add_item held[2] = {store_fx_good_item("01", 0), store_fx_good_item("02", 0)};
	for (int i = 0; i < 2; i++) {
		held[i].cert.status = VG_STATUS_REVOKED;
		held[i].cert.reason = VG_REASON_CERTIFICATE_HOLD;
		held[i].cert.revoked_at = 10;
	}
	struct vg_add_item again[2] = {held[0], held[1]};
	assert_int_equal(vg_store_add(f->st, "ca1", held, 2, &store_fx_who, NULL, NULL, NULL), 0);
	/* The operator lifts 01's hold in Vigil: a later sync of the same
	 * database must not put it back. */
	struct vg_serial s1 = store_fx_serial("01");
	assert_int_equal(vg_store_release(f->st, "ca1", &s1, &store_fx_who), 0);
	struct vg_write_result r;
	assert_int_equal(vg_store_add(f->st, "ca1", again, 2, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 0);
	struct vg_cert c;
	assert_int_equal(store_fx_status_of(f->st, "ca1", "01", &c), 0);
	assert_int_equal(c.status, VG_STATUS_GOOD);
	assert_true(c.flags & VG_CERT_RELEASED);
	/* The database lifts 02's hold (removeFromCRL): the sync lifts it. */
	struct vg_add_item lift = store_fx_good_item("02", 0);
	lift.cert.flags |= VG_CERT_LIFT_HOLD;
	assert_int_equal(vg_store_add(f->st, "ca1", &lift, 1, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(r.released, 1);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "02", &c), 0);
	assert_int_equal(c.status, VG_STATUS_GOOD);
	/* An operator's explicit hold still applies to a released certificate. */
	struct vg_revocation rev = {.revoked_at = 20, .reason = VG_REASON_CERTIFICATE_HOLD};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, 1);
	/* A lift never touches a final revocation. */
	struct vg_serial s3 = store_fx_serial("03");
	rev = (struct vg_revocation){.revoked_at = 30, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s3, 1, &rev, &store_fx_who, &r, NULL, NULL),
	                 0);
	lift = store_fx_good_item("03", 0);
	lift.cert.flags |= VG_CERT_LIFT_HOLD;
	assert_int_equal(vg_store_add(f->st, "ca1", &lift, 1, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(store_fx_status_of(f->st, "ca1", "03", &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);
}

/* A window revocation leaves out the serials it is told to keep (the
 * responder's own certificate), counts them, and revokes the rest. */
static void test_revoke_window_keeps(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item items[] = {
	        store_fx_good_item("01", 1000), store_fx_good_item("02", 2000),
	        store_fx_good_item("03", 2500), store_fx_good_item("04", 2600)};
	assert_int_equal(vg_store_add(f->st, "ca1", items, 4, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_revocation rev = {.revoked_at = 9, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_serial keep[] = {store_fx_serial("03"),
	                           store_fx_serial("01")}; /* 01 is outside the window */
	struct vg_window win = {.after = 2000, .before = 3000, .keep = keep, .n_keep = 2};
	struct vg_write_result r;
	assert_int_equal(
	        vg_store_revoke_window(f->st, "ca1", &win, &rev, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 2);
	assert_int_equal(r.spared, 1);
	struct vg_cert c;
	const char *want[] = {"01", "02", "03", "04"};
	int status[] = {VG_STATUS_GOOD, VG_STATUS_REVOKED, VG_STATUS_GOOD, VG_STATUS_REVOKED};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(store_fx_status_of(f->st, "ca1", want[i], &c), 0);
		assert_int_equal(c.status, status[i]);
	}
	win.keep = NULL;
	assert_int_equal(
	        vg_store_revoke_window(f->st, "ca1", &win, &rev, &store_fx_who, &r, NULL, NULL),
	        -EINVAL);
}

static void test_revoke_window(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item items[] = {store_fx_good_item("01", 1000),
	                              store_fx_good_item("02", 2000),
	                              store_fx_good_item("03", 3000), store_fx_good_item("04", 0),
	                              store_fx_good_item("05", 2500)};
	assert_int_equal(vg_store_add(f->st, "ca1", items, 5, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_revocation rev = {.revoked_at = 9, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_write_result r;
	assert_int_equal(vg_store_revoke_window(f->st, "ca1",
	                                        &(struct vg_window){2000, 3000, NULL, 0}, &rev,
	                                        &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, 2);
	assert_int_equal(r.skipped, 1);
	struct vg_cert c;
	const char *want[] = {"01", "02", "03", "04", "05"};
	int status[] = {0, 1, 0, 0, 1};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(store_fx_status_of(f->st, "ca1", want[i], &c), 0);
		assert_int_equal(c.status, status[i]);
	}
}

static void test_durable_reopen(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item it = store_fx_good_item("1234", 42);
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_serial s = store_fx_serial("1234");
	struct vg_revocation rev = {.revoked_at = 1, .reason = VG_REASON_AFFILIATION_CHANGED};
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &s, 1, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	vg_store_close(f->st);
	f->st = NULL;
	struct vg_store *ro;
	assert_int_equal(vg_store_open(&ro, f->dir, VG_STORE_RDONLY), 0);
	struct vg_cert c;
	assert_int_equal(store_fx_status_of(ro, "ca1", "1234", &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);
	assert_int_equal(c.reason, VG_REASON_AFFILIATION_CHANGED);
	assert_int_equal(c.not_before, 42);
	/* Read-only handles refuse writes. */
	assert_int_equal(vg_store_freeze(ro, "ca1", true, 1, &store_fx_who), -EROFS);
	vg_store_close(ro);
	assert_int_equal(vg_store_open(&f->st, f->dir, 0), 0);
}

static void test_not_initialised_and_schema(void **state)
{
	struct store_fx *f = *state;
	struct vg_store *st;
	char empty[80];
	snprintf(empty, sizeof(empty), "%s/absent", f->dir);
	assert_int_equal(vg_store_open(&st, empty, 0), -ENODATA);
	assert_int_equal(vg_store_open(&st, empty, VG_STORE_RDONLY), -ENODATA);

	/* Write another schema version underneath, as a future Vigil would. */
	vg_store_close(f->st);
	f->st = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint8_t v[4] = {0, 0, 0, 99};
	MDB_val key = {6, "schema"}, val = {4, v};
	assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(vg_store_open(&st, f->dir, 0), -EPROTO);
	assert_int_equal(vg_store_open(&st, f->dir, VG_STORE_RDONLY), -EPROTO);
	/* Leave a usable store for teardown. */
	assert_int_equal(vg_store_open(&f->st, empty, VG_STORE_CREATE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_serial_order, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_revoked_index, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_counter_and_log, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_large_add_collapses_log, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_revocation_rules, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_hold_sync, store_fx_setup, store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_revoke_window, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_revoke_window_keeps, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_durable_reopen, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_not_initialised_and_schema, store_fx_setup,
	                                        store_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
