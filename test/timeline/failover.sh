#!/usr/bin/env bash
# Failover to an asynchronous standby that missed the last commits, under a
# running bridge.  A primary and a streaming standby (clusters of their
# own); the bridge's --db names both hosts with
# target_session_attrs=read-write, so it follows the promotion by itself.
# 50 events reach both; the standby stops receiving; 50 more commit on the
# primary and reach a connected client; the primary dies and the standby is
# promoted; 60 new events are published there.  The connected stream must
# get one timeline reset naming the last shared position and then exactly
# the new events (never one the standby did not have), a subscription's
# stream too, in the same response; a resume from a lost position must
# start with a timeline reset.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bridge=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge}
tmp=$(mktemp -d /tmp/sse_fo.XXXXXX)
chmod 755 "$tmp"
sb=$tmp/standby
mkdir -p "$sb"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp" "$sb"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
bpid= cpid= spid= pgdir=
cleanup() {
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
  [ -n "$spid" ] && kill "$spid" 2>/dev/null
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null
  [ -f "$sb/data/postmaster.pid" ] && as_pg "$SSE_PGBIN/pg_ctl" -D "$sb/data" -m immediate -w stop >/dev/null 2>&1
  [ -n "$pgdir" ] && scripts/pgcluster.sh stop "$pgdir"
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL - timeline (failover): $*"; [ -f "$tmp/bridge.log" ] && tail -n 20 "$tmp/bridge.log"; exit 1; }
until_ok() { local t=$1; shift; local end=$((SECONDS + t)); until "$@"; do
  [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.1; done; }

unset PGHOST PGPORT PGDATABASE
eval "$(SSE_PG_CONF="wal_level = replica
full_page_writes = on
max_wal_senders = 5
hot_standby = on" scripts/pgcluster.sh start)"
pgdir=$SSE_PGDIR
export PGHOST PGPORT PGUSER PGDATABASE
primary_host=$PGHOST primary_port=$PGPORT
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
qs() { psql -XAtq -h "$sb" -p "$sb_port" -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION sse_bridge" >/dev/null

# the standby: a base backup with its replication settings (-R), its own
# port and socket directory
sb_port=$(scripts/free-port.sh)
as_pg "$SSE_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$sb/data" -X stream -R -c fast \
  || fail "pg_basebackup"
printf "port = %s\nunix_socket_directories = '%s'\n" "$sb_port" "$sb" >>"$sb/data/postgresql.conf"
start_standby() {
  as_pg "$SSE_PGBIN/pg_ctl" -D "$sb/data" -l "$sb/server.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$sb/server.log"; fail "the standby did not start"; }
}
start_standby
is_sb() { [ "$(qs "$1" 2>/dev/null)" = "$2" ]; }
until_ok 30 is_sb "SELECT pg_is_in_recovery()" t || fail "the standby is not in recovery"

cc -std=c11 -Wall -Wextra -Werror -O1 -o "$tmp/sseclient" test/e2e/sseclient.c || fail "build sseclient"
port=$(scripts/free-port.sh)
"$bridge" --db "host=$primary_host,$sb port=$primary_port,$sb_port user=postgres dbname=$PGDATABASE target_session_attrs=read-write" \
  --listen "127.0.0.1:$port" --public-channels 'fo.#' --poll-interval 500 >"$tmp/bridge.log" 2>&1 &
bpid=$!
until_ok 20 curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || fail "bridge not healthy"
url="http://127.0.0.1:$port/events?channel=fo.a"

pub() { psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT sse_publish('fo.a', '$1 ' || i) FROM generate_series($2, $3) i" >/dev/null; }
has() { [ "$(grep -c "\"kind\":\"event\".*$2" "$1" 2>/dev/null || true)" -ge "$3" ]; }

pub kept 1 50
sub=$(q "SELECT sse_subscribe_filter(ARRAY['fo.a'])")   # its marker is id 51
until_ok 30 is_sb "SELECT count(*) FROM sse_bridge.events" 51 || fail "the standby did not receive the first 51 rows"
"$tmp/sseclient" --timeout 120 "$url" >"$tmp/live.jsonl" 2>/dev/null &
cpid=$!
"$tmp/sseclient" --timeout 120 "http://127.0.0.1:$port/events/$sub" >"$tmp/sub.jsonl" 2>/dev/null &
spid=$!
until_ok 20 grep -q '"event":"ready"' "$tmp/live.jsonl" || fail "no ready"
until_ok 20 grep -q '"event":"ready"' "$tmp/sub.jsonl" || fail "no ready on the subscription"

# the standby stops receiving; the primary commits 50 more, streamed live
as_pg "$SSE_PGBIN/pg_ctl" -D "$sb/data" -m fast -w stop >/dev/null
pub lost 51 100
until_ok 20 has "$tmp/live.jsonl" '"lost ' 50 || fail "50 live events before the failover"

# the primary dies; the standby comes back without it and is promoted
as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" -m immediate -w stop >/dev/null
start_standby
as_pg "$SSE_PGBIN/pg_ctl" -D "$sb/data" -w -t 60 promote >/dev/null || fail "promote"
until_ok 30 is_sb "SELECT pg_is_in_recovery()" f || fail "no promotion"
[ "$(qs "SELECT count(*) FROM sse_bridge.events")" = 51 ] || fail "the promoted standby does not hold exactly the first 50 events and the marker"
export PGHOST=$sb PGPORT=$sb_port
pub new 51 110

until_ok 40 has "$tmp/live.jsonl" '"new ' 60 || fail "60 new events on the live stream"
until_ok 40 has "$tmp/sub.jsonl" '"new ' 60 || fail "60 new events on the subscription's stream (in the same response)"
q "SELECT id || ' ' || data FROM sse_bridge.events WHERE channel = 'fo.a' ORDER BY id" >"$tmp/want.txt"
for f in live sub; do
python3 - "$tmp/$f.jsonl" "$tmp/want.txt" "$f" <<'PY' || fail "$f stream"
import json, re, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
want = [l.rstrip('\n').split(' ', 1) for l in open(sys.argv[2])]
num = lambda p: p.split('-')[0]
resets = [i for i, e in enumerate(ev) if e['event'] == 'reset']
assert len(resets) == 1, f'{len(resets)} resets'
r = ev[resets[0]]
assert not any(l.startswith('{"kind":"eof"') for l in open(sys.argv[1])), 'the response ended'
assert json.loads(r['data']) == {'lost_from': 52, 'lost_through': 101, 'timeline': True}, r['data']
ready = [e for e in ev if e['event'] == 'ready'][0]
assert r['id'] == ready['id'] and re.fullmatch(r'51-[0-9a-f]{8}', r['id']), (r['id'], ready['id'])
before = [[num(e['id']), e['data']] for e in ev[:resets[0]] if e['event'] == 'message']
assert [d for _, d in before] == [f'lost {i}' for i in range(51, 101)], before[:3]
got = [[num(e['id']), e['data']] for e in ev[resets[0] + 1:] if e['event'] == 'message']
new = [w for w in want if int(w[0]) > 51]
assert got == new, f'after the reset: {got[:3]}... want {new[:3]}...'
assert len(got) == 60 and not any(d.startswith('lost') for _, d in got)
print(f'{sys.argv[3]} stream: 50 events the standby missed, reset at {r["id"]}, then {len(got)} new events (ids {got[0][0]}..{got[-1][0]}) in the same response')
PY
done

lost=$(python3 -c "import json,sys; print([json.loads(l)['id'] for l in open(sys.argv[1]) if '\"lost 75\"' in l][0])" "$tmp/live.jsonl")
"$tmp/sseclient" --timeout 20 --until-event ready --last-event-id "$lost" "$url" >"$tmp/resume.jsonl" 2>/dev/null \
  || fail "resume from $lost"
python3 - "$tmp/resume.jsonl" "$tmp/want.txt" "$lost" <<'PY' || fail "resume from a lost position"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
want = [l.rstrip('\n').split(' ', 1) for l in open(sys.argv[2])]
assert ev[0]['event'] == 'reset' and json.loads(ev[0]['data']).get('timeline') is True, ev[0]
got = [[e['id'].split('-')[0], e['data']] for e in ev if e['event'] == 'message']
assert got == want, f'{got[:3]} want {want[:3]}'
print(f'resume from {sys.argv[3]}: timeline reset at {ev[0]["id"]}, then the {len(got)} rows of the current log')
PY
echo "ok - timeline (failover): asynchronous standby promoted under a running bridge"
