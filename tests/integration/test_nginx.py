# SPDX-License-Identifier: Apache-2.0
"""A CDN edge in front of the responder: Debian's real nginx on 127.0.0.1, run
with the shipped deploy/nginx/vigil-edge.conf (only the origin address, the
cache directory and the listen address substituted), in front of the real
vigil-responder, with answers checked by python3-cryptography.

How long an answer stays in the edge is the answer's own lifetime: the
responder sends max-age = nextUpdate - now, and nextUpdate = thisUpdate +
ocsp_validity, which the configuration cannot make shorter than 8 hours
(Baseline Requirements §4.9.10; refresh_percent, at most 90, only makes the
responder re-sign earlier, so the shortest max-age it can ever send is 48
minutes). A test cannot wait for that. So, as the issue allows, these tests
check the arithmetic instead: with ocsp_validity = 8h a fresh answer has
max-age 28800, Expires = nextUpdate, and nginx's own record of the entry (the
expiry time in its cache file header) is the answer's nextUpdate, with no
stale-while-revalidate or stale-if-error window. They show the edge serving
the cached good answer after a revocation, while the entry is fresh.

To show what happens when an entry's max-age runs out, the tests then move
that one entry's expiry time, in nginx's cache file, to a second ago, as if
the clock had reached nextUpdate (nginx re-reads that header at every request,
so its own logic decides what happens next): the revocation comes through
(EXPIRED, then HIT on the revoked answer); with the responder stopped, the
edge serves a fresh entry (HIT) but answers 502 for an expired one instead of
the expired answer. Nothing else is simulated: the origin is the real
responder and the edge is the real nginx with the shipped configuration.
"""
import base64
import datetime
import subprocess
import time
import urllib.parse
from email.utils import parsedate_to_datetime

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import pki
from conftest import Runner, write_config
from nginx_util import EDGE_CONF, NGINX, Nginx
from responder_util import Responder, check_response, fake_cert, load_cert, make_request

pytestmark = pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed (/usr/sbin/nginx)")

VALIDITY = 8 * 3600  # ocsp_validity = 8h, the shortest the configuration allows


class Env:
    pass


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """One CA, one store, the responder and nginx in front of it."""
    e = Env()
    root = tmp_path_factory.mktemp("edge")
    e.root = root
    e.ca = pki.CA(root, "edge1", "ec")
    e.ca_cert = load_cert(e.ca.cert)
    e.leaf = {n: e.ca.issue(f"{n}.example") for n in ("hit", "rev", "purge", "post", "down", "cold")}
    e.crl_dir = root / "crl"
    e.crl_dir.mkdir()
    e.origin_log = root / "access.log"
    e.config = write_config(root / "vigil.conf", root / "store",
                            [(e.ca, {"ocsp_validity": "8h"})],
                            responder={"access_log": e.origin_log, "refresh_percent": "50"},
                            crl_out=e.crl_dir,
                            # max_age = 0: shared caches keep answers until
                            # nextUpdate, the arithmetic these tests check
                            # (test_edge.py checks the default's s-maxage).
                            edge={"max_age": 0})
    e.store = Runner(e.config).seed(e.ca)
    crlgen(e)
    e.resp = Responder(e.config).start()
    e.nginx = Nginx(root / "nginx", e.resp.port)
    try:
        e.nginx.start()
        yield e
    finally:
        try:
            e.nginx.stop()
        finally:
            e.resp.stop()


def crlgen(e):
    e.store.crlgen("--once", timeout=60)


def ocsp_uri(e, name, nonce=None):
    der = make_request(load_cert(e.leaf[name][1]), e.ca_cert, nonce=nonce)
    return "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def post_body(e, name):
    return make_request(load_cert(e.leaf[name][1]), e.ca_cert)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def hdate(s):
    return parsedate_to_datetime(s).replace(tzinfo=None)


def ts(dt):
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp())


def max_age(cc):
    for part in cc.split(","):
        k, _, v = part.strip().partition("=")
        if k.lower() == "max-age":
            return int(v)
    return None


def answer(e, der, name, status):
    """Verify a GET/POST answer: signed for the CA (delegated signer checked),
    for |name|'s serial, with |status|, thisUpdate not in the future and
    nextUpdate ahead. Returns the single response."""
    r = check_response(der, e.ca_cert)
    assert r.serial_number == int(e.leaf[name][0], 16)
    assert r.certificate_status == status, r.certificate_status
    now = utcnow()
    assert r.this_update <= now + datetime.timedelta(seconds=2)
    assert r.next_update > now, (r.next_update, now)
    return r


def origin_requests(e, method, path):
    """Requests for |path| that reached the responder (its access log)."""
    n = 0
    for line in e.origin_log.read_text().splitlines():
        if f" method={method} " in line and f' path="{path}" ' in line:
            n += 1
    return n


def test_shipped_config_runs_unchanged_but_for_addresses(edge):
    """The edge runs deploy/nginx/vigil-edge.conf itself: the running copy differs
    from the shipped file only in the lines an operator sets."""
    shipped = EDGE_CONF.read_text().splitlines()
    running = edge.nginx.edge_conf.read_text().splitlines()
    assert len(shipped) == len(running)
    changed = [(a, b) for a, b in zip(shipped, running) if a != b]
    assert len(changed) == 5, changed
    for a, _ in changed:
        assert "<- set" in a or "[::]:80" in a, a
    listens = [l.split("#")[0].split() for l in running if l.split("#")[0].strip().startswith("listen")]
    assert listens == [["listen", f"127.0.0.1:{edge.nginx.port};"],
                       ["listen", f"127.0.0.1:{edge.nginx.purge_port};"]]


def test_second_get_is_a_cache_hit_with_a_valid_unexpired_answer(edge):
    e, ng = edge, edge.nginx
    uri = ocsp_uri(e, "hit")
    s1, h1, b1 = ng.request("GET", uri)
    assert s1 == 200 and h1["x-cache-status"] == "MISS"
    s2, h2, b2 = ng.request("GET", uri)
    assert s2 == 200 and h2["x-cache-status"] == "HIT", h2
    assert b2 == b1 and h2["etag"] == h1["etag"]
    assert h2["content-type"] == "application/ocsp-response"
    r = answer(e, b2, "hit", ocsp.OCSPCertStatus.GOOD)
    # Only the MISS reached the responder.
    assert origin_requests(e, "GET", uri) == 1
    # Headers to clients: Expires is the answer's nextUpdate and Last-Modified
    # its thisUpdate; max-age is dropped (see vigil-edge.conf), so a client's
    # cache times the answer by Expires - Date, which the HIT keeps exact.
    assert hdate(h2["expires"]) == r.next_update
    assert hdate(h2["last-modified"]) == r.this_update
    assert max_age(h2["cache-control"]) is None
    assert {"public", "no-transform", "must-revalidate"} <= {
        p.strip() for p in h2["cache-control"].split(",")}
    assert hdate(h2["date"]) <= r.next_update
    # nginx's own record: the entry stops being fresh at nextUpdate (within the
    # second the responder's max-age was computed in), with no stale windows.
    ent = ng.cache_entry(uri)
    assert abs(ent["valid_sec"] - ts(r.next_update)) <= 2, (ent, r.next_update)
    assert ent["updating_sec"] == 0 and ent["error_sec"] == 0
    # A client's If-None-Match is answered by the edge.
    s3, h3, b3 = ng.request("GET", uri, headers={"If-None-Match": h1["etag"]})
    assert s3 == 304 and b3 == b"" and h3["x-cache-status"] == "HIT"
    # At expiry the edge revalidates (If-None-Match to the responder, 304 while
    # the responder's answer is unchanged) and keeps serving the whole answer.
    ng.age_entry(uri, int(time.time()) - 1)
    s4, h4, b4 = ng.request("GET", uri)
    assert s4 == 200 and h4["x-cache-status"] == "REVALIDATED", h4
    assert b4 == b1
    # nginx writes the new expiry into the entry after answering: wait for it.
    deadline = time.monotonic() + 5
    while abs(ng.cache_entry(uri)["valid_sec"] - ts(r.next_update)) > 2:
        assert time.monotonic() < deadline, ng.cache_entry(uri)
        time.sleep(0.02)
    # The responder's 304 carries the cache headers and no Content-Length.
    s5, h5, b5 = e.resp.request("GET", uri, headers={"If-None-Match": h1["etag"]})
    assert s5 == 304 and "content-length" not in h5 and max_age(h5["cache-control"]) > 0


def test_cache_headers_never_outlast_next_update(edge):
    """For answers signed at any moment of a second: Last-Modified (thisUpdate)
    is not after Date, max-age is at most ocsp_validity, and Date + max-age is
    not after Expires = nextUpdate, so neither the edge (which stores an answer
    for max-age from when it receives it) nor any other cache keeps an answer
    past its nextUpdate. Fresh answers come from serials the store does not
    hold (each is signed when first asked), asked for in the first tens of
    milliseconds of three successive seconds, where the responder's cached
    Date (moved on every 50 ms) may still name the second before."""
    e = edge
    serial = 0x7E0000
    for _ in range(3):
        time.sleep(1.002 - time.time() % 1)
        for _ in range(8):
            serial += 1
            der = make_request(fake_cert(serial, e.ca_cert), e.ca_cert)
            uri = "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
            s, h, b = e.resp.request("GET", uri)
            assert s == 200
            r = ocsp.load_der_ocsp_response(b)
            assert r.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
            date, ma = ts(hdate(h["date"])), max_age(h["cache-control"])
            assert ts(hdate(h["last-modified"])) == ts(r.this_update) <= date, h
            assert ts(hdate(h["expires"])) == ts(r.next_update)
            assert ma <= VALIDITY and date + ma <= ts(r.next_update), h


def test_revocation_reaches_the_edge_no_later_than_max_age(edge):
    """max-age is what the operator configured: ocsp_validity = 8h gives a fresh
    answer max-age 28800 = nextUpdate - Date. After a revocation the edge keeps
    serving the good answer it holds (HIT) until that answer's max-age runs out:
    its entry expires at the answer's nextUpdate, at most ocsp_validity after
    it was signed. Once that time has come, the next request brings the
    revoked answer."""
    e, ng = edge, edge.nginx
    uri = ocsp_uri(e, "rev")
    # The origin's arithmetic, for an answer just signed.
    s, h, b = e.resp.request("GET", uri)
    assert s == 200
    r0 = answer(e, b, "rev", ocsp.OCSPCertStatus.GOOD)
    assert r0.next_update - r0.this_update == datetime.timedelta(seconds=VALIDITY)
    assert hdate(h["expires"]) == r0.next_update
    ma = max_age(h["cache-control"])
    assert VALIDITY - 2 <= ma <= VALIDITY, h["cache-control"]
    assert abs(ts(hdate(h["date"])) + ma - ts(r0.next_update)) <= 1
    # Through the edge: cached.
    s1, h1, b1 = ng.request("GET", uri)
    s2, h2, b2 = ng.request("GET", uri)
    assert (s1, h1["x-cache-status"], s2, h2["x-cache-status"]) == (200, "MISS", 200, "HIT")
    good = answer(e, b2, "rev", ocsp.OCSPCertStatus.GOOD)
    # Revoke; the responder answers revoked at once.
    e.store.store("revoke", e.ca.name, e.leaf["rev"][0], "--reason", "keyCompromise")
    deadline = time.monotonic() + 5
    while True:
        s, h, b = e.resp.request("GET", uri)
        if ocsp.load_der_ocsp_response(b).certificate_status == ocsp.OCSPCertStatus.REVOKED:
            break
        assert time.monotonic() < deadline, "the responder did not answer revoked within 5 s"
        time.sleep(0.05)
    # The edge still has the good answer, fresh until its max-age runs out, at
    # its nextUpdate: that is the bound on how late the revocation shows.
    s3, h3, b3 = ng.request("GET", uri)
    assert s3 == 200 and h3["x-cache-status"] == "HIT" and b3 == b2
    ent = ng.cache_entry(uri)
    assert abs(ent["valid_sec"] - ts(good.next_update)) <= 2
    assert ent["valid_sec"] <= ts(hdate(h1["date"])) + VALIDITY + 1
    # Moments before that time, still the good answer...
    ng.age_entry(uri, int(time.time()) + 3)
    s4, h4, b4 = ng.request("GET", uri)
    assert h4["x-cache-status"] == "HIT" and b4 == b2
    # ...and once it has come, the revoked one, then cached in its turn.
    ng.age_entry(uri, int(time.time()) - 1)
    s5, h5, b5 = ng.request("GET", uri)
    assert s5 == 200 and h5["x-cache-status"] == "EXPIRED", h5
    rv = answer(e, b5, "rev", ocsp.OCSPCertStatus.REVOKED)
    assert rv.revocation_reason == x509.ReasonFlags.key_compromise
    s6, h6, b6 = ng.request("GET", uri)
    assert h6["x-cache-status"] == "HIT" and b6 == b5
    assert hdate(h6["expires"]) == rv.next_update


def test_purge_brings_an_emergency_revocation_out_at_once(edge):
    """The operator's way not to wait for max-age: delete the cache files (as
    the README and vigil-edge.conf say); nginx fetches again, no reload."""
    e, ng = edge, edge.nginx
    uri = ocsp_uri(e, "purge")
    ng.request("GET", uri)
    assert ng.request("GET", uri)[1]["x-cache-status"] == "HIT"
    e.store.store("revoke", e.ca.name, e.leaf["purge"][0], "--reason", "keyCompromise")
    subprocess.run(["find", str(ng.cache_dir), "-type", "f", "-delete"], check=True, timeout=20)
    deadline = time.monotonic() + 5
    while True:
        s, h, b = ng.request("GET", uri)
        assert s == 200 and h["x-cache-status"] in ("MISS", "HIT"), h
        st = ocsp.load_der_ocsp_response(b).certificate_status
        if st == ocsp.OCSPCertStatus.REVOKED:
            break
        assert time.monotonic() < deadline, "no revoked answer through the edge within 5 s"
        # A good answer fetched from the edge before the commit may have
        # been cached again after the first purge: purge again.
        subprocess.run(["find", str(ng.cache_dir), "-type", "f", "-delete"], check=True,
                       timeout=20)
        time.sleep(0.1)
    answer(e, b, "purge", ocsp.OCSPCertStatus.REVOKED)


def test_unencoded_base64_passes_unchanged(edge):
    """RFC 6960 App. A clients may leave '/', '+' and '=' unencoded; the edge
    forwards the request line as sent."""
    e, ng = edge, edge.nginx
    der = post_body(e, "post")
    raw = "/" + base64.b64encode(der).decode()
    s, h, b = ng.request("GET", raw)
    assert s == 200 and h["x-cache-status"] == "MISS"
    answer(e, b, "post", ocsp.OCSPCertStatus.GOOD)
    assert ng.request("GET", raw)[1]["x-cache-status"] == "HIT"
    assert origin_requests(e, "GET", raw) == 1


def test_post_is_never_cached(edge):
    e, ng = edge, edge.nginx
    body = post_body(e, "post")
    # A cached GET for the same certificate changes nothing for POST.
    ng.request("GET", ocsp_uri(e, "post"))
    assert ng.request("GET", ocsp_uri(e, "post"))[1]["x-cache-status"] == "HIT"
    before = origin_requests(e, "POST", "/")
    for _ in range(3):
        s, h, b = ng.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
        assert s == 200
        assert h.get("x-cache-status") in (None, "BYPASS", "MISS"), h
        assert h["cache-control"] == "no-store"
        answer(e, b, "post", ocsp.OCSPCertStatus.GOOD)
    # Every POST reached the responder, and nginx stored nothing under "/".
    assert origin_requests(e, "POST", "/") == before + 3
    assert ng.cache_entry("/") is None


def test_answers_without_a_lifetime_are_not_cached(edge):
    """A nonced GET gets a fresh answer for that nonce (no-store): never cached."""
    e, ng = edge, edge.nginx
    uri = ocsp_uri(e, "post", nonce=b"0123456789abcdef")
    for _ in range(2):
        s, h, b = ng.request("GET", uri)
        assert s == 200 and h["x-cache-status"] == "MISS" and h["cache-control"] == "no-store"
    assert ng.cache_entry(uri) is None
    assert origin_requests(e, "GET", uri) == 2
    # Health is passed through, uncached; metrics are not exposed at the edge.
    s, h, _ = ng.request("GET", "/healthz")
    assert s == 200 and h["x-cache-status"] == "MISS"
    assert ng.request("GET", "/metrics")[0] == 404


def test_crl_cached_until_its_next_update(edge):
    e, ng = edge, edge.nginx
    uri = f"/crl/{e.ca.name}.crl"
    s1, h1, b1 = ng.request("GET", uri)
    s2, h2, b2 = ng.request("GET", uri)
    assert (s1, h1["x-cache-status"], s2, h2["x-cache-status"]) == (200, "MISS", 200, "HIT")
    assert b2 == b1 and h2["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(b2)
    assert crl.is_signature_valid(e.ca_cert.public_key())
    assert crl.next_update > utcnow()
    assert hdate(h2["expires"]) == crl.next_update
    assert max_age(h2["cache-control"]) is None
    ent = ng.cache_entry(uri)
    assert abs(ent["valid_sec"] - ts(crl.next_update)) <= 2
    assert ent["updating_sec"] == 0 and ent["error_sec"] == 0
    # A newer CRL is fetched once the cached one's time is up.
    time.sleep(1.1)  # CRL times have one-second resolution
    crlgen(e)
    assert ng.request("GET", uri)[2] == b1
    ng.age_entry(uri, int(time.time()) - 1)
    s3, h3, b3 = ng.request("GET", uri)
    assert s3 == 200 and h3["x-cache-status"] in ("EXPIRED", "REVALIDATED")
    new = x509.load_der_x509_crl(b3)
    assert new.is_signature_valid(e.ca_cert.public_key())
    assert new.last_update > crl.last_update


def test_origin_down_fresh_answers_served_expired_ones_not(edge):
    """With the responder stopped the edge serves what is still fresh, each
    answer only until its own expiry; an expired one is not served (502, not
    the old answer): proxy_cache_use_stale is off."""
    e, ng = edge, edge.nginx
    uri = ocsp_uri(e, "down")
    assert ng.request("GET", uri)[1]["x-cache-status"] == "MISS"
    port = e.resp.port
    assert e.resp.stop() == 0
    try:
        s, h, b = ng.request("GET", uri)
        assert s == 200 and h["x-cache-status"] == "HIT"
        r = answer(e, b, "down", ocsp.OCSPCertStatus.GOOD)
        # Never cached: the origin is needed, and it is down.
        s, h, b = ng.request("GET", ocsp_uri(e, "cold"))
        assert s in (502, 504) and h["x-cache-status"] == "MISS"
        # Still fresh a moment before its expiry...
        ng.age_entry(uri, int(time.time()) + 3)
        s, h, b = ng.request("GET", uri)
        assert s == 200 and h["x-cache-status"] == "HIT"
        # ...and not served once expired, though nginx still holds it.
        ng.age_entry(uri, int(time.time()) - 1)
        for _ in range(2):
            s, h, b = ng.request("GET", uri)
            assert s in (502, 504), (s, h)
            assert h["x-cache-status"] == "EXPIRED"
            assert h.get("content-type") != "application/ocsp-response"
        assert ng.cache_file(uri).exists()
    finally:
        # The origin comes back on the same address; the edge needs nothing.
        e.resp = Responder(e.config, ["--listen", f"127.0.0.1:{port}"]).start()
    s, h, b = ng.request("GET", uri)
    assert s == 200 and h["x-cache-status"] in ("EXPIRED", "REVALIDATED")
    r2 = answer(e, b, "down", ocsp.OCSPCertStatus.GOOD)
    assert r2.this_update >= r.this_update
    assert ng.request("GET", uri)[1]["x-cache-status"] == "HIT"
