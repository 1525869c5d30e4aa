# SPDX-License-Identifier: Apache-2.0
#
# vigil-edge.vcl: Varnish (Debian 12: varnish 7.1 with varnish-modules for
# xkey) as a caching edge in front of vigil-responder, the same caching rules
# as deploy/nginx/vigil-edge.conf, purged by the responder when anything
# changes ([edge] purge_varnish).
#
# meson install puts it in $datadir/doc/vigil/examples/varnish/. On Debian:
#     apt-get install varnish varnish-modules
#     cp vigil-edge.vcl /etc/varnish/default.vcl
# set the lines marked "<- set" (the responder's address and who may purge),
# then `varnishd -C -f /etc/varnish/default.vcl >/dev/null && systemctl
# reload varnish`. In vigil.conf:
#     [edge]
#     max_age = 60                              ; s-maxage of every answer
#     tag_header = xkey                         ; the default
#     purge_varnish = http://127.0.0.1:6081/    ; this Varnish's address
#
# What is cached, and for how long (lifetimes come from the responder only):
#
#   GET/HEAD /{base64 OCSP request}  for the answer's s-maxage: [edge]
#        max_age (60 s by default), never past the answer's nextUpdate
#        (s-maxage = min(max_age, nextUpdate - now)). max_age = 0: until
#        nextUpdate (Cache-Control max-age). Then revalidated: Varnish asks with
#        If-None-Match and the responder answers 304 while its answer is
#        unchanged, so the origin's cost of a short max_age is a small 304.
#   GET/HEAD /crl/{CA}.crl           the same: s-maxage, never past nextUpdate.
#   POST /                           passed to the responder, never cached.
#   nonced OCSP answers, tryLater, errors, /healthz: the responder sends
#        no-store or no lifetime, and nothing without a lifetime is cached here
#        (Varnish's default_ttl is not used).
#
# Purges. Every cacheable answer carries an xkey header naming what it
# depends on (the responder's tags: vigil~CA, vigil~CA~SERIAL, vigil~CA~crl).
# When a revocation is committed the responder drops its own cached answer,
# then sends this Varnish
#     PURGE / HTTP/1.1
#     xkey-purge: vigil~CA~SERIAL vigil~CA~SERIAL ...
# (many tags per request, several xkey-purge lines per request), and when
# vigil-crlgen publishes a CRL, the CRL's tag. Only addresses in the purgers
# ACL may purge. A PURGE without xkey-purge drops the object at that URL.
#
# Never stale: grace is 0, so an expired object is never served (an OCSP
# answer past nextUpdate is unreliable to clients, RFC 6960 §4.2.2.1, and it
# would hide an origin that is down). keep lets Varnish revalidate an expired
# object with a conditional request instead of fetching it whole.
#
# Sizes: Varnish's defaults (http_req_hdr_len 8k, http_req_size 32k) bound a
# purge request to about 500 tags; the responder sends batches that fit, so a
# bulk revocation of 100,000 certificates is about 200 requests on one
# connection.

vcl 4.1;

import std;
import xkey;

backend vigil {
    .host = "127.0.0.1"; .port = "8080";        # <- set: the responder's address
    .connect_timeout = 2s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 10s;
}

acl purgers {
    "127.0.0.1";                                # <- set: who may purge (the responders)
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-purge) {
            # Several lines into one; xkey splits on spaces and commas.
            std.collect(req.http.xkey-purge, " ");
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
        }
        if (req.http.xkey-softpurge) {
            std.collect(req.http.xkey-softpurge, " ");
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
        }
        return (purge);
    }
    # The responder's Prometheus metrics are for its operators: scrape the
    # responder directly, not through the edge.
    if (req.url == "/metrics") {
        return (synth(404, "Not Found"));
    }
    if (req.method == "POST") {
        # The request is in the body: nothing to key on. Never cached.
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (synth(405, "Method Not Allowed"));
    }
    # Clients cannot force a trip to the origin, nor split the cache: answers
    # depend on the URL alone (cookies and credentials mean nothing here).
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_hash {
    # The URL only, as the nginx edge keys on it: OCSP GET requests for one
    # certificate are byte-identical from every RFC 5019 client, whatever the
    # Host they name, and a URL purge finds its object.
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_response {
    # Only what the responder gives a lifetime is cached: Varnish takes it
    # from s-maxage, else max-age, else Expires. No Cache-Control lifetime
    # (errors, /healthz) or no-store (nonced answers, POST): not cached.
    if (beresp.status != 200 || beresp.http.Cache-Control !~ "max-age=" ||
        beresp.http.Cache-Control ~ "(?i)no-store|no-cache|private") {
        set beresp.ttl = 0s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Never serve an expired answer; keep it an hour to revalidate (304).
    set beresp.grace = 0s;
    set beresp.keep = 1h;
    return (deliver);
}

sub vcl_deliver {
    # The tags are for this cache, not for clients.
    unset resp.http.xkey;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
