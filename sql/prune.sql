--
-- sse_prune: deletes a contiguous prefix of the log
--
\set VERBOSITY default

-- start from an empty log whose head is a known id
SELECT sse_publish('p.anchor', 'anchor');
SELECT max(id) AS anchor FROM sse_bridge.events \gset
SELECT sse_prune('0') > 0 AS emptied;
SELECT count(*) AS left_over FROM sse_bridge.events;
SELECT pruned_through = :anchor AS through_anchor FROM sse_bridge.meta;
SELECT pruned_through AS base FROM sse_bridge.meta \gset
SHOW sse_bridge.retention;

-- five events; backdate the first three (as if committed long ago), but
-- the fourth less than the others
SELECT sse_publish('p.a', 'e' || i) FROM generate_series(1, 5) i;
UPDATE sse_bridge.events SET created_at = now() - interval '3 days' WHERE id - :base IN (1, 2);
UPDATE sse_bridge.events SET created_at = now() - interval '2 days' WHERE id - :base = 3;
UPDATE sse_bridge.events SET created_at = now() - interval '1 hour' WHERE id - :base = 4;

-- nothing is older than a week
SELECT sse_prune('7 days');
SELECT pruned_through - :base AS pruned_through FROM sse_bridge.meta;

-- default: sse_bridge.retention (1 day) deletes ids 1..3
SELECT sse_prune();
SELECT id - :base AS n, data FROM sse_bridge.events ORDER BY id;
SELECT pruned_through - :base AS pruned_through FROM sse_bridge.meta;

-- the head is still known after pruning everything
SET sse_bridge.retention = '30min';
SHOW sse_bridge.retention;
SELECT sse_prune(NULL);
SELECT id - :base AS n FROM sse_bridge.events ORDER BY id;
SELECT sse_prune('0');
SELECT count(*) AS left_over FROM sse_bridge.events;
SELECT pruned_through - :base AS pruned_through FROM sse_bridge.meta;
RESET sse_bridge.retention;

-- subscriptions start at greatest(max(id), pruned_through)
SELECT sse_subscribe_filter(ARRAY['p.#']) AS s \gset
SELECT start_id - :base AS start_id FROM sse_bridge.subscriptions WHERE id = :'s';
SELECT sse_unsubscribe(:'s');

-- pruned_through never goes down
UPDATE sse_bridge.meta SET pruned_through = pruned_through + 100;
SELECT sse_publish('p.a', 'after a gap');
SELECT sse_prune('0');
SELECT pruned_through - :base AS pruned_through FROM sse_bridge.meta;
UPDATE sse_bridge.meta SET pruned_through = pruned_through - 100;

-- a rolled-back prune changes nothing
SELECT sse_publish('p.a', 'kept');
BEGIN;
SELECT sse_prune('0');
ROLLBACK;
SELECT data FROM sse_bridge.events ORDER BY id;

-- a second meta row, as a restore from pg_dump inserts it, folds into the
-- first one and keeps the higher mark; a lower mark changes nothing
INSERT INTO sse_bridge.meta (pruned_through)
    SELECT pruned_through + 7 FROM sse_bridge.meta;
SELECT count(*) AS rows, max(pruned_through) - :base AS pruned_through FROM sse_bridge.meta;
INSERT INTO sse_bridge.meta (pruned_through) VALUES (0);
SELECT count(*) AS rows, max(pruned_through) - :base AS pruned_through FROM sse_bridge.meta;
UPDATE sse_bridge.meta SET pruned_through = pruned_through - 7;

-- errors
SELECT sse_prune('-1 day');
