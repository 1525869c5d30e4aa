/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-crlgen --plan: the size and the generation time of a CA's CRLs as
 * they are, and as they would be if a set of certificates were revoked (the
 * mass-revocation rehearsal of ballot SC-089), without changing anything.
 *
 * Each scenario is generated for real, by the encoder and the signer that
 * publish, from one store snapshot: the full CRL and every shard, in two
 * walks of the store (measure, write), written to /dev/null (or, for EdDSA,
 * whose signature needs the whole TBSCertList in a file, to an unlinked
 * temporary file in the out directory). Nothing is published, no state or
 * number is touched. The time shown is that generation.
 *
 * The shard count: for N = 1, 2, 4 .. 256 the walk adds every entry's
 * length to shard (serial mod N) + 1, and the plan names the smallest N
 * whose largest shard stays under crl_max_bytes.
 */
#include "crlgen/plan.h"
#include "crlgen/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/der.h"
#include "common/text.h"

#define PLAN_BUF (64u * 1024u)
#define N_CAND 9 /* N = 1 << 0 .. 1 << 8 */

struct plan_src {
	struct vg_txn *txn;
	const struct vg_conf_ca *conf;
	const struct plan_opts *o;
	int64_t now;
	struct vg_iter *it;
	uint64_t selected, undated, walked;
};

static int src_begin(struct plan_src *s, bool all)
{
	if (s->it)
		vg_iter_close(s->it);
	s->it = NULL;
	s->selected = s->undated = 0;
	vg_txn_trim(s->txn);
	return vg_iter_open(s->txn, s->conf->id, all ? 0 : VG_ITER_REVOKED, &s->it);
}

/* src_next yields the next entry of the scenario: the revoked certificates
 * not expired, and with |what|, the good ones it selects as if revoked now
 * (keyCompromise: the longest entry a reason gives). */
static int src_next(struct plan_src *s, struct crl_entry *e)
{
	struct vg_serial serial;
	struct vg_cert c;
	for (;;) {
		int rc = vg_iter_next(s->it, &serial, &c);
		if (rc <= 0)
			return rc;
		/* Keep the store's map out of the RSS (crlgen.c's MAP_TRIM_EVERY). */
		if (++s->walked % 65536 == 0)
			vg_txn_trim(s->txn);
		bool expired = (c.flags & VG_CERT_HAS_NOT_AFTER) && c.not_after < s->now;
		if (expired)
			continue;
		if (c.status != VG_STATUS_REVOKED) {
			if (s->o->what == PLAN_AS_IS)
				continue;
			if (s->o->what == PLAN_ISSUED) {
				if (!(c.flags & VG_CERT_HAS_NOT_BEFORE)) {
					s->undated++;
					continue;
				}
				if (c.not_before < s->o->after ||
				    (s->o->before && c.not_before >= s->o->before))
					continue;
			}
			s->selected++;
			c.revoked_at = s->now;
			c.reason = VG_REASON_KEY_COMPROMISE;
			c.flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
		}
		e->serial = serial;
		e->revoked_at = c.revoked_at;
		e->reason = c.reason;
		e->has_invalidity = c.flags & VG_CERT_HAS_INVALIDITY;
		e->invalidity_date = c.invalidity_date;
		e->shard = crlgen_shard_of(s->conf, &serial, &c);
		return 1;
	}
}

struct plan_crl {
	struct crl_writer *w;
	uint64_t count, len;
	struct crl_result res;
};

/* scenario generates one scenario; fills |crls| (0 = full, 1..N shards)
 * and |cand| (per candidate N, the largest shard's entry bytes and count).
 * Returns 0 or a negative errno with |err|. */
static int scenario(struct crlgen *g, struct crlgen_ca *ca, struct plan_src *s,
                    struct plan_crl *crls, uint64_t (*cand)[256], long *ms, char *err,
                    size_t errlen)
{
	const struct vg_conf_ca *c = ca->conf;
	unsigned n = (unsigned)c->crl_shards;
	bool all = s->o->what != PLAN_AS_IS;
	struct timespec t0, t1;
	struct crl_entry e;
	char urls[257][512];
	int fd = -1, rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = src_begin(s, all);
	while (rc >= 0 && (rc = src_next(s, &e)) > 0) {
		size_t l = crl_entry_len(&e);
		crls[0].count++;
		crls[0].len += l;
		if (n) {
			crls[e.shard].count++;
			crls[e.shard].len += l;
		}
		uint8_t last = e.serial.b[e.serial.len - 1];
		for (int j = 0; j < N_CAND; j++)
			cand[j][last & ((1u << j) - 1)] += l;
	}
	if (rc < 0) {
		snprintf(err, errlen, "reading the store: %s", strerror(-rc));
		goto out;
	}
	if (ca->signer.oneshot)
		fd = openat(g->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	else
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", ca->signer.oneshot ? g->conf.crl_out : "/dev/null",
		         strerror(-rc));
		goto out;
	}
	struct crl_params p = {
	        .issuer = ca->issuer,
	        .issuer_len = ca->issuer_len,
	        .akid = ca->akid,
	        .akid_len = ca->akid_len,
	        .this_update = s->now,
	        .next_update = s->now + c->crl_validity,
	        .number = (uint64_t)s->now * 1000000u,
	        .idp_user_certs = c->profile == VG_CRL_PROFILE_TLS_BR,
	};
	if (ca->signer.not_after && p.next_update > ca->signer.not_after)
		p.next_update = ca->signer.not_after;
	/* The shards' files would be separate; here they share one sink, which
	 * changes nothing for DER sizes or signing time, only for EdDSA (the
	 * file is signed from its start: one at a time). */
	for (unsigned k = 0; k <= n; k++) {
		struct crl_params pk = p;
		if (k) {
			vg_conf_shard_url(c, k, urls[k], sizeof(urls[k]));
			pk.idp = urls[k];
		}
		if (ca->signer.oneshot && k)
			continue;
		if ((rc = crl_writer_begin(&crls[k].w, fd, &pk, &ca->signer, crls[k].count,
		                           crls[k].len, PLAN_BUF, err, errlen)) < 0)
			goto out;
	}
	rc = src_begin(s, all);
	while (rc >= 0 && (rc = src_next(s, &e)) > 0) {
		crl_writer_add(crls[0].w, &e);
		if (n && crls[e.shard].w)
			crl_writer_add(crls[e.shard].w, &e);
	}
	if (rc < 0) {
		snprintf(err, errlen, "reading the store: %s", strerror(-rc));
		goto out;
	}
	for (unsigned k = 0; k <= n; k++) {
		if (!crls[k].w)
			continue;
		if ((rc = crl_writer_end(crls[k].w, &crls[k].res, err, errlen)) < 0)
			goto out;
	}
	/* EdDSA: the shards' sizes from the full CRL's, without their
	 * signatures made (the TBS of each would need its own file). */
	for (unsigned k = 1; k <= n; k++)
		if (!crls[k].w) {
			crls[k].res.entries = crls[k].count;
			crls[k].res.bytes = crls[k].len + (crls[0].res.bytes - crls[0].len) +
			                    strlen(urls[k]) + 24;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
out:
	for (unsigned k = 0; k <= n; k++) {
		crl_writer_free(crls[k].w);
		crls[k].w = NULL;
	}
	if (s->it)
		vg_iter_close(s->it);
	s->it = NULL;
	vg_txn_trim(s->txn);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* needed returns the smallest candidate N whose largest shard stays under
 * |max| bytes, with |overhead| bytes besides the entries, or 0. */
static unsigned needed(uint64_t (*cand)[256], uint64_t overhead, uint64_t max)
{
	for (int j = 0; j < N_CAND; j++) {
		uint64_t top = 0;
		for (unsigned k = 0; k < (1u << j); k++)
			if (cand[j][k] > top)
				top = cand[j][k];
		if (top + overhead + 8 < max)
			return 1u << j;
	}
	return 0;
}

static const char *what_name(const struct plan_opts *o)
{
	return o->what == PLAN_REVOKE_ALL ? "revoke-all"
	       : o->what == PLAN_ISSUED   ? "issued-window"
	                                  : "as-is";
}

static void print(FILE *f, const struct vg_conf_ca *c, const char *scen,
                  const struct plan_crl *crls, long ms, unsigned need, uint64_t selected)
{
	fprintf(f, "ca=%s scenario=%s crl=full url=%s entries=%" PRIu64 " bytes=%" PRIu64 " ms=%ld",
	        c->name, scen, c->crl_url ? c->crl_url : "-", crls[0].res.entries,
	        crls[0].res.bytes, ms);
	if (strcmp(scen, "as-is"))
		fprintf(f, " newly_revoked=%" PRIu64, selected);
	fputc('\n', f);
	for (int k = 1; k <= c->crl_shards; k++) {
		char url[512];
		vg_conf_shard_url(c, (unsigned)k, url, sizeof(url));
		fprintf(f,
		        "ca=%s scenario=%s crl=shard shard=%d url=%s entries=%" PRIu64
		        " bytes=%" PRIu64 "%s\n",
		        c->name, scen, k, url, crls[k].res.entries, crls[k].res.bytes,
		        crls[k].res.bytes > (uint64_t)c->crl_max_bytes ? " over_max=yes" : "");
	}
	if (need)
		fprintf(f,
		        "ca=%s scenario=%s crl_max_bytes=%" PRId64 " shards_needed=%u "
		        "configured=%d%s\n",
		        c->name, scen, c->crl_max_bytes, need, c->crl_shards,
		        need > (unsigned)(c->crl_shards ? c->crl_shards : 1) ? " action=add_shards"
		                                                             : "");
	else
		fprintf(f,
		        "ca=%s scenario=%s crl_max_bytes=%" PRId64
		        " shards_needed=more_than_256 configured=%d action=add_shards\n",
		        c->name, scen, c->crl_max_bytes, c->crl_shards);
}

int crlgen_plan(struct crlgen *g, const struct plan_opts *o, FILE *f)
{
	char err[512];
	int status = 0;
	for (int i = 0; i < g->n; i++) {
		struct crlgen_ca *ca = &g->cas[i];
		const struct vg_conf_ca *c = ca->conf;
		unsigned n = (unsigned)c->crl_shards;
		int rc = g->txn ? vg_txn_renew(g->txn) : -ENOENT;
		if (rc < 0) {
			vg_txn_end(g->txn);
			g->txn = NULL;
			if ((rc = vg_txn_begin(g->st, &g->txn)) < 0) {
				fprintf(stderr, "vigil-crlgen: --plan: store: %s\n", strerror(-rc));
				return 1;
			}
		}
		struct plan_opts as_is = {.what = PLAN_AS_IS};
		const struct plan_opts *sc[2] = {&as_is, o};
		int n_sc = o->what == PLAN_AS_IS ? 1 : 2;
		for (int j = 0; j < n_sc; j++) {
			struct plan_crl *crls = calloc(n + 1, sizeof(*crls));
			uint64_t(*cand)[256] = calloc(N_CAND, sizeof(*cand));
			long ms = 0;
			struct plan_src s = {
			        .txn = g->txn, .conf = c, .o = sc[j], .now = (int64_t)time(NULL)};
			if (!crls || !cand) {
				free(crls);
				free(cand);
				return 1;
			}
			rc = scenario(g, ca, &s, crls, cand, &ms, err, sizeof(err));
			if (rc < 0) {
				fprintf(stderr, "vigil-crlgen: --plan: [ca %s] %s\n", c->name, err);
				status = 1;
			} else {
				/* A shard's bytes besides its entries: the full CRL's,
				 * plus its IDP (under 600 bytes with the URL). */
				uint64_t overhead = crls[0].res.bytes - crls[0].len + 600;
				print(f, c, what_name(sc[j]), crls, ms,
				      needed(cand, overhead, (uint64_t)c->crl_max_bytes),
				      s.selected);
				if (sc[j]->what == PLAN_ISSUED && s.undated)
					fprintf(f,
					        "ca=%s scenario=%s "
					        "skipped_without_issuance_time=%" PRIu64 "\n",
					        c->name, what_name(sc[j]), s.undated);
			}
			free(crls);
			free(cand);
		}
	}
	return status;
}
