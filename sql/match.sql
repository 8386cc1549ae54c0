--
-- sse_match and sse_filter_match: the bridge's matching rules in SQL
--
\set VERBOSITY default

-- patterns: * is exactly one segment, # is zero or more
SELECT p AS pattern, c AS channel, sse_match(p, c) AS matches
FROM (VALUES
    ('a.b', 'a.b'), ('a.b', 'a.c'), ('a.b', 'a.b.c'), ('a.b', 'A.b'),
    ('a.*', 'a.b'), ('a.*', 'a'), ('a.*', 'a.b.c'), ('*.b', 'a.b'),
    ('*', 'a'), ('*', 'a.b'), ('*.*', 'a.b'),
    ('a.#', 'a'), ('a.#', 'a.b'), ('a.#', 'a.b.c'), ('a.#', 'b.a'),
    ('#', 'a'), ('#', 'a.b.c'), ('#.c', 'c'), ('#.c', 'a.b.c'), ('#.c', 'a.c.d'),
    ('a.#.c', 'a.c'), ('a.#.c', 'a.b.c'), ('a.#.c', 'a.b.b.c'), ('a.#.c', 'a.b'),
    ('a.*.#', 'a'), ('a.*.#', 'a.b'), ('a.*.#', 'a.b.c'),
    ('#.#', 'a'), ('#.*', 'a'), ('#.*', 'a.b'), ('*.#.*', 'a'), ('*.#.*', 'a.b'),
    ('job-1_x.*', 'job-1_x.y')
) v(p, c);

-- STRICT
SELECT sse_match(NULL, 'a') IS NULL AS null_in_null_out;

-- bad patterns and channels are errors, not "no match"
SELECT sse_match('a.b#', 'a.b');
SELECT sse_match('a..b', 'a.b');
SELECT sse_match('', 'a');
SELECT sse_match('a', 'a.*');
SELECT sse_match('a', 'a b');

-- filters: jsonb containment, data @> filter (jsonb_says: what jsonb
-- answers for the data that are JSON objects)
SELECT f AS filter, d AS data, sse_filter_match(f::jsonb, d) AS matches,
       CASE WHEN obj THEN d::jsonb @> f::jsonb END AS jsonb_says
FROM (VALUES
    ('{}', '{"a": 1}', true),
    ('{}', 'not json at all', false),
    ('{}', '[1, 2]', false),
    ('{}', '"a string"', false),
    ('{}', '42', false),
    ('{}', '', false),
    ('{"a": 1}', '{"a": 1, "b": 2}', true),
    ('{"a": 1}', '{"a": 1.0}', true),
    ('{"a": 1}', '{"a": 10e-1}', true),
    ('{"a": 1}', '{"a": "1"}', true),
    ('{"a": 1}', '{"b": 1}', true),
    ('{"a": 1}', 'not json', false),
    ('{"a": 1}', '[{"a": 1}]', false),
    ('{"a": null}', '{"a": null}', true),
    ('{"a": null}', '{}', true),
    ('{"a": true}', '{"a": false}', true),
    ('{"a": {"b": 1}}', '{"a": {"b": 1, "c": 2}}', true),
    ('{"a": {"b": 1}}', '{"a": {"c": 2}}', true),
    ('{"a": {}}', '{"a": {"x": 1}}', true),
    ('{"a": {}}', '{"a": []}', true),
    ('{"t": ["x"]}', '{"t": ["y", "x"]}', true),
    ('{"t": ["x", "x"]}', '{"t": ["x"]}', true),
    ('{"t": []}', '{"t": [1]}', true),
    ('{"t": ["x"]}', '{"t": "x"}', true),
    ('{"t": "x"}', '{"t": ["x"]}', true),
    ('{"t": [3]}', '{"t": [{"k": 1, "j": 2}, 3]}', true),
    ('{"t": {"k": [1]}}', '{"t": {"k": [2, 1]}}', true),
    ('{"t": [1]}', '{"t": [[1]]}', true),
    ('{"u": "é"}', '{"u": "\u00e9"}', true),
    ('{"n": 12345678901234567890}', '{"n": 12345678901234567890}', true)
) v(f, d, obj);

SELECT sse_filter_match(NULL, '{}') IS NULL AS null_in_null_out;

-- the filter must be an object
SELECT sse_filter_match('[1]', '{}');
SELECT sse_filter_match('1', '{}');
SELECT sse_filter_match('null', '{}');
