#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# tests/lint/format.sh [SOURCE_ROOT]: fails (exit 1) when a C file differs
# from what clang-format makes of it with the tree's .clang-format, naming
# each such file; clang-format -i FILE fixes one. In a git checkout the files
# are those git tracks; elsewhere (a release tarball) every .c and .h below
# the root but build directories. The meson test lint.format runs it.
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	list() { git ls-files -- '*.c' '*.h'; }
else
	list() { find . -name 'build*' -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print; }
fi

bad=0
checked=0
for f in $(list); do
	# A file deleted in the work tree but not yet in git's index is no one's.
	[ -f "$f" ] || continue
	checked=$((checked + 1))
	if ! "$CLANG_FORMAT" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "format: $f differs from .clang-format (clang-format -i $f)"
		bad=$((bad + 1))
	fi
done
echo "format: $checked files checked, $bad differ"
[ "$bad" -eq 0 ]
