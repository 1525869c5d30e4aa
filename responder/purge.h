/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Sending purges (purge.c): HTTP/1.1 requests to an edge over one kept
 * connection, and a program run with tags on its standard input. Both block
 * the calling thread (a purger's, edge.c), never longer than their timeout,
 * and give up at once when |stop_fd| becomes readable.
 */

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/conf.h"

/* Answers read ahead on a connection (pipelined requests). */
#define PURGE_WINDOW 8

struct purge_conn {
	struct vg_http_url url;
	int fd; /* -1: not connected */
	int stop_fd;
	/* The connection's answers, framed by one parser across them. */
	http_parser hp;
	http_parser_settings hs;
	int status[PURGE_WINDOW + 1]; /* answers complete, not yet taken */
	bool keep[PURGE_WINDOW + 1];
	int n_status;
};

/* One request of a pipelined run: its header lines (each ending in CRLF). */
struct purge_req {
	const char *hdrs;
	size_t hlen;
};

/* purge_http sends |method| |target| with the header lines |hdrs| (each
 * ending in CRLF, |hlen| bytes) and reads the answer, within |timeout_ms|;
 * the connection is kept when the edge allows. Returns the HTTP status, or a
 * negative errno with a reason in |err|. */
int purge_http(struct purge_conn *pc, const char *method, const char *target, const char *hdrs,
               size_t hlen, int timeout_ms, char *err, size_t errlen);
void purge_http_close(struct purge_conn *pc);
/* purge_http_run sends the |n| requests |method| |target| + |reqs|[i],
 * the first as purge_http does (a kept connection the edge closed is
 * replaced), the others pipelined, up to PURGE_WINDOW answers awaited, each
 * within |timeout_ms|. Returns the number answered 2xx in a row from the
 * first; fewer than |n| when one was not (its status or why in |err|). */
int purge_http_run(struct purge_conn *pc, const char *method, const char *target,
                   const struct purge_req *reqs, int n, int timeout_ms, char *err, size_t errlen);

/* purge_command runs |path| with |len| bytes of |input| on its standard
 * input (stdout to /dev/null, stderr inherited), in its own process group,
 * and waits for it: 0 when it exits 0; otherwise a negative errno and the
 * reason in |err| (exit status, signal, or -ETIMEDOUT after |timeout_ms|,
 * when the whole group is killed). */
int purge_command(const char *path, const char *input, size_t len, int timeout_ms, int stop_fd,
                  char *err, size_t errlen);
