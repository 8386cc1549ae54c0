#!/usr/bin/env bash
# Other PostgreSQL major versions, and upgrades (a step of `make test`).
#
# On the machine (run by scripts/test.sh, as root):
#   1. the extension upgrade check (upgrade.sh) on the machine's own cluster,
#      when scripts/test.sh exported one;
#   2. every PostgreSQL major version other than the machine's that a Debian
#      suite offers (suites in $SSE_SUITES, default "trixie sid"; a version
#      is taken from the first suite that has it) is tested in a minbase
#      chroot of that suite (test/versions/chroot.sh, cached in
#      /var/cache/sse_bridge/chroot): the packages of `scripts/deps.sh
#      --core` are installed, a copy of this tree is built with -Werror and
#      goes through scripts/test.sh there: pg_regress + isolation, the
#      commit-order stress test, then this script again, which runs the
#      upgrade check and the bridge smoke test (smoke.sh);
#   3. for each of those versions newer than the machine's: pg_upgrade from
#      the machine's version (its installation, extension included, copied
#      into the chroot with the shared libraries the suite lacks) to it
#      (pgupgrade.sh).
#   SSE_VERSIONS="17"  only these versions; "none": only step 1
#
# Inside a chroot (SSE_IN_CHROOT set by step 2): the upgrade check and the
# smoke test on the chroot's cluster.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

fail=0
run_check() {  # run_check NAME CMD...: run, indent, remember a failure
  local name=$1; shift
  "$@" 2>&1 | sed 's/^/    /'
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then echo "  ok: $name"; else echo "  FAILED: $name"; fail=1; fi
}

if [ -n "${SSE_IN_CHROOT:-}" ]; then
  run_check "extension upgrade 1.0 -> current" "$here/upgrade.sh"
  run_check "bridge smoke test" "$here/smoke.sh"
  exit "$fail"
fi

host_cfg=${PG_CONFIG:-pg_config}
host_major=$("$host_cfg" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
results=()

if [ -n "${PGHOST:-}" ]; then
  echo "--- PostgreSQL $host_major (this machine)"
  before=$fail
  run_check "extension upgrade 1.0 -> current" "$here/upgrade.sh"
  [ "$fail" = "$before" ] && results+=("$host_major machine  upgrade ok") || results+=("$host_major machine  upgrade FAILED")
fi

wanted=${SSE_VERSIONS:-}
if [ "$wanted" = none ]; then
  echo "PostgreSQL versions:"; printf '  %s\n' "${results[@]}"; exit "$fail"
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "versions: the other PostgreSQL versions run in chroots, which needs root (debootstrap, chroot, mount)"
  exit 1
fi
command -v debootstrap >/dev/null || { echo "versions: debootstrap is missing; run scripts/deps.sh"; exit 1; }

# ---------------------------------------------------------------- discovery
declare -A suite_of=()
for suite in ${SSE_SUITES:-trixie sid}; do
  "$here/chroot.sh" ensure "$suite" || { echo "versions: cannot make the $suite chroot"; exit 1; }
  for v in $("$here/chroot.sh" run "$suite" apt-cache search --names-only '^postgresql-[0-9]+$' \
               | sed -n 's/^postgresql-\([0-9]*\) .*/\1/p' | sort -n); do
    [ -z "${suite_of[$v]:-}" ] && suite_of[$v]=$suite
  done
done
echo "versions offered: $(for v in "${!suite_of[@]}"; do echo "$v (${suite_of[$v]})"; done | sort -n | paste -sd' ')"
versions=()
for v in $(printf '%s\n' "${!suite_of[@]}" | sort -n); do
  [ "$v" = "$host_major" ] && continue
  [ -n "$wanted" ] && [[ " $wanted " != *" $v "* ]] && continue
  versions+=("$v")
done
for v in $wanted; do
  [ -n "${suite_of[$v]:-}" ] || [ "$v" = "$host_major" ] || { echo "versions: no suite in '${SSE_SUITES:-trixie sid}' offers PostgreSQL $v"; exit 1; }
done

# ------------------------------------------------- the machine's installation
# pg_upgrade needs the old version's binaries, with this tree's extension
# installed, inside the chroot: copy them under /opt/sse-old (the Debian
# build is relocatable: paths are found relative to the binary), and copy
# the shared libraries they need that the suite lacks (an older ICU, LDAP)
# into /opt/sse-old/lib. Only sonames the chroot does not have are copied,
# so nothing there can shadow a newer library the new binaries use.
old_pkglib=$("$host_cfg" --pkglibdir)
old_share=$("$host_cfg" --sharedir)
old_bin=$("$host_cfg" --bindir)
old_lib=$(cd "$old_bin/.." && pwd)
copy_old() {  # copy_old CHROOTDIR SUITE
  local c=$1 suite=$2 dest=$1/opt/sse-old i so path missing
  rm -rf "$dest"
  mkdir -p "$dest$old_lib" "$dest$old_share" "$dest/lib"
  tar -C "$old_lib" --exclude='./lib/bitcode' --exclude='./lib/llvmjit*' -cf - . | tar -C "$dest$old_lib" -xf -
  tar -C "$old_share" -cf - . | tar -C "$dest$old_share" -xf -
  for i in 1 2 3 4 5 6; do
    missing=$("$here/chroot.sh" run "$suite" /bin/sh -c \
      "LD_LIBRARY_PATH=/opt/sse-old/lib ldd /opt/sse-old$old_lib/bin/* /opt/sse-old$old_lib/lib/*.so 2>/dev/null" \
      | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | sort -u)
    [ -z "$missing" ] && return 0
    for so in $missing; do
      path=$(ldconfig -p | awk -v s="$so" '$1 == s && /x86-64|64bit|AArch64/ { print $NF; exit }')
      [ -n "$path" ] || path=$(ldconfig -p | awk -v s="$so" '$1 == s { print $NF; exit }')
      [ -n "$path" ] || { echo "versions: $so, needed by PostgreSQL $host_major, is not on this machine"; return 1; }
      cp -L "$path" "$dest/lib/$so"
    done
  done
  echo "versions: shared libraries of PostgreSQL $host_major still missing in $suite"; return 1
}

pg_upgrade_check() {  # pg_upgrade_check CHROOTDIR SUITE BUILD VERSION
  copy_old "$1" "$2" || return 1
  "$here/chroot.sh" run "$2" /usr/bin/env LD_LIBRARY_PATH=/opt/sse-old/lib \
    "$3/test/versions/pgupgrade.sh" "/opt/sse-old$old_bin" "/usr/lib/postgresql/$4/bin" 2>&1 | sed 's/^/  /'
  return "${PIPESTATUS[0]}"
}

# ------------------------------------------------------------- each version
src_files() {  # this tree's files, without build products
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$root" ls-files -z -co --exclude-standard
  else
    (cd "$root" && find . -type f ! -path './.git/*' ! -path '*/node_modules/*' ! -path '*/build/*' \
       ! -name '*.o' ! -name '*.so' ! -name '*.bc' -print0)
  fi
}

for v in "${versions[@]}"; do
  suite=${suite_of[$v]}
  t0=$SECONDS
  echo "--- PostgreSQL $v ($suite chroot)"
  # shellcheck disable=SC2046
  if ! "$here/chroot.sh" ensure "$suite" $(PG=$v "$root/scripts/deps.sh" --core --print); then
    results+=("$v $suite  packages FAILED"); fail=1; continue
  fi
  cdir=$("$here/chroot.sh" dir "$suite")
  cache=$(dirname "$cdir")
  # one run at a time per chroot: `make install` writes into it
  exec 8>"$cache/$suite.use.lock"
  flock 8
  build=/build/sse_bridge.$$
  # with the lock held nothing else uses /build: drop what an interrupted
  # run left there
  rm -rf "${cdir:?}/build" "${cdir:?}/opt/sse-old"; mkdir -p "$cdir$build"
  (cd "$root" && src_files | tar --null -T - -cf -) | tar -C "$cdir$build" -xf -
  log=$cdir$build.log
  "$here/chroot.sh" run "$suite" /bin/bash -c "cd $build && PG=$v PG_CONFIG=/usr/lib/postgresql/$v/bin/pg_config \
      SSE_IN_CHROOT=$v SSE_TEST_ONLY=stress,versions scripts/test.sh" >"$log" 2>&1
  rc=$?
  sed 's/^/  /' "$log"
  server=$("$here/chroot.sh" run "$suite" "/usr/lib/postgresql/$v/bin/postgres" --version)
  stress=$(grep -E '^(mode|rows)=' "$log" | paste -sd' ')
  if [ "$rc" -eq 0 ]; then
    results+=("$v $suite  $server: build, pg_regress + isolation, stress, upgrade, smoke ok ($((SECONDS - t0))s)")
  else
    results+=("$v $suite  $server: FAILED: $(sed -n 's/^failed steps: //p' "$log") ($((SECONDS - t0))s)"); fail=1
  fi
  [ -n "$stress" ] && results+=("    stress: $stress")

  if [ "$v" -gt "$host_major" ]; then
    t0=$SECONDS
    echo "--- pg_upgrade $host_major -> $v ($suite chroot)"
    if [ ! -f "$old_pkglib/sse_bridge.so" ]; then
      echo "  FAILED: sse_bridge is not installed in PostgreSQL $host_major ($old_pkglib); run make install"
      results+=("$host_major -> $v pg_upgrade FAILED (extension not installed)"); fail=1
    elif grep -qE '^(build|install) failed' "$log"; then
      results+=("$host_major -> $v pg_upgrade not run (the $v build failed)"); fail=1
    else
      pg_upgrade_check "$cdir" "$suite" "$build" "$v"
      case $? in
        0) results+=("$host_major -> $v pg_upgrade: data, prune mark, subscriptions kept; old Last-Event-ID resumes ($((SECONDS - t0))s)") ;;
        3) results+=("$host_major -> $v pg_upgrade NOT TESTABLE: these builds cannot upgrade a cluster without the extension either (see above)") ;;
        *) results+=("$host_major -> $v pg_upgrade FAILED"); fail=1 ;;
      esac
    fi
  fi
  rm -rf "${cdir:?}$build" "${cdir:?}/opt/sse-old"
  [ "$rc" -eq 0 ] && rm -f "$log"
  exec 8>&-
done

echo
echo "PostgreSQL versions:"
printf '  %s\n' "${results[@]}"
exit "$fail"
