/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Routes (routes.h): which answer a request gets, and the header lines that
 * carry its meaning (Cache-Control, Expires, Last-Modified, ETag, Allow,
 * Retry-After, and Date moved to an answer's thisUpdate); http.c frames
 * them. OCSP GET (URL-encoded base64 after the base path) and POST, the
 * CRLs (/crl/{CA}.crl), /healthz, /metrics, and the answers to refused
 * connections and timeouts.
 */
#include "responder/routes.h"
#include "responder/cache.h"
#include "responder/conn.h"
#include "responder/crlfile.h"
#include "responder/edge.h"
#include "responder/http.h"
#include "responder/ocsp.h"
#include "common/text.h"
#include "store/replstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* routes_allow: the request's path is one of the routes other than OCSP's
 * (/healthz, /metrics, /crl/...), which take GET and HEAD only, or not. */
const char *routes_allow(const struct conn *c)
{
	size_t ul = c->url ? c->url_len : 0;
	const char *q = ul ? memchr(c->url, '?', ul) : NULL;
	if (q)
		ul = (size_t)(q - c->url);
	bool get_only = (ul >= 8 && (!memcmp(c->url + ul - 8, "/healthz", 8) ||
	                             !memcmp(c->url + ul - 8, "/metrics", 8))) ||
	                (ul >= 4 && !memcmp(c->url + ul - 4, ".crl", 4));
	return get_only ? "Allow: GET, HEAD\r\n" : "Allow: GET, HEAD, POST\r\n";
}

void routes_timeout(struct conn *c)
{
	c->closing = true;
	http_respond_text(c, 408, "408 Request Timeout\n", NULL);
	conn_begin_close(c);
}

static const char busy_text[] = "503 Service Unavailable: too many connections\n";

void routes_refuse_busy(struct conn *c)
{
	c->closing = true;
	http_respond_text(c, 503, busy_text, "Retry-After: 1\r\n");
	conn_begin_close(c);
}

size_t routes_busy_text(const struct worker *w, char *buf, size_t len)
{
	int n = snprintf(buf, len,
	                 "HTTP/1.1 503 Service Unavailable\r\nServer: vigil\r\nDate: %s\r\n"
	                 "Content-Length: %zu\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                 "Retry-After: 1\r\nConnection: close\r\n\r\n%s",
	                 w->date, sizeof(busy_text) - 1, busy_text);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* ---- OCSP ------------------------------------------------------------------------------------ */

/* The GET header lines of an answer that do not change until its nextUpdate
 * (Last-Modified, Expires, ETag), and its ETag for If-None-Match: made once
 * per cached answer (the cache's note, routes_init), or per answer when it
 * was not cached. */
#define NOTE_HDRS_MAX 160
struct ocsp_note {
	char etag[VG_ETAG_LEN];
	uint8_t hlen; /* 0: not made */
	char hdrs[NOTE_HDRS_MAX];
};
_Static_assert(sizeof(struct ocsp_note) <= CACHE_NOTE_MAX, "the cache's note holds it");

static void note_make(const uint8_t *der, size_t len, int64_t this_update, int64_t next_update,
                      struct ocsp_note *n)
{
	char lm[40], ex[40];
	vg_etag(der, len, n->etag);
	vg_http_date((time_t)this_update, lm, sizeof(lm));
	vg_http_date((time_t)next_update, ex, sizeof(ex));
	int l = snprintf(n->hdrs, sizeof(n->hdrs),
	                 "Last-Modified: %s\r\nExpires: %s\r\nETag: %s\r\n", lm, ex, n->etag);
	n->hlen = l > 0 && (size_t)l < sizeof(n->hdrs) ? (uint8_t)l : 0;
}

static void cache_note(const struct centry *e, uint8_t note[CACHE_NOTE_MAX])
{
	note_make(cache_der(e), e->der_len, e->this_update, e->next_update,
	          (struct ocsp_note *)note);
}

void routes_init(void)
{
	cache_set_note(cache_note);
}

/* cache_lines writes the lifetimes of a cacheable answer with |left|
 * seconds to its nextUpdate: Cache-Control max-age up to nextUpdate for
 * every cache (RFC 5019 §6.2), s-maxage and CDN-Cache-Control (RFC 9213) =
 * min([edge] max_age, max-age) for shared caches (0 when |shared| is false:
 * they revalidate every time), and the tag header with |tags| (|tlen|
 * bytes; none when 0). With max_age 0 and |shared|, max-age alone. */
static void cache_lines(struct hb *b, const struct rctx *ctx, int64_t left, bool shared,
                        const char *tags, size_t tlen)
{
	int64_t edge = ctx->conf.edge_max_age;
	if (left < 0)
		left = 0;
	bool bound = edge > 0 || !shared;
	int64_t s = !shared ? 0 : left < edge ? left : edge;
	HB_LIT(b, "Cache-Control: max-age=");
	hb_u64(b, (uint64_t)left);
	if (bound) {
		HB_LIT(b, ", s-maxage=");
		hb_u64(b, (uint64_t)s);
	}
	HB_LIT(b, ", public, no-transform, must-revalidate\r\n");
	if (bound) {
		HB_LIT(b, "CDN-Cache-Control: max-age=");
		hb_u64(b, (uint64_t)s);
		HB_LIT(b, ", must-revalidate\r\n");
	}
	if (tlen) {
		hb_str(b, ctx->conf.edge_tag_header);
		HB_LIT(b, ": ");
		hb_put(b, tags, tlen);
		HB_LIT(b, "\r\n");
	}
}

/* ANSWER_TAGS_MAX: the tag text of an answer about ANSWER_TAG_SERIALS
 * serials at most. */
#define ANSWER_TAGS_MAX ((ANSWER_TAG_SERIALS + 1) * EDGE_TAG_MAX)

/* ocsp_tags writes the tags of answer |a| into |buf| (ANSWER_TAGS_MAX
 * bytes): its CA's, and each serial's. Returns their length (0: none). */
static size_t ocsp_tags(const struct worker *w, const struct answer *a, char *buf)
{
	if (a->tag_ca < 0 || a->tag_ca >= w->ctx->n_cas || !w->ctx->conf.edge_tag_header)
		return 0;
	const char *ca = w->ctx->cas[a->tag_ca].name;
	char sep = edge_tag_sep(w->ctx->conf.edge_tag_header);
	size_t n = edge_tag_ca(buf, ca);
	for (int i = 0; i < a->n_tag_serials; i++) {
		buf[n++] = sep;
		n += edge_tag_serial(buf + n, ca, &a->tag_serials[i]);
	}
	return n;
}

static void send_ocsp(struct conn *c, const uint8_t *der, size_t len, bool get)
{
	struct answer a;
	ocsp_answer(c->w, der, len, &a);
	/* The worker's Date moves on at its tick; an answer signed in a second it
	 * has not reached yet would get Last-Modified (thisUpdate) after Date
	 * (RFC 9110 8.8.2.1) and max-age = nextUpdate - Date one second too long,
	 * so that a cache keeps it past nextUpdate. Move Date to that second. */
	if (a.this_update > (int64_t)c->w->date_t) {
		c->w->date_t = (time_t)a.this_update;
		vg_http_date(c->w->date_t, c->w->date, sizeof(c->w->date));
	}
	static const char no_store[] = "Cache-Control: no-store\r\n";
	char extra[256 + ANSWER_TAGS_MAX + NOTE_HDRS_MAX], tags[ANSWER_TAGS_MAX];
	const char *ex = no_store;
	size_t elen = sizeof(no_store) - 1;
	if (get && a.cacheable) {
		/* The validators of a cached answer were made once, with its entry. */
		const struct ocsp_note *n = (const struct ocsp_note *)a.note;
		struct ocsp_note made;
		if (!n || !n->hlen) {
			note_make(a.der, a.len, a.this_update, a.next_update, &made);
			n = &made;
		}
		struct hb b = {extra, extra + sizeof(extra), false};
		cache_lines(&b, c->w->ctx, a.next_update - (int64_t)c->w->date_t,
		            a.n_tag_serials >= 0, tags, ocsp_tags(c->w, &a, tags));
		hb_put(&b, n->hdrs, n->hlen);
		ex = extra;
		elen = (size_t)(b.p - extra);
		if (c->inm_len && http_etag_match(c->inm, n->etag)) {
			http_respond_n(c, 304, NULL, ex, elen, NULL, 0, NULL);
			answer_release(&a);
			return;
		}
	}
	http_respond_n(c, 200, "application/ocsp-response", ex, elen, a.der, a.len, NULL);
	answer_release(&a);
}

/* ocsp_get decodes the OCSP request in a GET path remainder: URL-encoded
 * base64, where '/' may appear raw (so the remainder may look like several
 * segments) and clients may have put their own prefix or doubled slashes. */
#define GET_STACK_MAX 2048 /* paths up to this are decoded on the stack */

/* Starts of the GET path tried as the base64 request: the remainder and
 * what follows each of the first slashes (a client's own path prefix). */
#define GET_TRIES 16

static void ocsp_get(struct conn *c, const char *rem, size_t len)
{
	char dec_s[GET_STACK_MAX + 1];
	uint8_t der_s[GET_STACK_MAX + 4];
	bool heap = len > GET_STACK_MAX;
	char *dec = heap ? malloc(len + 1) : dec_s;
	uint8_t *der = heap ? malloc(len + 4) : der_s;
	if (!dec || !der) {
		if (heap) {
			free(dec);
			free(der);
		}
		http_fail(c, 503, "out_of_memory");
		return;
	}
	ssize_t dl = vg_pct_decode(rem, len, dec);
	if (dl < 0) {
		if (heap) {
			free(dec);
			free(der);
		}
		http_fail(c, 400, "bad_percent_encoding");
		return;
	}
	/* A DER request starts with 0x30, so its base64 starts with 'M'. Try the
	 * remainder, then what follows each '/' (a client's own prefix), then
	 * the remainder whatever its first letter (undecodable DER is answered
	 * malformedRequest). A path that is no base64 at all is not ours: 404.
	 * At most GET_TRIES starts are tried: "/M/M/M..." would otherwise cost
	 * a decode of the rest for every one (4 ms for an 8 KiB path). */
	const char *s = dec;
	ssize_t n = -1;
	bool candidate = false;
	for (int tries = 0; tries < GET_TRIES; tries++) {
		while (*s == '/')
			s++;
		if (*s == 'M') {
			candidate = true;
			n = vg_b64_decode(s, strlen(s), der);
			if (n > 0)
				break;
		}
		s = strchr(s, '/');
		if (!s)
			break;
	}
	if (n <= 0) {
		s = dec;
		while (*s == '/')
			s++;
		n = vg_b64_decode(s, strlen(s), der);
		/* Base64 that starts with '/' (a first byte of 0xfc to 0xff: no
		 * OCSP request, but the client's to be told so). */
		if (n <= 0 && s > dec)
			n = vg_b64_decode(s - 1, strlen(s - 1), der);
	}
	if (n <= 0) {
		if (heap) {
			free(dec);
			free(der);
		}
		if (candidate) {
			http_fail(c, 400, "bad_base64");
		} else {
			http_respond_text(c, 404, "not found\n", NULL);
		}
		return;
	}
	send_ocsp(c, der, (size_t)n, true);
	if (heap) {
		free(dec);
		free(der);
	}
}

/* serve_crl_file answers with the CRL file |path| of CA |idx|: ETag,
 * Last-Modified (thisUpdate), Expires (nextUpdate) and Cache-Control, and
 * 304 to a matching If-None-Match. |slot| is the worker's cached version of
 * that file, or NULL (a shard: the version is looked up in the process's
 * registry, which reads each version once). */
/* crl_version returns the version of the CRL file |path| (CA |idx|) that
 * |st| describes, from |*slot| when it is still that version, else read (once
 * per process) and kept in |*slot| (NULL: not kept, a reference the caller
 * drops). NULL when it cannot be read. */
static struct crl_file *crl_version(struct worker *w, int idx, const char *path,
                                    const struct stat *st, struct crl_file **slot)
{
	struct crl_file *f = slot ? *slot : NULL;
	if (crlfile_current(f, st))
		return f;
	struct crl_file *nf = NULL;
	if (crlfile_get(w, w->ctx->cas[idx].name, path, st, &nf) < 0)
		return NULL;
	if (slot) {
		crlfile_unref(f);
		*slot = nf;
	}
	return nf;
}

/* crl_expired tells whether CRL |f| is past its nextUpdate at the Date sent. */
static bool crl_expired(const struct worker *w, const struct crl_file *f)
{
	return f->next_update && f->next_update <= (int64_t)w->date_t;
}

static void serve_crl_file(struct conn *c, int idx, const char *path, struct crl_file **slot)
{
	struct worker *w = c->w;
	struct stat st;
	if (stat(path, &st) < 0) {
		http_respond_text(c, 404, "no CRL published yet\n", NULL);
		return;
	}
	struct crl_file *f = crl_version(w, idx, path, &st, slot);
	if (!f) {
		http_respond_text(c, 503, "CRL unreadable\n", "Retry-After: 10\r\n");
		return;
	}
	if (f->err) {
		http_respond_text(c, 503, "CRL unreadable\n", "Retry-After: 10\r\n");
		goto out;
	}
	/* A CRL past its nextUpdate is refused by relying parties, and a 200
	 * would hide that publication stopped from every monitor and cache:
	 * 503 until crlgen publishes (/healthz says so too). */
	if (crl_expired(w, f)) {
		m_add(&w->m.crl_expired, 1);
		http_respond_text(c, 503, "CRL expired: nothing published since its nextUpdate\n",
		                  "Retry-After: 60\r\nCache-Control: no-store\r\n");
		goto out;
	}
	char extra[768], lm[40], ex[40], tags[2 * EDGE_TAG_MAX];
	struct hb b = {extra, extra + sizeof(extra), false};
	HB_LIT(&b, "ETag: ");
	hb_str(&b, f->etag);
	HB_LIT(&b, "\r\n");
	if (f->this_update) {
		vg_http_date((time_t)f->this_update, lm, sizeof(lm));
		HB_LIT(&b, "Last-Modified: ");
		hb_str(&b, lm);
		HB_LIT(&b, "\r\n");
	}
	/* Tagged with its CA's tag (a CA-wide change) and its own (each
	 * publication), both purged at the edges. */
	const char *ca = w->ctx->cas[idx].name;
	size_t tl = 0;
	if (w->ctx->conf.edge_tag_header) {
		tl = edge_tag_ca(tags, ca);
		tags[tl++] = edge_tag_sep(w->ctx->conf.edge_tag_header);
		tl += edge_tag_crl(tags + tl, ca);
	}
	if (f->next_update) {
		/* Counted from the Date this response carries. */
		vg_http_date((time_t)f->next_update, ex, sizeof(ex));
		HB_LIT(&b, "Expires: ");
		hb_str(&b, ex);
		HB_LIT(&b, "\r\n");
		cache_lines(&b, w->ctx, f->next_update - (int64_t)w->date_t, true, tags, tl);
	}
	if (b.over) {
		http_respond_text(c, 503, "CRL headers too long\n", "Retry-After: 10\r\n");
		goto out;
	}
	size_t elen = (size_t)(b.p - extra);
	if (c->inm_len && http_etag_match(c->inm, f->etag))
		http_respond_n(c, 304, NULL, extra, elen, NULL, 0, NULL);
	else
		http_respond_n(c, 200, "application/pkix-crl", extra, elen, NULL, f->len, f);
out:
	if (!slot)
		crlfile_unref(f);
}

static void serve_crl(struct conn *c, const char *name, size_t nlen)
{
	struct worker *w = c->w;
	int idx = -1;
	for (int i = 0; i < w->ctx->n_cas; i++)
		if (strlen(w->ctx->cas[i].name) == nlen && !memcmp(w->ctx->cas[i].name, name, nlen))
			idx = i;
	if (idx < 0) {
		http_respond_text(c, 404, "no such CA\n", NULL);
		return;
	}
	serve_crl_file(c, idx, w->ctx->cas[idx].crl_path, &w->crls[idx]);
}

/* serve_url_path serves the CRL published at the path of a CA's crl_url or
 * of one of its shard URLs (crlgen mirrors those paths under [crlgen] out).
 * Returns false when |path| is none of them. */
static bool serve_url_path(struct conn *c, const char *path, size_t plen)
{
	struct worker *w = c->w;
	for (int i = 0; i < w->ctx->n_cas; i++) {
		const struct vg_conf_ca *cc = w->ctx->cas[i].conf;
		if (!cc)
			continue;
		const char *full = cc->crl_url ? vg_conf_url_path(cc->crl_url) : NULL;
		bool is_full = full && strlen(full) == plen && !memcmp(full, path, plen);
		if (!is_full && !vg_conf_shard_of_path(cc, path, plen))
			continue;
		char file[1024];
		if ((size_t)snprintf(file, sizeof(file), "%s%.*s", w->ctx->conf.crl_out, (int)plen,
		                     path) >= sizeof(file)) {
			http_respond_text(c, 404, "not found\n", NULL);
			return true;
		}
		serve_crl_file(c, i, file, NULL);
		return true;
	}
	return false;
}

/* append_crlgen_metrics appends vigil-crlgen's metrics file ([crlgen]
 * metrics_file: entries and bytes of every published CRL, lint failures)
 * to |*text|, when there is one. */
static void append_crlgen_metrics(struct conn *c, char **text, size_t *len)
{
	const char *path = c->w->ctx->conf.crl_metrics_file;
	FILE *f = path ? fopen(path, "re") : NULL;
	if (!f)
		return;
	char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* A file larger than the buffer (thousands of CRLs) is cut at its
	 * last whole line. */
	if (n == sizeof(buf))
		while (n > 0 && buf[n - 1] != '\n')
			n--;
	char *t = n ? realloc(*text, *len + n) : NULL;
	if (!t)
		return;
	memcpy(t + *len, buf, n);
	*text = t;
	*len += n;
}

static void serve_metrics(struct conn *c)
{
	size_t len;
	char *text = metrics_render(&len);
	if (!text) {
		http_respond_text(c, 503, "out of memory\n", NULL);
		return;
	}
	append_crlgen_metrics(c, &text, &len);
	http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
	             "Cache-Control: no-store\r\n", text, len, NULL);
	free(text);
}

static void serve_health(struct conn *c)
{
	struct worker *w = c->w;
	if (!w->txn_ok) {
		http_respond_text(c, 503, "store unreadable\n", "Cache-Control: no-store\r\n");
		return;
	}
	char reason[160];
	if (!ocsp_signers_healthy(w->ctx, reason, sizeof(reason))) {
		http_respond_text(c, 503, reason, "Cache-Control: no-store\r\n");
		return;
	}
	/* Each CA's full CRL, as /crl/{CA}.crl serves it: one past its
	 * nextUpdate means crlgen stopped publishing (none published yet is not
	 * the responder's failure: a new deployment). */
	for (int i = 0; i < w->ctx->n_cas; i++) {
		const char *path = w->ctx->cas[i].crl_path;
		struct stat st;
		if (!path || stat(path, &st) < 0)
			continue;
		const struct crl_file *f = crl_version(w, i, path, &st, &w->crls[i]);
		if (f && !f->err && crl_expired(w, f)) {
			char when[40];
			vg_http_date((time_t)f->next_update, when, sizeof(when));
			snprintf(reason, sizeof(reason), "CRL of CA %s expired (nextUpdate %s)\n",
			         w->ctx->cas[i].name, when);
			http_respond_text(c, 503, reason, "Cache-Control: no-store\r\n");
			return;
		}
	}
	/* A replica site that lags: a load balancer should stop sending it
	 * traffic ([replicate] max_lag, issue 15). */
	struct vg_repl_status rs;
	int64_t max_lag = w->ctx->conf.max_lag;
	if (max_lag && vg_repl_status_read(w->ctx->conf.store_path, time(NULL), &rs) == 0 &&
	    !strcmp(rs.role, "follow") && rs.lag_seconds > max_lag) {
		snprintf(reason, sizeof(reason),
		         "replica lags %lld s behind the primary (max_lag %lld s)\n",
		         (long long)rs.lag_seconds, (long long)max_lag);
		http_respond_text(c, 503, reason, "Cache-Control: no-store\r\n");
		return;
	}
	http_respond_text(c, 200, "ok\n", "Cache-Control: no-store\r\n");
}

void routes_dispatch(struct conn *c)
{
	struct worker *w = c->w;
	enum http_method m = (enum http_method)c->parser.method;
	const char *path = c->url;
	size_t plen = c->url_len;
	/* absolute-form (proxies): drop scheme and authority */
	if (plen > 7 && (path[0] | 0x20) == 'h' &&
	    (!strncasecmp(path, "http://", 7) || !strncasecmp(path, "https://", 8))) {
		const char *s = strstr(path, "://") + 3;
		const char *slash = memchr(s, '/', plen - (size_t)(s - path));
		if (!slash) {
			path = "/";
			plen = 1;
		} else {
			plen -= (size_t)(slash - path);
			path = slash;
		}
	}
	const char *q = memchr(path, '?', plen);
	if (q)
		plen = (size_t)(q - path);
	bool get = m == HTTP_GET || m == HTTP_HEAD;
	if (get && plen > 1 && serve_url_path(c, path, plen))
		return;

	if ((plen == 8 && !memcmp(path, "/healthz", 8)) ||
	    (plen == 8 && !memcmp(path, "/metrics", 8)) ||
	    (plen > 5 && !memcmp(path, "/crl/", 5))) {
		if (!get) {
			http_fail(c, 405, "method_not_allowed");
			return;
		}
		if (path[1] == 'h')
			serve_health(c);
		else if (path[1] == 'm')
			serve_metrics(c);
		else if (plen > 9 && !memcmp(path + plen - 4, ".crl", 4) &&
		         !memchr(path + 5, '/', plen - 9))
			serve_crl(c, path + 5, plen - 9);
		else
			http_respond_text(c, 404, "not found\n", NULL);
		return;
	}
	if (m == HTTP_POST) {
		send_ocsp(c, c->body_at ? c->body_at : c->body, c->body_len, false);
		return;
	}
	const char *base = w->ctx->base_path;
	size_t bl = strlen(base);
	const char *rem;
	if (plen >= bl && !memcmp(path, base, bl))
		rem = path + bl;
	else if (plen == bl - 1 && !memcmp(path, base, plen))
		rem = path + plen;
	else {
		http_respond_text(c, 404, "not found\n", NULL);
		return;
	}
	size_t rlen = plen - (size_t)(rem - path);
	size_t i = 0;
	while (i < rlen && rem[i] == '/')
		i++;
	if (i == rlen) {
		http_respond_text(
		        c, 404, "OCSP responder: POST a request or GET /{base64 request}\n", NULL);
		return;
	}
	ocsp_get(c, rem, rlen);
}
