/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connections: the libuv transport under HTTP (conn.h).
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
 * A response is built on the stack (http.c) and written at once
 * (uv_try_write) when nothing is queued; whatever the socket does not take is
 * copied into one heap block and queued, freed in its write callback. A CRL
 * body is not held in memory at all: it goes from the file to the socket
 * (sendfile), as fast as the client reads; each version of a CRL file is
 * opened and read once per process, shared by the workers (crlfile.c). So
 * memory does not grow with CRL size, publications or slow readers.
 *
 * Connections are accepted here, not by libuv (whose answer to running out
 * of descriptors is to accept and close every pending connection without a
 * word): on EMFILE or ENFILE the worker gives up a reserve descriptor,
 * accepts, answers 503 and closes, then takes the reserve back.
 */
#include "responder/conn.h"
#include "responder/crlfile.h"
#include "responder/http.h"
#include "responder/routes.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_MS 2000
#define WRITE_HIGH (1u << 20) /* stop reading a client that does not read its answers */
#define WRITE_LOW (256u << 10)
/* What all the connections of a worker may hold of answers their clients
 * have not read (and of requests kept past a pause), whatever their number:
 * WRITE_HIGH alone would let 10,000 connections that never read hold 10 GB. */
#define WORKER_HOLD_MAX (64u << 20)

struct wreq {
	uv_write_t req;
	struct conn *c;
	size_t held; /* bytes copied into |data|, counted in the worker's held */
	uv_buf_t bufs[2];
	char data[];
};

/* addr_text writes |ss| (an address getpeername filled) into |buf|. */
static const char *addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[64];
	snprintf(buf, len, "-");
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		uv_ip6_name(a, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%d", ip, ntohs(a->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		uv_ip4_name(a, ip, sizeof(ip));
		snprintf(buf, len, "%s:%d", ip, ntohs(a->sin_port));
	}
	return buf;
}

const char *conn_peer(struct conn *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0)
		ss.ss_family = AF_UNSPEC;
	return addr_text(&ss, buf, len);
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
	crlfile_unref(c->sfile);
	free(c);
}

void conn_close(struct conn *c)
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

/* sync_timer makes the libuv timer fire no later than the deadline. A timer
 * due earlier is left alone: on_timer_due re-arms it for the rest. */
static void sync_timer(struct conn *c)
{
	if (c->closed || (c->armed && c->armed <= c->deadline))
		return;
	uint64_t now = uv_now(&c->w->loop);
	uint64_t in = c->deadline > now ? c->deadline - now : 0;
	uv_timer_start(&c->timer, conn_on_timer_due, in, 0);
	c->armed = now + in;
}

/* set_timer starts the phase's timeout of |ms| from now; on_timer acts on the
 * phase the connection is in when the deadline passes. */
void conn_set_timer(struct conn *c, uint64_t ms)
{
	c->deadline = uv_now(&c->w->loop) + ms;
	if (!c->in_read)
		sync_timer(c);
}

void conn_on_timer_due(uv_timer_t *t)
{
	struct conn *c = t->data;
	c->armed = 0;
	if (uv_now(&c->w->loop) < c->deadline) {
		sync_timer(c);
		return;
	}
	conn_on_timer(t);
}

static void conn_start_reading(struct conn *c);

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
	conn_set_timer(c, LINGER_MS);
	conn_start_reading(c);
}

/* begin_close answers nothing more and closes once the answers are written. */
void conn_begin_close(struct conn *c)
{
	c->closing = true;
	/* A CRL still being sent: the shutdown waits for its end (stream_end). */
	if (c->closed || c->shutting || c->sfile)
		return;
	c->shutting = true;
	c->phase = PH_CLOSING;
	conn_set_timer(c, LINGER_MS + 10000);
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
bool conn_hold_back(struct conn *c)
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
			conn_start_reading(c);
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
void conn_send(struct conn *c, const char *head, size_t hlen, const char *body, size_t blen,
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
	if (conn_hold_back(c) && c->reading) {
		uv_read_stop(st);
		c->reading = false;
	}
}

/* ---- CRL bodies, from the file to the socket ---------------------------------------------- */

/* What stream_pump sends before it lets the other connections have their turn. */
#define STREAM_TURN (1u << 20)

/* stream_end: the body is sent; the connection goes on (or closes, as its
 * request asked). */
static void stream_end(struct conn *c)
{
	crlfile_unref(c->sfile);
	c->sfile = NULL;
	if (c->closed)
		return;
	if (c->closing)
		conn_begin_close(c);
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
				size_t want = left < STREAM_TURN - turn ? (size_t)left
				                                        : STREAM_TURN - turn;
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
		conn_send(c, chunk, (size_t)n, NULL, 0, !c->no_sendfile || turn >= STREAM_TURN);
	}
}

/* stream_start sends the |len| bytes of |f| after what is queued. */
void conn_send_file(struct conn *c, struct crl_file *f, size_t len)
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

/* ---- Reading ------------------------------------------------------------------------------ */

void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	/* One buffer per worker: a read is fully parsed before the next one. */
	*buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf));
}

static void conn_start_reading(struct conn *c)
{
	if (c->reading || c->closed || c->eof)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) == 0)
		c->reading = true;
}

static void read_data(struct conn *c, uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

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
	http_parse(c, (const char *)t, n);
	c->in_read = false;
	/* A body parsed in place in |t| whose request is not complete yet. */
	if (c->body_at && http_keep_body(c) < 0 && !c->closed)
		http_fail(c, 503, "out_of_memory");
	free(t);
	if (!c->closed && !c->tail && !c->closing && may_resume(c))
		conn_start_reading(c);
	if (!c->closed)
		sync_timer(c);
}

void conn_pause(struct conn *c, const char *rest, size_t len)
{
	uint8_t *t = malloc(len);
	if (!t) {
		http_fail(c, 503, "out_of_memory");
		return;
	}
	memcpy(t, rest, len);
	c->w->held += len;
	if (c->tail)
		c->w->held -= c->tail_len;
	free(c->tail);
	c->tail = t;
	c->tail_len = len;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	if (!conn_hold_back(c))
		uv_idle_start(&c->resume, on_resume);
}

void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	c->in_read = true;
	read_data(c, s, nread, buf);
	c->in_read = false;
	/* A body read in place whose request is not complete yet: the next
	 * read reuses the buffer. */
	if (c->body_at && http_keep_body(c) < 0 && !c->closed)
		http_fail(c, 503, "out_of_memory");
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
		conn_begin_close(c);
		return;
	}
	if (c->phase == PH_CLOSING || c->closing)
		return; /* lingering: drop */
	http_parse(c, buf->base, (size_t)nread);
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

void conn_on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	char p[80];
	if ((c->phase == PH_IDLE || c->phase == PH_CLOSING || !c->reading) && write_progress(c)) {
		conn_set_timer(c, (uint64_t)c->w->ctx->conf.idle_timeout_ms);
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
			         conn_peer(c, p, sizeof(p)));
		routes_timeout(c);
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

/* listener_pause stops accepting until the next tick (conn_tick), with the
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
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNSPEC;
	return addr_text(&ss, buf, len);
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
		char msg[320];
		size_t ml = routes_busy_text(w, msg, sizeof(msg));
		/* What the client sent already is read first: closing a socket
		 * with unread data resets it, and the answer with it. */
		char sink[4096];
		for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
			;
		ssize_t n = send(fd, msg, ml, MSG_DONTWAIT | MSG_NOSIGNAL);
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

void conn_on_listen(uv_poll_t *h, int status, int events)
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
			conn_accept(w, fd);
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

void conn_tick(struct worker *w)
{
	if (w->reserve_fd < 0)
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->accept_paused && !w->draining && !uv_is_closing((uv_handle_t *)&w->listener)) {
		w->accept_paused = false;
		uv_poll_start(&w->listener, UV_READABLE, conn_on_listen);
	}
}

/* accept_fd makes a connection of the accepted socket |fd|. */
void conn_accept(struct worker *w, int fd)
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
	http_conn_init(c);
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
			         conn_peer(c, p, sizeof(p)), w->ctx->conf.max_connections);
		routes_refuse_busy(c);
		return;
	}
	m_add(&w->m.conns_accepted, 1);
	c->phase = PH_IDLE;
	conn_set_timer(c, (uint64_t)w->ctx->conf.header_timeout_ms);
	conn_start_reading(c);
}

void conn_drain(struct worker *w)
{
	struct conn *c = w->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->phase == PH_IDLE && !c->closing) {
			if (c->writes == 0)
				conn_close(c);
			else
				conn_begin_close(c);
		}
	}
}

void conn_close_all(struct worker *w)
{
	while (w->conns)
		conn_close(w->conns);
}
