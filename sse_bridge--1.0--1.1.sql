/* sse_bridge--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sse_bridge UPDATE TO '1.1'" to load this file. \quit

-- Every change from 1.0 to 1.1 is made here too, so that an upgraded
-- database has exactly the objects of a fresh 1.1 install.

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
