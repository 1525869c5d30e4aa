/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * DER, written and read: the writer (struct der_buf, below first) and the
 * ONE bounded reader (struct vg_cbs, below second) that every piece of
 * hand-read DER in Vigil goes through.
 *
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

/* ---- The reader ---------------------------------------------------------------- */

/*
 * The one bounded DER reader, in the style of BoringSSL's CBS
 * (include/openssl/bytestring.h): a struct vg_cbs is a view of bytes that
 * the reader consumes from the front. It borrows; it never allocates, never
 * recurses and never reads outside [p, p + len). Each function returns true
 * on success, as CBS does; on failure |cbs| is left as it was (the outputs
 * are then undefined), and the caller converts to -errno:
 *
 *     if (!vg_cbs_get_asn1(&c, &seq, DER_SEQUENCE)) return -EBADMSG;
 *
 * The caller loops over a SEQUENCE's elements, branches on CHOICEs and
 * OPTIONALs (vg_cbs_peek_asn1_tag), and checks for trailing data
 * (vg_cbs_len() == 0). Incoming DER that Vigil acts on as a whole is still
 * parsed by OpenSSL; this reader is for the places where a few fields are
 * picked out of DER that is large or already parsed:
 *
 *  - crlgen/publish.c reads the headers of a published CRL with pread to find
 *    its crlExtensions without reading its entries (vg_cbs_get_asn1_header);
 *  - responder/crlfile.c reads thisUpdate and nextUpdate from the first
 *    bytes of a CRL file (vg_cbs_get_asn1_header for the CertificateList and
 *    the tbsCertList, whose ends are not in the buffer, then
 *    vg_cbs_get_any_asn1_element for the fields before them);
 *  - responder/ocsp.c's certid_reparses checks a CertID's hash algorithm.
 *
 * Tags are the identifier octet, as the writer's DER_* constants: class,
 * constructed bit and a tag number below 31. What DER forbids is refused:
 * high tag numbers (0x1f form), the indefinite length (0x80), a long-form
 * length below 128 or with a leading zero octet, a length that does not fit
 * in a size_t. tests/fuzz/fuzz_der.c fuzzes it.
 */

struct vg_cbs {
	const uint8_t *p;
	size_t len;
};

/* vg_cbs_init sets |cbs| to the |len| bytes at |data|. It does not take
 * ownership of |data|. */
void vg_cbs_init(struct vg_cbs *cbs, const uint8_t *data, size_t len);

/* vg_cbs_data returns where the rest of |cbs| starts; vg_cbs_len how many
 * bytes are left. */
const uint8_t *vg_cbs_data(const struct vg_cbs *cbs);
size_t vg_cbs_len(const struct vg_cbs *cbs);

/* vg_cbs_skip drops |len| bytes from the front of |cbs|. */
bool vg_cbs_skip(struct vg_cbs *cbs, size_t len);

/* vg_cbs_get_u8 takes one octet. */
bool vg_cbs_get_u8(struct vg_cbs *cbs, uint8_t *out);

/* vg_cbs_get_bytes sets |out| to the next |len| bytes and drops them. */
bool vg_cbs_get_bytes(struct vg_cbs *cbs, struct vg_cbs *out, size_t len);

/* vg_cbs_get_asn1_header reads the identifier and length octets of the
 * element at the front of |cbs| and drops them only: |cbs| then starts at
 * the element's content, which need NOT be all there (a caller holding the
 * head of a large element reads on, or preads it). |*out_tag| is the
 * identifier octet, |*out_header_len| the size of the header and
 * |*out_content_len| the length it declares. Fails when the header itself is
 * cut or is not DER. Any output may be NULL. */
bool vg_cbs_get_asn1_header(struct vg_cbs *cbs, unsigned *out_tag, size_t *out_header_len,
                            size_t *out_content_len);

/* vg_cbs_get_time reads a UTCTime or GeneralizedTime element from the front
 * of |c| into |*t| (seconds since the epoch); false when the next element is
 * neither or does not parse (the CRL readers of crlgen's lint and the
 * responder's CRL files). */
bool vg_cbs_get_time(struct vg_cbs *c, int64_t *t);

/* vg_cbs_get_any_asn1_element sets |out| to the whole next element (header
 * and content) and drops it from |cbs|; |*out_tag| and |*out_header_len| as
 * above (either may be NULL). Fails when the content is not all in |cbs|. */
bool vg_cbs_get_any_asn1_element(struct vg_cbs *cbs, struct vg_cbs *out, unsigned *out_tag,
                                 size_t *out_header_len);

/* vg_cbs_get_asn1 sets |out| to the content of the next element, which must
 * have |tag|, and drops the element from |cbs|. vg_cbs_get_asn1_element does
 * the same with |out| the whole element, header included. */
bool vg_cbs_get_asn1(struct vg_cbs *cbs, struct vg_cbs *out, unsigned tag);
bool vg_cbs_get_asn1_element(struct vg_cbs *cbs, struct vg_cbs *out, unsigned tag);

/* vg_cbs_skip_asn1 drops the next element, which must have |tag|. */
bool vg_cbs_skip_asn1(struct vg_cbs *cbs, unsigned tag);

/* vg_cbs_peek_asn1_tag tells whether the next element's identifier octet is
 * |tag|, without reading further (false on an empty |cbs|). */
bool vg_cbs_peek_asn1_tag(const struct vg_cbs *cbs, unsigned tag);

/* vg_cbs_get_optional_asn1 reads an OPTIONAL element: when the next one has
 * |tag|, |out| is set to its content (|out| may be NULL) and |*present| to
 * true; otherwise |*present| is false and nothing is read. Fails only on an
 * element of |tag| that does not parse. */
bool vg_cbs_get_optional_asn1(struct vg_cbs *cbs, struct vg_cbs *out, bool *present, unsigned tag);

/* vg_cbs_get_asn1_uint64 reads an INTEGER that is non-negative, minimally
 * encoded and below 2^64. */
bool vg_cbs_get_asn1_uint64(struct vg_cbs *cbs, uint64_t *out);
