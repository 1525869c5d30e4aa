/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-sign: signatures per second with a key loaded the way the responder
 * and crlgen load theirs (vg_pki_load_key: a PEM file or a pkcs11: URI).
 *
 *   bench-sign KEY SECONDS [THREADS]
 *
 * Each thread signs a 300-byte message (about an OCSP tbsResponseData) with
 * SHA-256 through EVP_DigestSign, over and over, for SECONDS. Prints one
 * line: key=... type=... threads=N signs=N wall_s=X signs_per_s=X cpu_s=X
 * signs_per_cpu_s=X. CPU time is the process's, which includes a SoftHSM2
 * token (it runs in-process); a hardware token's own time is not in it.
 */
#include "common/pki.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>

static EVP_PKEY *key;
static double seconds;
static atomic_ulong total;
static atomic_int failed;

static double now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	(void)arg;
	unsigned char msg[300], sig[1024];
	memset(msg, 0x5a, sizeof(msg));
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
	unsigned long n = 0;
	double end = now(CLOCK_MONOTONIC) + seconds;
	while (c) {
		for (int i = 0; i < 16; i++) {
			size_t siglen = sizeof(sig);
			msg[0] = (unsigned char)n; /* a different message each time */
			if (EVP_DigestSignInit(c, NULL, md, NULL, key) != 1 ||
			    EVP_DigestSign(c, sig, &siglen, msg, sizeof(msg)) != 1) {
				atomic_store(&failed, 1);
				goto out;
			}
			n++;
		}
		if (now(CLOCK_MONOTONIC) >= end)
			break;
	}
out:
	EVP_MD_CTX_free(c);
	atomic_fetch_add(&total, n);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-sign KEY SECONDS [THREADS]\n");
		return 2;
	}
	seconds = atof(argv[2]);
	int threads = argc > 3 ? atoi(argv[3]) : 1;
	if (threads < 1 || threads > 64 || seconds <= 0) {
		fprintf(stderr, "bench-sign: bad SECONDS or THREADS\n");
		return 2;
	}
	char err[512];
	if (vg_pki_load_key(argv[1], &key, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-sign: %s\n", err);
		return 1;
	}
	pthread_t t[64];
	double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	double wall = now(CLOCK_MONOTONIC) - w0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
	if (atomic_load(&failed)) {
		fprintf(stderr, "bench-sign: signing failed: %s\n",
		        vg_pki_ssl_error(err, sizeof(err)));
		return 1;
	}
	unsigned long n = atomic_load(&total);
	printf("key=%s type=%s bits=%d threads=%d signs=%lu wall_s=%.2f signs_per_s=%.0f "
	       "cpu_s=%.2f signs_per_cpu_s=%.0f\n",
	       strncmp(argv[1], "pkcs11:", 7) ? "file" : "pkcs11",
	       EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
	       EVP_PKEY_get_bits(key), threads, n, wall, (double)n / wall, cpu, (double)n / cpu);
	EVP_PKEY_free(key);
	return 0;
}
