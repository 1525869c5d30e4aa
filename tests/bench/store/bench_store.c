/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store benchmarks, run on demand by tests/bench/store/run.sh (not a test).
 *
 *   bench-store lookup STORE CA INDEX [SECONDS]
 *       Point lookups of every serial of INDEX (OpenSSL index.txt) in random
 *       order, on one core, through one reused read transaction, as a
 *       responder worker does. Prints lookups per second.
 *   bench-store populate STORE CA N FROM TO [SHARDS]
 *       Record N good certificates with random 16-byte serials and notBefore
 *       spread evenly over [FROM, TO) (Unix seconds), through the store API;
 *       with SHARDS, each with the CRL shard its CDP would name (1..SHARDS),
 *       to measure what that byte costs (tests/bench/crlgen/RESULTS.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int lookup(const char *path, const char *ca, const char *index, double seconds)
{
	FILE *f = fopen(index, "r");
	if (!f) {
		perror(index);
		return 1;
	}
	size_t n = 0, cap = 1 << 20;
	struct vg_serial *v = malloc(cap * sizeof(*v));
	char *line = NULL;
	size_t lc = 0;
	while (getline(&line, &lc, f) > 0) {
		/* serial is the fourth TAB-separated field */
		char *p = line;
		for (int i = 0; i < 3 && p; i++) {
			p = strchr(p, '\t');
			if (p)
				p++;
		}
		if (!p)
			continue;
		char *e = strchr(p, '\t');
		if (!e)
			continue;
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
		}
		if (vg_serial_parse(p, (size_t)(e - p), &v[n]) == 0)
			n++;
	}
	free(line);
	fclose(f);
	for (size_t i = n; i > 1; i--) {
		size_t j = next_rand() % i;
		struct vg_serial t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
	struct vg_store *st;
	int rc = vg_store_open(&st, path, VG_STORE_RDONLY);
	if (rc) {
		fprintf(stderr, "open %s: %s\n", path, strerror(-rc));
		return 1;
	}
	struct vg_txn *t;
	if (vg_txn_begin(st, &t))
		return 1;
	uint32_t id = vg_ca_id(ca);
	struct vg_cert c;
	/* Warm the map: one pass. */
	uint64_t found = 0;
	for (size_t i = 0; i < n; i++)
		found += vg_store_get(t, id, &v[i], &c) == 0;
	uint64_t done = 0;
	double t0 = now(), t1, c0 = cpu_now();
	do {
		for (size_t i = 0; i < n && i < 1000000; i++)
			found += vg_store_get(t, id, &v[(done + i) % n], &c) == 0;
		done += n < 1000000 ? n : 1000000;
		t1 = now();
	} while (t1 - t0 < seconds);
	double cpu = cpu_now() - c0;
	/* Per CPU second too: on a shared machine the wall rate includes time
	 * the core spent on other work. */
	printf("lookups=%" PRIu64 " seconds=%.3f lookups_per_second=%.0f cpu_seconds=%.3f "
	       "lookups_per_cpu_second=%.0f serials=%zu found_all=%s\n",
	       done, t1 - t0, (double)done / (t1 - t0), cpu, (double)done / cpu, n,
	       found == (uint64_t)n + done ? "yes" : "no");
	vg_txn_end(t);
	vg_store_close(st);
	free(v);
	return 0;
}

static int populate(const char *path, const char *ca, size_t n, int64_t from, int64_t to,
                    int shards)
{
	struct vg_store *st;
	int rc = vg_store_open(&st, path, VG_STORE_CREATE);
	if (rc) {
		fprintf(stderr, "open %s: %s\n", path, strerror(-rc));
		return 1;
	}
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		items[i].serial.len = 16;
		for (int k = 0; k < 16; k += 8) {
			uint64_t r = next_rand();
			memcpy(items[i].serial.b + k, &r, 8);
		}
		items[i].serial.b[0] = (uint8_t)((items[i].serial.b[0] & 0x7f) | 0x01);
		items[i].cert.status = VG_STATUS_GOOD;
		items[i].cert.reason = VG_REASON_NONE;
		items[i].cert.flags = VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_NOT_AFTER;
		items[i].cert.not_before =
		        from + (int64_t)((double)(to - from) * (double)i / (double)n);
		items[i].cert.not_after = items[i].cert.not_before + 90 * 86400;
		if (shards > 0) {
			items[i].cert.flags |= VG_CERT_HAS_SHARD;
			items[i].cert.crl_shard = (uint16_t)(i % (size_t)shards + 1);
		}
	}
	struct vg_audit who = {"bench", "bench-store populate"};
	double t0 = now();
	rc = vg_store_add(st, ca, items, n, &who, NULL, NULL, NULL);
	printf("populated=%zu seconds=%.3f rc=%d\n", n, now() - t0, rc);
	free(items);
	vg_store_close(st);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "lookup"))
		return lookup(argv[2], argv[3], argv[4], argc > 5 ? atof(argv[5]) : 3.0);
	if ((argc == 7 || argc == 8) && !strcmp(argv[1], "populate"))
		return populate(argv[2], argv[3], (size_t)atoll(argv[4]), atoll(argv[5]),
		                atoll(argv[6]), argc == 8 ? atoi(argv[7]) : 0);
	fprintf(stderr, "usage: bench-store lookup STORE CA INDEX [SECONDS]\n"
	                "       bench-store populate STORE CA N FROM TO [SHARDS]\n");
	return 2;
}
