#!/usr/bin/env bash
# Print a TCP port that nothing on this machine listens on.  Ports are taken
# from 20000-31999, below Linux's ephemeral range (32768+), so that client
# sockets (a benchmark opens 20,000) can never hold a port a server is about
# to bind again.  A port can still be taken between this check and the bind:
# callers retry.
#   scripts/free-port.sh [N]   N distinct ports, one a line (default 1)
set -euo pipefail
n=${1:-1}
declare -A seen=()
found=0
for _ in $(seq 1 1000); do
  p=$(( (RANDOM % 12000) + 20000 ))
  [ -n "${seen[$p]:-}" ] && continue
  if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
    seen[$p]=1; echo "$p"; found=$((found + 1))
    [ "$found" -ge "$n" ] && exit 0
  fi
done
echo "free-port: no free port found" >&2
exit 1
