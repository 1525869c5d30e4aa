/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store: the admin CLI, and the only writer of the status store.
 *
 *   vigil-store -c FILE COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 failure (one line on stderr saying why; nothing
 * changed unless the line says what was committed), 2 usage error.
 *
 * This file: usage, the command line, the helpers every command uses
 * (cli.h), dispatch. The commands are in import.c, revoke.c and show.c.
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

#include "common/conf.h"
#include "common/log.h"
#include "store/cli/cli.h"
#include "store/replica.h"
#include "store/store.h"

const char *const cli_progname = "vigil-store";

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
        "  import-index CA INDEX [--certs DIR] [--metrics-file FILE]\n"
        "      Sync CA's certificates from an OpenSSL `ca` database (index.txt): new\n"
        "      serials are added, new revocations applied; re-running it after the CA\n"
        "      has issued or revoked more applies only the difference. With --certs\n"
        "      (the CA's new_certs_dir), each SERIAL.pem is read for its notBefore,\n"
        "      which bulk revocation by issuance window needs, and for the CRL shard\n"
        "      its CRL distribution point names (crl_shard_url). With --metrics-file,\n"
        "      a successful import writes FILE (Prometheus text: its time, lines read,\n"
        "      certificates changed) for node_exporter's textfile collector.\n"
        "  add CA CERT...\n"
        "      Record certificates (PEM or DER, several per PEM file allowed). Each\n"
        "      must be signed by CA; otherwise nothing is recorded. A CRL\n"
        "      distribution point naming a shard URL of CA records that shard.\n"
        "  revoke CA SERIAL [--reason R] [--time T] [--invalidity-date T]\n"
        "  revoke CA --serials FILE [--reason R] [--time T] [--invalidity-date T]\n"
        "         [--dry-run] [--include-signers]\n"
        "  revoke CA --issued-after T [--issued-before T] [--reason R] [--time T]\n"
        "         [--dry-run] [--include-signers]\n"
        "      Revoke one serial, every serial listed in FILE (one hexadecimal serial a\n"
        "      line, # comments), or every certificate whose notBefore is in\n"
        "      [after, before). A serial the store does not know is recorded as revoked\n"
        "      anyway (an investigation may find certificates the records missed).\n"
        "      A revoked certificate stays revoked: only certificateHold can be\n"
        "      replaced, and any reason can be raised to keyCompromise.\n"
        "      --time defaults to now and may not be in the future; --invalidity-date\n"
        "      may not be later than it; --reason defaults to no reason code (choose\n"
        "      it as the CP/CPS and Baseline Requirements 4.9.1 say).\n"
        "      A bulk revocation (--serials, --issued-after) leaves out, and names, the\n"
        "      certificates of the configuration that CA issued: a delegated OCSP\n"
        "      signer (ocsp_cert) and a subordinate CA; --include-signers takes them\n"
        "      too. --dry-run changes nothing and prints what would be revoked, left\n"
        "      out or is already revoked, with a sample of ten.\n"
        "  release CA SERIAL\n"
        "      Lift certificateHold: the certificate is good again.\n"
        "  freeze CA | thaw CA\n"
        "      Mark CA's issuance halted (the store is now complete for CA, so serials\n"
        "      absent from it were never issued) or resumed.\n"
        "  status CA SERIAL\n"
        "      Print one line: SERIAL good|revoked|unknown [REASON TIME].\n"
        "  list CA [--revoked]\n"
        "      Print every certificate of CA (or only the revoked ones) in serial\n"
        "      order, one line each, as status does, then notBefore=T notAfter=T\n"
        "      when known.\n"
        "  stats\n"
        "      Print store size and counters, and per CA the certificates by status.\n"
        "  audit [--ca CA]\n"
        "      Print the audit log: one line per committed change, with who, when,\n"
        "      what and how many.\n"
        "  backup PATH [--compact]\n"
        "      Copy the store into the new directory PATH while it is read and\n"
        "      written (one consistent snapshot; writers are not held up), fsynced\n"
        "      and renamed into place. The copy is a store of its own and records\n"
        "      the change counter it holds. --compact leaves free pages out.\n"
        "  restore PATH\n"
        "      Replace the store with a copy of the backup PATH, after verifying it.\n"
        "      The replaced store is kept as STORE.replaced-TIME. A running\n"
        "      responder and crlgen notice within a second and reopen.\n"
        "  verify\n"
        "      Check every invariant of the store and print each difference with\n"
        "      its key; exit 1 if there is any.\n"
        "  prune\n"
        "      Remove change-log entries older than [store] log_retention and\n"
        "      certificates expired longer than [store] expired_retention (a\n"
        "      revoked one only after a full CRL past its expiry; none of a CA with\n"
        "      not_issued = revoked), in small transactions, and report it.\n"
        "  replicate publish [--once]\n"
        "      On the primary site: carry every commit of the store into PostgreSQL\n"
        "      ([replicate] postgres), each as one database transaction keyed by the\n"
        "      store's change counter; the first run copies the whole store. A daemon\n"
        "      that follows the store within 100 ms; --once catches up and exits.\n"
        "  replicate follow [--once]\n"
        "      On a replica site: bootstrap an empty store from the database (the\n"
        "      primary's or a streaming standby's), then apply each commit in counter\n"
        "      order as one local commit. A replica store refuses every other write;\n"
        "      a database behind it or of another primary is refused.\n"
        "  replicate promote\n"
        "      Turn a replica store into the primary (after its database was\n"
        "      promoted): it takes the primary's store id and accepts writes, one\n"
        "      epoch past the database's. Its first publish marks the database with\n"
        "      that epoch; a publish from a store of an older epoch (the old primary,\n"
        "      back) is refused from then on, and so is a follow from a database\n"
        "      older than the replica.\n"
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

void cli_end_progress(void)
{
	if (progress_open)
		fputc('\n', stderr);
	progress_open = false;
}

void cli_die(const char *fmt, ...)
{
	va_list ap;
	cli_end_progress();
	fprintf(stderr, "%s: ", cli_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

void cli_usage_die(const char *fmt, ...)
{
	va_list ap;
	cli_end_progress();
	fprintf(stderr, "%s: ", cli_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", cli_progname);
	exit(EXIT_USAGE);
}

/* cli_refuse_replica dies when the store is a replica: its writes come from
 * the primary through `replicate follow` only. */
static void cli_refuse_replica(struct ctx *c)
{
	struct vg_txn *t;
	struct vg_store_role role;
	if (vg_txn_begin(c->st, &t) != 0)
		return;
	int rc = vg_store_role(t, &role);
	vg_txn_end(t);
	if (rc == 0 && role.replica_of)
		cli_die("store %s is a replica of primary store %016" PRIx64
		        " (through %s): write on the primary, or promote this site "
		        "(replicate promote)",
		        c->conf.store_path, role.replica_of,
		        c->conf.pg_conninfo ? c->conf.pg_conninfo : "[replicate] postgres");
}

void cli_store_open(struct ctx *c, unsigned flags)
{
	int rc = vg_store_open(&c->st, c->conf.store_path, flags);
	if (rc == -ENODATA)
		cli_die("store %s is not initialised; run: %s -c %s init", c->conf.store_path,
		        cli_progname, c->conf.file);
	if (rc == -EUCLEAN)
		cli_die("%s", vg_store_damage());
	if (rc == -EPROTO)
		cli_die("store %s has an incompatible schema version", c->conf.store_path);
	if (rc == -EROFS)
		cli_die("store %s: lock.mdb is not writable; readers must register in it (run as "
		        "the "
		        "store's owner or group)",
		        c->conf.store_path);
	if (rc < 0)
		cli_die("cannot open store %s: %s", c->conf.store_path, strerror(-rc));
	if (!(flags & VG_STORE_RDONLY) && !c->replica_ok)
		cli_refuse_replica(c);
}

const struct vg_conf_ca *cli_need_ca(struct ctx *c, const char *name)
{
	const struct vg_conf_ca *ca = vg_conf_ca_find(&c->conf, name);
	if (!ca)
		cli_die("unknown CA '%s': no [ca %s] section in %s", name, name, c->conf.file);
	return ca;
}

struct vg_serial cli_need_serial(const char *s)
{
	struct vg_serial out;
	if (vg_serial_parse(s, strlen(s), &out) < 0)
		cli_die("malformed serial '%s': expected hexadecimal, at most %d octets", s,
		        VG_SERIAL_MAX);
	return out;
}

int64_t cli_need_time(const char *opt, const char *s)
{
	int64_t t;
	if (vg_time_parse(s, &t) < 0)
		cli_die("bad time for %s '%s': expected RFC 3339 UTC (2026-11-27T10:00:00Z) or "
		        "YYMMDDHHMMSSZ",
		        opt, s);
	return t;
}

void cli_progress(uint64_t done, uint64_t total, void *arg)
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
		        cli_progname, c->progress_what, done, total, (int)(done * 100 / total),
		        c->tty && !last ? "" : "\n");
	else
		fprintf(stderr, "%s%s: %s %" PRIu64 " scanned%s", c->tty ? "\r" : "", cli_progname,
		        c->progress_what, done, c->tty ? "" : "\n");
	progress_open = c->tty && !last;
	fflush(stderr);
}

FILE *cli_fopen(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		cli_die("%s: %s", path, strerror(errno));
	return f;
}

void *cli_reserve(void *v, size_t n, size_t *cap, size_t size)
{
	if (v && n < *cap)
		return v;
	if (v)
		*cap *= 2;
	void *nv = realloc(v, *cap * size);
	if (!nv)
		cli_die("out of memory");
	return nv;
}

void cli_print_result(const char *what, const struct vg_write_result *r)
{
	cli_end_progress();
	printf("%s: added=%" PRIu64 " revoked=%" PRIu64 " released=%" PRIu64 " updated=%" PRIu64
	       " unchanged=%" PRIu64 " kept_revoked=%" PRIu64,
	       what, r->added, r->revoked, r->released, r->updated, r->unchanged, r->kept);
	if (r->skipped)
		printf(" skipped_unknown_issuance=%" PRIu64, r->skipped);
	if (r->missing)
		printf(" not_in_store=%" PRIu64, r->missing);
	if (r->spared)
		printf(" left_out=%" PRIu64, r->spared);
	printf(" commits=%" PRIu64 "\n", r->commits);
}

/* write_error names what a failed write ran into. */
static const char *write_error(int rc)
{
	if (rc == -ENOSPC)
		return "no space left on device";
	if (rc == -EREMOTE)
		return "the store is a replica (replicate follow writes it)";
	if (rc == -ESTALE)
		return "the store was replaced (vigil-store restore) while this command ran; run "
		       "it "
		       "again";
	return strerror(-rc);
}

void cli_write_failed(const char *what, int rc, const struct vg_write_result *r)
{
	if (r && r->commits)
		cli_die("%s failed after %" PRIu64 " committed batches (%" PRIu64
		        " revoked, %" PRIu64 " added are durable): %s",
		        what, r->commits, r->revoked, r->added, write_error(rc));
	cli_die("%s failed, nothing changed: %s", what, write_error(rc));
}

/* ---- init --------------------------------------------------------------- */

static int cmd_init(struct ctx *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		cli_usage_die("init takes no arguments");
	bool existed = vg_store_open(&c->st, c->conf.store_path, VG_STORE_RDONLY) == 0;
	vg_store_close(c->st);
	c->st = NULL;
	cli_store_open(c, VG_STORE_CREATE);
	printf("%s store %s\n", existed ? "OK: already initialised," : "OK: initialised",
	       c->conf.store_path);
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
	vg_log_init(cli_progname, LOG_WARNING);
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
			fprintf(stderr, "%s: unknown option (see %s --help)\n", cli_progname,
			        cli_progname);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		cli_usage_die("no command given");
	if (!config)
		cli_usage_die("-c FILE is required");
	c.tty = isatty(STDERR_FILENO);
	const char *cmd = argv[optind];
	char err[1024];
	if (vg_conf_load(config, &c.conf, err, sizeof(err)) < 0)
		cli_die("config: %s", err);
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
	else if (!strcmp(cmd, "backup"))
		rc = cmd_backup(&c, sub_argc + 1, sub_argv - 1);
	else if (!strcmp(cmd, "restore"))
		rc = cmd_restore(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "verify"))
		rc = cmd_verify(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "prune"))
		rc = cmd_prune(&c, sub_argc, sub_argv);
	else if (!strcmp(cmd, "replicate"))
		rc = cmd_replicate(&c, sub_argc, sub_argv);
	else
		cli_usage_die("unknown command '%s'", cmd);
	cli_end_progress();
	vg_store_close(c.st);
	vg_conf_free(&c.conf);
	free(cmdline);
	return rc;
}
