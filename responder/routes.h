/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Routes (routes.c): the answers, and the only place where the header
 * lines that carry their meaning are written.
 */

#include <stddef.h>

struct conn;
struct worker;

/* routes_init makes the cache keep each answer's HTTP validators with it
 * (cache_set_note); before any answer is cached. */
void routes_init(void);
/* routes_dispatch answers the request |c| has just completed. */
void routes_dispatch(struct conn *c);
/* routes_allow is the Allow header line of a 405 to |c|'s request. */
const char *routes_allow(const struct conn *c);
/* routes_timeout answers 408 to a request not complete in time, and closes. */
void routes_timeout(struct conn *c);
/* routes_refuse_busy answers 503 to a connection over max_connections (or
 * while draining), and closes. */
void routes_refuse_busy(struct conn *c);
/* routes_busy_text writes that 503 whole (head and body) into |buf| for a
 * socket that gets no connection (past the descriptor limit); returns its
 * length. */
size_t routes_busy_text(const struct worker *w, char *buf, size_t len);
