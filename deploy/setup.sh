#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Set-up on a fresh Debian 12 machine, as root (README.md):
#   deploy/setup.sh demo   install packages, build into build/, run the demo
#   deploy/setup.sh test   install packages, build, run every test (also under
#                          ASan+UBSan in build-asan/), print "N passed, N failed, N skipped"
#   deploy/setup.sh deps | build
# Idempotent: packages already present are not reinstalled, build dirs are reused.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

PACKAGES="meson ninja-build pkg-config gcc libc6-dev openssl libssl-dev libuv1-dev liblmdb-dev
lmdb-utils libhttp-parser-dev libinih-dev libcmocka-dev python3 python3-pytest
python3-cryptography gnutls-bin bc procps curl wrk scdoc man-db systemd nginx clang-14 libclang-rt-14-dev libfuzzer-14-dev clang-format clang-tidy softhsm2 libengine-pkcs11-openssl opensc
build-essential debhelper dpkg-dev lintian debootstrap prometheus prometheus-node-exporter varnish varnish-modules libnginx-mod-http-cache-purge
libpq-dev postgresql-15 postgresql-client-15"

deps() {
	missing=""
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "setup: installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		# Packages such as nginx start their service on install; the tests
		# start their own on 127.0.0.1, so keep the packaged ones stopped.
		policy=""
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			policy=1
		fi
		rc=0
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing || rc=$?
		[ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
		[ "$rc" -eq 0 ] || exit "$rc"
	fi
}

configure() { # DIR [meson options]
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@"
	fi
}

build() {
	configure build -Dwerror=true
	meson compile -C build
}

build_asan() {
	configure build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug
	meson compile -C build-asan
}

build_fuzz() {
	# libFuzzer targets (clang); unit and integration suites are left to the
	# other two builds.
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang-14 meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
			-Db_lundef=false -Dunit_tests=disabled -Dintegration_tests=disabled
	fi
	meson compile -C build-fuzz
}

summary() { # testlog.json files
	/usr/bin/python3 - "$@" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            res = r.get("result")
            if res in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif res == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
}

run_tests() {
	status=0
	meson test -C build --print-errorlogs --num-processes 2 || status=1
	# Sanitizers: every error aborts, leaks included. The lint suite (the
	# layout of the sources) ran in the plain build.
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C build-asan --print-errorlogs --num-processes 2 --no-suite slow \
		--no-suite lint || status=1
	meson test -C build-fuzz --print-errorlogs --num-processes 2 --suite fuzz || status=1
	summary build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
		build-fuzz/meson-logs/testlog.json
	return $status
}

case "${1:-}" in
deps) deps ;;
build) deps && build ;;
demo) deps && build && "$root/deploy/demo.sh" ;;
test) deps && build && build_asan && build_fuzz && run_tests ;;
*)
	echo "usage: $0 demo|test|deps|build" >&2
	exit 2
	;;
esac
