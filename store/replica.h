/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What replication (issue 15, vigil-store replicate) needs of the store
 * beyond store.h: the store's identity and role, and the one way a replica
 * store is written, a change of the primary applied under the primary's own
 * change counter.
 *
 * Meta values (store/internal.h):
 *   "store_id"   u64  the store's identity (given at creation, store/backup.c);
 *                     a primary's is kept in the database's meta table too, and
 *                     a promoted replica takes its primary's
 *   "replica_of" u64  a replica: the primary's store id. Every write through
 *                     store.h is then refused with -EREMOTE.
 *   "replica_boot" u64 a bootstrap under way (its counter): a replica whose
 *                     bootstrap stopped is emptied and bootstrapped again
 *
 * Errors as store.h, plus:
 *   -EREMOTE  a write through store.h on a replica store
 *   -ESTALE   a change whose counter is not the next one of the local store,
 *             or a replica of another primary
 *   -EEXIST   a bootstrap of a store that has data of its own
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct vg_store_role {
	uint64_t store_id;   /* a primary's own id; 0 if it has none yet */
	uint64_t replica_of; /* a replica: its primary's id; 0 on a primary */
	uint64_t boot;       /* a bootstrap stopped half way: its counter */
	uint64_t counter;
	uint64_t n_cas;
	/* Promotions the store's database has seen: a promotion adds one, the
	 * first publish after it marks the database with it, and a follow
	 * records the database's. A publish from a store whose epoch is older
	 * than its database's (an old primary back after a failover) is
	 * refused, and so is a follow from a database older than the store. */
	uint64_t epoch;
	/* The counter it had when promoted (0: never promoted): the promoted
	 * site's first publish refuses a database that moved past it. */
	uint64_t promoted_at;
};

/* vg_store_role reads the store's identity in |t|'s snapshot. */
int vg_store_role(struct vg_txn *t, struct vg_store_role *out);

/* vg_store_id_ensure gives a primary its store id, made from random octets
 * on first use; -EREMOTE on a replica. */
int vg_store_id_ensure(struct vg_store *st, uint64_t *id);

/* vg_store_promote turns a replica into a primary: its store id becomes the
 * primary's, so the database it followed can be published to again. */
int vg_store_promote(struct vg_store *st, uint64_t *id);

/* vg_store_epoch_raise records |epoch| as the store's (vg_store_role) when it
 * is newer; a replica's store accepts it too. */
int vg_store_epoch_raise(struct vg_store *st, uint64_t epoch);

/* One certificate's record as replicated: |present| false when it is gone
 * (a hold lifted from a serial known only from the hold). */
struct vg_repl_cert {
	uint32_t ca_id;
	bool present;
	struct vg_serial serial;
	struct vg_cert cert;
};

struct vg_repl_ca {
	char name[64];
	struct vg_ca_state state;
};

/* Everything a commit of the primary changed, as the database has it. */
struct vg_repl_commit {
	uint64_t counter;
	const struct vg_repl_cert *certs;
	size_t n_certs;
	const struct vg_repl_ca *cas;
	size_t n_cas;
	const struct vg_change *changes; /* its change-log entries, in order */
	size_t n_changes;
	const struct vg_audit_entry *audit; /* NULL if none */
};

/* vg_store_replica_apply applies |c| in one LMDB transaction, writing the
 * change log and the audit record as the primary did, and sets the counter
 * to c->counter, which must be the local counter plus one (-ESTALE else, as
 * for a replica of another primary than |primary|). */
int vg_store_replica_apply(struct vg_store *st, uint64_t primary, const struct vg_repl_commit *c);

/* Bootstrap of an empty store: vg_store_replica_boot_begin marks the store
 * a replica of |primary| whose bootstrap is under way (emptying what a
 * stopped one left; -EEXIST when the store has data of its own),
 * vg_store_replica_boot_load writes a batch (one transaction; any of the
 * arrays may be empty; |c->counter| unused), and vg_store_replica_boot_end
 * sets the counter to |counter| and rebuilds the point index. */
int vg_store_replica_boot_begin(struct vg_store *st, uint64_t primary, uint64_t counter);
int vg_store_replica_boot_load(struct vg_store *st, const struct vg_repl_commit *c,
                               const struct vg_audit_entry *audits, size_t n_audits);
int vg_store_replica_boot_end(struct vg_store *st, uint64_t counter);

/* vg_store_audit_since calls |cb| for each audit record with counter >
 * |since|, oldest first, until it returns non-zero. */
int vg_store_audit_since(struct vg_txn *t, uint64_t since,
                         int (*cb)(const struct vg_audit_entry *e, void *arg), void *arg);
