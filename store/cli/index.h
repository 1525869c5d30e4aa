/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * OpenSSL `ca` database (index.txt) lines: six TAB-separated fields
 *   status (V, R or E) | expiry | revocation | serial | file name | subject
 * The revocation field takes every form apps/ca.c (unpack_revinfo) writes:
 *   TIME | TIME,REASON | TIME,holdInstruction,OID | TIME,keyTime,TIME2 |
 *   TIME,CAkeyTime,TIME2
 */

#include <stddef.h>

#include "store/store.h"

/* index_parse_line parses one line (without its newline; a trailing CR is
 * ignored) into |out|. A blank line gives 1 and leaves |out| alone; a good
 * line gives 0; a malformed one -EINVAL with the reason in |err|. |file| is
 * set to the line's file name field (borrowed from |line|). The line is
 * modified. */
int index_parse_line(char *line, size_t len, struct vg_add_item *out, const char **file, char *err,
                     size_t errlen);
