/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store import-index and add: certificates from the CA's records
 * (OpenSSL's index.txt with its certificate files, or PEM/DER files).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/pki.h"
#include "common/text.h"
#include "store/cli/cli.h"
#include "store/cli/index.h"

/* cert_times reads the notBefore and notAfter of |x|. */
static bool cert_times(X509 *x, int64_t *nb, int64_t *na)
{
	struct tm tm;
	if (!ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm))
		return false;
	*nb = (int64_t)timegm(&tm);
	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return false;
	*na = (int64_t)timegm(&tm);
	return true;
}

bool cli_cert_serial(X509 *x, struct vg_serial *out)
{
	const ASN1_INTEGER *ai = X509_get0_serialNumber(x);
	if (ASN1_STRING_type(ai) == V_ASN1_NEG_INTEGER)
		return false;
	/* OpenSSL keeps the magnitude without DER's leading 0x00 (a serial of
	 * 0x80... is positive); vg_serial_from_bytes takes DER content. */
	int len = ASN1_STRING_length(ai);
	if (len <= 0 || len > VG_SERIAL_MAX + 1)
		return false;
	uint8_t der[VG_SERIAL_MAX + 2];
	der[0] = 0;
	memcpy(der + 1, ASN1_STRING_get0_data(ai), (size_t)len);
	return vg_serial_from_bytes(der, (size_t)len + 1, out) == 0;
}

/* cert_shard returns the shard of CA |ca| (1..crl_shards) whose URL one of
 * the CRL distribution points of |x| names byte for byte, or 0. */
static unsigned cert_shard(X509 *x, const struct vg_conf_ca *ca)
{
	if (!ca->crl_shards)
		return 0;
	unsigned shard = 0;
	STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	for (int i = 0; dps && !shard && i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if (!dp->distpoint || dp->distpoint->type != 0)
			continue;
		GENERAL_NAMES *gns = dp->distpoint->name.fullname;
		for (int j = 0; !shard && j < sk_GENERAL_NAME_num(gns); j++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, j);
			if (gn->type != GEN_URI)
				continue;
			shard = vg_conf_shard_of_url(
			        ca,
			        (const char *)ASN1_STRING_get0_data(
			                gn->d.uniformResourceIdentifier),
			        (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier));
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	ERR_clear_error();
	return shard;
}

/* set_shard records in |it| the shard |x|'s CRL distribution point names. */
static void set_shard(struct vg_add_item *it, X509 *x, const struct vg_conf_ca *ca)
{
	unsigned k = cert_shard(x, ca);
	if (k) {
		it->cert.flags |= VG_CERT_HAS_SHARD;
		it->cert.crl_shard = (uint16_t)k;
	}
}

static bool load_not_before(const char *dir, const char *file, struct vg_add_item *it,
                            const struct vg_conf_ca *ca, int64_t *nb)
{
	const struct vg_serial *s = &it->serial;
	char hex[2 * VG_SERIAL_MAX + 1], path[PATH_MAX];
	vg_serial_format(s, hex, sizeof(hex));
	/* new_certs_dir names files SERIAL.pem; the index's file field is
	 * usually "unknown", but use it when it names a file. */
	if (file && *file && strcmp(file, "unknown") != 0)
		snprintf(path, sizeof(path), "%s%s%s", file[0] == '/' ? "" : dir,
		         file[0] == '/' ? "" : "/", file);
	else
		snprintf(path, sizeof(path), "%s/%s.pem", dir, hex);
	X509 *x = NULL;
	char err[256];
	if (vg_pki_load_cert(path, &x, err, sizeof(err)) < 0)
		return false;
	struct vg_serial xs;
	int64_t na;
	bool ok = cli_cert_serial(x, &xs) && xs.len == s->len && !memcmp(xs.b, s->b, s->len) &&
	          cert_times(x, nb, &na);
	if (ok)
		set_shard(it, x, ca);
	X509_free(x);
	return ok;
}

/* write_import_metrics writes, for node_exporter's textfile collector, when
 * CA's last import succeeded and what it did: under a temporary name, fsynced
 * and renamed, so the collector never reads half a file. A failed import
 * leaves the file as it was, so its age is what an alert watches. The file is
 * 0644 whatever the umask (the units' 0007 keeps the store private): the
 * collector runs as another user, and the file holds nothing secret. */
static void write_import_metrics(const char *path, const char *ca, uint32_t lines,
                                 const struct vg_write_result *r)
{
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= sizeof(tmp))
		cli_die("--metrics-file %s: path too long", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FILE *f = fd < 0 || fchmod(fd, 0644) < 0 ? NULL : fdopen(fd, "w");
	if (!f) {
		int e = errno;
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		cli_die("--metrics-file %s: %s (the import itself is committed)", tmp, strerror(e));
	}
	fprintf(f,
	        "# HELP vigil_store_import_last_success_seconds Unix time of the CA's last "
	        "successful import-index.\n"
	        "# TYPE vigil_store_import_last_success_seconds gauge\n"
	        "vigil_store_import_last_success_seconds{ca=\"%s\"} %lld\n"
	        "# HELP vigil_store_import_lines Lines of the index the last import read.\n"
	        "# TYPE vigil_store_import_lines gauge\n"
	        "vigil_store_import_lines{ca=\"%s\"} %u\n"
	        "# HELP vigil_store_import_changes Certificates the last import changed.\n"
	        "# TYPE vigil_store_import_changes gauge\n"
	        "vigil_store_import_changes{ca=\"%s\",change=\"added\"} %" PRIu64 "\n"
	        "vigil_store_import_changes{ca=\"%s\",change=\"revoked\"} %" PRIu64 "\n"
	        "vigil_store_import_changes{ca=\"%s\",change=\"released\"} %" PRIu64 "\n",
	        ca, (long long)vg_now(), ca, lines, ca, r->added, ca, r->revoked, ca, r->released);
	bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		cli_die("--metrics-file %s: %s (the import itself is committed)", path,
		        strerror(e));
	}
}

int cmd_import_index(struct ctx *c, int argc, char **argv)
{
	const char *certs = NULL, *metrics = NULL;
	static const struct option opts[] = {{"certs", required_argument, NULL, 'd'},
	                                     {"metrics-file", required_argument, NULL, 'm'},
	                                     {0}};
	int o;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'd')
			certs = optarg;
		else if (o == 'm')
			metrics = optarg;
		else
			cli_usage_die("import-index: unknown option");
	}
	if (argc - optind != 2)
		cli_usage_die("usage: import-index CA INDEX [--certs DIR] [--metrics-file FILE]");
	const char *ca = argv[optind], *path = argv[optind + 1];
	const struct vg_conf_ca *cc = cli_need_ca(c, ca);
	if (certs) {
		struct stat sb;
		if (stat(certs, &sb) < 0 || !S_ISDIR(sb.st_mode))
			cli_die("--certs %s: not a readable directory", certs);
	}
	FILE *f = cli_fopen(path);

	/* Parse everything first: a malformed line anywhere changes nothing. */
	size_t cap = 1024, n = 0;
	struct vg_add_item *items = cli_reserve(NULL, 0, &cap, sizeof(*items));
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	uint32_t lineno = 0;
	uint64_t nb_found = 0, nb_missing = 0;
	struct stat fsb;
	uint64_t fsize = fstat(fileno(f), &fsb) == 0 ? (uint64_t)fsb.st_size : 0, pos = 0;
	c->progress_what = "reading";
	while ((len = getline(&line, &linecap, f)) != -1) {
		lineno++;
		pos += (uint64_t)len;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		items = cli_reserve(items, n, &cap, sizeof(*items));
		char err[256];
		const char *file = NULL;
		int rc = index_parse_line(line, (size_t)len, &items[n], &file, err, sizeof(err));
		if (rc < 0)
			cli_die("%s:%u: malformed index line: %s; nothing imported", path, lineno,
			        err);
		if (rc == 1)
			continue;
		items[n].line = lineno;
		if (certs) {
			int64_t nb;
			if (load_not_before(certs, file, &items[n], cc, &nb)) {
				items[n].cert.flags |= VG_CERT_HAS_NOT_BEFORE;
				items[n].cert.not_before = nb;
				nb_found++;
			} else {
				nb_missing++;
			}
		}
		n++;
		if (fsize > (1u << 20) && ((lineno & 0xffff) == 0 || (certs && lineno > 1000)))
			cli_progress(pos, fsize, c);
	}
	bool bad = ferror(f);
	free(line);
	fclose(f);
	if (bad)
		cli_die("%s: read error; nothing imported", path);
	ERR_clear_error();
	if (!c->quiet && fsize > (1u << 20))
		cli_progress(fsize, fsize, c);

	cli_store_open(c, 0);
	struct vg_write_result r;
	c->progress_what = "importing";
	c->last_progress = 0;
	int rc =
	        vg_store_add(c->st, ca, items, n, &c->who, &r, n > 100000 ? cli_progress : NULL, c);
	free(items);
	if (rc < 0)
		cli_write_failed("import-index", rc, &r);
	char what[64];
	snprintf(what, sizeof(what), "import-index %s lines=%u", ca, lineno);
	cli_print_result(what, &r);
	if (certs)
		printf("issuance times: read=%" PRIu64 " unreadable_or_missing=%" PRIu64 "\n",
		       nb_found, nb_missing);
	if (metrics)
		write_import_metrics(metrics, ca, lineno, &r);
	return 0;
}

int cmd_add(struct ctx *c, int argc, char **argv)
{
	if (argc < 2)
		cli_usage_die("usage: add CA CERT...");
	const struct vg_conf_ca *ca = cli_need_ca(c, argv[0]);
	char err[512];
	X509 *cacert;
	if (vg_pki_load_cert(ca->cert, &cacert, err, sizeof(err)) < 0)
		cli_die("CA %s certificate: %s", ca->name, err);
	EVP_PKEY *capub = X509_get0_pubkey(cacert);
	if (!capub)
		cli_die("CA %s certificate %s: no usable public key", ca->name, ca->cert);

	size_t n = 0, cap = 16;
	struct vg_add_item *items = cli_reserve(NULL, 0, &cap, sizeof(*items));
	for (int i = 1; i < argc; i++) {
		STACK_OF(X509) * sk;
		if (vg_pki_load_certs(argv[i], &sk, err, sizeof(err)) < 0)
			cli_die("%s; nothing added", err);
		for (int j = 0; j < sk_X509_num(sk); j++) {
			X509 *x = sk_X509_value(sk, j);
			if (X509_check_issued(cacert, x) != X509_V_OK || X509_verify(x, capub) != 1)
				cli_die("%s: certificate %d was not issued by CA %s (%s); nothing "
				        "added",
				        argv[i], j + 1, ca->name, ca->cert);
			items = cli_reserve(items, n, &cap, sizeof(*items));
			struct vg_add_item *it = &items[n++];
			memset(it, 0, sizeof(*it));
			if (!cli_cert_serial(x, &it->serial))
				cli_die("%s: certificate %d has a negative or over-long serial; "
				        "nothing "
				        "added",
				        argv[i], j + 1);
			if (!cert_times(x, &it->cert.not_before, &it->cert.not_after))
				cli_die("%s: certificate %d has unreadable validity dates; nothing "
				        "added",
				        argv[i], j + 1);
			it->cert.status = VG_STATUS_GOOD;
			it->cert.reason = VG_REASON_NONE;
			it->cert.flags = VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_NOT_AFTER;
			set_shard(it, x, ca);
		}
		sk_X509_pop_free(sk, X509_free);
	}
	X509_free(cacert);
	ERR_clear_error();
	cli_store_open(c, 0);
	struct vg_write_result r;
	int rc = vg_store_add(c->st, ca->name, items, n, &c->who, &r, NULL, NULL);
	free(items);
	if (rc < 0)
		cli_write_failed("add", rc, &r);
	char what[64];
	snprintf(what, sizeof(what), "add %s certificates=%zu", ca->name, n);
	cli_print_result(what, &r);
	return 0;
}
