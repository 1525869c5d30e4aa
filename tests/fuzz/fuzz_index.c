/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: OpenSSL index.txt lines (vigil-store import-index). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/cli/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Split on newlines as import-index does with getline. */
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		size_t len = i - start;
		char *line = malloc(len + 1);
		if (!line)
			return 0;
		memcpy(line, data + start, len);
		line[len] = '\0';
		struct vg_add_item it;
		const char *file = NULL;
		char err[256];
		int rc = index_parse_line(line, len, &it, &file, err, sizeof(err));
		if (rc == 0 && (it.serial.len == 0 || it.serial.len > VG_SERIAL_MAX))
			abort();
		free(line);
		start = i + 1;
	}
	return 0;
}
