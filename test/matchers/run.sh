#!/usr/bin/env bash
# Shared matchers: cmocka unit tests, then the property test against the
# server's own semantics (needs the throwaway cluster from scripts/test.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../src
out=$here/build
mkdir -p "$out"
CFLAGS="-std=c11 -Wall -Wextra -Werror -g -I$src"
cc $CFLAGS "$here/unit.c" "$src/sse_match.c" "$src/sse_filter.c" -ljansson -lcmocka -o "$out/unit"
cc $CFLAGS -I"$(pg_config --includedir)" "$here/property.c" "$src/sse_match.c" "$src/sse_filter.c" \
  -ljansson -lpq -o "$out/property"

"$out/unit"

db=sse_matchers
dropdb --if-exists "$db" >/dev/null 2>&1 || true
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1 || true' EXIT
psql -qX -d "$db" -c "CREATE EXTENSION sse_bridge" >/dev/null
PGDATABASE=$db "$out/property" "${SSE_PROPERTY_PAIRS:-5000}"
