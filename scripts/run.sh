#!/usr/bin/env bash
# `make run`: the whole pair on this machine. PostgreSQL (its own cluster,
# data in run/pg), the site replica (a streaming replica of it in
# run/replica, see scripts/site-replica.sh), chasqui-central, chasqui-edge (queue in run/edge) and the
# instrument simulator. A second run continues with the same data and queue.
# Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${CHASQUI_RUN_DIR:-$ROOT/run}
PGPORT=${CHASQUI_RUN_PG_PORT:-55432}
CENTRAL_ADDR=${CHASQUI_RUN_CENTRAL_ADDR:-127.0.0.1:7443}
CENTRAL_HTTP=${CHASQUI_RUN_CENTRAL_HTTP:-127.0.0.1:7480}
EDGE_ADDR=${CHASQUI_RUN_EDGE_ADDR:-127.0.0.1:7444}
EDGE_HTTP=${CHASQUI_RUN_EDGE_HTTP:-127.0.0.1:7481}
EDGE_ADMIN=${CHASQUI_RUN_EDGE_ADMIN:-127.0.0.1:7445}
CERTS=$RUN/certs
REPLICA_PORT=${CHASQUI_RUN_REPLICA_PORT:-55433}
mkdir -p "$RUN/logs"

./scripts/check-postgres.sh
if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
  PGBIN=$(pg_config --bindir)
else
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# PostgreSQL refuses to run as root: run it as `postgres` then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -s "$RUN/pg/PG_VERSION" ]; then
  echo "initialising PostgreSQL in $RUN/pg"
  mkdir -p "$RUN/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$RUN/pg" "$RUN/logs" && chmod 0700 "$RUN/pg"
  as_pg "$PGBIN/initdb" -D "$RUN/pg" -U postgres --auth=trust --encoding=UTF8 >"$RUN/logs/initdb.log"
  cat >>"$RUN/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$RUN/pg'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
CONF
fi
[ "$(id -u)" = 0 ] && chown postgres: "$RUN/logs"

pids=()
# say writes to stdout, and gives up quietly when nobody reads it any more.
say() { printf '%s\n' "$@" 2>/dev/null || true; }
# cleanup must not depend on stdout. After `make run | tee run.log` and
# Ctrl-C, tee is gone: a write to the pipe would kill this shell (SIGPIPE)
# or, under set -e, end it, before PostgreSQL is stopped. So SIGPIPE is
# ignored (the children inherit that), no error stops the cleanup, and what
# it has to say also goes to run/logs/run.log.
cleanup() {
  trap - INT TERM EXIT
  trap '' PIPE
  set +e
  say "" "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  ./scripts/site-replica.sh stop >>"$RUN/logs/run.log" 2>&1
  as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w stop >>"$RUN/logs/run.log" 2>&1
  echo "$(date -u +%FT%TZ) stopped" >>"$RUN/logs/run.log" 2>/dev/null
  say "stopped (data kept in $RUN; rm -rf run/ to start afresh)"
  exit 0
}
trap cleanup INT TERM EXIT

if ! as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" status >/dev/null 2>&1; then
  as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -l "$RUN/logs/postgres.log" -w start >/dev/null
fi
as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qtAc "SELECT 1 FROM pg_database WHERE datname='chasqui'" | grep -q 1 \
  || as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres chasqui
DB_URL="postgres://postgres@127.0.0.1:$PGPORT/chasqui?sslmode=disable"
# The site's own operations database (examples/ops-schema.sql), which
# central may write and the simulator writes rows of. Applying it again
# changes nothing; stdin, so that the postgres user need not read the tree.
PGOPTIONS="-c client_min_messages=warning" as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d chasqui -qX -v ON_ERROR_STOP=1 \
  <examples/ops-schema.sql >>"$RUN/logs/run.log"
# The site replica: seeded once, reused by later runs.
./scripts/site-replica.sh seed
REPLICA_URL="postgres://postgres@127.0.0.1:$REPLICA_PORT/chasqui?sslmode=disable"

# Certificates, made once by `chasqui certs` as a site would: central
# requires mutual TLS and takes the edge id from the edge's certificate.
# Re-issue one with --force while running: the services pick it up.
if [ ! -s "$CERTS/ca.pem" ]; then
  bin/chasqui certs init --dir "$CERTS" --name "Chasqui local run CA"
fi
[ -s "$CERTS/central.pem" ] || bin/chasqui certs issue-central --dir "$CERTS" --hosts 127.0.0.1,localhost
[ -s "$CERTS/edge-site-1.pem" ] || bin/chasqui certs issue-edge --dir "$CERTS" --id site-1 --hosts 127.0.0.1,localhost

# CHASQUI_RUN_INSECURE=1 make run: plaintext on loopback instead (for
# `grpcurl -plaintext` and quick debugging); the default runs as production does.
if [ "${CHASQUI_RUN_INSECURE:-}" = 1 ]; then
  CENTRAL_TLS=(--insecure)
  EDGE_TLS=(--insecure)
  CLIENT_TLS=()
  GRPCURL="grpcurl -plaintext"
  MODE_CENTRAL="plaintext"
  MODE_EDGE="plaintext"
else
  CENTRAL_TLS=(--tls-cert "$CERTS/central.pem" --tls-key "$CERTS/central-key.pem" --tls-ca "$CERTS/ca.pem")
  EDGE_TLS=(--tls-cert "$CERTS/edge-site-1.pem" --tls-key "$CERTS/edge-site-1-key.pem" --tls-ca "$CERTS/ca.pem")
  CLIENT_TLS=(--tls-ca "$CERTS/ca.pem")
  GRPCURL="grpcurl -cacert run/certs/ca.pem"
  MODE_CENTRAL="mutual TLS"
  MODE_EDGE="TLS"
fi

# Central may write rows of the ops schema's tables, and no others.
bin/chasqui-central --grpc-addr "$CENTRAL_ADDR" --http-addr "$CENTRAL_HTTP" --database-url "$DB_URL" \
  --allow-tables 'ops.*' "${CENTRAL_TLS[@]}" >>"$RUN/logs/central.log" 2>&1 &
pids+=($!)
CHASQUI_REPLICA_URL="$REPLICA_URL" bin/chasqui-edge --edge-id site-1 --grpc-addr "$EDGE_ADDR" --http-addr "$EDGE_HTTP" \
  --admin-addr "$EDGE_ADMIN" --data-dir "$RUN/edge" --central-addr "$CENTRAL_ADDR" \
  "${EDGE_TLS[@]}" >>"$RUN/logs/edge.log" 2>&1 &
pids+=($!)
if [ -x bin/chasqui-sim ]; then
  bin/chasqui-sim --edge-addr "$EDGE_ADDR" "${CLIENT_TLS[@]}" >>"$RUN/logs/sim.log" 2>&1 &
  pids+=($!)
fi

cat <<MSG

Chasqui is running (logs in run/logs/):
  PostgreSQL  $DB_URL   (psql "$DB_URL")
  replica     $REPLICA_URL   (scripts/site-replica.sh status)
  central     gRPC $CENTRAL_ADDR ($MODE_CENTRAL)   http://$CENTRAL_HTTP/status  /metrics
  edge        gRPC $EDGE_ADDR ($MODE_EDGE), admin $EDGE_ADMIN   http://$EDGE_HTTP/status  /metrics
  certs       $CERTS (chasqui certs init|issue-edge|issue-central)
  simulator   writes observations, configs and files, and rows of ops.observation_unit
              and ops.raw_data_package (examples/ops-schema.sql), to the edge

Try:
  $GRPCURL $EDGE_ADDR list
  $GRPCURL -d @ $EDGE_ADDR chasqui.edge.v1.EdgeService/Submit < examples/submit-observation.json
  bin/chasqui --addr $EDGE_ADDR --admin-addr $EDGE_ADMIN ${CLIENT_TLS[*]} status
  bin/chasqui --addr $EDGE_ADDR ${CLIENT_TLS[*]} watch
  curl -s http://$EDGE_HTTP/metrics | grep ^chasqui_
  psql "$DB_URL" -c 'SELECT id, instrument, status FROM chasqui.observations ORDER BY start_time DESC LIMIT 5'
  $GRPCURL -d @ $EDGE_ADDR chasqui.edge.v1.EdgeService/Submit < examples/submit-row.json
  psql "$DB_URL" -c 'SELECT name, status, started_at, ended_at FROM ops.observation_unit ORDER BY started_at DESC LIMIT 5'

Ctrl-C stops everything.
MSG
# Exit (and clean up) as soon as any service dies, or on Ctrl-C. Ctrl-C
# reaches every process of the group, and a service may stop (cleanly,
# status 0, or 130 if killed by SIGINT) before this shell runs its trap:
# only a failure is reported.
status=0
wait -n "${pids[@]}" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then
  echo "a service exited with status $status; see run/logs/"
  exit 1
fi
exit 0
