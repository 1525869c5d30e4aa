/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Publishing CRLs into the out directory so that a reader never sees a
 * partial file: each file is written under a temporary name, fsynced,
 * renamed over the published name, and the directory fsynced.
 *
 * Files for CA NAME:
 *   NAME.crl, NAME.crl.pem              the newest full CRL (DER, PEM)
 *   NAME-delta.crl, NAME-delta.crl.pem  the newest delta CRL (delta_crl = on)
 *   NAME-NUMBER.crl                     the last `keep` full CRLs, by CRL number
 *   NAME.state                          crlgen's memory (see struct pub_state)
 *   .NAME*.tmp-*                        files being written
 *
 * CRL numbers are at least 16 decimal digits (microsecond timestamps), which
 * is how NAME-NUMBER.crl is told apart from another CA's NAME-x.crl.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What crlgen remembers per CA between runs, in NAME.state. */
struct pub_state {
	uint64_t last_number;     /* highest CRL number used, full or delta */
	uint64_t full_number;     /* the last published full CRL; 0 if none */
	int64_t full_this_update; /* its thisUpdate */
	uint64_t full_counter;    /* the store change counter it was built at */
	/* The thisUpdate of the last publication of every shard (0: none):
	 * a shard leaves out the certificates that expired before it. */
	int64_t shards_this_update;
	uint64_t store_id; /* the store the last full CRL was built from (vg_store_ident); 0 unknown
	                    */
};

/* pub_open_dir opens (creating it when missing) the out directory. Returns
 * a directory fd or a negative errno. */
int pub_open_dir(const char *path);

/* pub_state_load reads NAME.state; a missing file gives 0 and a zeroed state.
 * A damaged one gives -EBADMSG. */
int pub_state_load(int dirfd, const char *ca, struct pub_state *st);

/* pub_state_save replaces NAME.state atomically and durably. */
int pub_state_save(int dirfd, const char *ca, const struct pub_state *st);

/* pub_max_numbered returns the highest NUMBER of the NAME-NUMBER.crl files
 * (0 if none). */
uint64_t pub_max_numbered(int dirfd, const char *ca);

/* pub_crl_number reads the cRLNumber of the DER CRL |name| in |dirfd| (a
 * published NAME.crl or NAME-delta.crl) without reading its entries, into
 * |num|, and in decimal into |dec| (PUB_NUMBER_DEC bytes hold any). Returns
 * 0; -ENOENT when there is no such file; -ERANGE when the number needs more
 * than 64 bits (|dec| has it); -EBADMSG when the file is not a CRL with a
 * number. */
#define PUB_NUMBER_DEC 64
int pub_crl_number(int dirfd, const char *name, uint64_t *num, char *dec, size_t declen);

/* pub_next_number writes the CRL number to use now to |out|: the current
 * time in microseconds, but above every number this publisher can see was
 * used under the CA's URLs: the state's last number, the numbered copies,
 * and |published|, the highest number of the CRLs now published (read with
 * pub_crl_number). Returns 0, or -ERANGE when no 64-bit number is above them
 * (|out| is then UINT64_MAX). Numbers are 64-bit, far below RFC 5280's
 * 20 octets (2^159). */
int pub_next_number(int dirfd, const char *ca, const struct pub_state *st, uint64_t published,
                    uint64_t now_us, uint64_t *out);

/* A file being published. */
struct pub_file {
	int dirfd;
	int fd;
	char tmp[320];  /* temporary name in the directory */
	char name[300]; /* published name */
};

/* pub_begin creates a temporary file (mode 0644, read-write) that will be
 * published as |name|. */
int pub_begin(struct pub_file *f, int dirfd, const char *name);

/* pub_abort closes and removes the temporary file. Safe to call twice. */
void pub_abort(struct pub_file *f);

/* pub_write_pem writes the |len| DER bytes of |der| as PEM (|label|, e.g.
 * "X509 CRL") into |pem|. */
int pub_write_pem(struct pub_file *pem, const struct pub_file *der, uint64_t len,
                  const char *label);

/* pub_sync fsyncs the temporary file. */
int pub_sync(struct pub_file *f);

/* pub_link_copy adds a hard link |name| to the temporary file (the numbered
 * copy), replacing an existing file of that name. */
int pub_link_copy(struct pub_file *f, const char *name);

/* pub_commit renames the temporary file over its published name and closes
 * it. The caller fsyncs the directory (pub_sync_dir) after the last rename. */
int pub_commit(struct pub_file *f);

int pub_sync_dir(int dirfd);

/* pub_state_prepare writes |st| into a temporary file, fsynced, that
 * pub_commit puts in place as NAME.state. The disk space it needs is taken
 * then, so that a full disk fails a publication before its CRL is renamed
 * into place, never after. */
int pub_state_prepare(struct pub_file *f, int dirfd, const char *ca, const struct pub_state *st);

/* pub_clean_stale removes the temporary files (.*.tmp-PID-N) left by
 * crlgen processes that are gone (killed while publishing). Returns how
 * many it removed. */
int pub_clean_stale(int dirfd);

/* pub_prune removes the oldest NAME-NUMBER.crl files beyond |keep|. */
int pub_prune(int dirfd, const char *ca, int keep);
