/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * On-disk encodings of the store's keys and values. Internal to store/ (and
 * its unit and fuzz tests). Every integer is big-endian; no struct is ever
 * copied to disk as is.
 *
 * Certificate key:  ca_id u32 | len u8 | serial magnitude (len octets)
 *   Ordering by memcmp is ordering by CA, then by serial as an integer, since
 *   serials carry no leading zero octets and shorter means smaller.
 * Certificate value (also the value of the revoked-only index):
 *   version u8 (=1) | status u8 | reason u8 (0xff none) | flags u8 |
 *   revoked_at i64 (if revoked) | invalidity i64 (if flag) |
 *   not_before i64 (if flag) | not_after i64 (if flag)
 * CA record (key: the CA's name):
 *   version u8 (=1) | flags u8 (1 frozen, 2 pruned) | reserved u16 | id u32 | frozen_at i64 |
 *   n_certs u64 | n_revoked u64 | n_hold u64
 * Change-log entry:  key counter u64 | seq u32;
 *   value ca_id u32 | op u8 | len u8 | serial (len octets, 0 for CA-wide)
 * Audit record:      key counter u64;
 *   value time i64 | count u64 | user\0 ca\0 action\0 command
 */

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define REC_VERSION 1
#define REC_MAX (4 + 4 * 8 + 1)
#define CERT_KEY_MAX (4 + 1 + VG_SERIAL_MAX)
#define CA_REC_LEN 40
#define LOG_KEY_LEN 12
#define LOG_VAL_MAX (6 + VG_SERIAL_MAX)

/* rec_encode writes |c| into |buf| (REC_MAX bytes) and returns its length. */
size_t rec_encode(const struct vg_cert *c, uint8_t *buf);

/* rec_decode reads a value of exactly |len| bytes into |out|. Returns 0, or
 * -EBADMSG when malformed (wrong length, unknown version or status, unknown
 * flags, revoked without a time). */
int rec_decode(const uint8_t *buf, size_t len, struct vg_cert *out);

/* cert_key writes the key of (|ca_id|, |s|) into |buf| (CERT_KEY_MAX bytes)
 * and returns its length. */
size_t cert_key(uint32_t ca_id, const struct vg_serial *s, uint8_t *buf);

/* cert_key_decode splits a certificate key. Returns 0 or -EBADMSG. */
int cert_key_decode(const uint8_t *buf, size_t len, uint32_t *ca_id, struct vg_serial *s);

/* rec_ca_encode writes |s| into |b| (CA_REC_LEN bytes). */
void rec_ca_encode(const struct vg_ca_state *s, uint8_t *b);

/* rec_ca_decode reads a CA record. Returns 0 or -EBADMSG. */
int rec_ca_decode(const uint8_t *b, size_t len, struct vg_ca_state *s);

/* rec_log_key writes the change-log key (|counter|, |seq|) into |kb|
 * (LOG_KEY_LEN bytes). */
void rec_log_key(uint64_t counter, uint32_t seq, uint8_t *kb);

/* rec_log_encode writes the value of a change-log entry into |vb|
 * (LOG_VAL_MAX bytes) and returns its length; |s| NULL for a CA-wide one. */
size_t rec_log_encode(uint32_t ca_id, uint8_t op, const struct vg_serial *s, uint8_t *vb);

/* rec_log_decode reads a change-log entry. Returns 0 or -EBADMSG. */
int rec_log_decode(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
                   struct vg_change *c);

/* rec_audit_encode returns the value of an audit record (malloc'd, length in
 * |*len|), or NULL when out of memory. Fields are cut to what
 * struct vg_audit_entry holds. */
uint8_t *rec_audit_encode(int64_t time, uint64_t count, const char *user, const char *ca,
                          const char *action, const char *command, size_t *len);

/* rec_audit_decode reads an audit record. Returns 0 or -EBADMSG. */
int rec_audit_decode(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
                     struct vg_audit_entry *e);

static inline void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

static inline uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}
