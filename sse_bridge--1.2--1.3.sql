/* sse_bridge--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sse_bridge UPDATE TO '1.3'" to load this file. \quit

-- Every change from 1.2 to 1.3 is made here too, so that an updated
-- database has exactly the objects of a fresh 1.3 install.

-- Owned subscriptions: the bridge opens a subscription with an owner only
-- for a token whose sub is that owner (docs/auth.md).
ALTER TABLE sse_bridge.subscriptions ADD COLUMN owner text;

-- sse_subscribe_filter takes the owner as a fourth argument.  A function's
-- arguments cannot change in place, so the old one is dropped and the new
-- one created; the grants a deployment gave on the old one (its
-- application role's EXECUTE) are given on the new one below.  The old
-- function's privileges are kept in a setting of this transaction until
-- then.
SELECT pg_catalog.set_config('sse_bridge_upgrade.subscribe_acl',
    COALESCE((SELECT p.proacl::pg_catalog.text FROM pg_catalog.pg_proc p
              WHERE p.oid OPERATOR(pg_catalog.=)
                    '@extschema@.sse_subscribe_filter(pg_catalog.text[], pg_catalog.jsonb, pg_catalog.interval)'::pg_catalog.regprocedure),
             ''), true);

DROP FUNCTION sse_subscribe_filter(text[], jsonb, interval);

CREATE FUNCTION sse_subscribe_filter(channels text[],
                                     filter jsonb DEFAULT '{}',
                                     ttl interval DEFAULT '1 hour',
                                     owner text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'sse_subscribe_filter'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

REVOKE EXECUTE ON FUNCTION sse_subscribe_filter(text[], jsonb, interval, text) FROM PUBLIC;

-- Each role that could execute the old function (other than its owner) may
-- execute the new one, with the grant option when it had that.  These
-- grants are the deployment's, not the extension's: GRANT in an extension
-- script is recorded as the object's initial privileges (pg_init_privs),
-- which pg_dump leaves out, so a restored database would lose them.  The
-- new function's initial privileges (and, on PostgreSQL 17 and later, the
-- role dependencies recorded with them, pg_shdepend deptype 'i') are put
-- back as they were right after the REVOKE, as on a fresh install.
DO $carry$
DECLARE
    fn          pg_catalog.oid := '@extschema@.sse_subscribe_filter(pg_catalog.text[], pg_catalog.jsonb, pg_catalog.interval, pg_catalog.text)'::pg_catalog.regprocedure;
    old_acl     pg_catalog.text := pg_catalog.current_setting('sse_bridge_upgrade.subscribe_acl');
    owner_oid   pg_catalog.oid;
    this_db     pg_catalog.oid := (SELECT d.oid FROM pg_catalog.pg_database d
                                   WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
    had_init    boolean;
    old_init    pg_catalog.aclitem[];
    old_deps    pg_catalog.oid[];
    g           record;
BEGIN
    IF old_acl OPERATOR(pg_catalog.=) '' THEN
        RETURN;                 -- default privileges: nothing was granted
    END IF;
    SELECT p.proowner INTO owner_oid FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) fn;
    SELECT true, i.initprivs INTO had_init, old_init
    FROM pg_catalog.pg_init_privs i
    WHERE i.objoid OPERATOR(pg_catalog.=) fn
      AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
      AND i.objsubid OPERATOR(pg_catalog.=) 0;
    SELECT pg_catalog.array_agg(s.refobjid) INTO old_deps
    FROM pg_catalog.pg_shdepend s
    WHERE s.dbid OPERATOR(pg_catalog.=) this_db
      AND s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
      AND s.objid OPERATOR(pg_catalog.=) fn
      AND s.objsubid OPERATOR(pg_catalog.=) 0
      AND s.deptype OPERATOR(pg_catalog.=) 'i';

    FOR g IN
        SELECT a.grantee, pg_catalog.bool_or(a.is_grantable) AS grantable
        FROM pg_catalog.aclexplode(old_acl::pg_catalog.aclitem[]) a
        WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
          AND a.grantee OPERATOR(pg_catalog.<>) owner_oid
        GROUP BY a.grantee
        ORDER BY a.grantee
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', fn::pg_catalog.regprocedure,
            CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.format('%I', (SELECT r.rolname FROM pg_catalog.pg_roles r
                                               WHERE r.oid OPERATOR(pg_catalog.=) g.grantee)) END,
            CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;

    IF had_init THEN
        UPDATE pg_catalog.pg_init_privs i SET initprivs = old_init
        WHERE i.objoid OPERATOR(pg_catalog.=) fn
          AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND i.objsubid OPERATOR(pg_catalog.=) 0;
    ELSE
        DELETE FROM pg_catalog.pg_init_privs i
        WHERE i.objoid OPERATOR(pg_catalog.=) fn
          AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND i.objsubid OPERATOR(pg_catalog.=) 0;
    END IF;
    DELETE FROM pg_catalog.pg_shdepend s
    WHERE s.dbid OPERATOR(pg_catalog.=) this_db
      AND s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
      AND s.objid OPERATOR(pg_catalog.=) fn
      AND s.objsubid OPERATOR(pg_catalog.=) 0
      AND s.deptype OPERATOR(pg_catalog.=) 'i'
      AND NOT s.refobjid OPERATOR(pg_catalog.=) ANY (COALESCE(old_deps, '{}'));
END
$carry$;
