/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the store's on-disk record and key decoding, and the point
 * index's segments. A decoded record must encode back to the same bytes; a
 * segment must be looked up in and rebuilt from without reading outside it,
 * and a rebuilt segment must hold what it was given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/points.h"
#include "store/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_cert c;
	if (rec_decode(data, size, &c) == 0) {
		uint8_t buf[REC_MAX];
		size_t n = rec_encode(&c, buf);
		if (n != size || memcmp(buf, data, n) != 0)
			abort();
	}
	uint32_t id;
	struct vg_serial s;
	if (cert_key_decode(data, size, &id, &s) == 0) {
		uint8_t kb[CERT_KEY_MAX];
		size_t n = cert_key(id, &s, kb);
		if (n != size || memcmp(kb, data, n) != 0)
			abort();
	}
	/* The input as a segment: look its first key-sized prefix up, then
	 * rebuild it with one change, which must then be found. */
	uint8_t key[6] = {0, 0, 0, 1, 1, 0x42};
	if (size >= 6)
		memcpy(key + 5, data + size - 1, 1);
	const uint8_t *rec;
	size_t rlen;
	(void)pt_find(data, size, key, sizeof(key), pt_hash(key, sizeof(key)), &rec, &rlen);
	struct pt_pending p = {0};
	const uint8_t r[4] = {1, 0, 0xff, 0};
	if (pt_note(&p, key, sizeof(key), r, sizeof(r)) == 0) {
		uint8_t *nv;
		size_t nl;
		if (pt_rebuild(data, size, p.v, 1, &nv, &nl) == 0) {
			if (!nv || pt_find(nv, nl, key, sizeof(key), p.v[0].h, &rec, &rlen) != 1 ||
			    rlen != sizeof(r) || memcmp(rec, r, rlen) != 0)
				abort();
			free(nv);
		}
	}
	pt_pending_free(&p);
	return 0;
}
