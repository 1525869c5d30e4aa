/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-crlgen --check: see check.h. The HTTP client is a small blocking
 * one (HTTP/1.1 GET, Connection: close, a Content-Length or a body to the
 * close; no chunked encoding, no TLS: CRL URLs are http), bounded by one
 * deadline per URL. The fetched CRL is parsed by OpenSSL, independently of
 * the encoder that made it.
 */
#include "crlgen/check.h"
#include "crlgen/crlgen.h"
#include "crlgen/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/text.h"

/* What a fetch gave. */
struct fetched {
	int status;
	char content_type[128];
	int64_t expires; /* 0: no Expires header */
	uint8_t *body;
	size_t len;
	double seconds;
};

static double mono(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int wait_fd(int fd, short ev, double deadline)
{
	double left = deadline - mono();
	if (left <= 0)
		return -ETIMEDOUT;
	struct pollfd p = {.fd = fd, .events = ev};
	int n = poll(&p, 1, (int)(left * 1000) + 1);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* http_get fetches |url| (http://host[:port]/path). Returns 0 or a negative
 * errno with the reason in |err|. */
static int http_get(const char *url, size_t max, struct fetched *r, char *err, size_t errlen)
{
	char host[256], port[8] = "80";
	const char *path = vg_conf_url_path(url);
	memset(r, 0, sizeof(*r));
	if (!path) {
		snprintf(err, errlen, "not an http:// URL");
		return -EINVAL;
	}
	const char *h = url + 7;
	size_t hl = (size_t)(path - h);
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "host too long");
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	char *colon = strrchr(host, ':');
	if (colon && !strchr(host, ']')) {
		snprintf(port, sizeof(port), "%s", colon + 1);
		*colon = '\0';
	}
	double t0 = mono(), deadline = t0 + CHECK_TIMEOUT_S;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "resolving %s: %s", host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		snprintf(err, errlen, "socket: %s", strerror(-rc));
		return rc;
	}
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS ? -errno : 0;
	freeaddrinfo(ai);
	if (rc == 0 && (rc = wait_fd(fd, POLLOUT, deadline)) == 0) {
		int e = 0;
		socklen_t el = sizeof(e);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
		rc = -e;
	}
	if (rc < 0) {
		snprintf(err, errlen, "connecting to %s:%s: %s", host, port, strerror(-rc));
		close(fd);
		return rc;
	}
	char req[1200];
	int n = snprintf(req, sizeof(req),
	                 "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: vigil-crlgen-check\r\n"
	                 "Connection: close\r\n\r\n",
	                 path, (int)hl, h);
	for (int off = 0; off < n;) {
		if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
			break;
		ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			break;
		}
		off += w > 0 ? (int)w : 0;
	}
	size_t cap = 65536, len = 0, hdr_end = 0, want = SIZE_MAX;
	uint8_t *buf = rc == 0 ? malloc(cap) : NULL;
	if (rc == 0 && !buf)
		rc = -ENOMEM;
	while (rc == 0) {
		if (len == cap) {
			if (cap >= max + 65536) {
				rc = -EFBIG;
				break;
			}
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		if ((rc = wait_fd(fd, POLLIN, deadline)) < 0)
			break;
		ssize_t got = recv(fd, buf + len, cap - len, 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0) {
			rc = -errno;
			break;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (!hdr_end) {
			uint8_t *e = memmem(buf, len, "\r\n\r\n", 4);
			if (!e)
				continue;
			hdr_end = (size_t)(e - buf) + 4;
			/* Headers, case-insensitively, one per line. */
			buf[hdr_end - 2] = '\0';
			char *line = (char *)buf, *next;
			if (sscanf(line, "HTTP/1.%*d %d", &r->status) != 1) {
				rc = -EPROTO;
				break;
			}
			for (; (next = strstr(line, "\r\n")) != NULL; line = next + 2) {
				*next = '\0';
				char *v = strchr(line, ':');
				if (!v)
					continue;
				*v++ = '\0';
				while (*v == ' ')
					v++;
				if (!strcasecmp(line, "Content-Type"))
					snprintf(r->content_type, sizeof(r->content_type), "%s", v);
				else if (!strcasecmp(line, "Content-Length"))
					want = (size_t)strtoull(v, NULL, 10);
				else if (!strcasecmp(line, "Expires")) {
					struct tm tm = {0};
					if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm))
						r->expires = (int64_t)timegm(&tm);
				} else if (!strcasecmp(line, "Transfer-Encoding") &&
				           strcasecmp(v, "identity")) {
					rc = -EPROTONOSUPPORT;
				}
			}
		}
		if (hdr_end && want != SIZE_MAX && len - hdr_end >= want)
			break;
	}
	close(fd);
	r->seconds = mono() - t0;
	if (rc == 0 && !hdr_end)
		rc = -EPROTO;
	if (rc == 0 && want != SIZE_MAX && len - hdr_end < want)
		rc = -EPIPE;
	if (rc < 0) {
		free(buf);
		snprintf(err, errlen, "fetching %.300s: %s", url,
		         rc == -ETIMEDOUT         ? "timed out"
		         : rc == -EPROTO          ? "not an HTTP response"
		         : rc == -EPROTONOSUPPORT ? "chunked transfer encoding"
		         : rc == -EPIPE           ? "body cut short"
		                                  : strerror(-rc));
		return rc;
	}
	memmove(buf, buf + hdr_end, len - hdr_end);
	r->body = buf;
	r->len = len - hdr_end;
	return 0;
}

/* One URL's checks. */
struct result {
	const char *failed[16];
	char detail[16][256];
	int n_failed;
	int64_t age, ahead;
	uint64_t missing;
	double seconds;
};

static void fail(struct result *r, const char *check, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void fail(struct result *r, const char *check, const char *fmt, ...)
{
	if (r->n_failed == 16)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->detail[r->n_failed], sizeof(r->detail[0]), fmt, ap);
	va_end(ap);
	r->failed[r->n_failed++] = check;
}

static int asn1_cmp(const void *a, const void *b)
{
	const ASN1_INTEGER *x = *(const ASN1_INTEGER *const *)a;
	const ASN1_INTEGER *y = *(const ASN1_INTEGER *const *)b;
	return ASN1_INTEGER_cmp(x, y);
}

static int64_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	return t && ASN1_TIME_to_tm(t, &tm) ? (int64_t)timegm(&tm) : 0;
}

/* check_entries counts the revoked, unexpired certificates of the store,
 * revoked before |this_update|, that |crl| (shard |shard|, 0: full) lacks. */
static int check_entries(struct crlgen *g, struct crlgen_ca *ca, X509_CRL *crl, unsigned shard,
                         int64_t this_update, int64_t now, uint64_t *missing)
{
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	int n = rev ? sk_X509_REVOKED_num(rev) : 0;
	const ASN1_INTEGER **v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		v[i] = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rev, i));
	qsort(v, (size_t)n, sizeof(*v), asn1_cmp);
	struct vg_iter *it;
	int rc = vg_iter_open(g->txn, ca->conf->id, VG_ITER_REVOKED, &it);
	struct vg_serial s;
	struct vg_cert c;
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	*missing = 0;
	uint64_t walked = 0;
	while (rc >= 0 && ai && (rc = vg_iter_next(it, &s, &c)) > 0) {
		if (++walked % 65536 == 0)
			vg_txn_trim(g->txn);
		if (c.status != VG_STATUS_REVOKED || c.revoked_at >= this_update ||
		    ((c.flags & VG_CERT_HAS_NOT_AFTER) && c.not_after < now))
			continue;
		if (shard && crlgen_shard_of(ca->conf, &s, &c) != shard)
			continue;
		ASN1_STRING_set(ai, s.b, s.len);
		const ASN1_INTEGER *key = ai;
		if (!bsearch(&key, v, (size_t)n, sizeof(*v), asn1_cmp))
			(*missing)++;
	}
	if (rc >= 0)
		vg_iter_close(it);
	ASN1_INTEGER_free(ai);
	free(v);
	vg_txn_trim(g->txn);
	return rc < 0 ? rc : 0;
}

/* check_url fetches |url| (CRL |shard| of |ca|, 0: the full CRL, published
 * locally as |local| under |dirfd|) and runs the checks. */
static void check_url(struct crlgen *g, struct crlgen_ca *ca, const char *url, unsigned shard,
                      int dirfd, const char *local, const char *url_base, struct result *r)
{
	char fetch_url[1024], err[512];
	const char *path = vg_conf_url_path(url);
	if (url_base)
		snprintf(fetch_url, sizeof(fetch_url), "%s%s", url_base, path);
	else
		snprintf(fetch_url, sizeof(fetch_url), "%s", url);
	struct fetched f;
	int64_t now = (int64_t)time(NULL);
	int64_t period = crlgen_period_ms(g, (int)(ca - g->cas)) / 1000;
	int64_t margin = period / 2 < 900 ? (period / 2 > 0 ? period / 2 : 1) : 900;
	size_t max = (size_t)ca->conf->crl_max_bytes * 8 + (64u << 20);
	if (http_get(fetch_url, max, &f, err, sizeof(err)) < 0) {
		fail(r, "fetch", "%s", err);
		return;
	}
	r->seconds = f.seconds;
	X509_CRL *crl = NULL;
	if (f.status != 200) {
		fail(r, "fetch", "HTTP status %d", f.status);
		goto out;
	}
	if (strcasecmp(f.content_type, "application/pkix-crl"))
		fail(r, "content_type", "Content-Type is \"%s\"", f.content_type);
	const unsigned char *q = f.body;
	crl = d2i_X509_CRL(NULL, &q, (long)f.len);
	if (!crl || q != f.body + f.len) {
		fail(r, "der", "not one DER CRL (%zu bytes)", f.len);
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca->cert)) ||
	    X509_CRL_verify(crl, X509_get0_pubkey(ca->cert)) != 1)
		fail(r, "signature", "does not verify with %s", ca->conf->cert);
	/* IDP */
	int crit = 0;
	ISSUING_DIST_POINT *idp =
	        X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
	if (shard) {
		const GENERAL_NAME *gn = NULL;
		if (idp && idp->distpoint && idp->distpoint->type == 0 &&
		    sk_GENERAL_NAME_num(idp->distpoint->name.fullname) == 1)
			gn = sk_GENERAL_NAME_value(idp->distpoint->name.fullname, 0);
		if (!gn || gn->type != GEN_URI || !crit ||
		    (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier) != strlen(url) ||
		    memcmp(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), url,
		           strlen(url)))
			fail(r, "idp", "no critical IDP naming exactly %s", url);
	} else if (idp || crit != -1) {
		fail(r, "idp", "the full CRL carries an IDP");
	}
	ISSUING_DIST_POINT_free(idp);
	/* Times */
	int64_t tu = asn1_time(X509_CRL_get0_lastUpdate(crl));
	int64_t nu = asn1_time(X509_CRL_get0_nextUpdate(crl));
	r->age = now - tu;
	r->ahead = nu - now;
	if (now - tu > period + margin)
		fail(r, "this_update",
		     "thisUpdate is %" PRId64 " s old (period %" PRId64 " s + margin %" PRId64
		     " s)",
		     now - tu, period, margin);
	if (!nu || nu <= now)
		fail(r, "next_update", "expired: nextUpdate passed %" PRId64 " s ago", now - nu);
	else if (nu - now < period)
		fail(r, "next_update",
		     "nextUpdate is only %" PRId64 " s ahead (period %" PRId64 " s)", nu - now,
		     period);
	if (f.expires && nu && f.expires > nu)
		fail(r, "expires", "Expires is %" PRId64 " s after nextUpdate", f.expires - nu);
	/* Number */
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	uint64_t served = 0, published = 0;
	char dec[PUB_NUMBER_DEC];
	if (!num || ASN1_INTEGER_get_uint64(&served, num) != 1)
		fail(r, "crl_number", "no cRLNumber of 64 bits");
	else if (pub_crl_number(dirfd, local, &published, dec, sizeof(dec)) == 0 &&
	         served < published)
		fail(r, "crl_number", "number %" PRIu64 " is below %" PRIu64 ", published in %s",
		     served, published, local);
	ASN1_INTEGER_free(num);
	/* Entries */
	if (check_entries(g, ca, crl, shard, tu, now, &r->missing) < 0)
		fail(r, "entries", "the store could not be read");
	else if (r->missing)
		fail(r, "entries", "%" PRIu64 " revoked certificates of the store are missing",
		     r->missing);
out:
	X509_CRL_free(crl);
	free(f.body);
	ERR_clear_error();
}

/* read_list reads NAME.ccadb.json into |out| (a NUL-separated list). */
static int read_list(int dirfd, const char *name, char *out, size_t cap, int *n)
{
	char fname[320], buf[65536 * 2];
	snprintf(fname, sizeof(fname), "%s.ccadb.json", name);
	int fd = openat(dirfd, fname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0)
		return -EIO;
	buf[len] = '\0';
	*n = 0;
	size_t o = 0;
	char *p = buf;
	while (*p == ' ' || *p == '\n')
		p++;
	if (*p++ != '[')
		return -EBADMSG;
	for (;;) {
		while (*p == ' ' || *p == '\n' || *p == ',')
			p++;
		if (*p == ']')
			return 0;
		if (*p++ != '"')
			return -EBADMSG;
		char *e = strchr(p, '"');
		if (!e || o + (size_t)(e - p) + 1 > cap)
			return -EBADMSG;
		memcpy(out + o, p, (size_t)(e - p));
		o += (size_t)(e - p);
		out[o++] = '\0';
		(*n)++;
		p = e + 1;
	}
}

static void metric(FILE *o, const char *name, const char *ca, const char *url, const char *extra,
                   double v)
{
	fprintf(o, "%s{ca=\"%s\",url=\"%s\"%s} %.17g\n", name, ca, url, extra, v);
}

/* check_one checks the CRL served at |u|, a URL of CA |ca| (a shard's, or
 * crl_url: the full CRL), and prints its metrics. Returns 1 when a check
 * failed, else 0. */
static int check_one(struct crlgen *g, struct crlgen_ca *ca, const char *u, const char *url_base,
                     FILE *o)
{
	const struct vg_conf_ca *c = ca->conf;
	unsigned shard = c->crl_shards ? vg_conf_shard_of_url(c, u, strlen(u)) : 0;
	const char *rel = vg_conf_url_path(u);
	char local[600];
	snprintf(local, sizeof(local), "%s.crl", c->name);
	if (shard && rel)
		snprintf(local, sizeof(local), "%s", rel + 1);
	struct result r = {0};
	if (!rel)
		fail(&r, "fetch", "not an http:// URL");
	else
		check_url(g, ca, u, shard, g->dirfd, local, url_base, &r);
	metric(o, "vigil_crl_check_ok", c->name, u, "", r.n_failed == 0);
	for (int j = 0; j < r.n_failed; j++) {
		char lbl[64], q[600];
		snprintf(lbl, sizeof(lbl), ",check=\"%s\"", r.failed[j]);
		metric(o, "vigil_crl_check_failed", c->name, u, lbl, 1);
		log_err("event=crl_check_failed ca=%s url=%s check=%s detail=%s", c->name, u,
		        r.failed[j], vg_log_quote(r.detail[j], q, sizeof(q)));
	}
	metric(o, "vigil_crl_check_age_seconds", c->name, u, "", (double)r.age);
	metric(o, "vigil_crl_check_next_update_seconds", c->name, u, "", (double)r.ahead);
	metric(o, "vigil_crl_check_missing_entries", c->name, u, "", (double)r.missing);
	metric(o, "vigil_crl_check_fetch_seconds", c->name, u, "", r.seconds);
	return r.n_failed ? 1 : 0;
}

int crlgen_check(struct crlgen *g, const char *url_base, FILE *o)
{
	int status = 0;
	if (g->txn)
		vg_txn_renew(g->txn);
	else if (vg_txn_begin(g->st, &g->txn) < 0) {
		fprintf(stderr, "vigil-crlgen: --check: the store cannot be read\n");
		return 1;
	}
	fputs("# HELP vigil_crl_check_ok 1 when the CRL served at the URL passed every check.\n"
	      "# TYPE vigil_crl_check_ok gauge\n"
	      "# HELP vigil_crl_check_failed 1 for each check the CRL served at the URL failed.\n"
	      "# TYPE vigil_crl_check_failed gauge\n"
	      "# HELP vigil_crl_check_age_seconds Seconds since the served CRL's thisUpdate.\n"
	      "# TYPE vigil_crl_check_age_seconds gauge\n"
	      "# HELP vigil_crl_check_next_update_seconds Seconds until its nextUpdate.\n"
	      "# TYPE vigil_crl_check_next_update_seconds gauge\n"
	      "# HELP vigil_crl_check_missing_entries Revoked certificates it lacks.\n"
	      "# TYPE vigil_crl_check_missing_entries gauge\n"
	      "# HELP vigil_crl_check_fetch_seconds Time to fetch it.\n"
	      "# TYPE vigil_crl_check_fetch_seconds gauge\n"
	      "# HELP vigil_crl_check_ccadb_list_ok 1 when NAME.ccadb.json lists exactly the "
	      "configured URLs.\n"
	      "# TYPE vigil_crl_check_ccadb_list_ok gauge\n",
	      o);
	for (int i = 0; i < g->n; i++) {
		struct crlgen_ca *ca = &g->cas[i];
		const struct vg_conf_ca *c = ca->conf;
		if (!c->crl_url && !c->crl_shards)
			continue;
		static char list[257 * 512];
		int n = 0;
		int rc = read_list(g->dirfd, c->name, list, sizeof(list), &n);
		bool list_ok = rc == 0 && n == (c->crl_shards ? c->crl_shards : 1);
		const char *u = list;
		for (int k = 1; list_ok && k <= n; k++, u += strlen(u) + 1) {
			char want[512];
			if (c->crl_shards)
				vg_conf_shard_url(c, (unsigned)k, want, sizeof(want));
			else
				snprintf(want, sizeof(want), "%s", c->crl_url);
			list_ok = !strcmp(u, want);
		}
		fprintf(o, "vigil_crl_check_ccadb_list_ok{ca=\"%s\"} %d\n", c->name, list_ok);
		if (!list_ok) {
			status = 1;
			log_err("event=crl_check_failed ca=%s check=ccadb_list "
			        "detail=\"%s.ccadb.json "
			        "does not list exactly the configured URLs\"",
			        c->name, c->name);
			if (rc < 0)
				n = 0; /* no list: only crl_url, below */
		}
		/* The full CRL at crl_url too when the list does not hold it (a
		 * CA with shards, a list that cannot be read): certificates
		 * issued before sharding, or whose CDP names crl_url, point at
		 * it, and relying parties fetch it. */
		bool full_listed = false;
		u = list;
		for (int k = 1; k <= n; k++, u += strlen(u) + 1) {
			if (c->crl_url && !strcmp(u, c->crl_url))
				full_listed = true;
			if (check_one(g, ca, u, url_base, o) > 0)
				status = 1;
		}
		if (c->crl_url && !full_listed && check_one(g, ca, c->crl_url, url_base, o) > 0)
			status = 1;
	}
	fflush(o);
	return status;
}
