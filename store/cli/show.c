/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store status, list, stats and audit: reading the store.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "store/cli/cli.h"
#include "store/replica.h"
#include "store/replstate.h"

/* One certificate as status and list print it: SERIAL good, or SERIAL revoked
 * REASON TIME [invalidity=T] [not_issued]; list adds notBefore=T notAfter=T
 * when the store knows them (the window a bulk revocation would take). */
static void print_cert(const struct vg_serial *s, const struct vg_cert *cert, bool dates)
{
	char hex[2 * VG_SERIAL_MAX + 1], ts[32];
	vg_serial_format(s, hex, sizeof(hex));
	if (cert->status == VG_STATUS_GOOD) {
		printf("%s good", hex);
	} else {
		vg_time_format(cert->revoked_at, ts, sizeof(ts));
		printf("%s revoked %s %s", hex, vg_reason_name(cert->reason), ts);
		if (cert->flags & VG_CERT_HAS_INVALIDITY) {
			vg_time_format(cert->invalidity_date, ts, sizeof(ts));
			printf(" invalidity=%s", ts);
		}
		if (cert->flags & VG_CERT_NOT_ISSUED)
			printf(" not_issued");
	}
	if (dates && (cert->flags & VG_CERT_HAS_NOT_BEFORE)) {
		vg_time_format(cert->not_before, ts, sizeof(ts));
		printf(" notBefore=%s", ts);
	}
	if (dates && (cert->flags & VG_CERT_HAS_NOT_AFTER)) {
		vg_time_format(cert->not_after, ts, sizeof(ts));
		printf(" notAfter=%s", ts);
	}
	putchar('\n');
}

static struct vg_txn *read_txn(struct ctx *c)
{
	cli_store_open(c, VG_STORE_RDONLY);
	struct vg_txn *t;
	int rc = vg_txn_begin(c->st, &t);
	if (rc < 0)
		cli_die("cannot read store %s: %s", c->conf.store_path, strerror(-rc));
	return t;
}

int cmd_status(struct ctx *c, int argc, char **argv)
{
	if (argc != 2)
		cli_usage_die("usage: status CA SERIAL");
	const struct vg_conf_ca *ca = cli_need_ca(c, argv[0]);
	struct vg_serial s = cli_need_serial(argv[1]);
	struct vg_txn *t = read_txn(c);
	struct vg_cert cert;
	int rc = vg_store_get(t, ca->id, &s, &cert);
	if (rc == -ENOENT) {
		char hex[2 * VG_SERIAL_MAX + 1];
		vg_serial_format(&s, hex, sizeof(hex));
		printf("%s unknown\n", hex);
	} else if (rc < 0) {
		cli_die("cannot read store: %s", strerror(-rc));
	} else {
		print_cert(&s, &cert, false);
	}
	vg_txn_end(t);
	return 0;
}

int cmd_list(struct ctx *c, int argc, char **argv)
{
	bool revoked = false;
	if (argc == 2 && !strcmp(argv[1], "--revoked"))
		revoked = true;
	else if (argc != 1)
		cli_usage_die("usage: list CA [--revoked]");
	const struct vg_conf_ca *ca = cli_need_ca(c, argv[0]);
	struct vg_txn *t = read_txn(c);
	struct vg_iter *it;
	int rc = vg_iter_open(t, ca->id, revoked ? VG_ITER_REVOKED : 0, &it);
	struct vg_serial s;
	struct vg_cert cert;
	while (rc >= 0 && (rc = vg_iter_next(it, &s, &cert)) > 0)
		print_cert(&s, &cert, true);
	if (rc < 0)
		cli_die("cannot read store: %s", strerror(-rc));
	vg_iter_close(it);
	vg_txn_end(t);
	return 0;
}

/* print_replication prints what `replicate publish` or `follow` left in the
 * state file, and the store's role. */
static void print_replication(struct ctx *c, struct vg_txn *t)
{
	struct vg_store_role role;
	struct vg_repl_status rs;
	bool have = vg_repl_status_read(c->conf.store_path, time(NULL), &rs) == 0;
	if (vg_store_role(t, &role) != 0 || (!role.replica_of && !have))
		return;
	printf("Replication:\n");
	if (role.replica_of)
		printf("  Role: replica of store %016" PRIx64 "\n", role.replica_of);
	else
		printf("  Role: primary, store %016" PRIx64 "\n", role.store_id);
	printf("  Epoch: %" PRIu64 "\n", role.epoch);
	if (!have) {
		printf("  Daemon: never ran\n");
		return;
	}
	printf("  Daemon: %s\n", rs.role);
	printf("  Last counter %s: %" PRIu64 "\n",
	       strcmp(rs.role, "publish") ? "applied" : "pushed", rs.counter);
	printf("  Lag commits: %" PRIu64 "\n", rs.lag_commits);
	printf("  Lag seconds: %" PRId64 "\n", rs.lag_seconds);
	printf("  Link: %s\n", rs.link_alive ? "up" : "down");
}

int cmd_stats(struct ctx *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		cli_usage_die("stats takes no arguments");
	struct vg_txn *t = read_txn(c);
	struct vg_store_info in;
	vg_store_info(t, &in);
	uint64_t total = 0;
	printf("Store: %s\n", c->conf.store_path);
	printf("  Schema version: %u\n", in.schema);
	printf("  Change counter: %" PRIu64 "\n", in.counter);
	printf("  File bytes: %" PRIu64 "\n", in.file_bytes);
	printf("  Used bytes: %" PRIu64 "\n", in.used_bytes);
	printf("  Map bytes: %" PRIu64 "\n", in.map_bytes);
	printf("  Free pages: %" PRIu64 " (%" PRIu64 " bytes, %.1f%% of used; backup --compact and "
	       "restore return them)\n",
	       in.free_pages, in.free_pages * in.page_size,
	       in.used_bytes
	               ? 100.0 * (double)(in.free_pages * in.page_size) / (double)in.used_bytes
	               : 0.0);
	printf("  Change log entries: %" PRIu64 "\n", in.log_entries);
	struct vg_store_ident id;
	if (vg_store_ident(t, &id) == 0) {
		printf("  Store id: %016" PRIx64 "\n", id.store_id);
		if (id.log_floor)
			printf("  Change log pruned through: %" PRIu64 "\n", id.log_floor);
		if (id.backup_of)
			printf("  Copy of: %016" PRIx64 " at counter %" PRIu64 "\n", id.backup_of,
			       id.base_counter);
	}
	printf("  Audit records: %" PRIu64 "\n", in.audit_entries);
	if (in.points_valid)
		printf("  Point index: complete, %u segment%s\n", in.points_segments,
		       in.points_segments == 1 ? "" : "s");
	else
		printf("  Point index: being rebuilt (lookups read the ordered records)\n");
	for (int i = 0; i < c->conf.n_cas; i++) {
		struct vg_ca_state s;
		vg_store_ca_get(t, c->conf.cas[i].name, &s);
		total += s.n_certs;
		printf("CA: %s\n", c->conf.cas[i].name);
		printf("  Certificates: %" PRIu64 "\n", s.n_certs);
		printf("  Good: %" PRIu64 "\n", s.n_certs - s.n_revoked);
		printf("  Revoked: %" PRIu64 "\n", s.n_revoked);
		printf("  On hold: %" PRIu64 "\n", s.n_hold);
		if (s.pruned)
			printf("  Expired certificates pruned: yes\n");
		if (s.frozen) {
			char ts[32];
			vg_time_format(s.frozen_at, ts, sizeof(ts));
			printf("  Frozen: yes, since %s\n", ts);
		} else {
			printf("  Frozen: no\n");
		}
	}
	if (total)
		printf("Bytes per certificate: %.1f\n", (double)in.used_bytes / (double)total);
	print_replication(c, t);
	vg_txn_end(t);
	return 0;
}

static int print_audit(const struct vg_audit_entry *e, void *arg)
{
	const char *only = arg;
	if (only && strcmp(only, e->ca) != 0)
		return 0;
	char ts[32], user[160], cmd[1100];
	vg_time_format(e->time, ts, sizeof(ts));
	printf("counter=%" PRIu64 " time=%s user=%s ca=%s action=%s count=%" PRIu64 " command=%s\n",
	       e->counter, ts, vg_log_quote(e->user, user, sizeof(user)), e->ca[0] ? e->ca : "-",
	       e->action, e->count, vg_log_quote(e->command, cmd, sizeof(cmd)));
	return 0;
}

int cmd_audit(struct ctx *c, int argc, char **argv)
{
	const char *only = NULL;
	if (argc == 2 && !strcmp(argv[0], "--ca"))
		only = cli_need_ca(c, argv[1])->name;
	else if (argc != 0)
		cli_usage_die("usage: audit [--ca CA]");
	struct vg_txn *t = read_txn(c);
	int rc = vg_store_audit_foreach(t, print_audit, (void *)only);
	if (rc < 0)
		cli_die("cannot read audit log: %s", strerror(-rc));
	vg_txn_end(t);
	return 0;
}
