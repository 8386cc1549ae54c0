--
-- Subscription changes take a position in the log: a marker row on channel
-- "$sub" and a row of sse_bridge.subscription_versions, written at commit
--
\set VERBOSITY default
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SELECT coalesce(pg_sequence_last_value(
    pg_get_serial_sequence('sse_bridge.subscriptions', 'sid')), 0) AS sbase \gset

-- the rows of the log after :base, markers shown with their relative sid
CREATE FUNCTION pos_log(base bigint, sbase bigint)
RETURNS TABLE (n bigint, channel text, event text, data text)
LANGUAGE sql AS $$
    SELECT e.id - base, e.channel, e.event,
           CASE WHEN e.channel = '$sub'
                THEN jsonb_set(e.data::jsonb, '{sid}',
                               to_jsonb((e.data::jsonb ->> 'sid')::bigint - sbase))::text
                ELSE e.data END
    FROM sse_bridge.events e WHERE e.id > base ORDER BY e.id
$$;
-- the versions, relative to :base and :sbase
CREATE FUNCTION pos_versions(base bigint, sbase bigint)
RETURNS TABLE (sid bigint, from_n bigint, channels text[], filter jsonb, state text)
LANGUAGE sql AS $$
    SELECT v.sid - sbase, v.from_id - base, v.channels, v.filter, v.state
    FROM sse_bridge.subscription_versions v
    WHERE v.sid > sbase ORDER BY v.from_id, v.sid
$$;
-- the definition valid at position l: the version with the greatest
-- from_id <= l (what a replay from l applies)
CREATE FUNCTION pos_def_at(s bigint, l bigint)
RETURNS TABLE (from_id bigint, channels text[], filter jsonb, state text)
LANGUAGE sql AS $$
    SELECT v.from_id, v.channels, v.filter, v.state
    FROM sse_bridge.subscription_versions v
    WHERE v.sid = s AND v.from_id <= l
    ORDER BY v.from_id DESC LIMIT 1
$$;

-- creation: the marker's id is the start and the current definition
SELECT sse_publish('pos.a', 'before');
SELECT sse_subscribe_filter(ARRAY['pos.a', 'pos.*'], '{"k": 1}') AS s1 \gset
SELECT sid AS sid1 FROM sse_bridge.subscriptions WHERE id = :'s1' \gset
SELECT * FROM pos_log(:base, :sbase);
SELECT start_id - :base AS start_n, def_id - :base AS def_n
FROM sse_bridge.subscriptions WHERE id = :'s1';
SELECT * FROM pos_versions(:base, :sbase);
-- the marker's data as written
SELECT regexp_replace(data, '^\{"sid":[0-9]+,', '{"sid":N,') AS marker
FROM sse_bridge.events WHERE id = :base + 2;
-- the uuid is never in the log
SELECT count(*) AS uuid_in_log FROM sse_bridge.events WHERE data LIKE '%' || :'s1' || '%';

-- in one transaction, the change comes before the events, whatever the
-- call order, so they are judged by the new definition
BEGIN;
SELECT sse_publish('pos.b', 'first');
SELECT sse_subscription_add(:'s1', ARRAY['other.x']);
SELECT sse_publish('other.x', 'second');
SELECT sse_subscription_set_filter(:'s1', '{}');
COMMIT;
SELECT * FROM pos_log(:base, :sbase);
SELECT def_id - :base AS def_n FROM sse_bridge.subscriptions WHERE id = :'s1';

-- a subscription created in the transaction of its first events starts
-- before them
BEGIN;
SELECT sse_publish('pos.c', 'same transaction');
SELECT sse_subscribe_filter(ARRAY['pos.c']) AS s2 \gset
COMMIT;
SELECT e.id - s.start_id AS after_start, e.data
FROM sse_bridge.events e, sse_bridge.subscriptions s
WHERE s.id = :'s2' AND e.channel = 'pos.c' ORDER BY e.id;

-- rolled back: no marker, no version, definition unchanged
SELECT max(id) AS mark FROM sse_bridge.events \gset
BEGIN;
SELECT sse_subscription_add(:'s1', ARRAY['gone.a']);
ROLLBACK;
BEGIN;
SAVEPOINT a;
SELECT sse_subscription_set_filter(:'s1', '{"gone": true}');
ROLLBACK TO SAVEPOINT a;
SELECT sse_publish('pos.a', 'kept');
SAVEPOINT b;
SELECT sse_subscription_remove(:'s1', ARRAY['other.x']);
RELEASE SAVEPOINT b;
COMMIT;
SELECT * FROM pos_log(:mark, :sbase);
SELECT channels, filter FROM sse_bridge.subscriptions WHERE id = :'s1';
SELECT count(*) AS rolled_back_versions FROM sse_bridge.subscription_versions
WHERE filter = '{"gone": true}' OR 'gone.a' = ANY (channels);

-- the definition at each position of the log
SELECT e.id - :base AS n, d.from_id - :base AS from_n, d.channels, d.filter, d.state
FROM sse_bridge.events e, pos_def_at(:sid1, e.id) d
WHERE e.id > :base ORDER BY e.id;
SELECT count(*) AS none_before_creation FROM pos_def_at(:sid1, :base + 1);

-- part of the demo's tick: the trigger's event of the final update comes
-- before the close, and the closed subscription's marker after both
CREATE TABLE pos_jobs (name text PRIMARY KEY, state text);
CREATE TRIGGER pos_jobs_publish AFTER INSERT OR UPDATE ON pos_jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('pjob.{name}');
INSERT INTO pos_jobs VALUES ('a', 'running');
SELECT sse_subscribe_filter(ARRAY['pjob.a']) AS s3 \gset
SELECT max(id) AS mark FROM sse_bridge.events \gset
WITH f AS (UPDATE pos_jobs SET state = 'done' WHERE name = 'a' RETURNING name)
SELECT sse_close('pjob.' || name) FROM f;
SELECT * FROM pos_log(:mark, :sbase);
SELECT def_id = (SELECT max(id) FROM sse_bridge.events) AS def_is_close_marker
FROM sse_bridge.subscriptions WHERE id = :'s3';

-- a close is written after every event of its transaction, and a later
-- change of the closed subscription in that transaction after the close
SELECT max(id) AS mark FROM sse_bridge.events \gset
BEGIN;
SELECT sse_close('pjob.a');
SELECT sse_publish('pjob.a', 'after the close call');
SELECT sse_subscription_set_filter(:'s3', '{"late": 1}');
SELECT sse_subscription_set_filter(:'s1', '{"early": 1}');
COMMIT;
SELECT * FROM pos_log(:mark, :sbase);
SELECT def_id = (SELECT max(id) FROM sse_bridge.events) AS def_is_last, filter
FROM sse_bridge.subscriptions WHERE id = :'s3';

-- unsubscribe and expiry are changes too
SELECT sse_subscribe_filter(ARRAY['pos.e'], '{}', '1 minute') AS s4 \gset
UPDATE sse_bridge.subscriptions SET last_seen = now() - interval '2 minutes' WHERE id = :'s4';
SELECT max(id) AS mark FROM sse_bridge.events \gset
SELECT sse_unsubscribe(:'s2');
SELECT sse_expire();
SELECT * FROM pos_log(:mark, :sbase);

-- the reserved channel cannot be published to or named in a pattern
SELECT sse_publish('$sub', 'x');
SELECT sse_subscribe_filter(ARRAY['$sub']);

-- a transaction that only changed subscriptions cannot be prepared
BEGIN;
SELECT sse_subscription_set_filter(:'s1', '{}');
PREPARE TRANSACTION 'sse_pos_test';

-- the SPI fallback (a trigger on the log) writes the same rows
CREATE FUNCTION pos_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'inserted %', NEW.channel;
    RETURN NEW;
END
$$;
CREATE TRIGGER pos_seen AFTER INSERT ON sse_bridge.events
    FOR EACH ROW EXECUTE FUNCTION pos_seen();
SELECT max(id) AS mark FROM sse_bridge.events \gset
BEGIN;
SELECT sse_publish('pos.f', 'via insert');
SELECT sse_subscription_add(:'s1', ARRAY['pos.f']);
COMMIT;
DROP TRIGGER pos_seen ON sse_bridge.events;
DROP FUNCTION pos_seen();
SELECT * FROM pos_log(:mark, :sbase);
SELECT def_id - :mark AS def_n FROM sse_bridge.subscriptions WHERE id = :'s1';
SELECT * FROM pos_versions(:mark, :sbase);

-- prune: markers go with the prefix; each subscription keeps its newest
-- version at or below pruned_through and everything after; a drop at or
-- below it takes the subscription's versions with it
SELECT * FROM pos_versions(:base, :sbase);
SELECT min(from_id) AS cut FROM sse_bridge.subscription_versions
WHERE sid = :sid1 AND filter = '{"early": 1}' \gset
UPDATE sse_bridge.events SET created_at = created_at - interval '1 day' WHERE id <= :cut;
SELECT sse_prune('1 hour') > 0 AS pruned;
SELECT pruned_through = :cut AS through_cut FROM sse_bridge.meta;
SELECT count(*) AS markers_left_at_or_below FROM sse_bridge.events
WHERE channel = '$sub' AND id <= :cut;
SELECT * FROM pos_versions(:base, :sbase);
-- every position from the cut on still finds its definition
SELECT bool_and(d.from_id IS NOT NULL) AS all_found
FROM sse_bridge.events e LEFT JOIN LATERAL pos_def_at(:sid1, e.id) d ON true
WHERE e.id >= :cut;
-- pruned past the drops: the dropped subscriptions' versions are gone
SELECT max(from_id) AS cut FROM sse_bridge.subscription_versions
WHERE state = 'dropped' \gset
UPDATE sse_bridge.events SET created_at = created_at - interval '1 day' WHERE id <= :cut;
SELECT sse_prune('1 hour') > 0 AS pruned;
SELECT pruned_through = :cut AS through_cut FROM sse_bridge.meta;
SELECT * FROM pos_versions(:base, :sbase);

DROP TABLE pos_jobs;
DROP FUNCTION pos_log(bigint, bigint);
DROP FUNCTION pos_versions(bigint, bigint);
DROP FUNCTION pos_def_at(bigint, bigint);
SELECT sse_unsubscribe(id) FROM sse_bridge.subscriptions ORDER BY sid;
