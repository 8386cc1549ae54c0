# Shared by run.sh and ab.sh (sourced, from the repository root): the cluster
# the benchmark owns, the baseline table and the pgbench scripts of both
# sides, so that the A/B measures exactly the workload run.sh reports.

# Never talk to, or stop, a cluster named by the caller's environment: only
# the one started here is used, and only that one is stopped on exit.
unset SSE_PGDIR SSE_PGDATA SSE_PGBIN PGHOST PGHOSTADDR PGPORT PGUSER \
  PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD
own_dir=
work=
cleanup() {
  if [ -n "$own_dir" ]; then scripts/pgcluster.sh stop "$own_dir"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# Start the cluster, create the extension and the baseline table; sets
# $work to a fresh temporary directory.
publish_bench_setup() {
  local cluster
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
}

# write_scripts N: $work/sse_N.sql and $work/plain_N.sql, N events a
# transaction.  Both sides make the same round trips: BEGIN, one statement
# per event, COMMIT; the baseline's last statement also sends one NOTIFY
# with the last id, as sse_publish does at commit.
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
