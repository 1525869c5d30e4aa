/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 framing on the http-parser library (http.h): a connection's
 * bytes into requests (URL, the few headers kept, the body in place or
 * copied), limits (400, 405, 413, 414, 431, 505), 100-continue, keep-alive
 * and pipelining in batches; and responses out: the status line and the
 * framing headers (Server, Date, Content-Length, Content-Type, Connection)
 * around the header lines and body routes.c chose, and the access log.
 */
#include "responder/http.h"
#include "responder/conn.h"
#include "responder/routes.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

const char *http_status_text(int s)
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
	                 (long long)time(NULL), conn_peer(c, p, sizeof(p)), c->url ? m : "-", path,
	                 status, blen,
	                 (unsigned long long)(c->t_start ? (uv_hrtime() - c->t_start) / 1000 : 0));
	if (n > 0 && write(g_access_fd, line, (size_t)n) < 0) {
		/* nothing to do: the access log is best effort */
	}
}

/* http_respond_n queues one response. |extra| holds extra header lines (each ending in
 * CRLF), |elen| bytes; the body is |body|, or with |ref| the CRL file's first
 * |blen| bytes. */
void http_respond_n(struct conn *c, int status, const char *ctype, const char *extra, size_t elen,
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
	hb_str(&b, http_status_text(status));
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
		conn_send(c, out, hlen, NULL, 0, false);
	} else if (ref) {
		conn_send(c, out, hlen, NULL, 0, false);
		conn_send_file(c, ref, blen);
	} else if (blen <= INLINE_BODY_MAX) {
		/* One buffer: write(2) rather than writev(2). */
		memcpy(out + hlen, body, blen);
		conn_send(c, out, hlen + blen, NULL, 0, false);
	} else {
		conn_send(c, out, hlen, body, blen, false);
	}
}

void http_respond(struct conn *c, int status, const char *ctype, const char *extra,
                  const void *body, size_t blen, struct crl_file *ref)
{
	http_respond_n(c, status, ctype, extra, extra ? strlen(extra) : 0, body, blen, ref);
}

void http_respond_text(struct conn *c, int status, const char *text, const char *extra)
{
	http_respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text), NULL);
}

/* http_fail answers a refused request with |status| and closes the connection. */
void http_fail(struct conn *c, int status, const char *reason)
{
	char p[80];
	if (worker_log_ok(c->w, log_kind_refused(status)))
		log_info("event=http_refused status=%d reason=%s peer=%s", status, reason,
		         conn_peer(c, p, sizeof(p)));
	c->closing = true;
	char text[128];
	snprintf(text, sizeof(text), "%d %s\n", status, http_status_text(status));
	http_respond_text(c, status, text, status == 405 ? routes_allow(c) : NULL);
	conn_begin_close(c);
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
	conn_set_timer(c, c->w->ctx->conf.header_timeout_ms);
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
	conn_send(c, msg, sizeof(msg) - 1, NULL, 0, false);
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
		conn_set_timer(c, cf->body_timeout_ms);
		/* Not to HTTP/1.0 clients, which do not know 1xx (RFC 9110 §10.1.1). */
		size_t el = c->expect_len;
		while (el && (c->expect[el - 1] == ' ' || c->expect[el - 1] == '\t'))
			el--;
		if (p->http_minor >= 1 && el == 12 && !strncasecmp(c->expect, "100-continue", 12))
			send_continue(c);
	}
	return 0;
}

/* http_keep_body copies a body read in place into the connection's own buffer,
 * before the read buffer is reused. */
int http_keep_body(struct conn *c)
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
	if (http_keep_body(c) < 0 || !grow((void **)&c->body, &c->body_cap, c->body_len + len))
		return refuse(c, 503, "out_of_memory");
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;
	if (!http_should_keep_alive(p) || c->w->draining || c->close_after)
		c->closing = true;
	routes_dispatch(c);
	c->t_start = 0;
	c->body_at = NULL; /* answered: nothing to keep */
	if (c->closing) {
		http_parser_pause(p, 1);
		return 0;
	}
	c->phase = PH_IDLE;
	conn_set_timer(c, c->w->ctx->conf.idle_timeout_ms);
	if (++c->batch >= PIPELINE_BATCH || conn_hold_back(c))
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

void http_conn_init(struct conn *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
}

/* http_etag_match tells whether an If-None-Match list names |etag|. */
bool http_etag_match(const char *list, const char *etag)
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

/* http_parse runs the parser over |len| bytes at |data|. When it pauses after a
 * batch of requests (on_message_complete), the rest of the bytes is kept in
 * |tail|, reading stops, and on_resume parses the rest on a later loop turn
 * (or, when conn_hold_back says so, once the client has read its answers). */
void http_parse(struct conn *c, const char *data, size_t len)
{
	http_parser_pause(&c->parser, 0);
	c->batch = 0;
	size_t done = http_parser_execute(&c->parser, &settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	if (c->closed)
		return;
	if (e == HPE_OK || (e == HPE_PAUSED && c->closing)) {
		if (c->closing)
			conn_begin_close(c);
		return;
	}
	if (e == HPE_PAUSED) {
		if (done >= len)
			return;
		conn_pause(c, data + done, len - done);
		return;
	}
	if (c->err)
		http_fail(c, c->err, c->err_reason);
	else if (e == HPE_HEADER_OVERFLOW)
		http_fail(c, 431, "headers_too_large");
	else
		http_fail(c, 400, http_errno_name(e));
}
