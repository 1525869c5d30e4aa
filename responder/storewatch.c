/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A replaced store noticed and reopened (storewatch.h).
 */
#include "responder/storewatch.h"
#include "responder/edge.h"
#include "responder/worker.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t gen = 1;
static struct vg_store *retired; /* the previous store, until no worker uses it */
static uint64_t retired_gen;     /* the generation that replaced it */
static int seen;                 /* checks in a row that found the store replaced */

uint64_t storewatch_gen(void)
{
	return atomic_load(&gen);
}

struct vg_store *storewatch_get(uint64_t *g)
{
	pthread_mutex_lock(&mu);
	struct vg_store *st = g_store;
	*g = atomic_load(&gen);
	pthread_mutex_unlock(&mu);
	return st;
}

/* retire_done closes the retired store once every worker moved on. */
static void retire_done(void)
{
	if (!retired)
		return;
	for (int i = 0; i < g_nworkers; i++)
		if (atomic_load(&g_workers[i].store_gen) < retired_gen &&
		    !atomic_load(&g_workers[i].stopped))
			return;
	/* Nor an edge's purger (edge.c). */
	if (edge_store_gen_min() < retired_gen)
		return;
	vg_store_close(retired);
	retired = NULL;
}

void storewatch_check(void)
{
	retire_done();
	static char path[4096];
	if (g_store && !path[0])
		snprintf(path, sizeof(path), "%s", vg_store_path(g_store));
	if (retired || !g_store || !vg_store_replaced(g_store)) {
		seen = 0;
		return;
	}
	/* The first check that sees it leaves the workers a tick to stop
	 * answering from the old store, so that none caches an answer from
	 * it after another adopted the new one. */
	if (seen++ == 0) {
		log_err("event=store_replaced path=%s action=stop_answering_and_reopen", path);
		return;
	}
	struct vg_store *st;
	int rc = vg_store_open(&st, path, VG_STORE_RDONLY);
	if (rc == -EROFS || rc == -EACCES) {
		/* The new directory is out of this process's reach: a systemd
		 * sandbox bound the old store's lock file writable, not the new
		 * one's. A restart sets the sandbox up on the new store. */
		log_err("event=store_reopen_failed path=%s error=\"%s\" action=exit_for_restart",
		        path, strerror(-rc));
		_exit(1);
	}
	if (rc < 0) {
		if (seen == 2 || seen % 50 == 0)
			log_err("event=store_reopen_failed path=%s error=\"%s\" action=retry", path,
			        rc == -EUCLEAN ? vg_store_damage() : strerror(-rc));
		return;
	}
	struct vg_txn *t;
	uint64_t counter = 0;
	struct vg_store_ident id = {0};
	if (vg_txn_begin(st, &t) == 0) {
		vg_store_counter(t, &counter);
		vg_store_ident(t, &id);
		vg_txn_end(t);
	}
	pthread_mutex_lock(&mu);
	retired = g_store;
	g_store = st;
	retired_gen = atomic_fetch_add(&gen, 1) + 1;
	pthread_mutex_unlock(&mu);
	seen = 0;
	log_warn("event=store_reopened path=%s counter=%" PRIu64 " store_id=%016" PRIx64, path,
	         counter, id.store_id);
}

void storewatch_close(void)
{
	vg_store_close(retired);
	retired = NULL;
	vg_store_close(g_store);
	g_store = NULL;
}
