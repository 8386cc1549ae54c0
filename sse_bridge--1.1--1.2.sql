/* sse_bridge--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sse_bridge UPDATE TO '1.2'" to load this file. \quit

-- Every change from 1.1 to 1.2 is made here too, so that an updated
-- database has exactly the objects of a fresh 1.2 install.

-- The publish lock is now an advisory tag that no SQL function can take
-- (pg_advisory_lock on its old key no longer stalls publishing); this is
-- the only way to hold it by hand.
CREATE FUNCTION sse_bridge.lock_publishing()
RETURNS void
AS 'MODULE_PATHNAME', 'sse_lock_publishing'
LANGUAGE C VOLATILE;
REVOKE EXECUTE ON FUNCTION sse_bridge.lock_publishing() FROM PUBLIC;

-- A deployment already updated from 1.0 by the 1.0--1.1 script of before
-- (which granted nothing) gets the grants that script now carries over:
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
