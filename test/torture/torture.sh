#!/usr/bin/env bash
# Torture test of the delivery promise: every matching event is delivered
# once, in id order, across reconnects, bridge crashes and database restarts.
#
#   test/torture/torture.sh [DURATION] [--self-check] [--keep]
#
# DURATION is the publishing time (seconds, or 90s / 10m / 1h; default 60).
# With the cluster environment of scripts/test.sh exported (PGHOST, PGPORT,
# PGUSER, SSE_PGDATA, SSE_PGBIN) it uses that cluster; otherwise it builds
# and installs the tree and starts a throwaway cluster of its own.
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
#     reconnection;
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
# pruned_through really had.  Any fault kind that was never injected (the
# slow-client drop is read from the bridges' /metrics) also fails the run.
# Environment: TORTURE_SEED, TORTURE_SUBSCRIBERS (56), TORTURE_PUBLISHERS
# (16), TORTURE_PAUSE_MS (800, pause between a publisher's transactions),
# TORTURE_DRAIN_SECONDS (120), SSE_BRIDGE_BIN.
#
# Pruning and the expected sets.  sse_prune deletes rows, but the verdict
# needs every committed row.  Before each prune, and once at the end, one
# transaction takes the publish lock (pg_advisory_xact_lock on the key in
# src/sse_bridge.h, the lock every publishing commit takes before it
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
  log "no cluster in the environment: building, installing, starting one"
  (cd "$root" && make -s -j2 all >/dev/null && make -s install >/dev/null) || { echo "torture: build failed" >&2; exit 1; }
  env_lines=$("$root/scripts/pgcluster.sh" start) || { echo "torture: cannot start a cluster" >&2; exit 1; }
  eval "$env_lines"
  export PGHOST PGPORT PGUSER PGDATABASE SSE_PGDIR SSE_PGDATA SSE_PGBIN
  own_cluster=1
fi
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
$CC $CFLAGS "$here/tclient.c" -lcrypto -lm -o "$bin/tclient" || exit 1
$CC $CFLAGS -I"$PGINC" "$here/verify.c" -lpq -ljansson -lcrypto -o "$bin/verify" || exit 1

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
SELECT pg_advisory_xact_lock(6004219003886977585);
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
bridge_args=(
  "--listen 127.0.0.1:$port_a"
  "--listen 127.0.0.1:$port_b --client-queue 256k --replay-cache 1M"
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

kill_bridge() {
  local i=$1
  scrape_drops "$i"
  kill -9 "${bridge_pid[$i]}" 2>/dev/null
  wait "${bridge_pid[$i]}" 2>/dev/null
  faults[bridge_kill]=$((faults[bridge_kill] + 1))
  log "kill -9 bridge $i"
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

# every kind appears in the first seven slots; the interval shrinks for short
# runs so that a one-minute run goes through the rotation about once
rotation=(kill_a race pg_fast concurrent kill_b pg_immediate prune kill_both race pg_immediate concurrent kill_a pg_fast prune)
gap=$(( duration / ${#rotation[@]} )); [ "$gap" -lt 2 ] && gap=2; [ "$gap" -gt 6 ] && gap=6
k=0
while kill -0 "$pub_pid" 2>/dev/null; do
  # the next fault in gap..gap+2 s, or as soon as publishing ends
  t=$((SECONDS + gap + RANDOM % 3))
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
  esac
  k=$((k + 1))
done
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

if [ "$self_check" = 1 ]; then
  # Damage one client log on disk: drop one delivery; the verdict must fail.
  victim=$(grep -l '"k":"e"' "$work"/adhoc*.log "$work"/sub*.log 2>/dev/null | head -1)
  if [ -n "$victim" ]; then
    n=$(grep -n '"k":"e"' "$victim" | sed -n '2p' | cut -d: -f1)
    sed -i "${n}d" "$victim"
    if "$bin/verify" --config "$config" --dir "$work" --faults "$fault_list" >"$work/selfcheck.txt"; then
      log "self-check FAILED: a dropped delivery in $(basename "$victim") went unnoticed"; rc=1
    else
      log "self-check ok: dropping line $n of $(basename "$victim") gives: $(grep '^subscribers=' "$work/selfcheck.txt")"
    fi
  fi
fi
exit "$rc"
