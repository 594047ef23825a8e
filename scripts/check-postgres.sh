#!/usr/bin/env bash
# Stops with a clear message when neither DATABASE_URL nor PostgreSQL server
# binaries are there; installs them with apt-get when allowed (CI, or root).
set -euo pipefail
[ -n "${DATABASE_URL:-}" ] && exit 0
if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then exit 0; fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "PostgreSQL server binaries not found: installing them with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  exit 0
fi
echo "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: sudo apt-get install -y postgresql)" >&2
echo "or set DATABASE_URL to a PostgreSQL 15+ server the tests may create databases on." >&2
exit 1
