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

/* pub_next_number returns the CRL number to use now: the current time in
 * microseconds, but at least one above every number used before. */
uint64_t pub_next_number(int dirfd, const char *ca, const struct pub_state *st, uint64_t now_us);

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
