#!/usr/bin/env bash
# End-to-end tests of bridge/sse-bridge with real clients (curl, the npm
# `eventsource` package, and test/e2e/sseclient.c), against the throwaway
# cluster that scripts/test.sh exported (PGHOST, PGPORT, PGUSER, SSE_PGDATA,
# SSE_PGBIN). The extension and the bridge must be built and installed.
#
# It creates its own database, starts the main bridge on a free loopback
# port, runs the Node test suite (main.mjs; the tests start more bridges as
# they need), the `make run` demo check (demo_test.sh), and the suite again
# against the sanitizer build of the bridge when bridge/bridge.mk has one.
# Everything started here or by the tests is recorded in a pid file and
# stopped on exit. Prints "N passed, N failed"; exits non-zero on failure.
#
#   E2E_ONLY=regex           run only the matching Node tests
#   SSE_E2E_SANITIZE=0       skip the sanitizer run
#   SSE_E2E_DEMO=0           skip the demo check
#   SSE_E2E_KEEP=1           keep logs in the temporary directory
#   SSE_E2E_WORKERS=N        --workers of the plain run (default 2: a supervisor
#                            and two workers; the sanitizer run uses 1, one
#                            process, so both process models run every test)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
passed=0
failed=0
failures=()

summary() {
  echo
  [ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
  echo "$passed passed, $failed failed"
}

for v in PGHOST PGPORT SSE_PGDATA SSE_PGBIN; do
  if [ -z "${!v:-}" ]; then
    echo "e2e: $v is not set; run through make test (scripts/test.sh)" >&2
    failed=1; failures+=("environment"); summary; exit 1
  fi
done
export PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT SSE_PGDATA SSE_PGBIN

tmp=$(mktemp -d /tmp/sse_e2e.XXXXXX)
chmod 755 "$tmp"
pidfile=$tmp/pids
: >"$pidfile"
db=sse_e2e

# Processes started here or by the tests are recorded as "pid starttime"
# (field 22 of /proc/PID/stat), so that a pid is signalled only while it
# still names the process we started.
record_pid() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}') || return 0
  [ -n "$st" ] && echo "$1 $st" >>"$pidfile"
}

ours() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}')
  [ -n "$st" ] && [ "$st" = "$2" ]
}

# Stop every recorded process, newest first: SIGTERM, a bounded wait, then
# SIGKILL.
stop_recorded() {
  local pid st deadline
  [ -s "$pidfile" ] || return 0
  while read -r pid st; do
    ours "$pid" "$st" && kill -TERM "$pid" 2>/dev/null
  done < <(tac "$pidfile")
  deadline=$((SECONDS + 6))
  while read -r pid st; do
    while ours "$pid" "$st" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    ours "$pid" "$st" && kill -KILL "$pid" 2>/dev/null
  done < <(tac "$pidfile")
  : >"$pidfile"
}

cleanup() {
  stop_recorded
  if [ "${SSE_E2E_KEEP:-0}" = 1 ] || [ "$failed" -gt 0 ]; then
    echo "e2e: logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record() {
  local name=$1 ok=$2
  if [ "$ok" = 0 ]; then
    passed=$((passed + 1)); echo "ok - $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "FAIL - $name"
  fi
}

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# ------------------------------------------------------------ preparation

bridge=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge}
if [ ! -x "$bridge" ]; then
  echo "e2e: $bridge is missing; build it with make" >&2
  record "bridge binary exists" 1; summary; exit 1
fi

mkdir -p "$here/build"
if ! cc -std=c11 -Wall -Wextra -Werror -O1 -g -I"$here/../lib" -o "$here/build/sseclient" "$here/sseclient.c" "$here/../lib/sseparse.c"; then
  record "build test/e2e/sseclient.c" 1; summary; exit 1
fi

if [ ! -d "$here/node_modules/eventsource" ]; then
  if ! (cd "$here" && npm ci --no-audit --no-fund >"$tmp/npm.log" 2>&1); then
    cat "$tmp/npm.log" >&2
    record "npm ci (test/e2e)" 1; summary; exit 1
  fi
fi

setup_db() {
  psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null &&
    psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -f "$here/setup.sql" >/dev/null
}
if ! setup_db; then
  record "create database $db with the extension" 1; summary; exit 1
fi
conninfo="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$db"

# ------------------------------------------------------------ one suite run

# run_suite LABEL BRIDGE_BINARY
run_suite() {
  local label=$1 bin=$2 port log pid code=0 deadline st
  port=$(free_port)
  log=$tmp/main-bridge${label:+-$label}.log
  "$bin" --db "$conninfo" --listen "127.0.0.1:$port" --public-channels 'pub.#,job.*' \
    --retry 300 >"$log" 2>&1 &
  pid=$!
  record_pid "$pid"
  deadline=$((SECONDS + 20))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$log" >&2
      record "${label:+[$label] }main bridge becomes healthy" 1
      kill -KILL "$pid" 2>/dev/null
      return
    fi
    sleep 0.1
  done
  E2E_BRIDGE_BIN=$bin E2E_DB=$db E2E_TMP=$tmp E2E_PIDFILE=$pidfile \
    E2E_MAIN_URL="http://127.0.0.1:$port" E2E_MAIN_LOG=$log E2E_MAIN_RETRY_MS=300 \
    E2E_SSECLIENT="$here/build/sseclient" E2E_LABEL=$label E2E_RESULTS="$tmp/results-$label.json" \
    node "$here/main.mjs" &
  local npid=$!
  record_pid "$npid"
  wait "$npid"
  if [ -f "$tmp/results-$label.json" ]; then
    passed=$((passed + $(node -p "require('$tmp/results-$label.json').passed")))
    failed=$((failed + $(node -p "require('$tmp/results-$label.json').failed")))
    while IFS= read -r n; do failures+=("$n"); done < <(node -e \
      "for (const r of require('$tmp/results-$label.json').results) if (!r.ok) console.log(r.name)")
  else
    record "${label:+[$label] }node test suite completed" 1
  fi
  # the main bridge must exit 0 on SIGTERM within 5 s, sanitizer-clean
  kill -TERM "$pid" 2>/dev/null
  deadline=$((SECONDS + 5))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null; code=1
    echo "    main bridge still running 5 s after SIGTERM"
  fi
  wait "$pid"; st=$?
  [ "$st" -eq 0 ] || { code=1; echo "    main bridge exit status $st"; }
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    code=1; grep -m3 -A20 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | head -60
  fi
  record "${label:+[$label] }main bridge: clean exit on SIGTERM after the suite" "$code"
}

# Every bridge of a run (the main one and those the tests start) gets
# --workers through SSE_BRIDGE_WORKERS.
echo "--- e2e: bridge $bridge, --workers ${SSE_E2E_WORKERS:-2}"
SSE_BRIDGE_WORKERS=${SSE_E2E_WORKERS:-2} run_suite "" "$bridge"

# ------------------------------------------------------------ make run demo

if [ "${SSE_E2E_DEMO:-1}" != 0 ]; then
  echo "--- e2e: make run demo"
  SSE_E2E_TMP=$tmp "$here/demo_test.sh"
  record "make run demo streams a job event through curl" $?
fi

# ------------------------------------------------------------ sanitizers

# The sanitizer build, if bridge/bridge.mk provides one (target and path
# are looked up there, so the suite follows what the bridge offers).
sanitizer_binary() {
  local mk=$root/bridge/bridge.mk target
  [ -f "$mk" ] || return 1
  target=$(grep -oE '^(bridge-asan|asan|sanitize|bridge-sanitize)[a-z-]*:' "$mk" | head -1 | tr -d :)
  [ -n "$target" ] || return 1
  make -s -C "$root" "$target" >"$tmp/asan-build.log" 2>&1 || { cat "$tmp/asan-build.log" >&2; echo BUILD_FAILED; return 0; }
  for f in "$root/bridge/build/sse-bridge-asan" "$root/bridge/sse-bridge-asan" "$root"/bridge/build/asan/sse-bridge; do
    [ -x "$f" ] && { echo "$f"; return 0; }
  done
  echo NOT_FOUND
}

if [ "${SSE_E2E_SANITIZE:-1}" != 0 ]; then
  asan=$(sanitizer_binary)
  case "$asan" in
    "") echo "--- e2e: no sanitizer target in bridge/bridge.mk; sanitizer run skipped" ;;
    BUILD_FAILED) record "build the sanitizer bridge" 1 ;;
    NOT_FOUND) record "find the sanitizer bridge binary" 1 ;;
    *)
      echo "--- e2e: sanitizer bridge $asan, --workers 1"
      export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
      export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=0}
      SSE_BRIDGE_WORKERS=1 run_suite asan "$asan"
      ;;
  esac
fi

summary
[ "$failed" -eq 0 ]
