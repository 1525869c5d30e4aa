/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the revocation rules (store/rules.c), without LMDB: every
 * rule of README.md's "Rules the store enforces", one test each, checked on
 * the state rules_merge / rules_release / rules_window decide and on what
 * they count in struct vg_write_result (which the CLI's summary prints).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store/rules.h"

#define T1 1700000000
#define T2 1700100000
#define T0 1600000000 /* an invalidity date */

static struct vg_cert good(void)
{
	struct vg_cert c;
	memset(&c, 0, sizeof(c));
	c.status = VG_STATUS_GOOD;
	c.reason = VG_REASON_NONE;
	return c;
}

static struct vg_cert revoked(int8_t reason, int64_t at)
{
	struct vg_cert c = good();
	c.status = VG_STATUS_REVOKED;
	c.reason = reason;
	c.revoked_at = at;
	return c;
}

/* revoke is an operator's revocation (vg_store_revoke) of |have| (NULL:
 * absent) with |reason| at |at|, invalidity date |inv| when non-zero. */
static int revoke(const struct vg_cert *have, int8_t reason, int64_t at, int64_t inv,
                  struct vg_cert *out, struct vg_write_result *r)
{
	struct vg_revocation rev = {.revoked_at = at, .reason = reason};
	if (inv) {
		rev.has_invalidity = true;
		rev.invalidity_date = inv;
	}
	struct vg_cert want;
	rules_want_revoked(&rev, &want);
	memset(r, 0, sizeof(*r));
	return rules_merge(have, &want, false, out, r);
}

/* import_rec is a record of the CA's issuance (vg_store_add) arriving for |have|. */
static int import_rec(const struct vg_cert *have, const struct vg_cert *want, struct vg_cert *out,
                      struct vg_write_result *r)
{
	memset(r, 0, sizeof(*r));
	return rules_merge(have, want, true, out, r);
}

static void assert_same(const struct vg_cert *a, const struct vg_cert *b)
{
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->reason, b->reason);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->revoked_at, b->revoked_at);
	assert_int_equal(a->invalidity_date, b->invalidity_date);
}

/* A revoked certificate stays revoked: revoking it again changes nothing. */
static void test_revoked_stays_revoked(void **state)
{
	(void)state;
	struct vg_cert out, have = good();
	struct vg_write_result r;
	assert_int_equal(revoke(&have, VG_REASON_SUPERSEDED, T1, 0, &out, &r), VG_CHANGE_REVOKE);
	assert_int_equal(out.status, VG_STATUS_REVOKED);
	assert_int_equal(out.reason, VG_REASON_SUPERSEDED);
	assert_int_equal(out.revoked_at, T1);
	assert_int_equal(r.revoked, 1);

	have = out;
	/* The same again, another time, another (non-final-raising) reason. */
	assert_int_equal(revoke(&have, VG_REASON_SUPERSEDED, T2, 0, &out, &r), 0);
	assert_same(&out, &have);
	assert_int_equal(r.unchanged, 1);
	assert_int_equal(revoke(&have, VG_REASON_CESSATION_OF_OPERATION, T2, 0, &out, &r), 0);
	assert_same(&out, &have);
	assert_int_equal(r.unchanged, 1);
	assert_int_equal(r.revoked, 0);
}

/* certificateHold is replaced by a final reason, with the new time. */
static void test_hold_replaced_by_final_reason(void **state)
{
	(void)state;
	struct vg_cert out, have = revoked(VG_REASON_CERTIFICATE_HOLD, T1);
	struct vg_write_result r;
	assert_true(rules_is_hold(&have));
	assert_int_equal(revoke(&have, VG_REASON_AFFILIATION_CHANGED, T2, 0, &out, &r),
	                 VG_CHANGE_REVOKE);
	assert_int_equal(out.reason, VG_REASON_AFFILIATION_CHANGED);
	assert_int_equal(out.revoked_at, T2);
	assert_false(rules_is_hold(&out));
	assert_int_equal(r.revoked, 1);
}

/* Any other reason can be raised to keyCompromise: the original time
 * stands, an invalidity date may be added, one already known is kept. */
static void test_raised_to_key_compromise(void **state)
{
	(void)state;
	struct vg_cert out, have = revoked(VG_REASON_SUPERSEDED, T1);
	struct vg_write_result r;
	assert_int_equal(revoke(&have, VG_REASON_KEY_COMPROMISE, T2, T0, &out, &r),
	                 VG_CHANGE_REVOKE);
	assert_int_equal(out.reason, VG_REASON_KEY_COMPROMISE);
	assert_int_equal(out.revoked_at, T1);
	assert_true(out.flags & VG_CERT_HAS_INVALIDITY);
	assert_int_equal(out.invalidity_date, T0);
	assert_int_equal(r.revoked, 1);

	have.flags |= VG_CERT_HAS_INVALIDITY;
	have.invalidity_date = T0;
	assert_int_equal(revoke(&have, VG_REASON_KEY_COMPROMISE, T2, 0, &out, &r),
	                 VG_CHANGE_REVOKE);
	assert_int_equal(out.revoked_at, T1);
	assert_true(out.flags & VG_CERT_HAS_INVALIDITY);
	assert_int_equal(out.invalidity_date, T0);

	/* Already keyCompromise: nothing more to raise. */
	have = out;
	assert_int_equal(revoke(&have, VG_REASON_KEY_COMPROMISE, T2, 0, &out, &r), 0);
	assert_same(&out, &have);

	/* The compromise time learned later: the same revocation, more precise. */
	have = revoked(VG_REASON_KEY_COMPROMISE, T1);
	assert_int_equal(revoke(&have, VG_REASON_KEY_COMPROMISE, T2, T0, &out, &r),
	                 VG_CHANGE_REVOKE);
	assert_int_equal(out.revoked_at, T1);
	assert_int_equal(out.invalidity_date, T0);
}

/* revoke --reason certificateHold only puts good certificates on hold. */
static void test_hold_only_on_good(void **state)
{
	(void)state;
	struct vg_cert out, have = good();
	struct vg_write_result r;
	assert_int_equal(revoke(&have, VG_REASON_CERTIFICATE_HOLD, T1, 0, &out, &r),
	                 VG_CHANGE_REVOKE);
	assert_true(rules_is_hold(&out));
	have = revoked(VG_REASON_KEY_COMPROMISE, T1);
	assert_int_equal(revoke(&have, VG_REASON_CERTIFICATE_HOLD, T2, 0, &out, &r), 0);
	assert_same(&out, &have);
	assert_int_equal(r.unchanged, 1);
}

/* release works only on certificateHold; it leaves the certificate good and
 * marked released. */
static void test_release_only_hold(void **state)
{
	(void)state;
	struct vg_cert out, have = good();
	assert_int_equal(rules_release(&have, &out), -EPERM);
	have = revoked(VG_REASON_KEY_COMPROMISE, T1);
	assert_int_equal(rules_release(&have, &out), -EPERM);
	have = revoked(VG_REASON_CERTIFICATE_HOLD, T1);
	have.flags |= VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_INVALIDITY;
	have.not_before = T0;
	have.invalidity_date = T0;
	assert_int_equal(rules_release(&have, &out), 0);
	assert_int_equal(out.status, VG_STATUS_GOOD);
	assert_int_equal(out.reason, VG_REASON_NONE);
	assert_int_equal(out.revoked_at, 0);
	assert_int_equal(out.invalidity_date, 0);
	assert_int_equal(out.flags, VG_CERT_HAS_NOT_BEFORE | VG_CERT_RELEASED);
	assert_int_equal(out.not_before, T0);
}

/* removeFromCRL is not a reason one revokes with; in an imported index.txt
 * it lifts the hold. */
static void test_remove_from_crl(void **state)
{
	(void)state;
	struct vg_revocation rev = {.revoked_at = T1, .reason = VG_REASON_REMOVE_FROM_CRL};
	assert_int_equal(rules_revocation_check(&rev), -EINVAL);
	rev.reason = VG_REASON_CERTIFICATE_HOLD;
	assert_int_equal(rules_revocation_check(&rev), 0);

	struct vg_cert out, have = revoked(VG_REASON_CERTIFICATE_HOLD, T1), want = good();
	struct vg_write_result r;
	want.flags = VG_CERT_LIFT_HOLD;
	assert_int_equal(import_rec(&have, &want, &out, &r), VG_CHANGE_RELEASE);
	assert_int_equal(out.status, VG_STATUS_GOOD);
	assert_int_equal(out.flags, VG_CERT_RELEASED);
	assert_int_equal(r.released, 1);

	/* Only a hold is lifted so, never a final revocation. */
	have = revoked(VG_REASON_KEY_COMPROMISE, T1);
	assert_int_equal(import_rec(&have, &want, &out, &r), 0);
	assert_int_equal(out.status, VG_STATUS_REVOKED);
	assert_int_equal(r.kept, 1);
}

/* A serial known only from a hold (never seen as issued) becomes absent
 * again when released, never good; an import's lift does not make it good
 * either. */
static void test_not_issued_hold_released_is_absent(void **state)
{
	(void)state;
	struct vg_cert hold, out, want = good();
	struct vg_write_result r;
	assert_int_equal(revoke(NULL, VG_REASON_CERTIFICATE_HOLD, T1, 0, &hold, &r),
	                 VG_CHANGE_REVOKE);
	assert_true(hold.flags & VG_CERT_NOT_ISSUED);
	assert_int_equal(rules_release(&hold, &out), 1);
	want.flags = VG_CERT_LIFT_HOLD;
	import_rec(&hold, &want, &out, &r);
	assert_int_not_equal(out.status, VG_STATUS_GOOD);
}

/* Re-importing an index.txt that still says V for a certificate revoked with
 * vigil-store keeps it revoked (kept_revoked). */
static void test_sync_keeps_revoked(void **state)
{
	(void)state;
	struct vg_cert out, have = revoked(VG_REASON_KEY_COMPROMISE, T1), want = good();
	struct vg_write_result r;
	assert_int_equal(import_rec(&have, &want, &out, &r), 0);
	assert_same(&out, &have);
	assert_int_equal(r.kept, 1);
	assert_int_equal(r.unchanged, 0);

	/* Dates it brings are learned, the revocation stays. */
	want.flags = VG_CERT_HAS_NOT_AFTER;
	want.not_after = T2;
	assert_int_equal(import_rec(&have, &want, &out, &r), VG_CHANGE_UPDATE);
	assert_int_equal(out.status, VG_STATUS_REVOKED);
	assert_int_equal(out.reason, VG_REASON_KEY_COMPROMISE);
	assert_int_equal(out.not_after, T2);
	assert_int_equal(r.kept, 1);
	assert_int_equal(r.updated, 1);
}

/* One that still records a hold lifted with vigil-store release does not put
 * the hold back. */
static void test_sync_does_not_restore_lifted_hold(void **state)
{
	(void)state;
	struct vg_cert out, have = revoked(VG_REASON_CERTIFICATE_HOLD, T1);
	struct vg_write_result r;
	assert_int_equal(rules_release(&have, &out), 0);
	have = out;
	struct vg_cert want = revoked(VG_REASON_CERTIFICATE_HOLD, T1);
	assert_int_equal(import_rec(&have, &want, &out, &r), 0);
	assert_same(&out, &have);
	assert_int_equal(r.unchanged, 1);
	/* A final revocation in the CA's records still applies. */
	want = revoked(VG_REASON_KEY_COMPROMISE, T2);
	assert_int_equal(import_rec(&have, &want, &out, &r), VG_CHANGE_REVOKE);
	assert_int_equal(out.status, VG_STATUS_REVOKED);
}

/* A serial that is not in the store can still be revoked: recorded as revoked
 * and flagged not_issued, counted as missing; a record of the CA's issuance
 * later clears the flag, a second revocation does not. */
static void test_absent_serial_revoked_not_issued(void **state)
{
	(void)state;
	struct vg_cert out, have;
	struct vg_write_result r;
	assert_int_equal(revoke(NULL, VG_REASON_KEY_COMPROMISE, T1, 0, &out, &r), VG_CHANGE_REVOKE);
	assert_int_equal(out.status, VG_STATUS_REVOKED);
	assert_true(out.flags & VG_CERT_NOT_ISSUED);
	assert_int_equal(r.missing, 1);
	assert_int_equal(r.revoked, 1);

	have = out;
	assert_int_equal(revoke(&have, VG_REASON_KEY_COMPROMISE, T2, 0, &out, &r), 0);
	assert_true(out.flags & VG_CERT_NOT_ISSUED);

	struct vg_cert want = good();
	want.flags = VG_CERT_HAS_NOT_BEFORE;
	want.not_before = T0;
	assert_int_equal(import_rec(&have, &want, &out, &r), VG_CHANGE_UPDATE);
	assert_false(out.flags & VG_CERT_NOT_ISSUED);
	assert_int_equal(out.status, VG_STATUS_REVOKED);

	/* Added by a record of issuance: good, not flagged. */
	want = good();
	assert_int_equal(import_rec(NULL, &want, &out, &r), VG_CHANGE_ADD);
	assert_int_equal(out.flags, 0);
	assert_int_equal(r.added, 1);
	assert_int_equal(r.missing, 0);
}

/* Revocation by issuance window: [after, before), and certificates whose
 * issuance time is unknown are skipped (counted when good). */
static void test_window(void **state)
{
	(void)state;
	struct vg_cert c = good();
	assert_int_equal(rules_window(&c, T1, T2), RULES_WINDOW_SKIPPED);
	c = revoked(VG_REASON_SUPERSEDED, T1);
	assert_int_equal(rules_window(&c, T1, T2), RULES_WINDOW_OUT);
	c = good();
	c.flags = VG_CERT_HAS_NOT_BEFORE;
	c.not_before = T1;
	assert_int_equal(rules_window(&c, T1, T2), RULES_WINDOW_IN);
	c.not_before = T1 - 1;
	assert_int_equal(rules_window(&c, T1, T2), RULES_WINDOW_OUT);
	c.not_before = T2 - 1;
	assert_int_equal(rules_window(&c, T1, T2), RULES_WINDOW_IN);
	c.not_before = T2;
	assert_int_equal(rules_window(&c, T1, T2), RULES_WINDOW_OUT);
	c.not_before = T2;
	assert_int_equal(rules_window(&c, T1, INT64_MAX), RULES_WINDOW_IN);
}

/* Dates are learned, never forgotten; a good certificate seen again as it is
 * is unchanged. */
static void test_dates_learned(void **state)
{
	(void)state;
	struct vg_cert out, have = good(), want = good();
	struct vg_write_result r;
	have.flags = VG_CERT_HAS_NOT_BEFORE;
	have.not_before = T0;
	assert_int_equal(import_rec(&have, &want, &out, &r), 0);
	assert_same(&out, &have);
	assert_int_equal(out.not_before, T0);
	assert_int_equal(r.unchanged, 1);
	want.flags = VG_CERT_HAS_NOT_AFTER;
	want.not_after = T2;
	assert_int_equal(import_rec(&have, &want, &out, &r), VG_CHANGE_UPDATE);
	assert_int_equal(out.flags, VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_NOT_AFTER);
	assert_int_equal(out.not_before, T0);
	assert_int_equal(out.not_after, T2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_revoked_stays_revoked),
	        cmocka_unit_test(test_hold_replaced_by_final_reason),
	        cmocka_unit_test(test_raised_to_key_compromise),
	        cmocka_unit_test(test_hold_only_on_good),
	        cmocka_unit_test(test_release_only_hold),
	        cmocka_unit_test(test_remove_from_crl),
	        cmocka_unit_test(test_not_issued_hold_released_is_absent),
	        cmocka_unit_test(test_sync_keeps_revoked),
	        cmocka_unit_test(test_sync_does_not_restore_lifted_hold),
	        cmocka_unit_test(test_absent_serial_revoked_not_issued),
	        cmocka_unit_test(test_window),
	        cmocka_unit_test(test_dates_learned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
