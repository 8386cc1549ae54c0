#!/usr/bin/env bash
# Token authentication on the wire (Node 20, no packages): every refusal
# of docs/auth.md against a running bridge, the authorization of patterns
# and filters, owned subscriptions, expiry during a stream, SIGHUP key
# reloads, the README's signing example run as written, and that no token
# reaches a log.  Keys and tokens are made by main.mjs with node's
# crypto.  See main.mjs for the checks.
#
# Needs the cluster environment exported by scripts/test.sh (PGHOST,
# PGPORT, PGUSER) with the extension installed.  Creates its own database,
# starts its own bridges on free loopback ports, and stops everything it
# started on exit.  Prints one line per check and "N passed, N failed".
#
#   AUTH_KEEP=1     keep the logs and keys in the temporary directory
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for v in PGHOST PGPORT; do
  if [ -z "${!v:-}" ]; then
    echo "auth: $v is not set; run through make test (scripts/test.sh)" >&2
    echo "0 passed, 1 failed"; exit 1
  fi
done
export PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT

bridge=${AUTH_BRIDGE_BIN:-$root/bridge/sse-bridge}
[ -x "$bridge" ] || { echo "auth: $bridge is missing; build it with make" >&2; echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d /tmp/sse_auth.XXXXXX)
pidfile=$tmp/pids
: >"$pidfile"
db=sse_auth_$$
db_made=0
rc=1

ours() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}')
  [ -n "$st" ] && [ "$st" = "$2" ]
}

cleanup() {
  local pid st
  while read -r pid st; do
    ours "$pid" "$st" && kill -KILL "$pid" 2>/dev/null
  done <"$pidfile"
  if [ "$db_made" = 1 ]; then
    psql -qX -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = '$db' AND pid <> pg_backend_pid()" >/dev/null 2>&1
    dropdb --if-exists "$db" >/dev/null 2>&1
  fi
  if [ "${AUTH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    echo "auth: logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! createdb "$db" || ! psql -qX -v ON_ERROR_STOP=1 -d "$db" -c 'CREATE EXTENSION sse_bridge' >"$tmp/setup.log" 2>&1; then
  cat "$tmp/setup.log" >&2
  echo "0 passed, 1 failed"; exit 1
fi
db_made=1

AUTH_DB=$db AUTH_BRIDGE=$bridge AUTH_TMP=$tmp AUTH_PIDFILE=$pidfile node "$here/main.mjs"
rc=$?
exit $rc
