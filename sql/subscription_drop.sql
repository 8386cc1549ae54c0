--
-- sse_unsubscribe keeps the subscription as a tombstone, invisible to every
-- function that takes a subscription id, until sse_prune passes its drop
--
\set VERBOSITY terse
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset

SELECT sse_subscribe_filter(ARRAY['drop.a'], '{}', '1 hour') AS s \gset
SELECT sid FROM sse_bridge.subscriptions WHERE id = :'s' \gset
SELECT sse_publish('drop.a', 'before the drop');
SELECT sse_unsubscribe(:'s') AS dropped;
SELECT sse_publish('drop.a', 'after the drop');

-- the row stays, marked, its def_id the drop marker
SELECT dropped_at IS NOT NULL AS tombstone, start_id - :base AS start_n,
       def_id - :base AS def_n
FROM sse_bridge.subscriptions WHERE id = :'s';
SELECT id - :base AS n, channel,
       CASE WHEN channel = '$sub' THEN data::jsonb ->> 'state' ELSE data END AS what
FROM sse_bridge.events WHERE id > :base ORDER BY id;
SELECT from_id - :base AS from_n, state
FROM sse_bridge.subscription_versions WHERE sid = :sid ORDER BY from_id;

-- every function that takes a subscription id treats it as unknown
SELECT sse_unsubscribe(:'s') AS dropped_again;
SELECT sse_touch(:'s') AS touched;
SELECT sse_subscription_add(:'s', ARRAY['drop.b']);
SELECT sse_subscription_remove(:'s', ARRAY['drop.a']);
SELECT sse_subscription_set_filter(:'s', '{"k": 1}');
-- sse_close does not mark it, sse_expire does not drop it again
UPDATE sse_bridge.subscriptions SET last_seen = now() - interval '2 hours' WHERE id = :'s';
SELECT sse_close('drop.a');
SELECT sse_expire() >= 0 AS expire_ran;
SELECT closed_at IS NULL AS not_closed, dropped_at IS NOT NULL AS tombstone,
       def_id - :base AS def_n, channels, filter
FROM sse_bridge.subscriptions WHERE id = :'s';
SELECT count(*) AS versions FROM sse_bridge.subscription_versions WHERE sid = :sid;
SELECT count(*) AS markers_after_drop FROM sse_bridge.events
WHERE channel = '$sub' AND id > :base + 3 AND (data::jsonb ->> 'sid')::bigint = :sid;
-- its id cannot be taken by another row
INSERT INTO sse_bridge.subscriptions (id, channels, ttl, start_id, def_id)
VALUES (:'s', ARRAY['drop.c'], '1 hour', 0, 0);

-- created and dropped in one transaction: a tombstone from its creation
-- marker to its drop marker
BEGIN;
SELECT sse_subscribe_filter(ARRAY['drop.t']) AS t \gset
SELECT sse_subscription_add(:'t', ARRAY['drop.u']);
SELECT sse_unsubscribe(:'t') AS dropped;
COMMIT;
SELECT sse_subscription_add(:'t', ARRAY['drop.v']);
SELECT sid AS tsid FROM sse_bridge.subscriptions WHERE id = :'t' \gset
SELECT dropped_at IS NOT NULL AS tombstone, def_id - start_id AS markers_apart, channels
FROM sse_bridge.subscriptions WHERE id = :'t';
SELECT state, channels FROM sse_bridge.subscription_versions WHERE sid = :tsid ORDER BY from_id;

-- a prune that stops before the drop keeps the tombstone and its versions
SELECT def_id AS drop_id FROM sse_bridge.subscriptions WHERE id = :'s' \gset
UPDATE sse_bridge.events SET created_at = created_at - interval '1 day' WHERE id < :drop_id;
SELECT sse_prune('1 hour') > 0 AS pruned;
SELECT pruned_through = :drop_id - 1 AS below_drop FROM sse_bridge.meta;
SELECT count(*) AS tombstones FROM sse_bridge.subscriptions WHERE id = :'s';
SELECT state FROM sse_bridge.subscription_versions WHERE sid = :sid ORDER BY from_id;

-- a prune past the drop deletes the tombstone with the versions
UPDATE sse_bridge.events SET created_at = created_at - interval '1 day' WHERE id <= :drop_id;
SELECT sse_prune('1 hour') > 0 AS pruned;
SELECT pruned_through = :drop_id AS at_drop FROM sse_bridge.meta;
SELECT count(*) AS tombstones FROM sse_bridge.subscriptions WHERE id = :'s';
SELECT count(*) AS versions FROM sse_bridge.subscription_versions WHERE sid = :sid;
-- the other tombstone's drop is after the mark: it stays
SELECT count(*) AS tombstones FROM sse_bridge.subscriptions WHERE id = :'t';
-- the id is unknown now, like any other
SELECT sse_unsubscribe(:'s') AS dropped;
SELECT sse_touch(:'s') AS touched;

-- everything pruned: no tombstone is left
SELECT sse_prune('0') >= 0 AS pruned;
SELECT count(*) AS tombstones FROM sse_bridge.subscriptions WHERE dropped_at IS NOT NULL;
-- the next tests count from the head of the log
SELECT sse_publish('drop.end', 'anchor');
