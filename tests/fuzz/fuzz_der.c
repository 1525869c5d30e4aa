/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the bounded DER reader of common/der.h (struct vg_cbs). The
 * input is walked as a tree of elements, without recursion. Every element
 * the reader accepts must be read the same way by OpenSSL's ASN1_get_object
 * (tag, class, constructed bit, header and content lengths), its header must
 * be what the DER writer writes for it (DER has one encoding of a length),
 * a header-only read must agree with the whole-element read, and an INTEGER
 * read as a uint64 must have OpenSSL's value. Nothing may be read outside
 * the input (ASan), and a view never grows. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>

#include "common/der.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Constructed elements deeper than this are not descended into. */
#define MAX_DEPTH 64
/* Elements looked at per input, to keep an input's time bounded. */
#define MAX_ELEMENTS 4096

static void check_element(const struct vg_cbs *whole, unsigned tag, size_t hl)
{
	const uint8_t *p = vg_cbs_data(whole);
	size_t n = vg_cbs_len(whole), clen = n - hl;
	/* OpenSSL agrees on what the element is. */
	const unsigned char *q = p;
	long len;
	int t, cls;
	int r = ASN1_get_object(&q, &len, &t, &cls, (long)n);
	if ((r & 0x81) || (unsigned)t != (tag & 0x1f) || (unsigned)cls != (tag & 0xc0) ||
	    (r & 0x20) != (int)(tag & 0x20) || (size_t)(q - p) != hl || (size_t)len != clen)
		abort();
	/* The writer writes the same header: the reader took the one DER form. */
	uint8_t h[16];
	if (der_put_hdr(h, tag, clen) != hl || memcmp(h, p, hl) != 0 || der_hdr_len(clen) != hl)
		abort();
	/* A header-only read agrees. */
	struct vg_cbs c = *whole;
	unsigned t2;
	size_t hl2, cl2;
	if (!vg_cbs_get_asn1_header(&c, &t2, &hl2, &cl2) || t2 != tag || hl2 != hl || cl2 != clen ||
	    vg_cbs_data(&c) != p + hl || vg_cbs_len(&c) != clen)
		abort();
	/* Reading it by its tag gives its content; by another tag, nothing. */
	struct vg_cbs a = *whole, content;
	if (!vg_cbs_peek_asn1_tag(&a, tag) || !vg_cbs_get_asn1(&a, &content, tag) ||
	    vg_cbs_data(&content) != p + hl || vg_cbs_len(&content) != clen || vg_cbs_len(&a))
		abort();
	a = *whole;
	if (vg_cbs_get_asn1(&a, &content, tag ^ 0x01) || vg_cbs_len(&a) != n)
		abort();
	bool present;
	if (!vg_cbs_get_optional_asn1(&a, NULL, &present, tag) || !present || vg_cbs_len(&a))
		abort();
	/* An INTEGER: the uint64 read, when it succeeds, is OpenSSL's value. */
	a = *whole;
	uint64_t u;
	if (vg_cbs_get_asn1_uint64(&a, &u)) {
		q = p;
		ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &q, (long)n);
		uint64_t v;
		if (tag != DER_INTEGER || !ai || ASN1_INTEGER_get_uint64(&v, ai) != 1 || v != u ||
		    q != p + n)
			abort();
		ASN1_INTEGER_free(ai);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first header alone, as a caller holding only a file's head reads
	 * it: when the element is all there, the whole read must succeed. */
	struct vg_cbs c, el;
	vg_cbs_init(&c, data, size);
	size_t hl, cl;
	unsigned tag;
	if (vg_cbs_get_asn1_header(&c, &tag, &hl, &cl)) {
		struct vg_cbs w;
		vg_cbs_init(&w, data, size);
		bool fits = cl <= size - hl;
		if (vg_cbs_get_any_asn1_element(&w, &el, NULL, NULL) != fits)
			abort();
	}

	/* The tree, walked with an explicit stack of views. */
	struct vg_cbs stack[MAX_DEPTH];
	int depth = 0, seen = 0;
	vg_cbs_init(&stack[0], data, size);
	while (depth >= 0 && seen < MAX_ELEMENTS) {
		struct vg_cbs *top = &stack[depth];
		size_t before = vg_cbs_len(top);
		if (before == 0) {
			depth--;
			continue;
		}
		if (!vg_cbs_get_any_asn1_element(top, &el, &tag, &hl)) {
			if (vg_cbs_len(top) != before) /* a failure reads nothing */
				abort();
			depth--;
			continue;
		}
		seen++;
		if (vg_cbs_len(top) + vg_cbs_len(&el) != before || vg_cbs_len(&el) < hl ||
		    vg_cbs_data(&el) < data || vg_cbs_data(&el) + vg_cbs_len(&el) > data + size)
			abort();
		check_element(&el, tag, hl);
		if ((tag & 0x20) && depth + 1 < MAX_DEPTH) {
			stack[depth + 1] = el;
			vg_cbs_skip(&stack[depth + 1], hl);
			depth++;
		}
	}
	return 0;
}
