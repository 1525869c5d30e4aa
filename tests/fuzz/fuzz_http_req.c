/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the whole HTTP request path of the responder, bytes in,
 * response bytes out. The responder's objects run as vigil-responder links
 * them (responder_core, or its sources built with the fuzzer's
 * instrumentation): a connection is accepted by conn_accept, the input is
 * delivered through conn_on_read (whole, or in small reads), parsed by
 * http-parser, routed (OCSP GET and POST, /healthz, /metrics, /crl/, limits,
 * pipelining, 100-continue, timeouts, lingering close) and answered against
 * a real store and real signers (fuzz_responder.h). There is no socket: the
 * few libuv stream calls conn.c makes go to the fake stream of
 * tests/common/fake_stream.h, which collects what would be written, and now
 * and then writes partially or not at all (EAGAIN) so that the queued-write
 * path runs too. Timers and handle closing are libuv's own.
 *
 * Which variant runs (snapshot, read size, write behaviour, a timeout at the
 * end, draining, a full house) follows from a hash of the input, so an
 * input always runs alike. Checks: the output is a sequence of well-framed
 * HTTP/1.1 responses; every OCSP body parses as an OCSPResponse.
 */
#include "responder/conn.h"
#include "responder/http.h"
#include "tests/common/fake_stream.h"
#include "tests/fuzz/fuzz_responder.h"

#include <openssl/ocsp.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- Checking the output ------------------------------------------------------------- */

struct rsp {
	bool ocsp;
	bool conn_field, close, after_close;
	uint8_t *body;
	size_t len, cap;
	int count;
	bool bad;
};

static int rsp_header_field(http_parser *p, const char *at, size_t len)
{
	struct rsp *r = p->data;
	r->conn_field = len == 10 && !memcmp(at, "Connection", 10);
	return 0;
}

static int rsp_header_value(http_parser *p, const char *at, size_t len)
{
	struct rsp *r = p->data;
	static const char ct[] = "application/ocsp-response";
	if (len == sizeof(ct) - 1 && !memcmp(at, ct, len))
		r->ocsp = true;
	if (r->conn_field && len == 5 && !memcmp(at, "close", 5))
		r->close = true;
	return 0;
}

static int rsp_body(http_parser *p, const char *at, size_t len)
{
	struct rsp *r = p->data;
	if (r->len + len > r->cap) {
		r->cap = (r->len + len) * 2;
		r->body = realloc(r->body, r->cap);
		FZ_CHECK(r->body);
	}
	memcpy(r->body + r->len, at, len);
	r->len += len;
	return 0;
}

static int rsp_begin(http_parser *p)
{
	struct rsp *r = p->data;
	/* Nothing is sent after an answer that said "Connection: close". */
	FZ_CHECK(!r->after_close);
	r->ocsp = false;
	r->close = false;
	r->len = 0;
	return 0;
}

static int rsp_complete(http_parser *p)
{
	struct rsp *r = p->data;
	r->count++;
	FZ_CHECK(p->http_major == 1 && p->http_minor == 1);
	FZ_CHECK(strcmp(http_status_text((int)p->status_code), "Unknown") != 0);
	r->after_close = r->close;
	if (r->ocsp && r->len) {
		const unsigned char *d = r->body;
		OCSP_RESPONSE *o = d2i_OCSP_RESPONSE(NULL, &d, (long)r->len);
		FZ_CHECK(o && d == r->body + r->len);
		OCSP_RESPONSE_free(o);
	}
	return 0;
}

/* check_output checks that what the client received is a sequence of
 * complete HTTP/1.1 responses (a HEAD request's answer has no body, so a
 * response parser cannot frame those: skipped when HEAD was asked). */
static void check_output(bool head)
{
	if (fk.out_len == 0)
		return;
	FZ_CHECK(fk.out_len > 9 && !memcmp(fk.out, "HTTP/1.1 ", 9));
	if (head)
		return;
	static const http_parser_settings rs = {
	        .on_message_begin = rsp_begin,
	        .on_header_field = rsp_header_field,
	        .on_header_value = rsp_header_value,
	        .on_body = rsp_body,
	        .on_message_complete = rsp_complete,
	};
	struct rsp r = {0};
	http_parser p;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &r;
	size_t done = http_parser_execute(&p, &rs, (const char *)fk.out, fk.out_len);
	if (HTTP_PARSER_ERRNO(&p) != HPE_OK || done != fk.out_len) {
		fprintf(stderr, "unframed output (%s at %zu of %zu):\n%.*s\n",
		        http_errno_name(HTTP_PARSER_ERRNO(&p)), done, fk.out_len, (int)fk.out_len,
		        (const char *)fk.out);
		abort();
	}
	/* Every response has a Content-Length (but a 304's, which has no body),
	 * so the last is complete when the bytes end. */
	FZ_CHECK(r.count >= 1);
	free(r.body);
}

/* ---- The target ----------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_world_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_world_init();
	if (g_access_fd < 0)
		g_access_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	fz_world_reset();
	uint32_t h = fz_hash(data, size);
	struct worker *w = &fz_w;
	w->ctx = fz_ctx[(h & 3) == 0];
	fk.mode = (enum fk_mode)((h >> 2) & 3);
	fk.try_writes = 0;
	fk.out_len = 0;
	fk.lost = false;
	fk.reading = false;
	fk.accept_fails = ((h >> 4) & 63) == 0;
	size_t chunk = (h >> 10) & 1 ? 1 + (h >> 11) % 61 : sizeof(w->rbuf);
	bool timeout_at_end = (h >> 17) & 1;
	w->draining = ((h >> 18) & 63) == 0;
	w->txn_ok = ((h >> 23) & 31) != 0;
	atomic_store(&g_open_conns, ((h >> 28) & 15) == 0 ? w->ctx->conf.max_connections : 0);
	int open_before = atomic_load(&g_open_conns);

	conn_accept(w, -1);
	struct conn *c = w->conns;
	if (c) {
		fk_pump();
		for (size_t off = 0; off < size && !c->closed;) {
			size_t n = size - off < chunk ? size - off : chunk;
			if (n > sizeof(w->rbuf))
				n = sizeof(w->rbuf);
			if (fk.reading) {
				uv_buf_t buf;
				conn_on_alloc((uv_handle_t *)&c->tcp, n, &buf);
				memcpy(buf.base, data + off, n);
				conn_on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &buf);
				off += n;
			}
			/* A client that is not read from waits for its answers. */
			fk_pump();
			/* A pipelined batch paused: the rest of the read is parsed on
			 * the next loop turns (each at most PIPELINE_BATCH requests). */
			for (int turn = 0; turn < 4096 && !c->closed && c->tail && fk.qn == 0;
			     turn++) {
				uv_run(&w->loop, UV_RUN_NOWAIT);
				fk_pump();
			}
			if (!fk.reading && !c->closed && c->phase != PH_CLOSING && fk.qn == 0 &&
			    !fk.shut) {
				/* Nothing pending would restart reading: a stall would be a bug. */
				FZ_CHECK(c->reading);
			}
			if (!fk.reading)
				break;
		}
		if (!c->closed) {
			if (timeout_at_end &&
			    (c->phase == PH_HEADERS || c->phase == PH_BODY || c->phase == PH_IDLE))
				conn_on_timer(&c->timer);
			else if (fk.reading)
				conn_on_read((uv_stream_t *)&c->tcp,
				             (h >> 21) & 1 ? UV_ECONNRESET : UV_EOF, NULL);
			fk_pump();
		}
		if (!c->closed && c->phase == PH_CLOSING)
			conn_on_timer(&c->timer); /* lingering close ends */
		if (!c->closed)
			conn_close(c);
		/* libuv cancels the writes of a closed stream before its close callback. */
		fk_complete_writes(UV_ECANCELED);
		if (fk.shut)
			fk_pump();
	}
	while (uv_run(&w->loop, UV_RUN_NOWAIT))
		;
	FZ_CHECK(w->conns == NULL && fk.qn == 0 && fk.qbytes == 0);
	FZ_CHECK(atomic_load(&g_open_conns) == open_before);
	bool head = false;
	for (size_t i = 0; i + 4 < size && !head; i++)
		head = !memcmp(data + i, "HEAD", 4);
	if (getenv("VIGIL_FUZZ_DUMP"))
		fprintf(stderr, "---- mode=%d chunk=%zu ctx=%d out=%zu lost=%d\n%.*s\n----\n",
		        fk.mode, chunk, w->ctx == fz_ctx[1], fk.out_len, fk.lost, (int)fk.out_len,
		        (const char *)fk.out);
	if (!fk.lost)
		check_output(head);
	cache_quiescent(0);
	return 0;
}
