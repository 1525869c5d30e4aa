/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The revocation rules the store enforces (README.md, "Rules the store
 * enforces"; RFC 5280 §5.3.1, Baseline Requirements §4.9): pure decisions
 * on struct vg_cert values, no LMDB. Internal to store/ (and its unit test,
 * tests/unit/test_rules.c); write.c applies them inside write transactions.
 */

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* rules_is_hold tells whether |c| is revoked with certificateHold. */
bool rules_is_hold(const struct vg_cert *c);

/* rules_merge decides what (|have|, present or not) becomes when |want|
 * arrives, under the rules of vg_store_add (|sync|: a record of the CA's
 * issuance) and vg_store_revoke (an operator's revocation, which says nothing
 * about issuance). It writes the result to |out|, counts the outcome in |r|
 * and returns the change op (VG_CHANGE_*), or 0 when nothing changes. */
int rules_merge(const struct vg_cert *have, const struct vg_cert *want, bool sync,
                struct vg_cert *out, struct vg_write_result *r);

/* rules_want_revoked is the certificate state an operator's revocation
 * |rev| asks for. */
void rules_want_revoked(const struct vg_revocation *rev, struct vg_cert *want);

/* rules_revocation_check refuses (-EINVAL) a revocation the store never
 * records: removeFromCRL is not a reason one revokes with. */
int rules_revocation_check(const struct vg_revocation *rev);

/* rules_release lifts the hold of |have| (vg_store_release): -EPERM when it
 * is not on hold; 1 when it was known only from the hold (never seen as
 * issued), which makes it absent again, never good; else 0 with the good,
 * released state in |out|. */
int rules_release(const struct vg_cert *have, struct vg_cert *out);

/* Where a certificate falls for a revocation by issuance window [after,
 * before) (vg_store_revoke_window). */
enum rules_window {
	RULES_WINDOW_OUT = 0,     /* issued outside the window, or revoked and issuance unknown */
	RULES_WINDOW_IN = 1,      /* issued inside: revoke it */
	RULES_WINDOW_SKIPPED = 2, /* good, issuance time unknown: counted as skipped */
};
enum rules_window rules_window(const struct vg_cert *c, int64_t after, int64_t before);
