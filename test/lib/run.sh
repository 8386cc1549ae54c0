#!/usr/bin/env bash
# The test clients' shared Server-Sent Events parsers: test/lib/sseparse.c
# (used by test/e2e/sseclient.c, test/torture/tclient.c and
# test/memory/slowread.c) under cmocka, plain and under ASan+UBSan, and
# test/lib/sse.mjs (used by the e2e, browser and abuse suites) under node.
# Needs no cluster.  Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")"
B=build
mkdir -p "$B"
CC=${CC:-cc}
CFLAGS="-std=c11 -Wall -Wextra -Werror $(pkg-config --cflags cmocka)"
LIBS=$(pkg-config --libs cmocka)
failed=0

for v in plain asan; do
  extra="-O1 -g"
  [ "$v" = asan ] && extra="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  # shellcheck disable=SC2086
  if ! $CC $CFLAGS $extra -o "$B/test_sseparse.$v" test_sseparse.c sseparse.c $LIBS; then
    echo "FAIL build test_sseparse ($v)"; failed=1; continue
  fi
  if "$B/test_sseparse.$v"; then echo "ok   test_sseparse ($v)"; else echo "FAIL test_sseparse ($v)"; failed=1; fi
done

if [ -f test_sse.mjs ]; then
  if node test_sse.mjs; then echo "ok   test_sse.mjs"; else echo "FAIL test_sse.mjs"; failed=1; fi
fi
exit $failed
