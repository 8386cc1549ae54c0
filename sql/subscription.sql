--
-- Server-side subscriptions
--
\set VERBOSITY default

-- the start point is the head of the log: greatest(max(id), pruned_through)
SELECT sse_publish('sub.a', 'before');
SELECT sse_subscribe_filter(ARRAY['sub.*', 'other.#']) AS s1 \gset
SELECT channels, filter, ttl, start_id = (SELECT max(id) FROM sse_bridge.events) AS start_is_head,
       closed_at IS NULL AS open, last_seen = created_at AS fresh
FROM sse_bridge.subscriptions WHERE id = :'s1';
SELECT :'s1'::uuid IS NOT NULL AS got_uuid,
       (SELECT count(*) FROM sse_bridge.subscriptions WHERE dropped_at IS NULL) AS n;

-- events published in the creating transaction come after the start point
BEGIN;
SELECT sse_publish('sub.b', 'same transaction, before subscribing');
SELECT sse_subscribe_filter(ARRAY['sub.b'], '{"user": 7}', '5 minutes') AS s2 \gset
COMMIT;
SELECT e.data FROM sse_bridge.events e, sse_bridge.subscriptions s
WHERE s.id = :'s2' AND e.id > s.start_id ORDER BY e.id;
SELECT channels, filter, ttl FROM sse_bridge.subscriptions WHERE id = :'s2';

-- uuids differ; sids are distinct too
SELECT count(DISTINCT id) AS ids, count(DISTINCT sid) AS sids FROM sse_bridge.subscriptions
WHERE dropped_at IS NULL;

-- duplicate patterns are kept once, in first-seen order
SELECT sse_subscribe_filter(ARRAY['d.1', 'd.*', 'd.1', '#']) AS s3 \gset
SELECT channels FROM sse_bridge.subscriptions WHERE id = :'s3';

-- add and remove patterns
SELECT sse_subscription_add(:'s1', ARRAY['x.y', 'sub.*', 'x.y', 'z']);
SELECT sse_subscription_remove(:'s1', ARRAY['other.#', 'not.there']);
SELECT sse_subscription_remove(:'s1', ARRAY['sub.*', 'x.y', 'z']);
SELECT channels FROM sse_bridge.subscriptions WHERE id = :'s1';
SELECT sse_subscription_remove(:'s1', ARRAY['x.y', 'sub.*']);

-- change the filter
SELECT sse_subscription_set_filter(:'s2', '{"user": 8, "tags": ["a"]}');
SELECT filter FROM sse_bridge.subscriptions WHERE id = :'s2';

-- touch and unsubscribe report whether the subscription exists
UPDATE sse_bridge.subscriptions SET last_seen = last_seen - interval '1 minute' WHERE id = :'s1';
BEGIN;
SELECT sse_touch(:'s1');
SELECT last_seen = now() AS touched FROM sse_bridge.subscriptions WHERE id = :'s1';
COMMIT;
SELECT sse_unsubscribe(:'s3');
SELECT sse_unsubscribe(:'s3');
SELECT sse_touch(:'s3');

-- unknown subscriptions (the uuid is never echoed)
SELECT sse_subscription_add('00000000-0000-0000-0000-000000000000', ARRAY['a']);
SELECT sse_subscription_remove('00000000-0000-0000-0000-000000000000', ARRAY['a']);
SELECT sse_subscription_set_filter('00000000-0000-0000-0000-000000000000', '{}');

-- bad patterns
SELECT sse_subscribe_filter(ARRAY[]::text[]);
SELECT sse_subscribe_filter(ARRAY['ok', NULL]);
SELECT sse_subscribe_filter(ARRAY['a.**']);
SELECT sse_subscribe_filter(ARRAY['a.b*']);
SELECT sse_subscribe_filter(ARRAY['a..b']);
SELECT sse_subscribe_filter(ARRAY['a b']);
SELECT sse_subscribe_filter(ARRAY['']);
SELECT sse_subscribe_filter(ARRAY[repeat('a', 201)]);
SELECT sse_subscription_add(:'s1', ARRAY['#.x#']);
SELECT sse_subscription_remove(:'s1', ARRAY[NULL]::text[]);

-- bad filters and ttls
SELECT sse_subscribe_filter(ARRAY['a'], '[1, 2]');
SELECT sse_subscribe_filter(ARRAY['a'], '"x"');
SELECT sse_subscribe_filter(ARRAY['a'], 'null');
SELECT sse_subscription_set_filter(:'s2', '3');
SELECT sse_subscribe_filter(ARRAY['a'], '{}', '0');
SELECT sse_subscribe_filter(ARRAY['a'], '{}', '-1 hour');
SELECT sse_subscribe_filter(ARRAY['a'], '{}', '101 years');
SELECT sse_subscribe_filter(ARRAY['a'], '{}', '100 years') IS NOT NULL AS longest_ttl_ok;

-- nulls
SELECT sse_subscribe_filter(NULL);
SELECT sse_subscribe_filter(ARRAY['a'], NULL);
SELECT sse_subscribe_filter(ARRAY['a'], '{}', NULL);
SELECT sse_subscription_add(NULL, ARRAY['a']);
SELECT sse_subscription_set_filter(:'s2', NULL);
SELECT sse_touch(NULL);
SELECT sse_unsubscribe(NULL);

-- a failed change leaves the subscription as it was
SELECT channels, filter FROM sse_bridge.subscriptions WHERE id IN (:'s1', :'s2') ORDER BY sid;

-- expire removes what was unused for longer than its ttl
SELECT sse_subscribe_filter(ARRAY['exp.a'], '{}', '1 minute') AS e1 \gset
SELECT sse_subscribe_filter(ARRAY['exp.b'], '{}', '1 hour') AS e2 \gset
UPDATE sse_bridge.subscriptions SET last_seen = now() - interval '2 minutes'
WHERE id IN (:'e1', :'e2');
SELECT sse_expire();
SELECT channels FROM sse_bridge.subscriptions WHERE id IN (:'e1', :'e2');
SELECT sse_expire();

-- sse_close publishes a close event and marks the subscriptions that list
-- the channel literally; wildcard subscriptions are left open
SELECT sse_subscribe_filter(ARRAY['job.42']) AS c1 \gset
SELECT sse_subscribe_filter(ARRAY['job.*', 'job.42']) AS c2 \gset
SELECT sse_subscribe_filter(ARRAY['job.*']) AS c3 \gset
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
BEGIN;
SELECT sse_publish('job.42', 'done');
SELECT sse_close('job.42');
COMMIT;
-- markers (channel $sub) name the subscription by its sid, which depends on
-- earlier tests
SELECT id - :base AS n, channel, event,
       regexp_replace(data, '^\{"sid":[0-9]+,', '{"sid":N,') AS data
FROM sse_bridge.events WHERE id > :base ORDER BY id;
SELECT channels, closed_at IS NOT NULL AS closed FROM sse_bridge.subscriptions
WHERE id IN (:'c1', :'c2', :'c3') ORDER BY sid;
-- the bridge's lookup of close events finds it
SELECT count(*) AS close_rows FROM sse_bridge.events
WHERE event = 'close' AND channel = ANY (ARRAY['job.42']) AND id > :base;
-- closing is transactional
BEGIN;
SELECT sse_close('job.43');
ROLLBACK;
SELECT count(*) AS after_rollback FROM sse_bridge.events WHERE channel = 'job.43';
SELECT sse_close('job.*');
SELECT sse_close(NULL);

SELECT sse_unsubscribe(id) FROM sse_bridge.subscriptions WHERE dropped_at IS NULL ORDER BY sid;

-- an owner (1.3): the subject of the tokens the bridge opens it for; the
-- default NULL keeps a subscription a capability
SELECT sse_subscribe_filter(ARRAY['own.x'], '{}', '1 hour', 'alice') AS o1 \gset
SELECT sse_subscribe_filter(ARRAY['own.x'], owner => 'user-17') AS o2 \gset
SELECT sse_subscribe_filter(ARRAY['own.x']) AS o3 \gset
SELECT sse_subscribe_filter(ARRAY['own.x'], owner => NULL) AS o4 \gset
SELECT owner FROM sse_bridge.subscriptions WHERE id IN (:'o1', :'o2', :'o3', :'o4') ORDER BY sid;
SELECT sse_subscribe_filter(ARRAY['own.x'], owner => '');
SELECT sse_subscribe_filter(ARRAY['own.x'], owner => repeat('x', 257));
SELECT sse_subscribe_filter(ARRAY['own.x'], owner => repeat('x', 256)) IS NOT NULL AS longest;
SELECT sse_unsubscribe(id) FROM sse_bridge.subscriptions WHERE dropped_at IS NULL ORDER BY sid;
