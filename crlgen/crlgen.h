/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The CRL generator: configuration, keys, the store snapshot, and the
 * publication of full and delta CRLs for each CA. main.c drives it once or
 * as a daemon.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct crlgen;

enum crlgen_kind {
	/* A full CRL; with delta_crl = on, also an (empty) delta against it, so
	 * the published delta never refers to an older base or goes stale. */
	CRLGEN_FULL = 0,
	/* A delta CRL against the last full CRL. Falls back to CRLGEN_FULL when
	 * there is no base yet, when a CA-wide change (bulk write, freeze)
	 * happened since it, or when more than CRLGEN_DELTA_MAX certificates
	 * changed. */
	CRLGEN_DELTA = 1,
	/* After changes, for a CA with shards: the full CRL and the shards the
	 * changes seen by crlgen_touched touched (a CA-wide change touches all). */
	CRLGEN_TOUCHED = 2,
};

/* The most certificates a delta CRL lists; the set is sorted in memory. */
#define CRLGEN_DELTA_MAX 200000

/* crlgen_new loads the configuration |config|, the certificates and keys of
 * every CA (or only of |only|), and opens the store read-only; [crlgen] out
 * must be writable unless |writes| is false (the watchdog). On error it
 * returns a negative errno with a one-line reason in |err|. */
int crlgen_new(struct crlgen **out, const char *config, const char *only, bool writes, char *err,
               size_t errlen);

/* crlgen_reload loads the configuration again into a new generator, reusing
 * the store of |old| (LMDB must not be opened twice in one process). A
 * changed [store] path is refused: it needs a restart. */
int crlgen_reload(struct crlgen *old, struct crlgen **out, const char *config, const char *only,
                  char *err, size_t errlen);

void crlgen_free(struct crlgen *g);

int crlgen_n_cas(const struct crlgen *g);
bool crlgen_delta_enabled(const struct crlgen *g, int i);
int64_t crlgen_interval_ms(const struct crlgen *g);
/* crlgen_sharded tells whether CA |i| has crl_shards > 0. */
bool crlgen_sharded(const struct crlgen *g, int i);
/* crlgen_period_ms is the time between scheduled full CRLs of CA |i|: the
 * [crlgen] interval, or half of the CA's crl_validity when that is shorter. */
int64_t crlgen_period_ms(const struct crlgen *g, int i);

/* crlgen_counter reads the store's change counter from a fresh snapshot,
 * of the store now at [store] path: one found replaced (vigil-store
 * restore) is reopened first. */
int crlgen_counter(struct crlgen *g, uint64_t *out);

/* crlgen_reopens counts the times the store was found replaced and reopened
 * (the daemon then publishes every CA's full CRL from the new one). */
unsigned crlgen_reopens(const struct crlgen *g);

/* crlgen_touched sets |touched[i]| for every CA with a change after |since|
 * and writes the counter it read up to into |upto|. */
int crlgen_touched(struct crlgen *g, uint64_t since, bool *touched, uint64_t *upto);

/* crlgen_publish builds, signs and publishes CA |i|'s CRL of |kind| from a
 * fresh snapshot of the store, and logs one line. Returns 0 or a negative
 * errno (logged; the previously published CRL stays in place). */
int crlgen_publish(struct crlgen *g, int i, enum crlgen_kind kind);
