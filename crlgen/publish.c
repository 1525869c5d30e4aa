/* SPDX-License-Identifier: Apache-2.0 */
#include "crlgen/publish.h"
#include "common/der.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#define MIN_NUMBER_DIGITS 16

int pub_open_dir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int pub_begin(struct pub_file *f, int dirfd, const char *name)
{
	static unsigned seq;
	f->dirfd = dirfd;
	f->fd = -1;
	if ((size_t)snprintf(f->name, sizeof(f->name), "%s", name) >= sizeof(f->name))
		return -ENAMETOOLONG;
	snprintf(f->tmp, sizeof(f->tmp), ".%s.tmp-%ld-%u", name, (long)getpid(), seq++);
	f->fd = openat(dirfd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		int e = errno;
		f->tmp[0] = '\0';
		return -e;
	}
	/* The umask must not make a public CRL unreadable. */
	fchmod(f->fd, 0644);
	return 0;
}

void pub_abort(struct pub_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp[0])
		unlinkat(f->dirfd, f->tmp, 0);
	f->tmp[0] = '\0';
}

int pub_sync(struct pub_file *f)
{
	return fsync(f->fd) < 0 ? -errno : 0;
}

int pub_write_pem(struct pub_file *pem, const struct pub_file *der, uint64_t len, const char *label)
{
	/* 48 DER bytes make one 64-character line; 1024 lines per read. */
	enum { LINE = 48, LINES = 1024 };
	uint8_t *in = malloc(LINE * LINES);
	char *out = malloc(LINES * 65 + 128);
	int rc = 0;
	if (!in || !out) {
		rc = -ENOMEM;
		goto out;
	}
	int n = snprintf(out, 128, "-----BEGIN %s-----\n", label);
	if ((rc = write_all(pem->fd, out, (size_t)n)) < 0)
		goto out;
	for (uint64_t off = 0; off < len;) {
		size_t want = len - off < LINE * LINES ? (size_t)(len - off) : LINE * LINES;
		ssize_t got = pread(der->fd, in, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			rc = got < 0 ? -errno : -EIO;
			goto out;
		}
		size_t o = 0;
		for (size_t i = 0; i < (size_t)got; i += LINE) {
			size_t l = (size_t)got - i < LINE ? (size_t)got - i : LINE;
			o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + i, (int)l);
			out[o++] = '\n';
		}
		if ((size_t)got % LINE && off + (uint64_t)got < len) {
			/* Reads are multiples of 48 unless at the end: keep lines whole. */
			rc = -EIO;
			goto out;
		}
		if ((rc = write_all(pem->fd, out, o)) < 0)
			goto out;
		off += (uint64_t)got;
		/* Start the writeback early (see crl.c); pub_sync waits for it. */
		if (off % (LINE * LINES * 128) == 0)
			sync_file_range(pem->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	n = snprintf(out, 128, "-----END %s-----\n", label);
	rc = write_all(pem->fd, out, (size_t)n);
out:
	free(in);
	free(out);
	return rc;
}

int pub_link_copy(struct pub_file *f, const char *name)
{
	if (unlinkat(f->dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	if (linkat(f->dirfd, f->tmp, f->dirfd, name, 0) < 0)
		return -errno;
	return 0;
}

int pub_commit(struct pub_file *f)
{
	if (renameat(f->dirfd, f->tmp, f->dirfd, f->name) < 0)
		return -errno;
	f->tmp[0] = '\0';
	close(f->fd);
	f->fd = -1;
	return 0;
}

int pub_sync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* numbered returns the NUMBER of |fname| when it is |ca|-NUMBER.crl. */
static bool numbered(const char *fname, const char *ca, uint64_t *num)
{
	size_t cl = strlen(ca);
	if (strncmp(fname, ca, cl) || fname[cl] != '-')
		return false;
	const char *d = fname + cl + 1;
	size_t nd = 0;
	uint64_t v = 0;
	while (d[nd] >= '0' && d[nd] <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(d[nd] - '0');
		nd++;
	}
	if (nd < MIN_NUMBER_DIGITS || strcmp(d + nd, ".crl"))
		return false;
	*num = v;
	return true;
}

/* open_dir returns a stream over the directory |dirfd| from its start, on
 * a descriptor of its own (closedir leaves |dirfd| open), or NULL with errno
 * set. */
static DIR *open_dir(int dirfd)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	rewinddir(d);
	return d;
}

/* scan_numbered calls |cb| for each numbered CRL of |ca|. */
static int scan_numbered(int dirfd, const char *ca, void (*cb)(uint64_t n, void *arg), void *arg)
{
	DIR *d = open_dir(dirfd);
	if (!d)
		return -errno;
	struct dirent *de;
	uint64_t n;
	while ((de = readdir(d)) != NULL)
		if (numbered(de->d_name, ca, &n))
			cb(n, arg);
	closedir(d);
	return 0;
}

static void max_cb(uint64_t n, void *arg)
{
	uint64_t *m = arg;
	if (n > *m)
		*m = n;
}

uint64_t pub_max_numbered(int dirfd, const char *ca)
{
	uint64_t m = 0;
	scan_numbered(dirfd, ca, max_cb, &m);
	return m;
}

/* hdr_at reads the DER header at |off| of |fd|, whose element must end by
 * |end|: its tag, and where its content starts and how long it is. Only the
 * header is read (with pread); common/der.h's reader judges it. */
static int hdr_at(int fd, uint64_t off, uint64_t end, uint8_t *tag, uint64_t *coff, uint64_t *clen)
{
	uint8_t h[10]; /* tag, length octet and at most 8 length octets */
	if (off >= end)
		return -EBADMSG;
	size_t want = end - off < sizeof(h) ? (size_t)(end - off) : sizeof(h);
	ssize_t got;
	while ((got = pread(fd, h, want, (off_t)off)) < 0 && errno == EINTR)
		;
	if (got < 0)
		return -errno;
	struct vg_cbs c;
	vg_cbs_init(&c, h, (size_t)got);
	unsigned t;
	size_t hl, len;
	/* High tag numbers, indefinite and non-minimal lengths are not DER. */
	if (!vg_cbs_get_asn1_header(&c, &t, &hl, &len) || len > end - off - hl)
		return -EBADMSG;
	*tag = (uint8_t)t;
	*coff = off + hl;
	*clen = len;
	return 0;
}

/* The most bytes of crlExtensions read (ours are a few hundred). */
#define MAX_CRL_EXTENSIONS 65536

/* crl_number_at finds the cRLNumber of the DER CRL in |fd| of |size| bytes:
 * the headers of the TBSCertList's elements are read and skipped, so a CRL
 * of millions of entries costs a few reads, and only crlExtensions is
 * parsed (by OpenSSL). */
static int crl_number_at(int fd, uint64_t size, BIGNUM **out)
{
	uint8_t tag;
	uint64_t off, len;
	int rc = hdr_at(fd, 0, size, &tag, &off, &len);
	if (rc < 0)
		return rc;
	if (tag != DER_SEQUENCE)
		return -EBADMSG;
	if ((rc = hdr_at(fd, off, off + len, &tag, &off, &len)) < 0)
		return rc;
	if (tag != DER_SEQUENCE)
		return -EBADMSG;
	uint64_t end = off + len;
	while (off < end) {
		uint64_t coff, clen;
		if ((rc = hdr_at(fd, off, end, &tag, &coff, &clen)) < 0)
			return rc;
		off = coff + clen;
		if (tag != DER_CTX_CONS(0)) /* crlExtensions [0] EXPLICIT */
			continue;
		if (clen > MAX_CRL_EXTENSIONS)
			return -EBADMSG;
		uint8_t *buf = malloc(clen ? (size_t)clen : 1);
		if (!buf)
			return -ENOMEM;
		ssize_t got;
		while ((got = pread(fd, buf, (size_t)clen, (off_t)coff)) < 0 && errno == EINTR)
			;
		rc = got < 0 ? -errno : (uint64_t)got != clen ? -EBADMSG : 0;
		const unsigned char *p = buf;
		STACK_OF(X509_EXTENSION) *exts =
		        rc == 0 ? d2i_X509_EXTENSIONS(NULL, &p, (long)clen) : NULL;
		free(buf);
		if (rc < 0)
			return rc;
		int i = exts ? X509v3_get_ext_by_NID(exts, NID_crl_number, -1) : -1;
		ASN1_INTEGER *num = i >= 0 ? X509V3_EXT_d2i(X509v3_get_ext(exts, i)) : NULL;
		*out = num ? ASN1_INTEGER_to_BN(num, NULL) : NULL;
		ASN1_INTEGER_free(num);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		ERR_clear_error();
		if (!*out)
			return -EBADMSG;
		if (BN_is_negative(*out)) {
			BN_free(*out);
			*out = NULL;
			return -EBADMSG;
		}
		return 0;
	}
	return -EBADMSG; /* no crlExtensions: a v1 CRL, not ours */
}

int pub_crl_number(int dirfd, const char *name, uint64_t *num, char *dec, size_t declen)
{
	*num = 0;
	if (declen)
		dec[0] = '\0';
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat sb;
	BIGNUM *bn = NULL;
	int rc = fstat(fd, &sb) < 0 ? -errno : crl_number_at(fd, (uint64_t)sb.st_size, &bn);
	close(fd);
	if (rc < 0)
		return rc;
	char *d = BN_bn2dec(bn);
	if (d && declen)
		snprintf(dec, declen, "%s", d);
	OPENSSL_free(d);
	if (BN_num_bits(bn) > 64) {
		rc = -ERANGE;
	} else {
		unsigned char b[8] = {0};
		BN_bn2binpad(bn, b, sizeof(b));
		for (size_t i = 0; i < sizeof(b); i++)
			*num = *num << 8 | b[i];
	}
	BN_free(bn);
	return rc;
}

int pub_next_number(int dirfd, const char *ca, const struct pub_state *st, uint64_t published,
                    uint64_t now_us, uint64_t *out)
{
	/* The highest number seen, which the new one must exceed. */
	uint64_t floor = st->last_number;
	uint64_t m = pub_max_numbered(dirfd, ca);
	if (m > floor)
		floor = m;
	if (published > floor)
		floor = published;
	if (floor == UINT64_MAX) {
		*out = UINT64_MAX;
		return -ERANGE;
	}
	*out = now_us > floor ? now_us : floor + 1;
	return 0;
}

struct num_list {
	uint64_t *v;
	size_t n, cap;
	bool oom;
};

static void list_cb(uint64_t n, void *arg)
{
	struct num_list *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int pub_prune(int dirfd, const char *ca, int keep)
{
	struct num_list l = {0};
	int rc = scan_numbered(dirfd, ca, list_cb, &l);
	if (rc == 0 && l.oom)
		rc = -ENOMEM;
	if (rc == 0 && l.n > (size_t)keep) {
		qsort(l.v, l.n, sizeof(*l.v), cmp_u64);
		for (size_t i = 0; i < l.n - (size_t)keep; i++) {
			char name[320];
			snprintf(name, sizeof(name), "%s-%" PRIu64 ".crl", ca, l.v[i]);
			if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT && rc == 0)
				rc = -errno;
		}
	}
	free(l.v);
	return rc;
}

int pub_state_load(int dirfd, const char *ca, struct pub_state *st)
{
	memset(st, 0, sizeof(*st));
	char name[320];
	snprintf(name, sizeof(name), "%s.state", ca);
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		int e = errno;
		close(fd);
		return -e;
	}
	char line[256];
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		char key[64];
		unsigned long long v;
		long long sv;
		if (sscanf(line, "%63[a-z_]=%llu", key, &v) != 2) {
			rc = -EBADMSG;
			break;
		}
		if (!strcmp(key, "last_number"))
			st->last_number = v;
		else if (!strcmp(key, "full_number"))
			st->full_number = v;
		else if (!strcmp(key, "full_counter"))
			st->full_counter = v;
		else if (!strcmp(key, "store_id"))
			st->store_id = v;
		else if (!strcmp(key, "full_this_update") &&
		         sscanf(line, "%*[a-z_]=%lld", &sv) == 1)
			st->full_this_update = sv;
		else if (!strcmp(key, "shards_this_update") &&
		         sscanf(line, "%*[a-z_]=%lld", &sv) == 1)
			st->shards_this_update = sv;
		/* Unknown keys are skipped: a newer crlgen may add some. */
	}
	fclose(f);
	return rc;
}

int pub_state_prepare(struct pub_file *f, int dirfd, const char *ca, const struct pub_state *st)
{
	char name[320], buf[512];
	snprintf(name, sizeof(name), "%s.state", ca);
	int n = snprintf(buf, sizeof(buf),
	                 "# vigil-crlgen state for CA %s; keeps CRL numbers increasing\n"
	                 "last_number=%" PRIu64 "\nfull_number=%" PRIu64
	                 "\nfull_this_update=%" PRId64 "\nfull_counter=%" PRIu64
	                 "\nshards_this_update=%" PRId64 "\nstore_id=%" PRIu64 "\n",
	                 ca, st->last_number, st->full_number, st->full_this_update,
	                 st->full_counter, st->shards_this_update, st->store_id);
	int rc = pub_begin(f, dirfd, name);
	if (rc < 0)
		return rc;
	if ((rc = write_all(f->fd, buf, (size_t)n)) < 0 || (rc = pub_sync(f)) < 0) {
		pub_abort(f);
		return rc;
	}
	return 0;
}

int pub_state_save(int dirfd, const char *ca, const struct pub_state *st)
{
	struct pub_file f;
	int rc = pub_state_prepare(&f, dirfd, ca, st);
	if (rc < 0)
		return rc;
	if ((rc = pub_commit(&f)) < 0 || (rc = pub_sync_dir(dirfd)) < 0) {
		pub_abort(&f);
		return rc;
	}
	return 0;
}

int pub_clean_stale(int dirfd)
{
	DIR *d = open_dir(dirfd);
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			continue;
		const char *t = strstr(de->d_name, ".tmp-");
		long pid;
		unsigned seq;
		char end;
		if (!t || sscanf(t, ".tmp-%ld-%u%c", &pid, &seq, &end) != 2 || pid <= 0)
			continue;
		if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}
