/* SPDX-License-Identifier: Apache-2.0 */
#include "store/cli/index.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* apps/ca.c crl_reasons[], in its order; OpenSSL compares them ignoring case. */
static const struct {
	const char *name;
	int reason;
} revinfo_reasons[] = {
        {"unspecified", VG_REASON_UNSPECIFIED},
        {"keyCompromise", VG_REASON_KEY_COMPROMISE},
        {"CACompromise", VG_REASON_CA_COMPROMISE},
        {"affiliationChanged", VG_REASON_AFFILIATION_CHANGED},
        {"superseded", VG_REASON_SUPERSEDED},
        {"cessationOfOperation", VG_REASON_CESSATION_OF_OPERATION},
        {"certificateHold", VG_REASON_CERTIFICATE_HOLD},
        {"removeFromCRL", VG_REASON_REMOVE_FROM_CRL},
        {"holdInstruction", VG_REASON_CERTIFICATE_HOLD},
        {"keyTime", VG_REASON_KEY_COMPROMISE},
        {"CAkeyTime", VG_REASON_CA_COMPROMISE},
};

static int parse_revinfo(char *s, struct vg_cert *c, char *err, size_t errlen)
{
	char *f1 = s, *f2 = NULL, *f3 = NULL;
	char *comma = strchr(f1, ',');
	if (comma) {
		*comma = '\0';
		f2 = comma + 1;
		comma = strchr(f2, ',');
		if (comma) {
			*comma = '\0';
			f3 = comma + 1;
			if (strchr(f3, ',')) {
				snprintf(err, errlen, "revocation field has more than three parts");
				return -EINVAL;
			}
		}
	}
	if (vg_time_parse(f1, &c->revoked_at) < 0) {
		snprintf(err, errlen, "bad revocation time '%s'", f1);
		return -EINVAL;
	}
	c->status = VG_STATUS_REVOKED;
	c->reason = VG_REASON_NONE;
	if (!f2)
		return 0;
	size_t i;
	for (i = 0; i < sizeof(revinfo_reasons) / sizeof(revinfo_reasons[0]); i++)
		if (strcasecmp(f2, revinfo_reasons[i].name) == 0)
			break;
	if (i == sizeof(revinfo_reasons) / sizeof(revinfo_reasons[0])) {
		snprintf(err, errlen, "unknown revocation reason '%s'", f2);
		return -EINVAL;
	}
	const char *name = revinfo_reasons[i].name;
	bool needs_arg = !strcasecmp(name, "holdInstruction") || !strcasecmp(name, "keyTime") ||
	                 !strcasecmp(name, "CAkeyTime");
	if (needs_arg != (f3 != NULL)) {
		snprintf(err, errlen,
		         needs_arg ? "'%s' needs a third part" : "'%s' takes no third part", name);
		return -EINVAL;
	}
	c->reason = (int8_t)revinfo_reasons[i].reason;
	if (!strcasecmp(name, "keyTime") || !strcasecmp(name, "CAkeyTime")) {
		if (vg_time_parse(f3, &c->invalidity_date) < 0) {
			snprintf(err, errlen, "bad compromise time '%s'", f3);
			return -EINVAL;
		}
		c->flags |= VG_CERT_HAS_INVALIDITY;
	} else if (!strcasecmp(name, "holdInstruction")) {
		/* The OID (e.g. holdInstructionReject) is not kept: RFC 5280
		 * deprecates the Hold Instruction Code extension. */
		if (!*f3) {
			snprintf(err, errlen, "empty hold instruction");
			return -EINVAL;
		}
	}
	return 0;
}

int index_parse_line(char *line, size_t len, struct vg_add_item *out, const char **file, char *err,
                     size_t errlen)
{
	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	line[len] = '\0';
	if (len == 0)
		return 1;
	char *f[6];
	size_t nf = 0;
	char *p = line;
	for (;;) {
		char *tab = memchr(p, '\t', (size_t)(line + len - p));
		if (nf == 6) {
			snprintf(err, errlen, "more than 6 TAB-separated fields");
			return -EINVAL;
		}
		f[nf++] = p;
		if (!tab)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	if (nf != 6) {
		snprintf(err, errlen, "%zu TAB-separated fields, expected 6", nf);
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	struct vg_cert *c = &out->cert;
	c->reason = VG_REASON_NONE;
	if (strlen(f[0]) != 1 || !strchr("VRE", f[0][0])) {
		snprintf(err, errlen, "status '%s' is not V, R or E", f[0]);
		return -EINVAL;
	}
	if (vg_time_parse(f[1], &c->not_after) < 0) {
		snprintf(err, errlen, "bad expiry time '%s'", f[1]);
		return -EINVAL;
	}
	c->flags |= VG_CERT_HAS_NOT_AFTER;
	if (f[0][0] == 'R') {
		if (!*f[2]) {
			snprintf(err, errlen, "status R without a revocation time");
			return -EINVAL;
		}
		if (parse_revinfo(f[2], c, err, errlen) < 0)
			return -EINVAL;
		if (c->reason == VG_REASON_REMOVE_FROM_CRL) {
			/* openssl ca's record of a lifted hold: the certificate is
			 * valid, and a hold the store holds for it is lifted. */
			c->flags |= VG_CERT_LIFT_HOLD;
			c->status = VG_STATUS_GOOD;
			c->reason = VG_REASON_NONE;
			c->revoked_at = 0;
			c->flags &= (uint8_t)~VG_CERT_HAS_INVALIDITY;
		}
	} else if (*f[2]) {
		snprintf(err, errlen, "status %c with a revocation field '%s'", f[0][0], f[2]);
		return -EINVAL;
	}
	if (vg_serial_parse(f[3], strlen(f[3]), &out->serial) < 0) {
		snprintf(err, errlen, "bad serial '%s'", f[3]);
		return -EINVAL;
	}
	if (file)
		*file = f[4];
	return 0;
}
