/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store revoke, release, freeze and thaw: an operator's changes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/cli/cli.h"

static struct vg_serial *read_serials(const char *path, size_t *count)
{
	FILE *f = cli_fopen(path);
	size_t n = 0, cap = 1024;
	struct vg_serial *v = cli_reserve(NULL, 0, &cap, sizeof(*v));
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	unsigned lineno = 0;
	while ((len = getline(&line, &linecap, f)) != -1) {
		lineno++;
		char *s = line, *e = line + len;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		char *hash = memchr(s, '#', (size_t)(e - s));
		if (hash)
			e = hash;
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s)
			continue;
		v = cli_reserve(v, n, &cap, sizeof(*v));
		if (vg_serial_parse(s, (size_t)(e - s), &v[n]) < 0)
			cli_die("%s:%u: malformed serial '%.*s'; nothing revoked", path, lineno,
			        (int)(e - s), s);
		n++;
	}
	bool bad = ferror(f);
	free(line);
	fclose(f);
	if (bad)
		cli_die("%s: read error; nothing revoked", path);
	*count = n;
	return v;
}

int cmd_revoke(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"reason", required_argument, NULL, 'r'},
	        {"time", required_argument, NULL, 't'},
	        {"invalidity-date", required_argument, NULL, 'i'},
	        {"issued-after", required_argument, NULL, 'a'},
	        {"issued-before", required_argument, NULL, 'b'},
	        {"serials", required_argument, NULL, 's'},
	        {0},
	};
	struct vg_revocation rev = {.revoked_at = vg_now(), .reason = VG_REASON_NONE};
	const char *after = NULL, *before = NULL, *serials = NULL;
	int o;
	optind = 0;
	/* Options may follow the positional arguments. */
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'r':
			if (vg_reason_parse(optarg, &rev.reason) < 0)
				cli_die("unknown reason '%s': expected an RFC 5280 reason such as "
				        "keyCompromise, superseded, cessationOfOperation, "
				        "certificateHold",
				        optarg);
			break;
		case 't':
			rev.revoked_at = cli_need_time("--time", optarg);
			break;
		case 'i':
			rev.invalidity_date = cli_need_time("--invalidity-date", optarg);
			rev.has_invalidity = true;
			break;
		case 'a':
			after = optarg;
			break;
		case 'b':
			before = optarg;
			break;
		case 's':
			serials = optarg;
			break;
		default:
			cli_usage_die("revoke: unknown option");
		}
	}
	/* A revocation takes effect when it is recorded: a time ahead of the
	 * clock (5 minutes of skew aside) would be answered as already revoked,
	 * with a revocationTime after the answer's producedAt. The invalidity
	 * date is when the key was compromised or the certificate became invalid,
	 * which a revocation records after the fact (RFC 5280 §5.3.2). */
	if (rev.revoked_at > vg_now() + 300)
		cli_die("--time is in the future: a revocation takes effect when it is recorded");
	if (rev.has_invalidity && rev.invalidity_date > rev.revoked_at)
		cli_die("--invalidity-date is later than the revocation time (--time, default "
		        "now)");
	int npos = argc - optind;
	char **pos = argv + optind;
	if (npos < 1)
		cli_usage_die(
		        "usage: revoke CA (SERIAL | --serials FILE | --issued-after T) [...]");
	const struct vg_conf_ca *ca = cli_need_ca(c, pos[0]);
	int modes = (npos == 2) + (serials != NULL) + (after != NULL);
	if (modes != 1 || npos > 2)
		cli_usage_die(
		        "revoke takes exactly one of SERIAL, --serials FILE, --issued-after T");
	if (before && !after)
		cli_usage_die("--issued-before needs --issued-after");

	struct vg_write_result r;
	int rc;
	char what[96];
	if (after) {
		int64_t a = cli_need_time("--issued-after", after);
		int64_t b = before ? cli_need_time("--issued-before", before) : INT64_MAX;
		if (b <= a)
			cli_die("--issued-before must be later than --issued-after");
		cli_store_open(c, 0);
		c->progress_what = "revoke window";
		rc = vg_store_revoke_window(c->st, ca->name, a, b, &rev, &c->who, &r, cli_progress,
		                            c);
		snprintf(what, sizeof(what), "revoke %s by issuance window", ca->name);
	} else {
		size_t n = 1;
		struct vg_serial one, *list;
		if (serials) {
			list = read_serials(serials, &n);
		} else {
			one = cli_need_serial(pos[1]);
			list = &one;
		}
		cli_store_open(c, 0);
		c->progress_what = "revoking";
		rc = vg_store_revoke(c->st, ca->name, list, n, &rev, &c->who, &r,
		                     n > 100000 ? cli_progress : NULL, c);
		snprintf(what, sizeof(what), "revoke %s serials=%zu", ca->name, n);
		if (list != &one)
			free(list);
	}
	if (rc < 0)
		cli_write_failed("revoke", rc, &r);
	cli_print_result(what, &r);
	return 0;
}

int cmd_release(struct ctx *c, int argc, char **argv)
{
	if (argc != 2)
		cli_usage_die("usage: release CA SERIAL");
	const struct vg_conf_ca *ca = cli_need_ca(c, argv[0]);
	struct vg_serial s = cli_need_serial(argv[1]);
	cli_store_open(c, 0);
	int rc = vg_store_release(c->st, ca->name, &s, &c->who);
	if (rc == -ENOENT)
		cli_die("serial %s of CA %s is not in the store", argv[1], ca->name);
	if (rc == -EPERM)
		cli_die("serial %s of CA %s is not on certificateHold; only a hold can be released",
		        argv[1], ca->name);
	if (rc < 0)
		cli_write_failed("release", rc, NULL);
	printf("OK: released %s of CA %s\n", argv[1], ca->name);
	return 0;
}

int cmd_freeze(struct ctx *c, int argc, char **argv, bool frozen)
{
	if (argc != 1)
		cli_usage_die(frozen ? "usage: freeze CA" : "usage: thaw CA");
	const struct vg_conf_ca *ca = cli_need_ca(c, argv[0]);
	cli_store_open(c, 0);
	int rc = vg_store_freeze(c->st, ca->name, frozen, (int64_t)time(NULL), &c->who);
	if (rc < 0)
		cli_write_failed(frozen ? "freeze" : "thaw", rc, NULL);
	struct vg_txn *t = NULL;
	struct vg_ca_state s;
	if (vg_txn_begin(c->st, &t) == 0 && vg_store_ca_get(t, ca->name, &s) == 0 && s.frozen) {
		char ts[32];
		vg_time_format(s.frozen_at, ts, sizeof(ts));
		printf("OK: CA %s frozen since %s; absent serials now answer %s\n", ca->name, ts,
		       ca->not_issued == VG_NOT_ISSUED_REVOKED ? "revoked" : "unknown");
	} else {
		printf("OK: CA %s thawed (issuing)\n", ca->name);
	}
	vg_txn_end(t);
	return 0;
}
