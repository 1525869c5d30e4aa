/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the point index's segments (store/points.c), without LMDB:
 * a model of the index as an array of segment values, driven through
 * pt_note / pt_sort / pt_rebuild as the store's pt_flush drives them, and
 * checked key by key with pt_find; then malformed segments, which must be
 * refused, never read out of bounds (the ASan build checks that).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/points.h"

/* The model's segment count: 2^MODEL_LG, as the store uses for about four
 * million certificates. */
#define MODEL_LG 12u
#define MODEL_SEGS (1u << MODEL_LG)

struct model {
	uint8_t *seg[MODEL_SEGS];
	size_t len[MODEL_SEGS];
};

static void model_free(struct model *m)
{
	for (size_t i = 0; i < MODEL_SEGS; i++)
		free(m->seg[i]);
	memset(m, 0, sizeof(*m));
}

/* flush applies |p| as the store's pt_flush does. */
static void flush(struct model *m, struct pt_pending *p)
{
	pt_sort(p);
	for (size_t i = 0, j; i < p->n; i = j) {
		uint32_t s = pt_segment(p->v[i].h, MODEL_LG);
		for (j = i + 1; j < p->n && pt_segment(p->v[j].h, MODEL_LG) == s; j++)
			;
		uint8_t *nv;
		size_t nlen;
		assert_int_equal(pt_rebuild(m->seg[s], m->len[s], &p->v[i], j - i, &nv, &nlen), 0);
		free(m->seg[s]);
		m->seg[s] = nv;
		m->len[s] = nlen;
		if (nv)
			assert_true(nlen >= PT_MIN_VALUE);
	}
	p->n = 0;
}

static int find(const struct model *m, const uint8_t *key, size_t klen, const uint8_t **rec,
                size_t *rlen)
{
	uint64_t h = pt_hash(key, klen);
	uint32_t s = pt_segment(h, MODEL_LG);
	if (!m->seg[s])
		return 0;
	return pt_find(m->seg[s], m->len[s], key, klen, h, rec, rlen);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

#define NKEYS 20000

struct kv {
	uint8_t key[CERT_KEY_MAX], rec[REC_MAX];
	uint8_t klen, rlen; /* rlen 0: absent */
};

static void random_key(struct kv *k, uint32_t i)
{
	/* cert_key's shape: ca id, length, serial; lengths 1 to 20. */
	k->key[0] = 0x12;
	k->key[1] = 0x34;
	k->key[2] = 0x56;
	k->key[3] = (uint8_t)(i % 3);
	uint8_t n = (uint8_t)(1 + i % 20);
	k->key[4] = n;
	for (uint8_t b = 0; b < n; b++)
		k->key[5 + b] = (uint8_t)rnd();
	k->key[5] = (uint8_t)(i >> 8) | 1; /* distinct and no leading zero */
	if (n > 1)
		k->key[6] = (uint8_t)i;
	k->klen = (uint8_t)(5 + n);
}

static void random_rec(struct kv *k)
{
	k->rlen = (uint8_t)(4 + rnd() % (REC_MAX - 3));
	for (uint8_t b = 0; b < k->rlen; b++)
		k->rec[b] = (uint8_t)rnd();
}

static void check_all(const struct model *m, const struct kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *rec = NULL;
		size_t rlen = 0;
		int rc = find(m, kv[i].key, kv[i].klen, &rec, &rlen);
		if (!kv[i].rlen) {
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, 1);
		assert_int_equal(rlen, kv[i].rlen);
		assert_memory_equal(rec, kv[i].rec, rlen);
	}
}

static void test_model(void **state)
{
	(void)state;
	struct model m = {0};
	struct pt_pending p = {0};
	struct kv *kv = calloc(NKEYS, sizeof(*kv));
	/* Duplicate keys are impossible by construction: byte 5/6 carry |i|
	 * for keys of two or more octets, and one-octet keys differ in the CA
	 * byte or are the same key only once per 3 * 256 values of |i|. */
	for (uint32_t i = 0; i < NKEYS; i++)
		random_key(&kv[i], i);
	for (uint32_t i = 0; i < NKEYS; i++)
		for (uint32_t j = 0; j < i && kv[i].klen == 6; j++)
			if (kv[j].klen == 6 && memcmp(kv[i].key, kv[j].key, 6) == 0)
				kv[i].klen = 0;

	/* Round 1: add everything in several commits. */
	for (uint32_t i = 0; i < NKEYS; i++) {
		if (!kv[i].klen)
			continue;
		random_rec(&kv[i]);
		assert_int_equal(pt_note(&p, kv[i].key, kv[i].klen, kv[i].rec, kv[i].rlen), 0);
		if (i % 7000 == 6999)
			flush(&m, &p);
	}
	flush(&m, &p);
	check_all(&m, kv, NKEYS);

	/* Round 2: change, delete, re-add; several changes of one key in one
	 * commit, where the last one wins. */
	for (uint32_t i = 0; i < NKEYS; i++) {
		if (!kv[i].klen)
			continue;
		switch (rnd() % 4) {
		case 0:
			break;
		case 1:
			kv[i].rlen = 0;
			assert_int_equal(pt_note(&p, kv[i].key, kv[i].klen, NULL, 0), 0);
			break;
		case 2:
			random_rec(&kv[i]);
			assert_int_equal(pt_note(&p, kv[i].key, kv[i].klen, kv[i].rec, kv[i].rlen),
			                 0);
			break;
		case 3:
			assert_int_equal(pt_note(&p, kv[i].key, kv[i].klen, NULL, 0), 0);
			random_rec(&kv[i]);
			assert_int_equal(pt_note(&p, kv[i].key, kv[i].klen, kv[i].rec, kv[i].rlen),
			                 0);
			break;
		}
	}
	flush(&m, &p);
	check_all(&m, kv, NKEYS);

	/* Round 3: delete everything: every segment goes away. */
	for (uint32_t i = 0; i < NKEYS; i++) {
		if (kv[i].klen && kv[i].rlen)
			assert_int_equal(pt_note(&p, kv[i].key, kv[i].klen, NULL, 0), 0);
		kv[i].rlen = 0;
	}
	flush(&m, &p);
	for (size_t s = 0; s < MODEL_SEGS; s++)
		assert_null(m.seg[s]);
	check_all(&m, kv, NKEYS);
	pt_pending_free(&p);
	model_free(&m);
	free(kv);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct pt_pending p = {0};
	uint8_t key[CERT_KEY_MAX + 1] = {1, 2, 3, 4, 1, 9}, rec[REC_MAX + 1] = {1, 0, 0xff, 0};
	assert_int_equal(pt_note(&p, key, 0, rec, 4), -EINVAL);
	assert_int_equal(pt_note(&p, key, sizeof(key), rec, 4), -EINVAL);
	assert_int_equal(pt_note(&p, key, 6, rec, sizeof(rec)), -EINVAL);

	/* A segment of three keys, then every truncation and every one-octet
	 * change of it: refused or answered, never read out of bounds. */
	for (uint8_t i = 0; i < 3; i++) {
		key[5] = (uint8_t)(9 + i);
		assert_int_equal(pt_note(&p, key, 6, rec, 4), 0);
	}
	pt_sort(&p);
	uint8_t *seg;
	size_t len;
	assert_int_equal(pt_rebuild(NULL, 0, p.v, p.n, &seg, &len), 0);
	uint64_t h = p.v[0].h;
	const uint8_t *r;
	size_t rl;
	assert_int_equal(pt_find(seg, len, p.v[0].key, p.v[0].klen, h, &r, &rl), 1);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *t = malloc(cut ? cut : 1);
		memcpy(t, seg, cut);
		int rc = pt_find(t, cut, p.v[0].key, p.v[0].klen, h, &r, &rl);
		assert_true(rc == -EBADMSG || rc == 0 || rc == 1);
		uint8_t *nv;
		size_t nl;
		rc = pt_rebuild(t, cut, p.v, 1, &nv, &nl);
		assert_true(rc == -EBADMSG || rc == 0);
		free(nv);
		free(t);
	}
	for (size_t at = 0; at < 64 + 3 * 12; at++) {
		for (int bit = 0; bit < 8; bit++) {
			seg[at] ^= (uint8_t)(1u << bit);
			int rc = pt_find(seg, len, p.v[0].key, p.v[0].klen, h, &r, &rl);
			assert_true(rc == -EBADMSG || rc == 0 || rc == 1);
			uint8_t *nv;
			size_t nl;
			rc = pt_rebuild(seg, len, p.v + 1, 1, &nv, &nl);
			assert_true(rc == -EBADMSG || rc == 0 || rc == -ENOMEM);
			free(nv);
			seg[at] ^= (uint8_t)(1u << bit);
		}
	}
	/* An unknown version is refused. */
	seg[0] = 2;
	assert_int_equal(pt_find(seg, len, p.v[0].key, p.v[0].klen, h, &r, &rl), -EBADMSG);
	free(seg);
	pt_pending_free(&p);
}

static void test_segment_count(void **state)
{
	(void)state;
	assert_int_equal(pt_lg_for(0), 0);
	assert_int_equal(pt_lg_for(PT_SEG_TARGET), 0);
	assert_int_equal(pt_lg_for(PT_SEG_TARGET + 1), 1);
	assert_int_equal(pt_lg_for(1000000), 10);
	assert_int_equal(pt_lg_for(UINT64_MAX), PT_MAX_LG);
	assert_int_equal(pt_segment(UINT64_MAX, 0), 0);
	assert_int_equal(pt_segment(UINT64_MAX, 1), 1);
	assert_int_equal(pt_segment(0x8000000000000000ull, 16), 0x8000);
}

static void test_hash_is_stable(void **state)
{
	(void)state;
	/* The hash is on disk: these values must never change. */
	const uint8_t k1[] = {0, 0, 0, 1, 1, 1};
	uint8_t k2[25];
	for (int i = 0; i < 25; i++)
		k2[i] = (uint8_t)i;
	uint64_t h1 = pt_hash(k1, sizeof(k1)), h2 = pt_hash(k2, sizeof(k2));
	assert_int_not_equal(h1, h2);
	assert_int_equal(h1, pt_hash(k1, sizeof(k1)));
	assert_int_equal(h1, 0xdb449ad62191b48eull);
	assert_int_equal(h2, 0xa66c96ffc2dccce5ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_model),
	        cmocka_unit_test(test_bad_input),
	        cmocka_unit_test(test_segment_count),
	        cmocka_unit_test(test_hash_is_stable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
