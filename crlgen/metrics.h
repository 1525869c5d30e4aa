/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * vigil-crlgen's metrics (metrics.c), in Prometheus text format in
 * [crlgen] metrics_file (default vigil-crlgen.prom beside the out
 * directory), replaced atomically after every publication; the responder's /metrics appends that
 * file, and node_exporter's textfile collector can read it as it is.
 *
 *   vigil_crl_entries{ca,crl}            entries of each published CRL
 *   vigil_crl_bytes{ca,crl}              its size in bytes (DER)
 *   vigil_crl_number{ca,crl}             its CRL number
 *   vigil_crl_next_update_seconds{ca,crl}
 *   vigil_crlgen_lint_failures_total{ca,rule}
 *   vigil_crlgen_refusals_total{ca,reason}  publications refused by the guard
 *                                        (guard.h: a store older than what was
 *                                        published)
 *
 * crl is the published URL (a shard's, or crl_url), or the file name
 * NAME.crl for a CA without crl_url.
 */

#include <stdint.h>

void metrics_crl_published(const char *ca, const char *crl, uint64_t entries, uint64_t bytes,
                           uint64_t number, int64_t this_update, int64_t next_update);
void metrics_lint_failed(const char *ca, const char *rule);
void metrics_refused(const char *ca, const char *reason);

/* metrics_flush writes the file |path| (a temporary file renamed). */
int metrics_flush(const char *path);
