/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of store/replica.h on mkdtemp() directories: a primary's
 * commits applied on a replica under the primary's counters (certificates,
 * revoked index, point lookups, change log, audit), only the next counter and
 * only the same primary accepted, every write through store.h refused on a
 * replica, a bootstrap only into an empty store and started again after a
 * stop, and promotion.
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

#include <cmocka.h>

#include "store/replica.h"
#include "store/store.h"
#include "tests/common/store_fixture.h"

#define PRIMARY 0x1122334455667788ull

static struct vg_store_role role(struct vg_store *st)
{
	struct vg_txn *t;
	struct vg_store_role r;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	assert_int_equal(vg_store_role(t, &r), 0);
	vg_txn_end(t);
	return r;
}

static int status_of(struct vg_store *st, uint32_t ca, const char *hex, struct vg_cert *out)
{
	struct vg_txn *t;
	struct vg_serial s = store_fx_serial(hex);
	assert_int_equal(vg_txn_begin(st, &t), 0);
	int rc = vg_store_get(t, ca, &s, out);
	vg_txn_end(t);
	return rc;
}

static void boot_empty(struct vg_store *st)
{
	assert_int_equal(vg_store_replica_boot_begin(st, PRIMARY, 0), 0);
	assert_int_equal(vg_store_replica_boot_end(st, 0), 0);
}

static void test_apply_in_counter_order(void **state)
{
	struct store_fx *f = *state;
	uint32_t ca = vg_ca_id("ca1");
	boot_empty(f->st);
	struct vg_repl_cert certs[2] = {
	        {.ca_id = ca,
	         .present = true,
	         .serial = store_fx_serial("0A"),
	         .cert = {.status = VG_STATUS_GOOD, .reason = VG_REASON_NONE}},
	        {.ca_id = ca,
	         .present = true,
	         .serial = store_fx_serial("0B"),
	         .cert = {.status = VG_STATUS_REVOKED, .reason = 1, .revoked_at = 1700000000}},
	};
	struct vg_repl_ca cas[1] = {
	        {.name = "ca1", .state = {.id = ca, .n_certs = 2, .n_revoked = 1}}};
	struct vg_change ch[2] = {
	        {.counter = 1, .ca_id = ca, .op = VG_CHANGE_ADD, .serial = store_fx_serial("0A")},
	        {.counter = 1,
	         .ca_id = ca,
	         .op = VG_CHANGE_REVOKE,
	         .serial = store_fx_serial("0B")}};
	struct vg_audit_entry au = {.counter = 1, .time = 1700000001, .count = 2};
	strcpy(au.action, "add");
	struct vg_repl_commit c = {.counter = 1,
	                           .certs = certs,
	                           .n_certs = 2,
	                           .cas = cas,
	                           .n_cas = 1,
	                           .changes = ch,
	                           .n_changes = 2,
	                           .audit = &au};
	/* Not the next counter, or another primary: refused, nothing written. */
	c.counter = 2;
	assert_int_equal(vg_store_replica_apply(f->st, PRIMARY, &c), -ESTALE);
	c.counter = 1;
	assert_int_equal(vg_store_replica_apply(f->st, PRIMARY + 1, &c), -ESTALE);
	struct vg_cert got;
	assert_int_equal(status_of(f->st, ca, "0B", &got), -ENOENT);
	assert_int_equal(vg_store_replica_apply(f->st, PRIMARY, &c), 0);
	assert_int_equal(role(f->st).counter, 1);
	assert_int_equal(status_of(f->st, ca, "0B", &got), 0);
	assert_int_equal(got.status, VG_STATUS_REVOKED);
	assert_int_equal(got.revoked_at, 1700000000);
	/* Applied once: again is refused. */
	assert_int_equal(vg_store_replica_apply(f->st, PRIMARY, &c), -ESTALE);

	/* Commit 2: 0B gone (a hold-only serial released), 0A revoked. */
	struct vg_repl_cert c2[2] = {
	        {.ca_id = ca, .present = false, .serial = store_fx_serial("0B")},
	        {.ca_id = ca,
	         .present = true,
	         .serial = store_fx_serial("0A"),
	         .cert = {.status = VG_STATUS_REVOKED, .reason = 4, .revoked_at = 1700000100}},
	};
	struct vg_change ch2[2] = {{.counter = 2,
	                            .ca_id = ca,
	                            .op = VG_CHANGE_RELEASE,
	                            .serial = store_fx_serial("0B")},
	                           {.counter = 2,
	                            .ca_id = ca,
	                            .op = VG_CHANGE_REVOKE,
	                            .serial = store_fx_serial("0A")}};
	struct vg_repl_commit cm2 = {
	        .counter = 2, .certs = c2, .n_certs = 2, .changes = ch2, .n_changes = 2};
	assert_int_equal(vg_store_replica_apply(f->st, PRIMARY, &cm2), 0);
	assert_int_equal(status_of(f->st, ca, "0B", &got), -ENOENT);
	assert_int_equal(status_of(f->st, ca, "0A", &got), 0);
	assert_int_equal(got.reason, 4);

	/* The revoked index holds 0A only; the change log has both commits. */
	struct vg_txn *t;
	struct vg_iter *it;
	struct vg_serial s;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_iter_open(t, ca, VG_ITER_REVOKED, &it), 0);
	assert_int_equal(vg_iter_next(it, &s, &got), 1);
	assert_int_equal(s.b[0], 0x0a);
	assert_int_equal(vg_iter_next(it, &s, &got), 0);
	vg_iter_close(it);
	struct vg_store_info in;
	assert_int_equal(vg_store_info(t, &in), 0);
	assert_int_equal(in.log_entries, 4);
	assert_int_equal(in.audit_entries, 1);
	vg_txn_end(t);
}

static void test_replica_refuses_writes_and_promotes(void **state)
{
	struct store_fx *f = *state;
	boot_empty(f->st);
	struct vg_serial s = store_fx_serial("0C");
	struct vg_revocation rev = {.revoked_at = 1700000000, .reason = 1};
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &s, 1, &rev, &store_fx_who, NULL, NULL, NULL),
	        -EREMOTE);
	assert_int_equal(vg_store_freeze(f->st, "ca1", true, 1700000000, &store_fx_who), -EREMOTE);
	uint64_t id;
	assert_int_equal(vg_store_id_ensure(f->st, &id), -EREMOTE);
	assert_int_equal(role(f->st).counter, 0);
	/* The epoch a follow records only goes up, on a replica too. */
	assert_int_equal(role(f->st).epoch, 0);
	assert_int_equal(vg_store_epoch_raise(f->st, 4), 0);
	assert_int_equal(vg_store_epoch_raise(f->st, 2), 0);
	assert_int_equal(role(f->st).epoch, 4);
	assert_int_equal(vg_store_promote(f->st, &id), 0);
	assert_true(id == PRIMARY);
	struct vg_store_role r = role(f->st);
	assert_true(r.store_id == PRIMARY && r.replica_of == 0);
	assert_int_equal(r.epoch, 5); /* one past the database's */
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &s, 1, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(vg_store_promote(f->st, &id), -EINVAL); /* not a replica any more */
}

static void test_bootstrap_only_into_empty_and_restarts(void **state)
{
	struct store_fx *f = *state;
	uint32_t ca = vg_ca_id("ca1");
	/* A store with data of its own is not bootstrapped. */
	struct vg_serial s = store_fx_serial("0D");
	struct vg_revocation rev = {.revoked_at = 1700000000, .reason = 1};
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &s, 1, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(vg_store_replica_boot_begin(f->st, PRIMARY, 5), -EEXIST);
	vg_store_close(f->st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s/*", f->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(vg_store_open(&f->st, f->dir, VG_STORE_CREATE), 0);

	/* A bootstrap that stopped after a batch: started again, the batch
	 * of the first attempt gone. */
	struct vg_repl_cert a = {.ca_id = ca,
	                         .present = true,
	                         .serial = store_fx_serial("01"),
	                         .cert = {.status = VG_STATUS_GOOD, .reason = VG_REASON_NONE}};
	struct vg_repl_commit b1 = {.certs = &a, .n_certs = 1};
	assert_int_equal(vg_store_replica_boot_begin(f->st, PRIMARY, 5), 0);
	assert_int_equal(vg_store_replica_boot_load(f->st, &b1, NULL, 0), 0);
	assert_true(role(f->st).boot == 5);
	assert_int_equal(vg_store_replica_boot_begin(f->st, PRIMARY + 1, 5), -ESTALE);
	assert_int_equal(vg_store_replica_boot_begin(f->st, PRIMARY, 6), 0);
	struct vg_cert got;
	assert_int_equal(status_of(f->st, ca, "01", &got), -ENOENT);
	struct vg_repl_cert bb = a;
	bb.serial = store_fx_serial("02");
	struct vg_repl_commit b2 = {.certs = &bb, .n_certs = 1};
	assert_int_equal(vg_store_replica_boot_load(f->st, &b2, NULL, 0), 0);
	assert_int_equal(vg_store_replica_boot_end(f->st, 6), 0);
	struct vg_store_role r = role(f->st);
	assert_true(r.counter == 6 && r.boot == 0 && r.replica_of == PRIMARY);
	assert_int_equal(status_of(f->st, ca, "02", &got), 0);
	/* Bootstrapped: a second bootstrap is refused. */
	assert_int_equal(vg_store_replica_boot_begin(f->st, PRIMARY, 7), -EEXIST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_apply_in_counter_order, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_replica_refuses_writes_and_promotes,
	                                        store_fx_setup, store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_bootstrap_only_into_empty_and_restarts,
	                                        store_fx_setup, store_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
