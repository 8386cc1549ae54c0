#!/usr/bin/env bash
# pg_dump / restore round trip: the log, its id sequence, the subscriptions,
# their versions by log position and the prune mark survive, so a client that reconnects to the restored
# database with an old Last-Event-ID is still told about pruned history, and
# new events and subscriptions continue without collisions.
set -euo pipefail
src=sse_dump_src
dst=sse_dump_dst
work=$(mktemp -d)
cleanup() {
  dropdb --if-exists "$src" >/dev/null 2>&1 || true
  dropdb --if-exists "$dst" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cleanup; work=$(mktemp -d)

q() { psql -qAtX -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

createdb "$src"
q "$src" "CREATE EXTENSION sse_bridge"
q "$src" "SELECT sse_publish('dump.a', 'r' || g) FROM generate_series(1, 5) g" >/dev/null
for i in 1 2 3; do q "$src" "SELECT sse_publish('dump.b', 'late $i')" >/dev/null; done
# prune the first five (older than the last three by construction)
q "$src" "UPDATE sse_bridge.events SET created_at = created_at - interval '1 day' WHERE data LIKE 'r%'"
q "$src" "SELECT sse_prune('1 hour')" >/dev/null
sub=$(q "$src" "SELECT sse_subscribe_filter(ARRAY['dump.#'])")
q "$src" "SELECT sse_subscription_set_filter('$sub', '{\"k\": 1}')" >/dev/null
# the definitions by position, and where each subscription starts and stands
state_sql="SELECT (SELECT string_agg(sid || '@' || from_id || ':' || channels::text || filter::text || state, ',' ORDER BY sid, from_id) FROM sse_bridge.subscription_versions) || ' ' || (SELECT string_agg(sid || ':' || start_id || '/' || def_id, ',' ORDER BY sid) FROM sse_bridge.subscriptions)"
versions_before=$(q "$src" "$state_sql")

before=$(q "$src" "SELECT (SELECT pruned_through FROM sse_bridge.meta) || ' ' || (SELECT string_agg(id || ':' || data, ',' ORDER BY id) FROM sse_bridge.events) || ' ' || (SELECT count(*) FROM sse_bridge.subscriptions)")

pg_dump -Fc -f "$work/dump" "$src"
createdb "$dst"
pg_restore --exit-on-error -d "$dst" "$work/dump"

after=$(q "$dst" "SELECT (SELECT pruned_through FROM sse_bridge.meta) || ' ' || (SELECT string_agg(id || ':' || data, ',' ORDER BY id) FROM sse_bridge.events) || ' ' || (SELECT count(*) FROM sse_bridge.subscriptions)")
fail=0
check() {
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1: want '$2' got '$3'"; fail=1; fi
}
check "log, prune mark and subscriptions survive" "$before" "$after"
check "subscription versions, start and definition positions survive" "$versions_before" "$(q "$dst" "$state_sql")"
check "two versions were dumped" 2 "$(q "$dst" "SELECT count(*) FROM sse_bridge.subscription_versions")"
check "meta keeps exactly one row" 1 "$(q "$dst" "SELECT count(*) FROM sse_bridge.meta")"
check "the subscription is still there" t "$(q "$dst" "SELECT sse_touch('$sub')")"

# new work after the restore continues the id and sid sequences
maxid=$(q "$dst" "SELECT max(id) FROM sse_bridge.events")
q "$dst" "SELECT sse_publish('dump.c', 'after restore')" >/dev/null
check "new ids continue after the restored ones" t "$(q "$dst" "SELECT min(id) > $maxid FROM sse_bridge.events WHERE data = 'after restore'")"
q "$dst" "SELECT sse_subscribe_filter(ARRAY['x.y'])" >/dev/null
check "new subscriptions get fresh internal ids" "2 2" "$(q "$dst" "SELECT count(*) || ' ' || count(DISTINCT sid) FROM sse_bridge.subscriptions")"
# a change after the restore gets a new position, above the restored ones
q "$dst" "SELECT sse_subscription_add('$sub', ARRAY['more'])" >/dev/null
check "a change after the restore is versioned after the restored log" t "$(q "$dst" "SELECT def_id > $maxid AND def_id = (SELECT max(from_id) FROM sse_bridge.subscription_versions v WHERE v.sid = s.sid) FROM sse_bridge.subscriptions s WHERE id = '$sub'")"

[ "$fail" -eq 0 ] && echo "dump: all checks passed"
exit "$fail"
