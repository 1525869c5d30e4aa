/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * vigil-store replicate (issue 15): the store carried to other sites through
 * PostgreSQL. replicate.c holds the command, the connection, the database
 * schema and the state file; replicate_publish.c the primary's side,
 * replicate_follow.c the replica's.
 *
 * The database (schema "vigil", version REPL_SCHEMA_VERSION):
 *   meta(key, value)        schema_version, store_id (hex), counter
 *   cas(name, ...)          each CA's record (frozen, counts, pruned), with
 *                           the counter that last changed it
 *   certs(ca_id, serial, status, reason, flags, revoked_at,
 *         invalidity_date, not_before, not_after, counter)
 *                           every certificate's current record; counter: the
 *                           commit that last changed it
 *   gone(counter, ca_id, serial)  certificates a CA copied whole no longer
 *                           had (removed by prune, logged CA-wide)
 *   changes(counter, seq, ca_id, op, serial)  the store's change log
 *   audit(counter, time, count, usr, ca, action, command)  its audit log
 * One store commit is one database transaction that sets meta.counter from
 * N-1 to N; a commit is applied on a replica from the rows whose counter is
 * N, plus the current record of every serial its change log names (a row
 * removed: the certificate is gone), less the rows gone at N.
 */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store/cli/cli.h"

#define REPL_SCHEMA_VERSION 1

/* The state of a replicate daemon, written to STORE/replicate.state for
 * `stats` and the responder's /metrics. */
struct repl_state {
	const char *role;      /* "publish" or "follow" */
	uint64_t counter;      /* last counter pushed (publish) or applied (follow) */
	uint64_t source;       /* the newest counter known: the store's or the database's */
	int64_t pending_since; /* commit time of the oldest commit not yet carried; 0 none */
	bool link_up;
	int64_t last_ok;  /* last time the database answered */
	uint64_t primary; /* store id */
};

struct repl {
	struct ctx *c;
	PGconn *pg;
	bool once;
	struct repl_state state;
	int64_t state_written;
	uint64_t written_counter, written_source;
	bool written_link;
	uint64_t db_epoch;    /* the database's epoch, as repl_meta last read it */
	uint64_t store_epoch; /* publish: the store's; every push checks it */
	/* The database's log_floor, as repl_meta last read it: its change-log
	 * rows (vigil.changes, vigil.gone) up to it were trimmed. */
	uint64_t db_log_floor;
	uint64_t trimmed_upto; /* publish: the store floor this process last trimmed to */
};

/* repl_connect connects to [replicate] postgres (the password from
 * password_file, the systemd credential pg-password, or libpq's own
 * PGPASSFILE/PGPASSWORD); on failure it says why in |err| and returns -1. */
int repl_connect(struct repl *r, char *err, size_t errlen);
void repl_disconnect(struct repl *r);

/* repl_exec runs |sql| and returns 0 when it succeeds as |want|
 * (PGRES_COMMAND_OK or PGRES_TUPLES_OK), -1 with the reason in |err|. */
int repl_exec(struct repl *r, const char *sql, ExecStatusType want, char *err, size_t errlen);
/* repl_meta_set writes vigil.meta's |key| = |value| (inserted or replaced),
 * in the current transaction. */
int repl_meta_set(struct repl *r, const char *key, const char *value, char *err, size_t errlen);
/* repl_query is repl_exec keeping the result (NULL on failure): the caller
 * PQclear()s it. */
PGresult *repl_query(struct repl *r, const char *sql, ExecStatusType want, char *err,
                     size_t errlen);

/* repl_meta reads the database's schema version (0: no vigil schema),
 * store id and counter in the current transaction, its epoch into
 * r->db_epoch (0 when it has none: never a promotion) and its log floor into
 * r->db_log_floor (0: never trimmed). */
int repl_meta(struct repl *r, unsigned *version, uint64_t *store_id, uint64_t *counter, char *err,
              size_t errlen);

/* repl_state_write writes the state file when it changed, else at most
 * once a second, unless |force|. */
void repl_state_write(struct repl *r, bool force);

/* repl_trim, after a publish pass that caught up with store counter |n|:
 * dates the push (vigil.meta log_marks) and trims the database's change log
 * through the store's |store_floor|, but only rows pushed |retention| ago
 * or more; the database's log_floor then names the newest counter trimmed,
 * which follow refuses to be behind. */
int repl_trim(struct repl *r, uint64_t n, uint64_t store_floor, int64_t retention, char *err,
              size_t errlen);

/* repl_stopping: SIGTERM or SIGINT arrived. */
bool repl_stopping(void);

/* The passes: 1 when there is more to do now, 0 when caught up, -1 on a
 * database failure (reason in |err|: the daemon reconnects and retries);
 * a refusal (another store, a database behind) dies with one line. */
int repl_publish_pass(struct repl *r, char *err, size_t errlen);
int repl_follow_pass(struct repl *r, char *err, size_t errlen);

/* repl_publish_local refreshes what the primary's state says of the store
 * (its counter, the oldest commit not pushed) while the database is away. */
void repl_publish_local(struct repl *r);

/* Hex helpers for bytea in text form ("\x0a1b"). */
void repl_hex(const uint8_t *b, size_t n, char *out);
int repl_unhex(const char *s, uint8_t *out, size_t max);
