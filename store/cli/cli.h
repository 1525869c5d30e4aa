/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What the files of vigil-store share (store/cli/): main.c parses the
 * command line, loads the configuration and dispatches to a cmd_* of
 * import.c (import-index, add), revoke.c (revoke, release, freeze, thaw),
 * show.c (status, list, stats, audit), backup.c (backup, restore), verify.c
 * (verify, prune) or replicate.c (replicate, with replicate_publish.c and
 * replicate_follow.c); the cli_* helpers below are main.c's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/conf.h"
#include "store/store.h"

#define EXIT_USAGE 2

/* The state of one run. */
struct ctx {
	struct vg_conf conf;
	struct vg_store *st;
	struct vg_audit who;
	bool quiet;
	bool tty;
	time_t last_progress;
	const char *progress_what;
	bool replica_ok; /* replicate: a replica store may be opened for writing */
};

extern const char *const cli_progname;

/* cli_die prints "vigil-store: MESSAGE" and exits 1. */
void cli_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* cli_usage_die prints the message with a pointer to --help and exits 2. */
void cli_usage_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* cli_end_progress ends an open progress line on stderr. */
void cli_end_progress(void);
/* cli_progress is the vg_progress_fn of writes; |arg| is the struct ctx. */
void cli_progress(uint64_t done, uint64_t total, void *arg);
/* cli_store_open opens the store, or dies with the reason. */
void cli_store_open(struct ctx *c, unsigned flags);
/* cli_need_ca, cli_need_serial, cli_need_time: an argument, or die. */
const struct vg_conf_ca *cli_need_ca(struct ctx *c, const char *name);
struct vg_serial cli_need_serial(const char *s);
int64_t cli_need_time(const char *opt, const char *s);
/* cli_fopen opens |path| for reading, or dies saying why. */
FILE *cli_fopen(const char *path);
/* cli_reserve returns |v| with room for element |n|, doubling |*cap| when
 * full; |v| NULL allocates |*cap| elements. It dies when out of memory. */
void *cli_reserve(void *v, size_t n, size_t *cap, size_t size);
/* cli_print_result prints a write's one-line summary. */
void cli_print_result(const char *what, const struct vg_write_result *r);
/* cli_write_failed dies saying what |r| says was committed before |rc|. */
void cli_write_failed(const char *what, int rc, const struct vg_write_result *r)
        __attribute__((noreturn));

/* cli_cert_serial copies |x|'s serial number; false when it is negative or
 * longer than VG_SERIAL_MAX. */
bool cli_cert_serial(X509 *x, struct vg_serial *out);

int cmd_import_index(struct ctx *c, int argc, char **argv);
int cmd_add(struct ctx *c, int argc, char **argv);
int cmd_revoke(struct ctx *c, int argc, char **argv);
int cmd_release(struct ctx *c, int argc, char **argv);
int cmd_freeze(struct ctx *c, int argc, char **argv, bool frozen);
int cmd_status(struct ctx *c, int argc, char **argv);
int cmd_list(struct ctx *c, int argc, char **argv);
int cmd_stats(struct ctx *c, int argc, char **argv);
int cmd_audit(struct ctx *c, int argc, char **argv);
int cmd_backup(struct ctx *c, int argc, char **argv);
int cmd_restore(struct ctx *c, int argc, char **argv);
int cmd_verify(struct ctx *c, int argc, char **argv);
int cmd_prune(struct ctx *c, int argc, char **argv);
int cmd_replicate(struct ctx *c, int argc, char **argv);
