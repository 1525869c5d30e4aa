/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The responder world of the http_req and ocsp_req fuzz targets, built once
 * per process: a temporary directory with the fixed PKI of fuzz_pki.h (so the
 * CertIDs of the seed corpora name its CAs), a small store, two configuration
 * snapshots (base path "/" with the default limits; base path "/ocsp" with
 * small limits) and one worker with its read transaction, as worker.c would
 * have it. Everything is removed at exit.
 *
 * Store: CA alpha (P-256, delegated signer; CRL published) knows serials 01
 * (good), 02 (revoked, keyCompromise, invalidity date), 03 (certificateHold),
 * 80 (good, top bit set) and a 20-octet serial (good). CA beta (Ed25519)
 * knows 10 (good) and 11 (revoked), is frozen and answers absent serials
 * revoked; its CRL file is garbage. CA gamma (P-384) knows 05 (good) and has
 * no CRL.
 */

#include "responder/cache.h"
#include "responder/ctx.h"
#include "responder/ocsp.h"
#include "responder/routes.h"
#include "responder/worker.h"
#include "common/text.h"
#include "common/log.h"
#include "tests/fuzz/fuzz_pki.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char fz_dir[64];
static struct worker fz_w;
static struct rctx *fz_ctx[2];

static void fz_write(const char *name, const void *data, size_t len, int mode)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", fz_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static int fz_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fz_cleanup(void)
{
	if (fz_dir[0])
		nftw(fz_dir, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static struct vg_serial fz_serial(const char *hex)
{
	struct vg_serial s;
	FZ_CHECK(vg_serial_parse(hex, strlen(hex), &s) == 0);
	return s;
}

static void fz_store(void)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/store", fz_dir);
	struct vg_store *st;
	FZ_CHECK(vg_store_open(&st, path, VG_STORE_CREATE) == 0);
	struct vg_audit who = {.user = "fuzz", .command = "fuzz init"};
	struct vg_add_item a[5];
	memset(a, 0, sizeof(a));
	const char *alpha[] = {"01", "02", "03", "80", "7F0102030405060708090A0B0C0D0E0F10111213"};
	for (int i = 0; i < 5; i++) {
		a[i].serial = fz_serial(alpha[i]);
		a[i].cert.status = VG_STATUS_GOOD;
		a[i].cert.reason = VG_REASON_NONE;
		a[i].cert.flags = VG_CERT_HAS_NOT_BEFORE;
		a[i].cert.not_before = 1735689600 + i;
	}
	FZ_CHECK(vg_store_add(st, "alpha", a, 5, &who, NULL, NULL, NULL) == 0);
	struct vg_serial s = fz_serial("02");
	struct vg_revocation rev = {.revoked_at = 1740000000,
	                            .reason = VG_REASON_KEY_COMPROMISE,
	                            .has_invalidity = true,
	                            .invalidity_date = 1739000000};
	FZ_CHECK(vg_store_revoke(st, "alpha", &s, 1, &rev, &who, NULL, NULL, NULL) == 0);
	s = fz_serial("03");
	rev = (struct vg_revocation){.revoked_at = 1740000001,
	                             .reason = VG_REASON_CERTIFICATE_HOLD};
	FZ_CHECK(vg_store_revoke(st, "alpha", &s, 1, &rev, &who, NULL, NULL, NULL) == 0);
	a[0].serial = fz_serial("10");
	a[1].serial = fz_serial("11");
	FZ_CHECK(vg_store_add(st, "beta", a, 2, &who, NULL, NULL, NULL) == 0);
	s = fz_serial("11");
	rev = (struct vg_revocation){.revoked_at = 1740000002, .reason = VG_REASON_NONE};
	FZ_CHECK(vg_store_revoke(st, "beta", &s, 1, &rev, &who, NULL, NULL, NULL) == 0);
	FZ_CHECK(vg_store_freeze(st, "beta", true, 1740000003, &who) == 0);
	a[0].serial = fz_serial("05");
	FZ_CHECK(vg_store_add(st, "gamma", a, 1, &who, NULL, NULL, NULL) == 0);
	vg_store_close(st);
	/* The responder opens the store read-only. */
	FZ_CHECK(vg_store_open(&g_store, path, VG_STORE_RDONLY) == 0);
}

static const char fz_conf_cas[] = "[ca alpha]\n"
                                  "cert = alpha_cert.pem\n"
                                  "ocsp_cert = alpha_ocsp_cert.pem\n"
                                  "ocsp_key = alpha_ocsp_key.pem\n"
                                  "\n[ca beta]\n"
                                  "cert = beta_cert.pem\n"
                                  "ocsp_key = beta_key.pem\n"
                                  "not_issued = revoked\n"
                                  "ocsp_validity = 10d\n"
                                  "\n[ca gamma]\n"
                                  "cert = gamma_cert.pem\n"
                                  "ocsp_key = gamma_key.pem\n"
                                  "digest = sha384\n"
                                  "ocsp_validity = 8h\n";

static struct rctx *fz_load(const char *name, const char *responder)
{
	char text[2048], path[256], err[512];
	int n = snprintf(text, sizeof(text),
	                 "[store]\npath = store\n\n[responder]\n%s\n"
	                 "[crlgen]\nout = crl\n\n%s",
	                 responder, fz_conf_cas);
	fz_write(name, text, (size_t)n, 0600);
	snprintf(path, sizeof(path), "%s/%s", fz_dir, name);
	struct rctx *c = NULL;
	if (ctx_load(path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz: ctx_load: %s\n", err);
		abort();
	}
	return c;
}

/* fz_world_init builds the world; idempotent. */
static void fz_world_init(void)
{
	if (fz_dir[0])
		return;
	vg_log_init("vigil-fuzz", getenv("VIGIL_FUZZ_LOG") ? LOG_DEBUG : LOG_CRIT);
	snprintf(fz_dir, sizeof(fz_dir), "%s", "/tmp/vigil-fuzz-world.XXXXXX");
	FZ_CHECK(mkdtemp(fz_dir));
	atexit(fz_cleanup);
	static const struct {
		const char *name, *pem;
		int mode;
	} files[] = {
	        {"alpha_cert.pem", alpha_cert_pem, 0644},
	        {"alpha_ocsp_cert.pem", alpha_ocsp_cert_pem, 0644},
	        {"alpha_ocsp_key.pem", alpha_ocsp_key_pem, 0600},
	        {"beta_cert.pem", beta_cert_pem, 0644},
	        {"beta_key.pem", beta_key_pem, 0600},
	        {"gamma_cert.pem", gamma_cert_pem, 0644},
	        {"gamma_key.pem", gamma_key_pem, 0600},
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		fz_write(files[i].name, files[i].pem, strlen(files[i].pem), files[i].mode);
	char path[256];
	snprintf(path, sizeof(path), "%s/crl", fz_dir);
	FZ_CHECK(mkdir(path, 0755) == 0);
	fz_write("crl/alpha.crl", alpha_crl_pem, strlen(alpha_crl_pem), 0644);
	fz_write("crl/beta.crl", "not a CRL\n", 10, 0644);
	fz_store();
	fz_ctx[0] = fz_load("a.conf", "");
	fz_ctx[1] = fz_load("b.conf", "base_path = ocsp\nmax_request_bytes = 600\n"
	                              "max_header_bytes = 600\nmax_certids = 2\n"
	                              "max_connections = 3\nrefresh_percent = 1\n");
	routes_init();
	FZ_CHECK(cache_init(256, 1) == 0);
	FZ_CHECK(ocsp_init() == 0);
	g_workers = &fz_w;
	g_nworkers = 1;
	fz_w.idx = 0;
	fz_w.ctx = fz_ctx[0];
	fz_w.ctx_gen = 1;
	FZ_CHECK(uv_loop_init(&fz_w.loop) == 0);
	FZ_CHECK(vg_txn_begin(g_store, &fz_w.txn) == 0);
	FZ_CHECK(vg_store_counter(fz_w.txn, &fz_w.counter) == 0);
	fz_w.txn_ok = true;
	fz_w.date_t = time(NULL);
	vg_http_date(fz_w.date_t, fz_w.date, sizeof(fz_w.date));
	cache_quiescent(0);
	ERR_clear_error();
}

/* fz_world_reset forgets what an earlier input left behind (the shared cache
 * of answers), so that each input runs alike. */
static void fz_world_reset(void)
{
	cache_clear();
	cache_quiescent(0);
	fz_w.txn_ok = true;
	fz_w.draining = false;
	fz_w.ctx = fz_ctx[0];
}

static uint32_t fz_hash(const uint8_t *d, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= d[i];
		h *= 16777619u;
	}
	/* murmur3's finaliser: every output bit depends on every input bit. */
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}
