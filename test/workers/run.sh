#!/usr/bin/env bash
# The process model of --workers N (docs/design.md, "Processes"), against
# the cluster scripts/test.sh exported:
#
#   args       nonsense --workers values and a --max-clients that cannot fit
#              N x the descriptor limit are refused with exit 2 and a reason;
#   fanout     more streams than one process may hold here (WORKERS_STREAMS,
#              default 30000, over 3 client processes on 127.0.0.2-4; the
#              open-file limit is 20000 a process) on --workers 3: each gets
#              one broadcast of 10 events exactly, and every worker holds
#              streams (spread through the one listening socket);
#   yield      under a limit of 150 descriptors (--max-clients 160 over 2
#              workers: 80 each) worker 1 is stopped while 150 streams
#              connect at once and continued once worker 0 holds 30 of
#              them: every stream is answered 200 (worker 0 leaves the rest
#              waiting for worker 1 instead of accepting until EMFILE and
#              answering 503), and one event reaches all; then 2,000 streams
#              on two running workers: neither holds more than 60%;
#   dbconns    pg_stat_activity shows the same number of bridge connections
#              for --workers 1 and --workers 4;
#   workerkill kill -9 of a worker mid-stream: the supervisor starts a new
#              one, /healthz stays 200, and every client (sseclient.c,
#              reconnecting with Last-Event-ID) has exactly the log's rows of
#              its channel, compared row by row;
#   behind     a shared ring of 64 kB and batches of 1 MB: the workers fall
#              behind the ring, read the log through the supervisor instead,
#              and every client still has exactly the log's rows;
#   superkill  kill -9 of the supervisor: every worker exits and the port
#              stops answering;
#   asan       the sanitizer build (make bridge-asan) as supervisor and
#              workers: streams, a broadcast, a worker killed and replaced,
#              SIGTERM; exit 0 and no sanitizer report from any process;
#   memory     --max-memory is shared: the whole bridge's limit is the sum
#              of equal shares of the workers and the supervisor; readers
#              that stop reading push each worker past the hard limit of its
#              share, and it sheds streams until it is back under.
#
#   WORKERS_ONLY="args dbconns"   a subset
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bridge=${SSE_BRIDGE_BIN:-$root/bridge/sse-bridge}
only=${WORKERS_ONLY:-args fanout yield dbconns workerkill behind superkill memory asan}
streams=${WORKERS_STREAMS:-30000}
passed=0
failed=0
failures=()

for v in PGHOST PGPORT; do
  [ -n "${!v:-}" ] || { echo "workers: $v is not set; run through make test (scripts/test.sh)" >&2; exit 1; }
done
export PGUSER=${PGUSER:-postgres}

tmp=$(mktemp -d /tmp/sse_workers.XXXXXX)
chmod 755 "$tmp"
db=sse_workers
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ "$failed" -gt 0 ] || [ "${WORKERS_KEEP:-0}" = 1 ]; then echo "workers: logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $1"; }
bad() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL - $1"; [ -n "${2:-}" ] && echo "    $2"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
wants() { [[ " $only " == *" $1 "* ]]; }

free_port() { "$root/scripts/free-port.sh"; }

psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null &&
  psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -f "$root/test/e2e/setup.sql" >/dev/null ||
  { bad "create database $db"; exit 1; }
conninfo="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$db application_name=sse_workers_test"

cc -std=c11 -Wall -Wextra -Werror -O2 -I"$root/test/lib" -o "$tmp/fanout" "$here/fanout.c" "$root/test/lib/sseparse.c" ||
  { bad "build test/workers/fanout.c"; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -O1 -I"$root/test/lib" -o "$tmp/sseclient" "$root/test/e2e/sseclient.c" "$root/test/lib/sseparse.c" ||
  { bad "build test/e2e/sseclient.c"; exit 1; }

# start NAME ARGS...: a bridge on a free port; sets BPID, BPORT, BLOG.
start() {
  local name=$1; shift
  BPORT=$(free_port)
  BLOG=$tmp/$name.log
  "$bridge" --db "$conninfo" --listen "127.0.0.1:$BPORT" --public-channels 'w.#' --retry 200 "$@" >"$BLOG" 2>&1 &
  BPID=$!
  pids+=("$BPID")
}

# healthy: wait (20 s at most) for /healthz 200 from bridge BPID.
healthy() {
  local t=$((SECONDS + 20))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BPORT/healthz")" = 200 ]; do
    kill -0 "$BPID" 2>/dev/null || { tail -5 "$BLOG"; return 1; }
    [ $SECONDS -lt $t ] || { tail -5 "$BLOG"; return 1; }
    sleep 0.1
  done
}

# stop: SIGTERM, exit 0 within 8 s.
stop() {
  local t=$((SECONDS + 8)) st
  kill -TERM "$BPID" 2>/dev/null
  while kill -0 "$BPID" 2>/dev/null && [ $SECONDS -lt $t ]; do sleep 0.1; done
  if kill -0 "$BPID" 2>/dev/null; then kill -KILL "$BPID"; wait "$BPID" 2>/dev/null; return 1; fi
  wait "$BPID"; st=$?
  [ "$st" = 0 ]
}

# The pids of the workers of the bridge whose log is $1, as it logged them.
worker_pids() { sed -n 's/.*worker [0-9]* started (pid \([0-9]*\)).*/\1/p' "$1"; }

# wait_ready OUT PID SECS: until fanout PID printed its "ready" line to OUT,
# ended, or SECS passed.
wait_ready() {
  local t=$((SECONDS + $3))
  until grep -q '^ready' "$1" 2>/dev/null || ! kill -0 "$2" 2>/dev/null || [ $SECONDS -ge $t ]; do sleep 0.1; done
}

metric() { curl -s "http://127.0.0.1:$BPORT/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# ------------------------------------------------------------------ args
if wants args; then
  for v in 0 -1 abc 2x 100000 ''; do
    out=$("$bridge" --workers "$v" --db "$conninfo" 2>&1); st=$?
    if [ "$st" = 2 ] && grep -q -- "^sse-bridge: --workers" <<<"$out"; then ok "args: --workers '$v' refused (exit 2): $out"
    else bad "args: --workers '$v' refused with exit 2 and a reason" "status $st: $out"; fi
  done
  out=$(bash -c "ulimit -n 1000; exec '$bridge' --workers 2 --max-clients 5000 --db '$conninfo' --listen 127.0.0.1:1" 2>&1); st=$?
  if [ "$st" = 2 ] && grep -q "does not fit 2 workers" <<<"$out" && grep -q "1000" <<<"$out"; then
    ok "args: --max-clients 5000 over 2 x 1000 descriptors refused (exit 2): $out"
  else bad "args: --max-clients over N x RLIMIT_NOFILE refused with exit 2" "status $st: $out"; fi
  # the same count fits more workers: it starts
  BPORT=$(free_port)
  bash -c "ulimit -n 1000; exec '$bridge' --workers 6 --max-clients 5000 --db '$conninfo' --listen 127.0.0.1:$BPORT" >"$tmp/fits.log" 2>&1 &
  BPID=$!; pids+=("$BPID"); BLOG=$tmp/fits.log
  if healthy; then ok "args: --max-clients 5000 fits 6 workers of 1000 descriptors: the bridge starts"
  else bad "args: --max-clients 5000 fits 6 workers of 1000 descriptors: the bridge starts"; fi
  check "args: --workers 6 exits 0 on SIGTERM" stop
  # 0.0.0.0 is a local address too
  BPORT=$(free_port)
  "$bridge" --db "$conninfo" --listen "0.0.0.0:$BPORT" --workers 2 >"$tmp/any.log" 2>&1 &
  BPID=$!; pids+=("$BPID"); BLOG=$tmp/any.log
  if healthy; then ok "args: --listen 0.0.0.0:PORT with --workers 2 serves"; else bad "args: --listen 0.0.0.0:PORT with --workers 2 serves"; fi
  check "args: --listen 0.0.0.0 bridge exits 0 on SIGTERM" stop
fi

# ------------------------------------------------------------------ fanout
if wants fanout; then
  # 30,000 opens at once wait in the queue of the one work link for about
  # ten seconds here: a longer --db-timeout keeps them within its deadline
  # (as it would for one process).  Three workers that may hold 19,000 each
  # leave room for an uneven spread (the kernel wakes every worker and the
  # first to accept takes the connection)
  start fanout --workers 3 --max-clients 57000 --keepalive 60 --db-timeout 60
  if ! healthy; then bad "fanout: bridge --workers 3 becomes healthy"; else
    per=$(( (streams + 2) / 3 ))
    chan="w.fan$RANDOM"
    for k in 0 1 2; do
      "$tmp/fanout" 127.0.0.1 "$BPORT" "/events?channel=$chan" "$per" "127.0.0.$((k + 2))" 10 90 \
        >"$tmp/fan$k.out" 2>"$tmp/fan$k.err" &
      fpid[$k]=$!; pids+=("${fpid[$k]}")
    done
    # every stream has had its ready: only then publish
    t=$((SECONDS + 90)); allready=1
    for k in 0 1 2; do
      until grep -q '^ready' "$tmp/fan$k.out" 2>/dev/null; do
        if ! kill -0 "${fpid[$k]}" 2>/dev/null || [ $SECONDS -ge $t ]; then allready=0; break; fi
        sleep 0.2
      done
    done
    if [ "$allready" = 1 ]; then
      ok "fanout: $((per * 3)) streams open on --workers 3 (more than one process may hold: $(ulimit -Hn))"
      w0=$(metric 'sse_bridge_worker_clients{worker="0"}'); w1=$(metric 'sse_bridge_worker_clients{worker="1"}')
      w2=$(metric 'sse_bridge_worker_clients{worker="2"}'); total=$(metric sse_bridge_clients)
      echo "    clients: worker 0 $w0, worker 1 $w1, worker 2 $w2, whole bridge $total"
      if [ "${w0:-0}" -gt 0 ] && [ "${w1:-0}" -gt 0 ] && [ "${w2:-0}" -gt 0 ] && [ "${total:-0}" -ge $((per * 3)) ]; then
        ok "fanout: every worker holds streams; /metrics from any worker counts all of them"
      else bad "fanout: every worker holds streams; /metrics counts all of them" "w0=$w0 w1=$w1 w2=$w2 total=$total"; fi
      psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', 'b' || g) FROM generate_series(1, 10) g" >/dev/null
      fine=1
      for k in 0 1 2; do wait "${fpid[$k]}" || fine=0; done
      want=$(psql -XAtq -d "$db" -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM sse_bridge.events WHERE channel = '$chan'")
      for k in 0 1 2; do
        got=$(sed -n 's/^done [0-9]* //p' "$tmp/fan$k.out")
        [ "$got" = "$want" ] || { fine=0; echo "    client $k: got '$got', the log has '$want'"; cat "$tmp/fan$k.err"; }
      done
      if [ "$fine" = 1 ]; then ok "fanout: each of $((per * 3)) streams received the broadcast exactly (ids $want)"
      else bad "fanout: each stream received the broadcast exactly"; fi
      # one-channel streams without a filter take live events in runs (hub.h)
      runs=$(metric sse_bridge_run_events_sent_total)
      if [ "$runs" = "$((per * 3 * 10))" ]; then ok "fanout: all $runs deliveries went out in runs"
      else bad "fanout: all deliveries went out in runs" "sse_bridge_run_events_sent_total=$runs, want $((per * 3 * 10))"; fi
    else
      bad "fanout: $((per * 3)) streams open on --workers 3" "$(cat "$tmp"/fan*.err | head -5)"
    fi
    for k in 0 1 2; do kill "${fpid[$k]}" 2>/dev/null; wait "${fpid[$k]}" 2>/dev/null; done
    check "fanout: the bridge drains and exits 0 on SIGTERM" stop
  fi
fi

# ------------------------------------------------------------------ yield
# The pid of worker $2 of the bridge whose log is $1 (its latest start).
worker_pid() { sed -n "s/.*worker $2 started (pid \([0-9]*\)).*/\1/p" "$1" | tail -1; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

if wants yield; then
  BPORT=$(free_port); BLOG=$tmp/yield.log
  bash -c "ulimit -n 150; exec '$bridge' --db '$conninfo' --listen 127.0.0.1:$BPORT --public-channels 'w.#' \
    --workers 2 --max-clients 160 --keepalive 60" >"$BLOG" 2>&1 &
  BPID=$!; pids+=("$BPID")
  if ! healthy; then bad "yield: a bridge of 2 workers under 150 descriptors becomes healthy"; else
    w0=$(worker_pid "$BLOG" 0); w1=$(worker_pid "$BLOG" 1)
    base=$(fds "$w0")
    kill -STOP "$w1"
    chan="w.yield$RANDOM"
    "$tmp/fanout" 127.0.0.1 "$BPORT" "/events?channel=$chan" 150 127.0.0.2 1 60 >"$tmp/yield.out" 2>"$tmp/yield.err" &
    fp=$!; pids+=("$fp")
    # worker 1 goes on once worker 0 has taken its first streams (observed,
    # not timed); worker 0 keeps to its share in the meantime
    t=$((SECONDS + 30))
    until [ $(( $(fds "$w0") - base )) -ge 30 ] || [ $SECONDS -ge $t ] || ! kill -0 "$fp" 2>/dev/null; do sleep 0.02; done
    took=$(( $(fds "$w0") - base ))
    kill -CONT "$w1"
    wait_ready "$tmp/yield.out" "$fp" 60
    c0=$(metric 'sse_bridge_worker_clients{worker="0"}'); c1=$(metric 'sse_bridge_worker_clients{worker="1"}')
    echo "    worker 0 held $took descriptors more when worker 1 was continued; clients now: worker 0 $c0, worker 1 $c1"
    if grep -q '^ready 150' "$tmp/yield.out"; then
      ok "yield: 150 streams over 2 workers of 80 with worker 1 stopped for a while: every one answered 200"
      psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', 'y')" >/dev/null
      if wait "$fp" && grep -q '^done 150' "$tmp/yield.out"; then ok "yield: the event reached all 150 streams"
      else bad "yield: the event reached all 150 streams" "$(head -3 "$tmp/yield.err")"; fi
    else
      bad "yield: 150 streams over 2 workers of 80 with worker 1 stopped for a while: every one answered 200" \
        "$(head -3 "$tmp/yield.err"; grep -m2 'accept' "$BLOG")"
    fi
    kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
    if grep -q 'accepts past its share' "$BLOG"; then
      echo "    (worker 0 gave up waiting for worker 1: the test continued it too late)"
    fi
    check "yield: the bridge exits 0 on SIGTERM" stop
  fi
  # the spread of a burst over two running workers
  start spread --workers 2 --max-clients 4000 --keepalive 60
  if ! healthy; then bad "yield: bridge --workers 2 becomes healthy"; else
    "$tmp/fanout" 127.0.0.1 "$BPORT" "/events?channel=w.spread" 2000 127.0.0.3 1 60 >"$tmp/spread.out" 2>"$tmp/spread.err" &
    fp=$!; pids+=("$fp")
    wait_ready "$tmp/spread.out" "$fp" 60
    c0=$(metric 'sse_bridge_worker_clients{worker="0"}'); c1=$(metric 'sse_bridge_worker_clients{worker="1"}')
    echo "    2,000 streams at once: worker 0 holds $c0, worker 1 $c1"
    if grep -q '^ready 2000' "$tmp/spread.out" && [ "${c0:-0}" -le 1200 ] && [ "${c1:-0}" -le 1200 ] &&
       [ $(( ${c0:-0} + ${c1:-0} )) -ge 2000 ]; then
      ok "yield: 2,000 streams at once over 2 workers: neither holds more than 60% ($c0 / $c1)"
    else bad "yield: 2,000 streams at once over 2 workers: neither holds more than 60%" "worker 0 $c0, worker 1 $c1; $(head -2 "$tmp/spread.err")"; fi
    kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
    check "yield: the spread bridge exits 0 on SIGTERM" stop
  fi
fi

# ------------------------------------------------------------------ dbconns
# Backends of the bridge (by application_name of its conninfo), once the
# count is steady: the same in three reads 200 ms apart.
backends() {
  local a b c
  for _ in $(seq 50); do
    a=$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sse_workers_test'")
    sleep 0.2
    b=$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sse_workers_test'")
    sleep 0.2
    c=$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sse_workers_test'")
    [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ "$a" -gt 0 ] && { echo "$a"; return; }
  done
  echo "unsteady"
}

if wants dbconns; then
  counts=()
  for n in 1 4; do
    start "conns$n" --workers "$n"
    if healthy; then
      # an open on every worker, so each has asked the supervisor something
      for i in $(seq 8); do curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$BPORT/events?channel=w.x" & done
      wait_for=$(backends)
      counts[$n]=$wait_for
      echo "    --workers $n: $wait_for backends in pg_stat_activity"
      stop || bad "dbconns: --workers $n exits 0 on SIGTERM"
      wait
    else
      bad "dbconns: --workers $n becomes healthy"
    fi
  done
  if [ -n "${counts[1]:-}" ] && [ "${counts[1]}" != unsteady ] && [ "${counts[1]}" = "${counts[4]:-}" ]; then
    ok "dbconns: --workers 1 and --workers 4 hold the same number of database connections (${counts[1]})"
  else bad "dbconns: the same database connections for --workers 1 and 4" "1: ${counts[1]:-} 4: ${counts[4]:-}"; fi
fi

# ------------------------------------------------------------------ workerkill
if wants workerkill; then
  start wkill --workers 2
  if ! healthy; then bad "workerkill: bridge --workers 2 becomes healthy"; else
    chan="w.kill$RANDOM"
    nclients=12
    for i in $(seq $nclients); do
      "$tmp/sseclient" --reconnect 50 --timeout 60 --until-event "$chan-end" \
        "http://127.0.0.1:$BPORT/events?channel=$chan" >"$tmp/wk$i.jsonl" 2>"$tmp/wk$i.err" &
      cp_[$i]=$!; pids+=("${cp_[$i]}")
    done
    # every client has its ready before publishing starts
    t=$((SECONDS + 20))
    for i in $(seq $nclients); do
      until grep -q '"event":"ready"' "$tmp/wk$i.jsonl" 2>/dev/null || [ $SECONDS -ge $t ]; do sleep 0.1; done
    done
    victim=$(worker_pids "$BLOG" | head -1)
    # publish 400 events in 40 transactions; kill worker 0 after the 10th
    for b in $(seq 40); do
      psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', 'e$b.' || g) FROM generate_series(1, 10) g" >/dev/null
      if [ "$b" = 10 ]; then
        kill -9 "$victim"
        echo "    killed worker pid $victim after 100 events"
      fi
    done
    # a new worker is started; the bridge stays healthy
    t=$((SECONDS + 15))
    until [ "$(worker_pids "$BLOG" | wc -l)" -ge 3 ] || [ $SECONDS -ge $t ]; do sleep 0.1; done
    if [ "$(worker_pids "$BLOG" | wc -l)" -ge 3 ] && grep -q "killed by signal 9" "$BLOG"; then
      ok "workerkill: the supervisor saw the worker killed and started a new one"
    else bad "workerkill: the supervisor starts a new worker" "$(tail -5 "$BLOG")"; fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BPORT/healthz")
    [ "$code" = 200 ] && ok "workerkill: /healthz 200 after the kill" || bad "workerkill: /healthz 200 after the kill" "got $code"
    psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', 'end', '$chan-end')" >/dev/null
    for i in $(seq $nclients); do wait "${cp_[$i]}"; done
    want=$(psql -XAtq -d "$db" -c "SELECT id FROM sse_bridge.events WHERE channel = '$chan' ORDER BY id")
    lost=0; cut=0
    for i in $(seq $nclients); do
      got=$(grep '"kind":"event"' "$tmp/wk$i.jsonl" | grep -v '"event":"ready"' |
            sed -n 's/.*"id":"\([0-9]*\)-.*/\1/p')
      [ "$(grep -c '"kind":"connect"' "$tmp/wk$i.jsonl")" -gt 1 ] && cut=$((cut + 1))
      if [ "$got" != "$want" ]; then
        lost=$((lost + 1))
        echo "    client $i: $(diff <(echo "$want") <(echo "$got") | head -5 | tr '\n' ' ')"
      fi
    done
    echo "    $cut of $nclients clients were on the killed worker and reconnected"
    if [ "$cut" -gt 0 ] && [ "$lost" = 0 ]; then
      ok "workerkill: $nclients clients ($cut cut by the kill) have exactly the log's $(echo "$want" | wc -l) rows, row by row"
    else bad "workerkill: every client has exactly the log's rows after a worker kill" "cut $cut, wrong $lost"; fi
    check "workerkill: the bridge exits 0 on SIGTERM" stop
  fi
fi

# ------------------------------------------------------------------ behind
if wants behind; then
  # --replay-cache 192k: each process keeps 64 kB, the shared ring 64 kB
  start behind --workers 2 --replay-cache 192k
  if ! healthy; then bad "behind: bridge --workers 2 --replay-cache 192k becomes healthy"; else
    chan="w.behind$RANDOM"
    nclients=6
    for i in $(seq $nclients); do
      "$tmp/sseclient" --reconnect 5 --timeout 60 --until-event "$chan-end" \
        "http://127.0.0.1:$BPORT/events?channel=$chan" >"$tmp/bh$i.jsonl" 2>"$tmp/bh$i.err" &
      bp[$i]=$!; pids+=("${bp[$i]}")
    done
    t=$((SECONDS + 20))
    for i in $(seq $nclients); do
      until grep -q '"event":"ready"' "$tmp/bh$i.jsonl" 2>/dev/null || [ $SECONDS -ge $t ]; do sleep 0.1; done
    done
    # 100 events of 10 kB a transaction: each batch is 1 MB, 16 times the ring
    for b in $(seq 4); do
      psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', repeat(chr(96 + $b), 10000) || g) FROM generate_series(1, 100) g" >/dev/null
    done
    psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', 'end', '$chan-end')" >/dev/null
    for i in $(seq $nclients); do wait "${bp[$i]}"; done
    behind=$(curl -s "http://127.0.0.1:$BPORT/metrics" | awk '/^sse_bridge_worker_ring_behind_total/ {s += $2} END {print s + 0}')
    want=$(psql -XAtq -d "$db" -c "SELECT id FROM sse_bridge.events WHERE channel = '$chan' ORDER BY id")
    wrong=0
    for i in $(seq $nclients); do
      got=$(grep '"kind":"event"' "$tmp/bh$i.jsonl" | grep -v '"event":"ready"' | sed -n 's/.*"id":"\([0-9]*\)-.*/\1/p')
      [ "$got" = "$want" ] || { wrong=$((wrong + 1)); echo "    client $i: $(diff <(echo "$want") <(echo "$got") | head -4 | tr '\n' ' ')"; }
    done
    echo "    the workers fell behind the shared ring $behind times"
    if [ "${behind:-0}" -gt 0 ] && [ "$wrong" = 0 ]; then
      ok "behind: workers that fell behind the ring ($behind times) read the log instead: $nclients clients have exactly the log's $(echo "$want" | wc -l) rows"
    else bad "behind: workers behind the ring never skip" "behind $behind, wrong $wrong"; fi
    check "behind: the bridge exits 0 on SIGTERM" stop
  fi
fi

# ------------------------------------------------------------------ superkill
if wants superkill; then
  start skill --workers 2
  if ! healthy; then bad "superkill: bridge --workers 2 becomes healthy"; else
    mapfile -t wp < <(worker_pids "$BLOG")
    kill -9 "$BPID"; wait "$BPID" 2>/dev/null
    t=$((SECONDS + 10)); alive=1
    while [ $SECONDS -lt $t ]; do
      alive=0
      for p in "${wp[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    if [ "${#wp[@]}" = 2 ] && [ "$alive" = 0 ]; then ok "superkill: kill -9 of the supervisor: both workers (${wp[*]}) exit"
    else bad "superkill: both workers exit after kill -9 of the supervisor" "workers ${wp[*]}"; fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$BPORT/healthz")
    [ "$code" = 000 ] && ok "superkill: nothing answers on the port any more" || bad "superkill: nothing answers on the port" "got $code"
  fi
fi

# ------------------------------------------------------------------ memory
if wants memory; then
  mm=$((48 << 20)); share=$((mm / 3))
  start mem --workers 2 --max-memory 48M --replay-cache 3M --client-queue 2M --keepalive 60
  if ! healthy; then bad "memory: bridge --workers 2 --max-memory 48M becomes healthy"; else
    lim=$(metric sse_bridge_memory_limit_bytes)
    l0=$(metric 'sse_bridge_worker_memory_limit_bytes{worker="0"}'); l1=$(metric 'sse_bridge_worker_memory_limit_bytes{worker="1"}')
    if [ "$lim" = "$mm" ] && [ "$l0" = "$share" ] && [ "$l1" = "$share" ]; then
      ok "memory: --max-memory 48M is the whole bridge's limit: $lim = 3 shares of $share (2 workers, the supervisor)"
    else bad "memory: the whole bridge's limit is --max-memory in equal shares" "limit $lim, worker shares $l0 $l1"; fi
    # 16 readers, each on its own channel, read their ready and then nothing
    nr=16; base="w.mem$RANDOM"
    for i in $(seq $nr); do
      "$tmp/sseclient" --pause-after 1 --rcvbuf 4096 --timeout 60 "http://127.0.0.1:$BPORT/events?channel=$base.c$i" \
        >"$tmp/mem$i.jsonl" 2>/dev/null &
      mp[$i]=$!; pids+=("${mp[$i]}")
    done
    t=$((SECONDS + 20))
    for i in $(seq $nr); do
      until grep -q '"event":"ready"' "$tmp/mem$i.jsonl" 2>/dev/null || [ $SECONDS -ge $t ]; do sleep 0.1; done
    done
    # 256 kB events round robin over the channels: about 1.75 MB a reader,
    # under --client-queue, and 14 MB a worker, over 3/4 of its share
    for r in $(seq 7); do
      psql -XAtq -d "$db" -c "SELECT sse_publish('$base.c' || c, repeat('x', 262144)) FROM generate_series(1, $nr) c" >/dev/null
    done
    t=$((SECONDS + 30))
    until [ "$(metric sse_bridge_memory_shed_total)" -gt 0 ] 2>/dev/null || [ $SECONDS -ge $t ]; do sleep 0.2; done
    shed=$(metric sse_bridge_memory_shed_total); slow=$(metric sse_bridge_slow_client_drops_total)
    m0=$(metric 'sse_bridge_worker_memory_bytes{worker="0"}'); m1=$(metric 'sse_bridge_worker_memory_bytes{worker="1"}')
    echo "    shed $shed streams, $slow slow-client drops; charged now: worker 0 $m0, worker 1 $m1 (share $share)"
    if [ "${shed:-0}" -gt 0 ] && [ "${slow:-0}" = 0 ] && [ "${m0:-$share}" -le $((share * 3 / 4)) ] && [ "${m1:-$share}" -le $((share * 3 / 4)) ]; then
      ok "memory: workers past the hard limit of their share shed streams and are back under it"
    else bad "memory: workers shed streams at the hard limit of their share"; fi
    for i in $(seq $nr); do kill "${mp[$i]}" 2>/dev/null; wait "${mp[$i]}" 2>/dev/null; done
    check "memory: the bridge exits 0 on SIGTERM" stop
  fi
fi

# ------------------------------------------------------------------ asan
if wants asan; then
  if ! make -s -C "$root" bridge-asan >"$tmp/asan-build.log" 2>&1; then
    bad "asan: build the sanitizer bridge" "$(tail -5 "$tmp/asan-build.log")"
  else
    saved=$bridge; bridge=$root/bridge/build/asan/sse-bridge
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=0}
    start asan --workers 2
    if ! healthy; then bad "asan: the sanitizer bridge --workers 2 becomes healthy"; else
      chan="w.asan$RANDOM"
      "$tmp/fanout" 127.0.0.1 "$BPORT" "/events?channel=$chan" 200 127.0.0.2 5 60 >"$tmp/asan-fan.out" 2>"$tmp/asan-fan.err" &
      fp=$!; pids+=("$fp")
      wait_ready "$tmp/asan-fan.out" "$fp" 30
      psql -XAtq -d "$db" -c "SELECT sse_publish('$chan', 'a' || g) FROM generate_series(1, 5) g" >/dev/null
      wait "$fp"; fst=$?
      kill -9 "$(worker_pids "$BLOG" | head -1)"
      t=$((SECONDS + 20))
      until [ "$(worker_pids "$BLOG" | wc -l)" -ge 3 ] || [ $SECONDS -ge $t ]; do sleep 0.1; done
      healthy || true
      stop; st=$?
      if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$BLOG"; then
        grep -m3 -A15 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$BLOG" | head -40
        bad "asan: no sanitizer report from the supervisor or any worker"
      elif [ "$fst" = 0 ] && [ "$st" = 0 ] && [ "$(worker_pids "$BLOG" | wc -l)" -ge 3 ]; then
        ok "asan: supervisor and workers under ASan+UBSan: 200 streams got the broadcast, a worker was replaced, SIGTERM exit 0, no report"
      else bad "asan: broadcast, a replaced worker and a clean SIGTERM under the sanitizers" "fanout $fst, exit $st"; fi
    fi
    bridge=$saved
  fi
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
