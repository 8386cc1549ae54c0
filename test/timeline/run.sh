#!/usr/bin/env bash
# Point-in-time recovery under a running bridge: the log goes back to a
# restore point while a client is connected.  A cluster of its own (WAL
# archive on), a base backup, 50 events, a restore point, 50 more with a
# client connected; then the cluster is replaced by the backup recovered to
# the restore point, and 60 new events are published.  The connected
# stream must get one timeline reset naming the last shared position and
# then exactly the new events (never an event of the abandoned timeline);
# a resume from a position of the abandoned timeline must start with a
# timeline reset: an ad hoc stream then replays the retained log, a
# subscription its history from its start.  Then failover.sh (failover to
# an asynchronous standby that missed the last commits).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bridge=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge}
tmp=$(mktemp -d /tmp/sse_tl.XXXXXX)
chmod 755 "$tmp"
arch=$tmp/archive
mkdir -p "$arch"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp" "$arch"
tl_what=PITR
. "$root/test/timeline/lib.sh"
bpid= cpid= pgdir=
cleanup() {
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null
  [ -n "$pgdir" ] && scripts/pgcluster.sh stop "$pgdir"
  rm -rf "$tmp"
}
trap cleanup EXIT

unset PGHOST PGPORT PGDATABASE
eval "$(SSE_PG_CONF="wal_level = replica
archive_mode = on
archive_command = 'cp %p $arch/%f'
full_page_writes = on" scripts/pgcluster.sh start)"
pgdir=$SSE_PGDIR
export PGHOST PGPORT PGUSER PGDATABASE
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION sse_bridge" >/dev/null
as_pg "$SSE_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$tmp/base" -X stream -c fast \
  || fail "pg_basebackup"

build_sseclient
port=$(scripts/free-port.sh)
"$bridge" --db "host=$PGHOST port=$PGPORT user=postgres dbname=$PGDATABASE" \
  --listen "127.0.0.1:$port" --public-channels 'tl.#' --poll-interval 500 >"$tmp/bridge.log" 2>&1 &
bpid=$!
until_ok 20 curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || fail "bridge not healthy"
url="http://127.0.0.1:$port/events?channel=tl.a"

pub() { psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT sse_publish('tl.a', '$1 ' || i) FROM generate_series($2, $3) i" >/dev/null; }
# is SQL VALUE: the query answers VALUE
is() { [ "$(q "$1" 2>/dev/null)" = "$2" ]; }

pub kept 1 50
sub=$(q "SELECT sse_subscribe_filter(ARRAY['tl.a'])")   # its marker is id 51
q "SELECT pg_create_restore_point('tl50')" >/dev/null
"$tmp/sseclient" --timeout 120 "$url" >"$tmp/live.jsonl" 2>/dev/null &
cpid=$!
until_ok 20 grep -q '"event":"ready"' "$tmp/live.jsonl" || fail "no ready"
pub dead 51 100
until_ok 20 has "$tmp/live.jsonl" '"dead ' 50 || fail "50 live events before the recovery"
seg=$(q "SELECT pg_walfile_name(pg_switch_wal())")
until_ok 30 is "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver" t \
  || fail "WAL $seg not archived"

# replace the cluster by the backup recovered to the restore point
as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" -m fast -w stop >/dev/null
mv "$SSE_PGDATA" "$tmp/abandoned"
mv "$tmp/base" "$SSE_PGDATA"
cat >>"$SSE_PGDATA/postgresql.auto.conf" <<CONF
restore_command = 'cp $arch/%f %p'
recovery_target_name = 'tl50'
recovery_target_action = 'promote'
CONF
as_pg touch "$SSE_PGDATA/recovery.signal"
as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" -l "$pgdir/server.log" -w -t 60 start >/dev/null \
  || { tail -n 20 "$pgdir/server.log"; fail "recovered cluster did not start"; }
until_ok 30 is "SELECT NOT pg_is_in_recovery()" t || fail "no promotion"
[ "$(q "SELECT count(*) FROM sse_bridge.events")" = 51 ] || fail "the recovered log does not hold exactly 50 events and the marker"
pub new 51 110

# the live stream: one timeline reset at 50, then exactly the new rows
until_ok 40 has "$tmp/live.jsonl" '"new ' 60 || fail "60 new events on the live stream"
q "SELECT id || ' ' || data FROM sse_bridge.events WHERE channel = 'tl.a' ORDER BY id" >"$tmp/want.txt"
python3 - "$tmp/live.jsonl" "$tmp/want.txt" <<'PY' || fail "live stream"
import json, re, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
want = [l.rstrip('\n').split(' ', 1) for l in open(sys.argv[2])]
num = lambda p: p.split('-')[0]
resets = [i for i, e in enumerate(ev) if e['event'] == 'reset']
assert len(resets) == 1, f'{len(resets)} resets'
r = ev[resets[0]]
assert json.loads(r['data']) == {'lost_from': 52, 'lost_through': 101, 'timeline': True}, r['data']
ready = [e for e in ev if e['event'] == 'ready'][0]
assert r['id'] == ready['id'] and re.fullmatch(r'51-[0-9a-f]{8}', r['id']), (r['id'], ready['id'])
got = [[num(e['id']), e['data']] for e in ev[resets[0] + 1:] if e['event'] == 'message']
new = [w for w in want if int(w[0]) > 51]
assert got == new, f'after the reset: {got[:3]}... want {new[:3]}...'
assert not any(d.startswith('dead') for _, d in got)
print(f'live stream: reset at {r["id"]}, then {len(got)} new events (ids {got[0][0]}..{got[-1][0]})')
PY

# a resume from a position of the abandoned timeline
resume_dead "$url"
"$tmp/sseclient" --timeout 20 --until-event ready --last-event-id "$dead" "http://127.0.0.1:$port/events/$sub" \
  >"$tmp/resume-sub.jsonl" 2>/dev/null || fail "subscription resume from $dead"
python3 - "$tmp/resume-sub.jsonl" "$tmp/want.txt" "$dead" "$tmp/live.jsonl" <<'PY' || fail "subscription resume from a dead position"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
want = [l.rstrip('\n').split(' ', 1) for l in open(sys.argv[2])]
shared = [json.loads(l)['id'] for l in open(sys.argv[4]) if '"event":"ready"' in l][0]
r = ev[0]
assert r['event'] == 'reset' and r['id'] == shared, (r, shared)
assert json.loads(r['data']) == {'lost_from': 52, 'lost_through': int(sys.argv[3].split('-')[0]),
                                 'timeline': True}, r['data']
got = [[e['id'].split('-')[0], e['data']] for e in ev if e['event'] == 'message']
assert got == [w for w in want if int(w[0]) > 51], got[:3]
print(f'subscription resume from {sys.argv[3]}: timeline reset at {r["id"]} (its start), then its {len(got)} events')
PY
echo "ok - timeline (PITR): restore point under a running bridge"
cleanup
trap - EXIT
exec "$root/test/timeline/failover.sh"
