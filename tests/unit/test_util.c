/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: serials, times, reasons, on-disk records, index.txt lines, log
 * line budgets, the mode check of key and PIN files, the text codecs of
 * common/text.h (hex, percent, base64, HTTP dates, ETags). */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/cli/index.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/pkcs11.h"
#include "common/pki.h"
#include "common/signer.h"
#include "common/text.h"
#include "store/record.h"
#include "store/store.h"

static void test_serial_parse(void **state)
{
	(void)state;
	struct vg_serial s;
	char buf[64];
	assert_int_equal(vg_serial_parse("1000", 4, &s), 0);
	assert_int_equal(s.len, 2);
	assert_int_equal(s.b[0], 0x10);
	/* Leading zeros, case and colons are ignored; odd lengths work. */
	assert_int_equal(vg_serial_parse("00:0a:Bc", 8, &s), 0);
	vg_serial_format(&s, buf, sizeof(buf));
	assert_string_equal(buf, "0ABC");
	assert_int_equal(s.len, 2);
	assert_int_equal(vg_serial_parse("0", 1, &s), 0);
	assert_int_equal(s.len, 1);
	assert_int_equal(s.b[0], 0);
	/* 20 octets is the maximum; 21 significant octets is refused. */
	const char *max = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";
	assert_int_equal(vg_serial_parse(max, strlen(max), &s), 0);
	assert_int_equal(s.len, 20);
	const char *over = "1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";
	assert_int_equal(vg_serial_parse(over, strlen(over), &s), -EINVAL);
	const char *padded = "000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";
	assert_int_equal(vg_serial_parse(padded, strlen(padded), &s), 0);
	assert_int_equal(vg_serial_parse("", 0, &s), -EINVAL);
	assert_int_equal(vg_serial_parse("12G4", 4, &s), -EINVAL);
	assert_int_equal(vg_serial_parse("-12", 3, &s), -EINVAL);
	assert_int_equal(vg_serial_parse(":", 1, &s), -EINVAL);
}

static void test_serial_from_bytes(void **state)
{
	(void)state;
	struct vg_serial s;
	uint8_t der[] = {0x00, 0x80, 0x01};
	assert_int_equal(vg_serial_from_bytes(der, 3, &s), 0);
	assert_int_equal(s.len, 2);
	assert_int_equal(s.b[0], 0x80);
	uint8_t neg[] = {0x80};
	assert_int_equal(vg_serial_from_bytes(neg, 1, &s), -EINVAL);
	assert_int_equal(vg_serial_from_bytes(der, 0, &s), -EINVAL);
	uint8_t zero[] = {0x00, 0x00};
	assert_int_equal(vg_serial_from_bytes(zero, 2, &s), 0);
	assert_int_equal(s.len, 1);
}

static void test_time(void **state)
{
	(void)state;
	int64_t t;
	char buf[32];
	assert_int_equal(vg_time_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(vg_time_parse("2026-11-27T10:00:00Z", &t), 0);
	assert_int_equal(t, 1795773600);
	vg_time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-27T10:00:00Z");
	assert_int_equal(vg_time_parse("261127100000Z", &t), 0);
	assert_int_equal(t, 1795773600);
	assert_int_equal(vg_time_parse("20261127100000Z", &t), 0);
	assert_int_equal(t, 1795773600);
	assert_int_equal(vg_time_parse("2026-11-27T10:00:00.123+00:00", &t), 0);
	assert_int_equal(t, 1795773600);
	/* UTCTime years 50..99 are 19xx (RFC 5280 §4.1.2.5.1). */
	assert_int_equal(vg_time_parse("500101000000Z", &t), 0);
	vg_time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "1950-01-01T00:00:00Z");
	assert_int_equal(vg_time_parse("99991231235959Z0", &t), -EINVAL);
	assert_int_equal(vg_time_parse("9999123123595Z", &t), -EINVAL);
	assert_int_equal(vg_time_parse("261127100000z", &t), -EINVAL);
	assert_int_equal(vg_time_parse("2026-02-30T00:00:00Z", &t), -EINVAL);
	assert_int_equal(vg_time_parse("2024-02-29T00:00:00Z", &t), 0);
	assert_int_equal(vg_time_parse("2023-02-29T00:00:00Z", &t), -EINVAL);
	assert_int_equal(vg_time_parse("2026-11-27T10:00:00+01:00", &t), -EINVAL);
	assert_int_equal(vg_time_parse("yesterday", &t), -EINVAL);
	assert_int_equal(vg_time_parse("", &t), -EINVAL);
}

static void test_generalized_far(void **state)
{
	(void)state;
	int64_t t;
	char buf[32];
	/* GeneralizedTime far in the future, as some CAs use for notAfter. */
	assert_int_equal(vg_time_parse("99991231235959Z", &t), 0);
	vg_time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "9999-12-31T23:59:59Z");
	assert_int_equal(vg_time_parse("20991331235959Z", &t), -EINVAL); /* month 13 */
	assert_int_equal(vg_time_parse("20991231235959Z", &t), 0);
	vg_time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "2099-12-31T23:59:59Z");
}

static void test_reason(void **state)
{
	(void)state;
	int8_t r;
	assert_int_equal(vg_reason_parse("keyCompromise", &r), 0);
	assert_int_equal(r, 1);
	assert_int_equal(vg_reason_parse("cacompromise", &r), 0);
	assert_int_equal(r, 2);
	assert_int_equal(vg_reason_parse("aACompromise", &r), 0);
	assert_int_equal(r, 10);
	assert_int_equal(vg_reason_parse("removeFromCRL", &r), -EINVAL);
	assert_int_equal(vg_reason_parse("stolen", &r), -EINVAL);
	assert_string_equal(vg_reason_name(6), "certificateHold");
	assert_string_equal(vg_reason_name(VG_REASON_NONE), "unspecified");
	assert_string_equal(vg_reason_name(7), "unspecified");
}

static void test_record(void **state)
{
	(void)state;
	uint8_t buf[REC_MAX];
	struct vg_cert c = {.status = VG_STATUS_REVOKED,
	                    .reason = VG_REASON_KEY_COMPROMISE,
	                    .flags = VG_CERT_HAS_INVALIDITY | VG_CERT_HAS_NOT_AFTER,
	                    .revoked_at = 1700000000,
	                    .invalidity_date = 1690000000,
	                    .not_after = -5};
	size_t n = rec_encode(&c, buf);
	assert_int_equal(n, 4 + 3 * 8);
	struct vg_cert d;
	assert_int_equal(rec_decode(buf, n, &d), 0);
	assert_int_equal(d.status, c.status);
	assert_int_equal(d.reason, c.reason);
	assert_int_equal(d.flags, c.flags);
	assert_int_equal(d.revoked_at, c.revoked_at);
	assert_int_equal(d.invalidity_date, c.invalidity_date);
	assert_int_equal(d.not_after, c.not_after);
	/* A good certificate with nothing known is 4 bytes. */
	struct vg_cert g = {.status = VG_STATUS_GOOD, .reason = VG_REASON_NONE};
	assert_int_equal(rec_encode(&g, buf), 4);
	assert_int_equal(rec_decode(buf, 4, &d), 0);
	assert_int_equal(d.reason, VG_REASON_NONE);
	/* Malformed: truncated, trailing bytes, bad version, status, reason, flags. */
	n = rec_encode(&c, buf);
	assert_int_equal(rec_decode(buf, n - 1, &d), -EBADMSG);
	assert_int_equal(rec_decode(buf, 3, &d), -EBADMSG);
	uint8_t bad[REC_MAX + 1];
	memcpy(bad, buf, n);
	bad[n] = 0;
	assert_int_equal(rec_decode(bad, n + 1, &d), -EBADMSG);
	bad[0] = 2;
	assert_int_equal(rec_decode(bad, n, &d), -EBADMSG);
	memcpy(bad, buf, n);
	bad[1] = 2;
	assert_int_equal(rec_decode(bad, n, &d), -EBADMSG);
	memcpy(bad, buf, n);
	bad[2] = 7;
	assert_int_equal(rec_decode(bad, n, &d), -EBADMSG);
	memcpy(bad, buf, n);
	bad[3] |= 0x80;
	assert_int_equal(rec_decode(bad, n, &d), -EBADMSG);
}

static void test_cert_key(void **state)
{
	(void)state;
	uint8_t k1[CERT_KEY_MAX], k2[CERT_KEY_MAX];
	struct vg_serial a, b;
	vg_serial_parse("FF", 2, &a);
	vg_serial_parse("0100", 4, &b);
	size_t l1 = cert_key(7, &a, k1), l2 = cert_key(7, &b, k2);
	/* 0xFF < 0x0100 as integers, and so as keys. */
	assert_true(memcmp(k1, k2, l1 < l2 ? l1 : l2) < 0);
	uint32_t id;
	struct vg_serial s;
	assert_int_equal(cert_key_decode(k2, l2, &id, &s), 0);
	assert_int_equal(id, 7);
	assert_int_equal(s.len, 2);
	assert_int_equal(cert_key_decode(k2, l2 - 1, &id, &s), -EBADMSG);
}

static int parse(const char *text, struct vg_add_item *it, char *err)
{
	char line[512];
	snprintf(line, sizeof(line), "%s", text);
	return index_parse_line(line, strlen(line), it, NULL, err, 256);
}

static void test_index_line(void **state)
{
	(void)state;
	struct vg_add_item it;
	char err[256];
	assert_int_equal(parse("V\t271127234310Z\t\t1000\tunknown\t/CN=a", &it, err), 0);
	assert_int_equal(it.cert.status, VG_STATUS_GOOD);
	assert_true(it.cert.flags & VG_CERT_HAS_NOT_AFTER);
	assert_int_equal(parse("R\t271127234310Z\t261127234310Z\t1001\tunknown\t/CN=a", &it, err),
	                 0);
	assert_int_equal(it.cert.status, VG_STATUS_REVOKED);
	assert_int_equal(it.cert.reason, VG_REASON_NONE);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,superseded\t1001\tunknown\t/CN=a", &it, err),
	        0);
	assert_int_equal(it.cert.reason, VG_REASON_SUPERSEDED);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,CACompromise\t1\tunknown\t/CN=a", &it, err),
	        0);
	assert_int_equal(it.cert.reason, VG_REASON_CA_COMPROMISE);
	assert_int_equal(parse("R\t271127234310Z\t261127234310Z,holdInstruction,"
	                       "holdInstructionReject\t1\tunknown\t/CN=a",
	                       &it, err),
	                 0);
	assert_int_equal(it.cert.reason, VG_REASON_CERTIFICATE_HOLD);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,keyTime,20240101000000Z\t1\tunknown\t/"
	              "CN=a",
	              &it, err),
	        0);
	assert_int_equal(it.cert.reason, VG_REASON_KEY_COMPROMISE);
	assert_true(it.cert.flags & VG_CERT_HAS_INVALIDITY);
	assert_int_equal(it.cert.invalidity_date, 1704067200);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,CAkeyTime,20240101000000Z\t1\tunknown"
	              "\t/CN=a",
	              &it, err),
	        0);
	assert_int_equal(it.cert.reason, VG_REASON_CA_COMPROMISE);
	/* CRLF endings and blank lines. */
	assert_int_equal(parse("V\t271127234310Z\t\t1000\tunknown\t/CN=a\r", &it, err), 0);
	assert_int_equal(parse("", &it, err), 1);
	/* Malformed. */
	assert_int_equal(parse("X\t271127234310Z\t\t1000\tunknown\t/CN=a", &it, err), -EINVAL);
	assert_int_equal(parse("V\t271127234310Z\t\t1000\tunknown", &it, err), -EINVAL);
	assert_int_equal(parse("V\t271127234310Z\t\t1000\tunknown\t/CN=a\textra", &it, err),
	                 -EINVAL);
	assert_int_equal(parse("V\tbadtime\t\t1000\tunknown\t/CN=a", &it, err), -EINVAL);
	assert_int_equal(parse("V\t271127234310Z\t\tXYZ\tunknown\t/CN=a", &it, err), -EINVAL);
	assert_int_equal(parse("R\t271127234310Z\t\t1000\tunknown\t/CN=a", &it, err), -EINVAL);
	assert_int_equal(parse("V\t271127234310Z\t261127234310Z\t1000\tunknown\t/CN=a", &it, err),
	                 -EINVAL);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,stolen\t1\tunknown\t/CN=a", &it, err),
	        -EINVAL);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,keyTime\t1\tunknown\t/CN=a", &it, err),
	        -EINVAL);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,superseded,x\t1\tunknown\t/CN=a", &it, err),
	        -EINVAL);
	assert_int_equal(
	        parse("R\t271127234310Z\t261127234310Z,keyTime,bad\t1\tunknown\t/CN=a", &it, err),
	        -EINVAL);
}

/* stderr sent to a file for a while, to read what was logged. */
struct capture {
	FILE *f;
	int saved;
};

static void capture_start(struct capture *c)
{
	c->f = tmpfile();
	assert_non_null(c->f);
	fflush(stderr);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(fileno(c->f), 2), 2);
}

static size_t capture_end(struct capture *c, char *out, size_t cap)
{
	fflush(stderr);
	assert_int_equal(dup2(c->saved, 2), 2);
	close(c->saved);
	rewind(c->f);
	size_t n = fread(out, 1, cap - 1, c->f);
	out[n] = '\0';
	fclose(c->f);
	return n;
}

static int count_of(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_log_budget(void **state)
{
	(void)state;
	struct vg_log_budget b = {0};
	const char *what = "http_refused status=400";
	struct capture cap;
	char out[4096];
	capture_start(&cap);
	/* A burst at t=5 s: the first VG_LOG_BURST pass, the next 5 are counted. */
	int passed = 0, total = 0;
	for (int i = 0; i < VG_LOG_BURST + 5; i++, total++)
		passed += vg_log_budget_take(&b, 5000, LOG_INFO, what);
	assert_int_equal(passed, VG_LOG_BURST);
	/* Nothing is reported inside the window... */
	assert_int_equal(
	        vg_log_budget_flush(&b, 5000 + VG_LOG_WINDOW_MS - 1, false, LOG_INFO, what), 0);
	/* ...and all of it once the window is over, once. */
	assert_int_equal(vg_log_budget_flush(&b, 5000 + VG_LOG_WINDOW_MS, false, LOG_INFO, what),
	                 5);
	assert_int_equal(vg_log_budget_flush(&b, 5000 + VG_LOG_WINDOW_MS, true, LOG_INFO, what), 0);
	/* A new window lets a burst through again. */
	int before = passed;
	for (int i = 0; i < VG_LOG_BURST + 3; i++, total++)
		passed += vg_log_budget_take(&b, 6500, LOG_INFO, what);
	assert_int_equal(passed - before, VG_LOG_BURST);
	/* The next line after the window reports the 3 first, with no timer. */
	assert_true(vg_log_budget_take(&b, 7600, LOG_INFO, what));
	passed++, total++;
	/* Forced, a partial window's count goes out (a worker stopping). */
	for (int i = 0; i < VG_LOG_BURST + 1; i++, total++)
		passed += vg_log_budget_take(&b, 7700, LOG_INFO, what);
	assert_int_equal(vg_log_budget_flush(&b, 7701, true, LOG_INFO, what), 2);
	size_t n = capture_end(&cap, out, sizeof(out));
	assert_true(n > 0);
	/* Three reports, in order, and lines + counts account for every event. */
	assert_int_equal(count_of(out, "event=log_suppressed what=http_refused status=400 count="),
	                 3);
	const char *r1 = strstr(out, "count=5\n"), *r2 = strstr(out, "count=3\n"),
	           *r3 = strstr(out, "count=2\n");
	assert_non_null(r1);
	assert_non_null(r2);
	assert_non_null(r3);
	assert_true(r1 < r2 && r2 < r3);
	assert_int_equal(passed + 5 + 3 + 2, total);
	assert_int_equal(count_of(out, "level=info"), 3);
}

/* foreign_gid returns a group the process is not in, or (gid_t)-1. */
static gid_t foreign_gid(void)
{
	gid_t own[256];
	int n = getgroups(256, own);
	const gid_t cand[] = {33, 34, 12345, 23456};
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		bool mine = cand[i] == getegid();
		for (int j = 0; j < n; j++)
			mine = mine || own[j] == cand[i];
		if (!mine)
			return cand[i];
	}
	return (gid_t)-1;
}

/* check_mode sets |fd|'s mode and group (-1: unchanged) and checks it. */
static int check_mode(int fd, mode_t mode, gid_t gid, char *err, size_t errlen)
{
	assert_int_equal(fchmod(fd, mode), 0);
	if (gid != (gid_t)-1)
		assert_int_equal(fchown(fd, (uid_t)-1, gid), 0);
	err[0] = '\0';
	return vg_pki_check_secret_fd(fd, "key file", "/k.pem", err, errlen);
}

static void test_secret_mode(void **state)
{
	(void)state;
	char path[] = "/tmp/vigil-test-key-XXXXXX", err[512];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	vg_pki_set_service_user(NULL);
	/* The owner only; group bits with the process's own group. */
	assert_int_equal(check_mode(fd, 0600, getegid(), err, sizeof(err)), 0);
	assert_int_equal(check_mode(fd, 0400, -1, err, sizeof(err)), 0);
	assert_int_equal(check_mode(fd, 0640, -1, err, sizeof(err)), 0);
	assert_int_equal(check_mode(fd, 0660, -1, err, sizeof(err)), 0);
	/* Others may neither read nor write, whatever the group. */
	const mode_t others[] = {0604, 0602, 0644, 0666};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(check_mode(fd, others[i], -1, err, sizeof(err)), -EPERM);
		char m[32];
		snprintf(m, sizeof(m), "(mode %04o)", (unsigned)others[i]);
		assert_non_null(strstr(err, m));
		assert_non_null(strstr(err, "/k.pem: key file is accessible by others"));
	}
	gid_t fg = geteuid() == 0 ? foreign_gid() : (gid_t)-1;
	if (fg != (gid_t)-1) {
		/* A foreign group may neither read nor write it... */
		assert_int_equal(check_mode(fd, 0640, fg, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "/k.pem: key file is accessible by group"));
		assert_non_null(strstr(err, "(mode 0640)"));
		assert_int_equal(check_mode(fd, 0620, fg, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "(mode 0620)"));
		/* ...but may own a file only its owner reads. */
		assert_int_equal(check_mode(fd, 0600, fg, err, sizeof(err)), 0);
		assert_int_equal(check_mode(fd, 0610, fg, err, sizeof(err)), 0);
		/* The group of the user the service drops to may read it. */
		struct passwd *pw = NULL;
		setpwent();
		while ((pw = getpwent()) != NULL && pw->pw_gid != fg)
			;
		char *user = pw ? strdup(pw->pw_name) : NULL;
		endpwent();
		if (user) {
			vg_pki_set_service_user(user);
			assert_int_equal(check_mode(fd, 0640, fg, err, sizeof(err)), 0);
			vg_pki_set_service_user(NULL);
			assert_int_equal(check_mode(fd, 0640, fg, err, sizeof(err)), -EPERM);
			free(user);
		}
		/* An unknown user changes nothing. */
		vg_pki_set_service_user("no-such-user-vigil");
		assert_int_equal(check_mode(fd, 0640, fg, err, sizeof(err)), -EPERM);
		vg_pki_set_service_user(NULL);
	}
	/* vg_pki_load_key checks the file before reading it: refused, not "cannot read". */
	assert_int_equal(fchmod(fd, 0644), 0);
	EVP_PKEY *k = NULL;
	assert_int_equal(vg_pki_load_key(path, &k, err, sizeof(err)), -EPERM);
	assert_null(k);
	assert_non_null(strstr(err, "accessible by others (mode 0644)"));
	close(fd);
	unlink(path);
	/* Not a regular file. */
	assert_int_equal(vg_pki_load_key("/tmp", &k, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "not a regular file"));
}

/* write_ca writes a self-signed certificate for |key| named CN=|cn| (with
 * |str_type| as the CN's string type) to |path|. */
static void write_ca(const char *path, EVP_PKEY *key, const char *cn, int str_type, long serial)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	assert_non_null(x);
	assert_non_null(n);
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", str_type, (const unsigned char *)cn, -1, -1,
	                                       0));
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
	assert_true(X509_set_subject_name(x, n));
	assert_true(X509_set_issuer_name(x, n));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600 * serial));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400 * serial));
	assert_true(X509_set_pubkey(x, key));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(PEM_write_X509(f, x));
	fclose(f);
	X509_NAME_free(n);
	X509_free(x);
}

/* load_two writes a config with [ca a] |ca| and [ca b] |cb| and loads it. */
static int load_two(const char *dir, const char *ca, const char *cb, char *err, size_t errlen)
{
	char conf[512];
	snprintf(conf, sizeof(conf), "%s/vigil.conf", dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[store]\npath = store\n[ca a]\ncert = %s\n[ca b]\ncert = %s\n", ca, cb);
	fclose(f);
	struct vg_conf c;
	err[0] = '\0';
	int rc = vg_conf_load(conf, &c, err, errlen);
	if (rc == 0)
		vg_conf_free(&c);
	return rc;
}

static void test_conf_ca_identity(void **state)
{
	(void)state;
	char dir[] = "/tmp/vigil-test-conf-XXXXXX", p[6][512], err[1024];
	assert_non_null(mkdtemp(dir));
	const char *names[6] = {"ca.pem",    "reissued.pem", "rekeyed.pem",
	                        "other.pem", "utf8.pem",     "junk.pem"};
	for (int i = 0; i < 6; i++)
		snprintf(p[i], sizeof(p[i]), "%s/%s", dir, names[i]);
	EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	assert_non_null(k1);
	assert_non_null(k2);
	write_ca(p[0], k1, "Same CA", MBSTRING_ASC, 1);
	write_ca(p[1], k1, "Same CA", MBSTRING_ASC, 2);      /* re-issued: serial, validity */
	write_ca(p[2], k2, "Same CA", MBSTRING_ASC, 3);      /* re-keyed under its name */
	write_ca(p[3], k1, "Other CA", MBSTRING_ASC, 4);     /* one key, two names */
	write_ca(p[4], k1, "Same CA", V_ASN1_UTF8STRING, 5); /* the name in another string type */
	FILE *f = fopen(p[5], "w");
	assert_non_null(f);
	fputs("not a certificate\n", f);
	fclose(f);

	/* One identity in two sections: refused, naming both. */
	assert_int_equal(load_two(dir, p[0], p[1], err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[ca a] and [ca b] have the same subject and key"));
	assert_non_null(strstr(err, "Same CA"));
	assert_int_equal(load_two(dir, p[0], p[0], err, sizeof(err)), -EINVAL);
	/* Names equal once canonicalised (RFC 5280 §7.1, as clients match a
	 * CRL's issuer): the same CA too. */
	assert_int_equal(load_two(dir, p[0], p[4], err, sizeof(err)), -EINVAL);
	/* Another key, or another name: other CAs. */
	assert_int_equal(load_two(dir, p[0], p[2], err, sizeof(err)), 0);
	assert_int_equal(load_two(dir, p[0], p[3], err, sizeof(err)), 0);
	/* A certificate that cannot be read is left to the program using it. */
	assert_int_equal(load_two(dir, p[0], p[5], err, sizeof(err)), 0);

	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	for (int i = 0; i < 6; i++)
		unlink(p[i]);
	char conf[600];
	snprintf(conf, sizeof(conf), "%s/vigil.conf", dir);
	unlink(conf);
	rmdir(dir);
}

static void test_hexval(void **state)
{
	(void)state;
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		assert_int_equal(vg_hexval(digits[i]), i);
		assert_int_equal(vg_hexval(toupper((unsigned char)digits[i])), i);
	}
	int n = 0;
	for (int ch = -1; ch < 256; ch++)
		n += vg_hexval(ch) >= 0;
	assert_int_equal(n, 22);
	assert_int_equal(vg_hexval('g'), -1);
	assert_int_equal(vg_hexval(':'), -1);
	assert_int_equal(vg_hexval(0xc1), -1);
}

static void test_pct_decode(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(vg_pct_decode("MEow%2B%2F%3D", 13, out), 7);
	assert_string_equal(out, "MEow+/=");
	assert_int_equal(vg_pct_decode("a%2fb", 5, out), 3);
	assert_string_equal(out, "a/b");
	assert_int_equal(vg_pct_decode("plain+/=", 8, out), 8);
	assert_string_equal(out, "plain+/=");
	assert_int_equal(vg_pct_decode("", 0, out), 0);
	assert_string_equal(out, "");
	assert_int_equal(vg_pct_decode("%41", 3, out), 1);
	assert_string_equal(out, "A");
	assert_int_equal(vg_pct_decode("abc%41def%42", 12, out), 8);
	assert_string_equal(out, "abcAdefB");
	/* Only |len| bytes are read: an escape cut by the length is bad. */
	assert_int_equal(vg_pct_decode("ab%41", 4, out), -1);
	assert_int_equal(vg_pct_decode("bad%2", 5, out), -1);
	assert_int_equal(vg_pct_decode("bad%", 4, out), -1);
	assert_int_equal(vg_pct_decode("bad%zz", 6, out), -1);
	assert_int_equal(vg_pct_decode("bad%2z", 6, out), -1);
	assert_int_equal(vg_pct_decode("%%41", 4, out), -1);
	/* %00 is an octet like the others: counted, so strlen tells it. */
	assert_int_equal(vg_pct_decode("a%00b", 5, out), 3);
	assert_memory_equal(out, "a\0b\0", 4);
	assert_int_equal(strlen(out), 1);
	/* Every octet round-trips. */
	char in[3 * 256 + 1];
	for (int i = 0; i < 256; i++)
		snprintf(in + 3 * i, 4, "%%%02X", i);
	char dec[3 * 256 + 1];
	assert_int_equal(vg_pct_decode(in, 3 * 256, dec), 256);
	for (int i = 0; i < 256; i++)
		assert_int_equal((unsigned char)dec[i], i);
}

/* vg_b64_decode against OpenSSL's encoder, for every length up to 3 x 17
 * octets, both alphabets, with and without padding; and what it refuses. */
static void test_b64_decode(void **state)
{
	(void)state;
	uint8_t in[51], out[80];
	char enc[80];
	for (size_t n = 0; n <= sizeof(in); n++) {
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(i * 89 + n * 7 + 0xf0);
		int el = EVP_EncodeBlock((unsigned char *)enc, in, (int)n);
		assert_int_equal(el % 4, 0);
		for (int form = 0; form < 4; form++) {
			char e[80];
			size_t l = (size_t)el;
			memcpy(e, enc, l);
			if (form & 1) /* URL-safe */
				for (size_t i = 0; i < l; i++)
					e[i] = e[i] == '+' ? '-' : e[i] == '/' ? '_' : e[i];
			if (form & 2) /* unpadded */
				while (l && e[l - 1] == '=')
					l--;
			memset(out, 0, sizeof(out));
			assert_int_equal(vg_b64_decode(e, l, out), (ssize_t)n);
			assert_memory_equal(out, in, n);
		}
	}
	assert_int_equal(vg_b64_decode("QUJD", 4, out), 3);
	assert_memory_equal(out, "ABC", 3);
	assert_int_equal(vg_b64_decode("+/-_", 4, out), 3); /* the alphabets mixed */
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
	assert_int_equal(vg_b64_decode("QUJDR", 5, out), -1); /* one digit left over */
	assert_int_equal(vg_b64_decode("QU.D", 4, out), -1);
	assert_int_equal(vg_b64_decode("QU=D", 4, out), -1);
	assert_int_equal(vg_b64_decode("QUJD\x80"
	                               "AAA",
	                               8, out),
	                 -1);
	assert_int_equal(vg_b64_decode("QUJDRA%3D", 9, out), -1);
	assert_int_equal(vg_b64_decode("QUJDRA", 6, out), 4);
	assert_memory_equal(out, "ABCD", 4);
	assert_int_equal(vg_b64_decode("", 0, out), 0);
	assert_int_equal(vg_b64_decode("====", 4, out), 0);
}

static void test_http_date(void **state)
{
	(void)state;
	char buf[40];
	vg_http_date(0, buf, sizeof(buf));
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	vg_http_date(784111777, buf, sizeof(buf)); /* RFC 9110's example */
	assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
	vg_http_date(4102444799, buf, sizeof(buf));
	assert_string_equal(buf, "Thu, 31 Dec 2099 23:59:59 GMT");
	assert_int_equal(strlen(buf), 29);
	vg_http_date(951782400, buf, sizeof(buf)); /* a leap day of a century */
	assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
	char small[10];
	vg_http_date(0, small, sizeof(small)); /* cut, still a string */
	assert_string_equal(small, "Thu, 01 J");
}

static void test_etag(void **state)
{
	(void)state;
	char e[VG_ETAG_LEN];
	/* SHA-256("abc"), FIPS 180-2's example, first 16 octets. */
	vg_etag((const uint8_t *)"abc", 3, e);
	assert_string_equal(e, "\"ba7816bf8f01cfea414140de5dae2223\"");
	assert_int_equal(strlen(e) + 1, VG_ETAG_LEN);
	vg_etag((const uint8_t *)"", 0, e);
	assert_string_equal(e, "\"e3b0c44298fc1c149afbf4c8996fb924\"");
	/* The piecewise form gives the same tag. */
	uint8_t data[1000], md[32];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_true(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
	assert_true(EVP_DigestUpdate(ctx, data, 300));
	assert_true(EVP_DigestUpdate(ctx, data + 300, sizeof(data) - 300));
	assert_true(EVP_DigestFinal_ex(ctx, md, NULL));
	EVP_MD_CTX_free(ctx);
	char e2[VG_ETAG_LEN];
	vg_etag(data, sizeof(data), e);
	vg_etag_from_sha256(md, e2);
	assert_string_equal(e, e2);
}

/* The pkcs11: URI's %-escapes go through vg_pct_decode; an escaped NUL or
 * a bad escape in a value Vigil reads is refused before any module loads. */
static void test_pkcs11_uri_escapes(void **state)
{
	(void)state;
	char err[400];
	EVP_PKEY *k = NULL;
	static const char *const bad[] = {
	        "pkcs11:token=t;module-path=/no/such%00.so",
	        "pkcs11:token=t;module-path=/no/such%2",
	        "pkcs11:token=t?pin-source=file:/x%zz",
	        "pkcs11:token=t?pin-source=%00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(vg_pkcs11_load_key(bad[i], &k, err, sizeof(err)), -EINVAL);
		assert_null(k);
		assert_non_null(strstr(err, "bad %-escape"));
	}
	/* A good escape is decoded: the module named is /no/such module.so. */
	assert_true(vg_pkcs11_load_key("pkcs11:token=t;module-path=/no/such%20module.so", &k, err,
	                               sizeof(err)) < 0);
	assert_null(k);
	assert_null(strstr(err, "bad %-escape"));
}

/* The signer policy of both programs, and the AlgorithmIdentifier against
 * the one OpenSSL writes when it signs a CRL with the same key and digest. */
static void test_signer(void **state)
{
	(void)state;
	static const struct {
		const char *type;
		const char *param; /* curve, or NULL for RSA's bits */
		size_t bits;
		const char *digest;
		int rc;
	} keys[] = {
	        {"RSA", NULL, 2048, NULL, 0},
	        {"RSA", NULL, 2048, "sha512", 0},
	        {"RSA", NULL, 1024, "sha256", -EINVAL},
	        {"EC", "P-256", 0, "sha256", 0},
	        {"EC", "P-384", 0, "sha384", 0},
	        {"EC", "P-256", 0, "sha1", -EINVAL},
	        {"EC", "P-256", 0, "md5", -EINVAL},
	        {"ED25519", NULL, 0, "sha1", 0},
	        {"ED448", NULL, 0, NULL, 0},
	        {"X25519", NULL, 0, "sha256", -EINVAL},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		EVP_PKEY *k =
		        keys[i].param  ? EVP_PKEY_Q_keygen(NULL, NULL, keys[i].type, keys[i].param)
		        : keys[i].bits ? EVP_PKEY_Q_keygen(NULL, NULL, keys[i].type, keys[i].bits)
		                       : EVP_PKEY_Q_keygen(NULL, NULL, keys[i].type);
		assert_non_null(k);
		const EVP_MD *md = (const EVP_MD *)1;
		char err[200] = "";
		assert_int_equal(vg_signer_policy(k, keys[i].digest, &md, err, sizeof(err)),
		                 keys[i].rc);
		if (keys[i].rc < 0) {
			assert_true(strlen(err) > 0);
			assert_null(strchr(err, '\n'));
			if (keys[i].bits == 1024)
				assert_non_null(strstr(err, "RSA key of 1024 bits: at least 2048"));
			EVP_PKEY_free(k);
			continue;
		}
		bool eddsa = !strncmp(keys[i].type, "ED", 2);
		assert_true(eddsa ? md == NULL : md != NULL);
		if (!eddsa)
			assert_true(EVP_MD_is_a(md, keys[i].digest ? keys[i].digest : "SHA256"));
		uint8_t alg[128];
		ssize_t n = vg_signer_algid(k, md, alg, sizeof(alg));
		assert_true(n > 0);
		/* OpenSSL's own, from a CRL it signs. */
		X509_CRL *crl = X509_CRL_new();
		assert_non_null(crl);
		assert_true(X509_CRL_sign(crl, k, md) > 0);
		const X509_ALGOR *sa = NULL;
		X509_CRL_get0_signature(crl, NULL, &sa);
		unsigned char *der = NULL;
		int dl = i2d_X509_ALGOR(sa, &der);
		assert_int_equal(dl, n);
		assert_memory_equal(der, alg, (size_t)n);
		/* Too small a buffer fails, without writing past it. */
		assert_true(vg_signer_algid(k, md, alg, (size_t)n - 1) < 0);
		OPENSSL_free(der);
		X509_CRL_free(crl);
		EVP_PKEY_free(k);
	}
}

/* Serials order by value; the OCSP validity cap. */
static void test_serial_cmp(void **state)
{
	(void)state;
	static const char *const sorted[] = {
	        "0",
	        "1",
	        "7F",
	        "80",
	        "FF",
	        "0100",
	        "0101",
	        "7FFF",
	        "8000",
	        "FFFF",
	        "010000",
	        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE",
	        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
	};
	enum { N = sizeof(sorted) / sizeof(sorted[0]) };
	struct vg_serial s[N];
	for (int i = 0; i < N; i++)
		assert_int_equal(vg_serial_parse(sorted[i], strlen(sorted[i]), &s[i]), 0);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			int c = vg_serial_cmp(&s[i], &s[j]);
			assert_true(i < j ? c < 0 : i > j ? c > 0 : c == 0);
		}
	/* Leading zeros are not part of the value. */
	struct vg_serial a, b;
	assert_int_equal(vg_serial_parse("00:00:12:34", 11, &a), 0);
	assert_int_equal(vg_serial_from_bytes((const uint8_t *)"\x00\x12\x34", 3, &b), 0);
	assert_int_equal(vg_serial_cmp(&a, &b), 0);

	assert_int_equal(vg_ocsp_validity(4 * 86400), 4 * 86400);
	assert_int_equal(vg_ocsp_validity(VG_VALIDITY_MAX - 1), VG_VALIDITY_MAX - 1);
	assert_int_equal(vg_ocsp_validity(VG_VALIDITY_MAX), VG_VALIDITY_MAX - 1);
	assert_int_equal(vg_ocsp_validity(INT64_MAX), VG_VALIDITY_MAX - 1);
}

/* ocsp_validity and crl_validity: their ranges, to ten days, and the line
 * that refuses one out of range. */
/* [edge]: max_age's range and default, the state directory beside the
 * store, and the purge URLs as vg_http_url_parse splits them. */
static void test_conf_edge(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int max_age; /* -1: refused with |msg| */
		const char *msg;
	} cases[] = {
	        {"", 60, NULL},
	        {"[edge]\nmax_age = 0", 0, NULL},
	        {"[edge]\nmax_age = 86400", 86400, NULL},
	        {"[edge]\nmax_age = 2m", 120, NULL},
	        {"[edge]\nmax_age = 86401", -1, "[edge] max_age = 86401: expected 0 to 86400"},
	        {"[edge]\nmax_age = 1500ms", -1, "[edge] max_age = 1500ms: expected 0 to 86400"},
	        {"[edge]\ntag_header = a:b", -1, "[edge] tag_header = a:b: expected a header name"},
	        {"[edge]\npurge_varnish = http://[::1", -1, "[edge] purge_varnish = http://[::1: "},
	        {"[edge]\npurge_nginx = http://a:0/", -1, "[edge] purge_nginx = http://a:0/: "},
	};
	char err[1024];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[store]\npath = /srv/v/store/\n%s\n", cases[i].text);
		struct vg_conf c;
		err[0] = '\0';
		int rc = vg_conf_parse_string(text, "/etc/v/vigil.conf", &c, err, sizeof(err));
		if (cases[i].max_age < 0) {
			assert_int_equal(rc, -EINVAL);
			if (!strstr(err, cases[i].msg))
				fail_msg("%s: %s", cases[i].text, err);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %s", cases[i].text, err);
		assert_int_equal(c.edge_max_age, cases[i].max_age);
		assert_string_equal(c.edge_tag_header, "xkey");
		assert_string_equal(c.edge_state_dir, "/srv/v/edge");
		vg_conf_free(&c);
	}
	struct vg_http_url u[4];
	assert_int_equal(
	        vg_http_url_list("http://127.0.0.1:6081/, http://[::1]:8081/p/,http://e", u, 4), 3);
	assert_string_equal(u[0].host, "127.0.0.1");
	assert_int_equal(u[0].port, 6081);
	assert_string_equal(u[0].path, "/");
	assert_string_equal(u[1].host, "::1");
	assert_string_equal(u[1].authority, "[::1]:8081");
	assert_string_equal(u[1].path, "/p/");
	assert_int_equal(u[2].port, 80);
	assert_string_equal(u[2].authority, "e");
	assert_int_equal(vg_http_url_list("http://a,http://b,http://c,http://d,http://e", u, 4),
	                 -E2BIG);
	assert_int_equal(vg_http_url_parse("http://a b/", 11, u), -EINVAL);
	assert_int_equal(vg_http_url_parse("https://a/", 10, u), -EINVAL);
	assert_int_equal(vg_http_url_parse("http://a:65536/", 15, u), -EINVAL);
}

static void test_conf_validity(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		int64_t ocsp, crl; /* seconds, or -1: refused with |msg| */
		const char *msg;
	} cases[] = {
	        {"", 4 * 86400, 7 * 86400, NULL},
	        {"ocsp_validity = 10d\ncrl_validity = 10d", 10 * 86400, 10 * 86400, NULL},
	        {"ocsp_validity = 8h\ncrl_validity = 1h", 8 * 3600, 3600, NULL},
	        {"ocsp_validity = 240h", 10 * 86400, 7 * 86400, NULL},
	        {"ocsp_validity = 10d1s", -1, 0,
	         "[ca a] ocsp_validity = 10d1s: must be 8h to 10d (Baseline Requirements 4.9.10)"},
	        {"ocsp_validity = 7h", -1, 0,
	         "[ca a] ocsp_validity = 7h: must be 8h to 10d (Baseline Requirements 4.9.10)"},
	        {"crl_validity = 11d", -1, 0,
	         "[ca a] crl_validity = 11d: must be 1h to 10d (Baseline Requirements 4.9.7)"},
	        {"crl_validity = 59m", -1, 0,
	         "[ca a] crl_validity = 59m: must be 1h to 10d (Baseline Requirements 4.9.7)"},
	        {"crl_validity = soon", -1, 0,
	         "[ca a] crl_validity = soon: must be 1h to 10d (Baseline Requirements 4.9.7)"},
	};
	char dir[] = "/tmp/vigil-test-validity-XXXXXX", conf[600], cert[600], err[1024];
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/vigil.conf", dir);
	snprintf(cert, sizeof(cert), "%s/ca.pem", dir);
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	write_ca(cert, k, "Validity CA", MBSTRING_ASC, 1);
	EVP_PKEY_free(k);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = fopen(conf, "w");
		assert_non_null(f);
		fprintf(f, "[store]\npath = store\n[ca a]\ncert = ca.pem\n%s\n", cases[i].line);
		fclose(f);
		struct vg_conf c;
		err[0] = '\0';
		int rc = vg_conf_load(conf, &c, err, sizeof(err));
		if (cases[i].ocsp < 0) {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(strstr(err, cases[i].msg));
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %s", cases[i].line, err);
		assert_int_equal(c.cas[0].ocsp_validity, cases[i].ocsp);
		assert_int_equal(c.cas[0].crl_validity, cases[i].crl);
		vg_conf_free(&c);
	}
	unlink(conf);
	unlink(cert);
	rmdir(dir);
}

/* [store] log_retention and expired_retention: defaults, range (1d to
 * 36500d) and the line that refuses one. */
static void test_conf_retention(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		int64_t log, expired; /* seconds, or -1: refused with |msg| */
		const char *msg;
	} cases[] = {
	        {"", 30 * 86400, 365 * 86400, NULL},
	        {"log_retention = 1d\nexpired_retention = 36500d", 86400, 36500LL * 86400, NULL},
	        {"log_retention = 48h", 2 * 86400, 365 * 86400, NULL},
	        {"log_retention = 23h", -1, 0,
	         "[store] log_retention = 23h: expected a duration from 1d to 36500d"},
	        {"expired_retention = 36501d", -1, 0,
	         "[store] expired_retention = 36501d: expected a duration from 1d to 36500d"},
	        {"expired_retention = never", -1, 0,
	         "[store] expired_retention = never: expected a duration from 1d to 36500d"},
	};
	char dir[] = "/tmp/vigil-test-retention-XXXXXX", conf[600], err[1024];
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/vigil.conf", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = fopen(conf, "w");
		assert_non_null(f);
		fprintf(f, "[store]\npath = store\n%s\n", cases[i].line);
		fclose(f);
		struct vg_conf c;
		err[0] = '\0';
		int rc = vg_conf_load(conf, &c, err, sizeof(err));
		if (cases[i].log < 0) {
			assert_int_equal(rc, -EINVAL);
			if (!strstr(err, cases[i].msg))
				fail_msg("%s: %s", cases[i].line, err);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %s", cases[i].line, err);
		assert_int_equal(c.log_retention, cases[i].log);
		assert_int_equal(c.expired_retention, cases[i].expired);
		vg_conf_free(&c);
	}
	unlink(conf);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_serial_parse),
	        cmocka_unit_test(test_serial_from_bytes),
	        cmocka_unit_test(test_time),
	        cmocka_unit_test(test_generalized_far),
	        cmocka_unit_test(test_reason),
	        cmocka_unit_test(test_record),
	        cmocka_unit_test(test_cert_key),
	        cmocka_unit_test(test_index_line),
	        cmocka_unit_test(test_log_budget),
	        cmocka_unit_test(test_secret_mode),
	        cmocka_unit_test(test_conf_ca_identity),
	        cmocka_unit_test(test_hexval),
	        cmocka_unit_test(test_pct_decode),
	        cmocka_unit_test(test_b64_decode),
	        cmocka_unit_test(test_http_date),
	        cmocka_unit_test(test_etag),
	        cmocka_unit_test(test_pkcs11_uri_escapes),
	        cmocka_unit_test(test_signer),
	        cmocka_unit_test(test_serial_cmp),
	        cmocka_unit_test(test_conf_validity),
	        cmocka_unit_test(test_conf_edge),
	        cmocka_unit_test(test_conf_retention),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
