#!/usr/bin/env bash
# buf breaking: the protos must stay wire-compatible with the newest release
# (tag v*). Until the first release there is nothing to compare against.
# In a shallow clone (CI) the tags may be missing: fetch them first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-bin/tools/buf}

if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
	echo "buf breaking: shallow clone, fetching tags"
	if ! git fetch --quiet --tags --force origin 2>/dev/null; then
		echo "buf breaking: could not fetch tags (shallow clone without a reachable origin); comparing against local tags only" >&2
	fi
fi

if ! tag=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null); then
	echo "buf breaking: no release tag yet, nothing to compare against"
	exit 0
fi

echo "buf breaking: proto/ against release $tag"
# .git#tag= reads the tag's tree from the local repository; a shallow clone
# needs the tag's commit, hence the fetch above (git fetch --tags brings it).
exec "$BUF" breaking --against ".git#tag=${tag}"
