/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store replicate publish|follow|promote [--once]: the command, the
 * database connection, the state file and the daemon loop (replicate.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pki.h"
#include "common/text.h"
#include "store/cli/replicate.h"
#include "store/replica.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

bool repl_stopping(void)
{
	return stopping != 0;
}

/* read_password reads the first line of |path| (a secret file: not readable
 * by others) into |out|. */
static int read_password(const char *path, const char *what, char *out, size_t max, char *err,
                         size_t errlen)
{
	int fd = vg_pki_open_secret(path, what, "", err, errlen);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, out, max - 1);
	close(fd);
	if (n <= 0) {
		snprintf(err, errlen, "%s %s: empty or unreadable", what, path);
		return -1;
	}
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

int repl_connect(struct repl *r, char *err, size_t errlen)
{
	const struct vg_conf *conf = &r->c->conf;
	char pw[512] = "";
	char cred[4096];
	const char *credir = getenv("CREDENTIALS_DIRECTORY");
	if (conf->pg_password_file) {
		if (read_password(conf->pg_password_file, "[replicate] password_file", pw,
		                  sizeof(pw), err, errlen) < 0)
			return -1;
	} else if (credir && snprintf(cred, sizeof(cred), "%s/pg-password", credir) > 0 &&
	           access(cred, F_OK) == 0) {
		if (read_password(cred, "credential pg-password", pw, sizeof(pw), err, errlen) < 0)
			return -1;
	}
	const char *keys[] = {"dbname", "password", "application_name", "connect_timeout", NULL};
	const char *vals[] = {conf->pg_conninfo, pw[0] ? pw : NULL, "vigil-store", "5", NULL};
	if (!pw[0]) {
		keys[1] = "application_name";
		vals[1] = "vigil-store";
		keys[2] = "connect_timeout";
		vals[2] = "5";
		keys[3] = NULL;
	}
	r->pg = PQconnectdbParams(keys, vals, 1);
	memset(pw, 0, sizeof(pw));
	if (!r->pg || PQstatus(r->pg) != CONNECTION_OK) {
		const char *m = r->pg ? PQerrorMessage(r->pg) : "out of memory";
		snprintf(err, errlen, "cannot connect to [replicate] postgres: %.*s",
		         (int)strcspn(m, "\n"), m);
		PQfinish(r->pg);
		r->pg = NULL;
		return -1;
	}
	PQsetNoticeProcessor(r->pg, quiet_notice, NULL);
	return 0;
}

void repl_disconnect(struct repl *r)
{
	PQfinish(r->pg);
	r->pg = NULL;
}

PGresult *repl_query(struct repl *r, const char *sql, ExecStatusType want, char *err, size_t errlen)
{
	PGresult *res = PQexec(r->pg, sql);
	if (PQresultStatus(res) != want) {
		const char *m = PQerrorMessage(r->pg);
		snprintf(err, errlen, "database: %.*s", (int)strcspn(m, "\n"), m);
		PQclear(res);
		return NULL;
	}
	return res;
}

int repl_meta_set(struct repl *r, const char *key, const char *value, char *err, size_t errlen)
{
	const char *const v[2] = {key, value};
	PGresult *res = PQexecParams(r->pg,
	                             "INSERT INTO vigil.meta VALUES ($1, $2) ON CONFLICT (key) DO "
	                             "UPDATE SET value = EXCLUDED.value",
	                             2, NULL, v, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *m = PQerrorMessage(r->pg);
		snprintf(err, errlen, "database: %.*s", (int)strcspn(m, "\n"), m);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

int repl_exec(struct repl *r, const char *sql, ExecStatusType want, char *err, size_t errlen)
{
	PGresult *res = repl_query(r, sql, want, err, errlen);
	PQclear(res);
	return res ? 0 : -1;
}

int repl_meta(struct repl *r, unsigned *version, uint64_t *store_id, uint64_t *counter, char *err,
              size_t errlen)
{
	*version = 0;
	*store_id = *counter = 0;
	r->db_epoch = r->db_log_floor = 0;
	PGresult *res = PQexec(r->pg, "SELECT to_regclass('vigil.meta') IS NOT NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *m = PQerrorMessage(r->pg);
		snprintf(err, errlen, "database: %.*s", (int)strcspn(m, "\n"), m);
		PQclear(res);
		return -1;
	}
	bool exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists)
		return 0;
	res = PQexec(r->pg, "SELECT key, value FROM vigil.meta");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *m = PQerrorMessage(r->pg);
		snprintf(err, errlen, "database: %.*s", (int)strcspn(m, "\n"), m);
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *k = PQgetvalue(res, i, 0), *v = PQgetvalue(res, i, 1);
		if (!strcmp(k, "schema_version"))
			*version = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(k, "store_id"))
			*store_id = strtoull(v, NULL, 16);
		else if (!strcmp(k, "counter"))
			*counter = strtoull(v, NULL, 10);
		else if (!strcmp(k, "epoch"))
			r->db_epoch = strtoull(v, NULL, 10);
		else if (!strcmp(k, "log_floor"))
			r->db_log_floor = strtoull(v, NULL, 10);
	}
	PQclear(res);
	if (*version == 0)
		*version = UINT32_MAX; /* a meta table without a version: not ours */
	return 0;
}

void repl_hex(const uint8_t *b, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int repl_unhex(const char *s, uint8_t *out, size_t max)
{
	if (s[0] == '\\' && s[1] == '\\')
		s++;
	if (s[0] == '\\' && s[1] == 'x')
		s += 2;
	size_t n = 0;
	for (; s[0] && s[1]; s += 2) {
		int hi = vg_hexval(s[0]), lo = vg_hexval(s[1]);
		if (hi < 0 || lo < 0 || n >= max)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
	}
	return s[0] ? -1 : (int)n;
}

void repl_state_write(struct repl *r, bool force)
{
	int64_t now = time(NULL);
	if (!force && now == r->state_written && r->state.counter == r->written_counter &&
	    r->state.source == r->written_source && r->state.link_up == r->written_link)
		return;
	r->state_written = now;
	r->written_counter = r->state.counter;
	r->written_source = r->state.source;
	r->written_link = r->state.link_up;
	const struct repl_state *s = &r->state;
	char *path = NULL, *tmp = NULL;
	if (asprintf(&path, "%s/replicate.state", r->c->conf.store_path) < 0)
		return;
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		free(path);
		return;
	}
	FILE *f = fopen(tmp, "we");
	if (f) {
		fprintf(f,
		        "role=%s\ncounter=%" PRIu64 "\nsource=%" PRIu64 "\npending_since=%" PRId64
		        "\nlink_up=%d\nlast_ok=%" PRId64 "\nupdated=%" PRId64
		        "\nprimary=%016" PRIx64 "\n",
		        s->role, s->counter, s->source, s->pending_since, s->link_up ? 1 : 0,
		        s->last_ok, now, s->primary);
		if (fclose(f) == 0)
			(void)rename(tmp, path);
	}
	free(tmp);
	free(path);
}

/* nap sleeps |ms| milliseconds unless a signal asks to stop. */
static void nap(int ms)
{
	for (int i = 0; i < ms / 20 && !stopping; i++)
		usleep(20 * 1000);
}

static int run(struct repl *r, int (*pass)(struct repl *r, char *err, size_t errlen))
{
	char err[1024];
	int backoff = 250;
	bool down_logged = false;
	while (!stopping) {
		if (!r->pg && repl_connect(r, err, sizeof(err)) < 0) {
			r->state.link_up = false;
			if (pass == repl_publish_pass)
				repl_publish_local(r);
			repl_state_write(r, true);
			if (r->once)
				cli_die("%s", err);
			if (!down_logged)
				vg_log(LOG_WARNING,
				       "event=replicate_link_down role=%s reason=\"%s\"",
				       r->state.role, err);
			down_logged = true;
			nap(backoff);
			backoff = backoff < 4000 ? backoff * 2 : 5000;
			continue;
		}
		int rc = pass(r, err, sizeof(err));
		if (rc < 0) {
			r->state.link_up = false;
			repl_state_write(r, true);
			repl_disconnect(r);
			if (r->once)
				cli_die("%s", err);
			vg_log(LOG_WARNING, "event=replicate_link_down role=%s reason=\"%s\"",
			       r->state.role, err);
			down_logged = true;
			nap(backoff);
			continue;
		}
		if (down_logged)
			vg_log(LOG_NOTICE, "event=replicate_link_up role=%s counter=%" PRIu64,
			       r->state.role, r->state.counter);
		down_logged = false;
		backoff = 250;
		r->state.link_up = true;
		r->state.last_ok = time(NULL);
		repl_state_write(r, rc == 0 && r->once);
		if (rc == 0) {
			if (r->once)
				break;
			nap(100);
		}
	}
	repl_state_write(r, true);
	repl_disconnect(r);
	return 0;
}

static const char *role_line(struct ctx *c)
{
	return c->conf.pg_conninfo;
}

static int cmd_promote(struct ctx *c)
{
	cli_store_open(c, 0);
	uint64_t id;
	int rc = vg_store_promote(c->st, &id);
	if (rc == -EINVAL)
		cli_die("store %s is not a replica: nothing to promote", c->conf.store_path);
	if (rc == -EBUSY)
		cli_die("store %s: its bootstrap did not finish; run replicate follow first",
		        c->conf.store_path);
	if (rc)
		cli_die("promote failed, nothing changed: %s", strerror(-rc));
	struct vg_txn *t;
	struct vg_store_role role = {0};
	if (vg_txn_begin(c->st, &t) == 0) {
		(void)vg_store_role(t, &role);
		vg_txn_end(t);
	}
	vg_log(LOG_NOTICE, "event=replicate_promoted store_id=%016" PRIx64 " epoch=%" PRIu64, id,
	       role.epoch);
	printf("OK: store %s is now the primary (store id %016" PRIx64 ", epoch %" PRIu64
	       "); run replicate publish against the promoted database: its first push "
	       "fences the old primary\n",
	       c->conf.store_path, id, role.epoch);
	return 0;
}

int cmd_replicate(struct ctx *c, int argc, char **argv)
{
	if (argc < 1)
		cli_usage_die("replicate needs publish, follow or promote");
	const char *what = argv[0];
	bool once = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--once"))
			once = true;
		else
			cli_usage_die("replicate %s: unknown argument '%s'", what, argv[i]);
	}
	c->replica_ok = true;
	if (!strcmp(what, "promote")) {
		if (once)
			cli_usage_die("replicate promote takes no --once");
		return cmd_promote(c);
	}
	bool publish = !strcmp(what, "publish");
	if (!publish && strcmp(what, "follow"))
		cli_usage_die("unknown replicate command '%s'", what);
	if (!c->conf.pg_conninfo)
		cli_die("%s: [replicate] postgres is not set", c->conf.file);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!once)
		vg_log_init(cli_progname, LOG_INFO);
	struct repl r = {.c = c, .once = once};
	r.state.role = publish ? "publish" : "follow";
	/* A replica's store is opened (made, when absent) once the database
	 * answered: a wrong connection string writes nothing. */
	if (publish)
		cli_store_open(c, 0);
	vg_log(LOG_INFO, "event=replicate_start role=%s database=\"%s\"", r.state.role,
	       role_line(c));
	return run(&r, publish ? repl_publish_pass : repl_follow_pass);
}
