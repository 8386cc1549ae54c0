#!/usr/bin/env bash
# Bridges on PostgreSQL's own replicas, as a topology: a primary, two
# streaming hot standbys (the second with recovery_min_apply_delay, so lag
# is real), and a bridge on each server (docs/scaling.md).
#
#  1. every bridge becomes healthy: the ones on standbys never write there
#     (no LISTEN, touch, expire or prune: their logs hold no refusal);
#  2. lag is not a fork: a subscription made on the primary and opened at
#     once through the delayed standby is served; a client that resumes on
#     the delayed standby from a position it has not replayed waits for it
#     and goes on with no reset, while a resume from a row that is there
#     with another fingerprint gets its timeline reset at once; a
#     subscription read only through a standby bridge (with --primary-db)
#     does not expire;
#  3. reconnecting clients move between the bridges at random with
#     Last-Event-ID while publishers and subscription changes run on the
#     primary; then the primary is stopped, the first standby promoted (its
#     bridge LISTENs without a restart; the primary's bridge finds it through
#     a multi-host conninfo) and the second standby follows it; publishing
#     goes on there.  Verdict, every client against the log row by row:
#     lost = duplicated = reordered = 0, no reset.
# The backstop poll is set to 10 minutes, so every delivery comes from
# NOTIFY or the replay watch.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bridge=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge}
tmp=$(mktemp -d /tmp/sse_topo.XXXXXX)
chmod 755 "$tmp"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp"
tl_what=topology
. "$root/test/timeline/lib.sh"
fail() { echo "FAIL - topology: $*"; for f in "$tmp"/b*.log; do echo "--- $f"; tail -n 15 "$f"; done; exit 1; }
pids=() pgdir=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for s in s1 s2; do
    [ -f "$tmp/$s/postmaster.pid" ] && as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/$s" -m immediate -w stop >/dev/null 2>&1
  done
  [ -n "$pgdir" ] && scripts/pgcluster.sh stop "$pgdir"
  rm -rf "$tmp"
}
trap cleanup EXIT

unset PGHOST PGPORT PGDATABASE
eval "$(SSE_PG_CONF="wal_level = replica
hot_standby = on" scripts/pgcluster.sh start)"
pgdir=$SSE_PGDIR
p0=$PGPORT
export PGUSER PGDATABASE
q() { psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -c "$2"; }
q "$p0" "CREATE EXTENSION sse_bridge" >/dev/null

# two standbys from base backups (-R: primary_conninfo), each on its own port
ports=("$p0")
for s in s1 s2; do
  as_pg "$SSE_PGBIN/pg_basebackup" -h 127.0.0.1 -p "$p0" -U postgres -D "$tmp/$s" -X stream -c fast -R \
    || fail "pg_basebackup $s"
  p=$(scripts/free-port.sh)
  while [[ " ${ports[*]} " == *" $p "* ]]; do p=$(scripts/free-port.sh); done
  ports+=("$p")
  printf "port = %s\nunix_socket_directories = '%s'\n" "$p" "$tmp" >>"$tmp/$s/postgresql.conf"
done
p1=${ports[1]} p2=${ports[2]}
echo "recovery_min_apply_delay = '1500ms'" >>"$tmp/s2/postgresql.conf"
for s in s1 s2; do
  as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/$s" -l "$tmp/$s.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$tmp/$s.log"; fail "$s did not start"; }
done

# a bridge on each server: the primary's finds the new primary by itself
# after a failover; the delayed standby's names it with prefer-standby
# first, and touches through --primary-db
hosts() { local h=127.0.0.1; for _ in "$@"; do printf '%s,' "$h"; done | sed 's/,$//'; }
conn() { local IFS=,; echo "host=$(hosts "$@") port=$* user=postgres dbname=$PGDATABASE connect_timeout=2"; }
dbs=("$(conn "$p0" "$p1") target_session_attrs=read-write"
     "$(conn "$p1")"
     "$(conn "$p2" "$p0") target_session_attrs=prefer-standby")
bports=() bpids=()
for i in 0 1 2; do
  bp=$(scripts/free-port.sh)
  while [[ " ${bports[*]} " == *" $bp "* ]]; do bp=$(scripts/free-port.sh); done
  bports+=("$bp")
  extra=()
  # the delayed standby's bridge is a supervisor with two workers: its
  # workers' opens are held for replay and their touches go to --primary-db
  [ "$i" = 2 ] && extra=(--workers 2 --primary-db "$(conn "$p0" "$p1") target_session_attrs=read-write")
  "$bridge" --db "${dbs[$i]}" --listen "127.0.0.1:$bp" --public-channels 'topo.#' \
    --poll-interval 600000 --touch-interval 1 --lag-wait 10000 "${extra[@]}" >"$tmp/b$i.log" 2>&1 &
  pids+=($!); bpids+=($!)
done
b0=http://127.0.0.1:${bports[0]} b1=http://127.0.0.1:${bports[1]} b2=http://127.0.0.1:${bports[2]}
for b in "$b0" "$b1" "$b2"; do
  until_ok 30 curl -sf -o /dev/null "$b/healthz" || fail "bridge $b not healthy"
done
echo "1. a bridge on the primary and on each hot standby is healthy ($SECONDS s)"
build_sseclient
SC() { "$tmp/sseclient" "$@"; }

# metric NAME of bridge URL
metric() { curl -sf "$1/metrics" | awk -v n="$2" '$1 == n {print $2}'; }
# the delayed standby's replay is paused around each lag check, so it is
# behind for certain, and resumed once its bridge holds the open
pause2() { q "$p2" "SELECT pg_wal_replay_pause()" >/dev/null; }
resume2() { q "$p2" "SELECT pg_wal_replay_resume()" >/dev/null; }
held_more() { [ "$(metric "$b2" sse_bridge_lag_holds_total)" -gt "$1" ]; }

# 2a. a subscription made on the primary, opened at once on the delayed standby
pause2
sub0=$(q "$p0" "SELECT sse_subscribe_filter(ARRAY['topo.a'])")
h=$(metric "$b2" sse_bridge_lag_holds_total)
SC --timeout 30 --until-event ready "$b2/events/$sub0" >"$tmp/fresh.jsonl" 2>/dev/null &
fpid=$!; pids+=($fpid)
until_ok 20 held_more "$h" || { resume2; fail "the lagging standby's bridge did not hold the open of a new subscription: $(head -c 300 "$tmp/fresh.jsonl")"; }
resume2
wait "$fpid" || true
grep -q '"event":"ready"' "$tmp/fresh.jsonl" \
  || fail "a fresh subscription opened through the lagging standby was not served: $(head -c 300 "$tmp/fresh.jsonl")"
echo "2. a subscription made on the primary and opened at once through the lagging standby is served"

# 2b. resume on the delayed standby from a position only the primary has
SC --timeout 60 "$b0/events?channel=topo.a" >"$tmp/p0.jsonl" 2>/dev/null &
pids+=($!)
until_ok 20 grep -q '"event":"ready"' "$tmp/p0.jsonl" || fail "no ready on the primary's bridge"
pause2
q "$p0" "SELECT sse_publish('topo.a', 'lag 1')" >/dev/null
until_ok 20 has "$tmp/p0.jsonl" '"lag 1"' 1 || { resume2; fail "no live event on the primary's bridge"; }
pos=$(python3 -c "import json,sys; print([json.loads(l)['id'] for l in open(sys.argv[1]) if '\"lag 1\"' in l][0])" "$tmp/p0.jsonl")
h=$(metric "$b2" sse_bridge_lag_holds_total)
SC --timeout 30 --last-event-id "$pos" "$b2/events?channel=topo.a" >"$tmp/lag.jsonl" 2>/dev/null &
pids+=($!)
until_ok 20 held_more "$h" || { resume2; fail "the lagging standby's bridge did not hold a resume from $pos: $(head -c 300 "$tmp/lag.jsonl")"; }
resume2
until_ok 20 grep -q '"event":"ready"' "$tmp/lag.jsonl" || fail "resume on the lagging standby: no ready: $(head -c 300 "$tmp/lag.jsonl")"
q "$p0" "SELECT sse_publish('topo.a', 'lag 2')" >/dev/null
until_ok 20 has "$tmp/lag.jsonl" '"lag 2"' 1 || fail "resume on the lagging standby: the next event did not come"
python3 - "$tmp/lag.jsonl" "$pos" <<'PY' || fail "resume on the lagging standby"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
kinds = [(e['event'], e['data']) for e in ev]
assert not any(k == 'reset' for k, _ in kinds), f'a reset: {kinds}'
assert [d for k, d in kinds if k == 'message'] == ['lag 2'], kinds
assert ev[0]['event'] == 'ready' and ev[0]['id'] == sys.argv[2], (ev[0], sys.argv[2])
print(f'2. a resume from {sys.argv[2]} on the lagging standby waited for replay: ready at that position, no reset, then the next event')
PY

# 2b'. a real fork is still one on a standby: the row at the resume point is
# there with another fingerprint, so a timeline reset comes at once
id=${pos%%-*} fp=${pos#*-}
bad=deadbeef; [ "$fp" = "$bad" ] && bad=deadbee0
h=$(metric "$b2" sse_bridge_lag_holds_total)
SC --timeout 20 --until-event ready --last-event-id "$id-$bad" "$b2/events?channel=topo.a" >"$tmp/fork.jsonl" 2>/dev/null || true
python3 - "$tmp/fork.jsonl" "$id" <<'PY' || fail "a resume from a changed row on the standby"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
assert ev and ev[0]['event'] == 'reset' and json.loads(ev[0]['data']).get('timeline') is True, ev[:2]
print(f'2. a resume from {sys.argv[2]} with another fingerprint on the standby: a timeline reset, as on the primary')
PY
[ "$(metric "$b2" sse_bridge_lag_holds_total)" = "$h" ] || fail "a fork was held as lag"

# 2c. a subscription read only through a standby's bridge does not expire:
# its ttl is 3 s, the primary's bridge runs sse_expire every second, and
# the delayed standby's bridge touches it through --primary-db
subt=$(q "$p0" "SELECT sse_subscribe_filter(ARRAY['topo.t'], '{}', '3 seconds')")
SC --timeout 120 "$b2/events/$subt" >"$tmp/ttl.jsonl" 2>/dev/null &
pids+=($!)
until_ok 30 grep -q '"event":"ready"' "$tmp/ttl.jsonl" || fail "no ready for the short-lived subscription"

# 3. the torture: clients move between the bridges; publishers and
# subscription changes on the primary
suba=$(q "$p0" "SELECT sse_subscribe_filter(ARRAY['topo.a'])")
subb=$(q "$p0" "SELECT sse_subscribe_filter(ARRAY['topo.a', 'topo.b'])")
printf '%s\n' "$b0" "$b1" "$b2" >"$tmp/bridges"
streams=("/events?channel=topo.a" "/events?channel=topo.a" "/events?channel=topo.%23" "/events?channel=topo.%23"
         "/events/$suba" "/events/$suba" "/events/$subb" "/events/$subb")
node test/topology/clients.mjs "$tmp/clients.json" "$tmp/bridges" "${streams[@]}" 2>"$tmp/clients.err" &
clients=$!; pids+=($clients)
# publish PHASE ROUNDS: small transactions every 30 ms on both channels,
# a subscription change half way (sql: the statement for it)
publish() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
phase, rounds, change = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for r in range(rounds):
    print("BEGIN;")
    for k in range(r % 4 + 1):
        print(f"SELECT sse_publish('topo.a', '{phase} a {r}.{k}');")
    if r % 3 == 0:
        print(f"SELECT sse_publish('topo.b', '{phase} b {r}');")
    print("COMMIT;")
    if r % 25 == 0:
        print(f"SELECT sse_publish('topo.t', '{phase} t {r}');")
    if r == rounds // 2:
        print(change + ";")
    print("SELECT pg_sleep(0.03);")
PY
}
publish one 200 "SELECT sse_subscription_add('$suba', ARRAY['topo.b'])" \
  | psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p0" >/dev/null || fail "publishing on the primary"
kill -0 "$clients" 2>/dev/null || fail "the clients stopped: $(tail -c 500 "$tmp/clients.err")"

SC --timeout 20 --until-event ready "$b1/events/$subt" >"$tmp/ttl-open.jsonl" 2>/dev/null || true
grep -q '"event":"ready"' "$tmp/ttl-open.jsonl" \
  || fail "a subscription read only through a standby's bridge expired: $(head -c 300 "$tmp/ttl-open.jsonl")"
echo "2. a subscription (ttl 3 s) read only through a standby's bridge is alive after $SECONDS s: touched through --primary-db"

# 4. failover: the primary stops cleanly (both standbys receive all its
# WAL), the first standby is promoted, the second follows it
# a client that stays on the first standby's bridge through the promotion
SC --timeout 120 "$b1/events?channel=topo.a" >"$tmp/stay.jsonl" 2>/dev/null &
pids+=($!)
until_ok 20 grep -q '"event":"ready"' "$tmp/stay.jsonl" || fail "no ready on the first standby's bridge"
lsn=$(q "$p0" "SELECT pg_current_wal_lsn()")
until_ok 30 [ "$(q "$p1" "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] || fail "s1 did not catch up"
as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" -m fast -w stop >/dev/null || fail "stopping the primary"
as_pg "$SSE_PGBIN/pg_ctl" -D "$tmp/s1" -w promote >/dev/null || fail "promote s1"
q "$p2" "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=$p1 user=postgres'" >/dev/null
q "$p2" "SELECT pg_reload_conf()" >/dev/null
promoted() { [ "$(metric "$b1" sse_bridge_promotions_total)" = 1 ] && [ "$(metric "$b1" sse_bridge_standby)" = 0 ]; }
until_ok 30 promoted || fail "the promoted standby's bridge did not notice"
grep -q "listening for notifications on the promoted server" "$tmp/b1.log" || fail "no LISTEN after the promotion"
until_ok 30 grep -q "touches, expiry and pruning run here now" "$tmp/b1.log" || fail "no housekeeping after the promotion"
echo "4. the first standby was promoted: its bridge LISTENs and keeps house without a restart ($SECONDS s)"

publish two 120 "SELECT sse_subscription_remove('$subb', ARRAY['topo.b'])" \
  | psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p1" >/dev/null || fail "publishing on the new primary"
q "$p1" "SELECT sse_publish('topo.a', 'end')" >/dev/null
until_ok 30 has "$tmp/stay.jsonl" '"end"' 1 \
  || fail "a client that stayed on the promoted standby's bridge did not get the new primary's events live"
end=$((SECONDS + 60))
while kill -0 "$clients" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
kill -TERM "$clients" 2>/dev/null || true
wait "$clients" 2>/dev/null || true
[ -s "$tmp/clients.json" ] || fail "no client report: $(tail -c 500 "$tmp/clients.err")"

q "$p1" "COPY (SELECT id, channel, data FROM sse_bridge.events ORDER BY id) TO STDOUT" >"$tmp/log.tsv"
q "$p1" "COPY (SELECT id, sid, start_id FROM sse_bridge.subscriptions) TO STDOUT" >"$tmp/subs.tsv"
q "$p1" "COPY (SELECT sid, from_id, channels, state FROM sse_bridge.subscription_versions) TO STDOUT" >"$tmp/versions.tsv"
python3 test/topology/verdict.py "$tmp/clients.json" "$tmp/log.tsv" "$tmp/subs.tsv" "$tmp/versions.tsv" \
  || fail "the clients do not agree with the log"
# the bridges shut down cleanly (under SSE_E2E_BRIDGE=an ASan build: no
# report either), and none ever tried to write on a standby
for i in 0 1 2; do
  kill -TERM "${bpids[$i]}" 2>/dev/null || true
  wait "${bpids[$i]}" 2>/dev/null || fail "bridge $i did not exit cleanly"
  if grep -Ei "during recovery|read-only transaction" "$tmp/b$i.log"; then fail "bridge $i tried to write on a standby"; fi
  if grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/b$i.log"; then fail "bridge $i: sanitizer report"; fi
done
echo "ok - topology: 3 bridges on a primary and 2 standbys, clients moving between them, a failover"
