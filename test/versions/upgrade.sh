#!/usr/bin/env bash
# Extension upgrade path on the running cluster (PG* environment; the
# extension installed): for every older version that has an upgrade script
# to the default version, a database created at that version and then
# `ALTER EXTENSION sse_bridge UPDATE`d must
#   - be at the default version,
#   - have exactly the objects of a fresh install: `pg_dump --schema-only
#     --binary-upgrade` (the only pg_dump form that lists an extension's
#     member objects, their privileges and its configuration tables)
#     normalised for OIDs, plus the catalog's view of the extension,
#   - keep its data: the log, ids, prune mark and subscriptions, and go on
#     publishing and subscribing after the update.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

default=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$root/sse_bridge.control")
[ -n "$default" ] || { echo "upgrade: no default_version in sse_bridge.control"; exit 1; }
work=$(mktemp -d)
fresh=sse_upg_fresh; old=sse_upg_old
q() { psql -qAtX -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
cleanup() {
  dropdb --if-exists "$fresh" >/dev/null 2>&1 || true
  dropdb --if-exists "$old" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Objects as pg_dump sees them, without what only identifies a build or is
# data: OIDs and transaction ids handed to the binary-upgrade functions,
# dropped-column placeholders, the fast-default storage of columns added by
# ALTER TABLE, sequence positions (the data checks cover them), comments,
# and the random key pg_dump 17.6+ puts around its output.
normalise() {
  awk '
    /^-- For binary upgrade, recreate dropped column/ { skip = 1 }
    skip { if ($0 ~ /DROP COLUMN/) skip = 0; next }
    /^--/ || /^$/ { next }
    /binary_upgrade_set_next_|binary_upgrade_set_missing_value|pg\.dropped\./ { next }
    /^SET relfrozenxid = / || /pg_catalog\.setval\(/ { next }
    /^\\(un)?restrict / { next }
    { sub(/,$/, ""); sub(/^WHERE oid = '"'"'[0-9]+'"'"';$/, "WHERE oid = '"'"'oid'"'"';"); gsub(/'"'"'\{[0-9,]*\}'"'"'/, "'"'"'{oids}'"'"'"); print }
  '
}
catalog() {
  q "$1" "SELECT extname, extversion, extrelocatable, extnamespace::regnamespace,
                 (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(extconfig) c),
                 (SELECT array_agg(x ORDER BY x) FROM unnest(extcondition) x)
            FROM pg_extension WHERE extname = 'sse_bridge'"
  q "$1" "SELECT pg_describe_object(classid, objid, objsubid)
            FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
             AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sse_bridge')
           ORDER BY 1"
}
snapshot() {
  q "$1" "SELECT (SELECT pruned_through FROM sse_bridge.meta) || ' | '
              || (SELECT string_agg(id || ':' || channel || ':' || coalesce(event, '') || ':' || data, ',' ORDER BY id)
                    FROM sse_bridge.events) || ' | '
              || (SELECT string_agg(id::text, ',' ORDER BY id) FROM sse_bridge.subscriptions)"
}

fail=0
check() {
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1: want '$2' got '$3'"; fail=1; fi
}

createdb "$fresh"
q "$fresh" "CREATE EXTENSION sse_bridge"
pg_dump --schema-only --binary-upgrade -d "$fresh" | normalise >"$work/fresh.sql"
catalog "$fresh" >>"$work/fresh.sql"

froms=$(cd "$root" && ls sse_bridge--*--"$default".sql 2>/dev/null | sed "s/^sse_bridge--\(.*\)--$default\.sql$/\1/")
[ -n "$froms" ] || { echo "upgrade: no upgrade script to $default"; exit 1; }
for from in $froms; do
  echo "--- $from -> $default"
  dropdb --if-exists "$old" >/dev/null 2>&1
  createdb "$old"
  q "$old" "CREATE EXTENSION sse_bridge VERSION '$from'"
  check "created at $from" "$from" "$(q "$old" "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'")"
  # data written by the old version: events, a prune mark, subscriptions
  q "$old" "SELECT sse_publish('upg.a', 'r' || g) FROM generate_series(1, 4) g" >/dev/null
  q "$old" "SELECT sse_publish('upg.b', '{\"n\":' || g || '}', 'tick') FROM generate_series(1, 3) g" >/dev/null
  q "$old" "UPDATE sse_bridge.events SET created_at = created_at - interval '1 day' WHERE data LIKE 'r%'"
  q "$old" "SELECT sse_prune('1 hour')" >/dev/null
  sub=$(q "$old" "SELECT sse_subscribe_filter(ARRAY['upg.#'], '{\"n\":2}')")
  q "$old" "SELECT sse_subscribe_filter(ARRAY['upg.a'])" >/dev/null
  # the new library on the old schema: unsubscribe deletes, as $from did
  gone=$(q "$old" "SELECT sse_subscribe_filter(ARRAY['upg.gone'])")
  check "at $from, sse_unsubscribe drops the subscription" t "$(q "$old" "SELECT sse_unsubscribe('$gone')")"
  check "at $from, the dropped subscription's row is deleted" 0 \
    "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions WHERE id = '$gone'")"
  before=$(snapshot "$old")

  q "$old" "ALTER EXTENSION sse_bridge UPDATE"
  check "updated to $default" "$default" "$(q "$old" "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'")"
  pg_dump --schema-only --binary-upgrade -d "$old" | normalise >"$work/updated.sql"
  catalog "$old" >>"$work/updated.sql"
  if diff -u "$work/fresh.sql" "$work/updated.sql" >"$work/diff"; then
    echo "ok: schema after $from -> $default equals a fresh $default install ($(wc -l <"$work/fresh.sql") lines compared)"
  else
    echo "FAILED: schema after $from -> $default differs from a fresh $default install (- fresh, + updated):"
    head -n 80 "$work/diff"; fail=1
  fi
  check "log, ids, prune mark and subscriptions survive the update" "$before" "$(snapshot "$old")"
  check "the subscription made before the update is live" t "$(q "$old" "SELECT sse_touch('$sub')")"
  maxid=$(q "$old" "SELECT max(id) FROM sse_bridge.events")
  q "$old" "SELECT sse_publish('upg.c', 'after update')" >/dev/null
  check "new ids continue after the old ones" t \
    "$(q "$old" "SELECT min(id) > $maxid FROM sse_bridge.events WHERE data = 'after update'")"
  q "$old" "SELECT sse_subscribe_filter(ARRAY['upg.c'])" >/dev/null
  check "subscriptions can be made after the update" 3 "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions")"
  check "after the update, sse_unsubscribe drops the subscription" t "$(q "$old" "SELECT sse_unsubscribe('$sub')")"
  check "after the update, the dropped subscription is a tombstone" 1 \
    "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions WHERE id = '$sub' AND dropped_at IS NOT NULL")"
  check "after the update, the tombstone is unknown to sse_touch" f "$(q "$old" "SELECT sse_touch('$sub')")"
done

[ "$fail" -eq 0 ] && echo "upgrade: all checks passed"
exit "$fail"
