/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CRL generator (crlgen.h): the configuration and each CA's material
 * (ca.c), the store snapshot (reopened when the store is replaced), what a
 * change touched, and publish_one/publish_locked, which build, lint, number
 * and publish a CA's full CRL, its delta (delta.c) and its shards (shards.c)
 * from one snapshot. Past 800 lines because publication is one sequence of
 * checks (numbers, guard, lint) that reads best in one place.
 */
#include "crlgen/crlgen.h"
#include "crlgen/delta.h"
#include "crlgen/crl.h"
#include "crlgen/guard.h"
#include "crlgen/internal.h"
#include "crlgen/lint.h"
#include "crlgen/metrics.h"
#include "crlgen/publish.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/text.h"
#include "store/store.h"

void crlgen_free(struct crlgen *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n; i++)
		crlgen_ca_deinit(&g->cas[i]);
	vg_txn_end(g->txn);
	vg_store_close(g->st);
	if (g->dirfd >= 0)
		close(g->dirfd);
	vg_conf_free(&g->conf);
	free(g);
}

/* load reads the config and the CAs' material, without the store. */
static int load(struct crlgen **out, const char *config, const char *only, bool publishes,
                char *err, size_t errlen)
{
	struct crlgen *g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	g->dirfd = -1;
	char e[600];
	int rc = vg_conf_load(config, &g->conf, e, sizeof(e));
	if (rc < 0) {
		snprintf(err, errlen, "%s", e);
		free(g);
		return rc;
	}
	if (only && !vg_conf_ca_find(&g->conf, only)) {
		snprintf(err, errlen, "--ca %s: no [ca %s] section in %s", only, only,
		         g->conf.file);
		rc = -ENOENT;
		goto fail;
	}
	if (g->conf.n_cas == 0) {
		snprintf(err, errlen, "%s: no [ca NAME] section", g->conf.file);
		rc = -EINVAL;
		goto fail;
	}
	for (int i = 0; i < g->conf.n_cas; i++) {
		const struct vg_conf_ca *c = &g->conf.cas[i];
		if (only && strcmp(c->name, only))
			continue;
		rc = crlgen_ca_init(&g->cas[g->n++], c, publishes, err, errlen);
		if (rc < 0)
			goto fail;
	}
	g->dirfd = pub_open_dir(g->conf.crl_out);
	if (g->dirfd < 0) {
		rc = g->dirfd;
		snprintf(err, errlen, "[crlgen] out %s: %s", g->conf.crl_out, strerror(-rc));
		goto fail;
	}
	/* The watchdog only reads out (its unit binds it read-only). */
	if (publishes && access(g->conf.crl_out, W_OK) < 0) {
		rc = -errno;
		snprintf(err, errlen, "[crlgen] out %s: %s", g->conf.crl_out, strerror(-rc));
		goto fail;
	}
	*out = g;
	return 0;
fail:
	crlgen_free(g);
	return rc;
}

int crlgen_new(struct crlgen **out, const char *config, const char *only, bool publishes, char *err,
               size_t errlen)
{
	struct crlgen *g;
	int rc = load(&g, config, only, publishes, err, errlen);
	if (rc < 0)
		return rc;
	rc = vg_store_open(&g->st, g->conf.store_path, VG_STORE_RDONLY);
	if (rc < 0) {
		if (rc == -EUCLEAN)
			snprintf(err, errlen, "%s", vg_store_damage());
		else
			snprintf(err, errlen, "store %s: %s", g->conf.store_path,
			         rc == -ENODATA  ? "not initialised (run vigil-store init)"
			         : rc == -EPROTO ? "made by an incompatible version"
			                         : strerror(-rc));
		crlgen_free(g);
		return rc;
	}
	if ((rc = lint_check_holds(g, err, errlen)) < 0) {
		crlgen_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int crlgen_reload(struct crlgen *old, struct crlgen **out, const char *config, const char *only,
                  char *err, size_t errlen)
{
	struct crlgen *g;
	int rc = load(&g, config, only, true, err, errlen);
	if (rc < 0)
		return rc;
	if (strcmp(g->conf.store_path, old->conf.store_path)) {
		snprintf(err, errlen, "[store] path changed to %s: restart vigil-crlgen to use it",
		         g->conf.store_path);
		crlgen_free(g);
		return -EINVAL;
	}
	g->st = old->st;
	g->txn = old->txn;
	g->reopens = old->reopens;
	old->st = NULL;
	old->txn = NULL;
	if ((rc = lint_check_holds(g, err, errlen)) < 0) {
		/* The old generator keeps the store. */
		old->st = g->st;
		old->txn = g->txn;
		g->st = NULL;
		g->txn = NULL;
		crlgen_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int crlgen_n_cas(const struct crlgen *g)
{
	return g->n;
}

bool crlgen_sharded(const struct crlgen *g, int i)
{
	return g->cas[i].conf->crl_shards > 0;
}

bool crlgen_delta_enabled(const struct crlgen *g, int i)
{
	return g->cas[i].conf->delta_crl;
}

int64_t crlgen_interval_ms(const struct crlgen *g)
{
	return g->conf.crl_interval * 1000;
}

int64_t crlgen_period_ms(const struct crlgen *g, int i)
{
	int64_t half = g->cas[i].conf->crl_validity * 1000 / 2;
	int64_t iv = crlgen_interval_ms(g);
	return half < iv ? half : iv;
}

/* reopen replaces the store handle by one on the store now at the path (a
 * restore exchanged it): never read a store file that is no longer there. */
static int reopen(struct crlgen *g)
{
	vg_txn_end(g->txn);
	g->txn = NULL;
	struct vg_store *st;
	int rc = vg_store_open(&st, g->conf.store_path, VG_STORE_RDONLY);
	if (rc == -EROFS || rc == -EACCES) {
		/* Out of reach of this process (a systemd sandbox bound the old
		 * store's lock file, not the new one's): a restart reaches it. */
		log_err("event=store_reopen_failed path=%s error=\"%s\" action=exit_for_restart",
		        g->conf.store_path, strerror(-rc));
		_exit(1);
	}
	if (rc < 0) {
		log_err("event=store_reopen_failed path=%s error=\"%s\"", g->conf.store_path,
		        rc == -EUCLEAN ? vg_store_damage() : strerror(-rc));
		return rc;
	}
	vg_store_close(g->st);
	g->st = st;
	g->reopens++;
	log_warn("event=store_reopened path=%s reason=replaced", g->conf.store_path);
	return 0;
}

/* crlgen_snapshot moves the read transaction to the newest committed state, of
 * the store now at the path. */
int crlgen_snapshot(struct crlgen *g)
{
	int rc = 0;
	if (vg_store_replaced(g->st)) {
		log_warn("event=store_replaced path=%s action=reopen", g->conf.store_path);
		if ((rc = reopen(g)) < 0)
			return rc;
	}
	if (!g->txn) {
		rc = vg_txn_begin(g->st, &g->txn);
	} else if ((rc = vg_txn_renew(g->txn)) < 0) {
		/* Start over with a new transaction rather than give up. */
		vg_txn_end(g->txn);
		g->txn = NULL;
		rc = vg_txn_begin(g->st, &g->txn);
	}
	struct vg_store_ident id;
	if (rc == 0 && (rc = vg_store_ident(g->txn, &id)) == 0)
		g->store_id = id.store_id;
	return rc;
}

unsigned crlgen_reopens(const struct crlgen *g)
{
	return g->reopens;
}

int crlgen_counter(struct crlgen *g, uint64_t *out)
{
	int rc = crlgen_snapshot(g);
	if (rc == 0)
		rc = vg_store_counter(g->txn, out);
	if (rc < 0)
		log_err("event=store_error op=counter error=\"%s\"", strerror(-rc));
	return rc;
}

struct touched_ctx {
	const struct crlgen *g;
	bool *touched;
};

static int touched_cb(const struct vg_change *c, void *arg)
{
	struct touched_ctx *t = arg;
	if (c->op == VG_CHANGE_REMOVE)
		return 0; /* no CRL changes for it (crlgen_delta_cb) */
	for (int i = 0; i < t->g->n; i++) {
		const struct crlgen_ca *ca = &t->g->cas[i];
		if (ca->conf->id != c->ca_id)
			continue;
		t->touched[i] = true;
		if (!ca->shard_touched)
			continue;
		/* The shard of the certificate as the store has it now; a
		 * CA-wide change, or one that cannot be read, touches all. */
		struct vg_cert cert;
		memset(&cert, 0, sizeof(cert));
		int rc = c->op == VG_CHANGE_CA || c->serial.len == 0
		                 ? -EINVAL
		                 : vg_store_get(t->g->txn, c->ca_id, &c->serial, &cert);
		if (rc == -ENOENT)
			memset(&cert, 0, sizeof(cert));
		if (rc < 0 && rc != -ENOENT) {
			for (int k = 1; k <= ca->conf->crl_shards; k++)
				ca->shard_touched[k] = true;
		} else {
			ca->shard_touched[crlgen_shard_of(ca->conf, &c->serial, &cert)] = true;
		}
	}
	return 0;
}

int crlgen_touched(struct crlgen *g, uint64_t since, bool *touched, uint64_t *upto)
{
	memset(touched, 0, sizeof(bool) * (size_t)g->n);
	int rc = crlgen_snapshot(g);
	if (rc == 0)
		rc = vg_store_counter(g->txn, upto);
	struct touched_ctx t = {g, touched};
	if (rc == 0)
		rc = vg_store_changes_foreach(g->txn, since, touched_cb, &t);
	if (rc == -ERANGE || (rc == 0 && *upto < since)) {
		/* The log was pruned past |since|, or the store went back (a
		 * restore): any CA may have changed. */
		log_info("event=changes_unknown since=%" PRIu64 " reason=%s action=all_cas", since,
		         rc ? "change_log_pruned" : "counter_went_back");
		for (int i = 0; i < g->n; i++)
			touched[i] = true;
		rc = 0;
	}
	if (rc < 0)
		log_err("event=store_error op=changes error=\"%s\"", strerror(-rc));
	return rc;
}

/* ---- Bounding the memory map's share of RSS ----------------------------
 *
 * Walking a million entries touches most of the store's memory map, and
 * every touched page (plus the kernel's fault-around neighbours) counts in
 * this process's RSS although it is only page cache. Every MAP_TRIM_EVERY
 * entries the map's pages are dropped from our page tables with
 * MADV_DONTNEED: the map is a shared, read-only file mapping, so this loses
 * nothing (the pages stay in the page cache, for the responder too) and a
 * later access simply maps them again (vg_txn_trim).
 */
#define MAP_TRIM_EVERY 65536

/* ---- Entry sources --------------------------------------------------- */

int crlgen_full_begin(void *arg)
{
	struct full_src *s = arg;
	if (s->it)
		vg_iter_close(s->it);
	s->it = NULL;
	vg_txn_trim(s->txn);
	return vg_iter_open(s->txn, s->ca_id, VG_ITER_REVOKED, &s->it);
}

void crlgen_entry_from(struct crl_entry *e, const struct vg_serial *s, const struct vg_cert *c)
{
	e->serial = *s;
	e->revoked_at = c->revoked_at;
	e->reason = c->reason;
	e->has_invalidity = c->flags & VG_CERT_HAS_INVALIDITY;
	e->invalidity_date = c->invalidity_date;
	e->not_after = (c->flags & VG_CERT_HAS_NOT_AFTER) ? c->not_after : INT64_MAX;
}

int crlgen_full_next(void *arg, struct crl_entry *e)
{
	struct full_src *s = arg;
	struct vg_serial serial;
	struct vg_cert c;
	for (;;) {
		int rc = vg_iter_next(s->it, &serial, &c);
		if (rc <= 0)
			return rc;
		if (++s->walked % MAP_TRIM_EVERY == 0)
			vg_txn_trim(s->txn);
		if (c.status != VG_STATUS_REVOKED)
			continue;
		/* RFC 5280 §3.3: an entry stays until it has appeared on one
		 * regular CRL issued after the certificate expired. */
		if ((c.flags & VG_CERT_HAS_NOT_AFTER) && c.not_after < s->cutoff)
			continue;
		crlgen_entry_from(e, &serial, &c);
		e->shard =
		        s->conf && s->conf->crl_shards ? crlgen_shard_of(s->conf, &serial, &c) : 0;
		return 1;
	}
}

/* Delta CRL: the certificates changed since the base, sorted by serial. */
/* ---- Publishing ------------------------------------------------------- */

static const char *kind_name(bool delta)
{
	return delta ? "delta" : "full";
}

/* published_number writes the higher of the numbers of CA |name|'s
 * published full and delta CRLs (they share one sequence, RFC 5280 §5.2.4)
 * to |max|, naming its file in |file| and the number in decimal in |dec|.
 * Returns 0, -ERANGE when a number needs more than 64 bits (|file| and |dec|
 * name it), or another negative errno when a file cannot be read. A file
 * that is not a CRL with a number is logged and left out: no client can
 * have taken a number from it. */
static int published_number(int dirfd, const char *name, uint64_t *max, char *file, size_t filelen,
                            char *dec, size_t declen)
{
	static const char *const suffix[] = {".crl", "-delta.crl"};
	*max = 0;
	snprintf(file, filelen, "%s.crl", name);
	snprintf(dec, declen, "0");
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char f[310], d[PUB_NUMBER_DEC];
		uint64_t n;
		snprintf(f, sizeof(f), "%s%s", name, suffix[i]);
		int rc = pub_crl_number(dirfd, f, &n, d, sizeof(d));
		if (rc == -ENOENT)
			continue;
		if (rc == -EBADMSG) {
			log_warn("event=published_crl_unreadable ca=%s file=%s "
			         "error=\"not a CRL with a number\" action=replace",
			         name, f);
			continue;
		}
		if (rc < 0 && rc != -ERANGE) {
			snprintf(file, filelen, "%s", f);
			return rc;
		}
		if (rc == -ERANGE || n > *max) {
			*max = n;
			snprintf(file, filelen, "%s", f);
			snprintf(dec, declen, "%s", d);
		}
		if (rc == -ERANGE)
			return rc;
	}
	return 0;
}

/* replaced_number_ok checks that |number| is above the number of the CRL
 * published as |fname|, the one it is about to replace; if not, it writes
 * the reason, naming both numbers, to |err| and returns -ERANGE. */
int crlgen_number_ok(int dirfd, const char *fname, uint64_t number, char *err, size_t errlen)
{
	uint64_t cur;
	char dec[PUB_NUMBER_DEC];
	int rc = pub_crl_number(dirfd, fname, &cur, dec, sizeof(dec));
	if (rc == -ERANGE || (rc == 0 && cur >= number)) {
		snprintf(err, errlen,
		         "CRL number %" PRIu64 " does not increase over %s, the number of the "
		         "published %s: refused",
		         number, dec, fname);
		return -ERANGE;
	}
	return 0;
}

/* The full CRL's walk feeding the shards too (publish_one with shards): the
 * walk's cutoff is the older of the two, and each gets the entries of its
 * own. */
struct tee_src {
	struct full_src *fs;
	struct shard_pub *sp;
	int64_t full_cutoff, shard_cutoff;
	int begins;
};

static int tee_begin(void *arg)
{
	struct tee_src *t = arg;
	t->begins++;
	crlgen_shards_begin(t->sp); /* a failure is the shards', at their finish */
	return crlgen_full_begin(t->fs);
}

static int tee_next(void *arg, struct crl_entry *e)
{
	struct tee_src *t = arg;
	for (;;) {
		int rc = crlgen_full_next(t->fs, e);
		if (rc <= 0)
			return rc;
		if (e->not_after >= t->shard_cutoff)
			crlgen_shards_feed(t->sp, e);
		if (e->not_after >= t->full_cutoff)
			return 1;
	}
}

/* publish_one writes one CRL of CA |ca| from the current snapshot; with
 * |shards_rc| set, a full CRL's walk also writes every shard, published
 * after it, and the shards' result goes to |*shards_rc| (the full CRL's is
 * returned). */
static int publish_one(struct crlgen *g, struct crlgen_ca *ca, bool delta,
                       const struct delta_set *ds, uint64_t counter, struct pub_state *ps,
                       int *shards_rc)
{
	const char *name = ca->conf->name;
	char fname[300], pemname[310], numname[320], err[1024], q[1200], werr[256];
	struct timespec t0, now;
	struct pub_file der = {.fd = -1}, pem = {.fd = -1}, state = {.fd = -1};
	struct crl_result res = {0};
	const char *dir = g->conf.crl_out;
	const char *rule = NULL;
	bool linked = false, committed = false;
	struct shard_pub *sp = NULL;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	snprintf(fname, sizeof(fname), "%s%s.crl", name, delta ? "-delta" : "");
	snprintf(pemname, sizeof(pemname), "%s.pem", fname);

	/* The number is above every number published under the CA's URLs
	 * that this publisher can see: the state, the numbered copies, and
	 * the CRLs in place, which another publisher (another host, with its
	 * own clock and state) may have written into this directory. */
	uint64_t published, number;
	char pubfile[310], pubdec[PUB_NUMBER_DEC];
	rc = published_number(g->dirfd, name, &published, pubfile, sizeof(pubfile), pubdec,
	                      sizeof(pubdec));
	if (rc == -ERANGE) {
		snprintf(err, sizeof(err),
		         "CRL number %" PRIu64 " (the highest a 64-bit number allows) does not "
		         "increase over %s, the number of the published %s: refused",
		         UINT64_MAX, pubdec, pubfile);
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, sizeof(err), "reading the CRL number of %s/%s: %s", dir, pubfile,
		         strerror(-rc));
		goto fail;
	}
	if ((rc = pub_next_number(g->dirfd, name, ps, published, now_us, &number)) < 0) {
		snprintf(err, sizeof(err),
		         "CRL number %" PRIu64 " (the highest a 64-bit number allows) does not "
		         "increase over %" PRIu64 ", the highest number used (in %s.state, "
		         "%s-NUMBER.crl or %s): refused",
		         UINT64_MAX, number, name, name, pubfile);
		goto fail;
	}

	struct crl_params p = {
	        .issuer = ca->issuer,
	        .issuer_len = ca->issuer_len,
	        .akid = ca->akid,
	        .akid_len = ca->akid_len,
	        .this_update = now.tv_sec,
	        .next_update = now.tv_sec + ca->conf->crl_validity,
	        .number = number,
	        .delta = delta,
	        .base_number = ps->full_number,
	        .freshest = !delta && ca->conf->delta_crl ? ca->conf->delta_crl_url : NULL,
	};
	/* nextUpdate no later than the CA certificate's notAfter; none signed past it. */
	if ((rc = crl_signer_check(&ca->signer, name, ca->conf->cert, p.this_update, &p.next_update,
	                           err, sizeof(err))) < 0)
		goto fail;
	/* Reserve the number before anything is published, so that it is never
	 * used twice whatever happens next. */
	ps->last_number = p.number;
	if ((rc = pub_state_save(g->dirfd, name, ps)) < 0) {
		snprintf(err, sizeof(err), "saving %s/%s.state: %s", dir, name, strerror(-rc));
		goto fail;
	}

	if ((rc = pub_begin(&der, g->dirfd, fname)) < 0 ||
	    (rc = pub_begin(&pem, g->dirfd, pemname)) < 0) {
		snprintf(err, sizeof(err), "%s: cannot create a file: %s", dir, strerror(-rc));
		goto fail;
	}

	/* The shards' number after the full CRL's, reserved too. A failure
	 * (logged) leaves the full CRL to be published alone. */
	if (shards_rc && !delta &&
	    (*shards_rc = crlgen_shards_prepare(g, ca, NULL, counter, ps, &sp)) < 0)
		sp = NULL;

	struct full_src fs = {.txn = g->txn, .ca_id = ca->conf->id, .cutoff = ps->full_this_update};
	struct delta_src dsrc = {.txn = g->txn, .d = ds, .now = now.tv_sec};
	struct tee_src tee = {.fs = &fs, .sp = sp};
	struct crl_source src;
	if (delta) {
		src = (struct crl_source){crlgen_delta_begin, crlgen_delta_next, &dsrc};
	} else {
		if (!ps->full_number)
			fs.cutoff = now.tv_sec;
		src = (struct crl_source){crlgen_full_begin, crlgen_full_next, &fs};
	}
	if (sp) {
		tee.full_cutoff = fs.cutoff;
		tee.shard_cutoff = crlgen_shards_cutoff(ps, now.tv_sec);
		if (tee.shard_cutoff < fs.cutoff)
			fs.cutoff = tee.shard_cutoff;
		fs.conf = ca->conf;
		src = (struct crl_source){tee_begin, tee_next, &tee};
	}
	struct lint_count expect = {.src = src};
	struct crl_source xsrc = lint_count_source(&expect);
	lint_inject_arm(ca->conf->profile == VG_CRL_PROFILE_TLS_BR, delta);
	lint_inject_params(&p);
	rc = crl_write(der.fd, &p, &ca->signer, &xsrc, &res, werr, sizeof(werr));
	/* An empty full CRL has no second pass; the shards may still have
	 * entries (an older cutoff): their second walk alone. */
	if (sp && rc == 0 && tee.begins < 2) {
		struct crl_entry e;
		int trc = tee_begin(&tee);
		while (trc >= 0 && (trc = tee_next(&tee, &e)) > 0)
			;
		if (trc < 0)
			rc = trc;
	}
	if (fs.it)
		vg_iter_close(fs.it);
	vg_txn_trim(g->txn);
	if (rc < 0) {
		snprintf(err, sizeof(err), "%s/%s: %s", dir, fname, werr);
		goto fail;
	}
	/* Both files are written before either is fsynced, so that the disk
	 * writes the DER while the PEM is being encoded. */
	if ((rc = pub_write_pem(&pem, &der, res.bytes, "X509 CRL")) < 0) {
		snprintf(err, sizeof(err), "%s/%s: writing: %s", dir, pemname, strerror(-rc));
		goto fail;
	}
	if ((rc = pub_sync(&der)) < 0 || (rc = pub_sync(&pem)) < 0) {
		snprintf(err, sizeof(err), "%s: fsync: %s", dir, strerror(-rc));
		goto fail;
	}
	/* The state that goes with a new full CRL is written now, before the
	 * CRL is renamed into place: once it is, nothing can fail for want of
	 * space. */
	struct pub_state next = *ps;
	if (!delta) {
		next.full_number = p.number;
		next.full_this_update = p.this_update;
		next.full_counter = counter;
		next.store_id = g->store_id;
		if ((rc = pub_state_prepare(&state, g->dirfd, name, &next)) < 0) {
			snprintf(err, sizeof(err), "saving %s/%s.state: %s", dir, name,
			         strerror(-rc));
			goto fail;
		}
	}
	if (!delta && g->conf.crl_keep > 0) {
		snprintf(numname, sizeof(numname), "%s-%" PRIu64 ".crl", name, p.number);
		if ((rc = pub_link_copy(&der, numname)) < 0) {
			snprintf(err, sizeof(err), "%s/%s: %s", dir, numname, strerror(-rc));
			goto fail;
		}
		linked = true;
	}
	/* The profile's lint, on what was written, before anything is renamed
	 * (a delta with the delta rules: its base is the state's full CRL). */
	if (ca->conf->profile == VG_CRL_PROFILE_TLS_BR) {
		struct lint_expect x = {
		        .ca = ca, .entries = expect.n, .previous = published, .now = now.tv_sec};
		x.delta = delta;
		x.base = ps->full_number;
		if ((rc = lint_crl(der.fd, res.bytes, &x, &rule, werr, sizeof(werr))) < 0) {
			snprintf(err, sizeof(err), "%s/%s: %s", dir, fname, werr);
			goto fail;
		}
	}
	/* Never replace a CRL with one whose number is not higher: another
	 * host writing into this directory, which our lock may not reach (a
	 * network file system), may have published since the number was
	 * chosen. */
	if ((rc = crlgen_number_ok(g->dirfd, fname, p.number, err, sizeof(err))) < 0)
		goto fail;
	/* DER, PEM, then the state: a crlgen killed in between leaves each file
	 * either old or new, and an old state only holds an older delta base. */
	if ((rc = pub_commit(&der)) < 0) {
		snprintf(err, sizeof(err), "publishing %s/%s: %s", dir, fname, strerror(-rc));
		goto fail;
	}
	committed = true;
	if ((rc = pub_commit(&pem)) < 0 || (!delta && (rc = pub_commit(&state)) < 0) ||
	    (rc = pub_sync_dir(g->dirfd)) < 0) {
		snprintf(err, sizeof(err), "publishing %s/%s: %s", dir, fname, strerror(-rc));
		goto fail;
	}
	*ps = next;
	metrics_crl_published(name,
	                      delta               ? fname
	                      : ca->conf->crl_url ? ca->conf->crl_url
	                                          : fname,
	                      res.entries, res.bytes, p.number, p.this_update, p.next_update);
	if (!delta && (rc = pub_prune(g->dirfd, name, g->conf.crl_keep)) < 0)
		log_warn("event=prune_failed ca=%s error=\"%s\"", name, strerror(-rc));

	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	char tu[32], nu[32];
	vg_time_format(p.this_update, tu, sizeof(tu));
	vg_time_format(p.next_update, nu, sizeof(nu));
	if (delta)
		log_info("event=crl_published ca=%s kind=delta number=%" PRIu64 " base=%" PRIu64
		         " entries=%" PRIu64 " bytes=%" PRIu64 " ms=%ld counter=%" PRIu64
		         " this_update=%s next_update=%s file=%s",
		         name, p.number, p.base_number, res.entries, res.bytes, ms, counter, tu, nu,
		         fname);
	else
		log_info("event=crl_published ca=%s kind=full number=%" PRIu64 " entries=%" PRIu64
		         " bytes=%" PRIu64 " ms=%ld counter=%" PRIu64
		         " this_update=%s next_update=%s file=%s",
		         name, p.number, res.entries, res.bytes, ms, counter, tu, nu, fname);
	/* The shards, written by the same walk, after the full CRL. */
	if (sp)
		*shards_rc = crlgen_shards_finish(sp, ps);
	return 0;
fail:
	crlgen_shards_abort(sp);
	if (shards_rc && *shards_rc == 0)
		*shards_rc = rc;
	pub_abort(&der);
	pub_abort(&pem);
	pub_abort(&state);
	/* A numbered copy of a CRL that was not published goes too. */
	if (linked && !committed)
		unlinkat(g->dirfd, numname, 0);
	if (rule) {
		metrics_lint_failed(name, rule);
		log_err("event=crl_lint_failed ca=%s kind=%s rule=%s error=%s", name,
		        kind_name(delta), rule, vg_log_quote(err, q, sizeof(q)));
		return rc;
	}
	log_err("event=crl_failed ca=%s kind=%s error=%s", name, kind_name(delta),
	        vg_log_quote(err, q, sizeof(q)));
	return rc;
}

static int publish_locked(struct crlgen *g, int i, enum crlgen_kind kind)
{
	struct crlgen_ca *ca = &g->cas[i];
	const char *name = ca->conf->name;
	struct delta_set ds = {.ca_id = ca->conf->id};
	struct pub_state ps;
	uint64_t counter = 0;
	int rc = crlgen_snapshot(g);
	if (rc == 0)
		rc = vg_store_counter(g->txn, &counter);
	if (rc < 0) {
		log_err("event=crl_failed ca=%s kind=%s error=\"store: %s\"", name,
		        kind_name(kind == CRLGEN_DELTA), strerror(-rc));
		return rc;
	}
	rc = pub_state_load(g->dirfd, name, &ps);
	if (rc < 0) {
		/* Numbers stay increasing without it (time, numbered files);
		 * only the delta base and the expiry cutoff are lost. */
		log_warn("event=state_unreadable ca=%s error=\"%s\" action=start_over", name,
		         strerror(-rc));
		memset(&ps, 0, sizeof(ps));
	}

	if ((rc = guard_check(g->txn, g->dirfd, name, ca->conf->id, &ps, counter, g->store_id)) <
	    0) {
		if (rc == -ESTALE) {
			metrics_refused(name, "store_older_than_published");
			(void)metrics_flush(g->conf.crl_metrics_file);
		} else {
			log_err("event=crl_failed ca=%s kind=%s error=\"published CRL: %s\"", name,
			        kind_name(kind == CRLGEN_DELTA), strerror(-rc));
		}
		return rc;
	}
	if (kind == CRLGEN_DELTA) {
		const char *why = NULL;
		if (!ps.full_number)
			why = "no_base";
		else if (counter < ps.full_counter || (ps.store_id && ps.store_id != g->store_id))
			why = "store_replaced"; /* the base's changes are another store's */
		else if ((rc = vg_store_changes_foreach(g->txn, ps.full_counter, crlgen_delta_cb,
		                                        &ds)) == -ERANGE)
			why = "change_log_pruned";
		else if (rc < 0)
			why = "change_log_unreadable";
		else if (ds.ca_wide)
			why = "ca_wide_change";
		else if (ds.overflow)
			why = "too_many_changes";
		if (why) {
			log_info("event=delta_to_full ca=%s reason=%s", name, why);
			kind = CRLGEN_FULL;
			free(ds.v);
			memset(&ds, 0, sizeof(ds));
			ds.ca_id = ca->conf->id;
		} else {
			crlgen_delta_sort(&ds);
		}
	}
	if (kind == CRLGEN_TOUCHED && ca->shard_touched) {
		/* After a change, the touched shards first: they are small, and
		 * what relying parties fetch by the URL in the certificate. */
		rc = crlgen_publish_shards(g, ca, ca->shard_touched, counter, &ps);
		if (rc == 0)
			memset(ca->shard_touched, 0,
			       sizeof(bool) * ((size_t)ca->conf->crl_shards + 1));
		if (rc == 0)
			rc = publish_one(g, ca, false, NULL, counter, &ps, NULL);
		if (rc == 0 && ca->conf->delta_crl)
			rc = publish_one(g, ca, true, &ds, counter, &ps, NULL);
		if (rc == 0)
			crlgen_mirror_full(g, ca);
	} else if (kind == CRLGEN_FULL || kind == CRLGEN_TOUCHED) {
		/* A scheduled publication refreshes every shard, written by the
		 * full CRL's walk and published after it. */
		int shards_rc = 0;
		rc = publish_one(g, ca, false, NULL, counter, &ps,
		                 ca->shard_touched ? &shards_rc : NULL);
		/* The delta against the new base is empty: same snapshot. */
		if (rc == 0 && ca->conf->delta_crl)
			rc = publish_one(g, ca, true, &ds, counter, &ps, NULL);
		if (rc == 0)
			crlgen_mirror_full(g, ca);
		if (rc == 0 && ca->shard_touched) {
			rc = shards_rc;
			if (rc == 0)
				memset(ca->shard_touched, 0,
				       sizeof(bool) * ((size_t)ca->conf->crl_shards + 1));
		} else if (rc == 0) {
			crlgen_write_ccadb(g, ca);
		}
	} else {
		rc = publish_one(g, ca, true, &ds, counter, &ps, NULL);
	}
	free(ds.v);
	int mrc = metrics_flush(g->conf.crl_metrics_file);
	if (mrc < 0)
		log_warn("event=metrics_write_failed file=%s error=\"%s\"",
		         g->conf.crl_metrics_file, strerror(-mrc));
	return rc;
}

int crlgen_publish(struct crlgen *g, int i, enum crlgen_kind kind)
{
	/* One publication at a time per out directory, across processes (a
	 * daemon and an operator's --once): the number is chosen, the snapshot
	 * taken and the files renamed under the lock, so a published CRL never
	 * replaces one with a higher number or newer content. */
	while (flock(g->dirfd, LOCK_EX) < 0) {
		int e = errno;
		if (e != EINTR) {
			log_err("event=crl_failed ca=%s error=\"lock %s: %s\"",
			        g->cas[i].conf->name, g->conf.crl_out, strerror(e));
			return -e;
		}
	}
	/* What a crlgen killed while publishing left (any time, not only before
	 * this one started: an operator's --once beside the daemon) goes now. */
	int n = pub_clean_stale(g->dirfd);
	if (n > 0)
		log_info("event=stale_files_removed dir=%s count=%d", g->conf.crl_out, n);
	int rc = publish_locked(g, i, kind);
	flock(g->dirfd, LOCK_UN);
	return rc;
}
