/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delta CRL's set and entry source: see delta.h.
 */
#include "crlgen/delta.h"
#include "crlgen/crlgen.h"
#include "crlgen/internal.h"

#include <errno.h>
#include <stdlib.h>

#include "common/text.h"

int crlgen_delta_cb(const struct vg_change *c, void *arg)
{
	struct delta_set *d = arg;
	/* An expired certificate removed from the store (vigil-store prune)
	 * has been left out of the full CRLs since one past its expiry: the
	 * delta has nothing to say about it (RFC 5280 §5.2.4). */
	if (c->ca_id != d->ca_id || c->op == VG_CHANGE_REMOVE)
		return 0;
	if (c->op == VG_CHANGE_CA || c->serial.len == 0) {
		d->ca_wide = true;
		return 1;
	}
	if (d->n == d->cap) {
		if (d->cap >= CRLGEN_DELTA_MAX) {
			d->overflow = true;
			return 1;
		}
		size_t cap = d->cap ? d->cap * 2 : 256;
		if (cap > CRLGEN_DELTA_MAX)
			cap = CRLGEN_DELTA_MAX;
		struct delta_item *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n].serial = c->serial;
	d->v[d->n].ops = (uint8_t)OP_BIT(c->op & 7);
	d->n++;
	return 0;
}

static int item_cmp(const void *a, const void *b)
{
	return vg_serial_cmp(&((const struct delta_item *)a)->serial,
	                     &((const struct delta_item *)b)->serial);
}

void crlgen_delta_sort(struct delta_set *d)
{
	if (d->n == 0)
		return;
	qsort(d->v, d->n, sizeof(*d->v), item_cmp);
	size_t o = 0;
	for (size_t i = 1; i < d->n; i++) {
		if (vg_serial_cmp(&d->v[o].serial, &d->v[i].serial) == 0)
			d->v[o].ops |= d->v[i].ops;
		else
			d->v[++o] = d->v[i];
	}
	d->n = o + 1;
}

int crlgen_delta_begin(void *arg)
{
	((struct delta_src *)arg)->i = 0;
	return 0;
}

int crlgen_delta_next(void *arg, struct crl_entry *e)
{
	struct delta_src *s = arg;
	while (s->i < s->d->n) {
		const struct delta_item *it = &s->d->v[s->i++];
		struct vg_cert c;
		int rc = vg_store_get(s->txn, s->d->ca_id, &it->serial, &c);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		if (rc == 0 && c.status == VG_STATUS_REVOKED) {
			/* Newly revoked or its details changed; a date update
			 * alone does not change the CRL entry. */
			if (!(it->ops & ~OP_BIT(VG_CHANGE_UPDATE)))
				continue;
			crlgen_entry_from(e, &it->serial, &c);
			return 1;
		}
		/* Good again, or absent again: a serial known only from its hold
		 * (VG_CERT_NOT_ISSUED) leaves the store when the hold is lifted,
		 * and the base may still list it. */
		if (it->ops & OP_BIT(VG_CHANGE_RELEASE)) {
			/* Hold lifted: RFC 5280 §5.3.1 removeFromCRL. */
			e->serial = it->serial;
			e->revoked_at = s->now;
			e->reason = VG_REASON_REMOVE_FROM_CRL;
			e->has_invalidity = false;
			return 1;
		}
	}
	return 0;
}
