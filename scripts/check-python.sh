#!/usr/bin/env bash
# The Python client (clients/python) uses Debian 12's packages only: Python
# 3.11 (/usr/bin/python3, not a pyenv shim earlier on PATH), grpcio 1.51,
# protobuf 3.21, pytest, and for `make generate` protoc 3.21 with
# grpc_python_plugin 1.51, and openssl for the TLS tests. Installs what is missing with apt-get when run
# as root (CI); otherwise stops naming the command to run.
set -euo pipefail
pkgs=(python3 python3-grpcio python3-protobuf python3-pytest protobuf-compiler protobuf-compiler-grpc openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Python client: installing Debian packages ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "Python client: Debian packages missing: ${missing[*]}. Install them with:" >&2
echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
exit 1
