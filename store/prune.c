/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Retention: what vg_store_prune removes, in small write transactions so
 * that readers and other writers are never held up for long.
 *
 * The change log: entries of commits older than log_retention (by the
 * commit's audit time). meta "log_floor" records the newest pruned counter;
 * vg_store_changes_foreach from below it returns -ERANGE, and its caller
 * starts over (the responder drops its cache, crlgen builds a full CRL).
 * These transactions change no status: they move neither the counter nor
 * the audit log.
 *
 * Certificates: those whose notAfter is older than expired_retention, of
 * the CAs the caller allows, a revoked one only once a full CRL was issued
 * after its notAfter (RFC 5280 §3.3: it has then been on one CRL past its
 * expiry, and crlgen leaves it out of later ones). The removals are in the
 * change log (VG_CHANGE_REMOVE: one per serial, or one CA-wide entry for a
 * commit of more than PRUNE_LOG_DETAIL_MAX, on which the responder drops
 * the CA's cached answers; crlgen ignores both, an expired entry leaving
 * its CRLs without a removeFromCRL), each commit in the audit log, and the
 * CA is marked pruned: its absent serials are then no longer known never to
 * have been issued, so the responder never answers them revoked
 * (not_issued = revoked), only unknown.
 */
#include "store/internal.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PRUNE_LOG_BATCH 10000u   /* log entries per transaction */
#define PRUNE_CERT_BATCH 10000u  /* certificates removed per transaction */
#define PRUNE_SCAN_BATCH 200000u /* certificates read per transaction, at most */
/* More removals than this in one commit are logged as one CA-wide removal
 * (the log would otherwise hold every expired serial for log_retention). */
#define PRUNE_LOG_DETAIL_MAX 1024u

/* log_cutoff finds the newest counter committed before |before| (by its
 * audit record), into |*out| (0: none). */
static int log_cutoff(struct vg_store *st, int64_t before, uint64_t *out)
{
	MDB_txn *txn;
	int rc = env_txn_begin(st, MDB_RDONLY, &txn);
	if (rc)
		return rc;
	MDB_cursor *cur;
	rc = mdb_cursor_open(txn, st->audit, &cur);
	if (rc) {
		mdb_txn_abort(txn);
		return env_err(st, rc, "cursor_open");
	}
	*out = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct vg_audit_entry e;
		if (rec_audit_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &e) < 0)
			continue;
		if (e.time >= before)
			break;
		*out = e.counter;
	}
	rc = rc == 0 || rc == MDB_NOTFOUND ? 0 : env_err(st, rc, "cursor_get");
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

/* prune_log_batch removes up to PRUNE_LOG_BATCH entries at or below
 * |upto| in one transaction; |*more| tells whether any remain. */
static int prune_log_batch(struct vg_store *st, uint64_t upto, struct vg_prune_result *res,
                           bool *more)
{
	MDB_txn *txn;
	*more = false;
	int rc = env_txn_begin(st, 0, &txn);
	if (rc)
		return rc;
	if (vg_store_replaced(st)) {
		mdb_txn_abort(txn);
		return -ESTALE;
	}
	MDB_cursor *cur;
	rc = mdb_cursor_open(txn, st->log, &cur);
	if (rc) {
		mdb_txn_abort(txn);
		return env_err(st, rc, "cursor_open");
	}
	uint64_t n = 0, last = 0, floor = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < PRUNE_LOG_BATCH;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
		if (k.mv_size != LOG_KEY_LEN || get_u64(k.mv_data) > upto)
			break;
		last = get_u64(k.mv_data);
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		n++;
	}
	if (rc == 0 && n == PRUNE_LOG_BATCH)
		*more = true;
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return env_err(st, rc, "log_del");
	}
	rc = 0;
	if (n) {
		int r = env_meta_get(st, txn, "log_floor", &floor);
		if (r && r != -ENOENT)
			rc = r;
		if (!rc && last > floor)
			rc = env_meta_put(st, txn, "log_floor", last, 8);
	}
	if (rc || !n) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return env_err(st, rc, "txn_commit");
	res->log_removed += n;
	res->log_floor = last > res->log_floor ? last : res->log_floor;
	return 0;
}

/* One CA's walk through its certificates, a transaction at a time. */
struct cert_walk {
	const struct vg_prune_ca *ca;
	int64_t cutoff;
	struct vg_serial last; /* resume after this serial; len 0: from the start */
	bool done;
	/* This batch's outcome, adopted once it committed (wtx_run may run
	 * it again after growing the map). */
	struct vg_serial next_last;
	bool next_done;
	uint64_t removed, revoked, kept_no_crl, scanned;
};

struct hit {
	struct vg_serial s;
	struct vg_cert c;
};

static int cert_fn(struct wtx *w, void *arg)
{
	struct cert_walk *b = arg;
	b->removed = b->revoked = b->kept_no_crl = b->scanned = 0;
	struct hit *hits = malloc(PRUNE_CERT_BATCH * sizeof(*hits));
	if (!hits)
		return -ENOMEM;
	size_t nh = 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(w->txn, w->st->certs, &cur);
	if (rc) {
		free(hits);
		return env_err(w->st, rc, "cursor_open");
	}
	uint8_t kb[CERT_KEY_MAX];
	MDB_val key = {0, kb}, val;
	if (b->last.len) {
		key.mv_size = cert_key(w->ca_state.id, &b->last, kb);
	} else {
		put_u32(kb, w->ca_state.id);
		key.mv_size = 4;
	}
	size_t lastlen = key.mv_size;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	if (rc == 0 && b->last.len && key.mv_size == lastlen && !memcmp(key.mv_data, kb, lastlen))
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	b->next_done = true;
	b->next_last = b->last;
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct hit h;
		uint32_t id;
		if (key.mv_size < 4 || get_u32(key.mv_data) != w->ca_state.id)
			break;
		if (nh == PRUNE_CERT_BATCH || b->scanned == PRUNE_SCAN_BATCH) {
			b->next_done = false;
			break;
		}
		if (cert_key_decode(key.mv_data, key.mv_size, &id, &h.s) < 0 ||
		    rec_decode(val.mv_data, val.mv_size, &h.c) < 0) {
			rc = -EBADMSG;
			goto out;
		}
		b->scanned++;
		b->next_last = h.s;
		if (!(h.c.flags & VG_CERT_HAS_NOT_AFTER) || h.c.not_after >= b->cutoff)
			continue;
		if (h.c.status == VG_STATUS_REVOKED && b->ca->last_full_crl <= h.c.not_after) {
			b->kept_no_crl++;
			continue;
		}
		hits[nh++] = h;
	}
	if (rc && rc != MDB_NOTFOUND) {
		rc = env_err(w->st, rc, "cursor_get");
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = 0;
	for (size_t i = 0; i < nh && !rc; i++) {
		rc = wtx_del_cert(w, &hits[i].s, &hits[i].c);
		if (!rc && nh <= PRUNE_LOG_DETAIL_MAX)
			rc = wtx_log_put(w, w->ca_state.id, VG_CHANGE_REMOVE, &hits[i].s);
		b->removed++;
		if (hits[i].c.status == VG_STATUS_REVOKED)
			b->revoked++;
	}
	if (!rc && nh > PRUNE_LOG_DETAIL_MAX)
		rc = wtx_log_put(w, w->ca_state.id, VG_CHANGE_REMOVE, NULL);
	if (!rc && nh && !w->ca_state.pruned) {
		w->ca_state.pruned = true;
		w->ca_dirty = true;
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	free(hits);
	return rc;
}

static int prune_certs(struct vg_store *st, const struct vg_prune_ca *ca, int64_t cutoff,
                       const struct vg_audit *who, struct vg_prune_result *res,
                       vg_progress_fn progress, void *parg)
{
	struct cert_walk b = {.ca = ca, .cutoff = cutoff};
	struct vg_write_result total = {0};
	uint64_t scanned = 0;
	int rc = 0;
	while (!b.done) {
		uint64_t commits = total.commits;
		rc = wtx_run(st, ca->name, "prune", who, cert_fn, &b, &total);
		if (rc)
			break;
		b.last = b.next_last;
		b.done = b.next_done;
		scanned += b.scanned;
		res->kept_no_crl += b.kept_no_crl;
		if (total.commits > commits) {
			res->certs_removed += b.removed;
			res->revoked_removed += b.revoked;
		}
		if (progress)
			progress(scanned, 0, parg);
	}
	res->commits += total.commits;
	return rc;
}

int vg_store_prune(struct vg_store *st, int64_t now, int64_t log_retention,
                   int64_t expired_retention, const struct vg_prune_ca *cas, size_t n_cas,
                   const struct vg_audit *who, struct vg_prune_result *res, vg_progress_fn progress,
                   void *parg)
{
	memset(res, 0, sizeof(*res));
	if (st->rdonly)
		return -EROFS;
	if (log_retention <= 0 || expired_retention <= 0)
		return -EINVAL;
	/* Certificates first: their removals are logged, and pruned with the
	 * rest of the log only once they are old. */
	pt_bulk_begin(st);
	int rc = 0;
	for (size_t i = 0; i < n_cas && !rc; i++)
		if (cas[i].certs)
			rc = prune_certs(st, &cas[i], now - expired_retention, who, res, progress,
			                 parg);
	rc = pt_bulk_end(st, rc);
	uint64_t upto = 0;
	if (!rc)
		rc = log_cutoff(st, now - log_retention, &upto);
	for (bool more = upto > 0; !rc && more;) {
		rc = prune_log_batch(st, upto, res, &more);
		if (progress && !rc)
			progress(res->log_removed, 0, parg);
	}
	if (!rc)
		log_info("event=store_pruned path=%s log_removed=%llu log_floor=%llu "
		         "certs_removed=%llu revoked_removed=%llu kept_no_crl=%llu",
		         st->path, (unsigned long long)res->log_removed,
		         (unsigned long long)res->log_floor, (unsigned long long)res->certs_removed,
		         (unsigned long long)res->revoked_removed,
		         (unsigned long long)res->kept_no_crl);
	return rc;
}
