/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the whole HTTP request path of the responder, bytes in,
 * response bytes out. responder/http.c is #include'd (h2o's way of reaching
 * statics) and runs unchanged: a connection is accepted by
 * accept_fd, the input is delivered through on_read (whole, or in
 * small reads), parsed by http-parser, routed (OCSP GET and POST, /healthz,
 * /metrics, /crl/, limits, pipelining, 100-continue, timeouts, lingering
 * close) and answered against a real store and real signers
 * (fuzz_responder.h). There is no socket: the few libuv stream calls http.c
 * makes are redirected to fakes below that collect what would be written,
 * and that now and then write partially or not at all (EAGAIN) so that the
 * queued-write path runs too. Timers and handle closing are libuv's own.
 *
 * Which variant runs (snapshot, read size, write behaviour, a timeout at the
 * end, draining, a full house) follows from a hash of the input, so an
 * input always runs alike. Checks: the output is a sequence of well-framed
 * HTTP/1.1 responses; every OCSP body parses as an OCSPResponse.
 */
#include <uv.h>

struct conn;
static int fz_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n);
static int fz_write_req(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                        uv_write_cb cb);
static int fz_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
static int fz_read_stop(uv_stream_t *s);
static int fz_shutdown(uv_shutdown_t *req, uv_stream_t *s, uv_shutdown_cb cb);
static size_t fz_queue_size(const uv_stream_t *s);
static int fz_getpeername(const uv_tcp_t *h, struct sockaddr *name, int *namelen);
static int fz_tcp_open(uv_tcp_t *h, uv_os_sock_t sock);

#define uv_try_write fz_try_write
#define uv_write fz_write_req
#define uv_read_start fz_read_start
#define uv_read_stop fz_read_stop
#define uv_shutdown fz_shutdown
#define uv_stream_get_write_queue_size fz_queue_size
#define uv_tcp_getpeername fz_getpeername
#define uv_tcp_open fz_tcp_open
/* Before fuzz_responder.h, whose includes would otherwise come first. */
#include "responder/http.c"
#undef uv_try_write
#undef uv_write
#undef uv_read_start
#undef uv_read_stop
#undef uv_shutdown
#undef uv_stream_get_write_queue_size
#undef uv_tcp_getpeername
#undef uv_tcp_open

#include "tests/fuzz/fuzz_responder.h"

#include <openssl/ocsp.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- The fake stream ---------------------------------------------------------------- */

enum wmode { WM_FULL, WM_EAGAIN, WM_PARTIAL, WM_RESET };

#define FZ_QMAX 64
static struct {
	enum wmode mode;
	unsigned try_writes;
	uint8_t *out; /* what the client received */
	size_t out_len, out_cap;
	struct {
		uv_write_t *req;
		uv_write_cb cb;
		uv_buf_t bufs[2];
		unsigned n;
	} q[FZ_QMAX];
	unsigned qn;
	size_t qbytes;
	uv_shutdown_t *shut;
	uv_shutdown_cb shut_cb;
	bool reading;
	bool accept_fails;
	bool lost; /* bytes written were cancelled or refused: the output may end early */
} F;

static void out_add(const void *p, size_t len)
{
	if (F.out_len + len > F.out_cap) {
		size_t nc = F.out_cap ? F.out_cap : 4096;
		while (nc < F.out_len + len)
			nc *= 2;
		F.out = realloc(F.out, nc);
		FZ_CHECK(F.out);
		F.out_cap = nc;
	}
	memcpy(F.out + F.out_len, p, len);
	F.out_len += len;
}

static int fz_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n)
{
	if (uv_is_closing((uv_handle_t *)s)) {
		F.lost = true;
		return UV_EBADF;
	}
	FZ_CHECK(F.qn == 0); /* libuv refuses try_write with writes queued */
	F.try_writes++;
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	size_t take = total;
	switch (F.mode) {
	case WM_FULL:
		break;
	case WM_EAGAIN:
		return UV_EAGAIN;
	case WM_PARTIAL:
		take = total > 7 ? 7 : total;
		break;
	case WM_RESET:
		if (F.try_writes > 1) {
			F.lost = true;
			return UV_ECONNRESET;
		}
		break;
	}
	size_t left = take;
	for (unsigned i = 0; i < n && left; i++) {
		size_t k = bufs[i].len < left ? bufs[i].len : left;
		out_add(bufs[i].base, k);
		left -= k;
	}
	return take ? (int)take : UV_EAGAIN;
}

static int fz_write_req(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                        uv_write_cb cb)
{
	if (uv_is_closing((uv_handle_t *)s))
		return UV_EBADF;
	if (F.qn == FZ_QMAX)
		return UV_ENOBUFS;
	FZ_CHECK(n >= 1 && n <= 2);
	F.q[F.qn].req = req;
	F.q[F.qn].cb = cb;
	F.q[F.qn].n = n;
	for (unsigned i = 0; i < n; i++) {
		F.q[F.qn].bufs[i] = bufs[i];
		F.qbytes += bufs[i].len;
	}
	F.qn++;
	req->handle = s;
	return 0;
}

static int fz_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
	(void)alloc_cb;
	(void)read_cb;
	if (uv_is_closing((uv_handle_t *)s))
		return UV_EINVAL;
	F.reading = true;
	return 0;
}

static int fz_read_stop(uv_stream_t *s)
{
	(void)s;
	F.reading = false;
	return 0;
}

static int fz_shutdown(uv_shutdown_t *req, uv_stream_t *s, uv_shutdown_cb cb)
{
	if (uv_is_closing((uv_handle_t *)s) || F.shut)
		return UV_ENOTCONN;
	req->handle = s;
	F.shut = req;
	F.shut_cb = cb;
	return 0;
}

static size_t fz_queue_size(const uv_stream_t *s)
{
	(void)s;
	return F.qbytes;
}

static int fz_getpeername(const uv_tcp_t *h, struct sockaddr *name, int *namelen)
{
	(void)h;
	struct sockaddr_in sin;
	uv_ip4_addr("127.0.0.1", 40000, &sin);
	FZ_CHECK((size_t)*namelen >= sizeof(sin));
	memcpy(name, &sin, sizeof(sin));
	*namelen = sizeof(sin);
	return 0;
}

static int fz_tcp_open(uv_tcp_t *h, uv_os_sock_t sock)
{
	(void)h;
	(void)sock;
	return F.accept_fails ? UV_EEXIST : 0;
}

/* complete_writes finishes the queued writes as libuv would: in order, the
 * bytes read only now (they must still be valid), or cancelled. */
static void complete_writes(int status)
{
	while (F.qn) {
		uv_write_t *req = F.q[0].req;
		uv_write_cb cb = F.q[0].cb;
		for (unsigned i = 0; i < F.q[0].n; i++) {
			if (status == 0)
				out_add(F.q[0].bufs[i].base, F.q[0].bufs[i].len);
			else
				F.lost = true;
			F.qbytes -= F.q[0].bufs[i].len;
		}
		memmove(&F.q[0], &F.q[1], (F.qn - 1) * sizeof(F.q[0]));
		F.qn--;
		cb(req, status);
	}
}

/* pump runs what the loop would run between two reads. */
static void pump(void)
{
	complete_writes(0);
	if (F.shut) {
		uv_shutdown_t *req = F.shut;
		uv_shutdown_cb cb = F.shut_cb;
		F.shut = NULL;
		/* The shutdown runs after the queued writes. */
		cb(req, uv_is_closing((uv_handle_t *)req->handle) ? UV_ECANCELED : 0);
	}
}

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
	FZ_CHECK(strcmp(status_text((int)p->status_code), "Unknown") != 0);
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
	if (F.out_len == 0)
		return;
	FZ_CHECK(F.out_len > 9 && !memcmp(F.out, "HTTP/1.1 ", 9));
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
	size_t done = http_parser_execute(&p, &rs, (const char *)F.out, F.out_len);
	if (HTTP_PARSER_ERRNO(&p) != HPE_OK || done != F.out_len) {
		fprintf(stderr, "unframed output (%s at %zu of %zu):\n%.*s\n",
		        http_errno_name(HTTP_PARSER_ERRNO(&p)), done, F.out_len, (int)F.out_len,
		        (const char *)F.out);
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
	F.mode = (enum wmode)((h >> 2) & 3);
	F.try_writes = 0;
	F.out_len = 0;
	F.lost = false;
	F.reading = false;
	F.accept_fails = ((h >> 4) & 63) == 0;
	size_t chunk = (h >> 10) & 1 ? 1 + (h >> 11) % 61 : sizeof(w->rbuf);
	bool timeout_at_end = (h >> 17) & 1;
	w->draining = ((h >> 18) & 63) == 0;
	w->txn_ok = ((h >> 23) & 31) != 0;
	atomic_store(&g_open_conns, ((h >> 28) & 15) == 0 ? w->ctx->conf.max_connections : 0);
	int open_before = atomic_load(&g_open_conns);

	accept_fd(w, -1);
	struct conn *c = w->conns;
	if (c) {
		pump();
		for (size_t off = 0; off < size && !c->closed;) {
			size_t n = size - off < chunk ? size - off : chunk;
			if (n > sizeof(w->rbuf))
				n = sizeof(w->rbuf);
			if (F.reading) {
				uv_buf_t buf;
				on_alloc((uv_handle_t *)&c->tcp, n, &buf);
				memcpy(buf.base, data + off, n);
				on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &buf);
				off += n;
			}
			/* A client that is not read from waits for its answers. */
			pump();
			/* A pipelined batch paused: the rest of the read is parsed on
			 * the next loop turns (each at most PIPELINE_BATCH requests). */
			for (int turn = 0; turn < 4096 && !c->closed && c->tail && F.qn == 0;
			     turn++) {
				uv_run(&w->loop, UV_RUN_NOWAIT);
				pump();
			}
			if (!F.reading && !c->closed && c->phase != PH_CLOSING && F.qn == 0 &&
			    !F.shut) {
				/* Nothing pending would restart reading: a stall would be a bug. */
				FZ_CHECK(c->reading);
			}
			if (!F.reading)
				break;
		}
		if (!c->closed) {
			if (timeout_at_end &&
			    (c->phase == PH_HEADERS || c->phase == PH_BODY || c->phase == PH_IDLE))
				on_timer(&c->timer);
			else if (F.reading)
				on_read((uv_stream_t *)&c->tcp,
				        (h >> 21) & 1 ? UV_ECONNRESET : UV_EOF, NULL);
			pump();
		}
		if (!c->closed && c->phase == PH_CLOSING)
			on_timer(&c->timer); /* lingering close ends */
		if (!c->closed)
			conn_close(c);
		/* libuv cancels the writes of a closed stream before its close callback. */
		complete_writes(UV_ECANCELED);
		if (F.shut)
			pump();
	}
	while (uv_run(&w->loop, UV_RUN_NOWAIT))
		;
	FZ_CHECK(w->conns == NULL && F.qn == 0 && F.qbytes == 0);
	FZ_CHECK(atomic_load(&g_open_conns) == open_before);
	bool head = false;
	for (size_t i = 0; i + 4 < size && !head; i++)
		head = !memcmp(data + i, "HEAD", 4);
	if (getenv("VIGIL_FUZZ_DUMP"))
		fprintf(stderr, "---- mode=%d chunk=%zu ctx=%d out=%zu lost=%d\n%.*s\n----\n",
		        F.mode, chunk, w->ctx == fz_ctx[1], F.out_len, F.lost, (int)F.out_len,
		        (const char *)F.out);
	if (!F.lost)
		check_output(head);
	cache_quiescent(0);
	return 0;
}
