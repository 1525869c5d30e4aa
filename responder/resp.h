/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * vigil-responder internals.
 *
 * Process model: the main thread loads the configuration into a struct rctx
 * (CA certificates, signing keys, precomputed CertID hashes), binds one
 * SO_REUSEPORT listening socket per worker, then starts |workers| threads.
 * Each worker runs its own libuv loop with its own listener, its own read
 * transaction on the store and its own metrics; the cache of signed answers
 * is shared and read without locks (cache.c), so nothing is locked on the
 * hot path. The main thread
 * keeps a libuv loop for signals: SIGHUP builds a new rctx and hands it to the
 * workers through uv_async; SIGTERM and SIGINT make them drain and exit.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <uv.h>

#include "common/conf.h"
#include "common/log.h"
#include "store/store.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- Configuration snapshot (ctx.c) ---------------------------------- */

/* CertID hash algorithms we precompute issuer hashes for. */
enum { RH_SHA1, RH_SHA256, RH_SHA384, RH_SHA512, RH_N };

/* How a CA's answers are signed (ctx.c decides, ocsp.c signs). */
enum sign_mode {
	SIGN_DIGEST,  /* provider RSA or EC key: digest, then EVP_PKEY_sign on a context set up once */
	SIGN_ONESHOT, /* provider Ed25519/Ed448 key: EVP_DigestSign on a context set up once */
	SIGN_PERCALL, /* engine (pkcs11) or other keys: EVP_DigestSignInit + EVP_DigestSign per answer */
};
struct rsigns;

struct rca {
	char *name;
	uint32_t id;
	int slot; /* metrics slot, stable across reloads */
	X509 *cert;
	X509 *signer; /* delegated responder cert, or |cert| (borrowed then) */
	/* The signer certificate's notAfter (unix time; 0: none, in tests) and
	 * its file (borrowed from the snapshot's conf): no answer's nextUpdate
	 * is later, and from then on nothing is signed (ocsp.c). */
	int64_t not_after;
	const char *signer_file;
	EVP_PKEY *key;
	const EVP_MD *md; /* NULL for Ed25519/Ed448 */
	bool delegated;
	/* Precomputed parts of every answer (ctx.c), which ocsp.c encodes by
	 * hand (RFC 6960 §4.2.1): */
	uint8_t respid_der[24]; /* responderID byKey: [2] { OCTET STRING SHA-1(signer key) } */
	uint8_t sigalg_der[128]; /* signatureAlgorithm, as OCSP_basic_sign wrote it */
	size_t sigalg_len;
	uint8_t *certs_der; /* certs [0] { SEQUENCE { signer } } when delegated, else NULL */
	size_t certs_len;
	size_t sig_max; /* EVP_PKEY_get_size */
	enum sign_mode sign_mode;
	EVP_MD *sign_md; /* SIGN_DIGEST: the digest, fetched once */
	/* Per-worker signing contexts, made on first use (ocsp.c). */
	_Atomic(struct rsigns *) signs;
	enum vg_not_issued not_issued;
	int64_t validity; /* seconds */
	unsigned hlen[RH_N];
	uint8_t name_hash[RH_N][EVP_MAX_MD_SIZE];
	uint8_t key_hash[RH_N][EVP_MAX_MD_SIZE];
	char *crl_path;
};

struct rctx {
	atomic_int refs;
	uint64_t generation;
	struct vg_conf conf;
	char *base_path; /* normalised: starts and ends with '/' */
	int n_cas;
	struct rca cas[VG_CONF_MAX_CAS];
};

/* ctx_load builds a snapshot from |path|. On failure it returns a negative
 * errno and a one-line reason in |err|. */
int ctx_load(const char *path, struct rctx **out, char *err, size_t errlen);
struct rctx *ctx_ref(struct rctx *c);
void ctx_unref(struct rctx *c);
/* ctx_current returns a new reference to the published snapshot. */
struct rctx *ctx_current(void);
/* ctx_publish replaces the published snapshot with |c| (taking the caller's reference). */
void ctx_publish(struct rctx *c);
/* ctx_publish_clear drops the published snapshot (at exit). */
void ctx_publish_clear(void);

/* ---- Metrics (metrics.c) ----------------------------------------------- */

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
	uint64_t conns_fd_limit;            /* refused with 503: no descriptor left (http.c) */
	uint64_t crl_loads, crl_load_failures; /* CRL file versions read (once per process) */
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

/* ---- OCSP (ocsp.c) -------------------------------------------------------- */

#define ANSWER_HDRS_MAX 160

struct answer {
	uint8_t *der; /* owned when |owned|, else borrowed from the cache until the next call */
	size_t len;
	bool owned;
	bool cacheable; /* a GET answer that may carry cache headers */
	int64_t this_update, next_update;
	char etag[40];              /* quoted */
	char hdrs[ANSWER_HDRS_MAX]; /* Last-Modified, Expires, ETag lines */
};

struct worker;
/* ocsp_answer answers the DER request |req|; it always produces an OCSP
 * response (an error status when it must). */
void ocsp_answer(struct worker *w, const uint8_t *req, size_t len, struct answer *out);
void answer_release(struct answer *a);

/* ---- The shared cache of signed answers (cache.c) -------------------------- */

struct centry {
	_Atomic(struct centry *) hnext; /* (CA, serial) chain, read without lock */
	_Atomic(struct centry *) rnext; /* raw request chain, read without lock */
	struct centry *prev, *next;     /* insertion order; the limbo list once retired */
	uint64_t retired;               /* epoch of unlinking */
	uint32_t hash, rhash;
	uint32_t ca_id;
	struct vg_serial serial;
	uint8_t cr; /* enum cert_result */
	int slot;
	int64_t this_update, next_update, refresh_at;
	char etag[40];
	/* "Last-Modified: ..\r\nExpires: ..\r\nETag: ..\r\n", for GET answers */
	char hdrs[ANSWER_HDRS_MAX];
	uint32_t certid_len, der_len, req_len;
	uint8_t data[]; /* certid || der || request */
};

int cache_init(size_t max_entries, int nworkers);
void cache_destroy(void);
/* cache_get finds the answer for a CertID, without lock. The entry stays valid
 * until the calling worker's next cache_quiescent. */
const struct centry *cache_get(uint32_t ca_id, const struct vg_serial *serial,
                               const uint8_t *certid, size_t certid_len, int64_t now);
/* cache_get_stale is cache_get past the refresh point: the answer while it is
 * still valid (before its nextUpdate), for when a new signature fails. */
const struct centry *cache_get_stale(uint32_t ca_id, const struct vg_serial *serial,
                                     const uint8_t *certid, size_t certid_len, int64_t now);
/* cache_get_raw finds the answer to the exact request bytes |req|, without
 * lock and without parsing them (the same lifetime as cache_get). */
const struct centry *cache_get_raw(const uint8_t *req, size_t len, int64_t now);
/* cache_put publishes a copy of |tmpl| with |certid|, |der| and the request
 * |req| (tmpl->req_len bytes, may be 0), unless |snapshot| (the store counter
 * the status was read at) is older than the changes already applied. */
void cache_put(uint64_t snapshot, const struct centry *tmpl, const uint8_t *certid,
               const uint8_t *der, const uint8_t *req);
/* cache_quiescent marks that |worker| holds no entry; cache_offline that it
 * never will again. */
void cache_quiescent(int worker);
void cache_offline(int worker);
/* cache_apply_changes drops the answers the store's change log names up to
 * |counter| (read through |txn|). */
int cache_apply_changes(struct vg_txn *txn, uint64_t counter);
void cache_clear(void);
/* cache_sweep drops entries past their nextUpdate and returns the earliest
 * nextUpdate of the rest (0 when empty). */
int64_t cache_sweep(int64_t now, size_t *count);
/* The most entries a bucket chain holds (by key or by request bytes): an
 * insert into a full chain evicts its oldest entry, and readers stop there. */
#define CACHE_CHAIN_MAX 8
/* For tests: the longest chain now; the bucket hash of (|ca_id|, |serial|)
 * under this cache's random key; SipHash-2-4 of |in| under |key|. */
size_t cache_chain_max(void);
uint32_t cache_key_hash(uint32_t ca_id, const struct vg_serial *serial);
uint64_t cache_siphash24(const uint8_t key[16], const uint8_t *in, size_t len);

int ocsp_init(void);
/* ocsp_rca_free frees the per-worker signing contexts of |ca| (ctx.c, when
 * the snapshot goes). */
void ocsp_rca_free(struct rca *ca);

/* The status of one certificate, as an answer gives it. */
struct ocsp_status {
	enum cert_result cr;
	int reason; /* CRLReason, or OCSP_REVOKED_STATUS_NOSTATUS */
	int64_t revoked_at;
	bool has_invalidity;
	int64_t invalidity;
	bool ext_revoke; /* the extended-revoke extension (RFC 6960 §4.4.8) */
};
/* One SingleResponse to write: the client's CertID (its DER when the caller
 * has it already, else it is encoded from |cid|) and its status. */
struct ocsp_single {
	OCSP_CERTID *cid;
	const uint8_t *cid_der;
	size_t cid_len;
	struct ocsp_status st;
};
/* ocsp_build writes and signs the OCSPResponse (successful, a
 * BasicOCSPResponse) for |n| singles with |ca|'s signer, echoing the request
 * nonce extension |nonce| (or NULL), with producedAt and thisUpdate |now|.
 * The DER is in |*der| (OPENSSL_malloc'd). -EAGAIN when the signer failed
 * (counted in |w|'s metrics and the signer's health), -EKEYEXPIRED when the
 * signer's certificate has expired (nothing signed), -ENOMEM otherwise.
 * nextUpdate is ocsp_next_update. */
int ocsp_build(struct worker *w, struct rca *ca, const struct ocsp_single *s, int n,
               const X509_EXTENSION *nonce, int64_t now, uint8_t **der, size_t *len);
/* ocsp_signers_healthy returns false, with the reason in |reason|, when a CA
 * of |ctx| has failed SIGNER_UNHEALTHY_AFTER signatures in a row with no
 * success since. */
#define SIGNER_UNHEALTHY_AFTER 3
bool ocsp_signers_healthy(const struct rctx *ctx, char *reason, size_t len);
/* ocsp_probe_signers signs a fixed text with the signer of each CA that
 * ocsp_signers_healthy calls failing, and calls it healthy again when that
 * works: a token that comes back, or a reload onto a working key, clears a
 * 503 on /healthz without waiting for a client's request (which a load
 * balancer that obeys /healthz would no longer send). Worker 0 calls it
 * every SIGNER_PROBE_MS. (A pkcs11 key whose token failed and came back
 * keeps failing here: libp11 keeps the old session and object handles, and
 * only a restart opens new ones.) */
#define SIGNER_PROBE_MS 2000
void ocsp_probe_signers(struct worker *w);
/* A signer certificate within SIGNER_WARN_DAYS of its notAfter is logged
 * (event=signer_expires_soon) when a snapshot is loaded and then once a day;
 * one past it once (event=signer_expired): ocsp_signer_expiry_check does it
 * for |ctx| at |now| (ctx_load, and worker 0 with each probe), and counts
 * the lines per CA for /metrics (ocsp_signer_expiry_events). Past notAfter
 * /healthz is 503 (ocsp_signers_healthy) and answers that need a signature
 * are tryLater. */
#define SIGNER_WARN_DAYS 30
void ocsp_signer_expiry_check(const struct rctx *ctx, int64_t now);
uint64_t ocsp_signer_expiry_events(int slot);
/* ocsp_next_update is the nextUpdate of an answer |ca| signs at |now|: now +
 * ocsp_validity (at most 10 days less a second), but never past the signer's
 * notAfter. */
int64_t ocsp_next_update(const struct rca *ca, int64_t now);
/* ocsp_signer_expired tells whether |ca|'s signer may no longer sign at |now|. */
bool ocsp_signer_expired(const struct rca *ca, int64_t now);
/* ocsp_refresh_at is when a cached answer with |this_update| and |validity|
 * (seconds) is signed again: after |percent| of its validity, but never later
 * than the Baseline Requirements §4.9.10 allow for updating OCSP information
 * (validity of 16 hours or more: at least 8 hours before nextUpdate and at
 * most 4 days after thisUpdate; shorter: before half the validity is left). */
int64_t ocsp_refresh_at(int64_t this_update, int64_t validity, int percent);
/* ocsp_error_der returns a static unsigned OCSPResponse with |status|. */
const uint8_t *ocsp_error_der(int status, size_t *len);

/* ---- Workers and connections (worker.c, http.c) ------------------------------- */

struct crl_file;

struct worker {
	int idx;
	pthread_t thread;
	uv_loop_t loop;
	uv_poll_t listener; /* on listen_fd: the worker accepts itself (http_on_listen) */
	int listen_fd;
	int reserve_fd;     /* /dev/null, given up to answer 503 past the descriptor limit */
	bool accept_paused; /* no descriptor even so: accepting waits for the next tick */
	uv_timer_t tick;
	uv_async_t async;
	struct rctx *ctx;
	uint64_t ctx_gen;
	struct vg_txn *txn;
	bool txn_ok;
	uint64_t counter;
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
	 * them: answers queued (copied) and pipelined requests kept (http.c);
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

/* http_on_listen accepts up to a batch of connections (the listener's poll
 * callback). Past the descriptor limit (EMFILE, ENFILE) each is still
 * answered 503, on the worker's reserve descriptor, counted and logged. */
void http_on_listen(uv_poll_t *h, int status, int events);
/* http_tick runs at each worker tick: it takes the reserve descriptor back
 * and resumes accepting, if either had to wait. */
void http_tick(struct worker *w);
void http_drain(struct worker *w);
void http_close_all(struct worker *w);
void crl_file_unref(struct crl_file *f);
int worker_init(struct worker *w, int idx, int fd);

/* Helpers (util in http.c). */
void http_date(time_t t, char *buf, size_t len);
/* b64_decode decodes standard or URL-safe base64 (padding optional). Returns
 * the length or -1. |out| must hold len * 3 / 4 + 3 bytes. */
ssize_t b64_decode(const char *in, size_t len, uint8_t *out);
