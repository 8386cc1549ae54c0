#!/usr/bin/env bash
# Failover to an asynchronous standby that missed the last commits, under a
# running bridge whose --db lists both servers (multi-host conninfo with
# target_session_attrs=read-write), so it finds the new primary by itself.
# A primary and a streaming standby; 50 events reach both; the standby
# stops receiving (it is stopped); 50 more events on the primary only, with
# a client connected; the primary is stopped (-m immediate), the standby
# started and promoted; 60 new events.  The connected stream must get one
# timeline reset naming the last shared position and then exactly the new
# events, never an event the standby never had; a subscription's stream
# too, in the same response (it re-reads its definition in place); a
# resume from a lost position starts with a timeline reset.  Run by
# test/timeline/run.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bridge=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge}
tmp=$(mktemp -d /tmp/sse_fo.XXXXXX)
chmod 755 "$tmp"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp"
tl_what=failover
. "$root/test/timeline/lib.sh"
bpid= cpid= spid= pgdir=
cleanup() {
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
  [ -n "$spid" ] && kill "$spid" 2>/dev/null
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null
  if [ -f "$tmp/standby/postmaster.pid" ]; then
    as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/standby" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [ -n "$pgdir" ] && scripts/pgcluster.sh stop "$pgdir"
  rm -rf "$tmp"
}
trap cleanup EXIT

unset PGHOST PGPORT PGDATABASE
eval "$(SSE_PG_CONF="wal_level = replica
hot_standby = on" scripts/pgcluster.sh start)"
pgdir=$SSE_PGDIR
p1=$PGPORT
export PGHOST PGPORT PGUSER PGDATABASE
q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION sse_bridge" >/dev/null

# the standby: a base backup with primary_conninfo (-R), its own port and socket
as_pg "$SSE_PGBIN/pg_basebackup" -h "$PGHOST" -p "$p1" -U postgres -D "$tmp/standby" -X stream -c fast -R \
  || fail "pg_basebackup"
p2=$(scripts/free-port.sh)
while [ "$p2" = "$p1" ]; do p2=$(scripts/free-port.sh); done
cat >>"$tmp/standby/postgresql.conf" <<CONF
port = $p2
unix_socket_directories = '$tmp'
CONF
start_standby() {
  as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/standby" -l "$tmp/standby.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$tmp/standby.log"; fail "standby did not start"; }
}
start_standby
# q1/q2: the primary / the standby
q1() { q -h "$PGHOST" -p "$p1" -c "$1"; }
q2() { q -h "$tmp" -p "$p2" -c "$1"; }
is2() { [ "$(q2 "$1" 2>/dev/null)" = "$2" ]; }

build_sseclient
port=$(scripts/free-port.sh)
"$bridge" --db "host=127.0.0.1,127.0.0.1 port=$p1,$p2 user=postgres dbname=$PGDATABASE target_session_attrs=read-write connect_timeout=2" \
  --listen "127.0.0.1:$port" --public-channels 'fo.#' --poll-interval 500 >"$tmp/bridge.log" 2>&1 &
bpid=$!
until_ok 20 curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || fail "bridge not healthy"
url="http://127.0.0.1:$port/events?channel=fo.a"

pub() { q1 "SELECT sse_publish('fo.a', '$1 ' || i) FROM generate_series($2, $3) i" >/dev/null; }
pub2() { q2 "SELECT sse_publish('fo.a', '$1 ' || i) FROM generate_series($2, $3) i" >/dev/null; }

pub kept 1 50
sub=$(q1 "SELECT sse_subscribe_filter(ARRAY['fo.a'])")   # its marker is id 51
lsn=$(q1 "SELECT pg_current_wal_lsn()")
until_ok 30 is2 "SELECT pg_last_wal_replay_lsn() >= '$lsn'" t || fail "the standby did not replay the first 50 events"
"$tmp/sseclient" --timeout 120 --reconnect 100 "$url" >"$tmp/live.jsonl" 2>/dev/null &
cpid=$!
# the subscription's stream may not reconnect: it must go on in one response
"$tmp/sseclient" --timeout 120 "http://127.0.0.1:$port/events/$sub" >"$tmp/sub.jsonl" 2>/dev/null &
spid=$!
until_ok 20 grep -q '"event":"ready"' "$tmp/live.jsonl" || fail "no ready"
until_ok 20 grep -q '"event":"ready"' "$tmp/sub.jsonl" || fail "no ready on the subscription's stream"

# the standby stops receiving; the primary goes on alone
as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/standby" -m fast -w stop >/dev/null
pub dead 51 100
until_ok 20 has "$tmp/live.jsonl" '"dead ' 50 || fail "50 live events before the failover"
until_ok 20 has "$tmp/sub.jsonl" '"dead ' 50 || fail "50 events on the subscription's stream before the failover"

# the primary is lost; the standby (which never got events 51..100) takes over
as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" -m immediate -w stop >/dev/null
start_standby
as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/standby" -w promote >/dev/null || fail "promote"
until_ok 30 is2 "SELECT NOT pg_is_in_recovery()" t || fail "no promotion"
[ "$(q2 "SELECT count(*) FROM sse_bridge.events")" = 51 ] \
  || fail "the promoted standby does not hold exactly the first 50 events and the marker"
pub2 new 51 110

until_ok 40 has "$tmp/live.jsonl" '"new ' 60 || fail "60 new events on the live stream"
until_ok 40 has "$tmp/sub.jsonl" '"new ' 60 || fail "60 new events on the subscription's stream, in the same response"
q2 "SELECT id || ' ' || data FROM sse_bridge.events WHERE channel = 'fo.a' ORDER BY id" >"$tmp/want.txt"
for f in live sub; do
python3 - "$tmp/$f.jsonl" "$tmp/want.txt" "$f" <<'PY' || fail "$f stream"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ev = [l for l in lines if l['kind'] == 'event']
want = [l.rstrip('\n').split(' ', 1) for l in open(sys.argv[2])]
num = lambda p: int(p.split('-')[0])
resets = [i for i, e in enumerate(ev) if e['event'] == 'reset']
assert len(resets) == 1, f'{len(resets)} resets'
r = ev[resets[0]]
assert json.loads(r['data']) == {'lost_from': 52, 'lost_through': 101, 'timeline': True}, r['data']
ready = [e for e in ev if e['event'] == 'ready'][0]
assert r['id'] == ready['id'] and re.fullmatch(r'51-[0-9a-f]{8}', r['id']), (r['id'], ready['id'])
before = [e['data'] for e in ev[:resets[0]] if e['event'] == 'message']
assert before == [f'dead {i}' for i in range(51, 101)], before[:3]
got = [[str(num(e['id'])), e['data']] for e in ev[resets[0] + 1:] if e['event'] == 'message']
new = [w for w in want if int(w[0]) > 51]
assert got == new and len(got) == 60, f'after the reset: {got[:3]}... want {new[:3]}...'
if sys.argv[3] == 'sub':
    assert sum(l['kind'] == 'connect' for l in lines) == 1, 'the subscription stream reconnected'
    assert not any(l['kind'] == 'eof' for l in lines), 'the subscription stream ended'
print(f'{sys.argv[3]} stream: 50 events the standby missed, a timeline reset at {r["id"]}, '
      f'then the {len(got)} events of the new primary (ids {got[0][0]}..{got[-1][0]})')
PY
done

# a resume from a position of the abandoned timeline
resume_dead "$url"
echo "ok - timeline (failover): an asynchronous standby that missed commits takes over under a running bridge"
