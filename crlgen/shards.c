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

int crlgen_publish_shards(struct crlgen *g, struct crlgen_ca *ca, const bool *touched,
                          uint64_t counter, struct pub_state *ps)
{
	const struct vg_conf_ca *c = ca->conf;
	const char *name = c->name;
	unsigned n = (unsigned)c->crl_shards;
	char err[1200], q[1400], werr[256];
	const char *rule = NULL;
	struct timespec t0, now;
	int rc = 0;
	unsigned selected = 0;
	uint64_t number = 0, total = 0, published = 0;
	char lastdir[512] = "";
	size_t lastdir_len = SIZE_MAX;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_REALTIME, &now);
	struct shard *sh = calloc(n + 1, sizeof(*sh));
	if (!sh) {
		log_err("event=crl_failed ca=%s kind=shards error=\"out of memory\"", name);
		return -ENOMEM;
	}
	for (unsigned k = 0; k <= n; k++) {
		sh[k].dirfd = -1;
		sh[k].f.fd = -1;
	}
	/* The files, and the highest number published under the shard URLs. */
	for (unsigned k = 1; k <= n; k++) {
		if (touched && !touched[k])
			continue;
		sh[k].on = true;
		selected++;
		if (vg_conf_shard_url(c, k, sh[k].url, sizeof(sh[k].url)) < 0) {
			rc = -ENAMETOOLONG;
			snprintf(err, sizeof(err), "shard %u: URL too long", k);
			goto fail;
		}
		const char *rel = mirror_rel(sh[k].url);
		sh[k].dirfd = open_parent(g->dirfd, rel, &sh[k].base);
		if (sh[k].dirfd < 0) {
			rc = sh[k].dirfd;
			snprintf(err, sizeof(err), "%s/%s: %s", g->conf.crl_out, rel,
			         strerror(-rc));
			goto fail;
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
			snprintf(err, sizeof(err), "%s: CRL number %s needs more than 64 bits", rel,
			         dec);
			goto fail;
		}
		if (rc == 0 && num > published)
			published = num;
		rc = 0;
	}
	if (selected == 0)
		goto done;

	uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	if ((rc = pub_next_number(g->dirfd, name, ps, published, now_us, &number)) < 0) {
		snprintf(err, sizeof(err), "no 64-bit CRL number above %" PRIu64, published);
		goto fail;
	}
	struct crl_params p = {
	        .issuer = ca->issuer,
	        .issuer_len = ca->issuer_len,
	        .akid = ca->akid,
	        .akid_len = ca->akid_len,
	        .this_update = now.tv_sec,
	        .next_update = now.tv_sec + c->crl_validity,
	        .number = number,
	        /* Boulder's choice, and the BRs' (7.2.2.1) for a CRL that covers
	         * only subscriber certificates: what a TLS issuing CA revokes. */
	        .idp_user_certs = c->profile == VG_CRL_PROFILE_TLS_BR,
	};
	if ((rc = crl_signer_check(&ca->signer, name, c->cert, p.this_update, &p.next_update, err,
	                           sizeof(err))) < 0)
		goto fail;
	ps->last_number = number;
	if ((rc = pub_state_save(g->dirfd, name, ps)) < 0) {
		snprintf(err, sizeof(err), "saving %s.state: %s", name, strerror(-rc));
		goto fail;
	}

	lint_inject_arm(c->profile == VG_CRL_PROFILE_TLS_BR);
	/* Pass 1: measure every selected shard. A shard leaves out the
	 * certificates that expired before the last publication of all the
	 * shards, which listed them (RFC 5280 §3.3). */
	struct full_src fs = {.txn = g->txn,
	                      .ca_id = c->id,
	                      .cutoff =
	                              ps->shards_this_update ? ps->shards_this_update : now.tv_sec,
	                      .conf = c};
	struct crl_entry e;
	rc = crlgen_full_begin(&fs);
	while (rc >= 0 && (rc = crlgen_full_next(&fs, &e)) > 0) {
		if (!sh[e.shard].on)
			continue;
		sh[e.shard].expect++;
		if (lint_inject_skip(&e))
			continue;
		lint_inject_entry(&e);
		size_t l = crl_entry_len(&e);
		if (l == 0) {
			rc = -EINVAL;
			break;
		}
		sh[e.shard].count++;
		sh[e.shard].len += l;
	}
	if (rc < 0) {
		snprintf(err, sizeof(err), "reading the store: %s", strerror(-rc));
		goto fail;
	}
	for (unsigned k = 1; k <= n; k++) {
		if (!sh[k].on)
			continue;
		struct crl_params pk = p;
		pk.idp = sh[k].url;
		lint_inject_params(&pk);
		if ((rc = pub_begin(&sh[k].f, sh[k].dirfd, sh[k].base)) < 0) {
			snprintf(err, sizeof(err), "%s: %s", sh[k].url, strerror(-rc));
			goto fail;
		}
		if ((rc = crl_writer_begin(&sh[k].w, sh[k].f.fd, &pk, &ca->signer, sh[k].count,
		                           sh[k].len, SHARD_BUF, werr, sizeof(werr))) < 0) {
			snprintf(err, sizeof(err), "%s: %s", sh[k].url, werr);
			goto fail;
		}
	}
	/* Pass 2: write. */
	rc = crlgen_full_begin(&fs);
	while (rc >= 0 && (rc = crlgen_full_next(&fs, &e)) > 0) {
		if (!sh[e.shard].on || lint_inject_skip(&e))
			continue;
		lint_inject_entry(&e);
		crl_writer_add(sh[e.shard].w, &e);
	}
	if (fs.it)
		vg_iter_close(fs.it);
	fs.it = NULL;
	vg_txn_trim(g->txn);
	if (rc < 0) {
		snprintf(err, sizeof(err), "reading the store: %s", strerror(-rc));
		goto fail;
	}
	for (unsigned k = 1; k <= n; k++) {
		if (!sh[k].on)
			continue;
		rc = crl_writer_end(sh[k].w, &sh[k].res, werr, sizeof(werr));
		if (rc < 0) {
			snprintf(err, sizeof(err), "%s: %s", sh[k].url, werr);
			goto fail;
		}
		/* Start writing every shard back now; the fsyncs below then
		 * wait for writes that overlap, not for one file at a time. */
		sync_file_range(sh[k].f.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		total += sh[k].res.bytes;
	}
	for (unsigned k = 1; k <= n; k++) {
		if (sh[k].on && (rc = pub_sync(&sh[k].f)) < 0) {
			snprintf(err, sizeof(err), "%s: fsync: %s", sh[k].url, strerror(-rc));
			goto fail;
		}
	}
	/* Lint every shard before any is renamed into place. */
	for (unsigned k = 1; k <= n && c->profile == VG_CRL_PROFILE_TLS_BR; k++) {
		if (!sh[k].on)
			continue;
		struct lint_expect x = {
		        .ca = ca,
		        .idp = sh[k].url,
		        .entries = sh[k].expect,
		        .previous = published,
		        .now = now.tv_sec,
		};
		if ((rc = lint_crl(sh[k].f.fd, sh[k].res.bytes, &x, &rule, werr, sizeof(werr))) <
		    0) {
			snprintf(err, sizeof(err), "%s: %s", sh[k].url, werr);
			goto fail;
		}
	}
	for (unsigned k = 1; k <= n; k++)
		if (sh[k].on &&
		    (rc = crlgen_number_ok(sh[k].dirfd, sh[k].base, number, err, sizeof(err))) < 0)
			goto fail;
	for (unsigned k = 1; k <= n; k++) {
		if (!sh[k].on)
			continue;
		if ((rc = pub_commit(&sh[k].f)) < 0) {
			snprintf(err, sizeof(err), "publishing %s: %s", sh[k].url, strerror(-rc));
			goto fail;
		}
		/* One fsync per directory, after its last rename. */
		unsigned next = k + 1;
		while (next <= n && !sh[next].on)
			next++;
		if ((next > n || !same_dir(&sh[k], &sh[next])) &&
		    (rc = pub_sync_dir(sh[k].dirfd)) < 0) {
			snprintf(err, sizeof(err), "publishing %s: %s", sh[k].url, strerror(-rc));
			goto fail;
		}
		metrics_crl_published(name, sh[k].url, sh[k].res.entries, sh[k].res.bytes, number,
		                      p.this_update, p.next_update);
	}
	if (selected == n) {
		ps->shards_this_update = p.this_update;
		if ((rc = pub_state_save(g->dirfd, name, ps)) < 0)
			log_warn("event=state_save_failed ca=%s error=\"%s\"", name, strerror(-rc));
		rc = 0;
	}
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	log_info("event=crl_published ca=%s kind=shards shards=%u of=%u number=%" PRIu64
	         " bytes=%" PRIu64 " ms=%ld counter=%" PRIu64,
	         name, selected, n, number, total, ms, counter);
done:
	shards_free(sh, n);
	return crlgen_write_ccadb(g, ca);
fail:
	shards_free(sh, n);
	if (rule) {
		metrics_lint_failed(name, rule);
		log_err("event=crl_lint_failed ca=%s kind=shards rule=%s error=%s", name, rule,
		        vg_log_quote(err, q, sizeof(q)));
	} else {
		log_err("event=crl_failed ca=%s kind=shards error=%s", name,
		        vg_log_quote(err, q, sizeof(q)));
	}
	return rc < 0 ? rc : -EIO;
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
