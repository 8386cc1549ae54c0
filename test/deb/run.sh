#!/usr/bin/env bash
# The Debian packages (a step of `make test`, as root):
#   1. make deb: postgresql-NN-sse-bridge and sse-bridge into dist/, with
#      lintian's verdict (no errors allowed);
#   2. a copy of a pristine minbase bookworm chroot (cached in
#      /var/cache/sse_bridge/chroot by test/versions/chroot.sh, with the
#      bookworm-updates and bookworm-security sources a bookworm machine has)
#      gets them with `apt-get install ./dist/*.deb`, so every dependency
#      comes from the archive; then, in a network namespace of its own
#      (inside.sh): the units pass `systemd-analyze verify`, their exposure
#      (`systemd-analyze security --offline`) is reported, a cluster gets the
#      extension, and the daemon runs exactly as the unit's ExecStart says,
#      as the unit's user, with the shipped configuration: a stream works,
#      a reload (the unit's ExecReload) keeps it and applies a changed
#      setting, and a configuration with a wrong line is refused with
#      FILE:LINE.
# The copy is removed at the end; downloaded archive packages are kept in
# /var/cache/sse_bridge/chroot/bookworm-archives for the next run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SSE_CHROOT_CACHE:-/var/cache/sse_bridge/chroot}
suite=bookworm

[ "$(id -u)" -eq 0 ] || { echo "deb: needs root (chroot, mount, network namespace)"; exit 1; }
for c in dpkg-buildpackage lintian debootstrap unshare systemd-analyze; do
  command -v "$c" >/dev/null || { echo "deb: $c is missing; run scripts/deps.sh"; exit 1; }
done

t0=$SECONDS
echo "--- make deb"
(cd "$root" && make -s deb) || { echo "FAIL: deb: make deb"; exit 1; }
echo "    built in $((SECONDS - t0)) s"

echo "--- the $suite chroot"
"$root/test/versions/chroot.sh" ensure "$suite" || { echo "FAIL: deb: no $suite chroot"; exit 1; }
(
  flock 9
  src=$cache/$suite/etc/apt/sources.list
  if ! grep -q "$suite-security" "$src"; then
    # what the installer writes: the point releases' updates and security
    printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
      "$suite" "$suite" "$suite" >"$src"
    "$root/test/versions/chroot.sh" run "$suite" apt-get update -q >/dev/null
  fi
) 9>"$cache/$suite.lock" || { echo "FAIL: deb: $suite sources"; exit 1; }

work=$(mktemp -d /var/tmp/sse_deb.XXXXXX)
cleanup() { if [ -n "${SSE_DEB_KEEP:-}" ]; then echo "    kept: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
cp -a "$cache/$suite" "$work/$suite"
: >"$work/$suite.ready"
touch -r "$cache/$suite.ready" "$work/$suite.ready"   # no refresh of the copy
mkdir -p "$cache/$suite-archives"
cp "$cache/$suite-archives/"*.deb "$work/$suite/var/cache/apt/archives/" 2>/dev/null
echo "    copied in $((SECONDS - t0)) s"

dir=$work/$suite
fail=0
ok() { echo "  ok: $1"; }
bad() { echo "  FAILED: $1"; fail=1; }
C() { SSE_CHROOT_CACHE=$work "$root/test/versions/chroot.sh" run "$suite" "$@"; }
# readme_block KIND: the body of the README's block marked <!-- test: KIND -->
readme_block() {
  awk -v k="<!-- test: $1 -->" 'f == 2 && /^```$/ {exit} f == 2 {print} f == 1 && /^```/ {f = 2; next} $0 == k {f = 1}' "$root/README.md"
}
# ---- install: apt-get install ./dist/*.deb, dependencies from the archive
mkdir -p "$dir/tmp/pkg/dist"
for f in "$root"/dist/*.deb; do
  case $f in *-dbgsym_*) ;; *) cp "$f" "$dir/tmp/pkg/dist/" ;; esac
done
echo "  packages: $(cd "$dir/tmp/pkg/dist" && ls | paste -sd' ')"
t=$SECONDS
# the README's command as typed (and systemd, only for systemd-analyze below)
install=$(readme_block deb)
[ "$install" = "apt install ./dist/*.deb" ] || bad "README's install block is not 'apt install ./dist/*.deb': $install"
if C sh -c "cd /tmp/pkg && $install -y -q -o Dpkg::Options::=--force-unsafe-io systemd" >"$work/apt.log" 2>&1; then
  ok "$install in a clean $suite: $(grep -c '^Unpacking' "$work/apt.log") packages unpacked ($((SECONDS - t)) s)"
else
  tail -n 30 "$work/apt.log"; bad "$install"; exit 1
fi
perm=$(C stat -c '%U:%G %a' /etc/sse-bridge/sse-bridge.conf)
[ "$perm" = "root:sse-bridge 640" ] && C getent passwd sse-bridge >/dev/null \
  && ok "system user sse-bridge; the configuration is $perm" || bad "user or configuration mode: $perm"
[ -x "$dir/usr/bin/sse-bridge" ] && [ -f "$dir/usr/share/man/man8/sse-bridge.8.gz" ] \
  && ok "/usr/bin/sse-bridge and sse-bridge(8) installed" || bad "daemon or man page missing"


rc=1
[ -n "${SSE_DEB_KEEP:-}" ] && cp -a "$dir" "$work/installed"
if [ $fail = 0 ]; then
  unshare --net -- bash "$here/inside.sh" "$work" "$suite" "$root"
  rc=$?
fi
cp -n "$work/$suite/var/cache/apt/archives/"*.deb "$cache/$suite-archives/" 2>/dev/null
echo "    deb step: $((SECONDS - t0)) s"
exit $rc
