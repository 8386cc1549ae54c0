--
-- sse_prune with sse_bridge.retention_max_events: at most N events are kept
--
\set VERBOSITY default

-- start from an empty log, then ten events
SELECT sse_prune('0') >= 0 AS emptied;
SHOW sse_bridge.retention_max_events;
SELECT count(*) AS left_over FROM sse_bridge.events;
SELECT sse_publish('c.a', 'e' || i) FROM generate_series(1, 10) i;

-- no limit by default, and nothing is a day old
SELECT sse_prune();
SELECT count(*) FROM sse_bridge.events;

-- keep four: the six oldest go, the mark sits just below the first kept id
SET sse_bridge.retention_max_events = 4;
SELECT sse_prune();
SELECT data FROM sse_bridge.events ORDER BY id;
SELECT m.pruned_through = (SELECT min(id) - 1 FROM sse_bridge.events) AS mark_below_first
  FROM sse_bridge.meta m;

-- exactly four left: nothing more to do
SELECT sse_prune();

-- age and count together: whichever cuts more wins
UPDATE sse_bridge.events SET created_at = now() - interval '3 days'
 WHERE data IN ('e7', 'e8');
SELECT sse_prune();
SELECT data FROM sse_bridge.events ORDER BY id;
SET sse_bridge.retention_max_events = 1;
SELECT sse_prune('7 days');
SELECT data FROM sse_bridge.events ORDER BY id;
SELECT m.pruned_through = (SELECT min(id) - 1 FROM sse_bridge.events) AS mark_below_first
  FROM sse_bridge.meta m;

-- 0 means no limit again
SET sse_bridge.retention_max_events = 0;
SELECT sse_publish('c.a', 'f' || i) FROM generate_series(1, 3) i;
SELECT sse_prune();
SELECT count(*) FROM sse_bridge.events;

-- the pruned ids are never handed out again: the mark only moves up
SET sse_bridge.retention_max_events = 2;
SELECT pruned_through AS before FROM sse_bridge.meta \gset
SELECT sse_prune();
SELECT pruned_through > :before AS mark_moved_up FROM sse_bridge.meta;
SELECT data FROM sse_bridge.events ORDER BY id;
RESET sse_bridge.retention_max_events;

-- errors
SET sse_bridge.retention_max_events = -1;
