/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The state a `vigil-store replicate` daemon leaves in STORE/replicate.state
 * (issue 15), read by `vigil-store stats` and by the responder's /metrics and
 * /healthz. Lines of key=value: role (publish or follow), counter (the last
 * pushed or applied), source (the newest known: the store's counter for
 * publish, the database's for follow), pending_since (commit time of the
 * oldest commit not carried yet, 0 when none), link_up, last_ok (the last
 * time the database answered), updated, primary (store id, hex). Written
 * whole to a temporary file and renamed.
 */

#include <stdbool.h>
#include <stdint.h>

struct vg_repl_status {
	char role[16];
	uint64_t counter, source;
	int64_t pending_since, last_ok, updated;
	bool link_up;
	uint64_t primary;
	/* Derived at |now| by vg_repl_status_read: */
	uint64_t lag_commits;
	int64_t lag_seconds; /* how old the newest change not carried is; while the
	                      * link is down, at least the time since it last worked */
	bool link_alive;     /* link_up, and the daemon wrote within 5 s */
};

/* vg_repl_status_read reads the state file of the store at |store_path|.
 * Returns 0, -ENOENT when there is none (no daemon ever ran), or -EBADMSG. */
int vg_repl_status_read(const char *store_path, int64_t now, struct vg_repl_status *out);
