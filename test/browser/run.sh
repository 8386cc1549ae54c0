#!/usr/bin/env bash
# Real-browser tests: Debian's chromium driven by npm's puppeteer-core (no
# browser is downloaded), against bridges started by the tests, behind real
# nginx (TLS, HTTP/2, deploy/nginx.conf) and through the `make run` demo.
# Uses the throwaway cluster that scripts/test.sh exported and the e2e
# library (test/e2e/lib) to start bridges and read the log.
#
# A failing test saves a screenshot of its pages under test/browser/build/
# (the path is printed). Prints "N passed, N failed".
#
#   BROWSER_ONLY=regex   run only the matching tests
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for v in PGHOST PGPORT SSE_PGDATA SSE_PGBIN; do
  [ -n "${!v:-}" ] || { echo "browser: $v is not set; run through make test (scripts/test.sh)" >&2; echo "0 passed, 1 failed"; exit 1; }
done
for cmd in chromium nginx openssl; do
  command -v "$cmd" >/dev/null || { echo "browser: $cmd is missing; run scripts/deps.sh" >&2; echo "0 passed, 1 failed"; exit 1; }
done
export PGUSER=${PGUSER:-postgres}

tmp=$(mktemp -d /tmp/sse_browser.XXXXXX)
chmod 755 "$tmp"
pidfile=$tmp/pids
: >"$pidfile"
db=sse_browser
mkdir -p "$here/build"
rm -f "$here"/build/fail-*.png

# Stop what the tests recorded ("pid starttime", so a reused pid is spared).
cleanup() {
  local pid st now
  while read -r pid st; do
    now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $20}')
    [ -n "$now" ] && [ "$now" = "$st" ] && kill -KILL "$pid" 2>/dev/null
  done < <(tac "$pidfile")
  if [ "${status:-1}" = 0 ]; then rm -rf "$tmp"; else echo "browser: logs kept in $tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for d in "$here" "$root/test/e2e"; do
  if [ ! -d "$d/node_modules" ]; then
    (cd "$d" && npm ci --no-audit --no-fund >"$tmp/npm.log" 2>&1) || { cat "$tmp/npm.log" >&2; echo "0 passed, 1 failed"; exit 1; }
  fi
done

psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null &&
  psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c 'CREATE EXTENSION sse_bridge' >/dev/null ||
  { echo "browser: cannot create database $db"; echo "0 passed, 1 failed"; exit 1; }

# E2E_MAIN_URL and E2E_SSECLIENT are required by the e2e library but not
# used here: every test starts its own bridge.
E2E_BRIDGE_BIN=${SSE_E2E_BRIDGE:-$root/bridge/sse-bridge} E2E_DB=$db E2E_TMP=$tmp E2E_PIDFILE=$pidfile \
  E2E_MAIN_URL=unused E2E_SSECLIENT=unused E2E_RESULTS="$tmp/results.json" \
  node "$here/main.mjs"
status=$?
exit $status
