/* SPDX-License-Identifier: Apache-2.0 */
/* Reading STORE/replicate.state (store/replstate.h). */
#include "store/replstate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vg_repl_status_read(const char *store_path, int64_t now, struct vg_repl_status *out)
{
	memset(out, 0, sizeof(*out));
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/replicate.state", store_path) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char line[256];
	int seen = 0;
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		const char *k = line, *v = eq + 1;
		if (!strcmp(k, "role"))
			snprintf(out->role, sizeof(out->role), "%.*s", (int)strcspn(v, "\n"), v);
		else if (!strcmp(k, "counter"))
			out->counter = strtoull(v, NULL, 10);
		else if (!strcmp(k, "source"))
			out->source = strtoull(v, NULL, 10);
		else if (!strcmp(k, "pending_since"))
			out->pending_since = strtoll(v, NULL, 10);
		else if (!strcmp(k, "link_up"))
			out->link_up = atoi(v) == 1;
		else if (!strcmp(k, "last_ok"))
			out->last_ok = strtoll(v, NULL, 10);
		else if (!strcmp(k, "updated"))
			out->updated = strtoll(v, NULL, 10);
		else if (!strcmp(k, "primary"))
			out->primary = strtoull(v, NULL, 16);
		else
			continue;
		seen++;
	}
	fclose(f);
	if (!out->role[0] || seen < 4)
		return -EBADMSG;
	out->lag_commits = out->source > out->counter ? out->source - out->counter : 0;
	out->link_alive = out->link_up && now - out->updated <= 5;
	out->lag_seconds = out->lag_commits && out->pending_since ? now - out->pending_since : 0;
	if (!out->link_alive) {
		int64_t since = now - (out->last_ok ? out->last_ok : out->updated);
		if (since > out->lag_seconds)
			out->lag_seconds = since;
	}
	if (out->lag_seconds < 0)
		out->lag_seconds = 0;
	return 0;
}
