/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker: one thread, one libuv loop, one listener on the shared port, one
 * read transaction on the store.
 *
 * Before each OCSP answer (worker_catch_up), and every TICK_MS besides, the
 * worker moves its read snapshot to the newest committed state of the store
 * and, when the change counter moved, drops the cached answers the change log
 * names (once for all workers, cache.c). So a request read after a commit
 * returned is answered from that commit or a later one, whichever worker
 * takes it: no client sees a revocation and then, from another worker, the
 * status before it. The check is two loads from the map and one of the store
 * watcher's generation; the renewal happens only when something was
 * committed or the store was reopened (a restore).
 */
#include "responder/worker.h"
#include "responder/cache.h"
#include "responder/conn.h"
#include "responder/crlfile.h"
#include "responder/ocsp.h"
#include "responder/storewatch.h"
#include "common/text.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 50
#define SWEEP_MS 1000
#define DRAIN_MS 10000

/* store_follow moves |w| to a store storewatch reopened, or stops it
 * answering from one that was replaced. Returns false when it must not
 * read the store now. */
static bool store_follow(struct worker *w)
{
	uint64_t gen = storewatch_gen();
	if (!w->st || gen != atomic_load(&w->store_gen)) {
		vg_txn_end(w->txn);
		w->txn = NULL;
		bool had = w->st != NULL;
		uint64_t g;
		w->st = storewatch_get(&g);
		atomic_store(&w->store_gen, g);
		w->replaced = false;
		if (had) {
			/* Nothing cached came from this store. */
			cache_reset();
			log_info("event=store_adopted worker=%d", w->idx);
		}
		return true;
	}
	if (!vg_store_replaced(w->st))
		return true;
	if (!w->replaced)
		log_err("event=store_replaced worker=%d path=%s action=stop_answering", w->idx,
		        vg_store_path(w->st));
	w->replaced = true;
	w->txn_ok = false;
	vg_txn_end(w->txn);
	w->txn = NULL;
	cache_clear();
	return false;
}

static void store_refresh(struct worker *w)
{
	int rc;
	bool was_ok = w->txn_ok;
	if (!store_follow(w))
		return;
	if (!w->txn)
		rc = vg_txn_begin(w->st, &w->txn);
	else
		rc = vg_txn_renew(w->txn);
	uint64_t cnt = 0;
	if (rc == 0)
		rc = vg_store_counter(w->txn, &cnt);
	if (rc < 0) {
		if (was_ok)
			log_err("event=store_unreadable worker=%d error=%d", w->idx, rc);
		w->txn_ok = false;
		vg_txn_end(w->txn);
		w->txn = NULL;
		/* Answers already signed stay valid; the status behind them may
		 * change unseen, so drop them. */
		cache_clear();
		return;
	}
	if (!was_ok && w->counter)
		log_info("event=store_readable worker=%d counter=%llu", w->idx,
		         (unsigned long long)cnt);
	w->txn_ok = true;
	w->counter = cnt;
	cache_apply_changes(w->txn, cnt);
	/* From here on this worker answers from |cnt| or later, with the
	 * cache's answers of older changes dropped: what the edge's purger
	 * waits for (worker_applied_min). */
	__atomic_store_n(&w->applied, cnt + 1, __ATOMIC_RELEASE);
}

void worker_catch_up(struct worker *w)
{
	/* A store the watcher reopened (a restore) is adopted at once, as a
	 * commit is: no answer from the replaced one, nor "try later", once
	 * another worker answered from the new one. */
	bool reopened = w->st && storewatch_gen() != atomic_load(&w->store_gen);
	if (reopened || (w->txn_ok && vg_txn_behind(w->txn)))
		store_refresh(w);
}

bool worker_applied_min(uint64_t *out)
{
	uint64_t min = UINT64_MAX;
	for (int i = 0; i < g_nworkers; i++) {
		uint64_t a = __atomic_load_n(&g_workers[i].applied, __ATOMIC_ACQUIRE);
		if (a < min)
			min = a;
	}
	if (g_nworkers <= 0 || min == 0)
		return false;
	*out = min - 1;
	return true;
}

static void update_date(struct worker *w)
{
	time_t now = time(NULL);
	if (now != w->date_t) {
		w->date_t = now;
		vg_http_date(now, w->date, sizeof(w->date));
	}
}

/* listener_close stops accepting: the poll first, then its socket (libuv
 * leaves a polled descriptor to its owner). */
static void listener_close(struct worker *w)
{
	if (uv_is_closing((uv_handle_t *)&w->listener))
		return;
	uv_close((uv_handle_t *)&w->listener, NULL);
	if (w->listen_fd >= 0)
		close(w->listen_fd);
	w->listen_fd = -1;
}

static void worker_stop_handles(struct worker *w)
{
	listener_close(w);
	if (!uv_is_closing((uv_handle_t *)&w->tick))
		uv_close((uv_handle_t *)&w->tick, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->async))
		uv_close((uv_handle_t *)&w->async, NULL);
}

static void on_tick(uv_timer_t *t)
{
	struct worker *w = container_of(t, struct worker, tick);
	cache_quiescent(w->idx);
	update_date(w);
	worker_log_flush(w, false);
	conn_tick(w);
	if (w->draining) {
		if (!w->conns || uv_now(&w->loop) >= w->drain_deadline) {
			conn_close_all(w);
			worker_stop_handles(w);
			return;
		}
		conn_drain(w);
	}
	store_refresh(w);
	uint64_t now = uv_now(&w->loop);
	if (w->idx == 0 && now - w->last_probe_ms >= SIGNER_PROBE_MS) {
		w->last_probe_ms = now;
		ocsp_probe_signers(w);
	}
	if (w->idx == 0 && now - w->last_sweep_ms >= SWEEP_MS) {
		w->last_sweep_ms = now;
		size_t n;
		int64_t oldest = cache_sweep((int64_t)time(NULL), &n);
		m_set(&w->m.oldest_next_update, oldest);
		__atomic_store_n(&w->m.cache_entries, (uint64_t)n, __ATOMIC_RELAXED);
	}
}

void worker_sync_ctx(struct worker *w)
{
	struct rctx *c = ctx_current();
	if (!c)
		return;
	if (c->generation == w->ctx_gen) {
		ctx_unref(c);
		return;
	}
	/* New signers may sign differently: forget the answers of the old ones. */
	cache_clear();
	for (int i = 0; i < VG_CONF_MAX_CAS; i++) {
		crlfile_unref(w->crls[i]);
		w->crls[i] = NULL;
	}
	ctx_unref(w->ctx);
	w->ctx = c;
	w->ctx_gen = c->generation;
}

static void on_async(uv_async_t *a)
{
	struct worker *w = container_of(a, struct worker, async);
	worker_sync_ctx(w);
	if (atomic_load(&g_drain) && !w->draining) {
		w->draining = true;
		w->drain_deadline = uv_now(&w->loop) + DRAIN_MS;
		listener_close(w);
		conn_drain(w);
		if (!w->conns)
			worker_stop_handles(w);
	}
}

/* worker_init prepares |w|'s loop and handles; it runs on the main thread
 * before the worker thread starts, so that uv_async_send is valid at once. */
int worker_init(struct worker *w, int idx, int fd)
{
	int rc;
	w->idx = idx;
	w->listen_fd = fd;
	w->ctx = ctx_current();
	w->ctx_gen = w->ctx->generation;
	/* Given up, past the descriptor limit, to answer a connection 503. */
	w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->reserve_fd < 0)
		return -errno;
	if ((rc = uv_loop_init(&w->loop)) < 0)
		return rc;
	/* The worker accepts, not libuv: libuv's uv_listen sheds the pending
	 * connections without a word when accept(2) fails with EMFILE. */
	if ((rc = uv_poll_init_socket(&w->loop, &w->listener, fd)) < 0 ||
	    (rc = uv_poll_start(&w->listener, UV_READABLE, conn_on_listen)) < 0)
		return rc;
	uv_timer_init(&w->loop, &w->tick);
	uv_async_init(&w->loop, &w->async, on_async);
	update_date(w);
	return 0;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	cache_quiescent(w->idx);
	store_refresh(w);
	if (!w->txn_ok)
		log_err("event=store_unreadable worker=%d", w->idx);
	uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
	/* A drain may have been asked before the loop ran. */
	if (atomic_load(&g_drain))
		uv_async_send(&w->async);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	worker_log_flush(w, true);
	int rc = uv_loop_close(&w->loop);
	if (rc < 0)
		log_warn("event=loop_close_failed worker=%d error=%s", w->idx, uv_strerror(rc));
	for (int i = 0; i < VG_CONF_MAX_CAS; i++)
		crlfile_unref(w->crls[i]);
	if (w->reserve_fd >= 0)
		close(w->reserve_fd);
	w->reserve_fd = -1;
	cache_offline(w->idx);
	vg_txn_end(w->txn);
	w->txn = NULL;
	atomic_store(&w->stopped, true);
	ctx_unref(w->ctx);
	w->ctx = NULL;
	return NULL;
}
