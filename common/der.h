/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A small, bounded DER writer in the style of BoringSSL's CBB, for the two
 * places Vigil writes DER itself: CRLs of millions of entries, which are
 * streamed rather than built as OpenSSL objects, and the responder's signed
 * OCSP answers (responder/ocsp.c), built per request without the cost of
 * OpenSSL's ASN.1 objects.
 *
 * Two pieces:
 *
 *  - struct der_buf builds one small element (a CRL entry, an extension, an
 *    AlgorithmIdentifier) in a caller-supplied fixed buffer. der_open starts
 *    a constructed element whose length is not yet known; der_close fixes its
 *    length, moving the content right when the length needs more than one
 *    octet, as CBB_flush does. Nothing is allocated. Once an operation fails
 *    (the buffer is full, nesting too deep) the der_buf is in an error state,
 *    every later call fails, and der_ok() tells.
 *
 *  - der_hdr_len and der_put_hdr write the header of an element whose length
 *    the caller computed beforehand: that is how the CRL writer emits the
 *    SEQUENCE around a million entries without holding them.
 *
 * Functions returning bool return true on success, as CBB does; the caller
 * converts to -errno.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DER_BOOLEAN 0x01u
#define DER_INTEGER 0x02u
#define DER_BIT_STRING 0x03u
#define DER_OCTET_STRING 0x04u
#define DER_NULL 0x05u
#define DER_OID 0x06u
#define DER_ENUMERATED 0x0au
#define DER_IA5STRING 0x16u
#define DER_UTCTIME 0x17u
#define DER_GENERALIZEDTIME 0x18u
#define DER_SEQUENCE 0x30u
#define DER_SET 0x31u
/* Context-specific tags: DER_CTX(n) primitive, DER_CTX_CONS(n) constructed. */
#define DER_CTX(n) (0x80u | (unsigned)(n))
#define DER_CTX_CONS(n) (0xa0u | (unsigned)(n))

/* Nesting depth a der_buf supports; CRL entries need 4, an OCSPResponse
 * (responder/ocsp.c) 12. */
#define DER_MAX_DEPTH 16

struct der_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int depth;
	bool err;
	size_t open[DER_MAX_DEPTH]; /* offset of each open element's length octet */
};

/* der_init points |b| at |mem| of |cap| bytes. It does not take ownership. */
void der_init(struct der_buf *b, uint8_t *mem, size_t cap);

/* der_ok returns whether every operation on |b| succeeded and every opened
 * element was closed. */
bool der_ok(const struct der_buf *b);

/* der_open starts a constructed element with |tag| (one octet, tags < 31). */
bool der_open(struct der_buf *b, unsigned tag);

/* der_close ends the innermost open element and writes its length. */
bool der_close(struct der_buf *b);

/* der_add_bytes appends |len| raw bytes (already DER) to |b|. */
bool der_add_bytes(struct der_buf *b, const void *data, size_t len);

/* der_reserve appends |len| bytes for the caller to fill in (a signature, an
 * i2d encoding) and returns where they start, or NULL. */
uint8_t *der_reserve(struct der_buf *b, size_t len);

/* der_unreserve drops the last |len| bytes of the innermost open element:
 * what der_reserve took but the caller did not use. */
bool der_unreserve(struct der_buf *b, size_t len);

/* der_add_tlv appends a primitive element |tag| with |len| content bytes. */
bool der_add_tlv(struct der_buf *b, unsigned tag, const void *data, size_t len);

/* der_add_uint appends a non-negative INTEGER (or ENUMERATED, by |tag|)
 * with the value |v|, minimally encoded. */
bool der_add_uint(struct der_buf *b, unsigned tag, uint64_t v);

/* der_add_uint_bytes appends an INTEGER whose magnitude is the big-endian
 * |mag| of |len| bytes (no leading zero octets, |len| >= 1): a 0x00 octet is
 * prepended when the top bit is set, so the value stays positive. */
bool der_add_uint_bytes(struct der_buf *b, const uint8_t *mag, size_t len);

/* der_add_time appends |t| (seconds since the epoch, UTC) as an X.509 Time:
 * UTCTime for the years 1950 to 2049, GeneralizedTime otherwise (RFC 5280
 * §4.1.2.5). With |generalized| it is always GeneralizedTime (RFC 5280 §5.3.2,
 * invalidityDate). Fails for years outside 0 to 9999. */
bool der_add_time(struct der_buf *b, int64_t t, bool generalized);

/* der_time_len returns the encoded size of der_add_time(|t|, |generalized|),
 * or 0 when |t| is out of range. */
size_t der_time_len(int64_t t, bool generalized);

/* der_hdr_len returns the size of the tag and length octets of an element
 * with |content_len| bytes of content. */
size_t der_hdr_len(size_t content_len);

/* der_put_hdr writes the tag and length octets of an element of |tag| with
 * |content_len| content bytes to |out| (at least 9 bytes) and returns how
 * many were written. */
size_t der_put_hdr(uint8_t *out, unsigned tag, size_t content_len);

/* der_gmtime splits |t| into calendar fields. Returns false for years
 * outside 0 to 9999. */
bool der_gmtime(int64_t t, int *year, int *mon, int *day, int *hour, int *min, int *sec);
