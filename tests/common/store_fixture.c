/* SPDX-License-Identifier: Apache-2.0 */
/* The store fixture of the store's unit tests (store_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/common/store_fixture.h"

static int open_in(void **state, bool nested)
{
	struct store_fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigil-unit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->store, sizeof(f->store), nested ? "%s/store" : "%s", f->dir);
	if (vg_store_open(&f->st, f->store, VG_STORE_CREATE) != 0)
		return -1;
	*state = f;
	return 0;
}

int store_fx_setup(void **state)
{
	return open_in(state, false);
}

int store_fx_setup_nested(void **state)
{
	return open_in(state, true);
}

int store_fx_teardown(void **state)
{
	struct store_fx *f = *state;
	vg_store_close(f->st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

struct vg_serial store_fx_serial(const char *hex)
{
	struct vg_serial s;
	assert_int_equal(vg_serial_parse(hex, strlen(hex), &s), 0);
	return s;
}

const struct vg_audit store_fx_who = {"tester", "unit test"};

struct vg_add_item store_fx_good_item(const char *hex, int64_t nb)
{
	struct vg_add_item it;
	memset(&it, 0, sizeof(it));
	it.serial = store_fx_serial(hex);
	it.cert.status = VG_STATUS_GOOD;
	it.cert.reason = VG_REASON_NONE;
	if (nb) {
		it.cert.flags = VG_CERT_HAS_NOT_BEFORE;
		it.cert.not_before = nb;
	}
	return it;
}

int store_fx_status_of(struct vg_store *st, const char *ca, const char *hex, struct vg_cert *out)
{
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	struct vg_serial s = store_fx_serial(hex);
	int rc = vg_store_get(t, vg_ca_id(ca), &s, out);
	vg_txn_end(t);
	return rc;
}
