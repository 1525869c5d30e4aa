/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The purgers (edge.h): one thread per configured edge, each following the
 * store's change log behind the workers and telling its edge to drop what
 * changed. purge.c puts the purges on the wire.
 *
 * A cycle, every EDGE_TICK_MS or after a back-off:
 *   1. |safe| = the oldest counter every worker answers from
 *      (worker_applied_min): the changes up to it are out of the responder's
 *      cache and out of every answer sent from now on.
 *   2. The changes in (acked, safe] become tags (one per serial, one per CA
 *      for a CA-wide change); each CRL file that changed since the last
 *      purge adds its CA's CRL tag (an nginx edge: its URL).
 *   3. They are sent in batches. All acknowledged: |acked| = safe, written
 *      to the state file; otherwise the same (grown) set is sent again after
 *      a back-off of 250 ms doubling to EDGE_BACKOFF_MAX_MS.
 * At start |acked| is read from the state file (none: the store's counter
 * now), so what was committed but not acknowledged before a crash is purged
 * again, and every CRL is purged once.
 *
 * Past 800 lines: the cycle above, its state file and the tags of each kind
 * of change belong together; purge.c holds what goes on the wire, and
 * edgeset.c which edges have a purger (start, reload, stop, /metrics).
 */
#include "responder/edge.h"
#include "responder/ctx.h"
#include "responder/metrics.h"
#include "responder/purge.h"
#include "responder/purger.h"
#include "responder/storewatch.h"
#include "responder/worker.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EDGE_TICK_MS 20
#define EDGE_BACKOFF_MIN_MS 250
#define EDGE_BACKOFF_MAX_MS 10000
#define EDGE_HTTP_TIMEOUT_MS 10000
/* Varnish's defaults (http_req_hdr_len 8k, http_req_size 32k): xkey-purge
 * lines of at most this, requests of at most EDGE_REQ_BYTES of them. */
#define EDGE_LINE_BYTES 7000
#define EDGE_REQ_BYTES 24000
/* Tags given to one run of purge_command. */
#define EDGE_CMD_TAGS 50000
/* Past this many serial tags in one cycle, each CA's tag instead. */
#define EDGE_TAGS_MAX 1000000

char edge_tag_sep(const char *name)
{
	return !strcasecmp(name, "xkey") || !strcasecmp(name, "Surrogate-Key") ? ' ' : ',';
}

size_t edge_tag_ca(char *buf, const char *ca)
{
	int n = snprintf(buf, EDGE_TAG_MAX, "vigil~%s", ca);
	return n < 0 ? 0 : (size_t)n < EDGE_TAG_MAX ? (size_t)n : EDGE_TAG_MAX - 1;
}

size_t edge_tag_serial(char *buf, const char *ca, const struct vg_serial *serial)
{
	char hex[2 * VG_SERIAL_MAX + 1];
	vg_serial_format(serial, hex, sizeof(hex));
	int n = snprintf(buf, EDGE_TAG_MAX, "vigil~%s~%s", ca, hex);
	return n < 0 ? 0 : (size_t)n < EDGE_TAG_MAX ? (size_t)n : EDGE_TAG_MAX - 1;
}

size_t edge_tag_crl(char *buf, const char *ca)
{
	int n = snprintf(buf, EDGE_TAG_MAX, "vigil~%s~crl", ca);
	return n < 0 ? 0 : (size_t)n < EDGE_TAG_MAX ? (size_t)n : EDGE_TAG_MAX - 1;
}

const char *const edge_kind_names[] = {"varnish", "nginx", "command"};

/* A serial tag to send: the CA (index in the snapshot) and the serial. */
struct stag {
	int ca;
	struct vg_serial serial;
};

#define ST(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELAXED)
#define LDR(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* nap sleeps |ms| or until |e| is halted: false when stopping. */
static bool nap(struct edge *e, int ms)
{
	struct pollfd p = {.fd = e->stop_pipe[0], .events = POLLIN};
	int n;
	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n == 0 && !atomic_load(&e->stopping);
}

/* ---- State ----------------------------------------------------------------------------- */

static uint32_t fnv32(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* state_load reads the counter an edge last acknowledged: 1, or 0 when
 * there is no state file, negative when it cannot be read. */
static int state_load(struct edge *e, uint64_t *out)
{
	FILE *f = fopen(e->state_path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	unsigned long long v;
	int ok = fscanf(f, "acked=%llu", &v) == 1;
	fclose(f);
	if (!ok)
		return -EBADMSG;
	*out = v;
	return 1;
}

/* state_save writes |e|'s acknowledged counter (a new file renamed over the
 * old one, synced first). */
static int state_save(struct edge *e)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.new", e->state_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	char buf[700];
	int n = snprintf(buf, sizeof(buf), "acked=%llu\nedge=%s %s\n", (unsigned long long)e->acked,
	                 edge_kind_names[e->kind], e->name);
	int rc = 0;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc == 0 && rename(tmp, e->state_path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static void save_acked(struct edge *e)
{
	/* Durable first: a reader that sees the metric finds the file as new. */
	int rc = e->state_ok ? state_save(e) : 0;
	ST(e->m_acked, e->acked);
	if (rc < 0) {
		e->state_ok = false;
		log_err("event=edge_state_unwritable edge=%s path=%s error=\"%s\" "
		        "action=\"purges go on; after a restart, changes before it are not "
		        "purged again\"",
		        e->name, e->state_path, strerror(-rc));
	}
}

/* ---- Collecting ------------------------------------------------------------------------ */

struct collect {
	const struct rctx *ctx;
	uint64_t upto;
	struct stag *v;
	size_t n, cap;
	bool ca_wide[VG_CONF_MAX_CAS];
	bool overflow;
};

static int ca_index(const struct rctx *ctx, uint32_t id)
{
	for (int i = 0; i < ctx->n_cas; i++)
		if (ctx->cas[i].id == id)
			return i;
	return -1;
}

static int on_change(const struct vg_change *ch, void *arg)
{
	struct collect *c = arg;
	if (ch->counter > c->upto)
		return 1;
	int ca = ca_index(c->ctx, ch->ca_id);
	if (ca < 0)
		return 0; /* a CA this responder does not answer for */
	if (ch->op == VG_CHANGE_CA || ch->serial.len == 0) {
		c->ca_wide[ca] = true;
		return 0;
	}
	if (c->overflow || c->ca_wide[ca])
		return 0;
	if (c->n == EDGE_TAGS_MAX) {
		/* That many serials: each CA with changes is purged whole. */
		for (size_t i = 0; i < c->n; i++)
			c->ca_wide[c->v[i].ca] = true;
		c->ca_wide[ca] = true;
		c->overflow = true;
		return 0;
	}
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 1024;
		struct stag *nv = realloc(c->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = nc;
	}
	c->v[c->n].ca = ca;
	c->v[c->n].serial = ch->serial;
	c->n++;
	return 0;
}

static int stag_cmp(const void *a, const void *b)
{
	const struct stag *x = a, *y = b;
	if (x->ca != y->ca)
		return x->ca < y->ca ? -1 : 1;
	return vg_serial_cmp(&x->serial, &y->serial);
}

/* A growing text buffer of tags. */
struct tbuf {
	char *b;
	size_t len, cap;
	size_t count;
	bool oom;
};

static void tb_put(struct tbuf *t, const char *s, size_t n, char sep)
{
	if (t->oom)
		return;
	if (t->len + n + 2 > t->cap) {
		size_t nc = (t->cap ? t->cap * 2 : 65536) + n;
		char *nb = realloc(t->b, nc);
		if (!nb) {
			t->oom = true;
			return;
		}
		t->b = nb;
		t->cap = nc;
	}
	memcpy(t->b + t->len, s, n);
	t->len += n;
	t->b[t->len++] = sep;
	t->count++;
}

/* The URL paths at which the responder serves CA |i|'s CRLs: /crl/CA.crl,
 * the path of its crl_url, and of each shard's URL. */
#define CRL_PATHS_MAX (2 + VG_CRL_SHARDS_MAX)
struct crl_paths {
	int n;
	char p[CRL_PATHS_MAX][300];
};

static void crl_paths(const struct rctx *ctx, int i, struct crl_paths *out)
{
	const struct rca *ca = &ctx->cas[i];
	out->n = 0;
	snprintf(out->p[out->n++], sizeof(out->p[0]), "/crl/%s.crl", ca->name);
	const struct vg_conf_ca *cc = ca->conf;
	if (!cc)
		return;
	const char *up = cc->crl_url ? vg_conf_url_path(cc->crl_url) : NULL;
	/* Even when it is /crl/CA.crl too: it is another file (crlgen mirrors
	 * the URL's path under [crlgen] out), which the responder serves first. */
	if (up && strlen(up) < sizeof(out->p[0]))
		snprintf(out->p[out->n++], sizeof(out->p[0]), "%s", up);
	for (int k = 1; k <= cc->crl_shards && out->n < CRL_PATHS_MAX; k++) {
		char url[600];
		if (vg_conf_shard_url(cc, (unsigned)k, url, sizeof(url)) < 0)
			continue;
		const char *sp = vg_conf_url_path(url);
		if (sp && strlen(sp) < sizeof(out->p[0]))
			snprintf(out->p[out->n++], sizeof(out->p[0]), "%s", sp);
	}
}

/* crl_hash hashes the identity of each of CA |i|'s CRL files that exists
 * (0: none does). */
static uint64_t crl_hash(const struct rctx *ctx, int i, const struct crl_paths *cp)
{
	uint64_t h = 1469598103934665603ull;
	bool any = false;
	for (int k = 0; k < cp->n; k++) {
		char file[1024];
		if (k == 0)
			snprintf(file, sizeof(file), "%s", ctx->cas[i].crl_path);
		else
			snprintf(file, sizeof(file), "%s%s", ctx->conf.crl_out, cp->p[k]);
		struct stat st;
		if (stat(file, &st) < 0)
			continue;
		any = true;
		uint64_t v[6] = {(uint64_t)k,
		                 (uint64_t)st.st_dev,
		                 (uint64_t)st.st_ino,
		                 (uint64_t)st.st_size,
		                 (uint64_t)st.st_mtim.tv_sec,
		                 (uint64_t)st.st_mtim.tv_nsec};
		const uint8_t *b = (const uint8_t *)v;
		for (size_t j = 0; j < sizeof(v); j++)
			h = (h ^ b[j]) * 1099511628211ull;
	}
	return any ? h | 1 : 0;
}

/* ---- Sending --------------------------------------------------------------------------- */

/* send_varnish sends the tags (each ending in '\n' in |t|) as PURGE
 * requests with xkey-purge lines, pipelined on one connection. 0 when all
 * were acknowledged (2xx). */
static int send_varnish(struct edge *e, const struct tbuf *t, int *requests)
{
	/* Every request's lines in one buffer: at most the tags, their
	 * separators and a line head per EDGE_LINE_BYTES. */
	size_t cap = t->len + (t->len / (EDGE_LINE_BYTES / 2) + 2) * 16 + 16;
	char *hdrs = malloc(cap);
	int nreq = 0, maxreq = (int)(t->len / (EDGE_REQ_BYTES / 2)) + 2;
	struct purge_req *reqs = calloc((size_t)maxreq, sizeof(*reqs));
	if (!hdrs || !reqs) {
		free(hdrs);
		free(reqs);
		return -ENOMEM;
	}
	size_t off = 0, hl = 0;
	while (off < t->len && nreq < maxreq) {
		size_t start = hl, line = 0;
		/* Lines "xkey-purge: t1 t2 ...", whole tags each. */
		while (off < t->len) {
			const char *nl = memchr(t->b + off, '\n', t->len - off);
			size_t tl = (size_t)(nl - (t->b + off));
			if (hl - start + tl + 16 > EDGE_REQ_BYTES && hl > start)
				break;
			if (line == 0 || line + tl + 1 > EDGE_LINE_BYTES) {
				if (line) {
					memcpy(hdrs + hl, "\r\n", 2);
					hl += 2;
				}
				memcpy(hdrs + hl, "xkey-purge: ", 12);
				hl += 12;
				line = 12;
			} else {
				hdrs[hl++] = ' ';
				line++;
			}
			memcpy(hdrs + hl, t->b + off, tl);
			hl += tl;
			line += tl;
			off += tl + 1;
		}
		memcpy(hdrs + hl, "\r\n", 2);
		hl += 2;
		reqs[nreq].hdrs = hdrs + start;
		reqs[nreq].hlen = hl - start;
		nreq++;
	}
	char err[300] = "";
	int done = purge_http_run(&e->pc, "PURGE", e->pc.url.path, reqs, nreq, EDGE_HTTP_TIMEOUT_MS,
	                          err, sizeof(err));
	ST(e->m_sent, LDR(e->m_sent) + (uint64_t)done);
	*requests += done;
	int rc = 0;
	if (done < nreq || off < t->len) {
		ST(e->m_failed, LDR(e->m_failed) + 1);
		log_warn("event=edge_purge_failed edge=%s error=\"%s\" action=retry", e->name,
		         err[0] ? err : "batch too large");
		rc = strstr(err, "canceled") ? -ECANCELED : -EPROTO;
	}
	free(hdrs);
	free(reqs);
	return rc;
}

/* send_nginx purges the CRL URL of each CA flagged in |crl| (200 purged,
 * 404 not cached: both done). */
static int send_nginx(struct edge *e, const struct rctx *ctx, const bool *crl, int *requests)
{
	size_t pl = strlen(e->pc.url.path);
	while (pl > 0 && e->pc.url.path[pl - 1] == '/')
		pl--;
	struct crl_paths *cp = malloc(sizeof(*cp));
	if (!cp)
		return -ENOMEM;
	int rc = 0;
	for (int i = 0; i < ctx->n_cas && rc == 0; i++) {
		if (!crl[i])
			continue;
		crl_paths(ctx, i, cp);
		for (int k = 0; k < cp->n; k++) {
			char target[600], err[700];
			snprintf(target, sizeof(target), "%.*s%s", (int)pl, e->pc.url.path,
			         cp->p[k]);
			int st = purge_http(&e->pc, "PURGE", target, "", 0, EDGE_HTTP_TIMEOUT_MS,
			                    err, sizeof(err));
			if ((st >= 200 && st < 300) || st == 404) {
				ST(e->m_sent, LDR(e->m_sent) + 1);
				(*requests)++;
				continue;
			}
			ST(e->m_failed, LDR(e->m_failed) + 1);
			if (st > 0)
				snprintf(err, sizeof(err), "PURGE %s answered %d", target, st);
			log_warn("event=edge_purge_failed edge=%s error=\"%s\" action=retry",
			         e->name, err);
			rc = st > 0 ? -EPROTO : st;
			break;
		}
	}
	free(cp);
	return rc;
}

/* send_command runs the program with the tags, EDGE_CMD_TAGS at a time. */
static int send_command(struct edge *e, const struct tbuf *t, int *requests)
{
	size_t off = 0;
	while (off < t->len) {
		size_t end = off, n = 0;
		while (end < t->len && n < EDGE_CMD_TAGS) {
			const char *nl = memchr(t->b + end, '\n', t->len - end);
			end = (size_t)(nl - t->b) + 1;
			n++;
		}
		char err[600];
		int rc = purge_command(e->command, t->b + off, end - off,
		                       atomic_load(&e->command_timeout_ms), e->stop_pipe[0], err,
		                       sizeof(err));
		if (rc == -ECANCELED)
			return rc;
		if (rc < 0) {
			ST(e->m_failed, LDR(e->m_failed) + 1);
			log_warn("event=edge_purge_failed edge=%s error=\"%s\" action=retry",
			         e->name, err);
			return rc;
		}
		ST(e->m_sent, LDR(e->m_sent) + 1);
		(*requests)++;
		off = end;
	}
	return 0;
}

/* ---- The purger -------------------------------------------------------------------------- */

static uint64_t counter_now(struct vg_txn *txn)
{
	uint64_t c = 0;
	return vg_store_counter(txn, &c) == 0 ? c : 0;
}

/* cycle makes and sends one round of purges up to |safe|: 0 when there was
 * nothing to do or all was acknowledged. */
static int cycle(struct edge *e, struct vg_txn *txn, uint64_t safe, int64_t *first_seen,
                 bool force_all)
{
	struct rctx *ctx = ctx_current();
	if (!ctx)
		return 0;
	struct collect c = {.ctx = ctx, .upto = safe};
	bool crl[VG_CONF_MAX_CAS] = {false}, any_crl = false;
	struct crl_id now_id[VG_CONF_MAX_CAS];
	memset(now_id, 0, sizeof(now_id));
	struct crl_paths *cp = malloc(sizeof(*cp));
	if (!cp) {
		ctx_unref(ctx);
		return -ENOMEM;
	}
	for (int i = 0; i < ctx->n_cas; i++) {
		crl_paths(ctx, i, cp);
		now_id[i] = (struct crl_id){crl_hash(ctx, i, cp), true};
		/* At start, every CA that has a CRL; then each that changed. */
		if (e->crl[i].seen ? e->crl[i].hash != now_id[i].hash : now_id[i].hash != 0)
			crl[i] = any_crl = true;
	}
	free(cp);
	int rc = 0;
	if (safe > e->acked && e->kind != EK_NGINX)
		rc = vg_store_changes_foreach(txn, e->acked, on_change, &c);
	if (rc == -ERANGE)
		/* Pruned past what this edge acknowledged (a long outage): the
		 * changes are not known one by one any more. */
		log_warn("event=edge_change_log_pruned edge=%s acked=%llu action=\"purge every "
		         "CA\"",
		         e->name, (unsigned long long)e->acked);
	else if (rc < 0)
		log_err("event=edge_change_log_unreadable edge=%s error=%d action=\"purge every "
		        "CA\"",
		        e->name, rc);
	if (rc < 0 || force_all) {
		for (int i = 0; i < ctx->n_cas; i++) {
			c.ca_wide[i] = true;
			if (force_all && e->kind == EK_NGINX)
				crl[i] = any_crl = true;
		}
		rc = 0;
	}
	bool work = any_crl || (force_all && e->kind != EK_NGINX) ||
	            (safe > e->acked && e->kind != EK_NGINX &&
	             (c.n || memchr(c.ca_wide, true, sizeof(c.ca_wide))));
	if (!work) {
		/* Nothing this edge purges: the changes are acknowledged as they are. */
		if (safe > e->acked) {
			e->acked = safe;
			save_acked(e);
		}
		if (e->acked >= counter_now(txn))
			*first_seen = 0;
		free(c.v);
		ctx_unref(ctx);
		return 0;
	}
	if (!*first_seen)
		*first_seen = mono_ms();
	int requests = 0;
	struct tbuf t = {0};
	if (e->kind == EK_NGINX) {
		ST(e->m_pending, (uint64_t)any_crl);
		rc = send_nginx(e, ctx, crl, &requests);
	} else {
		if (c.n)
			qsort(c.v, c.n, sizeof(*c.v), stag_cmp);
		char tag[EDGE_TAG_MAX];
		for (size_t i = 0; i < c.n; i++) {
			if (c.ca_wide[c.v[i].ca] || (i > 0 && stag_cmp(&c.v[i], &c.v[i - 1]) == 0))
				continue;
			tb_put(&t, tag,
			       edge_tag_serial(tag, ctx->cas[c.v[i].ca].name, &c.v[i].serial),
			       '\n');
		}
		for (int i = 0; i < ctx->n_cas; i++) {
			if (c.ca_wide[i])
				tb_put(&t, tag, edge_tag_ca(tag, ctx->cas[i].name), '\n');
			else if (crl[i])
				tb_put(&t, tag, edge_tag_crl(tag, ctx->cas[i].name), '\n');
		}
		ST(e->m_pending, (uint64_t)t.count);
		if (t.oom)
			rc = -ENOMEM;
		else if (e->kind == EK_VARNISH)
			rc = send_varnish(e, &t, &requests);
		else
			rc = send_command(e, &t, &requests);
	}
	if (rc == 0) {
		int64_t lag = mono_ms() - *first_seen;
		ST(e->m_lag_ms, (uint64_t)lag);
		ST(e->m_tags, LDR(e->m_tags) + t.count);
		ST(e->m_pending, 0);
		if (safe > e->acked)
			e->acked = safe;
		memcpy(e->crl, now_id, sizeof(now_id));
		save_acked(e); /* the state file, then the metric, then the line */
		log_info("event=edge_purged edge=%s counter=%llu tags=%zu crls=%d requests=%d "
		         "lag_ms=%lld",
		         e->name, (unsigned long long)e->acked, t.count,
		         (int)(memchr(crl, true, sizeof(crl)) != NULL), requests, (long long)lag);
		/* Changes committed meanwhile keep their (earlier) first sight. */
		if (e->acked >= counter_now(txn))
			*first_seen = 0;
	}
	free(t.b);
	free(c.v);
	ctx_unref(ctx);
	return rc;
}

/* workers_on_gen tells whether every worker has adopted the store of
 * generation |gen| and emptied its cache, a tick ago at least. */
static bool workers_on_gen(uint64_t gen)
{
	static _Thread_local int64_t since;
	for (int i = 0; i < g_nworkers; i++)
		if (atomic_load(&g_workers[i].store_gen) < gen &&
		    !atomic_load(&g_workers[i].stopped)) {
			since = 0;
			return false;
		}
	if (!since)
		since = mono_ms();
	/* store_gen moves just before the worker's cache is emptied. */
	return mono_ms() - since >= 100;
}

static void *edge_main(void *arg)
{
	struct edge *e = arg;
	struct vg_txn *txn = NULL;
	int backoff = 0;
	int64_t first_seen = 0;
	bool logged_store = false;
	uint64_t gen = atomic_load(&e->store_gen);
	struct vg_store *st = e->store;
	bool force_all = false;
	while (!atomic_load(&e->stopping)) {
		/* A store replaced under the responder (a restore): read the new
		 * one, and once every worker answers from it, purge everything. */
		if (storewatch_gen() != gen) {
			vg_txn_end(txn);
			txn = NULL;
			st = storewatch_get(&gen);
			atomic_store(&e->store_gen, gen);
			force_all = true;
			log_warn("event=edge_store_replaced edge=%s action=\"purge every CA once "
			         "the "
			         "workers answer from the new store\"",
			         e->name);
		}
		if (force_all && !workers_on_gen(gen)) {
			if (!nap(e, EDGE_TICK_MS))
				break;
			continue;
		}
		int rc = txn ? vg_txn_renew(txn) : vg_txn_begin(st, &txn);
		uint64_t counter = 0;
		if (rc == 0)
			rc = vg_store_counter(txn, &counter);
		if (rc < 0) {
			if (!logged_store)
				log_err("event=edge_store_unreadable edge=%s error=%d", e->name,
				        rc);
			logged_store = true;
			vg_txn_end(txn);
			txn = NULL;
			if (!nap(e, 1000))
				break;
			continue;
		}
		logged_store = false;
		uint64_t safe = 0;
		if (!worker_applied_min(&safe)) {
			/* The workers have not read the store yet. */
			if (!nap(e, EDGE_TICK_MS))
				break;
			continue;
		}
		/* The lag runs from the first sight of a change, before the
		 * workers have it. */
		if (counter > e->acked && !first_seen)
			first_seen = mono_ms();
		if (safe > counter)
			safe = counter;
		if (force_all)
			e->acked = counter; /* the old store's counter means nothing here */
		if (e->acked > counter) {
			log_warn("event=edge_state_ahead edge=%s acked=%llu counter=%llu "
			         "action=\"store replaced: follow it from now\"",
			         e->name, (unsigned long long)e->acked,
			         (unsigned long long)counter);
			e->acked = counter;
			save_acked(e);
		}
		rc = cycle(e, txn, safe, &first_seen, force_all);
		if (rc == 0)
			force_all = false;
		if (rc == -ECANCELED)
			break;
		if (rc < 0) {
			backoff = backoff ? backoff * 2 : EDGE_BACKOFF_MIN_MS;
			if (backoff > EDGE_BACKOFF_MAX_MS)
				backoff = EDGE_BACKOFF_MAX_MS;
			if (!nap(e, backoff))
				break;
			continue;
		}
		if (backoff)
			log_info("event=edge_reachable edge=%s", e->name);
		backoff = 0;
		if (!nap(e, EDGE_TICK_MS))
			break;
	}
	purge_http_close(&e->pc);
	vg_txn_end(txn);
	return NULL;
}

struct edge *edge_new(const struct vg_conf *conf, const char *state_dir, enum edge_kind kind,
                      const char *name, const struct vg_http_url *url, uint64_t counter)
{
	struct edge *e = calloc(1, sizeof(*e));
	if (!e || pipe2(e->stop_pipe, O_CLOEXEC) < 0) {
		log_err("event=edge_start_failed edge=%s error=\"%s\"", name,
		        e ? strerror(errno) : "out of memory");
		free(e);
		return NULL;
	}
	e->kind = kind;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->pc.fd = -1;
	e->pc.stop_fd = e->stop_pipe[0];
	if (url)
		e->pc.url = *url;
	if (kind == EK_COMMAND && !(e->command = strdup(name))) {
		log_err("event=edge_start_failed edge=%s error=\"out of memory\"", name);
		close(e->stop_pipe[0]);
		close(e->stop_pipe[1]);
		free(e);
		return NULL;
	}
	atomic_store(&e->command_timeout_ms, conf->edge_command_timeout_ms);
	snprintf(e->state_path, sizeof(e->state_path), "%s/%s-%08x.state", state_dir,
	         edge_kind_names[kind], fnv32(name));
	uint64_t v = 0;
	int rc = state_load(e, &v);
	e->state_ok = true;
	if (rc > 0) {
		e->acked = v;
		log_info("event=edge_state edge=%s acked=%llu counter=%llu", e->name,
		         (unsigned long long)v, (unsigned long long)counter);
	} else {
		if (rc < 0)
			log_warn("event=edge_state_unreadable edge=%s path=%s error=\"%s\" "
			         "action=\"follow the store from now\"",
			         e->name, e->state_path, strerror(-rc));
		e->acked = counter;
		save_acked(e);
	}
	ST(e->m_acked, e->acked);
	return e;
}

int edge_launch(struct edge *e, struct vg_store *store, uint64_t gen)
{
	e->store = store;
	atomic_store(&e->store_gen, gen);
	int rc = pthread_create(&e->thread, NULL, edge_main, e);
	if (rc != 0) {
		log_err("event=edge_start_failed edge=%s error=\"%s\"", e->name, strerror(rc));
		return -rc;
	}
	e->started = true;
	log_info("event=edge_purger kind=%s edge=%s state=%s", edge_kind_names[e->kind], e->name,
	         e->state_path);
	return 0;
}

void edge_halt(struct edge *e)
{
	atomic_store(&e->stopping, true);
	(void)!write(e->stop_pipe[1], "x", 1);
	if (e->started)
		pthread_join(e->thread, NULL);
	close(e->stop_pipe[0]);
	close(e->stop_pipe[1]);
	free(e->command);
	free(e);
}
