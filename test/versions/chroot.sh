#!/usr/bin/env bash
# Debian chroots for testing other PostgreSQL major versions, cached on the
# machine between runs.
#
#   chroot.sh ensure SUITE PKG...   create SUITE's chroot if needed (minbase
#                                   debootstrap) and install the missing PKGs
#   chroot.sh run SUITE CMD...      run CMD as root inside the chroot, with
#                                   /proc, /dev and /dev/shm mounted in a
#                                   private mount namespace (gone when CMD ends)
#   chroot.sh dir SUITE             print the chroot's directory
#
# Chroots live in $SSE_CHROOT_CACHE (default /var/cache/sse_bridge/chroot),
# one directory per suite. Creation and package installation hold an
# exclusive lock on SUITE.lock; a half-made chroot (no SUITE.ready) is
# removed and made again. A chroot whose packages were last refreshed more
# than $SSE_CHROOT_REFRESH_DAYS days ago (default 7) is brought up to date
# (apt-get update and upgrade), so new point releases get tested. The chroot
# shares the machine's network, so servers in it bind loopback ports like
# any other process.
set -euo pipefail

cache=${SSE_CHROOT_CACHE:-/var/cache/sse_bridge/chroot}
mirror=${SSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "chroot.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mount)"

# in_chroot DIR CMD...: run CMD in DIR with the kernel file systems mounted
# in a new mount namespace, so nothing stays mounted on the machine.
in_chroot() {
  local dir=$1; shift
  unshare --mount --propagation private -- /bin/bash -c '
    set -e
    d=$1; shift
    mount -t proc proc "$d/proc"
    mount --rbind /dev "$d/dev"
    mount -t tmpfs -o mode=1777 shm "$d/dev/shm"
    mkdir -p "$d/run/lock" "$d/tmp"
    chmod 1777 "$d/tmp"
    exec chroot "$d" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
  ' in_chroot "$dir" "$@"
}

ensure() {
  local suite=$1; shift
  local dir=$cache/$suite
  mkdir -p "$cache"
  exec 9>"$cache/$suite.lock"
  flock 9
  if [ ! -f "$cache/$suite.ready" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is missing; run scripts/deps.sh"
    rm -rf "$dir"
    echo "chroot: debootstrap --variant=minbase $suite (once per machine)" >&2
    if ! debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$cache/$suite.debootstrap.log" 2>&1; then
      tail -n 20 "$cache/$suite.debootstrap.log" >&2
      die "debootstrap $suite failed (log: $cache/$suite.debootstrap.log)"
    fi
    # Services are never started in the chroot, and postgresql-common must
    # not create a default cluster.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    mkdir -p "$dir/etc/postgresql-common"
    echo 'create_main_cluster = false' >"$dir/etc/postgresql-common/createcluster.conf"
    echo 'APT::Install-Recommends "false";' >"$dir/etc/apt/apt.conf.d/90sse-norecommends"
    # The mirror may serve a frozen copy of a suite whose Release file has
    # passed its Valid-Until date (unstable's lasts a week); signatures are
    # still checked.
    echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/90sse-valid-until"
    in_chroot "$dir" apt-get update -q >/dev/null
    : >"$cache/$suite.ready"
  elif [ -n "$(find "$cache/$suite.ready" -mtime +"${SSE_CHROOT_REFRESH_DAYS:-7}")" ]; then
    echo "chroot $suite: refreshing its packages" >&2
    if in_chroot "$dir" apt-get update -q >/dev/null &&
       in_chroot "$dir" apt-get upgrade -y -q -o Dpkg::Options::=--force-confold >"$cache/$suite.apt.log" 2>&1; then
      in_chroot "$dir" apt-get clean
      touch "$cache/$suite.ready"
    else
      echo "chroot $suite: refresh failed, testing the packages it has (log: $cache/$suite.apt.log)" >&2
    fi
  fi
  local missing=() p
  for p in "$@"; do
    in_chroot "$dir" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "chroot $suite: installing ${missing[*]}" >&2
    # a cached chroot's package lists may be old: refresh on failure
    if ! in_chroot "$dir" apt-get install -y -q -o Dpkg::Options::=--force-confold "${missing[@]}" \
        >"$cache/$suite.apt.log" 2>&1; then
      in_chroot "$dir" apt-get update -q >/dev/null
      in_chroot "$dir" apt-get install -y -q -o Dpkg::Options::=--force-confold "${missing[@]}" \
        >"$cache/$suite.apt.log" 2>&1 || { tail -n 30 "$cache/$suite.apt.log" >&2; die "apt-get install in $suite failed"; }
    fi
    in_chroot "$dir" apt-get clean
  fi
  exec 9>&-
}

case "${1:-}" in
ensure) shift; [ $# -ge 1 ] || die "usage: ensure SUITE PKG..."; ensure "$@" ;;
run)
  shift; suite=${1:?usage: run SUITE CMD...}; shift
  [ -f "$cache/$suite.ready" ] || die "no chroot for $suite; run: chroot.sh ensure $suite"
  in_chroot "$cache/$suite" "$@" ;;
dir) echo "$cache/${2:?usage: dir SUITE}" ;;
*) echo "usage: $0 ensure SUITE PKG... | run SUITE CMD... | dir SUITE" >&2; exit 2 ;;
esac
