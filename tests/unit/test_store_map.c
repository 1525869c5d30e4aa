/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the store's LMDB map and point index on a mkdtemp() directory
 * (the store fixture of tests/common/): map growth under a reader and under
 * batched window revocations, the point index against the B-tree (bulk
 * writes, a stale or absent index, a writer in another process between
 * commits), trimming a reader's map, a data file cut short, and the error
 * boundary of store/internal.h. The API's semantics are in test_store.c.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/internal.h"
#include "store/store.h"
#include "tests/common/store_fixture.h"

/* spread_items makes |n| good certificates whose serials spread over the
 * key space, enough to grow the map. */
static struct vg_add_item *spread_items(size_t n)
{
	struct vg_add_item *items = calloc(n, sizeof(*items));
	assert_non_null(items);
	for (size_t i = 0; i < n; i++) {
		char hex[32];
		snprintf(hex, sizeof(hex), "%zx%08zx", i * 7919 + 3, i);
		items[i] = store_fx_good_item(hex, 0);
	}
	return items;
}

static void test_map_growth_under_reader(void **state)
{
	struct store_fx *f = *state;
	vg_store_close(f->st);
	f->st = NULL;
	char dir[80];
	snprintf(dir, sizeof(dir), "%s/small", f->dir);
	/* A tiny initial map forces several doublings. */
	setenv("VIGIL_STORE_INITIAL_MAP", "65536", 1);
	assert_int_equal(vg_store_open(&f->st, dir, VG_STORE_CREATE), 0);
	unsetenv("VIGIL_STORE_INITIAL_MAP");
	struct vg_add_item first = store_fx_good_item("01", 0);
	assert_int_equal(vg_store_add(f->st, "ca1", &first, 1, &store_fx_who, NULL, NULL, NULL), 0);

	struct vg_store *ro;
	assert_int_equal(vg_store_open(&ro, dir, VG_STORE_RDONLY), 0);
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(ro, &t), 0);
	assert_false(vg_txn_behind(t));
	assert_false(vg_txn_behind(NULL));

	size_t n = 20000;
	struct vg_add_item *items = spread_items(n);
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, NULL, NULL), 0);

	/* The reader's old snapshot still reads and knows it is behind; after
	 * renew it sees it all, and is not. */
	struct vg_cert c;
	struct vg_serial s1 = store_fx_serial("01");
	assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &s1, &c), 0);
	assert_true(vg_txn_behind(t));
	assert_int_equal(vg_txn_renew(t), 0);
	assert_false(vg_txn_behind(t));
	struct vg_ca_state cs;
	assert_int_equal(vg_store_ca_get(t, "ca1", &cs), 0);
	assert_int_equal(cs.n_certs, n + 1);
	assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &items[n - 1].serial, &c), 0);
	vg_txn_end(t);
	vg_store_close(ro);
	free(items);
}

static void test_window_batches_with_map_growth(void **state)
{
	struct store_fx *f = *state;
	vg_store_close(f->st);
	f->st = NULL;
	char dir[80];
	snprintf(dir, sizeof(dir), "%s/win", f->dir);
	/* Revocations spanning two batches, each of which fills the map and is
	 * run again after it grows: nothing may be skipped or done twice. */
	assert_int_equal(vg_store_open(&f->st, dir, VG_STORE_CREATE), 0);
	size_t n = VG_TXN_MAX_CHANGES + 7000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[32];
		snprintf(hex, sizeof(hex), "%zx%06zx", (i * 2654435761u) % 1000003 + 1, i);
		items[i] = store_fx_good_item(hex, 1000 + (int64_t)i);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, NULL, NULL), 0);
	vg_store_close(f->st);
	setenv("VIGIL_STORE_INITIAL_MAP", "65536", 1);
	/* Reopen: the map starts at the file size, so the revocations must grow it. */
	assert_int_equal(vg_store_open(&f->st, dir, 0), 0);
	unsetenv("VIGIL_STORE_INITIAL_MAP");
	struct vg_revocation rev = {.revoked_at = 5, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_write_result r;
	assert_int_equal(vg_store_revoke_window(f->st, "ca1",
	                                        &(struct vg_window){1000, INT64_MAX, NULL, 0}, &rev,
	                                        &store_fx_who, &r, NULL, NULL),
	                 0);
	assert_int_equal(r.revoked, n);
	assert_int_equal(r.skipped, 0);
	assert_true(r.commits >= 2);
	struct vg_txn *t;
	struct vg_ca_state cs;
	assert_int_equal(vg_txn_begin(f->st, &t), 0);
	assert_int_equal(vg_store_ca_get(t, "ca1", &cs), 0);
	assert_int_equal(cs.n_revoked, n);
	struct vg_cert c;
	for (size_t i = 0; i < n; i += 997) {
		assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &items[i].serial, &c), 0);
		assert_int_equal(c.status, VG_STATUS_REVOKED);
	}
	vg_txn_end(t);
	free(items);
}

/* every_cert_agrees checks each certificate of |ca| that the B-tree lists
 * (vg_iter) against vg_store_get, which reads the point index when it is valid,
 * and that |gone| (NULL or a serial) is absent. Returns how many it saw. */
static size_t every_cert_agrees(struct vg_store *st, const char *ca, const char *gone)
{
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(st, &t), 0);
	struct vg_iter *it;
	assert_int_equal(vg_iter_open(t, vg_ca_id(ca), 0, &it), 0);
	struct vg_serial s;
	struct vg_cert a, b;
	size_t n = 0;
	while (vg_iter_next(it, &s, &a) == 1) {
		assert_int_equal(vg_store_get(t, vg_ca_id(ca), &s, &b), 0);
		assert_int_equal(a.status, b.status);
		assert_int_equal(a.reason, b.reason);
		assert_int_equal(a.revoked_at, b.revoked_at);
		assert_int_equal(a.flags, b.flags);
		assert_int_equal(a.not_before, b.not_before);
		n++;
	}
	vg_iter_close(it);
	if (gone) {
		struct vg_serial g = store_fx_serial(gone);
		assert_int_equal(vg_store_get(t, vg_ca_id(ca), &g, &b), -ENOENT);
	}
	vg_txn_end(t);
	return n;
}

/* raw_meta sets (|v| >= 0) or deletes (|v| < 0) a meta key of a closed store,
 * and with |drop_points| removes the point index, as a version-1 store has. */
static void raw_meta(const char *dir, const char *k, int64_t v, bool drop_points)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint8_t b[4] = {0, 0, 0, (uint8_t)v};
	MDB_val key = {strlen(k), (void *)k}, val = {4, b};
	if (v >= 0)
		assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &key, NULL), 0);
	if (drop_points) {
		assert_int_equal(mdb_dbi_open(txn, "points", 0, &dbi), 0);
		assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static uint32_t raw_meta_get(const char *dir, const char *k)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	MDB_val key = {strlen(k), (void *)k}, val;
	uint32_t v = 0xffffffffu;
	if (mdb_get(txn, dbi, &key, &val) == 0 && val.mv_size == 4) {
		const uint8_t *p = val.mv_data;
		v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return v;
}

/* Many certificates, in one commit and in several (the bulk path marks the
 * point index stale and rebuilds it), then revocations, releases and the
 * removal of a never-issued serial: the point index agrees with the B-tree
 * after each step. */
static void test_points_agree(void **state)
{
	struct store_fx *f = *state;
	size_t n = VG_TXN_MAX_CHANGES + 5000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[40];
		snprintf(hex, sizeof(hex), "%zx%016llx", i % 13 + 1,
		         (unsigned long long)i * 0x9e3779b97f4a7c15ull);
		items[i] = store_fx_good_item(hex, (int64_t)i);
	}
	/* A new store's index has one segment; 3,000 certificates in one
	 * commit need four (at most 1,024 each), 55,000 in several need 64. */
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 0);
	assert_int_equal(vg_store_add(f->st, "ca1", items, 3000, &store_fx_who, NULL, NULL, NULL),
	                 0);
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), 3000);
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 6);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n);

	struct vg_revocation rev = {.revoked_at = 7, .reason = VG_REASON_KEY_COMPROMISE};
	struct vg_serial *some = calloc(n, sizeof(*some));
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3)
		some[k++] = items[i].serial;
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", some, k, &rev, &store_fx_who, NULL, NULL, NULL), 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n);

	struct vg_revocation hold = {.revoked_at = 8, .reason = VG_REASON_CERTIFICATE_HOLD};
	struct vg_serial rogue = store_fx_serial("7e57");
	assert_int_equal(
	        vg_store_revoke(f->st, "ca1", &rogue, 1, &hold, &store_fx_who, NULL, NULL, NULL),
	        0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n + 1);
	assert_int_equal(vg_store_release(f->st, "ca1", &rogue, &store_fx_who), 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", "7e57"), n);
	free(some);
	free(items);
}

/* A store whose point index is stale (a large write stopped before it
 * rebuilt it) or absent (schema 1): readers answer from the B-tree, and the
 * next read-write open rebuilds the index. */
static void test_points_stale_and_upgrade(void **state)
{
	struct store_fx *f = *state;
	static struct vg_add_item items[3000];
	for (int i = 0; i < 3000; i++) {
		char hex[16];
		snprintf(hex, sizeof(hex), "%x", 0x10000 + i * 37);
		items[i] = store_fx_good_item(hex, i);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, 3000, &store_fx_who, NULL, NULL, NULL),
	                 0);
	vg_store_close(f->st);
	f->st = NULL;

	/* Opening with VG_STORE_CREATE again (vigil-store init is idempotent)
	 * leaves the index as it is. */
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);
	assert_int_equal(vg_store_open(&f->st, f->dir, VG_STORE_CREATE), 0);
	assert_int_equal(every_cert_agrees(f->st, "ca1", "2"), 3000);
	vg_store_close(f->st);
	f->st = NULL;
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);

	for (int round = 0; round < 2; round++) {
		if (round == 0) {
			raw_meta(f->dir, "points", 0, false);
		} else {
			raw_meta(f->dir, "points", -1, true);
			raw_meta(f->dir, "schema", 1, false);
		}
		struct vg_store *ro;
		assert_int_equal(vg_store_open(&ro, f->dir, VG_STORE_RDONLY), 0);
		assert_int_equal(every_cert_agrees(ro, "ca1", "2"), 3000);
		assert_int_equal(vg_store_open(&f->st, f->dir, 0), 0);
		assert_int_equal(raw_meta_get(f->dir, "points"), 1);
		assert_int_equal(raw_meta_get(f->dir, "points_lg"), 2);
		assert_int_equal(raw_meta_get(f->dir, "schema"), 2);
		/* The reader's next snapshot uses the rebuilt index. */
		assert_int_equal(every_cert_agrees(ro, "ca1", "2"), 3000);
		vg_store_close(ro);
		vg_store_close(f->st);
		f->st = NULL;
	}
	assert_int_equal(vg_store_open(&f->st, f->dir, 0), 0);
}

struct interleave {
	const char *dir;
	const struct vg_serial *victim;
	int calls;
};

/* After the first commit of a bulk add, another process revokes a serial
 * that commit added: the add must not merge its own (older) view of that
 * serial into the point index at its end, but rebuild the index from certs. */
static void interleave_progress(uint64_t done, uint64_t total, void *arg)
{
	(void)done;
	(void)total;
	struct interleave *in = arg;
	if (in->calls++ != 0)
		return;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vg_store *st;
		struct vg_revocation rev = {.revoked_at = 9, .reason = VG_REASON_SUPERSEDED};
		int rc = vg_store_open(&st, in->dir, 0);
		if (rc == 0)
			rc = vg_store_revoke(st, "ca1", in->victim, 1, &rev, &store_fx_who, NULL,
			                     NULL, NULL);
		vg_store_close(st);
		_exit(rc == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_points_bulk_with_interleaved_writer(void **state)
{
	struct store_fx *f = *state;
	size_t n = VG_TXN_MAX_CHANGES + 10;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[40];
		snprintf(hex, sizeof(hex), "5%015zx", i * 7 + 1);
		items[i] = store_fx_good_item(hex, (int64_t)i);
	}
	/* Items are applied in serial order: i = 0 is in the first commit. */
	struct vg_serial victim = items[0].serial;
	struct interleave in = {f->dir, &victim, 0};
	assert_int_equal(
	        vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, interleave_progress, &in),
	        0);
	assert_int_equal(raw_meta_get(f->dir, "points"), 1);
	assert_int_equal(every_cert_agrees(f->st, "ca1", NULL), n);
	struct vg_cert c;
	char hex[2 * VG_SERIAL_MAX + 1];
	vg_serial_format(&victim, hex, sizeof(hex));
	assert_int_equal(store_fx_status_of(f->st, "ca1", hex, &c), 0);
	assert_int_equal(c.status, VG_STATUS_REVOKED);
	assert_int_equal(c.reason, VG_REASON_SUPERSEDED);
	free(items);
}

/* map_rss_kb: the resident size of this process's mapping of |dir|/data.mdb. */
static long map_rss_kb(const char *dir)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	char line[512], want[128];
	snprintf(want, sizeof(want), "%s/data.mdb", dir);
	long rss = -1;
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strstr(line, " r") && strchr(line, '/'))
			in = strstr(line, want) != NULL;
		else if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
			break;
	}
	fclose(f);
	return rss;
}

/* vg_txn_trim drops the read-only map's pages from this process: a walk
 * over every certificate maps them, a trim unmaps them, and reading goes
 * on as before. */
static void test_trim(void **state)
{
	struct store_fx *f = *state;
	size_t n = 20000;
	struct vg_add_item *items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		char hex[40];
		snprintf(hex, sizeof(hex), "7%015zx", i * 104729 + 3);
		items[i] = store_fx_good_item(hex, (int64_t)i);
	}
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, NULL, NULL), 0);
	struct vg_store *ro;
	assert_int_equal(vg_store_open(&ro, f->dir, VG_STORE_RDONLY), 0);
	assert_int_equal(every_cert_agrees(ro, "ca1", NULL), n);
	struct vg_txn *t;
	assert_int_equal(vg_txn_begin(ro, &t), 0);
	long before = map_rss_kb(f->dir);
	assert_true(before > 256);
	vg_txn_trim(t);
	long after = map_rss_kb(f->dir);
	assert_true(after >= 0 && after < before / 4);
	struct vg_cert c;
	assert_int_equal(vg_store_get(t, vg_ca_id("ca1"), &items[n / 2].serial, &c), 0);
	vg_txn_end(t);
	vg_store_close(ro);
	free(items);
}

/* ---- A data file cut short (issue 11) ---------------------------------- */

/* lmdb_used reads, through LMDB, the bytes the newest commit uses
 * ((last page + 1) * page size), and the first page of the free pages that
 * end the file (last page + 1 when the last page is in use). */
static void lmdb_used(const char *dir, uint64_t *used, size_t *free_tail, size_t *psize)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_envinfo ei;
	MDB_stat ms;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_env_info(env, &ei), 0);
	assert_int_equal(mdb_env_stat(env, &ms), 0);
	*psize = ms.ms_psize;
	*used = ((uint64_t)ei.me_last_pgno + 1) * ms.ms_psize;
	/* The free list, as mdb_stat -ff reads it: FREE_DBI is 0. */
	size_t last = ei.me_last_pgno, n = last + 1;
	bool *isfree = calloc(n, sizeof(*isfree));
	assert_non_null(isfree);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	MDB_cursor *cur;
	assert_int_equal(mdb_cursor_open(txn, 0, &cur), 0);
	MDB_val k, v;
	while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		const size_t *idl = v.mv_data;
		for (size_t i = 1; i <= idl[0]; i++)
			if (idl[i] <= last)
				isfree[idl[i]] = true;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	size_t t = n;
	while (t > 2 && isfree[t - 1])
		t--;
	*free_tail = t;
	free(isfree);
}

/* open_in_child opens the store in a child process and reads every
 * certificate; returns the open's result, or fails the test when the child
 * dies of a signal (SIGBUS: a page missing from the file was read). */
static int open_in_child(const char *dir, unsigned flags, char *msg, size_t msglen)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka's handlers would report the signal as a failure of the
		 * child's own: die of it, for the parent to see. */
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		close(pfd[0]);
		struct vg_store *st;
		int rc = vg_store_open(&st, dir, flags);
		if (rc == 0) {
			struct vg_txn *t;
			struct vg_iter *it;
			struct vg_serial s;
			struct vg_cert c;
			if (vg_txn_begin(st, &t) == 0 &&
			    vg_iter_open(t, vg_ca_id("ca1"), 0, &it) == 0) {
				while (vg_iter_next(it, &s, &c) == 1)
					;
				vg_iter_close(it);
				vg_txn_end(t);
			}
			vg_store_close(st);
		}
		const char *d = vg_store_damage();
		if (write(pfd[1], d, strlen(d)) < 0)
			_exit(99);
		_exit(-rc);
	}
	close(pfd[1]);
	ssize_t got = read(pfd[0], msg, msglen - 1);
	msg[got > 0 ? got : 0] = '\0';
	close(pfd[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the open died of signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

static void test_truncated_data_file(void **state)
{
	struct store_fx *f = *state;
	size_t n = 20000;
	struct vg_add_item *items = spread_items(n);
	assert_int_equal(vg_store_add(f->st, "ca1", items, n, &store_fx_who, NULL, NULL, NULL), 0);
	/* Single revocations until the file ends with free pages: each commit
	 * frees the copies it replaced and takes pages from the free list. */
	uint64_t used = 0;
	size_t tail = 0, psize = 0;
	struct vg_revocation rev = {.revoked_at = 1, .reason = VG_REASON_SUPERSEDED};
	for (size_t i = 0; i < 400; i++) {
		assert_int_equal(vg_store_revoke(f->st, "ca1", &items[(i * 4099) % n].serial, 1,
		                                 &rev, &store_fx_who, NULL, NULL, NULL),
		                 0);
		lmdb_used(f->dir, &used, &tail, &psize);
		if (tail * psize < used)
			break;
	}
	vg_store_close(f->st);
	f->st = NULL;
	free(items);
	assert_true(tail * psize < used); /* the loop found free pages at the end */

	char path[128], msg[640], want[640];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);

	/* Free pages at the end are never read: a file without them is sound
	 * (LMDB never writes a page freed in the transaction that took it). */
	assert_int_equal(truncate(path, (off_t)(tail * psize)), 0);
	assert_int_equal(open_in_child(f->dir, VG_STORE_RDONLY, msg, sizeof(msg)), 0);
	assert_int_equal(open_in_child(f->dir, 0, msg, sizeof(msg)), 0);
	lmdb_used(f->dir, &used, &tail, &psize);

	/* Half the file, one page in use less, two pages and a few bytes, one
	 * byte less: refused before anything is mapped, read-only or not, and
	 * the file is left as it is. */
	off_t cuts[] = {(off_t)(used / 2), (off_t)((tail - 1) * psize), (off_t)(psize * 2 + 100),
	                (off_t)(tail * psize - 1)};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		assert_int_equal(truncate(path, cuts[i]), 0);
		snprintf(want, sizeof(want), "store damaged: %s expected %llu bytes, found %llu",
		         path, (unsigned long long)used, (unsigned long long)cuts[i]);
		assert_int_equal(open_in_child(f->dir, VG_STORE_RDONLY, msg, sizeof(msg)),
		                 -EUCLEAN);
		assert_string_equal(msg, want);
		assert_int_equal(open_in_child(f->dir, 0, msg, sizeof(msg)), -EUCLEAN);
		assert_string_equal(msg, want);
		struct stat sb;
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_size, cuts[i]);
	}
	/* Tiny files are left to LMDB, which refuses them without a map. */
	assert_int_equal(truncate(path, (off_t)psize + 100), 0);
	int rc = open_in_child(f->dir, VG_STORE_RDONLY, msg, sizeof(msg));
	assert_true(rc < 0 && rc != -EUCLEAN);
	/* Leave a usable store for teardown. */
	char other[96];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(vg_store_open(&f->st, other, VG_STORE_CREATE), 0);
}

/* The error boundary (store/internal.h): one code per meaning, the LMDB
 * code kept inside; a full map is told from a full disk by a flag of the
 * handle that hit it, not of the process; a map another process grew never
 * comes out as -EAGAIN. */
static void test_error_boundary(void **state)
{
	struct store_fx *f = *state;
	char other[96];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	struct vg_store *b;
	assert_int_equal(vg_store_open(&b, other, VG_STORE_CREATE), 0);

	assert_int_equal(env_err(f->st, MDB_MAP_FULL, "test"), -ENOSPC);
	assert_true(f->st->map_full);
	assert_false(b->map_full);
	assert_int_equal(env_err(b, ENOSPC, "test"), -ENOSPC);
	assert_false(b->map_full); /* a full disk: growing the map would not help */
	assert_int_equal(env_err(b, MDB_TXN_FULL, "test"), -ENOSPC);
	assert_false(b->map_full);
	assert_int_equal(env_err(b, MDB_NOTFOUND, "test"), -ENOENT);
	assert_int_equal(env_err(b, MDB_VERSION_MISMATCH, "test"), -EPROTO);
	assert_int_equal(env_err(b, MDB_MAP_RESIZED, "test"), -EIO);
	assert_int_equal(env_err(b, MDB_CORRUPTED, "test"), -EIO);
	assert_int_equal(env_err(b, 0, "test"), 0);

	/* A write clears what an earlier error left on its handle. */
	struct vg_add_item it = {.serial = store_fx_serial("01"),
	                         .cert = {.status = VG_STATUS_GOOD}};
	it.cert.reason = VG_REASON_NONE;
	assert_int_equal(vg_store_add(f->st, "ca1", &it, 1, &store_fx_who, NULL, NULL, NULL), 0);
	assert_false(f->st->map_full);
	vg_store_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_map_growth_under_reader, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_window_batches_with_map_growth, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_points_agree, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_points_stale_and_upgrade, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_points_bulk_with_interleaved_writer,
	                                        store_fx_setup, store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_trim, store_fx_setup, store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_truncated_data_file, store_fx_setup,
	                                        store_fx_teardown),
	        cmocka_unit_test_setup_teardown(test_error_boundary, store_fx_setup,
	                                        store_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
