/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store replicate publish: the database's change log (vigil.changes,
 * vigil.gone) trimmed as the primary's own is ([store] log_retention), so
 * that the replication tables stop growing (replicate.h: repl_trim). A
 * replica behind the trimmed rows is refused by follow (replicate_follow.c)
 * and bootstrapped again.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/text.h"
#include "store/cli/replicate.h"

/* Rows deleted per statement when the change log is trimmed: a trim never
 * holds many row locks or a long transaction. */
#define TRIM_BATCH 20000

/* The database's pushes are dated by marks (vigil.meta log_marks, "time:counter"
 * pairs, one a day at most): a row is trimmed only once a mark at least
 * log_retention old covers it, so a replica that followed within
 * log_retention never finds its next rows gone, whatever the primary's own
 * log kept (a resync pushes old commits late: their rows are new here). */
#define MARK_EVERY (24 * 3600)
#define MARKS_MAX 512

struct mark {
	int64_t t;
	uint64_t c;
};

/* log_marks dates the database's counter |n| now when the last mark is a
 * day old, drops the marks no trim needs any more, and writes to |*horizon|
 * the newest counter marked at least |retention| ago (0: none yet). */
static int log_marks(struct repl *r, uint64_t n, int64_t now, int64_t retention, uint64_t *horizon,
                     char *err, size_t errlen)
{
	static struct mark m[MARKS_MAX + 1];
	size_t k = 0;
	PGresult *res = repl_query(r, "SELECT value FROM vigil.meta WHERE key = 'log_marks'",
	                           PGRES_TUPLES_OK, err, errlen);
	if (!res)
		return -1;
	const char *s = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	while (*s && k < MARKS_MAX) {
		char *end;
		long long t = strtoll(s, &end, 10);
		if (*end != ':')
			break;
		unsigned long long c = strtoull(end + 1, &end, 10);
		m[k++] = (struct mark){t, c};
		s = *end == ',' ? end + 1 : end;
	}
	PQclear(res);
	*horizon = 0;
	size_t first = 0; /* the newest mark old enough, and all after it, are kept */
	for (size_t i = 0; i < k; i++) {
		if (m[i].t <= now - retention) {
			*horizon = m[i].c;
			first = i;
		}
	}
	bool add = k == 0 || (m[k - 1].t + MARK_EVERY <= now && m[k - 1].c < n);
	if (!add && first == 0)
		return 0;
	if (add)
		m[k++] = (struct mark){now, n};
	if (k - first > MARKS_MAX)
		first = k - MARKS_MAX;
	static char val[MARKS_MAX * 42 + 1];
	size_t len = 0;
	for (size_t i = first; i < k; i++)
		len += (size_t)snprintf(val + len, sizeof(val) - len, "%s%lld:%llu",
		                        i > first ? "," : "", (long long)m[i].t,
		                        (unsigned long long)m[i].c);
	return repl_meta_set(r, "log_marks", val, err, errlen);
}

/* trim_log trims the database's change log (vigil.changes, vigil.gone) up
 * to the store's own log floor |upto| (vg_store_prune, [store] log_retention),
 * so that it stays as long as the primary's instead of growing for ever.
 * The database's log_floor is the newest counter that had rows trimmed (a
 * resync's jump has none: a replica at its start misses nothing), raised
 * first, in its own transaction: a follow that needs a row at or below it
 * sees the floor and refuses, never a hole. */
static int trim_log(struct repl *r, uint64_t upto, char *err, size_t errlen)
{
	char sql[320];
	snprintf(sql, sizeof(sql),
	         "SELECT max(counter) FROM (SELECT max(counter) AS counter FROM vigil.changes "
	         "WHERE counter <= %" PRIu64 " UNION ALL SELECT max(counter) FROM vigil.gone "
	         "WHERE counter <= %" PRIu64 ") AS m",
	         upto, upto);
	PGresult *res = repl_query(r, sql, PGRES_TUPLES_OK, err, errlen);
	if (!res)
		return -1;
	bool none = PQgetisnull(res, 0, 0);
	uint64_t floor = none ? 0 : strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (none) {
		r->trimmed_upto = upto; /* nothing at or below it: nothing to trim */
		return 0;
	}
	if (floor > r->db_log_floor) {
		char v[24];
		snprintf(v, sizeof(v), "%" PRIu64, floor);
		if (repl_meta_set(r, "log_floor", v, err, errlen) < 0)
			return -1;
		r->db_log_floor = floor;
	}
	static const char *const tables[] = {"changes", "gone"};
	uint64_t removed[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		uint64_t k;
		do {
			snprintf(sql, sizeof(sql),
			         "DELETE FROM vigil.%s WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
			         "vigil.%s WHERE counter <= %" PRIu64 " LIMIT %d))",
			         tables[i], tables[i], upto, TRIM_BATCH);
			res = repl_query(r, sql, PGRES_COMMAND_OK, err, errlen);
			if (!res)
				return -1;
			k = strtoull(PQcmdTuples(res), NULL, 10);
			PQclear(res);
			removed[i] += k;
		} while (k == TRIM_BATCH && !repl_stopping());
	}
	if (!repl_stopping())
		r->trimmed_upto = upto;
	vg_log(LOG_NOTICE,
	       "event=replicate_trimmed upto=%" PRIu64 " log_floor=%" PRIu64 " changes=%" PRIu64
	       " gone=%" PRIu64,
	       upto, r->db_log_floor, removed[0], removed[1]);
	return 0;
}

int repl_trim(struct repl *r, uint64_t n, uint64_t store_floor, int64_t retention, char *err,
              size_t errlen)
{
	uint64_t horizon = 0;
	if (log_marks(r, n, vg_now(), retention, &horizon, err, errlen) < 0)
		return -1;
	uint64_t upto = store_floor < horizon ? store_floor : horizon;
	if (upto > r->trimmed_upto)
		return trim_log(r, upto, err, errlen);
	return 0;
}
