/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The shared registry of CRL file versions (crlfile.c).
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* A version that could not be read is read again after this (the Retry-After
 * of its 503), or as soon as the file changes. */
#define CRL_RETRY_MS 10000

/* One version of a CRL file, shared by the workers: the file stays open
 * while a worker serves it or a client is sent it, so a version replaced by
 * a publication is still sent whole to whoever asked for it. A version that
 * could not be read is one too (|err|), so that it is not read again for
 * every request: only after CRL_RETRY_MS. */
struct crl_file {
	atomic_int refs;
	struct crl_file *next; /* in the registry (crl_reg) */
	int fd;                /* -1 when |err| */
	int err;               /* 0, or why this version cannot be served (negative errno) */
	uint64_t retry_ms;     /* |err|: when the file is tried again (crlfile_clock_ms) */
	size_t len;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int64_t this_update, next_update;
	char etag[40];
};

struct worker;
/* crlfile_get returns (a new reference to) the version of |path| that the
 * caller saw as |st|, reading it if no worker has, and a failure remembered
 * for CRL_RETRY_MS: each version is read once per process, not once per
 * worker or per request. Negative (no version) only when memory or
 * descriptors ran out; counted in |w|'s metrics, logged within its budget
 * (|ca| names the CA). */
int crlfile_get(struct worker *w, const char *ca, const char *path, const struct stat *st,
                struct crl_file **out);
/* crlfile_unref drops a reference (NULL is fine); the last closes the file. */
void crlfile_unref(struct crl_file *f);
/* crlfile_same tells whether |f| is the version |st| describes. */
bool crlfile_same(const struct crl_file *f, const struct stat *st);
/* crlfile_current tells whether |f| (may be NULL) still serves a file seen
 * as |st|: the same version, and not a failure past its retry time. */
bool crlfile_current(const struct crl_file *f, const struct stat *st);
/* crlfile_clock_ms is the monotonic clock of retry times, in ms. */
uint64_t crlfile_clock_ms(void);
/* crlfile_times reads thisUpdate and nextUpdate from the head of a DER CRL
 * (RFC 5280 §5.1) of |len| bytes, of which |der| holds the first |avail|,
 * without decoding its entries. False when the head is not all in |der| or
 * the CRL does not fill exactly |len| bytes. */
bool crlfile_times(const uint8_t *der, size_t avail, size_t len, int64_t *this_update,
                   int64_t *next_update);
/* For tests: whether no version is registered (all were freed). */
bool crlfile_registry_empty(void);
