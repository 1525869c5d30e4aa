/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Workers (worker.c) and the process-wide state (globals.c).
 *
 * Process model: the main thread loads the configuration into a struct rctx
 * (ctx.h), binds one SO_REUSEPORT listening socket per worker, then starts
 * |workers| threads. Each worker runs its own libuv loop with its own
 * listener, its own read transaction on the store and its own metrics; the
 * cache of signed answers is shared and read without locks (cache.h), so
 * nothing is locked on the hot path. The main thread keeps a libuv loop for
 * signals: SIGHUP builds a new rctx and hands it to the workers through
 * uv_async; SIGTERM and SIGINT make them drain and exit.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "common/conf.h"
#include "common/log.h"
#include "responder/ctx.h"
#include "responder/metrics.h"
#include "store/store.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct crl_file;

struct worker {
	int idx;
	pthread_t thread;
	uv_loop_t loop;
	uv_poll_t listener; /* on listen_fd: the worker accepts itself (conn_on_listen) */
	int listen_fd;
	int reserve_fd;     /* /dev/null, given up to answer 503 past the descriptor limit */
	bool accept_paused; /* no descriptor even so: accepting waits for the next tick */
	uv_timer_t tick;
	uv_async_t async;
	struct rctx *ctx;
	uint64_t ctx_gen;
	struct vg_store *st;            /* the store txn reads (storewatch.h) */
	atomic_uint_fast64_t store_gen; /* its generation, read by the main thread */
	atomic_bool stopped;            /* the worker thread has ended */
	bool replaced;                  /* st was found replaced: not answering from it */
	struct vg_txn *txn;
	bool txn_ok;
	uint64_t counter;
	uint64_t applied; /* 1 + the store counter the worker answers from, cache applied;
	                     0: not read yet (atomic) */
	uint64_t last_sweep_ms;
	uint64_t last_probe_ms;
	struct metrics m;
	bool draining;
	uint64_t drain_deadline;
	struct conn *conns; /* doubly linked list of open connections */
	time_t date_t;
	char date[40]; /* IMF-fixdate of date_t */
	char rbuf[65536];
	struct crl_file *crls[VG_CONF_MAX_CAS];
	/* Bytes the connections hold in memory for clients that have not read
	 * them: answers queued (copied) and pipelined requests kept (conn.c);
	 * past |hold_max| (0: WORKER_HOLD_MAX) a connection with anything
	 * queued takes no more requests until its client reads. */
	size_t held, hold_max;
	struct vg_log_budget logb[LK_N];
	struct vg_log_budget sign_logb[METRIC_SLOTS];
};

extern struct worker *g_workers;
extern int g_nworkers;
extern struct vg_store *g_store;
extern atomic_int g_open_conns;
extern int g_access_fd;
extern atomic_bool g_drain;

void *worker_main(void *arg);
/* worker_sync_ctx adopts the published snapshot if it changed. */
void worker_sync_ctx(struct worker *w);

int worker_init(struct worker *w, int idx, int fd);
/* worker_catch_up moves |w| to the store's newest state when a write was
 * committed since its snapshot: called before each OCSP answer, so that an
 * answer never reflects less than a worker's earlier answer did. */
void worker_catch_up(struct worker *w);
/* worker_applied_min writes the oldest store counter a worker answers
 * from (false while one has not read the store yet): every change up to it
 * is out of the cache and out of every answer sent from now on. */
bool worker_applied_min(uint64_t *out);
