/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The store fixture of the store's unit tests (tests/unit/test_store.c,
 * test_store_map.c, test_replica.c, test_store_life.c): a new store in a
 * mkdtemp() directory, opened with VG_STORE_CREATE before each test, closed
 * and removed with the directory after it. A test may close and reopen f->st
 * itself (NULL when it leaves it closed). Beside it, the helpers the tests
 * share: an audit record, a good certificate, a one-certificate read.
 */

#include <stdint.h>

#include "store/store.h"

struct store_fx {
	char dir[64];   /* the mkdtemp() directory, removed by the teardown */
	char store[96]; /* the store's directory: dir, or dir/store */
	struct vg_store *st;
};

/* cmocka setups: store_fx_setup puts the store in the directory itself;
 * store_fx_setup_nested in dir/store, leaving room beside it (backups). */
int store_fx_setup(void **state);
int store_fx_setup_nested(void **state);
int store_fx_teardown(void **state);

/* store_fx_serial parses |hex| (asserting it parses). */
struct vg_serial store_fx_serial(const char *hex);

/* store_fx_who: the audit record the tests write under. */
extern const struct vg_audit store_fx_who;

/* store_fx_good_item makes a good certificate |hex|, with notBefore |nb|
 * when |nb| is not 0. */
struct vg_add_item store_fx_good_item(const char *hex, int64_t nb);

/* store_fx_status_of reads certificate |hex| of CA |ca| in a snapshot of
 * |st| of its own: vg_store_get's result, the certificate in |out|. */
int store_fx_status_of(struct vg_store *st, const char *ca, const char *hex, struct vg_cert *out);
