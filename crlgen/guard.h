/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The guard against publishing from an older store (guard.c). A store
 * restored from a backup may lack revocations that a CRL already published
 * lists; a CRL built from it would un-revoke them for every relying party.
 * Before each publication crlgen compares the store with what it last
 * published for the CA (its state: the counter and store_id of the last full
 * CRL). When the counter went back or the store_id changed (a backup copy,
 * a restore), every serial of the CRL now published (NAME.crl) must be
 * revoked in the store; otherwise nothing is published, the refusal is
 * logged with the count and the first serial, and the missing serials are
 * written to NAME.missing for the operator to revoke again: one hexadecimal
 * serial a line, the input of vigil-store revoke CA --serials, each followed
 * by a comment holding the revoke options that record it exactly as the CRL
 * does ("SERIAL # --reason R --time T [--invalidity-date T]").
 */

#include <stdint.h>

#include "crlgen/publish.h"
#include "store/store.h"

/* guard_check returns 0 when publishing CA |name| (id |ca_id|) from |txn|
 * (counter |counter|, store |store_id|) loses nothing that |ps| says was
 * published, -ESTALE (logged) when it would, or another negative errno when
 * the published CRL cannot be read. */
int guard_check(struct vg_txn *txn, int dirfd, const char *name, uint32_t ca_id,
                const struct pub_state *ps, uint64_t counter, uint64_t store_id);
