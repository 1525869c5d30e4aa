/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vg_store_verify: every invariant the store relies on, walked in one read
 * snapshot.
 *
 *   meta     schema known, counter present, store_id present, the point
 *            index flags sane, log_floor within the counter
 *   certs    every key and record decodes; every revoked record is in
 *            revoked with the same bytes
 *   revoked  every entry decodes, is revoked, and is in certs with the same
 *            bytes
 *   cas      every record decodes, its id is the one its name gives, its
 *            counts (certificates, revoked, on hold) are what certs holds;
 *            no certificate belongs to a CA the store does not know
 *   log      every entry decodes, its counter is within [log_floor,
 *            counter] (a prune may stop inside one commit's entries), its
 *            op known, its CA known
 *   audit    every record decodes and its counter is within the counter
 *   points   when marked complete: every certificate is found in it with
 *            the same record, and it holds no more entries than certs
 */
#include "store/internal.h"
#include "store/rules.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vctx {
	struct vg_txn *t;
	struct vg_store *st;
	vg_verify_fn report;
	void *arg;
	int diffs;
	uint64_t checked;
	uint64_t counter, floor;
	/* The CAs, as their records say and as certs counts them. */
	struct vca {
		char name[64];
		struct vg_ca_state rec;
		uint64_t n_certs, n_revoked, n_hold;
	} * cas;
	size_t n_cas;
	/* The CA of the certificates being walked (cas index, or -1 unknown). */
	uint32_t cur_id;
	long cur;
	unsigned lg;
	bool points;
	uint64_t point_entries;
};

static void diff(struct vctx *v, const char *db, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void diff(struct vctx *v, const char *db, const char *key, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	v->diffs++;
	v->report(db, key, what, v->arg);
}

/* cert_name writes "CAID/SERIAL" (hexadecimal) of a certificate key. */
static void cert_name(const MDB_val *k, char *out, size_t len)
{
	const uint8_t *b = k->mv_data;
	int n = snprintf(out, len, "%08" PRIx32 "/", k->mv_size >= 4 ? get_u32(b) : 0);
	for (size_t i = 5; i < k->mv_size && (size_t)n + 3 < len; i++)
		n += snprintf(out + n, len - (size_t)n, "%02X", b[i]);
}

static long ca_index(struct vctx *v, uint32_t id)
{
	for (size_t i = 0; i < v->n_cas; i++)
		if (v->cas[i].rec.id == id)
			return (long)i;
	return -1;
}

typedef int (*entry_fn)(struct vctx *v, const MDB_val *k, const MDB_val *d);

static int walk_db(struct vctx *v, MDB_dbi dbi, entry_fn fn)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(v->t->txn, dbi, &cur);
	if (rc)
		return env_err(v->st, rc, "cursor_open");
	MDB_val k, d;
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		v->checked++;
		int r = fn(v, &k, &d);
		if (r < 0) {
			mdb_cursor_close(cur);
			return r;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : env_err(v->st, rc, "cursor_get");
}

static void check_meta(struct vctx *v)
{
	uint64_t x;
	if (env_meta_get(v->st, v->t->txn, "schema", &x) != 0)
		diff(v, "meta", "schema", "missing or malformed");
	else if (x != SCHEMA_VERSION && x != 1)
		diff(v, "meta", "schema", "unknown version %" PRIu64, x);
	if (env_meta_get(v->st, v->t->txn, "counter", &v->counter) != 0)
		diff(v, "meta", "counter", "missing or malformed");
	int rc = env_meta_get(v->st, v->t->txn, "store_id", &x);
	if (rc != 0 && rc != -ENOENT)
		diff(v, "meta", "store_id", "malformed");
	rc = env_meta_get(v->st, v->t->txn, "log_floor", &v->floor);
	if (rc == -EBADMSG)
		diff(v, "meta", "log_floor", "malformed");
	if (v->floor > v->counter)
		diff(v, "meta", "log_floor",
		     "%" PRIu64 " is past the counter %" PRIu64 ": the log claims a future",
		     v->floor, v->counter);
	v->points = env_points_valid(v->st, v->t->txn, &v->lg);
	if (env_meta_get(v->st, v->t->txn, "points", &x) == 0 && x > 1)
		diff(v, "meta", "points", "value %" PRIu64 " is neither 0 nor 1", x);
}

static int ca_entry(struct vctx *v, const MDB_val *k, const MDB_val *d)
{
	char name[64];
	if (k->mv_size == 0 || k->mv_size >= sizeof(name)) {
		diff(v, "cas", "?", "a name of %zu octets", k->mv_size);
		return 0;
	}
	memcpy(name, k->mv_data, k->mv_size);
	name[k->mv_size] = '\0';
	struct vg_ca_state s;
	if (rec_ca_decode(d->mv_data, d->mv_size, &s) < 0) {
		diff(v, "cas", name, "record does not decode");
		return 0;
	}
	if (s.id != vg_ca_id(name))
		diff(v, "cas", name, "id %08" PRIx32 " is not the name's %08" PRIx32, s.id,
		     vg_ca_id(name));
	struct vca *n = realloc(v->cas, (v->n_cas + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	v->cas = n;
	memset(&n[v->n_cas], 0, sizeof(*n));
	memcpy(n[v->n_cas].name, name, k->mv_size + 1);
	n[v->n_cas].rec = s;
	v->n_cas++;
	return 0;
}

/* same_in checks that |k| is in |dbi| with the bytes |d|. */
static void same_in(struct vctx *v, MDB_dbi dbi, const char *db, const MDB_val *k, const MDB_val *d,
                    const char *name)
{
	MDB_val k2 = *k, d2;
	int rc = mdb_get(v->t->txn, dbi, &k2, &d2);
	if (rc == MDB_NOTFOUND)
		diff(v, db, name, "missing");
	else if (rc)
		diff(v, db, name, "unreadable (%s)", mdb_strerror(rc));
	else if (d2.mv_size != d->mv_size || memcmp(d2.mv_data, d->mv_data, d->mv_size))
		diff(v, db, name, "record differs from the other database's");
}

static void check_point(struct vctx *v, const MDB_val *k, const MDB_val *d, const char *name)
{
	uint64_t h = pt_hash(k->mv_data, k->mv_size);
	uint32_t seg = pt_segment(h, v->lg);
	uint8_t sk[2] = {(uint8_t)(seg >> 8), (uint8_t)seg};
	MDB_val key = {sizeof(sk), sk}, val;
	const uint8_t *rec = NULL;
	size_t rlen = 0;
	int rc = mdb_get(v->t->txn, v->st->points, &key, &val);
	if (rc == 0)
		rc = pt_find(val.mv_data, val.mv_size, k->mv_data, k->mv_size, h, &rec, &rlen);
	else
		rc = 0;
	if (rc < 0)
		diff(v, "points", name, "segment %u is malformed", seg);
	else if (rc == 0)
		diff(v, "points", name, "missing from segment %u", seg);
	else if (rlen != d->mv_size || memcmp(rec, d->mv_data, rlen))
		diff(v, "points", name, "record differs from certs");
}

static int cert_entry(struct vctx *v, const MDB_val *k, const MDB_val *d)
{
	char name[2 * VG_SERIAL_MAX + 16];
	cert_name(k, name, sizeof(name));
	uint32_t id;
	struct vg_serial s;
	struct vg_cert c;
	if (cert_key_decode(k->mv_data, k->mv_size, &id, &s) < 0) {
		diff(v, "certs", name, "key does not decode");
		return 0;
	}
	if (rec_decode(d->mv_data, d->mv_size, &c) < 0) {
		diff(v, "certs", name, "record does not decode");
		return 0;
	}
	if (id != v->cur_id || v->cur < 0) {
		v->cur_id = id;
		v->cur = ca_index(v, id);
		if (v->cur < 0)
			diff(v, "certs", name, "belongs to no CA in cas");
	}
	if (v->cur >= 0) {
		struct vca *ca = &v->cas[v->cur];
		ca->n_certs++;
		if (c.status == VG_STATUS_REVOKED)
			ca->n_revoked++;
		if (rules_is_hold(&c))
			ca->n_hold++;
	}
	if (c.status == VG_STATUS_REVOKED)
		same_in(v, v->st->revoked, "revoked", k, d, name);
	if (v->points)
		check_point(v, k, d, name);
	return 0;
}

static int revoked_entry(struct vctx *v, const MDB_val *k, const MDB_val *d)
{
	char name[2 * VG_SERIAL_MAX + 16];
	cert_name(k, name, sizeof(name));
	struct vg_cert c;
	if (rec_decode(d->mv_data, d->mv_size, &c) < 0) {
		diff(v, "revoked", name, "record does not decode");
		return 0;
	}
	if (c.status != VG_STATUS_REVOKED)
		diff(v, "revoked", name, "record is not revoked");
	/* In certs: a difference of bytes is cert_entry's to report. */
	MDB_val k2 = *k, d2;
	if (mdb_get(v->t->txn, v->st->certs, &k2, &d2) == MDB_NOTFOUND)
		diff(v, "certs", name, "in revoked, but missing from certs");
	return 0;
}

static int log_entry(struct vctx *v, const MDB_val *k, const MDB_val *d)
{
	struct vg_change c;
	char name[32];
	snprintf(name, sizeof(name), "%" PRIu64, k->mv_size >= 8 ? get_u64(k->mv_data) : 0);
	if (rec_log_decode(k->mv_data, k->mv_size, d->mv_data, d->mv_size, &c) < 0) {
		diff(v, "log", name, "entry does not decode");
		return 0;
	}
	if (c.counter > v->counter)
		diff(v, "log", name, "counter past the store's %" PRIu64, v->counter);
	if (c.counter < v->floor)
		diff(v, "log", name, "below log_floor %" PRIu64 " (pruned)", v->floor);
	if (c.op < VG_CHANGE_ADD || c.op > VG_CHANGE_REMOVE)
		diff(v, "log", name, "unknown op %u", c.op);
	if (ca_index(v, c.ca_id) < 0)
		diff(v, "log", name, "CA %08" PRIx32 " unknown", c.ca_id);
	return 0;
}

static int audit_entry(struct vctx *v, const MDB_val *k, const MDB_val *d)
{
	struct vg_audit_entry e;
	char name[32];
	snprintf(name, sizeof(name), "%" PRIu64, k->mv_size >= 8 ? get_u64(k->mv_data) : 0);
	if (rec_audit_decode(k->mv_data, k->mv_size, d->mv_data, d->mv_size, &e) < 0)
		diff(v, "audit", name, "record does not decode");
	else if (e.counter > v->counter)
		diff(v, "audit", name, "counter past the store's %" PRIu64, v->counter);
	return 0;
}

static int point_seg(struct vctx *v, const MDB_val *k, const MDB_val *d)
{
	struct pt_seg s;
	char name[16];
	const uint8_t *kb = k->mv_data;
	snprintf(name, sizeof(name), "%u", k->mv_size == 2 ? (unsigned)kb[0] << 8 | kb[1] : 0u);
	if (pt_open(d->mv_data, d->mv_size, &s) < 0)
		diff(v, "points", name, "segment is malformed");
	else
		v->point_entries += get_u32((const uint8_t *)d->mv_data + 4);
	return 0;
}

int vg_store_verify(struct vg_txn *t, vg_verify_fn report, void *arg, uint64_t *checked)
{
	struct vctx v = {.t = t, .st = t->st, .report = report, .arg = arg, .cur = -1};
	check_meta(&v);
	int rc = walk_db(&v, t->st->cas, ca_entry);
	if (!rc)
		rc = walk_db(&v, t->st->certs, cert_entry);
	if (!rc)
		rc = walk_db(&v, t->st->revoked, revoked_entry);
	for (size_t i = 0; !rc && i < v.n_cas; i++) {
		struct vca *ca = &v.cas[i];
		if (ca->rec.n_certs != ca->n_certs)
			diff(&v, "cas", ca->name, "n_certs %" PRIu64 " but certs holds %" PRIu64,
			     ca->rec.n_certs, ca->n_certs);
		if (ca->rec.n_revoked != ca->n_revoked)
			diff(&v, "cas", ca->name, "n_revoked %" PRIu64 " but certs holds %" PRIu64,
			     ca->rec.n_revoked, ca->n_revoked);
		if (ca->rec.n_hold != ca->n_hold)
			diff(&v, "cas", ca->name, "n_hold %" PRIu64 " but certs holds %" PRIu64,
			     ca->rec.n_hold, ca->n_hold);
	}
	if (!rc)
		rc = walk_db(&v, t->st->log, log_entry);
	if (!rc)
		rc = walk_db(&v, t->st->audit, audit_entry);
	if (!rc && v.points) {
		rc = walk_db(&v, t->st->points, point_seg);
		uint64_t n = pt_cert_count(t->st, t->txn);
		if (!rc && v.point_entries != n)
			diff(&v, "points", "*", "holds %" PRIu64 " entries, certs %" PRIu64,
			     v.point_entries, n);
	}
	free(v.cas);
	if (checked)
		*checked = v.checked;
	return rc ? rc : v.diffs;
}
