/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * vigil-crlgen --check (check.c): the watchdog on what the world fetches.
 * For every CA with a CCADB list (NAME.ccadb.json in [crlgen] out), fetch
 * every URL in it over plain HTTP, as a crawler would (through the CDN, or
 * through --url-base, which replaces the URL's scheme and host), and the
 * CA's crl_url when the list does not hold it (a CA with shards lists only
 * them, yet the certificates issued before sharding, or whose CDP names
 * crl_url, point at the full CRL there), and check what comes back:
 *
 *   ccadb_list     the list holds exactly the URLs of the configuration
 *   fetch          connected, answered within CHECK_TIMEOUT_S, status 200
 *   content_type   application/pkix-crl
 *   der            a DER X.509 CRL
 *   signature      verifies with the CA certificate; issuer is its subject
 *   idp            a shard: its IDP URI is the URL fetched; the full
 *                  CRL: no IDP
 *   this_update    no older than the publish period plus a margin
 *   next_update    not passed, and at least the publish period ahead
 *   crl_number     not below the number crlgen last published there
 *   expires        the Expires header, if any, not after nextUpdate
 *   entries        every revoked, unexpired certificate of the store,
 *                  revoked before the CRL's thisUpdate, is listed (in its
 *                  shard, for a shard)
 *
 * Output on stdout: Prometheus text (node_exporter's textfile collector);
 * one log line per failed check on stderr. Returns the exit status: 0 all
 * passed, 1 a check failed.
 */

#include <stdio.h>

struct crlgen;

#define CHECK_TIMEOUT_S 10

int crlgen_check(struct crlgen *g, const char *url_base, FILE *out);
