/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replicate publish: the primary's store carried into PostgreSQL
 * (replicate.h). A pass reads one snapshot of the store, at counter N,
 * and pushes every commit the database lacks, each in one transaction that
 * moves meta.counter from c-1 to c, with the records as the snapshot has
 * them (never older than commit c made them). A database that has nothing
 * gets the whole store in one transaction, with COPY.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "store/cli/replicate.h"
#include "store/replica.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Counters pushed per pass: the snapshot is renewed between passes. */
#define PASS_MAX 256

static const char schema_sql[] =
        "CREATE SCHEMA IF NOT EXISTS vigil;"
        "CREATE TABLE IF NOT EXISTS vigil.meta (key text PRIMARY KEY, value text NOT NULL);"
        "CREATE TABLE IF NOT EXISTS vigil.cas (name text PRIMARY KEY, id bigint NOT NULL,"
        " frozen boolean NOT NULL, frozen_at bigint NOT NULL, n_certs bigint NOT NULL,"
        " n_revoked bigint NOT NULL, n_hold bigint NOT NULL, counter bigint NOT NULL,"
        " pruned boolean NOT NULL DEFAULT false);"
        "CREATE TABLE IF NOT EXISTS vigil.certs (ca_id bigint NOT NULL, serial bytea NOT NULL,"
        " status smallint NOT NULL, reason smallint, flags smallint NOT NULL,"
        " revoked_at bigint, invalidity_date bigint, not_before bigint, not_after bigint,"
        " counter bigint NOT NULL, PRIMARY KEY (ca_id, serial));"
        "CREATE INDEX IF NOT EXISTS certs_counter ON vigil.certs (counter);"
        "CREATE TABLE IF NOT EXISTS vigil.gone (counter bigint NOT NULL, ca_id bigint NOT NULL,"
        " serial bytea NOT NULL);"
        "CREATE INDEX IF NOT EXISTS gone_counter ON vigil.gone (counter);"
        "CREATE TABLE IF NOT EXISTS vigil.changes (counter bigint NOT NULL, seq integer NOT NULL,"
        " ca_id bigint NOT NULL, op smallint NOT NULL, serial bytea NOT NULL,"
        " PRIMARY KEY (counter, seq));"
        "CREATE TABLE IF NOT EXISTS vigil.audit (counter bigint PRIMARY KEY, time bigint NOT NULL,"
        " count bigint NOT NULL, usr text NOT NULL, ca text NOT NULL, action text NOT NULL,"
        " command text NOT NULL);";

/* ---- COPY FROM STDIN, buffered ------------------------------------------ */

struct copy {
	struct repl *r;
	size_t n;
	bool failed;
	char buf[1 << 16];
};

static void copy_flush(struct copy *cp)
{
	if (cp->n && !cp->failed && PQputCopyData(cp->r->pg, cp->buf, (int)cp->n) != 1)
		cp->failed = true;
	cp->n = 0;
}

static void copy_printf(struct copy *cp, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void copy_printf(struct copy *cp, const char *fmt, ...)
{
	if (cp->n > sizeof(cp->buf) - 2048)
		copy_flush(cp);
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(cp->buf + cp->n, sizeof(cp->buf) - cp->n, fmt, ap);
	va_end(ap);
	if (k > 0 && (size_t)k < sizeof(cp->buf) - cp->n)
		cp->n += (size_t)k;
	else
		cp->failed = true;
}

/* copy_text writes |s| escaped for COPY's text format. */
static void copy_text(struct copy *cp, const char *s)
{
	for (; *s; s++) {
		if (cp->n > sizeof(cp->buf) - 8)
			copy_flush(cp);
		char ch = *s;
		if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
			cp->buf[cp->n++] = '\\';
			ch = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : '\\';
		}
		cp->buf[cp->n++] = ch;
	}
}

static int copy_begin(struct copy *cp, struct repl *r, const char *sql, char *err, size_t errlen)
{
	cp->r = r;
	cp->n = 0;
	cp->failed = false;
	PGresult *res = PQexec(r->pg, sql);
	int ok = PQresultStatus(res) == PGRES_COPY_IN;
	PQclear(res);
	if (!ok) {
		const char *m = PQerrorMessage(r->pg);
		snprintf(err, errlen, "database: %.*s", (int)strcspn(m, "\n"), m);
		return -1;
	}
	return 0;
}

static int copy_end(struct copy *cp, char *err, size_t errlen)
{
	copy_flush(cp);
	int rc = PQputCopyEnd(cp->r->pg, cp->failed ? "vigil-store: copy failed" : NULL);
	PGresult *res = PQgetResult(cp->r->pg);
	bool ok = rc == 1 && !cp->failed && PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	while ((res = PQgetResult(cp->r->pg)))
		PQclear(res);
	if (!ok) {
		const char *m = PQerrorMessage(cp->r->pg);
		snprintf(err, errlen, "database: copy: %.*s", (int)strcspn(m, "\n"), m);
		return -1;
	}
	return 0;
}

static void opt_i64(struct copy *cp, bool has, int64_t v)
{
	if (has)
		copy_printf(cp, "\t%" PRId64, v);
	else
		copy_printf(cp, "\t\\N");
}

/* copy_cert writes one row of certs (or stage, |present|, without counter). */
static void copy_cert(struct copy *cp, uint32_t ca_id, const struct vg_serial *s,
                      const struct vg_cert *c, bool stage, uint64_t counter)
{
	char hex[2 * VG_SERIAL_MAX + 1];
	repl_hex(s->b, s->len, hex);
	copy_printf(cp, "%" PRIu32 "\t\\\\x%s", ca_id, hex);
	if (stage)
		copy_printf(cp, "\t%c", c ? 't' : 'f');
	if (!c) {
		copy_printf(cp, "\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n");
		return;
	}
	copy_printf(cp, "\t%u", c->status);
	if (c->reason >= 0)
		copy_printf(cp, "\t%d", c->reason);
	else
		copy_printf(cp, "\t\\N");
	copy_printf(cp, "\t%u", c->flags);
	opt_i64(cp, c->status == VG_STATUS_REVOKED, c->revoked_at);
	opt_i64(cp, c->flags & VG_CERT_HAS_INVALIDITY, c->invalidity_date);
	opt_i64(cp, c->flags & VG_CERT_HAS_NOT_BEFORE, c->not_before);
	opt_i64(cp, c->flags & VG_CERT_HAS_NOT_AFTER, c->not_after);
	if (!stage)
		copy_printf(cp, "\t%" PRIu64, counter);
	copy_printf(cp, "\n");
}

static void copy_change(struct copy *cp, const struct vg_change *ch, uint32_t seq)
{
	char hex[2 * VG_SERIAL_MAX + 1];
	repl_hex(ch->serial.b, ch->serial.len, hex);
	copy_printf(cp, "%" PRIu64 "\t%" PRIu32 "\t%" PRIu32 "\t%u\t\\\\x%s\n", ch->counter, seq,
	            ch->ca_id, ch->op, hex);
}

static void copy_audit(struct copy *cp, const struct vg_audit_entry *e)
{
	copy_printf(cp, "%" PRIu64 "\t%" PRId64 "\t%" PRIu64 "\t", e->counter, e->time, e->count);
	copy_text(cp, e->user);
	copy_printf(cp, "\t");
	copy_text(cp, e->ca);
	copy_printf(cp, "\t");
	copy_text(cp, e->action);
	copy_printf(cp, "\t");
	copy_text(cp, e->command);
	copy_printf(cp, "\n");
}

/* ---- what a pass reads from the store ------------------------------------ */

struct gather {
	struct vg_change *v;
	size_t n, cap;
	uint64_t upto;
};

static int gather_change(const struct vg_change *c, void *arg)
{
	struct gather *g = arg;
	if (c->counter > g->upto)
		return 1;
	if (!g->cap)
		g->cap = 1024;
	g->v = cli_reserve(g->v, g->n, &g->cap, sizeof(*g->v));
	g->v[g->n++] = *c;
	return 0;
}

struct gather_audit {
	struct vg_audit_entry *v;
	size_t n, cap;
	uint64_t upto;
};

static int gather_audit(const struct vg_audit_entry *e, void *arg)
{
	struct gather_audit *g = arg;
	if (e->counter > g->upto)
		return 1;
	if (!g->cap)
		g->cap = 256;
	g->v = cli_reserve(g->v, g->n, &g->cap, sizeof(*g->v));
	g->v[g->n++] = *e;
	return 0;
}

#define CAS_MAX 256

struct cas {
	char name[CAS_MAX][64];
	struct vg_ca_state s[CAS_MAX];
	size_t n;
};

static int gather_ca(const char *name, const struct vg_ca_state *s, void *arg)
{
	struct cas *cs = arg;
	if (cs->n >= CAS_MAX)
		return -E2BIG;
	snprintf(cs->name[cs->n], sizeof(cs->name[0]), "%s", name);
	cs->s[cs->n++] = *s;
	return 0;
}

/* push_cas upserts every CA record; |counter| marks those that changed. */
static int push_cas(struct repl *r, const struct cas *cs, uint64_t counter, char *err,
                    size_t errlen)
{
	for (size_t i = 0; i < cs->n; i++) {
		char sql[1024];
		char *name = PQescapeLiteral(r->pg, cs->name[i], strlen(cs->name[i]));
		if (!name) {
			snprintf(err, errlen, "database: out of memory");
			return -1;
		}
		const struct vg_ca_state *s = &cs->s[i];
		snprintf(sql, sizeof(sql),
		         "INSERT INTO vigil.cas AS c (name, id, frozen, frozen_at, n_certs, "
		         "n_revoked, n_hold, counter, pruned) VALUES (%s, %" PRIu32 ", %s, %" PRId64
		         ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
		         ", %s) ON CONFLICT (name) DO UPDATE SET id = EXCLUDED.id, frozen = "
		         "EXCLUDED.frozen, frozen_at = EXCLUDED.frozen_at, n_certs = "
		         "EXCLUDED.n_certs, n_revoked = EXCLUDED.n_revoked, n_hold = "
		         "EXCLUDED.n_hold, counter = EXCLUDED.counter, pruned = EXCLUDED.pruned "
		         "WHERE (c.id, c.frozen, c.frozen_at, c.n_certs, c.n_revoked, c.n_hold, "
		         "c.pruned) IS DISTINCT FROM (EXCLUDED.id, EXCLUDED.frozen, "
		         "EXCLUDED.frozen_at, EXCLUDED.n_certs, EXCLUDED.n_revoked, "
		         "EXCLUDED.n_hold, "
		         "EXCLUDED.pruned)",
		         name, s->id, s->frozen ? "true" : "false", s->frozen_at, s->n_certs,
		         s->n_revoked, s->n_hold, counter, s->pruned ? "true" : "false");
		PQfreemem(name);
		if (repl_exec(r, sql, PGRES_COMMAND_OK, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* lock_counter takes the database's counter row (and its epoch's) for this
 * transaction and checks the counter is |want| and the epoch not past the
 * store's: another publisher moving it, or a promotion since the pass began,
 * is refused. */
static int lock_counter(struct repl *r, uint64_t want, char *err, size_t errlen)
{
	PGresult *res = repl_query(r,
	                           "SELECT key, value FROM vigil.meta WHERE key IN "
	                           "('counter', 'epoch') FOR UPDATE",
	                           PGRES_TUPLES_OK, err, errlen);
	if (!res)
		return -1;
	uint64_t have = 0, epoch = 0;
	int found = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t v = strtoull(PQgetvalue(res, i, 1), NULL, 10);
		if (!strcmp(PQgetvalue(res, i, 0), "counter")) {
			have = v;
			found++;
		} else {
			epoch = v;
		}
	}
	PQclear(res);
	if (found != 1) {
		snprintf(err, errlen, "database: vigil.meta has no counter");
		return -1;
	}
	if (epoch > r->store_epoch) {
		snprintf(err, errlen,
		         "database taken over by a promoted replica (epoch %" PRIu64
		         ") since this pass began",
		         epoch);
		return -1;
	}
	if (have != want) {
		snprintf(err, errlen,
		         "database counter moved to %" PRIu64 " (expected %" PRIu64
		         "): another publisher?",
		         have, want);
		return -1;
	}
	return 0;
}

static int set_counter(struct repl *r, uint64_t counter, char *err, size_t errlen)
{
	char sql[128];
	snprintf(sql, sizeof(sql),
	         "UPDATE vigil.meta SET value = '%" PRIu64 "' WHERE key = 'counter'", counter);
	if (repl_exec(r, sql, PGRES_COMMAND_OK, err, errlen) < 0)
		return -1;
	return repl_exec(r, "COMMIT", PGRES_COMMAND_OK, err, errlen);
}

/* copy_ca_certs copies every certificate of |ca_id| in |t|. */
static int copy_ca_certs(struct copy *cp, struct vg_txn *t, uint32_t ca_id, bool stage,
                         uint64_t counter, struct ctx *c, uint64_t *done, uint64_t total)
{
	struct vg_iter *it;
	int rc = vg_iter_open(t, ca_id, 0, &it);
	if (rc)
		return rc;
	struct vg_serial s;
	struct vg_cert cert;
	while ((rc = vg_iter_next(it, &s, &cert)) == 1 && !cp->failed) {
		copy_cert(cp, ca_id, &s, &cert, stage, counter);
		if (++*done % 65536 == 0 && total)
			cli_progress(*done, total, c);
	}
	vg_iter_close(it);
	return rc < 0 ? rc : 0;
}

/* full_push gives an empty database the whole store at |n|. */
static int full_push(struct repl *r, struct vg_txn *t, uint64_t n, const struct cas *cs, char *err,
                     size_t errlen)
{
	struct ctx *c = r->c;
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < cs->n; i++)
		total += cs->s[i].n_certs;
	vg_log(LOG_NOTICE, "event=replicate_full_push counter=%" PRIu64 " certs=%" PRIu64, n,
	       total);
	if (repl_exec(r, "BEGIN", PGRES_COMMAND_OK, err, errlen) < 0 ||
	    lock_counter(r, 0, err, errlen) < 0)
		goto fail;
	struct copy *cp = malloc(sizeof(*cp));
	if (!cp)
		cli_die("out of memory");
	c->progress_what = "publish: certificates";
	int rc = copy_begin(cp, r, "COPY vigil.certs FROM STDIN", err, errlen);
	for (size_t i = 0; i < cs->n && rc == 0; i++) {
		int e = copy_ca_certs(cp, t, cs->s[i].id, false, n, c, &done, total);
		if (e)
			cli_die("publish: reading the store failed: %s", strerror(-e));
	}
	if (rc == 0)
		rc = copy_end(cp, err, errlen);
	if (total && !c->quiet)
		cli_progress(total, total, c);
	struct gather g = {.upto = n};
	struct gather_audit ga = {.upto = n};
	int e = vg_store_changes_foreach(t, 0, gather_change, &g);
	if (e < 0 || (e = vg_store_audit_since(t, 0, gather_audit, &ga)) < 0)
		cli_die("publish: reading the store failed: %s", strerror(-e));
	if (rc == 0 &&
	    (rc = copy_begin(cp, r, "COPY vigil.changes FROM STDIN", err, errlen)) == 0) {
		uint32_t seq = 0;
		for (size_t i = 0; i < g.n; i++) {
			seq = i && g.v[i - 1].counter == g.v[i].counter ? seq + 1 : 0;
			copy_change(cp, &g.v[i], seq);
		}
		rc = copy_end(cp, err, errlen);
	}
	if (rc == 0 && (rc = copy_begin(cp, r, "COPY vigil.audit FROM STDIN", err, errlen)) == 0) {
		for (size_t i = 0; i < ga.n; i++)
			copy_audit(cp, &ga.v[i]);
		rc = copy_end(cp, err, errlen);
	}
	free(cp);
	free(g.v);
	free(ga.v);
	if (rc < 0 || push_cas(r, cs, n, err, errlen) < 0 || set_counter(r, n, err, errlen) < 0)
		goto fail;
	vg_log(LOG_NOTICE, "event=replicate_pushed counter=%" PRIu64 " certs=%" PRIu64 " full=1", n,
	       total);
	return 0;
fail:
	PQclear(PQexec(r->pg, "ROLLBACK"));
	return -1;
}

/* push_one pushes commit |counter|: |ch| its change-log entries, |au| its
 * audit record (NULL if none). |synced| lists the CAs already copied whole
 * from this snapshot by this pass. */
static int push_one(struct repl *r, struct vg_txn *t, uint64_t from, uint64_t counter,
                    const struct vg_change *ch, size_t nch, const struct vg_audit_entry *au,
                    size_t nau, const struct cas *cs, bool *synced, char *err, size_t errlen)
{
	uint32_t resynced[CAS_MAX];
	size_t nres = 0;
	if (repl_exec(r, "BEGIN", PGRES_COMMAND_OK, err, errlen) < 0 ||
	    lock_counter(r, from, err, errlen) < 0 ||
	    repl_exec(r,
	              "CREATE TEMP TABLE IF NOT EXISTS stage (ca_id bigint, serial bytea, present "
	              "boolean, status smallint, reason smallint, flags smallint, revoked_at "
	              "bigint, invalidity_date bigint, not_before bigint, not_after bigint) ON "
	              "COMMIT DELETE ROWS",
	              PGRES_COMMAND_OK, err, errlen) < 0)
		goto fail;
	struct copy *cp = malloc(sizeof(*cp));
	if (!cp)
		cli_die("out of memory");
	bool freeze = from + 1 == counter && nau == 1 &&
	              (!strcmp(au->action, "freeze") || !strcmp(au->action, "thaw"));
	int rc = copy_begin(cp, r, "COPY stage FROM STDIN", err, errlen);
	size_t gone = 0;
	for (size_t i = 0; i < nch && rc == 0; i++) {
		size_t k = 0;
		while (k < cs->n && cs->s[k].id != ch[i].ca_id)
			k++;
		if (k < cs->n && synced[k])
			continue;
		if (ch[i].serial.len == 0) {
			/* A CA-wide entry: which certificates changed is not
			 * logged. Freeze and thaw change the CA record only;
			 * anything else, the CA is copied whole (once per pass). */
			if (freeze || k == cs->n)
				continue;
			uint64_t done = 0;
			int e = copy_ca_certs(cp, t, ch[i].ca_id, true, 0, r->c, &done, 0);
			if (e)
				cli_die("publish: reading the store failed: %s", strerror(-e));
			synced[k] = true;
			resynced[nres++] = ch[i].ca_id;
			continue;
		}
		struct vg_cert cert;
		int e = vg_store_get(t, ch[i].ca_id, &ch[i].serial, &cert);
		if (e && e != -ENOENT)
			cli_die("publish: reading the store failed: %s", strerror(-e));
		copy_cert(cp, ch[i].ca_id, &ch[i].serial, e ? NULL : &cert, true, 0);
		gone += e != 0;
	}
	if (rc == 0)
		rc = copy_end(cp, err, errlen);
	if (rc == 0 &&
	    (rc = copy_begin(cp, r, "COPY vigil.changes FROM STDIN", err, errlen)) == 0) {
		for (size_t i = 0; i < nch; i++)
			copy_change(cp, &ch[i], (uint32_t)i);
		rc = copy_end(cp, err, errlen);
	}
	if (rc == 0 && nau &&
	    (rc = copy_begin(cp, r, "COPY vigil.audit FROM STDIN", err, errlen)) == 0) {
		for (size_t i = 0; i < nau; i++)
			copy_audit(cp, &au[i]);
		rc = copy_end(cp, err, errlen);
	}
	free(cp);
	if (rc < 0)
		goto fail;
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO vigil.certs AS c SELECT DISTINCT ON (ca_id, serial) ca_id, serial, "
	         "status, reason, flags, revoked_at, invalidity_date, not_before, not_after, "
	         "%" PRIu64 " FROM stage WHERE present ON CONFLICT (ca_id, serial) DO UPDATE SET "
	         "status = EXCLUDED.status, reason = EXCLUDED.reason, flags = EXCLUDED.flags, "
	         "revoked_at = EXCLUDED.revoked_at, invalidity_date = EXCLUDED.invalidity_date, "
	         "not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after, counter = "
	         "EXCLUDED.counter WHERE (c.status, c.reason, c.flags, c.revoked_at, "
	         "c.invalidity_date, c.not_before, c.not_after) IS DISTINCT FROM "
	         "(EXCLUDED.status, EXCLUDED.reason, EXCLUDED.flags, EXCLUDED.revoked_at, "
	         "EXCLUDED.invalidity_date, EXCLUDED.not_before, EXCLUDED.not_after)",
	         counter);
	if (repl_exec(r, sql, PGRES_COMMAND_OK, err, errlen) < 0 ||
	    (gone && repl_exec(r,
	                       "DELETE FROM vigil.certs c USING stage s WHERE NOT s.present AND "
	                       "c.ca_id = s.ca_id AND c.serial = s.serial",
	                       PGRES_COMMAND_OK, err, errlen) < 0) ||
	    push_cas(r, cs, counter, err, errlen) < 0)
		goto fail;
	/* A CA copied whole: its rows the store no longer has (removed by
	 * prune, logged CA-wide) go, noted in gone for the replicas. */
	for (size_t i = 0; i < nres; i++) {
		char where[512], q[768];
		snprintf(where, sizeof(where),
		         "FROM vigil.certs c WHERE c.ca_id = %" PRIu32
		         " AND NOT EXISTS (SELECT 1 FROM stage s WHERE s.present AND s.ca_id = "
		         "c.ca_id AND s.serial = c.serial)",
		         resynced[i]);
		snprintf(q, sizeof(q),
		         "INSERT INTO vigil.gone SELECT %" PRIu64 ", c.ca_id, c.serial %s", counter,
		         where);
		if (repl_exec(r, q, PGRES_COMMAND_OK, err, errlen) < 0)
			goto fail;
		snprintf(q, sizeof(q), "DELETE %s", where);
		if (repl_exec(r, q, PGRES_COMMAND_OK, err, errlen) < 0)
			goto fail;
	}
	if (set_counter(r, counter, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	PQclear(PQexec(r->pg, "ROLLBACK"));
	return -1;
}

/* ensure_schema creates the schema in an empty database, and refuses one of
 * another version or another store. */
static int ensure_schema(struct repl *r, uint64_t id, uint64_t *counter, char *err, size_t errlen)
{
	unsigned version;
	uint64_t dbid;
	if (repl_meta(r, &version, &dbid, counter, err, errlen) < 0)
		return -1;
	if (version == 0) {
		char sql[256];
		snprintf(sql, sizeof(sql),
		         "INSERT INTO vigil.meta VALUES ('schema_version', '%d'), ('store_id', "
		         "'%016" PRIx64 "'), ('counter', '0') ON CONFLICT DO NOTHING",
		         REPL_SCHEMA_VERSION, id);
		if (repl_exec(r, "BEGIN", PGRES_COMMAND_OK, err, errlen) < 0 ||
		    repl_exec(r, schema_sql, PGRES_COMMAND_OK, err, errlen) < 0 ||
		    repl_exec(r, sql, PGRES_COMMAND_OK, err, errlen) < 0 ||
		    repl_exec(r, "COMMIT", PGRES_COMMAND_OK, err, errlen) < 0) {
			PQclear(PQexec(r->pg, "ROLLBACK"));
			return -1;
		}
		vg_log(LOG_NOTICE, "event=replicate_schema_created version=%d store_id=%016" PRIx64,
		       REPL_SCHEMA_VERSION, id);
		if (repl_meta(r, &version, &dbid, counter, err, errlen) < 0)
			return -1;
	}
	if (version != REPL_SCHEMA_VERSION)
		cli_die("database schema vigil is version %u, this vigil-store uses %d: nothing "
		        "written",
		        version, REPL_SCHEMA_VERSION);
	if (dbid != id)
		cli_die("database holds store %016" PRIx64 ", this store is %016" PRIx64
		        ": another primary's database, nothing written",
		        dbid, id);
	return 0;
}

static int first_time(const struct vg_audit_entry *e, void *arg)
{
	*(int64_t *)arg = e->time;
	return 1;
}

void repl_publish_local(struct repl *r)
{
	struct vg_txn *t;
	uint64_t n;
	if (!r->c->st || vg_txn_begin(r->c->st, &t) != 0)
		return;
	if (vg_store_counter(t, &n) == 0 && n > r->state.counter) {
		int64_t when = 0;
		r->state.source = n;
		if (!r->state.pending_since &&
		    vg_store_audit_since(t, r->state.counter, first_time, &when) >= 0)
			r->state.pending_since = when;
	}
	vg_txn_end(t);
}

/* resync_all brings a database at |d| to the store at |n| when the store's
 * change log no longer reaches back to |d| (pruned, [store] log_retention):
 * one transaction copies every CA whole, with a CA-wide change each and the
 * audit records in between; a replica applies the commits in between empty. */
static int resync_all(struct repl *r, struct vg_txn *t, uint64_t d, uint64_t n,
                      const struct cas *cs, char *err, size_t errlen)
{
	vg_log(LOG_WARNING,
	       "event=replicate_resync from=%" PRIu64 " to=%" PRIu64
	       " reason=\"the change log was pruned past the database's counter\"",
	       d, n);
	static struct vg_change ch[CAS_MAX];
	memset(ch, 0, sizeof(ch));
	for (size_t i = 0; i < cs->n; i++) {
		ch[i].counter = n;
		ch[i].ca_id = cs->s[i].id;
		ch[i].op = VG_CHANGE_CA;
	}
	struct gather_audit ga = {.upto = n};
	int rc = vg_store_audit_since(t, d, gather_audit, &ga);
	if (rc < 0)
		cli_die("store %s: %s", r->c->conf.store_path, strerror(-rc));
	bool synced[CAS_MAX] = {false};
	rc = push_one(r, t, d, n, ch, cs->n, ga.v, ga.n, cs, synced, err, errlen);
	free(ga.v);
	if (rc == 0)
		r->state.counter = n;
	return rc < 0 ? -1 : 0;
}

/* mark_epoch marks the database with the epoch of a store promoted since:
 * from then on every push from a store of an older epoch is refused
 * (lock_counter). Under the counter's lock, so that no push of the old
 * primary lands between the check and the mark; and a database that moved
 * past the counter the store was promoted at (|d|, read by this pass) got
 * commits from another primary after the failover: refused. */
static int mark_epoch(struct repl *r, const struct vg_store_role *role, uint64_t d, char *err,
                      size_t errlen)
{
	if (role->promoted_at && d > role->promoted_at)
		cli_die("database counter %" PRIu64 " is past %" PRIu64
		        ", where store %s was promoted: another primary pushed to it after the "
		        "failover (deploy/INCIDENT.md, \"Losing the primary site\"); nothing "
		        "written",
		        d, role->promoted_at, r->c->conf.store_path);
	char epoch[24];
	snprintf(epoch, sizeof(epoch), "%" PRIu64, role->epoch);
	if (repl_exec(r, "BEGIN", PGRES_COMMAND_OK, err, errlen) < 0 ||
	    lock_counter(r, d, err, errlen) < 0 ||
	    repl_meta_set(r, "epoch", epoch, err, errlen) < 0 ||
	    repl_exec(r, "COMMIT", PGRES_COMMAND_OK, err, errlen) < 0) {
		PQclear(PQexec(r->pg, "ROLLBACK"));
		return -1;
	}
	vg_log(LOG_NOTICE, "event=replicate_epoch epoch=%" PRIu64 " was=%" PRIu64, role->epoch,
	       r->db_epoch);
	r->db_epoch = role->epoch;
	return 0;
}

int repl_publish_pass(struct repl *r, char *err, size_t errlen)
{
	struct ctx *c = r->c;
	if (!r->state.primary) {
		int rc = vg_store_id_ensure(c->st, &r->state.primary);
		if (rc == -EREMOTE)
			cli_die("store %s is a replica: publish runs on the primary (or promote "
			        "this store first)",
			        c->conf.store_path);
		if (rc)
			cli_die("store %s: cannot set its store id: %s", c->conf.store_path,
			        strerror(-rc));
	}
	uint64_t d;
	if (ensure_schema(r, r->state.primary, &d, err, errlen) < 0)
		return -1;
	struct vg_txn *t;
	int rc = vg_txn_begin(c->st, &t);
	uint64_t n = 0;
	if (rc == 0)
		rc = vg_store_counter(t, &n);
	struct vg_store_role role;
	struct vg_store_ident ident;
	if (!rc)
		rc = vg_store_role(t, &role);
	if (!rc)
		rc = vg_store_ident(t, &ident);
	if (rc)
		cli_die("store %s: %s", c->conf.store_path, strerror(-rc));
	if (role.epoch < r->db_epoch) {
		vg_txn_end(t);
		cli_die("database was taken over by a promoted replica (epoch %" PRIu64
		        ", store %s is at epoch %" PRIu64 "): this store is no longer the "
		        "primary, and its commits since the failover are not in the database "
		        "(deploy/INCIDENT.md, \"Losing the primary site\"); nothing written",
		        r->db_epoch, c->conf.store_path, role.epoch);
	}
	r->store_epoch = role.epoch;
	if (role.epoch > r->db_epoch && mark_epoch(r, &role, d, err, errlen) < 0) {
		vg_txn_end(t);
		return -1;
	}
	if (d > n) {
		vg_txn_end(t);
		cli_die("database counter %" PRIu64 " is ahead of store %s at %" PRIu64
		        ": a store restored from an older backup? nothing written",
		        d, c->conf.store_path, n);
	}
	r->state.counter = d;
	r->state.source = n;
	r->state.pending_since = 0;
	static struct cas cs;
	cs.n = 0;
	struct gather g = {.upto = d + PASS_MAX < n ? d + PASS_MAX : n};
	struct gather_audit ga = {.upto = g.upto};
	if (d < n) {
		rc = vg_store_ca_foreach(t, gather_ca, &cs);
		if (!rc)
			rc = vg_store_audit_since(t, d, gather_audit, &ga);
		if (rc < 0)
			cli_die("store %s: %s", c->conf.store_path, strerror(-rc));
		r->state.pending_since = ga.n ? ga.v[0].time : 0;
	}
	int ret = 0;
	if (d < n && d == 0) {
		ret = full_push(r, t, n, &cs, err, errlen) < 0 ? -1 : 0;
		if (!ret)
			r->state.counter = n;
	} else if (d < n) {
		rc = vg_store_changes_foreach(t, d, gather_change, &g);
		if (rc == -ERANGE) {
			ret = resync_all(r, t, d, n, &cs, err, errlen);
			goto out;
		}
		if (rc < 0)
			cli_die("store %s: %s", c->conf.store_path, strerror(-rc));
		bool synced[CAS_MAX] = {false};
		size_t i = 0, j = 0;
		for (uint64_t k = d + 1; k <= g.upto && !repl_stopping(); k++) {
			size_t i0 = i;
			while (i < g.n && g.v[i].counter == k)
				i++;
			while (j < ga.n && ga.v[j].counter < k)
				j++;
			const struct vg_audit_entry *au =
			        j < ga.n && ga.v[j].counter == k ? &ga.v[j] : NULL;
			int64_t t0 = now_ms();
			if (push_one(r, t, k - 1, k, g.v + i0, i - i0, au, au ? 1 : 0, &cs, synced,
			             err, errlen) < 0) {
				ret = -1;
				break;
			}
			r->state.counter = k;
			r->state.pending_since = j + 1 < ga.n ? ga.v[j + 1].time : 0;
			vg_log(LOG_INFO,
			       "event=replicate_pushed counter=%" PRIu64 " changes=%zu ms=%lld", k,
			       i - i0, (long long)(now_ms() - t0));
		}
		if (!ret && g.upto < n)
			ret = 1;
	}
out:
	vg_txn_end(t);
	free(g.v);
	free(ga.v);
	/* Caught up: the database's change log follows the store's floor. */
	if (ret == 0 && r->state.counter == n &&
	    repl_trim(r, n, ident.log_floor, c->conf.log_retention, err, errlen) < 0)
		ret = -1;
	return ret;
}
