/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's environment: the LMDB error boundary (env_err), opening and
 * closing the environment, the schema and meta values, and the map: where
 * this process maps the data file, following a map another process grew,
 * growing it when full. The layout of the store is in internal.h.
 */
#include "store/internal.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAP_INITIAL (1ull << 30)

int env_err(struct vg_store *st, int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		st->map_full = true;
		return -ENOSPC;
	case MDB_TXN_FULL:
	case ENOSPC:
		return -ENOSPC;
	case MDB_MAP_RESIZED:
		/* Followed where a transaction begins; found here only when no
		 * map size satisfied MAP_FOLLOW_TRIES attempts. */
		log_err("event=store_error op=%s error=\"%s\"", what, mdb_strerror(rc));
		return -EIO;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		log_err("event=store_error op=%s error=\"%s\"", what, mdb_strerror(rc));
		return -EPROTO;
	case EACCES:
	case EROFS:
	case ENOENT:
	case ENOMEM:
		return -rc;
	default:
		log_err("event=store_error op=%s error=\"%s\"", what, mdb_strerror(rc));
		return -EIO;
	}
}

const char *vg_store_path(const struct vg_store *st)
{
	return st->path;
}

static int open_dbis(struct vg_store *st, MDB_txn *txn, unsigned flags)
{
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {{"meta", &st->meta},       {"cas", &st->cas}, {"certs", &st->certs},
	           {"revoked", &st->revoked}, {"log", &st->log}, {"audit", &st->audit}};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
		if (rc == MDB_NOTFOUND)
			return -ENODATA;
		if (rc)
			return env_err(st, rc, "dbi_open");
	}
	return 0;
}

int env_meta_get(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t *out)
{
	MDB_val key = {strlen(k), (void *)k}, val;
	int rc = mdb_get(txn, st->meta, &key, &val);
	if (rc)
		return env_err(st, rc, "meta_get");
	if (val.mv_size == 4)
		*out = get_u32(val.mv_data);
	else if (val.mv_size == 8)
		*out = get_u64(val.mv_data);
	else
		return -EBADMSG;
	return 0;
}

int env_meta_put(struct vg_store *st, MDB_txn *txn, const char *k, uint64_t v, size_t width)
{
	uint8_t b[8];
	if (width == 4)
		put_u32(b, (uint32_t)v);
	else
		put_u64(b, v);
	MDB_val key = {strlen(k), (void *)k}, val = {width, b};
	return env_err(st, mdb_put(txn, st->meta, &key, &val, 0), "meta_put");
}

static void map_locate(struct vg_store *st);

/* open_points opens the point index. A read-write open of a version-1
 * store creates it, stale, in the same transaction that raises the schema
 * (an older writer can then no longer open the store and leave the index
 * behind); the caller rebuilds it after the commit. A read-only open of a
 * version-1 store reads the B-tree. */
static int open_points(struct vg_store *st, MDB_txn *txn, uint64_t schema, bool create)
{
	if (schema == 1 && st->rdonly)
		return 0;
	int rc = mdb_dbi_open(txn, "points", st->rdonly ? 0 : MDB_CREATE, &st->points);
	if (rc)
		return rc == MDB_NOTFOUND ? -EBADMSG : env_err(st, rc, "dbi_open");
	st->has_points = true;
	if (schema == 1) {
		rc = env_meta_put(st, txn, "schema", SCHEMA_VERSION, 4);
		if (!rc)
			rc = env_meta_put(st, txn, "points", 0, 4);
	} else if (create) {
		rc = env_meta_put(st, txn, "points", 1, 4);
		if (!rc)
			rc = env_meta_put(st, txn, "points_lg", 0, 4);
	}
	return rc;
}

bool env_points_valid(struct vg_store *st, MDB_txn *txn, unsigned *lg)
{
	uint64_t v = 0, l = 0;
	if (!st->has_points || env_meta_get(st, txn, "points", &v) != 0 || v != 1 ||
	    env_meta_get(st, txn, "points_lg", &l) != 0 || l > PT_MAX_LG)
		return false;
	*lg = (unsigned)l;
	return true;
}

/* The reason of this thread's last -EUCLEAN from vg_store_open. */
static __thread char damage[640];

const char *vg_store_damage(void)
{
	return damage;
}

int vg_store_open(struct vg_store **out, const char *path, unsigned flags)
{
	bool rdonly = flags & VG_STORE_RDONLY;
	bool create = (flags & VG_STORE_CREATE) && !rdonly;
	char *datafile = NULL;
	if (asprintf(&datafile, "%s/data.mdb", path) < 0)
		return -ENOMEM;
	struct stat sb;
	bool exists = stat(datafile, &sb) == 0;
	if (!exists && !create) {
		free(datafile);
		return -ENODATA;
	}
	uint64_t expected = 0, found = 0, txnid = 0, seen;
	damage[0] = '\0';
	/* Once more while another process commits (the free list walked may
	 * have been reused under the walk): a damaged file sees no commits. */
	int rc = exists ? datafile_check(datafile, &expected, &found, &txnid) : 0;
	for (int tries = 0; rc == -EUCLEAN && tries < 8; tries++) {
		seen = txnid;
		rc = datafile_check(datafile, &expected, &found, &txnid);
		if (rc == -EUCLEAN && txnid == seen)
			break;
	}
	if (rc == -EUCLEAN)
		snprintf(damage, sizeof(damage),
		         "store damaged: %s expected %llu bytes, found %llu", datafile,
		         (unsigned long long)expected, (unsigned long long)found);
	free(datafile);
	if (rc)
		return rc;
	if (create && mkdir(path, 0750) < 0 && errno != EEXIST)
		return -errno;

	struct vg_store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->rdonly = rdonly;
	st->path = strdup(path);
	pthread_rwlock_init(&st->maplock, NULL);
	MDB_txn *txn = NULL;
	rc = mdb_env_create(&st->env);
	if (rc) {
		rc = env_err(st, rc, "env_create");
		goto fail;
	}
	mdb_env_set_maxdbs(st->env, 8);
	mdb_env_set_maxreaders(st->env, 1022);
	if (!rdonly) {
		/* The map only reserves address space; the file grows with data.
		 * Growing it further is done on MDB_MAP_FULL (env_grow_map, from
		 * run_batch and chunk_end). */
		uint64_t initial = MAP_INITIAL;
		const char *env = getenv("VIGIL_STORE_INITIAL_MAP");
		if (env && atoll(env) > 0)
			initial = (uint64_t)atoll(env);
		if (exists && (uint64_t)sb.st_size > initial)
			initial = (uint64_t)sb.st_size;
		mdb_env_set_mapsize(st->env, initial);
	}
	unsigned envflags = MDB_NOTLS | (rdonly ? MDB_RDONLY : 0);
	rc = mdb_env_open(st->env, path, envflags, 0640);
	if (rc) {
		rc = env_err(st, rc, "env_open");
		goto fail;
	}
	char *lockfile = NULL;
	if (asprintf(&lockfile, "%s/lock.mdb", path) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (rdonly && access(lockfile, W_OK) < 0) {
		/* LMDB opens a read-only file system without locks, and then a
		 * reader is not protected from the writer reusing its pages:
		 * refuse rather than serve torn reads. */
		free(lockfile);
		rc = -EROFS;
		goto fail;
	}
	if (!rdonly) {
		/* Readers run as another user (the services' vigil) and must
		 * register in the lock file: make it group-writable whatever
		 * the umask. Best effort: only the owner can. */
		(void)chmod(lockfile, 0660);
	}
	free(lockfile);
	int dead = 0;
	mdb_reader_check(st->env, &dead);
	if (dead > 0)
		log_warn("event=stale_readers_cleared count=%d", dead);

	/* A write transaction waits here while another vigil-store writes,
	 * which may grow the store past the map this open set up. */
	rc = env_txn_begin(st, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		goto fail;
	rc = open_dbis(st, txn, create ? MDB_CREATE : 0);
	if (rc)
		goto fail;
	uint64_t schema;
	rc = env_meta_get(st, txn, "schema", &schema);
	bool fresh = false; /* initialised by this open */
	if (rc == -ENOENT && create) {
		fresh = true;
		rc = env_meta_put(st, txn, "schema", SCHEMA_VERSION, 4);
		if (!rc)
			rc = env_meta_put(st, txn, "counter", 0, 8);
		if (!rc)
			rc = env_meta_put(st, txn, "created", (uint64_t)time(NULL), 8);
		if (!rc)
			rc = env_meta_put(st, txn, "store_id", env_random(), 8);
		if (rc)
			goto fail;
		schema = SCHEMA_VERSION;
	} else if (rc == -ENOENT) {
		rc = -ENODATA;
		goto fail;
	} else if (rc) {
		goto fail;
	}
	if (schema != SCHEMA_VERSION && schema != 1) {
		log_err("event=store_schema_mismatch path=%s found=%llu expected=%u", path,
		        (unsigned long long)schema, SCHEMA_VERSION);
		rc = -EPROTO;
		goto fail;
	}
	rc = open_points(st, txn, schema, fresh);
	if (!rc && !rdonly)
		rc = env_ident_init(st, txn);
	if (rc)
		goto fail;
	unsigned lg;
	bool rebuild = !rdonly && !env_points_valid(st, txn, &lg);
	/* Committing also makes the DBI handles usable by later transactions. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		rc = env_err(st, rc, "txn_commit");
		goto fail;
	}
	if (rdonly)
		map_locate(st);
	mdb_filehandle_t fd;
	if (mdb_env_get_fd(st->env, &fd) == 0 && fstat(fd, &sb) == 0) {
		st->dev = sb.st_dev;
		st->ino = sb.st_ino;
	}
	if (rebuild) {
		/* Upgraded, or a large write stopped before it rebuilt the index:
		 * readers use the B-tree until this finishes. */
		log_info("event=store_points_rebuild path=%s", path);
		rc = pt_rebuild_all(st);
		if (rc)
			log_warn("event=store_points_rebuild_failed path=%s error=%d", path, rc);
		rc = 0;
	}
	*out = st;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->maplock);
	free(st->path);
	free(st);
	return rc;
}

uint64_t env_random(void)
{
	uint64_t v = 0;
	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			v = (uint64_t)ts.tv_nsec * 6364136223846793005ull ^ (uint64_t)ts.tv_sec ^
			    (uint64_t)getpid() << 32;
		}
	}
	return v;
}

int env_ident_init(struct vg_store *st, MDB_txn *txn)
{
	uint64_t id;
	int rc = env_meta_get(st, txn, "store_id", &id);
	if (rc == -ENOENT)
		rc = env_meta_put(st, txn, "store_id", env_random(), 8);
	return rc;
}

bool vg_store_replaced(struct vg_store *st)
{
	char *datafile = NULL;
	struct stat sb;
	if (asprintf(&datafile, "%s/data.mdb", st->path) < 0)
		return false; /* cannot tell: out of memory */
	int rc = stat(datafile, &sb);
	free(datafile);
	if (rc < 0)
		return errno == ENOENT || errno == ENOTDIR;
	return sb.st_dev != st->dev || sb.st_ino != st->ino;
}

void vg_store_close(struct vg_store *st)
{
	if (!st)
		return;
	mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->maplock);
	free(st->path);
	free(st);
}

/* map_locate finds this process's mapping of the data file in
 * /proc/self/maps, by device and inode. Without /proc, trimming is off. */
static void map_locate(struct vg_store *st)
{
	st->map_addr = NULL;
	st->map_len = 0;
	mdb_filehandle_t fd;
	struct stat sb;
	if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) < 0)
		return;
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, ino;
		unsigned maj, min;
		if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &lo, &hi, &maj, &min, &ino) != 5 ||
		    ino != (unsigned long)sb.st_ino || makedev(maj, min) != sb.st_dev)
			continue;
		if (hi - lo > st->map_len) {
			st->map_addr = (void *)lo;
			st->map_len = hi - lo;
		}
	}
	fclose(f);
}

/* env_follow_map adopts the map size another process grew the store to (its last
 * commit recorded it in the meta page), never shrinking this process's own
 * map: a writer may have grown it for a batch it is about to run again. No
 * transaction of this process may be open; it is called without the shared
 * lock held. */
int env_follow_map(struct vg_store *st)
{
	pthread_rwlock_wrlock(&st->maplock);
	MDB_envinfo ei;
	mdb_env_info(st->env, &ei);
	size_t had = ei.me_mapsize;
	int rc = mdb_env_set_mapsize(st->env, 0);
	if (rc == 0) {
		mdb_env_info(st->env, &ei);
		if (ei.me_mapsize < had)
			rc = mdb_env_set_mapsize(st->env, had);
	}
	if (rc == 0 && st->rdonly)
		map_locate(st);
	pthread_rwlock_unlock(&st->maplock);
	if (rc == 0)
		log_info("event=store_map_followed path=%s", st->path);
	return env_err(st, rc, "set_mapsize");
}

/* env_txn_begin begins an LMDB transaction (|flags| 0 for a write one, which
 * waits for the writer lock) for this process's own use, not a vg_txn.
 * MDB_MAP_RESIZED (another process grew the store past this process's map,
 * which LMDB finds only once it holds the writer lock, or a reader slot) is
 * not an error: the map is adopted and the transaction begun again. */
int env_txn_begin(struct vg_store *st, unsigned flags, MDB_txn **txn)
{
	for (int tries = 0;; tries++) {
		int rc = mdb_txn_begin(st->env, NULL, flags, txn);
		if (rc == MDB_MAP_RESIZED && tries < MAP_FOLLOW_TRIES && env_follow_map(st) == 0)
			continue;
		return rc ? env_err(st, rc, "txn_begin") : 0;
	}
}

int env_grow_map(struct vg_store *st)
{
	MDB_envinfo ei;
	mdb_env_info(st->env, &ei);
	size_t next = ei.me_mapsize * 2;
	int rc = mdb_env_set_mapsize(st->env, next);
	if (rc)
		return env_err(st, rc, "set_mapsize");
	log_info("event=store_map_grown path=%s map_bytes=%zu", st->path, next);
	return 0;
}
