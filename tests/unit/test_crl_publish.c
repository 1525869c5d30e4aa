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
#include <openssl/evp.h>
#include <openssl/pem.h>

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

static void test_numbers(void **state)
{
	(void)state;
	struct pub_state st = {0};
	assert_true(pub_next_number(dirfd_, "a", &st, 1795000000000000ull) == 1795000000000000ull);
	st.last_number = 1795000000000000ull;
	assert_true(pub_next_number(dirfd_, "a", &st, 1794000000000000ull) == 1795000000000001ull);
	/* Numbered copies count, but only this CA's, and only real numbers. */
	touch("a-1795000000000009.crl");
	touch("a-1-1796000000000000.crl"); /* CA "a-1" */
	touch("a-1.crl");                  /* CA "a-1"'s current CRL */
	touch("a-delta.crl");
	touch("a-1799000000000000.crl.pem");
	assert_true(pub_max_numbered(dirfd_, "a") == 1795000000000009ull);
	assert_true(pub_next_number(dirfd_, "a", &st, 1795000000000000ull) == 1795000000000010ull);
	assert_true(pub_max_numbered(dirfd_, "a-1") == 1796000000000000ull);
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
	    cmocka_unit_test(test_prune),
	    cmocka_unit_test(test_commit_and_pem),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
