/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The set of purgers (edge.h): which edges have one, at start and after
 * each reload, and their metrics.
 *
 * An edge is its kind and its URL (purge_varnish, purge_nginx) or program
 * (purge_command), as edge_new names it. A reload keeps the purger of each
 * edge still configured (its thread, acknowledged counter and state file:
 * nothing is purged again), stops and joins those of the edges no longer
 * configured (a purge in flight is abandoned), and starts one for each new
 * edge as at start (its state file if one was left from before, else the
 * store's counter now, and every CRL once). purge_command_timeout applies
 * to the next run of the program. state_dir is read at start only: a new
 * edge's state file goes where the others' are until a restart.
 *
 * The list is changed on the main thread only (start, reload, stop); the
 * workers read it for /metrics under |lock|.
 */
#include "responder/ctx.h"
#include "responder/edge.h"
#include "responder/metrics.h"
#include "responder/purger.h"
#include "responder/storewatch.h"
#include "common/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LDR(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct edge **edges;
static int n_edges;
/* [edge] state_dir at start: where every purger keeps its state. */
static char *run_state_dir;

/* One edge a configuration asks for. */
struct want {
	enum edge_kind kind;
	char name[540];
	struct vg_http_url url;
	bool have; /* a running purger is for it */
};

/* wants lists the edges |conf| configures into |w| (room for
 * 2 * VG_EDGE_URLS_MAX + 1) and returns how many. */
static int wants(const struct vg_conf *conf, struct want *w)
{
	int n = 0;
	for (int k = 0; k < 2; k++) {
		const char *list = k ? conf->edge_purge_nginx : conf->edge_purge_varnish;
		if (!list)
			continue;
		struct vg_http_url u[VG_EDGE_URLS_MAX];
		int m = vg_http_url_list(list, u, VG_EDGE_URLS_MAX);
		for (int i = 0; i < m; i++) {
			w[n] = (struct want){.kind = k ? EK_NGINX : EK_VARNISH, .url = u[i]};
			snprintf(w[n].name, sizeof(w[n].name), "http://%s%s", u[i].authority,
			         u[i].path);
			n++;
		}
	}
	if (conf->edge_purge_command) {
		w[n] = (struct want){.kind = EK_COMMAND};
		snprintf(w[n].name, sizeof(w[n].name), "%s", conf->edge_purge_command);
		n++;
	}
	return n;
}

/* apply makes the running purgers those |conf| configures. */
static void apply(const struct vg_conf *conf, bool reload)
{
	struct want w[2 * VG_EDGE_URLS_MAX + 1];
	int nw = wants(conf, w);
	int kept = 0, removed = 0, added = 0;
	/* Kept, or stopped. A stopped one leaves the list before it is joined
	 * (/metrics stops naming it at once): the store it reads cannot be
	 * closed meanwhile, storewatch_check runs on this (the main) thread. */
	for (int i = 0; i < n_edges;) {
		struct edge *e = edges[i];
		int j = 0;
		while (j < nw && (w[j].have || w[j].kind != e->kind || strcmp(w[j].name, e->name)))
			j++;
		if (j < nw) {
			w[j].have = true;
			atomic_store(&e->command_timeout_ms, conf->edge_command_timeout_ms);
			kept++;
			i++;
			continue;
		}
		char name[600];
		snprintf(name, sizeof(name), "%s", e->name);
		enum edge_kind kind = e->kind;
		uint64_t acked = LDR(e->m_acked);
		pthread_mutex_lock(&lock);
		edges[i] = edges[--n_edges];
		pthread_mutex_unlock(&lock);
		edge_halt(e);
		removed++;
		log_info("event=edge_purger_stopped kind=%s edge=%s acked=%llu",
		         edge_kind_names[kind], name, (unsigned long long)acked);
	}
	if (kept + removed == 0 && nw == 0)
		return;
	if (kept < nw) {
		if (mkdir(run_state_dir, 0750) < 0 && errno != EEXIST)
			log_err("event=edge_state_unwritable path=%s error=\"%s\"", run_state_dir,
			        strerror(errno));
		uint64_t gen = 0, counter = 0;
		struct vg_store *st = storewatch_get(&gen);
		struct vg_txn *txn = NULL;
		if (vg_txn_begin(st, &txn) == 0)
			vg_store_counter(txn, &counter);
		vg_txn_end(txn);
		for (int j = 0; j < nw; j++) {
			if (w[j].have)
				continue;
			/* Under the lock: /metrics may be reading the old array. */
			pthread_mutex_lock(&lock);
			struct edge **ne = realloc(edges, (size_t)(n_edges + 1) * sizeof(*ne));
			if (ne)
				edges = ne;
			pthread_mutex_unlock(&lock);
			if (!ne) {
				log_err("event=edge_start_failed edge=%s error=\"out of memory\"",
				        w[j].name);
				continue;
			}
			struct edge *e =
			        edge_new(conf, run_state_dir, w[j].kind, w[j].name,
			                 w[j].kind == EK_COMMAND ? NULL : &w[j].url, counter);
			if (!e)
				continue;
			if (edge_launch(e, st, gen) < 0) {
				edge_halt(e);
				continue;
			}
			pthread_mutex_lock(&lock);
			edges[n_edges++] = e;
			pthread_mutex_unlock(&lock);
			added++;
		}
	}
	if (reload)
		log_info("event=edge_reloaded kept=%d added=%d removed=%d", kept, added, removed);
}

void edge_start(const struct rctx *ctx, struct vg_store *st)
{
	(void)st; /* the purgers read storewatch's current store */
	free(run_state_dir);
	run_state_dir = strdup(ctx->conf.edge_state_dir);
	if (!run_state_dir) {
		log_err("event=edge_start_failed error=\"out of memory\"");
		return;
	}
	apply(&ctx->conf, false);
}

void edge_reload(const struct rctx *ctx)
{
	if (!run_state_dir)
		return; /* edge_start failed */
	if (strcmp(run_state_dir, ctx->conf.edge_state_dir))
		log_warn("event=reload_ignored key=edge.state_dir reason=needs_restart "
		         "running=%s",
		         run_state_dir);
	apply(&ctx->conf, true);
}

uint64_t edge_store_gen_min(void)
{
	uint64_t min = UINT64_MAX;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < n_edges; i++) {
		uint64_t g = atomic_load(&edges[i]->store_gen);
		if (edges[i]->started && g < min)
			min = g;
	}
	pthread_mutex_unlock(&lock);
	return min;
}

void edge_stop(void)
{
	pthread_mutex_lock(&lock);
	struct edge **v = edges;
	int n = n_edges;
	edges = NULL;
	n_edges = 0;
	pthread_mutex_unlock(&lock);
	/* Every thread told first, then each joined. */
	for (int i = 0; i < n; i++) {
		atomic_store(&v[i]->stopping, true);
		(void)!write(v[i]->stop_pipe[1], "x", 1);
	}
	for (int i = 0; i < n; i++)
		edge_halt(v[i]);
	free(v);
	free(run_state_dir);
	run_state_dir = NULL;
}

char *edge_metrics_text(void)
{
	struct metrics_text t = {.cap = 4096};
	t.b = malloc(t.cap);
	if (!t.b)
		return NULL;
	t.b[0] = '\0';
	pthread_mutex_lock(&lock);
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} m[] = {
	        {"vigil_edge_purges_sent_total", "counter",
	         "Purge requests (or purge_command runs) an edge acknowledged.",
	         offsetof(struct edge, m_sent)},
	        {"vigil_edge_purges_failed_total", "counter",
	         "Purge requests that failed (refused, unanswered, unreachable); retried.",
	         offsetof(struct edge, m_failed)},
	        {"vigil_edge_purges_pending", "gauge",
	         "Tags (CRL URLs for nginx) waiting for an edge's acknowledgement.",
	         offsetof(struct edge, m_pending)},
	        {"vigil_edge_tags_purged_total", "counter", "Tags an edge acknowledged.",
	         offsetof(struct edge, m_tags)},
	        {"vigil_edge_acked_counter", "gauge",
	         "The store change counter up to which an edge has acknowledged purges.",
	         offsetof(struct edge, m_acked)},
	};
	/* The families are declared with no edge too, for the alert rules. */
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		metrics_printf(&t, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
		               m[k].type);
		for (int i = 0; i < n_edges; i++) {
			uint64_t v = __atomic_load_n((uint64_t *)((char *)edges[i] + m[k].off),
			                             __ATOMIC_RELAXED);
			metrics_printf(&t, "%s{edge=\"%s\",kind=\"%s\"} %llu\n", m[k].name,
			               edges[i]->name, edge_kind_names[edges[i]->kind],
			               (unsigned long long)v);
		}
	}
	metrics_printf(&t, "# HELP vigil_edge_purge_lag_seconds From the responder seeing a "
	                   "commit (or a new CRL) to the edge acknowledging its purge (the last "
	                   "one).\n# TYPE vigil_edge_purge_lag_seconds gauge\n");
	for (int i = 0; i < n_edges; i++)
		metrics_printf(&t, "vigil_edge_purge_lag_seconds{edge=\"%s\",kind=\"%s\"} %.3f\n",
		               edges[i]->name, edge_kind_names[edges[i]->kind],
		               (double)LDR(edges[i]->m_lag_ms) / 1000.0);
	pthread_mutex_unlock(&lock);
	if (t.oom) {
		free(t.b);
		return NULL;
	}
	return t.b;
}
