#!/usr/bin/env bash
# Abuse tests of bridge/sse-bridge, end to end on the wire (Node 20, no
# packages): connection churn with fd/RSS accounting (plain and ASan builds),
# SQL injection attempts, secrecy of non-public channels and subscription
# ids, slowloris, request smuggling and limits. See main.mjs for the checks.
#
# Needs the cluster environment exported by scripts/test.sh (PGHOST, PGPORT,
# PGUSER, SSE_PGDATA, SSE_PGBIN) with the extension installed. Creates its
# own database, starts its own bridges (each on a free loopback port, ready
# once /healthz answers), and stops everything it started on exit.
# Prints one line per check and "N passed, N failed"; exits non-zero on
# failure.
#
#   ABUSE_CYCLES=N      churn cycles per bridge (default 10000)
#   ABUSE_ONLY="a b"    run only these checks (trojan flood fdlimit methods filters wire inject secrecy slowloris cors
#                       mainstop faults churn asan asaninput)
#   ABUSE_FAIL_EVERY="3 7"  N values of the fault-injection check (default "3 7 13 31 61 127")
#   ABUSE_FAULT_ROUNDS=N    rounds of valid requests per N (default 60)
#   ABUSE_BRIDGE_BIN, ABUSE_BRIDGE_FI_BIN  other builds to test (default: this tree's)
#   ABUSE_KEEP=1        keep the logs in the temporary directory
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

summary() { echo "$1 passed, $2 failed"; }

for v in PGHOST PGPORT SSE_PGDATA SSE_PGBIN; do
  if [ -z "${!v:-}" ]; then
    echo "abuse: $v is not set; run through make test (scripts/test.sh)" >&2
    summary 0 1; exit 1
  fi
done
export PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT

bridge=${ABUSE_BRIDGE_BIN:-$root/bridge/sse-bridge}
if [ ! -x "$bridge" ]; then
  echo "abuse: $bridge is missing; build it with make" >&2
  summary 0 1; exit 1
fi

tmp=$(mktemp -d /tmp/sse_abuse.XXXXXX)
chmod 755 "$tmp"
pidfile=$tmp/pids
: >"$pidfile"
db=sse_abuse_$$
db_made=0

# Processes are recorded as "pid starttime" so that a pid is signalled only
# while it still names the process that was started.
ours() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}')
  [ -n "$st" ] && [ "$st" = "$2" ]
}

cleanup() {
  local pid st deadline
  if [ -s "$pidfile" ]; then
    while read -r pid st; do
      ours "$pid" "$st" && kill -TERM "$pid" 2>/dev/null
    done <"$pidfile"
    deadline=$((SECONDS + 6))
    while read -r pid st; do
      while ours "$pid" "$st" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      ours "$pid" "$st" && kill -KILL "$pid" 2>/dev/null
    done <"$pidfile"
  fi
  if [ "$db_made" = 1 ]; then
    # sessions of killed clients may linger for a moment
    psql -qX -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = '$db' AND pid <> pg_backend_pid()" >/dev/null 2>&1
    dropdb --if-exists "$db" >/dev/null 2>&1
    dropdb --if-exists --force "${db}_trojan" >/dev/null 2>&1
  fi
  if [ "${ABUSE_KEEP:-0}" = 1 ] || [ "${failed:-1}" != 0 ]; then
    [ -n "${kept_said:-}" ] || echo "abuse: logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The sanitizer build (the churn runs once against it).
asan=$root/bridge/build/asan/sse-bridge
if ! make -s -C "$root" bridge-asan >"$tmp/asan-build.log" 2>&1 || [ ! -x "$asan" ]; then
  cat "$tmp/asan-build.log" >&2
  asan=
fi

# The fault-injection build (check "faults").
fi=${ABUSE_BRIDGE_FI_BIN:-$root/bridge/build/fi/sse-bridge}
if [ -z "${ABUSE_BRIDGE_FI_BIN:-}" ] && { ! make -s -C "$root" bridge-fi >"$tmp/fi-build.log" 2>&1 || [ ! -x "$fi" ]; }; then
  cat "$tmp/fi-build.log" >&2
  fi=
fi

# The one-layer test builds of the search_path defences (check "trojan").
declare -A variant
if make -s -C "$root" bridge-variants >"$tmp/variants-build.log" 2>&1; then
  for v in nopin unqual bare; do variant[$v]=$root/bridge/build/$v/sse-bridge; done
else
  cat "$tmp/variants-build.log" >&2
fi

if ! createdb "$db" || ! psql -qX -v ON_ERROR_STOP=1 -d "$db" -f - >"$tmp/setup.log" 2>&1 <<'SQL'
CREATE EXTENSION sse_bridge;
-- canaries for the injection check: both must survive with their rows
CREATE TABLE abuse_canary (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO abuse_canary VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE TABLE x (id int);
INSERT INTO x VALUES (42);
-- control row for the churn publisher
CREATE TABLE abuse_ctl (stop boolean NOT NULL);
INSERT INTO abuse_ctl VALUES (true);
SQL
then
  cat "$tmp/setup.log" >&2
  db_made=1
  summary 0 1; failed=1; exit 1
fi
db_made=1

# SSE_PGDIR/server.log is where scripts/pgcluster.sh sends the server log
# (used to look at the statements the bridge sends, when available).
server_log=
for f in "${SSE_PGDIR:-}/server.log" "$SSE_PGDATA/../server.log"; do
  if [ -r "$f" ]; then server_log=$f; break; fi
done

out=$tmp/results.txt
ABUSE_DB=$db ABUSE_BRIDGE=$bridge ABUSE_BRIDGE_ASAN=$asan ABUSE_BRIDGE_FI=$fi ABUSE_TMP=$tmp \
  ABUSE_PIDFILE=$pidfile ABUSE_SERVER_LOG=$server_log \
  ABUSE_BRIDGE_NOPIN=${variant[nopin]:-} ABUSE_BRIDGE_UNQUAL=${variant[unqual]:-} ABUSE_BRIDGE_BARE=${variant[bare]:-} \
  node "$here/main.mjs" ${ABUSE_ONLY:-} 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

passed=$(grep -c '^ok - ' "$out")
failed=$(grep -c '^FAIL - ' "$out")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "FAIL - main.mjs exited with status $rc"
  failed=1
fi
echo
if [ "${ABUSE_KEEP:-0}" = 1 ] || [ "$failed" != 0 ]; then
  echo "abuse: logs kept in $tmp"; kept_said=1
fi
summary "$passed" "$failed"
[ "$failed" -eq 0 ]
