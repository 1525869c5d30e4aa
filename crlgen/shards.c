/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shards (partitioned CRLs) and the CCADB list.
 *
 * A CA with crl_shards = N publishes, beside its full CRL, N CRLs: shard k
 * lists the revoked certificates whose shard is k, and carries a critical
 * IssuingDistributionPoint whose one URI is crl_shard_url with %u = k, byte
 * for byte the CRL distribution point of the certificates it covers. A
 * certificate's shard is the one its own CRL distribution point named, when
 * the store learnt it (vigil-store add / import-index --certs), else
 * (serial mod N) + 1.
 *
 * Every publication of shards walks the CA's revoked index twice, whatever
 * the number of shards: once to measure every selected shard, once to
 * write them all through one crl_writer each (a SHARD_BUF output buffer
 * each: memory grows with N, never with the entries). All the shards of one
 * publication take one CRL number, reserved in NAME.state before anything
 * is written, above every number the CA used: each shard's sequence is
 * strictly increasing.
 *
 * Files mirror the URL paths under [crlgen] out: http://h/crl/ec/3.crl is
 * OUT/crl/ec/3.crl, and the full CRL is linked at crl_url's path too.
 */
#include "crlgen/internal.h"
#include "crlgen/lint.h"
#include "crlgen/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/text.h"

#define SHARD_BUF (64u * 1024u)
#define SHARD_MEMO 65536

unsigned crlgen_shard_of(const struct vg_conf_ca *c, const struct vg_serial *s,
                         const struct vg_cert *cert)
{
	unsigned n = (unsigned)c->crl_shards;
	if (n == 0)
		return 0;
	if ((cert->flags & VG_CERT_HAS_SHARD) && cert->crl_shard >= 1 && cert->crl_shard <= n)
		return cert->crl_shard;
	/* The serial is a big-endian non-negative integer. */
	unsigned r = 0;
	for (size_t i = 0; i < s->len; i++)
		r = (r * 256u + s->b[i]) % n;
	return r + 1;
}

/* open_parent creates (like mkdir -p) the directories of |rel|, a path
 * relative to |dirfd| ("crl/ec/3.crl"), and returns an fd of the last one
 * with the file's name in |*base|, or a negative errno. */
static int open_parent(int dirfd, const char *rel, const char **base)
{
	char buf[512];
	if (snprintf(buf, sizeof(buf), "%s", rel) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	char *p = buf;
	for (char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(fd);
			return -e;
		}
		int nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (nfd < 0)
			return -e;
		fd = nfd;
	}
	*base = rel + (p - buf);
	return fd;
}

/* mirror_rel returns the path of |url| relative to the out directory. */
static const char *mirror_rel(const char *url)
{
	const char *p = vg_conf_url_path(url);
	return p ? p + 1 : NULL;
}

/* One shard being published. */
struct shard {
	bool on;
	char url[512];
	int dirfd;
	const char *base;
	struct pub_file f;
	struct crl_writer *w;
	uint64_t count, len;
	uint64_t expect; /* entries the store walk gave, for the lint */
	struct crl_result res;
};

/* same_dir tells whether two shards' files are in one directory. */
static bool same_dir(const struct shard *a, const struct shard *b)
{
	const char *ra = mirror_rel(a->url), *rb = mirror_rel(b->url);
	size_t la = (size_t)(a->base - ra), lb = (size_t)(b->base - rb);
	return la == lb && !strncmp(ra, rb, la);
}

static void shards_free(struct shard *sh, unsigned n)
{
	for (unsigned k = 1; k <= n; k++) {
		crl_writer_free(sh[k].w);
		pub_abort(&sh[k].f);
		if (sh[k].dirfd >= 0)
			close(sh[k].dirfd);
	}
	free(sh);
}

/* A publication of shards in phases (internal.h): prepared (files, number),
 * fed the entries of a walk twice (measure, write), finished (signed,
 * linted, renamed). */
struct shard_pub {
	struct crlgen *g;
	struct crlgen_ca *ca;
	struct shard *sh;
	unsigned n, selected;
	struct crl_params p;
	uint64_t number, published, counter;
	struct timespec t0;
	int pass; /* 1 measuring, 2 writing */
	int rc;   /* the first error of a feed */
	char err[1200];
	const char *rule;
};

static int sp_fail(struct shard_pub *sp, int rc)
{
	char q[1400];
	const char *name = sp->ca->conf->name;
	if (sp->rule) {
		metrics_lint_failed(name, sp->rule);
		log_err("event=crl_lint_failed ca=%s kind=shards rule=%s error=%s", name, sp->rule,
		        vg_log_quote(sp->err, q, sizeof(q)));
	} else {
		log_err("event=crl_failed ca=%s kind=shards error=%s", name,
		        vg_log_quote(sp->err, q, sizeof(q)));
	}
	shards_free(sp->sh, sp->n);
	free(sp);
	return rc < 0 ? rc : -EIO;
}

int crlgen_shards_prepare(struct crlgen *g, struct crlgen_ca *ca, const bool *touched,
                          uint64_t counter, struct pub_state *ps, struct shard_pub **out)
{
	const struct vg_conf_ca *c = ca->conf;
	const char *name = c->name;
	unsigned n = (unsigned)c->crl_shards;
	struct timespec now;
	int rc = 0;
	char lastdir[512] = "";
	size_t lastdir_len = SIZE_MAX;

	*out = NULL;
	struct shard_pub *sp = calloc(1, sizeof(*sp));
	struct shard *sh = sp ? calloc(n + 1, sizeof(*sh)) : NULL;
	if (!sh) {
		free(sp);
		log_err("event=crl_failed ca=%s kind=shards error=\"out of memory\"", name);
		return -ENOMEM;
	}
	sp->g = g;
	sp->ca = ca;
	sp->sh = sh;
	sp->n = n;
	sp->counter = counter;
	clock_gettime(CLOCK_MONOTONIC, &sp->t0);
	clock_gettime(CLOCK_REALTIME, &now);
	for (unsigned k = 0; k <= n; k++) {
		sh[k].dirfd = -1;
		sh[k].f.fd = -1;
	}
	/* The files, and the highest number published under the shard URLs. */
	for (unsigned k = 1; k <= n; k++) {
		if (touched && !touched[k])
			continue;
		sh[k].on = true;
		sp->selected++;
		if (vg_conf_shard_url(c, k, sh[k].url, sizeof(sh[k].url)) < 0) {
			snprintf(sp->err, sizeof(sp->err), "shard %u: URL too long", k);
			return sp_fail(sp, -ENAMETOOLONG);
		}
		const char *rel = mirror_rel(sh[k].url);
		sh[k].dirfd = open_parent(g->dirfd, rel, &sh[k].base);
		if (sh[k].dirfd < 0) {
			rc = sh[k].dirfd;
			snprintf(sp->err, sizeof(sp->err), "%s/%s: %s", g->conf.crl_out, rel,
			         strerror(-rc));
			return sp_fail(sp, rc);
		}
		/* What a crlgen killed while publishing left in this directory
		 * (once per directory: shards usually share one). */
		size_t dl = (size_t)(sh[k].base - rel);
		if (dl != lastdir_len || strncmp(rel, lastdir, dl)) {
			pub_clean_stale(sh[k].dirfd);
			snprintf(lastdir, sizeof(lastdir), "%.*s", (int)dl, rel);
			lastdir_len = dl;
		}
		uint64_t num;
		char dec[PUB_NUMBER_DEC];
		rc = pub_crl_number(sh[k].dirfd, sh[k].base, &num, dec, sizeof(dec));
		if (rc == -ERANGE) {
			snprintf(sp->err, sizeof(sp->err),
			         "%s: CRL number %s needs more than 64 bits", rel, dec);
			return sp_fail(sp, rc);
		}
		if (rc == 0 && num > sp->published)
			sp->published = num;
	}
	uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	if ((rc = pub_next_number(g->dirfd, name, ps, sp->published, now_us, &sp->number)) < 0) {
		snprintf(sp->err, sizeof(sp->err), "no 64-bit CRL number above %" PRIu64,
		         sp->published);
		return sp_fail(sp, rc);
	}
	sp->p = (struct crl_params){
	        .issuer = ca->issuer,
	        .issuer_len = ca->issuer_len,
	        .akid = ca->akid,
	        .akid_len = ca->akid_len,
	        .this_update = now.tv_sec,
	        .next_update = now.tv_sec + c->crl_validity,
	        .number = sp->number,
	        /* Boulder's choice, and the BRs' (7.2.2.1) for a CRL that covers
	         * only subscriber certificates: what a TLS issuing CA revokes. */
	        .idp_user_certs = c->profile == VG_CRL_PROFILE_TLS_BR,
	};
	if ((rc = crl_signer_check(&ca->signer, name, c->cert, sp->p.this_update,
	                           &sp->p.next_update, sp->err, sizeof(sp->err))) < 0)
		return sp_fail(sp, rc);
	/* The number is reserved before anything is written. */
	ps->last_number = sp->number;
	if ((rc = pub_state_save(g->dirfd, name, ps)) < 0) {
		snprintf(sp->err, sizeof(sp->err), "saving %s.state: %s", name, strerror(-rc));
		return sp_fail(sp, rc);
	}
	*out = sp;
	return 0;
}

int crlgen_shards_begin(struct shard_pub *sp)
{
	char werr[256];
	if (sp->rc < 0)
		return sp->rc;
	if (++sp->pass == 1)
		return 0;
	/* Pass 2: every shard's length is known; open their writers. */
	for (unsigned k = 1; k <= sp->n; k++) {
		struct shard *sh = &sp->sh[k];
		if (!sh->on || sh->w)
			continue;
		struct crl_params pk = sp->p;
		pk.idp = sh->url;
		lint_inject_arm(sp->ca->conf->profile == VG_CRL_PROFILE_TLS_BR, false);
		lint_inject_params(&pk);
		int rc = pub_begin(&sh->f, sh->dirfd, sh->base);
		if (rc < 0) {
			snprintf(sp->err, sizeof(sp->err), "%s: %s", sh->url, strerror(-rc));
			return sp->rc = rc;
		}
		if ((rc = crl_writer_begin(&sh->w, sh->f.fd, &pk, &sp->ca->signer, sh->count,
		                           sh->len, SHARD_BUF, werr, sizeof(werr))) < 0) {
			snprintf(sp->err, sizeof(sp->err), "%s: %s", sh->url, werr);
			return sp->rc = rc;
		}
	}
	return 0;
}

void crlgen_shards_feed(struct shard_pub *sp, const struct crl_entry *in)
{
	if (sp->rc < 0 || !sp->sh[in->shard].on)
		return;
	struct shard *sh = &sp->sh[in->shard];
	struct crl_entry e = *in;
	lint_inject_arm(sp->ca->conf->profile == VG_CRL_PROFILE_TLS_BR, false);
	if (sp->pass == 1)
		sh->expect++;
	if (lint_inject_skip(&e))
		return;
	lint_inject_entry(&e);
	if (sp->pass == 1) {
		size_t l = crl_entry_len(&e);
		if (l == 0) {
			snprintf(sp->err, sizeof(sp->err), "an entry cannot be encoded");
			sp->rc = -EINVAL;
			return;
		}
		sh->count++;
		sh->len += l;
	} else {
		crl_writer_add(sh->w, &e);
	}
}

int crlgen_shards_finish(struct shard_pub *sp, struct pub_state *ps)
{
	struct crlgen *g = sp->g;
	const struct vg_conf_ca *c = sp->ca->conf;
	const char *name = c->name;
	struct shard *sh = sp->sh;
	unsigned n = sp->n;
	uint64_t total = 0;
	char werr[256];
	int rc = sp->rc;
	if (rc < 0)
		return sp_fail(sp, rc);
	if (sp->selected == 0)
		goto done;
	if (sp->pass < 2) {
		/* Fed nothing (an empty walk never begins pass 2): open now. */
		sp->pass = 1;
		if ((rc = crlgen_shards_begin(sp)) < 0)
			return sp_fail(sp, rc);
	}
	for (unsigned k = 1; k <= n; k++) {
		if (!sh[k].on)
			continue;
		rc = crl_writer_end(sh[k].w, &sh[k].res, werr, sizeof(werr));
		if (rc < 0) {
			snprintf(sp->err, sizeof(sp->err), "%s: %s", sh[k].url, werr);
			return sp_fail(sp, rc);
		}
		/* Start writing every shard back now; the fsyncs below then
		 * wait for writes that overlap, not for one file at a time. */
		sync_file_range(sh[k].f.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		total += sh[k].res.bytes;
	}
	for (unsigned k = 1; k <= n; k++) {
		if (sh[k].on && (rc = pub_sync(&sh[k].f)) < 0) {
			snprintf(sp->err, sizeof(sp->err), "%s: fsync: %s", sh[k].url,
			         strerror(-rc));
			return sp_fail(sp, rc);
		}
	}
	/* Lint every shard before any is renamed into place. */
	for (unsigned k = 1; k <= n && c->profile == VG_CRL_PROFILE_TLS_BR; k++) {
		if (!sh[k].on)
			continue;
		struct lint_expect x = {
		        .ca = sp->ca,
		        .idp = sh[k].url,
		        .entries = sh[k].expect,
		        .previous = sp->published,
		        .now = sp->p.this_update,
		};
		if ((rc = lint_crl(sh[k].f.fd, sh[k].res.bytes, &x, &sp->rule, werr,
		                   sizeof(werr))) < 0) {
			snprintf(sp->err, sizeof(sp->err), "%s: %s", sh[k].url, werr);
			return sp_fail(sp, rc);
		}
	}
	for (unsigned k = 1; k <= n; k++)
		if (sh[k].on && (rc = crlgen_number_ok(sh[k].dirfd, sh[k].base, sp->number, sp->err,
		                                       sizeof(sp->err))) < 0)
			return sp_fail(sp, rc);
	for (unsigned k = 1; k <= n; k++) {
		if (!sh[k].on)
			continue;
		if ((rc = pub_commit(&sh[k].f)) < 0) {
			snprintf(sp->err, sizeof(sp->err), "publishing %s: %s", sh[k].url,
			         strerror(-rc));
			return sp_fail(sp, rc);
		}
		/* One fsync per directory, after its last rename. */
		unsigned next = k + 1;
		while (next <= n && !sh[next].on)
			next++;
		if ((next > n || !same_dir(&sh[k], &sh[next])) &&
		    (rc = pub_sync_dir(sh[k].dirfd)) < 0) {
			snprintf(sp->err, sizeof(sp->err), "publishing %s: %s", sh[k].url,
			         strerror(-rc));
			return sp_fail(sp, rc);
		}
		metrics_crl_published(name, sh[k].url, sh[k].res.entries, sh[k].res.bytes,
		                      sp->number, sp->p.this_update, sp->p.next_update);
	}
	if (sp->selected == n) {
		ps->shards_this_update = sp->p.this_update;
		if ((rc = pub_state_save(g->dirfd, name, ps)) < 0)
			log_warn("event=state_save_failed ca=%s error=\"%s\"", name, strerror(-rc));
	}
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (long)((t1.tv_sec - sp->t0.tv_sec) * 1000 +
	                 (t1.tv_nsec - sp->t0.tv_nsec) / 1000000);
	log_info("event=crl_published ca=%s kind=shards shards=%u of=%u number=%" PRIu64
	         " bytes=%" PRIu64 " ms=%ld counter=%" PRIu64,
	         name, sp->selected, n, sp->number, total, ms, sp->counter);
done:;
	struct crlgen_ca *ca = sp->ca;
	shards_free(sp->sh, sp->n);
	free(sp);
	return crlgen_write_ccadb(g, ca);
}

void crlgen_shards_abort(struct shard_pub *sp)
{
	if (!sp)
		return;
	shards_free(sp->sh, sp->n);
	free(sp);
}

int crlgen_publish_shards(struct crlgen *g, struct crlgen_ca *ca, const bool *touched,
                          uint64_t counter, struct pub_state *ps)
{
	struct shard_pub *sp;
	int rc = crlgen_shards_prepare(g, ca, touched, counter, ps, &sp);
	if (rc < 0)
		return rc;
	/* A shard leaves out the certificates that expired before the last
	 * publication of all the shards, which listed them (RFC 5280 §3.3). */
	struct full_src fs = {.txn = g->txn,
	                      .ca_id = ca->conf->id,
	                      .cutoff = crlgen_shards_cutoff(ps, sp->p.this_update),
	                      .conf = ca->conf};
	/* A few shards after a change: their entries are kept from the first
	 * walk (up to SHARD_MEMO entries, 4 MiB) so that the second pass need
	 * not walk the store again; beyond that, it does. */
	struct crl_entry e, *memo = NULL;
	size_t n_memo = 0;
	bool memo_ok = touched && sp->selected < sp->n &&
	               (memo = malloc(SHARD_MEMO * sizeof(*memo))) != NULL;
	for (int pass = 1; pass <= 2 && rc >= 0 && sp->selected; pass++) {
		if ((rc = crlgen_shards_begin(sp)) < 0)
			break;
		if (pass == 2 && memo_ok) {
			for (size_t i = 0; i < n_memo; i++)
				crlgen_shards_feed(sp, &memo[i]);
			break;
		}
		rc = crlgen_full_begin(&fs);
		while (rc >= 0 && (rc = crlgen_full_next(&fs, &e)) > 0) {
			crlgen_shards_feed(sp, &e);
			if (pass == 1 && memo_ok && sp->sh[e.shard].on) {
				if (n_memo == SHARD_MEMO)
					memo_ok = false;
				else
					memo[n_memo++] = e;
			}
		}
	}
	free(memo);
	if (fs.it)
		vg_iter_close(fs.it);
	vg_txn_trim(g->txn);
	if (rc < 0 && sp->rc == 0) {
		snprintf(sp->err, sizeof(sp->err), "reading the store: %s", strerror(-rc));
		sp->rc = rc;
	}
	return crlgen_shards_finish(sp, ps);
}

int64_t crlgen_shards_cutoff(const struct pub_state *ps, int64_t now)
{
	return ps->shards_this_update ? ps->shards_this_update : now;
}

int crlgen_mirror_full(struct crlgen *g, struct crlgen_ca *ca)
{
	const struct vg_conf_ca *c = ca->conf;
	if (!c->crl_url)
		return 0;
	char top[320];
	snprintf(top, sizeof(top), "%s.crl", c->name);
	const char *rel = mirror_rel(c->crl_url), *base;
	if (!strcmp(rel, top))
		return 0;
	int dfd = open_parent(g->dirfd, rel, &base);
	if (dfd < 0)
		return dfd;
	char tmp[600];
	/* Named as pub_begin names its files, so that pub_clean_stale removes
	 * one a killed crlgen left. */
	static unsigned seq = 1u << 31;
	snprintf(tmp, sizeof(tmp), ".%s.tmp-%ld-%u", base, (long)getpid(), seq++);
	pub_clean_stale(dfd);
	unlinkat(dfd, tmp, 0);
	int rc = 0;
	if (linkat(g->dirfd, top, dfd, tmp, 0) < 0 || renameat(dfd, tmp, dfd, base) < 0 ||
	    fsync(dfd) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	if (rc < 0)
		log_err("event=crl_mirror_failed ca=%s file=%s error=\"%s\"", c->name, rel,
		        strerror(-rc));
	return rc;
}

/* json_str appends |s| as a JSON string. */
static size_t json_str(char *out, size_t cap, size_t o, const char *s)
{
	if (o < cap)
		out[o] = '"';
	o++;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[8];
		int l;
		if (ch == '"' || ch == '\\')
			l = snprintf(esc, sizeof(esc), "\\%c", ch);
		else if (ch < 0x20)
			l = snprintf(esc, sizeof(esc), "\\u%04x", ch);
		else
			l = snprintf(esc, sizeof(esc), "%c", ch);
		for (int i = 0; i < l; i++, o++)
			if (o < cap)
				out[o] = esc[i];
	}
	if (o < cap)
		out[o] = '"';
	return o + 1;
}

int crlgen_write_ccadb(struct crlgen *g, struct crlgen_ca *ca)
{
	const struct vg_conf_ca *c = ca->conf;
	if (!c->crl_url && !c->crl_shards)
		return 0;
	size_t cap = 600 * (size_t)(c->crl_shards + 1) + 16;
	char *buf = malloc(cap), url[512];
	if (!buf)
		return -ENOMEM;
	size_t o = 0;
	buf[o++] = '[';
	if (c->crl_shards == 0) {
		o = json_str(buf, cap, o, c->crl_url);
	} else {
		for (int k = 1; k <= c->crl_shards; k++) {
			vg_conf_shard_url(c, (unsigned)k, url, sizeof(url));
			if (k > 1)
				buf[o++] = ',';
			o = json_str(buf, cap, o, url);
		}
	}
	buf[o++] = ']';
	buf[o++] = '\n';
	char fname[320];
	snprintf(fname, sizeof(fname), "%s.ccadb.json", c->name);
	struct pub_file f = {.fd = -1};
	int rc = pub_begin(&f, g->dirfd, fname);
	ssize_t w = rc == 0 ? write(f.fd, buf, o) : -1;
	if (rc == 0 && (w != (ssize_t)o))
		rc = w < 0 ? -errno : -EIO;
	if (rc == 0 && (rc = pub_sync(&f)) == 0 && (rc = pub_commit(&f)) == 0)
		rc = pub_sync_dir(g->dirfd);
	pub_abort(&f);
	free(buf);
	if (rc < 0)
		log_err("event=ccadb_list_failed ca=%s file=%s error=\"%s\"", c->name, fname,
		        strerror(-rc));
	return rc;
}
