#!/usr/bin/env bash
# Checks the `make run` demo (scripts/run.sh) end to end: started on a free
# port with a bounded run time, it must print one URL serving the demo page
# (test/browser opens it in Chromium), stream a job
# event (JSON row with a state) to curl -N, then stop by itself with status
# 0, leaving neither the bridge port open nor its cluster directory behind.
# A second run is stopped the way Ctrl-C does it (SIGINT to its process
# group) and must clean up the same way.
# Called by test/e2e/run.sh; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=${SSE_E2E_TMP:-$(mktemp -d /tmp/sse_demo.XXXXXX)}
log=$tmp/demo.log
out=$tmp/demo-curl.txt
demo_pid=

fail() { echo "    demo: $*"; [ -f "$log" ] && sed 's/^/    | /' "$log" | tail -n 40; exit 1; }

stop_demo() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null
    local deadline=$((SECONDS + 15))
    while kill -0 "$demo_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -0 "$demo_pid" 2>/dev/null && kill -KILL "$demo_pid" 2>/dev/null
  fi
}
trap stop_demo EXIT

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# start_demo SECONDS [SKIP_BUILD]: run scripts/run.sh in its own session
# (process group); SKIP_BUILD 0 runs its deps/build/install steps too
start_demo() {
  port=$(free_port)
  : >"$log"
  # the demo starts its own cluster; the outer test cluster's variables must not leak in
  env -u PGHOST -u PGPORT -u PGDATABASE -u SSE_PGDATA -u SSE_PGBIN -u SSE_PGDIR \
    SSE_RUN_LISTEN="127.0.0.1:$port" SSE_RUN_SECONDS="$1" SSE_RUN_SKIP_BUILD="${2:-1}" \
    setsid "$root/scripts/run.sh" >"$log" 2>&1 &
  demo_pid=$!
}

wait_healthy() {
  local deadline=$((SECONDS + 60))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ]; do
    kill -0 "$demo_pid" 2>/dev/null || fail "exited before its bridge answered /healthz"
    [ "$SECONDS" -lt "$deadline" ] || fail "bridge not healthy on port $port after 60 s"
    sleep 0.2
  done
}

# after the demo has exited: nothing left listening, cluster removed
check_cleaned_up() {
  local pgdir
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 000 ] || fail "bridge still listening after the demo stopped"
  pgdir=$(sed -n 's/^\[make run\] cluster: \([^ ]*\) .*/\1/p' "$log" | head -1)
  [ -n "$pgdir" ] || fail "the cluster directory was not reported"
  [ ! -d "$pgdir" ] || fail "cluster directory $pgdir left behind"
}

run_seconds=20
# as `make run` does it: deps, build and the system-wide install (already
# done by make test, so quick), which it must announce
start_demo "$run_seconds" 0
wait_healthy
t_up=$SECONDS

line="open http://127.0.0.1:$port/"
deadline=$((SECONDS + 10))
until grep -qF "$line" "$log" && grep -q 'Ctrl-C stops' "$log"; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the URL to open was not printed: $line"
  sleep 0.2
done
[ "$(grep -c 'http://' "$log")" = 1 ] || fail "more than one URL printed: $(grep 'http://' "$log")"
# it says what it installed system-wide, with the real paths, before and at the end
so="$(pg_config --pkglibdir)/sse_bridge.so"
for want in "installing system-wide (make install): $so" "make run installed, system-wide: $so"; do
  grep -qF "$want" "$log" || fail "not printed: $want"
done
for f in "$so" "$(pg_config --sharedir)/extension/sse_bridge.control" /usr/local/bin/sse-bridge; do
  grep -qF "$(dirname "$f")/" "$log" || fail "the install message does not name $(dirname "$f")"
  [ -e "$f" ] || fail "announced as installed but missing: $f"
done
# the printed export line reaches the demo database from a clean environment
exp=$(sed -n 's/^ *\(export PGHOST=.*\)$/\1/p' "$log" | head -1)
[ -n "$exp" ] || fail "no export line for psql printed"
jobs=$(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE bash -c "$exp; psql -XAtc 'SELECT count(*) FROM jobs'" 2>&1) ||
  fail "the printed export line does not reach the demo database: $jobs"
page=$(curl -s "http://127.0.0.1:$port/")
grep -q "/sse-bridge.js" <<<"$page" || fail "the printed URL does not serve the demo page: $(head -c 200 <<<"$page")"

# the publisher moves jobs every second: an update must arrive well within 15 s
curl -sN --max-time 15 "http://127.0.0.1:$port/events?channel=job.*" >"$out" 2>/dev/null &
curl_pid=$!
deadline=$((SECONDS + 15))
until grep -q '^event: update' "$out" && grep -qE '^data: \{.*"state"' "$out"; do
  kill -0 "$curl_pid" 2>/dev/null || break
  [ "$SECONDS" -lt "$deadline" ] || break
  sleep 0.2
done
kill "$curl_pid" 2>/dev/null; wait "$curl_pid" 2>/dev/null
grep -q '^event: update' "$out" || fail "no job update event through curl; got: $(head -c 400 "$out")"
ev_data=$(grep -m1 -E '^data: \{.*"state"' "$out" | sed 's/^data: //')
node -e 'const r = JSON.parse(process.argv[1]); if (!r.name || !["queued","running","done","failed"].includes(r.state)) process.exit(1)' \
  "$ev_data" || fail "job event is not a jobs row: $ev_data"
grep -q '^id: [0-9]' "$out" || fail "job events carry no id"

# SSE_RUN_SECONDS: the demo stops by itself and cleans up
deadline=$((t_up + run_seconds + 30))
while kill -0 "$demo_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
kill -0 "$demo_pid" 2>/dev/null && fail "still running after SSE_RUN_SECONDS=$run_seconds"
wait "$demo_pid"; st=$?
demo_pid=
[ "$st" -eq 0 ] || fail "exit status $st"
check_cleaned_up
events=$(grep -c '^id:' "$out")

# Ctrl-C: SIGINT to the demo's process group stops everything
start_demo ""
wait_healthy
kill -INT -- "-$demo_pid" 2>/dev/null
deadline=$((SECONDS + 20))
while kill -0 "$demo_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
kill -0 "$demo_pid" 2>/dev/null && fail "still running 20 s after Ctrl-C (SIGINT)"
wait "$demo_pid"
demo_pid=
grep -q '^\[make run\] stopped' "$log" || fail "no orderly stop after SIGINT"
check_cleaned_up
echo "    demo: streamed $events job events, stopped cleanly after SSE_RUN_SECONDS and after Ctrl-C"
exit 0
