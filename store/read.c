/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading the store: read snapshots (vg_txn_*), point reads through the
 * point index or the certs B-tree, the walkers (vg_iter_*), the change-log,
 * audit and CA readers, and vg_store_info.
 */
#include "store/internal.h"
#include "common/log.h"
#include "store/replica.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

struct vg_iter {
	struct vg_txn *t;
	MDB_cursor *cur;
	uint32_t ca_id;
	bool started, done;
};

int vg_txn_begin(struct vg_store *st, struct vg_txn **out)
{
	struct vg_txn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->st = st;
	t->gen = 1; /* segs start at 0: none is open */
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&st->maplock);
		int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);
		if (rc == 0)
			break;
		pthread_rwlock_unlock(&st->maplock);
		if (rc == MDB_MAP_RESIZED && tries < MAP_FOLLOW_TRIES && env_follow_map(st) == 0)
			continue;
		free(t);
		return env_err(st, rc, "txn_begin");
	}
	t->locked = true;
	*out = t;
	return 0;
}

int vg_txn_renew(struct vg_txn *t)
{
	if (t->txn)
		mdb_txn_reset(t->txn);
	if (t->locked) {
		pthread_rwlock_unlock(&t->st->maplock);
		t->locked = false;
	}
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&t->st->maplock);
		int rc = t->txn ? mdb_txn_renew(t->txn)
		                : mdb_txn_begin(t->st->env, NULL, MDB_RDONLY, &t->txn);
		if (rc == 0) {
			t->locked = true;
			t->points = 0;
			if (++t->gen == 0) {
				/* Wrapped: no segment may look opened. */
				if (t->segs)
					memset(t->segs, 0, t->nsegs * sizeof(*t->segs));
				t->gen = 1;
			}
			return 0;
		}
		pthread_rwlock_unlock(&t->st->maplock);
		if (rc == MDB_MAP_RESIZED && tries < MAP_FOLLOW_TRIES) {
			/* A reset transaction pins no pages; abort it so the remap
			 * finds no transaction of ours. */
			if (t->txn)
				mdb_txn_abort(t->txn);
			t->txn = NULL;
			if (env_follow_map(t->st) == 0)
				continue;
		}
		return env_err(t->st, rc, "txn_renew");
	}
}

bool vg_txn_behind(const struct vg_txn *t)
{
	/* Only while the snapshot holds the map lock: a map being followed
	 * (env_follow_map) is never read here. */
	if (!t || !t->txn || !t->locked)
		return false;
	MDB_envinfo info;
	if (mdb_env_info(t->st->env, &info) != 0)
		return false;
	return info.me_last_txnid != mdb_txn_id(t->txn);
}

void vg_txn_trim(struct vg_txn *t)
{
	/* Only read-only maps: a writer's dirty pages are never in the map
	 * (no MDB_WRITEMAP), but there is no reason for a writer to trim. The
	 * caller's snapshot holds maplock shared, so the map cannot move. */
	if (t->st->rdonly && t->locked && t->st->map_addr)
		madvise(t->st->map_addr, t->st->map_len, MADV_DONTNEED);
}

void vg_txn_end(struct vg_txn *t)
{
	if (!t)
		return;
	if (t->txn)
		mdb_txn_abort(t->txn);
	if (t->locked)
		pthread_rwlock_unlock(&t->st->maplock);
	free(t->segs);
	free(t);
}

int read_cert(struct vg_store *st, MDB_txn *txn, uint32_t ca_id, const struct vg_serial *s,
              struct vg_cert *out)
{
	uint8_t kb[CERT_KEY_MAX];
	MDB_val key = {cert_key(ca_id, s, kb), kb}, val;
	int rc = mdb_get(txn, st->certs, &key, &val);
	if (rc)
		return env_err(st, rc, "get");
	if (rec_decode(val.mv_data, val.mv_size, out) < 0) {
		log_err("event=store_corrupt_record ca_id=%08x", ca_id);
		return -EBADMSG;
	}
	return 0;
}

int vg_store_get(struct vg_txn *t, uint32_t ca_id, const struct vg_serial *serial,
                 struct vg_cert *out)
{
	if (!t->txn)
		return -EINVAL;
	if (serial->len == 0 || serial->len > VG_SERIAL_MAX)
		return -EINVAL;
	if (!t->points) {
		t->points = env_points_valid(t->st, t->txn, &t->lg) ? 1 : -1;
		size_t n = (size_t)1 << t->lg;
		if (t->points > 0 && t->nsegs < n) {
			free(t->segs);
			t->nsegs = 0;
			if (!(t->segs = calloc(n, sizeof(*t->segs))))
				t->points = -1;
			else
				t->nsegs = n;
		}
	}
	if (t->points < 0)
		return read_cert(t->st, t->txn, ca_id, serial, out);
	uint8_t kb[CERT_KEY_MAX];
	size_t klen = cert_key(ca_id, serial, kb);
	uint64_t h = pt_hash(kb, klen);
	uint32_t seg = pt_segment(h, t->lg);
	struct segref *r = &t->segs[seg];
	int rc;
	if (r->gen != t->gen) {
		uint8_t sk[2] = {(uint8_t)(seg >> 8), (uint8_t)seg};
		MDB_val key = {sizeof(sk), sk}, val;
		rc = mdb_get(t->txn, t->st->points, &key, &val);
		if (rc && rc != MDB_NOTFOUND)
			return env_err(t->st, rc, "get_point");
		memset(&r->s, 0, sizeof(r->s));
		r->bad = rc == 0 && pt_open(val.mv_data, val.mv_size, &r->s) < 0;
		r->gen = t->gen;
		if (r->bad)
			goto corrupt;
	}
	if (r->bad)
		return read_cert(t->st, t->txn, ca_id, serial, out);
	if (!r->s.p)
		return -ENOENT;
	const uint8_t *rec;
	size_t rlen;
	rc = pt_lookup(&r->s, kb, klen, h, &rec, &rlen);
	if (rc == 0)
		return -ENOENT;
	if (rc < 0 || rec_decode(rec, rlen, out) < 0)
		goto corrupt;
	return 0;
corrupt:
	/* The index is a copy: answer from the B-tree, and say so. */
	log_err("event=store_corrupt_record ca_id=%08x index=points segment=%u", ca_id, seg);
	return read_cert(t->st, t->txn, ca_id, serial, out);
}

int read_ca(struct vg_store *st, MDB_txn *txn, const char *name, struct vg_ca_state *out)
{
	memset(out, 0, sizeof(*out));
	out->id = vg_ca_id(name);
	MDB_val key = {strlen(name), (void *)name}, val;
	int rc = mdb_get(txn, st->cas, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return env_err(st, rc, "ca_get");
	return rec_ca_decode(val.mv_data, val.mv_size, out);
}

int vg_store_ca_get(struct vg_txn *t, const char *name, struct vg_ca_state *out)
{
	return read_ca(t->st, t->txn, name, out);
}

int vg_store_counter(struct vg_txn *t, uint64_t *out)
{
	return env_meta_get(t->st, t->txn, "counter", out);
}

int vg_iter_open(struct vg_txn *t, uint32_t ca_id, unsigned flags, struct vg_iter **out)
{
	struct vg_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->t = t;
	it->ca_id = ca_id;
	int rc = mdb_cursor_open(t->txn, (flags & VG_ITER_REVOKED) ? t->st->revoked : t->st->certs,
	                         &it->cur);
	if (rc) {
		free(it);
		return env_err(t->st, rc, "cursor_open");
	}
	*out = it;
	return 0;
}

int vg_iter_next(struct vg_iter *it, struct vg_serial *serial, struct vg_cert *cert)
{
	if (it->done)
		return 0;
	MDB_val key, val;
	int rc;
	if (!it->started) {
		uint8_t kb[4];
		put_u32(kb, it->ca_id);
		key.mv_size = 4;
		key.mv_data = kb;
		rc = mdb_cursor_get(it->cur, &key, &val, MDB_SET_RANGE);
		it->started = true;
	} else {
		rc = mdb_cursor_get(it->cur, &key, &val, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		it->done = true;
		return 0;
	}
	if (rc)
		return env_err(it->t->st, rc, "cursor_get");
	uint32_t id;
	if (key.mv_size < 4 || get_u32(key.mv_data) != it->ca_id) {
		it->done = true;
		return 0;
	}
	if (cert_key_decode(key.mv_data, key.mv_size, &id, serial) < 0 ||
	    rec_decode(val.mv_data, val.mv_size, cert) < 0) {
		log_err("event=store_corrupt_record ca_id=%08x", it->ca_id);
		return -EBADMSG;
	}
	return 1;
}

void vg_iter_close(struct vg_iter *it)
{
	if (!it)
		return;
	mdb_cursor_close(it->cur);
	free(it);
}

/* walk calls |fn| for every entry of |dbi| in key order, from the first
 * key at or after |from| (NULL: the first), until it returns non-zero
 * (which walk then returns). */
static int walk(struct vg_txn *t, MDB_dbi dbi, const MDB_val *from,
                int (*fn)(const MDB_val *key, const MDB_val *val, void *arg), void *arg)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, dbi, &cur);
	if (rc)
		return env_err(t->st, rc, "cursor_open");
	MDB_val key = from ? *from : (MDB_val){0, NULL}, val;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &key, &val, from ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		ret = fn(&key, &val, arg);
		if (ret)
			break;
	}
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = env_err(t->st, rc, "cursor_get");
	mdb_cursor_close(cur);
	return ret;
}

struct change_walk {
	int (*cb)(const struct vg_change *c, void *arg);
	void *arg;
};

static int change_entry(const MDB_val *key, const MDB_val *val, void *arg)
{
	struct change_walk *w = arg;
	struct vg_change c;
	int rc = rec_log_decode(key->mv_data, key->mv_size, val->mv_data, val->mv_size, &c);
	return rc ? rc : w->cb(&c, w->arg);
}

int vg_store_changes_foreach(struct vg_txn *t, uint64_t since,
                             int (*cb)(const struct vg_change *c, void *arg), void *arg)
{
	uint64_t floor = 0;
	int rc = env_meta_get(t->st, t->txn, "log_floor", &floor);
	if (rc && rc != -ENOENT)
		return rc;
	if (since < floor)
		return -ERANGE; /* changes after |since| were pruned: unknown */
	uint8_t kb[LOG_KEY_LEN];
	rec_log_key(since + 1, 0, kb);
	MDB_val from = {sizeof(kb), kb};
	struct change_walk w = {cb, arg};
	return walk(t, t->st->log, &from, change_entry, &w);
}

struct audit_walk {
	int (*cb)(const struct vg_audit_entry *e, void *arg);
	void *arg;
};

static int audit_entry(const MDB_val *key, const MDB_val *val, void *arg)
{
	struct audit_walk *w = arg;
	struct vg_audit_entry e;
	int rc = rec_audit_decode(key->mv_data, key->mv_size, val->mv_data, val->mv_size, &e);
	return rc ? rc : w->cb(&e, w->arg);
}

int vg_store_audit_foreach(struct vg_txn *t, int (*cb)(const struct vg_audit_entry *e, void *arg),
                           void *arg)
{
	struct audit_walk w = {cb, arg};
	return walk(t, t->st->audit, NULL, audit_entry, &w);
}

/* vg_store_audit_since (replica.h): the audit from counter |since| + 1. */
int vg_store_audit_since(struct vg_txn *t, uint64_t since,
                         int (*cb)(const struct vg_audit_entry *e, void *arg), void *arg)
{
	uint8_t kb[8];
	put_u64(kb, since + 1);
	MDB_val from = {sizeof(kb), kb};
	struct audit_walk w = {cb, arg};
	return walk(t, t->st->audit, &from, audit_entry, &w);
}

/* free_pages counts the pages LMDB's free list holds in |t|'s snapshot (as
 * mdb_stat -f does): each of its values is a list of page numbers, its
 * length first, in the host's word. */
static uint64_t free_pages(struct vg_txn *t)
{
	MDB_cursor *cur;
	uint64_t n = 0;
	if (mdb_cursor_open(t->txn, 0, &cur) != 0)
		return 0;
	MDB_val key, val;
	for (int rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		size_t len;
		if (val.mv_size < sizeof(len))
			continue;
		memcpy(&len, val.mv_data, sizeof(len));
		n += len;
	}
	mdb_cursor_close(cur);
	return n;
}

int vg_store_info(struct vg_txn *t, struct vg_store_info *out)
{
	struct vg_store *st = t->st;
	memset(out, 0, sizeof(*out));
	MDB_envinfo ei;
	MDB_stat ms;
	mdb_env_info(st->env, &ei);
	mdb_env_stat(st->env, &ms);
	out->map_bytes = ei.me_mapsize;
	out->used_bytes = (uint64_t)(ei.me_last_pgno + 1) * ms.ms_psize;
	char *datafile = NULL;
	struct stat sb;
	if (asprintf(&datafile, "%s/data.mdb", st->path) >= 0 && stat(datafile, &sb) == 0)
		out->file_bytes = (uint64_t)sb.st_size;
	free(datafile);
	uint64_t v;
	if (env_meta_get(st, t->txn, "schema", &v) == 0)
		out->schema = (uint32_t)v;
	vg_store_counter(t, &out->counter);
	if (mdb_stat(t->txn, st->log, &ms) == 0)
		out->log_entries = ms.ms_entries;
	if (mdb_stat(t->txn, st->audit, &ms) == 0)
		out->audit_entries = ms.ms_entries;
	out->page_size = ms.ms_psize;
	out->free_pages = free_pages(t);
	unsigned lg;
	out->points_valid = env_points_valid(st, t->txn, &lg);
	out->points_segments = out->points_valid ? 1u << lg : 0;
	return 0;
}

struct ca_walk {
	int (*cb)(const char *name, const struct vg_ca_state *s, void *arg);
	void *arg;
};

static int ca_entry(const MDB_val *key, const MDB_val *val, void *arg)
{
	struct ca_walk *w = arg;
	char name[64];
	struct vg_ca_state s;
	if (key->mv_size >= sizeof(name) || rec_ca_decode(val->mv_data, val->mv_size, &s) < 0)
		return -EBADMSG;
	memcpy(name, key->mv_data, key->mv_size);
	name[key->mv_size] = '\0';
	return w->cb(name, &s, w->arg);
}

int vg_store_ca_foreach(struct vg_txn *t,
                        int (*cb)(const char *name, const struct vg_ca_state *s, void *arg),
                        void *arg)
{
	struct ca_walk w = {cb, arg};
	return walk(t, t->st->cas, NULL, ca_entry, &w);
}
