/* SPDX-License-Identifier: Apache-2.0 */
/* The fake libuv stream of fake_stream.h. */
#include "tests/common/fake_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_stream fk;

/* The wrapped calls (ld --wrap=NAME: the responder's references to NAME
 * come here). */
int __wrap_uv_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n);
int __wrap_uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                    uv_write_cb cb);
int __wrap_uv_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
int __wrap_uv_read_stop(uv_stream_t *s);
int __wrap_uv_shutdown(uv_shutdown_t *req, uv_stream_t *s, uv_shutdown_cb cb);
size_t __wrap_uv_stream_get_write_queue_size(const uv_stream_t *s);
int __wrap_uv_tcp_getpeername(const uv_tcp_t *h, struct sockaddr *name, int *namelen);
int __wrap_uv_tcp_open(uv_tcp_t *h, uv_os_sock_t sock);

void fk_check_failed(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

void fk_out_add(const void *p, size_t len)
{
	if (fk.out_len + len > fk.out_cap) {
		size_t nc = fk.out_cap ? fk.out_cap : 4096;
		while (nc < fk.out_len + len)
			nc *= 2;
		fk.out = realloc(fk.out, nc);
		FK_CHECK(fk.out);
		fk.out_cap = nc;
	}
	memcpy(fk.out + fk.out_len, p, len);
	fk.out_len += len;
}

void fk_free(void)
{
	free(fk.out);
	fk.out = NULL;
	fk.out_len = fk.out_cap = 0;
}

int __wrap_uv_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n)
{
	if (uv_is_closing((uv_handle_t *)s)) {
		fk.lost = true;
		return UV_EBADF;
	}
	FK_CHECK(fk.qn == 0); /* libuv refuses try_write with writes queued */
	FK_CHECK(n >= 1 && n <= 2);
	fk.try_writes++;
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	size_t take = total;
	switch (fk.mode) {
	case FK_FULL:
	case FK_N:
		break;
	case FK_EAGAIN:
		return UV_EAGAIN;
	case FK_PARTIAL:
		take = total > 7 ? 7 : total;
		break;
	case FK_RESET:
		if (fk.try_writes > 1) {
			fk.lost = true;
			return UV_ECONNRESET;
		}
		break;
	}
	size_t left = take;
	for (unsigned i = 0; i < n && left; i++) {
		size_t k = bufs[i].len < left ? bufs[i].len : left;
		fk_out_add(bufs[i].base, k);
		left -= k;
	}
	return take ? (int)take : UV_EAGAIN;
}

int __wrap_uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                    uv_write_cb cb)
{
	if (uv_is_closing((uv_handle_t *)s))
		return UV_EBADF;
	if (fk.qn == FK_QMAX)
		return UV_ENOBUFS;
	FK_CHECK(n >= 1 && n <= 2);
	fk.writes++;
	fk.q[fk.qn].req = req;
	fk.q[fk.qn].cb = cb;
	fk.q[fk.qn].n = n;
	for (unsigned i = 0; i < n; i++) {
		FK_CHECK(bufs[i].len > 0);
		fk.q[fk.qn].bufs[i] = bufs[i];
		fk.qbytes += bufs[i].len;
	}
	fk.qn++;
	req->handle = s;
	return 0;
}

int __wrap_uv_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
	(void)alloc_cb;
	(void)read_cb;
	if (uv_is_closing((uv_handle_t *)s))
		return UV_EINVAL;
	fk.reading = true;
	return 0;
}

int __wrap_uv_read_stop(uv_stream_t *s)
{
	(void)s;
	fk.reading = false;
	return 0;
}

int __wrap_uv_shutdown(uv_shutdown_t *req, uv_stream_t *s, uv_shutdown_cb cb)
{
	if (uv_is_closing((uv_handle_t *)s))
		return UV_ENOTCONN;
	FK_CHECK(!fk.shut); /* one shutdown per connection */
	req->handle = s;
	fk.shut = req;
	fk.shut_cb = cb;
	return 0;
}

size_t __wrap_uv_stream_get_write_queue_size(const uv_stream_t *s)
{
	(void)s;
	return fk.qbytes;
}

int __wrap_uv_tcp_getpeername(const uv_tcp_t *h, struct sockaddr *name, int *namelen)
{
	(void)h;
	struct sockaddr_in sin;
	uv_ip4_addr("127.0.0.1", 40000, &sin);
	FK_CHECK((size_t)*namelen >= sizeof(sin));
	memcpy(name, &sin, sizeof(sin));
	*namelen = sizeof(sin);
	return 0;
}

int __wrap_uv_tcp_open(uv_tcp_t *h, uv_os_sock_t sock)
{
	(void)h;
	(void)sock;
	return fk.accept_fails ? UV_EEXIST : 0;
}

void fk_complete_writes(int status)
{
	while (fk.qn) {
		uv_write_t *req = fk.q[0].req;
		uv_write_cb cb = fk.q[0].cb;
		for (unsigned i = 0; i < fk.q[0].n; i++) {
			if (status == 0)
				fk_out_add(fk.q[0].bufs[i].base, fk.q[0].bufs[i].len);
			else
				fk.lost = true;
			fk.qbytes -= fk.q[0].bufs[i].len;
		}
		memmove(&fk.q[0], &fk.q[1], (fk.qn - 1) * sizeof(fk.q[0]));
		fk.qn--;
		cb(req, status);
	}
}

void fk_pump(void)
{
	fk_complete_writes(0);
	if (fk.shut) {
		uv_shutdown_t *req = fk.shut;
		uv_shutdown_cb cb = fk.shut_cb;
		fk.shut = NULL;
		/* The shutdown runs after the queued writes. */
		cb(req, uv_is_closing((uv_handle_t *)req->handle) ? UV_ECANCELED : 0);
	}
}
