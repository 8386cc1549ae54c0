#!/usr/bin/env bash
# CPU of two bridge builds fed the same events side by side, one client
# each (an unfiltered stream unless FILTER is set; every event has
# "f": 1, so FILTER='{"f":1}' matches them all), in one run:
#
#   bench/ab-cpu.sh A_BINARY B_BINARY
#
# Publishes N (40) events of about 1 MB of JSON (ROWS 17000 objects) on one
# channel and prints each bridge's CPU time (utime + stime, from /proc) and
# the ratio.  Uses a throwaway cluster; installs the tree's extension.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || { echo "usage: $0 A_BINARY B_BINARY" >&2; exit 2; }
N=${N:-40}; ROWS=${ROWS:-17000}; FILTER=${FILTER:-}
bins=("$1" "$2")
make -s install >/dev/null
eval "$(scripts/pgcluster.sh start)"; export PGHOST PGPORT PGUSER PGDATABASE
work=$(mktemp -d /tmp/sse_abcpu.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; scripts/pgcluster.sh stop "$SSE_PGDIR"; rm -rf "$work"' EXIT
psql -qX -c "CREATE EXTENSION sse_bridge"
conn="host=$PGHOST port=$PGPORT user=postgres dbname=$PGDATABASE"
ports=()
for i in 0 1; do
  ports[i]=$(scripts/free-port.sh)
  "${bins[i]}" --db "$conn" --listen "127.0.0.1:${ports[i]}" --public-channels 'ab.#' --log-level warning >"$work/b$i.log" 2>&1 &
  pids+=($!)
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
q=${FILTER:+&filter=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$FILTER")}
c0=()
for i in 0 1; do
  t=$((SECONDS + 20))
  until curl -sf -o /dev/null "http://127.0.0.1:${ports[i]}/healthz"; do
    [ $SECONDS -lt $t ] || { echo "bridge $i not healthy"; cat "$work/b$i.log"; exit 1; }; sleep 0.1
  done
  curl -sN "http://127.0.0.1:${ports[i]}/events?channel=ab.x$q" >"$work/c$i.out" &
  pids+=($!)
done
for i in 0 1; do
  until grep -q '^event: ready' "$work/c$i.out" 2>/dev/null; do sleep 0.05; done
  c0[i]=$(cpu "${pids[i]}")
done
for k in $(seq 1 "$N"); do
  psql -qXAt -c "SELECT sse_publish('ab.x', (SELECT json_build_object('i', $k, 'f', 1, 'rows',
    json_agg(json_build_object('k', g, 'v', md5(g::text)))) FROM generate_series(1, $ROWS) g)::text)" >/dev/null
done
for i in 0 1; do
  t=$((SECONDS + 120))
  until [ "$(grep -c '^data: {"i"' "$work/c$i.out")" -ge "$N" ]; do
    [ $SECONDS -lt $t ] || { echo "client $i got $(grep -c '^data: {"i"' "$work/c$i.out") of $N"; exit 1; }; sleep 0.1
  done
done
size=$(psql -qXAt -c "SELECT max(length(data)) FROM sse_bridge.events")
hz=$(getconf CLK_TCK)
a=$(( $(cpu "${pids[0]}") - c0[0] )); b=$(( $(cpu "${pids[1]}") - c0[1] ))
awk -v a="$a" -v b="$b" -v hz="$hz" -v n="$N" -v s="$size" -v f="${FILTER:-none}" 'BEGIN {
  printf "%d events of %d bytes, filter %s\n", n, s, f
  printf "A: %.2f s CPU (%.2f ms/event)\nB: %.2f s CPU (%.2f ms/event)\n", a/hz, a/hz*1000/n, b/hz, b/hz*1000/n
  if (b > 0) printf "A/B: %.2f\n", a/b }'
