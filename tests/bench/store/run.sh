#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Store benchmarks of issue 2, on demand:  tests/bench/store/run.sh [BUILD_DIR]
#   1. import of a 1,000,000-line index.txt with random 16-byte serials:
#      wall time and store bytes per certificate (goal < 5 s, < 128 B)
#   2. point lookups from the warm 1,000,000-certificate store on one core
#      (goal >= 2,000,000 per second)
#   3. bulk revocation of 100,000 certificates by issuance window (goal < 2 s)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=${1:-$root/build}
store=$build/store/vigil-store
bench=$build/tests/bench/store/bench-store
work=$(mktemp -d /tmp/vigil-bench-store.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Two CAs: a configuration may not name one CA (subject and key) twice.
for ca in bench window; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key \
		-out $ca.pem -subj /CN=$ca -days 30 2>/dev/null
done
cat > vigil.conf <<CONF
[store]
path = store
[ca bench]
cert = bench.pem
[ca window]
cert = window.pem
CONF
echo "== generating 1,000,000-line index.txt (random 16-byte serials, 10% revoked)"
/usr/bin/python3 "$here/gen_index.py" 1000000 index.txt 0.1
"$store" -c vigil.conf init >/dev/null
echo "== import-index 1,000,000 lines"
t0=$(date +%s.%N)
"$store" -q -c vigil.conf import-index bench index.txt
t1=$(date +%s.%N)
import_s=$(echo "$t1 - $t0" | bc)
"$store" -c vigil.conf stats > stats.txt
used=$(awk -F': ' '/Used bytes/ {print $2}' stats.txt)
file=$(awk -F': ' '/File bytes/ {print $2}' stats.txt)
echo "import_seconds=$import_s store_used_bytes=$used store_file_bytes=$file bytes_per_cert=$(echo "scale=1; $used / 1000000" | bc)"
echo "== point lookups, one core, warm"
lookup=$(taskset -c 0 "$bench" lookup store bench index.txt 3)
echo "$lookup"
echo "== bulk revocation by issuance window: 1,000,000 certificates over 10 days, 100,000 in the window"
"$bench" populate store window 1000000 1780000000 1780864000 >/dev/null
# Certificates are spread evenly: one day of ten holds 100,000.
t0=$(date +%s.%N)
"$store" -q -c vigil.conf revoke window --issued-after 2026-05-28T20:26:40Z \
	--issued-before 2026-05-29T20:26:40Z --reason keyCompromise
t1=$(date +%s.%N)
echo "revoke_window_seconds=$(echo "$t1 - $t0" | bc)"
"$store" -c vigil.conf stats | sed -n '/CA: window/,/Frozen/p'
