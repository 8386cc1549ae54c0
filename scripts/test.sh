#!/usr/bin/env bash
# The project's test command (`make test`): install what is missing, build and
# install the extension and the bridge, start a throwaway cluster, run the
# pg_regress and isolation suites, then every test/*/run.sh in name order.
# The cluster is stopped and removed on exit, whatever happened.
#
#   PG=N     test PostgreSQL N alone: the machine's version runs everything
#            here (and the extension upgrade check); another version runs
#            only test/versions for N (a Debian chroot), see the README
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SSE_IN_CHROOT:-}" ]; then
  # a version chroot of test/versions: PG names its version
  scripts/deps.sh --core || exit 1
else
  # the machine's own version; PG only chooses what to run
  PG= scripts/deps.sh || exit 1
fi
# The bridges of the tests read no configuration file, not even an
# installed /etc/sse-bridge/sse-bridge.conf (tests of the file pass --config).
export SSE_BRIDGE_CONFIG=
out=$(make -s -j2 all 2>&1) || { echo "$out" | tail -n 40; echo "build failed"; exit 1; }
out=$(make -s install 2>&1) || { echo "$out" | tail -n 40; echo "install failed"; exit 1; }

if [ -z "${SSE_IN_CHROOT:-}" ] && [ -n "${PG:-}" ]; then
  host_major=$("${PG_CONFIG:-pg_config}" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
  if [ "$PG" = "$host_major" ]; then
    export SSE_VERSIONS=none
  else
    # another version alone: its chroot, and pg_upgrade to it from this
    # machine's version (installed above)
    echo "=== versions (PostgreSQL $PG)"
    env -u PGHOST SSE_VERSIONS="$PG" test/versions/run.sh
    exit
  fi
fi

env_lines=$(scripts/pgcluster.sh start) || { echo "cannot start cluster"; exit 1; }
eval "$env_lines"
export SSE_PGDIR SSE_PGDATA SSE_PGBIN PGHOST PGPORT PGUSER PGDATABASE
# The bridge's default --workers is one per online CPU; the suites measure
# and signal one process unless they ask for workers (test/e2e, test/workers
# and test/torture do, with --workers or SSE_BRIDGE_WORKERS).
export SSE_BRIDGE_WORKERS=${SSE_BRIDGE_WORKERS:-1}
trap 'scripts/pgcluster.sh stop "$SSE_PGDIR"' EXIT

passed=0; failed=0; failures=()
step() {
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "--- ok: $name ($((SECONDS - t0))s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "--- FAILED: $name ($((SECONDS - t0))s)"
  fi
}

regress() {
  make -s installcheck || { cat regression.diffs output_iso/regression.diffs 2>/dev/null | head -200; return 1; }
}
step "pg_regress + isolation" regress

only=${SSE_TEST_ONLY:-}
for t in test/*/run.sh; do
  [ -x "$t" ] || continue
  name=$(basename "$(dirname "$t")")
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  step "$name" "$t"
done

echo
[ ${#failures[@]} -gt 0 ] && echo "failed steps: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
