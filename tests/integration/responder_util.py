# SPDX-License-Identifier: Apache-2.0
"""Helpers for the vigil-responder integration tests: start and stop the real
binary, talk HTTP to it (http.client and raw sockets), build OCSP requests and
check OCSP responses with python3-cryptography, independently of OpenSSL's C
code paths the responder uses."""
import base64
import datetime
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from conftest import binary, der_tlv, write_config



EXT_REVOKE_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.9")


def _die_with_parent():
    """In the child: get SIGTERM when the test process dies, so that a killed
    test run leaves no responder behind (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


class Responder:
    """The real vigil-responder on 127.0.0.1 with an ephemeral port.

    Use as a context manager: the process is always stopped (SIGTERM, then
    SIGKILL after a bounded wait)."""

    def __init__(self, config, args=(), preexec=None):
        self.config = Path(config)
        self.args = list(args)
        self.preexec = preexec  # also run in the child before exec (limits, ids)
        self.proc = None
        self.lines = []
        self.lock = threading.Lock()
        self.port = None
        self.returncode = None

    def _reader(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)

    def start(self, timeout=10):
        cmd = [str(binary("vigil-responder")), "-c", str(self.config)] + self.args
        def preexec():
            _die_with_parent()
            if self.preexec:
                self.preexec()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=preexec)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()
        line = self.wait_log(r"event=listening", timeout)
        m = re.search(r"addr=127\.0\.0\.1:(\d+)", line)
        assert m, line
        self.port = int(m.group(1))
        return self

    def wait_log(self, pattern, timeout=5, start=0):
        """Wait for a stderr line matching |pattern| (from line index |start|)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
            if self.proc.poll() is not None and not self.thread.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r}; got:\n" + "\n".join(self.lines))

    def n_lines(self):
        with self.lock:
            return len(self.lines)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc is None or self.proc.poll() is not None:
            self.returncode = self.proc.returncode if self.proc else None
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("vigil-responder did not stop within %ss of SIGTERM" % timeout)
        self.thread.join(5)
        self.check_sanitizers()
        return self.returncode

    def check_sanitizers(self):
        """Fail on any AddressSanitizer, LeakSanitizer or UBSan report (ASan builds)."""
        with self.lock:
            bad = [l for l in self.lines if "Sanitizer" in l or "runtime error:" in l]
        assert not bad, "sanitizer report:\n" + "\n".join(self.lines[-80:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    # ---- HTTP -------------------------------------------------------------------------

    def metric(self, name):
        """The value of the metric line |name| (labels included) on /metrics,
        or None when there is none."""
        _, _, body = self.request("GET", "/metrics")
        m = re.search(rf'^{re.escape(name)} (-?\d+)$', body.decode(), re.M)
        return int(m.group(1)) if m else None

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def post(self, der, path="/"):
        return self.request("POST", path, der, {"Content-Type": "application/ocsp-request"})

    def get(self, der, prefix="/", quote=True, headers=None):
        b64 = base64.b64encode(der).decode()
        seg = urllib.parse.quote(b64, safe="") if quote else b64
        return self.request("GET", prefix + seg, headers=headers)

    def raw(self, data, timeout=5, shutdown=False):
        """Send raw bytes; return everything received until EOF or timeout."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
            return recv_all(s, timeout)
        finally:
            s.close()


def recv_all_until(s, marker, timeout=5):
    """What |s| sends until |marker| is in it (or |timeout| s)."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        data += s.recv(4096)
    return data


def recv_all(s, timeout):
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def parse_responses(data):
    """Split raw HTTP/1.1 response bytes into [(status, headers, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"truncated response: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        if status == 100:
            n = 0
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


# ---- OCSP ---------------------------------------------------------------------------------

def load_cert(path):
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


_fake_key = None


def fake_cert(serial, issuer):
    """A throwaway certificate with |serial| naming |issuer|, to build CertIDs
    for serials that were never issued (a CertID only uses the serial, the
    issuer name and the issuer key)."""
    global _fake_key
    if _fake_key is None:
        _fake_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake")])
    now = datetime.datetime(2020, 1, 1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject)
            .public_key(_fake_key.public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(_fake_key, hashes.SHA256()))


def make_request(cert, issuer, alg=None, nonce=None):
    b = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, alg or hashes.SHA1())
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def verify_signature(pub, sig, data, hash_alg):
    if isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, data, padding.PKCS1v15(), hash_alg)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(hash_alg))
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, data)
    else:
        raise AssertionError(f"unexpected key type {pub!r}")


def check_response(der, ca_cert):
    """Parse a successful OCSP response and verify it is signed for |ca_cert|:
    by the CA key, or by an included delegated responder certificate that
    the CA issued with id-kp-OCSPSigning. Returns the parsed response."""
    r = ocsp.load_der_ocsp_response(der)
    assert r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, r.response_status
    if r.certificates:
        signer = r.certificates[0]
        assert signer.issuer == ca_cert.subject
        verify_signature(ca_cert.public_key(), signer.signature, signer.tbs_certificate_bytes,
                         signer.signature_hash_algorithm)
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    else:
        signer = ca_cert
    verify_signature(signer.public_key(), r.signature, r.tbs_response_bytes,
                     r.signature_hash_algorithm)
    # responderID by key hash: SHA-1 of the signer's subjectPublicKey BIT STRING.
    assert r.responder_name is None
    ski = x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
    assert r.responder_key_hash == ski
    return r


def status_of(der):
    return ocsp.load_der_ocsp_response(der).response_status


def openssl_ocsp(*args, timeout=30):
    """Run `openssl ocsp ARGS`; returns (rc, stdout+stderr)."""
    r = subprocess.run(["openssl", "ocsp"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def ocsptool(*args, timeout=30):
    r = subprocess.run(["ocsptool"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def http_date(s):
    from email.utils import parsedate_to_datetime
    return parsedate_to_datetime(s).replace(tzinfo=None)



class CrlMaker:
    """CRLs of |entries| revoked serials signed by |ca| (RSA, SHA-256), DER
    written by hand (python3-cryptography's builder takes minutes for
    200,000); each call makes another version (its thisUpdate one second
    later)."""

    def __init__(self, ca, entries):
        self.cert = load_cert(ca.cert)
        self.key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
        self.alg = der_tlv(0x30, der_tlv(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")
        self.now = datetime.datetime.utcnow().replace(microsecond=0)
        when = self.utc(self.now)
        self.revoked = der_tlv(0x30, b"".join(
            der_tlv(0x30, der_tlv(0x02, (10**12 + i).to_bytes(6, "big")) + when)
            for i in range(entries)))
        self.n = 0

    @staticmethod
    def utc(t):
        return der_tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())

    def make(self):
        t = self.now + datetime.timedelta(seconds=self.n)
        self.n += 1
        tbs = der_tlv(0x30, der_tlv(0x02, b"\x01") + self.alg + self.cert.subject.public_bytes() +
                      self.utc(t) + self.utc(t + datetime.timedelta(days=1)) + self.revoked)
        sig = self.key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        return der_tlv(0x30, tbs + self.alg + der_tlv(0x03, b"\x00" + sig))

    def publish(self, path):
        """Write a new version as crlgen does (a new file renamed over the old)."""
        der = self.make()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(der)
        os.replace(tmp, path)
        return der
