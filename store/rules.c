/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The revocation rules (rules.h): what a certificate's state becomes when a
 * record of the CA's issuance or an operator's revocation arrives. Pure
 * logic on struct vg_cert; write.c applies it inside write transactions.
 */
#include "store/rules.h"

#include <errno.h>
#include <string.h>

/* lift_hold makes |c| good again, remembering that a hold was lifted (a
 * sync of the CA's records must not put it back). */
static void lift_hold(struct vg_cert *c)
{
	c->status = VG_STATUS_GOOD;
	c->reason = VG_REASON_NONE;
	c->revoked_at = 0;
	c->invalidity_date = 0;
	c->flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
	c->flags |= VG_CERT_RELEASED;
}

bool rules_is_hold(const struct vg_cert *c)
{
	return c->status == VG_STATUS_REVOKED && c->reason == VG_REASON_CERTIFICATE_HOLD;
}

int rules_merge(const struct vg_cert *have, const struct vg_cert *want, bool sync,
                struct vg_cert *out, struct vg_write_result *r)
{
	if (!have) {
		*out = *want;
		out->flags &= (uint8_t)~VG_CERT_LIFT_HOLD;
		if (!sync) {
			/* Revoked by serial, never seen as issued (an investigation
			 * may name certificates the CA's records missed). */
			out->flags |= VG_CERT_NOT_ISSUED;
			r->missing++;
		}
		if (want->status == VG_STATUS_REVOKED) {
			r->revoked++;
			return VG_CHANGE_REVOKE;
		}
		r->added++;
		return VG_CHANGE_ADD;
	}
	*out = *have;
	/* Dates are learned, never forgotten. */
	bool dates = false;
	if ((want->flags & VG_CERT_HAS_NOT_BEFORE) &&
	    (!(have->flags & VG_CERT_HAS_NOT_BEFORE) || have->not_before != want->not_before)) {
		out->flags |= VG_CERT_HAS_NOT_BEFORE;
		out->not_before = want->not_before;
		dates = true;
	}
	if ((want->flags & VG_CERT_HAS_NOT_AFTER) &&
	    (!(have->flags & VG_CERT_HAS_NOT_AFTER) || have->not_after != want->not_after)) {
		out->flags |= VG_CERT_HAS_NOT_AFTER;
		out->not_after = want->not_after;
		dates = true;
	}
	/* The shard its CRL distribution point names, learned like the dates. */
	if ((want->flags & VG_CERT_HAS_SHARD) &&
	    (!(have->flags & VG_CERT_HAS_SHARD) || have->crl_shard != want->crl_shard)) {
		out->flags |= VG_CERT_HAS_SHARD;
		out->crl_shard = want->crl_shard;
		dates = true;
	}
	/* Seen as issued now (a record from the CA's side, not a revocation,
	 * which says nothing about issuance): no longer a serial known only
	 * from a revocation. */
	if (sync && (have->flags & VG_CERT_NOT_ISSUED)) {
		out->flags &= (uint8_t)~VG_CERT_NOT_ISSUED;
		dates = true;
	}

	if (want->status == VG_STATUS_GOOD) {
		if ((want->flags & VG_CERT_LIFT_HOLD) && rules_is_hold(have) &&
		    !(have->flags & VG_CERT_NOT_ISSUED)) {
			/* The CA's database lifted the hold (removeFromCRL). */
			lift_hold(out);
			r->released++;
			return VG_CHANGE_RELEASE;
		}
		if (have->status == VG_STATUS_REVOKED)
			r->kept++; /* a revoked certificate stays revoked */
		if (dates) {
			r->updated++;
			return VG_CHANGE_UPDATE;
		}
		if (have->status != VG_STATUS_REVOKED)
			r->unchanged++;
		return 0;
	}

	/* want revoked */
	bool change = false;
	if (sync && have->status == VG_STATUS_GOOD && (have->flags & VG_CERT_RELEASED) &&
	    want->reason == VG_REASON_CERTIFICATE_HOLD) {
		/* The hold the CA's database still records was lifted here since:
		 * a sync must not put it back. */
		if (dates) {
			r->updated++;
			return VG_CHANGE_UPDATE;
		}
		r->unchanged++;
		return 0;
	}
	if (have->status == VG_STATUS_GOOD) {
		change = true;
		out->status = VG_STATUS_REVOKED;
		out->revoked_at = want->revoked_at;
		out->reason = want->reason;
	} else if (rules_is_hold(have) && want->reason != VG_REASON_CERTIFICATE_HOLD) {
		/* certificateHold replaced by a final reason (RFC 5280 §5.3.1). */
		change = true;
		out->revoked_at = want->revoked_at;
		out->reason = want->reason;
	} else if (want->reason == VG_REASON_KEY_COMPROMISE &&
	           have->reason != VG_REASON_KEY_COMPROMISE && !rules_is_hold(have)) {
		/* Raised to keyCompromise; the original revocation time stands. */
		change = true;
		out->reason = VG_REASON_KEY_COMPROMISE;
	}
	if (change) {
		out->flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
		out->invalidity_date = 0;
		if (want->flags & VG_CERT_HAS_INVALIDITY) {
			out->flags |= VG_CERT_HAS_INVALIDITY;
			out->invalidity_date = want->invalidity_date;
		} else if (have->status == VG_STATUS_REVOKED &&
		           (have->flags & VG_CERT_HAS_INVALIDITY)) {
			out->flags |= VG_CERT_HAS_INVALIDITY;
			out->invalidity_date = have->invalidity_date;
		}
		r->revoked++;
		return VG_CHANGE_REVOKE;
	}
	if (have->reason == want->reason && (want->flags & VG_CERT_HAS_INVALIDITY) &&
	    !(have->flags & VG_CERT_HAS_INVALIDITY)) {
		/* The compromise time learned later: the same revocation, more precise. */
		out->flags |= VG_CERT_HAS_INVALIDITY;
		out->invalidity_date = want->invalidity_date;
		r->revoked++;
		return VG_CHANGE_REVOKE;
	}
	if (dates) {
		r->updated++;
		return VG_CHANGE_UPDATE;
	}
	r->unchanged++;
	return 0;
}

void rules_want_revoked(const struct vg_revocation *rev, struct vg_cert *want)
{
	memset(want, 0, sizeof(*want));
	want->status = VG_STATUS_REVOKED;
	want->reason = rev->reason;
	want->revoked_at = rev->revoked_at;
	if (rev->has_invalidity) {
		want->flags |= VG_CERT_HAS_INVALIDITY;
		want->invalidity_date = rev->invalidity_date;
	}
}

int rules_revocation_check(const struct vg_revocation *rev)
{
	return rev->reason == VG_REASON_REMOVE_FROM_CRL ? -EINVAL : 0;
}

int rules_release(const struct vg_cert *have, struct vg_cert *out)
{
	if (!rules_is_hold(have))
		return -EPERM;
	/* Known only from the hold: lifting it leaves a serial the CA never
	 * issued, which is absent, never good. */
	if (have->flags & VG_CERT_NOT_ISSUED)
		return 1;
	*out = *have;
	lift_hold(out);
	return 0;
}

enum rules_window rules_window(const struct vg_cert *c, int64_t after, int64_t before)
{
	if (!(c->flags & VG_CERT_HAS_NOT_BEFORE))
		return c->status == VG_STATUS_GOOD ? RULES_WINDOW_SKIPPED : RULES_WINDOW_OUT;
	if (c->not_before < after || c->not_before >= before)
		return RULES_WINDOW_OUT;
	return RULES_WINDOW_IN;
}
