--
-- Privileges: rights come from EXECUTE on the functions, not table grants
--
\set VERBOSITY default
CREATE ROLE regress_sse_nobody;
CREATE ROLE regress_sse_publisher;
CREATE ROLE regress_sse_bridge;
GRANT CREATE ON SCHEMA public TO regress_sse_publisher;

-- the grants documented in sse_bridge--1.0.sql
GRANT EXECUTE ON FUNCTION
    sse_publish(text, text, text), sse_publish(text, jsonb, text),
    sse_close(text), sse_notify_trigger(),
    sse_subscribe_filter(text[], jsonb, interval, text),
    sse_subscription_add(uuid, text[]), sse_subscription_remove(uuid, text[]),
    sse_subscription_set_filter(uuid, jsonb), sse_unsubscribe(uuid)
TO regress_sse_publisher;
GRANT USAGE ON SCHEMA sse_bridge TO regress_sse_bridge;
GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions
TO regress_sse_bridge;
GRANT EXECUTE ON FUNCTION sse_touch(uuid) TO regress_sse_bridge;

-- which functions are SECURITY DEFINER with a pinned search_path, and
-- which ones PUBLIC may execute
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       p.prosecdef AS secdef, p.proconfig,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
FROM pg_proc p
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'sse_bridge'
ORDER BY 1, 2;

-- a role without grants can match, but not publish, subscribe or read
SET ROLE regress_sse_nobody;
SELECT sse_match('a.*', 'a.b'), sse_filter_match('{}', 'x');
SELECT sse_publish('priv.a', 'x');
SELECT sse_close('priv.a');
SELECT sse_subscribe_filter(ARRAY['priv.#']);
SELECT sse_touch(gen_random_uuid());
SELECT sse_expire();
SELECT sse_prune();
SELECT count(*) FROM sse_bridge.events;
SET sse_bridge.max_payload = 10;
RESET ROLE;

-- a publisher publishes without any table privilege, through the
-- functions only; the rows are written as the owner of sse_bridge.events
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SET ROLE regress_sse_publisher;
SELECT sse_publish('priv.a', 'from publisher');
BEGIN;
SELECT sse_publish('priv.a', '{"n": 1}'::jsonb, 'json');
SELECT sse_subscribe_filter(ARRAY['priv.#'], '{"n": 1}') AS sub \gset
COMMIT;
SELECT sse_subscription_add(:'sub', ARRAY['more']);
SELECT sse_close('priv.a');
INSERT INTO sse_bridge.events VALUES (-1, 'x', NULL, 'x', now());
SELECT count(*) FROM sse_bridge.events;
SELECT sse_touch(:'sub');
SELECT sse_prune();
-- a trigger attached by the publisher to its own table
CREATE TABLE regress_sse_jobs (id int);
CREATE TRIGGER jobs_sse AFTER INSERT ON regress_sse_jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('priv.job.{id}');
INSERT INTO regress_sse_jobs VALUES (7);
RESET ROLE;
-- markers (channel $sub) name the subscription by its sid, which depends on
-- earlier tests
SELECT id - :base AS n, channel, event,
       regexp_replace(data, '^\{"sid":[0-9]+,', '{"sid":N,') AS data
FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- without EXECUTE on the trigger function, no trigger can be created
SET ROLE regress_sse_nobody;
CREATE TEMP TABLE nobody_jobs (id int);
CREATE TRIGGER t AFTER INSERT ON nobody_jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('x');
RESET ROLE;

-- the bridge reads the log and the subscriptions, and touches
SET ROLE regress_sse_bridge;
SELECT m.pruned_through >= 0 AS ok, count(e.id) > 0 AS has_events
FROM sse_bridge.meta m
LEFT JOIN LATERAL (SELECT * FROM sse_bridge.events WHERE id > 0 ORDER BY id LIMIT 10) e ON true
GROUP BY m.pruned_through;
SELECT channels, filter FROM sse_bridge.subscriptions WHERE id = :'sub';
SELECT sse_touch(:'sub');
SELECT sse_publish('priv.a', 'x');
UPDATE sse_bridge.subscriptions SET last_seen = now();
-- only the owner (or a role granted EXECUTE) may stall publishing
SELECT sse_bridge.lock_publishing();
RESET ROLE;

SELECT sse_unsubscribe(:'sub');
DROP TABLE regress_sse_jobs;
REVOKE CREATE ON SCHEMA public FROM regress_sse_publisher;
DROP OWNED BY regress_sse_nobody, regress_sse_publisher, regress_sse_bridge;
DROP ROLE regress_sse_nobody, regress_sse_publisher, regress_sse_bridge;
