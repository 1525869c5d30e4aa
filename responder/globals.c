/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The responder's process-wide state (declared in worker.h). Here rather than
 * in main.c so that the unit tests and fuzz targets, which have their own
 * main(), link the same definitions.
 */
#include "responder/worker.h"

struct worker *g_workers;
int g_nworkers;
struct vg_store *g_store;
atomic_int g_open_conns;
int g_access_fd = -1;
atomic_bool g_drain;
