--
-- sse_publish: validation, the pending list, savepoints, commit-time ids
--
\set VERBOSITY default
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset

-- text is stored exactly as given, line breaks included; jsonb in its
-- canonical text form; the event name is optional
SELECT sse_publish('jobs.1', 'plain text');
SELECT sse_publish('jobs.1', E'line1\nline2\r\nline3\rend', 'log');
SELECT sse_publish('jobs.1', '<li class="x">fragment</li>');
SELECT sse_publish('jobs.1', '{"b": 2,   "a": [1, 2]}'::jsonb, 'progress');
SELECT sse_publish('jobs.1', '');
SELECT sse_publish(channel => 'A-b_9.x', data => 'named', event => 'ev ent: 2');
SELECT id - :base AS n, channel, event, data, data = E'line1\nline2\r\nline3\rend' AS exact
FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- created_at is taken at commit, in id order
SELECT bool_and(created_at >= prev) AS ordered
FROM (SELECT created_at, lag(created_at, 1, '-infinity') OVER (ORDER BY id) AS prev
      FROM sse_bridge.events) s;

-- an untyped literal goes to the text variant
SELECT sse_publish('jobs.1', '{"x" :1}');
SELECT data FROM sse_bridge.events ORDER BY id DESC LIMIT 1;

-- ids are assigned at commit: nothing is visible before, all of it after
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
BEGIN;
SELECT sse_publish('jobs.2', 'a');
SELECT sse_publish('jobs.2', 'b');
SELECT count(*) AS visible_inside FROM sse_bridge.events WHERE id > :base;
COMMIT;
SELECT id - :base AS n, data FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- rollback discards everything
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
BEGIN;
SELECT sse_publish('jobs.3', 'never');
ROLLBACK;
SELECT count(*) AS after_rollback FROM sse_bridge.events WHERE id > :base;

-- an error aborts the transaction and its events
BEGIN;
SELECT sse_publish('jobs.3', 'never either');
SELECT 1 / 0;
COMMIT;
SELECT count(*) AS after_error FROM sse_bridge.events WHERE id > :base;

-- savepoints: a rolled-back savepoint discards its events, a released one
-- hands them to its parent; nesting works both ways
BEGIN;
SELECT sse_publish('sp.a', '1 kept');
SAVEPOINT s1;
SELECT sse_publish('sp.a', '2 rolled back');
ROLLBACK TO SAVEPOINT s1;
SELECT sse_publish('sp.a', '3 kept');
SAVEPOINT s2;
SELECT sse_publish('sp.a', '4 kept (released)');
SAVEPOINT s3;
SELECT sse_publish('sp.a', '5 kept (released twice)');
RELEASE SAVEPOINT s3;
RELEASE SAVEPOINT s2;
SAVEPOINT s4;
SELECT sse_publish('sp.a', '6 rolled back with s4');
SAVEPOINT s5;
SELECT sse_publish('sp.a', '7 released into s4, rolled back with it');
RELEASE SAVEPOINT s5;
ROLLBACK TO SAVEPOINT s4;
SELECT sse_publish('sp.a', '8 kept');
SAVEPOINT s6;
SAVEPOINT s7;
SELECT sse_publish('sp.a', '9 rolled back with s6');
ROLLBACK TO SAVEPOINT s6;
RELEASE SAVEPOINT s6;
SELECT sse_publish('sp.a', '10 kept');
COMMIT;
SELECT id - :base AS n, data FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- a PL/pgSQL exception block is a subtransaction too
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
DO $$
BEGIN
    PERFORM sse_publish('sp.b', 'before block');
    BEGIN
        PERFORM sse_publish('sp.b', 'inside failed block');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        PERFORM sse_publish('sp.b', 'in handler');
    END;
END
$$;
SELECT id - :base AS n, data FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- PREPARE TRANSACTION is refused when events are pending...
BEGIN;
SELECT sse_publish('jobs.4', 'prepared');
PREPARE TRANSACTION 'sse_publish_test';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'sse_publish_test';
-- ...also when they were published in a released savepoint...
BEGIN;
SAVEPOINT s;
SELECT sse_publish('jobs.4', 'prepared');
RELEASE SAVEPOINT s;
PREPARE TRANSACTION 'sse_publish_test';
-- ...but allowed when they were all rolled back, or there were none
BEGIN;
SAVEPOINT s;
SELECT sse_publish('jobs.4', 'discarded');
ROLLBACK TO SAVEPOINT s;
PREPARE TRANSACTION 'sse_publish_test';
COMMIT PREPARED 'sse_publish_test';
SELECT count(*) AS after_prepare FROM sse_bridge.events WHERE id > :base + 3;

-- the pending state does not leak into the next transaction
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SELECT sse_publish('jobs.5', 'alone');
SELECT id - :base AS n, data FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- bad channels
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SELECT sse_publish('', 'x');
SELECT sse_publish('jobs.*', 'x');
SELECT sse_publish('jobs.#', 'x');
SELECT sse_publish('jobs.a*', 'x');
SELECT sse_publish('jobs..1', 'x');
SELECT sse_publish('.jobs', 'x');
SELECT sse_publish('jobs.', 'x');
SELECT sse_publish('jobs 1', 'x');
SELECT sse_publish(E'jobs\n1', 'x');
SELECT sse_publish('jöbs', 'x');
SELECT sse_publish(repeat('a', 201), 'x');
SELECT sse_publish(repeat('a', 200), 'x');

-- bad event names
SELECT sse_publish('jobs.1', 'x', '');
SELECT sse_publish('jobs.1', 'x', E'two\nlines');
SELECT sse_publish('jobs.1', 'x', E'cr\r');
SELECT sse_publish('jobs.1', 'x', E'tab\t');
SELECT sse_publish('jobs.1', 'x', repeat('e', 65));
SELECT sse_publish('jobs.1', 'x', repeat('e', 64));
SELECT sse_publish('jobs.1', 'x', 'ready');
SELECT sse_publish('jobs.1', 'x', 'reset');
SELECT sse_publish('jobs.1', 'x', 'close');
SELECT sse_publish('jobs.1', 'x', 'Close');
-- only the valid ones were queued
SELECT id - :base AS n, length(channel) AS channel_len, event FROM sse_bridge.events
WHERE id > :base ORDER BY id;

-- nulls
SELECT sse_publish(NULL, 'x');
SELECT sse_publish('jobs.1', NULL::text);
SELECT sse_publish('jobs.1', NULL::jsonb);

-- payload size, against sse_bridge.max_payload (bytes of the text form)
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SHOW sse_bridge.max_payload;
SET sse_bridge.max_payload = 10;
SELECT sse_publish('jobs.1', '0123456789');
SELECT sse_publish('jobs.1', '0123456789a');
SELECT sse_publish('jobs.1', 'ééééé');
SELECT sse_publish('jobs.1', 'éééééé');
SELECT sse_publish('jobs.1', '{"a": 12345}'::jsonb);
RESET sse_bridge.max_payload;
SELECT sse_publish('jobs.1', repeat('x', 1024 * 1024));
SELECT sse_publish('jobs.1', repeat('x', 1024 * 1024 + 1));
SELECT id - :base AS n, octet_length(data) AS bytes FROM sse_bridge.events
WHERE id > :base ORDER BY id;
SET sse_bridge.nonexistent = 1;

-- read-only transactions cannot publish
BEGIN READ ONLY;
SELECT sse_publish('jobs.1', 'x');
ROLLBACK;

-- the rows are written straight to the heap and the indexes: the primary
-- key gets every row, the partial index on close events only close rows
-- (a close is written after the other events of its transaction)
CREATE EXTENSION amcheck;
SELECT coalesce(max(id), 0) AS base, clock_timestamp() AS t0 FROM sse_bridge.events \gset
BEGIN;
SELECT sse_publish('idx.a', 'one');
SELECT sse_close('idx.a');
SELECT sse_publish('idx.b', 'two', 'named');
SELECT sse_publish('idx.b', repeat('big ', 100000));
COMMIT;
SELECT sse_close('idx.b');
SELECT sse_publish('idx.b', 'three');
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF)
SELECT id, channel FROM sse_bridge.events WHERE event = 'close' AND channel LIKE 'idx.%';
SELECT id - :base AS n, channel FROM sse_bridge.events
WHERE event = 'close' AND channel LIKE 'idx.%' ORDER BY id;
SELECT id - :base AS n, channel, event, octet_length(data) AS bytes
FROM sse_bridge.events WHERE id > :base ORDER BY id;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT bt_index_check('sse_bridge.events_pkey', true) AS pkey_ok,
       bt_index_check('sse_bridge.events_close_idx', true) AS close_idx_ok;
-- created_at is one commit time per transaction, in id order
SELECT count(DISTINCT created_at) AS times,
       bool_and(created_at BETWEEN :'t0' AND clock_timestamp()) AS in_range
FROM sse_bridge.events WHERE id > :base AND channel = 'idx.a';
SELECT bool_and(created_at BETWEEN :'t0' AND clock_timestamp()) AS all_in_range
FROM sse_bridge.events WHERE id > :base;

-- the primary key is still checked
SELECT last_value AS seq_last FROM sse_bridge.events_id_seq \gset
SELECT setval('sse_bridge.events_id_seq', :seq_last - 1) = :seq_last - 1 AS rewound;
\set VERBOSITY terse
SELECT sse_publish('idx.c', 'duplicate id');
\set VERBOSITY default
SELECT setval('sse_bridge.events_id_seq', :seq_last) = :seq_last AS restored;
SELECT count(*) AS duplicates FROM sse_bridge.events WHERE channel = 'idx.c';

-- with a trigger on the table, the rows go through an INSERT, which fires it
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
CREATE FUNCTION events_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'inserted %: % %', NEW.id - current_setting('sse_test.base')::bigint,
        NEW.channel, NEW.data;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_seen AFTER INSERT ON sse_bridge.events
    FOR EACH ROW EXECUTE FUNCTION events_seen();
SELECT set_config('sse_test.base', :'base', false) IS NOT NULL AS set;
SELECT sse_publish('trg.a', 'via insert');
BEGIN;
SELECT sse_publish('trg.a', 'many 1');
SELECT sse_publish('trg.a', 'many 2');
COMMIT;
DROP TRIGGER events_seen ON sse_bridge.events;
DROP FUNCTION events_seen();
SELECT sse_publish('trg.a', 'direct again');
SELECT id - :base AS n, channel, data FROM sse_bridge.events WHERE id > :base ORDER BY id;
DROP EXTENSION amcheck;
