#!/usr/bin/env bash
# test/deb/run.sh, second half, in a network namespace of its own (the
# shipped configuration's 127.0.0.1:8080 and the cluster's port 5432 are
# this test's alone), once the packages are installed:
#   inside.sh WORK SUITE ROOT
set -uo pipefail
work=$1 suite=$2 root=$3
dir=$work/$suite
fail=0 bpid='' lpid='' rpid=''
ok() { echo "  ok: $1"; }
bad() { echo "  FAILED: $1"; fail=1; }
C() { SSE_CHROOT_CACHE=$work "$root/test/versions/chroot.sh" run "$suite" "$@"; }
readme_block() {  # the body of the README's block marked <!-- test: KIND -->
  awk -v k="<!-- test: $1 -->" 'f == 2 && /^```$/ {exit} f == 2 {print} f == 1 && /^```/ {f = 2; next} $0 == k {f = 1}' "$root/README.md"
}
psql_app() { C runuser -u postgres -- psql -qAtX -v ON_ERROR_STOP=1 -d app -c "$1"; }
wait_for() {  # wait_for FILE REGEX [SECONDS]: until a line of FILE matches
  local deadline=$((SECONDS + ${3:-30}))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  [ -n "$bpid" ] && [ -f "$dir/run/sse-bridge.pid" ] && kill -KILL "$(cat "$dir/run/sse-bridge.pid")" 2>/dev/null
  # (/var/run is a link to /run: outside the chroot, $dir/run)
  if [ -f "$dir/run/postgresql/15-main.pid" ]; then
    C pg_ctlcluster 15 main stop -m fast >/dev/null 2>&1 ||
      kill -QUIT "$(head -n1 "$dir/run/postgresql/15-main.pid")" 2>/dev/null
  fi
  [ -n "$lpid" ] && kill "$lpid" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
ip link set lo up || { echo "  FAILED: no loopback in the namespace"; exit 1; }

# ---- the units
unit=/lib/systemd/system/sse-bridge.service
mkdir -p "$dir/tmp/units"
ln -sf /lib/systemd/system/sse-bridge@.service "$dir/tmp/units/sse-bridge@main.service"
if out=$(C systemd-analyze verify --man=no "$unit" /tmp/units/sse-bridge@main.service 2>&1) && [ -z "$out" ]; then
  ok "systemd-analyze verify: sse-bridge.service and sse-bridge@main.service"
else
  bad "systemd-analyze verify: $out"
fi
for u in "$unit" /tmp/units/sse-bridge@main.service; do
  score=$(C systemd-analyze security --offline=yes "$u" 2>&1 | sed -n 's/.*Overall exposure level for \([^:]*\): \([0-9.]*\) \([A-Z]*\).*/\1: \2 \3/p')
  [ -n "$score" ] && ok "systemd-analyze security --offline: $score" || bad "no exposure score for $u"
done

# ---- a cluster (Unix socket only, port 5432) with the extension
t=$SECONDS
C pg_createcluster 15 main -o "listen_addresses=" >/dev/null 2>&1 && C pg_ctlcluster 15 main start \
  || { bad "cluster"; exit 1; }
C runuser -u postgres -- psql -qX -v ON_ERROR_STOP=1 -c 'CREATE DATABASE app' >/dev/null || bad "CREATE DATABASE"
# the README's roles and grants, as typed
readme_block debsql >"$dir/tmp/roles.sql"
[ -s "$dir/tmp/roles.sql" ] || bad "no debsql block in the README"
C runuser -u postgres -- psql -qAtX -v ON_ERROR_STOP=1 -d app -f /tmp/roles.sql >/dev/null \
  && ok "cluster started, the README's CREATE EXTENSION, role and grants: sse_bridge $(psql_app "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'") ($((SECONDS - t)) s)" \
  || { bad "the README's roles and grants"; exit 1; }

# the README's unit block: its check, as the service's user (the default file)
check=$(readme_block debunit | sed -n 's/^\(sse-bridge --check-config\) .*/\1/p')
# shellcheck disable=SC2086
out=$(C setpriv --reuid=sse-bridge --regid=sse-bridge --init-groups env -i PATH=/usr/bin:/bin $check 2>&1); rc=$?
[ -n "$check" ] && [ $rc = 0 ] && grep -q 'configuration file: /etc/sse-bridge/sse-bridge.conf' <<<"$out" \
  && ok "the README's '$check' passes on the shipped file (read by default)" || bad "'$check': exit $rc: $out"
for u in $(readme_block debunit | sed -n 's/^systemctl [a-z]* \(--now \)\{0,1\}\([a-z@-]*\).*/\2/p' | sort -u); do
  [ -f "$dir/lib/systemd/system/$u.service" ] || bad "the README names a unit the package lacks: $u"
done

# ---- the daemon as the unit runs it
exec_start=$(sed -n 's/^ExecStart=//p' "$dir$unit")
exec_reload=$(sed -n 's/^ExecReload=//p' "$dir$unit")
user=$(sed -n 's/^User=//p' "$dir$unit")
group=$(sed -n 's/^Group=//p' "$dir$unit")
wd=$(sed -n 's/^WatchdogSec=\([0-9]*\)s$/\1/p' "$dir$unit")
echo "  ExecStart=$exec_start  User=$user  Group=$group"
python3 - "$dir/run/sse-notify.sock" "$work/notify" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
PY
lpid=$!
deadline=$((SECONDS + 10)); until [ -S "$dir/run/sse-notify.sock" ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
# systemd: a clean environment, the unit's user and group, no capabilities
# shellcheck disable=SC2086
# (and WatchdogSec= as systemd passes it)
C sh -c 'echo $$ >/run/sse-bridge.pid; u=$1 g=$2 w=$3; shift 3; exec setpriv --reuid="$u" --regid="$g" --init-groups \
  --inh-caps=-all --bounding-set=-all env -i PATH=/usr/bin:/bin NOTIFY_SOCKET=/run/sse-notify.sock \
  WATCHDOG_USEC=$((w * 1000000)) WATCHDOG_PID=$$ "$@"' \
  sh "$user" "$group" "${wd:-0}" $exec_start 2>"$work/bridge.log" &
bpid=$!
if wait_for "$work/notify" '(^|\|)READY=1'; then
  ok "READY=1 from the daemon once its database links are up"
else
  bad "no READY=1"; cat "$work/bridge.log"; exit 1
fi
mainpid=$(cat "$dir/run/sse-bridge.pid")
[ "$(stat -c %U "/proc/$mainpid")" = sse-bridge ] || [ "$(awk '/^Uid:/ {print $2}' "/proc/$mainpid/status")" = "$(C id -u sse-bridge)" ] \
  && ok "running as $user (pid $mainpid)" || bad "not running as $user"
[ -n "$wd" ] && { wait_for "$work/notify" '^WATCHDOG=1$' && grep -q "systemd watchdog: pinging every $((wd * 500)) ms" "$work/bridge.log" \
  && ok "WatchdogSec=${wd}s: WATCHDOG=1 pings every $((wd * 500)) ms" || bad "no watchdog ping"; }

url=http://127.0.0.1:8080
sub=$(psql_app "SELECT sse_subscribe_filter(ARRAY['orders.#'])")
curl -sN "$url/events/$sub" >"$work/stream" 2>/dev/null &
rpid=$!
wait_for "$work/stream" '^event: ready' || bad "the subscription's stream did not open"
psql_app "SELECT sse_publish('orders.1', 'first', 'order')" >/dev/null
wait_for "$work/stream" '^data: first' && ok "a stream with the shipped configuration: the subscription's event arrived" \
  || bad "no event on the stream: $(cat "$work/stream")"
code() { curl -s -o /dev/null -m 1 -w '%{http_code}' "$1"; }
[ "$(code "$url/events?channel=news.%23")" = 403 ] && ok "ad hoc news.# refused (403): the shipped file has no public channels" \
  || bad "news.# before the reload: $(code "$url/events?channel=news.%23")"

# ---- reload, as ExecReload says
sed -i 's/^#public-channels =$/public-channels = news.#/' "$dir/etc/sse-bridge/sse-bridge.conf"
grep -q '^public-channels = news.#$' "$dir/etc/sse-bridge/sse-bridge.conf" || bad "could not edit the configuration"
C sh -c "MAINPID=$mainpid; $exec_reload" || bad "ExecReload failed"
wait_for "$work/bridge.log" 'reload done' || bad "no reload in the log"
[ "$(code "$url/events?channel=news.%23")" = 200 ] && ok "after the reload news.# is public (200)" \
  || bad "news.# after the reload: $(code "$url/events?channel=news.%23")"
psql_app "SELECT sse_publish('orders.2', 'second', 'order')" >/dev/null
wait_for "$work/stream" '^data: second' && kill -0 "$rpid" 2>/dev/null \
  && ok "the stream opened before the reload is still open and carries a later event" || bad "the stream did not survive the reload"
sed -n '/RELOADING=1/,$p' "$work/notify" | tail -n +2 | grep -q 'READY=1' && ok "RELOADING=1, then READY=1" || bad "notify: $(cat "$work/notify")"

# ---- a wrong line
echo 'max-clients = many' >>"$dir/etc/sse-bridge/sse-bridge.conf"
n=$(wc -l <"$dir/etc/sse-bridge/sse-bridge.conf")
C sh -c "MAINPID=$mainpid; $exec_reload"
wait_for "$work/bridge.log" 'reload refused' \
  && grep -q "reload refused, the running settings stay: /etc/sse-bridge/sse-bridge.conf:$n: invalid value \"many\" for max-clients" "$work/bridge.log" \
  && kill -0 "$rpid" 2>/dev/null && ok "a reload with a wrong line is refused naming sse-bridge.conf:$n; the stream stays" \
  || bad "refused reload: $(grep -i reload "$work/bridge.log")"
# the same file at start: an instance of sse-bridge@.service
cp "$dir/etc/sse-bridge/sse-bridge.conf" "$dir/etc/sse-bridge/broken.conf"
C chgrp sse-bridge /etc/sse-bridge/broken.conf
inst=$(sed -n 's/^ExecStart=//p' "$dir/lib/systemd/system/sse-bridge@.service" | sed 's/%i/broken/g')
# shellcheck disable=SC2086
out=$(C setpriv --reuid="$user" --regid="$group" --init-groups env -i PATH=/usr/bin:/bin $inst 2>&1); rc=$?
[ $rc = 2 ] && [ "$out" = "sse-bridge: /etc/sse-bridge/broken.conf:$n: invalid value \"many\" for max-clients" ] \
  && ok "sse-bridge@broken: exit 2, \"$out\"" || bad "instance with a wrong line: exit $rc: $out"
# shellcheck disable=SC2086
out=$(C setpriv --reuid="$user" --regid="$group" --init-groups env -i PATH=/usr/bin:/bin ${exec_start} --check-config 2>&1); rc=$?
[ $rc = 2 ] && grep -q "sse-bridge.conf:$n:" <<<"$out" && ok "--check-config on it: exit 2" || bad "--check-config: exit $rc: $out"

# ---- stop
C kill -TERM "$mainpid"
wait "$bpid"; rc=$?; bpid=
[ $rc = 0 ] && grep -q 'STOPPING=1' "$work/notify" && ok "SIGTERM: STOPPING=1, exit 0" || bad "stop: exit $rc"
[ $fail = 0 ] || { echo "--- bridge log"; cat "$work/bridge.log"; }
exit $fail
