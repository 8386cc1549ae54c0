#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests and the demo.
#   scripts/pgcluster.sh start   -> prints shell assignments (eval them)
#   scripts/pgcluster.sh stop DIR
# The cluster runs as the postgres user (the server refuses root) in a
# temporary directory it owns, on a free port, with the socket in that
# directory. Extra server settings may be passed in SSE_PG_CONF (lines).
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-pg_config}
BIN=$("$PG_CONFIG" --bindir)
# pg_config of the dev package points at /usr/lib/postgresql/N/bin already.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() { "$(dirname "$0")/free-port.sh"; }

case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/sse_pg.XXXXXX)
  trap 'rm -rf "$dir"' ERR
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  as_pg "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
  cp "$dir/data/postgresql.conf" "$dir/postgresql.conf.orig"
  # Another process may take the port between the check and the bind:
  # try a few ports before giving up.
  started=
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    cp "$dir/postgresql.conf.orig" "$dir/data/postgresql.conf"
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
full_page_writes = off
shared_buffers = 256MB
max_prepared_transactions = 10
log_min_messages = warning
log_line_prefix = '%m [%p] '
${SSE_PG_CONF:-}
CONF
    if as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
      started=1; break
    fi
  done
  if [ -z "$started" ]; then
    cat "$dir/server.log" >&2; rm -rf "$dir"; exit 1
  fi
  "$BIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -qXc "CREATE DATABASE sse_test" >/dev/null
  echo "SSE_PGDIR=$dir"
  echo "SSE_PGDATA=$dir/data"
  echo "SSE_PGBIN=$BIN"
  echo "PGHOST=$dir"
  echo "PGPORT=$port"
  echo "PGUSER=postgres"
  echo "PGDATABASE=sse_test"
  ;;
stop)
  dir=${2:?usage: pgcluster.sh stop DIR}
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
