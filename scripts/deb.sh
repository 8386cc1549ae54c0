#!/usr/bin/env bash
# make deb: the Debian packages, built from a copy of this tree (so the
# checkout keeps its own build), left in dist/:
#   postgresql-NN-sse-bridge  the extension, for each version of
#                             debian/pgversions installed here (pg_buildext)
#   sse-bridge                the daemon, its units, configuration and man page
# and their debug symbols in dist/debug/.
# Needs the build dependencies of debian/control (scripts/deps.sh installs
# them) and prints lintian's verdict on the result when lintian is there.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/sse_deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/sse-bridge

mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # tracked files and new ones not ignored, as they are in the work tree
  git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar --null -T - -cf - | tar -xf - -C "$src"
else
  tar --exclude=./dist --exclude=./bridge/build --exclude='*.o' -cf - . | tar -xf - -C "$src"
fi
# the control file for the versions installed here
(cd "$src" && pg_buildext updatecontrol >/dev/null 2>&1 || true)
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j2 >"$work/build.log" 2>&1); then
  tail -n 40 "$work/build.log"
  echo "make deb: dpkg-buildpackage failed (above)" >&2
  exit 1
fi
# lintian on the .changes: every package, the changes and buildinfo files
lint_rc=0
if command -v lintian >/dev/null; then
  rc=0; lintian --fail-on error "$work"/*.changes >"$work"/lintian.txt 2>&1 || rc=$?
  echo "lintian ($(grep -c '^E:' "$work"/lintian.txt) errors, $(grep -c '^W:' "$work"/lintian.txt) warnings; dist/lintian.txt):"
  sed 's/^/  /' "$work"/lintian.txt
  lint_rc=$rc
fi
mkdir -p dist/debug
cp "$work/build.log" dist/build.log
rm -f dist/*.deb dist/debug/*.deb dist/*.changes dist/*.buildinfo
# the debug symbols apart, so that `apt install ./dist/*.deb` takes the two packages
mv "$work"/*-dbgsym_*.deb dist/debug/
mv "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo dist/
for d in dist/*.deb dist/debug/*.deb; do
  printf '%s  %s bytes  installed %s KiB\n' "$(basename "$d")" "$(stat -c %s "$d")" "$(dpkg-deb -f "$d" Installed-Size)"
done
[ -f "$work/lintian.txt" ] && cp "$work/lintian.txt" dist/lintian.txt
[ "$lint_rc" -eq 0 ] || { echo "make deb: lintian reports errors" >&2; exit 1; }
