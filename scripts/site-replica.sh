#!/usr/bin/env bash
# The site replica of `make run`: a hot-standby streaming replica of run/pg
# (pg_basebackup), in run/replica on its own port, streaming through the
# physical replication slot chasqui_site. The primary keeps WAL for the slot
# up to max_slot_wal_keep_size, so a long WAN outage does not fill its disk;
# past that the slot is invalidated (wal_status 'lost') and the replica must
# be re-seeded.
#
#   scripts/site-replica.sh seed     create run/replica unless it exists, and start it
#   scripts/site-replica.sh reseed   stop it, drop its data and slot, seed and start again
#   scripts/site-replica.sh stop     stop it
#   scripts/site-replica.sh status   slot state on the primary, replay position on the replica
#
# The primary must be running (make run starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${CHASQUI_RUN_DIR:-$PWD/run}
PGPORT=${CHASQUI_RUN_PG_PORT:-55432}
REPLICA_PORT=${CHASQUI_RUN_REPLICA_PORT:-55433}
SLOT=chasqui_site
KEEP=${CHASQUI_RUN_SLOT_KEEP:-4GB}
if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
  PGBIN=$(pg_config --bindir)
else
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_primary() { as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -qtAXc "$1"; }

stop() { as_pg "$PGBIN/pg_ctl" -D "$RUN/replica" -m fast -w stop >/dev/null 2>&1 || true; }

seed() {
  # Bound what the slot may hold back on the primary (a reload suffices).
  psql_primary "ALTER SYSTEM SET max_slot_wal_keep_size = '$KEEP'" >/dev/null
  psql_primary "SELECT pg_reload_conf()" >/dev/null
  if [ ! -s "$RUN/replica/PG_VERSION" ]; then
    echo "seeding the site replica in $RUN/replica (pg_basebackup, slot $SLOT)"
    rm -rf "$RUN/replica"
    mkdir -p "$RUN/replica" "$RUN/logs"
    [ "$(id -u)" = 0 ] && chown postgres: "$RUN/replica" "$RUN/logs" && chmod 0700 "$RUN/replica"
    # A slot left by an earlier replica would make -C fail: a new copy starts afresh.
    psql_primary "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active" >/dev/null
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$RUN/replica" \
      -R -X stream -C -S "$SLOT" --checkpoint=fast
    cat >>"$RUN/replica/postgresql.conf" <<CONF
# site replica (scripts/site-replica.sh)
port = $REPLICA_PORT
unix_socket_directories = '$RUN/replica'
hot_standby = on
CONF
  fi
  if ! as_pg "$PGBIN/pg_ctl" -D "$RUN/replica" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$RUN/replica" -l "$RUN/logs/replica.log" -w start >/dev/null
  fi
}

case "${1:-}" in
  seed) seed ;;
  reseed)
    stop
    rm -rf "$RUN/replica"
    psql_primary "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null
    seed
    echo "site replica re-seeded; the edge's watcher reconnects by itself" ;;
  stop) stop ;;
  status)
    psql_primary "SELECT slot_name, active, wal_status, restart_lsn, safe_wal_size FROM pg_replication_slots WHERE slot_name = '$SLOT'"
    as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -qtAXc \
      "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()" ;;
  *) echo "usage: $0 seed|reseed|stop|status" >&2; exit 2 ;;
esac
