/* SPDX-License-Identifier: Apache-2.0 */
#include "common/pki.h"
#include "common/pkcs11.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdbool.h>
#include <stdlib.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* read_fd reads the whole small file |fd| (certificates and keys), named
 * |path| in messages, into memory. It does not close |fd|. */
static int read_fd(int fd, const char *path, unsigned char **out, size_t *outlen, char *err,
                   size_t errlen)
{
	size_t cap = 8192, len = 0;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap >= (64u << 20)) {
				snprintf(err, errlen, "%s: file too large", path);
				OPENSSL_cleanse(buf, len);
				free(buf);
				return -EFBIG;
			}
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb) {
				OPENSSL_cleanse(buf, len);
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			snprintf(err, errlen, "%s: read error: %s", path, strerror(e));
			OPENSSL_cleanse(buf, len);
			free(buf);
			return -EIO;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

/* read_file reads a whole small file (certificates) into memory. */
static int read_file(const char *path, unsigned char **out, size_t *outlen, char *err,
                     size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	int rc = read_fd(fd, path, out, outlen, err, errlen);
	close(fd);
	return rc;
}

/* The groups a secret file may be readable by: the process's effective
 * group, and the primary group of the user it drops to ([responder] user,
 * only when running as root: otherwise that setting is not applied). */
static bool svc_gid_set;
static gid_t svc_gid;

void vg_pki_set_service_user(const char *user)
{
	svc_gid_set = false;
	if (!user || geteuid() != 0)
		return;
	struct passwd *pw = getpwnam(user);
	if (pw) {
		svc_gid = pw->pw_gid;
		svc_gid_set = true;
	}
}

static const char *group_name(gid_t g, char *buf, size_t buflen)
{
	struct group *gr = getgrgid(g);
	if (gr)
		snprintf(buf, buflen, "%s", gr->gr_name);
	else
		snprintf(buf, buflen, "%u", (unsigned)g);
	return buf;
}

int vg_pki_check_secret_fd(int fd, const char *what, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	unsigned mode = (unsigned)(sb.st_mode & 07777);
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s is not a regular file", path, what);
		return -EPERM;
	}
	if (sb.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "%s: %s is accessible by others (mode %04o); chmod o-rwx it",
		         path, what, mode);
		return -EPERM;
	}
	if ((sb.st_mode & (S_IRGRP | S_IWGRP)) && sb.st_gid != getegid() &&
	    !(svc_gid_set && sb.st_gid == svc_gid)) {
		char g[64], own[64];
		group_name(sb.st_gid, g, sizeof(g));
		group_name(svc_gid_set ? svc_gid : getegid(), own, sizeof(own));
		snprintf(err, errlen,
		         "%s: %s is accessible by group %s (mode %04o), not the service's own "
		         "group %s; chgrp %s or chmod g-rw it",
		         path, what, g, mode, own, own);
		return -EPERM;
	}
	return 0;
}

static bool looks_pem(const unsigned char *b, size_t len)
{
	return memmem(b, len, "-----BEGIN ", 11) != NULL;
}

int vg_pki_load_certs(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen)
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
	STACK_OF(X509) * sk;
	int rc = vg_pki_load_certs(path, &sk, err, errlen);
	if (rc < 0)
		return rc;
	*out = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

int vg_pki_open_secret(const char *path, const char *what, const char *label, char *err,
                       size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s%s: %s", label, path, strerror(e));
		return -e;
	}
	int rc = vg_pki_check_secret_fd(fd, what, path, err, errlen);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int vg_pki_load_key(const char *uri, EVP_PKEY **out, char *err, size_t errlen)
{
	if (vg_pkcs11_is_uri(uri))
		return vg_pkcs11_load_key(uri, out, err, errlen);
	int fd = vg_pki_open_secret(uri, "key file", "", err, errlen);
	if (fd < 0)
		return fd;
	unsigned char *buf;
	size_t len;
	int rc = read_fd(fd, uri, &buf, &len, err, errlen);
	close(fd);
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
