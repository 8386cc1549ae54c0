--
-- Security: no code that a database user can define or influence runs with
-- the rights of the extension owner.
--
-- An application role with exactly the grants the README documents (plus
-- CREATE on public, PostgreSQL 14's default) plants code everywhere the
-- extension could reach it: a cast to json, operators on the types the
-- extension compares, functions and aggregates with the names the
-- extension's SQL uses, first in its search_path.  Every planted body
-- reports the role it runs as and tries to make the application role a
-- superuser.  None may run as anyone but the role that called it.
--
\set VERBOSITY default
CREATE ROLE regress_sse_app;
CREATE ROLE regress_sse_bridge;
GRANT CREATE ON SCHEMA public TO regress_sse_app;

-- the README's grants, exactly
GRANT EXECUTE ON FUNCTION sse_publish(text, text, text), sse_publish(text, jsonb, text),
    sse_close(text), sse_notify_trigger(),
    sse_subscribe_filter(text[], jsonb, interval, text), sse_subscription_add(uuid, text[]),
    sse_subscription_remove(uuid, text[]), sse_subscription_set_filter(uuid, jsonb),
    sse_unsubscribe(uuid) TO regress_sse_app;
GRANT USAGE ON SCHEMA sse_bridge TO regress_sse_bridge;
GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions TO regress_sse_bridge;
GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO regress_sse_bridge;

SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset

SET ROLE regress_sse_app;
-- the payload of every planted body
CREATE FUNCTION public.regress_sse_escalate(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE '% runs as %', what, current_user;
    BEGIN
        ALTER ROLE regress_sse_app SUPERUSER;
        RAISE NOTICE '% made regress_sse_app a superuser', what;
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
END
$$;

--
-- 1. The cast attack: an enum with a cast to json, rendered by the trigger
--
CREATE TYPE public.regress_mood AS ENUM ('happy', 'sad');
CREATE FUNCTION public.regress_mood_json(public.regress_mood) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.regress_sse_escalate('cast regress_mood -> json');
    RETURN pg_catalog.to_json($1::text);
END
$$;
CREATE CAST (public.regress_mood AS json) WITH FUNCTION public.regress_mood_json(public.regress_mood);
CREATE TABLE public.regress_moods (id int, m public.regress_mood, ms public.regress_mood[]);
CREATE TRIGGER moods_sse AFTER INSERT OR UPDATE OR DELETE ON public.regress_moods
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('sec.mood.{id}');
INSERT INTO public.regress_moods VALUES (1, 'happy', NULL);
-- nested: an array of the enum
INSERT INTO public.regress_moods VALUES (2, NULL, '{sad}');
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sse_app';
SELECT id - :base AS n, channel, event, data FROM sse_bridge.events
WHERE id > :base ORDER BY id;

--
-- 2. A type whose output function calls back into SQL that the application
-- controls.  Type input and output functions are C, created by a
-- superuser; the trigger calls this one for the channel and for the
-- payload, and it must run as the role whose insert fired the trigger.
--
-- (test/regress/sse_bridge_test_hooks.c, installed into $libdir by make
-- installcheck)
-- (the shell-type notices differ between versions: not shown)
SET client_min_messages = warning;
CREATE TYPE public.regress_loud;
CREATE FUNCTION public.regress_loud_in(cstring) RETURNS public.regress_loud
    AS 'textin' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION public.regress_loud_out(public.regress_loud) RETURNS cstring
    AS 'sse_bridge_test_hooks', 'regress_hook_out' LANGUAGE C IMMUTABLE STRICT;
CREATE TYPE public.regress_loud (INPUT = public.regress_loud_in,
                                 OUTPUT = public.regress_loud_out, LIKE = text);
RESET client_min_messages;
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SET ROLE regress_sse_app;
CREATE FUNCTION public.regress_sse_type_hook() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.regress_sse_escalate('output function of regress_loud');
END
$$;
CREATE TABLE public.regress_louds (id int, v public.regress_loud);
CREATE TRIGGER louds_sse AFTER INSERT ON public.regress_louds
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('sec.loud.{v}');
INSERT INTO public.regress_louds VALUES (1, 'hello');
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sse_app';
SELECT id - :base AS n, channel, event, data FROM sse_bridge.events
WHERE id > :base ORDER BY id;

--
-- 3. Operators and functions planted first in the search_path, for every
-- name the extension's SQL uses, and a filter whose conversion runs code
--
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
SET ROLE regress_sse_app;
-- one planted operator for every operator name and argument types the
-- extension's SQL applies, and the comparisons the bridge could apply
DO $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT row_number() OVER () AS k, * FROM (VALUES
        ('=', 'uuid', 'uuid', 'boolean'), ('=', 'text', 'text', 'boolean'),
        ('=', 'jsonb', 'jsonb', 'boolean'), ('@>', 'jsonb', 'jsonb', 'boolean'),
        ('<@', 'jsonb', 'jsonb', 'boolean'), ('<>', 'text', 'text', 'boolean'),
        ('<', 'timestamptz', 'timestamptz', 'boolean'),
        ('>=', 'timestamptz', 'timestamptz', 'boolean'),
        ('<=', 'bigint', 'bigint', 'boolean'), ('<', 'bigint', 'bigint', 'boolean'),
        ('>', 'bigint', 'bigint', 'boolean'), ('=', 'bigint', 'bigint', 'boolean'),
        ('||', 'text[]', 'text[]', 'text[]'), ('||', 'text', 'text', 'text'),
        ('+', 'timestamptz', 'interval', 'timestamptz'),
        ('-', 'timestamptz', 'interval', 'timestamptz'),
        ('-', 'bigint', 'integer', 'bigint')) AS v(op, l, r, ret)
    LOOP
        EXECUTE format($f$
            CREATE FUNCTION public.regress_trojan_op%5$s(%1$s, %2$s) RETURNS %3$s
            LANGUAGE plpgsql AS $b$
            BEGIN
                PERFORM public.regress_sse_escalate('operator %4$s (%1$s, %2$s)');
                RETURN NULL;
            END
            $b$;
            CREATE OPERATOR public.%4$s (LEFTARG = %1$s, RIGHTARG = %2$s,
                                         FUNCTION = public.regress_trojan_op%5$s)$f$,
            o.l, o.r, o.ret, o.op, o.k);
    END LOOP;
END
$$;
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('unnest(text[])'); RETURN; END $$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('unnest(bigint[])'); RETURN; END $$;
CREATE FUNCTION public.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('gen_random_uuid()'); RETURN NULL; END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('now()'); RETURN NULL; END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('clock_timestamp()'); RETURN NULL; END $$;
CREATE FUNCTION public.pg_event_trigger_ddl_commands() RETURNS SETOF record LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('pg_event_trigger_ddl_commands()'); RETURN; END $$;
CREATE FUNCTION public.regress_trojan_agg(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('aggregate on bigint'); RETURN $2; END $$;
CREATE AGGREGATE public.min(bigint) (SFUNC = public.regress_trojan_agg, STYPE = bigint);
CREATE AGGREGATE public.max(bigint) (SFUNC = public.regress_trojan_agg, STYPE = bigint);
CREATE FUNCTION public.regress_trojan_count(bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.regress_sse_escalate('count(*)'); RETURN 0; END $$;
CREATE AGGREGATE public.count(*) (SFUNC = public.regress_trojan_count, STYPE = bigint);
-- a filter of a type whose conversion to jsonb runs code: that runs in the
-- caller, before the extension is entered
CREATE TYPE public.regress_filter AS (k text);
CREATE FUNCTION public.regress_filter_jsonb(public.regress_filter) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.regress_sse_escalate('cast regress_filter -> jsonb');
    RETURN pg_catalog.jsonb_build_object('k', $1.k);
END
$$;
CREATE CAST (public.regress_filter AS jsonb) WITH FUNCTION public.regress_filter_jsonb(public.regress_filter) AS IMPLICIT;

-- the planted objects win for the application's own unqualified SQL...
SET search_path = public, pg_catalog;
SELECT '{"a":1}'::jsonb @> '{"a":1}'::jsonb AS planted_operator_result;
-- ...and never inside the extension
SELECT sse_subscribe_filter(ARRAY['sec.#', 'sec.#', 'more.*'], ROW('v')::public.regress_filter) AS sub \gset
SELECT sse_subscription_add(:'sub', ARRAY['sec.a', 'more.*']);
SELECT sse_subscription_remove(:'sub', ARRAY['sec.a']);
SELECT sse_subscription_set_filter(:'sub', ROW('w')::public.regress_filter);
SELECT sse_publish('sec.one', 'x');
BEGIN;
SELECT sse_publish('sec.two', '{"k":"w"}'::jsonb, 'json');
SELECT sse_publish('sec.three', 'y');
INSERT INTO public.regress_moods VALUES (3, NULL, NULL);
COMMIT;
SELECT sse_close('sec.one');
SELECT sse_close('more.x');
-- the template check that runs at CREATE TRIGGER and ALTER TABLE, for the
-- application and for a superuser with the same search_path
CREATE TABLE public.regress_more (id int);
CREATE TRIGGER more_sse AFTER INSERT ON public.regress_more
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('sec.more.{id}');
ALTER TABLE public.regress_more ADD COLUMN x int;
CREATE TRIGGER more_bad AFTER INSERT ON public.regress_more
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('sec.more.{nope}');
ALTER TABLE public.regress_more RENAME COLUMN id TO ident;
RESET ROLE;
SET search_path = public, pg_catalog;
CREATE TRIGGER more_sse2 AFTER INSERT ON public.regress_more
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('sec.more2.{x}');
ALTER TABLE public.regress_more ADD COLUMN y int;
ALTER TABLE public.regress_more DROP COLUMN x;
-- housekeeping and the restore path of sse_bridge.meta, by a superuser
SELECT sse_prune('100 years');
INSERT INTO sse_bridge.meta VALUES (true, 0);
SELECT pg_catalog.count(*) AS meta_rows FROM sse_bridge.meta;
RESET search_path;

SET ROLE regress_sse_bridge;
SET search_path = public, pg_catalog;
SELECT sse_touch(:'sub');
SELECT sse_expire();
RESET ROLE;
RESET search_path;

-- the commit-time writer's fallback (an INSERT through SPI, used when
-- sse_bridge.events has a trigger) runs as the table's owner, with the
-- search_path pinned: the planted unnest() and clock_timestamp() stay unused
CREATE FUNCTION sse_bridge.regress_events_owner_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE NOTICE 'events row % written as the table owner: %', NEW.channel,
        current_user = (SELECT c.relowner::regrole::name FROM pg_class c
                        WHERE c.oid = 'sse_bridge.events'::regclass);
    RETURN NEW;
END
$$;
CREATE TRIGGER regress_owner_check BEFORE INSERT ON sse_bridge.events
    FOR EACH ROW EXECUTE FUNCTION sse_bridge.regress_events_owner_check();
SET ROLE regress_sse_app;
SET search_path = public, pg_catalog;
SELECT sse_publish('sec.fallback.one', 'x');
BEGIN;
SELECT sse_publish('sec.fallback.many', 'a');
SELECT sse_publish('sec.fallback.many', 'b');
INSERT INTO public.regress_moods VALUES (4, 'sad', NULL);
COMMIT;
RESET ROLE;
RESET search_path;
DROP TRIGGER regress_owner_check ON sse_bridge.events;
DROP FUNCTION sse_bridge.regress_events_owner_check();

SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sse_app';
SELECT id - :base AS n, channel, event,
       regexp_replace(data, '"sid":[0-9]+', '"sid":N') AS data FROM sse_bridge.events
WHERE id > :base ORDER BY id;
SELECT channels, filter, closed_at IS NOT NULL AS closed
FROM sse_bridge.subscriptions WHERE id = :'sub';

--
-- 4. sse_notify_trigger and sse_publish need no rights of their own: they
-- are SECURITY INVOKER, and only the write at commit is privileged
--
SELECT p.oid::regprocedure AS function, p.prosecdef AS secdef, p.proconfig
FROM pg_proc p
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'sse_bridge'
ORDER BY p.prosecdef, p.oid::regprocedure::text;

-- cleanup
SET ROLE regress_sse_app;
SET search_path = public, pg_catalog;
SELECT sse_unsubscribe(:'sub');
RESET search_path;
RESET ROLE;
DROP CAST (public.regress_mood AS json);
DROP CAST (public.regress_filter AS jsonb);
DROP OWNED BY regress_sse_app, regress_sse_bridge;
DROP TYPE public.regress_loud CASCADE;
DROP ROLE regress_sse_app, regress_sse_bridge;
