#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the responder fuzz targets:
tests/fuzz/corpus/ocsp_req (DER OCSP requests, from openssl ocsp -reqout) and
tests/fuzz/corpus/http_req (HTTP requests carrying them, and the other routes).
    tests/fuzz/gen_seeds.py PKIDIR   (PKIDIR: the *.pem gen_pki.py wrote)
The CertIDs name the CAs of fuzz_pki.h; keep both from the same gen_pki.py run."""
import base64, os, subprocess, sys, tempfile, urllib.parse

pki = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
oc = os.path.join(here, "corpus", "ocsp_req")
hc = os.path.join(here, "corpus", "http_req")
os.makedirs(oc, exist_ok=True)
os.makedirs(hc, exist_ok=True)
tmp = tempfile.mkdtemp()

def req(issuer, serials, *opts):
    out = os.path.join(tmp, "r.der")
    # The CertID digest option applies to the -serial options after it.
    args = ["openssl", "ocsp"] + list(opts) + ["-issuer", os.path.join(pki, issuer + "_cert.pem")]
    for s in serials:
        args += ["-serial", s]
    subprocess.run(args + ["-reqout", out], check=True, capture_output=True)
    return open(out, "rb").read()

# A foreign CA, for mixed requests.
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-subj", "/CN=Foreign", "-keyout", os.path.join(tmp, "f.key"),
                "-out", os.path.join(tmp, "foreign_cert.pem"), "-days", "36500"],
               check=True, capture_output=True)


reqs = {
    "alpha_good": req("alpha", ["1"], "-no_nonce"),
    "alpha_revoked_nonce": req("alpha", ["2"]),
    "alpha_hold_sha256": req("alpha", ["3"], "-no_nonce", "-sha256"),
    "alpha_top_bit": req("alpha", ["0x80"], "-no_nonce"),
    "alpha_long_serial": req("alpha", ["0x7F0102030405060708090A0B0C0D0E0F10111213"], "-no_nonce"),
    "alpha_absent_sha512": req("alpha", ["0x99"], "-no_nonce", "-sha512"),
    "alpha_several": req("alpha", ["1", "2", "3", "0x99"], "-no_nonce"),
    "alpha_several_nonce": req("alpha", ["1", "2"], "-sha256"),
    "beta_good": req("beta", ["0x10"], "-no_nonce"),
    "beta_revoked_sha256": req("beta", ["0x11"], "-no_nonce", "-sha256"),
    "beta_absent_frozen": req("beta", ["0x12"], "-no_nonce"),
    "gamma_good_sha384": req("gamma", ["5"], "-no_nonce", "-sha384"),
    "gamma_nonce": req("gamma", ["6"]),
}
fo = os.path.join(tmp, "foreign_cert.pem")
out = os.path.join(tmp, "m.der")
subprocess.run(["openssl", "ocsp", "-issuer", fo, "-serial", "0x42", "-issuer",
                os.path.join(pki, "alpha_cert.pem"), "-serial", "2", "-no_nonce", "-reqout", out],
               check=True, capture_output=True)
reqs["foreign_then_alpha"] = open(out, "rb").read()
subprocess.run(["openssl", "ocsp", "-issuer", fo, "-serial", "0x42", "-no_nonce", "-reqout", out],
               check=True, capture_output=True)
reqs["foreign_only"] = open(out, "rb").read()
subprocess.run(["openssl", "ocsp", "-issuer", os.path.join(pki, "alpha_cert.pem"), "-serial", "1",
                "-issuer", os.path.join(pki, "beta_cert.pem"), "-serial", "0x10", "-reqout", out],
               check=True, capture_output=True)
reqs["alpha_beta_nonce"] = open(out, "rb").read()
g = reqs["alpha_good"]
reqs["trailing_garbage"] = g + b"\x00\x01"
reqs["truncated"] = g[:-3]
reqs["empty_sequence"] = b"\x30\x00"
for n, d in reqs.items():
    open(os.path.join(oc, n), "wb").write(d)

def b64(d, safe=""):
    return urllib.parse.quote(base64.b64encode(d).decode(), safe=safe)

def post(d, path="/", extra=b""):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: ocsp.example\r\n"
            b"Content-Type: application/ocsp-request\r\nContent-Length: "
            + str(len(d)).encode() + b"\r\n" + extra + b"\r\n" + d)

def get(path, extra=b"", method=b"GET", ver=b"1.1"):
    return method + b" " + path.encode() + b" HTTP/" + ver + b"\r\nHost: ocsp.example\r\n" + extra + b"\r\n"

alpha = reqs["alpha_good"]
http = {
    "get_b64": get("/" + b64(alpha)),
    "get_b64_raw_slash": get("/" + base64.b64encode(reqs["alpha_hold_sha256"]).decode()),
    "get_b64url": get("/" + base64.urlsafe_b64encode(reqs["beta_good"]).decode().rstrip("=")),
    "get_prefix": get("/ocsp/" + b64(reqs["gamma_good_sha384"])),
    "get_inm": get("/" + b64(alpha), b'If-None-Match: W/"0011", "abc", *\r\n'),
    "get_http10_keepalive": get("/" + b64(alpha), b"Connection: keep-alive\r\n", ver=b"1.0"),
    "get_absolute": get("http://ocsp.example/" + b64(reqs["beta_absent_frozen"])),
    "get_query": get("/" + b64(alpha) + "?x=1"),
    "get_bad_pct": get("/MEow%2"),
    "get_bad_b64": get("/M!!!!"),
    "get_root": get("/"),
    "head_b64": get("/" + b64(alpha), method=b"HEAD"),
    "head_crl": get("/crl/alpha.crl", method=b"HEAD"),
    "post": post(reqs["alpha_revoked_nonce"]),
    "post_several": post(reqs["alpha_several"]),
    "post_foreign": post(reqs["foreign_then_alpha"]),
    "post_garbage": post(b"\x30\x03\x02\x01\x00"),
    "post_expect": post(reqs["alpha_beta_nonce"], extra=b"Expect: 100-continue\r\n"),
    "post_chunked": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + ("%x" % len(alpha)).encode() + b"\r\n" + alpha + b"\r\n0\r\n\r\n"),
    "post_too_large": b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n0",
    "pipelined_get_post": get("/" + b64(alpha)) + post(reqs["beta_revoked_sha256"]),
    "pipelined_same": get("/" + b64(alpha)) + get("/" + b64(alpha)) + get("/healthz"),
    "pipelined_close": get("/healthz", b"Connection: close\r\n") + get("/metrics"),
    "pipelined_garbage": get("/" + b64(alpha)) + b"\x16\x03\x01garbage\r\n\r\n",
    "healthz": get("/healthz"),
    "metrics": get("/metrics"),
    "crl_alpha": get("/crl/alpha.crl"),
    "crl_alpha_inm": get("/crl/alpha.crl", b'If-None-Match: "x"\r\n'),
    "crl_beta_garbage": get("/crl/beta.crl"),
    "crl_gamma_absent": get("/crl/gamma.crl"),
    "crl_unknown": get("/crl/zeta.crl") + get("/crl/a/b.crl"),
    "post_healthz": post(b"x", path="/healthz"),
    "delete": get("/", method=b"DELETE"),
    "long_header": get("/", b"X-Long: " + b"a" * 9000 + b"\r\n"),
    "long_url": get("/" + "M" * 9000),
    "no_url": b"GET HTTP/1.1\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "partial_headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    "partial_body": b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n0\x82",
    "http09": b"GET /\r\n",
}
for n, d in http.items():
    open(os.path.join(hc, n), "wb").write(d)
print(len(reqs), "ocsp_req seeds,", len(http), "http_req seeds")
