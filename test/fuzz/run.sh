#!/usr/bin/env bash
# libFuzzer targets for the bridge's input handling, built with clang
# -fsanitize=fuzzer,address,undefined and run for a bounded time each
# (FUZZ_SECONDS, default 12 s per target, about 96 s in total), seeded from
# test/fuzz/corpus/<target>.  New inputs go to a scratch copy of the corpus,
# so the committed seeds stay small.  Exits non-zero on any crash.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=test/fuzz/build
mkdir -p "$B"
SECS=${FUZZ_SECONDS:-12}
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "FAIL: $CC not found"; exit 1; }

PKG_CFLAGS=$(pkg-config --cflags jansson)
PKG_LIBS="$(pkg-config --libs jansson libcrypto) -lhttp_parser"
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Isrc -Ibridge $PKG_CFLAGS $(pkg-config --cflags libuv)"
SHARED="src/sse_match.c src/sse_filter.c"

declare -A DEPS=(
  [http]="bridge/request.c bridge/route.c bridge/query.c bridge/scope.c"
  [query]="bridge/query.c bridge/logpos.c"
  [pattern]="bridge/scope.c"
  [filter]="bridge/hub.c bridge/hmap.c bridge/event.c bridge/frame.c bridge/wire.c bridge/mem.c bridge/logpos.c"
  [frame]="bridge/frame.c bridge/wire.c bridge/mem.c bridge/logpos.c"
  [subdef]="bridge/subdef.c bridge/mem.c"
  [jwt]="bridge/jwt.c bridge/filtjson.c"
  [ipc]="bridge/ipc.c bridge/log.c"
)
# Targets that run a libuv loop and build libpq results.
declare -A EXTRA=(
  [ipc]="-I$(pg_config --includedir) $(pkg-config --libs libuv) -lpq"
)

failed=0
for t in http query pattern filter frame subdef jwt ipc; do
  bin="$B/fuzz_$t"
  # shellcheck disable=SC2086
  if ! $CC $FLAGS -o "$bin" "test/fuzz/fuzz_$t.c" ${DEPS[$t]} $SHARED $PKG_LIBS ${EXTRA[$t]:-}; then
    echo "FAIL: build fuzz_$t"; failed=$((failed + 1)); continue
  fi
  work="$B/corpus_$t"; rm -rf "$work"; mkdir -p "$work"
  cp test/fuzz/corpus/$t/* "$work"/ 2>/dev/null
  if "$bin" -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
       -artifact_prefix="$B/crash-$t-" -print_final_stats=1 "$work" >"$B/fuzz_$t.log" 2>&1; then
    echo "ok: fuzz_$t ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$B/fuzz_$t.log" | grep -o '[0-9]*$') runs in ${SECS}s)"
  else
    tail -40 "$B/fuzz_$t.log"; echo "FAIL: fuzz_$t (artifacts in $B)"; failed=$((failed + 1))
  fi
done
echo "fuzz: $failed failures"
[ $failed -eq 0 ]
