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

#include <openssl/x509v3.h>

#include "common/pki.h"
#include "common/text.h"
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

/* A certificate a bulk revocation leaves out unless --include-signers: what
 * takes the revocation service itself down with the rest. */
struct guarded {
	struct vg_serial serial;
	char what[160];
};

struct guard {
	struct guarded *v;
	size_t n, cap;
};

static void guard_add(struct guard *g, X509 *x, bool ocsp, const char *name)
{
	struct vg_serial s;
	if (!cli_cert_serial(x, &s))
		return;
	for (size_t i = 0; i < g->n; i++)
		if (vg_serial_cmp(&g->v[i].serial, &s) == 0)
			return;
	g->v = cli_reserve(g->v, g->n, &g->cap, sizeof(*g->v));
	g->v[g->n].serial = s;
	snprintf(g->v[g->n].what, sizeof(g->v[g->n].what), "the %s of [ca %s]",
	         ocsp ? "ocsp_cert" : "certificate", name);
	g->n++;
}

/* guard_load lists the certificates |ca| issued that the configuration names:
 * a delegated OCSP signer (ocsp_cert) and a subordinate CA (another [ca]'s
 * cert), of any section. Revoking them takes down the responder's answers or
 * a whole CA, which no bulk revocation of end-entity certificates means to. */
static void guard_load(struct ctx *c, const struct vg_conf_ca *ca, struct guard *g)
{
	char err[512];
	X509 *issuer;
	if (vg_pki_load_cert(ca->cert, &issuer, err, sizeof(err)) < 0)
		cli_die("CA %s certificate: %s", ca->name, err);
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	g->cap = 4;
	g->v = cli_reserve(NULL, 0, &g->cap, sizeof(*g->v));
	for (int i = 0; i < c->conf.n_cas; i++) {
		const struct vg_conf_ca *o = &c->conf.cas[i];
		const char *paths[2] = {o->cert, o->ocsp_cert};
		for (int k = 0; k < 2; k++) {
			X509 *x;
			if (!paths[k] || (k == 0 && o == ca))
				continue;
			if (vg_pki_load_cert(paths[k], &x, err, sizeof(err)) < 0)
				cli_die("[ca %s]: %s", o->name, err);
			if (key && X509_check_issued(issuer, x) == X509_V_OK &&
			    X509_verify(x, key) == 1)
				guard_add(g, x, k == 1, o->name);
			X509_free(x);
		}
	}
	X509_free(issuer);
}

static const struct guarded *guard_find(const struct guard *g, const struct vg_serial *s)
{
	for (size_t i = 0; i < g->n; i++)
		if (vg_serial_cmp(&g->v[i].serial, s) == 0)
			return &g->v[i];
	return NULL;
}

static void print_spared(const struct guarded *gd, bool dry_run)
{
	char hex[2 * VG_SERIAL_MAX + 1];
	vg_serial_format(&gd->serial, hex, sizeof(hex));
	printf("%s: serial %s, %s (--include-signers to revoke it too)\n",
	       dry_run ? "would leave out" : "left out", hex, gd->what);
}

/* ---- --dry-run: what a revocation would do, changing nothing ------------ */

#define PREVIEW_SAMPLE 10

struct preview {
	uint64_t would_revoke, already, unknown_issuance, not_in_store, spared;
	unsigned shown;
};

static void preview_line(struct preview *p, const struct vg_serial *s, const struct vg_cert *cert)
{
	if (p->shown++ >= PREVIEW_SAMPLE)
		return;
	char hex[2 * VG_SERIAL_MAX + 1], nb[32] = "-", na[32] = "-";
	vg_serial_format(s, hex, sizeof(hex));
	if (cert && (cert->flags & VG_CERT_HAS_NOT_BEFORE))
		vg_time_format(cert->not_before, nb, sizeof(nb));
	if (cert && (cert->flags & VG_CERT_HAS_NOT_AFTER))
		vg_time_format(cert->not_after, na, sizeof(na));
	printf("  %s notBefore=%s notAfter=%s now=%s\n", hex, nb, na,
	       !cert                               ? "not_in_store"
	       : cert->status == VG_STATUS_REVOKED ? vg_reason_name(cert->reason)
	                                           : "good");
}

/* A certificate already revoked changes only when a hold gives way or the
 * reason is raised to keyCompromise (vg_store_revoke's rules). */
static bool would_change(const struct vg_cert *have, const struct vg_revocation *rev)
{
	if (have->status != VG_STATUS_REVOKED)
		return true;
	if (have->reason == VG_REASON_CERTIFICATE_HOLD)
		return rev->reason != VG_REASON_CERTIFICATE_HOLD;
	return rev->reason == VG_REASON_KEY_COMPROMISE && have->reason != VG_REASON_KEY_COMPROMISE;
}

static void preview_one(struct preview *p, const struct vg_serial *s, const struct vg_cert *have,
                        const struct vg_revocation *rev)
{
	if (!have) {
		p->not_in_store++;
	} else if (!would_change(have, rev)) {
		p->already++;
		return;
	} else {
		p->would_revoke++;
	}
	preview_line(p, s, have);
}

static void preview_end(const struct preview *p, const char *what)
{
	if (p->shown > PREVIEW_SAMPLE)
		printf("  ... and %u more\n", p->shown - PREVIEW_SAMPLE);
	printf("dry run, nothing changed: %s would_revoke=%" PRIu64 " already_revoked=%" PRIu64,
	       what, p->would_revoke, p->already);
	if (p->unknown_issuance)
		printf(" skipped_unknown_issuance=%" PRIu64, p->unknown_issuance);
	if (p->not_in_store)
		printf(" not_in_store=%" PRIu64, p->not_in_store);
	printf(" left_out=%" PRIu64 "\n", p->spared);
}

static void preview_window(struct ctx *c, const struct vg_conf_ca *ca, const struct vg_window *w,
                           const struct vg_revocation *rev, const struct guard *g)
{
	struct preview p = {0};
	struct vg_txn *t;
	struct vg_iter *it;
	int rc = vg_txn_begin(c->st, &t);
	if (rc == 0)
		rc = vg_iter_open(t, ca->id, 0, &it);
	if (rc < 0)
		cli_die("cannot read store %s: %s", c->conf.store_path, strerror(-rc));
	printf("certificates of CA %s issued in the window (first %d):\n", ca->name,
	       PREVIEW_SAMPLE);
	struct vg_serial s;
	struct vg_cert cert;
	while ((rc = vg_iter_next(it, &s, &cert)) > 0) {
		if (!(cert.flags & VG_CERT_HAS_NOT_BEFORE)) {
			p.unknown_issuance += cert.status == VG_STATUS_GOOD;
			continue;
		}
		if (cert.not_before < w->after || cert.not_before >= w->before)
			continue;
		const struct guarded *gd = g ? guard_find(g, &s) : NULL;
		if (gd) {
			p.spared++;
			print_spared(gd, true);
			continue;
		}
		preview_one(&p, &s, &cert, rev);
	}
	if (rc < 0)
		cli_die("cannot read store: %s", strerror(-rc));
	vg_iter_close(it);
	vg_txn_end(t);
	preview_end(&p, "revoke by issuance window");
}

static void preview_serials(struct ctx *c, const struct vg_conf_ca *ca, const struct vg_serial *v,
                            size_t n, const struct vg_revocation *rev, uint64_t spared)
{
	struct preview p = {.spared = spared};
	struct vg_txn *t;
	int rc = vg_txn_begin(c->st, &t);
	if (rc < 0)
		cli_die("cannot read store %s: %s", c->conf.store_path, strerror(-rc));
	printf("serials of CA %s (first %d):\n", ca->name, PREVIEW_SAMPLE);
	for (size_t i = 0; i < n; i++) {
		struct vg_cert cert;
		rc = vg_store_get(t, ca->id, &v[i], &cert);
		if (rc < 0 && rc != -ENOENT)
			cli_die("cannot read store: %s", strerror(-rc));
		preview_one(&p, &v[i], rc == 0 ? &cert : NULL, rev);
	}
	vg_txn_end(t);
	preview_end(&p, "revoke by serial");
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
	        {"dry-run", no_argument, NULL, 'n'},
	        {"include-signers", no_argument, NULL, 'I'},
	        {0},
	};
	struct vg_revocation rev = {.revoked_at = vg_now(), .reason = VG_REASON_NONE};
	const char *after = NULL, *before = NULL, *serials = NULL;
	bool dry_run = false, include_signers = false;
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
		case 'n':
			dry_run = true;
			break;
		case 'I':
			include_signers = true;
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

	/* A single SERIAL is named on purpose; a bulk revocation leaves out the
	 * service's own certificates unless told otherwise. */
	struct guard g = {0};
	bool guarded = (after || serials) && !include_signers;
	if (guarded)
		guard_load(c, ca, &g);

	struct vg_write_result r;
	int rc;
	char what[96];
	if (after) {
		struct vg_window w = {.after = cli_need_time("--issued-after", after),
		                      .before = before ? cli_need_time("--issued-before", before)
		                                       : INT64_MAX};
		if (w.before <= w.after)
			cli_die("--issued-before must be later than --issued-after");
		struct vg_serial *keep = NULL;
		if (g.n) {
			keep = calloc(g.n, sizeof(*keep));
			if (!keep)
				cli_die("out of memory");
			for (size_t i = 0; i < g.n; i++)
				keep[i] = g.v[i].serial;
			w.keep = keep;
			w.n_keep = g.n;
		}
		if (dry_run) {
			cli_store_open(c, VG_STORE_RDONLY);
			preview_window(c, ca, &w, &rev, guarded ? &g : NULL);
			free(keep);
			free(g.v);
			return 0;
		}
		cli_store_open(c, 0);
		c->progress_what = "revoke window";
		rc = vg_store_revoke_window(c->st, ca->name, &w, &rev, &c->who, &r, cli_progress,
		                            c);
		/* Say which were left out, among those the window held. */
		if (rc == 0 && r.spared) {
			struct vg_txn *t;
			if (vg_txn_begin(c->st, &t) == 0) {
				for (size_t i = 0; i < g.n; i++) {
					struct vg_cert cert;
					if (vg_store_get(t, ca->id, &g.v[i].serial, &cert) == 0 &&
					    (cert.flags & VG_CERT_HAS_NOT_BEFORE) &&
					    cert.not_before >= w.after &&
					    cert.not_before < w.before)
						print_spared(&g.v[i], false);
				}
				vg_txn_end(t);
			}
		}
		free(keep);
		snprintf(what, sizeof(what), "revoke %s by issuance window", ca->name);
	} else {
		size_t n = 1, kept = 0;
		struct vg_serial one, *list;
		if (serials) {
			list = read_serials(serials, &n);
			for (size_t i = 0; i < n; i++) {
				const struct guarded *gd = guard_find(&g, &list[i]);
				if (gd)
					print_spared(gd, dry_run);
				else
					list[kept++] = list[i];
			}
		} else {
			one = cli_need_serial(pos[1]);
			list = &one;
			kept = 1;
		}
		if (dry_run) {
			cli_store_open(c, VG_STORE_RDONLY);
			preview_serials(c, ca, list, kept, &rev, n - kept);
		} else {
			cli_store_open(c, 0);
			c->progress_what = "revoking";
			rc = vg_store_revoke(c->st, ca->name, list, kept, &rev, &c->who, &r,
			                     kept > 100000 ? cli_progress : NULL, c);
			r.spared = n - kept;
			snprintf(what, sizeof(what), "revoke %s serials=%zu", ca->name, kept);
		}
		if (list != &one)
			free(list);
		if (dry_run) {
			free(g.v);
			return 0;
		}
	}
	free(g.v);
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
