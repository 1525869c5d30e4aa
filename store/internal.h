/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What the files of the store library share; nothing outside store/ includes
 * this (store.h is the public interface). These files are the only ones that
 * include lmdb.h.
 *
 *   env.c          the LMDB error boundary (env_err), environment open and
 *                  close, schema and meta values, map tracking
 *   datafile.c     the data file's length check, before LMDB maps it
 *   read.c         read snapshots (vg_txn_*), point reads, walkers, the
 *                  change-log and audit readers, info
 *   write.c        the write transaction (struct wtx), batching, the public
 *                  write API
 *   rules.c        the revocation rules: pure, no LMDB (rules.h)
 *   points.c       the point index's segment format: pure (points.h)
 *   points_maint.c the point index kept in step with certs: flush, rebuild,
 *                  bulk merge, growth
 *   record.c       on-disk encodings of keys and values: pure (record.h)
 *   backup.c       identity (store_id), backup and restore
 *   verify.c       the invariants, walked
 *   prune.c        retention: the change log and expired certificates
 *   replica.c      replication: role in meta, a primary's commit applied on
 *                  a replica, bootstrap (replica.h)
 *
 * Sub-databases:
 *   meta     "schema" -> u32, "counter" -> u64, "created" -> i64,
 *            "points" -> u32 (1: the point index is complete, 0: stale),
 *            "points_lg" -> u32 (log2 of its segment count),
 *            "points_epoch" -> u64 (bumped by every transaction of a rebuild
 *            or merge of the index: a lock for work spread over several),
 *            "store_id" -> u64 (random; a backup copy gets its own),
 *            "backup_of", "base_counter", "backup_time" -> u64 (a copy's
 *            origin), "log_floor" -> u64 (log entries up to it were pruned),
 *            "replica_of", "replica_boot" -> u64 (replication,
 *            store/replica.h)
 *   cas      CA name -> CA record (see rec_ca_encode)
 *   certs    cert key -> record          (every certificate)
 *   revoked  cert key -> record          (revoked ones only: CRLs cost O(revoked))
 *   log      counter u64 | seq u32 -> ca_id u32 | op u8 | len u8 | serial
 *   audit    counter u64 -> time i64 | count u64 | user\0 ca\0 action\0 command
 *   points   segment u16 -> hashed copy of certs for point lookups (points.h)
 *
 * Durability: LMDB's default sync (no NOSYNC, MAPASYNC or WRITEMAP), so a
 * committed transaction survives kill -9 and power loss, and the B-tree is
 * never half-written. Writes go in bounded transactions.
 *
 * Errors inside the library are those of store.h, plus two that never leave
 * it: -ESTALE, another writer got in (a merge of a bulk operation's changes
 * into the point index found a commit, a rebuild or a merge it did not make:
 * the index is rebuilt instead), and -EBUSY, other writers kept committing
 * through a rebuild of the point index (it stays stale; the next read-write
 * open rebuilds it). MDB_MAP_RESIZED is followed where a transaction begins
 * (env_txn_begin, vg_txn_begin, vg_txn_renew); MDB_MAP_FULL is -ENOSPC with
 * vg_store.map_full set, which growing the map cures (a full disk does not).
 */

#include <lmdb.h>
#include <pthread.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/points.h"
#include "store/record.h"
#include "store/store.h"

/* 2: the point index (store/points.h). A version-1 store is upgraded by the
 * first read-write open; until then readers use the certs B-tree. */
#define SCHEMA_VERSION 2u

/* Attempts at beginning a transaction that finds the map grown by another
 * process: each adopts the size that process committed, and the next attempt
 * waits for the writer lock (or a reader slot) again. Each failure means
 * another writer grew the store in between, so the bound only guards against
 * a file that no map size satisfies. */
#define MAP_FOLLOW_TRIES 64

struct vg_store {
	MDB_env *env;
	MDB_dbi meta, cas, certs, revoked, log, audit, points;
	bool rdonly;
	bool has_points; /* schema 2: the point index exists */
	/* The last -ENOSPC was MDB_MAP_FULL, which growing the map cures (as
	 * opposed to a full disk, which it does not). Set by env_err, read and
	 * cleared where a write is retried (run_batch, chunk_end). Writes
	 * are done by one thread. */
	bool map_full;
	/* This handle committed a write: the next one first lets another
	 * writer waiting for the lock have it (wtx_run). */
	bool committed;
	/* An operation of several commits (bulk) marks the point index stale
	 * in each and brings it up to date at its end: by merging the changes
	 * it made (acc), when the index was valid at its start and nobody else
	 * wrote in between (acc_ok), else by rebuilding it from certs. */
	bool bulk, bulk_started, deferred, acc_ok;
	uint64_t bulk_counter; /* the counter of the operation's last commit */
	uint64_t bulk_epoch;   /* "points_epoch" as its first deferral saw it */
	struct pt_pending acc;
	char *path;
	/* Readers hold this shared while their snapshot is active; growing the
	 * map of a read-only process (another process grew the file) needs it
	 * exclusive, since mdb_env_set_mapsize remaps. */
	pthread_rwlock_t maplock;
	/* Where the data file is mapped (for vg_txn_trim); LMDB tells only
	 * with MDB_FIXEDMAP. Updated under maplock when the map moves. */
	void *map_addr;
	size_t map_len;
	/* The data file this handle opened (vg_store_replaced). */
	dev_t dev;
	ino_t ino;
};

struct vg_txn {
	struct vg_store *st;
	MDB_txn *txn;
	bool locked;
	int8_t points; /* in this snapshot: 1 the point index is valid, -1 not, 0 unknown */
	unsigned lg;   /* ... and its segment count (log2) */
	/* Segments of the point index opened in this snapshot (gen == this
	 * snapshot's): a lookup then reads two cache lines of the map. */
	struct segref {
		struct pt_seg s;
		uint32_t gen;
		bool bad; /* corrupt: read the B-tree instead */
	} * segs;
	size_t nsegs; /* allocated */
	uint32_t gen;
};

/* ---- env.c ---- */

/* env_err maps LMDB's error space to negative errno, at this one boundary;
 * |what| names the operation in the log line of an unexpected error. */
int env_err(struct vg_store *st, int rc, const char *what);
/* env_meta_get reads a u32 or u64 meta value (-ENOENT when absent). */
int env_meta_get(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t *out);
/* env_meta_put writes one, |width| 4 or 8 octets. */
int env_meta_put(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t v, size_t width);
/* env_points_valid tells whether the point index of |txn|'s snapshot is
 * complete, and its segment count (log2) in |lg|. */
bool env_points_valid(struct vg_store *st, MDB_txn *txn, unsigned *lg);
/* env_txn_begin begins an LMDB transaction of this process's own (not a
 * vg_txn), following a map another process grew. */
int env_txn_begin(struct vg_store *st, unsigned flags, MDB_txn **txn);
/* env_follow_map adopts the map size another process grew the store to. */
int env_follow_map(struct vg_store *st);
/* env_grow_map doubles the map after MDB_MAP_FULL; no transaction may be open. */
int env_grow_map(struct vg_store *st);

/* env_ident_init gives a store without a store_id one (in |txn|, a write
 * transaction). */
int env_ident_init(struct vg_store *st, MDB_txn *txn);
/* env_random returns 64 random bits, never 0. */
uint64_t env_random(void);

/* ---- write.c ---- */

/* One write transaction of a batch (write.c); prune.c and backup.c write
 * through it too. */
struct wtx {
	struct vg_store *st;
	MDB_txn *txn;
	const char *ca;
	struct vg_ca_state ca_state;
	bool ca_dirty;
	uint64_t counter; /* the value this commit will have */
	uint32_t seq;     /* next log entry sequence in this commit */
	uint64_t changed; /* certificates changed in this commit */
	uint32_t n_adds;  /* ADD/UPDATE entries this commit */
	bool adds_collapsed;
	struct vg_serial *pending_adds; /* first LOG_ADD_DETAIL_MAX additions */
	uint8_t *pending_ops;
	struct pt_pending points;   /* certs changes, for the point index */
	struct vg_write_result res; /* this batch's share */
};

/* wtx_run runs |fn| in a write transaction of CA |ca| (NULL: none) and
 * commits it with an audit record of |action|, when |fn| changed anything;
 * it grows the map and runs |fn| again when the map fills. */
int wtx_run(struct vg_store *st, const char *ca, const char *action, const struct vg_audit *who,
            int (*fn)(struct wtx *w, void *arg), void *arg, struct vg_write_result *total);
/* wtx_log_put appends a change-log entry to this commit. */
int wtx_log_put(struct wtx *w, uint32_t ca_id, uint8_t op, const struct vg_serial *s);
/* wtx_del_cert removes (|ca_state.id|, |s|), whose record is |old|, from
 * certs, revoked and the point index, and from the CA's counts. */
int wtx_del_cert(struct wtx *w, const struct vg_serial *s, const struct vg_cert *old);

/* ---- datafile.c ---- */

/* datafile_check refuses a data file shorter than its newest meta page says
 * it is in use (-EUCLEAN, with the sizes in |expected| and |found|, and that
 * meta's transaction in |txnid|). */
int datafile_check(const char *datafile, uint64_t *expected, uint64_t *found, uint64_t *txnid);

/* ---- read.c ---- */

/* read_cert reads the record of (|ca_id|, |s|) from the certs B-tree. */
int read_cert(struct vg_store *st, MDB_txn *txn, uint32_t ca_id, const struct vg_serial *s,
              struct vg_cert *out);
/* read_ca reads the state of CA |name|: all zero but its id when unknown. */
int read_ca(struct vg_store *st, MDB_txn *txn, const char *name, struct vg_ca_state *out);

/* ---- points_maint.c ---- */

/* pt_flush rewrites each segment of the point index that |p| touches, once;
 * with |replace| the segments hold only what |p| has, whose keys must then
 * be distinct. */
int pt_flush(struct vg_store *st, MDB_txn *txn, struct pt_pending *p, bool replace, unsigned lg);
/* pt_rebuild_all builds the point index afresh from certs. */
int pt_rebuild_all(struct vg_store *st);
/* pt_grow rebuilds the index with more segments once the store outgrew it. */
int pt_grow(struct vg_store *st);
/* pt_cert_count is the number of certificates in |txn|'s snapshot. */
uint64_t pt_cert_count(struct vg_store *st, MDB_txn *txn);
/* A bulk operation: pt_bulk_begin before its first commit, pt_bulk_committed
 * after each (|counter| the commit's, |points| the changes it kept out of the
 * index when |deferred|), pt_bulk_end at its end, which brings the index up
 * to date and returns |rc| or the index's failure. */
void pt_bulk_begin(struct vg_store *st);
void pt_bulk_committed(struct vg_store *st, uint64_t counter, const struct pt_pending *points,
                       bool deferred, bool valid_before, bool outgrown, uint64_t epoch);
int pt_bulk_end(struct vg_store *st, int rc);
