#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Signatures per second through SoftHSM2 (pkcs11: URIs, the libp11 engine)
# against PEM key files, ECDSA P-256 and RSA-2048, on demand:
#   tests/bench/hsm/run.sh [BUILD_DIR] [SECONDS]
# Keys are loaded with vg_pki_load_key, as vigil-responder and vigil-crlgen
# load theirs; bench_sign.c is built against BUILD_DIR's libvigilcommon.a.
# One thread pinned to CPU 0, then two threads (both CPUs). Results: RESULTS.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
secs=${2:-5}
module=/usr/lib/softhsm/libsofthsm2.so
work=$(mktemp -d /tmp/vigil-bench-hsm.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
# shellcheck disable=SC2046
cc -O2 -I"$root" "$here/bench_sign.c" "$build/common/libvigilcommon.a" \
	$(pkg-config --cflags --libs openssl) -lpthread -o bench-sign

mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$work" > softhsm2.conf
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label bench --so-pin 5678 --pin 1234 >/dev/null
pkcs11-tool --module $module --token-label bench --login --pin 1234 --keypairgen \
	--key-type EC:prime256v1 --label ec --id 01 >/dev/null
pkcs11-tool --module $module --token-label bench --login --pin 1234 --keypairgen \
	--key-type rsa:2048 --label rsa --id 02 >/dev/null
printf '1234\n' > pin
chmod 600 pin
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
chmod 600 ec.pem rsa.pem

echo "== $(nproc) CPUs; $(openssl version); softhsm2 $(dpkg-query -W -f='${Version}' softhsm2);" \
	"libengine-pkcs11-openssl $(dpkg-query -W -f='${Version}' libengine-pkcs11-openssl)"
for k in ec rsa; do
	uri="pkcs11:token=bench;object=$k;type=private?pin-source=file:$work/pin"
	echo "== $k, 1 thread, CPU 0"
	taskset -c 0 ./bench-sign "$work/$k.pem" "$secs" 1
	taskset -c 0 ./bench-sign "$uri" "$secs" 1
	echo "== $k, 2 threads"
	./bench-sign "$work/$k.pem" "$secs" 2
	./bench-sign "$uri" "$secs" 2
done
