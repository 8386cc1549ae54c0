#!/usr/bin/env bash
# Install every Debian package the build, the tests and the demo need.
# Idempotent: only missing packages are installed. When not root, print the
# exact command and fail.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  postgresql-15 postgresql-server-dev-15 postgresql-client-15 libpq-dev
  libuv1-dev libjansson-dev libhttp-parser-dev libjwt-dev libcmocka-dev libssl-dev
  curl ca-certificates procps iproute2
  chromium fonts-dejavu-core nginx openssl
)
# node and npm may come from another packaging of Node.js; what matters is
# that the commands exist.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
case "${1:-}" in
  --bench) PKGS+=(nginx libnginx-mod-nchan linux-perf) ;;
esac

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
