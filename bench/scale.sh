#!/usr/bin/env bash
# make bench-scale STREAMS=N: N concurrent streams on this machine, then one
# broadcast of 10 events that must reach every stream with no gap.
#
#   STREAMS=1000000 bench/scale.sh     the target (default)
#   STREAMS=30000 bench/scale.sh       a short check
#   WORKERS=N                          bridge worker processes (default: as
#                                      many as the streams need at PER_WORKER
#                                      each; only when the bridge has --workers;
#                                      --max-clients is then WORKERS x WORKER_MAX
#                                      and --max-memory (WORKERS + 1) x 64M)
#   MAX_MEMORY=SIZE                    another --max-memory for the workers
#   KEEPALIVE=S                        the bridge's --keepalive (default 15, the
#                                      bridge's own default: at 1M streams that
#                                      is 67,000 keepalive writes a second)
#   PER_PROC=N                         streams per load generator process (default:
#                                      2/5 of the local port range, at most 19,000)
#   CONNECT_PARALLEL=K                 connections each process sets up at once
#                                      (default: 3,400 over all processes, 8 to 64)
#   BRIDGE_BIN=path                    another bridge build
#   OUT=file                           the JSON result (bench/results/scale-N.json)
#   CONNECT_TIMEOUT=1800               seconds to wait for every stream
#   NO_BUILD=1                         skip building and installing
#
# The load generator runs as ceil(N / PER_PROC) processes, process i bound to
# source address 127.0.0.(10 + i): one address gives about 28,000 ports per
# destination (net.ipv4.ip_local_port_range), and a process may hold at most
# RLIMIT_NOFILE descriptors (20,000 here, a hard limit).  connect() takes
# ports of one parity first and scans the other only when those are gone:
# beyond half the range each connect scans thousands of ports, the load
# generators spend their time in the kernel and the bridge answers their
# late requests 408 (the 1,000,000 attempts stalled at about 14,100 streams
# per address).  So a process takes 2/5 of the range by default.  A bridge without
# --workers is one process, under the same limit: N is then capped at what
# one process can hold (SINGLE_MAX), and the report says so.
#
# Reported: the time to connect every stream; bridge memory per stream (RSS
# and PSS of the bridge and its workers, after minus before); kernel memory
# per socket (slab and TCP buffer pages, after minus before, over the 2N
# sockets, since both ends live on this machine); p50/p99 of the broadcast's
# completion per stream (the latency of the event that completed it); the
# database connections of the bridge; the bridge's CPU per delivered event
# during the broadcast.  Kernel limits that would stop N streams are raised
# (root only) and every change is printed.  Everything started is stopped
# on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench/build
STREAMS=${STREAMS:-1000000}
PER_PROC=${PER_PROC:-}
PER_WORKER=${PER_WORKER:-19000}   # streams planned per worker (a worker above
                                  # the average yields new connections to the
                                  # others, so the spread stays near even)
WORKER_MAX=${WORKER_MAX:-19900}   # clients one worker may hold (20,000 descriptors)
SINGLE_MAX=${SINGLE_MAX:-19950}
EVENTS=10
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-1800}
BRIDGE_BIN=${BRIDGE_BIN:-$ROOT/bridge/sse-bridge}

log() { printf '== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- build
# NO_BUILD=1: the extension is installed already and BRIDGE_BIN is built
if [ "${NO_BUILD:-0}" != 1 ]; then
  make -s >/dev/null
  make -s install >/dev/null
fi
make -s -C bench >/dev/null
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -Hn)

# ---------------------------------------------------------------- workers
WORKERS_OPT=()
MAX_CLIENTS=
HELP=$("$BRIDGE_BIN" --help 2>&1 || true)
if [[ $HELP == *--workers* ]]; then
  W=${WORKERS:-$(( (STREAMS + PER_WORKER - 1) / PER_WORKER ))}
  [ "$W" -ge 1 ] || W=1
  # --max-memory is shared by the workers and the supervisor: 64M each
  MAX_MEMORY=${MAX_MEMORY:-$(( (W + 1) * 64 ))M}
  WORKERS_OPT=(--workers "$W" --max-memory "$MAX_MEMORY")
  MAX_CLIENTS=$(( W * WORKER_MAX ))
  log "bridge: --workers $W --max-clients $MAX_CLIENTS for $STREAMS streams"
else
  W=1
  MAX_CLIENTS=$(( STREAMS + 100 ))
  if [ "$STREAMS" -gt "$SINGLE_MAX" ]; then
    log "bridge has no --workers: one process holds at most $NOFILE descriptors;" \
      "measuring $SINGLE_MAX streams instead of $STREAMS"
    STREAMS=$SINGLE_MAX
    MAX_CLIENTS=$(( STREAMS + 100 ))
  fi
fi
range=$(cat /proc/sys/net/ipv4/ip_local_port_range)
ports=$(( ${range##*[[:space:]]} - ${range%%[[:space:]]*} + 1 ))
if [ -z "$PER_PROC" ]; then
  PER_PROC=$(( ports * 2 / 5 ))
  [ "$PER_PROC" -le 19000 ] || PER_PROC=19000
fi
PROCS=$(( (STREAMS + PER_PROC - 1) / PER_PROC ))
CONNECT_PARALLEL=${CONNECT_PARALLEL:-$(( 3400 / PROCS ))}
[ "$CONNECT_PARALLEL" -ge 8 ] || CONNECT_PARALLEL=8
[ "$CONNECT_PARALLEL" -le 64 ] || CONNECT_PARALLEL=64
[ "$PROCS" -le 240 ] || { log "more than 240 load generator processes: raise PER_PROC"; exit 2; }
OUT=${OUT:-bench/results/scale-$STREAMS.json}

# ---------------------------------------------------------------- kernel limits
# raise_sysctl KEY MIN: make KEY at least MIN (the last field for ranges).
CHANGED=()
raise_sysctl() {
  local key=$1 min=$2 cur f=/proc/sys/${1//.//}
  [ -e "$f" ] || { log "sysctl $key: not present"; return 0; }
  cur=$(awk '{ print $NF }' "$f")
  if [ "$cur" -ge "$min" ]; then
    log "sysctl $key = $cur (>= $min, unchanged)"
  elif [ "$(id -u)" = 0 ] && echo "$min" >"$f" 2>/dev/null; then
    log "sysctl $key: $cur -> $min (changed)"
    CHANGED+=("$key $cur->$min")
  else
    log "sysctl $key = $cur is below $min and cannot be changed here: expect failures"
  fi
}
SOCKETS=$(( 2 * STREAMS ))
raise_sysctl fs.file-max $(( SOCKETS + 200000 ))
raise_sysctl net.core.somaxconn 4096
raise_sysctl net.ipv4.tcp_max_syn_backlog 8192
# loopback connections are tracked when nf_conntrack is loaded: one entry each
raise_sysctl net.netfilter.nf_conntrack_max $(( STREAMS + STREAMS / 4 + 10000 ))
# TCP buffer memory (pages, all sockets): what a stream's first bytes and
# keepalives hold in the receive queues of busy load generators reached
# about 3 pages a stream at 700,000 (the default maximum here is 575,814)
tcp_need=$(( STREAMS * 3 ))
read -r tcp_min tcp_press tcp_max </proc/sys/net/ipv4/tcp_mem
if [ "$tcp_max" -lt "$tcp_need" ]; then
  if [ "$(id -u)" = 0 ] && echo "$tcp_min $(( tcp_need * 2 / 3 )) $tcp_need" >/proc/sys/net/ipv4/tcp_mem 2>/dev/null; then
    log "sysctl net.ipv4.tcp_mem: $tcp_min $tcp_press $tcp_max -> $(cat /proc/sys/net/ipv4/tcp_mem) (changed)"
    CHANGED+=("net.ipv4.tcp_mem $tcp_max->$tcp_need")
  else
    log "sysctl net.ipv4.tcp_mem maximum $tcp_max is below $tcp_need pages and cannot be changed here: expect failures"
  fi
fi
log "ip_local_port_range $range: $ports ports per source address and destination;" \
  "$PER_PROC streams per address, $CONNECT_PARALLEL connecting at once"
[ "$(( ports / 2 ))" -gt "$PER_PROC" ] || log "PER_PROC is above half the port range: expect slow connects and 408s"
log "tcp_mem (pages) $(cat /proc/sys/net/ipv4/tcp_mem); RLIMIT_NOFILE $NOFILE per process"

# ---------------------------------------------------------------- cluster
WORK=$(mktemp -d /tmp/sse_scale.XXXXXX)
PIDS=(); LGS=(); SSE_PGDIR=; BRIDGE_PID=
cleanup() {
  local rc=$? p
  for p in "${LGS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  [ -n "$SSE_PGDIR" ] && scripts/pgcluster.sh stop "$SSE_PGDIR"
  if [ $rc -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cl=
for try in 1 2 3; do cl=$(scripts/pgcluster.sh start 2>"$WORK/pgcluster.err") && break; cl=; done
[ -n "$cl" ] || { cat "$WORK/pgcluster.err" >&2; exit 1; }
eval "$cl"
export PGHOST PGPORT PGUSER PGDATABASE SSE_PGDATA SSE_PGBIN SSE_PGDIR
psql -qXc "CREATE EXTENSION IF NOT EXISTS sse_bridge" >/dev/null

# ---------------------------------------------------------------- helpers
tree_pids() { local p=$1 c; echo "$p"; for c in $(pgrep -P "$p" 2>/dev/null); do tree_pids "$c"; done; }
tree_sum() {   # tree_sum PID FILE FIELD: sum of FIELD (kB) in /proc/P/FILE over the tree
  local p
  for p in $(tree_pids "$1"); do awk -v k="$3:" '$1 == k { print $2 }' "/proc/$p/$2" 2>/dev/null; done \
    | awk '{ s += $1 } END { print s + 0 }'
}
tree_cpu() {
  local p
  for p in $(tree_pids "$1"); do cat "/proc/$p/schedstat" 2>/dev/null; done \
    | awk '{ s += $1 } END { printf "%.6f\n", s / 1e9 }'
}
slab_kb() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
tcp_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
tcp_inuse() { awk '$1 == "TCP:" { print $3 }' /proc/net/sockstat; }
db_conns() {
  psql -qXtAc "SELECT count(*) FROM pg_stat_activity
               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
}
now() { date +%s.%N; }

# ---------------------------------------------------------------- bridge
PORT=$(scripts/free-port.sh 1)
"$BRIDGE_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER" \
  --listen "127.0.0.1:$PORT" --public-channels 'bench.#' \
  --max-clients "$MAX_CLIENTS" --keepalive "${KEEPALIVE:-15}" --log-level warn "${WORKERS_OPT[@]}" 2>>"$WORK/bridge.log" &
BRIDGE_PID=$!
PIDS+=("$BRIDGE_PID")
for _ in $(seq 1 200); do curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz" || { log "bridge did not come up"; tail "$WORK/bridge.log" >&2; exit 1; }
sleep 1
RSS0=$(tree_sum "$BRIDGE_PID" status VmRSS)
PSS0=$(tree_sum "$BRIDGE_PID" smaps_rollup Pss)
SLAB0=$(slab_kb); TCPM0=$(tcp_pages); INUSE0=$(tcp_inuse)
log "bridge up (pid $BRIDGE_PID, RSS $RSS0 kB); $STREAMS streams from $PROCS load generator processes"

# ---------------------------------------------------------------- connect
T0=$(now)
for i in $(seq 0 $(( PROCS - 1 ))); do
  n=$(( STREAMS / PROCS + (i < STREAMS % PROCS ? 1 : 0) ))
  "$B/loadgen" --port "$PORT" --bind "127.0.0.$(( 10 + i ))" --path "/events?channel=bench.scale" \
    --conns "$n" --ready-event ready --ready-file "$WORK/ready.$i" --connect-parallel "$CONNECT_PARALLEL" \
    --expect-per-conn "$EVENTS" --first-seq 1 --hist --hold --idle 60 --progress 30 --timeout $(( CONNECT_TIMEOUT + 600 )) --label "scale-$i" \
    >"$WORK/lg.$i" 2>>"$WORK/loadgen.log" &
  LGS+=($!)
done
# every process writes its ready file when all its streams are ready (or
# failed); a process that exits early has failed streams: stop waiting
ready=0
while :; do
  ready=0; alive=0
  for i in $(seq 0 $(( PROCS - 1 ))); do
    [ -s "$WORK/ready.$i" ] && ready=$((ready + 1))
    kill -0 "${LGS[$i]}" 2>/dev/null && alive=$((alive + 1))
  done
  [ "$ready" -ge "$PROCS" ] && break
  [ "$alive" -lt "$PROCS" ] && { log "a load generator ended before its streams were ready"; break; }
  [ "$(awk -v a="$T0" -v b="$(now)" -v t="$CONNECT_TIMEOUT" 'BEGIN { print (b - a > t) }')" = 1 ] && { log "connect timed out"; break; }
  sleep 0.5
done
T1=$(now)
CONNECT_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
sleep 2
RSS1=$(tree_sum "$BRIDGE_PID" status VmRSS)
PSS1=$(tree_sum "$BRIDGE_PID" smaps_rollup Pss)
SLAB1=$(slab_kb); TCPM1=$(tcp_pages); INUSE1=$(tcp_inuse)
DBC=$(db_conns || echo null)
curl -fs --max-time 20 "http://127.0.0.1:$PORT/metrics" >"$WORK/metrics.txt" || true
STREAMS_UP=$(awk '$1 == "sse_bridge_streams" { s += $2 } END { print s + 0 }' "$WORK/metrics.txt")
# the spread over the workers: fewest and most clients on one worker
SPREAD=$(awk '$1 ~ /^sse_bridge_worker_clients[{]/ { n++; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 }
  END { if (n) printf "[%d, %d]", min, max; else printf "null" }' "$WORK/metrics.txt")
log "connected in $CONNECT_S s ($ready/$PROCS processes ready; bridge reports $STREAMS_UP streams);" \
  "bridge RSS $RSS0 -> $RSS1 kB; slab $SLAB0 -> $SLAB1 kB; TCP sockets $INUSE0 -> $INUSE1; $DBC database connections"

# ---------------------------------------------------------------- broadcast
C0=$(tree_cpu "$BRIDGE_PID")
timeout 600 "$B/publisher" --pg bench.scale --count "$EVENTS" --batch "$EVENTS" --size 16 \
  >"$WORK/pub.json" 2>>"$WORK/publisher.log" || log "publisher failed: $(tail -1 "$WORK/publisher.log")"
# a load generator prints its result when each of its streams has all the
# events, or 60 s after the last one (a stream that misses an event is
# counted); it keeps its connections open (--hold), so that the bridge's
# CPU is read before the streams close
while :; do
  done_n=0; alive=0
  for i in $(seq 0 $(( PROCS - 1 ))); do
    [ -s "$WORK/lg.$i" ] && done_n=$((done_n + 1))
    kill -0 "${LGS[$i]}" 2>/dev/null && alive=$((alive + 1))
  done
  [ "$done_n" -ge "$alive" ] && break
  sleep 0.2
done
C1=$(tree_cpu "$BRIDGE_PID")
for p in "${LGS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
LGS=()

node bench/lgmerge.js "$WORK"/lg.* >"$WORK/merged.json"
mkdir -p "$(dirname "$OUT")"
node - "$WORK/merged.json" "$OUT" <<EOF
const fs = require('fs');
const m = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const streams = $STREAMS, sockets = 2 * $STREAMS;
const r = {
  date: new Date().toISOString(), streams, workers: $W, loadgen_processes: $PROCS,
  bridge: "$("$BRIDGE_BIN" --version 2>/dev/null | head -1)",
  commit: "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
  kernel_changes: $(printf '%s\n' "${CHANGED[@]}" | node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(0,"utf8").split("\n").filter(Boolean)))'),
  connect_s: $CONNECT_S, streams_ready: m.ready, streams_failed: m.failed, bridge_streams_metric: $STREAMS_UP,
  worker_clients_min_max: $SPREAD,
  bridge_rss_kb: [$RSS0, $RSS1], bridge_pss_kb: [$PSS0, $PSS1],
  bridge_rss_per_stream_b: Math.round(($RSS1 - $RSS0) * 1024 / streams),
  bridge_pss_per_stream_b: Math.round(($PSS1 - $PSS0) * 1024 / streams),
  slab_kb: [$SLAB0, $SLAB1], tcp_mem_pages: [$TCPM0, $TCPM1], tcp_inuse: [$INUSE0, $INUSE1],
  kernel_per_socket_b: Math.round((($SLAB1 - $SLAB0) * 1024 + ($TCPM1 - $TCPM0) * 4096) / sockets),
  database_connections: $DBC,
  events: $EVENTS, deliveries: m.deliveries, expected: streams * $EVENTS,
  complete_streams: m.complete_conns, gaps: m.gaps, missing: m.missing, dups: m.dups, reorders: m.reorders,
  completion_us: m.done_us, delivery_latency_us: m.lat_us,
  bridge_cpu_s: +($C1 - $C0).toFixed(6),
  cpu_per_delivery_ns: m.deliveries ? Math.round(($C1 - $C0) * 1e9 / m.deliveries) : null,
  loadgen_cpu_s: m.cpu_s,
};
r.ok = r.complete_streams === streams && !r.gaps && !r.missing && !r.dups && !r.reorders && r.deliveries === r.expected;
fs.writeFileSync(process.argv[3], JSON.stringify(r, null, 2) + '\n');
console.log(JSON.stringify(r, null, 2));
EOF
log "written: $OUT"
