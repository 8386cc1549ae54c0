# test/timeline/lib.sh - what run.sh and failover.sh share (sourced).  The
# caller sets $tl_what (its name in messages), $tmp (its work directory,
# with bridge.log, live.jsonl and want.txt) before using these.

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
fail() { echo "FAIL - timeline ($tl_what): $*"; [ -f "$tmp/bridge.log" ] && tail -n 20 "$tmp/bridge.log"; exit 1; }
# poll CMD until it succeeds, for at most $1 seconds
until_ok() { local t=$1; shift; local end=$((SECONDS + t)); until "$@"; do
  [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.1; done; }
# has FILE PATTERN N: at least N events whose line matches PATTERN
has() { [ "$(grep -c "\"kind\":\"event\".*$2" "$1" 2>/dev/null || true)" -ge "$3" ]; }
build_sseclient() {
  cc -std=c11 -Wall -Wextra -Werror -O1 -Itest/lib -o "$tmp/sseclient" test/e2e/sseclient.c test/lib/sseparse.c || fail "build sseclient"
}

# resume_dead URL: resume URL from the position the live stream got for
# "dead 75" (of the abandoned timeline; left in $dead): a timeline reset
# first, then exactly the rows of want.txt, never an abandoned one.
resume_dead() {
  dead=$(python3 -c "import json,sys; print([json.loads(l)['id'] for l in open(sys.argv[1]) if '\"dead 75\"' in l][0])" "$tmp/live.jsonl")
  "$tmp/sseclient" --timeout 20 --until-event ready --last-event-id "$dead" "$1" >"$tmp/resume.jsonl" 2>/dev/null \
    || fail "resume from $dead"
  python3 - "$tmp/resume.jsonl" "$tmp/want.txt" "$dead" <<'PY' || fail "resume from a position of the abandoned timeline"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"event"' in l]
want = [l.rstrip('\n').split(' ', 1) for l in open(sys.argv[2])]
assert ev[0]['event'] == 'reset' and json.loads(ev[0]['data']).get('timeline') is True, ev[0]
got = [[e['id'].split('-')[0], e['data']] for e in ev if e['event'] == 'message']
assert got == want, f'{got[:3]} want {want[:3]}'
print(f'resume from {sys.argv[3]}: timeline reset at {ev[0]["id"]}, then the {len(got)} rows of the current log')
PY
}
