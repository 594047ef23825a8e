#!/usr/bin/env bash
# Entrypoint of the streaming replica (official postgres image). On the
# first start, with an empty data directory, it clones the primary with
# pg_basebackup (-R writes standby.signal and primary_conninfo, -X stream
# copies the WAL written meanwhile, a physical slot keeps the primary from
# dropping WAL the replica still needs); then, and on every later start, it
# hands over to the image's own entrypoint, which runs postgres as a hot
# standby.
set -euo pipefail

: "${PRIMARY_HOST:?set PRIMARY_HOST}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
PGDATA=${PGDATA:-/var/lib/postgresql/data}
SLOT=${REPLICATION_SLOT:-chasqui_replica}
export PGDATA PGPASSWORD="$REPLICATION_PASSWORD"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	until pg_isready -h "$PRIMARY_HOST" -p 5432 -U replicator -q; do
		echo "replica: waiting for $PRIMARY_HOST"
		sleep 1
	done
	# A leftover partial clone (a start killed half-way) is discarded.
	find "$PGDATA" -mindepth 1 -delete
	base=(pg_basebackup -h "$PRIMARY_HOST" -p 5432 -U replicator -D "$PGDATA"
		-X stream -R --checkpoint=fast -S "$SLOT")
	# Create the slot on the first clone; after a replica volume was wiped
	# the slot already exists on the primary and is reused.
	if ! gosu postgres "${base[@]}" -C; then
		find "$PGDATA" -mindepth 1 -delete
		gosu postgres "${base[@]}"
	fi
	echo "replica: cloned $PRIMARY_HOST into $PGDATA"
fi

exec docker-entrypoint.sh "$@"
