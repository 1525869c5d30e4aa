/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The values every program shares and their text forms: serial numbers, RFC
 * 5280 reason codes, times, and CA ids; and the text codecs written once for
 * all: hex digits, percent- and base64-decoding, IMF-fixdate, ETags, http://
 * URLs. No LMDB; the header includes no OpenSSL (text.c uses its SHA-256 for
 * the ETag).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* A serial number's magnitude, big-endian, without leading zero octets. RFC
 * 5280 allows at most 20 octets; zero is one octet 0x00. */
#define VG_SERIAL_MAX 20
struct vg_serial {
	uint8_t len;
	uint8_t b[VG_SERIAL_MAX];
};

/* CRLReason codes of RFC 5280 §5.3.1. VG_REASON_NONE means no reason code
 * is given (the CRL entry omits the extension; OCSP omits revocationReason). */
enum vg_reason {
	VG_REASON_NONE = -1,
	VG_REASON_UNSPECIFIED = 0,
	VG_REASON_KEY_COMPROMISE = 1,
	VG_REASON_CA_COMPROMISE = 2,
	VG_REASON_AFFILIATION_CHANGED = 3,
	VG_REASON_SUPERSEDED = 4,
	VG_REASON_CESSATION_OF_OPERATION = 5,
	VG_REASON_CERTIFICATE_HOLD = 6,
	/* 7 is not used */
	VG_REASON_REMOVE_FROM_CRL = 8,
	VG_REASON_PRIVILEGE_WITHDRAWN = 9,
	VG_REASON_AA_COMPROMISE = 10,
};

/* vg_ca_id returns the stable 32-bit id of the CA named |name|. */
uint32_t vg_ca_id(const char *name);

/* vg_serial_parse reads a hexadecimal serial (as OpenSSL prints it; case and
 * ':' separators are ignored, leading zeros are dropped). Returns 0 or -EINVAL. */
int vg_serial_parse(const char *s, size_t len, struct vg_serial *out);

/* vg_serial_from_bytes sets |out| from a big-endian magnitude (the content of
 * a DER INTEGER, which may start with 0x00). Returns 0, or -EINVAL when
 * negative or longer than VG_SERIAL_MAX octets of magnitude. */
int vg_serial_from_bytes(const uint8_t *b, size_t len, struct vg_serial *out);

/* vg_serial_format writes the serial as uppercase hex, even length, into
 * |buf| (at least 2 * VG_SERIAL_MAX + 1 bytes). */
void vg_serial_format(const struct vg_serial *s, char *buf, size_t buflen);

/* vg_serial_cmp orders serials by value: negative, zero or positive as |a|
 * is below, equal to or above |b|. Magnitudes have no leading zero octets
 * (vg_serial_parse and vg_serial_from_bytes drop them), so the shorter is
 * the smaller; serials of one length compare octet by octet. */
int vg_serial_cmp(const struct vg_serial *a, const struct vg_serial *b);

/* vg_reason_parse maps an RFC 5280 reason name (case-insensitive) to its code.
 * Returns 0 or -EINVAL. vg_reason_name is its inverse ("unspecified" for
 * VG_REASON_NONE). */
int vg_reason_parse(const char *s, int8_t *out);
const char *vg_reason_name(int reason);

/* vg_time_parse reads RFC 3339 UTC (2026-11-27T10:00:00Z, fractions dropped,
 * +00:00 accepted), the OpenSSL index form YYMMDDHHMMSSZ, or GeneralizedTime
 * YYYYMMDDHHMMSSZ. Returns 0 or -EINVAL. */
int vg_time_parse(const char *s, int64_t *out);

/* vg_now is the current time, seconds since the epoch: time(2), unless the
 * environment variable VIGIL_NOW gives another (RFC 3339 or seconds), which
 * tests use to simulate months of certificate expiry and retention in
 * seconds. Only vigil-store's audit times and prune read it. */
int64_t vg_now(void);

/* vg_time_format writes |t| as RFC 3339 UTC into |buf| (at least 21 bytes). */
void vg_time_format(int64_t t, char *buf, size_t buflen);

/* ---- Text codecs ---------------------------------------------------------------- */

/* vg_hexval returns the value (0..15) of the hex digit |ch| (either case),
 * or -1 when |ch| is not one. */
int vg_hexval(int ch);

/* vg_pct_decode decodes the %XX escapes of |in|[0..len) into |out|, which
 * has room for at least |len| + 1 bytes, and NUL-terminates it. It returns
 * the decoded length, or -1 on a bad escape ('%' not followed by two hex
 * digits). An escaped NUL (%00) is decoded like any octet: it is written to
 * |out| and counted in the length, so a caller that needs a C string refuses
 * it by comparing strlen(out) with the length returned (pkcs11 URIs do), and
 * a caller that reads |out| as a C string stops at it (the OCSP GET path). */
ssize_t vg_pct_decode(const char *in, size_t len, char *out);

/* vg_b64_decode decodes standard or URL-safe base64 (the two alphabets may
 * be mixed; trailing '=' padding is optional) of |in|[0..len) into |out|,
 * which has room for at least 3 * (|len| / 4) + 2 bytes. It returns the
 * decoded length, or -1 on a character outside both alphabets (padding in
 * the middle included) or a single digit left over. Surplus bits of the last
 * digit are ignored. */
ssize_t vg_b64_decode(const char *in, size_t len, uint8_t *out);

/* vg_http_date writes |t| as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7:
 * "Sun, 06 Nov 1994 08:49:37 GMT") into |buf| (30 bytes suffice). */
void vg_http_date(time_t t, char *buf, size_t len);

/* An ETag: the first 16 octets of the SHA-256 of the body in lowercase hex,
 * quoted, NUL-terminated: 35 bytes. Strong, so a CDN may do range requests. */
#define VG_ETAG_LEN 35

/* vg_etag writes the ETag of |data|[0..len) into |out|. */
void vg_etag(const uint8_t *data, size_t len, char out[VG_ETAG_LEN]);

/* vg_etag_from_sha256 writes the ETag of a body whose SHA-256 is |digest|,
 * for callers that hash the body piece by piece (a CRL file read in chunks).
 * vg_etag(d, n, e) equals vg_etag_from_sha256(SHA256(d, n), e). */
void vg_etag_from_sha256(const uint8_t digest[32], char out[VG_ETAG_LEN]);

/* An http:// URL (vigil.conf's [edge] purge_varnish, purge_nginx). */
struct vg_http_url {
	char host[256];      /* name or address, without [] */
	int port;            /* default 80 */
	char authority[270]; /* host[:port] as written, for the Host header */
	char path[256];      /* "/" when absent */
};
/* vg_http_url_parse parses the |len| bytes at |url| (http://HOST[:PORT][/PATH]);
 * 0 or -EINVAL. */
int vg_http_url_parse(const char *url, size_t len, struct vg_http_url *out);
/* vg_http_url_list parses a comma- (or space-) separated list of such URLs
 * into |out| (at most |max|): their number, -EINVAL or -E2BIG. */
int vg_http_url_list(const char *list, struct vg_http_url *out, int max);
