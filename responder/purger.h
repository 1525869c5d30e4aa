/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One purger (edge.c), as the set of purgers (edgeset.c) sees it: made,
 * started, stopped. Each has its own stop pipe, so that a reload can stop
 * one edge's thread and leave the others running.
 */

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/conf.h"
#include "responder/purge.h"

enum edge_kind { EK_VARNISH, EK_NGINX, EK_COMMAND };
extern const char *const edge_kind_names[];

/* What a CA's CRL files were when last purged: a hash of the identity
 * (device, inode, size, mtime) of each (the full CRL at /crl/CA.crl and at
 * its crl_url's path, each shard), and whether it was ever taken. */
struct crl_id {
	uint64_t hash;
	bool seen;
};

struct edge {
	enum edge_kind kind;
	char name[600]; /* the URL or the program, as configured */
	struct purge_conn pc;
	char *command;
	/* Set again by a reload; read at each run of the program. */
	atomic_int command_timeout_ms;
	char state_path[PATH_MAX];
	bool state_ok;
	pthread_t thread;
	bool started;
	/* Readable once the purger is to stop (edge_halt). */
	int stop_pipe[2];
	atomic_bool stopping;
	uint64_t acked;
	struct crl_id crl[VG_CONF_MAX_CAS];
	/* The store this purger reads and its generation (storewatch.h): a
	 * retired store is closed only once no purger reads it. */
	struct vg_store *store;
	atomic_uint_fast64_t store_gen;
	/* Metrics, read by /metrics (relaxed atomics). */
	uint64_t m_sent, m_failed, m_tags, m_pending, m_acked, m_lag_ms;
};

/* edge_new makes the purger of one edge (not started): its acknowledged
 * counter from its state file in |state_dir|, or |counter| (the store's
 * now) when there is none. NULL when out of memory or out of descriptors
 * (logged). */
struct edge *edge_new(const struct vg_conf *conf, const char *state_dir, enum edge_kind kind,
                      const char *name, const struct vg_http_url *url, uint64_t counter);
/* edge_launch starts its thread, reading |store| of generation |gen|: 0 or
 * a negative errno (logged). */
int edge_launch(struct edge *e, struct vg_store *store, uint64_t gen);
/* edge_halt stops its thread (a purge in flight is abandoned: a request's
 * connection is closed, a purge_command killed; its tags stay
 * unacknowledged in the state file), joins it and frees |e|. */
void edge_halt(struct edge *e);
