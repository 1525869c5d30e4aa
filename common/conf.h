/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The configuration file shared by vigil-store, vigil-responder and
 * vigil-crlgen (INI, parsed with libinih). Every program parses every
 * section, so a key unknown to all of them is an error wherever it appears.
 * Relative paths are resolved against the directory of the file.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/text.h"

#define VG_CONF_MAX_CAS 64

/* [edge] limits: max_age up to a day, at most this many purge URLs per key. */
#define VG_EDGE_MAX_AGE_MAX 86400
#define VG_EDGE_URLS_MAX 16

/* The longest validity of an OCSP answer or a CRL: ten days (Baseline
 * Requirements 4.9.7 and 4.9.10). ocsp_validity and crl_validity are at
 * most this. */
#define VG_VALIDITY_MAX (10 * 86400)

/* vg_ocsp_validity caps |validity| so that an OCSP answer's validity
 * interval, which includes both thisUpdate and nextUpdate (RFC 5019 §4,
 * BR 4.9.10), stays within VG_VALIDITY_MAX: at most VG_VALIDITY_MAX - 1
 * seconds between them. */
static inline int64_t vg_ocsp_validity(int64_t validity)
{
	return validity > VG_VALIDITY_MAX - 1 ? VG_VALIDITY_MAX - 1 : validity;
}

enum vg_not_issued {
	VG_NOT_ISSUED_UNKNOWN = 0, /* RFC 6960 unknown: what public TLS CAs must answer */
	VG_NOT_ISSUED_REVOKED = 1, /* RFC 6960 §2.2 revoked, certificateHold, 1970-01-01 */
};

/* The CRL profile a CA's CRLs are linted against before each publication
 * (crlgen/lint.c). */
enum vg_crl_profile {
	VG_CRL_PROFILE_DEFAULT = 0, /* not set: tls-br with crl_url, else private */
	VG_CRL_PROFILE_TLS_BR = 1,  /* CA/B Forum Baseline Requirements 7.2, CCADB */
	VG_CRL_PROFILE_PRIVATE = 2, /* RFC 5280 only */
};

/* The most shards a CA may have: the shard number of a certificate is kept
 * in one byte of its store record (store/record.c). */
#define VG_CRL_SHARDS_MAX 256

struct vg_conf_ca {
	char *name;
	uint32_t id;     /* vg_ca_id(name) */
	char *cert;      /* CA certificate (PEM or DER), required */
	char *ocsp_cert; /* delegated OCSP signer certificate; NULL: sign with ocsp_key as CA */
	char *ocsp_key;  /* PEM path or pkcs11: URI */
	char *crl_key;   /* PEM path or pkcs11: URI */
	enum vg_not_issued not_issued;
	int64_t ocsp_validity;       /* seconds; default 4 days, allowed 8 h to 10 days */
	int64_t crl_validity;        /* seconds; default 7 days, at most 10 days */
	bool delta_crl;              /* publish delta CRLs too */
	char *crl_url;               /* the full CRL's public URL (http://), or NULL */
	int crl_shards;              /* shards (partitioned CRLs), 0 = none (default) */
	char *crl_shard_url;         /* URL of shard %u (1..crl_shards), http:// */
	enum vg_crl_profile profile; /* default tls-br when crl_url is set */
	int64_t crl_max_bytes;       /* size budget of one CRL for --plan, default 10 MB */
	char *delta_crl_url;         /* Freshest CRL URL for full CRLs */
	char *digest;                /* signature digest: sha256 (default), sha384, sha512 */
};

struct vg_conf {
	char *file; /* absolute path of the config file */
	char *dir;  /* its directory, for relative paths */
	/* [store] */
	char *store_path;
	int64_t log_retention;     /* seconds change-log entries are kept, default 30 days */
	int64_t expired_retention; /* seconds past notAfter a certificate is kept, default 365 days
	                            */
	/* [responder] */
	char *listen;          /* ADDR:PORT, default 127.0.0.1:8080 */
	int workers;           /* 0: one per CPU */
	char *user;            /* drop root to this user after binding */
	char *access_log;      /* path, or NULL */
	int max_connections;   /* default 10000 */
	int max_request_bytes; /* default 16384 (RFC 5019: requests are small) */
	int max_header_bytes;  /* default 8192 */
	int max_certids;       /* CertIDs answered per request, default 32 */
	int idle_timeout_ms;   /* keep-alive idle, default 30000 */
	int header_timeout_ms; /* whole header must arrive within, default 10000 */
	int body_timeout_ms;   /* whole body must arrive within, default 10000 */
	int refresh_percent; /* cached answers are re-signed after this % of validity, default 50 */
	char *base_path;     /* URL prefix before the OCSP GET segment, default "/" */
	/* [crlgen] */
	char *crl_out;
	char *crl_metrics_file; /* crlgen's metrics (Prometheus text); default
	                           OUT/../vigil-crlgen.prom */
	int64_t crl_interval;   /* seconds, default 3600 */
	int crl_keep;           /* numbered CRLs kept beside the current, default 5 */
	/* [edge]: the HTTP caches in front of the responder (responder/edge.c) */
	int edge_max_age;            /* s-maxage bound, seconds; default 60, 0: up to nextUpdate */
	char *edge_tag_header;       /* header naming an answer's tags, default "xkey" */
	char *edge_purge_varnish;    /* comma-separated http:// URLs, or NULL */
	char *edge_purge_nginx;      /* comma-separated http:// URLs, or NULL */
	char *edge_purge_command;    /* absolute path of a program, or NULL */
	int edge_command_timeout_ms; /* purge_command killed past this, default 30000 */
	char *edge_state_dir;        /* where each edge's acknowledged counter is kept */
	/* [replicate] (issue 15) */
	char *pg_conninfo;      /* postgres: libpq conninfo, never a password; NULL: not set */
	char *pg_password_file; /* password_file: path of a file holding the password */
	int64_t max_lag;        /* seconds; 0: /healthz does not look at replication */
	/* [ca NAME] */
	struct vg_conf_ca cas[VG_CONF_MAX_CAS];
	int n_cas;
};

/* vg_conf_load parses |path| into |*out|. On error it returns a negative errno
 * and writes a one-line reason (naming the file, line and key) into |err|. It
 * checks syntax, known keys, value ranges, and that every CA names a readable
 * certificate file; it does not load keys. */
int vg_conf_load(const char *path, struct vg_conf *out, char *err, size_t errlen);

/* vg_conf_parse_string parses |text| as if it were the file |file| (an
 * absolute path: relative paths resolve against its directory). */
int vg_conf_parse_string(const char *text, const char *file, struct vg_conf *out, char *err,
                         size_t errlen);

void vg_conf_free(struct vg_conf *c);

/* vg_conf_shard_url writes the URL of shard |shard| (1..crl_shards) of |ca|
 * into |out|. Returns the length, or -1 when it does not fit. */
int vg_conf_shard_url(const struct vg_conf_ca *ca, unsigned shard, char *out, size_t outlen);

/* vg_conf_url_path returns the path part of an http:// URL ("/crl/1.crl"),
 * or NULL when |url| is not an http URL with a path. */
const char *vg_conf_url_path(const char *url);

/* vg_conf_shard_of_url returns the shard (1..crl_shards) whose URL is the
 * |len| bytes of |url| byte for byte, or 0 when none is. */
unsigned vg_conf_shard_of_url(const struct vg_conf_ca *ca, const char *url, size_t len);

/* vg_conf_shard_of_path is vg_conf_shard_of_url for the path of the URL
 * only ("/crl/ec/3.crl"), as an HTTP request names it. */
unsigned vg_conf_shard_of_path(const struct vg_conf_ca *ca, const char *path, size_t len);

/* vg_conf_ca_find returns the CA section named |name|, or NULL. */
const struct vg_conf_ca *vg_conf_ca_find(const struct vg_conf *c, const char *name);
