/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store: the admin CLI, and the only writer of the status store.
 *
 *   vigil-store -c FILE COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 failure (one line on stderr saying why; nothing
 * changed unless the line says what was committed), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "store/cli/index.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/pki.h"
#include "store/store.h"

#define EXIT_USAGE 2

static const char *progname = "vigil-store";

static const char usage_text[] =
	"Usage: vigil-store -c FILE COMMAND [ARGS]\n"
	"\n"
	"Administer the Vigil status store: the record of every certificate each CA\n"
	"issued and revoked, read by vigil-responder (OCSP) and vigil-crlgen (CRLs).\n"
	"vigil-store is the only program that writes to it. Every change is durable\n"
	"when the command returns 0, is seen by the responder and crlgen without a\n"
	"restart, and is recorded in the audit log.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   the Vigil configuration file (required)\n"
	"  -q, --quiet         no progress lines\n"
	"  -h, --help          this text\n"
	"  -V, --version       print the version\n"
	"\n"
	"Commands:\n"
	"  init\n"
	"      Create the store at [store] path. Running it again changes nothing.\n"
	"  import-index CA INDEX [--certs DIR]\n"
	"      Sync CA's certificates from an OpenSSL `ca` database (index.txt): new\n"
	"      serials are added, new revocations applied; re-running it after the CA\n"
	"      has issued or revoked more applies only the difference. With --certs\n"
	"      (the CA's new_certs_dir), each SERIAL.pem is read for its notBefore,\n"
	"      which bulk revocation by issuance window needs.\n"
	"  add CA CERT...\n"
	"      Record certificates (PEM or DER, several per PEM file allowed). Each\n"
	"      must be signed by CA; otherwise nothing is recorded.\n"
	"  revoke CA SERIAL [--reason R] [--time T] [--invalidity-date T]\n"
	"  revoke CA --serials FILE [--reason R] [--time T] [--invalidity-date T]\n"
	"  revoke CA --issued-after T [--issued-before T] [--reason R] [--time T]\n"
	"      Revoke one serial, every serial listed in FILE (one hexadecimal serial a\n"
	"      line, # comments), or every certificate whose notBefore is in\n"
	"      [after, before). A serial the store does not know is recorded as revoked\n"
	"      anyway (an investigation may find certificates the records missed).\n"
	"      A revoked certificate stays revoked: only certificateHold can be\n"
	"      replaced, and any reason can be raised to keyCompromise.\n"
	"      --time defaults to now and may not be in the future; --invalidity-date\n"
	"      may not be later than it; --reason defaults to no reason code.\n"
	"  release CA SERIAL\n"
	"      Lift certificateHold: the certificate is good again.\n"
	"  freeze CA | thaw CA\n"
	"      Mark CA's issuance halted (the store is now complete for CA, so serials\n"
	"      absent from it were never issued) or resumed.\n"
	"  status CA SERIAL\n"
	"      Print one line: SERIAL good|revoked|unknown [REASON TIME].\n"
	"  list CA [--revoked]\n"
	"      Print every certificate of CA (or only the revoked ones) in serial\n"
	"      order, one line each, as status does.\n"
	"  stats\n"
	"      Print store size and counters, and per CA the certificates by status.\n"
	"  audit [--ca CA]\n"
	"      Print the audit log: one line per committed change, with who, when,\n"
	"      what and how many.\n"
	"\n"
	"Values:\n"
	"  CA       the NAME of a [ca NAME] section of the configuration\n"
	"  SERIAL   hexadecimal, as OpenSSL prints it (case and ':' ignored)\n"
	"  T        RFC 3339 UTC (2026-11-27T10:00:00Z) or YYMMDDHHMMSSZ\n"
	"  R        an RFC 5280 reason: unspecified, keyCompromise, cACompromise,\n"
	"           affiliationChanged, superseded, cessationOfOperation,\n"
	"           certificateHold, privilegeWithdrawn, aACompromise\n"
	"\n"
	"Exit status: 0 on success, 1 on failure with one line on stderr, 2 on a usage\n"
	"error.\n";

/* A progress line on a terminal ends in no newline until the next one
 * replaces it; whatever else goes to stderr starts on a line of its own. */
static bool progress_open;

static void end_progress(void)
{
	if (progress_open)
		fputc('\n', stderr);
	progress_open = false;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	end_progress();
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

static void usage_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_die(const char *fmt, ...)
{
	va_list ap;
	end_progress();
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", progname);
	exit(EXIT_USAGE);
}

struct ctx {
	struct vg_conf conf;
	struct vg_store *st;
	struct vg_audit who;
	bool quiet;
	bool tty;
	time_t last_progress;
	const char *progress_what;
};

static void store_open(struct ctx *c, unsigned flags)
{
	int rc = vg_store_open(&c->st, c->conf.store_path, flags);
	if (rc == -ENODATA)
		die("store %s is not initialised; run: %s -c %s init", c->conf.store_path,
		    progname, c->conf.file);
	if (rc == -EUCLEAN)
		die("%s", vg_store_damage());
	if (rc == -EPROTO)
		die("store %s has an incompatible schema version", c->conf.store_path);
	if (rc == -EROFS)
		die("store %s: lock.mdb is not writable; readers must register in it (run as the "
		    "store's owner or group)",
		    c->conf.store_path);
	if (rc < 0)
		die("cannot open store %s: %s", c->conf.store_path, strerror(-rc));
}

static const struct vg_conf_ca *need_ca(struct ctx *c, const char *name)
{
	const struct vg_conf_ca *ca = vg_conf_ca_find(&c->conf, name);
	if (!ca)
		die("unknown CA '%s': no [ca %s] section in %s", name, name, c->conf.file);
	return ca;
}

static struct vg_serial need_serial(const char *s)
{
	struct vg_serial out;
	if (vg_serial_parse(s, strlen(s), &out) < 0)
		die("malformed serial '%s': expected hexadecimal, at most %d octets", s,
		    VG_SERIAL_MAX);
	return out;
}

static int64_t need_time(const char *opt, const char *s)
{
	int64_t t;
	if (vg_time_parse(s, &t) < 0)
		die("bad time for %s '%s': expected RFC 3339 UTC (2026-11-27T10:00:00Z) or "
		    "YYMMDDHHMMSSZ",
		    opt, s);
	return t;
}

static void progress(uint64_t done, uint64_t total, void *arg)
{
	struct ctx *c = arg;
	if (c->quiet)
		return;
	time_t now = time(NULL);
	bool last = total && done == total;
	if (now == c->last_progress && !last)
		return;
	c->last_progress = now;
	if (total)
		fprintf(stderr, "%s%s: %s %" PRIu64 "/%" PRIu64 " (%d%%)%s", c->tty ? "\r" : "",
			progname, c->progress_what, done, total, (int)(done * 100 / total),
			c->tty && !last ? "" : "\n");
	else
		fprintf(stderr, "%s%s: %s %" PRIu64 " scanned%s", c->tty ? "\r" : "", progname,
			c->progress_what, done, c->tty ? "" : "\n");
	progress_open = c->tty && !last;
	fflush(stderr);
}

static void print_result(const char *what, const struct vg_write_result *r)
{
	end_progress();
	printf("%s: added=%" PRIu64 " revoked=%" PRIu64 " released=%" PRIu64 " updated=%" PRIu64
	       " unchanged=%" PRIu64 " kept_revoked=%" PRIu64,
	       what, r->added, r->revoked, r->released, r->updated, r->unchanged, r->kept);
	if (r->skipped)
		printf(" skipped_unknown_issuance=%" PRIu64, r->skipped);
	if (r->missing)
		printf(" not_in_store=%" PRIu64, r->missing);
	printf(" commits=%" PRIu64 "\n", r->commits);
}

static void write_failed(const char *what, int rc, const struct vg_write_result *r)
{
	if (r && r->commits)
		die("%s failed after %" PRIu64 " committed batches (%" PRIu64
		    " revoked, %" PRIu64 " added are durable): %s",
		    what, r->commits, r->revoked, r->added,
		    rc == -ENOSPC ? "no space left on device" : strerror(-rc));
	die("%s failed, nothing changed: %s", what,
	    rc == -ENOSPC ? "no space left on device" : strerror(-rc));
}

/* ---- init --------------------------------------------------------------- */

static int cmd_init(struct ctx *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		usage_die("init takes no arguments");
	bool existed = vg_store_open(&c->st, c->conf.store_path, VG_STORE_RDONLY) == 0;
	vg_store_close(c->st);
	c->st = NULL;
	store_open(c, VG_STORE_CREATE);
	printf("%s store %s\n", existed ? "OK: already initialised," : "OK: initialised",
	       c->conf.store_path);
	return 0;
}

/* ---- import-index ------------------------------------------------------- */

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

static bool cert_serial(X509 *x, struct vg_serial *out)
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

static bool load_not_before(const char *dir, const char *file, const struct vg_serial *s,
			    int64_t *nb)
{
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
	bool ok = cert_serial(x, &xs) && xs.len == s->len && !memcmp(xs.b, s->b, s->len) &&
		  cert_times(x, nb, &na);
	X509_free(x);
	return ok;
}

static int cmd_import_index(struct ctx *c, int argc, char **argv)
{
	const char *certs = NULL;
	static const struct option opts[] = {{"certs", required_argument, NULL, 'd'}, {0}};
	int o;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'd')
			certs = optarg;
		else
			usage_die("import-index: unknown option");
	}
	if (argc - optind != 2)
		usage_die("usage: import-index CA INDEX [--certs DIR]");
	const char *ca = argv[optind], *path = argv[optind + 1];
	need_ca(c, ca);
	if (certs) {
		struct stat sb;
		if (stat(certs, &sb) < 0 || !S_ISDIR(sb.st_mode))
			die("--certs %s: not a readable directory", certs);
	}
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));

	/* Parse everything first: a malformed line anywhere changes nothing. */
	size_t cap = 1024, n = 0;
	struct vg_add_item *items = malloc(cap * sizeof(*items));
	if (!items)
		die("out of memory");
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
		if (n == cap) {
			cap *= 2;
			struct vg_add_item *ni = realloc(items, cap * sizeof(*items));
			if (!ni)
				die("out of memory");
			items = ni;
		}
		char err[256];
		const char *file = NULL;
		int rc = index_parse_line(line, (size_t)len, &items[n], &file, err, sizeof(err));
		if (rc < 0)
			die("%s:%u: malformed index line: %s; nothing imported", path, lineno, err);
		if (rc == 1)
			continue;
		items[n].line = lineno;
		if (certs) {
			int64_t nb;
			if (load_not_before(certs, file, &items[n].serial, &nb)) {
				items[n].cert.flags |= VG_CERT_HAS_NOT_BEFORE;
				items[n].cert.not_before = nb;
				nb_found++;
			} else {
				nb_missing++;
			}
		}
		n++;
		if (fsize > (1u << 20) && ((lineno & 0xffff) == 0 || (certs && lineno > 1000)))
			progress(pos, fsize, c);
	}
	bool bad = ferror(f);
	free(line);
	fclose(f);
	if (bad)
		die("%s: read error; nothing imported", path);
	ERR_clear_error();
	if (!c->quiet && fsize > (1u << 20))
		progress(fsize, fsize, c);

	store_open(c, 0);
	struct vg_write_result r;
	c->progress_what = "importing";
	c->last_progress = 0;
	int rc = vg_store_add(c->st, ca, items, n, &c->who, &r, n > 100000 ? progress : NULL, c);
	free(items);
	if (rc < 0)
		write_failed("import-index", rc, &r);
	char what[64];
	snprintf(what, sizeof(what), "import-index %s lines=%u", ca, lineno);
	print_result(what, &r);
	if (certs)
		printf("issuance times: read=%" PRIu64 " unreadable_or_missing=%" PRIu64 "\n",
		       nb_found, nb_missing);
	return 0;
}

/* ---- add ---------------------------------------------------------------- */

static int cmd_add(struct ctx *c, int argc, char **argv)
{
	if (argc < 2)
		usage_die("usage: add CA CERT...");
	const struct vg_conf_ca *ca = need_ca(c, argv[0]);
	char err[512];
	X509 *cacert;
	if (vg_pki_load_cert(ca->cert, &cacert, err, sizeof(err)) < 0)
		die("CA %s certificate: %s", ca->name, err);
	EVP_PKEY *capub = X509_get0_pubkey(cacert);
	if (!capub)
		die("CA %s certificate %s: no usable public key", ca->name, ca->cert);

	size_t n = 0, cap = 16;
	struct vg_add_item *items = malloc(cap * sizeof(*items));
	if (!items)
		die("out of memory");
	for (int i = 1; i < argc; i++) {
		STACK_OF(X509) *sk;
		if (vg_pki_load_certs(argv[i], &sk, err, sizeof(err)) < 0)
			die("%s; nothing added", err);
		for (int j = 0; j < sk_X509_num(sk); j++) {
			X509 *x = sk_X509_value(sk, j);
			if (X509_check_issued(cacert, x) != X509_V_OK || X509_verify(x, capub) != 1)
				die("%s: certificate %d was not issued by CA %s (%s); nothing added",
				    argv[i], j + 1, ca->name, ca->cert);
			if (n == cap) {
				cap *= 2;
				struct vg_add_item *ni = realloc(items, cap * sizeof(*items));
				if (!ni)
					die("out of memory");
				items = ni;
			}
			struct vg_add_item *it = &items[n++];
			memset(it, 0, sizeof(*it));
			if (!cert_serial(x, &it->serial))
				die("%s: certificate %d has a negative or over-long serial; nothing "
				    "added",
				    argv[i], j + 1);
			if (!cert_times(x, &it->cert.not_before, &it->cert.not_after))
				die("%s: certificate %d has unreadable validity dates; nothing added",
				    argv[i], j + 1);
			it->cert.status = VG_STATUS_GOOD;
			it->cert.reason = VG_REASON_NONE;
			it->cert.flags = VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_NOT_AFTER;
		}
		sk_X509_pop_free(sk, X509_free);
	}
	X509_free(cacert);
	ERR_clear_error();
	store_open(c, 0);
	struct vg_write_result r;
	int rc = vg_store_add(c->st, ca->name, items, n, &c->who, &r, NULL, NULL);
	free(items);
	if (rc < 0)
		write_failed("add", rc, &r);
	char what[64];
	snprintf(what, sizeof(what), "add %s certificates=%zu", ca->name, n);
	print_result(what, &r);
	return 0;
}

/* ---- revoke ------------------------------------------------------------- */

static struct vg_serial *read_serials(const char *path, size_t *count)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	size_t n = 0, cap = 1024;
	struct vg_serial *v = malloc(cap * sizeof(*v));
	if (!v)
		die("out of memory");
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	unsigned lineno = 0;
	while ((len = getline(&line, &linecap, f)) != -1) {
		lineno++;
		char *s = line, *e = line + len;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		char *hash = memchr(s, '#', (size_t)(e - s));
		if (hash)
			e = hash;
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s)
			continue;
		if (n == cap) {
			cap *= 2;
			struct vg_serial *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				die("out of memory");
			v = nv;
		}
		if (vg_serial_parse(s, (size_t)(e - s), &v[n]) < 0)
			die("%s:%u: malformed serial '%.*s'; nothing revoked", path, lineno,
			    (int)(e - s), s);
		n++;
	}
	bool bad = ferror(f);
	free(line);
	fclose(f);
	if (bad)
		die("%s: read error; nothing revoked", path);
	*count = n;
	return v;
}

static int cmd_revoke(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"reason", required_argument, NULL, 'r'},
		{"time", required_argument, NULL, 't'},
		{"invalidity-date", required_argument, NULL, 'i'},
		{"issued-after", required_argument, NULL, 'a'},
		{"issued-before", required_argument, NULL, 'b'},
		{"serials", required_argument, NULL, 's'},
		{0},
	};
	struct vg_revocation rev = {.revoked_at = (int64_t)time(NULL), .reason = VG_REASON_NONE};
	const char *after = NULL, *before = NULL, *serials = NULL;
	int o;
	optind = 0;
	/* Options may follow the positional arguments. */
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'r':
			if (vg_reason_parse(optarg, &rev.reason) < 0)
				die("unknown reason '%s': expected an RFC 5280 reason such as "
				    "keyCompromise, superseded, cessationOfOperation, certificateHold",
				    optarg);
			break;
		case 't':
			rev.revoked_at = need_time("--time", optarg);
			break;
		case 'i':
			rev.invalidity_date = need_time("--invalidity-date", optarg);
			rev.has_invalidity = true;
			break;
		case 'a':
			after = optarg;
			break;
		case 'b':
			before = optarg;
			break;
		case 's':
			serials = optarg;
			break;
		default:
			usage_die("revoke: unknown option");
		}
	}
	/* A revocation takes effect when it is recorded: a time ahead of the
	 * clock (5 minutes of skew aside) would be answered as already revoked,
	 * with a revocationTime after the answer's producedAt. The invalidity
	 * date is when the key was compromised or the certificate became invalid,
	 * which a revocation records after the fact (RFC 5280 §5.3.2). */
	if (rev.revoked_at > (int64_t)time(NULL) + 300)
		die("--time is in the future: a revocation takes effect when it is recorded");
	if (rev.has_invalidity && rev.invalidity_date > rev.revoked_at)
		die("--invalidity-date is later than the revocation time (--time, default now)");
	int npos = argc - optind;
	char **pos = argv + optind;
	if (npos < 1)
		usage_die("usage: revoke CA (SERIAL | --serials FILE | --issued-after T) [...]");
	const struct vg_conf_ca *ca = need_ca(c, pos[0]);
	int modes = (npos == 2) + (serials != NULL) + (after != NULL);
	if (modes != 1 || npos > 2)
		usage_die("revoke takes exactly one of SERIAL, --serials FILE, --issued-after T");
	if (before && !after)
		usage_die("--issued-before needs --issued-after");

	struct vg_write_result r;
	int rc;
	char what[96];
	if (after) {
		int64_t a = need_time("--issued-after", after);
		int64_t b = before ? need_time("--issued-before", before) : INT64_MAX;
		if (b <= a)
			die("--issued-before must be later than --issued-after");
		store_open(c, 0);
		c->progress_what = "revoke window";
		rc = vg_store_revoke_window(c->st, ca->name, a, b, &rev, &c->who, &r, progress, c);
		snprintf(what, sizeof(what), "revoke %s by issuance window", ca->name);
	} else {
		size_t n = 1;
		struct vg_serial one, *list;
		if (serials) {
			list = read_serials(serials, &n);
		} else {
			one = need_serial(pos[1]);
			list = &one;
		}
		store_open(c, 0);
		c->progress_what = "revoking";
		rc = vg_store_revoke(c->st, ca->name, list, n, &rev, &c->who, &r,
				     n > 100000 ? progress : NULL, c);
		snprintf(what, sizeof(what), "revoke %s serials=%zu", ca->name, n);
		if (list != &one)
			free(list);
	}
	if (rc < 0)
		write_failed("revoke", rc, &r);
	print_result(what, &r);
	return 0;
}

static int cmd_release(struct ctx *c, int argc, char **argv)
{
	if (argc != 2)
		usage_die("usage: release CA SERIAL");
	const struct vg_conf_ca *ca = need_ca(c, argv[0]);
	struct vg_serial s = need_serial(argv[1]);
	store_open(c, 0);
	int rc = vg_store_release(c->st, ca->name, &s, &c->who);
	if (rc == -ENOENT)
		die("serial %s of CA %s is not in the store", argv[1], ca->name);
	if (rc == -EPERM)
		die("serial %s of CA %s is not on certificateHold; only a hold can be released",
		    argv[1], ca->name);
	if (rc < 0)
		write_failed("release", rc, NULL);
	printf("OK: released %s of CA %s\n", argv[1], ca->name);
	return 0;
}

static int cmd_freeze(struct ctx *c, int argc, char **argv, bool frozen)
{
	if (argc != 1)
		usage_die(frozen ? "usage: freeze CA" : "usage: thaw CA");
	const struct vg_conf_ca *ca = need_ca(c, argv[0]);
	store_open(c, 0);
	int rc = vg_store_freeze(c->st, ca->name, frozen, (int64_t)time(NULL), &c->who);
	if (rc < 0)
		write_failed(frozen ? "freeze" : "thaw", rc, NULL);
	struct vg_txn *t = NULL;
	struct vg_ca_state s;
	if (vg_txn_begin(c->st, &t) == 0 && vg_store_ca_get(t, ca->name, &s) == 0 && s.frozen) {
		char ts[32];
		vg_time_format(s.frozen_at, ts, sizeof(ts));
		printf("OK: CA %s frozen since %s; absent serials now answer %s\n", ca->name, ts,
		       ca->not_issued == VG_NOT_ISSUED_REVOKED ? "revoked" : "unknown");
	} else {
		printf("OK: CA %s thawed (issuing)\n", ca->name);
	}
	vg_txn_end(t);
	return 0;
}

/* ---- reading ------------------------------------------------------------ */

static void print_cert(const struct vg_serial *s, const struct vg_cert *cert)
{
	char hex[2 * VG_SERIAL_MAX + 1];
	vg_serial_format(s, hex, sizeof(hex));
	if (cert->status == VG_STATUS_GOOD) {
		printf("%s good\n", hex);
		return;
	}
	char ts[32];
	vg_time_format(cert->revoked_at, ts, sizeof(ts));
	printf("%s revoked %s %s", hex, vg_reason_name(cert->reason), ts);
	if (cert->flags & VG_CERT_HAS_INVALIDITY) {
		vg_time_format(cert->invalidity_date, ts, sizeof(ts));
		printf(" invalidity=%s", ts);
	}
	if (cert->flags & VG_CERT_NOT_ISSUED)
		printf(" not_issued");
	putchar('\n');
}

static struct vg_txn *read_txn(struct ctx *c)
{
	store_open(c, VG_STORE_RDONLY);
	struct vg_txn *t;
	int rc = vg_txn_begin(c->st, &t);
	if (rc < 0)
		die("cannot read store %s: %s", c->conf.store_path, strerror(-rc));
	return t;
}

static int cmd_status(struct ctx *c, int argc, char **argv)
{
	if (argc != 2)
		usage_die("usage: status CA SERIAL");
	const struct vg_conf_ca *ca = need_ca(c, argv[0]);
	struct vg_serial s = need_serial(argv[1]);
	struct vg_txn *t = read_txn(c);
	struct vg_cert cert;
	int rc = vg_store_get(t, ca->id, &s, &cert);
	if (rc == -ENOENT) {
		char hex[2 * VG_SERIAL_MAX + 1];
		vg_serial_format(&s, hex, sizeof(hex));
		printf("%s unknown\n", hex);
	} else if (rc < 0) {
		die("cannot read store: %s", strerror(-rc));
	} else {
		print_cert(&s, &cert);
	}
	vg_txn_end(t);
	return 0;
}

static int cmd_list(struct ctx *c, int argc, char **argv)
{
	bool revoked = false;
	if (argc == 2 && !strcmp(argv[1], "--revoked"))
		revoked = true;
	else if (argc != 1)
		usage_die("usage: list CA [--revoked]");
	const struct vg_conf_ca *ca = need_ca(c, argv[0]);
	struct vg_txn *t = read_txn(c);
	struct vg_iter *it;
	int rc = vg_iter_open(t, ca->id, revoked ? VG_ITER_REVOKED : 0, &it);
	struct vg_serial s;
	struct vg_cert cert;
	while (rc >= 0 && (rc = vg_iter_next(it, &s, &cert)) > 0)
		print_cert(&s, &cert);
	if (rc < 0)
		die("cannot read store: %s", strerror(-rc));
	vg_iter_close(it);
	vg_txn_end(t);
	return 0;
}

static int cmd_stats(struct ctx *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		usage_die("stats takes no arguments");
	struct vg_txn *t = read_txn(c);
	struct vg_store_info in;
	vg_store_info(t, &in);
	uint64_t total = 0;
	printf("Store: %s\n", c->conf.store_path);
	printf("  Schema version: %u\n", in.schema);
	printf("  Change counter: %" PRIu64 "\n", in.counter);
	printf("  File bytes: %" PRIu64 "\n", in.file_bytes);
	printf("  Used bytes: %" PRIu64 "\n", in.used_bytes);
	printf("  Map bytes: %" PRIu64 "\n", in.map_bytes);
	printf("  Change log entries: %" PRIu64 "\n", in.log_entries);
	printf("  Audit records: %" PRIu64 "\n", in.audit_entries);
	if (in.points_valid)
		printf("  Point index: complete, %u segment%s\n", in.points_segments,
		       in.points_segments == 1 ? "" : "s");
	else
		printf("  Point index: being rebuilt (lookups read the ordered records)\n");
	for (int i = 0; i < c->conf.n_cas; i++) {
		struct vg_ca_state s;
		vg_store_ca_get(t, c->conf.cas[i].name, &s);
		total += s.n_certs;
		printf("CA: %s\n", c->conf.cas[i].name);
		printf("  Certificates: %" PRIu64 "\n", s.n_certs);
		printf("  Good: %" PRIu64 "\n", s.n_certs - s.n_revoked);
		printf("  Revoked: %" PRIu64 "\n", s.n_revoked);
		printf("  On hold: %" PRIu64 "\n", s.n_hold);
		if (s.frozen) {
			char ts[32];
			vg_time_format(s.frozen_at, ts, sizeof(ts));
			printf("  Frozen: yes, since %s\n", ts);
		} else {
			printf("  Frozen: no\n");
		}
	}
	if (total)
		printf("Bytes per certificate: %.1f\n", (double)in.used_bytes / (double)total);
	vg_txn_end(t);
	return 0;
}

static int print_audit(const struct vg_audit_entry *e, void *arg)
{
	const char *only = arg;
	if (only && strcmp(only, e->ca) != 0)
		return 0;
	char ts[32], user[160], cmd[1100];
	vg_time_format(e->time, ts, sizeof(ts));
	printf("counter=%" PRIu64 " time=%s user=%s ca=%s action=%s count=%" PRIu64
	       " command=%s\n",
	       e->counter, ts, vg_log_quote(e->user, user, sizeof(user)), e->ca[0] ? e->ca : "-",
	       e->action, e->count, vg_log_quote(e->command, cmd, sizeof(cmd)));
	return 0;
}

static int cmd_audit(struct ctx *c, int argc, char **argv)
{
	const char *only = NULL;
	if (argc == 2 && !strcmp(argv[0], "--ca"))
		only = need_ca(c, argv[1])->name;
	else if (argc != 0)
		usage_die("usage: audit [--ca CA]");
	struct vg_txn *t = read_txn(c);
	int rc = vg_store_audit_foreach(t, print_audit, (void *)only);
	if (rc < 0)
		die("cannot read audit log: %s", strerror(-rc));
	vg_txn_end(t);
	return 0;
}

static char *join_args(int argc, char **argv)
{
	size_t len = 1;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]);
		memcpy(p, argv[i], l);
		p += l;
		*p++ = i + 1 < argc ? ' ' : '\0';
	}
	if (argc == 0)
		*p = '\0';
	return s;
}

static const char *who_am_i(void)
{
	const char *sudo = getenv("SUDO_USER");
	struct passwd *pw = getpwuid(geteuid());
	static char buf[128];
	if (sudo && *sudo)
		snprintf(buf, sizeof(buf), "%s(sudo:%s)", pw ? pw->pw_name : "?", sudo);
	else if (pw)
		snprintf(buf, sizeof(buf), "%s", pw->pw_name);
	else
		snprintf(buf, sizeof(buf), "uid:%u", (unsigned)geteuid());
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct ctx c;
	memset(&c, 0, sizeof(c));
	const char *config = NULL;
	int o;
	vg_log_init(progname, LOG_WARNING);
	opterr = 0; /* our own one-line messages only */
	/* '+': stop at the command; its own options are parsed per command. */
	while ((o = getopt_long(argc, argv, "+c:qhV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'q':
			c.quiet = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("vigil-store %s\n", VG_VERSION);
			return 0;
		default:
			fprintf(stderr, "%s: unknown option (see %s --help)\n", progname, progname);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		usage_die("no command given");
	if (!config)
		usage_die("-c FILE is required");
	c.tty = isatty(STDERR_FILENO);
	const char *cmd = argv[optind];
	char err[1024];
	if (vg_conf_load(config, &c.conf, err, sizeof(err)) < 0)
		die("config: %s", err);
	char *cmdline = join_args(argc, argv);
	c.who.user = who_am_i();
	c.who.command = cmdline;

	int sub_argc = argc - optind - 1;
	char **sub_argv = argv + optind + 1;
	int rc;
	if (!strcmp(cmd, "init"))
		rc = cmd_init(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "import-index"))
		rc = cmd_import_index(&c, sub_argc + 1, sub_argv - 1);
	else if (!strcmp(cmd, "add"))
		rc = cmd_add(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "revoke"))
		rc = cmd_revoke(&c, sub_argc + 1, sub_argv - 1);
	else if (!strcmp(cmd, "release"))
		rc = cmd_release(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "freeze"))
		rc = cmd_freeze(&c, sub_argc, sub_argv, true);
	else if (!strcmp(cmd, "thaw"))
		rc = cmd_freeze(&c, sub_argc, sub_argv, false);
	else if (!strcmp(cmd, "status"))
		rc = cmd_status(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "list"))
		rc = cmd_list(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "stats"))
		rc = cmd_stats(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "audit"))
		rc = cmd_audit(&c, sub_argc, sub_argv);
	else
		usage_die("unknown command '%s'", cmd);
	end_progress();
	vg_store_close(c.st);
	vg_conf_free(&c.conf);
	free(cmdline);
	return rc;
}
