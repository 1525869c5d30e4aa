/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the configuration file parser shared by the three programs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct vg_conf c;
	char err[512];
	if (vg_conf_parse_string(text, "/nonexistent/vigil.conf", &c, err, sizeof(err)) == 0) {
		if (!c.store_path || c.n_cas > VG_CONF_MAX_CAS)
			abort();
		vg_conf_free(&c);
	} else if (strlen(err) == 0) {
		abort(); /* every refusal says why */
	}
	free(text);
	return 0;
}
