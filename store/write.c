/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing the store. A write is a series of batches (wtx_run). Each batch
 * runs in one write transaction (struct wtx): it reads the CA record,
 * applies changes through apply(), which decides by the revocation rules
 * (rules.c) and keeps the certs and revoked databases, the CA's counts and
 * the change log in step, and wtx_commit() bumps the counter, appends the
 * audit record and commits. On MDB_MAP_FULL the batch is aborted, the map
 * doubled and the batch run again from scratch. A write of more than one
 * batch is a bulk operation for the point index (pt_bulk_*).
 */
#include "store/internal.h"
#include "store/rules.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

/* More than this many additions in one commit are logged as one CA-wide change. */
#define LOG_ADD_DETAIL_MAX 1024

static int wtx_begin(struct vg_store *st, const char *ca, struct wtx *w)
{
	memset(w, 0, sizeof(*w));
	w->st = st;
	w->ca = ca;
	if (st->rdonly)
		return -EROFS;
	int rc = env_txn_begin(st, 0, &w->txn);
	if (rc)
		return rc;
	if (vg_store_replaced(st)) {
		/* A restore exchanged the store while this write waited for the
		 * writer lock: writing here would write into the old store. */
		log_err("event=store_replaced path=%s action=write_refused", st->path);
		rc = -ESTALE;
		goto fail;
	}
	if (ca) {
		rc = read_ca(st, w->txn, ca, &w->ca_state);
		if (rc)
			goto fail;
	}
	uint64_t counter;
	/* A replica is written by `replicate follow` only (store/replica.c). */
	rc = env_meta_get(st, w->txn, "replica_of", &counter);
	if (rc == 0) {
		rc = -EREMOTE;
		goto fail;
	}
	rc = env_meta_get(st, w->txn, "counter", &counter);
	if (rc)
		goto fail;
	w->counter = counter + 1;
	w->pending_adds = malloc(LOG_ADD_DETAIL_MAX * sizeof(*w->pending_adds));
	w->pending_ops = malloc(LOG_ADD_DETAIL_MAX);
	if (!w->pending_adds || !w->pending_ops) {
		rc = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	mdb_txn_abort(w->txn);
	w->txn = NULL;
	free(w->pending_adds);
	free(w->pending_ops);
	return rc;
}

static void wtx_abort(struct wtx *w)
{
	if (w->txn)
		mdb_txn_abort(w->txn);
	w->txn = NULL;
	free(w->pending_adds);
	free(w->pending_ops);
	w->pending_adds = NULL;
	w->pending_ops = NULL;
	pt_pending_free(&w->points);
}

int wtx_log_put(struct wtx *w, uint32_t ca_id, uint8_t op, const struct vg_serial *s)
{
	uint8_t kb[LOG_KEY_LEN], vb[LOG_VAL_MAX];
	rec_log_key(w->counter, w->seq++, kb);
	MDB_val key = {sizeof(kb), kb}, val = {rec_log_encode(ca_id, op, s, vb), vb};
	/* Keys grow monotonically: MDB_APPEND fills pages completely. */
	return env_err(w->st, mdb_put(w->txn, w->st->log, &key, &val, MDB_APPEND), "log_put");
}

/* note_add records an ADD or UPDATE for the log; beyond LOG_ADD_DETAIL_MAX in
 * one commit they collapse into one CA-wide entry written at commit. */
static void note_add(struct wtx *w, const struct vg_serial *s, uint8_t op)
{
	if (w->n_adds < LOG_ADD_DETAIL_MAX) {
		w->pending_adds[w->n_adds] = *s;
		w->pending_ops[w->n_adds] = op;
	} else {
		w->adds_collapsed = true;
	}
	w->n_adds++;
}

static int ca_write(struct wtx *w)
{
	struct vg_store *st = w->st;
	MDB_val key = {strlen(w->ca), (void *)w->ca}, val;
	/* A new CA: its id must not be taken by another name. */
	if (mdb_get(w->txn, st->cas, &key, &val) == MDB_NOTFOUND) {
		MDB_cursor *cur;
		int rc = mdb_cursor_open(w->txn, st->cas, &cur);
		if (rc)
			return env_err(w->st, rc, "cursor_open");
		MDB_val k2, v2;
		for (rc = mdb_cursor_get(cur, &k2, &v2, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k2, &v2, MDB_NEXT)) {
			struct vg_ca_state o;
			if (rec_ca_decode(v2.mv_data, v2.mv_size, &o) == 0 &&
			    o.id == w->ca_state.id) {
				mdb_cursor_close(cur);
				log_err("event=ca_id_collision ca=%s", w->ca);
				return -EEXIST;
			}
		}
		mdb_cursor_close(cur);
	}
	uint8_t b[CA_REC_LEN];
	rec_ca_encode(&w->ca_state, b);
	val.mv_size = sizeof(b);
	val.mv_data = b;
	return env_err(w->st, mdb_put(w->txn, st->cas, &key, &val, 0), "ca_put");
}

/* disk_full tells whether the file system of the store has (almost) no
 * room left: less than 64 pages. */
static bool disk_full(struct vg_store *st)
{
	struct statvfs sv;
	if (statvfs(st->path, &sv) < 0)
		return false;
	return (uint64_t)sv.f_bavail * sv.f_frsize < 64u * 4096u;
}

static int wtx_commit(struct wtx *w, const char *action, const struct vg_audit *who)
{
	struct vg_store *st = w->st;
	int rc = 0;
	if (w->n_adds) {
		if (w->adds_collapsed) {
			rc = wtx_log_put(w, w->ca_state.id, VG_CHANGE_CA, NULL);
		} else {
			for (uint32_t i = 0; i < w->n_adds && !rc; i++)
				rc = wtx_log_put(w, w->ca_state.id, w->pending_ops[i],
				                 &w->pending_adds[i]);
		}
		if (rc)
			goto fail;
	}
	if (w->ca && w->ca_dirty) {
		rc = ca_write(w);
		if (rc)
			goto fail;
	}
	bool deferred = st->bulk && w->points.n;
	bool valid_before = false, outgrown = false;
	uint64_t epoch = 0;
	if (deferred) {
		/* One of many commits: every one says the index is stale, in case
		 * another writer rebuilt it in between; the operation brings it up
		 * to date once, at its end (pt_bulk_end). Once the store has outgrown
		 * the index's segment count, that will be a rebuild: then there is
		 * nothing to merge, and "valid before" is moot. */
		unsigned lg = 0;
		uint64_t l = 0;
		if (env_meta_get(st, w->txn, "points_epoch", &epoch) == -ENOENT)
			epoch = 0;
		valid_before = env_points_valid(st, w->txn, &lg);
		if (!valid_before && env_meta_get(st, w->txn, "points_lg", &l) == 0)
			lg = (unsigned)l;
		outgrown = pt_lg_for(pt_cert_count(st, w->txn)) > lg;
		rc = env_meta_put(st, w->txn, "points", 0, 4);
	} else if (w->points.n) {
		uint64_t lg = 0;
		rc = env_meta_get(st, w->txn, "points_lg", &lg);
		if (rc == -ENOENT || lg > PT_MAX_LG) {
			/* Not usable: the next read-write open rebuilds it. */
			lg = 0;
			rc = env_meta_put(st, w->txn, "points", 0, 4);
		}
		if (!rc)
			rc = pt_flush(st, w->txn, &w->points, false, (unsigned)lg);
		if (rc == -EBADMSG) {
			/* A corrupt segment must not block writes: the index is
			 * a copy, marked stale here and rebuilt by the next
			 * read-write open. */
			rc = env_meta_put(st, w->txn, "points", 0, 4);
		}
	}
	if (rc)
		goto fail;
	rc = env_meta_put(st, w->txn, "counter", w->counter, 8);
	if (rc)
		goto fail;

	const char *user = who && who->user ? who->user : "";
	const char *cmd = who && who->command ? who->command : "";
	size_t vlen;
	uint8_t *vb = rec_audit_encode(vg_now(), w->changed, user, w->ca ? w->ca : "", action, cmd,
	                               &vlen);
	if (!vb) {
		rc = -ENOMEM;
		goto fail;
	}
	uint8_t kb[8];
	put_u64(kb, w->counter);
	MDB_val key = {8, kb}, val = {vlen, vb};
	rc = env_err(w->st, mdb_put(w->txn, st->audit, &key, &val, MDB_APPEND), "audit_put");
	free(vb);
	if (rc)
		goto fail;
	rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	if (rc == EIO && disk_full(st)) {
		/* LMDB reports a short write as EIO; a full file system is the
		 * usual cause, and the one the operator can act on. */
		rc = -ENOSPC;
		goto fail;
	}
	if (rc) {
		rc = env_err(w->st, rc, "txn_commit");
		goto fail;
	}
	w->res.commits++;
	if (st->bulk)
		pt_bulk_committed(st, w->counter, &w->points, deferred, valid_before && !outgrown,
		                  outgrown, epoch);
	wtx_abort(w); /* frees the pending arrays */
	return 0;
fail:
	wtx_abort(w);
	return rc;
}

static void res_add(struct vg_write_result *dst, const struct vg_write_result *src)
{
	dst->added += src->added;
	dst->revoked += src->revoked;
	dst->released += src->released;
	dst->updated += src->updated;
	dst->unchanged += src->unchanged;
	dst->kept += src->kept;
	dst->skipped += src->skipped;
	dst->spared += src->spared;
	dst->missing += src->missing;
	dst->commits += src->commits;
}

/* put_cert writes |c| for |s| to certs and keeps the revoked index and CA
 * counts in step with |old| (NULL when new). */
static int put_cert(struct wtx *w, const struct vg_serial *s, const struct vg_cert *old,
                    const struct vg_cert *c)
{
	struct vg_store *st = w->st;
	uint8_t kb[CERT_KEY_MAX], vb[REC_MAX];
	MDB_val key = {cert_key(w->ca_state.id, s, kb), kb};
	MDB_val val = {rec_encode(c, vb), vb};
	int rc = mdb_put(w->txn, st->certs, &key, &val, 0);
	if (rc)
		return env_err(w->st, rc, "put");
	rc = pt_note(&w->points, kb, key.mv_size, vb, val.mv_size);
	if (rc)
		return rc;
	if (c->status == VG_STATUS_REVOKED) {
		rc = mdb_put(w->txn, st->revoked, &key, &val, 0);
		if (rc)
			return env_err(w->st, rc, "put_revoked");
	} else if (old && old->status == VG_STATUS_REVOKED) {
		rc = mdb_del(w->txn, st->revoked, &key, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return env_err(w->st, rc, "del_revoked");
	}
	if (!old)
		w->ca_state.n_certs++;
	bool was_rev = old && old->status == VG_STATUS_REVOKED;
	bool is_rev = c->status == VG_STATUS_REVOKED;
	if (!was_rev && is_rev)
		w->ca_state.n_revoked++;
	if (was_rev && !is_rev)
		w->ca_state.n_revoked--;
	if (old && rules_is_hold(old))
		w->ca_state.n_hold--;
	if (rules_is_hold(c))
		w->ca_state.n_hold++;
	w->ca_dirty = true;
	w->changed++;
	return 0;
}

int wtx_del_cert(struct wtx *w, const struct vg_serial *s, const struct vg_cert *old)
{
	uint8_t kb[CERT_KEY_MAX];
	MDB_val key = {cert_key(w->ca_state.id, s, kb), kb};
	int rc = mdb_del(w->txn, w->st->certs, &key, NULL);
	if (!rc && old->status == VG_STATUS_REVOKED)
		rc = mdb_del(w->txn, w->st->revoked, &key, NULL);
	if (rc)
		return env_err(w->st, rc, "del");
	rc = pt_note(&w->points, kb, key.mv_size, NULL, 0);
	if (rc)
		return rc;
	w->ca_state.n_certs--;
	if (old->status == VG_STATUS_REVOKED)
		w->ca_state.n_revoked--;
	if (rules_is_hold(old))
		w->ca_state.n_hold--;
	w->ca_dirty = true;
	w->changed++;
	return 0;
}

/* apply merges |want| into the store for serial |s|; |sync| when it comes
 * from the CA's records (vg_store_add) rather than an operator's revoke. */
static int apply(struct wtx *w, const struct vg_serial *s, const struct vg_cert *want, bool sync)
{
	struct vg_cert have, out;
	int rc = read_cert(w->st, w->txn, w->ca_state.id, s, &have);
	if (rc && rc != -ENOENT)
		return rc;
	bool exists = rc == 0;
	int op = rules_merge(exists ? &have : NULL, want, sync, &out, &w->res);
	if (!op)
		return 0;
	rc = put_cert(w, s, exists ? &have : NULL, &out);
	if (rc)
		return rc;
	if (op == VG_CHANGE_REVOKE || op == VG_CHANGE_RELEASE)
		return wtx_log_put(w, w->ca_state.id, (uint8_t)op, s);
	note_add(w, s, (uint8_t)op);
	return 0;
}

/* qsort orders: by serial, as the certs B-tree does. */
static int cmp_items(const void *a, const void *b)
{
	const struct vg_add_item *x = a, *y = b;
	return vg_serial_cmp(&x->serial, &y->serial);
}

static int cmp_serials(const void *a, const void *b)
{
	return vg_serial_cmp(a, b);
}

/* wtx_run runs |fn| in a write transaction and commits, retrying after
 * growing the map when it fills. */
int wtx_run(struct vg_store *st, const char *ca, const char *action, const struct vg_audit *who,
            int (*fn)(struct wtx *w, void *arg), void *arg, struct vg_write_result *total)
{
	if (st->committed) {
		/* The next batch of a long write: LMDB's writer mutex is not
		 * fair, and a command that takes it again at once can keep a
		 * waiting one out (a restore waited for a bulk revocation's last
		 * batch: test_restore_under_a_running_bulk_revocation). A
		 * millisecond between batches lets it in. */
		struct timespec pause = {0, 1000000};
		nanosleep(&pause, NULL);
	}
	for (int tries = 0;; tries++) {
		struct wtx w;
		int rc = wtx_begin(st, ca, &w);
		if (rc)
			return rc;
		rc = fn(&w, arg);
		if (rc == 0 && (w.changed || w.ca_dirty || w.seq)) {
			rc = wtx_commit(&w, action, who);
		} else {
			/* Nothing changed: no commit, no counter step, no audit record. */
			wtx_abort(&w);
		}
		/* Only a full map is cured by growing it; a full disk is not. */
		bool map_full = st->map_full;
		st->map_full = false;
		if (rc == -ENOSPC && map_full && tries < 16 && env_grow_map(st) == 0)
			continue;
		if (rc == 0)
			res_add(total, &w.res);
		if (rc == 0 && w.res.commits)
			st->committed = true;
		if (rc == 0 && w.res.commits && !st->bulk)
			(void)pt_grow(st); /* logs its own failure; the data is in */
		return rc;
	}
}

/* A batch of a write given as a list (add, revoke): items [off, off + cnt)
 * of |items|. */
struct batch {
	const void *items; /* struct vg_add_item[] or struct vg_serial[] */
	size_t off, cnt;
	const struct vg_revocation *rev;
};

/* run_batches runs |fn| over |n| items, VG_TXN_MAX_CHANGES a batch, as one
 * bulk operation when that takes more than one. */
static int run_batches(struct vg_store *st, const char *ca, const char *action,
                       const struct vg_audit *who, int (*fn)(struct wtx *w, void *arg),
                       struct batch *b, size_t n, struct vg_write_result *total,
                       vg_progress_fn progress, void *parg)
{
	int rc = 0;
	if (n > VG_TXN_MAX_CHANGES)
		pt_bulk_begin(st);
	for (b->off = 0; b->off < n; b->off += VG_TXN_MAX_CHANGES) {
		b->cnt = n - b->off < VG_TXN_MAX_CHANGES ? n - b->off : VG_TXN_MAX_CHANGES;
		rc = wtx_run(st, ca, action, who, fn, b, total);
		if (rc)
			break;
		if (progress)
			progress(b->off + b->cnt, n, parg);
	}
	return pt_bulk_end(st, rc);
}

static int add_fn(struct wtx *w, void *arg)
{
	const struct batch *b = arg;
	const struct vg_add_item *items = b->items;
	for (size_t i = b->off; i < b->off + b->cnt; i++) {
		int rc = apply(w, &items[i].serial, &items[i].cert, true);
		if (rc)
			return rc;
	}
	return 0;
}

int vg_store_add(struct vg_store *st, const char *ca, struct vg_add_item *items, size_t n,
                 const struct vg_audit *who, struct vg_write_result *res, vg_progress_fn progress,
                 void *parg)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	for (size_t i = 0; i < n; i++)
		if (items[i].serial.len == 0 || items[i].serial.len > VG_SERIAL_MAX)
			return -EINVAL;
	/* Sorting all items, not each batch, makes every batch a narrow key
	 * range: a commit then copies only the pages of that range instead of
	 * most of the tree (LMDB is copy-on-write), which keeps both the time
	 * and the file size of a large import down. */
	qsort(items, n, sizeof(*items), cmp_items);
	struct batch b = {.items = items};
	int rc = run_batches(st, ca, "add", who, add_fn, &b, n, &total, progress, parg);
	if (res)
		*res = total;
	return rc;
}

static int revoke_fn(struct wtx *w, void *arg)
{
	const struct batch *b = arg;
	const struct vg_serial *serials = b->items;
	struct vg_cert want;
	rules_want_revoked(b->rev, &want);
	for (size_t i = b->off; i < b->off + b->cnt; i++) {
		int rc = apply(w, &serials[i], &want, false);
		if (rc)
			return rc;
	}
	return 0;
}

int vg_store_revoke(struct vg_store *st, const char *ca, const struct vg_serial *serials, size_t n,
                    const struct vg_revocation *rev, const struct vg_audit *who,
                    struct vg_write_result *res, vg_progress_fn progress, void *parg)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	if (rules_revocation_check(rev))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (serials[i].len == 0 || serials[i].len > VG_SERIAL_MAX)
			return -EINVAL;
	struct vg_serial *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, serials, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_serials);
	struct batch b = {.items = sorted, .rev = rev};
	int rc = run_batches(st, ca, "revoke", who, revoke_fn, &b, n, &total, progress, parg);
	free(sorted);
	if (res)
		*res = total;
	return rc;
}

struct window_batch {
	const struct vg_window *win;
	const struct vg_revocation *rev;
	struct vg_serial last; /* resume after this serial; len 0 = from the start */
	bool done;
	uint64_t scanned;
	/* What this batch reached; adopted only once it committed, since
	 * wtx_run may run it again from |last| after growing the map. */
	struct vg_serial next_last;
	bool next_done;
	uint64_t next_scanned;
};

static bool window_keeps(const struct vg_window *win, const struct vg_serial *s)
{
	for (size_t i = 0; i < win->n_keep; i++)
		if (vg_serial_cmp(&win->keep[i], s) == 0)
			return true;
	return false;
}

static int window_fn(struct wtx *w, void *arg)
{
	struct window_batch *b = arg;
	struct vg_cert want;
	rules_want_revoked(b->rev, &want);
	/* Collect up to VG_TXN_MAX_CHANGES matches with a cursor, then apply
	 * them; writing through the cursor's own tree while iterating would
	 * invalidate it. */
	struct vg_serial *hits = malloc(VG_TXN_MAX_CHANGES * sizeof(*hits));
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
	MDB_val key, val;
	if (b->last.len) {
		key.mv_size = cert_key(w->ca_state.id, &b->last, kb);
	} else {
		put_u32(kb, w->ca_state.id);
		key.mv_size = 4;
	}
	key.mv_data = kb;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	if (rc == 0 && b->last.len && key.mv_size == cert_key(w->ca_state.id, &b->last, kb) &&
	    memcmp(key.mv_data, kb, key.mv_size) == 0)
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	bool end = true;
	uint64_t skipped = 0, spared = 0, scanned = 0;
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		uint32_t id;
		struct vg_serial s;
		struct vg_cert c;
		if (key.mv_size < 4 || get_u32(key.mv_data) != w->ca_state.id)
			break;
		if (cert_key_decode(key.mv_data, key.mv_size, &id, &s) < 0 ||
		    rec_decode(val.mv_data, val.mv_size, &c) < 0) {
			rc = -EBADMSG;
			goto out;
		}
		scanned++;
		enum rules_window where = rules_window(&c, b->win->after, b->win->before);
		if (where == RULES_WINDOW_SKIPPED)
			skipped++;
		if (where != RULES_WINDOW_IN)
			continue;
		if (window_keeps(b->win, &s)) {
			spared++;
			continue;
		}
		hits[nh++] = s;
		if (nh == VG_TXN_MAX_CHANGES) {
			end = false;
			break;
		}
	}
	if (rc && rc != MDB_NOTFOUND && end) {
		rc = env_err(w->st, rc, "cursor_get");
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = 0;
	for (size_t i = 0; i < nh && !rc; i++)
		rc = apply(w, &hits[i], &want, false);
	if (!rc) {
		w->res.skipped += skipped;
		w->res.spared += spared;
		b->next_last = nh ? hits[nh - 1] : b->last;
		b->next_done = end;
		b->next_scanned = b->scanned + scanned;
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	free(hits);
	return rc;
}

int vg_store_revoke_window(struct vg_store *st, const char *ca, const struct vg_window *win,
                           const struct vg_revocation *rev, const struct vg_audit *who,
                           struct vg_write_result *res, vg_progress_fn progress, void *parg)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	if (rules_revocation_check(rev) || win->before <= win->after || (win->n_keep && !win->keep))
		return -EINVAL;
	struct window_batch b = {.win = win, .rev = rev};
	int rc = 0;
	/* How many commits it takes is known only at the end: bulk from the
	 * start, which costs a single commit nothing more. */
	pt_bulk_begin(st);
	while (!b.done) {
		rc = wtx_run(st, ca, "revoke-window", who, window_fn, &b, &total);
		if (rc)
			break;
		b.last = b.next_last;
		b.done = b.next_done;
		b.scanned = b.next_scanned;
		if (progress)
			progress(b.scanned, 0, parg);
	}
	rc = pt_bulk_end(st, rc);
	if (res)
		*res = total;
	return rc;
}

struct release_arg {
	const struct vg_serial *s;
};

static int release_fn(struct wtx *w, void *arg)
{
	struct release_arg *a = arg;
	struct vg_cert have, c;
	int rc = read_cert(w->st, w->txn, w->ca_state.id, a->s, &have);
	if (rc)
		return rc;
	rc = rules_release(&have, &c);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		/* Known only from the hold: absent again. */
		rc = wtx_del_cert(w, a->s, &have);
		if (rc)
			return rc;
		w->res.released++;
		return wtx_log_put(w, w->ca_state.id, VG_CHANGE_RELEASE, a->s);
	}
	rc = put_cert(w, a->s, &have, &c);
	if (rc)
		return rc;
	w->res.released++;
	return wtx_log_put(w, w->ca_state.id, VG_CHANGE_RELEASE, a->s);
}

int vg_store_release(struct vg_store *st, const char *ca, const struct vg_serial *serial,
                     const struct vg_audit *who)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	struct release_arg a = {serial};
	return wtx_run(st, ca, "release", who, release_fn, &a, &total);
}

struct freeze_arg {
	bool frozen;
	int64_t when;
};

static int freeze_fn(struct wtx *w, void *arg)
{
	struct freeze_arg *a = arg;
	if (w->ca_state.frozen == a->frozen)
		return 0; /* already so: nothing to commit */
	w->ca_state.frozen = a->frozen;
	if (a->frozen)
		w->ca_state.frozen_at = a->when;
	w->ca_dirty = true;
	/* Every absent serial's answer changes. */
	return wtx_log_put(w, w->ca_state.id, VG_CHANGE_CA, NULL);
}

int vg_store_freeze(struct vg_store *st, const char *ca, bool frozen, int64_t when,
                    const struct vg_audit *who)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	struct freeze_arg a = {frozen, when};
	return wtx_run(st, ca, frozen ? "freeze" : "thaw", who, freeze_fn, &a, &total);
}
