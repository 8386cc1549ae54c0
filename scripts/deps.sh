#!/usr/bin/env bash
# Install every Debian package the build, the tests and the demo need.
# Idempotent: only missing packages are installed. When not root, print the
# exact command and fail.
#
#   scripts/deps.sh            everything (build, all tests, demo)
#   scripts/deps.sh --bench    and the benchmark tools
#   scripts/deps.sh --core     only the build, pg_regress + isolation, the
#                              stress test and a bridge smoke test (what the
#                              other-version chroots of test/versions run)
#   scripts/deps.sh --print    print the package list instead (with the above)
#
# The PostgreSQL major version is, in this order: $PG (PG=17), the version of
# $PG_CONFIG or of pg_config on PATH, or the version the Debian suite's
# `postgresql` package depends on.
set -euo pipefail

mode=full; print=
for a in "$@"; do
  case "$a" in
    --bench) mode=bench ;;
    --core) mode=core ;;
    --print) print=1 ;;
    *) echo "usage: $0 [--core|--bench] [--print]" >&2; exit 2 ;;
  esac
done

pg_major() {
  local v cfg=${PG_CONFIG:-pg_config}
  if [ -n "${PG:-}" ]; then echo "$PG"; return; fi
  if v=$("$cfg" --version 2>/dev/null); then
    # "PostgreSQL 15.13 (Debian 15.13-0+deb12u1)" -> 15
    v=${v#PostgreSQL }; echo "${v%%[!0-9]*}"; return
  fi
  v=$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
  [ -n "$v" ] && { echo "$v"; return; }
  echo "deps.sh: cannot tell the PostgreSQL version; set PG=N" >&2
  return 1
}
pgv=$(pg_major)
case "$pgv" in ''|*[!0-9]*) echo "deps.sh: bad PostgreSQL version '$pgv'" >&2; exit 2 ;; esac

PKGS=(
  build-essential pkg-config
  "postgresql-$pgv" "postgresql-server-dev-$pgv" "postgresql-client-$pgv" libpq-dev
  libuv1-dev libjansson-dev libhttp-parser-dev libssl-dev libsystemd-dev
  curl procps iproute2
)
if [ "$mode" != core ]; then
  # libFuzzer and the sanitizers come with the suite's default clang
  clangv=$(apt-cache depends clang 2>/dev/null | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -1)
  PKGS+=(clang "libclang-rt-${clangv:-14}-dev" libjwt-dev libcmocka-dev libssl-dev ca-certificates
    debootstrap chromium fonts-dejavu-core nginx openssl
    debhelper dpkg-dev fakeroot lintian postgresql-server-dev-all systemd groff-base)
  # node and npm may come from another packaging of Node.js; what matters is
  # that the commands exist.
  command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
  command -v npm >/dev/null 2>&1 || PKGS+=(npm)
fi
[ "$mode" = bench ] && PKGS+=(nginx libnginx-mod-nchan linux-perf)

if [ -n "$print" ]; then echo "${PKGS[*]}"; exit 0; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages; run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# Debian's postgresql-common would create and start a default cluster; we
# never use it, so keep it from being created.
mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ] || ! grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
  echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi
$cmd -q
