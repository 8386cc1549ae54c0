#!/usr/bin/env bash
# The bridge's command line without a database: --check-config with a good
# and a bad configuration file (exit 0 / 2, the error naming FILE:LINE),
# precedence flags > environment > file as --check-config sees it, and the
# man page printed by --man lists exactly the options --help lists.
#   cli.sh BRIDGE     (run by test/bridge/run.sh)
set -uo pipefail
bridge=${1:?usage: cli.sh BRIDGE}
tmp=$(mktemp -d /tmp/sse_cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: cli: $1"; }
bad() { echo "FAIL: cli: $1"; fail=1; }

conf=$tmp/b.conf
printf '# test\nlisten = 127.0.0.1:1\nkeepalive = 5\npublic-channels = jobs.#\n' >"$conf"
out=$("$bridge" --config "$conf" --check-config 2>&1); rc=$?
[ $rc = 0 ] && grep -q "valid (configuration file: $conf)" <<<"$out" && ok "--check-config accepts a good file" \
  || bad "--check-config on a good file: exit $rc: $out"

printf 'keepalive = 5\n\n# c\nmax-clients = lots\n' >"$conf"
out=$("$bridge" --config "$conf" --check-config 2>&1); rc=$?
[ $rc = 2 ] && [ "$out" = "sse-bridge: $conf:4: invalid value \"lots\" for max-clients" ] && ok "a bad value names FILE:LINE, exit 2" \
  || bad "bad value: exit $rc: $out"
printf 'keepalive = 5\nkeepalive: 6\n' >"$conf"
out=$("$bridge" --config "$conf" --check-config 2>&1); rc=$?
[ $rc = 2 ] && grep -q "^sse-bridge: $conf:2: missing \"=\"" <<<"$out" && ok "a line without = names FILE:LINE" \
  || bad "missing =: exit $rc: $out"
printf 'listen-on = x\n' >"$conf"
out=$("$bridge" --config "$conf" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "^sse-bridge: $conf:1: unknown setting \"listen-on\"" <<<"$out" && ok "an unknown name stops the start, exit 2" \
  || bad "unknown name: exit $rc: $out"
out=$("$bridge" --config "$tmp/none.conf" --check-config 2>&1); rc=$?
[ $rc = 2 ] && grep -q "cannot read the configuration file $tmp/none.conf" <<<"$out" && ok "a missing --config file is an error" \
  || bad "missing file: exit $rc: $out"

# precedence, seen through a bad value at each level: the highest wins
printf 'keepalive = file\n' >"$conf"
out=$(SSE_BRIDGE_KEEPALIVE=5 "$bridge" --config "$conf" --check-config 2>&1); rc=$?
# the file is read (and refused) before the environment would override it
[ $rc = 2 ] && grep -q ":1: invalid value \"file\"" <<<"$out" && ok "every line of the file is checked, even one the environment overrides" \
  || bad "file under env: exit $rc: $out"
printf 'keepalive = 0\n' >"$conf"
out=$(SSE_BRIDGE_KEEPALIVE=5 "$bridge" --config "$conf" --check-config 2>&1); rc=$?
[ $rc = 0 ] && ok "environment over file" || bad "environment over file: exit $rc: $out"
out=$(SSE_BRIDGE_KEEPALIVE=0 "$bridge" --config "$conf" --keepalive 3 --check-config 2>&1); rc=$?
[ $rc = 0 ] && ok "flag over environment" || bad "flag over environment: exit $rc: $out"
out=$(SSE_BRIDGE_KEEPALIVE=0 "$bridge" --config "" --check-config 2>&1); rc=$?
[ $rc = 2 ] && ok "environment over defaults" || bad "environment over defaults: exit $rc: $out"

# the man page and --help: the same options
"$bridge" --help >"$tmp/help" || bad "--help exit $?"
"$bridge" --man >"$tmp/man" || bad "--man exit $?"
help_opts=$(grep -o -- '--[a-z][a-z-]*' "$tmp/help" | sort -u)
man_opts=$(sed -n 's/^\.BI\{0,1\} "\(.*\)".*/\1/p' "$tmp/man" | sed 's/\\-/-/g' | grep -o -- '--[a-z][a-z-]*' | sort -u)
if [ -n "$help_opts" ] && [ "$help_opts" = "$man_opts" ]; then
  ok "the man page lists the $(wc -l <<<"$help_opts") options --help lists"
else
  bad "man page and --help differ:"; diff <(echo "$help_opts") <(echo "$man_opts")
fi
man8=$(dirname "$bridge")/sse-bridge.8
if [ -f "$man8" ]; then
  cmp -s "$man8" "$tmp/man" && ok "the built $man8 is what --man prints" || bad "$man8 differs from --man"
fi
if command -v groff >/dev/null; then
  warn=$(groff -man -Tutf8 -ww -z "$tmp/man" 2>&1)
  [ -z "$warn" ] && ok "groff reads the man page without warnings" || bad "groff: $warn"
fi

# The configuration file the package ships (debian/sse-bridge.conf) names
# every setting, commented out with its default or set; all of it is valid.
shipped=$(dirname "$0")/../../debian/sse-bridge.conf
if [ -f "$shipped" ]; then
  sed -n 's/^#\{0,1\}\([a-z][a-z-]*\) =.*/\1/p' "$shipped" | sort >"$tmp/shipped.names"
  "$bridge" --help | awk '/^  --/ && $1 != "--config" && $1 != "--check-config" && $1 != "--man" {print substr($1, 3)}' | sort >"$tmp/help.names"
  sed 's/^#\([a-z][a-z-]* =\)/\1/' "$shipped" >"$tmp/shipped.conf"
  if ! diff -u "$tmp/help.names" "$tmp/shipped.names"; then
    bad "the shipped configuration does not name every setting once"
  elif out=$("$bridge" --config "$tmp/shipped.conf" --check-config 2>&1) && out=$("$bridge" --config "$shipped" --check-config 2>&1); then
    ok "the shipped configuration names all $(wc -l <"$tmp/help.names") settings, valid as shipped and uncommented"
  else
    bad "the shipped configuration: $out"
  fi
fi

# Under journald (JOURNAL_STREAM names stderr's device:inode) a line has its
# priority as "<N>" and no timestamp; otherwise the timestamp stays.  The
# log line: the bridge cannot resolve its --listen address (exit 1).
log=$tmp/stderr; : >"$log"
js=$(stat -c '%d:%i' "$log")
JOURNAL_STREAM=$js "$bridge" --config "" --listen nowhere --db 'host=/nonexistent' 2>>"$log"; rc=$?
if [ $rc = 1 ] && grep -q '^<3>error: cannot resolve --listen nowhere' "$log" && ! grep -qv '^<[0-7]>' "$log"; then
  ok "under journald: priority prefixes, no timestamps ($(head -n1 "$log"))"
else
  bad "journald format: exit $rc: $(cat "$log")"
fi
# a refused setting, before any log line, carries the error priority too
: >"$log.3"; js3=$(stat -c '%d:%i' "$log.3")
JOURNAL_STREAM=$js3 "$bridge" --config "" --keepalive never 2>>"$log.3"; rc=$?
[ $rc = 2 ] && [ "$(cat "$log.3")" = '<3>sse-bridge: command line: invalid value "never" for keepalive' ] \
  && ok "under journald a refused setting is logged as an error" || bad "journald refusal: exit $rc: $(cat "$log.3")"
: >"$log.2"
JOURNAL_STREAM=$js "$bridge" --config "" --listen nowhere --db 'host=/nonexistent' 2>>"$log.2"; rc=$?
if [ $rc = 1 ] && grep -q '^[0-9-]*T[0-9:.]*Z sse-bridge error: cannot resolve' "$log.2"; then
  ok "a JOURNAL_STREAM that is not stderr keeps the timestamps"
else
  bad "not journald: exit $rc: $(cat "$log.2")"
fi
# one version everywhere: the daemon, the extension it ships with, the package
root=$(cd "$(dirname "$0")/../.." && pwd)
ext=$(sed -n "s/^default_version *= *'\([0-9.]*\)'.*/\1/p" "$root/sse_bridge.control")
deb=$(sed -n '1s/^sse-bridge (\([^)]*\)).*/\1/p' "$root/debian/changelog")
bin=$("$bridge" --version 2>&1 | sed -n 's/^sse-bridge //p')
[ -n "$ext" ] && [ "$bin" = "$ext.0" ] && [ "$deb" = "$ext.0" ] \
  && ok "one version: the daemon $bin, the package $deb, the extension $ext" \
  || bad "versions differ: the daemon '$bin', the package '$deb', the extension '$ext' (want $ext.0 for both)"

exit $fail
