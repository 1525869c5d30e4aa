/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a store comes from (its identity), and its copies: backup and
 * restore.
 *
 * A store is one directory holding data.mdb (every database) and lock.mdb
 * (LMDB's reader table, rebuilt by whoever opens the store first; never part
 * of a copy). A backup copies data.mdb from one read snapshot with LMDB's
 * environment copy, which a writer does not wait for (it takes the writer
 * mutex only while it copies the two meta pages), into a new directory that
 * is renamed into place once fsynced. A restore prepares the copy beside the
 * store and exchanges the two directories in one rename while it holds the
 * old store's writer lock: a reader that stat()s the store's path sees either
 * the old data file or the new one, and a writer that waited finds its data
 * file gone (vg_store_replaced) and writes nothing (-ESTALE).
 */
#include "store/internal.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int vg_store_ident(struct vg_txn *t, struct vg_store_ident *out)
{
	memset(out, 0, sizeof(*out));
	struct {
		const char *k;
		uint64_t *v;
	} f[] = {{"store_id", &out->store_id},
	         {"backup_of", &out->backup_of},
	         {"base_counter", &out->base_counter},
	         {"backup_time", (uint64_t *)&out->backup_time},
	         {"log_floor", &out->log_floor},
	         {"created", (uint64_t *)&out->created}};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		int rc = env_meta_get(t->st, t->txn, f[i].k, f[i].v);
		if (rc && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/* sync_path fsyncs the file or directory |path|. */
static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* sync_parent fsyncs the directory holding |path|, so that a rename in it
 * is durable. */
static int sync_parent(const char *path)
{
	char *dup = strdup(path);
	if (!dup)
		return -ENOMEM;
	char *slash = strrchr(dup, '/');
	const char *dir = ".";
	if (slash == dup)
		dir = "/";
	else if (slash) {
		*slash = '\0';
		dir = dup;
	}
	int rc = sync_path(dir);
	free(dup);
	return rc;
}

/* remove_tmp removes a copy being prepared: its files, then itself. */
static void remove_tmp(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char p[PATH_MAX + 16];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, files[i]) < sizeof(p))
			unlink(p);
	rmdir(dir);
}

struct copy_job {
	MDB_env *env;
	int fd;
	unsigned flags;
	int rc;
	volatile int done;
};

static void *copy_thread(void *arg)
{
	struct copy_job *j = arg;
	j->rc = mdb_env_copyfd2(j->env, j->fd, j->flags);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* copy_env runs LMDB's copy of |st| into |fd| in a thread, reporting the
 * bytes written against the pages the store uses. */
static int copy_env(struct vg_store *st, int fd, bool compact, vg_progress_fn progress, void *parg)
{
	MDB_envinfo ei;
	MDB_stat ms;
	mdb_env_info(st->env, &ei);
	mdb_env_stat(st->env, &ms);
	uint64_t total = (uint64_t)(ei.me_last_pgno + 1) * ms.ms_psize;
	struct copy_job j = {.env = st->env, .fd = fd, .flags = compact ? MDB_CP_COMPACT : 0};
	pthread_t th;
	if (pthread_create(&th, NULL, copy_thread, &j) != 0)
		return -EAGAIN;
	while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE)) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
		struct stat sb;
		if (progress && fstat(fd, &sb) == 0 && total) {
			uint64_t done = (uint64_t)sb.st_size;
			progress(done < total ? done : total - 1, total, parg);
		}
	}
	pthread_join(th, NULL);
	if (j.rc)
		return env_err(st, j.rc, "env_copy");
	if (progress)
		progress(total, total, parg);
	return 0;
}

/* stamp_copy gives the copy at |dir| its own identity: a new store_id, and
 * where it comes from (kept when the copy already says, as a restored backup
 * does). It returns the copy's counter in |*counter|. */
static int stamp_copy(const char *dir, uint64_t from_id, bool keep_origin, uint64_t *counter,
                      uint64_t *id)
{
	struct vg_store *cp;
	int rc = vg_store_open(&cp, dir, 0);
	if (rc)
		return rc;
	MDB_txn *txn;
	rc = env_txn_begin(cp, 0, &txn);
	if (rc) {
		vg_store_close(cp);
		return rc;
	}
	uint64_t old_id = 0, have = 0;
	rc = env_meta_get(cp, txn, "counter", counter);
	(void)env_meta_get(cp, txn, "store_id", &old_id);
	bool has_origin = env_meta_get(cp, txn, "base_counter", &have) == 0;
	*id = env_random();
	if (!rc)
		rc = env_meta_put(cp, txn, "store_id", *id, 8);
	if (!rc && !(keep_origin && has_origin)) {
		rc = env_meta_put(cp, txn, "backup_of", from_id ? from_id : old_id, 8);
		if (!rc)
			rc = env_meta_put(cp, txn, "base_counter", *counter, 8);
		if (!rc)
			rc = env_meta_put(cp, txn, "backup_time", (uint64_t)time(NULL), 8);
	}
	if (rc) {
		mdb_txn_abort(txn);
	} else {
		rc = mdb_txn_commit(txn);
		rc = rc ? env_err(cp, rc, "txn_commit") : 0;
	}
	vg_store_close(cp);
	return rc;
}

/* trim copies |path| without its trailing slashes (a directory's temporary
 * sibling is named after it: "store/" would put it inside). */
static int trim(const char *path, char *out, size_t len)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0 || n >= len)
		return -ENAMETOOLONG;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

int vg_store_backup(struct vg_store *st, const char *dest_arg, bool compact,
                    struct vg_backup_result *res, vg_progress_fn progress, void *parg)
{
	memset(res, 0, sizeof(*res));
	char dest[PATH_MAX];
	if (trim(dest_arg, dest, sizeof(dest)) < 0)
		return -ENAMETOOLONG;
	struct stat sb;
	if (stat(dest, &sb) == 0)
		return -EEXIST;
	char tmp[PATH_MAX], file[PATH_MAX + 16];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", dest, (long)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	if (mkdir(tmp, 0750) < 0)
		return -errno;
	snprintf(file, sizeof(file), "%s/data.mdb", tmp);
	uint64_t src_id = 0;
	MDB_txn *txn;
	int rc = env_txn_begin(st, MDB_RDONLY, &txn);
	if (!rc) {
		(void)env_meta_get(st, txn, "store_id", &src_id);
		mdb_txn_abort(txn);
	}
	int fd = rc ? -1 : open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (!rc && fd < 0)
		rc = -errno;
	if (!rc)
		rc = copy_env(st, fd, compact, progress, parg);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (!rc)
		rc = stamp_copy(tmp, src_id, false, &res->counter, &res->store_id);
	if (!rc) {
		/* The reader table is the source's business: a copy starts without. */
		snprintf(file, sizeof(file), "%s/lock.mdb", tmp);
		unlink(file);
		snprintf(file, sizeof(file), "%s/data.mdb", tmp);
		rc = sync_path(file);
	}
	if (!rc && stat(file, &sb) == 0)
		res->bytes = (uint64_t)sb.st_size;
	if (!rc)
		rc = sync_path(tmp);
	if (!rc && rename(tmp, dest) < 0)
		rc = -errno;
	if (!rc)
		rc = sync_parent(dest);
	if (rc) {
		remove_tmp(tmp);
		return rc;
	}
	log_info("event=store_backup path=%s dest=%s counter=%llu bytes=%llu compact=%d", st->path,
	         dest, (unsigned long long)res->counter, (unsigned long long)res->bytes, compact);
	return 0;
}

/* copy_file copies the data file |from| into a new file |to|, fsynced. */
static int copy_file(const char *from, const char *to, vg_progress_fn progress, void *parg)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (out < 0) {
		int e = errno;
		close(in);
		return -e;
	}
	struct stat sb;
	uint64_t total = fstat(in, &sb) == 0 ? (uint64_t)sb.st_size : 0, done = 0;
	enum { CHUNK = 1 << 20 };
	char *buf = malloc(CHUNK);
	int rc = buf ? 0 : -ENOMEM;
	while (!rc) {
		ssize_t n = read(in, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n && !rc;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno != EINTR)
				rc = -errno;
			if (w > 0)
				off += w;
		}
		done += (uint64_t)n;
		if (progress && total && done < total)
			progress(done, total, parg);
	}
	if (!rc && fsync(out) < 0)
		rc = -errno;
	if (!rc && progress && total)
		progress(total, total, parg);
	free(buf);
	close(in);
	close(out);
	return rc;
}

struct verify_count {
	uint64_t n;
};

static void count_diff(const char *db, const char *key, const char *what, void *arg)
{
	struct verify_count *v = arg;
	v->n++;
	log_err("event=restore_backup_damaged db=%s key=%s problem=\"%s\"", db, key, what);
}

/* restore_fn is the restore's own commit in the restored store: one
 * CA-wide change per CA (a reader following the log drops all it holds). */
static int restore_ca(const char *name, const struct vg_ca_state *s, void *arg)
{
	(void)name;
	return wtx_log_put(arg, s->id, VG_CHANGE_CA, NULL);
}

static int restore_fn(struct wtx *w, void *arg)
{
	(void)arg;
	struct vg_txn t = {.st = w->st, .txn = w->txn};
	return vg_store_ca_foreach(&t, restore_ca, w);
}

/* prepare checks and stamps the copy at |tmp|: it must verify clean. */
static int prepare(const char *tmp, const struct vg_audit *who, struct vg_backup_result *res)
{
	uint64_t counter;
	int rc = stamp_copy(tmp, 0, true, &counter, &res->store_id);
	if (rc)
		return rc;
	struct vg_store *cp;
	if ((rc = vg_store_open(&cp, tmp, 0)) != 0)
		return rc;
	struct vg_txn *t;
	struct verify_count vc = {0};
	uint64_t checked;
	rc = vg_txn_begin(cp, &t);
	if (!rc) {
		int n = vg_store_verify(t, count_diff, &vc, &checked);
		vg_txn_end(t);
		rc = n < 0 ? n : n > 0 ? -EUCLEAN : 0;
	}
	struct vg_write_result wr = {0};
	if (!rc)
		rc = wtx_run(cp, NULL, "restore", who, restore_fn, NULL, &wr);
	if (!rc && (rc = vg_txn_begin(cp, &t)) == 0) {
		rc = vg_store_counter(t, &res->counter);
		vg_txn_end(t);
	}
	vg_store_close(cp);
	return rc;
}

int vg_store_restore(const char *path_arg, const char *backup, const struct vg_audit *who,
                     struct vg_backup_result *res, vg_progress_fn progress, void *parg)
{
	memset(res, 0, sizeof(*res));
	char path[PATH_MAX];
	if (trim(path_arg, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	char tmp[PATH_MAX], from[PATH_MAX + 16], file[PATH_MAX + 16];
	snprintf(from, sizeof(from), "%s/data.mdb", backup);
	struct stat sb, old;
	if (stat(from, &sb) < 0)
		return -ENODATA;
	bool have_old = stat(path, &old) == 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.restore-%ld", path, (long)getpid()) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	if (mkdir(tmp, have_old ? (old.st_mode & 07777) : 0750) < 0)
		return -errno;
	if (have_old && geteuid() == 0)
		(void)chown(tmp, old.st_uid, old.st_gid);
	snprintf(file, sizeof(file), "%s/data.mdb", tmp);
	int rc = copy_file(from, file, progress, parg);
	if (!rc)
		rc = prepare(tmp, who, res);
	if (!rc && have_old && geteuid() == 0) {
		(void)chown(file, old.st_uid, old.st_gid);
		snprintf(file, sizeof(file), "%s/lock.mdb", tmp);
		(void)chown(file, old.st_uid, old.st_gid);
	}
	if (!rc)
		rc = sync_path(tmp);
	if (rc) {
		remove_tmp(tmp);
		return rc;
	}
	/* The old store's writer lock, held across the exchange: no write is
	 * half in either store. A store that cannot be opened (damaged: the
	 * reason to restore) is replaced without it. */
	struct vg_store *st = NULL;
	MDB_txn *txn = NULL;
	if (have_old && vg_store_open(&st, path, 0) == 0) {
		if (env_txn_begin(st, 0, &txn) == 0)
			(void)env_meta_get(st, txn, "counter", &res->old_counter);
	}
	if (!have_old) {
		rc = rename(tmp, path) < 0 ? -errno : 0;
	} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0) {
		rc = -errno;
	} else {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
		snprintf(res->moved_to, sizeof(res->moved_to), "%s.replaced-%s", path, stamp);
		if (rename(tmp, res->moved_to) < 0)
			snprintf(res->moved_to, sizeof(res->moved_to), "%s", tmp);
	}
	if (txn)
		mdb_txn_abort(txn);
	vg_store_close(st);
	if (rc) {
		remove_tmp(tmp);
		return rc;
	}
	rc = sync_parent(path);
	log_info("event=store_restored path=%s backup=%s counter=%llu old_counter=%llu kept=%s",
	         path, backup, (unsigned long long)res->counter,
	         (unsigned long long)res->old_counter, res->moved_to[0] ? res->moved_to : "-");
	return rc;
}
