#!/usr/bin/env bash
# The bridge as a service, against the test cluster (PG* environment): the
# configuration file, a reload (SIGHUP) that keeps an open stream and
# applies changed settings (public channels, CORS origins) while reporting a
# setting that cannot change (listen), a refused reload (a wrong line), and
# the sd_notify protocol on a NOTIFY_SOCKET this script reads: READY=1
# once the database links are up, RELOADING=1 then READY=1 around a
# reload, WATCHDOG=1 pings, STOPPING=1 at shutdown.
#   service.sh BRIDGE [WORKERS]   (run by test/bridge/run.sh when a cluster is
#   exported; WORKERS 2: a supervisor, which alone talks to the service
#   manager and passes SIGHUP on, and two workers that each reload)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bridge=${1:?usage: service.sh BRIDGE [WORKERS]}
workers=${2:-1}
tmp=$(mktemp -d /tmp/sse_service.XXXXXX)
db=sse_bridge_service_$$
bpid='' lpid='' rpid=''
fail=0
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  [ -n "$bpid" ] && kill -KILL "$bpid" 2>/dev/null
  [ -n "$lpid" ] && kill "$lpid" 2>/dev/null
  wait 2>/dev/null
  dropdb --if-exists "$db" 2>/dev/null
  [ $fail = 0 ] && rm -rf "$tmp"
}
trap cleanup EXIT
ok() { echo "ok: service (workers $workers): $1"; }
bad() { echo "FAIL: service (workers $workers): $1"; fail=1; }
# wait_count FILE REGEX N: until N lines of FILE match (each worker logs its reload)
wait_count() {
  local deadline=$((SECONDS + 20))
  until [ "$(grep -cE "$2" "$1" 2>/dev/null)" -ge "$3" ]; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.05
  done
}
# wait_for FILE REGEX [SECONDS]: until a line of FILE matches (a deadline, not a pause)
wait_for() {
  local deadline=$((SECONDS + ${3:-20}))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.05
  done
}

createdb "$db" && psql -qX -d "$db" -c 'CREATE EXTENSION sse_bridge' >/dev/null || { echo "FAIL: service: cannot create $db"; exit 1; }

# the service manager's side of sd_notify: one datagram a line
python3 - "$tmp/notify.sock" "$tmp/notify" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
PY
lpid=$!
deadline=$((SECONDS + 10))
until [ -S "$tmp/notify.sock" ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done

read -r port port2 < <("$root/scripts/free-port.sh" 2 | paste -sd' ')
conf=$tmp/sse-bridge.conf
cat >"$conf" <<CONF
# the bridge of test/bridge/service.sh
db = dbname=$db
listen = 127.0.0.1:$port
public-channels = a.#
cors-origin = http://a.example
CONF
(export NOTIFY_SOCKET=$tmp/notify.sock WATCHDOG_USEC=400000 WATCHDOG_PID=$BASHPID SSE_BRIDGE_WORKERS=$workers
 exec "$bridge" --config "$conf" 2>"$tmp/bridge.log") &
bpid=$!
url=http://127.0.0.1:$port
if wait_for "$tmp/notify" '(^|\|)READY=1' && grep -q 'both database links are up' "$tmp/notify"; then
  ok "READY=1 once both database links are up"
else
  bad "no READY=1: $(cat "$tmp/notify")"; cat "$tmp/bridge.log"; exit 1
fi
code() { curl -s -o /dev/null -m 1 -w '%{http_code}' "$@"; }
acao() { curl -s -o /dev/null -m 5 -D - -H "Origin: $1" "$url/events?channel=a.x&last-event-id=0" --max-time 1 | tr -d '\r' | sed -n 's/^Access-Control-Allow-Origin: //Ip'; }

# an open stream on a.#, read until SIGTERM
curl -sN "$url/events?channel=a.%23" >"$tmp/stream" 2>/dev/null &
rpid=$!
wait_for "$tmp/stream" '^event: ready' || bad "the stream did not open"
[ "$(code "$url/events?channel=b.x")" = 403 ] && ok "before the reload b.x is not public (403)" || bad "b.x before reload: $(code "$url/events?channel=b.x")"
[ "$(acao http://a.example)" = http://a.example ] && ok "before the reload http://a.example may read" || bad "CORS before reload: '$(acao http://a.example)'"

cat >"$conf" <<CONF
# the bridge of test/bridge/service.sh, changed
db = dbname=$db
listen = 127.0.0.1:$port2
public-channels = a.#, b.#
cors-origin = http://b.example
log-level = debug
CONF
kill -HUP "$bpid"
wait_count "$tmp/bridge.log" 'reload done' "$workers" || bad "no reload in each of the $workers process(es): $(cat "$tmp/bridge.log")"
grep -q 'reload: listen cannot change while running' "$tmp/bridge.log" && ok "a changed listen is reported and kept" || bad "listen change not reported"
[ "$(code "$url/events?channel=b.x")" = 200 ] && ok "after the reload b.x is public (200)" || bad "b.x after reload: $(code "$url/events?channel=b.x")"
[ "$(acao http://b.example)" = http://b.example ] && [ -z "$(acao http://a.example)" ] \
  && ok "after the reload only http://b.example may read (CORS)" || bad "CORS after reload: b '$(acao http://b.example)' a '$(acao http://a.example)'"
[ "$(code "http://127.0.0.1:$port2/healthz")" = 000 ] && ok "still listening on the first port only" || bad "listening on the new port"
if sed -n '/RELOADING=1/,$p' "$tmp/notify" | tail -n +2 | grep -q 'READY=1'; then
  ok "RELOADING=1 then READY=1 around the reload"
else
  bad "notify around reload: $(cat "$tmp/notify")"
fi
grep -q 'reload: log-level changed' "$tmp/bridge.log" && ok "the log level changed" || bad "log level not changed"
psql -qX -d "$db" -c "SELECT sse_publish('a.after', 'kept', 'note')" >/dev/null
wait_for "$tmp/stream" '^data: kept' && kill -0 "$rpid" 2>/dev/null && ok "the stream opened before the reload carries an event published after it" \
  || bad "the stream did not survive the reload: $(cat "$tmp/stream")"

# a wrong line: refused with FILE:LINE, the running settings stay
printf 'public-channels = c.#\nbogus = 1\n' >"$conf"
kill -HUP "$bpid"
wait_count "$tmp/bridge.log" 'reload refused' "$workers" || bad "no refusal logged by each process"
grep -q "reload refused, the running settings stay: $conf:2: unknown setting \"bogus\"" "$tmp/bridge.log" \
  && ok "a wrong line refuses the reload, naming $conf:2" || bad "refusal: $(grep refused "$tmp/bridge.log")"
[ "$(code "$url/events?channel=b.x")" = 200 ] && [ "$(code "$url/events?channel=c.x")" = 403 ] \
  && ok "after a refused reload the settings are those of the last good one" || bad "settings after a refused reload"

wait_for "$tmp/notify" '^WATCHDOG=1$' && ok "WATCHDOG=1 pings ($(grep -c '^WATCHDOG=1$' "$tmp/notify") so far)" || bad "no watchdog ping"
kill -TERM "$bpid"; wait "$bpid"; rc=$?; bpid=
[ $rc = 0 ] && grep -q 'STOPPING=1' "$tmp/notify" && ok "STOPPING=1 and exit 0 on SIGTERM" || bad "stop: exit $rc, $(tail -2 "$tmp/notify")"
[ $fail = 0 ] || { echo "--- bridge log"; cat "$tmp/bridge.log"; echo "--- notify"; cat "$tmp/notify"; }
exit $fail
