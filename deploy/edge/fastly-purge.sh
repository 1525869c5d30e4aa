#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# fastly-purge.sh: [edge] purge_command for Fastly (an example: fill in the
# two values, test it by hand, then point purge_command at your copy).
#
# vigil-responder runs this with the tags to purge on standard input, one a
# line (vigil~CA, vigil~CA~SERIAL, vigil~CA~crl), and waits at most
# purge_command_timeout (30 s by default) for it; exit status 0 means purged,
# anything else makes the responder send the same tags again after a
# back-off. Set in vigil.conf:
#     [edge]
#     tag_header = Surrogate-Key          ; Fastly caches by this header
#     purge_command = /usr/local/lib/vigil/fastly-purge.sh
# Fastly purges up to 256 surrogate keys per call ("purge multiple keys";
# https://developer.fastly.com/reference/api/purging/). A hard purge, not a
# soft one: a soft-purged answer may be served stale, which for a revocation
# is the failure to avoid.
#
# Not runnable as shipped: it needs your service id and an API token with
# purge_select scope (keep the token in a file only the vigil user reads).
set -eu
SERVICE_ID="REPLACE-ME"                          # <- set
TOKEN_FILE=/etc/vigil/fastly-token               # <- set (mode 0400, owner vigil)

token=$(cat "$TOKEN_FILE")
batch=""
n=0
flush() {
	[ -n "$batch" ] || return 0
	# -f: an HTTP error is a non-zero exit, so the responder retries.
	curl -sSf --max-time 20 -X POST \
		-H "Fastly-Key: $token" -H "Surrogate-Key: $batch" \
		"https://api.fastly.com/service/$SERVICE_ID/purge" >/dev/null
	batch=""
	n=0
}
while IFS= read -r tag; do
	[ -n "$tag" ] || continue
	batch="${batch:+$batch }$tag"
	n=$((n + 1))
	[ "$n" -lt 256 ] || flush
done
flush
