#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Write an OpenSSL `ca` index.txt of N lines with random 16-byte serials.

usage: gen_index.py N OUT [REVOKED_FRACTION] [SEED]
"""
import random
import sys

n = int(sys.argv[1])
out = sys.argv[2]
frac = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
reasons = ["", ",keyCompromise", ",superseded", ",cessationOfOperation", ",affiliationChanged"]
with open(out, "w") as f:
    lines = []
    for i in range(n):
        serial = "%032X" % (rnd.getrandbits(127) | (1 << 120))
        if rnd.random() < frac:
            lines.append("R\t301231235959Z\t260101000000Z%s\t%s\tunknown\t/CN=host%d.example\n"
                         % (rnd.choice(reasons), serial, i))
        else:
            lines.append("V\t301231235959Z\t\t%s\tunknown\t/CN=host%d.example\n" % (serial, i))
        if len(lines) == 65536:
            f.writelines(lines)
            lines = []
    f.writelines(lines)
