#!/usr/bin/env bash
# Bridges on hot standbys (docs/scaling.md), one JSON line on stdout:
#
#  latency  one primary and one streaming standby, a bridge on each with
#           STB_LAT_CONNS clients of one channel; STB_EVENTS events published on
#           the primary one by one at STB_RATE/s; write-to-client latency
#           (publisher's clock to the client's) p50/p99 through each bridge,
#           and the ratio standby / primary.
#  cost     the primary's CPU time (every process of its cluster) and its
#           connections while the same events are published with: the
#           primary's bridge only (0 standby bridges), then 3 more bridges on
#           the standby, STB_CONNS clients each, touching through
#           --primary-db.
#
#   bench/standby.sh   (run by bench/run.sh; needs bench/build and the
#                       bridge; starts and stops its own clusters)
#   STB_LAT_CONNS=100 STB_CONNS=1000 STB_EVENTS=300 STB_RATE=30 STB_REPLAY_POLL=MS BRIDGE_BIN=...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench/build
BRIDGE_BIN=${BRIDGE_BIN:-$ROOT/bridge/sse-bridge}
CONNS=${STB_CONNS:-1000}
LAT_CONNS=${STB_LAT_CONNS:-100}
POLL=${STB_REPLAY_POLL:-}       # --replay-poll of the standby bridges (empty: the default)
poll=(); [ -n "$POLL" ] && poll=(--replay-poll "$POLL")
EVENTS=${STB_EVENTS:-300}
RATE=${STB_RATE:-30}
work=$(mktemp -d /tmp/sse_stb.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$work"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
log() { printf '== standby: %s\n' "$*" >&2; }
pids=() pgdir=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/s1/postmaster.pid" ] && as_pg "$SSE_PGBIN/pg_ctl" -D "$work/s1" -m immediate -w stop >/dev/null 2>&1
  [ -n "$pgdir" ] && scripts/pgcluster.sh stop "$pgdir"
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

unset PGHOST PGPORT PGDATABASE
eval "$(SSE_PG_CONF="wal_level = replica
hot_standby = on" scripts/pgcluster.sh start)"
pgdir=$SSE_PGDIR
p0=$PGPORT
q() { psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$PGDATABASE" -c "$2"; }
q "$p0" "CREATE EXTENSION sse_bridge" >/dev/null
as_pg "$SSE_PGBIN/pg_basebackup" -h 127.0.0.1 -p "$p0" -U postgres -D "$work/s1" -X stream -c fast -R >/dev/null
p1=$(scripts/free-port.sh)
printf "port = %s\nunix_socket_directories = '%s'\n" "$p1" "$work" >>"$work/s1/postgresql.conf"
as_pg "$SSE_PGBIN/pg_ctl" -D "$work/s1" -l "$work/s1.log" -w -t 60 start >/dev/null
conn() { echo "host=127.0.0.1 port=$1 user=postgres dbname=$PGDATABASE"; }

# bridge NAME PORT_OF_DB [args]: start a bridge; its HTTP port in $BPORT, pid in $BPID
bridge() {
  local name=$1 db=$2; shift 2
  BPORT=$(scripts/free-port.sh)
  "$BRIDGE_BIN" --db "$(conn "$db")" --listen "127.0.0.1:$BPORT" --public-channels 'bench.#' \
    --max-clients 20000 --log-level warn "$@" >>"$work/$name.log" 2>&1 &
  BPID=$!
  pids+=($BPID)
  for _ in $(seq 1 100); do curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$BPORT/healthz" && return 0; sleep 0.1; done
  log "bridge $name did not come up"; return 1
}
# clients LABEL PORT CHANNEL [N]: N (STB_CONNS) streams (pid in $LPID), a
# ready file once every one is live
clients() {
  "$B/loadgen" --port "$2" --path "/events?channel=bench.$3" --conns "${4:-$CONNS}" --ready-event ready \
    --ready-file "$work/$1.ready" --expect-per-conn "$EVENTS" --first-seq 1 --idle 10 --timeout 300 \
    --label "$1" >"$work/$1.lg" 2>>"$work/loadgen.log" &
  LPID=$!
  pids+=($LPID)
}
wait_ready() { for _ in $(seq 1 600); do [ -s "$work/$1.ready" ] && return 0; sleep 0.1; done; return 1; }
pm_pid() { head -1 "$SSE_PGDATA/postmaster.pid"; }
# CPU seconds of every process of the primary's cluster (live ones)
primary_cpu() {
  local pm; pm=$(pm_pid)
  { echo "$pm"; ps -o pid= --ppid "$pm"; } | while read -r p; do
    awk '{ print $1 }' "/proc/$p/schedstat" 2>/dev/null || true
  done | awk '{ s += $1 } END { printf "%.3f\n", s / 1e9 }'
}
conns_json() {
  q "$p0" "SELECT pg_catalog.json_object_agg(t, n) FROM (SELECT COALESCE(backend_type, '?') AS t, count(*) AS n
    FROM pg_stat_activity WHERE backend_type IN ('client backend', 'walsender') GROUP BY 1) x"
}
# run LABEL CHANNEL LG_PIDS...: publish on the primary, wait for the clients
run() {
  local label=$1 ch=$2; shift 2
  local c0 c1 conns
  conns=$(conns_json)
  c0=$(primary_cpu)
  timeout 300 "$B/publisher" --pg "bench.$ch" --conninfo "$(conn "$p0")" --count "$EVENTS" --batch 1 \
    --rate "$RATE" --size 16 >"$work/$label.pub" 2>>"$work/publisher.log"
  for p in "$@"; do wait "$p" || true; done
  c1=$(primary_cpu)
  echo "{\"primary_cpu_s\":$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }'),\"primary_connections\":$conns}"
}

# latency
log "latency: a bridge on the primary and one on the standby, $LAT_CONNS clients each, $EVENTS events at $RATE/s"
bridge primary "$p0"; bp=$BPORT
bridge standby "$p1" "${poll[@]}"; bs=$BPORT; bs_pid=$BPID
clients lat-primary "$bp" lat "$LAT_CONNS"; l1=$LPID
clients lat-standby "$bs" lat "$LAT_CONNS"; l2=$LPID
wait_ready lat-primary && wait_ready lat-standby || log "clients not ready"
lat=$(run lat lat "$l1" "$l2")
kill "$bs_pid"; wait "$bs_pid" 2>/dev/null || true

log "cost: the primary's bridge alone (0 standby bridges)"
clients cost0 "$bp" cost0; l1=$LPID
wait_ready cost0 || log "clients not ready"
cost0=$(run cost0 cost0 "$l1")

log "cost: 3 bridges on the standby with --primary-db, $CONNS clients each"
lgs=()
clients cost3p "$bp" cost3; lgs+=("$LPID")
for i in 1 2 3; do
  bridge "sb$i" "$p1" --primary-db "$(conn "$p0")" "${poll[@]}"
  clients "cost3s$i" "$BPORT" cost3; lgs+=("$LPID")
done
for l in cost3p cost3s1 cost3s2 cost3s3; do wait_ready "$l" || log "$l not ready"; done
cost3=$(run cost3 cost3 "${lgs[@]}")
lat_of() { tail -1 "$work/$1.lg"; }
printf '{"lat_conns":%s,"conns_per_bridge":%s,"events":%s,"rate":%s,"latency":{"primary":%s,"standby":%s},"cost":{"0":%s,"3":%s},"cost3_clients":[%s,%s,%s,%s],"lat_run":%s}\n' \
  "$LAT_CONNS" "$CONNS" "$EVENTS" "$RATE" "$(lat_of lat-primary)" "$(lat_of lat-standby)" "$cost0" "$cost3" \
  "$(lat_of cost3p)" "$(lat_of cost3s1)" "$(lat_of cost3s2)" "$(lat_of cost3s3)" "$lat"
