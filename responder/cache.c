/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache of signed answers, shared by all workers.
 *
 * One cache for the process, so that every worker serves the same bytes (and
 * the same ETag) for a CertID and each answer is signed once. Entries are
 * found by (CA id, serial) and CertID, and also by the exact bytes of the
 * request that produced them, so that a repeated request (the common case:
 * a client or a CDN asking again) is answered without parsing it. Readers take no
 * lock: entries are immutable once published, bucket chains are walked with
 * acquire loads, and an unlinked entry is freed only after every worker has
 * passed a quiescent point (its tick, between two callbacks) since the
 * unlinking, in the manner of RCU with epochs. Writers (insert, invalidate,
 * sweep) take one mutex; they run on misses, on store changes and once a
 * second, never on a hit.
 *
 * Floods: the (CA id, serial) hash is SipHash-2-4 under a key drawn at
 * random when the cache is made, so which serials share a bucket cannot be
 * worked out offline (an unkeyed FNV let 16,384 chosen serials pile into
 * one bucket: a hit cost 15 times as much, and every miss walked the chain
 * under the lock). Whatever the hash, no chain holds more than CACHE_CHAIN_MAX
 * entries: an insert into a full chain evicts its oldest entry, and readers
 * stop after that many.
 *
 * Staleness: entries are keyed by (CA id, serial) and each change the store
 * logs drops the entries it names. The change log is applied once for the
 * process, by whichever worker sees the new counter first. A worker whose
 * snapshot is older than the last applied change may have read a status that
 * is already stale, so its answers are not inserted.
 */
#include "responder/cache.h"
#include "common/log.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/rand.h>

#define EPOCH_IDLE UINT64_MAX

/* Per-process random keys, set while no entry exists (a hash changes with
 * them): SipHash's for key_hash, a seed for bytes_hash. */
static uint64_t hash_k0, hash_k1;
static uint64_t bytes_seed;

static struct {
	_Atomic(struct centry *) *b;
	_Atomic(struct centry *) *rb; /* by raw request bytes */
	size_t nb;                    /* power of two */
	size_t n, max;
	struct centry *head, *tail; /* insertion order, oldest first (writers only) */
	pthread_mutex_t lock;
	struct centry *limbo; /* unlinked, waiting for a grace period */
	bool have_applied;
	uint64_t applied; /* store counter whose changes are applied */
	_Atomic uint64_t epoch;
	_Atomic uint64_t *local; /* per worker: the epoch seen at its last quiescent point */
	int nworkers;
} C = {.lock = PTHREAD_MUTEX_INITIALIZER};

int cache_init(size_t max_entries, int nworkers)
{
	C.nb = 1024;
	while (C.nb < max_entries * 2)
		C.nb <<= 1;
	C.b = calloc(C.nb, sizeof(*C.b));
	C.rb = calloc(C.nb, sizeof(*C.rb));
	C.local = calloc((size_t)nworkers, sizeof(*C.local));
	if (!C.b || !C.rb || !C.local)
		return -ENOMEM;
	C.max = max_entries;
	C.nworkers = nworkers;
	/* A new key for each cache, set while no entry exists. */
	uint64_t k[3];
	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k) &&
	    RAND_bytes((unsigned char *)k, (int)sizeof(k)) != 1)
		return -EIO;
	hash_k0 = k[0];
	hash_k1 = k[1];
	bytes_seed = k[2];
	atomic_init(&C.epoch, 1);
	for (int i = 0; i < nworkers; i++)
		atomic_init(&C.local[i], EPOCH_IDLE);
	return 0;
}

static void free_list(struct centry *e)
{
	while (e) {
		struct centry *next = e->next;
		free(e);
		e = next;
	}
}

void cache_destroy(void)
{
	free_list(C.head);
	free_list(C.limbo);
	free(C.b);
	free(C.rb);
	free(C.local);
	C.b = NULL;
	C.rb = NULL;
	C.local = NULL;
	C.head = C.tail = C.limbo = NULL;
	C.n = 0;
	C.have_applied = false;
	C.applied = 0;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

/* siphash24 is SipHash-2-4 (Aumasson and Bernstein, 2012) of |in| under the
 * key (|k0|, |k1|), the key's two halves read little-endian. */
static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t m, last = (uint64_t)len << 56;
	for (; len >= 8; in += 8, len -= 8) {
		memcpy(&m, in, 8);
		m = le64toh(m);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < len; i++)
		last |= (uint64_t)in[i] << (8 * i);
	v3 ^= last;
	SIPROUND;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t cache_siphash24(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint64_t k0, k1;
	memcpy(&k0, key, 8);
	memcpy(&k1, key + 8, 8);
	return siphash24(le64toh(k0), le64toh(k1), in, len);
}

static uint32_t key_hash(uint32_t ca_id, const struct vg_serial *s)
{
	uint8_t m[4 + sizeof(s->b)];
	size_t n = s->len < sizeof(s->b) ? s->len : sizeof(s->b);
	m[0] = (uint8_t)ca_id;
	m[1] = (uint8_t)(ca_id >> 8);
	m[2] = (uint8_t)(ca_id >> 16);
	m[3] = (uint8_t)(ca_id >> 24);
	memcpy(m + 4, s->b, n);
	uint64_t h = siphash24(hash_k0, hash_k1, m, 4 + n);
	return (uint32_t)h ^ (uint32_t)(h >> 32);
}

uint32_t cache_key_hash(uint32_t ca_id, const struct vg_serial *s)
{
	return key_hash(ca_id, s);
}

/* bytes_hash hashes request bytes eight at a time (every cached answer asked
 * by its bytes runs it; byte-wise FNV was a tenth of such an answer's
 * instructions), from a per-process random seed (|bytes_seed|), so that
 * which requests share a bucket cannot be worked out offline. */
static uint32_t bytes_hash(const uint8_t *b, size_t len)
{
	uint64_t h = bytes_seed ^ (len * 0x9e3779b97f4a7c15ull);
	for (; len >= 8; b += 8, len -= 8) {
		uint64_t v;
		memcpy(&v, b, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	uint64_t v = 0;
	if (len)
		memcpy(&v, b, len);
	h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	return (uint32_t)h ^ (uint32_t)(h >> 32);
}

static bool serial_eq(const struct vg_serial *a, const struct vg_serial *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

/* reclaim frees the limbo entries no worker can still see. Lock held. */
static void reclaim(void)
{
	uint64_t min = EPOCH_IDLE;
	for (int i = 0; i < C.nworkers; i++) {
		uint64_t l = atomic_load_explicit(&C.local[i], memory_order_acquire);
		if (l < min)
			min = l;
	}
	struct centry **pp = &C.limbo;
	while (*pp) {
		struct centry *e = *pp;
		if (e->retired < min) {
			*pp = e->next;
			free(e);
		} else {
			pp = &e->next;
		}
	}
}

/* unlink_entry takes |e| out of its chain and the order list and retires it. Lock held. */
static void unlink_entry(struct centry *e)
{
	_Atomic(struct centry *) *pp = &C.b[e->hash & (C.nb - 1)];
	struct centry *cur;
	while ((cur = atomic_load_explicit(pp, memory_order_relaxed)) && cur != e)
		pp = &cur->hnext;
	if (cur)
		atomic_store_explicit(pp, atomic_load_explicit(&e->hnext, memory_order_relaxed),
		                      memory_order_release);
	if (e->req_len) {
		pp = &C.rb[e->rhash & (C.nb - 1)];
		while ((cur = atomic_load_explicit(pp, memory_order_relaxed)) && cur != e)
			pp = &cur->rnext;
		if (cur)
			atomic_store_explicit(pp,
			                      atomic_load_explicit(&e->rnext, memory_order_relaxed),
			                      memory_order_release);
	}
	if (e->prev)
		e->prev->next = e->next;
	else
		C.head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		C.tail = e->prev;
	C.n--;
	/* Readers may still hold |e|: free it once every worker moved past this epoch. */
	e->retired = atomic_fetch_add(&C.epoch, 1);
	e->next = C.limbo;
	e->prev = NULL;
	C.limbo = e;
}

void cache_quiescent(int worker)
{
	atomic_store_explicit(&C.local[worker], atomic_load(&C.epoch), memory_order_release);
	if (pthread_mutex_trylock(&C.lock) == 0) {
		if (C.limbo)
			reclaim();
		pthread_mutex_unlock(&C.lock);
	}
}

void cache_offline(int worker)
{
	atomic_store_explicit(&C.local[worker], EPOCH_IDLE, memory_order_release);
}

/* find returns the entry for (|ca_id|, |serial|, |certid|), fresh or not. */
static const struct centry *find(uint32_t ca_id, const struct vg_serial *serial,
                                 const uint8_t *certid, size_t certid_len)
{
	uint32_t h = key_hash(ca_id, serial);
	struct centry *e = atomic_load_explicit(&C.b[h & (C.nb - 1)], memory_order_acquire);
	for (int i = 0; e && i < CACHE_CHAIN_MAX;
	     e = atomic_load_explicit(&e->hnext, memory_order_acquire), i++) {
		if (e->hash == h && e->ca_id == ca_id && e->certid_len == certid_len &&
		    serial_eq(&e->serial, serial) && memcmp(e->data, certid, certid_len) == 0)
			return e;
	}
	return NULL;
}

const struct centry *cache_get(uint32_t ca_id, const struct vg_serial *serial,
                               const uint8_t *certid, size_t certid_len, int64_t now)
{
	const struct centry *e = find(ca_id, serial, certid, certid_len);
	return e && now < e->refresh_at ? e : NULL;
}

const struct centry *cache_get_stale(uint32_t ca_id, const struct vg_serial *serial,
                                     const uint8_t *certid, size_t certid_len, int64_t now)
{
	const struct centry *e = find(ca_id, serial, certid, certid_len);
	return e && now < e->next_update ? e : NULL;
}

const struct centry *cache_get_raw(const uint8_t *req, size_t len, int64_t now)
{
	uint32_t h = bytes_hash(req, len);
	struct centry *e = atomic_load_explicit(&C.rb[h & (C.nb - 1)], memory_order_acquire);
	for (int i = 0; e && i < CACHE_CHAIN_MAX;
	     e = atomic_load_explicit(&e->rnext, memory_order_acquire), i++) {
		if (e->rhash != h || e->req_len != len ||
		    memcmp(e->data + e->certid_len + e->der_len, req, len) != 0)
			continue;
		return now < e->refresh_at ? e : NULL;
	}
	return NULL;
}

/* trim_chain unlinks the oldest entries of the chain at |bucket| (by request
 * bytes when |raw|) until it has room for one more. Lock held. */
static void trim_chain(_Atomic(struct centry *) *bucket, bool raw)
{
	for (;;) {
		struct centry *e = atomic_load_explicit(bucket, memory_order_relaxed), *last = NULL;
		int n = 0;
		for (; e; n++) {
			last = e;
			e = atomic_load_explicit(raw ? &e->rnext : &e->hnext, memory_order_relaxed);
		}
		if (n < CACHE_CHAIN_MAX)
			return;
		unlink_entry(last); /* entries are pushed at the head: the last is the oldest */
	}
}

static cache_note_fn note_fn;

void cache_set_note(cache_note_fn fn)
{
	note_fn = fn;
}

const struct centry *cache_put(uint64_t snapshot, const struct centry *tmpl, const uint8_t *certid,
                               const uint8_t *der, const uint8_t *req)
{
	if (C.max == 0)
		return NULL;
	struct centry *e = malloc(sizeof(*e) + tmpl->certid_len + tmpl->der_len + tmpl->req_len);
	if (!e)
		return NULL;
	*e = *tmpl;
	e->hash = key_hash(e->ca_id, &e->serial);
	e->rhash = e->req_len ? bytes_hash(req, e->req_len) : 0;
	memcpy(e->data, certid, e->certid_len);
	memcpy(e->data + e->certid_len, der, e->der_len);
	if (e->req_len)
		memcpy(e->data + e->certid_len + e->der_len, req, e->req_len);
	memset(e->note, 0, sizeof(e->note));
	if (note_fn)
		note_fn(e, e->note);
	pthread_mutex_lock(&C.lock);
	if (!C.have_applied || snapshot < C.applied) {
		/* Read from a snapshot older than changes already applied. */
		pthread_mutex_unlock(&C.lock);
		free(e);
		return NULL;
	}
	/* Replace an older answer for the same CertID. */
	_Atomic(struct centry *) *bucket = &C.b[e->hash & (C.nb - 1)];
	struct centry *cur = atomic_load_explicit(bucket, memory_order_relaxed), *next;
	for (; cur; cur = next) {
		next = atomic_load_explicit(&cur->hnext, memory_order_relaxed);
		if (cur->hash == e->hash && cur->ca_id == e->ca_id &&
		    cur->certid_len == e->certid_len && serial_eq(&cur->serial, &e->serial) &&
		    !memcmp(cur->data, e->data, e->certid_len))
			unlink_entry(cur);
	}
	/* However the keys fall, a chain stays short. */
	trim_chain(bucket, false);
	if (e->req_len)
		trim_chain(&C.rb[e->rhash & (C.nb - 1)], true);
	while (C.n >= C.max && C.head)
		unlink_entry(C.head);
	e->prev = C.tail;
	e->next = NULL;
	if (C.tail)
		C.tail->next = e;
	else
		C.head = e;
	C.tail = e;
	C.n++;
	atomic_store_explicit(&e->hnext, atomic_load_explicit(bucket, memory_order_relaxed),
	                      memory_order_relaxed);
	atomic_store_explicit(bucket, e, memory_order_release);
	if (e->req_len) {
		/* An older entry for the same request bytes (another CertID cannot
		 * come from the same bytes) was replaced above. */
		_Atomic(struct centry *) *rbucket = &C.rb[e->rhash & (C.nb - 1)];
		atomic_store_explicit(&e->rnext,
		                      atomic_load_explicit(rbucket, memory_order_relaxed),
		                      memory_order_relaxed);
		atomic_store_explicit(rbucket, e, memory_order_release);
	}
	pthread_mutex_unlock(&C.lock);
	return e;
}

static void invalidate(uint32_t ca_id, const struct vg_serial *serial)
{
	uint32_t h = key_hash(ca_id, serial);
	struct centry *e = atomic_load_explicit(&C.b[h & (C.nb - 1)], memory_order_relaxed), *next;
	for (; e; e = next) {
		next = atomic_load_explicit(&e->hnext, memory_order_relaxed);
		if (e->hash == h && e->ca_id == ca_id && serial_eq(&e->serial, serial))
			unlink_entry(e);
	}
}

static void invalidate_ca(uint32_t ca_id)
{
	struct centry *e = C.head, *next;
	for (; e; e = next) {
		next = e->next;
		if (e->ca_id == ca_id)
			unlink_entry(e);
	}
}

static void clear_locked(void)
{
	while (C.head)
		unlink_entry(C.head);
}

void cache_reset(void)
{
	pthread_mutex_lock(&C.lock);
	clear_locked();
	C.have_applied = false;
	pthread_mutex_unlock(&C.lock);
}

void cache_clear(void)
{
	pthread_mutex_lock(&C.lock);
	clear_locked();
	pthread_mutex_unlock(&C.lock);
}

static int on_change(const struct vg_change *ch, void *arg)
{
	(void)arg;
	if (ch->op == VG_CHANGE_CA || ch->serial.len == 0)
		invalidate_ca(ch->ca_id);
	else
		invalidate(ch->ca_id, &ch->serial);
	return 0;
}

int cache_apply_changes(struct vg_txn *txn, uint64_t counter)
{
	int rc = 0;
	pthread_mutex_lock(&C.lock);
	if (!C.have_applied) {
		/* Nothing cached was read before this snapshot. */
		clear_locked();
		C.applied = counter;
		C.have_applied = true;
	} else if (counter > C.applied) {
		rc = vg_store_changes_foreach(txn, C.applied, on_change, NULL);
		if (rc == -ERANGE) {
			/* Pruned past where the cache stood: anything may have changed. */
			log_info("event=change_log_pruned since=%llu action=cache_cleared",
			         (unsigned long long)C.applied);
			clear_locked();
			rc = 0;
		} else if (rc < 0) {
			log_warn("event=change_log_unreadable error=%d action=cache_cleared", rc);
			clear_locked();
		}
		C.applied = counter;
	} else if (counter < C.applied) {
		/* The counter went back: another store (a restore) is read now. */
		log_warn("event=store_counter_went_back from=%llu to=%llu action=cache_cleared",
		         (unsigned long long)C.applied, (unsigned long long)counter);
		clear_locked();
		C.applied = counter;
	}
	pthread_mutex_unlock(&C.lock);
	return rc;
}

size_t cache_chain_max(void)
{
	size_t max = 0;
	pthread_mutex_lock(&C.lock);
	for (size_t i = 0; C.b && i < C.nb; i++) {
		for (int raw = 0; raw < 2; raw++) {
			size_t n = 0;
			struct centry *e = atomic_load_explicit(raw ? &C.rb[i] : &C.b[i],
			                                        memory_order_relaxed);
			for (; e; n++)
				e = atomic_load_explicit(raw ? &e->rnext : &e->hnext,
				                         memory_order_relaxed);
			if (n > max)
				max = n;
		}
	}
	pthread_mutex_unlock(&C.lock);
	return max;
}

int64_t cache_sweep(int64_t now, size_t *count)
{
	int64_t oldest = 0;
	pthread_mutex_lock(&C.lock);
	struct centry *e = C.head, *next;
	for (; e; e = next) {
		next = e->next;
		/* Kept past the refresh point until nextUpdate: the answer to
		 * serve while the signer fails (cache_get_stale). */
		if (now >= e->next_update) {
			unlink_entry(e);
			continue;
		}
		if (!oldest || e->next_update < oldest)
			oldest = e->next_update;
	}
	*count = C.n;
	reclaim();
	pthread_mutex_unlock(&C.lock);
	return oldest;
}
