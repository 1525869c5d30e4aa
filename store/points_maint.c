/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The point index kept in step with certs (its format is points.c's): each
 * write transaction's changes flushed into their segments (pt_flush), the
 * index rebuilt from certs in chunks of segments (pt_rebuild_all), with more
 * segments once the store outgrew it (pt_grow), and the changes of a bulk
 * operation of many commits merged once at its end (pt_bulk_*).
 */
#include "store/internal.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* flush_sorted merges changes sorted by pt_sort into their segments, each
 * rewritten once; with |replace| the segments hold only what |v| has. */
static int flush_sorted(struct vg_store *st, MDB_txn *txn, const struct pt_change *v, size_t n,
                        bool replace, unsigned lg)
{
	for (size_t i = 0, j; i < n; i = j) {
		uint32_t seg = pt_segment(v[i].h, lg);
		for (j = i + 1; j < n && pt_segment(v[j].h, lg) == seg; j++)
			;
		uint8_t sk[2] = {(uint8_t)(seg >> 8), (uint8_t)seg};
		MDB_val key = {sizeof(sk), sk}, val = {0, NULL};
		int rc = replace ? MDB_NOTFOUND : mdb_get(txn, st->points, &key, &val);
		if (rc && rc != MDB_NOTFOUND)
			return env_err(st, rc, "get_point");
		uint8_t *nv;
		size_t nlen;
		rc = pt_rebuild(val.mv_data, val.mv_size, &v[i], j - i, &nv, &nlen);
		if (rc) {
			if (rc == -EBADMSG)
				log_err("event=store_corrupt_record segment=%u index=points", seg);
			return rc;
		}
		if (nv) {
			MDB_val nval = {nlen, nv};
			rc = mdb_put(txn, st->points, &key, &nval, 0);
			free(nv);
		} else if (val.mv_size) {
			rc = mdb_del(txn, st->points, &key, NULL);
		}
		if (rc)
			return env_err(st, rc, "put_point");
	}
	return 0;
}

/* pt_flush rewrites each segment of the point index that |p| touches, once;
 * with |replace| the segments hold only what |p| has, whose keys must then
 * be distinct. */
int pt_flush(struct vg_store *st, MDB_txn *txn, struct pt_pending *p, bool replace, unsigned lg)
{
	int rc = 0;
	if (replace)
		rc = pt_group(p, lg); /* distinct keys from certs: no merging */
	else
		pt_sort(p);
	if (!rc)
		rc = flush_sorted(st, txn, p->v, p->n, replace, lg);
	p->n = 0;
	return rc;
}

#define PT_CHUNK 1024u /* segments rebuilt or merged per transaction */

/* rebuild_chunk replaces segments [lo, lo + PT_CHUNK) of 2^lg from certs in
 * |txn|; the last chunk also deletes every segment beyond (a smaller lg). */
static int rebuild_chunk(struct vg_store *st, MDB_txn *txn, uint32_t lo, unsigned lg)
{
	uint32_t hi = lo + PT_CHUNK, nseg = (uint32_t)1 << lg;
	if (hi >= nseg)
		hi = UINT32_MAX;
	uint8_t lk[2] = {(uint8_t)(lo >> 8), (uint8_t)lo};
	MDB_val k = {sizeof(lk), lk}, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, st->points, &cur);
	if (rc)
		return env_err(st, rc, "cursor_open");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *b = k.mv_data;
		if (k.mv_size != 2 || (uint32_t)(b[0] << 8 | b[1]) >= hi)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return env_err(st, rc, "del_point");
	/* The certs pages are not written in this transaction: the walk's
	 * pointers into the map stay valid until the flush. */
	struct pt_pending p = {0};
	rc = mdb_cursor_open(txn, st->certs, &cur);
	if (rc)
		return env_err(st, rc, "cursor_open");
	int nrc = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !nrc;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t seg = pt_segment(pt_hash(k.mv_data, k.mv_size), lg);
		if (seg >= lo && seg < hi)
			nrc = pt_note_ref(&p, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	if (nrc)
		rc = nrc;
	else if (rc == MDB_NOTFOUND)
		rc = pt_flush(st, txn, &p, true, lg);
	else
		rc = env_err(st, rc, "cursor_get");
	pt_pending_free(&p);
	return rc;
}

uint64_t pt_cert_count(struct vg_store *st, MDB_txn *txn)
{
	MDB_stat ms;
	return mdb_stat(txn, st->certs, &ms) == 0 ? ms.ms_entries : 0;
}

static int epoch_get(struct vg_store *st, MDB_txn *txn, uint64_t *e)
{
	int rc = env_meta_get(st, txn, "points_epoch", e);
	if (rc == -ENOENT) {
		*e = 0;
		rc = 0;
	}
	return rc;
}

/* What chunk_end tells the loop of a rebuild or merge. */
enum { CHUNK_NEXT = 0, CHUNK_AGAIN = 1, CHUNK_DONE = 2 };

/* chunk_end ends one transaction of a rebuild or merge after its work
 * (|rc|, its outcome so far): bumps the epoch to |e| + 1 and, in the |last|
 * one, marks the index valid; commits when all went well (then |*epoch| is
 * the new epoch), else aborts. Returns CHUNK_AGAIN when the map was full and
 * has grown (the chunk is to be run again), CHUNK_NEXT or CHUNK_DONE (the
 * last) after a commit, else the error. */
static int chunk_end(struct vg_store *st, MDB_txn *txn, int rc, uint64_t e, bool last,
                     uint64_t *epoch, int *grows)
{
	if (!rc)
		rc = env_meta_put(st, txn, "points_epoch", e + 1, 8);
	if (!rc && last)
		rc = env_meta_put(st, txn, "points", 1, 4);
	if (!rc)
		rc = env_err(st, mdb_txn_commit(txn), "txn_commit");
	else
		mdb_txn_abort(txn);
	bool map_full = st->map_full;
	st->map_full = false;
	if (rc == -ENOSPC && map_full && (*grows)++ < 16 && env_grow_map(st) == 0)
		return CHUNK_AGAIN;
	if (rc)
		return rc;
	*epoch = e + 1;
	return last ? CHUNK_DONE : CHUNK_NEXT;
}

/* pt_rebuild_all builds the point index afresh from certs, with a segment
 * count for the number of certificates, PT_CHUNK segments a transaction.
 * The first marks the index stale, the last marks it valid; each bumps the
 * epoch and checks that nobody else did, nor committed a write (the change
 * counter), since the one before: else it starts over, at most three times
 * (-EBUSY; the index stays stale, which readers see). */
int pt_rebuild_all(struct vg_store *st)
{
	uint64_t start = 0, epoch = 0;
	unsigned lg = 0;
	int restarts = 0, grows = 0;
	for (uint32_t lo = 0;;) {
		MDB_txn *txn;
		int rc = env_txn_begin(st, 0, &txn);
		if (rc)
			return rc;
		uint64_t counter, e;
		rc = env_meta_get(st, txn, "counter", &counter);
		if (!rc)
			rc = epoch_get(st, txn, &e);
		if (!rc && lo > 0 && (counter != start || e != epoch)) {
			mdb_txn_abort(txn);
			if (++restarts > 3)
				return -EBUSY;
			lo = 0;
			continue;
		}
		if (!rc && lo == 0) {
			start = counter;
			lg = pt_lg_for(pt_cert_count(st, txn));
			rc = env_meta_put(st, txn, "points", 0, 4);
		}
		bool last = lo + PT_CHUNK >= ((uint32_t)1 << lg);
		if (!rc)
			rc = rebuild_chunk(st, txn, lo, lg);
		if (!rc && last)
			rc = env_meta_put(st, txn, "points_lg", lg, 4);
		rc = chunk_end(st, txn, rc, e, last, &epoch, &grows);
		if (rc == CHUNK_AGAIN)
			continue; /* the map grew: this chunk again */
		if (rc != CHUNK_NEXT)
			return rc == CHUNK_DONE ? 0 : rc;
		lo += PT_CHUNK;
	}
}

/* pt_grow rebuilds the point index with more segments once the store
 * outgrew its count; a check costs one read of two values. */
int pt_grow(struct vg_store *st)
{
	MDB_txn *txn;
	if (env_txn_begin(st, MDB_RDONLY, &txn) != 0)
		return 0;
	unsigned lg;
	bool grow = env_points_valid(st, txn, &lg) && pt_lg_for(pt_cert_count(st, txn)) > lg;
	mdb_txn_abort(txn);
	if (!grow)
		return 0;
	int rc = pt_rebuild_all(st);
	if (rc)
		log_warn("event=store_points_rebuild_failed path=%s error=%d", st->path, rc);
	return rc;
}

/* Changes merged at the end of a bulk operation, at most: beyond, the
 * index is rebuilt from certs instead of holding them all in memory. */
#define PT_ACC_MAX (2u * 1000 * 1000)

void pt_bulk_begin(struct vg_store *st)
{
	st->bulk = true;
	st->bulk_started = false;
	st->deferred = false;
	st->acc_ok = false;
	pt_pending_free(&st->acc);
}

/* pt_bulk_committed follows the commits of a bulk operation: whether every one
 * came right after the one before, and the changes they kept out of the
 * index; |valid_before|: the index was complete before this commit and big
 * enough; |outgrown|: the store has outgrown its segment count; |epoch|:
 * the index's epoch this commit saw. */
void pt_bulk_committed(struct vg_store *st, uint64_t counter, const struct pt_pending *points,
                       bool deferred, bool valid_before, bool outgrown, uint64_t epoch)
{
	if (!st->bulk_started) {
		st->bulk_started = true;
		st->acc_ok = true;
	} else if (counter != st->bulk_counter + 1) {
		st->acc_ok = false; /* another writer in between */
	}
	st->bulk_counter = counter;
	if (!deferred)
		return;
	if (!st->deferred) {
		st->deferred = true;
		st->bulk_epoch = epoch;
		if (!valid_before)
			st->acc_ok = false; /* stale before the operation began */
	} else if (epoch != st->bulk_epoch) {
		st->acc_ok = false; /* a rebuild or merge in between */
	}
	if (outgrown)
		st->acc_ok = false; /* the end will rebuild with more segments */
	if (st->acc_ok && st->acc.n + points->n > PT_ACC_MAX)
		st->acc_ok = false;
	for (size_t i = 0; st->acc_ok && i < points->n; i++) {
		const struct pt_change *c = &points->v[i];
		if (pt_note(&st->acc, c->key, c->klen, c->rec, c->rlen) < 0)
			st->acc_ok = false;
	}
	if (!st->acc_ok)
		pt_pending_free(&st->acc);
}

/* pt_merge_acc merges the operation's changes into the index, PT_CHUNK
 * segments a transaction, and marks it valid in the last one. Each bumps
 * the epoch; -ESTALE (another writer got in: the changes no longer describe
 * the index) when another writer committed since the operation's last
 * commit, or another rebuild or merge ran, or the segment count changed or
 * no longer fits. */
static int pt_merge_acc(struct vg_store *st)
{
	pt_sort(&st->acc);
	const struct pt_change *v = st->acc.v, *end = v + st->acc.n;
	int grows = 0;
	unsigned lg = 0;
	for (uint32_t lo = 0;;) {
		MDB_txn *txn;
		int rc = env_txn_begin(st, 0, &txn);
		if (rc)
			return rc;
		uint64_t counter, e = 0, l = 0;
		rc = env_meta_get(st, txn, "counter", &counter);
		if (!rc)
			rc = epoch_get(st, txn, &e);
		if (!rc && (counter != st->bulk_counter || e != st->bulk_epoch))
			rc = -ESTALE;
		if (!rc)
			rc = env_meta_get(st, txn, "points_lg", &l);
		if (!rc && lo == 0) {
			lg = (unsigned)l;
			if (lg > PT_MAX_LG || pt_lg_for(pt_cert_count(st, txn)) > lg)
				rc = -ESTALE;
		} else if (!rc && l != lg) {
			rc = -ESTALE;
		}
		bool last = lo + PT_CHUNK >= ((uint32_t)1 << lg);
		const struct pt_change *x = v;
		while (x < end && (last || pt_segment(x->h, lg) < lo + PT_CHUNK))
			x++;
		if (!rc)
			rc = flush_sorted(st, txn, v, (size_t)(x - v), false, lg);
		rc = chunk_end(st, txn, rc, e, last, &st->bulk_epoch, &grows);
		if (rc == CHUNK_AGAIN)
			continue; /* the map grew: this chunk again */
		if (rc != CHUNK_NEXT)
			return rc == CHUNK_DONE ? 0 : rc;
		v = x;
		lo += PT_CHUNK;
	}
}

/* pt_bulk_end brings the point index up to date after a bulk operation. */
int pt_bulk_end(struct vg_store *st, int rc)
{
	st->bulk = false;
	if (!st->deferred)
		return rc;
	st->deferred = false;
	int prc = st->acc_ok ? pt_merge_acc(st) : -ESTALE;
	pt_pending_free(&st->acc);
	if (prc == 0)
		return rc;
	prc = pt_rebuild_all(st);
	if (prc) {
		/* The data is committed; lookups use the B-tree until the next
		 * read-write open rebuilds the index. Other writers committing
		 * all along (-EBUSY) is no failure of this command: its changes
		 * are in, and the index is only a copy of them. */
		log_warn("event=store_points_rebuild_failed path=%s error=%d", st->path, prc);
		if (!rc && prc != -EBUSY)
			rc = prc;
	}
	return rc;
}
