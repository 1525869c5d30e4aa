/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The status store on LMDB. This file is the only one that includes lmdb.h.
 *
 * Sub-databases:
 *   meta     "schema" -> u32, "counter" -> u64, "created" -> i64,
 *            "points" -> u32 (1: the point index is complete, 0: stale),
 *            "points_lg" -> u32 (log2 of its segment count),
 *            "points_epoch" -> u64 (bumped by every transaction of a rebuild
 *            or merge of the index: a lock for work spread over several)
 *   cas      CA name -> CA record (see ca_encode)
 *   certs    cert key -> record          (every certificate)
 *   revoked  cert key -> record          (revoked ones only: CRLs cost O(revoked))
 *   log      counter u64 | seq u32 -> ca_id u32 | op u8 | len u8 | serial
 *   audit    counter u64 -> time i64 | count u64 | user\0 ca\0 action\0 command
 *   points   segment u16 -> hashed copy of certs for point lookups (points.h)
 *
 * Durability: LMDB's default sync (no NOSYNC, MAPASYNC or WRITEMAP), so a
 * committed transaction survives kill -9 and power loss, and the B-tree is
 * never half-written. Writes go in bounded transactions.
 */
#include "store/store.h"
#include "store/points.h"
#include "store/record.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* 2: the point index (store/points.h). A version-1 store is upgraded by the
 * first read-write open; until then readers use the certs B-tree. */
#define SCHEMA_VERSION 2u
#define MAP_INITIAL (1ull << 30)
/* More than this many additions in one commit are logged as one CA-wide change. */
#define LOG_ADD_DETAIL_MAX 1024

struct vg_store {
	MDB_env *env;
	MDB_dbi meta, cas, certs, revoked, log, audit, points;
	bool rdonly;
	bool has_points; /* schema 2: the point index exists */
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
	} *segs;
	size_t nsegs; /* allocated */
	uint32_t gen;
};

struct vg_iter {
	struct vg_txn *t;
	MDB_cursor *cur;
	uint32_t ca_id;
	bool started, done;
};

/* Set when the last error was MDB_MAP_FULL, which growing the map cures (as
 * opposed to ENOSPC from a full disk, which it does not). Writes are done by
 * one thread. */
static bool map_full_seen;

/* lmdb_err maps LMDB's error space to negative errno, at this one boundary. */
static int lmdb_err(int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		map_full_seen = true;
		return -ENOSPC;
	case MDB_TXN_FULL:
	case ENOSPC:
		return -ENOSPC;
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		log_err("event=store_error op=%s error=\"%s\"", what, mdb_strerror(rc));
		return -EPROTO;
	case EACCES:
	case EROFS:
	case ENOENT:
	case ENOMEM:
		return -rc;
	default:
		log_err("event=store_error op=%s error=\"%s\"", what, mdb_strerror(rc));
		return -EIO;
	}
}

const char *vg_store_path(const struct vg_store *st)
{
	return st->path;
}

static int open_dbis(struct vg_store *st, MDB_txn *txn, unsigned flags)
{
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {{"meta", &st->meta},	      {"cas", &st->cas}, {"certs", &st->certs},
		   {"revoked", &st->revoked}, {"log", &st->log}, {"audit", &st->audit}};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
		if (rc == MDB_NOTFOUND)
			return -ENODATA;
		if (rc)
			return lmdb_err(rc, "dbi_open");
	}
	return 0;
}

static int meta_get_u64(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t *out)
{
	MDB_val key = {strlen(k), (void *)k}, val;
	int rc = mdb_get(txn, st->meta, &key, &val);
	if (rc)
		return lmdb_err(rc, "meta_get");
	if (val.mv_size == 4)
		*out = get_u32(val.mv_data);
	else if (val.mv_size == 8)
		*out = get_u64(val.mv_data);
	else
		return -EBADMSG;
	return 0;
}

static int meta_put_u64(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t v, size_t width)
{
	uint8_t b[8];
	if (width == 4)
		put_u32(b, (uint32_t)v);
	else
		put_u64(b, v);
	MDB_val key = {strlen(k), (void *)k}, val = {width, b};
	return lmdb_err(mdb_put(txn, st->meta, &key, &val, 0), "meta_put");
}

static int pt_rebuild_all(struct vg_store *st);
static int points_grow(struct vg_store *st);
static uint64_t cert_count(struct vg_store *st, MDB_txn *txn);
static void map_locate(struct vg_store *st);
static int txn_begin(struct vg_store *st, unsigned flags, MDB_txn **txn);

/* open_points opens the point index. A read-write open of a version-1
 * store creates it, stale, in the same transaction that raises the schema
 * (an older writer can then no longer open the store and leave the index
 * behind); the caller rebuilds it after the commit. A read-only open of a
 * version-1 store reads the B-tree. */
static int open_points(struct vg_store *st, MDB_txn *txn, uint64_t schema, bool create)
{
	if (schema == 1 && st->rdonly)
		return 0;
	int rc = mdb_dbi_open(txn, "points", st->rdonly ? 0 : MDB_CREATE, &st->points);
	if (rc)
		return rc == MDB_NOTFOUND ? -EBADMSG : lmdb_err(rc, "dbi_open");
	st->has_points = true;
	if (schema == 1) {
		rc = meta_put_u64(st, txn, "schema", SCHEMA_VERSION, 4);
		if (!rc)
			rc = meta_put_u64(st, txn, "points", 0, 4);
	} else if (create) {
		rc = meta_put_u64(st, txn, "points", 1, 4);
		if (!rc)
			rc = meta_put_u64(st, txn, "points_lg", 0, 4);
	}
	return rc;
}

/* points_valid tells whether the point index of |txn|'s snapshot is
 * complete, and its segment count (log2) in |lg|. */
static bool points_valid(struct vg_store *st, MDB_txn *txn, unsigned *lg)
{
	uint64_t v = 0, l = 0;
	if (!st->has_points || meta_get_u64(st, txn, "points", &v) != 0 || v != 1 ||
	    meta_get_u64(st, txn, "points_lg", &l) != 0 || l > PT_MAX_LG)
		return false;
	*lg = (unsigned)l;
	return true;
}

/* ---- The data file, before LMDB maps it --------------------------------
 *
 * LMDB maps data.mdb and reads its pages through the map: a file cut short
 * (a copy that stopped, a truncate, a file system that lost its tail) makes
 * the first read of a missing page kill the process with SIGBUS, in every
 * program that opens it. So vg_store_open first reads the two meta pages
 * itself, with pread, and compares the file's size with the last page the
 * newest one says is in use. The layout is LMDB 0.9's (mdb.c), in the
 * host's byte order and word size as LMDB writes it: a page header (page
 * number, pad u16, flags u16, lower u16, upper u16), then MDB_meta: magic
 * u32, version u32, address, map size, two MDB_db (FREE_DBI, MAIN_DBI; the
 * first's md_pad holds the page size), last page, txnid.
 *
 * A page below the last one may legitimately be missing from the file: a
 * page a transaction allocated at the end and freed again before it
 * committed is never written (LMDB's "loose" pages), only recorded as free.
 * Free pages are never read, so a short file is refused only when a missing
 * page is not in the free list, which is walked with pread too.
 */
#define LM_P sizeof(size_t)              /* pgno_t, txnid_t, pointers */
#define LM_HDR (LM_P + 8)                /* PAGEHDRSZ */
#define LM_FLAGS (LM_P + 2)              /* mp_flags */
#define LM_LOWER (LM_P + 4)              /* mp_lower; mp_pages of an overflow page */
#define LM_UPPER (LM_P + 6)              /* mp_upper */
#define LM_DBS (8 + 2 * LM_P)            /* mm_dbs, from the meta's start */
#define LM_DB_LEN (8 + 5 * LM_P)         /* sizeof(MDB_db) */
#define LM_DB_ROOT (8 + 4 * LM_P)        /* md_root, from the MDB_db's start */
#define LM_LAST (LM_DBS + 2 * LM_DB_LEN) /* mm_last_pg */
#define LM_TXNID (LM_LAST + LM_P)        /* mm_txnid */
#define LM_MAGIC 0xBEEFC0DEu
#define LM_P_BRANCH 0x01u
#define LM_P_LEAF 0x02u
#define LM_P_OVERFLOW 0x04u
#define LM_P_META 0x08u
#define LM_F_BIGDATA 0x01u
#define LM_NODE 8u /* mn_lo, mn_hi, mn_flags, mn_ksize */
/* Missing pages looked up in the free list, at most: beyond, the file is
 * too short to be anything but damaged. */
#define LM_GAP_MAX (1u << 24)

static size_t get_word(const uint8_t *b)
{
	size_t v;
	memcpy(&v, b, sizeof(v));
	return v;
}

static unsigned get_u16n(const uint8_t *b)
{
	uint16_t v;
	memcpy(&v, b, sizeof(v));
	return v;
}

static uint32_t get_u32n(const uint8_t *b)
{
	uint32_t v;
	memcpy(&v, b, sizeof(v));
	return v;
}

struct lm_file {
	int fd;
	size_t psize;
	size_t last_pg; /* of the newest meta */
	size_t free_root;
	size_t have;   /* whole pages in the file */
	uint8_t *gap;  /* bit i: page have + i is free */
	size_t ngap;   /* last_pg + 1 - have */
	size_t nfree;  /* distinct gap pages found free */
	size_t budget; /* pages the walk may still read */
	uint8_t *page;
};

/* lm_read_meta reads the meta page at |off|; returns 1 when it is LMDB's,
 * else 0. */
static int lm_read_meta(int fd, size_t off, size_t *psize, size_t *last, size_t *txnid,
                        size_t *free_root)
{
	uint8_t b[LM_HDR + LM_TXNID + LM_P];
	if (pread(fd, b, sizeof(b), (off_t)off) != (ssize_t)sizeof(b))
		return 0;
	const uint8_t *m = b + LM_HDR;
	if (!(get_u16n(b + LM_FLAGS) & LM_P_META) || get_u32n(m) != LM_MAGIC ||
	    get_u32n(m + 4) != 1)
		return 0;
	*psize = get_u32n(m + LM_DBS);
	*last = get_word(m + LM_LAST);
	*txnid = get_word(m + LM_TXNID);
	*free_root = get_word(m + LM_DBS + LM_DB_ROOT);
	return 1;
}

/* lm_read_page reads page |pg| whole; -EUCLEAN when it is not in the file. */
static int lm_read_page(struct lm_file *f, size_t pg)
{
	if (pg >= f->have || f->budget == 0)
		return -EUCLEAN;
	f->budget--;
	if (pread(f->fd, f->page, f->psize, (off_t)(pg * f->psize)) != (ssize_t)f->psize)
		return -EUCLEAN;
	return get_word(f->page) == pg ? 0 : -EUCLEAN;
}

/* lm_note_idl marks the gap pages an IDL of free pages lists. */
static void lm_note_idl(struct lm_file *f, const uint8_t *d, size_t len)
{
	if (len < LM_P)
		return;
	size_t n = get_word(d);
	if (n > len / LM_P - 1)
		n = len / LM_P - 1;
	for (size_t i = 1; i <= n; i++) {
		size_t pg = get_word(d + i * LM_P);
		if (pg < f->have || pg > f->last_pg)
			continue;
		size_t k = pg - f->have;
		if (!(f->gap[k / 8] & (1u << (k % 8)))) {
			f->gap[k / 8] |= (uint8_t)(1u << (k % 8));
			f->nfree++;
		}
	}
}

/* lm_walk_free walks the free list's B-tree from page |pg|. */
static int lm_walk_free(struct lm_file *f, size_t pg, unsigned depth)
{
	if (depth > 32)
		return -EUCLEAN;
	int rc = lm_read_page(f, pg);
	if (rc)
		return rc;
	unsigned flags = get_u16n(f->page + LM_FLAGS);
	unsigned lower = get_u16n(f->page + LM_LOWER), upper = get_u16n(f->page + LM_UPPER);
	if (lower < LM_HDR || lower > upper || upper > f->psize ||
	    !(flags & (LM_P_BRANCH | LM_P_LEAF)))
		return -EUCLEAN;
	size_t nkeys = (lower - LM_HDR) / 2;
	/* A branch's children are read into the same buffer: keep this
	 * page's node pointers apart. */
	size_t *next = NULL;
	if (flags & LM_P_BRANCH) {
		next = calloc(nkeys ? nkeys : 1, sizeof(*next));
		if (!next)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nkeys && !rc; i++) {
		size_t off = get_u16n(f->page + LM_HDR + 2 * i);
		if (off < upper || off + LM_NODE > f->psize) {
			rc = -EUCLEAN;
			break;
		}
		const uint8_t *node = f->page + off;
		size_t lo = get_u16n(node), hi = get_u16n(node + 2), nflags = get_u16n(node + 4);
		size_t ksize = get_u16n(node + 6);
		if (next) {
			next[i] = lo | hi << 16 | (LM_P > 4 ? nflags << 32 : 0);
			continue;
		}
		size_t dsize = lo | hi << 16, doff = off + LM_NODE + ksize;
		if (!(nflags & LM_F_BIGDATA)) {
			if (doff + dsize > f->psize)
				rc = -EUCLEAN;
			else
				lm_note_idl(f, f->page + doff, dsize);
			continue;
		}
		/* The list is in overflow pages, whose first is at the node's data. */
		if (doff + LM_P > f->psize) {
			rc = -EUCLEAN;
			break;
		}
		size_t ov = get_word(f->page + doff);
		size_t npages = (LM_HDR + dsize + f->psize - 1) / f->psize;
		if (ov >= f->have || npages > f->have - ov || npages > f->budget) {
			rc = -EUCLEAN;
			break;
		}
		f->budget -= npages;
		uint8_t *d = malloc(LM_HDR + dsize);
		if (!d) {
			rc = -ENOMEM;
			break;
		}
		if (pread(f->fd, d, LM_HDR + dsize, (off_t)(ov * f->psize)) !=
		        (ssize_t)(LM_HDR + dsize) ||
		    get_word(d) != ov || !(get_u16n(d + LM_FLAGS) & LM_P_OVERFLOW))
			rc = -EUCLEAN;
		else
			lm_note_idl(f, d + LM_HDR, dsize);
		free(d);
	}
	for (size_t i = 0; next && i < nkeys && !rc; i++)
		rc = lm_walk_free(f, next[i], depth + 1);
	free(next);
	return rc;
}

/* check_data_file refuses a data file shorter than its newest meta page
 * says it is in use (-EUCLEAN, with the sizes in |expected| and |found|, and
 * that meta's transaction in |txnid|).
 * A file it cannot judge (not LMDB's, or too small to hold its two meta
 * pages) is left to LMDB, which refuses it without mapping it. */
static int check_data_file(const char *datafile, uint64_t *expected, uint64_t *found,
                           uint64_t *txnid)
{
	int fd = open(datafile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* LMDB reports it */
	int rc = 0;
	size_t ps0, last0, txn0, root0, ps1, last1, txn1, root1;
	struct stat sb;
	if (!lm_read_meta(fd, 0, &ps0, &last0, &txn0, &root0) || ps0 < 256 || ps0 > 65536 ||
	    (ps0 & (ps0 - 1)) || !lm_read_meta(fd, ps0, &ps1, &last1, &txn1, &root1) ||
	    fstat(fd, &sb) < 0)
		goto out;
	struct lm_file f = {.fd = fd, .psize = ps0};
	f.last_pg = txn1 > txn0 ? last1 : last0;
	f.free_root = txn1 > txn0 ? root1 : root0;
	*txnid = txn1 > txn0 ? txn1 : txn0;
	*expected = ((uint64_t)f.last_pg + 1) * ps0;
	*found = (uint64_t)sb.st_size;
	if (*found >= *expected || f.last_pg >= SIZE_MAX / ps0)
		goto out;
	/* Short: every missing page must be free. */
	rc = -EUCLEAN;
	f.have = (size_t)sb.st_size / ps0;
	f.ngap = f.last_pg + 1 - f.have;
	f.budget = f.have;
	if (f.have < 2 || f.ngap > LM_GAP_MAX || f.free_root == (size_t)-1)
		goto out;
	f.gap = calloc((f.ngap + 7) / 8, 1);
	f.page = malloc(ps0);
	if (f.gap && f.page && lm_walk_free(&f, f.free_root, 0) == 0 && f.nfree == f.ngap)
		rc = 0;
	free(f.gap);
	free(f.page);
out:
	close(fd);
	return rc;
}

/* The reason of this thread's last -EUCLEAN from vg_store_open. */
static __thread char damage[640];

const char *vg_store_damage(void)
{
	return damage;
}

int vg_store_open(struct vg_store **out, const char *path, unsigned flags)
{
	bool rdonly = flags & VG_STORE_RDONLY;
	bool create = (flags & VG_STORE_CREATE) && !rdonly;
	char *datafile = NULL;
	if (asprintf(&datafile, "%s/data.mdb", path) < 0)
		return -ENOMEM;
	struct stat sb;
	bool exists = stat(datafile, &sb) == 0;
	if (!exists && !create) {
		free(datafile);
		return -ENODATA;
	}
	uint64_t expected = 0, found = 0, txnid = 0, seen;
	damage[0] = '\0';
	/* Once more while another process commits (the free list walked may
	 * have been reused under the walk): a damaged file sees no commits. */
	int rc = exists ? check_data_file(datafile, &expected, &found, &txnid) : 0;
	for (int tries = 0; rc == -EUCLEAN && tries < 8; tries++) {
		seen = txnid;
		rc = check_data_file(datafile, &expected, &found, &txnid);
		if (rc == -EUCLEAN && txnid == seen)
			break;
	}
	if (rc == -EUCLEAN)
		snprintf(damage, sizeof(damage),
		         "store damaged: %s expected %llu bytes, found %llu", datafile,
		         (unsigned long long)expected, (unsigned long long)found);
	free(datafile);
	if (rc)
		return rc;
	if (create && mkdir(path, 0750) < 0 && errno != EEXIST)
		return -errno;

	struct vg_store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->rdonly = rdonly;
	st->path = strdup(path);
	pthread_rwlock_init(&st->maplock, NULL);
	MDB_txn *txn = NULL;
	rc = mdb_env_create(&st->env);
	if (rc) {
		rc = lmdb_err(rc, "env_create");
		goto fail;
	}
	mdb_env_set_maxdbs(st->env, 8);
	mdb_env_set_maxreaders(st->env, 1022);
	if (!rdonly) {
		/* The map only reserves address space; the file grows with data.
		 * Growing it further is done on MDB_MAP_FULL (write_batch). */
		uint64_t initial = MAP_INITIAL;
		const char *env = getenv("VIGIL_STORE_INITIAL_MAP");
		if (env && atoll(env) > 0)
			initial = (uint64_t)atoll(env);
		if (exists && (uint64_t)sb.st_size > initial)
			initial = (uint64_t)sb.st_size;
		mdb_env_set_mapsize(st->env, initial);
	}
	unsigned envflags = MDB_NOTLS | (rdonly ? MDB_RDONLY : 0);
	rc = mdb_env_open(st->env, path, envflags, 0640);
	if (rc) {
		rc = lmdb_err(rc, "env_open");
		goto fail;
	}
	char *lockfile = NULL;
	if (asprintf(&lockfile, "%s/lock.mdb", path) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (rdonly && access(lockfile, W_OK) < 0) {
		/* LMDB opens a read-only file system without locks, and then a
		 * reader is not protected from the writer reusing its pages:
		 * refuse rather than serve torn reads. */
		free(lockfile);
		rc = -EROFS;
		goto fail;
	}
	if (!rdonly) {
		/* Readers run as another user (the services' vigil) and must
		 * register in the lock file: make it group-writable whatever
		 * the umask. Best effort: only the owner can. */
		(void)chmod(lockfile, 0660);
	}
	free(lockfile);
	int dead = 0;
	mdb_reader_check(st->env, &dead);
	if (dead > 0)
		log_warn("event=stale_readers_cleared count=%d", dead);

	/* A write transaction waits here while another vigil-store writes,
	 * which may grow the store past the map this open set up. */
	rc = txn_begin(st, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		goto fail;
	rc = open_dbis(st, txn, create ? MDB_CREATE : 0);
	if (rc)
		goto fail;
	uint64_t schema;
	rc = meta_get_u64(st, txn, "schema", &schema);
	bool fresh = false; /* initialised by this open */
	if (rc == -ENOENT && create) {
		fresh = true;
		rc = meta_put_u64(st, txn, "schema", SCHEMA_VERSION, 4);
		if (!rc)
			rc = meta_put_u64(st, txn, "counter", 0, 8);
		if (!rc)
			rc = meta_put_u64(st, txn, "created", (uint64_t)time(NULL), 8);
		if (rc)
			goto fail;
		schema = SCHEMA_VERSION;
	} else if (rc == -ENOENT) {
		rc = -ENODATA;
		goto fail;
	} else if (rc) {
		goto fail;
	}
	if (schema != SCHEMA_VERSION && schema != 1) {
		log_err("event=store_schema_mismatch path=%s found=%llu expected=%u", path,
			(unsigned long long)schema, SCHEMA_VERSION);
		rc = -EPROTO;
		goto fail;
	}
	rc = open_points(st, txn, schema, fresh);
	if (rc)
		goto fail;
	unsigned lg;
	bool rebuild = !rdonly && !points_valid(st, txn, &lg);
	/* Committing also makes the DBI handles usable by later transactions. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		rc = lmdb_err(rc, "txn_commit");
		goto fail;
	}
	if (rdonly)
		map_locate(st);
	if (rebuild) {
		/* Upgraded, or a large write stopped before it rebuilt the index:
		 * readers use the B-tree until this finishes. */
		log_info("event=store_points_rebuild path=%s", path);
		rc = pt_rebuild_all(st);
		if (rc)
			log_warn("event=store_points_rebuild_failed path=%s error=%d", path, rc);
		rc = 0;
	}
	*out = st;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->maplock);
	free(st->path);
	free(st);
	return rc;
}

void vg_store_close(struct vg_store *st)
{
	if (!st)
		return;
	mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->maplock);
	free(st->path);
	free(st);
}

/* ---- Reading ------------------------------------------------------------ */

/* map_locate finds this process's mapping of the data file in
 * /proc/self/maps, by device and inode. Without /proc, trimming is off. */
static void map_locate(struct vg_store *st)
{
	st->map_addr = NULL;
	st->map_len = 0;
	mdb_filehandle_t fd;
	struct stat sb;
	if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) < 0)
		return;
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, ino;
		unsigned maj, min;
		if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &lo, &hi, &maj, &min, &ino) != 5 ||
		    ino != (unsigned long)sb.st_ino || makedev(maj, min) != sb.st_dev)
			continue;
		if (hi - lo > st->map_len) {
			st->map_addr = (void *)lo;
			st->map_len = hi - lo;
		}
	}
	fclose(f);
}

/* Attempts at beginning a transaction that finds the map grown by another
 * process: each adopts the size that process committed, and the next attempt
 * waits for the writer lock (or a reader slot) again. Each failure means
 * another writer grew the store in between, so the bound only guards against
 * a file that no map size satisfies. */
#define MAP_FOLLOW_TRIES 64

/* follow_map adopts the map size another process grew the store to (its last
 * commit recorded it in the meta page), never shrinking this process's own
 * map: a writer may have grown it for a batch it is about to run again. No
 * transaction of this process may be open; it is called without the shared
 * lock held. */
static int follow_map(struct vg_store *st)
{
	pthread_rwlock_wrlock(&st->maplock);
	MDB_envinfo ei;
	mdb_env_info(st->env, &ei);
	size_t had = ei.me_mapsize;
	int rc = mdb_env_set_mapsize(st->env, 0);
	if (rc == 0) {
		mdb_env_info(st->env, &ei);
		if (ei.me_mapsize < had)
			rc = mdb_env_set_mapsize(st->env, had);
	}
	if (rc == 0 && st->rdonly)
		map_locate(st);
	pthread_rwlock_unlock(&st->maplock);
	if (rc == 0)
		log_info("event=store_map_followed path=%s", st->path);
	return lmdb_err(rc, "set_mapsize");
}

/* txn_begin begins an LMDB transaction (|flags| 0 for a write one, which
 * waits for the writer lock) for this process's own use, not a vg_txn.
 * MDB_MAP_RESIZED (another process grew the store past this process's map,
 * which LMDB finds only once it holds the writer lock, or a reader slot) is
 * not an error: the map is adopted and the transaction begun again. */
static int txn_begin(struct vg_store *st, unsigned flags, MDB_txn **txn)
{
	for (int tries = 0;; tries++) {
		int rc = mdb_txn_begin(st->env, NULL, flags, txn);
		if (rc == MDB_MAP_RESIZED && tries < MAP_FOLLOW_TRIES && follow_map(st) == 0)
			continue;
		return rc ? lmdb_err(rc, "txn_begin") : 0;
	}
}

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
		if (rc == MDB_MAP_RESIZED && tries < MAP_FOLLOW_TRIES && follow_map(st) == 0)
			continue;
		free(t);
		return lmdb_err(rc, "txn_begin");
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
			if (follow_map(t->st) == 0)
				continue;
		}
		return lmdb_err(rc, "txn_renew");
	}
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

static int get_cert(struct vg_store *st, MDB_txn *txn, uint32_t ca_id, const struct vg_serial *s,
		    struct vg_cert *out)
{
	uint8_t kb[CERT_KEY_MAX];
	MDB_val key = {cert_key(ca_id, s, kb), kb}, val;
	int rc = mdb_get(txn, st->certs, &key, &val);
	if (rc)
		return lmdb_err(rc, "get");
	if (rec_decode(val.mv_data, val.mv_size, out) < 0) {
		log_err("event=store_corrupt_record ca_id=%08x", ca_id);
		return -EBADMSG;
	}
	return 0;
}

int vg_store_get(struct vg_txn *t, uint32_t ca_id, const struct vg_serial *serial, struct vg_cert *out)
{
	if (!t->txn)
		return -EINVAL;
	if (serial->len == 0 || serial->len > VG_SERIAL_MAX)
		return -EINVAL;
	if (!t->points) {
		t->points = points_valid(t->st, t->txn, &t->lg) ? 1 : -1;
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
		return get_cert(t->st, t->txn, ca_id, serial, out);
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
			return lmdb_err(rc, "get_point");
		memset(&r->s, 0, sizeof(r->s));
		r->bad = rc == 0 && pt_open(val.mv_data, val.mv_size, &r->s) < 0;
		r->gen = t->gen;
		if (r->bad)
			goto corrupt;
	}
	if (r->bad)
		return get_cert(t->st, t->txn, ca_id, serial, out);
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
	return get_cert(t->st, t->txn, ca_id, serial, out);
}

/* CA record: version u8 | flags u8 | reserved u16 | id u32 | frozen_at i64 |
 * n_certs u64 | n_revoked u64 | n_hold u64 */
#define CA_REC_LEN 40
#define CA_FROZEN 0x01

static void ca_encode(const struct vg_ca_state *s, uint8_t *b)
{
	memset(b, 0, CA_REC_LEN);
	b[0] = 1;
	b[1] = s->frozen ? CA_FROZEN : 0;
	put_u32(b + 4, s->id);
	put_u64(b + 8, (uint64_t)s->frozen_at);
	put_u64(b + 16, s->n_certs);
	put_u64(b + 24, s->n_revoked);
	put_u64(b + 32, s->n_hold);
}

static int ca_decode(const uint8_t *b, size_t len, struct vg_ca_state *s)
{
	if (len != CA_REC_LEN || b[0] != 1)
		return -EBADMSG;
	s->frozen = b[1] & CA_FROZEN;
	s->id = get_u32(b + 4);
	s->frozen_at = (int64_t)get_u64(b + 8);
	s->n_certs = get_u64(b + 16);
	s->n_revoked = get_u64(b + 24);
	s->n_hold = get_u64(b + 32);
	return 0;
}

static int ca_read(struct vg_store *st, MDB_txn *txn, const char *name, struct vg_ca_state *out)
{
	memset(out, 0, sizeof(*out));
	out->id = vg_ca_id(name);
	MDB_val key = {strlen(name), (void *)name}, val;
	int rc = mdb_get(txn, st->cas, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return lmdb_err(rc, "ca_get");
	return ca_decode(val.mv_data, val.mv_size, out);
}

int vg_store_ca_get(struct vg_txn *t, const char *name, struct vg_ca_state *out)
{
	return ca_read(t->st, t->txn, name, out);
}

int vg_store_counter(struct vg_txn *t, uint64_t *out)
{
	return meta_get_u64(t->st, t->txn, "counter", out);
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
		return lmdb_err(rc, "cursor_open");
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
		return lmdb_err(rc, "cursor_get");
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

int vg_store_changes_foreach(struct vg_txn *t, uint64_t since,
		       int (*cb)(const struct vg_change *c, void *arg), void *arg)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->st->log, &cur);
	if (rc)
		return lmdb_err(rc, "cursor_open");
	uint8_t kb[12];
	put_u64(kb, since + 1);
	put_u32(kb + 8, 0);
	MDB_val key = {sizeof(kb), kb}, val;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	int ret = 0;
	while (rc == 0) {
		const uint8_t *v = val.mv_data;
		struct vg_change c;
		memset(&c, 0, sizeof(c));
		if (key.mv_size != 12 || val.mv_size < 6 || val.mv_size != 6u + v[5] ||
		    v[5] > VG_SERIAL_MAX) {
			ret = -EBADMSG;
			break;
		}
		c.counter = get_u64(key.mv_data);
		c.ca_id = get_u32(v);
		c.op = v[4];
		c.serial.len = v[5];
		memcpy(c.serial.b, v + 6, v[5]);
		ret = cb(&c, arg);
		if (ret)
			break;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = lmdb_err(rc, "cursor_get");
	mdb_cursor_close(cur);
	return ret;
}

static void copy_field(char *dst, size_t dstlen, const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	size_t c = n < dstlen - 1 ? n : dstlen - 1;
	memcpy(dst, *p, c);
	dst[c] = '\0';
	*p += n + (nul ? 1 : 0);
}

int vg_store_audit_foreach(struct vg_txn *t, int (*cb)(const struct vg_audit_entry *e, void *arg),
		     void *arg)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->st->audit, &cur);
	if (rc)
		return lmdb_err(rc, "cursor_open");
	MDB_val key, val;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 8 || val.mv_size < 16) {
			ret = -EBADMSG;
			break;
		}
		struct vg_audit_entry e;
		memset(&e, 0, sizeof(e));
		const uint8_t *p = val.mv_data, *end = p + val.mv_size;
		e.counter = get_u64(key.mv_data);
		e.time = (int64_t)get_u64(p);
		e.count = get_u64(p + 8);
		p += 16;
		copy_field(e.user, sizeof(e.user), &p, end);
		copy_field(e.ca, sizeof(e.ca), &p, end);
		copy_field(e.action, sizeof(e.action), &p, end);
		copy_field(e.command, sizeof(e.command), &p, end);
		ret = cb(&e, arg);
		if (ret)
			break;
	}
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = lmdb_err(rc, "cursor_get");
	mdb_cursor_close(cur);
	return ret;
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
	if (meta_get_u64(st, t->txn, "schema", &v) == 0)
		out->schema = (uint32_t)v;
	vg_store_counter(t, &out->counter);
	if (mdb_stat(t->txn, st->log, &ms) == 0)
		out->log_entries = ms.ms_entries;
	if (mdb_stat(t->txn, st->audit, &ms) == 0)
		out->audit_entries = ms.ms_entries;
	unsigned lg;
	out->points_valid = points_valid(st, t->txn, &lg);
	out->points_segments = out->points_valid ? 1u << lg : 0;
	return 0;
}

int vg_store_ca_foreach(struct vg_txn *t,
		  int (*cb)(const char *name, const struct vg_ca_state *s, void *arg), void *arg)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->st->cas, &cur);
	if (rc)
		return lmdb_err(rc, "cursor_open");
	MDB_val key, val;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		char name[64];
		struct vg_ca_state s;
		if (key.mv_size >= sizeof(name) || ca_decode(val.mv_data, val.mv_size, &s) < 0) {
			ret = -EBADMSG;
			break;
		}
		memcpy(name, key.mv_data, key.mv_size);
		name[key.mv_size] = '\0';
		ret = cb(name, &s, arg);
		if (ret)
			break;
	}
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = lmdb_err(rc, "cursor_get");
	mdb_cursor_close(cur);
	return ret;
}

/* ---- Writing ------------------------------------------------------------
 *
 * A write is a series of batches. Each batch runs in one write transaction
 * (struct wtx): it reads the CA record, applies changes through apply(),
 * which keeps the certs and revoked databases, the CA's counts and the
 * change log in step, and commit_wtx() bumps the counter, appends the audit
 * record and commits. On MDB_MAP_FULL the batch is aborted, the map doubled
 * and the batch run again from scratch.
 */

static int pt_flush(struct vg_store *st, MDB_txn *txn, struct pt_pending *p, bool replace,
		    unsigned lg);
static int grow_map(struct vg_store *st);
struct wtx;
static void bulk_committed(struct vg_store *st, struct wtx *w, bool deferred, bool valid_before,
			   bool outgrown, uint64_t epoch);

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
	struct pt_pending points; /* certs changes, for the point index */
	struct vg_write_result res; /* this batch's share */
};

static int wtx_begin(struct vg_store *st, const char *ca, struct wtx *w)
{
	memset(w, 0, sizeof(*w));
	w->st = st;
	w->ca = ca;
	if (st->rdonly)
		return -EROFS;
	int rc = txn_begin(st, 0, &w->txn);
	if (rc)
		return rc;
	if (ca) {
		rc = ca_read(st, w->txn, ca, &w->ca_state);
		if (rc)
			goto fail;
	}
	uint64_t counter;
	rc = meta_get_u64(st, w->txn, "counter", &counter);
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

static int log_put(struct wtx *w, uint32_t ca_id, uint8_t op, const struct vg_serial *s)
{
	uint8_t kb[12], vb[6 + VG_SERIAL_MAX];
	put_u64(kb, w->counter);
	put_u32(kb + 8, w->seq++);
	put_u32(vb, ca_id);
	vb[4] = op;
	vb[5] = s ? s->len : 0;
	if (s)
		memcpy(vb + 6, s->b, s->len);
	MDB_val key = {sizeof(kb), kb}, val = {6u + vb[5], vb};
	/* Keys grow monotonically: MDB_APPEND fills pages completely. */
	return lmdb_err(mdb_put(w->txn, w->st->log, &key, &val, MDB_APPEND), "log_put");
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
			return lmdb_err(rc, "cursor_open");
		MDB_val k2, v2;
		for (rc = mdb_cursor_get(cur, &k2, &v2, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k2, &v2, MDB_NEXT)) {
			struct vg_ca_state o;
			if (ca_decode(v2.mv_data, v2.mv_size, &o) == 0 && o.id == w->ca_state.id) {
				mdb_cursor_close(cur);
				log_err("event=ca_id_collision ca=%s", w->ca);
				return -EEXIST;
			}
		}
		mdb_cursor_close(cur);
	}
	uint8_t b[CA_REC_LEN];
	ca_encode(&w->ca_state, b);
	val.mv_size = sizeof(b);
	val.mv_data = b;
	return lmdb_err(mdb_put(w->txn, st->cas, &key, &val, 0), "ca_put");
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
			rc = log_put(w, w->ca_state.id, VG_CHANGE_CA, NULL);
		} else {
			for (uint32_t i = 0; i < w->n_adds && !rc; i++)
				rc = log_put(w, w->ca_state.id, w->pending_ops[i],
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
		 * to date once, at its end (bulk_end). Once the store has outgrown
		 * the index's segment count, that will be a rebuild: then there is
		 * nothing to merge, and "valid before" is moot. */
		unsigned lg = 0;
		uint64_t l = 0;
		if (meta_get_u64(st, w->txn, "points_epoch", &epoch) == -ENOENT)
			epoch = 0;
		valid_before = points_valid(st, w->txn, &lg);
		if (!valid_before && meta_get_u64(st, w->txn, "points_lg", &l) == 0)
			lg = (unsigned)l;
		outgrown = pt_lg_for(cert_count(st, w->txn)) > lg;
		rc = meta_put_u64(st, w->txn, "points", 0, 4);
	} else if (w->points.n) {
		uint64_t lg = 0;
		rc = meta_get_u64(st, w->txn, "points_lg", &lg);
		if (rc == -ENOENT || lg > PT_MAX_LG) {
			/* Not usable: the next read-write open rebuilds it. */
			lg = 0;
			rc = meta_put_u64(st, w->txn, "points", 0, 4);
		}
		if (!rc)
			rc = pt_flush(st, w->txn, &w->points, false, (unsigned)lg);
		if (rc == -EBADMSG) {
			/* A corrupt segment must not block writes: the index is
			 * a copy, marked stale here and rebuilt by the next
			 * read-write open. */
			rc = meta_put_u64(st, w->txn, "points", 0, 4);
		}
	}
	if (rc)
		goto fail;
	rc = meta_put_u64(st, w->txn, "counter", w->counter, 8);
	if (rc)
		goto fail;

	/* The audit record: time | count | user\0 ca\0 action\0 command */
	const char *user = who && who->user ? who->user : "";
	const char *cmd = who && who->command ? who->command : "";
	const char *ca = w->ca ? w->ca : "";
	size_t lu = strnlen(user, 63), lc = strnlen(ca, 63), la = strlen(action),
	       lm = strnlen(cmd, 511);
	size_t vlen = 16 + lu + 1 + lc + 1 + la + 1 + lm;
	uint8_t *vb = malloc(vlen);
	if (!vb) {
		rc = -ENOMEM;
		goto fail;
	}
	uint8_t *p = vb;
	put_u64(p, (uint64_t)time(NULL));
	put_u64(p + 8, w->changed);
	p += 16;
	memcpy(p, user, lu);
	p += lu;
	*p++ = 0;
	memcpy(p, ca, lc);
	p += lc;
	*p++ = 0;
	memcpy(p, action, la);
	p += la;
	*p++ = 0;
	memcpy(p, cmd, lm);
	uint8_t kb[8];
	put_u64(kb, w->counter);
	MDB_val key = {8, kb}, val = {vlen, vb};
	rc = lmdb_err(mdb_put(w->txn, st->audit, &key, &val, MDB_APPEND), "audit_put");
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
		rc = lmdb_err(rc, "txn_commit");
		goto fail;
	}
	w->res.commits++;
	if (st->bulk)
		bulk_committed(st, w, deferred, valid_before && !outgrown, outgrown, epoch);
	wtx_abort(w); /* frees the pending arrays */
	return 0;
fail:
	wtx_abort(w);
	return rc;
}

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
			return lmdb_err(rc, "get_point");
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
			return lmdb_err(rc, "put_point");
	}
	return 0;
}

/* pt_flush rewrites each segment of the point index that |p| touches, once;
 * with |replace| the segments hold only what |p| has, whose keys must then
 * be distinct. */
static int pt_flush(struct vg_store *st, MDB_txn *txn, struct pt_pending *p, bool replace,
		    unsigned lg)
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
		return lmdb_err(rc, "cursor_open");
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
		return lmdb_err(rc, "del_point");
	/* The certs pages are not written in this transaction: the walk's
	 * pointers into the map stay valid until the flush. */
	struct pt_pending p = {0};
	rc = mdb_cursor_open(txn, st->certs, &cur);
	if (rc)
		return lmdb_err(rc, "cursor_open");
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
		rc = lmdb_err(rc, "cursor_get");
	pt_pending_free(&p);
	return rc;
}

static uint64_t cert_count(struct vg_store *st, MDB_txn *txn)
{
	MDB_stat ms;
	return mdb_stat(txn, st->certs, &ms) == 0 ? ms.ms_entries : 0;
}

static int epoch_get(struct vg_store *st, MDB_txn *txn, uint64_t *e)
{
	int rc = meta_get_u64(st, txn, "points_epoch", e);
	if (rc == -ENOENT) {
		*e = 0;
		rc = 0;
	}
	return rc;
}

/* chunk_end ends one transaction of a rebuild or merge: commits it when
 * |rc| is 0, else aborts it. Returns 1 when the map was full and has grown
 * (the chunk is to be run again), else the outcome. */
static int chunk_end(struct vg_store *st, MDB_txn *txn, int rc, int *grows)
{
	if (!rc)
		rc = lmdb_err(mdb_txn_commit(txn), "txn_commit");
	else
		mdb_txn_abort(txn);
	if (rc == -ENOSPC && map_full_seen && (*grows)++ < 16) {
		map_full_seen = false;
		if (grow_map(st) == 0)
			return 1;
	}
	return rc;
}

/* pt_rebuild_all builds the point index afresh from certs, with a segment
 * count for the number of certificates, PT_CHUNK segments a transaction.
 * The first marks the index stale, the last marks it valid; each bumps the
 * epoch and checks that nobody else did, nor committed a write (the change
 * counter), since the one before: else it starts over, at most three times
 * (-EBUSY; the index stays stale, which readers see). */
static int pt_rebuild_all(struct vg_store *st)
{
	uint64_t start = 0, epoch = 0;
	unsigned lg = 0;
	int restarts = 0, grows = 0;
	for (uint32_t lo = 0;;) {
		MDB_txn *txn;
		int rc = txn_begin(st, 0, &txn);
		if (rc)
			return rc;
		uint64_t counter, e;
		rc = meta_get_u64(st, txn, "counter", &counter);
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
			lg = pt_lg_for(cert_count(st, txn));
			rc = meta_put_u64(st, txn, "points", 0, 4);
		}
		bool last = lo + PT_CHUNK >= ((uint32_t)1 << lg);
		if (!rc)
			rc = meta_put_u64(st, txn, "points_epoch", e + 1, 8);
		if (!rc)
			rc = rebuild_chunk(st, txn, lo, lg);
		if (!rc && last)
			rc = meta_put_u64(st, txn, "points_lg", lg, 4);
		if (!rc && last)
			rc = meta_put_u64(st, txn, "points", 1, 4);
		rc = chunk_end(st, txn, rc, &grows);
		if (rc == 1)
			continue; /* the map grew: this chunk again */
		if (rc)
			return rc;
		epoch = e + 1;
		if (last)
			return 0;
		lo += PT_CHUNK;
	}
}

/* points_grow rebuilds the point index with more segments once the store
 * outgrew its count; a check costs one read of two values. */
static int points_grow(struct vg_store *st)
{
	MDB_txn *txn;
	if (txn_begin(st, MDB_RDONLY, &txn) != 0)
		return 0;
	unsigned lg;
	bool grow = points_valid(st, txn, &lg) && pt_lg_for(cert_count(st, txn)) > lg;
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

static void bulk_begin(struct vg_store *st)
{
	st->bulk = true;
	st->bulk_started = false;
	st->deferred = false;
	st->acc_ok = false;
	pt_pending_free(&st->acc);
}

/* bulk_committed follows the commits of a bulk operation: whether every one
 * came right after the one before, and the changes they kept out of the
 * index; |valid_before|: the index was complete before this commit and big
 * enough; |outgrown|: the store has outgrown its segment count; |epoch|:
 * the index's epoch this commit saw. */
static void bulk_committed(struct vg_store *st, struct wtx *w, bool deferred, bool valid_before,
			   bool outgrown, uint64_t epoch)
{
	if (!st->bulk_started) {
		st->bulk_started = true;
		st->acc_ok = true;
	} else if (w->counter != st->bulk_counter + 1) {
		st->acc_ok = false; /* another writer in between */
	}
	st->bulk_counter = w->counter;
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
	if (st->acc_ok && st->acc.n + w->points.n > PT_ACC_MAX)
		st->acc_ok = false;
	for (size_t i = 0; st->acc_ok && i < w->points.n; i++) {
		const struct pt_change *c = &w->points.v[i];
		if (pt_note(&st->acc, c->key, c->klen, c->rec, c->rlen) < 0)
			st->acc_ok = false;
	}
	if (!st->acc_ok)
		pt_pending_free(&st->acc);
}

/* pt_merge_acc merges the operation's changes into the index, PT_CHUNK
 * segments a transaction, and marks it valid in the last one. Each bumps
 * the epoch; -EAGAIN when another writer committed since the operation's
 * last commit, or another rebuild or merge ran, or the segment count
 * changed or no longer fits. */
static int pt_merge_acc(struct vg_store *st)
{
	pt_sort(&st->acc);
	const struct pt_change *v = st->acc.v, *end = v + st->acc.n;
	int grows = 0;
	unsigned lg = 0;
	for (uint32_t lo = 0;;) {
		MDB_txn *txn;
		int rc = txn_begin(st, 0, &txn);
		if (rc)
			return rc;
		uint64_t counter, e = 0, l = 0;
		rc = meta_get_u64(st, txn, "counter", &counter);
		if (!rc)
			rc = epoch_get(st, txn, &e);
		if (!rc && (counter != st->bulk_counter || e != st->bulk_epoch))
			rc = -EAGAIN;
		if (!rc)
			rc = meta_get_u64(st, txn, "points_lg", &l);
		if (!rc && lo == 0) {
			lg = (unsigned)l;
			if (lg > PT_MAX_LG || pt_lg_for(cert_count(st, txn)) > lg)
				rc = -EAGAIN;
		} else if (!rc && l != lg) {
			rc = -EAGAIN;
		}
		bool last = lo + PT_CHUNK >= ((uint32_t)1 << lg);
		const struct pt_change *x = v;
		while (x < end && (last || pt_segment(x->h, lg) < lo + PT_CHUNK))
			x++;
		if (!rc)
			rc = meta_put_u64(st, txn, "points_epoch", e + 1, 8);
		if (!rc)
			rc = flush_sorted(st, txn, v, (size_t)(x - v), false, lg);
		if (!rc && last)
			rc = meta_put_u64(st, txn, "points", 1, 4);
		rc = chunk_end(st, txn, rc, &grows);
		if (rc == 1)
			continue; /* the map grew: this chunk again */
		if (rc)
			return rc;
		st->bulk_epoch = e + 1;
		if (last)
			return 0;
		v = x;
		lo += PT_CHUNK;
	}
}

/* bulk_end brings the point index up to date after a bulk operation. */
static int bulk_end(struct vg_store *st, int rc)
{
	st->bulk = false;
	if (!st->deferred)
		return rc;
	st->deferred = false;
	int prc = st->acc_ok ? pt_merge_acc(st) : -EAGAIN;
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

/* grow_map doubles the map after MDB_MAP_FULL; no transaction may be open. */
static int grow_map(struct vg_store *st)
{
	MDB_envinfo ei;
	mdb_env_info(st->env, &ei);
	size_t next = ei.me_mapsize * 2;
	int rc = mdb_env_set_mapsize(st->env, next);
	if (rc)
		return lmdb_err(rc, "set_mapsize");
	log_info("event=store_map_grown path=%s map_bytes=%zu", st->path, next);
	return 0;
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
	dst->missing += src->missing;
	dst->commits += src->commits;
}

static bool is_hold(const struct vg_cert *c)
{
	return c->status == VG_STATUS_REVOKED && c->reason == VG_REASON_CERTIFICATE_HOLD;
}

/* merge decides what (|have|, present or not) becomes when |want| arrives,
 * under the rules of vg_store_add (|sync|: a record of the CA's issuance) and
 * vg_store_revoke (an operator's revocation, which says nothing about
 * issuance). It writes the result to |out| and returns the change op
 * (VG_CHANGE_*), or 0 when nothing changes. */
static int merge(const struct vg_cert *have, const struct vg_cert *want, bool sync,
		 struct vg_cert *out, struct vg_write_result *r)
{
	if (!have) {
		*out = *want;
		out->flags &= (uint8_t)~VG_CERT_LIFT_HOLD;
		if (!sync) {
			/* Revoked by serial, never seen as issued (an investigation
			 * may name certificates the CA's records missed). */
			out->flags |= VG_CERT_NOT_ISSUED;
			r->missing++;
		}
		if (want->status == VG_STATUS_REVOKED) {
			r->revoked++;
			return VG_CHANGE_REVOKE;
		}
		r->added++;
		return VG_CHANGE_ADD;
	}
	*out = *have;
	/* Dates are learned, never forgotten. */
	bool dates = false;
	if ((want->flags & VG_CERT_HAS_NOT_BEFORE) &&
	    (!(have->flags & VG_CERT_HAS_NOT_BEFORE) || have->not_before != want->not_before)) {
		out->flags |= VG_CERT_HAS_NOT_BEFORE;
		out->not_before = want->not_before;
		dates = true;
	}
	if ((want->flags & VG_CERT_HAS_NOT_AFTER) &&
	    (!(have->flags & VG_CERT_HAS_NOT_AFTER) || have->not_after != want->not_after)) {
		out->flags |= VG_CERT_HAS_NOT_AFTER;
		out->not_after = want->not_after;
		dates = true;
	}
	/* Seen as issued now (a record from the CA's side, not a revocation,
	 * which says nothing about issuance): no longer a serial known only
	 * from a revocation. */
	if (sync && (have->flags & VG_CERT_NOT_ISSUED)) {
		out->flags &= (uint8_t)~VG_CERT_NOT_ISSUED;
		dates = true;
	}

	if (want->status == VG_STATUS_GOOD) {
		if ((want->flags & VG_CERT_LIFT_HOLD) && is_hold(have) &&
		    !(have->flags & VG_CERT_NOT_ISSUED)) {
			/* The CA's database lifted the hold (removeFromCRL). */
			out->status = VG_STATUS_GOOD;
			out->reason = VG_REASON_NONE;
			out->revoked_at = 0;
			out->invalidity_date = 0;
			out->flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
			out->flags |= VG_CERT_RELEASED;
			r->released++;
			return VG_CHANGE_RELEASE;
		}
		if (have->status == VG_STATUS_REVOKED)
			r->kept++; /* a revoked certificate stays revoked */
		if (dates) {
			r->updated++;
			return VG_CHANGE_UPDATE;
		}
		if (have->status != VG_STATUS_REVOKED)
			r->unchanged++;
		return 0;
	}

	/* want revoked */
	bool change = false;
	if (sync && have->status == VG_STATUS_GOOD && (have->flags & VG_CERT_RELEASED) &&
	    want->reason == VG_REASON_CERTIFICATE_HOLD) {
		/* The hold the CA's database still records was lifted here since:
		 * a sync must not put it back. */
		if (dates) {
			r->updated++;
			return VG_CHANGE_UPDATE;
		}
		r->unchanged++;
		return 0;
	}
	if (have->status == VG_STATUS_GOOD) {
		change = true;
		out->status = VG_STATUS_REVOKED;
		out->revoked_at = want->revoked_at;
		out->reason = want->reason;
	} else if (is_hold(have) && want->reason != VG_REASON_CERTIFICATE_HOLD) {
		/* certificateHold replaced by a final reason (RFC 5280 §5.3.1). */
		change = true;
		out->revoked_at = want->revoked_at;
		out->reason = want->reason;
	} else if (want->reason == VG_REASON_KEY_COMPROMISE &&
		   have->reason != VG_REASON_KEY_COMPROMISE && !is_hold(have)) {
		/* Raised to keyCompromise; the original revocation time stands. */
		change = true;
		out->reason = VG_REASON_KEY_COMPROMISE;
	}
	if (change) {
		out->flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
		out->invalidity_date = 0;
		if (want->flags & VG_CERT_HAS_INVALIDITY) {
			out->flags |= VG_CERT_HAS_INVALIDITY;
			out->invalidity_date = want->invalidity_date;
		} else if (have->status == VG_STATUS_REVOKED &&
			   (have->flags & VG_CERT_HAS_INVALIDITY)) {
			out->flags |= VG_CERT_HAS_INVALIDITY;
			out->invalidity_date = have->invalidity_date;
		}
		r->revoked++;
		return VG_CHANGE_REVOKE;
	}
	if (have->reason == want->reason && (want->flags & VG_CERT_HAS_INVALIDITY) &&
	    !(have->flags & VG_CERT_HAS_INVALIDITY)) {
		/* The compromise time learned later: the same revocation, more precise. */
		out->flags |= VG_CERT_HAS_INVALIDITY;
		out->invalidity_date = want->invalidity_date;
		r->revoked++;
		return VG_CHANGE_REVOKE;
	}
	if (dates) {
		r->updated++;
		return VG_CHANGE_UPDATE;
	}
	r->unchanged++;
	return 0;
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
		return lmdb_err(rc, "put");
	rc = pt_note(&w->points, kb, key.mv_size, vb, val.mv_size);
	if (rc)
		return rc;
	if (c->status == VG_STATUS_REVOKED) {
		rc = mdb_put(w->txn, st->revoked, &key, &val, 0);
		if (rc)
			return lmdb_err(rc, "put_revoked");
	} else if (old && old->status == VG_STATUS_REVOKED) {
		rc = mdb_del(w->txn, st->revoked, &key, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return lmdb_err(rc, "del_revoked");
	}
	if (!old)
		w->ca_state.n_certs++;
	bool was_rev = old && old->status == VG_STATUS_REVOKED;
	bool is_rev = c->status == VG_STATUS_REVOKED;
	if (!was_rev && is_rev)
		w->ca_state.n_revoked++;
	if (was_rev && !is_rev)
		w->ca_state.n_revoked--;
	if (old && is_hold(old))
		w->ca_state.n_hold--;
	if (is_hold(c))
		w->ca_state.n_hold++;
	w->ca_dirty = true;
	w->changed++;
	return 0;
}

/* apply merges |want| into the store for serial |s|; |sync| when it comes
 * from the CA's records (vg_store_add) rather than an operator's revoke. */
static int apply(struct wtx *w, const struct vg_serial *s, const struct vg_cert *want, bool sync)
{
	struct vg_cert have, out;
	int rc = get_cert(w->st, w->txn, w->ca_state.id, s, &have);
	if (rc && rc != -ENOENT)
		return rc;
	bool exists = rc == 0;
	int op = merge(exists ? &have : NULL, want, sync, &out, &w->res);
	if (!op)
		return 0;
	rc = put_cert(w, s, exists ? &have : NULL, &out);
	if (rc)
		return rc;
	if (op == VG_CHANGE_REVOKE || op == VG_CHANGE_RELEASE)
		return log_put(w, w->ca_state.id, (uint8_t)op, s);
	note_add(w, s, (uint8_t)op);
	return 0;
}

static int cmp_items(const void *a, const void *b)
{
	const struct vg_add_item *x = a, *y = b;
	if (x->serial.len != y->serial.len)
		return x->serial.len < y->serial.len ? -1 : 1;
	return memcmp(x->serial.b, y->serial.b, x->serial.len);
}

static int cmp_serials(const void *a, const void *b)
{
	const struct vg_serial *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->b, y->b, x->len);
}

/* run_batch runs |fn| in a write transaction and commits, retrying after
 * growing the map when it fills. */
static int run_batch(struct vg_store *st, const char *ca, const char *action,
		     const struct vg_audit *who, int (*fn)(struct wtx *w, void *arg), void *arg,
		     struct vg_write_result *total)
{
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
		if (rc == -ENOSPC && map_full_seen && tries < 16) {
			map_full_seen = false;
			if (grow_map(st) == 0)
				continue;
		}
		if (rc == 0)
			res_add(total, &w.res);
		if (rc == 0 && w.res.commits && !st->bulk)
			(void)points_grow(st); /* logs its own failure; the data is in */
		return rc;
	}
}

struct add_batch {
	struct vg_add_item *items;
	size_t n;
};

static int add_fn(struct wtx *w, void *arg)
{
	struct add_batch *b = arg;
	for (size_t i = 0; i < b->n; i++) {
		int rc = apply(w, &b->items[i].serial, &b->items[i].cert, true);
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
	int rc = 0;
	if (n > VG_TXN_MAX_CHANGES)
		bulk_begin(st);
	for (size_t off = 0; off < n; off += VG_TXN_MAX_CHANGES) {
		size_t cnt = n - off < VG_TXN_MAX_CHANGES ? n - off : VG_TXN_MAX_CHANGES;
		struct add_batch b = {items + off, cnt};
		rc = run_batch(st, ca, "add", who, add_fn, &b, &total);
		if (rc)
			break;
		if (progress)
			progress(off + cnt, n, parg);
	}
	rc = bulk_end(st, rc);
	if (res)
		*res = total;
	return rc;
}

struct revoke_batch {
	const struct vg_serial *serials;
	size_t n;
	const struct vg_revocation *rev;
};

static void want_revoked(const struct vg_revocation *rev, struct vg_cert *want)
{
	memset(want, 0, sizeof(*want));
	want->status = VG_STATUS_REVOKED;
	want->reason = rev->reason;
	want->revoked_at = rev->revoked_at;
	if (rev->has_invalidity) {
		want->flags |= VG_CERT_HAS_INVALIDITY;
		want->invalidity_date = rev->invalidity_date;
	}
}

static int revoke_fn(struct wtx *w, void *arg)
{
	struct revoke_batch *b = arg;
	struct vg_cert want;
	want_revoked(b->rev, &want);
	for (size_t i = 0; i < b->n; i++) {
		int rc = apply(w, &b->serials[i], &want, false);
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
	if (rev->reason == VG_REASON_REMOVE_FROM_CRL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (serials[i].len == 0 || serials[i].len > VG_SERIAL_MAX)
			return -EINVAL;
	struct vg_serial *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, serials, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_serials);
	int rc = 0;
	if (n > VG_TXN_MAX_CHANGES)
		bulk_begin(st);
	for (size_t off = 0; off < n; off += VG_TXN_MAX_CHANGES) {
		size_t cnt = n - off < VG_TXN_MAX_CHANGES ? n - off : VG_TXN_MAX_CHANGES;
		struct revoke_batch b = {sorted + off, cnt, rev};
		rc = run_batch(st, ca, "revoke", who, revoke_fn, &b, &total);
		if (rc)
			break;
		if (progress)
			progress(off + cnt, n, parg);
	}
	rc = bulk_end(st, rc);
	free(sorted);
	if (res)
		*res = total;
	return rc;
}

struct window_batch {
	int64_t after, before;
	const struct vg_revocation *rev;
	struct vg_serial last; /* resume after this serial; len 0 = from the start */
	bool done;
	uint64_t scanned;
	/* What this batch reached; adopted only once it committed, since
	 * run_batch may run it again from |last| after growing the map. */
	struct vg_serial next_last;
	bool next_done;
	uint64_t next_scanned;
};

static int window_fn(struct wtx *w, void *arg)
{
	struct window_batch *b = arg;
	struct vg_cert want;
	want_revoked(b->rev, &want);
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
		return lmdb_err(rc, "cursor_open");
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
	uint64_t skipped = 0, scanned = 0;
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
		if (!(c.flags & VG_CERT_HAS_NOT_BEFORE)) {
			if (c.status == VG_STATUS_GOOD)
				skipped++;
			continue;
		}
		if (c.not_before < b->after || c.not_before >= b->before)
			continue;
		hits[nh++] = s;
		if (nh == VG_TXN_MAX_CHANGES) {
			end = false;
			break;
		}
	}
	if (rc && rc != MDB_NOTFOUND && end) {
		rc = lmdb_err(rc, "cursor_get");
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = 0;
	for (size_t i = 0; i < nh && !rc; i++)
		rc = apply(w, &hits[i], &want, false);
	if (!rc) {
		w->res.skipped += skipped;
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

int vg_store_revoke_window(struct vg_store *st, const char *ca, int64_t after, int64_t before,
			   const struct vg_revocation *rev, const struct vg_audit *who,
			   struct vg_write_result *res, vg_progress_fn progress, void *parg)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	if (rev->reason == VG_REASON_REMOVE_FROM_CRL || before <= after)
		return -EINVAL;
	struct window_batch b = {.after = after, .before = before, .rev = rev};
	int rc = 0;
	/* How many commits it takes is known only at the end: bulk from the
	 * start, which costs a single commit nothing more. */
	bulk_begin(st);
	while (!b.done) {
		rc = run_batch(st, ca, "revoke-window", who, window_fn, &b, &total);
		if (rc)
			break;
		b.last = b.next_last;
		b.done = b.next_done;
		b.scanned = b.next_scanned;
		if (progress)
			progress(b.scanned, 0, parg);
	}
	rc = bulk_end(st, rc);
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
	struct vg_cert have;
	int rc = get_cert(w->st, w->txn, w->ca_state.id, a->s, &have);
	if (rc)
		return rc;
	if (!is_hold(&have))
		return -EPERM;
	if (have.flags & VG_CERT_NOT_ISSUED) {
		/* Known only from the hold: lifting it leaves a serial the CA
		 * never issued, which is absent, never good. */
		uint8_t kb[CERT_KEY_MAX];
		MDB_val key = {cert_key(w->ca_state.id, a->s, kb), kb};
		rc = mdb_del(w->txn, w->st->certs, &key, NULL);
		if (!rc)
			rc = mdb_del(w->txn, w->st->revoked, &key, NULL);
		if (rc)
			return lmdb_err(rc, "del");
		rc = pt_note(&w->points, kb, key.mv_size, NULL, 0);
		if (rc)
			return rc;
		w->ca_state.n_certs--;
		w->ca_state.n_revoked--;
		w->ca_state.n_hold--;
		w->ca_dirty = true;
		w->changed++;
		w->res.released++;
		return log_put(w, w->ca_state.id, VG_CHANGE_RELEASE, a->s);
	}
	struct vg_cert c = have;
	c.status = VG_STATUS_GOOD;
	c.reason = VG_REASON_NONE;
	c.revoked_at = 0;
	c.flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
	c.flags |= VG_CERT_RELEASED;
	c.invalidity_date = 0;
	rc = put_cert(w, a->s, &have, &c);
	if (rc)
		return rc;
	w->res.released++;
	return log_put(w, w->ca_state.id, VG_CHANGE_RELEASE, a->s);
}

int vg_store_release(struct vg_store *st, const char *ca, const struct vg_serial *serial,
		     const struct vg_audit *who)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	struct release_arg a = {serial};
	return run_batch(st, ca, "release", who, release_fn, &a, &total);
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
	return log_put(w, w->ca_state.id, VG_CHANGE_CA, NULL);
}

int vg_store_freeze(struct vg_store *st, const char *ca, bool frozen, int64_t when,
		    const struct vg_audit *who)
{
	struct vg_write_result total;
	memset(&total, 0, sizeof(total));
	struct freeze_arg a = {frozen, when};
	return run_batch(st, ca, frozen ? "freeze" : "thaw", who, freeze_fn, &a, &total);
}
