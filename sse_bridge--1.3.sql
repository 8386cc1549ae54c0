/* sse_bridge--1.3.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION sse_bridge" to load this file. \quit

/*
 * Privileges
 * ----------
 * No code a user can define (casts, operators, type I/O, functions found
 * through search_path) ever runs with the extension owner's rights:
 *
 * - sse_publish and sse_notify_trigger are SECURITY INVOKER.  They only
 *   validate an event and queue it in memory; whatever renders the data
 *   (row_to_json and the casts it calls, output functions) runs as the
 *   caller.  The rows are written at commit, in C, as the owner of
 *   sse_bridge.events (src/sse_publish.c).
 * - The functions that change subscriptions, sse_close, sse_touch,
 *   sse_expire and sse_prune are SECURITY DEFINER with search_path pinned
 *   to pg_catalog, pg_temp.  Their arguments are built-in types converted
 *   by the caller, and their SQL names every function and operator with
 *   its schema.
 *
 * EXECUTE on all of them is revoked from PUBLIC: rights come from grants
 * on the functions, never from grants on the tables.  sse_match,
 * sse_filter_match and sse_channel_segment are plain functions, executable
 * by everyone.  sse_explain is executable by everyone but SECURITY INVOKER
 * with search_path pinned: it reads the log and the subscriptions with the
 * caller's rights, so only a role that may read them learns anything.
 * sse_bridge.lock_publishing() (holds the publish lock) is the owner's
 * alone.  docs/design.md has the full audit.
 *
 * A publishing role (an application, a job runner) needs:
 *   GRANT EXECUTE ON FUNCTION
 *       sse_publish(text, text, text), sse_publish(text, jsonb, text),
 *       sse_close(text)
 *     TO publisher;
 *   -- to attach sse_notify_trigger to its tables (checked by CREATE TRIGGER):
 *   GRANT EXECUTE ON FUNCTION sse_notify_trigger() TO publisher;
 *   -- to hand out subscriptions to browsers:
 *   GRANT EXECUTE ON FUNCTION
 *       sse_subscribe_filter(text[], jsonb, interval, text),
 *       sse_subscription_add(uuid, text[]), sse_subscription_remove(uuid, text[]),
 *       sse_subscription_set_filter(uuid, jsonb), sse_unsubscribe(uuid)
 *     TO publisher;
 *
 * The bridge's role needs to read the log and the subscriptions, and to
 * touch subscriptions (LISTEN needs no privilege):
 *   GRANT USAGE ON SCHEMA sse_bridge TO bridge;
 *   GRANT SELECT ON sse_bridge.events, sse_bridge.meta,
 *                   sse_bridge.subscriptions,
 *                   sse_bridge.subscription_versions TO bridge;
 *   GRANT EXECUTE ON FUNCTION sse_touch(uuid) TO bridge;
 *   -- if it also runs housekeeping:
 *   GRANT EXECUTE ON FUNCTION sse_expire(), sse_prune(interval) TO bridge;
 */

CREATE SCHEMA sse_bridge;

-- Used only under the publish lock, by the pre-commit hook; CACHE 1 so that
-- ids follow the order in which sessions take the lock.
CREATE SEQUENCE sse_bridge.events_id_seq CACHE 1;

CREATE TABLE sse_bridge.events (
    id          bigint PRIMARY KEY,       -- the SSE event id, assigned at commit
    channel     text NOT NULL,
    event       text,                     -- SSE event name, NULL = default "message"
    data        text NOT NULL,            -- payload exactly as sent
    created_at  timestamptz NOT NULL      -- clock_timestamp() at commit time
);
-- close events are looked up by channel; the partial index is tiny
CREATE INDEX events_close_idx ON sse_bridge.events (channel, id) WHERE event = 'close';

CREATE TABLE sse_bridge.meta (            -- exactly one row
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    pruned_through  bigint NOT NULL DEFAULT 0   -- every id <= this is gone
);
INSERT INTO sse_bridge.meta DEFAULT VALUES;

CREATE TABLE sse_bridge.subscriptions (
    id          uuid PRIMARY KEY,         -- the capability; never logged, never in NOTIFY
    sid         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- internal id for NOTIFY
    channels    text[] NOT NULL,          -- patterns
    filter      jsonb NOT NULL DEFAULT '{}',   -- always a JSON object
    ttl         interval NOT NULL,
    start_id    bigint NOT NULL,          -- log head when created
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz,              -- set by sse_close() on a channel it lists
    def_id      bigint NOT NULL,          -- log id of the current definition's marker
    dropped_at  timestamptz,              -- set by sse_unsubscribe(): a tombstone
    owner       text                      -- the token subject that may open it; NULL: a capability
);

-- sse_unsubscribe() keeps the row as a tombstone (dropped_at set, def_id the
-- drop marker) so that a reader behind the drop can still finish its stream;
-- no function finds a tombstone by its id, and sse_prune deletes it with
-- the subscription's versions once the drop is pruned.

-- Every definition a subscription has had, by log position: the definition
-- valid at position L is the version with the greatest from_id <= L.  Each
-- row is written at commit with the marker row of sse_bridge.events (channel
-- "$sub") that has id from_id.  sse_prune drops the versions no position
-- above pruned_through can need.
CREATE TABLE sse_bridge.subscription_versions (
    sid         bigint NOT NULL,          -- sse_bridge.subscriptions.sid
    from_id     bigint NOT NULL,          -- id of the marker: valid from here on
    channels    text[] NOT NULL,          -- patterns
    filter      jsonb NOT NULL,           -- always a JSON object
    state       text NOT NULL CHECK (state IN ('active', 'closed', 'dropped')),
    PRIMARY KEY (sid, from_id)
);

-- meta holds exactly one row.  CREATE EXTENSION makes it, and a restore of
-- a dump then inserts the dumped row: this trigger folds any further row into
-- the existing one, keeping the higher mark, so a restored database still
-- tells clients which ids were pruned.
CREATE FUNCTION sse_bridge.meta_fold() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE sse_bridge.meta
       SET pruned_through = greatest(pruned_through, NEW.pruned_through);
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION sse_bridge.meta_fold() FROM PUBLIC;
CREATE TRIGGER meta_fold BEFORE INSERT ON sse_bridge.meta
    FOR EACH ROW EXECUTE FUNCTION sse_bridge.meta_fold();

-- pg_dump keeps the log, its sequence, the prune mark, the subscriptions,
-- their versions and their internal id sequence, so that after a restore new events and
-- subscriptions continue where the old ones stopped.
SELECT pg_catalog.pg_extension_config_dump('sse_bridge.events', '');
SELECT pg_catalog.pg_extension_config_dump('sse_bridge.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sse_bridge.meta', '');
SELECT pg_catalog.pg_extension_config_dump('sse_bridge.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('sse_bridge.subscriptions', 'sid')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('sse_bridge.subscription_versions', '');

------------------------------------------------------------------------
-- Publishing
------------------------------------------------------------------------

-- SECURITY INVOKER: queuing needs no rights, the write at commit is done
-- by the extension itself.
CREATE FUNCTION sse_publish(channel text, data text, event text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'sse_publish_text'
LANGUAGE C VOLATILE;

CREATE FUNCTION sse_publish(channel text, data jsonb, event text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'sse_publish_jsonb'
LANGUAGE C VOLATILE;

CREATE FUNCTION sse_close(channel text)
RETURNS void
AS 'MODULE_PATHNAME', 'sse_close'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

-- SECURITY INVOKER: the row is rendered (output functions, casts to json)
-- as the role whose statement fired the trigger.
CREATE FUNCTION sse_notify_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sse_notify_trigger'
LANGUAGE C VOLATILE;

-- The segment a value becomes in a channel template; STABLE because some
-- types' text forms depend on settings.
CREATE FUNCTION sse_channel_segment(value anycompatible)
RETURNS text
AS 'MODULE_PATHNAME', 'sse_channel_segment'
LANGUAGE C STABLE PARALLEL SAFE;

-- Checks the templates of sse_notify_trigger triggers when they are created
-- and when their tables are altered.  Runs as the role that issued the
-- command (not SECURITY DEFINER) and reads only catalogs.
CREATE FUNCTION sse_bridge.check_notify_triggers()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'sse_check_notify_triggers'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION sse_bridge.check_notify_triggers() FROM PUBLIC;
CREATE EVENT TRIGGER sse_bridge_check_notify_triggers ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER', 'CREATE SCHEMA', 'ALTER TABLE')
    EXECUTE FUNCTION sse_bridge.check_notify_triggers();

-- Holds the publish lock until the end of the transaction: publishing
-- commits wait until then.  For copying the log consistently; the lock is
-- an advisory tag no SQL advisory-lock function can take, so only this
-- function (EXECUTE: the owner's alone unless granted) can stall publishing.
CREATE FUNCTION sse_bridge.lock_publishing()
RETURNS void
AS 'MODULE_PATHNAME', 'sse_lock_publishing'
LANGUAGE C VOLATILE;
REVOKE EXECUTE ON FUNCTION sse_bridge.lock_publishing() FROM PUBLIC;

------------------------------------------------------------------------
-- Subscriptions
------------------------------------------------------------------------

CREATE FUNCTION sse_subscribe_filter(channels text[],
                                     filter jsonb DEFAULT '{}',
                                     ttl interval DEFAULT '1 hour',
                                     owner text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'sse_subscribe_filter'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION sse_subscription_add(id uuid, channels text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'sse_subscription_add'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION sse_subscription_remove(id uuid, channels text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'sse_subscription_remove'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION sse_subscription_set_filter(id uuid, filter jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'sse_subscription_set_filter'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION sse_unsubscribe(id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sse_unsubscribe'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION sse_touch(id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sse_touch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION sse_expire()
RETURNS integer
AS 'MODULE_PATHNAME', 'sse_expire'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

------------------------------------------------------------------------
-- Retention
------------------------------------------------------------------------

CREATE FUNCTION sse_prune(older_than interval DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sse_prune'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- one short statement: compiling it would cost more than it saves
SET jit = off;

------------------------------------------------------------------------
-- Matchers (the bridge's own rules, for use in SQL)
------------------------------------------------------------------------

CREATE FUNCTION sse_match(pattern text, channel text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sse_match_sql'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION sse_filter_match(filter jsonb, data text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'sse_filter_match_sql'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Why a subscription's stream does or does not carry an event: one row per
-- check (the event, the subscription's position and state, each channel
-- pattern, each filter key) and a final verdict from the bridge's own
-- matchers.  SECURITY INVOKER: it reads the log and the subscriptions with
-- the caller's rights, so only a role that may read both (the bridge's
-- grants, or the owner's) can use it.
CREATE FUNCTION sse_explain(subscription uuid, event_id bigint)
RETURNS TABLE (step text, item text, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    e       record;
    s       record;
    v       record;
    p       text;
    ps      text[];
    cs      text[];
    i       int;
    m       boolean;
    any_ch  boolean := false;
    d       jsonb;
    k       text;
    fv      jsonb;
    dv      jsonb;
BEGIN
    SELECT x.id, x.channel, x.event, x.data INTO e FROM sse_bridge.events x
    WHERE x.id OPERATOR(pg_catalog.=) event_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'event'::text, event_id::text, false,
            pg_catalog.format('no event %s in the log (pruned through %s, or never committed)',
                              event_id, (SELECT pruned_through FROM sse_bridge.meta));
        RETURN;
    END IF;
    SELECT x.sid, x.start_id INTO s FROM sse_bridge.subscriptions x
    WHERE x.id OPERATOR(pg_catalog.=) subscription;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'subscription'::text, subscription::text, false,
            'no such subscription (never created, or expired)'::text;
        RETURN;
    END IF;
    IF e.channel OPERATOR(pg_catalog.=) '$sub' THEN
        RETURN QUERY SELECT 'event'::text, event_id::text, false,
            'a subscription-change marker, never sent to clients'::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'event'::text, event_id::text, true,
        pg_catalog.format('channel "%s", event %s', e.channel,
                          COALESCE('"' OPERATOR(pg_catalog.||) e.event OPERATOR(pg_catalog.||) '"', 'message'));
    IF event_id OPERATOR(pg_catalog.<=) s.start_id THEN
        RETURN QUERY SELECT 'position'::text, event_id::text, false,
            pg_catalog.format('the event committed before the subscription was created (at %s); streams start after that', s.start_id);
        RETURN;
    END IF;
    SELECT x.channels, x.filter, x.state INTO v FROM sse_bridge.subscription_versions x
    WHERE x.sid OPERATOR(pg_catalog.=) s.sid AND x.from_id OPERATOR(pg_catalog.<) event_id
    ORDER BY x.from_id DESC LIMIT 1;
    IF NOT FOUND OR v.state OPERATOR(pg_catalog.<>) 'active' THEN
        RETURN QUERY SELECT 'state'::text, COALESCE(v.state, 'none'), false,
            'the subscription was not active at this event''s position'::text;
        RETURN;
    END IF;

    FOREACH p IN ARRAY v.channels LOOP
        m := @extschema@.sse_match(p, e.channel);
        any_ch := any_ch OR m;
        IF m THEN
            RETURN QUERY SELECT 'channel'::text, p, true, pg_catalog.format('matches "%s"', e.channel);
            CONTINUE;
        END IF;
        ps := pg_catalog.string_to_array(p, '.');
        cs := pg_catalog.string_to_array(e.channel, '.');
        IF '#' OPERATOR(pg_catalog.=) ANY (ps) THEN
            RETURN QUERY SELECT 'channel'::text, p, false,
                pg_catalog.format('the segments around "#" do not line up with "%s"', e.channel);
        ELSIF pg_catalog.cardinality(ps) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(cs) THEN
            RETURN QUERY SELECT 'channel'::text, p, false,
                pg_catalog.format('the pattern has %s segments, channel "%s" has %s',
                                  pg_catalog.cardinality(ps), e.channel, pg_catalog.cardinality(cs));
        ELSE
            FOR i IN 1 .. pg_catalog.cardinality(ps) LOOP
                IF ps[i] OPERATOR(pg_catalog.<>) '*' AND ps[i] OPERATOR(pg_catalog.<>) cs[i] THEN
                    RETURN QUERY SELECT 'channel'::text, p, false,
                        pg_catalog.format('segment %s: the pattern has "%s", channel "%s" has "%s"',
                                          i, ps[i], e.channel, cs[i]);
                    EXIT;
                END IF;
            END LOOP;
        END IF;
    END LOOP;

    IF v.filter OPERATOR(pg_catalog.=) '{}'::jsonb THEN
        RETURN QUERY SELECT 'filter'::text, '{}'::text, true, 'the empty filter passes every event'::text;
    ELSE
        BEGIN
            d := e.data::jsonb;
        EXCEPTION WHEN others THEN
            d := NULL;
        END;
        IF d IS NULL OR pg_catalog.jsonb_typeof(d) OPERATOR(pg_catalog.<>) 'object' THEN
            RETURN QUERY SELECT 'filter'::text, v.filter::text, false,
                'the data is not a JSON object: only the empty filter {} passes it'::text;
        ELSE
            FOR k, fv IN SELECT j.key, j.value FROM pg_catalog.jsonb_each(v.filter) j ORDER BY j.key LOOP
                dv := d OPERATOR(pg_catalog.->) k;
                IF dv IS NULL THEN
                    RETURN QUERY SELECT 'filter'::text, k, false,
                        pg_catalog.format('the data has no key "%s"', k);
                ELSIF pg_catalog.jsonb_typeof(dv) OPERATOR(pg_catalog.<>) pg_catalog.jsonb_typeof(fv) THEN
                    RETURN QUERY SELECT 'filter'::text, k, false,
                        pg_catalog.format('type mismatch: the filter has %s %s, the data has %s %s',
                                          pg_catalog.jsonb_typeof(fv), fv, pg_catalog.jsonb_typeof(dv), dv);
                ELSIF dv OPERATOR(pg_catalog.@>) fv THEN
                    RETURN QUERY SELECT 'filter'::text, k, true,
                        pg_catalog.format('the data has %s', dv);
                ELSE
                    RETURN QUERY SELECT 'filter'::text, k, false,
                        pg_catalog.format('value differs: the filter has %s, the data has %s', fv, dv);
                END IF;
            END LOOP;
        END IF;
    END IF;

    m := any_ch AND @extschema@.sse_filter_match(v.filter, e.data);
    RETURN QUERY SELECT 'verdict'::text, NULL::text, m,
        CASE WHEN m THEN 'the stream carries this event'
             WHEN NOT any_ch THEN 'not carried: no channel pattern matches'
             ELSE 'not carried: the filter does not pass the data' END;
END
$fn$;

------------------------------------------------------------------------
-- Grants
------------------------------------------------------------------------

REVOKE EXECUTE ON FUNCTION
    sse_publish(text, text, text), sse_publish(text, jsonb, text),
    sse_close(text), sse_notify_trigger(),
    sse_subscribe_filter(text[], jsonb, interval, text),
    sse_subscription_add(uuid, text[]), sse_subscription_remove(uuid, text[]),
    sse_subscription_set_filter(uuid, jsonb), sse_unsubscribe(uuid),
    sse_touch(uuid), sse_expire(), sse_prune(interval)
FROM PUBLIC;
