#!/usr/bin/env bash
# Static analysis of src/ and bridge/: the Clang Static Analyzer (the engine
# scan-build drives, run per file) and gcc -fanalyzer.  The step passes when
# every finding is listed in test/analyze/suppressions with its reason, and
# fails on any other finding or on a file the analyzers cannot compile.
# First both analyzers must find the planted defects of selfcheck.c, so a
# broken invocation cannot pass by finding nothing.
#
#   test/analyze/run.sh              everything (about a minute on 2 cores)
#   ANALYZE_TOOLS=clang test/analyze/run.sh    one analyzer (clang or gcc)
#   test/analyze/run.sh bridge/db.c  chosen files only
set -uo pipefail
cd "$(dirname "$0")/../.."
out=test/analyze/build
rm -rf "$out"; mkdir -p "$out"
tools=${ANALYZE_TOOLS:-clang gcc}
SUPP=test/analyze/suppressions

for t in $tools; do
  command -v "$t" >/dev/null || { echo "FAIL: $t not installed (scripts/deps.sh)"; exit 1; }
done
PG_INC=$("${PG_CONFIG:-pg_config}" --includedir-server) || { echo "FAIL: pg_config"; exit 1; }
BRIDGE_INC="-D_GNU_SOURCE -Isrc -Ibridge $(pkg-config --cflags libuv jansson libpq)"
# src/ is the server module (server headers); bridge/ is the daemon.
flags_for() {
  case "$1" in
    src/*|test/analyze/*) echo "-D_GNU_SOURCE -Isrc -I$PG_INC" ;;
    *) echo "$BRIDGE_INC" ;;
  esac
}

# analyze TOOL FILE: the tool's diagnostics into $out/TOOL/FILE.txt; exit
# status 0 when it compiled the file.
analyze() {
  local tool=$1 f=$2 log
  log="$out/$tool/${f//\//_}.txt"
  mkdir -p "$out/$tool"
  # shellcheck disable=SC2046
  case "$tool" in
    clang) clang --analyze -Xanalyzer -analyzer-output=text -std=c11 $(flags_for "$f") -o /dev/null "$f" >"$log" 2>&1 ;;
    gcc) gcc -fanalyzer -fdiagnostics-plain-output -std=c11 -O0 $(flags_for "$f") -c -o /dev/null "$f" >"$log" 2>&1 ;;
  esac || echo "error: $tool could not compile $f" >>"$log"
}
export -f analyze flags_for
export out PG_INC BRIDGE_INC

# findings TOOL: "file<TAB>function<TAB>checker<TAB>line: message", one per
# warning; the function is the definition enclosing the line (this code base
# starts every function name at column 0, after a line with its type).
findings() {
  local tool=$1
  cat "$out/$tool"/*.txt 2>/dev/null |
    sed -n 's/^\([^: ]*\.[ch]\):\([0-9]*\):[0-9]*: warning: \(.*\) \[\([^]]*\)\]$/\1\t\2\t\4\t\3/p' |
    sed 's/\t\[CWE-[0-9]*\]$//; s/ \[CWE-[0-9]*\]\t/\t/' |
    while IFS=$'\t' read -r file line checker msg; do
      checker=${checker#-W}
      fn=$(awk -v n="$line" 'NR > n { exit } /^[A-Za-z_][A-Za-z0-9_]*\(/ { f = $0; sub(/\(.*/, "", f) } END { print f }' "$file")
      printf '%s\t%s\t%s\t%s: %s\n' "$file" "${fn:--}" "$checker" "$line" "$msg"
    done | sort -u
}

failed=0
# ---- the analyzers must see planted defects
for t in $tools; do
  analyze "$t" test/analyze/selfcheck.c
  mv "$out/$t/test_analyze_selfcheck.c.txt" "$out/selfcheck-$t.txt"
  got=$(grep -c ': warning: ' "$out/selfcheck-$t.txt")
  if grep -q 'Dereference of null pointer\|dereference of NULL' "$out/selfcheck-$t.txt" &&
     grep -qi 'leak' "$out/selfcheck-$t.txt"; then
    echo "ok: $t finds the planted null dereference and leak ($got warnings)"
  else
    echo "FAIL: $t misses the planted defects of selfcheck.c:"; cat "$out/selfcheck-$t.txt"; failed=1
  fi
done

# ---- the code
if [ $# -gt 0 ]; then files=("$@"); else files=(src/*.c bridge/*.c); fi
t0=$SECONDS
for t in $tools; do
  for f in "${files[@]}"; do printf '%s %s\n' "$t" "$f"; done
done | xargs -P "${ANALYZE_JOBS:-2}" -n 2 bash -c 'analyze "$0" "$1"'

for t in $tools; do
  if errs=$(cat "$out/$t"/*.txt | grep -E '^error: |: error: '); then
    echo "FAIL: $t could not analyze every file:"; echo "$errs" | head -20; failed=1
  fi
  total=0; new=0
  while IFS=$'\t' read -r file fn checker what; do
    [ -n "$file" ] || continue
    total=$((total + 1))
    if awk -v t="$t" -v f="$file" -v fn="$fn" -v c="$checker" \
         '$1 == t && $2 == f && $3 == fn && $4 == c { found = 1 } END { exit !found }' "$SUPP"; then
      echo "$t	$file	$fn	$checker" >>"$out/used"
    else
      new=$((new + 1)); failed=1
      echo "FAIL: $t: $file: $fn: $what [$checker]"
    fi
  done < <(findings "$t")
  echo "$t: ${#files[@]} files, $total findings, $new not in $SUPP"
done
# suppressions that no longer match (the code changed): say so, to prune them
if [ $# -eq 0 ]; then
  while read -r t f fn c _; do
    case "$t" in ''|'#'*) continue ;; esac
    [[ " $tools " == *" $t "* ]] || continue
    grep -qxF "$t	$f	$fn	$c" "$out/used" 2>/dev/null || echo "note: unused suppression: $t $f $fn $c"
  done <"$SUPP"
fi
echo "analysis took $((SECONDS - t0)) s; full diagnostics in $out/"
[ $failed -eq 0 ]
