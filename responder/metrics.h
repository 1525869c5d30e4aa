/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Metrics (metrics.c): per-worker counters, summed into Prometheus text by
 * /metrics; and the per-worker log budgets of the lines a client or a flood
 * can cause.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ocsp_result { OR_SUCCESSFUL, OR_MALFORMED, OR_INTERNAL, OR_TRYLATER, OR_UNAUTHORIZED, OR_N };
enum cert_result { CR_GOOD, CR_REVOKED, CR_UNKNOWN, CR_N };
#define METRIC_SLOTS 256 /* CA names ever configured in this process */
#define LAT_BUCKETS 12
extern const double lat_bounds[LAT_BUCKETS]; /* seconds; the last is +Inf */

/* Each worker writes only its own struct, with relaxed atomic stores; the
 * /metrics handler sums all workers with relaxed loads. */
struct metrics {
	uint64_t http[600]; /* by status code */
	uint64_t ocsp[OR_N];
	uint64_t certs[METRIC_SLOTS][CR_N];
	uint64_t cache_hit, cache_miss;
	uint64_t signs;
	uint64_t sign_failures;
	uint64_t stale_served; /* cached answers past refresh, served because signing failed */
	uint64_t sign_ns;
	uint64_t lat[LAT_BUCKETS];
	uint64_t lat_ns;
	uint64_t lat_count;
	uint64_t conns_accepted, conns_refused;
	uint64_t conns_fd_limit;               /* refused with 503: no descriptor left (conn.c) */
	uint64_t crl_loads, crl_load_failures; /* CRL file versions read (once per process) */
	uint64_t crl_expired; /* CRL requests answered 503: the file is past its nextUpdate */
	uint64_t timeouts;
	int64_t conns_open;
	int64_t oldest_next_update; /* unix time, 0 when the cache is empty */
	uint64_t cache_entries;
};

static inline void m_add(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline void m_set(int64_t *p, int64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Log lines that a client can cause at will, or that repeat while something
 * stays broken, go through a per-worker budget (vg_log_budget in
 * common/log.h): at most VG_LOG_BURST a second of each kind, the rest
 * counted in one event=log_suppressed line. /metrics counts every event. */
enum log_kind {
	LK_REFUSED_400,
	LK_REFUSED_405,
	LK_REFUSED_413,
	LK_REFUSED_414,
	LK_REFUSED_431,
	LK_REFUSED_503,
	LK_REFUSED_505,
	LK_REFUSED_OTHER,
	LK_TIMEOUT_HEADERS,
	LK_TIMEOUT_BODY,
	LK_CONN_FULL,
	LK_CONN_DRAINING,
	LK_STORE_READ_FAILED,
	LK_CRL_UNREADABLE,
	LK_CONN_FD_LIMIT,
	LK_ACCEPT_FAILED,
	LK_N
};

struct worker;
/* log_kind_refused returns the kind of an http_refused line with |status|. */
enum log_kind log_kind_refused(int status);
/* worker_log_ok tells whether |w| may write a line of kind |k| now. */
bool worker_log_ok(struct worker *w, enum log_kind k);
/* worker_log_sign_ok is worker_log_ok for the sign_failed lines of the CA in
 * metrics slot |slot|: a budget per CA, so that one failing token does not
 * hide another CA's failures. */
bool worker_log_sign_ok(struct worker *w, int slot);
/* worker_log_flush reports the lines |w| suppressed, those whose window is
 * over or, with |force|, all of them. */
void worker_log_flush(struct worker *w, bool force);

/* metrics_slot returns the stable slot of CA |name| (registered on first use). */
int metrics_slot(const char *name);
void metrics_observe_latency(struct metrics *m, uint64_t ns);
/* metrics_render writes the Prometheus text of all workers into a new buffer. */
char *metrics_render(size_t *len);

/* A growing Prometheus text (metrics_render's, edge_metrics_text's):
 * metrics_printf appends to it; |oom| once something could not be written
 * (the text is then dropped). It starts with |b| malloc'd to |cap| bytes. */
struct metrics_text {
	char *b;
	size_t len, cap;
	bool oom;
};
void metrics_printf(struct metrics_text *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
