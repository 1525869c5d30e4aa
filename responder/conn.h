/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Connections (conn.c): the libuv transport under HTTP. Accepting (by the
 * worker itself, with a reserve descriptor for past the descriptor limit),
 * one timer per connection whose meaning follows its phase, writing (at once
 * when the socket takes it, else copied and queued), back-pressure (a client
 * that does not read its answers is not read from; a bound on what all the
 * connections of a worker hold), CRL bodies sent from their file, and the
 * lingering close. What the bytes mean is http.c's; which answer they get is
 * routes.c's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <http_parser.h>
#include <uv.h>

#include "responder/worker.h"

/* A piece of a CRL body written through libuv when the socket takes no more:
 * its callback tells when it takes more. All a slow reader costs in memory
 * (counted in the worker's |held|): 10,000 of them, 40 MiB. */
#define STREAM_CHUNK 4096

struct crl_file;

/* The phase of a connection, which its one timer's deadline belongs to. */
enum phase { PH_IDLE, PH_HEADERS, PH_BODY, PH_CLOSING };
/* The request headers http.c keeps (the others are only counted). */
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

/* conn_on_listen accepts up to a batch of connections (the listener's poll
 * callback). Past the descriptor limit (EMFILE, ENFILE) each is still
 * answered 503, on the worker's reserve descriptor, counted and logged. */
void conn_on_listen(uv_poll_t *h, int status, int events);
/* conn_tick runs at each worker tick: it takes the reserve descriptor back
 * and resumes accepting, if either had to wait. */
void conn_tick(struct worker *w);
/* conn_drain closes the idle connections (the others close after their
 * answer); conn_close_all closes every one. */
void conn_drain(struct worker *w);
void conn_close_all(struct worker *w);
/* conn_accept makes a connection of the accepted socket |fd| (or of none,
 * -1, under the tests' fake stream). */
void conn_accept(struct worker *w, int fd);

/* conn_close closes |c| at once; its memory goes in the close callbacks. */
void conn_close(struct conn *c);
/* conn_begin_close answers nothing more and closes once the answers are
 * written (a shutdown, then a lingering close). */
void conn_begin_close(struct conn *c);
/* conn_set_timer starts the phase's timeout of |ms| from now; conn_on_timer
 * acts on the phase the connection is in when the deadline passes. */
void conn_set_timer(struct conn *c, uint64_t ms);
/* conn_hold_back tells whether |c| should take no more requests for now: its
 * client has not read 1 MiB of answers, or has not read some while the
 * worker as a whole holds too much, or a CRL body is being sent. */
bool conn_hold_back(struct conn *c);
/* conn_send writes |head| then |body| (|blen| may be 0), after what is
 * queued. What the socket does not take at once is copied into one heap
 * block and queued (counted in the worker's |held|); with |queue|, all of it
 * is (its callback then comes on a later loop turn). */
void conn_send(struct conn *c, const char *head, size_t hlen, const char *body, size_t blen,
               bool queue);
/* conn_send_file sends the first |len| bytes of the CRL file |f| after what
 * is queued, from the file to the socket; no request is answered meanwhile. */
void conn_send_file(struct conn *c, struct crl_file *f, size_t len);
/* conn_pause keeps the |len| bytes at |rest| that a read held past the
 * request the parser paused at, stops reading, and has them parsed on a
 * later loop turn (or once the client has read its answers). */
void conn_pause(struct conn *c, const char *rest, size_t len);
/* conn_peer writes the client's address ("-" when unknown) into |buf|. */
const char *conn_peer(struct conn *c, char *buf, size_t len);

/* The libuv callbacks of a connection, for the tests and the fuzz harness
 * to drive it through a fake stream. */
void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
void conn_on_timer(uv_timer_t *t);
void conn_on_timer_due(uv_timer_t *t);
