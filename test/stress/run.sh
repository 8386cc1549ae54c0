#!/usr/bin/env bash
# Commit-order stress test: >= 16 publishers with random commit delays,
# rollbacks and savepoints against a tailing reader (see stress.c).
#   test/stress/run.sh            sse_publish; must print skipped=0 duplicated=0
#   test/stress/run.sh --plain    plain bigserial INSERTs; shows the skips
# Extra arguments go to the program (--publishers N, --rows N, ...).
# Needs the PG* environment of a running cluster with sse_bridge installed.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p build
cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -I"$(pg_config --includedir)" \
  stress.c -o build/stress -L"$(pg_config --libdir)" -lpq

db="sse_stress_$$"
createdb "$db"
trap 'dropdb --if-exists "$db"' EXIT
psql -qX -d "$db" -c "CREATE EXTENSION sse_bridge"

build/stress --dbname "$db" --publishers 16 --rows 100000 "$@"
