# SPDX-License-Identifier: Apache-2.0
"""Helpers for the HSM tests: a SoftHSM2 token in a temporary directory and
CAs whose keys live in it, made with the openssl CLI through the libp11
engine (openssl req/ca -engine pkcs11 -keyform engine), as a CA operator
with an HSM makes them.

Nothing here reads a private key: the token makes every signature."""
import os
import shutil
import subprocess
from pathlib import Path

import pki
from conftest import run

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"
SO_PIN = "5678"


def engines_dir():
    r = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True)
    # ENGINESDIR: "/usr/lib/x86_64-linux-gnu/engines-3"
    return r.stdout.split('"')[1] if r.stdout.count('"') >= 2 else ""


def missing():
    """None when SoftHSM2, pkcs11-tool and the libp11 engine are installed;
    otherwise what is missing, as a skip reason."""
    need = []
    if not os.path.exists(SOFTHSM_MODULE) or not shutil.which("softhsm2-util"):
        need.append("softhsm2")
    if not os.path.exists(os.path.join(engines_dir(), "pkcs11.so")):
        need.append("libengine-pkcs11-openssl")
    if not shutil.which("pkcs11-tool"):
        need.append("opensc")
    if need:
        return "not installed: " + " ".join(need) + " (deploy/setup.sh deps installs them)"
    return None


class Token:
    """A SoftHSM2 token, labelled |label|, in |root|/softhsm, holding an ECDSA
    P-256 key (object "ec", id 01) and an RSA-2048 key (object "rsa", id 02).
    SOFTHSM2_CONF points at its configuration in self.env; the tests copy it
    into os.environ so that the programs they start find the token."""

    def __init__(self, root, label="vigil"):
        self.label = label
        self.dir = Path(root) / "softhsm"
        self.tokendir = self.dir / "tokens"
        self.tokendir.mkdir(parents=True)
        self.conf = self.dir / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.tokendir}\n"
                             "objectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ, SOFTHSM2_CONF=str(self.conf))
        # The PIN as an operator writes it, with a newline, for Vigil; the
        # openssl CLI (libp11 itself) takes the file's bytes as they are.
        self.pin_file = self.dir / "pin"
        self.pin_file.write_text(PIN + "\n")
        self.pin_file.chmod(0o600)
        self.pin_raw = self.dir / "pin.raw"
        self.pin_raw.write_text(PIN)
        self.pin_raw.chmod(0o600)
        run("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
            "--pin", PIN, env=self.env)
        for obj, kid, ktype in (("ec", "01", "EC:prime256v1"), ("rsa", "02", "rsa:2048")):
            run("pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--login",
                "--pin", PIN, "--keypairgen", "--key-type", ktype, "--label", obj, "--id", kid,
                env=self.env)

    def uri(self, obj, pin_file=None, extra=""):
        """The URI Vigil's config names the key by: the PIN from a file."""
        return (f"pkcs11:token={self.label};object={obj};type=private"
                f"?pin-source=file:{pin_file or self.pin_file}{extra}")

    def cli_uri(self, obj):
        """The same key for the openssl CLI (-engine pkcs11 -keyform engine)."""
        return f"pkcs11:token={self.label};object={obj};type=private?pin-source=file:{self.pin_raw}"

    def objects(self):
        return run("pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", self.label,
                   "--login", "--pin", PIN, "--list-objects", env=self.env).stdout

    def fail(self):
        """Make the token fail under a running program. SoftHSM2 re-reads its
        file store on every operation: with the token's files gone, C_Sign*
        answers CKR_OBJECT_HANDLE_INVALID (what an HSM that lost its key
        store, or was swapped, answers). Works as root, unlike chmod."""
        self.gone = self.dir / "tokens.gone"
        self.tokendir.rename(self.gone)
        self.tokendir.mkdir()

    def restore(self):
        self.tokendir.rmdir()
        self.gone.rename(self.tokendir)


class HsmCA:
    """A CA managed with `openssl ca` whose private key is token object |obj|."""

    def __init__(self, root, name, token, obj):
        pki.ca_dir(self, root, name)
        self.token = token
        self.obj = obj
        self.cert = self.dir / "ca.pem"
        self.key = token.uri(obj)  # what Vigil's config names
        self._openssl("req", "-new", "-x509", "-config", self.cnf, "-engine", "pkcs11",
                      "-keyform", "engine", "-key", token.cli_uri(obj),
                      "-subj", f"/CN=Vigil HSM {name}", "-days", "3650",
                      "-extensions", "ca_ext", "-out", self.cert)

    def _openssl(self, *args):
        return run("openssl", *args, env=self.token.env)

    def _ca(self, *args):
        return self._openssl("ca", "-batch", "-config", self.cnf, "-engine", "pkcs11",
                             "-keyform", "engine", "-keyfile", self.token.cli_uri(self.obj),
                             *args)

    def issue(self, cn):
        """Issue one leaf, signed by the token; returns (serial_hex, cert_path)."""
        serial, key, csr, out = pki.leaf_files(self)
        pki.genkey(key, "ec")
        self._openssl("req", "-new", "-config", self.cnf, "-key", key, "-subj", f"/CN={cn}",
                      "-out", csr)
        self._ca("-in", csr, "-out", out, "-notext", "-days", "365")
        self.leaves[serial] = out
        return serial, out

    def revoke(self, cert_path, reason="keyCompromise"):
        self._ca("-revoke", cert_path, "-crl_reason", reason)

    @property
    def index(self):
        return self.dir / "index.txt"


def with_key(ca, key):
    """|ca| for conftest.write_config with |key| (a pkcs11: URI) as both its
    ocsp_key and its crl_key."""
    return (ca, {"ocsp_key": key, "crl_key": key})

