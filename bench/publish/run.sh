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

# Never talk to, or stop, a cluster named by the caller's environment: only
# the one started below is used, and only that one is stopped on exit.
unset SSE_PGDIR SSE_PGDATA SSE_PGBIN PGHOST PGHOSTADDR PGPORT PGUSER \
  PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD
own_dir=
work=
cleanup() {
  if [ -n "$own_dir" ]; then scripts/pgcluster.sh stop "$own_dir"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
cluster=$(scripts/pgcluster.sh start)
eval "$cluster"
own_dir=$SSE_PGDIR
export PGHOST PGPORT PGUSER PGDATABASE
work=$(mktemp -d)

psql -qX -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION sse_bridge;
-- the baseline: the same columns and indexes as sse_bridge.events
CREATE TABLE bench_plain (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL,
    event       text,
    data        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON bench_plain (channel, id) WHERE event = 'close';
SQL

payload='{"job": 42, "state": "running", "progress": 0.5}'
write_scripts() {
  local n=$1 i
  {
    echo "BEGIN;"
    for ((i = 1; i <= n; i++)); do
      echo "SELECT sse_publish('bench.jobs.42', '$payload');"
    done
    echo "COMMIT;"
  } >"$work/sse_$n.sql"
  {
    echo "BEGIN;"
    for ((i = 1; i < n; i++)); do
      echo "INSERT INTO bench_plain (channel, data) VALUES ('bench.jobs.42', '$payload');"
    done
    echo "WITH i AS (INSERT INTO bench_plain (channel, data) VALUES ('bench.jobs.42', '$payload') RETURNING id) SELECT pg_notify('bench_plain', 'e ' || id) FROM i;"
    echo "COMMIT;"
  } >"$work/plain_$n.sql"
}

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
