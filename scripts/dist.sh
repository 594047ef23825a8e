#!/usr/bin/env bash
# Builds the release tarball dist/chasqui-<version>-linux-<arch>.tar.gz:
# static binaries (chasqui-central, chasqui-edge, chasqui, chasqui-sim)
# stamped with version and commit (shown by --version and in status), the
# systemd units, sysusers file and env examples, the Prometheus rules, and
# the README. Reproducible for a given commit: sorted entries, fixed owner
# and mtime (the commit time).
#
#   scripts/dist.sh                    # version from git describe
#   VERSION=v1.2.0 GOARCH=arm64 scripts/dist.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [ -n "${COMMIT:-}" ]; then
	commit=$COMMIT
else
	commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
		commit+=-dirty
	fi
fi
arch=${GOARCH:-amd64}
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
name=chasqui-${version}-linux-${arch}
out=$root/dist

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir=$stage/$name
mkdir -p "$dir/bin" "$dir/systemd" "$dir/prometheus" "$out"

pkg=github.com/chasqui/chasqui/internal/version
echo "building $name (commit $commit)"
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit" \
	-o "$dir/bin/" \
	./central/cmd/chasqui-central ./edge/cmd/chasqui-edge ./edge/cmd/chasqui ./edge/cmd/chasqui-sim

# The stamp must be in every binary: -X silently does nothing when the
# variable was renamed (and -trimpath keeps -ldflags out of the build info,
# so look for the strings themselves). Static: no program interpreter.
for b in "$dir"/bin/*; do
	grep -aqF -- "$version" "$b" && grep -aqF -- "$commit" "$b" ||
		{ echo "dist: $b is not stamped with $version / $commit" >&2; exit 1; }
	if command -v readelf >/dev/null && readelf -l "$b" | grep -q INTERP; then
		echo "dist: $b is not static" >&2; exit 1
	fi
done

cp deploy/systemd/chasqui-edge.service deploy/systemd/chasqui-central.service \
	deploy/systemd/chasqui.sysusers.conf deploy/systemd/edge.env.example \
	deploy/systemd/central.env.example deploy/systemd/README.md "$dir/systemd/"
cp deploy/prometheus/alerts.yml "$dir/prometheus/"
cp README.md "$dir/"
printf '%s\n' "$version" >"$dir/VERSION"

tarball=$out/$name.tar.gz
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner \
	--mtime="@$mtime" -cf - "$name" | gzip -n >"$tarball"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "dist: $tarball"
tar -tzvf "$tarball"
