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
