/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The Vigil status store: the one source of truth for revocation status.
 *
 * An LMDB environment (a directory) holding, per CA, every known certificate
 * keyed by serial number ordered as an integer, a revoked-only index, per-CA
 * state (frozen or not), a store-wide change counter with a change log, and an
 * audit log. This header is the only interface to it; nothing outside store/
 * includes lmdb.h.
 *
 * Errors: every int-returning function returns 0 on success or a negative
 * errno, one code per meaning; the raw LMDB code stays inside the library
 * (mapped in one place, env_err):
 *   -ENOENT   not found
 *   -EINVAL   bad argument
 *   -ENOSPC   the disk is full, or the map could not grow further
 *   -ENOMEM   out of memory
 *   -EPROTO   store created by an incompatible schema (or LMDB version)
 *   -ENODATA  not initialised
 *   -EUCLEAN  a damaged data file (vg_store_open, see vg_store_damage)
 *   -EROFS    a read-only open that cannot register in the lock file, or a
 *             write through a read-only handle
 *   -EACCES   no permission on the store's files
 *   -EPERM    vg_store_release of a certificate not on hold
 *   -EEXIST   a new CA whose id another CA's name already has
 *   -EBADMSG  a corrupt record (logged)
 *   -EREMOTE  a write to a replica store, which only `replicate follow`
 *             writes (store/replica.h)
 *   -EIO      anything else LMDB reports (logged once where it happens)
 *   -ESTALE   the store was replaced (vigil-store restore) under this handle:
 *             a write waiting for the writer lock finds its data file gone
 *             from the store's path, and writes nothing
 *   -ERANGE   vg_store_changes_foreach from a position the change log no
 *             longer reaches (pruned, vg_store_prune)
 * Never -EAGAIN: a map another process grew is followed inside the library,
 * and another writer getting in between the commits of a bulk write is
 * handled there too (internal.h).
 *
 * Ownership: results are copied into caller-owned structs; no pointer into
 * the memory map leaves store/.
 *
 * Names: every operation on the store is vg_store_<verb>, whether it goes
 * through the handle (vg_store_add) or a read snapshot (vg_store_get); the
 * two objects with a life of their own are named by their type,
 * vg_txn_begin/renew/trim/end and vg_iter_open/next/close.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/text.h"

enum vg_status {
	VG_STATUS_GOOD = 0,
	VG_STATUS_REVOKED = 1,
};

/* vg_cert.flags */
#define VG_CERT_HAS_INVALIDITY 0x01u /* invalidity_date is set */
#define VG_CERT_HAS_NOT_BEFORE 0x02u /* not_before is set (issuance time known) */
#define VG_CERT_HAS_NOT_AFTER 0x04u  /* not_after is set */
#define VG_CERT_NOT_ISSUED 0x08u     /* revoked by serial only: never seen as issued */
#define VG_CERT_RELEASED 0x10u       /* a certificateHold on it was lifted */
#define VG_CERT_HAS_SHARD 0x20u      /* crl_shard is set: its own CRL DP named that shard */
/* In a vg_store_add item only, never stored: lift a hold (an index.txt
 * removeFromCRL line, openssl ca's record of a lifted hold). */
#define VG_CERT_LIFT_HOLD 0x80u

/* Status of one certificate. Times are seconds since the Unix epoch, UTC. */
struct vg_cert {
	uint8_t status; /* enum vg_status */
	int8_t reason;  /* enum vg_reason; VG_REASON_NONE when good */
	uint8_t flags;  /* VG_CERT_* */
	int64_t revoked_at;
	int64_t invalidity_date;
	int64_t not_before;
	int64_t not_after;
	/* With VG_CERT_HAS_SHARD: the shard (1..256) whose URL the certificate's
	 * CRL distribution point names; one byte in the record. */
	uint16_t crl_shard;
};

/* Per-CA state. */
struct vg_ca_state {
	uint32_t id;       /* stable key prefix, derived from the name */
	bool frozen;       /* issuance halted: the store is complete for this CA */
	int64_t frozen_at; /* when it was frozen; 0 if never */
	uint64_t n_certs;  /* certificates recorded, any status */
	uint64_t n_revoked;
	uint64_t n_hold; /* revoked with certificateHold, included in n_revoked */
	/* Expired certificates of this CA were removed (vg_store_prune): the
	 * store is no longer complete for it, so an absent serial may have been
	 * issued, and is never answered revoked (not_issued = revoked). */
	bool pruned;
};

struct vg_store;
struct vg_txn;

/* vg_store_open flags */
#define VG_STORE_RDONLY 0x01u /* open for reading only (responder, crlgen) */
#define VG_STORE_CREATE 0x02u /* create and initialise when absent (vigil-store init) */

/* vg_store_open opens the store in directory |path| and writes the handle to
 * |*out| on success only. A store that was never initialised gives -ENODATA,
 * one of another schema version -EPROTO. A read-only open refuses a store
 * whose lock file it cannot write (-EROFS): LMDB readers register there, and
 * one that cannot is not protected from the writer. */
int vg_store_open(struct vg_store **out, const char *path, unsigned flags);

/* A data file shorter than the pages its last commit uses (cut short by a
 * copy, a truncate or a file system losing its tail) gives -EUCLEAN, found
 * before anything is mapped: reading a missing page through the map would
 * kill the process with SIGBUS. vg_store_damage then returns the reason, one
 * line for the operator: "store damaged: PATH expected N bytes, found M". It
 * is this thread's, valid until its next vg_store_open. */
const char *vg_store_damage(void);

/* vg_store_close closes |st|; every transaction of it must have ended. NULL is
 * allowed. */
void vg_store_close(struct vg_store *st);

/* vg_store_path returns the directory |st| was opened on. */
const char *vg_store_path(const struct vg_store *st);

/* ---- Reading ------------------------------------------------------------
 *
 * A vg_txn is a read snapshot. It may be kept for a long time and moved to the
 * newest committed state with vg_txn_renew, which is cheap; that is how a
 * responder worker reuses one transaction. A vg_txn must be used by one
 * thread at a time (the environment is opened with MDB_NOTLS).
 */

/* vg_txn_begin starts a read snapshot of |st|. */
int vg_txn_begin(struct vg_store *st, struct vg_txn **out);

/* vg_txn_renew moves |t| to the newest committed state of the store. It also
 * follows a map that another process grew. */
int vg_txn_renew(struct vg_txn *t);

/* vg_txn_behind tells whether a write was committed to the store after |t|'s
 * snapshot was taken, so that a vg_txn_renew would see more. It reads the
 * map's meta page (no lock, no system call): cheap enough to ask before every
 * answer. False when |t| holds no snapshot. */
bool vg_txn_behind(const struct vg_txn *t);

/* vg_txn_trim drops this process's mappings of the store's pages
 * (MADV_DONTNEED on the read-only map): the pages stay in the page cache and
 * are mapped again on the next access, so nothing is lost, but a long walk
 * (a CRL of a million entries) stops counting them in its RSS. */
void vg_txn_trim(struct vg_txn *t);

/* vg_txn_end ends and frees |t|. NULL is allowed. */
void vg_txn_end(struct vg_txn *t);

/* vg_store_get copies the status of (|ca_id|, |serial|) into |out|. It returns 0,
 * -ENOENT if the serial is not in the store, or another negative errno. */
int vg_store_get(struct vg_txn *t, uint32_t ca_id, const struct vg_serial *serial,
                 struct vg_cert *out);

/* vg_store_ca_get copies the state of the CA named |name| into |out|. A CA the store
 * has never seen gives 0 and an all-zero state but for |id|. */
int vg_store_ca_get(struct vg_txn *t, const char *name, struct vg_ca_state *out);

/* vg_store_counter writes the store's change counter to |out|. It is incremented by
 * every committed write. */
int vg_store_counter(struct vg_txn *t, uint64_t *out);

/* vg_iter walks one CA's certificates in ascending serial order: either all
 * of them, or only the revoked ones through the revoked-only index (cost
 * O(revoked)). Returned data are copies. */
struct vg_iter;
#define VG_ITER_REVOKED 0x01u
int vg_iter_open(struct vg_txn *t, uint32_t ca_id, unsigned flags, struct vg_iter **out);
/* vg_iter_next returns 1 with the next entry, 0 at the end, or a negative errno. */
int vg_iter_next(struct vg_iter *it, struct vg_serial *serial, struct vg_cert *cert);
void vg_iter_close(struct vg_iter *it);

/* Change log. Every committed write appends one entry per certificate whose
 * status changed, under the counter value of that commit. Writes that change
 * many entries of a CA at once, or that change the answer for absent serials
 * (freeze, thaw, large imports of new certificates), append one CA-wide
 * entry instead: serial.len == 0 and op VG_CHANGE_CA. */
enum vg_change_op {
	VG_CHANGE_ADD = 1,     /* newly recorded, good */
	VG_CHANGE_REVOKE = 2,  /* revoked, or revocation details changed */
	VG_CHANGE_RELEASE = 3, /* certificateHold lifted: good again */
	VG_CHANGE_UPDATE = 4,  /* validity dates changed, status unchanged */
	VG_CHANGE_CA = 5,      /* anything of this CA may have changed */
	VG_CHANGE_REMOVE = 6,  /* removed: expired past [store] expired_retention (one serial,
	                        * or CA-wide when a commit removed many) */
};
struct vg_change {
	uint64_t counter;
	uint32_t ca_id;
	uint8_t op; /* enum vg_change_op */
	struct vg_serial serial;
};
/* vg_store_changes_foreach calls |cb| for every change with counter > |since|, in
 * counter order, until |cb| returns non-zero (which it then returns). When
 * the log no longer holds every change after |since| (its entries up to
 * vg_store_ident's log_floor were pruned), it returns -ERANGE without calling
 * |cb|: the caller must assume anything changed (drop its whole cache, build
 * a full CRL). */
int vg_store_changes_foreach(struct vg_txn *t, uint64_t since,
                             int (*cb)(const struct vg_change *c, void *arg), void *arg);

/* ---- Writing ------------------------------------------------------------
 *
 * Writes are done by vigil-store only. Each call commits in bounded
 * transactions (at most VG_TXN_MAX_CHANGES changes each) with LMDB's default
 * durable sync; a call that returns 0 is fully on disk. A call that fails part
 * way may have committed earlier batches, each of them complete and logged.
 * Every committed transaction appends one audit record.
 */
#define VG_TXN_MAX_CHANGES 50000

/* Who did what, recorded in the audit log with every commit of a call. */
struct vg_audit {
	const char *user;    /* login name */
	const char *command; /* the command line, as typed */
};

/* One certificate to record with vg_store_add. */
struct vg_add_item {
	struct vg_serial serial;
	struct vg_cert cert; /* status GOOD or REVOKED, with what is known */
	uint32_t line;       /* source line, for messages; 0 if none */
};

/* What a write did. */
struct vg_write_result {
	uint64_t added;     /* newly recorded */
	uint64_t revoked;   /* newly revoked, or hold replaced, or reason raised to keyCompromise */
	uint64_t released;  /* certificateHold lifted */
	uint64_t updated;   /* dates learned for a known certificate */
	uint64_t unchanged; /* already as asked */
	uint64_t kept;      /* asked to be good but revoked in the store: kept revoked */
	uint64_t skipped;   /* bulk by window: issuance time unknown */
	uint64_t spared;    /* bulk by window: in it, but one of vg_window.keep */
	uint64_t missing;   /* revoke by serial: not in the store, recorded as revoked */
	uint64_t commits;   /* transactions committed */
};

/* Progress callback for long writes: |done| of |total| items processed
 * (|total| 0 when unknown). */
typedef void (*vg_progress_fn)(uint64_t done, uint64_t total, void *arg);

/* vg_store_add records |n| certificates of CA |ca| (sync semantics): a new
 * serial is added as given; a known one is updated only where the item brings
 * news under the rules of vg_store_revoke (a revoked certificate stays
 * revoked; dates are learned when unknown). Items need not be sorted.
 * |res| may be NULL. */
int vg_store_add(struct vg_store *st, const char *ca, struct vg_add_item *items, size_t n,
                 const struct vg_audit *who, struct vg_write_result *res, vg_progress_fn progress,
                 void *parg);

/* Revocation details for vg_store_revoke and vg_store_revoke_window. */
struct vg_revocation {
	int64_t revoked_at;
	int8_t reason; /* enum vg_reason */
	bool has_invalidity;
	int64_t invalidity_date;
};

/* vg_store_revoke revokes |n| serials of CA |ca|. A serial not in the store
 * is recorded as revoked with VG_CERT_NOT_ISSUED (an investigation may name
 * certificates the CA's records never saw). A revoked certificate changes only
 * when certificateHold is replaced by a final reason or another reason is
 * replaced by keyCompromise (RFC 5280 §5.3.1, Baseline Requirements §4.9.1).
 * Revoking with certificateHold only affects good certificates. */
int vg_store_revoke(struct vg_store *st, const char *ca, const struct vg_serial *serials, size_t n,
                    const struct vg_revocation *rev, const struct vg_audit *who,
                    struct vg_write_result *res, vg_progress_fn progress, void *parg);

/* A revocation by issuance window: the certificates whose notBefore is in
 * [after, before) (|before| INT64_MAX for no bound), less the |n_keep|
 * serials of |keep| (the responder's own certificate, a subordinate CA's:
 * what a bulk revocation must not take down with the rest unless asked). */
struct vg_window {
	int64_t after, before;
	const struct vg_serial *keep;
	size_t n_keep;
};

/* vg_store_revoke_window revokes every certificate of |ca| in |win| under the
 * rules of vg_store_revoke. Certificates whose issuance time is unknown are
 * counted in |res->skipped|, those of |win->keep| in |res->spared|. */
int vg_store_revoke_window(struct vg_store *st, const char *ca, const struct vg_window *win,
                           const struct vg_revocation *rev, const struct vg_audit *who,
                           struct vg_write_result *res, vg_progress_fn progress, void *parg);

/* vg_store_release lifts certificateHold from |serial|: it is good again,
 * or, when it was known only from the hold (VG_CERT_NOT_ISSUED), absent
 * again. It returns -ENOENT if the serial is unknown and -EPERM if it is not
 * on hold. */
int vg_store_release(struct vg_store *st, const char *ca, const struct vg_serial *serial,
                     const struct vg_audit *who);

/* vg_store_freeze marks |ca| frozen at |when| (or thaws it when |frozen| is
 * false). Freezing a frozen CA keeps the first freeze time. */
int vg_store_freeze(struct vg_store *st, const char *ca, bool frozen, int64_t when,
                    const struct vg_audit *who);

/* ---- Audit and statistics -------------------------------------------- */

struct vg_audit_entry {
	uint64_t counter; /* change counter of the commit */
	int64_t time;
	char user[64];
	char ca[64];
	char action[32]; /* add, revoke, revoke-window, release, freeze, thaw, init */
	uint64_t count;  /* certificates changed by this commit */
	char command[512];
};
/* vg_store_audit_foreach calls |cb| for every audit record, oldest first. */
int vg_store_audit_foreach(struct vg_txn *t, int (*cb)(const struct vg_audit_entry *e, void *arg),
                           void *arg);

struct vg_store_info {
	uint64_t file_bytes; /* size of data.mdb */
	uint64_t used_bytes; /* pages in use * page size */
	uint64_t map_bytes;  /* current map size */
	uint64_t counter;
	uint32_t schema;
	uint64_t log_entries;
	uint64_t audit_entries;
	bool points_valid;        /* the point index is complete (else lookups use the B-tree) */
	uint32_t points_segments; /* its segment count */
	uint64_t page_size;
	uint64_t free_pages; /* pages below the last used one that are free for reuse: what
	                      * backup --compact would return */
};
int vg_store_info(struct vg_txn *t, struct vg_store_info *out);

/* vg_store_ca_foreach calls |cb| for every CA the store knows, by name. */
int vg_store_ca_foreach(struct vg_txn *t,
                        int (*cb)(const char *name, const struct vg_ca_state *s, void *arg),
                        void *arg);

/* ---- The store's life: identity, backup, restore, verify, prune ----------
 * (store/backup.c, store/verify.c, store/prune.c) */

/* Where a store comes from. Kept in meta; never changed by a status write. */
struct vg_store_ident {
	uint64_t store_id;     /* random: given by init, and anew to every backup copy */
	uint64_t backup_of;    /* a copy: the store_id of the store it was taken from */
	uint64_t base_counter; /* a copy: the change counter it was taken at */
	int64_t backup_time;   /* a copy: when */
	uint64_t log_floor;    /* change-log entries up to this counter were pruned */
	int64_t created;
};
int vg_store_ident(struct vg_txn *t, struct vg_store_ident *out);

/* vg_store_replaced tells whether the data file at the store's path is no
 * longer the one |st| opened (another inode: a restore put another store
 * there, or it was moved or removed). It costs one stat(2). */
bool vg_store_replaced(struct vg_store *st);

/* What vg_store_backup and vg_store_restore did. */
struct vg_backup_result {
	uint64_t counter;     /* the change counter the copy holds */
	uint64_t bytes;       /* size of its data file */
	uint64_t store_id;    /* the copy's own id */
	uint64_t old_counter; /* restore: the replaced store's counter */
	char moved_to[4160];  /* restore: where the replaced store was kept (PATH_MAX + 64) */
};

/* vg_store_backup copies the store into the new directory |dest| (it must not
 * exist), consistently, while readers read and another process writes
 * (LMDB's environment copy from one read snapshot; it never blocks the
 * writer): written as DEST.tmp-PID, fsynced, then renamed to |dest|. The copy
 * is a store: [store] path may name it. It gets its own store_id and records
 * the source's id and the counter it holds (vg_store_ident). |compact| drops
 * free pages (the way to return space: restore the compact copy). */
int vg_store_backup(struct vg_store *st, const char *dest, bool compact,
                    struct vg_backup_result *res, vg_progress_fn progress, void *parg);

/* vg_store_restore replaces the store at directory |path| with a copy of the
 * backup |backup| (checked with vg_store_verify first: a damaged backup is
 * refused with -EUCLEAN). The copy is prepared beside |path| and exchanged
 * with it in one rename (renameat2 RENAME_EXCHANGE) while holding the old
 * store's writer lock, so no write is half in; a writer that was waiting then
 * gets -ESTALE. The old store is kept as PATH.replaced-TIME (in
 * |res->moved_to|). The restore is one commit of the restored store, in its
 * audit log, with a CA-wide change for every CA. Readers (responder, crlgen)
 * see vg_store_replaced and reopen. */
int vg_store_restore(const char *path, const char *backup, const struct vg_audit *who,
                     struct vg_backup_result *res, vg_progress_fn progress, void *parg);

/* vg_store_verify walks every invariant the store relies on in |t|'s
 * snapshot and calls |report| for each difference found, with the database
 * and key (CA name or ca_id/serial in hexadecimal) it concerns and what is
 * wrong. It returns the number of differences, or a negative errno when the
 * walk itself failed; |*checked| counts the records it read. */
typedef void (*vg_verify_fn)(const char *db, const char *key, const char *what, void *arg);
int vg_store_verify(struct vg_txn *t, vg_verify_fn report, void *arg, uint64_t *checked);

/* One CA's pruning policy. */
struct vg_prune_ca {
	const char *name;
	/* Remove expired certificates of this CA at all: false for a CA whose
	 * absent serials are answered revoked (not_issued = revoked), which
	 * needs the store complete. */
	bool certs;
	/* The thisUpdate of the CA's last full CRL (crlgen's state): a revoked
	 * certificate goes only once a full CRL was issued after its notAfter
	 * (RFC 5280 §3.3); 0 if unknown, and then no revoked one goes. */
	int64_t last_full_crl;
};

struct vg_prune_result {
	uint64_t log_removed;     /* change-log entries */
	uint64_t log_floor;       /* the log now starts after this counter */
	uint64_t certs_removed;   /* expired certificates */
	uint64_t revoked_removed; /* ... of which revoked */
	uint64_t kept_no_crl;     /* expired revoked ones kept: no full CRL past expiry yet */
	uint64_t commits;
};

/* vg_store_prune removes change-log entries committed before |now| -
 * |log_retention|, and certificates whose notAfter is before |now| -
 * |expired_retention| under each CA's policy, in small write transactions
 * (a reader is never held up for long). Removed certificates are in the
 * change log (VG_CHANGE_REMOVE) and their CA is marked pruned. */
int vg_store_prune(struct vg_store *st, int64_t now, int64_t log_retention,
                   int64_t expired_retention, const struct vg_prune_ca *cas, size_t n_cas,
                   const struct vg_audit *who, struct vg_prune_result *res, vg_progress_fn progress,
                   void *parg);
