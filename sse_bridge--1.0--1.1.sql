/* sse_bridge--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sse_bridge UPDATE TO '1.1'" to load this file. \quit

-- Every change from 1.0 to 1.1 is made here too, so that an upgraded
-- database has exactly the objects of a fresh 1.1 install.

-- Subscription changes are log rows: each subscription records the log id
-- of its current definition, and every definition is kept by position.
-- Definitions from before the upgrade have no marker in the log: each
-- existing subscription gets one version, its current definition, valid
-- from its start_id (where its streams begin), and def_id = start_id.  So a
-- replay of older history applies the current definition, as 1.0 did.
ALTER TABLE sse_bridge.subscriptions ADD COLUMN def_id bigint;
UPDATE sse_bridge.subscriptions SET def_id = start_id;
ALTER TABLE sse_bridge.subscriptions ALTER COLUMN def_id SET NOT NULL;

-- sse_unsubscribe() keeps the row as a tombstone (dropped_at set, def_id the
-- drop marker) so that a reader behind the drop can still finish its stream;
-- no function finds a tombstone by its id, and sse_prune deletes it with
-- the subscription's versions once the drop is pruned.
ALTER TABLE sse_bridge.subscriptions ADD COLUMN dropped_at timestamptz;

CREATE TABLE sse_bridge.subscription_versions (
    sid         bigint NOT NULL,          -- sse_bridge.subscriptions.sid
    from_id     bigint NOT NULL,          -- id of the marker: valid from here on
    channels    text[] NOT NULL,          -- patterns
    filter      jsonb NOT NULL,           -- always a JSON object
    state       text NOT NULL CHECK (state IN ('active', 'closed', 'dropped')),
    PRIMARY KEY (sid, from_id)
);
INSERT INTO sse_bridge.subscription_versions (sid, from_id, channels, filter, state)
SELECT sid, start_id, channels, filter,
       CASE WHEN closed_at IS NULL THEN 'active' ELSE 'closed' END
FROM sse_bridge.subscriptions;

SELECT pg_catalog.pg_extension_config_dump('sse_bridge.subscription_versions', '');

-- No user-definable code runs with the owner's rights: publishing and the
-- row trigger run as the caller; the rows are written at commit by C code.
ALTER FUNCTION sse_publish(text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION sse_publish(text, jsonb, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION sse_notify_trigger() SECURITY INVOKER RESET search_path;

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

-- sse_prune is one short statement whose cost the planner overestimates:
-- compiling it with JIT would cost more than running it.
ALTER FUNCTION sse_prune(interval) SET jit = off;
