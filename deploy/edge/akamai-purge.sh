#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# akamai-purge.sh: [edge] purge_command for Akamai (an example: fill in the
# values, test it by hand, then point purge_command at your copy).
#
# vigil-responder runs this with the tags to purge on standard input, one a
# line, and waits at most purge_command_timeout for it; exit status 0 means
# purged, anything else makes the responder retry after a back-off. Set:
#     [edge]
#     tag_header = Edge-Cache-Tag         ; tags comma-separated; at most 128 characters each
#     purge_command = /usr/local/lib/vigil/akamai-purge.sh
# Akamai's Fast Purge API deletes by cache tag (POST
# /ccu/v3/delete/tag/{network}, https://techdocs.akamai.com/purge-cache/),
# signed with EdgeGrid; this uses the Akamai CLI's purge package
# (`akamai install purge`), which signs with the credentials in ~/.edgerc.
# "delete", not "invalidate": an invalidated object may be served stale
# while Akamai revalidates it, which for a revocation is the failure to
# avoid. Vigil's tags are at most 108 characters.
#
# Not runnable as shipped: it needs the Akamai CLI and an API client with
# the CCU APIs grant, its .edgerc readable by the vigil user only.
set -eu
EDGERC=/etc/vigil/akamai.edgerc                  # <- set (mode 0400, owner vigil)
SECTION=ccu                                      # <- set
NETWORK=production                               # <- set: or staging

tags=""
n=0
flush() {
	[ -n "$tags" ] || return 0
	staging=""
	[ "$NETWORK" != staging ] || staging=--staging
	# shellcheck disable=SC2086
	akamai purge --edgerc "$EDGERC" --section "$SECTION" delete $staging --tag $tags >/dev/null
	tags=""
	n=0
}
while IFS= read -r tag; do
	[ -n "$tag" ] || continue
	tags="$tags $tag"
	n=$((n + 1))
	[ "$n" -lt 500 ] || flush
done
flush
