/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tls-br CRL lint (see lint.h for the rules). It reads the CRL that was
 * just written, from its temporary file, with common/der.h's vg_cbs reader:
 * an independent reading of what the encoder produced, not a re-check of
 * the encoder's inputs. The file is mapped read-only and the pages already
 * read are dropped every LINT_TRIM bytes, so that a CRL of tens of
 * megabytes does not count whole in the RSS.
 */
#include "crlgen/lint.h"
#include "crlgen/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>

#include "common/conf.h"
#include "common/der.h"
#include "store/store.h"

#define LINT_TRIM (8u << 20)

static const uint8_t oid_reason[] = {0x55, 0x1d, 0x15};
static const uint8_t oid_crl_number[] = {0x55, 0x1d, 0x14};
static const uint8_t oid_akid[] = {0x55, 0x1d, 0x23};
static const uint8_t oid_idp[] = {0x55, 0x1d, 0x1c};
static const uint8_t oid_delta_indicator[] = {0x55, 0x1d, 0x1b};
static const uint8_t oid_freshest[] = {0x55, 0x1d, 0x2e};
/* SHA-1 signatures: sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1. */
static const uint8_t oid_sha1_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05};
static const uint8_t oid_sha1_ecdsa[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01};
static const uint8_t oid_sha1_dsa[] = {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03};

static bool cbs_is(const struct vg_cbs *c, const uint8_t *b, size_t n)
{
	return vg_cbs_len(c) == n && !memcmp(vg_cbs_data(c), b, n);
}

#define FAIL(r, ...)                                                                               \
	do {                                                                                       \
		*rule = (r);                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		rc = -EBADMSG;                                                                     \
		goto out;                                                                          \
	} while (0)

/* get_number reads a CRL number (cRLNumber, BaseCRLNumber: a non-negative
 * INTEGER below 2^159, RFC 5280 §5.2.3) from an extension's OCTET STRING
 * content |val|: into |v|, or |*big| when it needs more than 64 bits.
 * Returns NULL or what is wrong. */
static const char *get_number(struct vg_cbs val, uint64_t *v, bool *big)
{
	struct vg_cbs in;
	if (!vg_cbs_get_asn1(&val, &in, DER_INTEGER) || vg_cbs_len(&val) || vg_cbs_len(&in) == 0 ||
	    (vg_cbs_data(&in)[0] & 0x80))
		return "is not a non-negative INTEGER";
	/* Below 2^159: at most 20 octets with the top bit clear. */
	if (vg_cbs_len(&in) > 20)
		return "is 2^159 or more";
	*v = 0;
	*big = vg_cbs_len(&in) > 9 || (vg_cbs_len(&in) == 9 && vg_cbs_data(&in)[0]);
	while (!*big && vg_cbs_len(&in)) {
		uint8_t b;
		vg_cbs_get_u8(&in, &b);
		*v = *v << 8 | b;
	}
	return NULL;
}

/* check_idp checks the content of an IDP extension's OCTET STRING. */
static const char *check_idp(struct vg_cbs v, const char *want)
{
	struct vg_cbs seq, dpn, full, uri;
	bool has_dp, user = false, cacerts = false, present;
	if (!vg_cbs_get_asn1(&v, &seq, DER_SEQUENCE) || vg_cbs_len(&v))
		return "IDP is not a SEQUENCE";
	if (!vg_cbs_get_optional_asn1(&seq, &dpn, &has_dp, DER_CTX_CONS(0)))
		return "IDP distributionPoint does not parse";
	if (!has_dp)
		return "IDP has no distributionPoint";
	if (!vg_cbs_get_asn1(&dpn, &full, DER_CTX_CONS(0)) || vg_cbs_len(&dpn))
		return "IDP distributionPoint is not a fullName";
	if (!vg_cbs_get_asn1(&full, &uri, DER_CTX(6)))
		return "IDP fullName is not a URI";
	if (vg_cbs_len(&full))
		return "IDP fullName holds more than one name";
	if (!cbs_is(&uri, (const uint8_t *)want, strlen(want)))
		return "IDP URI differs from the shard's URL";
	struct vg_cbs b;
	if (!vg_cbs_get_optional_asn1(&seq, &b, &present, DER_CTX(1)))
		return "IDP onlyContainsUserCerts does not parse";
	user = present;
	if (!vg_cbs_get_optional_asn1(&seq, &b, &present, DER_CTX(2)))
		return "IDP onlyContainsCACerts does not parse";
	cacerts = present;
	if (user && cacerts)
		return "IDP has both onlyContainsUserCerts and onlyContainsCACerts";
	return NULL;
}

int lint_crl(int fd, uint64_t len, const struct lint_expect *x, const char **rule, char *err,
             size_t errlen)
{
	const struct crlgen_ca *ca = x->ca;
	int rc = 0;
	*rule = NULL;
	if (len == 0 || len > SIZE_MAX) {
		*rule = "der";
		snprintf(err, errlen, "empty file");
		return -EBADMSG;
	}
	uint8_t *map = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "mapping the CRL: %s", strerror(errno));
		return -errno;
	}
	struct vg_cbs all, cl, tbs, alg1, alg2, name;
	vg_cbs_init(&all, map, (size_t)len);
	if (!vg_cbs_get_asn1(&all, &cl, DER_SEQUENCE) || vg_cbs_len(&all))
		FAIL("der", "not one DER SEQUENCE");
	if (!vg_cbs_get_asn1(&cl, &tbs, DER_SEQUENCE) ||
	    !vg_cbs_get_asn1_element(&cl, &alg2, DER_SEQUENCE))
		FAIL("der", "no tbsCertList or signatureAlgorithm");
	uint64_t version;
	if (!vg_cbs_get_asn1_uint64(&tbs, &version) || version != 1)
		FAIL("version", "not a v2 CRL");
	if (!vg_cbs_get_asn1_element(&tbs, &alg1, DER_SEQUENCE))
		FAIL("der", "no signature AlgorithmIdentifier");
	if (vg_cbs_len(&alg1) != vg_cbs_len(&alg2) ||
	    memcmp(vg_cbs_data(&alg1), vg_cbs_data(&alg2), vg_cbs_len(&alg1)))
		FAIL("signature_algorithm", "inner and outer AlgorithmIdentifiers differ");
	struct vg_cbs a = alg1, ac, oid;
	if (!vg_cbs_get_asn1(&a, &ac, DER_SEQUENCE) || !vg_cbs_get_asn1(&ac, &oid, DER_OID))
		FAIL("der", "AlgorithmIdentifier does not parse");
	if (cbs_is(&oid, oid_sha1_rsa, sizeof(oid_sha1_rsa)) ||
	    cbs_is(&oid, oid_sha1_ecdsa, sizeof(oid_sha1_ecdsa)) ||
	    cbs_is(&oid, oid_sha1_dsa, sizeof(oid_sha1_dsa)))
		FAIL("signature_algorithm", "signed with SHA-1");
	if (!vg_cbs_get_asn1_element(&tbs, &name, DER_SEQUENCE))
		FAIL("der", "no issuer");
	if (!cbs_is(&name, ca->issuer, ca->issuer_len))
		FAIL("issuer", "issuer differs from the CA certificate's subject");
	int64_t tu, nu;
	if (!vg_cbs_get_time(&tbs, &tu))
		FAIL("der", "no thisUpdate");
	if (vg_cbs_peek_asn1_tag(&tbs, DER_UTCTIME) ||
	    vg_cbs_peek_asn1_tag(&tbs, DER_GENERALIZEDTIME)) {
		if (!vg_cbs_get_time(&tbs, &nu))
			FAIL("der", "nextUpdate does not parse");
	} else {
		FAIL("validity", "no nextUpdate");
	}
	if (nu <= tu || nu - tu > VG_VALIDITY_MAX)
		FAIL("validity", "nextUpdate is %" PRId64 " s after thisUpdate (at most %d)",
		     nu - tu, VG_VALIDITY_MAX);
	if (tu > x->now + 60)
		FAIL("validity", "thisUpdate is in the future");

	/* revokedCertificates */
	uint64_t count = 0;
	struct vg_cbs prev = {0};
	if (vg_cbs_peek_asn1_tag(&tbs, DER_SEQUENCE)) {
		struct vg_cbs rev;
		if (!vg_cbs_get_asn1(&tbs, &rev, DER_SEQUENCE))
			FAIL("der", "revokedCertificates does not parse");
		size_t trimmed = 0;
		while (vg_cbs_len(&rev)) {
			struct vg_cbs ent, serial, exts, rd;
			bool has_exts;
			unsigned rtag;
			/* The revocationDate's tag only: decoding a million times
			 * would cost more than the rest of the lint. */
			if (!vg_cbs_get_asn1(&rev, &ent, DER_SEQUENCE) ||
			    !vg_cbs_get_asn1(&ent, &serial, DER_INTEGER) ||
			    !vg_cbs_get_any_asn1_element(&ent, &rd, &rtag, NULL) ||
			    (rtag != DER_UTCTIME && rtag != DER_GENERALIZEDTIME) ||
			    !vg_cbs_get_optional_asn1(&ent, &exts, &has_exts, DER_SEQUENCE) ||
			    vg_cbs_len(&ent))
				FAIL("der", "entry %" PRIu64 " does not parse", count + 1);
			if (count && (vg_cbs_len(&serial) < vg_cbs_len(&prev) ||
			              (vg_cbs_len(&serial) == vg_cbs_len(&prev) &&
			               memcmp(vg_cbs_data(&serial), vg_cbs_data(&prev),
			                      vg_cbs_len(&prev)) <= 0)))
				FAIL("entries", "entry %" PRIu64 ": serials not strictly ascending",
				     count + 1);
			prev = serial;
			while (has_exts && vg_cbs_len(&exts)) {
				struct vg_cbs ext, eoid, val, en;
				bool crit;
				if (!vg_cbs_get_asn1(&exts, &ext, DER_SEQUENCE) ||
				    !vg_cbs_get_asn1(&ext, &eoid, DER_OID) ||
				    !vg_cbs_get_optional_asn1(&ext, NULL, &crit, DER_BOOLEAN) ||
				    !vg_cbs_get_asn1(&ext, &val, DER_OCTET_STRING))
					FAIL("der", "entry %" PRIu64 ": extension does not parse",
					     count + 1);
				if (!cbs_is(&eoid, oid_reason, sizeof(oid_reason)))
					continue;
				uint8_t code;
				if (!vg_cbs_get_asn1(&val, &en, DER_ENUMERATED) ||
				    vg_cbs_len(&en) != 1 || !vg_cbs_get_u8(&en, &code))
					FAIL("der", "entry %" PRIu64 ": reasonCode does not parse",
					     count + 1);
				if (code == VG_REASON_CERTIFICATE_HOLD)
					FAIL("reason", "entry %" PRIu64 ": certificateHold",
					     count + 1);
				if (code == VG_REASON_UNSPECIFIED)
					FAIL("reason", "entry %" PRIu64 ": reasonCode unspecified",
					     count + 1);
				/* RFC 5280 §5.3.1: removeFromCRL only in a delta CRL. */
				if (code == VG_REASON_REMOVE_FROM_CRL && !x->delta)
					FAIL("reason",
					     "entry %" PRIu64 ": removeFromCRL outside a delta CRL",
					     count + 1);
			}
			count++;
			size_t at = (size_t)(vg_cbs_data(&rev) - map);
			if (at - trimmed >= LINT_TRIM) {
				size_t upto = at & ~(size_t)(sysconf(_SC_PAGESIZE) - 1);
				madvise(map + trimmed, upto - trimmed, MADV_DONTNEED);
				trimmed = upto;
			}
		}
	}
	if (count != x->entries)
		FAIL("entries", "%" PRIu64 " entries where the store has %" PRIu64, count,
		     x->entries);

	/* crlExtensions */
	bool has_ext, aki = false, number = false, idp = false, indicator = false;
	bool num_big = false, base_big = false;
	uint64_t num = 0, base = 0;
	struct vg_cbs ex0, exts;
	if (!vg_cbs_get_optional_asn1(&tbs, &ex0, &has_ext, DER_CTX_CONS(0)) || vg_cbs_len(&tbs))
		FAIL("der", "trailing data in tbsCertList");
	if (has_ext && (!vg_cbs_get_asn1(&ex0, &exts, DER_SEQUENCE) || vg_cbs_len(&ex0)))
		FAIL("der", "crlExtensions does not parse");
	while (has_ext && vg_cbs_len(&exts)) {
		struct vg_cbs ext, eoid, val, crit_v;
		bool crit = false, has_crit;
		if (!vg_cbs_get_asn1(&exts, &ext, DER_SEQUENCE) ||
		    !vg_cbs_get_asn1(&ext, &eoid, DER_OID) ||
		    !vg_cbs_get_optional_asn1(&ext, &crit_v, &has_crit, DER_BOOLEAN) ||
		    !vg_cbs_get_asn1(&ext, &val, DER_OCTET_STRING) || vg_cbs_len(&ext))
			FAIL("der", "extension does not parse");
		if (has_crit) {
			uint8_t b;
			crit = vg_cbs_len(&crit_v) == 1 && vg_cbs_get_u8(&crit_v, &b) && b == 0xff;
		}
		if (cbs_is(&eoid, oid_akid, sizeof(oid_akid))) {
			aki = true;
		} else if (cbs_is(&eoid, oid_crl_number, sizeof(oid_crl_number))) {
			number = true;
			if (crit)
				FAIL("crl_number", "cRLNumber is critical");
			const char *why = get_number(val, &num, &num_big);
			if (why)
				FAIL("crl_number", "cRLNumber %s", why);
			if (!num_big && num <= x->previous)
				FAIL("crl_number",
				     "cRLNumber %" PRIu64 " does not increase over %" PRIu64, num,
				     x->previous);
		} else if (cbs_is(&eoid, oid_delta_indicator, sizeof(oid_delta_indicator))) {
			/* RFC 5280 §5.2.4: critical, naming the base CRL's number. */
			indicator = true;
			if (!x->delta)
				FAIL("delta_indicator", "a full CRL carries a deltaCRLIndicator");
			if (!crit)
				FAIL("delta_indicator", "deltaCRLIndicator is not critical");
			const char *why = get_number(val, &base, &base_big);
			if (why)
				FAIL("delta_indicator", "BaseCRLNumber %s", why);
			if (base_big || base != x->base)
				FAIL("delta_indicator",
				     "BaseCRLNumber is not %" PRIu64 ", the base full CRL's number",
				     x->base);
		} else if (cbs_is(&eoid, oid_freshest, sizeof(oid_freshest))) {
			/* RFC 5280 §5.2.6: MUST NOT appear in a delta CRL. */
			if (x->delta)
				FAIL("freshest_crl", "a delta CRL carries a freshestCRL");
		} else if (cbs_is(&eoid, oid_idp, sizeof(oid_idp))) {
			idp = true;
			if (!x->idp)
				FAIL("idp", "a %s CRL carries an IssuingDistributionPoint",
				     x->delta ? "delta" : "full");
			if (!crit)
				FAIL("idp", "IssuingDistributionPoint is not critical");
			const char *why = check_idp(val, x->idp);
			if (why)
				FAIL("idp", "%s", why);
		}
	}
	if (!aki)
		FAIL("aki", "no authorityKeyIdentifier");
	if (!number)
		FAIL("crl_number", "no cRLNumber");
	if (x->idp && !idp)
		FAIL("idp", "a shard without an IssuingDistributionPoint");
	if (x->delta && !indicator)
		FAIL("delta_indicator", "a delta CRL without a deltaCRLIndicator");
	/* RFC 5280 §5.2.4: a delta's number is above its base's. */
	if (x->delta && !num_big && num <= base)
		FAIL("crl_number",
		     "cRLNumber %" PRIu64 " of the delta CRL is not above its base's, %" PRIu64,
		     num, base);
out:
	munmap(map, (size_t)len);
	return rc;
}

/* ---- The store against the profile ---------------------------------------- */

/* lint_check_holds refuses a tls-br CA with certificates on hold in the store:
 * the BRs (7.2.2.1) forbid certificateHold in a public TLS CA's CRL, so
 * every CRL it would make fails the lint. */
int lint_check_holds(struct crlgen *g, char *err, size_t errlen)
{
	int rc = crlgen_snapshot(g);
	for (int i = 0; rc == 0 && i < g->n; i++) {
		const struct vg_conf_ca *c = g->cas[i].conf;
		struct vg_ca_state cs;
		if (c->profile != VG_CRL_PROFILE_TLS_BR)
			continue;
		if ((rc = vg_store_ca_get(g->txn, c->name, &cs)) < 0)
			break;
		if (cs.n_hold) {
			snprintf(err, errlen,
			         "[ca %s] profile = tls-br but the store holds %" PRIu64
			         " certificates on hold (certificateHold is not allowed in "
			         "public TLS CRLs): revoke them for good, or set profile = private",
			         c->name, cs.n_hold);
			return -EINVAL;
		}
	}
	if (rc < 0)
		snprintf(err, errlen, "store %s: %s", g->conf.store_path, strerror(-rc));
	return rc;
}

/* ---- The count of entries the lint expects ------------------------------- */

static int expect_begin(void *arg)
{
	struct lint_count *x = arg;
	x->n = 0;
	return x->src.begin(x->src.arg);
}

static int expect_next(void *arg, struct crl_entry *e)
{
	struct lint_count *x = arg;
	for (;;) {
		int rc = x->src.next(x->src.arg, e);
		if (rc <= 0)
			return rc;
		x->n++;
		if (lint_inject_skip(e))
			continue;
		lint_inject_entry(e);
		return 1;
	}
}

struct crl_source lint_count_source(struct lint_count *x)
{
	return (struct crl_source){expect_begin, expect_next, x};
}

/* ---- Fault injection for the tests ---------------------------------------- */

static const char *inject(void)
{
	static const char *v;
	static bool read;
	if (!read) {
		v = getenv("VIGIL_CRLGEN_LINT_INJECT");
		read = true;
	}
	return v;
}

static bool armed, armed_delta;

void lint_inject_arm(bool on, bool delta)
{
	armed = on;
	armed_delta = delta;
}

/* injecting tells whether the fault for |rule| is asked for the CRL being
 * built: RULE for a full CRL or a shard, delta:RULE for a delta CRL. */
static bool injecting(const char *rule)
{
	const char *v = armed ? inject() : NULL;
	if (!v)
		return false;
	bool for_delta = !strncmp(v, "delta:", 6);
	if (for_delta != armed_delta)
		return false;
	return !strcmp(v + (for_delta ? 6 : 0), rule);
}

void lint_inject_params(struct crl_params *p)
{
	static const uint8_t other_issuer[] = {0x30, 0x0f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55,
	                                       0x04, 0x03, 0x0c, 0x04, 'e',  'v',  'i',  'l'};
	if (!armed || !inject())
		return;
	if (injecting("delta_indicator")) {
		/* A full CRL that says it is a delta; a delta naming another base. */
		if (p->delta)
			p->base_number--;
		else
			p->delta = true;
	} else if (injecting("issuer")) {
		p->issuer = other_issuer;
		p->issuer_len = sizeof(other_issuer);
	} else if (injecting("validity")) {
		p->next_update = p->this_update + VG_VALIDITY_MAX + 1;
	} else if (injecting("aki")) {
		p->akid_len = 0;
	} else if (injecting("crl_number")) {
		p->number = 1;
	} else if (injecting("idp")) {
		if (p->idp)
			p->idp = "http://wrong.example/shard.crl";
		else
			p->idp = "http://wrong.example/full.crl";
	}
}

int lint_inject_skip(const struct crl_entry *e)
{
	if (!injecting("entries"))
		return 0;
	/* The lowest serial of every CRL: the first one each walk yields. */
	static struct vg_serial skip;
	if (skip.len == 0)
		skip = e->serial;
	return skip.len == e->serial.len && !memcmp(skip.b, e->serial.b, skip.len);
}

void lint_inject_entry(struct crl_entry *e)
{
	if (injecting("reason"))
		e->reason = VG_REASON_CERTIFICATE_HOLD;
}
