/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The point index: a hashed copy of the certs database for lookups by
 * (CA, serial). Internal to store/ (and its unit and fuzz tests).
 *
 * The certs B-tree keeps keys ordered by CA and serial, which CRLs, `list`
 * and window revocation need; but a point lookup in it descends three pages
 * and binary-searches each, a chain of a dozen dependent cache misses once
 * the store outgrows the CPU caches. The point index answers the same
 * question in about two: the top |lg| bits of the key's 64-bit hash pick one
 * of 2^lg segments, and the segment is a small hash table. The store keeps
 * lg such that segments hold at most PT_SEG_TARGET entries on average,
 * rebuilding the index with twice as many segments when it grows past that.
 *
 * Each segment is one LMDB value (key: the segment number, u16 big-endian),
 * written in the same transaction as the certs it indexes. Writers collect
 * their changes during a transaction (struct pt_pending) and rewrite each
 * touched segment once, just before the commit. An operation of several
 * transactions (a large import) instead marks the index stale in each of
 * them and rebuilds it once at the end; readers use the B-tree meanwhile.
 *
 * Segment, every integer big-endian:
 *   version u8 (=1) | log2(buckets) u8 | reserved u16 | entries u32 |
 *   offsets: u32 for each bucket and one past the last |
 *   entries, grouped by bucket: key length u8 | record length u8 | key | record |
 *   zero padding up to PT_MIN_VALUE octets
 * A key's bucket is bits 20.. of its hash; there are two to four entries
 * per bucket (fewer buckets measured faster: their offsets stay in the CPU
 * caches), so a lookup reads one offset and then a run of adjacent entries.
 * Offsets count from the first entry. The padding keeps every segment in
 * LMDB's overflow pages, so that the B-tree above the segments stays a few
 * dense pages.
 *
 * The hash (pt_hash) is part of the on-disk format: changing it needs a new
 * schema version.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/record.h"

#define PT_MAX_LG 16u
#define PT_SEG_TARGET 1024u
#define PT_HDR 8u
#define PT_MIN_VALUE 2048u

uint64_t pt_hash(const uint8_t *key, size_t len);

static inline uint32_t pt_segment(uint64_t h, unsigned lg)
{
	return lg ? (uint32_t)(h >> (64 - lg)) : 0;
}

/* pt_lg_for is the segment count (log2) for |n| certificates. */
static inline unsigned pt_lg_for(uint64_t n)
{
	unsigned lg = 0;
	while (lg < PT_MAX_LG && n > (uint64_t)PT_SEG_TARGET << lg)
		lg++;
	return lg;
}

/* A segment whose header was checked: what pt_lookup needs. */
struct pt_seg {
	const uint8_t *p; /* the segment */
	uint32_t elen;    /* octets of entries */
	uint8_t lg;       /* log2(buckets) */
};

/* pt_open checks the header and offsets table of segment |seg| (|len|
 * octets, untrusted). Returns 0 or -EBADMSG. */
int pt_open(const uint8_t *seg, size_t len, struct pt_seg *out);

/* pt_lookup looks |key| (hash |h|) up in an opened segment: every offset it
 * reads is checked. Returns 1 and the record in |rec|/|rlen|, 0 when absent,
 * -EBADMSG when the segment is malformed. pt_find opens and looks up. */
int pt_lookup(const struct pt_seg *s, const uint8_t *key, size_t klen, uint64_t h,
              const uint8_t **rec, size_t *rlen);
int pt_find(const uint8_t *seg, size_t len, const uint8_t *key, size_t klen, uint64_t h,
            const uint8_t **rec, size_t *rlen);

/* One change of a write transaction: |rlen| == 0 deletes the key. The key
 * and record live in the pending set's arena (pt_note), or in the map for
 * as long as the transaction that read them (pt_note_ref). */
struct pt_change {
	uint64_t h;
	const uint8_t *key, *rec;
	uint32_t order; /* later changes of the same key win */
	uint8_t klen, rlen;
};

struct pt_pending {
	struct pt_change *v;
	size_t n, cap;
	struct pt_block *arena; /* copies made by pt_note */
};

/* pt_note records a change, copying |key| and |rec|; pt_note_ref records
 * one whose bytes stay valid until the pending set is flushed. Both return
 * 0, -EINVAL (a key or record too long), or -ENOMEM. */
int pt_note(struct pt_pending *p, const uint8_t *key, size_t klen, const uint8_t *rec, size_t rlen);
int pt_note_ref(struct pt_pending *p, const uint8_t *key, size_t klen, const uint8_t *rec,
                size_t rlen);
void pt_pending_free(struct pt_pending *p);

/* pt_sort orders |p| by hash and key, and drops every change but the last
 * of each key: for any lg, segments then run in groups, and pt_rebuild takes
 * one group. */
void pt_sort(struct pt_pending *p);

/* pt_group orders |p| by segment of 2^lg only (a counting sort, O(n)), for
 * pt_rebuild without an old segment: the changes must then be of distinct
 * keys, as a walk of the certs database gives them. Returns 0 or -ENOMEM. */
int pt_group(struct pt_pending *p, unsigned lg);

/* pt_rebuild merges |n| changes of one segment (sorted by pt_sort) into the
 * segment's old value |old| (|olen| bytes, 0 when absent) and returns the new
 * value in |*out| (malloc'd; NULL with *outlen 0 when the segment is now
 * empty). Returns 0, -ENOMEM, or -EBADMSG when |old| is malformed. */
int pt_rebuild(const uint8_t *old, size_t olen, const struct pt_change *c, size_t n, uint8_t **out,
               size_t *outlen);
