/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text exposition of the per-worker counters. */
#include "store/replstate.h"
#include "responder/metrics.h"
#include "responder/edge.h"
#include "responder/ocsp.h"
#include "responder/worker.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double lat_bounds[LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   1.0,    0};

static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static char *slot_names[METRIC_SLOTS];
static int n_slots;

int metrics_slot(const char *name)
{
	int r = METRIC_SLOTS - 1;
	pthread_mutex_lock(&slot_lock);
	for (int i = 0; i < n_slots; i++)
		if (!strcmp(slot_names[i], name)) {
			r = i;
			goto out;
		}
	if (n_slots < METRIC_SLOTS - 1 && (slot_names[n_slots] = strdup(name)) != NULL)
		r = n_slots++;
out:
	pthread_mutex_unlock(&slot_lock);
	return r;
}

/* What each kind's event=log_suppressed line names, and its level. */
static const struct {
	const char *what;
	int level;
} log_kinds[LK_N] = {
        [LK_REFUSED_400] = {"http_refused status=400", LOG_INFO},
        [LK_REFUSED_405] = {"http_refused status=405", LOG_INFO},
        [LK_REFUSED_413] = {"http_refused status=413", LOG_INFO},
        [LK_REFUSED_414] = {"http_refused status=414", LOG_INFO},
        [LK_REFUSED_431] = {"http_refused status=431", LOG_INFO},
        [LK_REFUSED_503] = {"http_refused status=503", LOG_INFO},
        [LK_REFUSED_505] = {"http_refused status=505", LOG_INFO},
        [LK_REFUSED_OTHER] = {"http_refused status=other", LOG_INFO},
        [LK_TIMEOUT_HEADERS] = {"timeout phase=headers", LOG_INFO},
        [LK_TIMEOUT_BODY] = {"timeout phase=body", LOG_INFO},
        [LK_CONN_FULL] = {"conn_refused reason=max_connections", LOG_WARNING},
        [LK_CONN_DRAINING] = {"conn_refused reason=draining", LOG_WARNING},
        [LK_STORE_READ_FAILED] = {"store_read_failed", LOG_ERR},
        [LK_CRL_UNREADABLE] = {"crl_unreadable", LOG_ERR},
        [LK_CONN_FD_LIMIT] = {"conn_refused reason=fd_limit", LOG_WARNING},
        [LK_ACCEPT_FAILED] = {"accept_failed", LOG_WARNING},
};

enum log_kind log_kind_refused(int status)
{
	switch (status) {
	case 400:
		return LK_REFUSED_400;
	case 405:
		return LK_REFUSED_405;
	case 413:
		return LK_REFUSED_413;
	case 414:
		return LK_REFUSED_414;
	case 431:
		return LK_REFUSED_431;
	case 503:
		return LK_REFUSED_503;
	case 505:
		return LK_REFUSED_505;
	default:
		return LK_REFUSED_OTHER;
	}
}

bool worker_log_ok(struct worker *w, enum log_kind k)
{
	return vg_log_budget_take(&w->logb[k], uv_now(&w->loop), log_kinds[k].level,
	                          log_kinds[k].what);
}

/* sign_what writes the log_suppressed "what" of the CA in |slot|. */
static const char *sign_what(int slot, char *buf, size_t len)
{
	char q[160];
	pthread_mutex_lock(&slot_lock);
	const char *name = slot < n_slots ? slot_names[slot] : "other";
	snprintf(buf, len, "sign_failed ca=%s", vg_log_quote(name, q, sizeof(q)));
	pthread_mutex_unlock(&slot_lock);
	return buf;
}

bool worker_log_sign_ok(struct worker *w, int slot)
{
	/* Only on a failed signature: naming the CA each time costs nothing
	 * that matters. */
	char what[200];
	return vg_log_budget_take(&w->sign_logb[slot], uv_now(&w->loop), LOG_ERR,
	                          sign_what(slot, what, sizeof(what)));
}

void worker_log_flush(struct worker *w, bool force)
{
	uint64_t now = uv_now(&w->loop);
	for (int k = 0; k < LK_N; k++)
		vg_log_budget_flush(&w->logb[k], now, force, log_kinds[k].level, log_kinds[k].what);
	char what[200];
	for (int i = 0; i < METRIC_SLOTS; i++)
		if (w->sign_logb[i].suppressed)
			vg_log_budget_flush(&w->sign_logb[i], now, force, LOG_ERR,
			                    sign_what(i, what, sizeof(what)));
}

void metrics_observe_latency(struct metrics *m, uint64_t ns)
{
	double s = (double)ns / 1e9;
	int i = 0;
	while (i < LAT_BUCKETS - 1 && s > lat_bounds[i])
		i++;
	m_add(&m->lat[i], 1);
	m_add(&m->lat_ns, ns);
	m_add(&m->lat_count, 1);
}

void metrics_printf(struct metrics_text *s, const char *fmt, ...)
{
	if (s->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(s->b + s->len, s->cap - s->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			s->oom = true;
			return;
		}
		if ((size_t)n < s->cap - s->len) {
			s->len += (size_t)n;
			return;
		}
		size_t nc = s->cap * 2 + (size_t)n;
		char *nb = realloc(s->b, nc);
		if (!nb) {
			s->oom = true;
			return;
		}
		s->b = nb;
		s->cap = nc;
	}
}

#define LD(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

static uint64_t sum(size_t off)
{
	uint64_t t = 0;
	for (int i = 0; i < g_nworkers; i++) {
		uint64_t *p = (uint64_t *)((char *)&g_workers[i].m + off);
		t += __atomic_load_n(p, __ATOMIC_RELAXED);
	}
	return t;
}
#define SUM(field) sum(offsetof(struct metrics, field))

char *metrics_render(size_t *len)
{
	static const char *const ocsp_names[OR_N] = {"successful", "malformedRequest",
	                                             "internalError", "tryLater", "unauthorized"};
	static const char *const cert_names[CR_N] = {"good", "revoked", "unknown"};
	struct metrics_text s = {.cap = 8192};
	s.b = malloc(s.cap);
	if (!s.b)
		return NULL;
	s.b[0] = '\0';

	metrics_printf(&s, "# HELP vigil_http_responses_total HTTP responses by status code.\n"
	                   "# TYPE vigil_http_responses_total counter\n");
	for (int code = 100; code < 600; code++) {
		uint64_t v = SUM(http[code]);
		if (v)
			metrics_printf(&s, "vigil_http_responses_total{code=\"%d\"} %llu\n", code,
			               (unsigned long long)v);
	}
	metrics_printf(&s, "# HELP vigil_ocsp_responses_total OCSP responses by responseStatus.\n"
	                   "# TYPE vigil_ocsp_responses_total counter\n");
	for (int r = 0; r < OR_N; r++)
		metrics_printf(&s, "vigil_ocsp_responses_total{result=\"%s\"} %llu\n",
		               ocsp_names[r], (unsigned long long)SUM(ocsp[r]));
	metrics_printf(
	        &s, "# HELP vigil_ocsp_certificates_total Certificate statuses answered, by CA.\n"
	            "# TYPE vigil_ocsp_certificates_total counter\n");
	pthread_mutex_lock(&slot_lock);
	for (int slot = 0; slot < n_slots; slot++)
		for (int r = 0; r < CR_N; r++)
			metrics_printf(
			        &s, "vigil_ocsp_certificates_total{ca=\"%s\",status=\"%s\"} %llu\n",
			        slot_names[slot], cert_names[r],
			        (unsigned long long)SUM(certs[slot][r]));
	pthread_mutex_unlock(&slot_lock);
	metrics_printf(
	        &s,
	        "# HELP vigil_cache_hits_total Answers served from the cache of signed answers.\n"
	        "# TYPE vigil_cache_hits_total counter\nvigil_cache_hits_total %llu\n"
	        "# HELP vigil_cache_misses_total Cacheable requests that needed a signature.\n"
	        "# TYPE vigil_cache_misses_total counter\nvigil_cache_misses_total %llu\n"
	        "# HELP vigil_cache_entries Signed answers held in the caches.\n"
	        "# TYPE vigil_cache_entries gauge\nvigil_cache_entries %llu\n",
	        (unsigned long long)SUM(cache_hit), (unsigned long long)SUM(cache_miss),
	        (unsigned long long)SUM(cache_entries));
	metrics_printf(
	        &s,
	        "# HELP vigil_signatures_total OCSP responses signed.\n"
	        "# TYPE vigil_signatures_total counter\nvigil_signatures_total %llu\n"
	        "# HELP vigil_signing_seconds_total Time spent signing.\n"
	        "# TYPE vigil_signing_seconds_total counter\nvigil_signing_seconds_total %.6f\n"
	        "# HELP vigil_signing_failures_total Signatures the signer failed to make.\n"
	        "# TYPE vigil_signing_failures_total counter\nvigil_signing_failures_total %llu\n"
	        "# HELP vigil_stale_answers_total Cached answers past their refresh point "
	        "(before nextUpdate) served because a new signature failed.\n"
	        "# TYPE vigil_stale_answers_total counter\nvigil_stale_answers_total %llu\n",
	        (unsigned long long)SUM(signs), (double)SUM(sign_ns) / 1e9,
	        (unsigned long long)SUM(sign_failures), (unsigned long long)SUM(stale_served));
	metrics_printf(
	        &s,
	        "# HELP vigil_request_duration_seconds Time from the first byte of a request to "
	        "its response being queued.\n"
	        "# TYPE vigil_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (int i = 0; i < LAT_BUCKETS; i++) {
		cum += SUM(lat[i]);
		if (i == LAT_BUCKETS - 1)
			metrics_printf(&s,
			               "vigil_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			               (unsigned long long)cum);
		else
			metrics_printf(&s,
			               "vigil_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			               lat_bounds[i], (unsigned long long)cum);
	}
	metrics_printf(
	        &s,
	        "vigil_request_duration_seconds_sum %.6f\nvigil_request_duration_seconds_count "
	        "%llu\n",
	        (double)SUM(lat_ns) / 1e9, (unsigned long long)SUM(lat_count));
	int64_t open = 0, oldest = 0;
	for (int i = 0; i < g_nworkers; i++) {
		open += LD(g_workers[i].m.conns_open);
		int64_t o = LD(g_workers[i].m.oldest_next_update);
		if (o && (!oldest || o < oldest))
			oldest = o;
	}
	metrics_printf(
	        &s,
	        "# HELP vigil_connections_open Open client connections.\n"
	        "# TYPE vigil_connections_open gauge\nvigil_connections_open %lld\n"
	        "# HELP vigil_connections_accepted_total Connections accepted.\n"
	        "# TYPE vigil_connections_accepted_total counter\nvigil_connections_accepted_total "
	        "%llu\n"
	        "# HELP vigil_connections_refused_total Connections refused with 503 "
	        "(max_connections, draining, or no file descriptor left).\n"
	        "# TYPE vigil_connections_refused_total counter\nvigil_connections_refused_total "
	        "%llu\n"
	        "# HELP vigil_connections_fd_limit_total Connections refused with 503 because the "
	        "process had no file descriptor left (answered on a reserve descriptor).\n"
	        "# TYPE vigil_connections_fd_limit_total counter\nvigil_connections_fd_limit_total "
	        "%llu\n"
	        "# HELP vigil_timeouts_total Connections closed by a timeout.\n"
	        "# TYPE vigil_timeouts_total counter\nvigil_timeouts_total %llu\n",
	        (long long)open, (unsigned long long)SUM(conns_accepted),
	        (unsigned long long)SUM(conns_refused), (unsigned long long)SUM(conns_fd_limit),
	        (unsigned long long)SUM(timeouts));
	metrics_printf(
	        &s,
	        "# HELP vigil_crl_loads_total CRL file versions read for serving (each version "
	        "once per process, shared by the workers).\n"
	        "# TYPE vigil_crl_loads_total counter\nvigil_crl_loads_total %llu\n"
	        "# HELP vigil_crl_load_failures_total CRL file versions that could not be read or "
	        "parsed (answered 503; tried again when the file changes, or after 10 s).\n"
	        "# TYPE vigil_crl_load_failures_total counter\nvigil_crl_load_failures_total "
	        "%llu\n"
	        "# HELP vigil_crl_expired_total CRL requests answered 503 because the published "
	        "CRL is past its nextUpdate (crlgen has not published since).\n"
	        "# TYPE vigil_crl_expired_total counter\nvigil_crl_expired_total %llu\n",
	        (unsigned long long)SUM(crl_loads), (unsigned long long)SUM(crl_load_failures),
	        (unsigned long long)SUM(crl_expired));
	/* Each CA's signer: seconds to its notAfter (negative once expired),
	 * and the expires_soon / expired lines said about it. */
	struct rctx *ctx = ctx_current();
	metrics_printf(&s,
	               "# HELP vigil_signer_expiry_seconds Seconds until the notAfter of each CA's "
	               "OCSP signer certificate (negative: expired, nothing is signed).\n"
	               "# TYPE vigil_signer_expiry_seconds gauge\n");
	for (int i = 0; ctx && i < ctx->n_cas; i++)
		if (ctx->cas[i].not_after)
			metrics_printf(&s, "vigil_signer_expiry_seconds{ca=\"%s\"} %lld\n",
			               ctx->cas[i].name,
			               (long long)(ctx->cas[i].not_after - (int64_t)time(NULL)));
	metrics_printf(&s, "# HELP vigil_signer_expiry_events_total Signer certificates logged as "
	                   "expiring within 30 days (once a day) or expired.\n"
	                   "# TYPE vigil_signer_expiry_events_total counter\n");
	for (int i = 0; ctx && i < ctx->n_cas; i++)
		metrics_printf(&s, "vigil_signer_expiry_events_total{ca=\"%s\"} %llu\n",
		               ctx->cas[i].name,
		               (unsigned long long)ocsp_signer_expiry_events(ctx->cas[i].slot));
	/* Replication (issue 15): what the replicate daemon of this site last
	 * recorded; the families are declared whether or not one runs. */
	static const char *const repl_help[4][2] = {
	        {"vigil_replicate_counter",
	         "Last change counter carried through PostgreSQL: pushed (publish) or applied "
	         "(follow)."},
	        {"vigil_replicate_lag_commits", "Commits not carried yet."},
	        {"vigil_replicate_lag_seconds",
	         "Age of the oldest commit not carried yet (while the link is down, at least the "
	         "time since it last worked)."},
	        {"vigil_replicate_link_up", "1 while the database answers the replicate daemon."},
	};
	struct vg_repl_status rs;
	bool have = ctx && vg_repl_status_read(ctx->conf.store_path, time(NULL), &rs) == 0;
	for (int i = 0; i < 4; i++) {
		metrics_printf(&s, "# HELP %s %s\n# TYPE %s gauge\n", repl_help[i][0],
		               repl_help[i][1], repl_help[i][0]);
		if (!have)
			continue;
		long long v = i == 0   ? (long long)rs.counter
		              : i == 1 ? (long long)rs.lag_commits
		              : i == 2 ? (long long)rs.lag_seconds
		                       : (long long)rs.link_alive;
		metrics_printf(&s, "%s{role=\"%s\"} %lld\n", repl_help[i][0], rs.role, v);
	}
	ctx_unref(ctx);
	metrics_printf(
	        &s, "# HELP vigil_cache_oldest_next_update_seconds Seconds until the nextUpdate of "
	            "the oldest cached answer (absent when the cache is empty).\n"
	            "# TYPE vigil_cache_oldest_next_update_seconds gauge\n");
	if (oldest)
		metrics_printf(&s, "vigil_cache_oldest_next_update_seconds %lld\n",
		               (long long)(oldest - (int64_t)time(NULL)));
	char *edge = edge_metrics_text();
	if (!edge)
		s.oom = true;
	else
		metrics_printf(&s, "%s", edge);
	free(edge);
	if (s.oom) {
		free(s.b);
		return NULL;
	}
	*len = s.len;
	return s.b;
}
