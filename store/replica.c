/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's side of replication (store/replica.h): identity and role in
 * meta, a primary's commit applied on a replica under the primary's counter,
 * and the bootstrap of an empty replica. The database side is
 * store/cli/replicate*.c.
 */
#include "store/replica.h"
#include "store/internal.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static int meta_opt(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t *out)
{
	*out = 0;
	int rc = env_meta_get(st, txn, k, out);
	return rc == -ENOENT ? 0 : rc;
}

static int meta_del(struct vg_store *st, MDB_txn *txn, const char *k)
{
	MDB_val key = {strlen(k), (void *)k};
	int rc = mdb_del(txn, st->meta, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : env_err(st, rc, "meta_del");
}

static int role_read(struct vg_store *st, MDB_txn *txn, struct vg_store_role *out)
{
	memset(out, 0, sizeof(*out));
	int rc = meta_opt(st, txn, "store_id", &out->store_id);
	if (!rc)
		rc = meta_opt(st, txn, "replica_of", &out->replica_of);
	if (!rc)
		rc = meta_opt(st, txn, "replica_boot", &out->boot);
	if (!rc)
		rc = meta_opt(st, txn, "counter", &out->counter);
	if (!rc)
		rc = meta_opt(st, txn, "repl_epoch", &out->epoch);
	if (!rc)
		rc = meta_opt(st, txn, "promoted_at", &out->promoted_at);
	MDB_stat ms;
	if (!rc && mdb_stat(txn, st->cas, &ms) == 0)
		out->n_cas = ms.ms_entries;
	return rc;
}

int vg_store_role(struct vg_txn *t, struct vg_store_role *out)
{
	return role_read(t->st, t->txn, out);
}

/* with_write runs |fn| in a write transaction and commits it, growing the
 * map and running it again when it fills. */
static int with_write(struct vg_store *st, int (*fn)(struct vg_store *st, MDB_txn *txn, void *arg),
                      void *arg)
{
	if (st->rdonly)
		return -EROFS;
	for (int tries = 0;; tries++) {
		MDB_txn *txn;
		int rc = env_txn_begin(st, 0, &txn);
		if (rc)
			return rc;
		rc = fn(st, txn, arg);
		if (rc == 0) {
			rc = env_err(st, mdb_txn_commit(txn), "txn_commit");
		} else {
			mdb_txn_abort(txn);
		}
		bool full = st->map_full;
		st->map_full = false;
		if (rc == -ENOSPC && full && tries < 16 && env_grow_map(st) == 0)
			continue;
		return rc;
	}
}

static int id_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	uint64_t *id = arg;
	struct vg_store_role r;
	int rc = role_read(st, txn, &r);
	if (rc)
		return rc;
	if (r.replica_of)
		return -EREMOTE;
	if (r.store_id) {
		*id = r.store_id;
		return 0;
	}
	do {
		if (getrandom(id, sizeof(*id), 0) != sizeof(*id))
			return -EIO;
	} while (*id == 0);
	return env_meta_put(st, txn, "store_id", *id, 8);
}

int vg_store_id_ensure(struct vg_store *st, uint64_t *id)
{
	return with_write(st, id_fn, id);
}

static int promote_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	uint64_t *id = arg;
	struct vg_store_role r;
	int rc = role_read(st, txn, &r);
	if (rc)
		return rc;
	if (!r.replica_of)
		return -EINVAL;
	if (r.boot)
		return -EBUSY;
	*id = r.replica_of;
	rc = env_meta_put(st, txn, "store_id", r.replica_of, 8);
	if (!rc)
		rc = env_meta_put(st, txn, "repl_epoch", r.epoch + 1, 8);
	if (!rc)
		rc = env_meta_put(st, txn, "promoted_at", r.counter, 8);
	return rc ? rc : meta_del(st, txn, "replica_of");
}

int vg_store_promote(struct vg_store *st, uint64_t *id)
{
	return with_write(st, promote_fn, id);
}

static int epoch_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	uint64_t want = *(const uint64_t *)arg, have;
	int rc = meta_opt(st, txn, "repl_epoch", &have);
	if (rc || want <= have)
		return rc;
	return env_meta_put(st, txn, "repl_epoch", want, 8);
}

int vg_store_epoch_raise(struct vg_store *st, uint64_t epoch)
{
	return with_write(st, epoch_fn, &epoch);
}

/* ---- writing what the primary wrote ------------------------------------ */

static int put_certs(struct vg_store *st, MDB_txn *txn, const struct vg_repl_cert *v, size_t n,
                     struct pt_pending *pts)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t kb[CERT_KEY_MAX], vb[REC_MAX];
		MDB_val key = {cert_key(v[i].ca_id, &v[i].serial, kb), kb}, val;
		int rc;
		if (v[i].present) {
			val.mv_size = rec_encode(&v[i].cert, vb);
			val.mv_data = vb;
			rc = mdb_put(txn, st->certs, &key, &val, 0);
			if (!rc && v[i].cert.status == VG_STATUS_REVOKED)
				rc = mdb_put(txn, st->revoked, &key, &val, 0);
			else if (!rc)
				rc = mdb_del(txn, st->revoked, &key, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
			if (!rc && pts)
				rc = pt_note(pts, kb, key.mv_size, vb, val.mv_size);
		} else {
			rc = mdb_del(txn, st->certs, &key, NULL);
			if (!rc || rc == MDB_NOTFOUND)
				rc = mdb_del(txn, st->revoked, &key, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
			if (!rc && pts)
				rc = pt_note(pts, kb, key.mv_size, NULL, 0);
		}
		if (rc)
			return rc < 0 ? rc : env_err(st, rc, "replica_put");
	}
	return 0;
}

static int put_cas(struct vg_store *st, MDB_txn *txn, const struct vg_repl_ca *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b[CA_REC_LEN];
		rec_ca_encode(&v[i].state, b);
		MDB_val key = {strlen(v[i].name), (void *)v[i].name}, val = {sizeof(b), b};
		int rc = mdb_put(txn, st->cas, &key, &val, 0);
		if (rc)
			return env_err(st, rc, "replica_ca_put");
	}
	return 0;
}

/* put_changes writes change-log entries; |seq| counts within each counter. */
static int put_changes(struct vg_store *st, MDB_txn *txn, const struct vg_change *v, size_t n)
{
	uint64_t last = 0;
	uint32_t seq = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].counter != last)
			seq = 0;
		last = v[i].counter;
		uint8_t kb[LOG_KEY_LEN], vb[LOG_VAL_MAX];
		rec_log_key(v[i].counter, seq++, kb);
		MDB_val key = {sizeof(kb), kb};
		MDB_val val = {rec_log_encode(v[i].ca_id, v[i].op,
		                              v[i].serial.len ? &v[i].serial : NULL, vb),
		               vb};
		int rc = mdb_put(txn, st->log, &key, &val, 0);
		if (rc)
			return env_err(st, rc, "replica_log_put");
	}
	return 0;
}

static int put_audits(struct vg_store *st, MDB_txn *txn, const struct vg_audit_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t vlen;
		uint8_t *vb = rec_audit_encode(v[i].time, v[i].count, v[i].user, v[i].ca,
		                               v[i].action, v[i].command, &vlen);
		if (!vb)
			return -ENOMEM;
		uint8_t kb[8];
		put_u64(kb, v[i].counter);
		MDB_val key = {8, kb}, val = {vlen, vb};
		int rc = mdb_put(txn, st->audit, &key, &val, 0);
		free(vb);
		if (rc)
			return env_err(st, rc, "replica_audit_put");
	}
	return 0;
}

struct apply_arg {
	uint64_t primary;
	const struct vg_repl_commit *c;
};

static int apply_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	struct apply_arg *a = arg;
	const struct vg_repl_commit *c = a->c;
	struct vg_store_role r;
	int rc = role_read(st, txn, &r);
	if (rc)
		return rc;
	if (r.replica_of != a->primary || r.boot || c->counter != r.counter + 1)
		return -ESTALE;
	struct pt_pending pts;
	memset(&pts, 0, sizeof(pts));
	unsigned lg = 0;
	bool valid = env_points_valid(st, txn, &lg);
	rc = put_certs(st, txn, c->certs, c->n_certs, valid ? &pts : NULL);
	if (!rc)
		rc = put_cas(st, txn, c->cas, c->n_cas);
	if (!rc)
		rc = put_changes(st, txn, c->changes, c->n_changes);
	if (!rc && c->audit)
		rc = put_audits(st, txn, c->audit, 1);
	if (!rc && valid && pts.n) {
		rc = pt_flush(st, txn, &pts, false, lg);
		if (rc == -EBADMSG) /* a copy: stale, rebuilt by the next open */
			rc = env_meta_put(st, txn, "points", 0, 4);
	}
	pt_pending_free(&pts);
	if (!rc)
		rc = env_meta_put(st, txn, "counter", c->counter, 8);
	return rc;
}

int vg_store_replica_apply(struct vg_store *st, uint64_t primary, const struct vg_repl_commit *c)
{
	struct apply_arg a = {primary, c};
	int rc = with_write(st, apply_fn, &a);
	if (rc == 0 && c->n_certs)
		(void)pt_grow(st); /* logs its own failure; the data is in */
	return rc;
}

/* ---- bootstrap ----------------------------------------------------------- */

struct boot_arg {
	uint64_t primary, counter;
	const struct vg_repl_commit *c;
	const struct vg_audit_entry *audits;
	size_t n_audits;
};

static int boot_begin_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	struct boot_arg *a = arg;
	struct vg_store_role r;
	int rc = role_read(st, txn, &r);
	if (rc)
		return rc;
	if (r.replica_of && r.replica_of != a->primary)
		return -ESTALE;
	if (!r.boot && (r.counter || r.n_cas))
		return -EEXIST;
	/* Empty what a stopped bootstrap (or a bare init) left. */
	MDB_dbi dbs[] = {st->cas, st->certs, st->revoked, st->log, st->audit};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		rc = mdb_drop(txn, dbs[i], 0);
		if (rc)
			return env_err(st, rc, "replica_drop");
	}
	rc = env_meta_put(st, txn, "replica_of", a->primary, 8);
	if (!rc)
		rc = env_meta_put(st, txn, "replica_boot", a->counter ? a->counter : 1, 8);
	if (!rc)
		rc = env_meta_put(st, txn, "points", 0, 4);
	if (!rc)
		rc = env_meta_put(st, txn, "counter", 0, 8);
	return rc;
}

int vg_store_replica_boot_begin(struct vg_store *st, uint64_t primary, uint64_t counter)
{
	struct boot_arg a = {.primary = primary, .counter = counter};
	return with_write(st, boot_begin_fn, &a);
}

static int boot_load_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	struct boot_arg *a = arg;
	int rc = put_certs(st, txn, a->c->certs, a->c->n_certs, NULL);
	if (!rc)
		rc = put_cas(st, txn, a->c->cas, a->c->n_cas);
	if (!rc)
		rc = put_changes(st, txn, a->c->changes, a->c->n_changes);
	if (!rc)
		rc = put_audits(st, txn, a->audits, a->n_audits);
	return rc;
}

int vg_store_replica_boot_load(struct vg_store *st, const struct vg_repl_commit *c,
                               const struct vg_audit_entry *audits, size_t n_audits)
{
	struct boot_arg a = {.c = c, .audits = audits, .n_audits = n_audits};
	return with_write(st, boot_load_fn, &a);
}

static int boot_end_fn(struct vg_store *st, MDB_txn *txn, void *arg)
{
	struct boot_arg *a = arg;
	int rc = env_meta_put(st, txn, "counter", a->counter, 8);
	if (!rc)
		rc = meta_del(st, txn, "replica_boot");
	return rc;
}

int vg_store_replica_boot_end(struct vg_store *st, uint64_t counter)
{
	/* The point index first: readers use the B-tree until it is done. */
	int rc = pt_rebuild_all(st);
	if (rc)
		log_warn("event=store_points_rebuild_failed path=%s error=%d", st->path, rc);
	struct boot_arg a = {.counter = counter};
	return with_write(st, boot_end_fn, &a);
}
