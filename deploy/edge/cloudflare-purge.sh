#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# cloudflare-purge.sh: [edge] purge_command for Cloudflare (an example: fill
# in the two values, test it by hand, then point purge_command at your copy).
#
# vigil-responder runs this with the tags to purge on standard input, one a
# line, and waits at most purge_command_timeout for it; exit status 0 means
# purged, anything else makes the responder retry after a back-off. Set:
#     [edge]
#     tag_header = Cache-Tag              ; tags comma-separated, as Cloudflare reads them
#     purge_command = /usr/local/lib/vigil/cloudflare-purge.sh
# Cloudflare purges by tag through POST /zones/{zone}/purge_cache with
# {"tags": [...]}, at most 30 tags per call
# (https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags/);
# tags are case-insensitive, and Vigil's never differ only by case. Mind the
# API's rate limit on a bulk revocation: with many thousands of serials,
# purging the CA's tag (vigil~CA) at once may be the better trade; Vigil
# sends that by itself for CA-wide changes.
#
# Not runnable as shipped: it needs your zone id and an API token with the
# Cache Purge permission (in a file only the vigil user reads).
set -eu
ZONE_ID="REPLACE-ME"                             # <- set
TOKEN_FILE=/etc/vigil/cloudflare-token           # <- set (mode 0400, owner vigil)

token=$(cat "$TOKEN_FILE")
batch=""
n=0
flush() {
	[ -n "$batch" ] || return 0
	curl -sSf --max-time 20 -X POST \
		-H "Authorization: Bearer $token" -H "Content-Type: application/json" \
		--data "{\"tags\":[$batch]}" \
		"https://api.cloudflare.com/client/v4/zones/$ZONE_ID/purge_cache" >/dev/null
	batch=""
	n=0
}
while IFS= read -r tag; do
	[ -n "$tag" ] || continue
	# Vigil's tags are letters, digits and . _ - ~: nothing to escape in JSON.
	batch="${batch:+$batch,}\"$tag\""
	n=$((n + 1))
	[ "$n" -lt 30 ] || flush
done
flush
