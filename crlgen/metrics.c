/* SPDX-License-Identifier: Apache-2.0 */
/* vigil-crlgen's metrics file (see metrics.h). */
#include "crlgen/metrics.h"
#include "crlgen/publish.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct crl_metric {
	char ca[64];
	char crl[512];
	uint64_t entries, bytes, number;
	int64_t this_update, next_update;
};

struct lint_metric {
	char ca[64];
	char rule[32];
	uint64_t n;
};

static struct crl_metric *crls;
static size_t n_crls, cap_crls;
static struct lint_metric lints[256];
static size_t n_lints;
static struct lint_metric refusals[64]; /* rule: the reason */
static size_t n_refusals;

void metrics_crl_published(const char *ca, const char *crl, uint64_t entries, uint64_t bytes,
                           uint64_t number, int64_t this_update, int64_t next_update)
{
	struct crl_metric *m = NULL;
	for (size_t i = 0; i < n_crls && !m; i++)
		if (!strcmp(crls[i].ca, ca) && !strcmp(crls[i].crl, crl))
			m = &crls[i];
	if (!m) {
		if (n_crls == cap_crls) {
			size_t cap = cap_crls ? cap_crls * 2 : 64;
			struct crl_metric *v = realloc(crls, cap * sizeof(*v));
			if (!v)
				return;
			crls = v;
			cap_crls = cap;
		}
		m = &crls[n_crls++];
		snprintf(m->ca, sizeof(m->ca), "%s", ca);
		snprintf(m->crl, sizeof(m->crl), "%s", crl);
	}
	m->entries = entries;
	m->bytes = bytes;
	m->number = number;
	m->this_update = this_update;
	m->next_update = next_update;
}

/* count adds one to the (ca, what) counter of |v| (|n| used of |cap|). */
static void count(struct lint_metric *v, size_t *n, size_t cap, const char *ca, const char *what)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i].ca, ca) && !strcmp(v[i].rule, what)) {
			v[i].n++;
			return;
		}
	if (*n == cap)
		return;
	struct lint_metric *l = &v[(*n)++];
	snprintf(l->ca, sizeof(l->ca), "%s", ca);
	snprintf(l->rule, sizeof(l->rule), "%s", what);
	l->n = 1;
}

void metrics_lint_failed(const char *ca, const char *rule)
{
	count(lints, &n_lints, sizeof(lints) / sizeof(lints[0]), ca, rule);
}

void metrics_refused(const char *ca, const char *reason)
{
	count(refusals, &n_refusals, sizeof(refusals) / sizeof(refusals[0]), ca, reason);
}

int metrics_flush(const char *path)
{
	struct pub_file f = {.fd = -1};
	if (!path)
		return 0;
	char dir[1024];
	const char *slash = strrchr(path, '/');
	if (!slash || (size_t)(slash - path) >= sizeof(dir))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	int dirfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	int rc = pub_begin(&f, dirfd, slash + 1);
	if (rc < 0) {
		close(dirfd);
		return rc;
	}
	FILE *o = fdopen(dup(f.fd), "w");
	if (!o) {
		pub_abort(&f);
		return -ENOMEM;
	}
	static const char *const names[] = {"entries", "bytes", "number", "next_update_seconds"};
	static const char *const help[] = {
	        "Entries of the published CRL", "Size of the published CRL in bytes (DER)",
	        "CRL number of the published CRL", "nextUpdate of the published CRL (Unix time)"};
	for (size_t j = 0; j < 4; j++) {
		fprintf(o, "# HELP vigil_crl_%s %s.\n# TYPE vigil_crl_%s gauge\n", names[j],
		        help[j], names[j]);
		for (size_t i = 0; i < n_crls; i++) {
			const struct crl_metric *m = &crls[i];
			uint64_t v = j == 0   ? m->entries
			             : j == 1 ? m->bytes
			             : j == 2 ? m->number
			                      : (uint64_t)m->next_update;
			fprintf(o, "vigil_crl_%s{ca=\"%s\",crl=\"%s\"} %" PRIu64 "\n", names[j],
			        m->ca, m->crl, v);
		}
	}
	fprintf(o, "# HELP vigil_crlgen_lint_failures_total CRLs refused by the profile lint.\n"
	           "# TYPE vigil_crlgen_lint_failures_total counter\n");
	for (size_t i = 0; i < n_lints; i++)
		fprintf(o, "vigil_crlgen_lint_failures_total{ca=\"%s\",rule=\"%s\"} %" PRIu64 "\n",
		        lints[i].ca, lints[i].rule, lints[i].n);
	fprintf(o, "# HELP vigil_crlgen_refusals_total Publications refused: the store is older "
	           "than what was published.\n"
	           "# TYPE vigil_crlgen_refusals_total counter\n");
	for (size_t i = 0; i < n_refusals; i++)
		fprintf(o, "vigil_crlgen_refusals_total{ca=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
		        refusals[i].ca, refusals[i].rule, refusals[i].n);
	rc = fclose(o) == 0 ? 0 : -EIO;
	if (rc == 0 && (rc = pub_sync(&f)) == 0)
		rc = pub_commit(&f);
	pub_abort(&f);
	close(dirfd);
	return rc;
}
