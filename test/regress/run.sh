#!/usr/bin/env bash
# make installcheck from a checkout the server cannot read (a step of
# `make test`, after pg_regress + isolation ran from this tree): a copy of
# the tree in a mode-700 directory of the invoking user runs the suite
# that loads a test C module (sql/security.sql).  The module must come
# from $libdir (test/regress/Makefile installs it), never from the tree.
# Needs the server to run as another user than this script (make test runs
# as root, the cluster as postgres).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

if [ -n "${PGHOST:-}" ] && [ -d "$PGHOST" ] && [ "$(stat -c %u "$PGHOST")" = "$(id -u)" ]; then
  echo "regress: the server runs as this user, so it can read any checkout: nothing to show"
  exit 0
fi
priv=$(mktemp -d "${HOME:-/root}/.sse_unreadable.XXXXXX") || exit 1
trap 'rm -rf "$priv"' EXIT
chmod 700 "$priv"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$priv" -xf -
else
  (cd "$root" && tar --exclude=./.git --exclude='*.o' --exclude='*.so' -cf - .) | tar -C "$priv" -xf -
fi
rm -rf "$priv/results" "$priv/regression.diffs"
if ! out=$(make -s -C "$priv" installcheck REGRESS=security ISOLATION= 2>&1); then
  echo "$out" | tail -n 20
  head -n 40 "$priv/regression.diffs" 2>/dev/null
  echo "FAILED: make installcheck from a checkout the server cannot read ($priv, mode 700)"
  exit 1
fi
echo "ok: make installcheck (security) from a checkout the server cannot read (mode 700 under ${HOME:-/root})"
