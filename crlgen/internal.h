/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What crlgen.c shares with shards.c (the shard CRLs, the CCADB list) and
 * lint.c: the generator's state and the full CRL's entry source.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/conf.h"
#include "crlgen/crl.h"
#include "crlgen/publish.h"
#include "store/store.h"

struct crlgen_ca {
	const struct vg_conf_ca *conf;
	X509 *cert;
	EVP_PKEY *key;
	struct crl_signer signer;
	uint8_t *issuer; /* subject Name of the CA certificate, DER */
	size_t issuer_len;
	uint8_t akid[EVP_MAX_MD_SIZE];
	size_t akid_len;
	/* The shards (1..crl_shards) a change touched since the last
	 * crlgen_touched, for a CRLGEN_TOUCHED publication; NULL without shards. */
	bool *shard_touched;
};

struct crlgen {
	struct vg_conf conf;
	struct crlgen_ca cas[VG_CONF_MAX_CAS];
	int n;
	struct vg_store *st;
	struct vg_txn *txn;
	uint64_t store_id; /* of st, read by crlgen_snapshot */
	unsigned reopens;  /* times st was found replaced and reopened */
	int dirfd;
};

/* Full CRL: the CA's revoked certificates through the revoked-only index,
 * but those that expired before |cutoff| (the previous full CRL). */
struct full_src {
	struct vg_txn *txn;
	uint32_t ca_id;
	int64_t cutoff;
	struct vg_iter *it;
	uint64_t walked;
	const struct vg_conf_ca *conf; /* set: entries carry their shard */
};

/* crlgen_ca_init loads what CA |c| needs: its certificate, the issuer name
 * and key identifier, and with |publishes| its CRL key and signer. On error
 * a negative errno and one line in |err|. crlgen_ca_deinit frees it all. */
int crlgen_ca_init(struct crlgen_ca *ca, const struct vg_conf_ca *c, bool publishes, char *err,
                   size_t errlen);
void crlgen_ca_deinit(struct crlgen_ca *ca);

/* crlgen_entry_from fills a CRL entry from a store record. */
void crlgen_entry_from(struct crl_entry *e, const struct vg_serial *s, const struct vg_cert *c);

/* crlgen_snapshot moves the read transaction to the newest committed state,
 * of the store now at [store] path (one found replaced is reopened). */
int crlgen_snapshot(struct crlgen *g);

int crlgen_full_begin(void *arg);
int crlgen_full_next(void *arg, struct crl_entry *e);

/* crlgen_number_ok checks that |number| is above the number of the CRL
 * published as |fname| in |dirfd|, the one it is about to replace; if not,
 * it writes the reason to |err| and returns -ERANGE. */
int crlgen_number_ok(int dirfd, const char *fname, uint64_t number, char *err, size_t errlen);

/* crlgen_shard_of returns the shard (1..crl_shards) of a certificate of CA
 * |c|: the one its stored CRL distribution point named, else (serial mod
 * crl_shards) + 1. */
unsigned crlgen_shard_of(const struct vg_conf_ca *c, const struct vg_serial *s,
                         const struct vg_cert *cert);

/* crlgen_publish_shards publishes the shards of CA |ca| marked in
 * |touched| (indexed 1..crl_shards; NULL: every shard) from the current
 * snapshot, in one walk of the store, each with its critical IDP and a CRL
 * number above every number the CA used. Returns 0 or a negative errno
 * (logged; the shards in place stay). */
int crlgen_publish_shards(struct crlgen *g, struct crlgen_ca *ca, const bool *touched,
                          uint64_t counter, struct pub_state *ps);

/* The same in phases, for a walk that also writes the full CRL (crlgen.c's
 * publish_one): crlgen_shards_prepare opens the files and reserves the
 * number (above every number used, so call it after the full CRL has
 * reserved its own); then, for each of the walk's two passes,
 * crlgen_shards_begin and crlgen_shards_feed with every entry (its shard
 * set); then crlgen_shards_finish signs, lints and renames, and frees |sp|
 * (crlgen_shards_abort frees it without publishing). Entries must be those
 * of the cutoff crlgen_shards_cutoff gives. Errors are logged. */
struct shard_pub;
int crlgen_shards_prepare(struct crlgen *g, struct crlgen_ca *ca, const bool *touched,
                          uint64_t counter, struct pub_state *ps, struct shard_pub **out);
int crlgen_shards_begin(struct shard_pub *sp);
void crlgen_shards_feed(struct shard_pub *sp, const struct crl_entry *in);
int crlgen_shards_finish(struct shard_pub *sp, struct pub_state *ps);
void crlgen_shards_abort(struct shard_pub *sp);
/* crlgen_shards_cutoff: the certificates that expired before it are left
 * out of the shards (the last publication of all of them, or |now|). */
int64_t crlgen_shards_cutoff(const struct pub_state *ps, int64_t now);

/* crlgen_mirror_full links the full CRL NAME.crl just published at the path
 * of the CA's crl_url under [crlgen] out. */
int crlgen_mirror_full(struct crlgen *g, struct crlgen_ca *ca);

/* crlgen_write_ccadb writes NAME.ccadb.json, the JSON array of the CA's
 * shard URLs (or [crl_url]), atomically. */
int crlgen_write_ccadb(struct crlgen *g, struct crlgen_ca *ca);
