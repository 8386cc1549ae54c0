#!/usr/bin/env bash
# Publish throughput: sse_publish against a plain INSERT + pg_notify into an
# equivalent table, with 1 and 20 events per transaction, at 1 and 8 clients.
# Prints events/s for both and their ratio (target: >= 0.85).
#
#   bench/publish/run.sh
#   BENCH_SECONDS=10 REPEAT=3 bench/publish/run.sh
#
# Both sides make the same number of round trips per transaction: BEGIN, one
# statement per event, COMMIT.  The baseline's last statement of a
# transaction also sends one NOTIFY with the last id, as sse_publish does
# at commit.  Each measurement is repeated REPEAT times, alternating the
# two sides, and the best run of each side is kept.  Starts its own
# throwaway cluster; needs the extension installed (make install).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-6}
REPEAT=${REPEAT:-2}

. bench/publish/common.sh
publish_bench_setup

# run SCRIPT CLIENTS -> transactions per second
run() {
  psql -qX -c "TRUNCATE bench_plain, sse_bridge.events" -c "VACUUM ANALYZE bench_plain, sse_bridge.events" >/dev/null
  "$SSE_PGBIN/pgbench" -n -M prepared -T "$SECS" -c "$2" -j "$2" -f "$1" 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}

best() { printf '%s\n' "$@" | sort -g | tail -1; }

printf '%-12s %-8s %14s %14s %7s\n' "events/txn" "clients" "plain ev/s" "sse ev/s" "ratio"
status=0
for n in 1 20; do
  write_scripts "$n"
  for c in 1 8; do
    plain=(); sse=()
    for ((r = 0; r < REPEAT; r++)); do
      plain+=("$(run "$work/plain_$n.sql" "$c")")
      sse+=("$(run "$work/sse_$n.sql" "$c")")
    done
    p=$(best "${plain[@]}"); s=$(best "${sse[@]}")
    awk -v n="$n" -v c="$c" -v p="$p" -v s="$s" 'BEGIN {
      printf "%-12d %-8d %14.0f %14.0f %7.2f\n", n, c, p * n, s * n, s / p }'
    awk -v p="$p" -v s="$s" 'BEGIN { exit !(s / p < 0.85) }' && status=1
  done
done
[ "$status" -eq 0 ] && echo "all ratios >= 0.85" || echo "some ratios are below 0.85"
