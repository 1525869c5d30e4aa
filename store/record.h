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
 */

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define REC_VERSION 1
#define REC_MAX (4 + 4 * 8)
#define CERT_KEY_MAX (4 + 1 + VG_SERIAL_MAX)

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
