#!/usr/bin/env bash
# Torture test of the delivery promise: every matching event is delivered
# once, in id order, across reconnects, bridge crashes, database restarts,
# and timeline changes (a restored dump, a point-in-time recovery).
#
#   test/torture/torture.sh [DURATION] [--self-check] [--keep]
#
# DURATION is the publishing time (seconds, or 90s / 10m / 1h; default 60).
# It always starts a throwaway cluster of its own (with WAL archiving, for
# the pitr fault); without the environment of scripts/test.sh (PGHOST,
# SSE_PGDATA, SSE_PGBIN) it first builds and installs the tree.
#
# What runs, all on loopback:
#   - publisher (C, libpq): 16 threads of transactions of 1-50 events with
#     commit delays, rollbacks and savepoint rollbacks; see publisher.c;
#   - two bridges on the same database (B with a small --client-queue and
#     replay cache); every subscriber picks one at random on each connection
#     (the slow reader always takes B);
#   - 56 subscribers (plan.mjs; 7 terminal ones more, below): ad-hoc patterns, server-side subscriptions
#     and JSON filters, on tclient.c (C) and the npm eventsource client
#     (tnode.mjs), with random disconnects, one slow reader that the bridges
#     must drop, and "race" subscribers held off while the log is pruned;
#   - faults, in a fixed rotation so that even the short form injects each
#     kind: kill -9 of a bridge and restart, pg_ctl restart -m fast and
#     -m immediate, sse_prune alone, sse_prune while race subscribers are
#     held off (they must get "reset"), and sse_prune concurrent with their
#     reconnection; restore: an older dump replaces the database under the
#     bridges; pitr: the cluster is replaced by a base backup recovered to an
#     earlier restore point (see "timelines" below);
#   - subscription changes (add, remove, set_filter; alone or two in one
#     transaction) racing the publishers, on the plain subscriptions;
#   - terminal changes racing the publishers (end_subs): the 7 "fin"
#     subscribers of plan.mjs are ended by sse_unsubscribe, by expiry
#     (sse_expire after last_seen is moved back) or by one sse_close of a
#     channel they name literally, sometimes after another change in the
#     same transaction; "lag" ones are held disconnected across the change,
#     so they come back below the marker and must replay up to it.  Each
#     kind counts as a fault (sub_unsubscribe, sub_expire, sub_close).
# Then publishers stop, both bridges are killed once more, clients drain
# (verify --wait: every subscriber has a fresh "ready" and its last expected
# id, or, once ended, its final answer, with a deadline) and verify prints
# the verdict (see verify.c): each subscriber's deliveries equal, in id
# order, the committed rows that match it, up to its end for an ended one
# (which must then get 204 after a close, 404 after a drop, and nothing
# else); ids are excused only by a reset whose range ends at a value
# pruned_through really had; a timeline reset voids the deliveries the
# subscriber holds from its lost_from on, and a row of an abandoned timeline
# that no timeline reset voided fails the verdict (dead).  Any fault kind
# that was never injected (the slow-client drop is read from the bridges'
# /metrics) also fails the run.
# Environment: TORTURE_SEED, TORTURE_SUBSCRIBERS (56), TORTURE_PUBLISHERS
# (16), TORTURE_PAUSE_MS (800, pause between a publisher's transactions),
# TORTURE_DRAIN_SECONDS (120), SSE_BRIDGE_BIN.
#
# Pruning and the expected sets.  sse_prune deletes rows, but the verdict
# needs every committed row.  Before each prune, and once at the end, one
# transaction takes the publish lock (sse_bridge.lock_publishing(), the
# lock of src/sse_bridge.h that every publishing commit takes before it
# assigns ids), copies every row above the copy's current maximum into
# torture.shadow, and only then calls sse_prune.  While the lock is held no
# commit can add ids, and every commit that released it is already visible
# (design.md: the lock is released after the commit is visible), so the copy
# holds every id up to the head and the prune can only delete copied rows.
# The copy and the prune commit or fail together.  The publisher logs are
# checked against the copy as well, so an incomplete copy would show up as
# committed events missing rather than pass unnoticed.
set -uo pipefail
shopt -s extglob
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

duration=60
self_check=0
keep=0
for a in "$@"; do
  case "$a" in
    --self-check) self_check=1 ;;
    --keep) keep=1 ;;
    '') ;;
    *[0-9]s) duration=${a%s} ;;
    *[0-9]m) duration=$(( ${a%m} * 60 )) ;;
    *[0-9]h) duration=$(( ${a%h} * 3600 )) ;;
    *[0-9]) duration=$a ;;
    *) echo "usage: $0 [DURATION] [--self-check] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$duration" -ge 10 ] 2>/dev/null || { echo "torture: DURATION must be at least 10 seconds" >&2; exit 2; }

SEED=${TORTURE_SEED:-$(( $(date +%s) % 100000 ))}
N_SUBS=${TORTURE_SUBSCRIBERS:-56}
N_PUB=${TORTURE_PUBLISHERS:-16}
PAUSE_MS=${TORTURE_PAUSE_MS:-800}
DRAIN_S=${TORTURE_DRAIN_SECONDS:-120}

log() { printf '[torture %s] %s\n' "$(date +%T)" "$*"; }

# ------------------------------------------------------------------ cluster
own_cluster=0
if [ -z "${PGHOST:-}" ] || [ -z "${SSE_PGDATA:-}" ] || [ -z "${SSE_PGBIN:-}" ]; then
  log "no cluster in the environment: building, installing"
  (cd "$root" && make -s -j2 all >/dev/null && make -s install >/dev/null) || { echo "torture: build failed" >&2; exit 1; }
fi
# Always a cluster of its own: the pitr fault replaces the whole cluster by a
# recovered base backup, which needs WAL archiving.
pg_arch=$(mktemp -d /tmp/sse_torture_wal.XXXXXX)
chmod 755 "$pg_arch"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pg_arch"
env_lines=$(SSE_PG_CONF="wal_level = replica
archive_mode = on
archive_command = 'cp %p $pg_arch/%f'
full_page_writes = on" "$root/scripts/pgcluster.sh" start) || { echo "torture: cannot start a cluster" >&2; exit 1; }
eval "$env_lines"
export PGHOST PGPORT PGUSER PGDATABASE SSE_PGDIR SSE_PGDATA SSE_PGBIN
own_cluster=1
export PGDATABASE=sse_torture
work=$(mktemp -d /tmp/sse_torture.XXXXXX)
chmod 755 "$work"

pids=()
bridge_pid=()
cleanup() {
  local rc=$?
  for p in "${bridge_pid[@]}" "${pids[@]}"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "$own_cluster" = 1 ]; then "$root/scripts/pgcluster.sh" stop "$SSE_PGDIR"; fi
  rm -rf "$pg_arch"
  if [ "$rc" -eq 0 ] && [ "$keep" = 0 ]; then rm -rf "$work"; else echo "torture: logs kept in $work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ build
bin=$here/build
mkdir -p "$bin"
CC=${CC:-cc}
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Werror"
PGINC=$(pg_config --includedir)
$CC $CFLAGS -I"$PGINC" "$here/publisher.c" -lpq -lpthread -o "$bin/publisher" || exit 1
$CC $CFLAGS -I"$root/test/lib" "$here/tclient.c" "$root/test/lib/sseparse.c" -lcrypto -lm -o "$bin/tclient" || exit 1
$CC $CFLAGS -I"$PGINC" -I"$root/bridge" "$here/verify.c" "$root/bridge/logpos.c" -lpq -ljansson -lcrypto -o "$bin/verify" || exit 1

# The eventsource package: this directory's own install, else the one the
# end-to-end suite installed from the same pinned version, else npm ci here.
if [ -d "$here/node_modules/eventsource" ]; then
  modules=$here
elif [ -d "$root/test/e2e/node_modules/eventsource" ]; then
  modules=$root/test/e2e
elif (cd "$here" && npm ci --no-audit --no-fund >"$work/npm.log" 2>&1); then
  modules=$here
else
  cat "$work/npm.log" >&2
  echo "torture: cannot install the npm eventsource package (npm ci in test/torture)" >&2; exit 1
fi

BRIDGE=${SSE_BRIDGE_BIN:-$root/bridge/sse-bridge}
[ -x "$BRIDGE" ] || BRIDGE=$(command -v sse-bridge || true)
[ -x "$BRIDGE" ] || { echo "torture: no bridge binary (bridge/sse-bridge)" >&2; exit 1; }

# ------------------------------------------------------------------ database
psql -qX -d postgres -c "DROP DATABASE IF EXISTS sse_torture" >/dev/null 2>&1
psql -qX -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE sse_torture" >/dev/null || exit 1
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || exit 1
CREATE EXTENSION sse_bridge;
CREATE SCHEMA torture;
CREATE TABLE torture.shadow (
    id bigint PRIMARY KEY, channel text NOT NULL, event text, data text NOT NULL,
    created_at timestamptz NOT NULL);
-- The verifier's own reading of a payload as jsonb (NULL when not JSON).
CREATE FUNCTION torture.try_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN t::jsonb;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$;
SQL

# Copy new rows into the shadow under the publish lock, then prune rows older
# than $1 (an interval; empty = copy only).  Both in one transaction.
copy_and_prune() {
  local age=${1:-}
  # no prune while a lagging reader is away across its end (end_one): a
  # prune past the end would take the tombstone or close row with it, and
  # the reader would rightly get its final answer without those events
  local tw=$((SECONDS + 30))
  while [ -n "$age" ] && [ -e "$work/noprune" ] && [ $SECONDS -lt $tw ]; do sleep 0.1; done
  psql -qAtX -v ON_ERROR_STOP=1 -v age="$age" >>"$work/prune.log" 2>&1 <<'SQL'
-- also before: a crash may have hidden the value the previous call set
SELECT 'pruned_through=' || pruned_through FROM sse_bridge.meta;
BEGIN;
SELECT sse_bridge.lock_publishing();
INSERT INTO torture.shadow
  SELECT id, channel, event, data, created_at FROM sse_bridge.events
  WHERE id > (SELECT coalesce(max(id), 0) FROM torture.shadow);
SELECT CASE WHEN :'age' = '' THEN 0 ELSE sse_prune(nullif(:'age', '')::interval) END;
COMMIT;
-- only this function prunes, so this is the value the prune just set; the
-- verifier accepts a reset only if its lost_through is one of these values
SELECT 'pruned_through=' || pruned_through FROM sse_bridge.meta;
SQL
}

head_id() {
  psql -qAtX -c "SELECT greatest((SELECT max(id) FROM sse_bridge.events), pruned_through) FROM sse_bridge.meta" 2>/dev/null
}

# ------------------------------------------------------------------ bridges
free_port() { "$root/scripts/free-port.sh"; }
{ read -r port_a; read -r port_b; } < <("$root/scripts/free-port.sh" 2)
ports=("$port_a" "$port_b")
# A is one process (--workers 1); B is a supervisor and TORTURE_WORKERS_B
# workers (default 2), whose shared ring is as small as its replay cache, so
# its workers also fall behind the ring and read the log by position.
bridge_args=(
  "--listen 127.0.0.1:$port_a --workers 1"
  "--listen 127.0.0.1:$port_b --client-queue 256k --replay-cache 1M --workers ${TORTURE_WORKERS_B:-2}"
)
conninfo="host=$PGHOST port=$PGPORT dbname=sse_torture user=$PGUSER"
slow_drops=0

start_bridge() {
  local i=$1
  # shellcheck disable=SC2086
  "$BRIDGE" --db "$conninfo" ${bridge_args[$i]} --public-channels 't.#' \
    --retry 300 --keepalive 2 --poll-interval 1000 --log-level info \
    >>"$work/bridge-$i.log" 2>&1 &
  bridge_pid[$i]=$!
}

# Wait until bridge i answers /healthz with 200 (database link up).
wait_bridge() {
  local i=$1 t=$((SECONDS + 30))
  while [ $SECONDS -lt $t ]; do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ports[$i]}/healthz")" = 200 ]; then return 0; fi
    kill -0 "${bridge_pid[$i]}" 2>/dev/null || { log "bridge $i exited"; tail -5 "$work/bridge-$i.log"; return 1; }
    sleep 0.1
  done
  log "bridge $i not healthy after 30 s"; return 1
}

# Slow-client drops so far on bridge i (its /metrics counter resets when it
# is killed, so it is read before every kill and at the end).
scrape_drops() {
  local i=$1 n
  n=$(curl -s --max-time 2 "http://127.0.0.1:${ports[$i]}/metrics" 2>/dev/null |
      awk '/^[a-z_]*slow[a-z_]*drop[a-z_]*(\{[^}]*\})? / || /^[a-z_]*drop[a-z_]*slow[a-z_]*(\{[^}]*\})? / {s += $NF} END {print s + 0}')
  slow_drops=$((slow_drops + ${n:-0}))
}

# another process may take a free port first: try a few
for i in 0 1; do
  for try in 1 2 3 4 5; do
    start_bridge "$i"
    wait_bridge "$i" && break
    [ "$try" = 5 ] && exit 1
    kill -9 "${bridge_pid[$i]}" 2>/dev/null; wait "${bridge_pid[$i]}" 2>/dev/null
    p=$(free_port); while [ "$p" = "${ports[0]}" ] || [ "$p" = "${ports[1]}" ]; do p=$(free_port); done
    ports[$i]=$p
    bridge_args[$i]=${bridge_args[$i]/127.0.0.1:+([0-9])/127.0.0.1:$p}
  done
done
port_a=${ports[0]}; port_b=${ports[1]}
log "bridges on ports ${ports[*]}; seed $SEED; work dir $work"

# ------------------------------------------------------------------ load
config=$work/subscribers.tsv
: >"$config"
node "$here/plan.mjs" --phase pre --out "$config" --subscribers "$N_SUBS" || exit 1

"$bin/publisher" --threads "$N_PUB" --seconds "$duration" --dir "$work" --seed "$SEED" \
  --pause-ms "$PAUSE_MS" >"$work/publisher.out" 2>"$work/publisher.err" &
pub_pid=$!
pids+=("$pub_pid")

# subscriptions created and ad-hoc streams opened while publishing is busy
t=$((SECONDS + 30))
until [ "$(head_id)" -gt 0 ] 2>/dev/null; do
  [ $SECONDS -lt $t ] || { log "no event published after 30 s"; cat "$work/publisher.err"; exit 1; }
  sleep 0.1
done
node "$here/plan.mjs" --phase main --out "$config" --subscribers "$N_SUBS" || exit 1

client_secs=$((duration + DRAIN_S + 120))
"$bin/tclient" --config "$config" --dir "$work" --ports "$port_a,$port_b" --seed "$SEED" \
  --seconds "$client_secs" --cut-mean-ms 8000 >"$work/tclient.out" 2>"$work/tclient.err" &
tclient_pid=$!
pids+=("$tclient_pid")
node "$here/tnode.mjs" --config "$config" --dir "$work" --ports "$port_a,$port_b" --seed "$SEED" \
  --seconds "$client_secs" --cut-mean-ms 8000 --modules "$modules" >"$work/tnode.out" 2>"$work/tnode.err" &
tnode_pid=$!
pids+=("$tnode_pid")
log "$N_PUB publishers for ${duration}s, $(grep -c . "$config") subscribers"

# ------------------------------------------------------------------ changes
# Subscription changes racing the publishers: add, remove and set_filter on
# the subscriptions without a special role, alone or two in one transaction,
# until publishing ends.  Each takes its position in the log; verify follows
# the markers by position.  A change that fails (removing the last pattern,
# the database restarting) is simply not counted.
change_subs() {
  local ids n=0 id sqltext
  local pats=('t.orders.#' 't.chat.*' '#.urgent' 't.jobs.#' 't.misc' 't.*.eu' 't.big.blob' '*.jobs.*')
  local filts=('{}' '{"kind":"order"}' '{"region":"eu"}' '{"prio":3}' '{"tags":["red"]}' '{"region":"us"}')
  mapfile -t ids < <(awk -F'\t' '$1 ~ /^sub/ && $6 == "-" { sub("^/events/", "", $3); print $3 }' "$config")
  [ ${#ids[@]} -gt 0 ] || return 0
  one_change() {
    local id=$1 p=${pats[$((RANDOM % ${#pats[@]}))]}
    case $((RANDOM % 3)) in
      0) echo "SELECT sse_subscription_add('$id', ARRAY['$p']);" ;;
      1) echo "SELECT sse_subscription_remove('$id', ARRAY['$p']);" ;;
      2) echo "SELECT sse_subscription_set_filter('$id', '${filts[$((RANDOM % ${#filts[@]}))]}'::jsonb);" ;;
    esac
  }
  while kill -0 "$pub_pid" 2>/dev/null; do
    id=${ids[$((RANDOM % ${#ids[@]}))]}
    if [ $((RANDOM % 3)) = 0 ]; then
      sqltext="BEGIN; $(one_change "$id") $(one_change "$id") COMMIT;"
    else
      sqltext=$(one_change "$id")
    fi
    if psql -qAtX -v ON_ERROR_STOP=1 -c "$sqltext" >/dev/null 2>>"$work/changes.err"; then
      n=$((n + 1)); echo "$n" >"$work/changes.count"
    fi
    sleep "0.0$((RANDOM % 9 + 1))"
  done
}
change_subs &
change_pid=$!
pids+=("$change_pid")

# ------------------------------------------------------------------ terminal changes
# A terminal change must not fall between a dump or restore point and the
# restore or recovery that goes back to it: that would undo the change
# (the subscription alive again on the new timeline) after its streams
# ended for good.  The fault loop holds DIR/tl.lock from an "rpoint" or
# "dump" slot until its recovery or restore is done; end_one takes it for
# its holds and its change.  mkdir is the atomic test-and-set.
tl_lock() {
  local t=$((SECONDS + ${1:-60}))
  until mkdir "$work/tl.lock" 2>/dev/null; do
    [ $SECONDS -lt $t ] || { log "tl.lock still taken after ${1:-60} s; going on"; return 1; }
    sleep 0.1
  done
}
tl_unlock() { rmdir "$work/tl.lock" 2>/dev/null; true; }

# The terminal subscribers of plan.mjs (flags end=...) are ended while the
# publishers run, each at a random time in the middle 15-80 % of publishing:
# sse_unsubscribe, expiry (last_seen moved back a day, then sse_expire(), in
# one transaction or two) or one sse_close('t.fin.a'), which ends every
# close subscriber (they name t.fin.a literally).  Half the time another
# change of the same subscription comes first in the same transaction.  A
# "lag" subscriber is held off (DIR/hold.<name>, see tclient.c) from before
# its change until events have piled up after it, so it resumes below the
# marker and must replay up to it.  A change whose psql fails (the database
# restarting) is retried until the database shows it took effect.  Each
# change done appends its kind to DIR/ends.log.
end_subs() {
  local -a jobs=() lagc=() order=()
  local name path flags id kind pre sql i j t at h0 t0 nj
  local closeids='' closelag=''
  local filts=('{}' '{"region":"eu"}' '{"kind":"order"}' '{"prio":3}')
  while IFS=$'\t' read -r name _ path _ _ flags _; do
    case ",$flags," in *,end=*) ;; *) continue ;; esac
    id=${path#/events/}; [ "$id" = "$path" ] && id=''
    kind=${flags##*end=}; kind=${kind%%,*}
    case ",$flags," in *,lag,*) lag=$name ;; *) lag='' ;; esac
    if [ "$kind" = close ]; then
      [ -n "$id" ] && closeids="$closeids $id"
      [ -n "$lag" ] && closelag="$closelag $lag"
    else
      jobs+=("$kind $id -- $lag")
    fi
  done <"$config"
  [ -n "$closeids" ] && jobs+=("close$closeids --$closelag")
  nj=${#jobs[@]}
  [ "$nj" -gt 0 ] || return 0
  # a random order, then one job per slot of the 15-80 % window
  for ((i = 0; i < nj; i++)); do order+=("$i"); done
  for ((i = nj - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1))); t=${order[$i]}; order[$i]=${order[$j]}; order[$j]=$t
  done
  t0=$SECONDS
  for ((i = 0; i < nj; i++)); do
    at=$((t0 + duration * 15 / 100 + duration * 65 * i / (100 * nj) + RANDOM % (duration * 65 / (100 * nj) + 1)))
    while [ $SECONDS -lt $at ] && kill -0 "$pub_pid" 2>/dev/null; do sleep 0.2; done
    end_one ${jobs[${order[$i]}]}
  done
}

# end_one KIND ID... -- [LAGNAME...]: the change of ID (close: of one of
# the IDs, with sse_close), holding the named lagging subscribers across it.
end_one() {
  local kind=$1 id ids=() lags=() pre='' sql check n t h0 try
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do ids+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  lags=("$@")
  id=${ids[$((RANDOM % ${#ids[@]}))]}
  tl_lock 90; local locked=$?
  [ ${#lags[@]} -gt 0 ] && : >"$work/noprune"
  for n in "${lags[@]}"; do : >"$work/hold.$n"; done
  t=$((SECONDS + 10))
  for n in "${lags[@]}"; do
    until [ -e "$work/held.$n" ]; do
      [ $SECONDS -lt $t ] || { log "$n not held"; break; }
      sleep 0.05
    done
  done
  if [ ${#lags[@]} -gt 0 ]; then
    h0=$(head_id); t=$((SECONDS + 5))
    while [ "$(head_id)" -le $((h0 + 20)) ] 2>/dev/null && [ $SECONDS -lt $t ]; do sleep 0.1; done
  fi
  if [ $((RANDOM % 2)) = 0 ]; then
    if [ $((RANDOM % 2)) = 0 ]; then
      pre="SELECT sse_subscription_add('$id', ARRAY['t.misc']);"
    else
      pre="SELECT sse_subscription_set_filter('$id', '${filts[$((RANDOM % ${#filts[@]}))]}'::jsonb);"
    fi
  fi
  case $kind in
    unsubscribe)
      sql="BEGIN; $pre SELECT sse_unsubscribe('$id'); COMMIT;"
      # gone, or kept as a tombstone whose newest version is "dropped"
      check="SELECT coalesce((SELECT v.state = 'dropped' FROM sse_bridge.subscriptions s
               JOIN sse_bridge.subscription_versions v USING (sid)
               WHERE s.id = '$id' ORDER BY v.from_id DESC LIMIT 1), true)" ;;
    expire)
      sql="BEGIN; $pre UPDATE sse_bridge.subscriptions SET last_seen = now() - interval '1 day' WHERE id = '$id';"
      if [ $((RANDOM % 3)) = 0 ]; then sql="$sql COMMIT; SELECT sse_expire();"; else sql="$sql SELECT sse_expire(); COMMIT;"; fi
      check="SELECT count(*) = 0 FROM sse_bridge.subscriptions WHERE id = '$id'" ;;
    close)
      sql="BEGIN; $pre SELECT sse_close('t.fin.a'); COMMIT;"
      check="SELECT closed_at IS NOT NULL FROM sse_bridge.subscriptions WHERE id = '$id'" ;;
  esac
  for try in 1 2 3 4 5 6 7 8 9 10; do
    psql -qAtX -v ON_ERROR_STOP=1 -c "$sql" >/dev/null 2>>"$work/ends.err"
    if [ "$(psql -qAtX -c "$check" 2>/dev/null)" = t ]; then
      echo "$kind" >>"$work/ends.log"
      log "sub_$kind: $id${lags[*]:+ (held: ${lags[*]})}"
      break
    fi
    sleep 0.5
  done
  [ "$locked" = 0 ] && tl_unlock
  if [ ${#lags[@]} -gt 0 ]; then
    h0=$(head_id); t=$((SECONDS + 5))
    while [ "$(head_id)" -le $((h0 + 20)) ] 2>/dev/null && [ $SECONDS -lt $t ]; do sleep 0.1; done
  fi
  # release, and allow prunes again once each is back (an event, ready,
  # reset or final answer after the release)
  local -A mark=()
  for n in "${lags[@]}"; do mark[$n]=$(wc -l <"$work/$n.log"); rm -f "$work/hold.$n"; done
  t=$((SECONDS + 15))
  for n in "${lags[@]}"; do
    until tail -n +$((mark[$n] + 1)) "$work/$n.log" | grep -q '"k":"[efyr]"'; do
      [ $SECONDS -lt $t ] || { log "$n not back after its hold"; break; }
      sleep 0.1
    done
    log "$n back from its hold: $(tail -n +$((mark[$n] + 1)) "$work/$n.log" | grep -m1 '"k":"c"')"
  done
  rm -f "$work/noprune"
}
end_subs &
end_pid=$!
pids+=("$end_pid")

# ------------------------------------------------------------------ faults
declare -A faults=([bridge_kill]=0 [pg_fast]=0 [pg_immediate]=0 [prune]=0 [prune_race]=0 [prune_concurrent]=0)

# The workers of a killed supervisor die with it (PR_SET_PDEATHSIG) and
# close the listening socket they share: wait (bounded) until nothing
# answers on bridge i's port.
wait_port_free() {
  local i=$1 until=$((SECONDS + 10))
  while curl -s -o /dev/null --max-time 1 "http://127.0.0.1:${ports[$i]}/healthz"; do
    [ $SECONDS -lt $until ] || { log "bridge $i: its port still answers 10 s after kill -9"; return 1; }
    sleep 0.1
  done
}

kill_bridge() {
  local i=$1
  scrape_drops "$i"
  kill -9 "${bridge_pid[$i]}" 2>/dev/null
  wait "${bridge_pid[$i]}" 2>/dev/null
  faults[bridge_kill]=$((faults[bridge_kill] + 1))
  log "kill -9 bridge $i"
  wait_port_free "$i"
  sleep "0.$((RANDOM % 9 + 1))"    # down for a moment: clients hit a closed port
  start_bridge "$i"
}

pg_restart() {
  local mode=$1
  log "pg_ctl restart -m $mode"
  if runuser -u postgres -- "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" restart -m "$mode" -w -t 60 \
       -l "$(dirname "$SSE_PGDATA")/server.log" >>"$work/pg_ctl.log" 2>&1; then
    faults[pg_$mode]=$((faults[pg_$mode] + 1))
  else
    log "pg_ctl restart -m $mode failed"; tail -5 "$work/pg_ctl.log"
  fi
}

holds=0
# Hold the race subscribers off, let events accumulate, prune them all.
# concurrent=1: release the subscribers while the prune runs instead.
prune_race() {
  local concurrent=$1 h0 t
  holds=$((holds + 1))
  kill -USR1 "$tclient_pid"
  t=$((SECONDS + 10))
  until grep -q "holds=$holds " "$work/tclient.state" 2>/dev/null; do
    [ $SECONDS -lt $t ] || { log "race subscribers not held"; return; }
    sleep 0.05
  done
  h0=$(head_id); t=$((SECONDS + 10))
  while [ "$(head_id)" -le $((h0 + 20)) ] 2>/dev/null && [ $SECONDS -lt $t ]; do sleep 0.1; done
  if [ "$concurrent" = 1 ]; then
    copy_and_prune '0 s' &
    local cp=$!
    kill -USR2 "$tclient_pid"
    wait "$cp" && faults[prune_concurrent]=$((faults[prune_concurrent] + 1))
    log "sse_prune('0 s') concurrent with the race subscribers' reconnection"
  else
    copy_and_prune '0 s' && faults[prune_race]=$((faults[prune_race] + 1))
    kill -USR2 "$tclient_pid"
    log "sse_prune('0 s') while race subscribers were held off"
  fi
}

# ------------------------------------------------------------------ timelines
# restore: an older dump (pg_dump -Fc at a "dump" slot) replaces the database
# under the running bridges at a later "restore" slot; it is restored into a
# new database first, so no bridge ever sees it half restored, then the old
# one is dropped (WITH (FORCE)) and the new one renamed; bridges and
# publishers reconnect.  pitr: the cluster is replaced by a base backup
# (taken at an "rpoint" slot) recovered to the restore point made right
# after it, with recovery_target_action = promote (a new timeline).
# Either way the rows above the restored head are abandoned, and they are
# captured exactly: one session takes the publish lock, copies every row
# above that head (from the log and from the shadow, which holds the pruned
# ones) to DIR/dead-N.copy and ends the timeline from inside the same
# transaction (DROP DATABASE ... WITH (FORCE), which kills that session, or
# pg_ctl stop -m immediate), so no commit falls between the copy and the
# end.  Commits waiting for the lock end with an unknown outcome, which
# verify checks as all or nothing.  The restored head is exact: a dump holds
# a prefix of the ids (commit-order guarantee), and the restore point is
# made, and the head read, under the publish lock.  DIR/timelines.log gets
# "N kind head" per abandoned timeline; the shadow goes back with the
# database, so the final shadow and the dead-N.copy files together hold
# every committed row.  Pairs never interleave (rpoint, pitr, dump, restore
# in this order): a recovery never brings back rows a restore abandoned.
faults[restore]=0
faults[pitr]=0
tl_gen=0
have_dump=0
rp_n=0
rp_head=
rp_seg=
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_as=; [ "$(id -u)" -eq 0 ] && pg_as="runuser -u postgres --"

# The head of database $1: the highest id it holds, copied or pruned.
db_head() {
  psql -qAtX -v ON_ERROR_STOP=1 -d "$1" -c "SELECT greatest(
      (SELECT coalesce(max(id), 0) FROM sse_bridge.events),
      (SELECT coalesce(max(id), 0) FROM torture.shadow),
      (SELECT pruned_through FROM sse_bridge.meta))" 2>>"$work/timeline.log"
}

# sse_bridge_timelines_total of bridge $1 (-1 when it does not answer).
timelines_of() {
  local n
  n=$(curl -s --max-time 2 "http://127.0.0.1:${ports[$1]}/metrics" 2>/dev/null |
      awk '/^sse_bridge_timelines_total / {print $2}')
  echo "${n:--1}"
}

# After a timeline change: wait (at most 20 s) until each bridge counted it,
# so that the next fault (a prune above the bridges' cursors) cannot hide it.
wait_timelines() {
  local b0=$1 b1=$2 t=$((SECONDS + 20))
  while [ $SECONDS -lt $t ]; do
    [ "$(timelines_of 0)" -gt "$b0" ] && [ "$(timelines_of 1)" -gt "$b1" ] && { log "both bridges saw the new timeline"; return 0; }
    sleep 0.2
  done
  log "a bridge did not report the new timeline within 20 s (timelines: $(timelines_of 0) $(timelines_of 1))"
}

# Under the publish lock: copy the rows above head $1 to DIR/dead-$2.copy.tmp
# and run shell command $4, which ends the timeline (and this session).
# $3 = drop: the session dies before the other sessions of the database, and
# its death releases the lock, so the database first refuses new
# connections and the lock holder ends every other session (waiting for
# each to exit) before the drop; a commit that was waiting for the lock then
# fails.  (An immediate shutdown ends every session at once, lock held.)
capture_and_end() {
  local head=$1 gen=$2 how=$3 end_cmd=$4 us='(extract(epoch FROM created_at) * 1000000)::bigint'
  local pre='' others=''
  if [ "$how" = drop ]; then
    pre="\\! psql -qX -d postgres -c 'ALTER DATABASE sse_torture ALLOW_CONNECTIONS false'"
    others="SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 20000)) AS left_over FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \\gset
SELECT :left_over = 0 AS alone \\gset
\\if :alone
\\else
\\echo sessions left over
\\q
\\endif"
  fi
  psql -qAtX -v ON_ERROR_STOP=1 >>"$work/timeline.log" 2>&1 <<SQL
$pre
BEGIN;
SELECT sse_bridge.lock_publishing();
\copy (SELECT $gen, id, channel, event, data, $us FROM sse_bridge.events WHERE id > $head UNION SELECT $gen, id, channel, event, data, $us FROM torture.shadow WHERE id > $head ORDER BY 2) TO '$work/dead-$gen.copy.tmp'
$others
\! $end_cmd
SELECT 'the timeline did not end';
SQL
}

take_dump() {
  "$SSE_PGBIN/pg_dump" -Fc -f "$work/dump.fc" -d sse_torture 2>>"$work/timeline.log" || { log "pg_dump failed"; return 1; }
  have_dump=1
  log "pg_dump taken"
}

restore_db() {
  local h gen=$((tl_gen + 1)) b0 b1
  [ "$have_dump" = 1 ] || { log "restore: no dump"; return 1; }
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS sse_torture_r" >>"$work/timeline.log" 2>&1
  psql -qX -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE sse_torture_r" >>"$work/timeline.log" 2>&1 &&
    "$SSE_PGBIN/pg_restore" --exit-on-error --single-transaction -d sse_torture_r "$work/dump.fc" \
      >>"$work/timeline.log" 2>&1 || { log "restore: pg_restore failed"; return 1; }
  h=$(db_head sse_torture_r) && [ -n "$h" ] || { log "restore: no head"; return 1; }
  b0=$(timelines_of 0); b1=$(timelines_of 1)
  capture_and_end "$h" "$gen" drop "psql -qX -d postgres -c 'DROP DATABASE sse_torture WITH (FORCE)'"
  if [ "$(psql -qAtX -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'sse_torture'")" != 0 ]; then
    psql -qX -d postgres -c "ALTER DATABASE sse_torture ALLOW_CONNECTIONS true" >>"$work/timeline.log" 2>&1
    log "restore: the database was not dropped"; rm -f "$work/dead-$gen.copy.tmp"; return 1
  fi
  psql -qX -d postgres -v ON_ERROR_STOP=1 -c "ALTER DATABASE sse_torture_r RENAME TO sse_torture" \
    >>"$work/timeline.log" 2>&1 || { log "restore: cannot rename the restored database"; exit 1; }
  mv "$work/dead-$gen.copy.tmp" "$work/dead-$gen.copy" || exit 1
  echo "$gen restore $h" >>"$work/timelines.log"
  tl_gen=$gen; have_dump=0
  faults[restore]=$((faults[restore] + 1))
  log "restore: the dump (head $h) replaced the database; $(wc -l <"$work/dead-$gen.copy") rows abandoned"
  wait_timelines "$b0" "$b1"
}

# A base backup, then a restore point and the head, under the publish lock.
restore_point() {
  local n=$((rp_n + 1)) out seg
  rm -rf "$SSE_PGDIR/base"
  as_pg "$SSE_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$SSE_PGDIR/base" -X stream -c fast \
    >>"$work/timeline.log" 2>&1 || { log "pg_basebackup failed"; return 1; }
  # only the newest base backup is ever recovered: older WAL is not needed
  seg=$(sed -n 's/^START WAL LOCATION: .* (file \([0-9A-F]*\))$/\1/p' "$SSE_PGDIR/base/backup_label")
  [ -n "$seg" ] && "$SSE_PGBIN/pg_archivecleanup" "$pg_arch" "$seg" >>"$work/timeline.log" 2>&1
  out=$(psql -qAtX -v ON_ERROR_STOP=1 2>>"$work/timeline.log" <<SQL
BEGIN;
SELECT sse_bridge.lock_publishing() \g /dev/null
SELECT pg_create_restore_point('torture_rp$n') \g /dev/null
SELECT 'head=' || greatest(
    (SELECT coalesce(max(id), 0) FROM sse_bridge.events),
    (SELECT coalesce(max(id), 0) FROM torture.shadow),
    (SELECT pruned_through FROM sse_bridge.meta));
COMMIT;
SELECT 'seg=' || pg_walfile_name(pg_switch_wal());
SQL
) || { log "restore point failed"; return 1; }
  rp_n=$n
  rp_head=$(sed -n 's/^head=//p' <<<"$out")
  rp_seg=$(sed -n 's/^seg=//p' <<<"$out")
  log "base backup and restore point torture_rp$n at head $rp_head"
}

pitr() {
  local gen=$((tl_gen + 1)) t b0 b1
  [ -n "$rp_head" ] || { log "pitr: no restore point"; return 1; }
  t=$((SECONDS + 30))
  until [ "$(psql -qAtX -c "SELECT coalesce(last_archived_wal >= '$rp_seg', false) FROM pg_stat_archiver" 2>/dev/null)" = t ]; do
    [ $SECONDS -lt $t ] || { log "pitr: WAL $rp_seg not archived"; return 1; }
    sleep 0.2
  done
  b0=$(timelines_of 0); b1=$(timelines_of 1)
  capture_and_end "$rp_head" "$gen" stop "$pg_as $SSE_PGBIN/pg_ctl -D $SSE_PGDATA stop -m immediate -w"
  if as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" status >/dev/null 2>&1; then
    log "pitr: the cluster did not stop"; rm -f "$work/dead-$gen.copy.tmp"; return 1
  fi
  rm -rf "$SSE_PGDIR/abandoned"
  mv "$SSE_PGDATA" "$SSE_PGDIR/abandoned" && mv "$SSE_PGDIR/base" "$SSE_PGDATA" || exit 1
  as_pg sed -i '/^restore_command\|^recovery_target\|^hot_standby/d' "$SSE_PGDATA/postgresql.auto.conf"
  cat >>"$SSE_PGDATA/postgresql.auto.conf" <<CONF
restore_command = 'cp $pg_arch/%f %p'
recovery_target_name = 'torture_rp$rp_n'
recovery_target_action = 'promote'
hot_standby = off
CONF
  as_pg touch "$SSE_PGDATA/recovery.signal"
  as_pg "$SSE_PGBIN/pg_ctl" -D "$SSE_PGDATA" -l "$SSE_PGDIR/server.log" -w -t 120 start >>"$work/pg_ctl.log" 2>&1 ||
    { log "pitr: the recovered cluster did not start"; tail -5 "$SSE_PGDIR/server.log"; exit 1; }
  t=$((SECONDS + 60))
  until [ "$(psql -qAtX -c "SELECT NOT pg_is_in_recovery()" 2>/dev/null)" = t ]; do
    [ $SECONDS -lt $t ] || { log "pitr: no promotion"; tail -5 "$SSE_PGDIR/server.log"; exit 1; }
    sleep 0.2
  done
  rm -rf "$SSE_PGDIR/abandoned"
  mv "$work/dead-$gen.copy.tmp" "$work/dead-$gen.copy" || exit 1
  echo "$gen pitr $rp_head" >>"$work/timelines.log"
  tl_gen=$gen
  faults[pitr]=$((faults[pitr] + 1))
  log "pitr: recovered to torture_rp$rp_n (head $rp_head); $(wc -l <"$work/dead-$gen.copy") rows abandoned"
  rp_head=
  wait_timelines "$b0" "$b1"
}

# every kind appears in the first nine slots (rpoint and dump are
# preparations, taken without a pause before them); the interval shrinks for
# short runs so that a one-minute run goes through the rotation about once
rotation=(rpoint kill_a pitr pg_fast dump race restore concurrent pg_immediate kill_b prune kill_both race pg_immediate concurrent kill_a pg_fast prune)
gap=$(( duration / ${#rotation[@]} )); [ "$gap" -lt 2 ] && gap=2; [ "$gap" -gt 6 ] && gap=6
k=0
while kill -0 "$pub_pid" 2>/dev/null; do
  # the next fault in gap..gap+2 s, or as soon as publishing ends
  t=$((SECONDS + gap + RANDOM % 3))
  [[ ${rotation[$((k % ${#rotation[@]}))]} = @(rpoint|dump) ]] && t=$SECONDS
  while [ $SECONDS -lt $t ] && kill -0 "$pub_pid" 2>/dev/null; do sleep 0.2; done
  kill -0 "$pub_pid" 2>/dev/null || break
  case ${rotation[$((k % ${#rotation[@]}))]} in
    kill_a) kill_bridge 0 ;;
    kill_b) kill_bridge 1 ;;
    kill_both) kill_bridge 0; kill_bridge 1 ;;
    pg_fast) pg_restart fast ;;
    pg_immediate) pg_restart immediate ;;
    prune) copy_and_prune "$((RANDOM % 3 + 1)) s" && faults[prune]=$((faults[prune] + 1)); log "sse_prune" ;;
    race) prune_race 0 ;;
    concurrent) prune_race 1 ;;
    rpoint) tl_lock 30; restore_point || tl_unlock ;;
    pitr) pitr; tl_unlock ;;
    dump) tl_lock 30; take_dump || tl_unlock ;;
    restore) restore_db; tl_unlock ;;
  esac
  k=$((k + 1))
done
tl_unlock    # publishing ended between a dump or restore point and its use
wait "$pub_pid"; pub_rc=$?
wait "$change_pid" 2>/dev/null
sub_changes=$(cat "$work/changes.count" 2>/dev/null || echo 0)
log "subscription changes committed: $sub_changes"
wait "$end_pid" 2>/dev/null
for f in unsubscribe expire close; do
  n=$(grep -cx "$f" "$work/ends.log" 2>/dev/null); faults[sub_$f]=${n:-0}
done
log "terminal changes: unsubscribe=${faults[sub_unsubscribe]} expire=${faults[sub_expire]} close=${faults[sub_close]}"
log "publishing done (rc $pub_rc): $(cat "$work/publisher.out")"
[ -s "$work/publisher.err" ] && { log "publisher messages:"; sort "$work/publisher.err" | uniq -c | sort -rn | head -5; }

# ------------------------------------------------------------------ drain
# Publishing is over.  Copy the last rows, then end with one more crash of
# both bridges: the clients are switched to drain mode (no more cuts; each
# logs a marker) while no bridge is up, so every subscriber must reconnect,
# replay from its Last-Event-ID and get a fresh "ready" after its marker.
# verify --wait polls the logs until each subscriber has that ready and its
# last expected id (or a reset covering it), with a deadline.
copy_and_prune '' || { log "final copy failed"; tail -5 "$work/prune.log"; exit 1; }
for i in 0 1; do
  if kill -0 "${bridge_pid[$i]}" 2>/dev/null; then
    scrape_drops "$i"
    kill -9 "${bridge_pid[$i]}"; wait "${bridge_pid[$i]}" 2>/dev/null
    faults[bridge_kill]=$((faults[bridge_kill] + 1))
    wait_port_free "$i" || exit 1
  fi
done
kill -HUP "$tclient_pid" "$tnode_pid" 2>/dev/null
t=$((SECONDS + 15))
for name in $(cut -f1 "$config"); do
  until grep -q '"k":"m"' "$work/$name.log" 2>/dev/null; do
    [ $SECONDS -lt $t ] || { log "$name never logged its drain marker"; exit 1; }
    sleep 0.05
  done
done
for i in 0 1; do start_bridge "$i"; done
for i in 0 1; do wait_bridge "$i" || exit 1; done
log "both bridges killed and restarted; draining (deadline ${DRAIN_S}s)"
"$bin/verify" --config "$config" --dir "$work" --ready-after-drain 1 --wait "$DRAIN_S"
for i in 0 1; do scrape_drops "$i"; done
kill -TERM "$tclient_pid" "$tnode_pid" 2>/dev/null
wait "$tclient_pid" "$tnode_pid" 2>/dev/null
cat "$work/tclient.out" "$work/tnode.out"
faults[slow_drop]=$slow_drops
faults[sub_change]=$sub_changes
fault_list=$(for f in "${!faults[@]}"; do printf '%s=%s,' "$f" "${faults[$f]}"; done | sed 's/,$//')

# ------------------------------------------------------------------ verdict
"$bin/verify" --config "$config" --dir "$work" --faults "$fault_list" | tee "$work/verdict.txt"
rc=${PIPESTATUS[0]}
[ "$pub_rc" -eq 0 ] || { log "publisher failed"; rc=1; }
for f in bridge_kill pg_fast pg_immediate prune_race prune_concurrent slow_drop sub_change \
         sub_unsubscribe sub_expire sub_close; do
  if [ "${faults[$f]}" -eq 0 ]; then log "fault $f was never injected"; rc=1; fi
done
for f in restore pitr; do
  if [ "${faults[$f]}" -eq 0 ]; then log "fault $f was never injected"; rc=1; fi
done

if [ "$self_check" = 1 ]; then
  # Damage one client log on disk: drop one delivery; the verdict must fail.
  # (One after the log's last timeline reset: an earlier one may be void.)
  victim= n=
  for f in "$work"/adhoc*.log "$work"/sub*.log; do
    last=$(grep -n '"k":"r".*timeline' "$f" | tail -1 | cut -d: -f1)
    n=$(awk -v from="${last:-0}" 'NR > from && /"k":"e"/ && ++c == 2 {print NR; exit}' "$f")
    [ -n "$n" ] && { victim=$f; break; }
  done
  if [ -n "$victim" ]; then
    sed -i "${n}d" "$victim"
    if "$bin/verify" --config "$config" --dir "$work" --faults "$fault_list" >"$work/selfcheck.txt" ||
       ! grep -q ' lost=[1-9]' "$work/selfcheck.txt"; then
      log "self-check FAILED: a dropped delivery in $(basename "$victim") went unnoticed"; rc=1
    else
      log "self-check ok: dropping line $n of $(basename "$victim") gives: $(grep '^subscribers=' "$work/selfcheck.txt")"
    fi
  fi
fi
exit "$rc"
