# SPDX-License-Identifier: Apache-2.0
"""A test PKI made with the openssl CLI, the way a CA operator makes one.

CA() builds a CA directory for `openssl ca` (index.txt, serial,
new_certs_dir), a delegated OCSP signer, and issues/revokes leaves through
`openssl ca` itself, so index.txt is OpenSSL's own database.
"""
import os
from pathlib import Path

from conftest import run

OPENSSL = "openssl"

CA_CNF = """\
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
x509_extensions = leaf_ext

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused

[ ca_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ leaf_ext ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess = OCSP;URI:http://127.0.0.1/

[ ocsp_ext ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def genkey(path, keytype="rsa"):
    if keytype == "rsa":
        run(OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    elif keytype == "ec":
        run(OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    elif keytype == "ed25519":
        run(OPENSSL, "genpkey", "-algorithm", "ED25519", "-out", path)
    else:
        raise ValueError(keytype)
    os.chmod(path, 0o600)


def ca_dir(ca, root, name):
    """Make |ca|'s directory for `openssl ca` (ca.dir, ca.cnf, ca.leaves):
    an empty index.txt, serials from 1000."""
    ca.name = name
    ca.dir = Path(root) / name
    ca.dir.mkdir(parents=True)
    (ca.dir / "newcerts").mkdir()
    (ca.dir / "index.txt").write_text("")
    (ca.dir / "index.txt.attr").write_text("unique_subject = no\n")
    (ca.dir / "serial").write_text("1000\n")
    (ca.dir / "crlnumber").write_text("01\n")
    ca.cnf = ca.dir / "ca.cnf"
    ca.cnf.write_text(CA_CNF.format(dir=ca.dir))
    ca.leaves = {}  # serial hex (upper) -> cert path


def leaf_files(ca):
    """The next leaf's serial (hex, upper) and its key, CSR and certificate paths."""
    serial = (ca.dir / "serial").read_text().strip().upper()
    return serial, *(ca.dir / f"leaf-{serial}.{ext}" for ext in ("key", "csr", "pem"))


class CA:
    """One CA managed with `openssl ca`."""

    def __init__(self, root, name, keytype="rsa"):
        ca_dir(self, root, name)
        self.keytype = keytype
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        genkey(self.key, keytype)
        run(OPENSSL, "req", "-new", "-x509", "-config", self.cnf, "-key", self.key,
            "-subj", f"/CN=Vigil Test {name}", "-days", "3650", "-extensions", "ca_ext",
            "-out", self.cert)
        # Delegated OCSP signer.
        self.ocsp_key = self.dir / "ocsp.key"
        self.ocsp_cert = self.dir / "ocsp.pem"
        genkey(self.ocsp_key, keytype)
        csr = self.dir / "ocsp.csr"
        run(OPENSSL, "req", "-new", "-config", self.cnf, "-key", self.ocsp_key,
            "-subj", f"/CN={name} OCSP", "-out", csr)
        run(OPENSSL, "ca", "-batch", "-config", self.cnf, "-extensions", "ocsp_ext",
            "-in", csr, "-out", self.ocsp_cert, "-notext")

    def issue(self, cn, keytype="ec", days=365, startdate=None, enddate=None):
        """Issue one leaf through `openssl ca`, valid for |days| or from
        |startdate| to |enddate| (YYYYMMDDHHMMSSZ); returns (serial_hex, cert_path)."""
        serial, key, csr, out = leaf_files(self)
        genkey(key, keytype)
        run(OPENSSL, "req", "-new", "-config", self.cnf, "-key", key, "-subj", f"/CN={cn}",
            "-out", csr)
        args = [OPENSSL, "ca", "-batch", "-config", self.cnf, "-in", csr, "-out", out,
                "-notext"]
        if startdate:
            args += ["-startdate", startdate]
        args += ["-enddate", enddate] if enddate else ["-days", str(days)]
        run(*args)
        self.leaves[serial] = out
        return serial, out

    def revoke(self, cert_path, reason=None, extra=None):
        """Revoke through `openssl ca -revoke`; reason is an openssl crl_reason,
        or extra is e.g. ["-crl_compromise", "20240101000000Z"]."""
        args = [OPENSSL, "ca", "-batch", "-config", self.cnf, "-revoke", cert_path]
        if reason:
            args += ["-crl_reason", reason]
        if extra:
            args += extra
        run(*args)

    @property
    def index(self):
        return self.dir / "index.txt"

    def index_rows(self):
        rows = []
        for line in self.index.read_text().splitlines():
            f = line.split("\t")
            rows.append({"status": f[0], "expiry": f[1], "rev": f[2], "serial": f[3].upper(),
                         "file": f[4], "subject": f[5]})
        return rows


def _utc_seconds(t):
    """A naive UTC datetime to whole seconds (a certificate's time has no fraction)."""
    return t.replace(microsecond=0, tzinfo=None)


def _load_key(path):
    from cryptography.hazmat.primitives import serialization
    return serialization.load_pem_private_key(Path(path).read_bytes(), None)


def _sign_hash(key):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def make_ocsp_signer(ca, path, not_after, not_before=None, serial=None):
    """Write to |path| a delegated OCSP signer certificate for |ca| (the key
    ca.ocsp_key, issued and signed by the CA key) valid from |not_before|
    (default: an hour ago) to |not_after| (naive UTC datetimes): any validity,
    in the past too, which `openssl ca` does not make easily. Returns the
    notAfter as written (whole seconds)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    ca_key = _load_key(ca.key)
    ca_cert = x509.load_pem_x509_certificate(Path(ca.cert).read_bytes())
    signer_key = _load_key(ca.ocsp_key)
    not_after = _utc_seconds(not_after)
    if not_before is None:
        not_before = min(datetime.datetime.utcnow(), not_after) - datetime.timedelta(hours=1)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string(f"CN={ca.name} OCSP {not_after:%Y%m%d%H%M%S}"))
            .issuer_name(ca_cert.subject).public_key(signer_key.public_key())
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(_utc_seconds(not_before)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), False)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.OCSP_SIGNING]), True)
            .add_extension(x509.OCSPNoCheck(), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, _sign_hash(ca_key)))
    Path(path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return not_after


def reissue_ca_cert(ca, path, not_after, not_before=None):
    """Write to |path| the certificate of |ca| again (same subject, same key,
    same key identifier, self-signed) with the validity |not_before| (default:
    a year before |not_after| or now, whichever is earlier) to |not_after|
    (naive UTC). Returns the notAfter as written."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    key = _load_key(ca.key)
    old = x509.load_pem_x509_certificate(Path(ca.cert).read_bytes())
    not_after = _utc_seconds(not_after)
    if not_before is None:
        not_before = min(datetime.datetime.utcnow(), not_after) - datetime.timedelta(days=365)
    b = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(_utc_seconds(not_before)).not_valid_after(not_after))
    for ext in old.extensions:
        b = b.add_extension(ext.value, ext.critical)
    cert = b.sign(key, _sign_hash(key))
    Path(path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return not_after
