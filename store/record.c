/* SPDX-License-Identifier: Apache-2.0 */
#include "store/record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KNOWN_FLAGS                                                                                \
	(VG_CERT_HAS_INVALIDITY | VG_CERT_HAS_NOT_BEFORE | VG_CERT_HAS_NOT_AFTER |                 \
	 VG_CERT_NOT_ISSUED | VG_CERT_RELEASED | VG_CERT_HAS_SHARD)

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
	if (c->flags & VG_CERT_HAS_SHARD)
		buf[o++] = (uint8_t)(c->crl_shard - 1);
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
	want += (c.flags & VG_CERT_HAS_SHARD) ? 1 : 0;
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
	if (c.flags & VG_CERT_HAS_NOT_AFTER) {
		c.not_after = (int64_t)get_u64(buf + o);
		o += 8;
	}
	if (c.flags & VG_CERT_HAS_SHARD)
		c.crl_shard = (uint16_t)(buf[o] + 1);
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

#define CA_FROZEN 0x01
#define CA_PRUNED 0x02 /* expired certificates were removed */

void rec_ca_encode(const struct vg_ca_state *s, uint8_t *b)
{
	memset(b, 0, CA_REC_LEN);
	b[0] = 1;
	b[1] = (uint8_t)((s->frozen ? CA_FROZEN : 0) | (s->pruned ? CA_PRUNED : 0));
	put_u32(b + 4, s->id);
	put_u64(b + 8, (uint64_t)s->frozen_at);
	put_u64(b + 16, s->n_certs);
	put_u64(b + 24, s->n_revoked);
	put_u64(b + 32, s->n_hold);
}

int rec_ca_decode(const uint8_t *b, size_t len, struct vg_ca_state *s)
{
	if (len != CA_REC_LEN || b[0] != 1)
		return -EBADMSG;
	s->frozen = b[1] & CA_FROZEN;
	s->pruned = b[1] & CA_PRUNED;
	s->id = get_u32(b + 4);
	s->frozen_at = (int64_t)get_u64(b + 8);
	s->n_certs = get_u64(b + 16);
	s->n_revoked = get_u64(b + 24);
	s->n_hold = get_u64(b + 32);
	return 0;
}

void rec_log_key(uint64_t counter, uint32_t seq, uint8_t *kb)
{
	put_u64(kb, counter);
	put_u32(kb + 8, seq);
}

size_t rec_log_encode(uint32_t ca_id, uint8_t op, const struct vg_serial *s, uint8_t *vb)
{
	put_u32(vb, ca_id);
	vb[4] = op;
	vb[5] = s ? s->len : 0;
	if (s)
		memcpy(vb + 6, s->b, s->len);
	return 6u + vb[5];
}

int rec_log_decode(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
                   struct vg_change *c)
{
	memset(c, 0, sizeof(*c));
	if (klen != LOG_KEY_LEN || vlen < 6 || vlen != 6u + v[5] || v[5] > VG_SERIAL_MAX)
		return -EBADMSG;
	c->counter = get_u64(k);
	c->ca_id = get_u32(v);
	c->op = v[4];
	c->serial.len = v[5];
	memcpy(c->serial.b, v + 6, v[5]);
	return 0;
}

uint8_t *rec_audit_encode(int64_t time, uint64_t count, const char *user, const char *ca,
                          const char *action, const char *command, size_t *len)
{
	size_t lu = strnlen(user, 63), lc = strnlen(ca, 63), la = strlen(action),
	       lm = strnlen(command, 511);
	size_t vlen = 16 + lu + 1 + lc + 1 + la + 1 + lm;
	uint8_t *vb = malloc(vlen);
	if (!vb)
		return NULL;
	uint8_t *p = vb;
	put_u64(p, (uint64_t)time);
	put_u64(p + 8, count);
	p += 16;
	memcpy(p, user, lu);
	p += lu;
	*p++ = 0;
	memcpy(p, ca, lc);
	p += lc;
	*p++ = 0;
	memcpy(p, action, la);
	p += la;
	*p++ = 0;
	memcpy(p, command, lm);
	*len = vlen;
	return vb;
}

static void copy_field(char *dst, size_t dstlen, const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	size_t c = n < dstlen - 1 ? n : dstlen - 1;
	memcpy(dst, *p, c);
	dst[c] = '\0';
	*p += n + (nul ? 1 : 0);
}

int rec_audit_decode(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
                     struct vg_audit_entry *e)
{
	if (klen != 8 || vlen < 16)
		return -EBADMSG;
	memset(e, 0, sizeof(*e));
	const uint8_t *p = v, *end = p + vlen;
	e->counter = get_u64(k);
	e->time = (int64_t)get_u64(p);
	e->count = get_u64(p + 8);
	p += 16;
	copy_field(e->user, sizeof(e->user), &p, end);
	copy_field(e->ca, sizeof(e->ca), &p, end);
	copy_field(e->action, sizeof(e->action), &p, end);
	copy_field(e->command, sizeof(e->command), &p, end);
	return 0;
}
