#!/usr/bin/env bash
# Runs once, when the official postgres image initialises an empty primary
# (mounted into /docker-entrypoint-initdb.d): a role for streaming
# replication and a pg_hba line letting it connect from the compose network.
set -euo pipefail

: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v pw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
