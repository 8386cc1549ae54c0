#!/usr/bin/env bash
# make bench: sse_bridge, nginx+Nchan and a minimal broadcaster (the ceiling),
# side by side in one run, on 127.0.0.1 only.
#
#   bench/run.sh                 full run (>= 1,000,000 deliveries per fan-out)
#   QUICK=1 bench/run.sh         short development run
#   ONLY="fanout idle" bench/run.sh   a subset of: idle fanout selective replay publish proxy standby filtercost memory
#   TARGETS="bridge nchan" ...   a subset of: bridge nchan ceiling
#   PERF=1 ...                   also profile the bridge (fan-out, selective,
#                                replay) into bench/results/perf-*.txt
#   KEEP=1 ...                   keep the work directory (logs, raw outputs)
#   BRIDGE_BIN=path ...          benchmark another sse-bridge build
#   OUT=file ...                 write the JSON there instead of latest.json
#   BASE_BIN=path ...            also run that bridge build as target
#                                bridge_base (a before/after in one run)
#   WORKERS=1,2 ...              also run the bridge with --workers N
#                                (target bridge_wN, N > 1) where the bridge
#                                has --workers; skipped if not.  The bridge
#                                target is always one process (--workers 1
#                                when the option exists)
#   WORKERS_BIN=path ...         the build the worker variants run (default
#                                BRIDGE_BIN; another build also gets a
#                                --workers 1 target, bridge_w1)
#   FAN_CONNS="1000 5000 20000"  fan-out sizes; above LG_MAX (19000)
#                                connections the load generator runs as
#                                several processes (one may hold 20,000
#                                descriptors here)
#
# Prints a table and writes it as JSON to bench/results/latest.json.
# Every server, loop and wait here is bounded in time; a trap stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=${QUICK:-0}
ONLY=${ONLY:-idle fanout selective replay publish proxy standby filtercost memory}
TARGETS=${TARGETS:-bridge nchan ceiling}
PERF=${PERF:-0}
B=$ROOT/bench/build

log() { printf '== %s\n' "$*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- sizes
# The fan-out sizes give at least 1,000,000 deliveries per run (QUICK=1: a
# fifth).  Servers that finish that in well under a second (the bridge and
# the batching ceiling) get FAN_SCALE times more events, so that their rate
# is not measured over a few scheduler time slices of this shared machine.
FAN_SCALE=${FAN_SCALE:-5}
if [ "$QUICK" = 1 ]; then
  FAN_EVENTS_1000=200; FAN_EVENTS_5000=40; REPEAT=${REPEAT:-1}
  LAT_SECONDS=3
  SEL_CONNS=10000; SEL_JOBS=100; SEL_EVENTS=2000; SEL_SCAN_EVENTS=1000; SEL_REPEAT=${SEL_REPEAT:-1}
  IDLE_CONNS=10000
  RP_CLIENTS=200; RP_BEHIND=2000; LIVE_IDLE_SECONDS=3
else
  FAN_EVENTS_1000=1000; FAN_EVENTS_5000=200; REPEAT=${REPEAT:-3}
  LAT_SECONDS=10
  SEL_CONNS=10000; SEL_JOBS=100; SEL_EVENTS=10000; SEL_SCAN_EVENTS=2000; SEL_REPEAT=${SEL_REPEAT:-3}
  IDLE_CONNS=10000
  RP_CLIENTS=1000; RP_BEHIND=10000; LIVE_IDLE_SECONDS=5
fi
BATCH=${BATCH:-10}             # events per transaction / pipelined POSTs
PAYLOAD=${PAYLOAD:-16}          # padding bytes per event (data is ~70 bytes)
LAT_DELIVERIES=${LAT_DELIVERIES:-20000}   # deliveries/s in the paced latency runs
LIVE_CONNS=100; LIVE_RATE=100    # replay scenario: live clients and events/s
FAN_CONNS=${FAN_CONNS:-1000 5000}

# ---------------------------------------------------------------- setup
# the tree that gets built, recorded before the build
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain -- src bridge sql 'sse_bridge--*.sql' 2>/dev/null)" ] && COMMIT+="+dirty"
NEED_PG=0
{ has_target bridge || want publish; } && NEED_PG=1
scripts/deps.sh --bench
log "building"
if [ "$NEED_PG" = 1 ]; then
  make -s >/dev/null
  make -s install >/dev/null
fi
make -s -C bench >/dev/null

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/sse_bench.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
PIDS=()
SSE_PGDIR=

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  [ -n "$SSE_PGDIR" ] && scripts/pgcluster.sh stop "$SSE_PGDIR"
  if [ $rc -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (bounded) until a file exists.
wait_file() {
  local f=$1 secs=$2 i
  for i in $(seq 1 $((secs * 10))); do [ -s "$f" ] && return 0; sleep 0.1; done
  return 1
}

# Waits (bounded) until GET url answers 200.
wait_http() {
  local url=$1 i
  for i in $(seq 1 100); do
    curl -fs -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  return 1
}

# A process and all its descendants.
tree_pids() {
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null); do tree_pids "$c"; done
}
# CPU seconds used so far by a process and its descendants (all threads;
# scheduler nanoseconds), so that a bridge with worker processes counts whole.
cpu_s() {
  local p sum=0
  for p in $(tree_pids "$1"); do
    sum=$(awk -v s="$sum" '{ printf "%.6f\n", s + $1 / 1e9 }' "/proc/$p/schedstat" 2>/dev/null || echo "$sum")
  done
  echo "$sum"
}
# Resident memory of a process and its descendants (kB).
rss_kb() { local p; for p in $(tree_pids "$1"); do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s + 0 }'; }
anon_kb() { local p; for p in $(tree_pids "$1"); do awk '/^RssAnon:/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s + 0 }'; }

if [ "$NEED_PG" = 1 ]; then
  log "starting a throwaway cluster"
  # its port is picked at random and may clash; try a few times
  for try in 1 2 3; do
    cl=$(scripts/pgcluster.sh start 2>"$WORK/pgcluster.err") && break
    log "cluster start failed (try $try)"; cl=
  done
  [ -n "$cl" ] || { cat "$WORK/pgcluster.err" >&2; exit 1; }
  eval "$cl"
  export PGHOST PGPORT PGUSER PGDATABASE SSE_PGDATA SSE_PGBIN SSE_PGDIR
  psql -qXc "CREATE EXTENSION IF NOT EXISTS sse_bridge" >/dev/null
fi

BRIDGE_BIN=${BRIDGE_BIN:-$ROOT/bridge/sse-bridge}   # override to A/B another build
{ read -r BPORT; read -r NPORT; read -r CPORT; read -r CCPORT; } < <(scripts/free-port.sh 4)
BRIDGE_PID=; NGINX_PID=; NCHAN_WORKER=; CEIL_PID=; CEILP_PID=
LG_MAX=${LG_MAX:-19000}        # connections per load generator process

# Bridge variants: more bridge targets, each its own process and port.
# VBIN[name] the binary, VARGS[name] its extra options.
declare -A VBIN=() VARGS=() VPORT=() VPID=()
BRIDGE_ARGS=()                 # extra options of the main bridge target
has_workers() { local h; h=$("$1" --help 2>&1 || true); [[ $h == *--workers* ]]; }
# a bridge with --workers runs one worker per CPU by default: the bridge
# target stays one process (like the ceiling) unless WORKERS says otherwise
has_workers "$BRIDGE_BIN" && BRIDGE_ARGS=(--workers 1)
if [ -n "${BASE_BIN:-}" ] && has_target bridge; then
  VBIN[bridge_base]=$BASE_BIN; VARGS[bridge_base]=
  has_workers "$BASE_BIN" && VARGS[bridge_base]="--workers 1"
  TARGETS+=" bridge_base"
fi
WORKERS_BIN=${WORKERS_BIN:-$BRIDGE_BIN}
if [ -n "${WORKERS:-}" ] && has_target bridge; then
  if has_workers "$WORKERS_BIN"; then
    for w in ${WORKERS//,/ }; do
      if [ "$w" = 1 ]; then
        [ "$WORKERS_BIN" = "$BRIDGE_BIN" ] && continue   # the bridge target
        VBIN[bridge_w1]=$WORKERS_BIN
        VARGS[bridge_w1]="--workers 1"
        TARGETS+=" bridge_w1"
      else
        VBIN[bridge_w$w]=$WORKERS_BIN
        VARGS[bridge_w$w]="--workers $w --max-clients $(( 19000 * w ))"
        TARGETS+=" bridge_w$w"
      fi
    done
  else
    log "WORKERS=$WORKERS: $WORKERS_BIN has no --workers option; skipping the worker variants"
  fi
fi
is_variant() { [ -n "${VBIN[$1]:-}" ]; }

# ---------------------------------------------------------------- servers
start_bridge() {
  stop_bridge
  "$BRIDGE_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER" \
    --listen "127.0.0.1:$BPORT" --public-channels 'bench.#' \
    --max-clients 20000 --log-level warn "${BRIDGE_ARGS[@]}" "$@" 2>>"$WORK/bridge.log" &
  BRIDGE_PID=$!
  PIDS+=("$BRIDGE_PID")
  wait_http "http://127.0.0.1:$BPORT/healthz" || { log "bridge did not come up"; tail "$WORK/bridge.log" >&2; return 1; }
}
# start_variant NAME: a bridge variant (VBIN/VARGS) on a port of its own.
start_variant() {
  local v=$1
  stop_variant "$v"
  [ -n "${VPORT[$v]:-}" ] || VPORT[$v]=$(scripts/free-port.sh 1)
  # shellcheck disable=SC2086
  "${VBIN[$v]}" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER" \
    --listen "127.0.0.1:${VPORT[$v]}" --public-channels 'bench.#' \
    --max-clients 20000 --log-level warn ${VARGS[$v]} 2>>"$WORK/$v.log" &
  VPID[$v]=$!
  PIDS+=("${VPID[$v]}")
  wait_http "http://127.0.0.1:${VPORT[$v]}/healthz" || { log "$v did not come up"; tail "$WORK/$v.log" >&2; return 1; }
}
stop_variant() {
  [ -n "${VPID[$1]:-}" ] || return 0
  kill "${VPID[$1]}" 2>/dev/null || true
  wait "${VPID[$1]}" 2>/dev/null || true
  VPID[$1]=
}
start_variants() {
  local v
  for v in "${!VBIN[@]}"; do [ -n "${VPID[$v]:-}" ] || start_variant "$v"; done
}

stop_bridge() {
  [ -n "$BRIDGE_PID" ] || return 0
  kill "$BRIDGE_PID" 2>/dev/null || true
  wait "$BRIDGE_PID" 2>/dev/null || true
  BRIDGE_PID=
}

start_nchan() {
  stop_nchan
  local p=$WORK/nginx
  rm -rf "$p"; mkdir -p "$p"
  sed -e "s#@PREFIX@#$p#g" -e "s#@PORT@#$NPORT#g" bench/nchan.conf.in >"$p/nginx.conf"
  nginx -p "$p" -c "$p/nginx.conf" -e "$p/error.log" 2>>"$WORK/nginx.log" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  local i
  for i in $(seq 1 50); do
    NCHAN_WORKER=$(pgrep -P "$NGINX_PID" | head -1 || true)
    [ -n "$NCHAN_WORKER" ] && curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NPORT/" && return 0
    sleep 0.1
  done
  log "nginx did not come up"; cat "$p/error.log" >&2; return 1
}
stop_nchan() {
  [ -n "$NGINX_PID" ] || return 0
  kill -QUIT "$NGINX_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=; NCHAN_WORKER=
}

# start_ceiling [--per-event]: the ceiling on CPORT (one write per socket per
# pipelined batch), or, with --per-event, one write per event on CCPORT.
start_ceiling() {
  local port=$CPORT pid
  [ "${1:-}" = --per-event ] && port=$CCPORT
  "$B/ceiling" --port "$port" "$@" 2>>"$WORK/ceiling.log" &
  pid=$!
  PIDS+=("$pid")
  if [ "$port" = "$CPORT" ]; then CEIL_PID=$pid; else CEILP_PID=$pid; fi
  local i
  for i in $(seq 1 50); do
    ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

server_pid() {
  is_variant "$1" && { echo "${VPID[$1]}"; return; }
  case $1 in
    bridge) echo "$BRIDGE_PID" ;; nchan) echo "$NCHAN_WORKER" ;;
    ceiling) echo "$CEIL_PID" ;; ceiling_per_event) echo "$CEILP_PID" ;;
  esac
}
port_of() {
  is_variant "$1" && { echo "${VPORT[$1]}"; return; }
  case $1 in
    bridge) echo "$BPORT" ;; nchan) echo "$NPORT" ;;
    ceiling) echo "$CPORT" ;; ceiling_per_event) echo "$CCPORT" ;;
  esac
}

# Subscriber path for a channel; {i} is left for the load generator.
sub_path() {
  local t=$1 ch=$2 filter=${3:-}
  case $t in
    bridge*) echo "/events?channel=bench.$ch${filter:+&filter=$filter}" ;;
    nchan) echo "/sub?id=$ch" ;;
    ceiling*) echo "/sub" ;;
  esac
}
ready_args() { [[ $1 == bridge* ]] && echo "--ready-event ready" || true; }

# publish TARGET CHANNEL publisher-args...   ({j} in CHANNEL: the job)
publish() {
  local t=$1 ch=$2; shift 2
  case $t in
    bridge*) timeout 400 "$B/publisher" --pg "bench.$ch" --size "$PAYLOAD" "$@" ;;
    nchan) timeout 400 "$B/publisher" --http "/pub?id=$ch" --port "$NPORT" --size "$PAYLOAD" "$@" ;;
    ceiling*) timeout 400 "$B/publisher" --http "/pub" --port "$(port_of "$t")" --size "$PAYLOAD" "$@" ;;
  esac
}

# record SCENARIO TARGET KEY=JSON...: one line of results.
record() {
  local s=$1 t=$2; shift 2
  local line="{\"scenario\":\"$s\",\"target\":\"$t\""
  local kv
  for kv in "$@"; do line+=",\"${kv%%=*}\":${kv#*=}"; done
  echo "$line}" >>"$RESULTS"
}

json_or_null() { [ -s "$1" ] && tail -1 "$1" || echo null; }

# The bridge's /metrics samples as one JSON object (name{labels} -> value).
metrics() {
  curl -fs --max-time 2 "http://127.0.0.1:$BPORT/metrics" 2>/dev/null \
    | awk 'BEGIN { printf "{"; n = 0 }
           /^#/ || NF < 2 { next }
           { k = $1; gsub(/"/, "\\\"", k); printf "%s\"%s\":%s", (n++ ? "," : ""), k, $2 + 0 }
           END { print "}" }'
}

metrics_of() {
  if is_variant "$1"; then BPORT=${VPORT[$1]} metrics; else metrics; fi
}

# perf_start LABEL PID / perf_stop: profile the bridge (PERF=1) into
# bench/results/perf-LABEL.txt.
PERF_PID=; PERF_LABEL=
perf_start() {
  [ "$PERF" = 1 ] || return 0
  PERF_LABEL=$1
  perf record -F 1999 -g -o "$WORK/$1.perf" -p "$2" >/dev/null 2>&1 &
  PERF_PID=$!
}
perf_stop() {
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  mkdir -p bench/results
  {
    echo "# flat profile (self time)"
    perf report -i "$WORK/$PERF_LABEL.perf" --no-children -g none --percent-limit 0.3 --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' | head -80
    echo "# call graphs"
    perf report -i "$WORK/$PERF_LABEL.perf" --no-children --percent-limit 2 --stdio 2>/dev/null \
      | grep -v '^$' | grep -v '^#' | head -300
  } >"bench/results/perf-$PERF_LABEL.txt" || true
  PERF_PID=
}

# ---------------------------------------------------------------- scenarios

# fanout_run TARGET CONNS EVENTS MODE(thr|lat) LABEL
# One channel; the publisher sends EVENTS events either unpaced in batches
# (thr: saturation throughput) or paced at LAT_DELIVERIES/CONNS events/s one
# at a time (lat: latency below saturation, the same offered load for all).
fanout_run() {
  local t=$1 n=$2 ev=$3 mode=$4 label=$5
  local ch="f$n$mode$RANDOM" pid out=$WORK/$label.lg pub=$WORK/$label.pub
  local port; port=$(port_of "$t")
  # one load generator per LG_MAX connections (a process holds at most
  # 20,000 descriptors here); their outputs are merged into one line
  local k=$(( (n + LG_MAX - 1) / LG_MAX )) i per lgs=() hist=()
  [ "$k" -gt 1 ] && hist=(--hist)
  for i in $(seq 1 "$k"); do
    per=$(( n / k + (i <= n % k ? 1 : 0) ))
    # shellcheck disable=SC2046
    "$B/loadgen" --port "$port" --path "$(sub_path "$t" "$ch")" --conns "$per" $(ready_args "$t") \
      --ready-file "$WORK/$label.ready.$i" --expect-per-conn "$ev" --first-seq 1 "${hist[@]}" \
      --idle 15 --timeout 180 --label "$label" >"$out.$i" 2>>"$WORK/loadgen.log" &
    lgs+=($!)
  done
  for i in $(seq 1 "$k"); do
    wait_file "$WORK/$label.ready.$i" 60 || { log "$label: clients not ready"; kill "${lgs[@]}" 2>/dev/null || true; break; }
  done
  local spid; spid=$(server_pid "$t")
  [[ $t == bridge* ]] && metrics_of "$t" >"$WORK/$label.m0"
  local c0; c0=$(cpu_s "$spid")
  [ "$t" = bridge ] && [ "$mode" = thr ] && perf_start "$label" "$spid"
  local prc=0
  if [ "$mode" = thr ]; then
    publish "$t" "$ch" --count "$ev" --batch "$BATCH" >"$pub" 2>>"$WORK/publisher.log" || prc=$?
  else
    publish "$t" "$ch" --count "$ev" --batch 1 --rate "$(( LAT_DELIVERIES / n ))" >"$pub" 2>>"$WORK/publisher.log" || prc=$?
  fi
  if [ "$prc" != 0 ]; then
    log "$label: publisher failed ($prc): $(tail -1 "$WORK/publisher.log")"
    sleep 5; kill -TERM "${lgs[@]}" 2>/dev/null || true
  fi
  for i in "${lgs[@]}"; do wait "$i" || true; done
  local c1; c1=$(cpu_s "$spid")
  perf_stop
  if [ "$k" -gt 1 ]; then node bench/lgmerge.js "$out".* >"$out"; else mv "$out.1" "$out"; fi
  local m=null
  [[ $t == bridge* ]] && { metrics_of "$t" >"$WORK/$label.m1"; m="{\"before\":$(cat "$WORK/$label.m0"),\"after\":$(cat "$WORK/$label.m1")}"; }
  record fanout "$t" "conns=$n" "mode=\"$mode\"" "events=$ev" "batch=$BATCH" "metrics=$m" \
    "lg_processes=$k" "server_cpu_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
    "loadgen=$(json_or_null "$out")" "publisher=$(json_or_null "$pub")"
}

scenario_fanout() {
  local n ev t r
  for n in $FAN_CONNS; do
    # the same deliveries at every size (5,000: FAN_EVENTS_5000)
    ev=$(( FAN_EVENTS_1000 * 1000 / n )); [ "$n" = 5000 ] && ev=$FAN_EVENTS_5000
    [ "$ev" -ge 1 ] || ev=1
    for r in $(seq 1 "$REPEAT"); do
      for t in $TARGETS ceiling_per_event; do
        [ "$t" = ceiling_per_event ] && { has_target ceiling || continue; }
        local tev=$ev
        case $t in bridge*|ceiling) tev=$(( ev * FAN_SCALE )) ;; esac
        log "fan-out: $t, $n connections, $tev events (throughput, run $r)"
        fanout_run "$t" "$n" "$tev" thr "fan-$t-$n-thr-$r"
      done
    done
    for t in $TARGETS; do
      local lev=$(( LAT_DELIVERIES / n * LAT_SECONDS ))
      log "fan-out: $t, $n connections, $lev events paced at $(( LAT_DELIVERIES / n ))/s (latency)"
      fanout_run "$t" "$n" "$lev" lat "fan-$t-$n-lat"
    done
  done
}

# Selective fan-out: SEL_CONNS streams, stream i filtered to job i % SEL_JOBS
# (so each event matches 1 / SEL_JOBS of them); SEL_EVENTS events rotate
# through the jobs.  The bridge runs twice: with its filter index, and with
# every filter evaluated for every event.  For the second it uses
# --filter-index off when it has that switch; otherwise the same filters
# one level down ({"n":{"job":...}}, a member a key/value index cannot
# cover), which select exactly the same events from the same payloads.
# selective_run TARGET LABEL [SCAN_HOW [CONNS JOBS]]
selective_run() {
  local t=$1 label=$2 scan_how=${3:-}
  local SEL_CONNS=${4:-$SEL_CONNS} SEL_JOBS=${5:-$SEL_JOBS}
  local ch="sel$RANDOM" path out=$WORK/$label.lg pub=$WORK/$label.pub
  local per=$(( SEL_EVENTS / SEL_JOBS ))
  case $t in
    bridge|bridge_small*) path="/events?channel=bench.$ch&filter=%7B%22job%22%3A%22{i}%22%7D" ;;
    bridge_scan)
      if [ "$scan_how" = nested ]; then
        path="/events?channel=bench.$ch&filter=%7B%22n%22%3A%7B%22job%22%3A%22{i}%22%7D%7D"
      else
        path="/events?channel=bench.$ch&filter=%7B%22job%22%3A%22{i}%22%7D"
      fi ;;
    nchan) path="/sub?id=$ch{i}" ;;
  esac
  local base=${t%%_*}
  local port; port=$(port_of "$base")
  # shellcheck disable=SC2046
  "$B/loadgen" --port "$port" --path "$path" --mod "$SEL_JOBS" --conns "$SEL_CONNS" \
    $(ready_args "$base") --ready-file "$WORK/$label.ready" --expect-per-conn "$per" \
    --first-seq 1 --idle 15 --timeout 300 --label "$label" >"$out" 2>>"$WORK/loadgen.log" &
  local lg=$!
  wait_file "$WORK/$label.ready" 120 || { log "$label: clients not ready"; kill "$lg"; }
  local spid; spid=$(server_pid "$base")
  [ "$base" = bridge ] && { metrics >"$WORK/$label.m0"; perf_start "$label" "$spid"; }
  local c0; c0=$(cpu_s "$spid")
  local pubch=$ch; [ "$t" = nchan ] && pubch="$ch{j}"
  publish "$base" "$pubch" --count "$SEL_EVENTS" --jobs "$SEL_JOBS" --batch "$BATCH" \
    >"$pub" 2>>"$WORK/publisher.log" || true
  wait "$lg" || true
  local c1; c1=$(cpu_s "$spid")
  perf_stop
  local m=null
  [ "$base" = bridge ] && { metrics >"$WORK/$label.m1"; m="{\"before\":$(cat "$WORK/$label.m0"),\"after\":$(cat "$WORK/$label.m1")}"; }
  record selective "$t" "conns=$SEL_CONNS" "jobs=$SEL_JOBS" "events=$SEL_EVENTS" \
    "scan_how=\"$scan_how\"" "metrics=$m" \
    "server_cpu_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
    "loadgen=$(json_or_null "$out")" "publisher=$(json_or_null "$pub")"
}

scenario_selective() {
  if has_target bridge; then
    # index and scan alternate, SEL_REPEAT times each, so that a neighbour
    # on the machine does not land on one side only; the scan runs take
    # SEL_SCAN_EVENTS events (their cost per event is what counts)
    local r scan_how=nested
    "$BRIDGE_BIN" --help 2>&1 | grep -q -- '--filter-index' && scan_how=flag
    for r in $(seq 1 "$SEL_REPEAT"); do
      log "selective: bridge (filter index), $SEL_CONNS streams (run $r)"
      selective_run bridge "selective-bridge-$r"
      if [ "$scan_how" = flag ]; then
        start_bridge --filter-index off
        log "selective: bridge with --filter-index off, $SEL_CONNS streams (run $r)"
      else
        log "selective: bridge with unindexable (nested) filters, $SEL_CONNS streams (run $r)"
      fi
      SEL_EVENTS=$SEL_SCAN_EVENTS selective_run bridge_scan "selective-bridge-scan-$r" "$scan_how"
      [ "$scan_how" = flag ] && start_bridge
    done
    # Cost must follow matches, not subscriptions: the same SEL_CONNS/10
    # active streams (each event matches 1% of them), first alone, then
    # beside 9x as many streams whose filters match nothing.
    local small=$(( SEL_CONNS / 10 )) idle=$(( SEL_CONNS - SEL_CONNS / 10 ))
    log "selective: bridge, $small active streams alone"
    selective_run bridge_small selective-bridge-small "" "$small" "$SEL_JOBS"
    # shellcheck disable=SC2046
    "$B/loadgen" --port "$BPORT" --conns "$idle" --ready-event ready \
      --path "/events?channel=bench.selidle&filter=%7B%22job%22%3A%22none{i}%22%7D" \
      --ready-file "$WORK/selidle.ready" --timeout 600 --label selidle \
      >"$WORK/selidle.lg" 2>>"$WORK/loadgen.log" &
    local il=$!
    wait_file "$WORK/selidle.ready" 120 || log "selective: idle streams not ready"
    log "selective: bridge, $small active streams beside $idle that match nothing"
    selective_run bridge_small_plus selective-bridge-small-plus "" "$small" "$SEL_JOBS"
    kill -TERM "$il" 2>/dev/null || true
    wait "$il" || true
  fi
  if has_target nchan; then
    log "selective: nchan (one channel per job), $SEL_CONNS streams"
    selective_run nchan selective-nchan
  fi
}

# Idle footprint: server RSS with IDLE_CONNS idle streams minus RSS with none,
# on a freshly started server.
scenario_idle() {
  local t
  for t in $TARGETS; do
    case $t in
      bridge) start_bridge ;; nchan) start_nchan ;; ceiling) [ -n "$CEIL_PID" ] || start_ceiling ;;
      *) is_variant "$t" && start_variant "$t" ;;
    esac
    local spid; spid=$(server_pid "$t")
    sleep 1
    local r0 a0 r1 a1
    r0=$(rss_kb "$spid"); a0=$(anon_kb "$spid")
    log "idle: $t, $IDLE_CONNS connections (RSS before: $r0 kB)"
    # shellcheck disable=SC2046
    "$B/loadgen" --port "$(port_of "$t")" --path "$(sub_path "$t" idle)" --conns "$IDLE_CONNS" \
      $(ready_args "$t") --ready-file "$WORK/idle-$t.ready" --timeout 300 --label "idle-$t" \
      >"$WORK/idle-$t.lg" 2>>"$WORK/loadgen.log" &
    local lg=$!
    wait_file "$WORK/idle-$t.ready" 120 || log "idle: $t: clients not ready"
    sleep 2
    r1=$(rss_kb "$spid"); a1=$(anon_kb "$spid")
    kill -TERM "$lg" 2>/dev/null || true
    wait "$lg" || true
    record idle "$t" "conns=$IDLE_CONNS" "rss0_kb=$r0" "rss1_kb=$r1" "anon0_kb=$a0" "anon1_kb=$a1" \
      "loadgen=$(json_or_null "$WORK/idle-$t.lg")"
  done
}

# Replay: RP_CLIENTS clients connect RP_BEHIND events behind the head of a
# channel; meanwhile LIVE_CONNS clients of another channel receive LIVE_RATE
# events/s.  Live latency is measured for LIVE_IDLE_SECONDS before the
# replay (idle) and for the whole replay (during).
replay_run() {
  local t=$1 label=replay-$1
  local rch="rp$RANDOM" lch="live$RANDOM" port; port=$(port_of "$t")
  log "replay: $t, filling $RP_BEHIND events"
  publish "$t" "$rch" --count "$RP_BEHIND" --batch 100 >"$WORK/$label.fill" 2>>"$WORK/publisher.log"
  local rpath hdr=()
  if [ "$t" = bridge ]; then
    local head; head=$(psql -qXtAc "SELECT max(id) FROM sse_bridge.events")
    rpath="/events?channel=bench.$rch"
    hdr=(--header "Last-Event-ID: $((head - RP_BEHIND))")
  else
    rpath="/replay?id=$rch"
  fi
  # the live stream, bounded by count
  local live_total=$(( LIVE_RATE * (LIVE_IDLE_SECONDS + 300) ))
  publish "$t" "$lch" --count "$live_total" --batch 1 --rate "$LIVE_RATE" \
    >"$WORK/$label.livepub" 2>>"$WORK/publisher.log" &
  local lp=$!
  PIDS+=("$lp")
  # shellcheck disable=SC2046
  "$B/loadgen" --port "$port" --path "$(sub_path "$t" "$lch")" --conns "$LIVE_CONNS" $(ready_args "$t") \
    --ready-file "$WORK/$label.live1.ready" --duration "$LIVE_IDLE_SECONDS" --timeout 120 \
    --label "$label-live-idle" >"$WORK/$label.live1" 2>>"$WORK/loadgen.log" || true
  # shellcheck disable=SC2046
  "$B/loadgen" --port "$port" --path "$(sub_path "$t" "$lch")" --conns "$LIVE_CONNS" $(ready_args "$t") \
    --ready-file "$WORK/$label.live2.ready" --timeout 400 \
    --label "$label-live-during" >"$WORK/$label.live2" 2>>"$WORK/loadgen.log" &
  local l2=$!
  wait_file "$WORK/$label.live2.ready" 60 || true
  log "replay: $t, $RP_CLIENTS clients catching up"
  local spid; spid=$(server_pid "$t")
  [ "$t" = bridge ] && { metrics >"$WORK/$label.m0"; perf_start "$label" "$spid"; }
  local c0; c0=$(cpu_s "$spid")
  # shellcheck disable=SC2046
  "$B/loadgen" --port "$port" --path "$rpath" "${hdr[@]}" --conns "$RP_CLIENTS" $(ready_args "$t") \
    --expect-per-conn "$RP_BEHIND" --first-seq 1 --idle 20 --timeout 300 \
    --label "$label-clients" >"$WORK/$label.rp" 2>>"$WORK/loadgen.log" || true
  local c1; c1=$(cpu_s "$spid")
  perf_stop
  local m=null
  [ "$t" = bridge ] && { metrics >"$WORK/$label.m1"; m="{\"before\":$(cat "$WORK/$label.m0"),\"after\":$(cat "$WORK/$label.m1")}"; }
  kill -TERM "$l2" 2>/dev/null || true
  wait "$l2" || true
  kill "$lp" 2>/dev/null || true
  wait "$lp" 2>/dev/null || true
  record replay "$t" "clients=$RP_CLIENTS" "behind=$RP_BEHIND" "metrics=$m" \
    "server_cpu_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
    "replay=$(json_or_null "$WORK/$label.rp")" \
    "live_idle=$(json_or_null "$WORK/$label.live1")" \
    "live_during=$(json_or_null "$WORK/$label.live2")"
}

scenario_replay() {
  local t
  for t in $TARGETS; do
    [ "$t" = ceiling ] && continue   # the ceiling keeps no history
    is_variant "$t" && continue      # variants: fan-out and idle only
    replay_run "$t"
  done
}

# Publish: bench/publish/run.sh (its own cluster) prints a table of
# "events/txn clients plain-ev/s sse-ev/s ratio" lines; they become JSON.
scenario_publish() {
  if [ ! -x bench/publish/run.sh ]; then
    log "publish: bench/publish/run.sh not present"
    record publish bridge "unavailable=true"
    return 0
  fi
  log "publish: bench/publish/run.sh"
  local out=$WORK/publish.out env=()
  [ "$QUICK" = 1 ] && env=(BENCH_SECONDS=2 REPEAT=1)
  # it starts its own cluster: give it none of ours (its cleanup trap would
  # stop whatever SSE_PGDIR it inherits); a second try covers a port clash
  local clean=(timeout 900 env -u SSE_PGDIR -u SSE_PGDATA -u PGHOST -u PGPORT -u PGDATABASE "${env[@]}")
  if "${clean[@]}" bench/publish/run.sh >"$out" 2>"$WORK/publish.err" \
    || { log "publish: retrying once"; "${clean[@]}" bench/publish/run.sh >"$out" 2>>"$WORK/publish.err"; }; then
    local rows
    rows=$(awk '$1 ~ /^[0-9]+$/ && NF == 5 {
        printf "%s{\"events_per_txn\":%s,\"clients\":%s,\"plain\":%s,\"sse\":%s,\"ratio\":%s}",
          (n++ ? "," : ""), $1, $2, $3, $4, $5 }' "$out")
    record publish bridge "rows=[$rows]"
  else
    log "publish: bench/publish/run.sh failed"; tail -5 "$WORK/publish.err" >&2
    record publish bridge "failed=true"
  fi
  cat "$out" >&2
}

# Proxy: the latency deploy/nginx.conf (nginx, TLS, HTTP/2) adds to the
# bridge's stream (bench/proxy.sh).
scenario_proxy() {
  has_target bridge || return 0
  log "proxy: bench/proxy.sh"
  [ -n "$BRIDGE_PID" ] || start_bridge
  BRIDGE_PORT=$BPORT EVENTS=$([ "$QUICK" = 1 ] && echo 200 || echo 1000) timeout 300 bench/proxy.sh \
    >"$WORK/proxy.json" 2>>"$WORK/proxy.log" || log "proxy: bench/proxy.sh failed"
  record proxy bridge "result=$(json_or_null "$WORK/proxy.json")"
}

# Bridges on hot standbys: latency through a standby's bridge against the
# primary's, and the primary's cost with 0 and 3 standby bridges
# (bench/standby.sh; its own primary and standby).
scenario_standby() {
  has_target bridge || return 0
  log "standby: bench/standby.sh"
  local q=(); [ "$QUICK" = 1 ] && q=(env STB_EVENTS=100 STB_CONNS=300)
  BRIDGE_BIN=$BRIDGE_BIN timeout 600 "${q[@]}" bench/standby.sh >"$WORK/standby.json" 2>>"$WORK/standby.log" \
    || log "standby: bench/standby.sh failed"
  record standby bridge "result=$(json_or_null "$WORK/standby.json")"
}

# Filter cost at the worst case the filter limits allow: bench/filter_worst.c
# (no server; CPU time of filter evaluation against a 1 MB event).
scenario_filtercost() {
  log "filtercost: bench/build/filter_worst"
  local out=$WORK/filtercost.out
  if "$B/filter_worst" 100 >"$out"; then
    record filtercost bridge "figures=$(tail -1 "$out")"
  else
    record filtercost bridge "failed=true"
  fi
  head -n -1 "$out" >&2
}

# ---------------------------------------------------------------- run
want idle && scenario_idle
has_target bridge && { [ -n "$BRIDGE_PID" ] || start_bridge; start_variants; }
has_target nchan && { [ -n "$NGINX_PID" ] || start_nchan; }
if want fanout; then
  has_target ceiling && { [ -n "$CEIL_PID" ] || start_ceiling; start_ceiling --per-event; }
  scenario_fanout
fi
want selective && scenario_selective
want replay && scenario_replay
want publish && scenario_publish
want proxy && scenario_proxy
want standby && scenario_standby
want filtercost && scenario_filtercost
# memory last: it leaves big events in the log and restarts the bridge
if want memory; then . bench/memory.sh; scenario_memory; fi

# machine facts
facts=$WORK/facts.json
{
  printf '{"date":"%s","quick":%s,"cores":%s,"cpu":%s,"kernel":"%s",' \
    "$(date -u +%FT%TZ)" "$([ "$QUICK" = 1 ] && echo true || echo false)" "$(nproc)" \
    "$(node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)")" \
    "$(uname -r)"
  printf '"mem_mb":%s,"postgres":"%s","nginx":"%s","nchan":"%s","libuv":"%s",' \
    "$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" \
    "$( [ "$NEED_PG" = 1 ] && psql -qXtAc 'SHOW server_version' || true)" \
    "$(nginx -v 2>&1 | sed 's#.*/##')" \
    "$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)" \
    "$(pkg-config --modversion libuv)"
  printf '"bridge":"%s","commit":"%s","batch":%s,"payload_pad":%s,"lat_deliveries_per_s":%s,"command":"%s"}\n' \
    "$("$BRIDGE_BIN" --version 2>/dev/null | head -1)" "$COMMIT" \
    "$BATCH" "$PAYLOAD" "$LAT_DELIVERIES" "$([ "$QUICK" = 1 ] && echo 'QUICK=1 ')make bench"
} >"$facts"

OUT=${OUT:-bench/results/latest.json}
mkdir -p "$(dirname "$OUT")"
node bench/report.js "$facts" "$RESULTS" "$OUT"
