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

-- Every role that may read sse_bridge.subscriptions (a grant of SELECT on
-- the table to it, or to PUBLIC) gets SELECT on
-- sse_bridge.subscription_versions too, with the grant option when it has
-- that: the bridge reads both, and a deployment that granted its bridge
-- role what the 1.0 documentation listed (events, meta, subscriptions)
-- would otherwise lose every subscription stream to "permission denied".
-- Members of such a role inherit the new grant as they did the old one.
--
-- These grants are the deployment's, not the extension's: GRANT in an
-- extension script is recorded as the object's initial privileges
-- (pg_init_privs), which pg_dump leaves out, so a restored database would
-- lose them again.  The initial privileges of the table (and, on
-- PostgreSQL 17 and later, the role dependencies recorded with them,
-- pg_shdepend deptype 'i') are therefore put back as they were.
DO $carry$
DECLARE
    versions    pg_catalog.oid := 'sse_bridge.subscription_versions'::pg_catalog.regclass;
    this_db     pg_catalog.oid := (SELECT d.oid FROM pg_catalog.pg_database d
                                   WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
    had_init    boolean;
    old_init    pg_catalog.aclitem[];
    old_deps    pg_catalog.oid[];
    g           record;
BEGIN
    SELECT true, i.initprivs INTO had_init, old_init
    FROM pg_catalog.pg_init_privs i
    WHERE i.objoid OPERATOR(pg_catalog.=) versions
      AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND i.objsubid OPERATOR(pg_catalog.=) 0;
    SELECT pg_catalog.array_agg(s.refobjid) INTO old_deps
    FROM pg_catalog.pg_shdepend s
    WHERE s.dbid OPERATOR(pg_catalog.=) this_db
      AND s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND s.objid OPERATOR(pg_catalog.=) versions
      AND s.objsubid OPERATOR(pg_catalog.=) 0
      AND s.deptype OPERATOR(pg_catalog.=) 'i';

    FOR g IN
        SELECT a.grantee, pg_catalog.bool_or(a.is_grantable) AS grantable
        FROM pg_catalog.pg_class c
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid OPERATOR(pg_catalog.=) 'sse_bridge.subscriptions'::pg_catalog.regclass
          AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
          AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
        GROUP BY a.grantee
        ORDER BY a.grantee
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE sse_bridge.subscription_versions TO %s%s',
            CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.format('%I', (SELECT r.rolname FROM pg_catalog.pg_roles r
                                               WHERE r.oid OPERATOR(pg_catalog.=) g.grantee)) END,
            CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;

    IF had_init THEN
        UPDATE pg_catalog.pg_init_privs i SET initprivs = old_init
        WHERE i.objoid OPERATOR(pg_catalog.=) versions
          AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND i.objsubid OPERATOR(pg_catalog.=) 0;
    ELSE
        DELETE FROM pg_catalog.pg_init_privs i
        WHERE i.objoid OPERATOR(pg_catalog.=) versions
          AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND i.objsubid OPERATOR(pg_catalog.=) 0;
    END IF;
    DELETE FROM pg_catalog.pg_shdepend s
    WHERE s.dbid OPERATOR(pg_catalog.=) this_db
      AND s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND s.objid OPERATOR(pg_catalog.=) versions
      AND s.objsubid OPERATOR(pg_catalog.=) 0
      AND s.deptype OPERATOR(pg_catalog.=) 'i'
      AND NOT s.refobjid OPERATOR(pg_catalog.=) ANY (COALESCE(old_deps, '{}'));
END
$carry$;

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
