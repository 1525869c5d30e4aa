/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The store under the responder's feet (storewatch.c): a restore
 * (vigil-store restore) puts another store directory at [store] path. Each
 * worker checks at every tick whether the data file it reads is still the
 * one at the path (vg_store_replaced) and, if not, stops answering from it
 * (tryLater, /healthz 503) and drops the cached answers. The main thread
 * checks every STOREWATCH_MS; once a replacement has been seen on two
 * checks (every worker has then ticked and stopped), it opens the new store
 * and publishes it under a new generation, which each worker adopts at its
 * next tick with an empty cache. The old handle is closed once no worker
 * uses it.
 */

#include <stdint.h>

#include "store/store.h"

#define STOREWATCH_MS 200

/* storewatch_check runs on the main thread every STOREWATCH_MS. */
void storewatch_check(void);

/* storewatch_gen is the generation of the current store. */
uint64_t storewatch_gen(void);

/* storewatch_get returns the current store and its generation in |gen|. */
struct vg_store *storewatch_get(uint64_t *gen);

/* storewatch_close closes the current and any retired store (at exit, after
 * the workers stopped). */
void storewatch_close(void);
