/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Refusing a CRL that would drop revocations (guard.h).
 */
#include "crlgen/guard.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* asn1_time converts an ASN1_TIME to seconds since the epoch; 0 if it cannot. */
static int64_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* revoke_args writes the vigil-store revoke options that record |r| again
 * as the CRL says: its reason, revocation time and invalidity date. */
static void revoke_args(const X509_REVOKED *r, char *out, size_t len)
{
	char t[32];
	size_t n = 0;
	out[0] = '\0';
	ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
	if (reason) {
		long code = ASN1_ENUMERATED_get(reason);
		if (code > 0 && code <= 10)
			n += (size_t)snprintf(out + n, len - n, " --reason %s",
			                      vg_reason_name((int)code));
		ASN1_ENUMERATED_free(reason);
	}
	int64_t when = asn1_time(X509_REVOKED_get0_revocationDate(r));
	if (when && n < len) {
		vg_time_format(when, t, sizeof(t));
		n += (size_t)snprintf(out + n, len - n, " --time %s", t);
	}
	ASN1_GENERALIZEDTIME *inv = X509_REVOKED_get_ext_d2i(r, NID_invalidity_date, NULL, NULL);
	if (inv) {
		int64_t it = asn1_time(inv);
		if (it && n < len) {
			vg_time_format(it, t, sizeof(t));
			snprintf(out + n, len - n, " --invalidity-date %s", t);
		}
		ASN1_GENERALIZEDTIME_free(inv);
	}
}

/* serial_hex writes |s| in hexadecimal. */
static void serial_hex(const struct vg_serial *s, char *out, size_t len)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->len && n + 3 <= len; i++)
		n += (size_t)snprintf(out + n, len - n, "%02X", s->b[i]);
}

int guard_check(struct vg_txn *txn, int dirfd, const char *name, uint32_t ca_id,
                const struct pub_state *ps, uint64_t counter, uint64_t store_id)
{
	if (!ps->full_number)
		return 0; /* nothing published yet */
	bool back = counter < ps->full_counter;
	bool other = ps->store_id && ps->store_id != store_id;
	if (!back && !other)
		return 0;
	char file[300];
	snprintf(file, sizeof(file), "%s.crl", name);
	int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	FILE *f = fdopen(fd, "rb");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	X509_CRL *crl = d2i_X509_CRL_fp(f, NULL);
	fclose(f);
	if (!crl) {
		log_err("event=crl_refused ca=%s reason=published_crl_unreadable file=%s", name,
		        file);
		return -EBADMSG;
	}
	/* The serials missing go to NAME.missing, written anew. */
	char missing[320], tmp[340];
	snprintf(missing, sizeof(missing), "%s.missing", name);
	/* Named as pub_clean_stale expects, should this process die here. */
	snprintf(tmp, sizeof(tmp), ".%s.missing.tmp-%ld-0", name, (long)getpid());
	int mfd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FILE *mf = mfd >= 0 ? fdopen(mfd, "w") : NULL;
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	uint64_t n_missing = 0, n = (uint64_t)sk_X509_REVOKED_num(rev);
	char first[2 * VG_SERIAL_MAX + 1] = "";
	int rc = 0;
	for (int i = 0; i < sk_X509_REVOKED_num(rev) && !rc; i++) {
		const X509_REVOKED *entry = sk_X509_REVOKED_value(rev, i);
		const ASN1_INTEGER *ai = X509_REVOKED_get0_serialNumber(entry);
		struct vg_serial s;
		struct vg_cert c;
		if (vg_serial_from_bytes(ASN1_STRING_get0_data(ai), (size_t)ASN1_STRING_length(ai),
		                         &s) < 0)
			continue;
		int r = vg_store_get(txn, ca_id, &s, &c);
		if (r == 0 && c.status == VG_STATUS_REVOKED)
			continue;
		if (r < 0 && r != -ENOENT) {
			rc = r;
			break;
		}
		char hex[2 * VG_SERIAL_MAX + 1];
		serial_hex(&s, hex, sizeof(hex));
		if (!n_missing)
			snprintf(first, sizeof(first), "%s", hex);
		n_missing++;
		if (mf) {
			char args[160];
			revoke_args(entry, args, sizeof(args));
			fprintf(mf, "%s #%s\n", hex, args);
		}
	}
	X509_CRL_free(crl);
	if (mf) {
		fflush(mf);
		(void)fsync(fileno(mf));
		fclose(mf);
		if (!rc && n_missing)
			(void)renameat(dirfd, tmp, dirfd, missing);
		else
			(void)unlinkat(dirfd, tmp, 0);
	} else if (mfd >= 0) {
		close(mfd);
	}
	if (rc)
		return rc;
	if (n_missing) {
		log_err("event=crl_refused ca=%s reason=store_older_than_published "
		        "published_counter=%" PRIu64 " store_counter=%" PRIu64
		        " published_store_id=%016" PRIx64 " store_id=%016" PRIx64
		        " missing=%" PRIu64 " first=%s list=%s action=\"revoke them again "
		        "(vigil-store revoke %s --serials %s) or restore a newer backup\"",
		        name, ps->full_counter, counter, ps->store_id, store_id, n_missing, first,
		        missing, name, missing);
		return -ESTALE;
	}
	(void)unlinkat(dirfd, missing, 0);
	log_warn("event=store_replaced_accepted ca=%s published_counter=%" PRIu64
	         " store_counter=%" PRIu64 " store_id=%016" PRIx64 " checked=%" PRIu64,
	         name, ps->full_counter, counter, store_id, n);
	return 0;
}
