/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 connections on libuv, framed by the http-parser library.
 *
 * A connection lives in its worker's loop. Requests are answered as soon as
 * they are complete, synchronously (store read, cache lookup or signature),
 * so pipelined requests are answered in order by construction. Each
 * connection has one timer whose meaning follows its phase: idle (waiting for
 * the next request), headers (from the first byte of a request), body (from
 * the end of the headers), closing (lingering close after the last answer).
 * The phase only records its deadline; the libuv timer is moved when a
 * deadline comes earlier than it is due, and otherwise re-armed when it fires
 * early (a keep-alive request moves the deadline three times, the timer
 * heap not at all).
 *
 * A response is built on the stack and written at once (uv_try_write) when
 * nothing is queued; whatever the socket does not take is copied into one
 * heap block and queued, freed in its write callback. A CRL body is not held
 * in memory at all: it goes from the file to the socket (sendfile), as fast
 * as the client reads, and each version of a CRL file is opened and read
 * (for its ETag and dates) once per process, shared by the workers
 * (crl_get). So memory does not grow with CRL size, publications or slow
 * readers.
 *
 * Connections are accepted here, not by libuv (whose answer to running out
 * of descriptors is to accept and close every pending connection without a
 * word): on EMFILE or ENFILE the worker gives up a reserve descriptor,
 * accepts, answers 503 and closes, then takes the reserve back.
 */
#include "responder/resp.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define LINGER_MS 2000
#define WRITE_HIGH (1u << 20) /* stop reading a client that does not read its answers */
#define WRITE_LOW (256u << 10)
/* Requests answered from one read (or one resumption) before the others'
 * turn: 300 pipelined nonce requests would otherwise hold the worker for as
 * many signatures, and 64 KiB of small pipelined requests would pile up
 * megabytes of answers that the client may never read. */
#define PIPELINE_BATCH 32
/* What all the connections of a worker may hold of answers their clients
 * have not read (and of requests kept past a pause), whatever their number:
 * WRITE_HIGH alone would let 10,000 connections that never read hold 10 GB. */
#define WORKER_HOLD_MAX (64u << 20)

enum phase { PH_IDLE, PH_HEADERS, PH_BODY, PH_CLOSING };
enum hdr { H_OTHER, H_INM, H_EXPECT };

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_idle_t resume; /* parses |tail| on a later loop turn */
	uv_shutdown_t shut;
	struct worker *w;
	struct conn *prev, *next;
	http_parser parser;
	enum phase phase;
	int handles;
	bool in_read;  /* in on_read: the timer is synced once, at its end */
	bool closed;   /* uv_close called */
	bool closing;  /* answer no further request */
	bool shutting; /* uv_shutdown issued */
	bool eof;
	bool reading;
	bool close_after; /* this request's framing asks to close after its answer */
	int err;          /* HTTP status to answer when a callback refused the request */
	const char *err_reason;
	unsigned writes; /* pending */
	unsigned batch;  /* requests answered since the parser last started */
	uint8_t *tail;   /* what a read held past the request the parser paused at */
	size_t tail_len;
	uint64_t sent;       /* bytes handed to libuv or the kernel */
	uint64_t queue_mark; /* bytes delivered when a deadline last looked (write_progress) */
	/* The CRL body being sent from its file (stream_pump): bytes
	 * [soff, send_off) are still to go. */
	struct crl_file *sfile;
	uint64_t soff, send_off;
	bool no_sendfile; /* the socket or the file cannot sendfile: chunks by libuv */
	uint64_t t_start;
	uint64_t deadline; /* loop time (ms) at which the phase times out */
	uint64_t armed;    /* loop time the libuv timer is due at, 0 when stopped */
	/* the request being parsed */
	char *url;
	size_t url_len, url_cap;
	/* The body is read in place (|body_at|, in the worker's read buffer)
	 * while it came in one piece in the current read; copied into |body|
	 * otherwise. */
	const uint8_t *body_at;
	uint8_t *body;
	size_t body_len, body_cap;
	size_t hdr_bytes;
	char field[24];
	size_t field_len;
	bool in_value;
	enum hdr cur;
	char inm[512];
	size_t inm_len;
	char expect[32];
	size_t expect_len;
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	size_t held; /* bytes copied into |data|, counted in the worker's held */
	uv_buf_t bufs[2];
	char data[];
};

/* One version of a CRL file, shared by the workers: the file stays open
 * while a worker serves it or a client is sent it, so a version replaced by
 * a publication is still sent whole to whoever asked for it. A version that
 * could not be read is one too (|err|), so that it is not read again for
 * every request: only after CRL_RETRY_MS. */
struct crl_file {
	atomic_int refs;
	struct crl_file *next; /* in the registry (crl_reg) */
	int fd;                /* -1 when |err| */
	int err;               /* 0, or why this version cannot be served (negative errno) */
	uint64_t retry_ms;     /* |err|: when the file is tried again (crl_clock_ms) */
	size_t len;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int64_t this_update, next_update;
	char etag[40];
};

static const char *status_text(int s)
{
	switch (s) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/* ---- Small helpers ------------------------------------------------------------- */

void http_date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
	         mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Standard and URL-safe base64 digits, plus one (0: not a digit). A table:
 * every GET decodes a hundred-odd digits. */
static const uint8_t b64_digit[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['-'] = 63,
    ['/'] = 64, ['_'] = 64,
};

static inline int b64_val(unsigned char ch)
{
	return b64_digit[ch] - 1;
}

ssize_t b64_decode(const char *in, size_t len, uint8_t *out)
{
	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	const unsigned char *u = (const unsigned char *)in;
	size_t o = 0, i = 0;
	/* Four digits, three octets at a time; then what is left, bit by bit. */
	for (; i + 4 <= len; i += 4) {
		int a = b64_val(u[i]), b = b64_val(u[i + 1]), c = b64_val(u[i + 2]),
		    d = b64_val(u[i + 3]);
		if ((a | b | c | d) < 0)
			return -1;
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	uint32_t acc = 0;
	int bits = 0;
	for (; i < len; i++) {
		int v = b64_val(u[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* pct_decode decodes %XX escapes of |in| into |out| (at least |len| + 1
 * bytes). Returns the length or -1 on a bad escape. */
static ssize_t pct_decode(const char *in, size_t len, char *out)
{
	const char *pct = memchr(in, '%', len);
	if (!pct) {
		/* Most clients send base64 with no escapes (or only in places). */
		memcpy(out, in, len);
		out[len] = '\0';
		return (ssize_t)len;
	}
	size_t o = (size_t)(pct - in);
	memcpy(out, in, o);
	for (size_t i = o; i < len; i++) {
		if (in[i] == '%') {
			int h, l;
			if (i + 2 >= len || (h = hexval(in[i + 1])) < 0 ||
			    (l = hexval(in[i + 2])) < 0)
				return -1;
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

static const char *peer(struct conn *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	snprintf(buf, len, "-");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
		char ip[64];
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			snprintf(buf, len, "[%s]:%d", ip,
			         ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		} else if (ss.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			snprintf(buf, len, "%s:%d", ip,
			         ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	return buf;
}

/* ---- Connection lifecycle ----------------------------------------------------------------- */

static void conn_free_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->handles > 0)
		return;
	free(c->url);
	free(c->body);
	if (c->tail)
		c->w->held -= c->tail_len;
	free(c->tail);
	crl_file_unref(c->sfile);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	struct worker *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_fetch_sub(&g_open_conns, 1);
	m_set(&w->m.conns_open, w->m.conns_open - 1);
	uv_close((uv_handle_t *)&c->timer, conn_free_cb);
	uv_close((uv_handle_t *)&c->resume, conn_free_cb);
	uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
}

static void on_timer(uv_timer_t *t);
static void on_timer_due(uv_timer_t *t);

/* sync_timer makes the libuv timer fire no later than the deadline. A timer
 * due earlier is left alone: on_timer_due re-arms it for the rest. */
static void sync_timer(struct conn *c)
{
	if (c->closed || (c->armed && c->armed <= c->deadline))
		return;
	uint64_t now = uv_now(&c->w->loop);
	uint64_t in = c->deadline > now ? c->deadline - now : 0;
	uv_timer_start(&c->timer, on_timer_due, in, 0);
	c->armed = now + in;
}

/* set_timer starts the phase's timeout of |ms| from now; on_timer acts on the
 * phase the connection is in when the deadline passes. */
static void set_timer(struct conn *c, uint64_t ms)
{
	c->deadline = uv_now(&c->w->loop) + ms;
	if (!c->in_read)
		sync_timer(c);
}

static void on_timer_due(uv_timer_t *t)
{
	struct conn *c = t->data;
	c->armed = 0;
	if (uv_now(&c->w->loop) < c->deadline) {
		sync_timer(c);
		return;
	}
	on_timer(t);
}
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void start_reading(struct conn *c);

static void on_resume(uv_idle_t *h);

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;
	if (c->closed)
		return;
	if (status < 0 || c->eof) {
		conn_close(c);
		return;
	}
	/* Lingering close: read and drop what the client still sends, so that our
	 * last answer is not destroyed by a reset. */
	c->phase = PH_CLOSING;
	set_timer(c, LINGER_MS);
	start_reading(c);
}

/* begin_close answers nothing more and closes once the answers are written. */
static void begin_close(struct conn *c)
{
	c->closing = true;
	/* A CRL still being sent: the shutdown waits for its end (stream_end). */
	if (c->closed || c->shutting || c->sfile)
		return;
	c->shutting = true;
	c->phase = PH_CLOSING;
	set_timer(c, LINGER_MS + 10000);
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		conn_close(c);
}

static size_t hold_max(const struct worker *w)
{
	return w->hold_max ? w->hold_max : WORKER_HOLD_MAX;
}

/* hold_back tells whether |c| should take no more requests for now: its
 * client has not read 1 MiB of answers, or has not read some while the
 * worker as a whole holds too much. */
static bool hold_back(struct conn *c)
{
	size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	return c->sfile || q > WRITE_HIGH || (q > 0 && c->w->held > hold_max(c->w));
}

/* may_resume is its end: little queued, and nothing at all while the worker
 * holds too much (so a connection whose client reads always gets back). */
static bool may_resume(struct conn *c)
{
	size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	return !c->sfile && q < WRITE_LOW && (q == 0 || c->w->held <= hold_max(c->w));
}

/* resume takes requests again once the client has read enough. */
static void resume(struct conn *c)
{
	if (!c->reading && !c->closing && !c->eof && may_resume(c)) {
		if (c->tail)
			uv_idle_start(&c->resume, on_resume);
		else
			start_reading(c);
	}
}

static void stream_pump(struct conn *c);

static void on_write(uv_write_t *req, int status)
{
	struct wreq *wr = container_of(req, struct wreq, req);
	struct conn *c = wr->c;
	c->w->held -= wr->held;
	free(wr);
	c->writes--;
	if (c->closed)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->sfile)
		stream_pump(c);
	else
		resume(c);
}

/* pending_bytes is what |c| has still to deliver: what libuv holds and what
 * the kernel has not had acknowledged (SIOCOUTQ). libuv's part moves only in
 * steps, when a third of the socket's buffer is free again; the kernel's
 * with every ACK. */
static size_t pending_bytes(struct conn *c)
{
	size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	uv_os_fd_t fd;
	int out = 0;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, SIOCOUTQ, &out) < 0)
		out = 0;
	return q + (size_t)(out > 0 ? out : 0);
}

/* delivered is what the client of |c| has had of what was sent to it. */
static uint64_t delivered(struct conn *c)
{
	size_t p = pending_bytes(c);
	return c->sent > p ? c->sent - p : 0;
}

/* A deadline moves on only for a client that read at least this much since
 * the last look: one that takes a byte now and then is not reading. */
#define PROGRESS_MIN 4096

/* send_bufs writes |head| then |body| (|blen| may be 0), after what is
 * queued. What the socket does not take at once is copied into one heap
 * block and queued (counted in the worker's |held|); with |queue|, all of it
 * is (its callback then comes on a later loop turn). */
static void send_bufs(struct conn *c, const char *head, size_t hlen, const char *body, size_t blen,
                      bool queue)
{
	uv_stream_t *st = (uv_stream_t *)&c->tcp;
	size_t done = 0;
	c->sent += hlen + blen;
	if (!queue && uv_stream_get_write_queue_size(st) == 0 && c->writes == 0) {
		/* Write at once: a uv_write that completes synchronously still costs
		 * an epoll_ctl, a deferred callback and a copy. */
		uv_buf_t b[2] = {uv_buf_init((char *)head, (unsigned)hlen),
		                 uv_buf_init((char *)body, (unsigned)blen)};
		int w = uv_try_write(st, b, blen ? 2 : 1);
		if (w < 0 && w != UV_EAGAIN) {
			conn_close(c);
			return;
		}
		if (w > 0)
			done = (size_t)w;
		if (done >= hlen + blen)
			return;
	}
	size_t hrest = done < hlen ? hlen - done : 0;
	size_t bskip = done > hlen ? done - hlen : 0;
	size_t brest = blen - bskip;
	size_t copy = hrest + brest;
	struct wreq *wr = malloc(sizeof(*wr) + copy);
	if (!wr) {
		conn_close(c);
		return;
	}
	wr->c = c;
	wr->held = copy;
	c->w->held += copy;
	/* Pointers are only offset when there are bytes left: a NULL body
	 * plus 0 is undefined in C. */
	if (hrest)
		memcpy(wr->data, head + done, hrest);
	if (brest)
		memcpy(wr->data + hrest, body + bskip, brest);
	wr->bufs[0] = uv_buf_init(wr->data, (unsigned)copy);
	c->writes++;
	if (uv_write(&wr->req, st, wr->bufs, 1, on_write) < 0) {
		c->writes--;
		c->w->held -= wr->held;
		free(wr);
		conn_close(c);
		return;
	}
	/* Progress is measured from here (write_progress). */
	c->queue_mark = delivered(c);
	if (hold_back(c) && c->reading) {
		uv_read_stop(st);
		c->reading = false;
	}
}

/* ---- CRL bodies, from the file to the socket ---------------------------------------------- */

/* What stream_pump sends before it lets the other connections have their turn. */
#define STREAM_TURN (1u << 20)
/* A piece of the body written through libuv when the socket takes no more:
 * its callback tells when it takes more. All a slow reader costs in memory
 * (counted in the worker's |held|): 10,000 of them, 40 MiB. */
#define STREAM_CHUNK 4096

/* stream_end: the body is sent; the connection goes on (or closes, as its
 * request asked). */
static void stream_end(struct conn *c)
{
	crl_file_unref(c->sfile);
	c->sfile = NULL;
	if (c->closed)
		return;
	if (c->closing)
		begin_close(c);
	else
		resume(c);
}

/* stream_pump sends what the socket takes of the CRL body, by sendfile, and
 * when it takes no more (or after STREAM_TURN bytes) queues a chunk through
 * libuv, whose callback (on_write) calls again. Where sendfile cannot be
 * used, the body goes in chunks read from the file. */
static void stream_pump(struct conn *c)
{
	uv_stream_t *st = (uv_stream_t *)&c->tcp;
	size_t turn = 0;
	while (c->sfile && !c->closed) {
		if (c->writes || uv_stream_get_write_queue_size(st))
			return; /* on_write calls again */
		uint64_t left = c->send_off - c->soff;
		if (!left) {
			stream_end(c);
			return;
		}
		uv_os_fd_t sock;
		if (!c->no_sendfile && turn < STREAM_TURN) {
			if (uv_fileno((uv_handle_t *)&c->tcp, &sock) != 0) {
				c->no_sendfile = true;
			} else {
				off_t off = (off_t)c->soff;
				size_t want =
				    left < STREAM_TURN - turn ? (size_t)left : STREAM_TURN - turn;
				ssize_t n = sendfile(sock, c->sfile->fd, &off, want);
				if (n > 0) {
					c->soff += (uint64_t)n;
					c->sent += (uint64_t)n;
					turn += (size_t)n;
					continue;
				}
				if (n == 0) { /* the file is shorter than it was */
					conn_close(c);
					return;
				}
				if (errno == EINVAL || errno == ENOSYS)
					c->no_sendfile = true;
				else if (errno != EAGAIN && errno != EWOULDBLOCK &&
				         errno != EINTR) {
					conn_close(c);
					return;
				}
			}
		}
		char chunk[STREAM_CHUNK];
		size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		ssize_t n = pread(c->sfile->fd, chunk, want, (off_t)c->soff);
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->soff += (uint64_t)n;
		turn += (size_t)n;
		/* With sendfile, the socket is full (or the turn is over): queue.
		 * Without, write at once what it takes, up to the turn. */
		send_bufs(c, chunk, (size_t)n, NULL, 0, !c->no_sendfile || turn >= STREAM_TURN);
	}
}

/* stream_start sends the |len| bytes of |f| after what is queued. */
static void stream_start(struct conn *c, struct crl_file *f, size_t len)
{
	if (c->closed)
		return;
	atomic_fetch_add(&f->refs, 1);
	c->sfile = f;
	c->soff = 0;
	c->send_off = len;
	c->no_sendfile = false;
	stream_pump(c);
	/* No request is answered before the body is sent. */
	if (c->sfile && c->reading && !c->closed) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void access_log(struct conn *c, int status, size_t blen)
{
	if (g_access_fd < 0)
		return;
	char p[80], line[1024];
	const char *m = http_method_str((enum http_method)c->parser.method);
	char path[256];
	size_t ul = c->url_len < sizeof(path) - 1 ? c->url_len : sizeof(path) - 1;
	for (size_t i = 0; i < ul; i++) {
		unsigned char ch = (unsigned char)c->url[i];
		path[i] = (ch <= ' ' || ch == '"' || ch >= 0x7f) ? '?' : (char)ch;
	}
	path[ul] = '\0';
	int n = snprintf(line, sizeof(line),
	                 "ts=%lld peer=%s method=%s path=\"%s\" status=%d bytes=%zu dur_us=%llu\n",
	                 (long long)time(NULL), peer(c, p, sizeof(p)), c->url ? m : "-", path,
	                 status, blen,
	                 (unsigned long long)(c->t_start ? (uv_hrtime() - c->t_start) / 1000 : 0));
	if (n > 0 && write(g_access_fd, line, (size_t)n) < 0) {
		/* nothing to do: the access log is best effort */
	}
}

/* A response head is built with these, not snprintf (a third of the
 * instructions of a cached answer went to formatting). */
struct hb {
	char *p, *end;
	bool over;
};

static void hb_put(struct hb *b, const char *s, size_t n)
{
	if ((size_t)(b->end - b->p) < n) {
		b->over = true;
		return;
	}
	memcpy(b->p, s, n);
	b->p += n;
}

#define HB_LIT(b, lit) hb_put((b), (lit), sizeof(lit) - 1)

static void hb_str(struct hb *b, const char *s)
{
	hb_put(b, s, strlen(s));
}

static void hb_u64(struct hb *b, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	hb_put(b, d + i, sizeof(d) - i);
}

#define HEAD_MAX 1024
#define INLINE_BODY_MAX 3072 /* bodies up to this are sent in one buffer with their head */

/* respond queues one response. |extra| holds extra header lines (each ending in
 * CRLF), |elen| bytes; the body is |body|, or with |ref| the CRL file's first
 * |blen| bytes. */
static void respond_n(struct conn *c, int status, const char *ctype, const char *extra, size_t elen,
                      const void *body, size_t blen, struct crl_file *ref)
{
	struct worker *w = c->w;
	bool head = c->parser.method == HTTP_HEAD && c->url;
	if (w->draining)
		c->closing = true;
	char out[HEAD_MAX + INLINE_BODY_MAX];
	struct hb b = {out, out + HEAD_MAX, false};
	HB_LIT(&b, "HTTP/1.1 ");
	hb_u64(&b, (uint64_t)status);
	HB_LIT(&b, " ");
	hb_str(&b, status_text(status));
	HB_LIT(&b, "\r\nServer: vigil\r\nDate: ");
	hb_str(&b, w->date);
	HB_LIT(&b, "\r\n");
	/* A 304 carries no Content-Length: RFC 9110 8.6 allows only the 200's
	 * length there, and a cache that copied "0" onto its stored answer would
	 * truncate it. */
	if (status != 304) {
		HB_LIT(&b, "Content-Length: ");
		hb_u64(&b, blen);
		HB_LIT(&b, "\r\n");
	}
	if (ctype) {
		HB_LIT(&b, "Content-Type: ");
		hb_str(&b, ctype);
		HB_LIT(&b, "\r\n");
	}
	if (elen)
		hb_put(&b, extra, elen);
	if (c->closing)
		HB_LIT(&b, "Connection: close\r\n");
	else if (c->url && c->parser.http_major == 1 && c->parser.http_minor == 0)
		HB_LIT(&b, "Connection: keep-alive\r\n");
	HB_LIT(&b, "\r\n");
	if (b.over) {
		conn_close(c);
		return;
	}
	size_t hlen = (size_t)(b.p - out);
	if (status >= 100 && status < 600)
		m_add(&w->m.http[status], 1);
	if (c->t_start)
		metrics_observe_latency(&w->m, uv_hrtime() - c->t_start);
	access_log(c, status, head ? 0 : blen);
	if (head || !blen) {
		send_bufs(c, out, hlen, NULL, 0, false);
	} else if (ref) {
		send_bufs(c, out, hlen, NULL, 0, false);
		stream_start(c, ref, blen);
	} else if (blen <= INLINE_BODY_MAX) {
		/* One buffer: write(2) rather than writev(2). */
		memcpy(out + hlen, body, blen);
		send_bufs(c, out, hlen + blen, NULL, 0, false);
	} else {
		send_bufs(c, out, hlen, body, blen, false);
	}
}

static void respond(struct conn *c, int status, const char *ctype, const char *extra,
                    const void *body, size_t blen, struct crl_file *ref)
{
	respond_n(c, status, ctype, extra, extra ? strlen(extra) : 0, body, blen, ref);
}

static void respond_text(struct conn *c, int status, const char *text, const char *extra)
{
	respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text), NULL);
}

/* get_only_route tells whether the request's path is one of the routes
 * other than OCSP's (/healthz, /metrics, /crl/...), which take GET and HEAD
 * only: what a 405's Allow says. */
static bool get_only_route(const struct conn *c)
{
	size_t ul = c->url ? c->url_len : 0;
	const char *q = ul ? memchr(c->url, '?', ul) : NULL;
	if (q)
		ul = (size_t)(q - c->url);
	return (ul >= 8 && (!memcmp(c->url + ul - 8, "/healthz", 8) ||
	                    !memcmp(c->url + ul - 8, "/metrics", 8))) ||
	       (ul >= 4 && !memcmp(c->url + ul - 4, ".crl", 4));
}

/* fail answers a refused request with |status| and closes the connection. */
static void fail(struct conn *c, int status, const char *reason)
{
	char p[80];
	if (worker_log_ok(c->w, log_kind_refused(status)))
		log_info("event=http_refused status=%d reason=%s peer=%s", status, reason,
		         peer(c, p, sizeof(p)));
	c->closing = true;
	char text[128];
	snprintf(text, sizeof(text), "%d %s\n", status, status_text(status));
	const char *allow = status != 405       ? NULL
	                    : get_only_route(c) ? "Allow: GET, HEAD\r\n"
	                                        : "Allow: GET, HEAD, POST\r\n";
	respond_text(c, status, text, allow);
	begin_close(c);
}

/* ---- Parser callbacks ---------------------------------------------------------------------- */

static void req_reset(struct conn *c)
{
	c->url_len = 0;
	c->body_at = NULL;
	c->body_len = 0;
	c->hdr_bytes = 0;
	c->field_len = 0;
	c->in_value = false;
	c->cur = H_OTHER;
	c->inm_len = 0;
	c->expect_len = 0;
	c->err = 0;
	c->err_reason = NULL;
	c->close_after = false;
}

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;
	req_reset(c);
	c->t_start = uv_hrtime();
	c->phase = PH_HEADERS;
	set_timer(c, c->w->ctx->conf.header_timeout_ms);
	return 0;
}

static int refuse(struct conn *c, int status, const char *reason)
{
	c->err = status;
	c->err_reason = reason;
	return -1;
}

static bool grow(void **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t nc = *cap ? *cap : 256;
	while (nc < need)
		nc *= 2;
	void *nb = realloc(*buf, nc);
	if (!nb)
		return false;
	*buf = nb;
	*cap = nc;
	return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (c->url_len + len > (size_t)c->w->ctx->conf.max_header_bytes)
		return refuse(c, 414, "uri_too_long");
	if (!grow((void **)&c->url, &c->url_cap, c->url_len + len + 1))
		return refuse(c, 503, "out_of_memory");
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	c->url[c->url_len] = '\0';
	return 0;
}

static int count_header(struct conn *c, size_t len)
{
	c->hdr_bytes += len;
	if (c->hdr_bytes > (size_t)c->w->ctx->conf.max_header_bytes)
		return refuse(c, 431, "headers_too_large");
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (count_header(c, len + 4) < 0)
		return -1;
	/* "Content-Length : 3": http-parser takes the space as part of the name
	 * and still frames the body by it, where a proxy in front may not; RFC
	 * 9112 §5.1 asks for 400. */
	if (memchr(at, ' ', len) || memchr(at, '\t', len))
		return refuse(c, 400, "space_in_field_name");
	if (c->in_value) {
		c->in_value = false;
		c->field_len = 0;
	}
	if (c->field_len < sizeof(c->field) - 1) {
		size_t room = sizeof(c->field) - 1 - c->field_len;
		memcpy(c->field + c->field_len, at, len < room ? len : room);
	}
	c->field_len += len;
	return 0;
}

static void append(char *dst, size_t cap, size_t *dlen, const char *at, size_t len)
{
	size_t room = cap - 1 - *dlen;
	if (len > room)
		len = room;
	memcpy(dst + *dlen, at, len);
	*dlen += len;
	dst[*dlen] = '\0';
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (count_header(c, len) < 0)
		return -1;
	if (!c->in_value) {
		c->in_value = true;
		size_t fl = c->field_len;
		c->cur = H_OTHER;
		if (fl == 13 && !strncasecmp(c->field, "If-None-Match", 13)) {
			c->cur = H_INM;
			if (c->inm_len)
				append(c->inm, sizeof(c->inm), &c->inm_len, ",", 1);
		} else if (fl == 6 && !strncasecmp(c->field, "Expect", 6)) {
			c->cur = H_EXPECT;
		}
	}
	if (c->cur == H_INM)
		append(c->inm, sizeof(c->inm), &c->inm_len, at, len);
	else if (c->cur == H_EXPECT)
		append(c->expect, sizeof(c->expect), &c->expect_len, at, len);
	return 0;
}

static void send_continue(struct conn *c)
{
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	send_bufs(c, msg, sizeof(msg) - 1, NULL, 0, false);
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;
	const struct vg_conf *cf = &c->w->ctx->conf;
	/* No protocol is upgraded to here: without this, http-parser would
	 * stop after this request and the rest of the read (pipelined
	 * requests) would be dropped. */
	p->upgrade = 0;
	if (!c->url)
		return refuse(c, 400, "no_url");
	/* http-parser takes any digit pair ("HTTP/9.9"); only 1.x is spoken here. */
	if (p->http_major != 1)
		return refuse(c, 505, "http_version");
	if (p->method != HTTP_GET && p->method != HTTP_HEAD && p->method != HTTP_POST)
		return refuse(c, 405, "method_not_allowed");
	bool chunked = p->flags & F_CHUNKED;
	bool has_len = p->content_length != ULLONG_MAX && p->content_length > 0;
	if (has_len && p->content_length > (uint64_t)cf->max_request_bytes)
		return refuse(c, 413, "body_too_large");
	/* Transfer-Encoding in HTTP/1.0: the framing may be faulty, so the
	 * connection closes after the answer (RFC 9112 §6.1). */
	if (chunked && p->http_minor == 0)
		c->close_after = true;
	if (has_len || chunked) {
		c->phase = PH_BODY;
		set_timer(c, cf->body_timeout_ms);
		/* Not to HTTP/1.0 clients, which do not know 1xx (RFC 9110 §10.1.1). */
		size_t el = c->expect_len;
		while (el && (c->expect[el - 1] == ' ' || c->expect[el - 1] == '\t'))
			el--;
		if (p->http_minor >= 1 && el == 12 && !strncasecmp(c->expect, "100-continue", 12))
			send_continue(c);
	}
	return 0;
}

/* keep_body copies a body read in place into the connection's own buffer,
 * before the read buffer is reused. */
static int keep_body(struct conn *c)
{
	const uint8_t *at = c->body_at;
	if (!at)
		return 0;
	c->body_at = NULL;
	if (!grow((void **)&c->body, &c->body_cap, c->body_len))
		return -1;
	memcpy(c->body, at, c->body_len);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (c->body_len + len > (size_t)c->w->ctx->conf.max_request_bytes)
		return refuse(c, 413, "body_too_large");
	if (c->body_len == 0) {
		/* The common case, a body in one piece: no copy. */
		c->body_at = (const uint8_t *)at;
		c->body_len = len;
		return 0;
	}
	if (keep_body(c) < 0 || !grow((void **)&c->body, &c->body_cap, c->body_len + len))
		return refuse(c, 503, "out_of_memory");
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static void dispatch(struct conn *c);

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;
	if (!http_should_keep_alive(p) || c->w->draining || c->close_after)
		c->closing = true;
	dispatch(c);
	c->t_start = 0;
	c->body_at = NULL; /* answered: nothing to keep */
	if (c->closing) {
		http_parser_pause(p, 1);
		return 0;
	}
	c->phase = PH_IDLE;
	set_timer(c, c->w->ctx->conf.idle_timeout_ms);
	if (++c->batch >= PIPELINE_BATCH || hold_back(c))
		http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- Routes ---------------------------------------------------------------------------- */

/* etag_match tells whether an If-None-Match list names |etag|. */
static bool etag_match(const char *list, const char *etag)
{
	size_t el = strlen(etag);
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (!*s)
			break;
		if (*s == '*')
			return true;
		if (s[0] == 'W' && s[1] == '/')
			s += 2;
		const char *e = s;
		if (*e == '"') {
			e = strchr(s + 1, '"');
			e = e ? e + 1 : s + strlen(s);
		} else {
			while (*e && *e != ',' && *e != ' ')
				e++;
		}
		if ((size_t)(e - s) == el && !memcmp(s, etag, el))
			return true;
		s = e;
	}
	return false;
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
		http_date(c->w->date_t, c->w->date, sizeof(c->w->date));
	}
	static const char no_store[] = "Cache-Control: no-store\r\n";
	char extra[64 + ANSWER_HDRS_MAX];
	const char *ex = no_store;
	size_t elen = sizeof(no_store) - 1;
	if (get && a.cacheable) {
		int64_t max_age = a.next_update - (int64_t)c->w->date_t;
		struct hb b = {extra, extra + sizeof(extra), false};
		HB_LIT(&b, "Cache-Control: max-age=");
		hb_u64(&b, max_age > 0 ? (uint64_t)max_age : 0);
		HB_LIT(&b, ", public, no-transform, must-revalidate\r\n");
		hb_put(&b, a.hdrs, strnlen(a.hdrs, sizeof(a.hdrs)));
		ex = extra;
		elen = (size_t)(b.p - extra);
		if (c->inm_len && etag_match(c->inm, a.etag)) {
			respond_n(c, 304, NULL, ex, elen, NULL, 0, NULL);
			answer_release(&a);
			return;
		}
	}
	respond_n(c, 200, "application/ocsp-response", ex, elen, a.der, a.len, NULL);
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
		fail(c, 503, "out_of_memory");
		return;
	}
	ssize_t dl = pct_decode(rem, len, dec);
	if (dl < 0) {
		if (heap) {
			free(dec);
			free(der);
		}
		fail(c, 400, "bad_percent_encoding");
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
			n = b64_decode(s, strlen(s), der);
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
		n = b64_decode(s, strlen(s), der);
		/* Base64 that starts with '/' (a first byte of 0xfc to 0xff: no
		 * OCSP request, but the client's to be told so). */
		if (n <= 0 && s > dec)
			n = b64_decode(s - 1, strlen(s - 1), der);
	}
	if (n <= 0) {
		if (heap) {
			free(dec);
			free(der);
		}
		if (candidate) {
			fail(c, 400, "bad_base64");
		} else {
			respond_text(c, 404, "not found\n", NULL);
		}
		return;
	}
	send_ocsp(c, der, (size_t)n, true);
	if (heap) {
		free(dec);
		free(der);
	}
}

/* The registry of CRL file versions: each is in it while referenced (by a
 * worker's crls[] or a connection sending it). */
static pthread_mutex_t crl_reg_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held while a version is read, so that two workers meeting a new version
 * read it once. */
static pthread_mutex_t crl_load_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crl_file *crl_reg;

/* A version that could not be read is read again after this (the Retry-After
 * of its 503), or as soon as the file changes. */
#define CRL_RETRY_MS 10000
/* Bytes read at a time for the ETag; the first read has the CRL's head. */
#define CRL_READ (64u << 10)

static uint64_t crl_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void crl_file_unref(struct crl_file *f)
{
	if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	/* Nobody takes a reference from 0 (crl_find), so it is ours to free. */
	pthread_mutex_lock(&crl_reg_lock);
	for (struct crl_file **pp = &crl_reg; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	pthread_mutex_unlock(&crl_reg_lock);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

static bool crl_same(const struct crl_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
	       f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void crl_set_id(struct crl_file *f, const struct stat *st)
{
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtime = st->st_mtim;
}

/* crl_find returns a new reference to the registered version |st|, a
 * failure only until its retry time; NULL if none (under crl_reg_lock). */
static struct crl_file *crl_find(const struct stat *st, uint64_t now)
{
	for (struct crl_file *f = crl_reg; f; f = f->next) {
		if (!crl_same(f, st) || (f->err && now >= f->retry_ms))
			continue;
		int r = atomic_load(&f->refs);
		while (r > 0 && !atomic_compare_exchange_weak(&f->refs, &r, r + 1))
			;
		if (r > 0)
			return f;
	}
	return NULL;
}

/* der_hdr reads the DER header at |*p| (before |end|): the tag and the
 * length of the contents, which start at the new |*p| (and may go past
 * |end|). Short and long definite lengths only, as DER has. */
static bool der_hdr(const uint8_t **p, const uint8_t *end, unsigned *tag, size_t *vlen)
{
	const uint8_t *q = *p;
	if (end - q < 2)
		return false;
	*tag = *q++;
	size_t len = *q++;
	if (len & 0x80) {
		size_t nb = len & 0x7f;
		if (nb == 0 || nb > sizeof(size_t) || (size_t)(end - q) < nb)
			return false;
		len = 0;
		while (nb--)
			len = len << 8 | *q++;
	}
	*vlen = len;
	*p = q;
	return true;
}

/* der_tlv reads the DER element at |*p| (before |end|): the tag, and the
 * contents in [*val, *val + *vlen); |*p| moves past it. */
static bool der_tlv(const uint8_t **p, const uint8_t *end, unsigned *tag, const uint8_t **val,
                    size_t *vlen)
{
	const uint8_t *q = *p;
	size_t len;
	if (!der_hdr(&q, end, tag, &len) || (size_t)(end - q) < len)
		return false;
	*val = q;
	*vlen = len;
	*p = q + len;
	return true;
}

/* der_time reads a UTCTime or GeneralizedTime TLV at |p|. */
static bool der_time(const uint8_t *p, const uint8_t *end, int64_t *t)
{
	const unsigned char *q = p;
	ASN1_TIME *a = d2i_ASN1_TIME(NULL, &q, end - p);
	struct tm tm;
	bool ok = a && ASN1_TIME_to_tm(a, &tm);
	ASN1_TIME_free(a);
	if (ok)
		*t = (int64_t)timegm(&tm);
	return ok;
}

/* crl_times reads thisUpdate and nextUpdate from the head of a DER CRL
 * (RFC 5280 §5.1) of |len| bytes, of which |der| holds the first |avail|,
 * without decoding its entries: d2i_X509_CRL takes half a second on a CRL of
 * 600,000 entries. False when the head is not all in |der| or the CRL does
 * not fill exactly |len| bytes (the caller then decodes it all). */
static bool crl_times(const uint8_t *der, size_t avail, size_t len, int64_t *this_update,
                      int64_t *next_update)
{
	const uint8_t *p = der, *end = der + avail, *v, *at;
	size_t vl;
	unsigned tag;
	if (avail > len || !der_hdr(&p, end, &tag, &vl) || tag != 0x30 ||
	    (size_t)(p - der) + vl != len) /* CertificateList */
		return false;
	if (!der_hdr(&p, end, &tag, &vl) || tag != 0x30 ||
	    (size_t)(p - der) + vl > len) /* tbsCertList */
		return false;
	/* Its fields, as far as they were read. */
	bool cut = (size_t)(end - p) < vl;
	if (!cut)
		end = p + vl;
	if (!der_tlv(&p, end, &tag, &v, &vl)) /* version (optional) or signature */
		return false;
	if (tag == 0x02 && !der_tlv(&p, end, &tag, &v, &vl))
		return false;
	if (tag != 0x30 || !der_tlv(&p, end, &tag, &v, &vl) || tag != 0x30) /* issuer */
		return false;
	at = p;
	if (!der_tlv(&p, end, &tag, &v, &vl) || (tag != 0x17 && tag != 0x18) ||
	    !der_time(at, p, this_update))
		return false;
	*next_update = 0;
	at = p;
	const uint8_t *q = p;
	if (!der_hdr(&q, end, &tag, &vl))
		return !cut; /* the end of the tbsCertList, or of what was read */
	if (tag != 0x17 && tag != 0x18)
		return true; /* no nextUpdate */
	return der_tlv(&p, end, &tag, &v, &vl) && der_time(at, p, next_update);
}

/* crl_decode_times reads the dates of the CRL in |fd| (|size| bytes) by
 * decoding it all: PEM, which crlgen does not write, or odd DER. */
static int crl_decode_times(int fd, size_t size, struct crl_file *f)
{
	uint8_t *data = malloc(size ? size : 1);
	if (!data)
		return -ENOMEM;
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, data + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int rc = r < 0 ? -errno : -EIO;
			free(data);
			return rc;
		}
		got += (size_t)r;
	}
	const unsigned char *p = data;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)got);
	if (!crl) {
		BIO *bio = BIO_new_mem_buf(data, (int)got);
		crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	}
	free(data);
	if (!crl)
		return -EBADMSG;
	struct tm tm;
	const ASN1_TIME *lu = X509_CRL_get0_lastUpdate(crl), *nu = X509_CRL_get0_nextUpdate(crl);
	if (lu && ASN1_TIME_to_tm(lu, &tm))
		f->this_update = (int64_t)timegm(&tm);
	if (nu && ASN1_TIME_to_tm(nu, &tm))
		f->next_update = (int64_t)timegm(&tm);
	X509_CRL_free(crl);
	return 0;
}

/* crl_load opens and reads |path| (which the caller saw as |seen|) for
 * serving: its ETag (SHA-256) and dates; the body is sent from the file
 * later. Its identity is the file it opened (fstat), not the one the caller
 * saw: crlgen may rename a new one in between. A file that cannot be served
 * is a version too, with |err| (so that it is not read again at every
 * request); NULL only on errors that say nothing of the file (out of memory
 * or of descriptors). */
static int crl_load(const char *path, const struct stat *seen, struct crl_file **out)
{
	*out = NULL;
	struct crl_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	atomic_init(&f->refs, 1);
	f->fd = -1;
	crl_set_id(f, seen);
	uint8_t *buf = NULL;
	EVP_MD_CTX *md = NULL;
	struct stat st;
	int rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	crl_set_id(f, &st);
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto fail;
	}
	buf = malloc(CRL_READ);
	md = EVP_MD_CTX_new();
	rc = -ENOMEM;
	if (!buf || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		goto fail;
	size_t size = (size_t)st.st_size, got = 0;
	bool times = false;
	while (got < size) {
		size_t want = size - got < CRL_READ ? size - got : CRL_READ;
		ssize_t r = pread(fd, buf, want, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			goto fail;
		}
		if (got == 0)
			times = crl_times(buf, (size_t)r, size, &f->this_update, &f->next_update);
		EVP_DigestUpdate(md, buf, (size_t)r);
		got += (size_t)r;
	}
	if (!times && (rc = crl_decode_times(fd, size, f)) < 0)
		goto fail;
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl;
	rc = -ENOMEM;
	if (!EVP_DigestFinal_ex(md, dg, &dl))
		goto fail;
	f->etag[0] = '"';
	for (int i = 0; i < 16; i++)
		snprintf(f->etag + 1 + 2 * i, 3, "%02x", dg[i]);
	f->etag[33] = '"';
	f->etag[34] = '\0';
	f->fd = fd;
	f->len = size;
	free(buf);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	*out = f;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE) {
		free(f);
		return rc;
	}
	f->err = rc;
	f->retry_ms = crl_clock_ms() + CRL_RETRY_MS;
	*out = f;
	return rc;
}

/* crl_get returns (a new reference to) the version of |path| that the caller
 * saw as |st|, reading it if no worker has, and a failure remembered for
 * CRL_RETRY_MS: each version is read once per process, not once per worker
 * or per request. Negative (no version) only when memory or descriptors ran
 * out. */
static int crl_get(struct worker *w, const char *ca, const char *path, const struct stat *st,
                   struct crl_file **out)
{
	uint64_t now = crl_clock_ms();
	pthread_mutex_lock(&crl_reg_lock);
	struct crl_file *f = crl_find(st, now);
	pthread_mutex_unlock(&crl_reg_lock);
	int rc = 0;
	if (!f) {
		pthread_mutex_lock(&crl_load_lock);
		pthread_mutex_lock(&crl_reg_lock);
		f = crl_find(st, now);
		pthread_mutex_unlock(&crl_reg_lock);
		if (!f) {
			rc = crl_load(path, st, &f);
			m_add(rc < 0 ? &w->m.crl_load_failures : &w->m.crl_loads, 1);
			if (rc < 0 && worker_log_ok(w, LK_CRL_UNREADABLE))
				log_err("event=crl_unreadable ca=%s path=%s error=\"%s\" %s", ca,
				        path, strerror(-rc),
				        f ? "retry=on_change_or_10s" : "retry=next_request");
			if (f) {
				pthread_mutex_lock(&crl_reg_lock);
				f->next = crl_reg;
				crl_reg = f;
				pthread_mutex_unlock(&crl_reg_lock);
			}
		}
		pthread_mutex_unlock(&crl_load_lock);
	}
	*out = f;
	return f ? 0 : rc;
}

static void serve_crl(struct conn *c, const char *name, size_t nlen)
{
	struct worker *w = c->w;
	int idx = -1;
	for (int i = 0; i < w->ctx->n_cas; i++)
		if (strlen(w->ctx->cas[i].name) == nlen && !memcmp(w->ctx->cas[i].name, name, nlen))
			idx = i;
	if (idx < 0) {
		respond_text(c, 404, "no such CA\n", NULL);
		return;
	}
	const char *path = w->ctx->cas[idx].crl_path;
	struct stat st;
	if (stat(path, &st) < 0) {
		respond_text(c, 404, "no CRL published yet\n", NULL);
		return;
	}
	struct crl_file *f = w->crls[idx];
	if (!f || !crl_same(f, &st) || (f->err && crl_clock_ms() >= f->retry_ms)) {
		struct crl_file *nf = NULL;
		if (crl_get(w, w->ctx->cas[idx].name, path, &st, &nf) < 0) {
			respond_text(c, 503, "CRL unreadable\n", "Retry-After: 10\r\n");
			return;
		}
		crl_file_unref(f);
		w->crls[idx] = f = nf;
	}
	if (f->err) {
		respond_text(c, 503, "CRL unreadable\n", "Retry-After: 10\r\n");
		return;
	}
	char extra[512], lm[40], ex[40];
	int n = snprintf(extra, sizeof(extra), "ETag: %s\r\n", f->etag);
	if (f->this_update) {
		http_date((time_t)f->this_update, lm, sizeof(lm));
		n += snprintf(extra + n, sizeof(extra) - (size_t)n, "Last-Modified: %s\r\n", lm);
	}
	if (f->next_update) {
		/* Counted from the Date this response carries. */
		int64_t max_age = f->next_update - (int64_t)w->date_t;
		http_date((time_t)f->next_update, ex, sizeof(ex));
		snprintf(extra + n, sizeof(extra) - (size_t)n,
		         "Expires: %s\r\nCache-Control: max-age=%lld, public, no-transform, "
		         "must-revalidate\r\n",
		         ex, (long long)(max_age > 0 ? max_age : 0));
	}
	if (c->inm_len && etag_match(c->inm, f->etag)) {
		respond(c, 304, NULL, extra, NULL, 0, NULL);
		return;
	}
	respond(c, 200, "application/pkix-crl", extra, NULL, f->len, f);
}

static void serve_metrics(struct conn *c)
{
	size_t len;
	char *text = metrics_render(&len);
	if (!text) {
		respond_text(c, 503, "out of memory\n", NULL);
		return;
	}
	respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n",
	        text, len, NULL);
	free(text);
}

static void serve_health(struct conn *c)
{
	struct worker *w = c->w;
	if (!w->txn_ok) {
		respond_text(c, 503, "store unreadable\n", "Cache-Control: no-store\r\n");
		return;
	}
	char reason[160];
	if (!ocsp_signers_healthy(w->ctx, reason, sizeof(reason))) {
		respond_text(c, 503, reason, "Cache-Control: no-store\r\n");
		return;
	}
	respond_text(c, 200, "ok\n", "Cache-Control: no-store\r\n");
}

static void dispatch(struct conn *c)
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

	if ((plen == 8 && !memcmp(path, "/healthz", 8)) ||
	    (plen == 8 && !memcmp(path, "/metrics", 8)) ||
	    (plen > 5 && !memcmp(path, "/crl/", 5))) {
		if (!get) {
			fail(c, 405, "method_not_allowed");
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
			respond_text(c, 404, "not found\n", NULL);
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
		respond_text(c, 404, "not found\n", NULL);
		return;
	}
	size_t rlen = plen - (size_t)(rem - path);
	size_t i = 0;
	while (i < rlen && rem[i] == '/')
		i++;
	if (i == rlen) {
		respond_text(c, 404, "OCSP responder: POST a request or GET /{base64 request}\n",
		             NULL);
		return;
	}
	ocsp_get(c, rem, rlen);
}

/* ---- Reading ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	/* One buffer per worker: a read is fully parsed before the next one. */
	*buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf));
}

static void start_reading(struct conn *c)
{
	if (c->reading || c->closed || c->eof)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
		c->reading = true;
}

static void read_data(struct conn *c, uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void parse(struct conn *c, const char *data, size_t len);

static void on_resume(uv_idle_t *h)
{
	struct conn *c = h->data;
	uv_idle_stop(h);
	if (c->closed || !c->tail)
		return;
	uint8_t *t = c->tail;
	size_t n = c->tail_len;
	c->tail = NULL;
	c->tail_len = 0;
	c->w->held -= n;
	c->in_read = true;
	parse(c, (const char *)t, n);
	c->in_read = false;
	/* A body parsed in place in |t| whose request is not complete yet. */
	if (c->body_at && keep_body(c) < 0 && !c->closed)
		fail(c, 503, "out_of_memory");
	free(t);
	if (!c->closed && !c->tail && !c->closing && may_resume(c))
		start_reading(c);
	if (!c->closed)
		sync_timer(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	c->in_read = true;
	read_data(c, s, nread, buf);
	c->in_read = false;
	/* A body read in place whose request is not complete yet: the next
	 * read reuses the buffer. */
	if (c->body_at && keep_body(c) < 0 && !c->closed)
		fail(c, 503, "out_of_memory");
	sync_timer(c);
}

static void read_data(struct conn *c, uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread == 0)
		return;
	if (nread < 0) {
		c->eof = true;
		c->reading = false;
		uv_read_stop(s);
		if (nread != UV_EOF || c->phase == PH_CLOSING || c->writes == 0) {
			conn_close(c);
			return;
		}
		begin_close(c);
		return;
	}
	if (c->phase == PH_CLOSING || c->closing)
		return; /* lingering: drop */
	parse(c, buf->base, (size_t)nread);
}

/* parse runs the parser over |len| bytes at |data|. When it pauses after a
 * batch of requests (on_message_complete), the rest of the bytes is kept in
 * |tail|, reading stops, and on_resume parses the rest on a later loop turn
 * (or, when hold_back says so, once the client has read its answers). */
static void parse(struct conn *c, const char *data, size_t len)
{
	http_parser_pause(&c->parser, 0);
	c->batch = 0;
	size_t done = http_parser_execute(&c->parser, &settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	if (c->closed)
		return;
	if (e == HPE_OK || (e == HPE_PAUSED && c->closing)) {
		if (c->closing)
			begin_close(c);
		return;
	}
	if (e == HPE_PAUSED) {
		if (done >= len)
			return;
		uint8_t *t = malloc(len - done);
		if (!t) {
			fail(c, 503, "out_of_memory");
			return;
		}
		memcpy(t, data + done, len - done);
		c->w->held += len - done;
		if (c->tail)
			c->w->held -= c->tail_len;
		free(c->tail);
		c->tail = t;
		c->tail_len = len - done;
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->tcp);
			c->reading = false;
		}
		if (!hold_back(c))
			uv_idle_start(&c->resume, on_resume);
		return;
	}
	if (c->err)
		fail(c, c->err, c->err_reason);
	else if (e == HPE_HEADER_OVERFLOW)
		fail(c, 431, "headers_too_large");
	else
		fail(c, 400, http_errno_name(e));
}

/* write_progress tells whether the answers still queued on |c| have moved
 * since the last look. A client that reads a large answer (a CRL) slowly is
 * not idle, nor is one whose request we stopped reading while it read its
 * answers: its deadline moves on by idle_timeout, as long as it reads. */
static bool write_progress(struct conn *c)
{
	if (c->writes == 0 && !c->sfile)
		return false;
	uint64_t d = delivered(c);
	bool moved = d >= c->queue_mark + PROGRESS_MIN;
	c->queue_mark = d;
	return moved;
}

static void on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	char p[80];
	if ((c->phase == PH_IDLE || c->phase == PH_CLOSING || !c->reading) && write_progress(c)) {
		set_timer(c, (uint64_t)c->w->ctx->conf.idle_timeout_ms);
		return;
	}
	switch (c->phase) {
	case PH_IDLE:
		conn_close(c);
		break;
	case PH_HEADERS:
	case PH_BODY:
		m_add(&c->w->m.timeouts, 1);
		if (worker_log_ok(c->w,
		                  c->phase == PH_HEADERS ? LK_TIMEOUT_HEADERS : LK_TIMEOUT_BODY))
			log_info("event=timeout phase=%s peer=%s",
			         c->phase == PH_HEADERS ? "headers" : "body",
			         peer(c, p, sizeof(p)));
		c->closing = true;
		respond_text(c, 408, "408 Request Timeout\n", NULL);
		begin_close(c);
		break;
	case PH_CLOSING:
		conn_close(c);
		break;
	}
}

/* Connections accepted per loop turn: a flood of thousands would otherwise
 * hold up the answers to the connections already open for as long. The
 * listener's poll is level-triggered: the rest are taken on the next turn. */
#define ACCEPT_BATCH 16

static void accept_fd(struct worker *w, int fd);

/* listener_pause stops accepting until the next tick (http_tick), with the
 * connections left waiting in the kernel's backlog, not dropped. */
static void listener_pause(struct worker *w)
{
	if (w->accept_paused || uv_is_closing((uv_handle_t *)&w->listener))
		return;
	uv_poll_stop(&w->listener);
	w->accept_paused = true;
}

static const char *peer_fd(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[64];
	snprintf(buf, len, "-");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return buf;
	if (ss.ss_family == AF_INET6) {
		uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
		snprintf(buf, len, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	}
	return buf;
}

/* refuse_fd_limit answers one connection that accept(2) refused for want of
 * a descriptor: the reserve descriptor is closed, the connection accepted in
 * its place, told 503 and closed, and the reserve taken back. False when
 * the listener must wait (nothing to accept, or no descriptor even so). */
static bool refuse_fd_limit(struct worker *w, int err)
{
	if (w->reserve_fd < 0)
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->reserve_fd < 0) {
		/* None to give up: wait for a descriptor to come free. */
		listener_pause(w);
		return false;
	}
	close(w->reserve_fd);
	w->reserve_fd = -1;
	int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int e = errno;
	if (fd >= 0) {
		static const char body[] = "503 Service Unavailable: too many connections\n";
		char msg[320];
		int ml =
		    snprintf(msg, sizeof(msg),
		             "HTTP/1.1 503 Service Unavailable\r\nServer: vigil\r\nDate: %s\r\n"
		             "Content-Length: %zu\r\nContent-Type: text/plain; charset=utf-8\r\n"
		             "Retry-After: 1\r\nConnection: close\r\n\r\n%s",
		             w->date, sizeof(body) - 1, body);
		/* What the client sent already is read first: closing a socket
		 * with unread data resets it, and the answer with it. */
		char sink[4096];
		for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
			;
		ssize_t n = send(fd, msg, (size_t)ml, MSG_DONTWAIT | MSG_NOSIGNAL);
		shutdown(fd, SHUT_WR);
		m_add(&w->m.conns_refused, 1);
		m_add(&w->m.conns_fd_limit, 1);
		m_add(&w->m.http[503], 1);
		if (worker_log_ok(w, LK_CONN_FD_LIMIT)) {
			char p[80];
			struct rlimit rl = {0};
			getrlimit(RLIMIT_NOFILE, &rl);
			log_warn("event=conn_refused reason=fd_limit peer=%s error=%s nofile=%llu "
			         "open_connections=%d answered=%s",
			         peer_fd(fd, p, sizeof(p)), err == ENFILE ? "ENFILE" : "EMFILE",
			         (unsigned long long)rl.rlim_cur, atomic_load(&g_open_conns),
			         n > 0 ? "503" : "no");
		}
		close(fd);
	}
	w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (e == EAGAIN || e == EWOULDBLOCK)) /* nothing left to accept */
		return false;
	if (w->reserve_fd >= 0 && (fd >= 0 || e == ECONNABORTED || e == EINTR))
		return true;
	/* Another thread took the descriptor first: wait for one to come free. */
	listener_pause(w);
	return false;
}

void http_on_listen(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct worker *w = container_of(h, struct worker, listener);
	if (status < 0) {
		if (worker_log_ok(w, LK_ACCEPT_FAILED))
			log_warn("event=accept_failed error=%s", uv_strerror(status));
		listener_pause(w);
		return;
	}
	for (int i = 0; i < ACCEPT_BATCH && !w->draining; i++) {
		int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_fd(w, fd);
			continue;
		}
		int e = errno;
		if (e == EINTR || e == ECONNABORTED)
			continue;
		if (e == EMFILE || e == ENFILE) {
			if (!refuse_fd_limit(w, e))
				return;
			continue;
		}
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		/* ENOBUFS, ENOMEM...: a pending connection would make this a busy
		 * loop; look again at the next tick. */
		if (worker_log_ok(w, LK_ACCEPT_FAILED))
			log_warn("event=accept_failed error=\"%s\" action=pause", strerror(e));
		listener_pause(w);
		return;
	}
}

void http_tick(struct worker *w)
{
	if (w->reserve_fd < 0)
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->accept_paused && !w->draining && !uv_is_closing((uv_handle_t *)&w->listener)) {
		w->accept_paused = false;
		uv_poll_start(&w->listener, UV_READABLE, http_on_listen);
	}
}

/* accept_fd makes a connection of the accepted socket |fd|. */
static void accept_fd(struct worker *w, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c || uv_tcp_init(&w->loop, &c->tcp) < 0) {
		free(c);
		if (worker_log_ok(w, LK_ACCEPT_FAILED))
			log_warn("event=accept_failed error=\"out of memory\"");
		if (fd >= 0)
			close(fd);
		return;
	}
	c->w = w;
	uv_timer_init(&w->loop, &c->timer);
	uv_idle_init(&w->loop, &c->resume);
	c->resume.data = c;
	c->tcp.data = c;
	c->timer.data = c;
	c->handles = 3;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	/* This connection's own count: two workers accepting at once must not
	 * both see the other's increment and both refuse the last free slot. */
	int open = atomic_fetch_add(&g_open_conns, 1) + 1;
	m_set(&w->m.conns_open, w->m.conns_open + 1);
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	if (uv_tcp_open(&c->tcp, fd) < 0) {
		if (fd >= 0)
			close(fd);
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (open > w->ctx->conf.max_connections || w->draining) {
		m_add(&w->m.conns_refused, 1);
		char p[80];
		if (worker_log_ok(w, w->draining ? LK_CONN_DRAINING : LK_CONN_FULL))
			log_warn("event=conn_refused reason=%s peer=%s max_connections=%d",
			         w->draining ? "draining" : "max_connections",
			         peer(c, p, sizeof(p)), w->ctx->conf.max_connections);
		c->closing = true;
		respond_text(c, 503, "503 Service Unavailable: too many connections\n",
		             "Retry-After: 1\r\n");
		begin_close(c);
		return;
	}
	m_add(&w->m.conns_accepted, 1);
	c->phase = PH_IDLE;
	set_timer(c, (uint64_t)w->ctx->conf.header_timeout_ms);
	start_reading(c);
}

void http_drain(struct worker *w)
{
	struct conn *c = w->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->phase == PH_IDLE && !c->closing) {
			if (c->writes == 0)
				conn_close(c);
			else
				begin_close(c);
		}
	}
}

void http_close_all(struct worker *w)
{
	while (w->conns)
		conn_close(w->conns);
}
