/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The data file, before LMDB maps it.
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
#include "store/internal.h"

#include <fcntl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* datafile_check refuses a data file shorter than its newest meta page
 * says it is in use (-EUCLEAN, with the sizes in |expected| and |found|, and
 * that meta's transaction in |txnid|).
 * A file it cannot judge (not LMDB's, or too small to hold its two meta
 * pages) is left to LMDB, which refuses it without mapping it. */
int datafile_check(const char *datafile, uint64_t *expected, uint64_t *found, uint64_t *txnid)
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
