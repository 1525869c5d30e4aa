/* SPDX-License-Identifier: Apache-2.0 */
#include "store/points.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PT_VERSION 1u
#define PT_MAX_LOG2 24u

static inline uint64_t rotl(uint64_t x, int r)
{
	return x << r | x >> (64 - r);
}

static inline uint64_t fmix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

/* MurmurHash3's 64-bit block mixing and finaliser over little-endian
 * words, written out so that the result does not depend on the host. */
uint64_t pt_hash(const uint8_t *k, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4full);
	while (n) {
		uint64_t v = 0;
		size_t m = n < 8 ? n : 8;
		for (size_t i = 0; i < m; i++)
			v |= (uint64_t)k[i] << (8 * i);
		v *= 0x87c37b91114253d5ull;
		v = rotl(v, 31);
		v *= 0x4cf5ad432745937full;
		h ^= v;
		h = rotl(h, 27) * 5 + 0x52dce729;
		k += m;
		n -= m;
	}
	return fmix(h);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* seg_parse checks a segment's header and offsets table and returns the
 * bucket count, where the entries start and how long they are. */
static int seg_parse(const uint8_t *seg, size_t len, size_t *nb, size_t *eoff, size_t *elen,
                     uint32_t *count)
{
	if (len < PT_HDR || seg[0] != PT_VERSION || seg[1] > PT_MAX_LOG2)
		return -EBADMSG;
	size_t n = (size_t)1 << seg[1];
	if ((len - PT_HDR) / 4 < n + 1)
		return -EBADMSG;
	size_t e = PT_HDR + 4 * (n + 1), el = rd32(seg + PT_HDR + 4 * n);
	if (el > len - e)
		return -EBADMSG;
	*nb = n;
	*eoff = e;
	*elen = el;
	*count = rd32(seg + 4);
	return 0;
}

static inline size_t bucket_of(uint64_t h, size_t nb)
{
	return (size_t)(h >> 20) & (nb - 1);
}

int pt_open(const uint8_t *seg, size_t len, struct pt_seg *out)
{
	size_t nb, eoff, elen;
	uint32_t count;
	if (seg_parse(seg, len, &nb, &eoff, &elen, &count) < 0)
		return -EBADMSG;
	out->p = seg;
	out->elen = (uint32_t)elen;
	out->lg = seg[1];
	return 0;
}

int pt_lookup(const struct pt_seg *s, const uint8_t *key, size_t klen, uint64_t h,
              const uint8_t **rec, size_t *rlen)
{
	size_t nb = (size_t)1 << s->lg, b = bucket_of(h, nb);
	const uint8_t *o = s->p + PT_HDR + 4 * b, *ent = s->p + PT_HDR + 4 * (nb + 1);
	size_t off = rd32(o), end = rd32(o + 4);
	if (off > end || end > s->elen)
		return -EBADMSG;
	while (off < end) {
		if (end - off < 2)
			return -EBADMSG;
		size_t kl = ent[off], rl = ent[off + 1];
		if (end - off - 2 < kl + rl)
			return -EBADMSG;
		if (kl == klen && memcmp(ent + off + 2, key, klen) == 0) {
			*rec = ent + off + 2 + kl;
			*rlen = rl;
			return 1;
		}
		off += 2 + kl + rl;
	}
	return 0;
}

int pt_find(const uint8_t *seg, size_t len, const uint8_t *key, size_t klen, uint64_t h,
            const uint8_t **rec, size_t *rlen)
{
	struct pt_seg s;
	if (pt_open(seg, len, &s) < 0)
		return -EBADMSG;
	return pt_lookup(&s, key, klen, h, rec, rlen);
}

#define PT_BLOCK 65536u

struct pt_block {
	struct pt_block *next;
	size_t used;
	uint8_t b[PT_BLOCK];
};

static uint8_t *arena_alloc(struct pt_pending *p, size_t n)
{
	struct pt_block *a = p->arena;
	if (!a || PT_BLOCK - a->used < n) {
		if (!(a = malloc(sizeof(*a))))
			return NULL;
		a->next = p->arena;
		a->used = 0;
		p->arena = a;
	}
	uint8_t *r = a->b + a->used;
	a->used += n;
	return r;
}

int pt_note_ref(struct pt_pending *p, const uint8_t *key, size_t klen, const uint8_t *rec,
                size_t rlen)
{
	if (klen == 0 || klen > CERT_KEY_MAX || rlen > REC_MAX)
		return -EINVAL;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct pt_change *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	struct pt_change *c = &p->v[p->n];
	c->h = pt_hash(key, klen);
	c->key = key;
	c->rec = rec;
	c->order = (uint32_t)p->n;
	c->klen = (uint8_t)klen;
	c->rlen = (uint8_t)rlen;
	p->n++;
	return 0;
}

int pt_note(struct pt_pending *p, const uint8_t *key, size_t klen, const uint8_t *rec, size_t rlen)
{
	if (klen == 0 || klen > CERT_KEY_MAX || rlen > REC_MAX)
		return -EINVAL;
	uint8_t *b = arena_alloc(p, klen + rlen);
	if (!b)
		return -ENOMEM;
	memcpy(b, key, klen);
	if (rlen)
		memcpy(b + klen, rec, rlen);
	return pt_note_ref(p, b, klen, b + klen, rlen);
}

void pt_pending_free(struct pt_pending *p)
{
	while (p->arena) {
		struct pt_block *a = p->arena;
		p->arena = a->next;
		free(a);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	if (al != bl)
		return al < bl ? -1 : 1;
	return memcmp(a, b, al);
}

static int change_cmp(const void *x, const void *y)
{
	const struct pt_change *a = x, *b = y;
	if (a->h != b->h)
		return a->h < b->h ? -1 : 1;
	int c = key_cmp(a->key, a->klen, b->key, b->klen);
	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

void pt_sort(struct pt_pending *p)
{
	if (p->n < 2)
		return;
	qsort(p->v, p->n, sizeof(*p->v), change_cmp);
	size_t o = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (i + 1 < p->n &&
		    key_cmp(p->v[i].key, p->v[i].klen, p->v[i + 1].key, p->v[i + 1].klen) == 0)
			continue; /* a later change of the same key follows */
		p->v[o++] = p->v[i];
	}
	p->n = o;
}

int pt_group(struct pt_pending *p, unsigned lg)
{
	if (p->n < 2)
		return 0;
	size_t nseg = (size_t)1 << lg;
	size_t *at = calloc(nseg + 1, sizeof(*at));
	struct pt_change *v = malloc(p->n * sizeof(*v));
	if (!at || !v) {
		free(at);
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->n; i++)
		at[pt_segment(p->v[i].h, lg) + 1]++;
	for (size_t s = 0; s < nseg; s++)
		at[s + 1] += at[s];
	for (size_t i = 0; i < p->n; i++)
		v[at[pt_segment(p->v[i].h, lg)]++] = p->v[i];
	free(at);
	free(p->v);
	p->v = v;
	p->cap = p->n;
	return 0;
}

/* changed tells whether |key| (hash |h|) is among the sorted changes |c|. */
static bool changed(const struct pt_change *c, size_t n, uint64_t h, const uint8_t *key,
                    size_t klen)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = c[mid].h != h ? (c[mid].h < h ? -1 : 1)
		                      : key_cmp(c[mid].key, c[mid].klen, key, klen);
		if (r == 0)
			return true;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

struct ent {
	const uint8_t *key, *rec;
	uint64_t h;
	uint8_t klen, rlen;
	uint32_t bucket;
};

int pt_rebuild(const uint8_t *old, size_t olen, const struct pt_change *c, size_t n, uint8_t **out,
               size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	size_t onb = 0, oeoff = 0, oelen = 0;
	uint32_t ocount = 0;
	if (olen && seg_parse(old, olen, &onb, &oeoff, &oelen, &ocount) < 0)
		return -EBADMSG;
	if (ocount > oelen / 3)
		return -EBADMSG; /* an entry takes at least three octets */
	struct ent *v = malloc(((size_t)ocount + n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t count = 0, bytes = 0, off = 0;
	const uint8_t *oent = old ? old + oeoff : NULL; /* no offset on NULL (UB) */
	for (uint32_t k = 0; k < ocount; k++) {
		if (oelen - off < 2)
			goto bad;
		size_t kl = oent[off], rl = oent[off + 1];
		if (kl == 0 || oelen - off - 2 < kl + rl)
			goto bad;
		uint64_t h = pt_hash(oent + off + 2, kl);
		if (!changed(c, n, h, oent + off + 2, kl)) {
			v[count++] = (struct ent){oent + off + 2, oent + off + 2 + kl, h,
			                          (uint8_t)kl,    (uint8_t)rl,         0};
			bytes += 2 + kl + rl;
		}
		off += 2 + kl + rl;
	}
	for (size_t k = 0; k < n; k++) {
		if (c[k].rlen) {
			v[count++] =
			        (struct ent){c[k].key, c[k].rec, c[k].h, c[k].klen, c[k].rlen, 0};
			bytes += 2u + c[k].klen + c[k].rlen;
		}
	}
	if (count == 0) {
		free(v);
		return 0;
	}
	unsigned lg = 0;
	while (((size_t)4 << lg) < count)
		lg++;
	if (lg > PT_MAX_LOG2 || bytes > UINT32_MAX) {
		free(v);
		return -EFBIG;
	}
	size_t nb = (size_t)1 << lg, eoff = PT_HDR + 4 * (nb + 1), len = eoff + bytes;
	if (len < PT_MIN_VALUE)
		len = PT_MIN_VALUE;
	uint8_t *seg = calloc(1, len);
	uint32_t *at = calloc(nb + 1, sizeof(*at));
	if (!seg || !at) {
		free(seg);
		free(at);
		free(v);
		return -ENOMEM;
	}
	/* A counting sort by bucket: sizes, then starts, then placement. */
	for (size_t k = 0; k < count; k++) {
		v[k].bucket = (uint32_t)bucket_of(v[k].h, nb);
		at[v[k].bucket + 1] += 2u + v[k].klen + v[k].rlen;
	}
	for (size_t b = 0; b < nb; b++)
		at[b + 1] += at[b];
	seg[0] = PT_VERSION;
	seg[1] = (uint8_t)lg;
	wr32(seg + 4, (uint32_t)count);
	for (size_t b = 0; b <= nb; b++)
		wr32(seg + PT_HDR + 4 * b, at[b]);
	for (size_t k = 0; k < count; k++) {
		uint8_t *e = seg + eoff + at[v[k].bucket];
		e[0] = v[k].klen;
		e[1] = v[k].rlen;
		memcpy(e + 2, v[k].key, v[k].klen);
		memcpy(e + 2 + v[k].klen, v[k].rec, v[k].rlen);
		at[v[k].bucket] += 2u + v[k].klen + v[k].rlen;
	}
	free(at);
	free(v);
	*out = seg;
	*outlen = len;
	return 0;
bad:
	free(v);
	return -EBADMSG;
}
