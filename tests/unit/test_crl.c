/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of crlgen/crl.c: every CRL written is parsed and verified by
 * OpenSSL, field by field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crlgen/crl.h"
#include "common/der.h"

/* An array of entries as a crl_source; |change_at| > 0 makes the second
 * walk yield one entry fewer, as a store that changed would. */
struct arr_src {
	const struct crl_entry *v;
	size_t n, i;
	int walks;
	bool change;
};

static int arr_begin(void *arg)
{
	struct arr_src *s = arg;
	s->i = 0;
	s->walks++;
	return 0;
}

static int arr_next(void *arg, struct crl_entry *e)
{
	struct arr_src *s = arg;
	size_t n = s->change && s->walks > 1 ? s->n - 1 : s->n;
	if (s->i >= n)
		return 0;
	*e = s->v[s->i++];
	return 1;
}

static const int reasons[] = {-1, 0, 1, 2, 3, 4, 5, 6, 9, 10};

static struct crl_entry *make_entries(size_t n)
{
	struct crl_entry *v = calloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		struct crl_entry *e = &v[i];
		/* Serials 0x1000.., and every 7th a 20-octet one with the top bit
		 * set, to exercise the 0x00 pad; ascending either way. */
		uint64_t x = 0x1000 + i;
		if (i % 7 == 6) {
			e->serial.len = 20;
			memset(e->serial.b, 0xf0, 20);
			for (int k = 0; k < 8; k++)
				e->serial.b[12 + k] = (uint8_t)(x >> (8 * (7 - k)));
		} else {
			e->serial.len = 3;
			e->serial.b[0] = (uint8_t)(x >> 16);
			e->serial.b[1] = (uint8_t)(x >> 8);
			e->serial.b[2] = (uint8_t)x;
			if (e->serial.b[0] == 0) {
				memmove(e->serial.b, e->serial.b + 1, 2);
				e->serial.len = 2;
			}
		}
		e->revoked_at = 1700000000 + (int64_t)i * 61;
		e->reason = reasons[i % 10];
		e->has_invalidity = i % 3 == 0;
		e->invalidity_date = 1690000000 + (int64_t)i;
	}
	return v;
}

struct fixture {
	EVP_PKEY *key;
	struct crl_signer signer;
	uint8_t *issuer;
	size_t issuer_len;
	X509_NAME *name;
};

static void fixture_init(struct fixture *f, const char *type)
{
	memset(f, 0, sizeof(*f));
	if (!strcmp(type, "RSA"))
		f->key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (!strcmp(type, "EC"))
		f->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		f->key = EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(f->key);
	char err[256];
	assert_int_equal(crl_signer_init(&f->signer, f->key, "sha256", err, sizeof(err)), 0);
	f->name = X509_NAME_new();
	X509_NAME_add_entry_by_txt(f->name, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Vigil Unit CA", -1, -1, 0);
	X509_NAME_add_entry_by_txt(f->name, "O", MBSTRING_ASC, (const unsigned char *)"Vigil", -1,
	                           -1, 0);
	int n = i2d_X509_NAME(f->name, &f->issuer);
	assert_true(n > 0);
	f->issuer_len = (size_t)n;
}

static void fixture_free(struct fixture *f)
{
	EVP_PKEY_free(f->key);
	OPENSSL_free(f->issuer);
	X509_NAME_free(f->name);
}

static const uint8_t akid[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

static void params_init(struct crl_params *p, const struct fixture *f, uint64_t number)
{
	memset(p, 0, sizeof(*p));
	p->issuer = f->issuer;
	p->issuer_len = f->issuer_len;
	p->akid = akid;
	p->akid_len = sizeof(akid);
	p->this_update = 1795000000;
	p->next_update = 1795000000 + 7 * 86400;
	p->number = number;
}

/* write_crl writes the CRL to a temporary file and returns it parsed. */
static X509_CRL *write_crl(const struct fixture *f, const struct crl_params *p,
                           const struct crl_entry *v, size_t n, struct crl_result *res,
                           uint8_t **der, size_t *derlen)
{
	char path[] = "/tmp/vigil-test-crl-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	struct arr_src as = {.v = v, .n = n};
	struct crl_source src = {arr_begin, arr_next, &as};
	char err[256] = "";
	int rc = crl_write(fd, p, &f->signer, &src, res, err, sizeof(err));
	if (rc != 0)
		fail_msg("crl_write: %s", err);
	assert_int_equal(as.walks, n ? 2 : 1);
	off_t size = lseek(fd, 0, SEEK_END);
	assert_true((uint64_t)size == res->bytes);
	uint8_t *buf = malloc((size_t)size);
	assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
	close(fd);
	const unsigned char *q = buf;
	X509_CRL *crl = d2i_X509_CRL(NULL, &q, size);
	assert_non_null(crl);
	assert_ptr_equal(q, buf + size); /* no trailing data */
	if (der) {
		*der = buf;
		*derlen = (size_t)size;
	} else {
		free(buf);
	}
	return crl;
}

static void check_entries(X509_CRL *crl, const struct crl_entry *v, size_t n)
{
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	/* An empty CRL has no revokedCertificates at all: OpenSSL gives NULL. */
	assert_int_equal(rev ? sk_X509_REVOKED_num(rev) : 0, (int)n);
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(rev, (int)i);
		const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(r);
		BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
		uint8_t b[VG_SERIAL_MAX];
		assert_false(BN_is_negative(bn));
		assert_int_equal(BN_bn2bin(bn, b), v[i].serial.len);
		assert_memory_equal(b, v[i].serial.b, v[i].serial.len);
		BN_free(bn);
		int day, sec;
		ASN1_TIME *want = ASN1_TIME_set(NULL, (time_t)v[i].revoked_at);
		assert_int_equal(
		        ASN1_TIME_diff(&day, &sec, want, X509_REVOKED_get0_revocationDate(r)), 1);
		assert_int_equal(day, 0);
		assert_int_equal(sec, 0);
		ASN1_TIME_free(want);
		int crit = -2;
		ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
		if (v[i].reason > 0) {
			assert_non_null(reason);
			assert_int_equal(ASN1_ENUMERATED_get(reason), v[i].reason);
			assert_int_equal(crit, 0);
		} else {
			assert_null(reason); /* no reason and unspecified: omitted */
		}
		ASN1_ENUMERATED_free(reason);
		ASN1_GENERALIZEDTIME *inv =
		        X509_REVOKED_get_ext_d2i(r, NID_invalidity_date, &crit, NULL);
		if (v[i].has_invalidity) {
			assert_non_null(inv);
			want = ASN1_TIME_set(NULL, (time_t)v[i].invalidity_date);
			assert_int_equal(ASN1_TIME_diff(&day, &sec, want, inv), 1);
			assert_int_equal(day + sec, 0);
			ASN1_TIME_free(want);
		} else {
			assert_null(inv);
		}
		ASN1_GENERALIZEDTIME_free(inv);
	}
}

static void check_common(X509_CRL *crl, const struct fixture *f, const struct crl_params *p)
{
	assert_int_equal(X509_CRL_verify(crl, f->key), 1);
	assert_int_equal(X509_CRL_get_version(crl), 1); /* v2 */
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), f->name), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl), p->this_update), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), p->next_update), 0);
	int crit = -2;
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
	assert_non_null(num);
	assert_int_equal(crit, 0);
	uint64_t got;
	assert_int_equal(ASN1_INTEGER_get_uint64(&got, num), 1);
	assert_true(got == p->number);
	ASN1_INTEGER_free(num);
	AUTHORITY_KEYID *ak = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, &crit, NULL);
	assert_non_null(ak);
	assert_int_equal(ASN1_STRING_length(ak->keyid), sizeof(akid));
	assert_memory_equal(ASN1_STRING_get0_data(ak->keyid), akid, sizeof(akid));
	assert_null(ak->issuer);
	AUTHORITY_KEYID_free(ak);
}

static void run_full(const char *type, size_t n)
{
	struct fixture f;
	fixture_init(&f, type);
	struct crl_entry *v = make_entries(n);
	struct crl_params p;
	params_init(&p, &f, 1795000000123456ull);
	p.freshest = "http://crl.example/delta.crl";
	struct crl_result res;
	uint8_t *der;
	size_t derlen;
	X509_CRL *crl = write_crl(&f, &p, v, n, &res, &der, &derlen);
	assert_true(res.entries == n);
	check_common(crl, &f, &p);
	check_entries(crl, v, n);
	int crit = -2;
	void *delta = X509_CRL_get_ext_d2i(crl, NID_delta_crl, &crit, NULL);
	assert_null(delta);
	STACK_OF(DIST_POINT) *fr = X509_CRL_get_ext_d2i(crl, NID_freshest_crl, &crit, NULL);
	assert_non_null(fr);
	assert_int_equal(sk_DIST_POINT_num(fr), 1);
	DIST_POINT *dp = sk_DIST_POINT_value(fr, 0);
	GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
	assert_int_equal(gn->type, GEN_URI);
	assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
	                    p.freshest);
	sk_DIST_POINT_pop_free(fr, DIST_POINT_free);
	/* The AlgorithmIdentifier is in the TBS and after it. */
	const uint8_t *at = memmem(der, derlen, f.signer.alg, f.signer.alg_len);
	assert_non_null(at);
	at += f.signer.alg_len;
	assert_non_null(memmem(at, derlen - (size_t)(at - der), f.signer.alg, f.signer.alg_len));
	if (n == 0) {
		/* RFC 5280 §5.1.2.6: an empty list is absent, not an empty SEQUENCE:
		 * after nextUpdate comes the [0] extensions tag. */
		const uint8_t needle[] = {0x30, 0x00};
		assert_null(memmem(der, derlen, needle, sizeof(needle)));
	}
	X509_CRL_free(crl);
	free(der);
	free(v);
	fixture_free(&f);
}

static void test_rsa(void **state)
{
	(void)state;
	run_full("RSA", 1000);
}

static void test_ecdsa(void **state)
{
	(void)state;
	run_full("EC", 1000);
}

static void test_ed25519(void **state)
{
	(void)state;
	run_full("ED25519", 1000);
}

static void test_empty(void **state)
{
	(void)state;
	run_full("EC", 0);
	run_full("ED25519", 0);
}

static void test_delta(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "EC");
	struct crl_entry *v = make_entries(12);
	v[5].reason = VG_REASON_REMOVE_FROM_CRL;
	struct crl_params p;
	params_init(&p, &f, 1795000000999999ull);
	p.delta = true;
	p.base_number = 1795000000123456ull;
	p.freshest = "http://ignored.example/";
	struct crl_result res;
	X509_CRL *crl = write_crl(&f, &p, v, 12, &res, NULL, NULL);
	check_common(crl, &f, &p);
	check_entries(crl, v, 12);
	int crit = -2;
	ASN1_INTEGER *base = X509_CRL_get_ext_d2i(crl, NID_delta_crl, &crit, NULL);
	assert_non_null(base);
	assert_int_equal(crit, 1); /* RFC 5280 §5.2.4: critical */
	uint64_t got;
	assert_int_equal(ASN1_INTEGER_get_uint64(&got, base), 1);
	assert_true(got == p.base_number);
	ASN1_INTEGER_free(base);
	/* A delta CRL never carries Freshest CRL (RFC 5280 §5.2.6). */
	assert_null(X509_CRL_get_ext_d2i(crl, NID_freshest_crl, &crit, NULL));
	X509_CRL_free(crl);
	free(v);
	fixture_free(&f);
}

/* ECDSA signatures vary in length; around the 65536-byte boundary of the
 * outer SEQUENCE the header size depends on it. Every size must come out
 * right. */
static void test_ecdsa_boundary(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "EC");
	size_t max = 3200;
	struct crl_entry *v = make_entries(max);
	for (size_t i = 0; i < max; i++) {
		v[i].reason = -1;
		v[i].has_invalidity = false;
		v[i].serial.len = 2;
		v[i].serial.b[0] = (uint8_t)(0x10 + i / 256);
		v[i].serial.b[1] = (uint8_t)i;
	}
	struct crl_params p;
	params_init(&p, &f, 42);
	p.akid_len = 0;
	p.akid = NULL;
	/* Each entry is 21 bytes; find the count whose CRL ends near 65536 and
	 * walk the counts around it. */
	struct crl_result res;
	X509_CRL *crl = write_crl(&f, &p, v, 3100, &res, NULL, NULL);
	X509_CRL_free(crl);
	long base = 3100 + (65536 + 4 - (long)res.bytes) / 21;
	int lo = 0, hi = 0;
	for (long n = base - 3; n <= base + 3; n++) {
		for (int rep = 0; rep < 8; rep++) {
			crl = write_crl(&f, &p, v, (size_t)n, &res, NULL, NULL);
			assert_int_equal(X509_CRL_verify(crl, f.key), 1);
			assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), n);
			X509_CRL_free(crl);
			/* Outer header of 4 bytes up to 65535 content bytes, 5 after. */
			lo += res.bytes <= 65535 + 4;
			hi += res.bytes >= 65536 + 5;
		}
	}
	assert_true(lo > 0 && hi > 0);
	free(v);
	fixture_free(&f);
}

static void test_changed_between_passes(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "EC");
	struct crl_entry *v = make_entries(10);
	struct crl_params p;
	params_init(&p, &f, 7);
	char path[] = "/tmp/vigil-test-crl-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	struct arr_src as = {.v = v, .n = 10, .change = true};
	struct crl_source src = {arr_begin, arr_next, &as};
	char err[256] = "";
	struct crl_result res;
	assert_int_equal(crl_write(fd, &p, &f.signer, &src, &res, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "changed"));
	close(fd);
	free(v);
	fixture_free(&f);
}

static void test_signer_refuses(void **state)
{
	(void)state;
	char err[256];
	struct crl_signer s;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_int_equal(crl_signer_init(&s, k, "sha256", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "2048"));
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_int_equal(crl_signer_init(&s, k, "sha1", err, sizeof(err)), -EINVAL);
	assert_int_equal(crl_signer_init(&s, k, "sha384", err, sizeof(err)), 0);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	assert_int_equal(crl_signer_init(&s, k, "sha256", err, sizeof(err)), -EINVAL);
	EVP_PKEY_free(k);
}

static void test_entry_limits(void **state)
{
	(void)state;
	uint8_t out[CRL_ENTRY_MAX];
	struct crl_entry e = {.revoked_at = 1700000000,
	                      .reason = 10,
	                      .has_invalidity = true,
	                      .invalidity_date = 1700000000};
	/* The largest entry fits in CRL_ENTRY_MAX. */
	e.serial.len = 20;
	memset(e.serial.b, 0xff, 20);
	e.revoked_at = 4102444800; /* 2100: GeneralizedTime */
	assert_true(crl_encode_entry(&e, out) > 0);
	assert_int_equal(crl_encode_entry(&e, out), crl_entry_len(&e));
	e.serial.len = 0;
	assert_int_equal(crl_encode_entry(&e, out), 0);
	assert_int_equal(crl_entry_len(&e), 0);
	e.serial.len = 1;
	e.reason = 7; /* not a reason code */
	assert_int_equal(crl_entry_len(&e), 0);
	e.reason = 11;
	assert_int_equal(crl_entry_len(&e), 0);
	/* The computed length equals the encoded one over every combination of
	 * serial size, top bit, time form, reason and invalidity date. */
	static const int64_t times[] = {-62167219200LL, -631152001, -631152000, 0,
	                                1795000000,     2524607999, 2524608000, 253402300799LL};
	for (int len = 1; len <= 20; len++)
		for (int top = 0; top < 2; top++)
			for (size_t ti = 0; ti < sizeof(times) / sizeof(times[0]); ti++)
				for (int r = -1; r <= 10; r++)
					for (int inv = 0; inv < 2; inv++) {
						if (r == 7)
							continue;
						e.serial.len = (uint8_t)len;
						memset(e.serial.b, top ? 0x81 : 0x11,
						       VG_SERIAL_MAX);
						e.revoked_at = times[ti];
						e.invalidity_date = times[(ti + 3) % 8];
						e.reason = r;
						e.has_invalidity = inv;
						size_t n = crl_entry_len(&e);
						assert_true(n > 0 && n <= CRL_ENTRY_MAX);
						assert_int_equal(crl_encode_entry(&e, out), n);
						const unsigned char *p = out;
						X509_REVOKED *xr =
						        d2i_X509_REVOKED(NULL, &p, (long)n);
						assert_non_null(xr);
						assert_ptr_equal(p, out + n);
						X509_REVOKED_free(xr);
					}
	/* Out of range times are refused, not encoded wrongly. */
	e.revoked_at = 253402300800LL;
	assert_int_equal(crl_entry_len(&e), 0);
	e.revoked_at = -62167219201LL;
	assert_int_equal(crl_entry_len(&e), 0);
}

/* A source that makes its entries on the fly: no memory of its own. */
struct gen_src {
	uint64_t n, i;
};

static int gen_begin(void *arg)
{
	((struct gen_src *)arg)->i = 0;
	return 0;
}

static int gen_next(void *arg, struct crl_entry *e)
{
	struct gen_src *s = arg;
	if (s->i == s->n)
		return 0;
	uint64_t x = 0x10000000ull + s->i++;
	memset(e, 0, sizeof(*e));
	e->serial.len = 4;
	for (int k = 0; k < 4; k++)
		e->serial.b[k] = (uint8_t)(x >> (8 * (3 - k)));
	e->revoked_at = 1700000000 + (int64_t)(x % 100000);
	e->reason = (int)(x % 5);
	e->has_invalidity = x % 4 == 0;
	e->invalidity_date = 1690000000;
	return 1;
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static uint64_t gen_crl(const struct fixture *f, uint64_t n)
{
	char path[] = "/tmp/vigil-test-crl-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	struct gen_src g = {.n = n};
	struct crl_source src = {gen_begin, gen_next, &g};
	struct crl_params p;
	params_init(&p, f, 99);
	struct crl_result res;
	char err[256];
	assert_int_equal(crl_write(fd, &p, &f->signer, &src, &res, err, sizeof(err)), 0);
	assert_true(res.entries == n);
	close(fd);
	return res.bytes;
}

/* Memory does not grow with the number of entries: the peak RSS after a
 * 500,000-entry CRL is that of a 1,000-entry one, give or take a little. */
static void test_memory_bounded(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "EC");
	gen_crl(&f, 1000);
	long small = peak_rss_kib();
	uint64_t bytes = gen_crl(&f, 500000);
	long big = peak_rss_kib();
	assert_true(bytes > 15000000);
	if (big - small > 2048)
		fail_msg("peak RSS grew by %ld KiB for a %llu-byte CRL", big - small,
		         (unsigned long long)bytes);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rsa),
	        cmocka_unit_test(test_ecdsa),
	        cmocka_unit_test(test_ed25519),
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_delta),
	        cmocka_unit_test(test_ecdsa_boundary),
	        cmocka_unit_test(test_changed_between_passes),
	        cmocka_unit_test(test_signer_refuses),
	        cmocka_unit_test(test_entry_limits),
	        cmocka_unit_test(test_memory_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
