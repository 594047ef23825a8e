#!/usr/bin/env bash
# Generates the Python client's stubs (clients/python/chasqui/{ops,edge,central}/v1)
# from proto/ with Debian 12's protoc and grpc_python_plugin. The versions
# are pinned: another protoc writes other (still valid) bytes, and CI checks
# the committed stubs are exactly what this script writes.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/check-python.sh
want_protoc="libprotoc 3.21.12"
want_grpc="1.51.1"
have_protoc=$(protoc --version)
have_grpc=$(dpkg-query -W -f='${Version}' protobuf-compiler-grpc)
if [ "$have_protoc" != "$want_protoc" ] || [[ "$have_grpc" != "$want_grpc"* ]]; then
  echo "gen-python: need $want_protoc and protobuf-compiler-grpc $want_grpc (Debian 12); have $have_protoc and $have_grpc" >&2
  exit 1
fi
out=clients/python
find "$out/chasqui" \( -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.py' \) -delete
mapfile -t protos < <(cd proto && find chasqui -name '*.proto' | LC_ALL=C sort)
(cd proto && protoc -I . -I /usr/include \
  --python_out="../$out" --pyi_out="../$out" \
  --grpc_python_out="../$out" --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  "${protos[@]}")
# Packages for the generated modules (import chasqui.edge.v1.edge_pb2).
for p in "${protos[@]}"; do
  d=$(dirname "$p")
  while [ "$d" != chasqui ]; do
    [ -f "$out/$d/__init__.py" ] || echo '"""Generated from proto/ by `make generate`: do not edit."""' > "$out/$d/__init__.py"
    d=$(dirname "$d")
  done
done
