/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of crlgen/publish.c on a mkdtemp() directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crlgen/publish.h"

static char dir[64];
static int dirfd_;

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vigil-test-pub-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* A subdirectory that pub_open_dir creates. */
	strcat(dir, "/out");
	dirfd_ = pub_open_dir(dir);
	return dirfd_ < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			unlinkat(dirfd_, de->d_name, 0);
	if (d)
		closedir(d);
	close(dirfd_);
	rmdir(dir);
	*strrchr(dir, '/') = '\0';
	rmdir(dir);
	return 0;
}

static void touch(const char *name)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static int truncate_at(const char *name, off_t len)
{
	int fd = openat(dirfd_, name, O_WRONLY);
	assert_true(fd >= 0);
	int rc = ftruncate(fd, len);
	close(fd);
	return rc;
}

static bool exists(const char *name)
{
	return faccessat(dirfd_, name, F_OK, 0) == 0;
}

static void test_state_roundtrip(void **state)
{
	(void)state;
	struct pub_state st, got;
	assert_int_equal(pub_state_load(dirfd_, "ca1", &got), 0); /* missing: zeroed */
	assert_true(got.last_number == 0 && got.full_number == 0);
	st.last_number = 1795000000123457ull;
	st.full_number = 1795000000123456ull;
	st.full_this_update = -5; /* any int64 survives */
	st.full_counter = UINT64_MAX;
	assert_int_equal(pub_state_save(dirfd_, "ca1", &st), 0);
	assert_int_equal(pub_state_load(dirfd_, "ca1", &got), 0);
	assert_memory_equal(&st, &got, sizeof(st));
	/* A damaged file is reported, not taken as zero. */
	int fd = openat(dirfd_, "ca2.state", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, "garbage\n", 8), 8);
	close(fd);
	assert_int_equal(pub_state_load(dirfd_, "ca2", &got), -EBADMSG);
}

static void test_state_prepare_then_commit(void **state)
{
	(void)state;
	struct pub_state old = {.last_number = 10, .full_number = 9}, next = old, got;
	assert_int_equal(pub_state_save(dirfd_, "ca3", &old), 0);
	next.full_number = 10;
	struct pub_file f;
	assert_int_equal(pub_state_prepare(&f, dirfd_, "ca3", &next), 0);
	/* Written and fsynced aside: the published state is still the old one. */
	assert_true(f.fd >= 0 && exists(f.tmp));
	assert_int_equal(pub_state_load(dirfd_, "ca3", &got), 0);
	assert_true(got.full_number == 9);
	assert_int_equal(pub_commit(&f), 0);
	assert_int_equal(pub_state_load(dirfd_, "ca3", &got), 0);
	assert_memory_equal(&next, &got, sizeof(next));
	/* An aborted one leaves nothing. */
	assert_int_equal(pub_state_prepare(&f, dirfd_, "ca3", &old), 0);
	char tmp[sizeof(f.tmp)];
	strcpy(tmp, f.tmp);
	pub_abort(&f);
	assert_false(exists(tmp));
	assert_int_equal(pub_state_load(dirfd_, "ca3", &got), 0);
	assert_true(got.full_number == 10);
}

/* next returns pub_next_number's number, which must succeed. */
static uint64_t next(const char *ca, const struct pub_state *st, uint64_t published, uint64_t now)
{
	uint64_t n = 0;
	assert_int_equal(pub_next_number(dirfd_, ca, st, published, now, &n), 0);
	return n;
}

static void test_numbers(void **state)
{
	(void)state;
	struct pub_state st = {0};
	assert_true(next("a", &st, 0, 1795000000000000ull) == 1795000000000000ull);
	st.last_number = 1795000000000000ull;
	assert_true(next("a", &st, 0, 1794000000000000ull) == 1795000000000001ull);
	/* Numbered copies count, but only this CA's, and only real numbers. */
	touch("a-1795000000000009.crl");
	touch("a-1-1796000000000000.crl"); /* CA "a-1" */
	touch("a-1.crl");                  /* CA "a-1"'s current CRL */
	touch("a-delta.crl");
	touch("a-1799000000000000.crl.pem");
	assert_true(pub_max_numbered(dirfd_, "a") == 1795000000000009ull);
	assert_true(next("a", &st, 0, 1795000000000000ull) == 1795000000000010ull);
	assert_true(pub_max_numbered(dirfd_, "a-1") == 1796000000000000ull);
	/* The number of the CRL in place: another host 30 s ahead published it
	 * (issue 11 item 10). */
	assert_true(next("a", &st, 1795000030000000ull, 1795000000000000ull) ==
	            1795000030000001ull);
	assert_true(next("a", &st, 1795000030000000ull, 1795000040000000ull) ==
	            1795000040000000ull);
	/* Nothing above the highest 64-bit number: refused, never wrapped to 0. */
	uint64_t n = 0;
	assert_int_equal(pub_next_number(dirfd_, "a", &st, UINT64_MAX, 1, &n), -ERANGE);
	st.last_number = UINT64_MAX;
	assert_int_equal(pub_next_number(dirfd_, "a", &st, 0, 1, &n), -ERANGE);
	st.last_number = UINT64_MAX - 1;
	assert_true(next("a", &st, 0, 1) == UINT64_MAX);
}

/* write_crl writes a signed CRL numbered |dec| (decimal) with |entries|
 * entries as |name|, or, with |dec| NULL, one without a cRLNumber. */
static void write_crl(const char *name, const char *dec, int entries)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_CRL *crl = X509_CRL_new();
	X509_NAME *issuer = X509_NAME_new();
	assert_non_null(key);
	assert_int_equal(X509_CRL_set_version(crl, X509_CRL_VERSION_2), 1);
	X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1,
	                           0);
	X509_CRL_set_issuer_name(crl, issuer);
	ASN1_TIME *t = ASN1_TIME_set(NULL, 1795000000);
	X509_CRL_set1_lastUpdate(crl, t);
	X509_CRL_set1_nextUpdate(crl, t);
	for (int i = 0; i < entries; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();
		ASN1_INTEGER_set_uint64(sn, 0x1000000u + (uint64_t)i);
		X509_REVOKED_set_serialNumber(r, sn);
		X509_REVOKED_set_revocationDate(r, t);
		X509_CRL_add0_revoked(crl, r);
		ASN1_INTEGER_free(sn);
	}
	if (dec) {
		BIGNUM *bn = NULL;
		assert_true(BN_dec2bn(&bn, dec) > 0);
		ASN1_INTEGER *num = BN_to_ASN1_INTEGER(bn, NULL);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0), 1);
		ASN1_INTEGER_free(num);
		BN_free(bn);
	}
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	unsigned char *der = NULL;
	int len = i2d_X509_CRL(crl, &der);
	assert_true(len > 0);
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, der, (size_t)len), len);
	close(fd);
	OPENSSL_free(der);
	ASN1_TIME_free(t);
	X509_NAME_free(issuer);
	X509_CRL_free(crl);
	EVP_PKEY_free(key);
}

static void test_crl_number(void **state)
{
	(void)state;
	uint64_t n;
	char dec[PUB_NUMBER_DEC];
	assert_int_equal(pub_crl_number(dirfd_, "e.crl", &n, dec, sizeof(dec)), -ENOENT);
	/* Read past 5,000 entries (long-form lengths) to the extensions. */
	write_crl("e.crl", "1795000030000000", 5000);
	assert_int_equal(pub_crl_number(dirfd_, "e.crl", &n, dec, sizeof(dec)), 0);
	assert_true(n == 1795000030000000ull);
	assert_string_equal(dec, "1795000030000000");
	write_crl("e-delta.crl", "18446744073709551615", 0);
	assert_int_equal(pub_crl_number(dirfd_, "e-delta.crl", &n, dec, sizeof(dec)), 0);
	assert_true(n == UINT64_MAX);
	/* 2^64 and 20 octets: named, but too big for a 64-bit number. */
	write_crl("e-delta.crl", "18446744073709551616", 1);
	assert_int_equal(pub_crl_number(dirfd_, "e-delta.crl", &n, dec, sizeof(dec)), -ERANGE);
	assert_string_equal(dec, "18446744073709551616");
	write_crl("e-delta.crl", "730750818665451459101842416358141509827966271487", 1);
	assert_int_equal(pub_crl_number(dirfd_, "e-delta.crl", &n, dec, sizeof(dec)), -ERANGE);
	assert_string_equal(dec, "730750818665451459101842416358141509827966271487");
	/* Not a CRL with a number: no number, whatever the file holds. */
	write_crl("f.crl", NULL, 3);
	assert_int_equal(pub_crl_number(dirfd_, "f.crl", &n, dec, sizeof(dec)), -EBADMSG);
	touch("g.crl");
	assert_int_equal(pub_crl_number(dirfd_, "g.crl", &n, dec, sizeof(dec)), -EBADMSG);
	/* A truncated CRL: the lengths run past the end of the file. */
	write_crl("h.crl", "1795000030000000", 100);
	assert_int_equal(truncate_at("h.crl", 500), 0);
	assert_int_equal(pub_crl_number(dirfd_, "h.crl", &n, dec, sizeof(dec)), -EBADMSG);
	int fd = openat(dirfd_, "i.crl", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, "\x30\x84\xff\xff\xff\xff\x30\x00", 8), 8);
	close(fd);
	assert_int_equal(pub_crl_number(dirfd_, "i.crl", &n, dec, sizeof(dec)), -EBADMSG);
}

static void test_prune(void **state)
{
	(void)state;
	touch("b-1795000000000001.crl");
	touch("b-1795000000000003.crl");
	touch("b-1795000000000002.crl");
	touch("b-1795000000000004.crl");
	touch("b-x.crl");
	touch("b.crl");
	assert_int_equal(pub_prune(dirfd_, "b", 2), 0);
	assert_false(exists("b-1795000000000001.crl"));
	assert_false(exists("b-1795000000000002.crl"));
	assert_true(exists("b-1795000000000003.crl"));
	assert_true(exists("b-1795000000000004.crl"));
	assert_true(exists("b-x.crl"));
	assert_true(exists("b.crl"));
	assert_int_equal(pub_prune(dirfd_, "b", 0), 0);
	assert_false(exists("b-1795000000000004.crl"));
	assert_true(exists("b.crl"));
}

static void test_commit_and_pem(void **state)
{
	(void)state;
	/* 100,001 bytes: not a multiple of 48, more than one read. */
	size_t len = 100001;
	uint8_t *data = malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	struct pub_file der, pem;
	assert_int_equal(pub_begin(&der, dirfd_, "c.crl"), 0);
	assert_int_equal(pub_begin(&pem, dirfd_, "c.crl.pem"), 0);
	assert_int_equal(write(der.fd, data, len), (ssize_t)len);
	assert_int_equal(pub_write_pem(&pem, &der, len, "X509 CRL"), 0);
	assert_int_equal(pub_sync(&der), 0);
	assert_false(exists("c.crl"));
	assert_int_equal(pub_link_copy(&der, "c-1795000000000001.crl"), 0);
	assert_int_equal(pub_commit(&der), 0);
	assert_int_equal(pub_commit(&pem), 0);
	assert_int_equal(pub_sync_dir(dirfd_), 0);
	struct stat sb;
	assert_int_equal(fstatat(dirfd_, "c.crl", &sb, 0), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	assert_int_equal(sb.st_size, (off_t)len);
	assert_int_equal(sb.st_nlink, 2);
	/* OpenSSL reads the PEM back to the same bytes. */
	char path[128];
	snprintf(path, sizeof(path), "%s/c.crl.pem", dir);
	BIO *bio = BIO_new_file(path, "r");
	assert_non_null(bio);
	char *name = NULL, *header = NULL;
	unsigned char *got = NULL;
	long glen = 0;
	assert_int_equal(PEM_read_bio(bio, &name, &header, &got, &glen), 1);
	assert_string_equal(name, "X509 CRL");
	assert_int_equal(glen, (long)len);
	assert_memory_equal(got, data, len);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(got);
	BIO_free(bio);
	/* Lines are 64 characters. */
	FILE *f = fopen(path, "r");
	char line[128];
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(fgets(line, sizeof(line), f));
	assert_int_equal(strlen(line), 65);
	fclose(f);
	/* An aborted file leaves nothing behind. */
	struct pub_file t;
	assert_int_equal(pub_begin(&t, dirfd_, "d.crl"), 0);
	char tmp[sizeof(t.tmp)];
	strcpy(tmp, t.tmp);
	assert_true(exists(tmp));
	pub_abort(&t);
	pub_abort(&t);
	assert_false(exists(tmp));
	assert_false(exists("d.crl"));
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_state_roundtrip),
	        cmocka_unit_test(test_state_prepare_then_commit),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_crl_number),
	        cmocka_unit_test(test_prune),
	        cmocka_unit_test(test_commit_and_pem),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
