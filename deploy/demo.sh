#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The Vigil demo, on 127.0.0.1 (run by `deploy/setup.sh demo` after the build):
# a CA made with the openssl CLI issues and revokes certificates; vigil-store
# imports its index.txt; the CA halts issuance (freeze); vigil-responder answers
# OCSP for them (checked with openssl ocsp) and vigil-crlgen publishes a CRL
# (shown with openssl crl -text). Everything lives in ./demo (recreated).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
store="$build/store/vigil-store"
responder="$build/responder/vigil-responder"
crlgen="$build/crlgen/vigil-crlgen"
demo=$root/demo
port=${PORT:-18080}

step() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

rm -rf "$demo"
mkdir -p "$demo/ca/newcerts"
cd "$demo"

step "A CA with the openssl CLI: key, self-signed certificate, OCSP signer"
cat > ca/ca.cnf <<CNF
[ ca ]
default_ca = demo
[ demo ]
dir = $demo/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
serial = \$dir/serial
default_md = sha256
default_days = 365
policy = any
unique_subject = no
x509_extensions = leaf
[ any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ caext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$port/
[ ocsp ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
noCheck = ignored
authorityKeyIdentifier = keyid
CNF
: > ca/index.txt
echo 1000 > ca/serial
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca/ca.key 2>/dev/null
chmod 600 ca/ca.key
openssl req -new -x509 -config ca/ca.cnf -key ca/ca.key -subj "/CN=Vigil Demo CA" -days 3650 \
	-extensions caext -out ca/ca.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca/ocsp.key 2>/dev/null
chmod 600 ca/ocsp.key
openssl req -new -config ca/ca.cnf -key ca/ocsp.key -subj "/CN=Vigil Demo OCSP" -out ca/ocsp.csr
openssl ca -batch -config ca/ca.cnf -extensions ocsp -in ca/ocsp.csr -out ca/ocsp.pem -notext 2>/dev/null

step "The CA issues six certificates and revokes three (openssl ca)"
for host in www mail vpn shop api old; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "ca/$host.key" 2>/dev/null
	openssl req -new -config ca/ca.cnf -key "ca/$host.key" -subj "/CN=$host.example" -out "ca/$host.csr"
	openssl ca -batch -config ca/ca.cnf -in "ca/$host.csr" -out "ca/$host.pem" -notext 2>/dev/null
done
openssl ca -batch -config ca/ca.cnf -revoke ca/vpn.pem -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -config ca/ca.cnf -revoke ca/old.pem -crl_reason superseded 2>/dev/null
openssl ca -batch -config ca/ca.cnf -revoke ca/shop.pem -crl_hold holdInstructionReject 2>/dev/null
cat ca/index.txt

cat > vigil.conf <<CONF
[store]
path = store

[responder]
listen = 127.0.0.1:$port
workers = 1

[crlgen]
out = crl
interval = 3600

[ca demo]
cert = ca/ca.pem
ocsp_cert = ca/ocsp.pem
ocsp_key = ca/ocsp.key
crl_key = ca/ca.key
not_issued = revoked
CONF

step "vigil-store: initialise the store and import the CA's database"
run "$store" -c vigil.conf init
run "$store" -c vigil.conf import-index demo ca/index.txt --certs ca/newcerts

step "Status of each certificate"
for f in www mail vpn shop api old; do
	serial=$(openssl x509 -in "ca/$f.pem" -noout -serial | cut -d= -f2)
	run "$store" -c vigil.conf status demo "$serial"
done

step "An incident: the CA halts issuance; one more certificate is revoked at once"
run "$store" -c vigil.conf freeze demo
mail=$(openssl x509 -in ca/mail.pem -noout -serial | cut -d= -f2)
run "$store" -c vigil.conf revoke demo "$mail" --reason keyCompromise
run "$store" -c vigil.conf release demo "$(openssl x509 -in ca/shop.pem -noout -serial | cut -d= -f2)"
run "$store" -c vigil.conf list demo --revoked
run "$store" -c vigil.conf stats
run "$store" -c vigil.conf audit

if [ -x "$responder" ] && "$responder" --help >/dev/null 2>&1; then
	step "vigil-responder on 127.0.0.1:$port; openssl ocsp asks it, verifying against the CA"
	"$responder" -c vigil.conf 2> responder.log &
	rpid=$!
	trap 'kill $rpid 2>/dev/null || true' EXIT
	i=0
	until grep -q "event=listening" responder.log 2>/dev/null || [ $i -ge 50 ]; do
		kill -0 $rpid 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if ! grep -q "event=listening" responder.log; then
		echo "demo: vigil-responder did not start:" >&2
		cat responder.log >&2
		exit 1
	fi
	for f in www mail vpn; do
		run openssl ocsp -issuer ca/ca.pem -cert "ca/$f.pem" -CAfile ca/ca.pem \
			-url "http://127.0.0.1:$port/" -resp_text -noverify 2>&1 |
			grep -E "Cert Status|Revocation|Reason|This Update|Next Update|Response verify" || true
		run openssl ocsp -issuer ca/ca.pem -cert "ca/$f.pem" -CAfile ca/ca.pem \
			-url "http://127.0.0.1:$port/" 2>&1 | head -3
	done
	echo "-- a serial the CA never issued (the CA is frozen, not_issued = revoked):"
	run openssl ocsp -issuer ca/ca.pem -serial 0xDEADBEEF -CAfile ca/ca.pem \
		-url "http://127.0.0.1:$port/" 2>&1 | head -4
fi

if [ -x "$crlgen" ] && "$crlgen" --help >/dev/null 2>&1; then
	step "vigil-crlgen publishes the CRL; openssl shows and verifies it"
	run "$crlgen" -c vigil.conf --once
	run openssl crl -in crl/demo.crl -inform DER -CAfile ca/ca.pem -noout -text
	if [ -n "${rpid:-}" ]; then
		step "The responder serves it too"
		run curl -s -o crl-fetched.crl -w '%{http_code} %{content_type}\n' \
			"http://127.0.0.1:$port/crl/demo.crl" || true
	fi
fi

if [ -n "${rpid:-}" ]; then
	kill "$rpid" 2>/dev/null || true
	wait "$rpid" 2>/dev/null || true
	trap - EXIT
fi
step "Done. Files are in $demo"
