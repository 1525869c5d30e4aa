/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A fake libuv stream for the responder's connections (responder/conn.c),
 * shared by the unit tests (tests/unit/test_responder_http.c) and the fuzz
 * harness (tests/fuzz/fuzz_http_req.c): a connection runs on a real libuv
 * loop (timers, idle handles, closing) but its stream calls go to the fakes
 * of fake_stream.c, which collect what would be written and take everything,
 * nothing (EAGAIN, so every answer is queued), a few bytes at a time, or
 * everything once and then a reset.
 *
 * The calls are redirected at link time (ld --wrap, fake_stream_dep in
 * tests/common/meson.build): the responder's objects are the ones
 * vigil-responder links, unchanged; a reference to uv_write in them resolves
 * to __wrap_uv_write here.
 *
 * A broken expectation (a try_write with writes queued, a second shutdown,
 * a write of nothing) prints its place and aborts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

enum fk_mode { FK_FULL, FK_EAGAIN, FK_PARTIAL, FK_RESET, FK_N };

#define FK_QMAX 64

struct fake_stream {
	enum fk_mode mode;
	unsigned try_writes, writes;
	char *out; /* what the client received */
	size_t out_len, out_cap;
	struct {
		uv_write_t *req;
		uv_write_cb cb;
		uv_buf_t bufs[2];
		unsigned n;
	} q[FK_QMAX]; /* writes queued, completed by fk_complete_writes */
	unsigned qn;
	size_t qbytes;
	uv_shutdown_t *shut;
	uv_shutdown_cb shut_cb;
	bool reading;
	bool accept_fails; /* uv_tcp_open fails */
	bool lost;         /* bytes written were cancelled or refused: the output may end early */
};

/* The one fake stream (a test drives one connection's writes at a time). */
extern struct fake_stream fk;

#define FK_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fk_check_failed(__FILE__, __LINE__, #cond);                                \
	} while (0)
void fk_check_failed(const char *file, int line, const char *what) __attribute__((noreturn));

/* fk_out_add appends to what the client received. */
void fk_out_add(const void *p, size_t len);
/* fk_complete_writes finishes the queued writes as libuv would: in order,
 * the bytes read only now (so they must still be valid), or cancelled
 * (|status| < 0). */
void fk_complete_writes(int status);
/* fk_pump runs what the loop would run between two reads: the queued
 * writes, then a pending shutdown. */
void fk_pump(void);
/* fk_free frees what the client received. */
void fk_free(void);
