--
-- Filters are evaluated exactly (numbers as decimals) or refused: limits
-- at subscription time, and payloads the filters could not read exactly
-- refused at publish time.
--
\set VERBOSITY default

-- errors shown with their SQLSTATE
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
        det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(E'\n  detail: ' || nullif(det, ''), '')
        || coalesce(E'\n  hint: ' || nullif(hint, ''), '');
END $$;

-- nested objects: {"a": {"a": ... 1 ...}}
CREATE FUNCTION pg_temp.nest(depth int) RETURNS text LANGUAGE sql AS $$
    SELECT repeat('{"a": ', depth) || '1' || repeat('}', depth)
$$;

-- numbers compare as decimals, like numeric: the sse_filter_match column
-- must equal the jsonb column on every row
SELECT f AS filter, d AS data, sse_filter_match(f::jsonb, d) AS matches,
       d::jsonb @> f::jsonb AS jsonb_says
FROM (VALUES
    ('{"user": 42, "z": 1e400}', '{"user": 7}'),
    ('{"user": 42, "z": 1e400}', '{"user": 42}'),
    ('{"user": 42, "z": 1e400}', '{"user": 42, "z": 1e400}'),
    ('{"user": 42, "z": 1e400}', '{"user": 42, "z": 10e399}'),
    ('{"user": 42, "z": 1e400}', '{"user": 42, "z": 1e399}'),
    ('{"z": 1e-400}', '{"z": 0}'),
    ('{"z": 1e-400}', '{"z": 0.1e-399}'),
    ('{"z": 0}', '{"z": -0}'),
    ('{"z": 0}', '{"z": -0.000e-7}'),
    ('{"z": 1}', '{"z": 1.000}'),
    ('{"z": 1}', '{"z": 1.0000000000000000000001}'),
    ('{"z": 9007199254740993}', '{"z": 9007199254740992}'),
    ('{"z": 9007199254740993}', '{"z": 9007199254740993.0}'),
    ('{"z": 123456789012345678901234567890}', '{"z": 1.2345678901234567890123456789e29}'),
    ('{"z": [1, 2.50]}', '{"z": [2.5, 1E0, 3]}'),
    ('{"z": [1, 2.50]}', '{"z": [2.51, 1]}'),
    ('{"k": 2}', '{"k": 1, "k": 2}'),
    ('{"k": 1}', '{"k": 1, "k": 2}'),
    ('{"u": "\u00e9\ud83d\ude00"}', '{"u": "é😀"}'),
    ('{"u": "\u00e9"}', '{"u": "e\u0301"}')
) v(f, d);

-- the bridge reads filters with the same code: sse_subscribe_filter accepts
-- what it can evaluate exactly, up to the limits
SELECT pg_temp.try($$SELECT sse_subscribe_filter(ARRAY['lim.a'], '{"user": 42, "z": 1e400}')$$);
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a', pg_temp.nest(32)));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a',
    (SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 1023) i)));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a',
    jsonb_build_object('t', (SELECT jsonb_agg(i) FROM generate_series(1, 256) i))));

-- and refuses the rest, with an SQLSTATE and a hint
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a', pg_temp.nest(2100)));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a', pg_temp.nest(33)));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a',
    (SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 1024) i)));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a',
    jsonb_build_object('t', (SELECT jsonb_agg(i) FROM generate_series(1, 257) i))));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a',
    jsonb_build_object('s', repeat('x', 16400))));
SELECT pg_temp.try(format('SELECT sse_subscribe_filter(ARRAY[%L], %L)', 'lim.a',
    jsonb_build_object('n', 10::numeric ^ 5000)));
SELECT pg_temp.try($$SELECT sse_subscribe_filter(ARRAY['lim.a'], '{"t": [{"k": 1}]}')$$);
SELECT pg_temp.try($$SELECT sse_subscribe_filter(ARRAY['lim.a'], '{"t": [[1]]}')$$);
SELECT count(*) AS subscriptions_made FROM sse_bridge.subscriptions
WHERE channels = ARRAY['lim.a'];

-- sse_subscription_set_filter refuses the same filters and keeps the old one
SELECT sse_subscribe_filter(ARRAY['lim.b'], '{"user": 1}') AS sb \gset
SELECT pg_temp.try(format('SELECT sse_subscription_set_filter(%L, %L)', :'sb', pg_temp.nest(2100)));
SELECT pg_temp.try(format('SELECT sse_subscription_set_filter(%L, %L)', :'sb',
    jsonb_build_object('t', (SELECT jsonb_agg(i) FROM generate_series(1, 1100) i))));
SELECT pg_temp.try(format('SELECT sse_subscription_set_filter(%L, %L)', :'sb', '{"t": [{}]}'));
SELECT filter FROM sse_bridge.subscriptions WHERE id = :'sb';
SELECT pg_temp.try(format('SELECT sse_subscription_set_filter(%L, %L)', :'sb', '{"user": 1.0e400}'));
SELECT filter = '{"user": 1e400}' AS replaced FROM sse_bridge.subscriptions WHERE id = :'sb';

-- sse_filter_match refuses them too
SELECT pg_temp.try($$SELECT sse_filter_match('{"t": [{"k": 1}]}', '{}')$$);
SELECT pg_temp.try(format('SELECT sse_filter_match(%L, %L)', pg_temp.nest(33), '{}'));

-- publishing: object data beyond what the filters read exactly is refused
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SELECT pg_temp.try(format('SELECT sse_publish(%L, %L)', 'lim.p',
    '{"a": ' || repeat('[', 999) || repeat(']', 999) || '}'));
SELECT pg_temp.try(format('SELECT sse_publish(%L, %L)', 'lim.p',
    '{"a": ' || repeat('[', 1000) || repeat(']', 1000) || '}'));
SELECT pg_temp.try(format('SELECT sse_publish(%L, %L::jsonb)', 'lim.p',
    '{"a": ' || repeat('[', 2100) || repeat(']', 2100) || '}'));
SELECT pg_temp.try($$SELECT sse_publish('lim.p', '{"n": 1e1000, "m": -1E-1000}')$$);
SELECT pg_temp.try($$SELECT sse_publish('lim.p', '{"n": 1e1001}')$$);
SELECT pg_temp.try(format('SELECT sse_publish(%L, %L)', 'lim.p',
    '{"n": 1' || repeat('0', 4096) || '}'));
SELECT pg_temp.try($$SELECT sse_publish('lim.p', '{"s": "a\u0000b"}')$$);
-- jsonb itself refuses \u0000; "\\u0000" is an escaped backslash, not a NUL
SELECT pg_temp.try($$SELECT '{"s": "a\u0000b"}'::jsonb$$);
SELECT pg_temp.try($$SELECT sse_publish('lim.p', '{"s": "a\\u0000b"}')$$);
-- data that is not a JSON object is never looked into: published as is
SELECT pg_temp.try(format('SELECT sse_publish(%L, %L)', 'lim.p',
    repeat('[', 2000) || repeat(']', 2000)));
SELECT pg_temp.try($$SELECT sse_publish('lim.p', 'plain 1e5000 text \u0000')$$);
SELECT id - :base AS n, left(data, 24) AS data FROM sse_bridge.events
WHERE id > :base ORDER BY id;

-- a refused payload aborts only its own statement's effects
BEGIN;
SELECT sse_publish('lim.t', '{"ok": 1}');
SAVEPOINT s;
SELECT sse_publish('lim.t', '{"n": 1e1001}');
ROLLBACK TO SAVEPOINT s;
SELECT sse_publish('lim.t', '{"ok": 2}');
COMMIT;
SELECT data FROM sse_bridge.events WHERE channel = 'lim.t' ORDER BY id;

-- the trigger publishes through the same check
CREATE TABLE lim_rows (id int, doc jsonb);
CREATE TRIGGER lim_rows_sse AFTER INSERT ON lim_rows
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('lim.trig');
SELECT pg_temp.try(format('INSERT INTO lim_rows VALUES (1, %L)',
    repeat('[', 999) || repeat(']', 999)));
SELECT pg_temp.try(format('INSERT INTO lim_rows VALUES (2, %L)',
    repeat('[', 1000) || repeat(']', 1000)));
SELECT count(*) AS rows_kept FROM lim_rows;
SELECT count(*) AS trigger_events FROM sse_bridge.events WHERE channel = 'lim.trig';
DROP TABLE lim_rows;

-- sse_filter_match reports unreadable data as publishing does
SELECT pg_temp.try($$SELECT sse_filter_match('{}', '{"n": 1e1001}')$$);

SELECT sse_unsubscribe(id) FROM sse_bridge.subscriptions WHERE channels[1] LIKE 'lim.%';
