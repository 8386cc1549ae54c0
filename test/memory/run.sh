#!/usr/bin/env bash
# Memory bound and allocation failure tests of the bridge (issue: replay must
# respect --client-queue, the process must stay under --max-memory, and no
# allocation failure may crash it).  Needs the throwaway cluster of
# scripts/test.sh (PGHOST, PGPORT, PGUSER) with the extension installed.
#
#   1. replay: 100 slow readers (10 kB/s, 4 kB receive buffers) replaying
#      300 events of 1 MB from Last-Event-ID 0, and 2 fast readers that must
#      receive all 300 in order.  The bridge's peak RSS (VmHWM) must stay
#      under --max-memory, no client queue may exceed --client-queue except
#      by one event larger than it (/metrics).  Run with --max-memory 256M
#      (room for all) and 96M (not enough: it must shed load -- 503s and
#      drops -- instead of growing, and the fast readers still complete).
#   2. injector: the fault-injection build (make bridge-fi, ASan+UBSan)
#      fails every Nth allocation while clients (ad hoc, filtered, and a
#      subscription with a filter) replay and events are published; it must
#      never crash, every client must still receive every event in order
#      (closed clients reconnect and replay), no queue may exceed
#      --client-queue, and it must exit 0 on SIGTERM without a sanitizer
#      report (LeakSanitizer included).  Each run has a fresh database
#      (nothing pruned); readers of three kinds replay from 0 while events
#      are published, to a final marker event, and each reader's whole
#      sequence is compared with the log row by row (slowread --expect):
#      nothing skipped, repeated, reordered, and no reset.
#   3. ulimit: the plain build under `ulimit -v` with an unbounded
#      --max-memory, slow readers replaying big events: allocations really
#      fail; it must survive and still serve a reader to the end.
#
#   MEM_ONLY="replay injector ulimit"   a subset
#   MEM_FAIL_EVERY="7 31 61 101 127 499"  N values for the injector
#   MEM_INJECTOR_REPS=2                 runs of each N
#   MEM_BRIDGE=path  MEM_BRIDGE_FI=path other builds (e.g. an older tree's)
# Every step is bounded in time; every process started here is stopped.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T=$ROOT/test/memory
B=$T/build
mkdir -p "$B"
ONLY=${MEM_ONLY:-replay injector ulimit}
FAIL_EVERY=${MEM_FAIL_EVERY:-7 31 61 101 127 499}
INJECTOR_REPS=${MEM_INJECTOR_REPS:-2}
BRIDGE=${MEM_BRIDGE:-$ROOT/bridge/sse-bridge}
BRIDGE_FI=${MEM_BRIDGE_FI:-$ROOT/bridge/build/fi/sse-bridge}
failed=0
PIDS=()
READERS=()
SUB=

for v in PGHOST PGPORT; do
  [ -n "${!v:-}" ] || { echo "memory: $v is not set; run through make test"; exit 1; }
done
export PGUSER=${PGUSER:-postgres}

cc -std=c11 -O2 -Wall -Wextra -Werror -I"$T/../lib" -o "$B/slowread" "$T/slowread.c" "$T/../lib/sseparse.c" || exit 1
if [ -z "${MEM_BRIDGE_FI:-}" ]; then
  make -s bridge-fi >/dev/null || { echo "FAIL: make bridge-fi"; exit 1; }
fi
[ -x "$BRIDGE" ] || { echo "memory: $BRIDGE is missing"; exit 1; }

WORK=$(mktemp -d /tmp/sse_mem.XXXXXX)
DB=sse_mem_$$
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  dropdb --if-exists "$DB" 2>/dev/null
  if [ "$failed" -gt 0 ] || [ "${MEM_KEEP:-0}" = 1 ]; then echo "memory: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

createdb "$DB" && psql -qX -d "$DB" -c 'CREATE EXTENSION sse_bridge' >/dev/null || exit 1
CONN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
val() { sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" <<<"$1"; }
metric() { curl -s --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }

# start_bridge LOG BIN ARGS... : sets BPID and BPORT; waits for /healthz
start_bridge() {
  local log=$1 bin=$2 i; shift 2
  BPORT=$(scripts/free-port.sh)
  "$bin" --db "$CONN" --listen "127.0.0.1:$BPORT" --public-channels 'mem.#' \
    --retry 300 --poll-interval 200 "$@" >"$log" 2>&1 &
  BPID=$!
  PIDS+=("$BPID")
  for i in $(seq 1 150); do
    [ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:$BPORT/healthz")" = 200 ] && return 0
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bridge did not come up:"; tail -20 "$log"; return 1
}

# stop_bridge LOG: SIGTERM, bounded wait; fails unless exit 0 and sanitizer-clean
stop_bridge() {
  local log=$1 i st
  kill -0 "$BPID" 2>/dev/null || { wait "$BPID"; echo "bridge died (status $?)"; tail -30 "$log"; return 1; }
  kill -TERM "$BPID"
  for i in $(seq 1 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$BPID" 2>/dev/null && { kill -KILL "$BPID"; echo "bridge ignored SIGTERM"; return 1; }
  wait "$BPID"; st=$?
  if [ "$st" -ne 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY:' "$log"; then
    echo "bridge exit status $st"; grep -m1 -A30 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | head -40
    return 1
  fi
}

# Runs slowread while watching the bridge; a bridge over $2 kB RSS is killed
# (the test has failed; this protects the machine).  Output in $WORK/$1.json.
watched() {
  local name=$1 cap=$2 sr; shift 2
  "$B/slowread" --port "$BPORT" --pid "$BPID" "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" &
  sr=$!
  PIDS+=("$sr")
  while kill -0 "$sr" 2>/dev/null; do
    local r; r=$(kb "$BPID" VmRSS)
    if [ -n "$r" ] && [ "$r" -gt "$cap" ]; then
      echo "    bridge RSS $r kB is over $cap kB: killing it"; kill -KILL "$BPID"
    fi
    sleep 0.2
  done
  wait "$sr"
}

publish_big() {   # publish_big N BYTES
  psql -qX -d "$DB" -c "SELECT count(sse_publish('mem.big', repeat('x', $2))) FROM generate_series(1, $1)" >/dev/null
}

head_id() { psql -qXtA -d "$DB" -c "SELECT max(id) FROM sse_bridge.events"; }
# the id a reader that has seen everything so far holds: the sequence's last
# value. After a TRUNCATE, a reader from 0 meets a real gap that the bridge's
# prune timer may record as pruned (a reset), so readers start here instead.
seen_id() { psql -qXtA -d "$DB" -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM sse_bridge.events_id_seq"; }
# the ids of mem.big, which every reader of it must get in this order
big_ids() { psql -qXtA -d "$DB" -c "SELECT id FROM sse_bridge.events WHERE channel = 'mem.big' ORDER BY id" >"$1"; }

# ---------------------------------------------------------------- 1. replay
# test_replay BOUND_MB SHED: SHED=1 expects the bound to be reached (shedding)
test_replay() {
  local bound_mb=$1 shed_expected=$2 log=$WORK/replay-$1.log hwm peak over slow fast head from=0
  echo "--- replay: 100 slow readers over 300 x 1 MB events, --max-memory ${bound_mb}M"
  if [ "$(head_id)" != 300 ]; then
    psql -qX -d "$DB" -c "TRUNCATE sse_bridge.events" >/dev/null
    from=$(seen_id)
    publish_big 300 1000000 || { fail "publish"; return; }
  fi
  head=$(head_id)
  big_ids "$WORK/big.ids" || { fail "replay: the expected ids"; return; }
  # the environment form of the options, so that an older build still starts
  SSE_BRIDGE_MAX_MEMORY=${bound_mb}M SSE_BRIDGE_CLIENT_QUEUE=1M SSE_BRIDGE_REPLAY_CACHE=16M \
    start_bridge "$log" "$BRIDGE" --log-level warn || { fail "replay: bridge start"; return; }
  "$B/slowread" --port "$BPORT" --path '/events?channel=mem.big' --clients 2 --rate 100000000 \
    --rcvbuf 262144 --seconds 600 --stall 60 --last-event-id "$from" --until "$head" --expect "$WORK/big.ids" \
    >"$WORK/fast.json" 2>"$WORK/fast.err" &
  local fastpid=$!
  PIDS+=("$fastpid")
  watched slow $((bound_mb * 1024 * 2)) --path '/events?channel=mem.big' --clients 100 \
    --rate 10240 --rcvbuf 4096 --seconds 30 --last-event-id "$from" --stagger 20 --expect "$WORK/big.ids"
  # the fast readers must complete: judged by progress (--stall), not by a
  # clock that a loaded machine runs out of
  wait "$fastpid" 2>/dev/null
  slow=$(cat "$WORK/slow.json"); fast=$(cat "$WORK/fast.json")
  hwm=$(kb "$BPID" VmHWM)
  peak=$(metric "$BPORT" sse_bridge_client_queue_peak_bytes)
  over=$(metric "$BPORT" sse_bridge_client_queue_over_total)
  local shed refused
  shed=$(metric "$BPORT" sse_bridge_memory_shed_total)
  refused=$(metric "$BPORT" sse_bridge_memory_refused_total)
  echo "    slow: $slow"
  echo "    fast: $fast"
  echo "    bridge VmHWM ${hwm:-?} kB (bound $((bound_mb * 1024)) kB); queue peak ${peak:-?} B; over ${over:-?}; shed ${shed:-?}; refused ${refused:-?}"
  stop_bridge "$log" || { fail "replay: bridge survived and exited cleanly"; return; }
  if [ -n "$hwm" ] && [ "$hwm" -le $((bound_mb * 1024)) ]; then ok "replay: peak RSS $((hwm / 1024)) MB <= ${bound_mb} MB"
  else fail "replay: peak RSS ${hwm:-unknown} kB over ${bound_mb} MB"; fi
  # one event (1 MB of data -> 1,000,0xx bytes of frame) may exceed the 1 MiB limit only alone
  if [ -n "$peak" ] && [ "$peak" -le 1048576 ] && [ "${over:-1}" = 0 ]; then ok "replay: no queue over --client-queue (peak $peak B)"
  else fail "replay: queue peak ${peak:-unknown} B, over-limit pushes ${over:-unknown}"; fi
  cat "$WORK/fast.err" "$WORK/slow.err" 2>/dev/null | sed 's/^/    /'
  if [ "$(val "$fast" done)" = 2 ] && [ "$(val "$fast" order_errors)" = 0 ] && [ "$(val "$slow" order_errors)" = 0 ] &&
     [ "$(val "$fast" seq_errors)" = 0 ] && [ "$(val "$slow" seq_errors)" = 0 ]; then
    ok "replay: the 2 fast readers got all $head events as in the log; each slow reader a prefix of it"
  else fail "replay: a reader's sequence differs from the log, or a fast reader is incomplete"; fi
  if [ "$(val "$slow" bytes)" -gt 0 ] 2>/dev/null; then ok "replay: slow readers were served ($(val "$slow" bytes) bytes)"
  else fail "replay: slow readers got nothing"; fi
  if [ "$shed_expected" = 1 ]; then
    if [ $(( ${shed:-0} + ${refused:-0} )) -gt 0 ]; then ok "replay: over the bound it shed $shed streams and refused $refused opens"
    else fail "replay: the bound was never enforced (shed ${shed:-?}, refused ${refused:-?})"; fi
  fi
}

# ---------------------------------------------------------------- 2. injector
any_alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }

# slowread_fi NAME SECONDS RATE RCVBUF CLIENTS PATH EXPECT: readers from
# Last-Event-ID 0 to the final marker (event "end"), compared row by row
test_injector_readers() {
  local name=$1 secs=$2 rate=$3 rcv=$4 stall=${5:-0}
  "$B/slowread" --port "$BPORT" --path '/events?channel=mem.%23' --clients 6 --rate "$rate" \
    --rcvbuf "$rcv" --seconds "$secs" --stall "$stall" --last-event-id 0 --until-event end \
    --expect "$WORK/$name-all.ids" >"$WORK/$name-all.json" 2>"$WORK/$name-all.err" &
  local r1=$!; PIDS+=("$r1")
  "$B/slowread" --port "$BPORT" --path '/events?channel=mem.a&filter=%7B%22k%22%3A0%7D' --clients 4 \
    --rate "$rate" --rcvbuf "$rcv" --seconds "$secs" --stall "$stall" --last-event-id 0 --until-event end \
    --expect "$WORK/$name-k0.ids" >"$WORK/$name-filter.json" 2>"$WORK/$name-filter.err" &
  local r2=$!; PIDS+=("$r2")
  "$B/slowread" --port "$BPORT" --path "/events/$SUB" --clients 3 \
    --rate "$rate" --rcvbuf "$rcv" --seconds "$secs" --stall "$stall" --last-event-id 0 --until-event end \
    --expect "$WORK/$name-k0.ids" >"$WORK/$name-sub.json" 2>"$WORK/$name-sub.err" &
  local r3=$!; PIDS+=("$r3")
  READERS=("$r1" "$r2" "$r3")
}

# the ids each reader kind must get: every event before the final marker
test_injector_expect() {
  local name=$1
  psql -qXtA -d "$DB" -c "SELECT id FROM sse_bridge.events
    WHERE CASE WHEN channel LIKE '$%' THEN false ELSE sse_match('mem.#', channel) END ORDER BY id" >"$WORK/$name-all.ids" &&
  psql -qXtA -d "$DB" -c "SELECT id FROM sse_bridge.events WHERE channel = 'mem.a'
    AND sse_filter_match('{\"k\": 0}', data) ORDER BY id" >"$WORK/$name-k0.ids"
}

# test_injector N REP: a fresh database, nothing pruned; while every Nth
# allocation fails, readers of three kinds replay from 0 and go live as
# events are published, to a final marker; then, disarmed, the same again.
# Every reader's whole sequence must be the log's, row by row.
test_injector() {
  local n=$1 rep=$2 name=fi-$1-$2 log head i res bad=0 kind phase
  log=$WORK/$name.log
  echo "--- injector: every ${n}th allocation fails (run $rep)"
  dropdb --if-exists "$DB" && createdb "$DB" && psql -qX -d "$DB" -c 'CREATE EXTENSION sse_bridge' >/dev/null \
    || { fail "injector N=$n: fresh database"; return; }
  # the subscription exists before the events: a replay judges each event by
  # the definition valid at its position, and nothing before its creation
  SUB=$(psql -qXtA -d "$DB" -c "SELECT sse_subscribe_filter(ARRAY['mem.a'], '{\"k\": 0}')")
  psql -qX -d "$DB" >/dev/null <<'SQL' || { fail "injector: publish"; return; }
SELECT count(sse_publish('mem.a', jsonb_build_object('k', i % 3, 'pad', repeat('p', (i * 997) % 20000)), 'e' || (i % 5)))
  FROM generate_series(1, 150) i;
SELECT count(sse_publish('mem.b', repeat(E'line\n', i * 50))) FROM generate_series(1, 50) i;
SQL
  SSE_BRIDGE_FAIL_EVERY=$n ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 SSE_BRIDGE_CLIENT_QUEUE=64k \
    SSE_BRIDGE_REPLAY_CACHE=256k start_bridge "$log" "$BRIDGE_FI" --log-level error \
    || { fail "injector N=$n: bridge start"; return; }
  kill -USR1 "$BPID"         # arm
  test_injector_readers "$name-1" 60 2000000 65536
  for i in $(seq 1 20); do   # live events while the readers replay, one commit each
    echo "SELECT sse_publish('mem.a', jsonb_build_object('k', $i % 3, 'pad', repeat('q', $i * 500)));"
    echo "SELECT sse_publish('mem.b', 'tail $i');"
    echo "SELECT pg_sleep(0.05);"
  done | psql -qX -v ON_ERROR_STOP=1 -d "$DB" >/dev/null || { fail "injector N=$n: publish"; }
  if ! { test_injector_expect "$name-1" && cp "$WORK/$name-1-all.ids" "$WORK/$name-2-all.ids" &&
          cp "$WORK/$name-1-k0.ids" "$WORK/$name-2-k0.ids"; }; then
    kill "${READERS[@]}" 2>/dev/null; wait "${READERS[@]}"; stop_bridge "$log"
    fail "injector N=$n: the expected ids"; return
  fi
  # the final marker matches every reader
  psql -qX -d "$DB" -c "SELECT sse_publish('mem.a', jsonb_build_object('k', 0, 'last', true), 'end')" >/dev/null
  # under injection a reader may not get there: it stops after a bounded
  # time with what it has (still compared row by row, as a prefix)
  for i in $(seq 1 40); do
    any_alive "${READERS[@]}" || break
    sleep 0.1
  done
  kill -TERM "${READERS[@]}" 2>/dev/null
  wait "${READERS[@]}"
  kill -0 "$BPID" 2>/dev/null || { stop_bridge "$log"; fail "injector N=$n: the bridge died under injection"; return; }
  kill -USR2 "$BPID"         # disarm: every reader must now complete by replaying
  local injected peak over
  injected=$(metric "$BPORT" sse_bridge_alloc_failures_injected_total)
  test_injector_readers "$name-2" 600 20000000 65536 30   # must complete: judged by progress
  wait "${READERS[@]}"
  for phase in 1 2; do
    for kind in all filter sub; do
      res=$(cat "$WORK/$name-$phase-$kind.json")
      echo "    $([ $phase = 1 ] && echo armed || echo disarmed) $kind: $res"
      sed 's/^/      /' "$WORK/$name-$phase-$kind.err"
      [ "$(val "$res" order_errors)" = 0 ] && [ "$(val "$res" seq_errors)" = 0 ] &&
        [ "$(val "$res" resets)" = 0 ] || bad=1
      [ $phase = 1 ] || [ "$(val "$res" done)" = "$(val "$res" clients)" ] || bad=1
    done
  done
  peak=$(metric "$BPORT" sse_bridge_client_queue_peak_bytes)
  over=$(metric "$BPORT" sse_bridge_client_queue_over_total)
  echo "    injected failures: ${injected:-unknown}; queue peak ${peak:-?} B (limit 65536), over ${over:-?}"
  stop_bridge "$log" || { fail "injector N=$n: no crash, clean exit, no sanitizer report"; return; }
  [ "${injected:-0}" -gt 0 ] 2>/dev/null || { fail "injector N=$n: nothing was injected"; return; }
  [ $bad = 0 ] || { fail "injector N=$n run $rep: a reader's sequence differs from the log (skipped, repeated, reordered, reset or incomplete)"; return; }
  [ "${over:-1}" = 0 ] && [ "${peak:-99999999}" -le 65536 ] \
    || { fail "injector N=$n: a queue went over --client-queue (peak ${peak:-?}, over ${over:-?})"; return; }
  ok "injector N=$n run $rep: $injected failures injected; no crash, no leak, every reader's sequence is the log's"
}

# ---------------------------------------------------------------- 3. ulimit
test_ulimit() {
  local log=$WORK/ulimit.log head vm=700000 from
  echo "--- ulimit: -v $vm kB, unbounded --max-memory, 30 slow readers over 300 x 1 MB"
  psql -qX -d "$DB" -c "TRUNCATE sse_bridge.events" >/dev/null
  from=$(seen_id)
  publish_big 300 1000000 || { fail "publish"; return; }
  head=$(head_id)
  big_ids "$WORK/ulimit.ids" || { fail "ulimit: the expected ids"; return; }
  (ulimit -v $vm; SSE_BRIDGE_MAX_MEMORY=0 SSE_BRIDGE_CLIENT_QUEUE=64M SSE_BRIDGE_REPLAY_CACHE=8M \
     start_bridge "$log" "$BRIDGE" --log-level warn; echo "$BPID $BPORT" >"$WORK/ulimit.pid"; wait "$BPID") &
  PIDS+=("$!")
  for _ in $(seq 1 100); do [ -s "$WORK/ulimit.pid" ] && break; sleep 0.1; done
  read -r BPID BPORT <"$WORK/ulimit.pid" || { fail "ulimit: bridge start"; return; }
  PIDS+=("$BPID")
  "$B/slowread" --port "$BPORT" --path '/events?channel=mem.big' --clients 30 --rate 10240 \
    --rcvbuf 4096 --seconds 25 --last-event-id "$from" --expect "$WORK/ulimit.ids" >"$WORK/ulimit-slow.json" &
  local s=$!; PIDS+=("$s")
  "$B/slowread" --port "$BPORT" --path '/events?channel=mem.big' --clients 1 --rate 100000000 \
    --rcvbuf 262144 --seconds 600 --stall 60 --last-event-id "$from" --until "$head" --expect "$WORK/ulimit.ids" \
    >"$WORK/ulimit-fast.json"
  wait "$s"
  echo "    slow: $(cat "$WORK/ulimit-slow.json")"
  echo "    fast: $(cat "$WORK/ulimit-fast.json")"
  if ! kill -0 "$BPID" 2>/dev/null; then
    fail "ulimit: the bridge died"; tail -5 "$log"; return
  fi
  kill -TERM "$BPID"
  for _ in $(seq 1 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$BPID" 2>/dev/null && { kill -KILL "$BPID"; fail "ulimit: no exit on SIGTERM"; return; }
  if [ "$(val "$(cat "$WORK/ulimit-fast.json")" done)" != 1 ]; then fail "ulimit: the fast reader did not complete"; return; fi
  if [ "$(val "$(cat "$WORK/ulimit-fast.json")" seq_errors)" != 0 ] || [ "$(val "$(cat "$WORK/ulimit-slow.json")" seq_errors)" != 0 ]; then
    fail "ulimit: a reader's sequence differs from the log"; return
  fi
  ok "ulimit: survived under ulimit -v $vm with 30 slow readers; a reader received all 300 events (to id $head)"
}

for t in $ONLY; do
  case $t in
    replay) test_replay 256 0; test_replay 96 1 ;;
    injector)
      for r in $(seq 1 "$INJECTOR_REPS"); do
        for n in $FAIL_EVERY; do test_injector "$n" "$r"; done
      done ;;
    ulimit) test_ulimit ;;
  esac
done
echo "memory tests: $failed failures"
[ "$failed" -eq 0 ]
