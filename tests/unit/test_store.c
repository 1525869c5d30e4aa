/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the store API on a mkdtemp() directory: serial ordering,
 * the revoked-only index, the change counter and log, revocation rules,
 * schema version, durability across reopen, and map growth under a reader.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/internal.h"
#include "store/store.h"
#include "tests/common/store_fixture.h"

static const struct vg_audit who = {"tester", "unit test"};

static struct vg_add_item good_item(const char *hex, int64_t nb)
{
	struct vg_add_item it;
	memset(&it, 0, sizeof(it));
	it.serial = store_fx_serial(hex);
	it.cert.status = VG_STATUS_GOOD;
	it.cert.reason = VG_REASON_NONE;
	if (nb) {
		it.cert.flags = VG_CERT_HAS_NOT_BEFORE;
		it.cert.not_before = nb;
	}
	return it;
}

/* spread_items makes |n| good certificates whose serials spread over the
 * key space, enough to grow the map. */
static struct vg_add_item *spread_items(size_t n)
{
	struct vg_add_item *items = calloc(n, sizeof(*items));
	assert_non_null(items);
	for (size_t i = 0; i < n; i++) {
		char hex[32];
		snprintf(hex, sizeof(hex), "%zx%08zx", i * 7919 + 3, i);
		items[i] = good_item(hex, 0);
	}
	return items;
}

static int status_of(struct vg_store *st, const char *ca, const char *hex, struct vg_cert *out)
{
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	struct vg_serial s = store_fx_serial(hex);
	int rc = vg_store_get(t, vg_ca_id(ca), &s, out);
	vg_txn_end(t);
	return rc;
}

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
		items[i] = good_item(in[i], 0);
	/* A second CA's certificates must not show up in the first's walk. */
	struct vg_add_item other = good_item("05", 0);
	assert_int_equal(vg_store_add(f->st, "other", &other, 1, &who, NULL, NULL, NULL), 0);
	struct vg_write_result r;
	assert_int_equal(vg_store_add(f->st, "ca1", items, 8, &who, &r, NULL, NULL), 0);
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
		items[i] = good_item(s[i], 0);
	assert_int_equal(vg_store_add(f->st, "ca1", items, 6, &who, NULL, NULL, NULL), 0);
	struct vg_serial rv[] = {store_fx_serial("50"), store_fx_serial("20")};
	struct vg_revocation rev = {.revoked_at = 1000, .reason = VG_REASON_SUPERSEDED};
	assert_int_equal(vg_store_revoke(f->st, "ca1", rv, 2, &rev, &who, NULL, NULL, NULL), 0);
	struct vg_serial hold = store_fx_serial("40");
	rev.reason = VG_REASON_CERTIFICATE_HOLD;
	assert_int_equal(vg_store_revoke(f->st, "ca1", &hold, 1, &rev, &who, NULL, NULL, NULL), 0);
	assert_int_equal(vg_store_release(f->st, "ca1", &hold, &who), 0);

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
	struct vg_add_item it = good_item("AA", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &who, NULL, NULL, NULL), 0);
	assert_int_equal(counter_of(f->st), 1);
	/* A no-op is not a write. */
	it = good_item("AA", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &who, NULL, NULL, NULL), 0);
	assert_int_equal(counter_of(f->st), 1);
	struct vg_serial s = store_fx_serial("AA");
	struct vg_revocation rev = {.revoked_at = 5, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s, 1, &rev, &who, NULL, NULL, NULL), 0);
	assert_int_equal(counter_of(f->st), 2);
	assert_int_equal(vg_store_freeze(f->st, "ca1", true, 77, &who), 0);
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
		items[i] = good_item(hex, 0);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, NULL, NULL), 0);
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
	struct vg_add_item items[] = {good_item("01", 0), good_item("02", 0), good_item("03", 0)};
	assert_int_equal(vg_store_add(f->st, "ca1", items, 3, &who, NULL, NULL, NULL), 0);
	struct vg_cert c;
	struct vg_write_result r;
	struct vg_serial s1 = store_fx_serial("01"), s2 = store_fx_serial("02"),
	                 s9 = store_fx_serial("09");

	/* superseded, then keyCompromise: reason raised, time kept. */
	struct vg_revocation rev = {.revoked_at = 100, .reason = VG_REASON_SUPERSEDED};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 1);
	rev = (struct vg_revocation){.revoked_at = 200,
	                             .reason = VG_REASON_KEY_COMPROMISE,
	                             .has_invalidity = true,
	                             .invalidity_date = 50};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 1);
	assert_int_equal(status_of(f->st, "ca1", "01", &c), 0);
	assert_int_equal(c.reason, VG_REASON_KEY_COMPROMISE);
	assert_int_equal(c.revoked_at, 100);
	assert_true(c.flags & VG_CERT_HAS_INVALIDITY);
	assert_int_equal(c.invalidity_date, 50);
	/* Another reason after keyCompromise changes nothing. */
	rev = (struct vg_revocation){.revoked_at = 300, .reason = VG_REASON_SUPERSEDED};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 0);
	assert_int_equal(r.unchanged, 1);
	/* A good certificate stays revoked when re-added as good. */
	struct vg_add_item again = good_item("01", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &again, 1, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.kept, 1);
	assert_int_equal(status_of(f->st, "ca1", "01", &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);

	/* Hold, then cessationOfOperation replaces it with its own time. */
	rev = (struct vg_revocation){.revoked_at = 400, .reason = VG_REASON_CERTIFICATE_HOLD};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s2, 1, &rev, &who, &r, NULL, NULL), 0);
	rev = (struct vg_revocation){.revoked_at = 500, .reason = VG_REASON_CESSATION_OF_OPERATION};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s2, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(status_of(f->st, "ca1", "02", &c), 0);
	assert_int_equal(c.reason, VG_REASON_CESSATION_OF_OPERATION);
	assert_int_equal(c.revoked_at, 500);
	/* Release works only on hold. */
	assert_int_equal(vg_store_release(f->st, "ca1", &s2, &who), -EPERM);
	assert_int_equal(vg_store_release(f->st, "ca1", &s9, &who), -ENOENT);
	/* Hold on a revoked certificate changes nothing. */
	rev = (struct vg_revocation){.revoked_at = 600, .reason = VG_REASON_CERTIFICATE_HOLD};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s2, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.unchanged, 1);

	/* A serial never seen is recorded as revoked and flagged. */
	rev = (struct vg_revocation){.revoked_at = 700, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s9, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.missing, 1);
	assert_int_equal(status_of(f->st, "ca1", "09", &c), 0);
	assert_true(c.flags & VG_CERT_NOT_ISSUED);
	assert_int_equal(status_of(f->st, "ca1", "0A", &c), -ENOENT);
	assert_int_equal(status_of(f->st, "other", "01", &c), -ENOENT);
}

static void test_hold_sync(void **state)
{
	struct store_fx *f = *state;
	/* The CA's database puts 01 and 02 on hold. */
	struct vg_add_item held[2] = {good_item("01", 0), good_item("02", 0)};
	for (int i = 0; i < 2; i++) {
		held[i].cert.status = VG_STATUS_REVOKED;
		held[i].cert.reason = VG_REASON_CERTIFICATE_HOLD;
		held[i].cert.revoked_at = 10;
	}
	struct vg_add_item again[2] = {held[0], held[1]};
	assert_int_equal(vg_store_add(f->st, "ca1", held, 2, &who, NULL, NULL, NULL), 0);
	/* The operator lifts 01's hold in Vigil: a later sync of the same
	 * database must not put it back. */
	struct vg_serial s1 = store_fx_serial("01");
	assert_int_equal(vg_store_release(f->st, "ca1", &s1, &who), 0);
	struct vg_write_result r;
	assert_int_equal(vg_store_add(f->st, "ca1", again, 2, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 0);
	struct vg_cert c;
	assert_int_equal(status_of(f->st, "ca1", "01", &c), 0);
	assert_int_equal(c.status, VG_STATUS_GOOD);
	assert_true(c.flags & VG_CERT_RELEASED);
	/* The database lifts 02's hold (removeFromCRL): the sync lifts it. */
	struct vg_add_item lift = good_item("02", 0);
	lift.cert.flags |= VG_CERT_LIFT_HOLD;
	assert_int_equal(vg_store_add(f->st, "ca1", &lift, 1, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.released, 1);
	assert_int_equal(status_of(f->st, "ca1", "02", &c), 0);
	assert_int_equal(c.status, VG_STATUS_GOOD);
	/* An operator's explicit hold still applies to a released certificate. */
	struct vg_revocation rev = {.revoked_at = 20, .reason = VG_REASON_CERTIFICATE_HOLD};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s1, 1, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 1);
	/* A lift never touches a final revocation. */
	struct vg_serial s3 = store_fx_serial("03");
	rev = (struct vg_revocation){.revoked_at = 30, .reason = VG_REASON_KEY_COMPROMISE};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s3, 1, &rev, &who, &r, NULL, NULL), 0);
	lift = good_item("03", 0);
	lift.cert.flags |= VG_CERT_LIFT_HOLD;
	assert_int_equal(vg_store_add(f->st, "ca1", &lift, 1, &who, &r, NULL, NULL), 0);
	assert_int_equal(status_of(f->st, "ca1", "03", &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);
}

/* A window revocation leaves out the serials it is told to keep (the
 * responder's own certificate), counts them, and revokes the rest. */
static void test_revoke_window_keeps(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item items[] = {good_item("01", 1000), good_item("02", 2000),
	                              good_item("03", 2500), good_item("04", 2600)};
	assert_int_equal(vg_store_add(f->st, "ca1", items, 4, &who, NULL, NULL, NULL), 0);
	struct vg_revocation rev = {.revoked_at = 9, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_serial keep[] = {store_fx_serial("03"),
	                           store_fx_serial("01")}; /* 01 is outside the window */
	struct vg_window win = {.after = 2000, .before = 3000, .keep = keep, .n_keep = 2};
	struct vg_write_result r;
	assert_int_equal(vg_store_revoke_window(f->st, "ca1", &win, &rev, &who, &r, NULL, NULL), 0);
	assert_int_equal(r.revoked, 2);
	assert_int_equal(r.spared, 1);
	struct vg_cert c;
	const char *want[] = {"01", "02", "03", "04"};
	int status[] = {VG_STATUS_GOOD, VG_STATUS_REVOKED, VG_STATUS_GOOD, VG_STATUS_REVOKED};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(status_of(f->st, "ca1", want[i], &c), 0);
		assert_int_equal(c.status, status[i]);
	}
	win.keep = NULL;
	assert_int_equal(vg_store_revoke_window(f->st, "ca1", &win, &rev, &who, &r, NULL, NULL),
	                 -EINVAL);
}

static void test_revoke_window(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item items[] = {good_item("01", 1000), good_item("02", 2000),
	                              good_item("03", 3000), good_item("04", 0),
	                              good_item("05", 2500)};
	assert_int_equal(vg_store_add(f->st, "ca1", items, 5, &who, NULL, NULL, NULL), 0);
	struct vg_revocation rev = {.revoked_at = 9, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_write_result r;
	assert_int_equal(vg_store_revoke_window(f->st, "ca1",
	                                        &(struct vg_window){2000, 3000, NULL, 0}, &rev,
	                                        &who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, 2);
	assert_int_equal(r.skipped, 1);
	struct vg_cert c;
	const char *want[] = {"01", "02", "03", "04", "05"};
	int status[] = {0, 1, 0, 0, 1};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(status_of(f->st, "ca1", want[i], &c), 0);
		assert_int_equal(c.status, status[i]);
	}
}

static void test_durable_reopen(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item it = good_item("1234", 42);
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &who, NULL, NULL, NULL), 0);
	struct vg_serial s = store_fx_serial("1234");
	struct vg_revocation rev = {.revoked_at = 1, .reason = VG_REASON_AFFILIATION_CHANGED};
	assert_int_equal(vg_store_revoke(f->st, "ca1", &s, 1, &rev, &who, NULL, NULL, NULL), 0);
	vg_store_close(f->st);
	f->st = NULL;
	struct vg_store *ro;
	assert_int_equal(vg_store_open(&ro, f->dir, VG_STORE_RDONLY), 0);
	struct vg_cert c;
	assert_int_equal(status_of(ro, "ca1", "1234", &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);
	assert_int_equal(c.reason, VG_REASON_AFFILIATION_CHANGED);
	assert_int_equal(c.not_before, 42);
	/* Read-only handles refuse writes. */
	assert_int_equal(vg_store_freeze(ro, "ca1", true, 1, &who), -EROFS);
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

static void test_map_growth_under_reader(void **state)
{
	struct store_fx *f = *state;
	vg_store_close(f->st);
	f->st = NULL;
	char dir[80];
	snprintf(dir, sizeof(dir), "%s/small", f->dir);
	/* A tiny initial map forces several doublings. */
	setenv("VIGIL_STORE_INITIAL_MAP", "65536", 1);
	assert_int_equal(vg_store_open(&f->st, dir, VG_STORE_CREATE), 0);
	unsetenv("VIGIL_STORE_INITIAL_MAP");
	struct vg_add_item first = good_item("01", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &first, 1, &who, NULL, NULL, NULL), 0);

	struct vg_store *ro;
	assert_int_equal(vg_store_open(&ro, dir, VG_STORE_RDONLY), 0);
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(ro, &t), 0);
	assert_false(vg_txn_behind(t));
	assert_false(vg_txn_behind(NULL));

	size_t n = 20000;
	struct vg_add_item *items = spread_items(n);
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, NULL, NULL), 0);

	/* The reader's old snapshot still reads and knows it is behind; after
	 * renew it sees it all, and is not. */
	struct vg_cert c;
	struct vg_serial s1 = store_fx_serial("01");
	assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &s1, &c), 0);
	assert_true(vg_txn_behind(t));
	assert_int_equal(vg_txn_renew(t), 0);
	assert_false(vg_txn_behind(t));
	struct vg_ca_state cs;
	assert_int_equal(vg_store_ca_get(t, "ca1", &cs), 0);
	assert_int_equal(cs.n_certs, n + 1);
	assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &items[n - 1].serial, &c), 0);
	vg_txn_end(t);
	vg_store_close(ro);
	free(items);
}

static void test_window_batches_with_map_growth(void **state)
{
	struct store_fx *f = *state;
	vg_store_close(f->st);
	f->st = NULL;
	char dir[80];
	snprintf(dir, sizeof(dir), "%s/win", f->dir);
	/* Revocations spanning two batches, each of which fills the map and is
	 * run again after it grows: nothing may be skipped or done twice. */
	assert_int_equal(vg_store_open(&f->st, dir, VG_STORE_CREATE), 0);
	size_t n = VG_TXN_MAX_CHANGES + 7000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[32];
		snprintf(hex, sizeof(hex), "%zx%06zx", (i * 2654435761u) % 1000003 + 1, i);
		items[i] = good_item(hex, 1000 + (int64_t)i);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, NULL, NULL), 0);
	vg_store_close(f->st);
	setenv("VIGIL_STORE_INITIAL_MAP", "65536", 1);
	/* Reopen: the map starts at the file size, so the revocations must grow it. */
	assert_int_equal(vg_store_open(&f->st, dir, 0), 0);
	unsetenv("VIGIL_STORE_INITIAL_MAP");
	struct vg_revocation rev = {.revoked_at = 5, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_write_result r;
	assert_int_equal(vg_store_revoke_window(f->st, "ca1",
	                                        &(struct vg_window){1000, INT64_MAX, NULL, 0}, &rev,
	                                        &who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, n);
	assert_int_equal(r.skipped, 0);
	assert_true(r.commits >= 2);
	struct vg_txn *t;
	struct vg_ca_state cs;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_ca_get(t, "ca1", &cs), 0);
	assert_int_equal(cs.n_revoked, n);
	struct vg_cert c;
	for (size_t i = 0; i < n; i += 997) {
		assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &items[i].serial, &c), 0);
		assert_int_equal(c.status, VG_STATUS_REVOKED);
	}
	vg_txn_end(t);
	free(items);
}

/* every_cert_agrees checks each certificate of |ca| that the B-tree lists
 * (vg_iter) against vg_store_get, which reads the point index when it is valid,
 * and that |gone| (NULL or a serial) is absent. Returns how many it saw. */
static size_t every_cert_agrees(struct vg_store *st, const char *ca, const char *gone)
{
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	struct vg_iter *it;
	assert_int_equal(vg_iter_open(t, vg_ca_id(ca), 0, &it), 0);
	struct vg_serial s;
	struct vg_cert a, b;
	size_t n = 0;
	while (vg_iter_next(it, &s, &a) == 1) {
		assert_int_equal(vg_store_get(t, vg_ca_id(ca), &s, &b), 0);
		assert_int_equal(a.status, b.status);
		assert_int_equal(a.reason, b.reason);
		assert_int_equal(a.revoked_at, b.revoked_at);
		assert_int_equal(a.flags, b.flags);
		assert_int_equal(a.not_before, b.not_before);
		n++;
	}
	vg_iter_close(it);
	if (gone) {
		struct vg_serial g = store_fx_serial(gone);
		assert_int_equal(vg_store_get(t, vg_ca_id(ca), &g, &b), -ENOENT);
	}
	vg_txn_end(t);
	return n;
}

/* raw_meta sets (|v| >= 0) or deletes (|v| < 0) a meta key of a closed store,
 * and with |drop_points| removes the point index, as a version-1 store has. */
static void raw_meta(const char *dir, const char *k, int64_t v, bool drop_points)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint8_t b[4] = {0, 0, 0, (uint8_t)v};
	MDB_val key = {strlen(k), (void *)k}, val = {4, b};
	if (v >= 0)
		assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &key, NULL), 0);
	if (drop_points) {
		assert_int_equal(mdb_dbi_open(txn, "points", 0, &dbi), 0);
		assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static uint32_t raw_meta_get(const char *dir, const char *k)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	MDB_val key = {strlen(k), (void *)k}, val;
	uint32_t v = 0xffffffffu;
	if (mdb_get(txn, dbi, &key, &val) == 0 && val.mv_size == 4) {
		const uint8_t *p = val.mv_data;
		v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return v;
}

/* Many certificates, in one commit and in several (the bulk path marks the
 * point index stale and rebuilds it), then revocations, releases and the
 * removal of a never-issued serial: the point index agrees with the B-tree
 * after each step. */
static void test_points_agree(void **state)
{
	struct store_fx *f = *state;
	size_t n = VG_TXN_MAX_CHANGES + 5000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[40];
		snprintf(hex, sizeof(hex), "%zx%016llx", i % 13 + 1,
		         (unsigned long long)i * 0x9e3779b97f4a7c15ull);
		items[i] = good_item(hex, (int64_t)i);
	}
	/* A new store's index has one segment; 3,000 certificates in one
	 * commit need four (at most 1,024 each), 55,000 in several need 64. */
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 0);
	assert_int_equal(vg_store_add(f->st, "ca1", items, 3000, &who, NULL, NULL, NULL), 0);
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), 3000);
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, NULL, NULL), 0);
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 6);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n);

	struct vg_revocation rev = {.revoked_at = 7, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_serial *some = calloc(n, sizeof(*some));
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3)
		some[k++] = items[i].serial;
	assert_int_equal(vg_store_revoke(f->st, "ca1", some, k, &rev, &who, NULL, NULL, NULL), 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n);

	struct vg_revocation hold = {.revoked_at = 8, .reason = VG_REASON_CERTIFICATE_HOLD};
	struct vg_serial rogue = store_fx_serial("7e57");
	assert_int_equal(vg_store_revoke(f->st, "ca1", &rogue, 1, &hold, &who, NULL, NULL, NULL),
	                 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n + 1);
	assert_int_equal(vg_store_release(f->st, "ca1", &rogue, &who), 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", "7e57"), n);
	free(some);
	free(items);
}

/* A store whose point index is stale (a large write stopped before it
 * rebuilt it) or absent (schema 1): readers answer from the B-tree, and the
 * next read-write open rebuilds the index. */
static void test_points_stale_and_upgrade(void **state)
{
	struct store_fx *f = *state;
	static struct vg_add_item items[3000];
	for (int i = 0; i < 3000; i++) {
		char hex[16];
		snprintf(hex, sizeof(hex), "%x", 0x10000 + i * 37);
		items[i] = good_item(hex, i);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, 3000, &who, NULL, NULL, NULL), 0);
	vg_store_close(f->st);
	f->st = NULL;

	/* Opening with VG_STORE_CREATE again (vigil-store init is idempotent)
	 * leaves the index as it is. */
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);
	assert_int_equal(vg_store_open(&f->st, f->dir, VG_STORE_CREATE), 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", "2"), 3000);
	vg_store_close(f->st);
	f->st = NULL;
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);

	for (int round = 0; round < 2; round++) {
		if (round == 0) {
			raw_meta(f->dir, "points", 0, false);
		} else {
			raw_meta(f->dir, "points", -1, true);
			raw_meta(f->dir, "schema", 1, false);
		}
		struct vg_store *ro;
		assert_int_equal(vg_store_open(&ro, f->dir, VG_STORE_RDONLY), 0);
		assert_int_equal(every_cert_agrees(ro, "ca1", "2"), 3000);
		assert_int_equal(vg_store_open(&f->st, f->dir, 0), 0);
		assert_int_equal(raw_meta_get(f->dir, "points"), 1);
		assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);
		assert_int_equal(raw_meta_get(f->dir, "schema"), 2);
		/* The reader's next snapshot uses the rebuilt index. */
		assert_int_equal(every_cert_agrees(ro, "ca1", "2"), 3000);
		vg_store_close(ro);
		vg_store_close(f->st);
		f->st = NULL;
	}
	assert_int_equal(vg_store_open(&f->st, f->dir, 0), 0);
}

struct interleave {
	const char *dir;
	const struct vg_serial *victim;
	int calls;
};

/* After the first commit of a bulk add, another process revokes a serial
 * that commit added: the add must not merge its own (older) view of that
 * serial into the point index at its end, but rebuild the index from certs. */
static void interleave_progress(uint64_t done, uint64_t total, void *arg)
{
	(void)done;
	(void)total;
	struct interleave *in = arg;
	if (in->calls++ != 0)
		return;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vg_store *st;
		struct vg_revocation rev = {.revoked_at = 9, .reason = VG_REASON_SUPERSEDED};
		int rc = vg_store_open(&st, in->dir, 0);
		if (rc == 0)
			rc = vg_store_revoke(st, "ca1", in->victim, 1, &rev, &who, NULL, NULL,
			                     NULL);
		vg_store_close(st);
		_exit(rc == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_points_bulk_with_interleaved_writer(void **state)
{
	struct store_fx *f = *state;
	size_t n = VG_TXN_MAX_CHANGES + 10;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[40];
		snprintf(hex, sizeof(hex), "5%015zx", i * 7 + 1);
		items[i] = good_item(hex, (int64_t)i);
	}
	/* Items are applied in serial order: i = 0 is in the first commit. */
	struct vg_serial victim = items[0].serial;
	struct interleave in = {f->dir, &victim, 0};
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, interleave_progress, &in),
	                 0);
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n);
	struct vg_cert c;
	char hex[2 * VG_SERIAL_MAX + 1];
	vg_serial_format(&victim, hex, sizeof(hex));
	assert_int_equal(status_of(f->st, "ca1", hex, &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);
	assert_int_equal(c.reason, VG_REASON_SUPERSEDED);
	free(items);
}

/* map_rss_kb: the resident size of this process's mapping of |dir|/data.mdb. */
static long map_rss_kb(const char *dir)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	char line[512], want[128];
	snprintf(want, sizeof(want), "%s/data.mdb", dir);
	long rss = -1;
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strstr(line, " r") && strchr(line, '/'))
			in = strstr(line, want) != NULL;
		else if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
			break;
	}
	fclose(f);
	return rss;
}

/* vg_txn_trim drops the read-only map's pages from this process: a walk
 * over every certificate maps them, a trim unmaps them, and reading goes
 * on as before. */
static void test_trim(void **state)
{
	struct store_fx *f = *state;
	size_t n = 20000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[40];
		snprintf(hex, sizeof(hex), "7%015zx", i * 104729 + 3);
		items[i] = good_item(hex, (int64_t)i);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, NULL, NULL), 0);
	struct vg_store *ro;
	assert_int_equal(vg_store_open(&ro, f->dir, VG_STORE_RDONLY), 0);
	assert_int_equal(every_cert_agrees(ro, "ca1", NULL), n);
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(ro, &t), 0);
	long before = map_rss_kb(f->dir);
	assert_true(before > 256);
	vg_txn_trim(t);
	long after = map_rss_kb(f->dir);
	assert_true(after >= 0 && after < before / 4);
	struct vg_cert c;
	assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &items[n / 2].serial, &c), 0);
	vg_txn_end(t);
	vg_store_close(ro);
	free(items);
}

/* ---- A data file cut short (issue 11) ---------------------------------- */

/* lmdb_used reads, through LMDB, the bytes the newest commit uses
 * ((last page + 1) * page size), and the first page of the free pages that
 * end the file (last page + 1 when the last page is in use). */
static void lmdb_used(const char *dir, uint64_t *used, size_t *free_tail, size_t *psize)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_envinfo ei;
	MDB_stat ms;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_env_info(env, &ei), 0);
	assert_int_equal(mdb_env_stat(env, &ms), 0);
	*psize = ms.ms_psize;
	*used = ((uint64_t)ei.me_last_pgno + 1) * ms.ms_psize;
	/* The free list, as mdb_stat -ff reads it: FREE_DBI is 0. */
	size_t last = ei.me_last_pgno, n = last + 1;
	bool *isfree = calloc(n, sizeof(*isfree));
	assert_non_null(isfree);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	MDB_cursor *cur;
	assert_int_equal(mdb_cursor_open(txn, 0, &cur), 0);
	MDB_val k, v;
	while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		const size_t *idl = v.mv_data;
		for (size_t i = 1; i <= idl[0]; i++)
			if (idl[i] <= last)
				isfree[idl[i]] = true;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	size_t t = n;
	while (t > 2 && isfree[t - 1])
		t--;
	*free_tail = t;
	free(isfree);
}

/* open_in_child opens the store in a child process and reads every
 * certificate; returns the open's result, or fails the test when the child
 * dies of a signal (SIGBUS: a page missing from the file was read). */
static int open_in_child(const char *dir, unsigned flags, char *msg, size_t msglen)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka's handlers would report the signal as a failure of the
		 * child's own: die of it, for the parent to see. */
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		close(pfd[0]);
		struct vg_store *st;
		int rc = vg_store_open(&st, dir, flags);
		if (rc == 0) {
			struct vg_txn *t;
			struct vg_iter *it;
			struct vg_serial s;
			struct vg_cert c;
			if (vg_txn_begin(st, &t) == 0 &&
			    vg_iter_open(t, vg_ca_id("ca1"), 0, &it) == 0) {
				while (vg_iter_next(it, &s, &c) == 1)
					;
				vg_iter_close(it);
				vg_txn_end(t);
			}
			vg_store_close(st);
		}
		const char *d = vg_store_damage();
		if (write(pfd[1], d, strlen(d)) < 0)
			_exit(99);
		_exit(-rc);
	}
	close(pfd[1]);
	ssize_t got = read(pfd[0], msg, msglen - 1);
	msg[got > 0 ? got : 0] = '\0';
	close(pfd[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the open died of signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

static void test_truncated_data_file(void **state)
{
	struct store_fx *f = *state;
	size_t n = 20000;
	struct vg_add_item *items = spread_items(n);
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &who, NULL, NULL, NULL), 0);
	/* Single revocations until the file ends with free pages: each commit
	 * frees the copies it replaced and takes pages from the free list. */
	uint64_t used = 0;
	size_t tail = 0, psize = 0;
	struct vg_revocation rev = {.revoked_at = 1, .reason = VG_REASON_SUPERSEDED};
	for (size_t i = 0; i < 400; i++) {
		assert_int_equal(vg_store_revoke(f->st, "ca1", &items[(i * 4099) % n].serial, 1,
		                                 &rev, &who, NULL, NULL, NULL),
		                 0);
		lmdb_used(f->dir, &used, &tail, &psize);
		if (tail * psize < used)
			break;
	}
	vg_store_close(f->st);
	f->st = NULL;
	free(items);
	assert_true(tail * psize < used); /* the loop found free pages at the end */

	char path[128], msg[640], want[640];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);

	/* Free pages at the end are never read: a file without them is sound
	 * (LMDB never writes a page freed in the transaction that took it). */
	assert_int_equal(truncate(path, (off_t)(tail * psize)), 0);
	assert_int_equal(open_in_child(f->dir, VG_STORE_RDONLY, msg, sizeof(msg)), 0);
	assert_int_equal(open_in_child(f->dir, 0, msg, sizeof(msg)), 0);
	lmdb_used(f->dir, &used, &tail, &psize);

	/* Half the file, one page in use less, two pages and a few bytes, one
	 * byte less: refused before anything is mapped, read-only or not, and
	 * the file is left as it is. */
	off_t cuts[] = {(off_t)(used / 2), (off_t)((tail - 1) * psize), (off_t)(psize * 2 + 100),
	                (off_t)(tail * psize - 1)};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		assert_int_equal(truncate(path, cuts[i]), 0);
		snprintf(want, sizeof(want), "store damaged: %s expected %llu bytes, found %llu",
		         path, (unsigned long long)used, (unsigned long long)cuts[i]);
		assert_int_equal(open_in_child(f->dir, VG_STORE_RDONLY, msg, sizeof(msg)),
		                 -EUCLEAN);
		assert_string_equal(msg, want);
		assert_int_equal(open_in_child(f->dir, 0, msg, sizeof(msg)), -EUCLEAN);
		assert_string_equal(msg, want);
		struct stat sb;
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_size, cuts[i]);
	}
	/* Tiny files are left to LMDB, which refuses them without a map. */
	assert_int_equal(truncate(path, (off_t)psize + 100), 0);
	int rc = open_in_child(f->dir, VG_STORE_RDONLY, msg, sizeof(msg));
	assert_true(rc < 0 && rc != -EUCLEAN);
	/* Leave a usable store for teardown. */
	char other[96];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(vg_store_open(&f->st, other, VG_STORE_CREATE), 0);
}

/* The error boundary (store/internal.h): one code per meaning, the LMDB
 * code kept inside; a full map is told from a full disk by a flag of the
 * handle that hit it, not of the process; a map another process grew never
 * comes out as -EAGAIN. */
static void test_error_boundary(void **state)
{
	struct store_fx *f = *state;
	char other[96];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	struct vg_store *b;
	assert_int_equal(vg_store_open(&b, other, VG_STORE_CREATE), 0);

	assert_int_equal(env_err(f->st, MDB_MAP_FULL, "test"), -ENOSPC);
	assert_true(f->st->map_full);
	assert_false(b->map_full);
	assert_int_equal(env_err(b, ENOSPC, "test"), -ENOSPC);
	assert_false(b->map_full); /* a full disk: growing the map would not help */
	assert_int_equal(env_err(b, MDB_TXN_FULL, "test"), -ENOSPC);
	assert_false(b->map_full);
	assert_int_equal(env_err(b, MDB_NOTFOUND, "test"), -ENOENT);
	assert_int_equal(env_err(b, MDB_VERSION_MISMATCH, "test"), -EPROTO);
	assert_int_equal(env_err(b, MDB_MAP_RESIZED, "test"), -EIO);
	assert_int_equal(env_err(b, MDB_CORRUPTED, "test"), -EIO);
	assert_int_equal(env_err(b, 0, "test"), 0);

	/* A write clears what an earlier error left on its handle. */
	struct vg_add_item it = {.serial = store_fx_serial("01"),
	                         .cert = {.status = VG_STATUS_GOOD}};
	it.cert.reason = VG_REASON_NONE;
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &who, NULL, NULL, NULL), 0);
	assert_false(f->st->map_full);
	vg_store_close(b);
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
	        cmocka_unit_test_setup_teardown(test_map_growth_under_reader, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_window_batches_with_map_growth, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_points_agree, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_points_stale_and_upgrade, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_points_bulk_with_interleaved_writer,
	                                        store_fx_setup, store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_trim, store_fx_setup, store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_truncated_data_file, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_error_boundary, store_fx_setup,
	                                        store_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
