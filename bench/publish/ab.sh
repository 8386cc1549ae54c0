#!/usr/bin/env bash
# A/B of two builds of the extension library on the publish benchmark of
# run.sh (same scripts, same baseline).
#
#   bench/publish/ab.sh OLD.so NEW.so
#   ROUNDS=7 BENCH_SECONDS=5 CELLS="1:8 20:8" bench/publish/ab.sh OLD.so NEW.so
#
# CELLS lists events/txn:clients pairs (default: all four cells of run.sh).
# One throwaway cluster; before each sse_publish run the extension's C
# functions are pointed at one library or the other (pg_proc.probin), so
# the installed library is left alone and both builds see the same cluster.
# Each round runs plain, A, plain, B (B's pair first on odd rounds); a
# build's ratio in a round is its events/s over the plain run just before
# it.  Prints the median ratio of each build over the rounds, the median
# of the per-round B/A ratios, and the median server CPU time per event
# (postmaster and all its children, backends included), which is far less
# sensitive than throughput to other load on the machine.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 A.so B.so" >&2; exit 2; }
lib_a=$(realpath "$1"); lib_b=$(realpath "$2")
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-5}
ROUNDS=${ROUNDS:-5}
CELLS=${CELLS:-"1:1 1:8 20:1 20:8"}

. bench/publish/common.sh
publish_bench_setup
chmod 755 "$work"
cp "$lib_a" "$work/A.so"; cp "$lib_b" "$work/B.so"
chmod 644 "$work"/*.so

libs_oid=$(psql -qXAtc "SELECT string_agg(oid::text, ',') FROM pg_proc WHERE probin = '\$libdir/sse_bridge'")

use_lib() {
  psql -qX -v ON_ERROR_STOP=1 -c "UPDATE pg_proc SET probin = '$1' WHERE oid IN ($libs_oid)" >/dev/null
}

# CPU time (clock ticks) of the server: the postmaster, its children, and
# the children it has reaped (the backends of finished runs).
server_ticks() {
  local pm p sum=0 t
  pm=$(head -1 "$SSE_PGDATA/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm"); do
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

# run SCRIPT CLIENTS -> "tps server-CPU-microseconds-per-transaction"
run() {
  local out t0 t1 tps txns
  psql -qX -c "TRUNCATE bench_plain, sse_bridge.events" -c "VACUUM ANALYZE bench_plain, sse_bridge.events" >/dev/null
  sleep 0.3
  t0=$(server_ticks)
  out=$("$SSE_PGBIN/pgbench" -n -M prepared -T "$SECS" -c "$2" -j "$2" -f "$1" 2>&1)
  sleep 0.3
  t1=$(server_ticks)
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
  txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*$/\1/p' <<<"$out")
  awk -v tps="$tps" -v n="$txns" -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s %.1f\n", tps, d * 1e6 / hz / n }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-6s %-7s %9s %9s %9s %7s %7s %7s | %8s %8s %8s\n' "ev/txn" "clients" "plain/s" "A ev/s" "B ev/s" \
  "A ratio" "B ratio" "B/A" "plain us" "A us" "B us"
for cell in $CELLS; do
  n=${cell%%:*}; c=${cell##*:}
  write_scripts "$n"
  pl=(); ta=(); tb=(); ra=(); rb=(); ba=(); cp=(); ca=(); cb=()
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2)); then order="B A"; else order="A B"; fi
    for which in $order; do
      read -r p pc <<<"$(run "$work/plain_$n.sql" "$c")"
      use_lib "$work/$which.so"
      read -r s sc <<<"$(run "$work/sse_$n.sql" "$c")"
      pl+=("$p"); cp+=("$pc")
      if [ "$which" = A ]; then ta+=("$s"); ca+=("$sc"); sa=$s; ra+=("$(awk -v p="$p" -v s="$s" 'BEGIN { print s / p }')")
      else tb+=("$s"); cb+=("$sc"); sb=$s; rb+=("$(awk -v p="$p" -v s="$s" 'BEGIN { print s / p }')"); fi
    done
    ba+=("$(awk -v a="$sa" -v b="$sb" 'BEGIN { print b / a }')")
    echo "  $n:$c round $r: A ${ra[-1]} B ${rb[-1]} cpu/txn plain ${cp[-1]} A ${ca[-1]} B ${cb[-1]}" >&2
  done
  awk -v n="$n" -v c="$c" -v p="$(median "${pl[@]}")" -v a="$(median "${ta[@]}")" \
      -v b="$(median "${tb[@]}")" -v ra="$(median "${ra[@]}")" -v rb="$(median "${rb[@]}")" \
      -v ba="$(median "${ba[@]}")" -v cp="$(median "${cp[@]}")" -v ca="$(median "${ca[@]}")" \
      -v cb="$(median "${cb[@]}")" 'BEGIN {
    printf "%-6d %-7d %9.0f %9.0f %9.0f %7.2f %7.2f %7.2f | %8.1f %8.1f %8.1f\n",
      n, c, p * n, a * n, b * n, ra, rb, ba, cp / n, ca / n, cb / n }'
done
