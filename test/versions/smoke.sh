#!/usr/bin/env bash
# Bridge end-to-end smoke test against the running cluster (PG* environment),
# with bridge/sse-bridge as built from this tree and the C client
# test/e2e/sseclient.c (no Node.js needed, so it runs in the version chroots).
#
#   smoke.sh                 new database: publish, replay from a
#                            Last-Event-ID, stream live, reconnect with the
#                            last id seen, a filtered subscription
#   smoke.sh --resume DB SUB LAST WANT PRUNED
#                            existing database (after pg_upgrade): the
#                            subscription SUB resumed from Last-Event-ID LAST
#                            must replay exactly the ids WANT (comma-separated);
#                            an ad-hoc stream resumed from below the prune
#                            mark PRUNED (it missed pruned rows) must be
#                            told with a reset
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bridge=$root/bridge/sse-bridge
tmp=$(mktemp -d /tmp/sse_smoke.XXXXXX)
bpid=
fail=0

cleanup() {
  if [ -n "$bpid" ] && kill -0 "$bpid" 2>/dev/null; then
    kill -TERM "$bpid" 2>/dev/null
    local deadline=$((SECONDS + 5))
    while kill -0 "$bpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$bpid" 2>/dev/null
  fi
  [ "$fail" -eq 0 ] && rm -rf "$tmp"
}
trap cleanup EXIT

q() { psql -qAtX -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
check() {
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1: want '$2' got '$3'"; fail=1; fi
}
# "id:event:data" of each event the client printed, comma-separated (id:
# the numeric part of the position "<id>-<fingerprint>")
events() {
  sed -n 's/^{"kind":"event","id":"\([0-9]*\)[^"]*","event":"\([^"]*\)","data":"\(.*\)"}$/\1:\2:\3/p' "$1" | paste -sd, -
}
# events other than ready: an event committed just before a client connects
# may come before or after `ready` (the bridge may not have fetched it yet),
# so checks wait for a number of events and look at those other than ready
others() { events "$1" | tr ',' '\n' | grep -v '^[0-9]*:ready:' | paste -sd, -; }
client() { "$tmp/sseclient" --timeout 20 "$@"; }

[ -x "$bridge" ] || { echo "smoke: $bridge is missing; build with make"; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -O1 -I"$root/test/lib" -o "$tmp/sseclient" "$root/test/e2e/sseclient.c" "$root/test/lib/sseparse.c" || exit 1

start_bridge() {
  local attempt
  for attempt in 1 2 3; do
    port=$("$root/scripts/free-port.sh")
    "$bridge" --db "host=$PGHOST port=$PGPORT user=${PGUSER:-postgres} dbname=$db" \
      --listen "127.0.0.1:$port" --public-channels 'smoke.#,upg.#' --retry 300 >"$tmp/bridge.log" 2>&1 &
    bpid=$!
    local deadline=$((SECONDS + 20))
    while kill -0 "$bpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] && return 0
      sleep 0.1
    done
    kill -KILL "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null; bpid=
  done
  echo "FAILED: the bridge did not become healthy"; tail -n 20 "$tmp/bridge.log"; fail=1
  exit 1
}

stop_bridge() {
  kill -TERM "$bpid"
  local deadline=$((SECONDS + 5))
  while kill -0 "$bpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  wait "$bpid"; local st=$?
  bpid=
  check "the bridge exits 0 on SIGTERM" 0 "$st"
}

if [ "${1:-}" = --resume ]; then
  db=$2 sub=$3 last=$4 want=$5 pruned=$6
  start_bridge
  url=http://127.0.0.1:$port
  n=$(echo "$want" | tr ',' '\n' | grep -c .)
  client --last-event-id "$last" --max-events $((n + 1)) "$url/events/$sub" >"$tmp/resume.out"
  got=$(others "$tmp/resume.out" | tr ',' '\n' | cut -d: -f1 | paste -sd, -)
  check "subscription resumes from Last-Event-ID $last" "$want" "$got"
  client --last-event-id "$((pruned - 1))" --until-event ready "$url/events?channel=upg.%23" >"$tmp/reset.out"
  check "a Last-Event-ID below the prune mark gets a reset first" reset \
    "$(events "$tmp/reset.out" | cut -d, -f1 | cut -d: -f2)"
  q "SELECT sse_publish('upg.live', 'after upgrade')" >/dev/null
  id=$(q "SELECT max(id) FROM sse_bridge.events")
  client --last-event-id "$((id - 1))" --max-events 2 "$url/events?channel=upg.live" >"$tmp/new.out"
  check "an event published after the upgrade is streamed" "$id:message:after upgrade" "$(others "$tmp/new.out")"
  stop_bridge
  [ "$fail" -eq 0 ] && echo "smoke: resume after pg_upgrade passed"
  exit "$fail"
fi

db=sse_smoke
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db" && q "CREATE EXTENSION sse_bridge" || exit 1
pub() { q "SELECT sse_publish('$1', '$2')" >/dev/null; q "SELECT max(id) FROM sse_bridge.events"; }
i1=$(pub smoke.a one); i2=$(pub smoke.a two); i3=$(pub smoke.b three)
start_bridge
url=http://127.0.0.1:$port

# replay from a Last-Event-ID, and a ready
client --last-event-id "$i1" --max-events 3 "$url/events?channel=smoke.%23" >"$tmp/c1.out"
check "replay after Last-Event-ID $i1" "$i2:message:two,$i3:message:three" "$(others "$tmp/c1.out")"
check "a ready event" 1 "$(events "$tmp/c1.out" | tr ',' '\n' | grep -c '^[0-9]*:ready:')"

# live: an event committed while the client is connected
client --last-event-id "$i3" --max-events 2 "$url/events?channel=smoke.%23" >"$tmp/c2.out" &
cpid=$!
deadline=$((SECONDS + 20))
until grep -q '"event":"ready"' "$tmp/c2.out" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
i4=$(pub smoke.a four)
wait "$cpid"
check "live event after ready" "$i4:message:four" "$(events "$tmp/c2.out" | cut -d, -f2)"

# reconnect with the last id seen: exactly what was missed meanwhile
i5=$(pub smoke.a five); i6=$(pub smoke.c six)
client --last-event-id "$i4" --max-events 2 "$url/events?channel=smoke.a" >"$tmp/c3.out"
check "reconnect with Last-Event-ID $i4 gets what it missed on its channel" "$i5:message:five" \
  "$(others "$tmp/c3.out")"

# a filtered subscription
sub=$(q "SELECT sse_subscribe_filter(ARRAY['smoke.#'], '{\"k\":1}')")
q "SELECT sse_publish('smoke.j', '{\"k\":2}'::jsonb), sse_publish('smoke.j', '{\"k\":1}'::jsonb)" >/dev/null
# (the non-matching event has the lower id: were it let through, it would
# be the one seen)
client --last-event-id "$i6" --max-events 2 "$url/events/$sub" >"$tmp/c4.out"
check "subscription stream: only the matching event" '{"k": 1}' \
  "$(others "$tmp/c4.out" | cut -d: -f3- | sed 's/\\"/"/g')"

stop_bridge
dropdb "$db"
[ "$fail" -eq 0 ] && echo "smoke: all checks passed"
exit "$fail"
