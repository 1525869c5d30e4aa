/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the store's on-disk record and key decoding. A decoded
 * record must encode back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
	return 0;
}
