#!/usr/bin/env bash
# The bridge's startup checks: a database the bridge cannot use must be named
# as a setup mistake, with the fix, never passed off as an outage.  Needs the
# throwaway cluster of scripts/test.sh (PGHOST, PGPORT, PGUSER) with the
# extension installed; runs alone as test/preflight/run.sh in that
# environment.  Each case gets its own database and role:
#
#   a. no grants at all: one line per missing privilege, each with its GRANT
#      naming the role; /healthz 503 "misconfigured"; a stream 503 with
#      Retry-After and a detail saying the bridge is misconfigured; nothing
#      about --db-timeout or "permission denied"
#   b. SELECT missing on sse_bridge.meta alone: one line, the same answers
#   c. EXECUTE missing on sse_touch: one line, logged once across rechecks,
#      no housekeeping warning, no blank line
#   d. no extension in the database: one line naming the database and
#      CREATE EXTENSION sse_bridge, without "setup step" or "rejected"
#   e. a 1.0 schema with the grants 1.0 documented: the bridge asks for
#      ALTER EXTENSION sse_bridge UPDATE; after the update (which carries the
#      grants over to the new table) it becomes healthy without a restart
#      and a subscription stream works
#   f. no --db: the server, database and user libpq's defaults chose are
#      logged once
#   g. the missing grant is made while the bridge runs: /healthz becomes 200
#      without a restart and a subscription stream works
#   h. a grant revoked while the bridge runs: the first statement refused
#      makes the bridge check again; then as in b, and healthy after the GRANT
#
#   (a, c, e and g with --workers 2, the others with one process)
#
#   PREFLIGHT_ONLY="a b"   a subset
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bridge=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge}
only=${PREFLIGHT_ONLY:-a b c d e f g h}

for v in PGHOST PGPORT; do
  [ -n "${!v:-}" ] || { echo "preflight: $v is not set; run through make test"; exit 1; }
done
export PGUSER=${PGUSER:-postgres}
[ -x "$bridge" ] || { echo "preflight: $bridge is missing; build it with make"; exit 1; }

tmp=$(mktemp -d /tmp/sse_pf.XXXXXX)
chmod 755 "$tmp"
pids=()
dbs=()
roles=()
passed=0
failed=0
failures=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  for d in "${dbs[@]}"; do dropdb --if-exists --force "$d" >/dev/null 2>&1; done
  for r in "${roles[@]}"; do psql -XAtq -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
  if [ "$failed" -gt 0 ] || [ "${PREFLIGHT_KEEP:-0}" = 1 ]; then echo "preflight: logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { psql -XAtq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# fresh DB [ROLE]: a new database (and login role), both dropped on exit
fresh() {
  dropdb --if-exists --force "$1" >/dev/null 2>&1
  createdb "$1" || return 1
  dbs+=("$1")
  if [ -n "${2:-}" ]; then
    psql -XAtq -d postgres -c "DROP ROLE IF EXISTS $2" >/dev/null 2>&1
    q postgres "CREATE ROLE $2 LOGIN" || return 1
    roles+=("$2")
  fi
}

bridge_grants() {  # the grants the bridge's role needs (README, "Privileges")
  echo "GRANT USAGE ON SCHEMA sse_bridge TO $1;
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions,
                    sse_bridge.subscription_versions TO $1;
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO $1;"
}

# start NAME ARGS...: a bridge on a free port; sets port, url, log, bpid.
# Cases a, c, e and g run a supervisor and two workers (the supervisor
# checks; its workers answer /healthz and opens with its verdict), the
# others one process.
start() {
  local name=$1 w=1; shift
  case $name in a|c|e|g) w=2 ;; esac
  port=$("$root/scripts/free-port.sh")
  log=$tmp/$name.log
  url=http://127.0.0.1:$port
  "$bridge" --listen "127.0.0.1:$port" --log-level debug --workers "$w" "$@" >"$log" 2>&1 &
  bpid=$!
  pids+=("$bpid")
}
stop() {
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}

status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1"; }
# until_ok SECONDS CMD...: poll CMD every 0.1 s until it succeeds
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}
health_is() { [ "$(status "$url/healthz")" = "$1" ]; }
# the number of log lines containing the fixed string
lines() { grep -cF -- "$1" "$log"; }
# the bridge's work link has been held by the check at least N times: it
# has checked again since it first said what is missing
rechecked() { [ "$(grep -cF 'db work: setup -> held' "$log")" -ge "$1" ]; }

errs=()
expect() {  # expect WHAT: record a failed expectation (the case goes on)
  errs+=("$1")
}
expect_line() {  # expect_line TEXT [COUNT]: TEXT is in exactly COUNT (1) log lines
  local n
  n=$(lines "$1")
  [ "$n" = "${2:-1}" ] || expect "log line '$1': $n times, want ${2:-1}"
}
expect_no() {  # expect_no TEXT: no log line contains TEXT
  local n
  n=$(lines "$1")
  [ "$n" = 0 ] || expect "log says '$1' ($n times)"
}
expect_health() {  # /healthz answers 503 {"status":"misconfigured",...} with Retry-After
  local h b
  h=$(curl -s -D - -o "$tmp/health.body" --max-time 5 "$url/healthz")
  b=$(cat "$tmp/health.body")
  [[ "$h" == "HTTP/1.1 503"* ]] || expect "/healthz: ${h%%$'\r'*}, want 503"
  grep -qi '^Retry-After: ' <<<"$h" || expect "/healthz 503 without Retry-After"
  [[ "$b" == '{"status":"misconfigured","detail":"'* ]] || expect "/healthz body: $b"
}
expect_stream_refused() {  # expect_stream_refused URL: 503, Retry-After, "misconfigured"
  local h b
  h=$(curl -s -D - -o "$tmp/stream.body" --max-time 10 "$1")
  b=$(cat "$tmp/stream.body")
  [[ "$h" == "HTTP/1.1 503"* ]] || expect "stream: ${h%%$'\r'*}, want 503"
  grep -qi '^Retry-After: ' <<<"$h" || expect "stream 503 without Retry-After"
  [[ "$b" == *'"detail":"the bridge is misconfigured'* ]] || expect "stream body: $b"
}
# expect_stream_works DB: a new subscription's stream delivers an event
# published after it and ends at the close of its channel
expect_stream_works() {
  local id out ch=pf.$RANDOM
  id=$(q "$1" "SELECT sse_subscribe_filter(ARRAY['$ch'])") || { expect "subscribe"; return; }
  q "$1" "SELECT sse_publish('$ch', 'hello'); SELECT sse_close('$ch')" >/dev/null
  out=$(curl -s -N --max-time 15 "$url/events/$id")
  [[ "$out" == *"data: hello"* ]] || expect "stream of a subscription: '$out'"
}
finish() {  # finish NAME: record the case
  local name=$1
  if [ ${#errs[@]} -eq 0 ]; then
    passed=$((passed + 1)); echo "ok - $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "FAIL - $name"
    printf '    %s\n' "${errs[@]}"
    echo "    log $log:"; tail -n 25 "$log" | sed 's/^/      /'
  fi
  errs=()
  [ -n "${bpid:-}" ] && stop "$bpid"
  bpid=
}
# a no_retry wait for the first report of what is missing
wait_reported() { until_ok 20 grep -qF "$1" "$log" || expect "no log line '$1'"; }

want() { [[ " $only " == *" $1 "* ]]; }
conn() { echo "host=$PGHOST port=$PGPORT user=$2 dbname=$1"; }
schema_of_functions() { q "$1" "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'sse_bridge'"; }

# ------------------------------------------------------------ a. no grants
if want a; then
  db=sse_pf_a r=sse_pf_ra
  fresh $db $r && q $db "CREATE EXTENSION sse_bridge" || expect "setup"
  fs=$(schema_of_functions $db)
  sub=$(q $db "SELECT sse_subscribe_filter(ARRAY['pf.a'])")
  start a --db "$(conn $db $r)" --db-timeout 2
  wait_reported "GRANT SELECT ON sse_bridge.events TO $r;"
  until_ok 20 rechecked 2 || expect "the bridge did not check again"
  expect_line "misconfigured: role $r has no USAGE on schema sse_bridge; grant it with: GRANT USAGE ON SCHEMA sse_bridge TO $r;"
  for t in events meta subscriptions subscription_versions; do
    expect_line "misconfigured: role $r may not read sse_bridge.$t; grant it with: GRANT SELECT ON sse_bridge.$t TO $r;"
  done
  for f in 'sse_touch(uuid)' 'sse_expire()'; do
    expect_line "misconfigured: role $r may not execute $fs.$f; grant it with: GRANT EXECUTE ON FUNCTION $fs.$f TO $r;"
  done
  expect_line "misconfigured: " 8   # the seven above and what it means
  expect_health
  expect_stream_refused "$url/events/$sub"
  expect_no "db-timeout"
  expect_no "no answer"
  expect_no "permission denied"
  expect_no "database is unavailable"
  finish "a. no grants: one line per missing privilege with its GRANT; 503 misconfigured"
fi

# ------------------------------------------------------------ b. one table
if want b; then
  db=sse_pf_b r=sse_pf_rb
  fresh $db $r && q $db "CREATE EXTENSION sse_bridge; $(bridge_grants $r) REVOKE SELECT ON sse_bridge.meta FROM $r;" || expect "setup"
  sub=$(q $db "SELECT sse_subscribe_filter(ARRAY['pf.b'])")
  start b --db "$(conn $db $r)"
  wait_reported "may not read sse_bridge.meta"
  until_ok 20 rechecked 2 || expect "the bridge did not check again"
  expect_line "misconfigured: role $r may not read sse_bridge.meta; grant it with: GRANT SELECT ON sse_bridge.meta TO $r;"
  expect_line "GRANT" 1
  expect_health
  expect_stream_refused "$url/events/$sub"
  expect_no "the database lookup failed"
  expect_no "permission denied"
  finish "b. SELECT missing on sse_bridge.meta: one line with its GRANT; 503 misconfigured"
fi

# ------------------------------------------------------------ c. sse_touch
if want c; then
  db=sse_pf_c r=sse_pf_rc
  fresh $db $r && q $db "CREATE EXTENSION sse_bridge; $(bridge_grants $r) REVOKE EXECUTE ON FUNCTION sse_touch(uuid) FROM $r;" || expect "setup"
  fs=$(schema_of_functions $db)
  sub=$(q $db "SELECT sse_subscribe_filter(ARRAY['pf.c'])")
  start c --db "$(conn $db $r)" --touch-interval 1
  until_ok 20 grep -qF "db work: " "$log"
  # a stream to touch, if one is served (sse_touch runs for open streams)
  expect_stream_refused "$url/events/$sub"
  wait_reported "may not execute $fs.sse_touch(uuid)"
  until_ok 30 rechecked 3 || expect "the bridge did not check again"
  expect_line "misconfigured: role $r may not execute $fs.sse_touch(uuid); grant it with: GRANT EXECUTE ON FUNCTION $fs.sse_touch(uuid) TO $r;"
  expect_line "GRANT" 1
  expect_no "housekeeping"
  n=$(grep -c '^$' "$log"); [ "$n" = 0 ] || expect "$n blank lines in the log"
  expect_health
  finish "c. EXECUTE missing on sse_touch: one line, once, no warning every tick, no blank line"
fi

# ------------------------------------------------------------ d. no extension
if want d; then
  db=sse_pf_d
  fresh $db || expect "setup"
  start d --db "$(conn $db "$PGUSER")"
  wait_reported "misconfigured: "
  until_ok 20 rechecked 2 || expect "the bridge did not check again"
  expect_line "misconfigured: database $db has no sse_bridge extension; install it with: CREATE EXTENSION sse_bridge;"
  expect_no "setup step"
  expect_no "rejected"
  expect_no "not installed in this database"
  expect_health
  expect_stream_refused "$url/events/00000000-0000-0000-0000-000000000000"
  # installed while the bridge runs: healthy without a restart
  q $db "CREATE EXTENSION sse_bridge"
  until_ok 20 health_is 200 || expect "/healthz did not become 200 after CREATE EXTENSION"
  expect_stream_works $db
  finish "d. no extension: the database named, CREATE EXTENSION sse_bridge; healthy once it is made"
fi

# ------------------------------------------------------------ e. a 1.0 schema
if want e; then
  db=sse_pf_e r=sse_pf_re
  # the grants the 1.0 README listed
  fresh $db $r && q $db "CREATE EXTENSION sse_bridge VERSION '1.0';
    GRANT USAGE ON SCHEMA sse_bridge TO $r;
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions TO $r;
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO $r;" || expect "setup"
  start e --db "$(conn $db $r)"
  wait_reported "misconfigured: "
  until_ok 20 rechecked 2 || expect "the bridge did not check again"
  min=1.1   # the oldest version the bridge's statements read (bridge/preflight.h)
  expect_line "misconfigured: database $db has sse_bridge 1.0, this bridge needs $min or later; update it with: ALTER EXTENSION sse_bridge UPDATE;"
  expect_line "misconfigured: " 2   # and what it means
  expect_no "does not exist"
  expect_health
  q $db "ALTER EXTENSION sse_bridge UPDATE"
  until_ok 20 health_is 200 || expect "/healthz did not become 200 after ALTER EXTENSION sse_bridge UPDATE (grants carried over?)"
  expect_no "GRANT"
  expect_stream_works $db
  finish "e. a 1.0 schema with the 1.0 grants: ALTER EXTENSION UPDATE asked for; healthy after it"
fi

# ------------------------------------------------------------ f. no --db
if want f; then
  db=sse_pf_f
  fresh $db && q $db "CREATE EXTENSION sse_bridge" || expect "setup"
  PGDATABASE=$db start f
  until_ok 20 health_is 200 || expect "/healthz not 200"
  if [[ "$PGHOST" == /* ]]; then where="socket directory $PGHOST"; else where="host $PGHOST"; fi
  expect_line "no --db given: libpq's defaults chose $where, port $PGPORT, database $db, user $PGUSER"
  finish "f. no --db: the server, database and user of libpq's defaults logged once"
fi

# ------------------------------------------------------------ g. fixed at runtime
if want g; then
  db=sse_pf_g r=sse_pf_rg
  # the deployment of issue 16: everything but the table 1.1 added
  fresh $db $r && q $db "CREATE EXTENSION sse_bridge; $(bridge_grants $r) REVOKE SELECT ON sse_bridge.subscription_versions FROM $r;" || expect "setup"
  start g --db "$(conn $db $r)"
  wait_reported "GRANT SELECT ON sse_bridge.subscription_versions TO $r;"
  expect_health
  q $db "GRANT SELECT ON sse_bridge.subscription_versions TO $r"
  until_ok 20 health_is 200 || expect "/healthz did not become 200 after the GRANT"
  expect_line "every privilege the bridge needs is granted" 1
  expect_stream_works $db
  finish "g. the GRANT made while the bridge runs: healthy without a restart, streams work"
fi

# ------------------------------------------------------------ h. revoked at runtime
if want h; then
  db=sse_pf_h r=sse_pf_rh
  fresh $db $r && q $db "CREATE EXTENSION sse_bridge; $(bridge_grants $r)" || expect "setup"
  start h --db "$(conn $db $r)"
  until_ok 20 health_is 200 || expect "/healthz not 200 with every grant"
  q $db "REVOKE SELECT ON sse_bridge.subscriptions FROM $r"
  # the next statement that reads it is refused: the bridge checks again
  sub=$(q $db "SELECT sse_subscribe_filter(ARRAY['pf.h'])")
  curl -s -o /dev/null --max-time 10 "$url/events/$sub"
  wait_reported "misconfigured: role $r may not read sse_bridge.subscriptions; grant it with: GRANT SELECT ON sse_bridge.subscriptions TO $r;"
  expect_health
  expect_stream_refused "$url/events/$sub"
  q $db "GRANT SELECT ON sse_bridge.subscriptions TO $r"
  until_ok 20 health_is 200 || expect "/healthz did not become 200 after the GRANT"
  expect_stream_works $db
  finish "h. a grant revoked while the bridge runs: the next refusal leads to the check and its GRANT line"
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
