/* SPDX-License-Identifier: Apache-2.0 */
#include "store/common/pki.h"
#include "store/common/pkcs11.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

const char *vg_pki_ssl_error(char *buf, size_t buflen)
{
	unsigned long e = ERR_peek_error();
	if (e == 0)
		snprintf(buf, buflen, "unknown error");
	else
		ERR_error_string_n(e, buf, buflen);
	ERR_clear_error();
	return buf;
}

/* read_file reads a whole small file (certificates and keys) into memory. */
static int read_file(const char *path, unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	size_t cap = 8192, len = 0;
	unsigned char *buf = malloc(cap);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= (64u << 20)) {
				snprintf(err, errlen, "%s: file too large", path);
				free(buf);
				fclose(f);
				return -EFBIG;
			}
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		return -EIO;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static bool looks_pem(const unsigned char *b, size_t len)
{
	return memmem(b, len, "-----BEGIN ", 11) != NULL;
}

int vg_pki_load_certs(const char *path, STACK_OF(X509) **out, char *err, size_t errlen)
{
	unsigned char *buf;
	size_t len;
	int rc = read_file(path, &buf, &len, err, errlen);
	if (rc < 0)
		return rc;
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (!sk) {
		free(buf);
		return -ENOMEM;
	}
	if (looks_pem(buf, len)) {
		BIO *bio = BIO_new_mem_buf(buf, (int)len);
		X509 *x;
		while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			if (!sk_X509_push(sk, x)) {
				X509_free(x);
				break;
			}
		}
		BIO_free(bio);
		ERR_clear_error(); /* the loop ends on "no start line" */
	} else {
		const unsigned char *p = buf;
		X509 *x = d2i_X509(NULL, &p, (long)len);
		if (x && p == buf + len)
			sk_X509_push(sk, x);
		else
			X509_free(x);
	}
	free(buf);
	if (sk_X509_num(sk) == 0) {
		char e[256];
		snprintf(err, errlen, "%s: no certificate (PEM or DER) found: %s", path,
			 vg_pki_ssl_error(e, sizeof(e)));
		sk_X509_free(sk);
		return -EBADMSG;
	}
	*out = sk;
	return 0;
}

int vg_pki_load_cert(const char *path, X509 **out, char *err, size_t errlen)
{
	STACK_OF(X509) *sk;
	int rc = vg_pki_load_certs(path, &sk, err, errlen);
	if (rc < 0)
		return rc;
	*out = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

int vg_pki_load_key(const char *uri, EVP_PKEY **out, char *err, size_t errlen)
{
	if (vg_pkcs11_is_uri(uri))
		return vg_pkcs11_load_key(uri, out, err, errlen);
	struct stat sb;
	if (stat(uri, &sb) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", uri, strerror(e));
		return -e;
	}
	if (sb.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "%s: key file is accessible by others (mode %04o); chmod o-rwx it",
			 uri, (unsigned)(sb.st_mode & 07777));
		return -EPERM;
	}
	unsigned char *buf;
	size_t len;
	int rc = read_file(uri, &buf, &len, err, errlen);
	if (rc < 0)
		return rc;
	EVP_PKEY *k = NULL;
	if (looks_pem(buf, len)) {
		BIO *bio = BIO_new_mem_buf(buf, (int)len);
		if (bio)
			k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else {
		const unsigned char *p = buf;
		k = d2i_AutoPrivateKey(NULL, &p, (long)len);
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (!k) {
		char e[256];
		snprintf(err, errlen, "%s: cannot read private key: %s", uri,
			 vg_pki_ssl_error(e, sizeof(e)));
		return -EBADMSG;
	}
	*out = k;
	return 0;
}
