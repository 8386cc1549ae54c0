#!/usr/bin/env bash
# Extension upgrade path on the running cluster (PG* environment; the
# extension installed): for every older version, a database created at that
# version and then `ALTER EXTENSION sse_bridge UPDATE`d must
#   - be at the default version,
#   - have exactly the objects of a fresh install: `pg_dump --schema-only
#     --binary-upgrade` (the only pg_dump form that lists an extension's
#     member objects, their privileges and its configuration tables)
#     normalised for OIDs, plus the catalog's view of the extension,
#   - keep its data: the log, ids, prune mark and subscriptions, and go on
#     publishing and subscribing after the update,
#   - keep the bridge working: roles given the grants the 1.0 documentation
#     listed (directly, through a group role, and under a name that needs
#     quoting) read everything the bridge reads, after the update to each
#     version on the way and after a pg_dump / pg_restore of the updated
#     database.  The fresh install gets the grants the current documentation
#     lists, so the schema comparison also covers privileges (and which of
#     them count as the extension's own, pg_init_privs).
# Every older version is started from (1.0, 1.1, ...), and 1.0 a second
# time going through each version between, one UPDATE TO at a time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

default=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$root/sse_bridge.control")
[ -n "$default" ] || { echo "upgrade: no default_version in sse_bridge.control"; exit 1; }
work=$(mktemp -d)
fresh=sse_upg_fresh; old=sse_upg_old; restored=sse_upg_restored
# bridge-like roles: one granted directly, one member of a granted group
# role, one whose name needs quoting
bridge=sse_upg_bridge; member=sse_upg_member; group=sse_upg_readers
odd='"Sse Upg ""Bridge"""'
# an application role with EXECUTE on sse_subscribe_filter, whose
# signature 1.3 changed (the grant must follow the function)
app=sse_upg_app
q() { psql -qAtX -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
roles_drop() {
  local d
  for d in "$fresh" "$old" "$restored"; do
    psql -qAtX -d "$d" -c "DROP OWNED BY $bridge, $member, $group, $odd, $app" >/dev/null 2>&1 || true
  done
  psql -qAtX -d postgres -c "DROP ROLE IF EXISTS $bridge, $member, $group, $odd, $app" >/dev/null 2>&1 || true
}
cleanup() {
  roles_drop
  dropdb --if-exists "$fresh" >/dev/null 2>&1 || true
  dropdb --if-exists "$old" >/dev/null 2>&1 || true
  dropdb --if-exists "$restored" >/dev/null 2>&1 || true
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

# The grants a deployment gave its bridge role as the documentation of
# version $2 listed them (1.0 and 1.1: the log, meta and subscriptions; the
# 1.1 docs added subscription_versions, but a deployment updated from 1.0
# kept the 1.0 set), to the bridge-like roles.
grant_bridge() {  # grant_bridge DB VERSION
  local tables="sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions" r
  case $2 in 1.0|1.1) ;; *) tables="$tables, sse_bridge.subscription_versions" ;; esac
  for r in "$bridge" "$group" "$odd"; do
    q "$1" "GRANT USAGE ON SCHEMA sse_bridge TO $r;
            GRANT SELECT ON $tables TO $r;
            GRANT EXECUTE ON FUNCTION sse_touch(uuid) TO $r"
  done
}
# The application role's grant on sse_subscribe_filter, in the signature
# of version $2.
grant_app() {  # grant_app DB VERSION
  local sig="text[], jsonb, interval, text"
  case $2 in 1.0|1.1|1.2) sig="text[], jsonb, interval" ;; esac
  q "$1" "GRANT EXECUTE ON FUNCTION sse_subscribe_filter($sig) TO $app"
}
app_subscribes() {  # app_subscribes DB: may the application role subscribe, with an owner?
  psql -qAtX -v ON_ERROR_STOP=1 -d "$1" -c "SET ROLE $app" \
    -c "SELECT sse_subscribe_filter(ARRAY['upg.app'], '{}', '1 hour', 'alice') IS NOT NULL" 2>&1
}

# What the bridge reads (bridge/logread.c: fetch, head, fork, open_adhoc,
# open_sub with the subscription's definition and close, the heartbeat,
# touch), as role $2; one line of answers.
bridge_reads() {  # bridge_reads DB ROLE SUBSCRIPTION
  psql -qAtX -v ON_ERROR_STOP=1 -d "$1" 2>&1 <<SQL | tr '\n' ' ' | sed 's/ $//'
SET ROLE $2;
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false) IS NOT NULL AS pinned;
SELECT FROM sse_bridge.meta, sse_bridge.events WHERE false;
SELECT count(*) > 0 AS fetch FROM sse_bridge.meta m LEFT JOIN LATERAL (
    SELECT * FROM sse_bridge.events x WHERE x.id >= 0 ORDER BY x.id LIMIT 100) e ON true;
SELECT s.sid IS NOT NULL AS open_sub, v.channels IS NOT NULL AS def,
       (SELECT min(e.id) FROM sse_bridge.subscription_versions w
          JOIN sse_bridge.events e ON e.event = 'close' AND e.channel = ANY(w.channels)
         WHERE w.sid = s.sid) IS NULL AS no_close
FROM sse_bridge.meta m
LEFT JOIN sse_bridge.subscriptions s ON s.id = '$3'::uuid
LEFT JOIN LATERAL (SELECT v.channels FROM sse_bridge.subscription_versions v
                   WHERE v.sid = s.sid
                     AND v.from_id <= GREATEST((SELECT max(id) FROM sse_bridge.events), m.pruned_through)
                   ORDER BY v.from_id DESC LIMIT 1) v ON true;
SELECT count(*) FILTER (WHERE $(q "$1" "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension WHERE extname = 'sse_bridge'").sse_touch(u)) AS touched
FROM unnest(ARRAY['$3'::uuid]) u;
SQL
}
check_bridge() {  # check_bridge DB SUBSCRIPTION WHEN
  local want="t t t|t|t 1"
  check "$3: the bridge role reads what the bridge reads" "$want" "$(bridge_reads "$1" "$bridge" "$2")"
  check "$3: a member of a role with the grants does too" "$want" "$(bridge_reads "$1" "$member" "$2")"
  check "$3: a role whose name needs quoting does too" "$want" "$(bridge_reads "$1" "$odd" "$2")"
}

roles_drop
q postgres "CREATE ROLE $bridge; CREATE ROLE $group; CREATE ROLE $member IN ROLE $group; CREATE ROLE $odd; CREATE ROLE $app"

createdb "$fresh"
q "$fresh" "CREATE EXTENSION sse_bridge"
grant_bridge "$fresh" "$default"
grant_app "$fresh" "$default"
pg_dump --schema-only --binary-upgrade -d "$fresh" | normalise >"$work/fresh.sql"
catalog "$fresh" >>"$work/fresh.sql"

# every version with an install script; 1.0 twice: in one UPDATE, and
# through each version between, one UPDATE TO at a time
versions=$(cd "$root" && ls sse_bridge--*.sql | sed -n 's/^sse_bridge--\([0-9.]*\)\.sql$/\1/p' | sort -V)
olds=$(echo "$versions" | grep -vx "$default" || true)
[ -n "$olds" ] || { echo "upgrade: no version older than $default"; exit 1; }
for start in $olds 1.0-stepwise; do
  from=${start%-stepwise}
  between=
  if [ "$start" != "$from" ]; then
    between=$(echo "$versions" | awk -v f="$from" -v d="$default" '$0 != f && $0 != d && p { print } $0 == f { p = 1 }')
    [ -n "$between" ] || continue
  fi
  echo "--- $from -> ${between:+$(echo $between | tr ' ' '\n' | paste -sd'>' | sed 's/>/ -> /g') -> }$default"
  dropdb --if-exists "$old" >/dev/null 2>&1
  createdb "$old"
  q "$old" "CREATE EXTENSION sse_bridge VERSION '$from'"
  check "created at $from" "$from" "$(q "$old" "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'")"
  grant_bridge "$old" "$from"
  grant_app "$old" "$from"
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
  if [ "$from" = 1.0 ]; then
    check "at $from, the dropped subscription's row is deleted" 0 \
      "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions WHERE id = '$gone'")"
  else
    check "at $from, the dropped subscription's row is a tombstone" 1 \
      "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions WHERE id = '$gone' AND dropped_at IS NOT NULL")"
  fi
  before=$(snapshot "$old")

  for v in $between; do
    q "$old" "ALTER EXTENSION sse_bridge UPDATE TO '$v'"
    check "updated to $v on the way" "$v" "$(q "$old" "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'")"
    check_bridge "$old" "$sub" "at $v, updated from $from"
  done
  q "$old" "ALTER EXTENSION sse_bridge UPDATE"
  check "updated to $default" "$default" "$(q "$old" "SELECT extversion FROM pg_extension WHERE extname = 'sse_bridge'")"
  check_bridge "$old" "$sub" "at $default, updated from $from"
  pg_dump --schema-only --binary-upgrade -d "$old" | normalise >"$work/updated.sql"
  catalog "$old" >>"$work/updated.sql"
  if diff -u "$work/fresh.sql" "$work/updated.sql" >"$work/diff"; then
    echo "ok: schema and privileges after $from -> $default equal a fresh $default install ($(wc -l <"$work/fresh.sql") lines compared)"
  else
    echo "FAILED: schema or privileges after $from -> $default differ from a fresh $default install (- fresh, + updated):"
    head -n 80 "$work/diff"; fail=1
  fi
  check "log, ids, prune mark and subscriptions survive the update" "$before" "$(snapshot "$old")"
  check "the subscription made before the update is live" t "$(q "$old" "SELECT sse_touch('$sub')")"
  maxid=$(q "$old" "SELECT max(id) FROM sse_bridge.events")
  q "$old" "SELECT sse_publish('upg.c', 'after update')" >/dev/null
  check "new ids continue after the old ones" t \
    "$(q "$old" "SELECT min(id) > $maxid FROM sse_bridge.events WHERE data = 'after update'")"
  live=$(q "$old" "SELECT sse_subscribe_filter(ARRAY['upg.c'])")
  check "subscriptions can be made after the update" 3 "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions WHERE dropped_at IS NULL")"
  check "at $default, updated from $from, the application role still subscribes" t "$(app_subscribes "$old")"
  check "after the update, sse_unsubscribe drops the subscription" t "$(q "$old" "SELECT sse_unsubscribe('$sub')")"
  check "after the update, the dropped subscription is a tombstone" 1 \
    "$(q "$old" "SELECT count(*) FROM sse_bridge.subscriptions WHERE id = '$sub' AND dropped_at IS NOT NULL")"
  check "after the update, the tombstone is unknown to sse_touch" f "$(q "$old" "SELECT sse_touch('$sub')")"

  # the grants carried over are the deployment's, not the extension's own:
  # pg_dump keeps them, and the restored database keeps the bridge working
  dropdb --if-exists "$restored" >/dev/null 2>&1
  createdb "$restored"
  pg_dump -Fc -f "$work/dump" "$old"
  pg_restore --exit-on-error -d "$restored" "$work/dump"
  check_bridge "$restored" "$live" "restored from a dump of the database updated from $from"
  check "restored from a dump of the database updated from $from, the application role still subscribes" t \
    "$(app_subscribes "$restored")"
done

[ "$fail" -eq 0 ] && echo "upgrade: all checks passed"
exit "$fail"
