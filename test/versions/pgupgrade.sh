#!/usr/bin/env bash
# pg_upgrade of a database that uses sse_bridge, from OLD to NEW major
# version, run as root inside a version chroot by test/versions/run.sh:
#
#   pgupgrade.sh OLD_BINDIR NEW_BINDIR
#
# Exit status 0 pass, 1 fail, 3 not testable: when pg_upgrade fails, the
# same upgrade of a cluster holding one plain table and no extension is
# tried; if that fails too, the two builds cannot be upgraded between at all
# (a PostgreSQL limitation, not the extension's) and the run says so.
#
# Both installations must have this tree's extension installed. The old
# cluster gets events, a prune mark and subscriptions (one filtered); after
# pg_upgrade the new cluster must hold the same log, ids, sequence positions,
# prune mark and subscriptions, and the bridge built from this tree, started
# on the new cluster, must resume a subscription from a Last-Event-ID handed
# out before the upgrade (smoke.sh --resume).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
old_bin=${1:?usage: pgupgrade.sh OLD_BINDIR NEW_BINDIR}
new_bin=${2:?usage: pgupgrade.sh OLD_BINDIR NEW_BINDIR}

dir=$(mktemp -d /tmp/sse_pgup.XXXXXX)
chmod 755 "$dir"; chown postgres:postgres "$dir"
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
  local d
  for d in old new cold cnew; do
    [ -f "$dir/$d/postmaster.pid" ] && as_pg "$(case $d in *old) echo "$old_bin" ;; *) echo "$new_bin" ;; esac)/pg_ctl" \
      -D "$dir/$d" -m immediate -w stop >/dev/null 2>&1
  done
  rm -rf "$dir"
}
trap cleanup EXIT

conf() {  # conf DATADIR PORT
  cat >>"$1/postgresql.conf" <<CONF
port = $2
listen_addresses = ''
unix_socket_directories = '$dir'
max_prepared_transactions = 10
jit = off
CONF
}
ports=$("$root/scripts/free-port.sh" 2)
p_old=$(echo "$ports" | sed -n 1p); p_new=$(echo "$ports" | sed -n 2p)
export PGHOST=$dir PGUSER=postgres
q() { psql -qAtX -v ON_ERROR_STOP=1 -p "$1" -d app -c "$2"; }
state() {
  q "$1" "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'"
  q "$1" "SELECT pruned_through FROM sse_bridge.meta"
  q "$1" "SELECT last_value || ' ' || is_called FROM sse_bridge.events_id_seq"
  q "$1" "SELECT id || ' ' || channel || ' ' || coalesce(event, '-') || ' ' || data || ' ' || created_at FROM sse_bridge.events ORDER BY id"
  q "$1" "SELECT id || ' ' || sid || ' ' || channels::text || ' ' || filter::text || ' ' || ttl || ' ' || start_id || ' ' || created_at || ' ' || closed_at IS NULL FROM sse_bridge.subscriptions ORDER BY sid"
}

# control: the same pg_upgrade for a cluster with one plain table and no
# extension; status of pg_upgrade
control() {
  local st=0
  as_pg "$old_bin/initdb" -D "$dir/cold" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1 || return 0
  conf "$dir/cold" "$p_old"
  as_pg "$old_bin/pg_ctl" -D "$dir/cold" -l "$dir/cold.log" -w start >/dev/null || return 0
  psql -qX -p "$p_old" -d postgres -c "CREATE TABLE plain (a int)" -c "INSERT INTO plain VALUES (1)" >/dev/null
  as_pg "$old_bin/pg_ctl" -D "$dir/cold" -m fast -w stop >/dev/null
  as_pg "$new_bin/initdb" -D "$dir/cnew" -U postgres -A trust -E UTF8 --locale=C.UTF-8 $nosum >/dev/null 2>&1 || return 0
  conf "$dir/cnew" "$p_new"
  (cd "$dir" && as_pg "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$dir/cold" -D "$dir/cnew" \
      -U postgres -p "$p_old" -P "$p_new" -s "$dir" >"$dir/pg_upgrade-control.log" 2>&1) || st=1
  return "$st"
}

echo "--- old cluster: $("$old_bin/postgres" --version)"
as_pg "$old_bin/initdb" -D "$dir/old" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb-old.log" 2>&1 \
  || { cat "$dir/initdb-old.log"; exit 1; }
conf "$dir/old" "$p_old"
as_pg "$old_bin/pg_ctl" -D "$dir/old" -l "$dir/old.log" -w start >/dev/null
psql -qX -p "$p_old" -d postgres -c "CREATE DATABASE app"
q "$p_old" "CREATE EXTENSION sse_bridge"
q "$p_old" "SELECT sse_publish('upg.a', 'old ' || g) FROM generate_series(1, 5) g" >/dev/null
q "$p_old" "UPDATE sse_bridge.events SET created_at = created_at - interval '1 day'"
q "$p_old" "SELECT sse_prune('1 hour')" >/dev/null
sub=$(q "$p_old" "SELECT sse_subscribe_filter(ARRAY['upg.b'])")
q "$p_old" "SELECT sse_subscribe_filter(ARRAY['upg.#'], '{\"n\": 2}')" >/dev/null
q "$p_old" "SELECT sse_publish('upg.b', 'b' || g) FROM generate_series(1, 4) g" >/dev/null
q "$p_old" "SELECT sse_publish('upg.c', '{\"n\": 2}'::jsonb, 'tick')" >/dev/null
# a client of the subscription has seen the first upg.b event
last=$(q "$p_old" "SELECT min(id) FROM sse_bridge.events WHERE channel = 'upg.b'")
want=$(q "$p_old" "SELECT string_agg(id::text, ',' ORDER BY id) FROM sse_bridge.events WHERE channel = 'upg.b' AND id > $last")
pruned=$(q "$p_old" "SELECT pruned_through FROM sse_bridge.meta")
[ "$pruned" -gt 0 ] || { echo "FAILED: the old cluster has no prune mark"; exit 1; }
state "$p_old" >"$dir/before"
as_pg "$old_bin/pg_ctl" -D "$dir/old" -m fast -w stop >/dev/null

echo "--- new cluster: $("$new_bin/postgres" --version)"
# pg_upgrade needs the same data checksum setting on both sides; initdb
# turns checksums on by default from PostgreSQL 18 (--no-data-checksums).
nosum=
case "$("$new_bin/initdb" --help)" in *--no-data-checksums*) nosum=--no-data-checksums ;; esac
as_pg "$new_bin/initdb" -D "$dir/new" -U postgres -A trust -E UTF8 --locale=C.UTF-8 $nosum >"$dir/initdb-new.log" 2>&1 \
  || { cat "$dir/initdb-new.log"; exit 1; }
conf "$dir/new" "$p_new"
if ! (cd "$dir" && as_pg "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$dir/old" -D "$dir/new" \
        -U postgres -p "$p_old" -P "$p_new" -s "$dir" >"$dir/pg_upgrade.log" 2>&1); then
  if ! control; then
    echo "NOT TESTABLE: pg_upgrade from $("$old_bin/postgres" --version) to $("$new_bin/postgres" --version)"
    echo "  fails just the same for a cluster without the extension (one plain table):"
    find "$dir/cnew" -path '*pg_upgrade_output.d*' -name '*.log' -exec grep -h -E 'ERROR: ' {} + 2>/dev/null \
      | sed 's/.*ERROR: */  ERROR: /' | sort -u | head -n 5
    exit 3
  fi
  tail -n 30 "$dir/pg_upgrade.log"
  find "$dir/new" -path '*pg_upgrade_output.d*' -name '*.log' -exec grep -h -B8 -A4 -E 'ERROR|FATAL' {} + 2>/dev/null | head -n 80
  echo "FAILED: pg_upgrade (a cluster without the extension upgrades)"; exit 1
fi
echo "ok: pg_upgrade"
as_pg "$new_bin/pg_ctl" -D "$dir/new" -l "$dir/new.log" -w start >/dev/null
state "$p_new" >"$dir/after"
fail=0
if diff -u "$dir/before" "$dir/after"; then
  echo "ok: extension version, log ($(q "$p_new" "SELECT count(*) FROM sse_bridge.events") rows), ids, sequence, prune mark $pruned and subscriptions kept"
else
  echo "FAILED: the database differs after pg_upgrade"; fail=1
fi
PGPORT=$p_new "$here/smoke.sh" --resume app "$sub" "$last" "$want" "$pruned" || fail=1
as_pg "$new_bin/pg_ctl" -D "$dir/new" -m fast -w stop >/dev/null
exit "$fail"
