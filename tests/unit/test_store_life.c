/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the store's life (store/backup.c, verify.c, prune.c) on a
 * mkdtemp() directory: the boundaries of retention (notAfter at the cutoff,
 * a full CRL at notAfter), the log floor readers get -ERANGE below, the
 * pruned flag, verify on a healthy and a backed-up store, the identity of a
 * copy, and a replaced store.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"
#include "tests/common/store_fixture.h"

#define DAY 86400
#define NOW 1800000000 /* 2027-01-15 */

static struct vg_add_item item(const char *hex, int64_t not_after, bool revoked)
{
	struct vg_add_item it;
	memset(&it, 0, sizeof(it));
	it.serial = store_fx_serial(hex);
	it.cert.status = revoked ? VG_STATUS_REVOKED : VG_STATUS_GOOD;
	it.cert.reason = revoked ? VG_REASON_KEY_COMPROMISE : VG_REASON_NONE;
	it.cert.revoked_at = revoked ? not_after - 100 * DAY : 0;
	it.cert.flags = VG_CERT_HAS_NOT_AFTER;
	it.cert.not_after = not_after;
	return it;
}

static int get(struct vg_store *st, const char *hex, struct vg_cert *c)
{
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	struct vg_serial s = store_fx_serial(hex);
	int rc = vg_store_get(t, vg_ca_id("ca"), &s, c);
	vg_txn_end(t);
	return rc;
}

static void no_diff(const char *db, const char *key, const char *what, void *arg)
{
	(void)arg;
	fail_msg("verify: db=%s key=%s %s", db, key, what);
}

static void verify_clean(struct vg_store *st)
{
	struct vg_txn *t;
	uint64_t checked = 0;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	assert_int_equal(vg_store_verify(t, no_diff, NULL, &checked), 0);
	assert_true(checked > 0);
	vg_txn_end(t);
}

static int count_changes(const struct vg_change *c, void *arg)
{
	(void)c;
	(*(int *)arg)++;
	return 0;
}

/* Counts REMOVE entries: [0] of one serial, [1] CA-wide. */
static int count_removes(const struct vg_change *c, void *arg)
{
	int *n = arg;
	if (c->op == VG_CHANGE_REMOVE)
		n[c->serial.len == 0]++;
	return 0;
}

static void removes_since(struct vg_store *st, uint64_t since, int *n)
{
	struct vg_txn *t;
	n[0] = n[1] = 0;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	assert_int_equal(vg_store_changes_foreach(t, since, count_removes, n), 0);
	vg_txn_end(t);
}

/* A few removals are logged one by one; a commit of more than 1,024 as
 * one CA-wide entry, so the log does not hold every expired serial. */
static void test_remove_log(void **state)
{
	struct store_fx *f = *state;
	enum { N = 3000 };
	struct vg_add_item *items = calloc(N, sizeof(*items));
	char hex[16];
	for (int i = 0; i < N; i++) {
		snprintf(hex, sizeof(hex), "%X", 0x10000 + i);
		items[i] = item(hex, NOW - (i < 3 ? 2000 : 1000) * DAY, false);
	}
	assert_int_equal(vg_store_add(f->st, "ca", items, N, &store_fx_who, NULL, NULL, NULL), 0);
	free(items);
	struct vg_txn *t;
	uint64_t c0;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_counter(t, &c0), 0);
	vg_txn_end(t);
	struct vg_prune_ca pc = {.name = "ca", .certs = true};
	struct vg_prune_result r;
	int n[2];
	/* The three oldest alone: expired_retention between them and the rest. */
	assert_int_equal(vg_store_prune(f->st, NOW, 3650 * DAY, 1500 * DAY, &pc, 1, &store_fx_who,
	                                &r, NULL, NULL),
	                 0);
	assert_int_equal(r.certs_removed, 3);
	removes_since(f->st, c0, n);
	assert_int_equal(n[0], 3);
	assert_int_equal(n[1], 0);
	assert_int_equal(vg_store_prune(f->st, NOW, 3650 * DAY, 365 * DAY, &pc, 1, &store_fx_who,
	                                &r, NULL, NULL),
	                 0);
	assert_int_equal(r.certs_removed, N - 3);
	removes_since(f->st, c0 + 1, n);
	assert_int_equal(n[0], 0);
	assert_int_equal(n[1], 1);
	verify_clean(f->st);
}

/* notAfter exactly at the cutoff stays; one second before goes. A revoked
 * one goes only when the last full CRL is strictly after its notAfter. */
static void test_expired_boundaries(void **state)
{
	struct store_fx *f = *state;
	int64_t cutoff = NOW - 365 * DAY;
	struct vg_add_item items[] = {
	        item("0A", cutoff, false),         /* at the cutoff: kept */
	        item("0B", cutoff - 1, false),     /* just before: removed */
	        item("0C", cutoff - DAY, true),    /* revoked, CRL at its notAfter: kept */
	        item("0D", cutoff - 2 * DAY, true) /* revoked, CRL after it: removed */
	};
	assert_int_equal(vg_store_add(f->st, "ca", items, 4, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_prune_ca pc = {.name = "ca", .certs = true, .last_full_crl = cutoff - DAY};
	struct vg_prune_result r;
	assert_int_equal(vg_store_prune(f->st, NOW, 30 * DAY, 365 * DAY, &pc, 1, &store_fx_who, &r,
	                                NULL, NULL),
	                 0);
	assert_int_equal(r.certs_removed, 2);
	assert_int_equal(r.revoked_removed, 1);
	assert_int_equal(r.kept_no_crl, 1);
	struct vg_cert c;
	assert_int_equal(get(f->st, "0A", &c), 0);
	assert_int_equal(get(f->st, "0B", &c), -ENOENT);
	assert_int_equal(get(f->st, "0C", &c), 0);
	assert_int_equal(get(f->st, "0D", &c), -ENOENT);
	struct vg_txn *t;
	struct vg_ca_state cs;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_ca_get(t, "ca", &cs), 0);
	assert_true(cs.pruned);
	assert_int_equal(cs.n_certs, 2);
	assert_int_equal(cs.n_revoked, 1);
	vg_txn_end(t);
	verify_clean(f->st);
}

/* A CA the caller keeps complete (not_issued = revoked) loses nothing and
 * is not marked pruned. */
static void test_kept_ca(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item it = item("0B", NOW - 1000 * DAY, false);
	assert_int_equal(vg_store_add(f->st, "ca", &it, 1, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_prune_ca pc = {.name = "ca", .certs = false, .last_full_crl = NOW};
	struct vg_prune_result r;
	assert_int_equal(vg_store_prune(f->st, NOW, 30 * DAY, 365 * DAY, &pc, 1, &store_fx_who, &r,
	                                NULL, NULL),
	                 0);
	assert_int_equal(r.certs_removed, 0);
	struct vg_cert c;
	assert_int_equal(get(f->st, "0B", &c), 0);
	struct vg_txn *t;
	struct vg_ca_state cs;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_ca_get(t, "ca", &cs), 0);
	assert_false(cs.pruned);
	vg_txn_end(t);
}

/* Log entries older than the retention go; a reader from below the floor
 * gets -ERANGE, one from the floor on its changes. */
static void test_log_floor(void **state)
{
	struct store_fx *f = *state;
	setenv("VIGIL_NOW", "1700000000", 1);
	struct vg_add_item a = item("01", NOW + 400 * DAY, false);
	assert_int_equal(vg_store_add(f->st, "ca", &a, 1, &store_fx_who, NULL, NULL, NULL),
	                 0); /* 1 */
	setenv("VIGIL_NOW", "1700086400", 1);
	struct vg_add_item b = item("02", NOW + 400 * DAY, false);
	assert_int_equal(vg_store_add(f->st, "ca", &b, 1, &store_fx_who, NULL, NULL, NULL),
	                 0); /* 2 */
	unsetenv("VIGIL_NOW");
	struct vg_prune_ca pc = {.name = "ca", .certs = true};
	struct vg_prune_result r;
	/* Retention of one day at the second commit's time + 1 day: commit 1
	 * is older than that, commit 2 exactly at it stays. */
	assert_int_equal(vg_store_prune(f->st, 1700086400 + DAY, DAY, 365 * DAY, &pc, 1,
	                                &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.log_removed, 1);
	assert_int_equal(r.log_floor, 1);
	struct vg_txn *t;
	int n = 0;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_changes_foreach(t, 0, count_changes, &n), -ERANGE);
	assert_int_equal(n, 0);
	assert_int_equal(vg_store_changes_foreach(t, 1, count_changes, &n), 0);
	assert_int_equal(n, 1);
	struct vg_store_ident id;
	assert_int_equal(vg_store_ident(t, &id), 0);
	assert_int_equal(id.log_floor, 1);
	vg_txn_end(t);
	verify_clean(f->st);
}

/* A backup is a store with its own id, the source's id and counter; a
 * restore replaces the store under an open handle, which then sees it
 * replaced and cannot write. */
static void test_backup_restore_identity(void **state)
{
	struct store_fx *f = *state;
	struct vg_add_item it = item("0E", NOW + DAY, false);
	assert_int_equal(vg_store_add(f->st, "ca", &it, 1, &store_fx_who, NULL, NULL, NULL), 0);
	char bk[128];
	snprintf(bk, sizeof(bk), "%s/bk", f->dir);
	struct vg_backup_result r;
	assert_int_equal(vg_store_backup(f->st, bk, false, &r, NULL, NULL), 0);
	assert_int_equal(r.counter, 1);
	assert_int_equal(vg_store_backup(f->st, bk, false, &r, NULL, NULL), -EEXIST);
	struct vg_txn *t;
	struct vg_store_ident src, cp;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_ident(t, &src), 0);
	vg_txn_end(t);
	struct vg_store *b;
	assert_int_equal(vg_store_open(&b, bk, VG_STORE_RDONLY), 0);
	assert_int_equal(vg_txn_begin(b, &t), 0);
	assert_int_equal(vg_store_ident(t, &cp), 0);
	vg_txn_end(t);
	verify_clean(b);
	vg_store_close(b);
	assert_true(src.store_id != 0 && cp.store_id != src.store_id);
	assert_true(cp.backup_of == src.store_id);
	assert_int_equal(cp.base_counter, 1);

	assert_false(vg_store_replaced(f->st));
	struct vg_add_item later = item("0F", NOW + DAY, false);
	assert_int_equal(vg_store_add(f->st, "ca", &later, 1, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(vg_store_restore(f->store, bk, &store_fx_who, &r, NULL, NULL), 0);
	assert_int_equal(r.old_counter, 2);
	assert_int_equal(r.counter, 2); /* the backup's 1, and the restore's commit */
	assert_true(vg_store_replaced(f->st));
	assert_int_equal(vg_store_add(f->st, "ca", &later, 1, &store_fx_who, NULL, NULL, NULL),
	                 -ESTALE);
	vg_store_close(f->st);
	assert_int_equal(vg_store_open(&f->st, f->store, 0), 0);
	struct vg_cert c;
	assert_int_equal(get(f->st, "0E", &c), 0);
	assert_int_equal(get(f->st, "0F", &c), -ENOENT);
	verify_clean(f->st);
	assert_true(access(r.moved_to, F_OK) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_expired_boundaries, store_fx_setup_nested,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_kept_ca, store_fx_setup_nested,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_remove_log, store_fx_setup_nested,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_log_floor, store_fx_setup_nested,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_backup_restore_identity, store_fx_setup_nested,
	                                        store_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
