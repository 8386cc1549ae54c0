#!/usr/bin/env bash
# Bridge include- and call-cycle check (layers.py), unit tests (cmocka), plain and under AddressSanitizer +
# UndefinedBehaviorSanitizer, the command line (cli.sh: configuration file,
# --check-config, man page, journald log format), then a smoke run of the
# sanitized bridge and the service test (service.sh: reload, sd_notify)
# against the test cluster when one is configured (PGHOST etc.) and the
# extension is installed.  Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=test/bridge/build
mkdir -p "$B"

CC=${CC:-cc}
PKG_CFLAGS=$(pkg-config --cflags libuv jansson libpq cmocka libcrypto)
PKG_LIBS="$(pkg-config --libs libuv jansson libpq cmocka libcrypto) -lhttp_parser"
CFLAGS_COMMON="-std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -Isrc -Ibridge -Itest/bridge $PKG_CFLAGS"
SAN="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
SHARED="src/sse_match.c src/sse_filter.c"
# Each test links only the modules it needs (and so proves they need no more).
STREAM_LAYER="bridge/stream.c bridge/subdef.c bridge/client.c bridge/request.c bridge/route.c bridge/query.c
  bridge/scope.c bridge/resp.c bridge/outq.c bridge/frame.c bridge/wire.c bridge/event.c bridge/hub.c
  bridge/hmap.c bridge/ring.c bridge/logpos.c bridge/logread.c bridge/db.c bridge/work.c bridge/config.c bridge/log.c
  bridge/metrics.c bridge/prune.c bridge/replica.c bridge/preflight.c bridge/static.c bridge/mem.c
  bridge/auth.c bridge/jwt.c bridge/filtjson.c"

declare -A DEPS=(
  [test_frame]="bridge/frame.c bridge/wire.c bridge/outq.c bridge/mem.c bridge/logpos.c"
  [test_query]="bridge/query.c"
  [test_scope]="bridge/scope.c"
  [test_http]="bridge/request.c bridge/route.c bridge/query.c bridge/scope.c"
  [test_hub]="bridge/hub.c bridge/hmap.c bridge/event.c bridge/frame.c bridge/wire.c bridge/mem.c bridge/logpos.c"
  [test_subdef]="bridge/subdef.c bridge/mem.c"
  [test_client]="$STREAM_LAYER"
  [test_config]="bridge/config.c bridge/log.c bridge/scope.c"
  [test_shr]="bridge/shr.c bridge/event.c bridge/frame.c bridge/wire.c bridge/mem.c bridge/logpos.c bridge/log.c"
  [test_jwt]="bridge/jwt.c bridge/filtjson.c bridge/scope.c"
)

failed=0; ran=0

# The module graph must stay acyclic (lower layers call upward only through
# callbacks that main.c wires): by #include, and by calls between the
# daemon's objects (nm's undefined-symbol edges).
if ! make -s bridge/sse-bridge >/dev/null; then
  echo "FAIL: bridge build"; failed=$((failed + 1))
elif layers=$(python3 test/bridge/layers.py bridge --objects bridge/build 2>&1); then
  echo "ok: no include or call cycle among bridge modules ($(grep -c '^include' <<<"$layers") include layers, $(grep -c '^call' <<<"$layers") call layers)"
else
  echo "FAIL: $layers"; failed=$((failed + 1))
fi
build_and_run() {   # $1 = variant name, $2 = extra flags
  local variant=$1 flags=$2 t
  for t in test_frame test_query test_scope test_http test_hub test_subdef test_client test_config test_shr test_jwt; do
    local out="$B/$variant-$t"
    # shellcheck disable=SC2086
    if ! $CC $flags $CFLAGS_COMMON -o "$out" "test/bridge/$t.c" ${DEPS[$t]} $SHARED $PKG_LIBS; then
      echo "FAIL: build $variant $t"; failed=$((failed + 1)); continue
    fi
    ran=$((ran + 1))
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 "$out" >"$out.log" 2>&1; then
      cat "$out.log"; echo "FAIL: $variant $t"; failed=$((failed + 1))
    else
      echo "ok: $variant $t ($(grep -c '^\[       OK' "$out.log") cases)"
    fi
  done
}

build_and_run plain "-O2 -g"
build_and_run asan "$SAN"

# Allocation failure at every point of the output paths (test_mem) and of
# request parsing and routing (test_oom), and of token checks (test_authoom)
# (bridge/mem.h's injector:
# -DBRIDGE_FAULT_INJECT and ld --wrap of the allocator).
declare -A FI_DEPS=(
  [test_mem]="$STREAM_LAYER"
  [test_oom]="bridge/request.c bridge/route.c bridge/query.c bridge/scope.c bridge/subdef.c bridge/resp.c
    bridge/frame.c bridge/config.c bridge/log.c bridge/mem.c"
  [test_authoom]="bridge/auth.c bridge/jwt.c bridge/filtjson.c bridge/request.c bridge/route.c bridge/query.c
    bridge/scope.c bridge/config.c bridge/log.c bridge/mem.c"
)
fi_test() {   # $1 = test name
  local t=$1 out="$B/fi-$1"
  # shellcheck disable=SC2086
  if ! $CC $SAN -DBRIDGE_FAULT_INJECT $CFLAGS_COMMON -o "$out" "test/bridge/$t.c" ${FI_DEPS[$t]} $SHARED \
      $PKG_LIBS -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup; then
    echo "FAIL: build fi $t"; failed=$((failed + 1)); return
  fi
  ran=$((ran + 1))
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 "$out" >"$out.log" 2>&1; then
    cat "$out.log"; echo "FAIL: fi $t"; failed=$((failed + 1))
  else
    echo "ok: fi $t ($(grep -c '^\[       OK' "$out.log") cases; $(grep -h 'allocation points' "$out.log" | tr '\n' ' '))"
  fi
}
fi_test test_mem
fi_test test_oom
fi_test test_authoom

# The command line without a database: the configuration file and
# --check-config, and the man page against --help.
if test/bridge/cli.sh bridge/sse-bridge; then :; else failed=$((failed + 1)); fi

# ---- smoke run of the sanitized daemon ----
smoke() {
  make -s bridge-asan >/dev/null || { echo "FAIL: bridge-asan build"; return 1; }
  if [ -z "${PGHOST:-}" ]; then echo "skip: smoke run (no PGHOST)"; return 0; fi
  if [ "$(psql -XtAc "SELECT count(*) FROM pg_available_extensions WHERE name='sse_bridge'" 2>/dev/null)" != 1 ]; then
    echo "skip: smoke run (extension not installed)"; return 0
  fi
  local db=sse_bridge_smoke_$$ port log out pid rc
  createdb "$db" && psql -qX -d "$db" -c 'CREATE EXTENSION sse_bridge' >/dev/null || return 1
  log="$B/smoke-bridge.log"; out="$B/smoke-stream.out"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ASAN_OPTIONS=detect_leaks=1 bridge/build/asan/sse-bridge --db "dbname=$db" --listen "127.0.0.1:$port" \
    --public-channels 'smoke.#' --keepalive 1 >"$log" 2>&1 &
  pid=$!
  local ok=0
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && { ok=1; break; }
    sleep 0.1
  done
  [ $ok = 1 ] || { echo "FAIL: bridge not healthy"; cat "$log"; kill $pid; dropdb "$db"; return 1; }
  # Stream until the event arrives (curl exits when the marker is seen).
  (curl -sN "http://127.0.0.1:$port/events?channel=smoke.%23" | tee "$out" | grep -q -m1 'data: line2') &
  local reader=$!
  for _ in $(seq 1 100); do grep -q 'event: ready' "$out" 2>/dev/null && break; sleep 0.1; done
  psql -qX -d "$db" -c "SELECT sse_publish('smoke.a', E'line1\nline2', 'hello')" >/dev/null
  for _ in $(seq 1 100); do kill -0 $reader 2>/dev/null || break; sleep 0.1; done
  local got; got=$(tr -d '\r' <"$out")
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/events?channel=private")
  kill -TERM $pid; wait $pid; rc=$?
  kill $reader 2>/dev/null; pkill -P $reader 2>/dev/null
  dropdb "$db"
  if ! grep -q '^event: hello$' <<<"$got" || ! grep -q '^data: line1$' <<<"$got" || ! grep -q '^id: ' <<<"$got"; then
    echo "FAIL: smoke stream did not carry the event:"; echo "$got"; cat "$log"; return 1
  fi
  [ "$code" = 403 ] || { echo "FAIL: private channel gave $code, want 403"; return 1; }
  if [ $rc -ne 0 ] || grep -q 'ERROR: \(Address\|Leak\)Sanitizer\|runtime error' "$log"; then
    echo "FAIL: sanitized bridge exit $rc"; cat "$log"; return 1
  fi
  echo "ok: smoke (sanitized bridge streamed an event, 403 on a private channel, clean SIGTERM exit)"
}
if smoke; then :; else failed=$((failed + 1)); fi

# The bridge as a service: configuration file, reload, sd_notify (needs the cluster).
if [ -n "${PGHOST:-}" ] && [ "$(psql -XtAc "SELECT count(*) FROM pg_available_extensions WHERE name='sse_bridge'" 2>/dev/null)" = 1 ]; then
  # the sanitized build (smoke made it): a leak or UB in the reload paths fails the exit status
  if ASAN_OPTIONS=detect_leaks=1 test/bridge/service.sh bridge/build/asan/sse-bridge; then :; else failed=$((failed + 1)); fi
  # the same with a supervisor and two workers
  if ASAN_OPTIONS=detect_leaks=1 test/bridge/service.sh bridge/build/asan/sse-bridge 2; then :; else failed=$((failed + 1)); fi
else
  echo "skip: service (no cluster)"
fi

echo "bridge tests: $ran binaries run, $failed failures"
[ $failed -eq 0 ]
