# SPDX-License-Identifier: Apache-2.0
"""vigil-responder's HTTP, end to end: the real binary on 127.0.0.1 (the
shared responder of responder_env.py), raw sockets and http.client for what
clients and caches send, every OCSP answer checked with python3-cryptography:
caching headers and 304, connection handling (keep-alive, pipelining,
timeouts, 100-continue, malformed and mutated requests, limits) and framing
edges a front proxy may see differently."""
import base64
import os
import random
import re
import socket
import time
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from responder_env import assert_alive, env, leaf  # noqa: F401 (env: the fixture)
from responder_util import (check_response, fake_cert, http_date, make_request,
                            parse_responses, recv_all, recv_all_until, status_of)


# ---- HTTP caching -------------------------------------------------------------------------

def test_get_cache_headers_and_304(env):
    cert, issuer = leaf(env, env.ec, env.good["ec1"])
    der = make_request(cert, issuer, alg=hashes.SHA256())
    status, h, body = env.resp.get(der)
    assert status == 200
    r = check_response(body, issuer)
    m = re.fullmatch(r"max-age=(\d+)(?:, s-maxage=\d+)?, public, no-transform, must-revalidate", h["cache-control"])
    assert m, h["cache-control"]
    date = http_date(h["date"])
    assert http_date(h["expires"]) == r.next_update
    assert http_date(h["last-modified"]) == r.this_update
    assert abs(int(m.group(1)) - (r.next_update - date).total_seconds()) <= 2
    etag = h["etag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag)
    # The cached answer is the same bytes and the same ETag.
    status2, h2, body2 = env.resp.get(der)
    assert body2 == body and h2["etag"] == etag
    # Conditional GET.
    status, h3, body3 = env.resp.get(der, headers={"If-None-Match": etag})
    assert status == 304 and body3 == b"" and h3["etag"] == etag
    assert "max-age=" in h3["cache-control"] and "expires" in h3
    status, _, _ = env.resp.get(der, headers={"If-None-Match": 'W/"other", ' + etag})
    assert status == 304
    status, _, body4 = env.resp.get(der, headers={"If-None-Match": '"nope"'})
    assert status == 200 and body4 == body
    # POST answers are not cacheable.
    status, hp, _ = env.resp.post(der)
    assert status == 200 and hp["cache-control"] == "no-store"
    assert "etag" not in hp and "expires" not in hp
    # GET with a nonce: fresh, not cacheable.
    status, hn, _ = env.resp.get(make_request(cert, issuer, nonce=os.urandom(8)))
    assert status == 200 and hn["cache-control"] == "no-store"


def test_get_path_forms(env):
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    # Find a request whose base64 has '+', '/' and '=' in it.
    rnd = random.Random(7)
    for _ in range(2000):
        serial = rnd.getrandbits(rnd.randint(8, 150))
        der = make_request(fake_cert(serial, issuer), issuer)
        b64 = base64.b64encode(der).decode()
        if "+" in b64 and "/" in b64 and "=" in b64:
            break
    else:
        pytest.fail("no request with + / = found")
    for path in ["/" + b64, "/" + urllib.parse.quote(b64, safe=""),
                 "//" + b64, "/" + b64.replace("+", "%2B"), "/ocsp/" + b64,
                 "/" + urllib.parse.quote(b64, safe="") + "?x=1"]:
        status, h, body = env.resp.request("GET", path)
        assert status == 200, path
        r = check_response(body, issuer)
        assert r.serial_number == serial, path
    # A HEAD gives the GET headers without the body.
    status, hg, body = env.resp.request("GET", "/" + b64)
    status, hh, bodyh = env.resp.request("HEAD", "/" + b64)
    assert status == 200 and bodyh == b"" and hh["content-length"] == str(len(body))
    assert hh["etag"] == hg["etag"]


# ---- HTTP connection handling -----------------------------------------------------------------

def test_keepalive_and_pipelining(env):
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    der = make_request(cert, issuer)
    b64 = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    reqs = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(der) + der
            + b"GET /" + b64.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /nope.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = env.resp.raw(reqs, timeout=5)
    out = parse_responses(data)
    assert [s for s, _, _ in out] == [200, 200, 200, 404, 200]
    assert out[0][2] == b"ok\n"
    check_response(out[1][2], issuer)
    check_response(out[2][2], issuer)
    assert out[4][1]["connection"] == "close"
    assert b"vigil_http_responses_total" in out[4][2]
    # http.client reuses one connection for several requests.
    c = env.resp.conn()
    try:
        for _ in range(3):
            c.request("POST", "/", body=der, headers={"Content-Type": "application/ocsp-request"})
            r = c.getresponse()
            check_response(r.read(), issuer)
            assert r.getheader("Connection") is None
    finally:
        c.close()


def test_keepalive_outlives_header_timeout(env):
    """A keep-alive connection that keeps asking lives past header_timeout
    (1 s here): each request re-arms its timers."""
    s = socket.create_connection(("127.0.0.1", env.resp.port), timeout=5)
    try:
        for _ in range(5):
            s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            (status, h, body), = parse_responses(recv_all_until(s, b"ok\n"))
            assert status == 200 and "connection" not in h
            time.sleep(0.6)
    finally:
        s.close()


def test_connection_close_and_http10(env):
    for req in (b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
                b"GET /healthz HTTP/1.0\r\n\r\n"):
        t0 = time.monotonic()
        data = env.resp.raw(req, timeout=5)
        assert time.monotonic() - t0 < 3  # closed by the server, not by our timeout
        (status, h, body), = parse_responses(data)
        assert status == 200 and body == b"ok\n"
    # HTTP/1.0 with keep-alive asked for: kept, and said so.
    s = socket.create_connection(("127.0.0.1", env.resp.port), timeout=5)
    try:
        for _ in range(2):
            s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            (status, h, body), = parse_responses(recv_all_until(s, b"ok\n"))
            assert status == 200 and h["connection"] == "keep-alive"
    finally:
        s.close()


def test_expect_continue(env):
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    der = make_request(cert, issuer)
    s = socket.create_connection(("127.0.0.1", env.resp.port), timeout=5)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(der))
        first = s.recv(100)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(der)
        data = first + recv_all(s, 5)
    finally:
        s.close()
    out = parse_responses(data)
    assert [x[0] for x in out] == [100, 200]
    check_response(out[1][2], issuer)


BAD_DER = {
    "empty": b"",
    "garbage": b"this is not DER at all",
    "truncated": None,  # filled in below
    "trailing": None,
    "wrong_type": bytes.fromhex("020101"),
}


@pytest.mark.parametrize("kind", list(BAD_DER))
def test_bad_der_malformed(env, kind):
    good = make_request(*leaf(env, env.rsa, env.good["rsa1"]))
    body = {"truncated": good[:-5], "trailing": good + b"\x00\x00"}.get(kind, BAD_DER[kind])
    status, h, resp = env.resp.post(body)
    assert status == 200
    assert status_of(resp) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    if body:
        status, h, resp = env.resp.get(body)
        assert status == 200
        assert status_of(resp) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert_alive(env)


def test_mutated_requests(env):
    """Bit flips, truncations and splices of valid requests, by POST and GET:
    every answer is a parseable OCSP response (successful, malformedRequest or
    unauthorized) with HTTP 200 or a 4xx, and the responder keeps answering."""
    rnd = random.Random(1234)
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    seeds = [make_request(cert, issuer), make_request(cert, issuer, nonce=b"n" * 16),
             make_request(cert, issuer, alg=hashes.SHA512())]
    c = env.resp.conn()
    try:
        for i in range(300):
            der = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randint(1, 4)):
                op = rnd.random()
                if op < 0.5:
                    pos = rnd.randrange(len(der))
                    der[pos] ^= 1 << rnd.randrange(8)
                elif op < 0.7:
                    der = der[:rnd.randrange(len(der))]
                elif op < 0.85:
                    pos = rnd.randrange(len(der) + 1)
                    der[pos:pos] = os.urandom(rnd.randint(1, 8))
                else:
                    der[rnd.randrange(len(der))] = rnd.choice([0x00, 0x7f, 0x80, 0xff])
                if not der:
                    der = bytearray(b"\x30")
            if i % 2:
                c.request("POST", "/", body=bytes(der),
                          headers={"Content-Type": "application/ocsp-request"})
            else:
                c.request("GET", "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe=""))
            r = c.getresponse()
            body = r.read()
            # (a GET whose base64 starts with "/", a first byte 0xfc-0xff,
            # is answered too: malformedRequest)
            assert r.status in (200, 400), (r.status, bytes(der[:4]))
            if r.status == 200:
                resp = ocsp.load_der_ocsp_response(body)
                assert resp.response_status in (ocsp.OCSPResponseStatus.SUCCESSFUL,
                                                ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
                                                ocsp.OCSPResponseStatus.UNAUTHORIZED)
                if resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
                    check_response(body, issuer)
            if r.will_close:
                c.close()
                c = env.resp.conn()
    finally:
        c.close()
    # Random bytes as HTTP: an answer or a close, never a crash.
    for _ in range(100):
        junk = os.urandom(rnd.randint(1, 300))
        if rnd.random() < 0.5:
            junk = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(junk) + junk
        env.resp.raw(junk, timeout=2, shutdown=True)
    assert_alive(env)


def test_bad_base64(env):
    for path in ["/M!!!notbase64", "/Ma%ZZ", "/M"]:
        status, _, _ = env.resp.request("GET", path)
        assert status == 400, path
    assert_alive(env)


def test_wrong_method(env):
    for m in ("PUT", "DELETE", "OPTIONS", "PATCH"):
        status, h, _ = env.resp.request(m, "/", body=b"x")
        assert status == 405, m
        assert "GET" in h["allow"] and "POST" in h["allow"]
    status, _, _ = env.resp.request("POST", "/healthz", body=b"x")
    assert status == 405
    assert_alive(env)


def test_body_too_large(env):
    body = os.urandom(1 << 20)
    t0 = time.monotonic()
    data = env.resp.raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                        + body, timeout=5)
    assert parse_responses(data)[0][0] == 413
    # Without a Content-Length: chunked.
    chunks = b"".join(b"%x\r\n" % 65536 + body[i:i + 65536] + b"\r\n"
                      for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
    data = env.resp.raw(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + chunks, timeout=5)
    assert parse_responses(data)[0][0] == 413
    assert time.monotonic() - t0 < 8
    assert_alive(env)


def test_slow_client_408(env):
    """header_timeout = 1s: a client dribbling its headers is cut off."""
    s = socket.create_connection(("127.0.0.1", env.resp.port), timeout=5)
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        data = b""
        for ch in b"X-Slow: " + b"a" * 40:
            try:
                s.sendall(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.2)
            try:
                got = s.recv(4096)
                data += got
                if not got or b"\r\n\r\n" in data:
                    break
            except socket.timeout:
                pass
        data += recv_all(s, 3)
    finally:
        s.close()
    assert parse_responses(data)[0][0] == 408
    assert 0.9 < time.monotonic() - t0 < 4
    # A body that stops half way gets 408 too (body_timeout = 1s).
    data = env.resp.raw(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789", timeout=4)
    assert parse_responses(data)[0][0] == 408
    env.resp.wait_log(r"event=timeout phase=body")
    assert_alive(env)


def test_header_flood_and_long_uri(env):
    flood = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-Flood-%d: %s\r\n" % (i, b"v" * 80)
                                                  for i in range(200)) + b"\r\n"
    assert parse_responses(env.resp.raw(flood))[0][0] == 431
    long_uri = b"GET /M" + b"A" * 9000 + b" HTTP/1.1\r\n\r\n"
    assert parse_responses(env.resp.raw(long_uri))[0][0] == 414
    assert parse_responses(env.resp.raw(b"\x00\x01\x02 garbage\r\n\r\n"))[0][0] == 400
    assert parse_responses(env.resp.raw(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"))[0][0] == 400
    env.resp.wait_log(r"event=http_refused status=431 reason=headers_too_large peer=127\.0\.0\.1:")
    assert_alive(env)


def test_http_framing_edges(env):
    """Requests a front proxy might frame differently from us (RFC 9112):
    whitespace before a header's colon is refused (400, connection closed);
    an Upgrade request is answered as plain HTTP and the requests pipelined
    after it are answered too, in order; Transfer-Encoding in HTTP/1.0 closes
    the connection after the answer; an HTTP/1.0 client gets no 100 Continue;
    a 405 names the methods the route allows."""
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    req = make_request(cert, issuer)
    for field in (b"Content-Length : 3", b"Transfer-Encoding\t: chunked"):
        data = env.resp.raw(b"POST / HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n\r\nabc"
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = parse_responses(data)
        assert [x[0] for x in resp] == [400], data[:300]
    data = env.resp.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                        b"Upgrade: websocket\r\n\r\n"
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        b"Content-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n"
                        % len(req) + req)
    resp = parse_responses(data)
    assert [x[0] for x in resp] == [200, 200, 200], data[:300]
    assert resp[0][2] == b"ok\n" and b"vigil_" in resp[1][2]
    assert check_response(resp[2][2], issuer).certificate_status == ocsp.OCSPCertStatus.GOOD
    chunk = b"%x\r\n" % len(req) + req + b"\r\n0\r\n\r\n"
    data = env.resp.raw(b"POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n" + chunk +
                        b"GET /healthz HTTP/1.0\r\n\r\n")
    resp = parse_responses(data)
    assert len(resp) == 1 and resp[0][0] == 200, data[:300]
    assert resp[0][1].get("connection") == "close"
    check_response(resp[0][2], issuer)
    # 100 Continue only to HTTP/1.1 clients (RFC 9110 §10.1.1).
    data = env.resp.raw(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n"
                        b"Content-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n"
                        % len(req) + req)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:100]
    # Base64 that starts with "/" (first byte 0xfc), raw or %2F: an OCSP
    # answer (malformedRequest), not a 404.
    odd = base64.b64encode(b"\xfc" + req[1:]).decode()
    assert odd.startswith("/")
    for path in ("/" + odd, "/" + urllib.parse.quote(odd, safe="")):
        status, _, body = env.resp.request("GET", path)
        assert status == 200 and status_of(body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # The same with the body in a later read: answered, then closed.
    s = socket.create_connection(("127.0.0.1", env.resp.port), timeout=5)
    try:
        s.sendall(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.2)
        s.sendall(chunk)
        resp = parse_responses(recv_all(s, 5))
    finally:
        s.close()
    assert [x[0] for x in resp] == [200] and resp[0][1].get("connection") == "close"
    check_response(resp[0][2], issuer)
    for method, path, allow in (("POST", "/healthz", "GET, HEAD"), ("PUT", "/healthz", "GET, HEAD"),
                                ("POST", "/metrics", "GET, HEAD"),
                                ("DELETE", "/crl/rsa1.crl", "GET, HEAD"),
                                ("POST", "/crl/rsa1.crl", "GET, HEAD"),
                                ("PUT", "/", "GET, HEAD, POST")):
        resp = parse_responses(env.resp.raw(f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                                            "Content-Length: 0\r\n\r\n".encode()))
        assert resp[0][0] == 405 and resp[0][1]["allow"] == allow, (method, path, resp)
    assert_alive(env)
