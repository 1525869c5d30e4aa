/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration file: the parse (libinih) and its dispatch by section,
 * the [store], [responder], [crlgen] and [ca NAME] keys, the defaults, and
 * the checks across sections (one CA identity, URLs unique, secrets never in
 * the file). conf_sections.c holds the value readers, the [store] retention
 * keys and the [edge] and [replicate] sections; vigil.conf(5) is checked
 * against the keys both files accept (tests/integration/test_manuals.py).
 */
#include "common/conf_int.h"
#include "common/pki.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

void conf_set_err(struct parse_ctx *p, const char *fmt, ...)
{
	if (p->msg[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

/* conf_resolve_path makes |v| absolute against the config file's directory. */
char *conf_resolve_path(const struct vg_conf *c, const char *v)
{
	char *r = NULL;
	if (v[0] == '/' || strncasecmp(v, "pkcs11:", 7) == 0)
		return strdup(v);
	if (asprintf(&r, "%s/%s", c->dir, v) < 0)
		return NULL;
	return r;
}

static bool valid_ca_name(const char *s)
{
	if (!*s || strlen(s) > 63)
		return false;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

static struct vg_conf_ca *ca_for(struct parse_ctx *p, const char *name)
{
	struct vg_conf *c = p->c;
	for (int i = 0; i < c->n_cas; i++)
		if (strcmp(c->cas[i].name, name) == 0)
			return &c->cas[i];
	if (c->n_cas == VG_CONF_MAX_CAS) {
		conf_set_err(p, "too many [ca] sections (at most %d)", VG_CONF_MAX_CAS);
		return NULL;
	}
	if (!valid_ca_name(name)) {
		conf_set_err(p, "[ca %s]: a CA name is 1 to 63 of A-Z a-z 0-9 . _ -", name);
		return NULL;
	}
	uint32_t id = vg_ca_id(name);
	for (int i = 0; i < c->n_cas; i++)
		if (c->cas[i].id == id) {
			conf_set_err(p, "[ca %s]: name collides with [ca %s]; rename one", name,
			             c->cas[i].name);
			return NULL;
		}
	struct vg_conf_ca *ca = &c->cas[c->n_cas++];
	memset(ca, 0, sizeof(*ca));
	ca->name = strdup(name);
	ca->id = id;
	ca->not_issued = VG_NOT_ISSUED_UNKNOWN;
	ca->ocsp_validity = 4 * DAY;
	ca->crl_validity = 7 * DAY;
	return ca;
}

/* handle_validity reads an OCSP answer's or a CRL's validity: |lo| (|lo_s|
 * seconds) to ten days, the Baseline Requirements' section |br|. */
static int handle_validity(struct parse_ctx *p, const char *caname, const char *k, const char *v,
                           const char *lo, int64_t lo_s, const char *br, int64_t *dst)
{
	int64_t ms;
	if (!conf_parse_duration_ms(v, &ms) || ms < lo_s * 1000 || ms > VG_VALIDITY_MAX * 1000LL) {
		conf_set_err(p, "[ca %s] %s = %s: must be %s to 10d (Baseline Requirements %s)",
		             caname, k, v, lo, br);
		return 0;
	}
	*dst = ms / 1000;
	return 1;
}

const char *vg_conf_url_path(const char *url)
{
	if (strncmp(url, "http://", 7) != 0)
		return NULL;
	const char *host = url + 7;
	const char *path = strchr(host, '/');
	if (!path || path == host)
		return NULL;
	return path;
}

/* check_crl_url refuses a CRL URL that is not a plain http:// URL with a
 * host and a path that can be mirrored under [crlgen] out (Baseline
 * Requirements 7.1.2.11.2: CRL distribution points are http URIs); a shard
 * URL has exactly one %u. */
static bool check_crl_url(struct parse_ctx *p, const char *caname, const char *k, const char *v,
                          bool shard)
{
	const char *path = vg_conf_url_path(v);
	const char *why = NULL;
	const char *u = strstr(v, "%u");
	if (!path)
		why = "not an http:// URL with a host and a path";
	else if (strlen(v) > 400)
		why = "longer than 400 bytes";
	else if (strpbrk(v, "?# \t\\\"") || strstr(path, "/../") || strstr(path, "/./") ||
	         strstr(path, "//") || path[strlen(path) - 1] == '/')
		why = "the path must name a file (no query, fragment, blank, //, . or ..)";
	else if (shard && (!u || u < path || strstr(u + 2, "%u")))
		why = "needs exactly one %u (the shard number) in its path";
	else if (strchr(v, '%') && (!shard || strchr(v, '%') != u || strchr(u + 1, '%')))
		why = "has a % other than the shard number's %u";
	if (why) {
		conf_set_err(p, "[ca %s] %s = %s: %s", caname, k, v, why);
		return false;
	}
	return true;
}

static int handle_ca(struct parse_ctx *p, const char *caname, const char *k, const char *v)
{
	struct vg_conf *c = p->c;
	struct vg_conf_ca *ca = ca_for(p, caname);
	if (!ca)
		return 0;
	if (!strcmp(k, "cert"))
		SET_PATH(ca->cert, v);
	else if (!strcmp(k, "ocsp_cert"))
		SET_PATH(ca->ocsp_cert, v);
	else if (!strcmp(k, "ocsp_key"))
		SET_PATH(ca->ocsp_key, v);
	else if (!strcmp(k, "crl_key"))
		SET_PATH(ca->crl_key, v);
	else if (!strcmp(k, "crl_url")) {
		if (!check_crl_url(p, caname, k, v, false))
			return 0;
		SET_STR(ca->crl_url, v);
	} else if (!strcmp(k, "crl_shard_url")) {
		if (!check_crl_url(p, caname, k, v, true))
			return 0;
		SET_STR(ca->crl_shard_url, v);
	} else if (!strcmp(k, "crl_shards")) {
		if (!conf_parse_int(v, 0, VG_CRL_SHARDS_MAX, &ca->crl_shards)) {
			conf_set_err(p, "[ca %s] crl_shards = %s: expected an integer from 0 to %d",
			             caname, v, VG_CRL_SHARDS_MAX);
			return 0;
		}
	} else if (!strcmp(k, "crl_max_bytes")) {
		int mb;
		if (!conf_parse_int(v, 1, 2000000000, &mb)) {
			conf_set_err(p,
			             "[ca %s] crl_max_bytes = %s: expected bytes, 1 to 2000000000",
			             caname, v);
			return 0;
		}
		ca->crl_max_bytes = mb;
	} else if (!strcmp(k, "profile")) {
		if (!strcmp(v, "tls-br"))
			ca->profile = VG_CRL_PROFILE_TLS_BR;
		else if (!strcmp(v, "private"))
			ca->profile = VG_CRL_PROFILE_PRIVATE;
		else {
			conf_set_err(p, "[ca %s] profile = %s: expected tls-br or private", caname,
			             v);
			return 0;
		}
	} else if (!strcmp(k, "delta_crl_url"))
		SET_STR(ca->delta_crl_url, v);
	else if (!strcmp(k, "not_issued")) {
		if (!strcmp(v, "unknown"))
			ca->not_issued = VG_NOT_ISSUED_UNKNOWN;
		else if (!strcmp(v, "revoked"))
			ca->not_issued = VG_NOT_ISSUED_REVOKED;
		else {
			conf_set_err(p, "[ca %s] not_issued = %s: expected unknown or revoked",
			             caname, v);
			return 0;
		}
	} else if (!strcmp(k, "ocsp_validity")) {
		return handle_validity(p, caname, k, v, "8h", 8 * 3600, "4.9.10",
		                       &ca->ocsp_validity);
	} else if (!strcmp(k, "crl_validity")) {
		return handle_validity(p, caname, k, v, "1h", 3600, "4.9.7", &ca->crl_validity);
	} else if (!strcmp(k, "delta_crl")) {
		if (!conf_parse_bool(v, &ca->delta_crl)) {
			conf_set_err(p, "[ca %s] delta_crl = %s: expected on or off", caname, v);
			return 0;
		}
	} else if (!strcmp(k, "digest")) {
		if (strcmp(v, "sha256") && strcmp(v, "sha384") && strcmp(v, "sha512")) {
			conf_set_err(p, "[ca %s] digest = %s: expected sha256, sha384 or sha512",
			             caname, v);
			return 0;
		}
		SET_STR(ca->digest, v);
	} else {
		conf_set_err(p, "[ca %s]: unknown key '%s'", caname, k);
		return 0;
	}
	return 1;
}

static int handler(void *user, const char *section, const char *k, const char *v)
{
	struct parse_ctx *p = user;
	struct vg_conf *c = p->c;
	if (p->msg[0])
		return 0;

	char *key = NULL;
	if (asprintf(&key, "%s\n%s", section, k) < 0)
		return 0;
	for (size_t i = 0; i < p->n_seen; i++)
		if (!strcmp(p->seen[i], key)) {
			conf_set_err(p, "[%s] %s is set twice", section, k);
			free(key);
			return 0;
		}
	char **ns = realloc(p->seen, (p->n_seen + 1) * sizeof(*ns));
	if (!ns) {
		free(key);
		return 0;
	}
	p->seen = ns;
	p->seen[p->n_seen++] = key;

	if (!strcmp(section, "store")) {
		if (!strcmp(k, "path"))
			SET_PATH(c->store_path, v);
		else if (!strcmp(k, "log_retention") || !strcmp(k, "expired_retention"))
			return conf_handle_retention(
			        p, k, v, k[0] == 'l' ? &c->log_retention : &c->expired_retention);
		else
			goto unknown;
	} else if (!strcmp(section, "responder")) {
		if (!strcmp(k, "listen"))
			SET_STR(c->listen, v);
		else if (!strcmp(k, "workers"))
			return conf_handle_int(p, section, k, v, 0, 256, &c->workers);
		else if (!strcmp(k, "user"))
			SET_STR(c->user, v);
		else if (!strcmp(k, "access_log"))
			SET_PATH(c->access_log, v);
		else if (!strcmp(k, "base_path"))
			SET_STR(c->base_path, v);
		else if (!strcmp(k, "max_connections"))
			return conf_handle_int(p, section, k, v, 1, 1000000, &c->max_connections);
		else if (!strcmp(k, "max_request_bytes"))
			return conf_handle_int(p, section, k, v, 512, 1 << 20,
			                       &c->max_request_bytes);
		else if (!strcmp(k, "max_header_bytes"))
			return conf_handle_int(p, section, k, v, 512, 1 << 20,
			                       &c->max_header_bytes);
		else if (!strcmp(k, "max_certids"))
			return conf_handle_int(p, section, k, v, 1, 1000, &c->max_certids);
		else if (!strcmp(k, "refresh_percent"))
			return conf_handle_int(p, section, k, v, 1, 90, &c->refresh_percent);
		else if (!strcmp(k, "idle_timeout"))
			return conf_handle_ms(p, section, k, v, &c->idle_timeout_ms);
		else if (!strcmp(k, "header_timeout"))
			return conf_handle_ms(p, section, k, v, &c->header_timeout_ms);
		else if (!strcmp(k, "body_timeout"))
			return conf_handle_ms(p, section, k, v, &c->body_timeout_ms);
		else
			goto unknown;
	} else if (!strcmp(section, "crlgen")) {
		int64_t ms;
		if (!strcmp(k, "out"))
			SET_PATH(c->crl_out, v);
		else if (!strcmp(k, "metrics_file"))
			SET_PATH(c->crl_metrics_file, v);
		else if (!strcmp(k, "interval")) {
			if (!conf_parse_duration_ms(v, &ms) || ms < 1000 ||
			    ms > 10LL * DAY * 1000) {
				conf_set_err(p, "[crlgen] interval = %s: expected 1s to 10d", v);
				return 0;
			}
			c->crl_interval = ms / 1000;
		} else if (!strcmp(k, "keep"))
			return conf_handle_int(p, section, k, v, 0, 1000, &c->crl_keep);
		else
			goto unknown;
	} else if (!strcmp(section, "edge")) {
		return conf_handle_edge(p, k, v);
	} else if (!strcmp(section, "replicate")) {
		return conf_handle_replicate(p, k, v);
	} else if (!strncmp(section, "ca ", 3)) {
		const char *name = section + 3;
		while (*name == ' ')
			name++;
		return handle_ca(p, name, k, v);
	} else {
		conf_set_err(p, "unknown section [%s]", section);
		return 0;
	}
	return 1;
unknown:
	conf_set_err(p, "[%s]: unknown key '%s'", section, k);
	return 0;
}

static void set_defaults(struct vg_conf *c)
{
	c->workers = 0;
	c->max_connections = 10000;
	c->max_request_bytes = 16384;
	c->max_header_bytes = 8192;
	c->max_certids = 32;
	c->idle_timeout_ms = 30000;
	c->header_timeout_ms = 10000;
	c->body_timeout_ms = 10000;
	c->refresh_percent = 50;
	c->crl_interval = 3600;
	c->log_retention = 30 * DAY;
	c->expired_retention = 365 * DAY;
	c->crl_keep = 5;
	c->edge_max_age = 60;
	c->edge_command_timeout_ms = 30000;
}

#define INI_LINE_MAX 199

static const char *ferror_text(size_t n)
{
	return n >= (1 << 20) - 1 ? "larger than 1 MiB" : "read error";
}

/* same_key tells whether two certificates carry the same public key: the
 * same subjectPublicKey bits (what an OCSP CertID hashes), or keys OpenSSL
 * finds equal in another encoding (an EC point compressed in one). */
static bool same_key(X509 *a, X509 *b)
{
	const ASN1_BIT_STRING *ka = X509_get0_pubkey_bitstr(a), *kb = X509_get0_pubkey_bitstr(b);
	if (ka && kb && ASN1_STRING_cmp(ka, kb) == 0)
		return true;
	EVP_PKEY *pa = X509_get0_pubkey(a), *pb = X509_get0_pubkey(b);
	bool eq = pa && pb && EVP_PKEY_eq(pa, pb) == 1;
	ERR_clear_error();
	return eq;
}

/* check_crl_urls refuses two CAs publishing at one URL: their CRLs would
 * replace each other's file under [crlgen] out. */
static int check_crl_urls(const struct vg_conf *c, char *err, size_t errlen)
{
	for (int i = 0; i < c->n_cas; i++) {
		const struct vg_conf_ca *a = &c->cas[i];
		for (int j = 0; j < c->n_cas; j++) {
			const struct vg_conf_ca *b = &c->cas[j];
			const char *clash = NULL;
			bool same_full = j > i && a->crl_url && b->crl_url &&
			                 !strcmp(a->crl_url, b->crl_url);
			bool full_is_shard =
			        a->crl_url && b->crl_shards &&
			        vg_conf_shard_of_url(b, a->crl_url, strlen(a->crl_url));
			if (same_full || full_is_shard)
				clash = a->crl_url;
			else if (j > i && a->crl_shard_url && b->crl_shard_url &&
			         !strcmp(a->crl_shard_url, b->crl_shard_url))
				clash = a->crl_shard_url;
			if (clash) {
				snprintf(
				        err, errlen,
				        "%s: [ca %s] and [ca %s] both publish at %s: give each CRL "
				        "its own URL",
				        c->file, a->name, b->name, clash);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* check_ca_identities refuses two sections whose certificates have the same
 * subject and key: a re-issued CA certificate is the same CA, so every OCSP
 * CertID names both (issuerNameHash, issuerKeyHash) and both would publish a
 * CRL for one issuer. Same subject with different keys is allowed: a CA
 * re-keyed under its name is told apart by issuerKeyHash and by its CRLs'
 * signature. A certificate that cannot be read is left to the program that
 * uses it, which says why. */
static int check_ca_identities(const struct vg_conf *c, char *err, size_t errlen)
{
	X509 *x[VG_CONF_MAX_CAS] = {0};
	int rc = 0;
	for (int i = 0; i < c->n_cas; i++) {
		char e[256];
		if (vg_pki_load_cert(c->cas[i].cert, &x[i], e, sizeof(e)) < 0)
			x[i] = NULL;
	}
	for (int i = 0; i < c->n_cas && rc == 0; i++) {
		for (int j = i + 1; j < c->n_cas && rc == 0; j++) {
			if (!x[i] || !x[j] ||
			    X509_NAME_cmp(X509_get_subject_name(x[i]),
			                  X509_get_subject_name(x[j])) != 0 ||
			    !same_key(x[i], x[j]))
				continue;
			char subj[160];
			X509_NAME_oneline(X509_get_subject_name(x[i]), subj, sizeof(subj));
			snprintf(err, errlen,
			         "%s: [ca %s] and [ca %s] have the same subject and key (%s): one "
			         "CA, "
			         "whose OCSP requests and CRLs cannot tell the two apart; keep one "
			         "section (a re-issued certificate replaces the old one in it)",
			         c->file, c->cas[i].name, c->cas[j].name, subj);
			rc = -EINVAL;
		}
	}
	for (int i = 0; i < c->n_cas; i++)
		X509_free(x[i]);
	ERR_clear_error();
	return rc;
}

/* conf_parse parses |text|, |abs|
 * naming the file in messages and anchoring relative paths. */
static int conf_parse(const char *abs, const char *text, struct vg_conf *out, char *err,
                      size_t errlen)
{
	memset(out, 0, sizeof(*out));
	set_defaults(out);
	out->file = strdup(abs);
	const char *slash = strrchr(abs, '/');
	out->dir = slash ? strndup(abs, slash == abs ? 1 : (size_t)(slash - abs)) : strdup(".");
	if (!out->file || !out->dir) {
		vg_conf_free(out);
		return -ENOMEM;
	}

	/* libinih (Debian: INI_MAX_LINE 200) splits longer lines, and the rest
	 * then reads as a syntax error on the next line: say so instead. */
	int lineno = 1;
	size_t col = 0;
	for (const char *q = text; *q; q++) {
		if (*q == '\n') {
			lineno++;
			col = 0;
		} else if (++col > INI_LINE_MAX) {
			snprintf(err, errlen, "%s:%d: line longer than %d characters", abs, lineno,
			         INI_LINE_MAX);
			vg_conf_free(out);
			return -EINVAL;
		}
	}

	struct parse_ctx p = {.c = out};
	errno = 0;
	int line = ini_parse_string(text, handler, &p);
	for (size_t i = 0; i < p.n_seen; i++)
		free(p.seen[i]);
	free(p.seen);
	if (line < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", abs, strerror(errno ? errno : EIO));
		vg_conf_free(out);
		return -EIO;
	}
	if (line > 0) {
		snprintf(err, errlen, "%s:%d: %s", abs, line, p.msg[0] ? p.msg : "syntax error");
		vg_conf_free(out);
		return -EINVAL;
	}
	abs = out->file;

	if (!out->store_path) {
		snprintf(err, errlen, "%s: [store] path is required", abs);
		goto bad;
	}
	if (!out->listen)
		out->listen = strdup("127.0.0.1:8080");
	if (!out->base_path)
		out->base_path = strdup("/");
	if (!out->crl_out)
		out->crl_out = conf_resolve_path(out, "crl");
	if (!out->edge_tag_header)
		out->edge_tag_header = strdup("xkey");
	if (!out->edge_state_dir) {
		/* Beside the store directory: the responder only reads the store. */
		const char *sp = out->store_path;
		size_t dl = strlen(sp);
		while (dl > 1 && sp[dl - 1] == '/')
			dl--;
		while (dl > 0 && sp[dl - 1] != '/')
			dl--;
		while (dl > 1 && sp[dl - 1] == '/')
			dl--;
		if (asprintf(&out->edge_state_dir, "%.*s/edge", dl > 1 ? (int)dl : 0, sp) < 0)
			out->edge_state_dir = NULL;
	}
	if (!out->crl_metrics_file) {
		/* Beside the out directory, not in it: nothing but CRLs and
		 * crlgen's own files there. */
		char *d = strdup(out->crl_out), *sl = d ? strrchr(d, '/') : NULL;
		if (sl && asprintf(&out->crl_metrics_file, "%.*s/vigil-crlgen.prom", (int)(sl - d),
		                   d) < 0)
			out->crl_metrics_file = NULL;
		free(d);
	}
	for (int i = 0; i < out->n_cas; i++) {
		struct vg_conf_ca *ca = &out->cas[i];
		if (!ca->cert) {
			snprintf(err, errlen, "%s: [ca %s] cert is required", abs, ca->name);
			goto bad;
		}
		if (access(ca->cert, R_OK) < 0) {
			snprintf(err, errlen, "%s: [ca %s] cert %s: %s", abs, ca->name, ca->cert,
			         strerror(errno));
			goto bad;
		}
		if (ca->ocsp_cert && access(ca->ocsp_cert, R_OK) < 0) {
			snprintf(err, errlen, "%s: [ca %s] ocsp_cert %s: %s", abs, ca->name,
			         ca->ocsp_cert, strerror(errno));
			goto bad;
		}
		/* Without a delegated responder the CA key signs both. */
		if (!ca->ocsp_key && !ca->ocsp_cert && ca->crl_key)
			ca->ocsp_key = strdup(ca->crl_key);
		if (!ca->digest)
			ca->digest = strdup("sha256");
		if (ca->crl_shards > 0 && !ca->crl_shard_url) {
			snprintf(err, errlen,
			         "%s: [ca %s] crl_shards = %d needs crl_shard_url (a URL with %%u)",
			         abs, ca->name, ca->crl_shards);
			goto bad;
		}
		if (ca->crl_shard_url && ca->crl_shards == 0) {
			snprintf(err, errlen,
			         "%s: [ca %s] crl_shard_url is set but crl_shards is 0 (no shards)",
			         abs, ca->name);
			goto bad;
		}
		if (ca->profile == VG_CRL_PROFILE_DEFAULT)
			ca->profile = ca->crl_url ? VG_CRL_PROFILE_TLS_BR : VG_CRL_PROFILE_PRIVATE;
		if (!ca->crl_max_bytes)
			ca->crl_max_bytes = 10000000;
	}
	if (check_ca_identities(out, err, errlen) < 0 || check_crl_urls(out, err, errlen) < 0)
		goto bad;
	return 0;
bad:
	vg_conf_free(out);
	return -EINVAL;
}

void vg_conf_free(struct vg_conf *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->dir);
	free(c->store_path);
	free(c->listen);
	free(c->user);
	free(c->access_log);
	free(c->base_path);
	free(c->crl_out);
	free(c->edge_tag_header);
	free(c->edge_purge_varnish);
	free(c->edge_purge_nginx);
	free(c->edge_purge_command);
	free(c->edge_state_dir);
	free(c->crl_metrics_file);
	free(c->pg_conninfo);
	free(c->pg_password_file);
	for (int i = 0; i < c->n_cas; i++) {
		struct vg_conf_ca *ca = &c->cas[i];
		free(ca->name);
		free(ca->cert);
		free(ca->ocsp_cert);
		free(ca->ocsp_key);
		free(ca->crl_key);
		free(ca->crl_url);
		free(ca->crl_shard_url);
		free(ca->delta_crl_url);
		free(ca->digest);
	}
	memset(c, 0, sizeof(*c));
}

int vg_conf_load(const char *path, struct vg_conf *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	char *abs = realpath(path, NULL);
	if (!abs) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	FILE *f = fopen(abs, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", abs, strerror(e));
		free(abs);
		return -e;
	}
	/* A configuration is small; more than 1 MiB is not one. */
	char *text = malloc(1 << 20);
	size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
	bool bad = !text || ferror(f) || !feof(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: %s", abs, !text ? "out of memory" : ferror_text(n));
		free(text);
		free(abs);
		return -EINVAL;
	}
	text[n] = '\0';
	if (memchr(text, '\0', n)) {
		snprintf(err, errlen, "%s: not a text file (NUL byte)", abs);
		free(text);
		free(abs);
		return -EINVAL;
	}
	int rc = conf_parse(abs, text, out, err, errlen);
	free(text);
	free(abs);
	if (rc == 0)
		vg_pki_set_service_user(out->user);
	return rc;
}

int vg_conf_parse_string(const char *text, const char *file, struct vg_conf *out, char *err,
                         size_t errlen)
{
	return conf_parse(file, text, out, err, errlen);
}

const struct vg_conf_ca *vg_conf_ca_find(const struct vg_conf *c, const char *name)
{
	for (int i = 0; i < c->n_cas; i++)
		if (!strcmp(c->cas[i].name, name))
			return &c->cas[i];
	return NULL;
}

int vg_conf_shard_url(const struct vg_conf_ca *ca, unsigned shard, char *out, size_t outlen)
{
	const char *u = ca->crl_shard_url ? strstr(ca->crl_shard_url, "%u") : NULL;
	if (!u)
		return -1;
	int n = snprintf(out, outlen, "%.*s%u%s", (int)(u - ca->crl_shard_url), ca->crl_shard_url,
	                 shard, u + 2);
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

/* match_shard returns the number N (1..|shards|) for which |tpl| with its
 * %u replaced by N is the |len| bytes of |s|, or 0. */
static unsigned match_shard(const char *tpl, int shards, const char *s, size_t len)
{
	const char *u = tpl ? strstr(tpl, "%u") : NULL;
	if (!u)
		return 0;
	size_t pre = (size_t)(u - tpl), suf = strlen(u + 2);
	if (len < pre + suf + 1 || memcmp(s, tpl, pre) || memcmp(s + len - suf, u + 2, suf))
		return 0;
	/* The number as %u prints it: decimal, no sign, no leading zero. */
	size_t dl = len - pre - suf;
	const char *d = s + pre;
	if (dl > 5 || d[0] == '0')
		return 0;
	unsigned v = 0;
	for (size_t i = 0; i < dl; i++) {
		if (d[i] < '0' || d[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(d[i] - '0');
	}
	return v >= 1 && v <= (unsigned)shards ? v : 0;
}

unsigned vg_conf_shard_of_url(const struct vg_conf_ca *ca, const char *url, size_t len)
{
	return match_shard(ca->crl_shard_url, ca->crl_shards, url, len);
}

unsigned vg_conf_shard_of_path(const struct vg_conf_ca *ca, const char *path, size_t len)
{
	const char *tpl = ca->crl_shard_url ? vg_conf_url_path(ca->crl_shard_url) : NULL;
	return match_shard(tpl, ca->crl_shards, path, len);
}
