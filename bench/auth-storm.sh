#!/usr/bin/env bash
# The token reconnect storm (bench/auth-storm.mjs) on a throwaway cluster:
# opens per second of 10,000 clients without a token, with RS256 tokens
# and the verification cache, and with RS256 tokens never seen before.
# Not part of make test or make bench.
#
#   bench/auth-storm.sh [CLIENTS] [PARALLEL]     (defaults 10000 200)
#
# Builds the bridge; expects the extension installed (make install).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s bridge/sse-bridge >/dev/null
cl=$(scripts/pgcluster.sh start)
eval "$cl"
export SSE_PGDIR PGHOST PGPORT PGUSER
trap 'scripts/pgcluster.sh stop "$SSE_PGDIR"' EXIT
createdb sse_storm
psql -qX -d sse_storm -c 'CREATE EXTENSION sse_bridge'
ulimit -n "$(ulimit -Hn)"
node bench/auth-storm.mjs "$PWD/bridge/sse-bridge" sse_storm "${1:-10000}" "${2:-200}"
