/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The store fixture of the store's unit tests (tests/unit/test_store.c,
 * test_replica.c, test_store_life.c): a new store in a mkdtemp() directory,
 * opened with VG_STORE_CREATE before each test, closed and removed with the
 * directory after it. A test may close and reopen f->st itself (NULL when it
 * leaves it closed).
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
