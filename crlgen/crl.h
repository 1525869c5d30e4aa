/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Streaming X.509 v2 CRL encoder (RFC 5280 §5).
 *
 * crl_write writes a signed CertificateList to a file descriptor while it
 * walks an entry source, never holding more than one entry: memory use is
 * the same for an empty CRL and for ten million entries. See crl.c for how
 * the lengths are known before the content is written.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "store/store.h"

/* One CRL entry. */
struct crl_entry {
	struct vg_serial serial;
	int64_t revoked_at;
	int reason; /* enum vg_reason; NONE and UNSPECIFIED omit the reasonCode */
	bool has_invalidity;
	int64_t invalidity_date;
	unsigned shard;    /* the shard it goes to (1..N), set by sharding sources */
	int64_t not_after; /* the certificate's notAfter; INT64_MAX when unknown */
};

/* crl_source yields the entries of one CRL in the order they are written.
 * It is walked twice, once to measure and once to write, and must yield
 * exactly the same entries both times (a store source reads one snapshot).
 * |begin| (re)starts at the first entry; |next| returns 1 with an entry, 0 at
 * the end, or a negative errno. */
struct crl_source {
	int (*begin)(void *arg);
	int (*next)(void *arg, struct crl_entry *e);
	void *arg;
};

/* The signing key with its AlgorithmIdentifier. */
struct crl_signer {
	EVP_PKEY *key;    /* borrowed */
	const EVP_MD *md; /* NULL for EdDSA */
	bool oneshot;     /* EdDSA: the whole TBSCertList is signed in one call */
	uint8_t alg[64];  /* AlgorithmIdentifier, DER, as OpenSSL encodes it */
	size_t alg_len;
	size_t sig_max; /* largest signature the key makes */
	/* The notAfter of the certificate that goes with the key (the CA
	 * certificate; 0 until crl_signer_set_cert: no limit): no CRL's
	 * nextUpdate is later, and none is signed from then on. */
	int64_t not_after;
	int64_t warned_at; /* last event=crl_signer_expires_soon line (crl_signer_check) */
	bool expired_said; /* event=crl_signer_expired logged */
};

/* crl_signer_init checks that |key| may sign CRLs (RSA of 2048 bits or more
 * with PKCS#1 v1.5, ECDSA, Ed25519, Ed448) with |digest| (sha256, sha384 or
 * sha512; ignored for EdDSA) and fills |s|. |s| borrows |key|. On error it
 * returns a negative errno and a one-line reason in |err|. */
int crl_signer_init(struct crl_signer *s, EVP_PKEY *key, const char *digest, char *err,
                    size_t errlen);

/* crl_signer_set_cert records the notAfter of |cert|, the certificate of
 * the signing key. -EINVAL when it cannot be read. */
int crl_signer_set_cert(struct crl_signer *s, X509 *cert);

/* The days before its notAfter from which a signer certificate is logged. */
#define CRL_SIGNER_WARN_DAYS 30

/* crl_signer_check is called before signing a CRL at |now|: it caps
 * |*next_update| at the certificate's notAfter, logs one line (for CA |ca|,
 * certificate file |cert|) when the certificate expires within
 * CRL_SIGNER_WARN_DAYS (at most once a day per signer) or has expired (once),
 * and returns -EKEYEXPIRED with a reason in |err| when it has: a CRL signed
 * by an expired certificate fails every client's check, so nothing is signed. */
int crl_signer_check(struct crl_signer *s, const char *ca, const char *cert, int64_t now,
                     int64_t *next_update, char *err, size_t errlen);

struct crl_params {
	const uint8_t *issuer; /* issuer Name, DER: the CA certificate's subject */
	size_t issuer_len;
	const uint8_t *akid; /* authority key identifier (the CA's subjectKeyIdentifier) */
	size_t akid_len;
	int64_t this_update;
	int64_t next_update;
	uint64_t number;      /* cRLNumber */
	bool delta;           /* a delta CRL: adds the critical deltaCRLIndicator */
	uint64_t base_number; /* deltaCRLIndicator's BaseCRLNumber */
	const char *freshest; /* Freshest CRL URI for a full CRL, or NULL */
	/* A shard: the URI of its critical IssuingDistributionPoint, byte for
	 * byte the CRL distribution point of the certificates it covers; NULL
	 * for a full CRL (no IDP, as RFC 5280 and the BRs recommend). */
	const char *idp;
	bool idp_user_certs; /* the IDP asserts onlyContainsUserCerts */
};

struct crl_result {
	uint64_t entries;
	uint64_t bytes;
};

/* crl_write writes the signed CRL, DER, to |fd|, an empty regular file opened
 * for reading and writing, at offset 0. It returns 0, or a negative errno
 * with a one-line reason in |err| (the file content is then undefined):
 * -EKEYEXPIRED, nothing written, when |s| has a notAfter that |p|'s
 * thisUpdate has reached or its nextUpdate passes (crl_signer_check caps it). */
int crl_write(int fd, const struct crl_params *p, const struct crl_signer *s,
              const struct crl_source *src, struct crl_result *res, char *err, size_t errlen);

/* The streaming writer under crl_write, for callers that feed several CRLs
 * from one walk (the shards and the full CRL of a CA): the caller measures
 * (crl_entry_len) and passes the count and total length of the entries,
 * then adds exactly those entries in order, then ends. |bufsize| is the
 * output buffer (flushed to |fd| as it fills). crl_writer_begin checks the
 * signer as crl_write does; crl_writer_add returns 0 or a negative errno
 * (an entry beyond what was measured, a write error: crl_writer_end then
 * says which); crl_writer_end signs and completes the file. Every writer is
 * freed with crl_writer_free. */
struct crl_writer;
int crl_writer_begin(struct crl_writer **out, int fd, const struct crl_params *p,
                     const struct crl_signer *s, uint64_t count, uint64_t rev_len, size_t bufsize,
                     char *err, size_t errlen);
int crl_writer_add(struct crl_writer *w, const struct crl_entry *e);
int crl_writer_end(struct crl_writer *w, struct crl_result *res, char *err, size_t errlen);
void crl_writer_free(struct crl_writer *w);

/* crl_encode_entry encodes one revokedCertificates element into |out| (at
 * least CRL_ENTRY_MAX bytes) and returns its length, or 0 when the entry
 * cannot be encoded (empty serial, time out of range). */
#define CRL_ENTRY_MAX 128
size_t crl_encode_entry(const struct crl_entry *e, uint8_t *out);

/* crl_entry_len returns the length crl_encode_entry will give |e|, without
 * encoding it (the first pass of crl_write), or 0 when it cannot be encoded. */
size_t crl_entry_len(const struct crl_entry *e);
