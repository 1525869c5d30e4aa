/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replicate follow: a replica site's store kept in step with the database
 * (replicate.h), the primary's or a streaming standby's. A pass reads one
 * REPEATABLE READ snapshot of the database at counter M and applies every
 * commit the local store has not seen, in counter order, each as one LMDB
 * transaction under the primary's counter (store/replica.h); an empty store
 * is bootstrapped first. It never goes backwards: a database behind the
 * store, or of another primary, is refused and nothing is written.
 */
#include <errno.h>
#include <inttypes.h>
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

#define PASS_MAX 256
#define BOOT_BATCH 50000

static const char cert_cols[] =
        "ca_id, serial, status, reason, flags, revoked_at, invalidity_date, not_before, not_after";

static int db_fail(struct repl *r, char *err, size_t errlen)
{
	const char *m = PQerrorMessage(r->pg);
	snprintf(err, errlen, "database: %.*s", (int)strcspn(m, "\n"), m);
	return -1;
}

/* cert_from fills |out| from the nine certs columns in |f| (NULL for SQL
 * NULL) and |present|. */
static int cert_from(const char *const *f, bool present, struct vg_repl_cert *out)
{
	memset(out, 0, sizeof(*out));
	out->ca_id = (uint32_t)strtoul(f[0], NULL, 10);
	int n = repl_unhex(f[1], out->serial.b, VG_SERIAL_MAX);
	if (n <= 0)
		return -1;
	out->serial.len = (uint8_t)n;
	out->present = present && f[2];
	if (!out->present)
		return 0;
	struct vg_cert *c = &out->cert;
	c->status = (uint8_t)atoi(f[2]);
	c->reason = f[3] ? (int8_t)atoi(f[3]) : VG_REASON_NONE;
	c->flags = (uint8_t)atoi(f[4]);
	c->revoked_at = f[5] ? strtoll(f[5], NULL, 10) : 0;
	c->invalidity_date = f[6] ? strtoll(f[6], NULL, 10) : 0;
	c->not_before = f[7] ? strtoll(f[7], NULL, 10) : 0;
	c->not_after = f[8] ? strtoll(f[8], NULL, 10) : 0;
	return 0;
}

static void res_fields(PGresult *res, int row, int first, int nf, const char **f)
{
	for (int i = 0; i < nf; i++)
		f[i] = PQgetisnull(res, row, first + i) ? NULL : PQgetvalue(res, row, first + i);
}

static int change_from(const char *counter, const char *ca_id, const char *op, const char *serial,
                       struct vg_change *out)
{
	memset(out, 0, sizeof(*out));
	out->counter = strtoull(counter, NULL, 10);
	out->ca_id = (uint32_t)strtoul(ca_id, NULL, 10);
	out->op = (uint8_t)atoi(op);
	int n = repl_unhex(serial, out->serial.b, VG_SERIAL_MAX);
	if (n < 0)
		return -1;
	out->serial.len = (uint8_t)n;
	return 0;
}

static void audit_from(PGresult *res, int row, struct vg_audit_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->counter = strtoull(PQgetvalue(res, row, 0), NULL, 10);
	e->time = strtoll(PQgetvalue(res, row, 1), NULL, 10);
	e->count = strtoull(PQgetvalue(res, row, 2), NULL, 10);
	snprintf(e->user, sizeof(e->user), "%s", PQgetvalue(res, row, 3));
	snprintf(e->ca, sizeof(e->ca), "%s", PQgetvalue(res, row, 4));
	snprintf(e->action, sizeof(e->action), "%s", PQgetvalue(res, row, 5));
	snprintf(e->command, sizeof(e->command), "%s", PQgetvalue(res, row, 6));
}

static void ca_from(PGresult *res, int row, struct vg_repl_ca *ca)
{
	memset(ca, 0, sizeof(*ca));
	snprintf(ca->name, sizeof(ca->name), "%s", PQgetvalue(res, row, 0));
	ca->state.id = (uint32_t)strtoul(PQgetvalue(res, row, 1), NULL, 10);
	ca->state.frozen = PQgetvalue(res, row, 2)[0] == 't';
	ca->state.frozen_at = strtoll(PQgetvalue(res, row, 3), NULL, 10);
	ca->state.n_certs = strtoull(PQgetvalue(res, row, 4), NULL, 10);
	ca->state.n_revoked = strtoull(PQgetvalue(res, row, 5), NULL, 10);
	ca->state.n_hold = strtoull(PQgetvalue(res, row, 6), NULL, 10);
	ca->state.pruned = PQgetvalue(res, row, 7)[0] == 't';
}

static PGresult *query(struct repl *r, const char *sql, uint64_t counter)
{
	char num[32];
	snprintf(num, sizeof(num), "%" PRIu64, counter);
	const char *params[] = {num};
	PGresult *res = PQexecParams(r->pg, sql, counter ? 1 : 0, NULL, counter ? params : NULL,
	                             NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return NULL;
	}
	return res;
}

static const char audit_sql[] =
        "SELECT counter, time, count, usr, ca, action, command FROM vigil.audit";
static const char cas_sql[] =
        "SELECT name, id, frozen, frozen_at, n_certs, n_revoked, n_hold, pruned FROM vigil.cas";

static void die_store(struct repl *r, const char *what, int rc)
{
	cli_die("store %s: %s failed: %s", r->c->conf.store_path, what, strerror(-rc));
}

/* ---- one commit ---------------------------------------------------------- */

static int apply_one(struct repl *r, uint64_t primary, uint64_t counter, char *err, size_t errlen)
{
	int64_t t0 = now_ms();
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         "SELECT %s, true FROM vigil.certs WHERE counter = $1 UNION ALL SELECT ch.ca_id, "
	         "ch.serial, c.status, c.reason, c.flags, c.revoked_at, c.invalidity_date, "
	         "c.not_before, c.not_after, c.ca_id IS NOT NULL FROM vigil.changes ch LEFT JOIN "
	         "vigil.certs c ON c.ca_id = ch.ca_id AND c.serial = ch.serial WHERE ch.counter = "
	         "$1 AND octet_length(ch.serial) > 0 AND c.counter IS DISTINCT FROM $1 UNION ALL "
	         "SELECT ca_id, serial, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false FROM "
	         "vigil.gone WHERE counter = $1",
	         cert_cols);
	PGresult *rc_ = query(r, sql, counter);
	PGresult *rch = rc_ ? query(r,
	                            "SELECT counter, ca_id, op, serial FROM vigil.changes WHERE "
	                            "counter = $1 ORDER BY seq",
	                            counter)
	                    : NULL;
	char asql[256], csql[256];
	snprintf(asql, sizeof(asql), "%s WHERE counter = $1", audit_sql);
	snprintf(csql, sizeof(csql), "%s WHERE counter = $1", cas_sql);
	PGresult *rau = rch ? query(r, asql, counter) : NULL;
	PGresult *rca = rau ? query(r, csql, counter) : NULL;
	if (!rca) {
		PQclear(rc_);
		PQclear(rch);
		PQclear(rau);
		return db_fail(r, err, errlen);
	}
	int ncert = PQntuples(rc_), nch = PQntuples(rch), nca = PQntuples(rca);
	struct vg_repl_cert *certs = calloc((size_t)ncert + 1, sizeof(*certs));
	struct vg_change *chs = calloc((size_t)nch + 1, sizeof(*chs));
	struct vg_repl_ca *cas = calloc((size_t)nca + 1, sizeof(*cas));
	struct vg_audit_entry au;
	if (!certs || !chs || !cas)
		cli_die("out of memory");
	int bad = 0;
	for (int i = 0; i < ncert; i++) {
		const char *f[9];
		res_fields(rc_, i, 0, 9, f);
		bad |= cert_from(f, PQgetvalue(rc_, i, 9)[0] == 't', &certs[i]);
	}
	for (int i = 0; i < nch; i++)
		bad |= change_from(PQgetvalue(rch, i, 0), PQgetvalue(rch, i, 1),
		                   PQgetvalue(rch, i, 2), PQgetvalue(rch, i, 3), &chs[i]);
	for (int i = 0; i < nca; i++)
		ca_from(rca, i, &cas[i]);
	if (PQntuples(rau) == 1)
		audit_from(rau, 0, &au);
	struct vg_repl_commit cm = {
	        .counter = counter,
	        .certs = certs,
	        .n_certs = (size_t)ncert,
	        .cas = cas,
	        .n_cas = (size_t)nca,
	        .changes = chs,
	        .n_changes = (size_t)nch,
	        .audit = PQntuples(rau) == 1 ? &au : NULL,
	};
	PQclear(rc_);
	PQclear(rch);
	PQclear(rau);
	PQclear(rca);
	if (bad)
		cli_die("database: a malformed row at counter %" PRIu64 ": nothing written",
		        counter);
	int rc = vg_store_replica_apply(r->c->st, primary, &cm);
	free(certs);
	free(chs);
	free(cas);
	if (rc == -ESTALE)
		cli_die("store %s moved under replicate follow (another follower?): commit %" PRIu64
		        " not applied",
		        r->c->conf.store_path, counter);
	if (rc)
		die_store(r, "apply", rc);
	vg_log(LOG_INFO, "event=replicate_applied counter=%" PRIu64 " certs=%d ms=%lld", counter,
	       ncert, (long long)(now_ms() - t0));
	return 0;
}

/* ---- bootstrap ------------------------------------------------------------ */

/* split cuts a COPY text line into at most |max| fields ("\N" is NULL). */
static int split(char *line, const char **f, int max)
{
	int n = 0;
	for (char *p = line; n < max;) {
		char *tab = strchr(p, '\t');
		if (tab)
			*tab = '\0';
		f[n++] = strcmp(p, "\\N") ? p : NULL;
		if (!tab)
			break;
		p = tab + 1;
	}
	return n;
}

/* copy_start runs a COPY ... TO STDOUT: true when the rows follow. */
static bool copy_start(struct repl *r, const char *sql)
{
	PGresult *res = PQexec(r->pg, sql);
	bool ok = PQresultStatus(res) == PGRES_COPY_OUT;
	PQclear(res);
	return ok;
}

/* copy_finish reads the end of a COPY whose last PQgetCopyData returned
 * |len|: true when every row came (-1) and the server says the COPY
 * completed. It reads every result left, so the connection is ready for
 * the next command either way. */
static bool copy_finish(struct repl *r, int len)
{
	PGresult *res = PQgetResult(r->pg);
	bool ok = len == -1 && PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	while ((res = PQgetResult(r->pg)))
		PQclear(res);
	return ok;
}

static int boot_certs(struct repl *r, uint64_t total, char *err, size_t errlen)
{
	struct ctx *c = r->c;
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "COPY (SELECT %s FROM vigil.certs ORDER BY ca_id, octet_length(serial), serial) "
	         "TO STDOUT",
	         cert_cols);
	if (!copy_start(r, sql))
		return db_fail(r, err, errlen);
	struct vg_repl_cert *batch = malloc(BOOT_BATCH * sizeof(*batch));
	if (!batch)
		cli_die("out of memory");
	size_t n = 0;
	uint64_t done = 0;
	c->progress_what = "follow: bootstrap certificates";
	char *line;
	int len;
	while ((len = PQgetCopyData(r->pg, &line, 0)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		const char *f[9];
		if (split(line, f, 9) != 9 || !f[0] || !f[1] || cert_from(f, true, &batch[n]) < 0)
			cli_die("database: a malformed certificate row: nothing more written");
		PQfreemem(line);
		if (++n == BOOT_BATCH) {
			struct vg_repl_commit cm = {.certs = batch, .n_certs = n};
			int rc = vg_store_replica_boot_load(c->st, &cm, NULL, 0);
			if (rc)
				die_store(r, "bootstrap", rc);
			done += n;
			n = 0;
			cli_progress(done, total, c);
		}
	}
	if (!copy_finish(r, len)) {
		free(batch);
		return db_fail(r, err, errlen);
	}
	struct vg_repl_commit cm = {.certs = batch, .n_certs = n};
	int rc = vg_store_replica_boot_load(c->st, &cm, NULL, 0);
	if (rc)
		die_store(r, "bootstrap", rc);
	done += n;
	if (total)
		cli_progress(done, total, c);
	free(batch);
	return 0;
}

static int boot_logs(struct repl *r, char *err, size_t errlen)
{
	if (!copy_start(r, "COPY (SELECT counter, ca_id, op, serial FROM vigil.changes "
	                   "ORDER BY counter, seq) TO STDOUT"))
		return db_fail(r, err, errlen);
	size_t n = 0, cap = 4096;
	struct vg_change *v = cli_reserve(NULL, 0, &cap, sizeof(*v));
	char *line;
	int len;
	/* Batches end on a counter boundary: sequence numbers restart where
	 * the primary's did. */
	while ((len = PQgetCopyData(r->pg, &line, 0)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		const char *f[4];
		struct vg_change ch;
		if (split(line, f, 4) != 4 || !f[0] || !f[1] || !f[2] || !f[3] ||
		    change_from(f[0], f[1], f[2], f[3], &ch) < 0)
			cli_die("database: a malformed change-log row: nothing more written");
		PQfreemem(line);
		if (n >= BOOT_BATCH && v[n - 1].counter != ch.counter) {
			struct vg_repl_commit cm = {.changes = v, .n_changes = n};
			int rc = vg_store_replica_boot_load(r->c->st, &cm, NULL, 0);
			if (rc)
				die_store(r, "bootstrap", rc);
			n = 0;
		}
		v = cli_reserve(v, n, &cap, sizeof(*v));
		v[n++] = ch;
	}
	if (!copy_finish(r, len)) {
		free(v);
		return db_fail(r, err, errlen);
	}
	struct vg_repl_commit cm = {.changes = v, .n_changes = n};
	int rc = vg_store_replica_boot_load(r->c->st, &cm, NULL, 0);
	free(v);
	if (rc)
		die_store(r, "bootstrap", rc);

	PGresult *res = query(r, audit_sql, 0);
	PGresult *rca = res ? query(r, cas_sql, 0) : NULL;
	if (!rca) {
		PQclear(res);
		return db_fail(r, err, errlen);
	}
	int na = PQntuples(res), nc = PQntuples(rca);
	struct vg_audit_entry *au = calloc((size_t)na + 1, sizeof(*au));
	struct vg_repl_ca *cas = calloc((size_t)nc + 1, sizeof(*cas));
	if (!au || !cas)
		cli_die("out of memory");
	for (int i = 0; i < na; i++)
		audit_from(res, i, &au[i]);
	for (int i = 0; i < nc; i++)
		ca_from(rca, i, &cas[i]);
	PQclear(res);
	PQclear(rca);
	struct vg_repl_commit cm2 = {.cas = cas, .n_cas = (size_t)nc};
	rc = vg_store_replica_boot_load(r->c->st, &cm2, au, (size_t)na);
	free(au);
	free(cas);
	if (rc)
		die_store(r, "bootstrap", rc);
	return 0;
}

static int bootstrap(struct repl *r, uint64_t primary, uint64_t m, char *err, size_t errlen)
{
	struct ctx *c = r->c;
	PGresult *res = query(r, "SELECT count(*) FROM vigil.certs", 0);
	if (!res)
		return db_fail(r, err, errlen);
	uint64_t total = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	int rc = vg_store_replica_boot_begin(c->st, primary, m);
	if (rc == -EEXIST)
		cli_die("store %s has data of its own: a replica bootstraps into an empty store, "
		        "nothing written",
		        c->conf.store_path);
	if (rc == -ESTALE)
		cli_die("store %s is a replica of another primary: nothing written",
		        c->conf.store_path);
	if (rc)
		die_store(r, "bootstrap", rc);
	vg_log(LOG_NOTICE,
	       "event=replicate_bootstrap_start primary=%016" PRIx64 " counter=%" PRIu64
	       " certs=%" PRIu64,
	       primary, m, total);
	if (boot_certs(r, total, err, errlen) < 0 || boot_logs(r, err, errlen) < 0)
		return -1;
	rc = vg_store_replica_boot_end(c->st, m);
	if (rc)
		die_store(r, "bootstrap", rc);
	cli_end_progress();
	vg_log(LOG_NOTICE, "event=replicate_bootstrapped counter=%" PRIu64 " certs=%" PRIu64, m,
	       total);
	return 0;
}

/* ---- a pass -------------------------------------------------------------- */

static int pass(struct repl *r, char *err, size_t errlen)
{
	struct ctx *c = r->c;
	unsigned version;
	uint64_t dbid, m;
	if (repl_meta(r, &version, &dbid, &m, err, errlen) < 0)
		return -1;
	if (version == 0 && !r->once) {
		/* Deployed before the primary's first publish: wait for it. */
		static bool said;
		if (!said)
			vg_log(LOG_WARNING, "event=replicate_waiting reason=\"database has no "
			                    "vigil schema yet\"");
		said = true;
		return 0;
	}
	if (version == 0)
		cli_die("database has no vigil schema: run replicate publish on the primary "
		        "first; nothing written");
	if (version != REPL_SCHEMA_VERSION)
		cli_die("database schema vigil is version %u, this vigil-store uses %d: nothing "
		        "written",
		        version, REPL_SCHEMA_VERSION);
	if (!c->st)
		cli_store_open(c, VG_STORE_CREATE);
	struct vg_txn *t;
	struct vg_store_role role;
	int rc = vg_txn_begin(c->st, &t);
	if (!rc)
		rc = vg_store_role(t, &role);
	vg_txn_end(t);
	if (rc)
		die_store(r, "read", rc);
	if (!role.replica_of && !role.boot && (role.counter || role.n_cas))
		cli_die("store %s is a primary (store %016" PRIx64
		        ", with data of its own): follow writes only a replica site's own store; "
		        "nothing written",
		        c->conf.store_path, role.store_id);
	if (role.replica_of && role.replica_of != dbid)
		cli_die("store %s is a replica of store %016" PRIx64 ", the database holds store "
		        "%016" PRIx64 ": nothing written",
		        c->conf.store_path, role.replica_of, dbid);
	if (role.epoch > r->db_epoch)
		cli_die("database epoch %" PRIu64 " is older than store %s's (%" PRIu64
		        "): the database of a primary that a promotion replaced; point follow at "
		        "the promoted database or a standby of it; nothing written",
		        r->db_epoch, c->conf.store_path, role.epoch);
	if (role.epoch < r->db_epoch) {
		/* A promotion since: this store belongs to the new epoch, so that
		 * it fences the old primary in turn if it is promoted one day. */
		rc = vg_store_epoch_raise(c->st, r->db_epoch);
		if (rc)
			die_store(r, "epoch", rc);
		vg_log(LOG_NOTICE, "event=replicate_epoch epoch=%" PRIu64 " was=%" PRIu64,
		       r->db_epoch, role.epoch);
	}
	r->state.primary = dbid;
	r->state.source = m;
	if (!role.replica_of || role.boot) {
		if (m == 0)
			return 0; /* nothing published yet */
		/* Half loaded, the store is as far behind as the primary's first
		 * commit: a responder told max_lag says 503 meanwhile. */
		PGresult *res = query(r, "SELECT min(time) FROM vigil.audit", 0);
		r->state.counter = 0;
		r->state.pending_since = res && !PQgetisnull(res, 0, 0)
		                                 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
		                                 : (int64_t)time(NULL);
		PQclear(res);
		repl_state_write(r, true);
		if (bootstrap(r, dbid, m, err, errlen) < 0)
			return -1;
		r->state.counter = m;
		r->state.pending_since = 0;
		return 0;
	}
	if (m < role.counter)
		cli_die("database counter %" PRIu64 " is behind store %s at %" PRIu64
		        " (a restored backup, or another database): a replica never goes "
		        "backwards; "
		        "nothing written",
		        m, c->conf.store_path, role.counter);
	r->state.counter = role.counter;
	r->state.pending_since = 0;
	if (m == role.counter)
		return 0;
	if (role.counter < r->db_log_floor)
		cli_die("store %s at counter %" PRIu64 " is behind the database's change log, "
		        "trimmed up to %" PRIu64 " (the primary's [store] log_retention): "
		        "bootstrap this replica again (doc/replication.md, \"A replica left "
		        "behind\"); nothing written",
		        c->conf.store_path, role.counter, r->db_log_floor);
	char asql[128];
	snprintf(asql, sizeof(asql), "SELECT time FROM vigil.audit WHERE counter = $1");
	PGresult *res = query(r, asql, role.counter + 1);
	if (!res)
		return db_fail(r, err, errlen);
	r->state.pending_since = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	uint64_t upto = m - role.counter > PASS_MAX ? role.counter + PASS_MAX : m;
	for (uint64_t k = role.counter + 1; k <= upto && !repl_stopping(); k++) {
		if (apply_one(r, dbid, k, err, errlen) < 0)
			return -1;
		r->state.counter = k;
	}
	r->state.pending_since = r->state.counter < m ? r->state.pending_since : 0;
	return upto < m ? 1 : 0;
}

int repl_follow_pass(struct repl *r, char *err, size_t errlen)
{
	if (PQstatus(r->pg) != CONNECTION_OK)
		return db_fail(r, err, errlen);
	PGresult *res = PQexec(r->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		return db_fail(r, err, errlen);
	int rc = pass(r, err, errlen);
	PQclear(PQexec(r->pg, rc < 0 ? "ROLLBACK" : "COMMIT"));
	return rc;
}
