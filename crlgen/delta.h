/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The delta CRL's set (crlgen/delta.c): what changed for one CA since the
 * base full CRL, gathered from the store's change log, sorted by serial, and
 * the entry source that turns it into delta CRL entries (RFC 5280 §5.2.4:
 * newly revoked, details changed, removeFromCRL for a lifted hold).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crlgen/crl.h"
#include "store/store.h"

#define OP_BIT(op) (1u << (op))

struct delta_item {
	struct vg_serial serial;
	uint8_t ops; /* OP_BIT of every change seen */
};

struct delta_set {
	uint32_t ca_id;
	struct delta_item *v;
	size_t n, cap;
	bool ca_wide;  /* a CA-wide change (bulk import, freeze): a full CRL instead */
	bool overflow; /* more than CRLGEN_DELTA_MAX serials: a full CRL instead */
};

/* crlgen_delta_cb is the vg_store_changes_foreach callback that gathers the
 * changes of |arg| (a struct delta_set)'s CA. */
int crlgen_delta_cb(const struct vg_change *c, void *arg);
/* crlgen_delta_sort sorts the set by serial, merging a serial's changes. */
void crlgen_delta_sort(struct delta_set *d);

/* The entry source of a delta CRL over a sorted set, read in |txn|. */
struct delta_src {
	struct vg_txn *txn;
	const struct delta_set *d;
	size_t i;
	int64_t now; /* the removeFromCRL entries' date */
};
int crlgen_delta_begin(void *arg);
int crlgen_delta_next(void *arg, struct crl_entry *e);
