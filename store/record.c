/* SPDX-License-Identifier: Apache-2.0 */
#include "store/record.h"

#include <errno.h>
#include <string.h>

#define KNOWN_FLAGS                                                                               \
	(VG_CERT_HAS_INVALIDITY | VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_NOT_AFTER |                \
	 VG_CERT_NOT_ISSUED | VG_CERT_RELEASED)

size_t rec_encode(const struct vg_cert *c, uint8_t *buf)
{
	size_t o = 0;
	buf[o++] = REC_VERSION;
	buf[o++] = c->status;
	buf[o++] = c->reason < 0 ? 0xff : (uint8_t)c->reason;
	buf[o++] = c->flags & KNOWN_FLAGS;
	if (c->status == VG_STATUS_REVOKED) {
		put_u64(buf + o, (uint64_t)c->revoked_at);
		o += 8;
	}
	if (c->flags & VG_CERT_HAS_INVALIDITY) {
		put_u64(buf + o, (uint64_t)c->invalidity_date);
		o += 8;
	}
	if (c->flags & VG_CERT_HAS_NOT_BEFORE) {
		put_u64(buf + o, (uint64_t)c->not_before);
		o += 8;
	}
	if (c->flags & VG_CERT_HAS_NOT_AFTER) {
		put_u64(buf + o, (uint64_t)c->not_after);
		o += 8;
	}
	return o;
}

int rec_decode(const uint8_t *buf, size_t len, struct vg_cert *out)
{
	if (len < 4 || buf[0] != REC_VERSION || buf[1] > VG_STATUS_REVOKED ||
	    (buf[3] & ~KNOWN_FLAGS))
		return -EBADMSG;
	struct vg_cert c;
	memset(&c, 0, sizeof(c));
	c.status = buf[1];
	c.reason = buf[2] == 0xff ? VG_REASON_NONE : (int8_t)buf[2];
	if (buf[2] != 0xff && (buf[2] > 10 || buf[2] == 7))
		return -EBADMSG;
	c.flags = buf[3];
	size_t want = 4;
	want += c.status == VG_STATUS_REVOKED ? 8 : 0;
	want += (c.flags & VG_CERT_HAS_INVALIDITY) ? 8 : 0;
	want += (c.flags & VG_CERT_HAS_NOT_BEFORE) ? 8 : 0;
	want += (c.flags & VG_CERT_HAS_NOT_AFTER) ? 8 : 0;
	if (len != want)
		return -EBADMSG;
	size_t o = 4;
	if (c.status == VG_STATUS_REVOKED) {
		c.revoked_at = (int64_t)get_u64(buf + o);
		o += 8;
	}
	if (c.flags & VG_CERT_HAS_INVALIDITY) {
		c.invalidity_date = (int64_t)get_u64(buf + o);
		o += 8;
	}
	if (c.flags & VG_CERT_HAS_NOT_BEFORE) {
		c.not_before = (int64_t)get_u64(buf + o);
		o += 8;
	}
	if (c.flags & VG_CERT_HAS_NOT_AFTER)
		c.not_after = (int64_t)get_u64(buf + o);
	*out = c;
	return 0;
}

size_t cert_key(uint32_t ca_id, const struct vg_serial *s, uint8_t *buf)
{
	put_u32(buf, ca_id);
	buf[4] = s->len;
	memcpy(buf + 5, s->b, s->len);
	return 5 + (size_t)s->len;
}

int cert_key_decode(const uint8_t *buf, size_t len, uint32_t *ca_id, struct vg_serial *s)
{
	if (len < 6 || len > CERT_KEY_MAX || buf[4] != len - 5 || (buf[5] == 0 && len > 6))
		return -EBADMSG;
	*ca_id = get_u32(buf);
	memset(s, 0, sizeof(*s));
	s->len = buf[4];
	memcpy(s->b, buf + 5, s->len);
	return 0;
}
