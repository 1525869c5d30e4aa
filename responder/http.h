/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * HTTP/1.1 framing (http.c): requests parsed by the http-parser library,
 * responses framed around what routes.c chose to send.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct conn;
struct crl_file;

/* Requests answered from one read (or one resumption) before the others'
 * turn: 300 pipelined nonce requests would otherwise hold the worker for as
 * many signatures, and 64 KiB of small pipelined requests would pile up
 * megabytes of answers that the client may never read. */
#define PIPELINE_BATCH 32

/* http_conn_init readies the parser of a new connection. */
void http_conn_init(struct conn *c);
/* http_parse runs the parser over |len| bytes at |data| of |c|'s stream,
 * answering each complete request (routes_dispatch). */
void http_parse(struct conn *c, const char *data, size_t len);
/* http_keep_body copies a body read in place into the connection's own
 * buffer, before the read buffer is reused. Returns 0 or -1 (no memory). */
int http_keep_body(struct conn *c);

/* http_respond_n queues one response with |status|: the status line and the
 * framing headers, then |elen| bytes of header lines |extra| (each ending in
 * CRLF), then the body: |body|, or with |ref| the first |blen| bytes of that
 * CRL file. Counted in the metrics and the access log. */
void http_respond_n(struct conn *c, int status, const char *ctype, const char *extra, size_t elen,
                    const void *body, size_t blen, struct crl_file *ref);
/* http_respond is http_respond_n with |extra| a C string (or NULL). */
void http_respond(struct conn *c, int status, const char *ctype, const char *extra,
                  const void *body, size_t blen, struct crl_file *ref);
/* http_respond_text answers |text| as text/plain. */
void http_respond_text(struct conn *c, int status, const char *text, const char *extra);
/* http_fail answers a refused request with |status| (logged within the
 * budget with |reason|) and closes the connection. */
void http_fail(struct conn *c, int status, const char *reason);
/* http_status_text is the reason phrase of |status| ("Unknown" if none). */
const char *http_status_text(int status);
/* http_etag_match tells whether an If-None-Match list names |etag|
 * (quoted; weak comparison, and "*"). */
bool http_etag_match(const char *list, const char *etag);

/* A response head is built with these, not snprintf (a third of the
 * instructions of a cached answer went to formatting). */
struct hb {
	char *p, *end;
	bool over;
};

static inline void hb_put(struct hb *b, const char *s, size_t n)
{
	if ((size_t)(b->end - b->p) < n) {
		b->over = true;
		return;
	}
	memcpy(b->p, s, n);
	b->p += n;
}

#define HB_LIT(b, lit) hb_put((b), (lit), sizeof(lit) - 1)

static inline void hb_str(struct hb *b, const char *s)
{
	hb_put(b, s, strlen(s));
}

static inline void hb_u64(struct hb *b, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	hb_put(b, d + i, sizeof(d) - i);
}

#define HEAD_MAX 2048
#define INLINE_BODY_MAX 3072 /* bodies up to this are sent in one buffer with their head */
