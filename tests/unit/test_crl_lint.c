/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crlgen/lint.c on CRLs that OpenSSL makes, for the rules the integration
 * tests cannot provoke through vigil-crlgen (whose encoder cannot make them):
 * a SHA-1 signature, a v1 CRL, trailing bytes, a hold, an IDP with two
 * names or both onlyContains flags; and one CRL that passes. Delta CRLs:
 * the deltaCRLIndicator (critical, the base's number, in a delta only), a
 * number above the base's, no freshestCRL, removeFromCRL in a delta only,
 * and the rules of every CRL.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crlgen/internal.h"
#include "crlgen/lint.h"

#define URL "http://crl.example/crl/a/1.crl"

struct opts {
	const EVP_MD *md;
	int version; /* 0: v1, 1: v2 */
	bool hold, idp, idp_two, idp_both, trailing, no_aki;
	long days;
	bool remove;          /* entry 2 with reason removeFromCRL */
	bool indicator;       /* a deltaCRLIndicator naming |base| */
	bool indicator_plain; /* ... not critical */
	bool freshest;        /* a freshestCRL */
	long number, base;    /* cRLNumber (0: 42), BaseCRLNumber */
};

static EVP_PKEY *key;
static X509_NAME *name;

static void add_idp(X509_CRL *crl, const struct opts *o)
{
	ISSUING_DIST_POINT *idp = ISSUING_DIST_POINT_new();
	idp->distpoint = DIST_POINT_NAME_new();
	idp->distpoint->type = 0;
	idp->distpoint->name.fullname = sk_GENERAL_NAME_new_null();
	for (int i = 0; i < (o->idp_two ? 2 : 1); i++) {
		GENERAL_NAME *gn = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, URL, -1);
		GENERAL_NAME_set0_value(gn, GEN_URI, s);
		sk_GENERAL_NAME_push(idp->distpoint->name.fullname, gn);
	}
	idp->onlyuser = 0xff;
	if (o->idp_both)
		idp->onlyCA = 0xff;
	assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_issuing_distribution_point, idp, 1, 0), 1);
	ISSUING_DIST_POINT_free(idp);
}

static void add_freshest(X509_CRL *crl)
{
	CRL_DIST_POINTS *dps = sk_DIST_POINT_new_null();
	DIST_POINT *dp = DIST_POINT_new();
	dp->distpoint = DIST_POINT_NAME_new();
	dp->distpoint->type = 0;
	dp->distpoint->name.fullname = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	ASN1_STRING_set(s, "http://crl.example/a-delta.crl", -1);
	GENERAL_NAME_set0_value(gn, GEN_URI, s);
	sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gn);
	sk_DIST_POINT_push(dps, dp);
	assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_freshest_crl, dps, 0, 0), 1);
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
}

/* make writes a CRL made as |o| says to a temporary file; returns its fd. */
static int make(const struct opts *o, uint64_t *len)
{
	X509_CRL *crl = X509_CRL_new();
	X509_CRL_set_version(crl, o->version);
	X509_CRL_set_issuer_name(crl, name);
	ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), 0, 0);
	X509_CRL_set1_lastUpdate(crl, t);
	ASN1_TIME_adj(t, time(NULL), (int)(o->days ? o->days : 7), 0);
	X509_CRL_set1_nextUpdate(crl, t);
	ASN1_TIME_free(t);
	for (int i = 1; i <= 3; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();
		ASN1_INTEGER_set(sn, i);
		X509_REVOKED_set_serialNumber(r, sn);
		ASN1_TIME *rt = ASN1_TIME_set(NULL, 1700000000);
		X509_REVOKED_set_revocationDate(r, rt);
		ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();
		ASN1_ENUMERATED_set(e, o->hold && i == 2 ? 6 : o->remove && i == 2 ? 8 : 1);
		X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e, 0, 0);
		ASN1_ENUMERATED_free(e);
		ASN1_TIME_free(rt);
		ASN1_INTEGER_free(sn);
		X509_CRL_add0_revoked(crl, r);
	}
	if (o->version == 1) {
		ASN1_INTEGER *num = ASN1_INTEGER_new();
		ASN1_INTEGER_set(num, o->number ? o->number : 42);
		X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0);
		ASN1_INTEGER_free(num);
		if (o->indicator) {
			ASN1_INTEGER *b = ASN1_INTEGER_new();
			ASN1_INTEGER_set(b, o->base);
			assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_delta_crl, b,
			                                       o->indicator_plain ? 0 : 1, 0),
			                 1);
			ASN1_INTEGER_free(b);
		}
		if (o->freshest)
			add_freshest(crl);
		if (!o->no_aki) {
			AUTHORITY_KEYID *ak = AUTHORITY_KEYID_new();
			ak->keyid = ASN1_OCTET_STRING_new();
			ASN1_OCTET_STRING_set(ak->keyid,
			                      (const unsigned char *)"0123456789abcdefghij", 20);
			X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, ak, 0, 0);
			AUTHORITY_KEYID_free(ak);
		}
		if (o->idp)
			add_idp(crl, o);
	}
	X509_CRL_sort(crl);
	assert_true(X509_CRL_sign(crl, key, o->md) > 0);
	unsigned char *der = NULL;
	int n = i2d_X509_CRL(crl, &der);
	assert_true(n > 0);
	X509_CRL_free(crl);
	char path[] = "/tmp/vigil-lint-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, der, (size_t)n), n);
	if (o->trailing)
		assert_int_equal(write(fd, "\0", 1), 1);
	OPENSSL_free(der);
	*len = (uint64_t)n + (o->trailing ? 1 : 0);
	return fd;
}

/* lint_as lints the CRL |o| describes as a shard of URL |idp| (NULL: not
 * a shard), or, with |delta|, as a delta CRL whose base is number |base|;
 * returns "pass" or the rule that failed. */
static const char *lint_as(const struct opts *o, const char *idp, bool delta, uint64_t base)
{
	struct crlgen_ca ca;
	memset(&ca, 0, sizeof(ca));
	unsigned char *issuer = NULL;
	int il = i2d_X509_NAME(name, &issuer);
	ca.issuer = issuer;
	ca.issuer_len = (size_t)il;
	uint64_t len;
	int fd = make(o, &len);
	struct lint_expect x = {.ca = &ca,
	                        .idp = idp,
	                        .entries = 3,
	                        .previous = 41,
	                        .now = time(NULL),
	                        .delta = delta,
	                        .base = base};
	const char *rule = NULL;
	char err[256];
	int rc = lint_crl(fd, len, &x, &rule, err, sizeof(err));
	close(fd);
	OPENSSL_free(issuer);
	if (rc == 0)
		return "pass";
	assert_int_equal(rc, -EBADMSG);
	return rule;
}

static const char *lint(const struct opts *o, const char *idp)
{
	return lint_as(o, idp, false, 0);
}

static int setup(void **state)
{
	(void)state;
	key = EVP_EC_gen("P-256");
	name = X509_NAME_new();
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Lint CA", -1,
	                           -1, 0);
	return key && name ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(key);
	X509_NAME_free(name);
	return 0;
}

static void test_rules(void **state)
{
	(void)state;
	const EVP_MD *sha256 = EVP_sha256();
	struct opts ok = {.md = sha256, .version = 1};
	assert_string_equal(lint(&ok, NULL), "pass");
	struct opts shard = ok;
	shard.idp = true;
	assert_string_equal(lint(&shard, URL), "pass");
	/* The shard's IDP where a full CRL is expected, and none on a shard. */
	assert_string_equal(lint(&shard, NULL), "idp");
	assert_string_equal(lint(&ok, URL), "idp");
	assert_string_equal(lint(&shard, "http://crl.example/crl/a/2.crl"), "idp");
	struct opts two = shard;
	two.idp_two = true;
	assert_string_equal(lint(&two, URL), "idp");
	struct opts both = shard;
	both.idp_both = true;
	assert_string_equal(lint(&both, URL), "idp");
	struct opts sha1 = ok;
	sha1.md = EVP_sha1();
	assert_string_equal(lint(&sha1, NULL), "signature_algorithm");
	struct opts v1 = ok;
	v1.version = 0;
	assert_string_equal(lint(&v1, NULL), "version");
	struct opts trailing = ok;
	trailing.trailing = true;
	assert_string_equal(lint(&trailing, NULL), "der");
	struct opts hold = ok;
	hold.hold = true;
	assert_string_equal(lint(&hold, NULL), "reason");
	struct opts long_ = ok;
	long_.days = 11;
	assert_string_equal(lint(&long_, NULL), "validity");
	struct opts noaki = ok;
	noaki.no_aki = true;
	assert_string_equal(lint(&noaki, NULL), "aki");
}

/* Delta CRLs (RFC 5280 §5.2.4): base 40, number 42 above the CRL replaced
 * (41) and the base. */
static void test_delta_rules(void **state)
{
	(void)state;
	struct opts d = {.md = EVP_sha256(), .version = 1, .indicator = true, .base = 40};
	assert_string_equal(lint_as(&d, NULL, true, 40), "pass");
	/* removeFromCRL (a lifted hold): in a delta only. */
	struct opts rm = d;
	rm.remove = true;
	assert_string_equal(lint_as(&rm, NULL, true, 40), "pass");
	struct opts full_rm = {.md = EVP_sha256(), .version = 1, .remove = true};
	assert_string_equal(lint(&full_rm, NULL), "reason");
	assert_string_equal(lint(&full_rm, URL), "reason");
	/* The indicator: missing, not critical, another base, in a full CRL. */
	struct opts none = {.md = EVP_sha256(), .version = 1};
	assert_string_equal(lint_as(&none, NULL, true, 40), "delta_indicator");
	struct opts plain = d;
	plain.indicator_plain = true;
	assert_string_equal(lint_as(&plain, NULL, true, 40), "delta_indicator");
	assert_string_equal(lint_as(&d, NULL, true, 39), "delta_indicator");
	assert_string_equal(lint_as(&d, NULL, true, 41), "delta_indicator");
	assert_string_equal(lint(&d, NULL), "delta_indicator");
	assert_string_equal(lint(&d, URL), "delta_indicator");
	/* A number not above the base's (though above the CRL replaced). */
	struct opts low = d;
	low.base = 42;
	assert_string_equal(lint_as(&low, NULL, true, 42), "crl_number");
	low.base = 43;
	assert_string_equal(lint_as(&low, NULL, true, 43), "crl_number");
	struct opts above = d;
	above.base = 41;
	assert_string_equal(lint_as(&above, NULL, true, 41), "pass");
	/* Not above the CRL it replaces. */
	struct opts replaced = d;
	replaced.number = 41;
	assert_string_equal(lint_as(&replaced, NULL, true, 40), "crl_number");
	/* freshestCRL: in a full CRL, not in a delta. */
	struct opts fresh = d;
	fresh.freshest = true;
	assert_string_equal(lint_as(&fresh, NULL, true, 40), "freshest_crl");
	struct opts full_fresh = {.md = EVP_sha256(), .version = 1, .freshest = true};
	assert_string_equal(lint(&full_fresh, NULL), "pass");
	/* The rules of every CRL apply to a delta. */
	struct opts hold = d;
	hold.hold = true;
	assert_string_equal(lint_as(&hold, NULL, true, 40), "reason");
	struct opts idp = d;
	idp.idp = true;
	assert_string_equal(lint_as(&idp, NULL, true, 40), "idp");
	struct opts sha1 = d;
	sha1.md = EVP_sha1();
	assert_string_equal(lint_as(&sha1, NULL, true, 40), "signature_algorithm");
	struct opts long_ = d;
	long_.days = 11;
	assert_string_equal(lint_as(&long_, NULL, true, 40), "validity");
	struct opts noaki = d;
	noaki.no_aki = true;
	assert_string_equal(lint_as(&noaki, NULL, true, 40), "aki");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rules),
	        cmocka_unit_test(test_delta_rules),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
