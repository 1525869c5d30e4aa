/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-store backup PATH [--compact] and vigil-store restore PATH: a
 * consistent copy of the store taken while it is read and written, and the
 * store replaced by one (store/backup.c does both).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "store/cli/cli.h"

/* yield_to_services lowers this process's CPU and I/O priority (nice 10, the
 * lowest best-effort I/O priority): a hot backup reads the whole store and
 * writes as much, on the machine the responder answers from. */
static void yield_to_services(void)
{
	enum { IOPRIO_CLASS_BE = 2, IOPRIO_CLASS_SHIFT = 13, IOPRIO_WHO_PROCESS = 1 };
	(void)setpriority(PRIO_PROCESS, 0, 10);
	(void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
	              IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT | 7);
}

int cmd_backup(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {{"compact", no_argument, NULL, 'k'}, {0}};
	bool compact = false;
	int o;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o != 'k')
			cli_usage_die("usage: backup PATH [--compact]");
		compact = true;
	}
	if (argc - optind != 1)
		cli_usage_die("usage: backup PATH [--compact]");
	const char *dest = argv[optind];
	yield_to_services();
	cli_store_open(c, VG_STORE_RDONLY);
	c->progress_what = "backup: bytes";
	struct vg_backup_result r;
	int rc = vg_store_backup(c->st, dest, compact, &r, cli_progress, c);
	cli_end_progress();
	if (rc == -EEXIST)
		cli_die("backup %s: it exists; a backup is written to a new directory", dest);
	if (rc < 0)
		cli_die("backup %s failed, nothing written: %s", dest,
		        rc == -ENOSPC ? "no space left on device" : strerror(-rc));
	printf("backup: %s counter=%" PRIu64 " bytes=%" PRIu64 " store_id=%016" PRIx64
	       " compact=%s\n",
	       dest, r.counter, r.bytes, r.store_id, compact ? "yes" : "no");
	return 0;
}

int cmd_restore(struct ctx *c, int argc, char **argv)
{
	if (argc != 1)
		cli_usage_die("usage: restore PATH");
	c->progress_what = "restore: bytes";
	struct vg_backup_result r;
	int rc = vg_store_restore(c->conf.store_path, argv[0], &c->who, &r, cli_progress, c);
	cli_end_progress();
	if (rc == -ENODATA)
		cli_die("restore: %s holds no data.mdb: not a backup", argv[0]);
	if (rc == -EUCLEAN)
		cli_die("restore: backup %s fails verify (see the lines above), store %s left "
		        "as it was",
		        argv[0], c->conf.store_path);
	if (rc < 0)
		cli_die("restore from %s failed, store %s left as it was: %s", argv[0],
		        c->conf.store_path, strerror(-rc));
	printf("restore: %s from %s counter=%" PRIu64 " replaced_counter=%" PRIu64
	       " store_id=%016" PRIx64 " replaced_kept=%s\n",
	       c->conf.store_path, argv[0], r.counter, r.old_counter, r.store_id,
	       r.moved_to[0] ? r.moved_to : "-");
	/* The restore is one commit on top of the backup's counter. */
	if (r.old_counter > r.counter - 1)
		fprintf(stderr,
		        "%s: warning: the replaced store was at counter %" PRIu64
		        ", the backup at %" PRIu64
		        ": changes committed after the backup are not in the store. vigil-crlgen "
		        "refuses to publish until every revocation of its last CRL is in it again "
		        "(it lists the missing ones in OUT/CA.missing for vigil-store revoke CA "
		        "--serials)\n",
		        cli_progname, r.old_counter, r.counter - 1);
	return 0;
}
