/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRL files (crlfile.h): each version of a CRL file (dev, inode, size,
 * mtime) is opened and read once per process, for its ETag (SHA-256) and
 * dates, and shared by the workers in a registry; the body is sent from the
 * file later (conn.c). A version that cannot be read is remembered too, and
 * tried again when the file changes or after CRL_RETRY_MS.
 */
#include "responder/crlfile.h"
#include "responder/worker.h"
#include "common/der.h"
#include "common/log.h"
#include "common/text.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* The registry of CRL file versions: each is in it while referenced (by a
 * worker's crls[] or a connection sending it). */
static pthread_mutex_t crl_reg_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held while a version is read, so that two workers meeting a new version
 * read it once. */
static pthread_mutex_t crl_load_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crl_file *crl_reg;

/* Bytes read at a time for the ETag; the first read has the CRL's head. */
#define CRL_READ (64u << 10)

uint64_t crlfile_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void crlfile_unref(struct crl_file *f)
{
	if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	/* Nobody takes a reference from 0 (crl_find), so it is ours to free. */
	pthread_mutex_lock(&crl_reg_lock);
	for (struct crl_file **pp = &crl_reg; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	pthread_mutex_unlock(&crl_reg_lock);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

bool crlfile_same(const struct crl_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
	       f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void crl_set_id(struct crl_file *f, const struct stat *st)
{
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtime = st->st_mtim;
}

/* crl_find returns a new reference to the registered version |st|, a
 * failure only until its retry time; NULL if none (under crl_reg_lock). */
static struct crl_file *crl_find(const struct stat *st, uint64_t now)
{
	for (struct crl_file *f = crl_reg; f; f = f->next) {
		if (!crlfile_same(f, st) || (f->err && now >= f->retry_ms))
			continue;
		int r = atomic_load(&f->refs);
		while (r > 0 && !atomic_compare_exchange_weak(&f->refs, &r, r + 1))
			;
		if (r > 0)
			return f;
	}
	return NULL;
}

/* crlfile_times: d2i_X509_CRL takes half a second on a CRL of 600,000
 * entries; this reads the fields before them with the bounded reader of
 * common/der.h. */
bool crlfile_times(const uint8_t *der, size_t avail, size_t len, int64_t *this_update,
                   int64_t *next_update)
{
	struct vg_cbs c, tbs, el;
	unsigned tag;
	size_t hl, cl;
	if (avail > len)
		return false;
	vg_cbs_init(&c, der, avail);
	/* The CertificateList fills the file exactly. */
	if (!vg_cbs_get_asn1_header(&c, &tag, &hl, &cl) || tag != DER_SEQUENCE || hl + cl != len)
		return false;
	size_t off = hl;
	/* The tbsCertList: its fields, as far as they were read. */
	if (!vg_cbs_get_asn1_header(&c, &tag, &hl, &cl) || tag != DER_SEQUENCE ||
	    off + hl + cl > len)
		return false;
	bool cut = vg_cbs_len(&c) < cl;
	vg_cbs_init(&tbs, vg_cbs_data(&c), cut ? vg_cbs_len(&c) : cl);
	/* version (optional), signature, issuer */
	if (!vg_cbs_get_any_asn1_element(&tbs, &el, &tag, NULL))
		return false;
	if (tag == DER_INTEGER && !vg_cbs_get_any_asn1_element(&tbs, &el, &tag, NULL))
		return false;
	if (tag != DER_SEQUENCE || !vg_cbs_skip_asn1(&tbs, DER_SEQUENCE))
		return false;
	if (!vg_cbs_get_time(&tbs, this_update))
		return false;
	*next_update = 0;
	struct vg_cbs peek = tbs;
	if (!vg_cbs_get_asn1_header(&peek, &tag, NULL, NULL))
		return !cut; /* the end of the tbsCertList, or of what was read */
	if (tag != DER_UTCTIME && tag != DER_GENERALIZEDTIME)
		return true; /* no nextUpdate */
	return vg_cbs_get_time(&tbs, next_update);
}

/* crl_decode_times reads the dates of the CRL in |fd| (|size| bytes) by
 * decoding it all: PEM, which crlgen does not write, or odd DER. */
static int crl_decode_times(int fd, size_t size, struct crl_file *f)
{
	uint8_t *data = malloc(size ? size : 1);
	if (!data)
		return -ENOMEM;
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, data + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int rc = r < 0 ? -errno : -EIO;
			free(data);
			return rc;
		}
		got += (size_t)r;
	}
	const unsigned char *p = data;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)got);
	if (!crl) {
		BIO *bio = BIO_new_mem_buf(data, (int)got);
		crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	}
	free(data);
	if (!crl)
		return -EBADMSG;
	struct tm tm;
	const ASN1_TIME *lu = X509_CRL_get0_lastUpdate(crl), *nu = X509_CRL_get0_nextUpdate(crl);
	if (lu && ASN1_TIME_to_tm(lu, &tm))
		f->this_update = (int64_t)timegm(&tm);
	if (nu && ASN1_TIME_to_tm(nu, &tm))
		f->next_update = (int64_t)timegm(&tm);
	X509_CRL_free(crl);
	return 0;
}

/* crl_load opens and reads |path| (which the caller saw as |seen|) for
 * serving: its ETag (SHA-256) and dates; the body is sent from the file
 * later. Its identity is the file it opened (fstat), not the one the caller
 * saw: crlgen may rename a new one in between. A file that cannot be served
 * is a version too, with |err| (so that it is not read again at every
 * request); NULL only on errors that say nothing of the file (out of memory
 * or of descriptors). */
static int crl_load(const char *path, const struct stat *seen, struct crl_file **out)
{
	*out = NULL;
	struct crl_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	atomic_init(&f->refs, 1);
	f->fd = -1;
	crl_set_id(f, seen);
	uint8_t *buf = NULL;
	EVP_MD_CTX *md = NULL;
	struct stat st;
	int rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	crl_set_id(f, &st);
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto fail;
	}
	buf = malloc(CRL_READ);
	md = EVP_MD_CTX_new();
	rc = -ENOMEM;
	if (!buf || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		goto fail;
	size_t size = (size_t)st.st_size, got = 0;
	bool times = false;
	while (got < size) {
		size_t want = size - got < CRL_READ ? size - got : CRL_READ;
		ssize_t r = pread(fd, buf, want, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			goto fail;
		}
		if (got == 0)
			times = crlfile_times(buf, (size_t)r, size, &f->this_update,
			                      &f->next_update);
		EVP_DigestUpdate(md, buf, (size_t)r);
		got += (size_t)r;
	}
	if (!times && (rc = crl_decode_times(fd, size, f)) < 0)
		goto fail;
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl;
	rc = -ENOMEM;
	if (!EVP_DigestFinal_ex(md, dg, &dl))
		goto fail;
	vg_etag_from_sha256(dg, f->etag);
	f->fd = fd;
	f->len = size;
	free(buf);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	*out = f;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE) {
		free(f);
		return rc;
	}
	f->err = rc;
	f->retry_ms = crlfile_clock_ms() + CRL_RETRY_MS;
	*out = f;
	return rc;
}

/* crlfile_get returns (a new reference to) the version of |path| that the caller
 * saw as |st|, reading it if no worker has, and a failure remembered for
 * CRL_RETRY_MS: each version is read once per process, not once per worker
 * or per request. Negative (no version) only when memory or descriptors ran
 * out. */
int crlfile_get(struct worker *w, const char *ca, const char *path, const struct stat *st,
                struct crl_file **out)
{
	uint64_t now = crlfile_clock_ms();
	pthread_mutex_lock(&crl_reg_lock);
	struct crl_file *f = crl_find(st, now);
	pthread_mutex_unlock(&crl_reg_lock);
	int rc = 0;
	if (!f) {
		pthread_mutex_lock(&crl_load_lock);
		pthread_mutex_lock(&crl_reg_lock);
		f = crl_find(st, now);
		pthread_mutex_unlock(&crl_reg_lock);
		if (!f) {
			rc = crl_load(path, st, &f);
			m_add(rc < 0 ? &w->m.crl_load_failures : &w->m.crl_loads, 1);
			if (rc < 0 && worker_log_ok(w, LK_CRL_UNREADABLE))
				log_err("event=crl_unreadable ca=%s path=%s error=\"%s\" %s", ca,
				        path, strerror(-rc),
				        f ? "retry=on_change_or_10s" : "retry=next_request");
			if (f) {
				pthread_mutex_lock(&crl_reg_lock);
				f->next = crl_reg;
				crl_reg = f;
				pthread_mutex_unlock(&crl_reg_lock);
			}
		}
		pthread_mutex_unlock(&crl_load_lock);
	}
	*out = f;
	return f ? 0 : rc;
}

bool crlfile_current(const struct crl_file *f, const struct stat *st)
{
	return f && crlfile_same(f, st) && !(f->err && crlfile_clock_ms() >= f->retry_ms);
}

bool crlfile_registry_empty(void)
{
	pthread_mutex_lock(&crl_reg_lock);
	bool empty = crl_reg == NULL;
	pthread_mutex_unlock(&crl_reg_lock);
	return empty;
}
