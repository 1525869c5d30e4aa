/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The cache of signed answers (cache.c), shared by the workers and read
 * without locks: entries are immutable once published and freed only after
 * every worker has passed a quiescent point (RCU with epochs).
 *
 * An entry holds the answer's DER and its validity, nothing of HTTP. The
 * layer that serves answers keeps its own note with each entry (routes.c:
 * the ETag and the header text that do not change until nextUpdate), made
 * once per entry by the function it gives cache_set_note, so that a cached
 * answer is served without hashing or formatting dates.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The bytes of an entry's note. */
#define CACHE_NOTE_MAX 208

struct centry;
/* A cache_note_fn writes the note of |e| (whose fields and DER are set)
 * into |note|; it runs outside the cache's lock, before |e| is published. */
typedef void (*cache_note_fn)(const struct centry *e, uint8_t note[CACHE_NOTE_MAX]);
/* cache_set_note sets the function that makes each entry's note (none: the
 * note stays zero). Set once at start, before any answer is cached. */
void cache_set_note(cache_note_fn fn);

struct centry {
	_Atomic(struct centry *) hnext; /* (CA, serial) chain, read without lock */
	_Atomic(struct centry *) rnext; /* raw request chain, read without lock */
	struct centry *prev, *next;     /* insertion order; the limbo list once retired */
	uint64_t retired;               /* epoch of unlinking */
	uint32_t hash, rhash;
	uint32_t ca_id;
	struct vg_serial serial;
	uint8_t cr; /* enum cert_result */
	int slot;
	/* The answer's validity, as ocsp_build wrote it (producedAt, thisUpdate,
	 * nextUpdate), and when it is signed again. */
	int64_t produced_at, this_update, next_update, refresh_at;
	/* The note of the layer above (cache_set_note), made once when the entry
	 * is published: opaque to the cache and to ocsp.c. */
	_Alignas(8) uint8_t note[CACHE_NOTE_MAX];
	uint32_t certid_len, der_len, req_len;
	uint8_t data[]; /* certid || der || request */
};

int cache_init(size_t max_entries, int nworkers);
void cache_destroy(void);
/* cache_get finds the answer for a CertID, without lock. The entry stays valid
 * until the calling worker's next cache_quiescent. */
const struct centry *cache_get(uint32_t ca_id, const struct vg_serial *serial,
                               const uint8_t *certid, size_t certid_len, int64_t now);
/* cache_get_stale is cache_get past the refresh point: the answer while it is
 * still valid (before its nextUpdate), for when a new signature fails. */
const struct centry *cache_get_stale(uint32_t ca_id, const struct vg_serial *serial,
                                     const uint8_t *certid, size_t certid_len, int64_t now);
/* cache_get_raw finds the answer to the exact request bytes |req|, without
 * lock and without parsing them (the same lifetime as cache_get). */
const struct centry *cache_get_raw(const uint8_t *req, size_t len, int64_t now);
/* cache_der returns the answer's DER (e->der_len bytes). */
static inline const uint8_t *cache_der(const struct centry *e)
{
	return e->data + e->certid_len;
}
/* cache_put publishes a copy of |tmpl| with |certid|, |der| and the request
 * |req| (tmpl->req_len bytes, may be 0), its note made by the function given
 * to cache_set_note, unless |snapshot| (the store counter the status was read
 * at) is older than the changes already applied. It returns the entry
 * published (valid as cache_get's) or NULL. */
const struct centry *cache_put(uint64_t snapshot, const struct centry *tmpl, const uint8_t *certid,
                               const uint8_t *der, const uint8_t *req);
/* cache_quiescent marks that |worker| holds no entry; cache_offline that it
 * never will again. */
void cache_quiescent(int worker);
void cache_offline(int worker);
/* cache_apply_changes drops the answers the store's change log names up to
 * |counter| (read through |txn|). */
int cache_apply_changes(struct vg_txn *txn, uint64_t counter);
void cache_clear(void);
/* cache_reset clears the cache and forgets the counter it followed: the
 * store was reopened (storewatch.h). */
void cache_reset(void);
/* cache_sweep drops entries past their nextUpdate and returns the earliest
 * nextUpdate of the rest (0 when empty). */
int64_t cache_sweep(int64_t now, size_t *count);
/* The most entries a bucket chain holds (by key or by request bytes): an
 * insert into a full chain evicts its oldest entry, and readers stop there. */
#define CACHE_CHAIN_MAX 8
/* For tests: the longest chain now; the bucket hash of (|ca_id|, |serial|)
 * under this cache's random key; SipHash-2-4 of |in| under |key|. */
size_t cache_chain_max(void);
uint32_t cache_key_hash(uint32_t ca_id, const struct vg_serial *serial);
uint64_t cache_siphash24(const uint8_t key[16], const uint8_t *in, size_t len);
