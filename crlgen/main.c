/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-crlgen: builds, signs and publishes the CRLs of every configured CA
 * from the status store, once or as a daemon. See usage() and crlgen.h.
 */
#include "crlgen/crlgen.h"
#include "crlgen/check.h"
#include "crlgen/plan.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/text.h"

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static void usage(FILE *f)
{
	fputs("Usage: vigil-crlgen -c FILE (--once | --watch | --dry-run) [--ca NAME] [--delta] "
	      "[-v]\n"
	      "       vigil-crlgen -c FILE --plan [--revoke-all | --issued-after T\n"
	      "                    [--issued-before T]] [--ca NAME]\n"
	      "       vigil-crlgen -c FILE --check [--url-base URL] [--ca NAME]\n"
	      "\n"
	      "Build, sign and publish the CRLs of the CAs in FILE from the Vigil status\n"
	      "store (opened read-only). Each CRL is an X.509 v2 CRL (RFC 5280 section 5)\n"
	      "signed with the CA's crl_key, streamed from the store in serial order.\n"
	      "\n"
	      "Modes:\n"
	      "  --once        publish a full CRL for every CA (or NAME), then exit; for\n"
	      "                CAs with delta_crl = on, also a delta CRL against it\n"
	      "  --watch       run as a daemon: publish at start, then a full CRL every\n"
	      "                [crlgen] interval (or half of crl_validity when shorter, so\n"
	      "                a CRL never expires), and within one second of any store change\n"
	      "                (bursts of changes are coalesced): a full CRL, or a delta CRL\n"
	      "                for CAs with delta_crl = on; for CAs with crl_shards, the\n"
	      "                full CRL and only the shards the change touched\n"
	      "  --dry-run     the check before a deployment: load every key (each makes a\n"
	      "                test signature), then build and sign each CA's CRLs as they\n"
	      "                are now, in memory, and publish nothing (what --plan prints\n"
	      "                for them); exit 0 when every CA could be signed\n"
	      "  --plan        change nothing; print per CA and shard the entries, bytes\n"
	      "                and generation time of the CRLs as they are, and with\n"
	      "                --revoke-all or --issued-after as if that set of good\n"
	      "                certificates were revoked now, and the shard count that\n"
	      "                keeps every shard under crl_max_bytes (key=value lines)\n"
	      "  --check       the watchdog: fetch every URL of each CA's NAME.ccadb.json,\n"
	      "                and crl_url (the full CRL) of a CA with shards, and check\n"
	      "                signature, IDP = URL (none in a full CRL), thisUpdate age,\n"
	      "                nextUpdate, CRL number, Content-Type, Expires, and that\n"
	      "                every revoked certificate of the store is listed (in its\n"
	      "                shard); Prometheus text on stdout, one line per failure\n"
	      "                on stderr, exit 1 on a failure\n"
	      "\n"
	      "Options:\n"
	      "  -c, --config FILE  the Vigil configuration file (required)\n"
	      "  --ca NAME          only the CA of section [ca NAME]\n"
	      "  --delta            with --once: only delta CRLs, against the last full CRL\n"
	      "                     (CAs with delta_crl = on)\n"
	      "  --revoke-all       with --plan: every unexpired good certificate\n"
	      "  --issued-after T   with --plan: those issued at T or later (RFC 3339 UTC)\n"
	      "  --issued-before T  with --issued-after: and before T\n"
	      "  --url-base URL     with --check: fetch http://HOST/PATH as URL/PATH (a CDN\n"
	      "                     edge, the local responder)\n"
	      "  -v, --verbose      log debug events too\n"
	      "  -h, --help         this text\n"
	      "  -V, --version      print the version\n"
	      "\n"
	      "Output, in [crlgen] out (default: crl beside FILE), for CA NAME:\n"
	      "  NAME.crl, NAME.crl.pem              the newest full CRL, DER and PEM\n"
	      "  NAME-delta.crl, NAME-delta.crl.pem  the newest delta CRL\n"
	      "  NAME-NUMBER.crl                     the last [crlgen] keep full CRLs\n"
	      "                                      (default 5), by CRL number\n"
	      "  NAME.state                          the last CRL number and delta base\n"
	      "  PATH of crl_url, of each shard URL  the full CRL, each shard (crl_shards)\n"
	      "  NAME.ccadb.json                     the JSON array of the shard URLs, or\n"
	      "                                      [crl_url], for the CCADB\n"
	      "Every file is written under a temporary name, fsynced and renamed, so\n"
	      "readers never see a partial CRL.\n"
	      "\n"
	      "Config keys used: [store] path; [crlgen] out, interval, keep; per [ca NAME]:\n"
	      "cert, crl_key (RSA >= 2048 bits, ECDSA or Ed25519), digest (sha256, sha384,\n"
	      "sha512), crl_validity (nextUpdate - thisUpdate, default 7d, at most 10d),\n"
	      "delta_crl (on/off), delta_crl_url (Freshest CRL in full CRLs), crl_url,\n"
	      "crl_shards, crl_shard_url (with %u), profile (tls-br: each CRL is linted\n"
	      "before it is renamed into place, a failing one is not published),\n"
	      "crl_max_bytes; [crlgen] metrics_file.\n"
	      "\n"
	      "CRL numbers are the thisUpdate time in microseconds, and always above every\n"
	      "number published before for the CA that crlgen can see (NAME.state, the\n"
	      "numbered copies, the NAME.crl and NAME-delta.crl in place, whoever wrote\n"
	      "them), so they increase across runs, restarts and publishers without\n"
	      "writing to the store; a CRL whose number would not be above the one it\n"
	      "replaces is refused (exit 1). Two sites publishing one CA: one active\n"
	      "publisher, or one shared out directory (vigil-crlgen(8)).\n"
	      "A full CRL lists every revoked certificate that has not expired, and those\n"
	      "that expired after the previous full CRL (RFC 5280 section 3.3).\n"
	      "\n"
	      "Signals (--watch): SIGHUP reloads the configuration and keys (a bad one is\n"
	      "logged and the old one kept) and republishes; SIGTERM and SIGINT finish the\n"
	      "CRL in progress and exit. A failed publication is retried after 10 s; the\n"
	      "previously published CRL stays in place meanwhile.\n"
	      "\n"
	      "Logs: one line per event on stderr, key=value (event=crl_published ca=\n"
	      "kind= number= entries= bytes= ms=).\n"
	      "\n"
	      "Exit status: 0 on success, 1 when a CRL could not be published (the previous\n"
	      "one is left in place), 2 on a usage, configuration or key error (one line\n"
	      "on stderr; nothing is published).\n"
	      "\n"
	      "Examples:\n"
	      "  vigil-crlgen -c /etc/vigil/vigil.conf --once            # every CA, now\n"
	      "  vigil-crlgen -c /etc/vigil/vigil.conf --once --ca issuing-1\n"
	      "  vigil-crlgen -c /etc/vigil/vigil.conf --watch           # the daemon\n"
	      "  openssl crl -inform DER -in crl/issuing-1.crl -noout -text -CAfile ca.pem\n",
	      f);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

/* A failed publication (disk full, store error) is tried again this soon. */
#define RETRY_MS 10000

/* publish_full publishes CA |i|'s full CRL and schedules the next one. */
static void publish_full(struct crlgen *g, int i, int64_t *next_full, int *failures)
{
	if (crlgen_publish(g, i, CRLGEN_FULL) < 0) {
		(*failures)++;
		next_full[i] = now_ms() + RETRY_MS;
	} else {
		next_full[i] = now_ms() + crlgen_period_ms(g, i);
	}
}

/* watch runs the daemon loop. Returns the exit status. */
static int watch(struct crlgen **gp, const char *config, const char *only)
{
	struct crlgen *g = *gp;
	int64_t next_full[VG_CONF_MAX_CAS];
	uint64_t seen = 0;
	int failures = 0;

	if (crlgen_counter(g, &seen) < 0)
		return 1;
	/* Publish every CA at start, so the directory is fresh whatever happened
	 * while the daemon was down. */
	for (int i = 0; i < crlgen_n_cas(g); i++) {
		next_full[i] = 0;
		if (!got_term)
			publish_full(g, i, next_full, &failures);
	}
	log_info("event=watching cas=%d interval=%lld counter=%llu", crlgen_n_cas(g),
	         (long long)(crlgen_interval_ms(g) / 1000), (unsigned long long)seen);

	/* A change is published once the counter has been still for QUIET ms, or
	 * MAXWAIT ms after it was first seen: within one second of the first
	 * change, and one CRL for a burst of writes. */
	enum { POLL = 100, QUIET = 200, MAXWAIT = 600 };
	int64_t first = 0, last = 0;
	uint64_t last_counter = seen;
	while (!got_term) {
		if (got_hup) {
			got_hup = 0;
			struct crlgen *ng = NULL;
			char err[512];
			if (crlgen_reload(g, &ng, config, only, err, sizeof(err)) < 0) {
				char q[600];
				log_err("event=reload_failed error=%s action=keep_old_config",
				        vg_log_quote(err, q, sizeof(q)));
			} else {
				crlgen_free(g);
				g = *gp = ng;
				log_info("event=reloaded cas=%d", crlgen_n_cas(g));
				/* Keys or CAs may have changed: publish every CA now. */
				for (int i = 0; i < crlgen_n_cas(g); i++)
					next_full[i] = 0;
			}
		}
		sleep_ms(POLL);
		if (got_term)
			break;
		uint64_t c;
		unsigned reopens = crlgen_reopens(g);
		int crc = crlgen_counter(g, &c);
		if (crc == 0 && crlgen_reopens(g) != reopens) {
			/* Another store: every CA's full CRL from it now, each
			 * checked against what was published (guard.h). */
			for (int i = 0; i < crlgen_n_cas(g); i++)
				next_full[i] = 0;
			seen = last_counter = c;
			first = last = 0;
		} else if (crc == 0 && c != last_counter) {
			int64_t t = now_ms();
			if (!first)
				first = t;
			last = t;
			last_counter = c;
		}
		int64_t t = now_ms();
		if (first && (t - last >= QUIET || t - first >= MAXWAIT)) {
			bool touched[VG_CONF_MAX_CAS];
			uint64_t upto = 0;
			/* On a store error the change stays pending and is tried
			 * again at the next poll. */
			if (crlgen_touched(g, seen, touched, &upto) == 0) {
				for (int i = 0; i < crlgen_n_cas(g) && !got_term; i++) {
					if (!touched[i])
						continue;
					if (crlgen_sharded(g, i)) {
						/* The full CRL and the touched shards; the
						 * others keep their schedule. */
						if (crlgen_publish(g, i, CRLGEN_TOUCHED) < 0) {
							failures++;
							if (next_full[i] > now_ms() + RETRY_MS)
								next_full[i] = now_ms() + RETRY_MS;
						}
					} else if (!crlgen_delta_enabled(g, i)) {
						publish_full(g, i, next_full, &failures);
					} else if (crlgen_publish(g, i, CRLGEN_DELTA) < 0) {
						/* The change is not published: a full CRL,
						 * which lists it, is tried again soon. */
						failures++;
						if (next_full[i] > now_ms() + RETRY_MS)
							next_full[i] = now_ms() + RETRY_MS;
					}
				}
				seen = upto;
				first = last = 0;
			}
		}
		for (int i = 0; i < crlgen_n_cas(g) && !got_term; i++)
			if (now_ms() >= next_full[i])
				publish_full(g, i, next_full, &failures);
	}
	log_info("event=stopped failures=%d", failures);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"once", no_argument, NULL, 'o'},
	        {"watch", no_argument, NULL, 'w'},
	        {"ca", required_argument, NULL, 'a'},
	        {"delta", no_argument, NULL, 'd'},
	        {"plan", no_argument, NULL, 'p'},
	        {"dry-run", no_argument, NULL, 'n'},
	        {"revoke-all", no_argument, NULL, 'R'},
	        {"issued-after", required_argument, NULL, 'A'},
	        {"issued-before", required_argument, NULL, 'B'},
	        {"check", no_argument, NULL, 'k'},
	        {"url-base", required_argument, NULL, 'U'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *only = NULL;
	bool once = false, watch_mode = false, delta_only = false, verbose = false;
	bool plan = false, check = false, dry_run = false;
	const char *after = NULL, *before = NULL, *url_base = NULL;
	struct plan_opts po = {.what = PLAN_AS_IS};
	int ch;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'w':
			watch_mode = true;
			break;
		case 'a':
			only = optarg;
			break;
		case 'd':
			delta_only = true;
			break;
		case 'p':
			plan = true;
			break;
		case 'n':
			dry_run = true;
			break;
		case 'R':
			po.what = PLAN_REVOKE_ALL;
			break;
		case 'A':
			after = optarg;
			break;
		case 'B':
			before = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'U':
			url_base = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vigil-crlgen %s\n", VG_VERSION);
			return 0;
		default:
			if (optopt)
				fprintf(stderr,
				        "vigil-crlgen: option -%c: unknown or missing its "
				        "argument; see --help\n",
				        optopt);
			else
				fprintf(stderr,
				        "vigil-crlgen: %s: unknown option or missing "
				        "argument; see --help\n",
				        argv[optind - 1]);
			return 2;
		}
	}
	const char *bad = NULL;
	if (optind < argc)
		bad = "unexpected argument";
	else if (!config)
		bad = "-c FILE is required";
	else if ((int)once + (int)watch_mode + (int)plan + (int)check + (int)dry_run != 1)
		bad = "exactly one of --once, --watch, --dry-run, --plan and --check is required";
	else if ((po.what == PLAN_REVOKE_ALL || after || before) && !plan)
		bad = "--revoke-all, --issued-after and --issued-before go with --plan";
	else if (po.what == PLAN_REVOKE_ALL && (after || before))
		bad = "--revoke-all or --issued-after, not both";
	else if (before && !after)
		bad = "--issued-before goes with --issued-after";
	else if (after && vg_time_parse(after, &po.after) < 0)
		bad = "--issued-after: expected a time like 2026-11-27T10:00:00Z";
	else if (before && (vg_time_parse(before, &po.before) < 0 || po.before <= po.after))
		bad = "--issued-before: expected a time after --issued-after";
	else if (url_base && !check)
		bad = "--url-base goes with --check";
	else if (delta_only && !once)
		bad = "--delta goes with --once";
	if (bad) {
		fprintf(stderr, "vigil-crlgen: %s%s%s; see --help\n", bad,
		        optind < argc ? ": " : "", optind < argc ? argv[optind] : "");
		return 2;
	}

	vg_log_init("vigil-crlgen", verbose ? LOG_DEBUG : LOG_INFO);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct crlgen *g = NULL;
	char err[512];
	int rc = crlgen_new(&g, config, only, !check, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "vigil-crlgen: %s\n", err);
		return 2;
	}
	int status = 0;
	if (after)
		po.what = PLAN_ISSUED;
	if (plan || dry_run) {
		/* A dry run is the plan of the CRLs as they are: generated and
		 * signed by the publishing code, into nothing. */
		status = crlgen_plan(g, &po, stdout);
	} else if (check) {
		status = crlgen_check(g, url_base, stdout);
	} else if (watch_mode) {
		status = watch(&g, config, only);
	} else {
		for (int i = 0; i < crlgen_n_cas(g) && !got_term; i++) {
			enum crlgen_kind kind = delta_only ? CRLGEN_DELTA : CRLGEN_FULL;
			if (delta_only && !crlgen_delta_enabled(g, i)) {
				if (!only)
					continue;
				fprintf(stderr,
				        "vigil-crlgen: --delta: [ca %s] has delta_crl off\n", only);
				status = 2;
				break;
			}
			if (crlgen_publish(g, i, kind) < 0)
				status = 1;
		}
	}
	crlgen_free(g);
	return status;
}
