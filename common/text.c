/* SPDX-License-Identifier: Apache-2.0 */
/* Serial numbers, reasons and times: the text forms of the store's values;
 * hex, percent and base64 decoding, HTTP dates and ETags. */
#include "common/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

uint32_t vg_ca_id(const char *name)
{
	/* FNV-1a: stable across versions and machines. The config refuses two CA
	 * names with the same id, and the store refuses to record a second name
	 * under an id it already holds. */
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

int vg_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int vg_serial_parse(const char *s, size_t len, struct vg_serial *out)
{
	/* Collect nibbles right to left so that odd lengths work. */
	uint8_t nib[2 * VG_SERIAL_MAX];
	size_t n = 0;
	bool any = false, started = false;
	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)s[i];
		if (ch == ':')
			continue;
		int v = vg_hexval(ch);
		if (v < 0)
			return -EINVAL;
		any = true;
		if (!started && v == 0)
			continue;
		started = true;
		if (n == sizeof(nib))
			return -EINVAL;
		nib[n++] = (uint8_t)v;
	}
	if (!any)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (n == 0) {
		out->len = 1;
		return 0;
	}
	out->len = (uint8_t)((n + 1) / 2);
	size_t o = out->len;
	for (size_t i = n; i > 0;) {
		uint8_t lo = nib[--i];
		uint8_t hi = i > 0 ? nib[--i] : 0;
		out->b[--o] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int vg_serial_from_bytes(const uint8_t *b, size_t len, struct vg_serial *out)
{
	if (len == 0 || (b[0] & 0x80))
		return -EINVAL;
	while (len > 1 && b[0] == 0) {
		b++;
		len--;
	}
	if (len > VG_SERIAL_MAX)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->len = (uint8_t)len;
	memcpy(out->b, b, len);
	return 0;
}

void vg_serial_format(const struct vg_serial *s, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < s->len && o + 2 < buflen; i++) {
		buf[o++] = hex[s->b[i] >> 4];
		buf[o++] = hex[s->b[i] & 15];
	}
	if (buflen)
		buf[o < buflen ? o : buflen - 1] = '\0';
}

int vg_serial_cmp(const struct vg_serial *a, const struct vg_serial *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->b, b->b, a->len);
}

static const char *const reason_names[] = {
        [0] = "unspecified",        [1] = "keyCompromise", [2] = "cACompromise",
        [3] = "affiliationChanged", [4] = "superseded",    [5] = "cessationOfOperation",
        [6] = "certificateHold",    [8] = "removeFromCRL", [9] = "privilegeWithdrawn",
        [10] = "aACompromise",
};

int vg_reason_parse(const char *s, int8_t *out)
{
	for (size_t i = 0; i < sizeof(reason_names) / sizeof(reason_names[0]); i++)
		if (reason_names[i] && i != VG_REASON_REMOVE_FROM_CRL &&
		    strcasecmp(s, reason_names[i]) == 0) {
			*out = (int8_t)i;
			return 0;
		}
	/* removeFromCRL is meaningful only in delta CRLs; it is never a stored reason. */
	return -EINVAL;
}

const char *vg_reason_name(int reason)
{
	if (reason < 0 || reason > 10 || !reason_names[reason])
		return "unspecified";
	return reason_names[reason];
}

/* days_from_civil is Howard Hinnant's algorithm: no timegm, no TZ. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static int mk_time(int y, int mo, int d, int h, int mi, int se, int64_t *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -EINVAL;
	if (se == 60)
		se = 59; /* a leap second is not representable in Unix time */
	*out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
	return 0;
}

int64_t vg_now(void)
{
	const char *e = getenv("VIGIL_NOW");
	int64_t t;
	char *end;
	if (e && *e) {
		long long v = strtoll(e, &end, 10);
		if (*end == '\0' && v > 0)
			return v;
		if (vg_time_parse(e, &t) == 0)
			return t;
	}
	return (int64_t)time(NULL);
}

int vg_time_parse(const char *s, int64_t *out)
{
	size_t n = strlen(s);
	int y, mo, d, h, mi, se;
	/* YYMMDDHHMMSSZ (UTCTime, as in index.txt) */
	if (n == 13 && s[12] == 'Z') {
		if (!digits(s, 2, &y) || !digits(s + 2, 2, &mo) || !digits(s + 4, 2, &d) ||
		    !digits(s + 6, 2, &h) || !digits(s + 8, 2, &mi) || !digits(s + 10, 2, &se))
			return -EINVAL;
		y += y < 50 ? 2000 : 1900; /* RFC 5280 §4.1.2.5.1 */
		return mk_time(y, mo, d, h, mi, se, out);
	}
	/* YYYYMMDDHHMMSSZ (GeneralizedTime) */
	if (n == 15 && s[14] == 'Z') {
		if (!digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d) ||
		    !digits(s + 8, 2, &h) || !digits(s + 10, 2, &mi) || !digits(s + 12, 2, &se))
			return -EINVAL;
		return mk_time(y, mo, d, h, mi, se, out);
	}
	/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00|-00:00) */
	if (n >= 20 && s[4] == '-' && s[7] == '-' &&
	    (s[10] == 'T' || s[10] == 't' || s[10] == ' ') && s[13] == ':' && s[16] == ':') {
		if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
		    !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
			return -EINVAL;
		const char *p = s + 19;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			while (isdigit((unsigned char)*p))
				p++;
		}
		if (!(strcmp(p, "Z") == 0 || strcmp(p, "z") == 0 || strcmp(p, "+00:00") == 0 ||
		      strcmp(p, "-00:00") == 0))
			return -EINVAL;
		return mk_time(y, mo, d, h, mi, se, out);
	}
	return -EINVAL;
}

void vg_time_format(int64_t t, char *buf, size_t buflen)
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t rem = t - days * 86400;
	/* civil_from_days, Hinnant */
	int64_t z = days + 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	const unsigned d = doy - (153 * mp + 2) / 5 + 1;
	const unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(buf, buflen, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
	         (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

/* ---- Text codecs ---------------------------------------------------------------- */

ssize_t vg_pct_decode(const char *in, size_t len, char *out)
{
	const char *pct = memchr(in, '%', len);
	if (!pct) {
		/* Most clients send base64 with no escapes (or only in places). */
		memcpy(out, in, len);
		out[len] = '\0';
		return (ssize_t)len;
	}
	size_t o = (size_t)(pct - in);
	memcpy(out, in, o);
	for (size_t i = o; i < len; i++) {
		if (in[i] == '%') {
			int h, l;
			if (i + 2 >= len || (h = vg_hexval((unsigned char)in[i + 1])) < 0 ||
			    (l = vg_hexval((unsigned char)in[i + 2])) < 0)
				return -1;
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/* Standard and URL-safe base64 digits, plus one (0: not a digit). A table:
 * every OCSP GET decodes a hundred-odd digits. */
static const uint8_t b64_digit[256] = {
        ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,
        ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
        ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
        ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,
        ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35,
        ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
        ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
        ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
        ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63,
        ['-'] = 63, ['/'] = 64, ['_'] = 64,
};

static inline int b64_val(unsigned char ch)
{
	return b64_digit[ch] - 1;
}

ssize_t vg_b64_decode(const char *in, size_t len, uint8_t *out)
{
	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	const unsigned char *u = (const unsigned char *)in;
	size_t o = 0, i = 0;
	/* Four digits, three octets at a time; then what is left, bit by bit. */
	for (; i + 4 <= len; i += 4) {
		int a = b64_val(u[i]), b = b64_val(u[i + 1]), c = b64_val(u[i + 2]),
		    d = b64_val(u[i + 3]);
		if ((a | b | c | d) < 0)
			return -1;
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	uint32_t acc = 0;
	int bits = 0;
	for (; i < len; i++) {
		int v = b64_val(u[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

void vg_http_date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
	         mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void vg_etag_from_sha256(const uint8_t digest[32], char out[VG_ETAG_LEN])
{
	static const char hex[] = "0123456789abcdef";
	out[0] = '"';
	for (int i = 0; i < 16; i++) {
		out[1 + 2 * i] = hex[digest[i] >> 4];
		out[2 + 2 * i] = hex[digest[i] & 15];
	}
	out[33] = '"';
	out[34] = '\0';
}

void vg_etag(const uint8_t *data, size_t len, char out[VG_ETAG_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
		memset(md, 0, sizeof(md)); /* only on no memory; an ETag is still written */
	vg_etag_from_sha256(md, out);
}

int vg_http_url_parse(const char *url, size_t len, struct vg_http_url *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 8 || strncasecmp(url, "http://", 7) != 0)
		return -EINVAL;
	const char *h = url + 7, *end = url + len;
	const char *slash = memchr(h, '/', (size_t)(end - h));
	const char *hend = slash ? slash : end;
	const char *colon = NULL;
	if (h < hend && *h == '[') {
		const char *rb = memchr(h, ']', (size_t)(hend - h));
		if (!rb)
			return -EINVAL;
		colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
		if (rb + 1 < hend && !colon)
			return -EINVAL;
		if ((size_t)(rb - h - 1) >= sizeof(out->host) || rb == h + 1)
			return -EINVAL;
		memcpy(out->host, h + 1, (size_t)(rb - h - 1));
	} else {
		colon = memchr(h, ':', (size_t)(hend - h));
		const char *he = colon ? colon : hend;
		if (he == h || (size_t)(he - h) >= sizeof(out->host))
			return -EINVAL;
		memcpy(out->host, h, (size_t)(he - h));
	}
	for (const char *q = out->host; *q; q++)
		if (*q <= ' ' || *q == '@' || *q == '/' || *q == '?' || *q == '#' || *q == 0x7f)
			return -EINVAL;
	out->port = 80;
	if (colon) {
		int port = 0;
		if (colon + 1 == hend || hend - colon > 6)
			return -EINVAL;
		for (const char *q = colon + 1; q < hend; q++) {
			if (*q < '0' || *q > '9')
				return -EINVAL;
			port = port * 10 + (*q - '0');
		}
		if (port < 1 || port > 65535)
			return -EINVAL;
		out->port = port;
	}
	size_t plen = slash ? (size_t)(end - slash) : 1;
	if (plen >= sizeof(out->path))
		return -EINVAL;
	memcpy(out->path, slash ? slash : "/", plen);
	for (const char *q = out->path; *q; q++)
		if (*q <= ' ' || *q == 0x7f)
			return -EINVAL;
	/* The authority as a Host header carries it (RFC 9110 7.2). */
	snprintf(out->authority, sizeof(out->authority), "%.*s", (int)(hend - h), h);
	return 0;
}

int vg_http_url_list(const char *list, struct vg_http_url *out, int max)
{
	int n = 0;
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ')
			e++;
		if (n == max)
			return -E2BIG;
		if (vg_http_url_parse(p, (size_t)(e - p), &out[n]) < 0)
			return -EINVAL;
		n++;
		p = e;
	}
	return n;
}
