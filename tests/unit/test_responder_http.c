/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the responder's HTTP helpers and its connections, linked from
 * responder_core as vigil-responder links them. A connection runs on a real
 * libuv loop (timers, handles) over the fake stream of
 * tests/common/fake_stream.h, which collects what would be written and can
 * take everything, nothing (EAGAIN, so every answer is queued) or a few
 * bytes at a time. (The text codecs it used to test here are common/text.c's,
 * tested in test_util.c.) */
#include "responder/cache.h"
#include "responder/conn.h"
#include "responder/crlfile.h"
#include "responder/http.h"
#include "responder/ocsp.h"
#include "responder/routes.h"
#include "responder/worker.h"
#include "common/text.h"
#include "tests/common/fake_stream.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_etag_match(void **state)
{
	(void)state;
	const char *tag = "\"0123abcd\"";
	assert_true(http_etag_match("\"0123abcd\"", tag));
	assert_true(http_etag_match("W/\"0123abcd\"", tag)); /* weak comparison for If-None-Match */
	assert_true(http_etag_match("\"x\", \"0123abcd\"", tag));
	assert_true(http_etag_match("\"x\",\"0123abcd\" ,\"y\"", tag));
	assert_true(http_etag_match("*", tag));
	assert_false(http_etag_match("\"0123abc\"", tag));
	assert_false(http_etag_match("\"0123abcd", tag));
	assert_false(http_etag_match("", tag));
	assert_false(http_etag_match("  ,  ", tag));
	assert_false(http_etag_match("\"0123abcdX\"", tag));
}

static size_t tlv(uint8_t *out, uint8_t tag, const void *body, size_t len)
{
	size_t o = 0;
	out[o++] = tag;
	if (len < 0x80) {
		out[o++] = (uint8_t)len;
	} else {
		out[o++] = 0x82;
		out[o++] = (uint8_t)(len >> 8);
		out[o++] = (uint8_t)len;
	}
	memmove(out + o, body, len);
	return o + len;
}

/* A CRL's head: optional version, a UTCTime or GeneralizedTime thisUpdate,
 * nextUpdate optional; anything cut short, or not filling the file exactly,
 * is left to the full decoder (false). */
static void test_crl_times(void **state)
{
	(void)state;
	static const uint8_t alg[] = {0x30, 0x03, 0x06, 0x01, 0x2a}, issuer[] = {0x30, 0x00},
	                     entries[300] = {0}, sig[] = {0x03, 0x01, 0x00};
	for (int v = 0; v < 2; v++) {
		for (int next = 0; next < 2; next++) {
			uint8_t tbs[1024], crl[1100], tmp[1100];
			size_t n = 0;
			if (v)
				n += tlv(tbs + n, 0x02, "\x01", 1);
			memcpy(tbs + n, alg, sizeof(alg));
			n += sizeof(alg);
			memcpy(tbs + n, issuer, sizeof(issuer));
			n += sizeof(issuer);
			n += tlv(tbs + n, 0x17, "231114221320Z", 13);
			if (next)
				n += tlv(tbs + n, 0x18, "20231115221320Z", 15);
			n += tlv(tbs + n, 0x30, entries, sizeof(entries)); /* a long length */
			size_t m = tlv(tmp, 0x30, tbs, n);
			memcpy(tmp + m, alg, sizeof(alg));
			m += sizeof(alg);
			memcpy(tmp + m, sig, sizeof(sig));
			m += sizeof(sig);
			size_t len = tlv(crl, 0x30, tmp, m);
			int64_t t1 = -1, t2 = -1;
			assert_true(crlfile_times(crl, len, len, &t1, &t2));
			assert_int_equal(t1, 1700000000);
			assert_int_equal(t2, next ? 1700000000 + 86400 : 0);
			for (size_t cut = 0; cut < len; cut++)
				assert_false(crlfile_times(crl, cut, cut, &t1, &t2));
			/* The head only (the first read of a large file): enough once
			 * it holds nextUpdate, or the header of what follows
			 * thisUpdate when there is none. */
			size_t need = 4 + 4 + (v ? 3 : 0) + sizeof(alg) + sizeof(issuer) + 15 +
			              (next ? 17 : 4);
			for (size_t pre = 0; pre <= len; pre++) {
				t1 = t2 = -1;
				bool ok = crlfile_times(crl, pre, len, &t1, &t2);
				assert_int_equal(ok, pre >= need);
				if (ok) {
					assert_int_equal(t1, 1700000000);
					assert_int_equal(t2, next ? 1700000000 + 86400 : 0);
				}
			}
			crl[len] = 0;
			assert_false(crlfile_times(crl, len + 1, len + 1, &t1,
			                           &t2)); /* trailing bytes */
		}
	}
}

/* ---- The fake stream (tests/common/fake_stream.c) ------------------------------------------ */

/* The write modes tried: all, none (EAGAIN), a few bytes at a time. */
#define WM_N FK_RESET

/* ---- A worker and its cached answers ------------------------------------------------------- */

static struct worker W;
static struct rctx R;
#define DATE_T 1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */

/* Two answers in the cache, found by their request bytes: a small one and one
 * larger than a response buffer's inline body. */
static uint8_t REQ_A[] = {0x30, 0x42, 0x30, 0x40, 0x30, 0x3e, 0x30, 0x3c, 0x30, 0x3a, 0x30, 0x09,
                          0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14, 0xaa,
                          0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                          0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0x04, 0x14, 0x01, 0x02, 0x03};
static uint8_t REQ_B[] = {0x30, 0x42, 0x30, 0x40, 0x30, 0x3e, 0x30, 0x3c, 0x30, 0x3a, 0x30, 0x09,
                          0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14, 0xaa,
                          0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                          0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0x04, 0x14, 0x01, 0x02, 0x04};
static uint8_t DER_A[700], DER_B[INLINE_BODY_MAX + 500];
/* DER_A's ETag: the first 16 octets of its SHA-256 in hex, quoted (made in
 * world_setup with OpenSSL, not with the responder's code). */
static char ETAG_A[40];
#define HDRS_A_FMT                                                                                 \
	"Last-Modified: Tue, 14 Nov 2023 22:00:00 GMT\r\nExpires: Sat, 18 Nov 2023 22:00:00 "      \
	"GMT\r\nETag: %s\r\n"

static void put_answer(const uint8_t *req, size_t rlen, uint8_t *der, size_t dlen, uint8_t fill)
{
	for (size_t i = 0; i < dlen; i++)
		der[i] = (uint8_t)(fill + i * 7);
	struct centry t;
	memset(&t, 0, sizeof(t));
	t.ca_id = 1;
	t.serial.len = 1;
	t.serial.b[0] = fill;
	t.cr = CR_GOOD;
	t.this_update = DATE_T - 800;
	t.next_update = DATE_T - 800 + 4 * 86400;
	t.refresh_at = INT64_MAX; /* fresh whatever the clock says */
	t.certid_len = 1;
	t.der_len = (uint32_t)dlen;
	t.req_len = (uint32_t)rlen;
	uint8_t certid = fill;
	cache_put(1, &t, &certid, der, req);
}

static int world_setup(void **state)
{
	(void)state;
	assert_int_equal(uv_loop_init(&W.loop), 0);
	R.conf.max_connections = 100;
	R.conf.max_request_bytes = 16384;
	R.conf.max_header_bytes = 8192;
	R.conf.max_certids = 32;
	R.conf.idle_timeout_ms = 30000;
	R.conf.header_timeout_ms = 10000;
	R.conf.body_timeout_ms = 10000;
	R.conf.refresh_percent = 50;
	R.base_path = (char *)"/";
	W.ctx = &R;
	W.txn_ok = true;
	W.date_t = DATE_T;
	vg_http_date(W.date_t, W.date, sizeof(W.date));
	static bool ocsp_ready; /* its static answers are made once */
	if (!ocsp_ready) {
		assert_int_equal(ocsp_init(), 0);
		ocsp_ready = true;
	}
	routes_init(); /* the cache keeps each answer's HTTP validators */
	assert_int_equal(cache_init(64, 1), 0);
	cache_quiescent(0);
	/* Nothing to apply: the first call only records the counter. */
	assert_int_equal(cache_apply_changes(NULL, 1), 0);
	put_answer(REQ_A, sizeof(REQ_A), DER_A, sizeof(DER_A), 0x11);
	put_answer(REQ_B, sizeof(REQ_B), DER_B, sizeof(DER_B), 0x22);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	assert_int_equal(EVP_Digest(DER_A, sizeof(DER_A), md, &mdlen, EVP_sha256(), NULL), 1);
	ETAG_A[0] = '"';
	for (int i = 0; i < 16; i++)
		snprintf(ETAG_A + 1 + 2 * i, 3, "%02x", md[i]);
	snprintf(ETAG_A + 33, 2, "\"");
	return 0;
}

static int world_teardown(void **state)
{
	(void)state;
	while (uv_run(&W.loop, UV_RUN_NOWAIT))
		;
	assert_int_equal(uv_loop_close(&W.loop), 0);
	cache_offline(0);
	cache_destroy();
	fk_free();
	return 0;
}

/* open_conn accepts a connection whose writes go in |mode|, its output empty. */
static struct conn *open_conn(enum fk_mode mode)
{
	fk.mode = mode;
	fk.out_len = 0;
	fk.reading = false;
	conn_accept(&W, -1);
	struct conn *c = W.conns;
	assert_non_null(c);
	fk_pump();
	return c;
}

/* end_conn closes |c| as libuv would (its queued writes cancelled) and runs
 * the loop until every connection is gone. */
static void end_conn(struct conn *c)
{
	if (!c->closed)
		conn_close(c);
	fk_complete_writes(UV_ECANCELED);
	while (uv_run(&W.loop, UV_RUN_NOWAIT))
		;
	assert_null(W.conns);
}

/* serve runs one connection through the input |in|, delivered in reads that
 * end at |cuts| (ascending), with writes in |mode|, and returns what the
 * client received (fk.out, fk.out_len). */
static void serve(const char *in, size_t len, const size_t *cuts, size_t ncuts, enum fk_mode mode)
{
	struct conn *c = open_conn(mode);
	size_t off = 0;
	for (size_t i = 0; i <= ncuts && off < len && !c->closed; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		if (end <= off)
			continue;
		assert_true(fk.reading);
		uv_buf_t buf;
		conn_on_alloc((uv_handle_t *)&c->tcp, end - off, &buf);
		memcpy(buf.base, in + off, end - off);
		/* What is left of the read buffer is garbage, as after a real read. */
		memset(buf.base + (end - off), 'X', 64);
		conn_on_read((uv_stream_t *)&c->tcp, (ssize_t)(end - off), &buf);
		off = end;
		fk_pump();
	}
	end_conn(c);
	assert_int_equal(fk.qn, 0);
	assert_int_equal(fk.qbytes, 0);
}

struct sb {
	char b[32768];
	size_t len;
};

static void sb_add(struct sb *s, const void *p, size_t n)
{
	assert_true(s->len + n <= sizeof(s->b));
	memcpy(s->b + s->len, p, n);
	s->len += n;
}

static void sb_fmt(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sb *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s->b + s->len, sizeof(s->b) - s->len, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(s->b) - s->len);
	s->len += (size_t)n;
}

static void b64url(const uint8_t *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
		             (i + 2 < len ? in[i + 2] : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < len)
			out[o++] = a[v >> 6 & 63];
		if (i + 2 < len)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

/* The pipelined requests and the answers they must get, byte for byte, in
 * the format the responder has always written. */
static void pipeline(struct sb *in, struct sb *want)
{
	char path[128];
	b64url(REQ_A, sizeof(REQ_A), path);
	const char *date = W.date;
	size_t err_len;
	const uint8_t *malformed = ocsp_error_der(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, &err_len);
	char cache_get[512];
	snprintf(cache_get, sizeof(cache_get),
	         "Cache-Control: max-age=344800, public, no-transform, "
	         "must-revalidate\r\n" HDRS_A_FMT,
	         ETAG_A);

	/* POST of a cached request: its body in place or across reads. */
	sb_fmt(in,
	       "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
	       "Content-Length: %zu\r\n\r\n",
	       sizeof(REQ_A));
	sb_add(in, REQ_A, sizeof(REQ_A));
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: %zu\r\n"
	       "Content-Type: application/ocsp-response\r\nCache-Control: no-store\r\n\r\n",
	       date, sizeof(DER_A));
	sb_add(want, DER_A, sizeof(DER_A));
	/* GET of the same: the cache headers. */
	sb_fmt(in, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: %zu\r\n"
	       "Content-Type: application/ocsp-response\r\n%s\r\n",
	       date, sizeof(DER_A), cache_get);
	sb_add(want, DER_A, sizeof(DER_A));
	/* Health and a 404. */
	sb_fmt(in, "GET /healthz HTTP/1.1\r\n\r\n");
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: 3\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\nok\n",
	       date);
	sb_fmt(in, "GET /crl/none.crl HTTP/1.1\r\n\r\n");
	sb_fmt(want,
	       "HTTP/1.1 404 Not Found\r\nServer: vigil\r\nDate: %s\r\nContent-Length: 11\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\n\r\nno such CA\n",
	       date);
	/* HEAD: the length of the body, not the body. */
	sb_fmt(in, "HEAD /%s HTTP/1.1\r\n\r\n", path);
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: %zu\r\n"
	       "Content-Type: application/ocsp-response\r\n%s\r\n",
	       date, sizeof(DER_A), cache_get);
	/* 100-continue, then a body that is no OCSP request. */
	sb_fmt(in, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
	sb_fmt(want, "HTTP/1.1 100 Continue\r\n\r\n");
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: %zu\r\n"
	       "Content-Type: application/ocsp-response\r\nCache-Control: no-store\r\n\r\n",
	       date, err_len);
	sb_add(want, malformed, err_len);
	/* A conditional GET. */
	sb_fmt(in, "GET /%s HTTP/1.1\r\nIf-None-Match: \"x\", %s\r\n\r\n", path, ETAG_A);
	sb_fmt(want, "HTTP/1.1 304 Not Modified\r\nServer: vigil\r\nDate: %s\r\n%s\r\n", date,
	       cache_get);
	/* HTTP/1.0 keep-alive. */
	sb_fmt(in, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: 3\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"
	       "Connection: keep-alive\r\n\r\nok\n",
	       date);
	/* The large answer (head and body written from two buffers), chunked
	 * request body, and the last request. */
	sb_fmt(in,
	       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	       "%zx\r\n",
	       sizeof(REQ_B) - 10);
	sb_add(in, REQ_B, sizeof(REQ_B) - 10);
	sb_fmt(in, "\r\na\r\n");
	sb_add(in, REQ_B + sizeof(REQ_B) - 10, 10);
	sb_fmt(in, "\r\n0\r\n\r\n");
	sb_fmt(want,
	       "HTTP/1.1 200 OK\r\nServer: vigil\r\nDate: %s\r\nContent-Length: %zu\r\n"
	       "Content-Type: application/ocsp-response\r\nCache-Control: no-store\r\n"
	       "Connection: close\r\n\r\n",
	       date, sizeof(DER_B));
	sb_add(want, DER_B, sizeof(DER_B));
	/* Nothing is answered after "Connection: close". */
	sb_fmt(in, "GET /healthz HTTP/1.1\r\n\r\n");
}

static void check_out(const struct sb *want, const char *what, size_t cut, enum fk_mode mode)
{
	if (fk.out_len == want->len && !memcmp(fk.out, want->b, want->len))
		return;
	size_t i = 0;
	while (i < fk.out_len && i < want->len && fk.out[i] == want->b[i])
		i++;
	print_error("%s: cut %zu, write mode %d: output differs at byte %zu (got %zu bytes, want "
	            "%zu)\ngot:  %.*s\nwant: %.*s\n",
	            what, cut, mode, i, fk.out_len, want->len,
	            (int)(fk.out_len - i > 80 ? 80 : fk.out_len - i), fk.out + i,
	            (int)(want->len - i > 80 ? 80 : want->len - i), want->b + i);
	fail_msg("output differs");
}

static struct sb g_in, g_want;

static void test_pipeline_whole(void **state)
{
	(void)state;
	g_in.len = g_want.len = 0;
	pipeline(&g_in, &g_want);
	for (int m = 0; m < WM_N; m++) {
		uint64_t hits = W.m.cache_hit;
		fk.try_writes = fk.writes = 0;
		serve(g_in.b, g_in.len, NULL, 0, (enum fk_mode)m);
		check_out(&g_want, "whole", 0, (enum fk_mode)m);
		assert_int_equal(W.m.cache_hit - hits, 5); /* POST, GET, HEAD, 304, POST */
		if (m == FK_FULL)
			assert_int_equal(fk.writes, 0); /* nothing queued: no heap block */
	}
}

/* Pipelined requests split into two reads at every byte boundary, and in
 * reads of one byte: answered in order, with the right bodies, whatever the
 * socket takes at a time. */
static void test_pipeline_split(void **state)
{
	(void)state;
	g_in.len = g_want.len = 0;
	pipeline(&g_in, &g_want);
	for (int m = 0; m < WM_N; m++) {
		for (size_t cut = 1; cut < g_in.len; cut++) {
			serve(g_in.b, g_in.len, &cut, 1, (enum fk_mode)m);
			check_out(&g_want, "two reads", cut, (enum fk_mode)m);
		}
		static size_t cuts[32768];
		for (size_t i = 0; i < g_in.len; i++)
			cuts[i] = i + 1;
		serve(g_in.b, g_in.len, cuts, g_in.len, (enum fk_mode)m);
		check_out(&g_want, "one-byte reads", 1, (enum fk_mode)m);
	}
}

static void feed(struct conn *c, const void *p, size_t n)
{
	uv_buf_t buf;
	conn_on_alloc((uv_handle_t *)&c->tcp, n, &buf);
	memcpy(buf.base, p, n);
	conn_on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &buf);
	fk_pump();
}

static int count_answers(void)
{
	int n = 0;
	for (size_t i = 0; i + 12 <= fk.out_len; i++)
		n += !memcmp(fk.out + i, "HTTP/1.1 200", 12);
	return n;
}

/* 100 pipelined requests in one read (and a POST cut by its end): the first
 * PIPELINE_BATCH are answered at once and reading stops; the rest are
 * parsed from the kept tail on the next loop turns, in order, the POST's
 * body joined across the tail and the next read; then the connection reads
 * again. One client's batch cannot hold the worker. */
static void test_pipeline_batches(void **state)
{
	(void)state;
	struct conn *c = open_conn(FK_FULL);
	static char in[100 * 64];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "GET /healthz?%d HTTP/1.1\r\n\r\n",
		                      i);
	char post[256];
	int pl = snprintf(post, sizeof(post),
	                  "POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\n"
	                  "Content-Length: %zu\r\n\r\n",
	                  sizeof(REQ_A));
	memcpy(in + n, post, (size_t)pl);
	n += (size_t)pl;
	memcpy(in + n, REQ_A, 10); /* the rest of the body comes in the next read */
	n += 10;
	feed(c, in, n);
	assert_int_equal(count_answers(), PIPELINE_BATCH);
	assert_false(fk.reading);
	assert_non_null(c->tail);
	for (int turn = 0; turn < 10 && c->tail; turn++) {
		uv_run(&W.loop, UV_RUN_NOWAIT);
		fk_pump();
	}
	assert_null(c->tail);
	assert_int_equal(count_answers(), 100);
	assert_true(fk.reading);
	/* In order: the answers' bodies are "ok\n", the last is the 100th. */
	feed(c, REQ_A + 10, sizeof(REQ_A) - 10);
	assert_int_equal(count_answers(), 101);
	assert_non_null(memmem(fk.out, fk.out_len, DER_A, sizeof(DER_A)));
	end_conn(c);
}

static void read_nopump(struct conn *c, const void *p, size_t n)
{
	uv_buf_t buf;
	conn_on_alloc((uv_handle_t *)&c->tcp, n, &buf);
	memcpy(buf.base, p, n);
	conn_on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &buf);
}

/* The worker's budget (here 20 KiB; the socket takes nothing, so every
 * answer is queued): a connection whose client has not read its answers
 * takes no more requests once the worker holds more than the budget (its
 * pipelined rest kept, counted too); another connection still gets its
 * request answered; when the clients read, everything is answered, in order,
 * and the count of held bytes comes back to zero. */
static void test_worker_hold_budget(void **state)
{
	(void)state;
	W.hold_max = 20 << 10;
	fk.mode = FK_EAGAIN;
	fk.out_len = 0;
	char path[128], in[40 * 200];
	b64url(REQ_B, sizeof(REQ_B), path);
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "GET /%s HTTP/1.1\r\n\r\n", path);
	conn_accept(&W, -1);
	struct conn *a = W.conns;
	read_nopump(a, in, n);
	/* Answers queued until the budget was passed, then a pause. */
	unsigned queued = fk.qn;
	assert_true(queued >= 4 && queued <= 6);
	assert_non_null(a->tail);
	assert_false(a->reading);
	assert_true(W.held <= W.hold_max + sizeof(DER_B) + 1024 + a->tail_len);
	assert_int_equal(W.held, fk.qbytes + a->tail_len);
	/* No loop turn resumes it while nothing was read. */
	for (int turn = 0; turn < 5; turn++)
		uv_run(&W.loop, UV_RUN_NOWAIT);
	assert_int_equal(fk.qn, queued);
	/* A newcomer's request is answered all the same. */
	conn_accept(&W, -1);
	struct conn *b = W.conns;
	assert_ptr_not_equal(a, b);
	read_nopump(b, "GET /healthz HTTP/1.1\r\n\r\n", 25);
	assert_int_equal(fk.qn, queued + 1);
	/* The clients read: the rest follows, in order. */
	for (int turn = 0; turn < 200 && (a->tail || fk.qn); turn++) {
		fk_complete_writes(0);
		uv_run(&W.loop, UV_RUN_NOWAIT);
	}
	fk_complete_writes(0);
	assert_null(a->tail);
	assert_int_equal(count_answers(), 41);
	assert_int_equal(W.held, 0);
	conn_close(b);
	end_conn(a);
	W.hold_max = 0;
}

/* A POST body that came in one read is answered from the read buffer; one
 * cut by the end of a read is copied before the buffer is reused. */
static void test_body_in_place(void **state)
{
	(void)state;
	struct conn *c = open_conn(FK_FULL);
	struct sb req = {.len = 0};
	sb_fmt(&req, "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", sizeof(REQ_A));
	sb_add(&req, REQ_A, sizeof(REQ_A));
	feed(c, req.b, req.len);
	assert_null(c->body); /* never copied */
	assert_null(c->body_at);
	assert_true(fk.out_len > sizeof(DER_A) && !memcmp(fk.out, "HTTP/1.1 200 OK\r\n", 17));
	assert_memory_equal(fk.out + fk.out_len - sizeof(DER_A), DER_A, sizeof(DER_A));
	size_t first = fk.out_len;
	/* The same, cut in the body: the first part is kept, the read buffer
	 * overwritten before the rest comes. */
	fk.out_len = 0;
	feed(c, req.b, req.len - 5);
	assert_non_null(c->body);
	assert_null(c->body_at);
	memset(W.rbuf, 'X', 4096);
	feed(c, req.b + req.len - 5, 5);
	assert_int_equal(fk.out_len, first);
	assert_memory_equal(fk.out + fk.out_len - sizeof(DER_A), DER_A, sizeof(DER_A));
	end_conn(c);
}

/* The timer is moved only when a deadline comes earlier; when it fires
 * before the phase's deadline it is re-armed, and at the deadline the
 * phase's timeout acts. */
static void test_lazy_timer(void **state)
{
	(void)state;
	struct conn *c = open_conn(FK_FULL);
	uint64_t now = uv_now(&W.loop);
	assert_int_equal(c->phase, PH_IDLE);
	assert_int_equal(c->deadline, now + R.conf.header_timeout_ms);
	assert_int_equal(c->armed, c->deadline);
	assert_true(uv_is_active((uv_handle_t *)&c->timer));

	static const char req[] = "GET /healthz HTTP/1.1\r\n\r\n";
	uv_buf_t buf;
	conn_on_alloc((uv_handle_t *)&c->tcp, sizeof(req) - 1, &buf);
	memcpy(buf.base, req, sizeof(req) - 1);
	conn_on_read((uv_stream_t *)&c->tcp, sizeof(req) - 1, &buf);
	/* Idle again: the deadline moved later, the timer stayed. */
	assert_int_equal(c->phase, PH_IDLE);
	assert_int_equal(c->deadline, now + R.conf.idle_timeout_ms);
	assert_int_equal(c->armed, now + R.conf.header_timeout_ms);

	/* A request begun: its header deadline is earlier than the idle one. */
	conn_on_alloc((uv_handle_t *)&c->tcp, 4, &buf);
	memcpy(buf.base, "GET ", 4);
	conn_on_read((uv_stream_t *)&c->tcp, 4, &buf);
	assert_int_equal(c->phase, PH_HEADERS);
	assert_int_equal(c->deadline, now + R.conf.header_timeout_ms);
	assert_int_equal(c->armed, c->deadline);

	/* Fired early (the deadline moved on since): re-armed, nothing done. */
	c->deadline = now + 5000;
	c->armed = now + 10;
	conn_on_timer_due(&c->timer);
	assert_false(c->closed);
	assert_int_equal(c->armed, now + 5000);
	assert_int_equal(W.m.timeouts, 0);
	/* At the deadline: the headers' timeout, a 408 and the close. */
	c->deadline = now;
	conn_on_timer_due(&c->timer);
	assert_int_equal(W.m.timeouts, 1);
	assert_non_null(memmem(fk.out, fk.out_len, "HTTP/1.1 408 Request Timeout", 28));
	fk_pump();
	end_conn(c);
}

/* put_tlv3 writes a DER header with a three-octet length. */
static size_t put_tlv3(uint8_t *out, uint8_t tag, size_t len)
{
	out[0] = tag;
	out[1] = 0x83;
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	return 5;
}

/* crl_file_write writes a CRL-shaped DER file of about |entries| bytes at
 * |path| (through a rename, as crlgen publishes); returns its length. */
static size_t crl_file_write(const char *path, uint8_t *crl, size_t entries, uint8_t fill)
{
	static const uint8_t alg[] = {0x30, 0x03, 0x06, 0x01, 0x2a}, issuer[] = {0x30, 0x00},
	                     sig[] = {0x03, 0x01, 0x00};
	size_t tbs_len = sizeof(alg) + sizeof(issuer) + 15 + 17 + 5 + entries;
	size_t o = put_tlv3(crl, 0x30, 5 + tbs_len + sizeof(alg) + sizeof(sig));
	o += put_tlv3(crl + o, 0x30, tbs_len);
	memcpy(crl + o, alg, sizeof(alg));
	o += sizeof(alg);
	memcpy(crl + o, issuer, sizeof(issuer));
	o += sizeof(issuer);
	o += tlv(crl + o, 0x17, "231114221320Z", 13);
	o += tlv(crl + o, 0x18, "20231115221320Z", 15);
	o += put_tlv3(crl + o, 0x30, entries);
	for (size_t i = 0; i < entries; i++)
		crl[o++] = (uint8_t)(fill + i * 13);
	memcpy(crl + o, alg, sizeof(alg));
	o += sizeof(alg);
	memcpy(crl + o, sig, sizeof(sig));
	o += sizeof(sig);
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(crl, 1, o, f), o);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
	return o;
}

/* run_until turns the loop and completes the writes until the client has
 * |n| answers or nothing moves. */
static void run_until(const char *marker, int n)
{
	for (int turn = 0; turn < 100000; turn++) {
		int seen = 0;
		for (size_t i = 0; i + strlen(marker) <= fk.out_len; i++)
			seen += !memcmp(fk.out + i, marker, strlen(marker));
		if (seen >= n)
			return;
		fk_complete_writes(0);
		uv_run(&W.loop, UV_RUN_NOWAIT);
	}
}

/* A CRL is sent from its file, whatever the socket takes at a time (all,
 * nothing, a few bytes): the client gets the file's bytes exactly, then the
 * answer to the request pipelined after it; no more than a chunk is held at
 * a time, nothing once done. Its version is read once for all requests; a
 * broken version once too (until its retry time), answered 503. */
static void test_crl_from_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/vigil-http-crl.XXXXXX", path[128];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.crl", dir);
	static uint8_t crl[200000];
	size_t len = crl_file_write(path, crl, 150000, 0x5a);
	R.n_cas = 1;
	R.cas[0].name = (char *)"t";
	R.cas[0].crl_path = path;
	static const char req[] = "GET /crl/t.crl HTTP/1.1\r\nHost: x\r\n\r\n"
	                          "GET /crl/none.crl HTTP/1.1\r\nHost: x\r\n\r\n";
	uint64_t loads = W.m.crl_loads, failures = W.m.crl_load_failures;
	for (int mode = FK_FULL; mode < WM_N; mode++) {
		struct conn *c = open_conn((enum fk_mode)mode);
		feed(c, req, sizeof(req) - 1);
		assert_true(W.held <= STREAM_CHUNK + 1024);
		run_until("HTTP/1.1 404", 1);
		const char *end = memmem(fk.out, fk.out_len, "\r\n\r\n", 4);
		assert_non_null(end);
		assert_true(fk.out_len > 12 && !memcmp(fk.out, "HTTP/1.1 200", 12));
		char cl[64];
		snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", len);
		assert_non_null(memmem(fk.out, (size_t)(end - fk.out), cl, strlen(cl)));
		size_t body = (size_t)(end + 4 - fk.out);
		assert_true(fk.out_len > body + len);
		assert_memory_equal(fk.out + body, crl, len);
		assert_true(!memcmp(fk.out + body + len, "HTTP/1.1 404", 12));
		assert_true(fk.reading);
		end_conn(c);
		assert_int_equal(W.held, 0);
	}
	assert_int_equal(W.m.crl_loads, loads + 1);
	/* Broken: read once, not at each request, and again after its retry time. */
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite("not a CRL", 1, 9, f), 9);
	assert_int_equal(fclose(f), 0);
	struct conn *c = open_conn(FK_FULL);
	for (int i = 0; i < 5; i++)
		feed(c, req, sizeof(req) - 1);
	run_until("HTTP/1.1 404", 5);
	int n503 = 0;
	for (size_t i = 0; i + 12 <= fk.out_len; i++)
		n503 += !memcmp(fk.out + i, "HTTP/1.1 503", 12);
	assert_int_equal(n503, 5);
	assert_int_equal(W.m.crl_load_failures, failures + 1);
	assert_non_null(W.crls[0]);
	W.crls[0]->retry_ms = 0; /* ten seconds later */
	feed(c, req, sizeof(req) - 1);
	assert_int_equal(W.m.crl_load_failures, failures + 2);
	end_conn(c);
	crlfile_unref(W.crls[0]);
	W.crls[0] = NULL;
	R.n_cas = 0;
	assert_true(crlfile_registry_empty()); /* every version freed */
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_etag_match),
	        cmocka_unit_test(test_crl_times),
	        cmocka_unit_test_setup_teardown(test_pipeline_whole, world_setup, world_teardown),
	        cmocka_unit_test_setup_teardown(test_pipeline_split, world_setup, world_teardown),
	        cmocka_unit_test_setup_teardown(test_pipeline_batches, world_setup, world_teardown),
	        cmocka_unit_test_setup_teardown(test_worker_hold_budget, world_setup,
	                                        world_teardown),
	        cmocka_unit_test_setup_teardown(test_body_in_place, world_setup, world_teardown),
	        cmocka_unit_test_setup_teardown(test_lazy_timer, world_setup, world_teardown),
	        cmocka_unit_test_setup_teardown(test_crl_from_file, world_setup, world_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
