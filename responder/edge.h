/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The edge (edge.c, purge.c): the HTTP caches in front of the responder.
 *
 * Tags. Every cacheable answer names what it depends on in the [edge]
 * tag_header (xkey by default), so that an edge can drop exactly the objects
 * a change touched:
 *   vigil~CA          every answer and CRL of CA (a CA-wide change)
 *   vigil~CA~SERIAL   the OCSP answers about SERIAL (uppercase hex, even
 *                     length, as vigil-store prints it)
 *   vigil~CA~crl      CA's CRLs
 * CA names are 1 to 63 of A-Z a-z 0-9 . _ -, so tags are at most 108
 * characters of what Varnish xkey, Fastly, Cloudflare and Akamai all accept.
 * Tags are separated by a space in xkey and Surrogate-Key (Varnish, Fastly),
 * by a comma in any other header (Cache-Tag, Edge-Cache-Tag).
 *
 * Purges. One thread per configured edge (each URL of purge_varnish and
 * purge_nginx, and purge_command) follows the store's change log behind the
 * responder's own cache: a change is purged only once the cache has dropped
 * the answers it names and every worker reads a snapshot that has it, so an
 * edge that asks again gets the new answer. Batched, retried with back-off,
 * and durable: each edge's last acknowledged change counter is kept in
 * [edge] state_dir, and on start everything changed since is purged again.
 * Answering never waits on an edge.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/text.h"

struct rctx;
struct vg_store;

/* The longest tag: "vigil~" CA "~" 40 hex digits. */
#define EDGE_TAG_MAX (6 + 63 + 1 + 2 * VG_SERIAL_MAX + 1)

/* edge_tag_sep is the separator of tags in the header |name|. */
char edge_tag_sep(const char *name);
/* edge_tag_ca, edge_tag_serial and edge_tag_crl write a tag into |buf| (at
 * least EDGE_TAG_MAX bytes) and return its length. */
size_t edge_tag_ca(char *buf, const char *ca);
size_t edge_tag_serial(char *buf, const char *ca, const struct vg_serial *serial);
size_t edge_tag_crl(char *buf, const char *ca);

/* edge_start starts a purger thread for each edge |ctx| configures (none:
 * nothing). Failures to start one are logged; answering goes on. */
void edge_start(const struct rctx *ctx, struct vg_store *st);
/* edge_reload makes the purgers those of |ctx| (a reloaded configuration,
 * published): kept, stopped and started as edgeset.c says. Main thread. */
void edge_reload(const struct rctx *ctx);
/* edge_store_gen_min is the oldest store generation (storewatch.h) a
 * purger still reads (UINT64_MAX: none): an older store stays open. */
uint64_t edge_store_gen_min(void);
/* edge_stop stops them (at exit): a purge in flight is abandoned, to be sent
 * again at the next start. */
void edge_stop(void);
/* edge_metrics_text returns the edges' Prometheus text (malloc'd; "" when
 * none is configured), or NULL when memory ran out. */
char *edge_metrics_text(void);
