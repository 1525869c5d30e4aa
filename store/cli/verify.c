/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store verify and vigil-store prune: the store's invariants checked,
 * and its retention applied ([store] log_retention, expired_retention).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "store/cli/cli.h"

static void print_diff(const char *db, const char *key, const char *what, void *arg)
{
	uint64_t *n = arg;
	(*n)++;
	cli_end_progress();
	printf("DIFF db=%s key=%s problem=\"%s\"\n", db, key, what);
}

int cmd_verify(struct ctx *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		cli_usage_die("verify takes no arguments");
	cli_store_open(c, VG_STORE_RDONLY);
	struct vg_txn *t;
	int rc = vg_txn_begin(c->st, &t);
	if (rc < 0)
		cli_die("cannot read store %s: %s", c->conf.store_path, strerror(-rc));
	uint64_t counter = 0, n = 0, checked = 0;
	vg_store_counter(t, &counter);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = vg_store_verify(t, print_diff, &n, &checked);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	vg_txn_end(t);
	if (rc < 0)
		cli_die("verify of %s stopped: %s", c->conf.store_path, strerror(-rc));
	long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	printf("verify: %s counter=%" PRIu64 " records=%" PRIu64 " differences=%d ms=%ld\n",
	       c->conf.store_path, counter, checked, rc, ms);
	return rc ? 1 : 0;
}

/* last_full_crl reads the thisUpdate of CA |name|'s last full CRL from
 * vigil-crlgen's state file (out/NAME.state); 0 when there is none. */
static int64_t last_full_crl(const struct ctx *c, const char *name)
{
	if (!c->conf.crl_out)
		return 0;
	char path[4096], line[256];
	snprintf(path, sizeof(path), "%s/%s.state", c->conf.crl_out, name);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	long long v = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "full_this_update=%lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int cmd_prune(struct ctx *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		cli_usage_die("prune takes no arguments");
	cli_store_open(c, 0);
	struct vg_prune_ca cas[VG_CONF_MAX_CAS];
	for (int i = 0; i < c->conf.n_cas; i++) {
		const struct vg_conf_ca *ca = &c->conf.cas[i];
		cas[i].name = ca->name;
		/* Its absent serials are answered revoked: the store must stay
		 * complete for it. */
		cas[i].certs = ca->not_issued != VG_NOT_ISSUED_REVOKED;
		cas[i].last_full_crl = last_full_crl(c, ca->name);
		if (!cas[i].certs)
			printf("prune: ca=%s certificates kept: not_issued = revoked needs the "
			       "store complete\n",
			       ca->name);
	}
	c->progress_what = "prune:";
	struct vg_prune_result r;
	int64_t now = vg_now();
	int rc = vg_store_prune(c->st, now, c->conf.log_retention, c->conf.expired_retention, cas,
	                        (size_t)c->conf.n_cas, &c->who, &r, cli_progress, c);
	cli_end_progress();
	if (rc < 0)
		cli_die("prune of %s stopped after %" PRIu64 " certificates and %" PRIu64
		        " log entries (each commit durable): %s",
		        c->conf.store_path, r.certs_removed, r.log_removed,
		        rc == -ESTALE ? "the store was replaced (restore) meanwhile"
		                      : strerror(-rc));
	printf("prune: certs_removed=%" PRIu64 " revoked_removed=%" PRIu64
	       " kept_awaiting_crl=%" PRIu64 " log_removed=%" PRIu64 " log_floor=%" PRIu64
	       " commits=%" PRIu64 "\n",
	       r.certs_removed, r.revoked_removed, r.kept_no_crl, r.log_removed, r.log_floor,
	       r.commits);
	return 0;
}
