// Trojans: a role with CREATE on public (PostgreSQL 14's default, granted
// here) plants, in public, an object for every function, operator, type and
// catalog table that the bridge's SQL (bridge/logread.c) names, each with
// the exact argument types the bridge's statements resolve to.  Every
// trojan behaves like the built-in but first copies its arguments (the
// subscription uuids among them) into a table its owner reads.  The bridge
// connects with search_path = public, pg_catalog (the worst case: every
// trojan then outranks its built-in) and runs each statement: opens (ad hoc
// and subscription, with the definition valid at the start), replay pages,
// live fetches (a definition change applied from the log), the fork lookup,
// touch and expire.
//
// Builds: the normal bridge (both layers), nopin (qualification alone),
// unqual (the search_path pin alone) must leave the loot empty and stream
// correctly; bare (neither layer) must set off every trojan, which proves
// the list below covers every name the SQL uses.
import { Sse, check, note, until } from './lib.mjs';

// name recorded in the loot -> SQL that plants it (run as mallory)
export const TROJANS = {
  '::uuid': `CREATE DOMAIN public.uuid AS pg_catalog.uuid CHECK (mallory.grab('::uuid', VALUE::pg_catalog.text))`,
  // the open's definition: json_build_object('sid', sid, 'channels', channels, 'filter', filter, 'state', state)
  'json_build_object(text,bigint,text,text[],text,jsonb,text,text)': `CREATE FUNCTION public.json_build_object(
      a text, b bigint, c text, d text[], e text, f jsonb, g text, h text) RETURNS json
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('json_build_object(text,bigint,text,text[],text,jsonb,text,text)', d::text);
      RETURN json_build_object(a, b, c, d, e, f, g, h); END$$`,
  'unnest(uuid[])': `CREATE FUNCTION public.unnest(a uuid[]) RETURNS SETOF uuid
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('unnest(uuid[])', a::text); RETURN QUERY SELECT unnest(a); END$$;
    CREATE FUNCTION public.unnest(a public.uuid[]) RETURNS SETOF public.uuid
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('unnest(uuid[])', a::text); RETURN QUERY SELECT unnest(a); END$$`,
  'now()': `CREATE FUNCTION public.now() RETURNS timestamptz
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('now()', ''); RETURN now(); END$$`,
  'max(bigint)': `CREATE FUNCTION mallory.max_sf(s bigint, v bigint) RETURNS bigint LANGUAGE sql
      SET search_path = pg_catalog, pg_temp AS $$SELECT greatest(s, v)$$;
    CREATE FUNCTION mallory.max_ff(s bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
      AS $$BEGIN PERFORM mallory.grab('max(bigint)', s::text); RETURN s; END$$;
    CREATE AGGREGATE public.max(bigint) (SFUNC = mallory.max_sf, STYPE = bigint, FINALFUNC = mallory.max_ff)`,
  'min(bigint)': `CREATE FUNCTION mallory.min_sf(s bigint, v bigint) RETURNS bigint LANGUAGE sql
      SET search_path = pg_catalog, pg_temp AS $$SELECT least(s, v)$$;
    CREATE FUNCTION mallory.min_ff(s bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
      AS $$BEGIN PERFORM mallory.grab('min(bigint)', s::text); RETURN s; END$$;
    CREATE AGGREGATE public.min(bigint) (SFUNC = mallory.min_sf, STYPE = bigint, FINALFUNC = mallory.min_ff)`,
  'count(*)': `CREATE FUNCTION mallory.count_sf(s bigint) RETURNS bigint LANGUAGE sql
      SET search_path = pg_catalog, pg_temp AS $$SELECT s + 1$$;
    CREATE FUNCTION mallory.count_ff(s bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
      AS $$BEGIN PERFORM mallory.grab('count(*)', s::text); RETURN s; END$$;
    CREATE AGGREGATE public.count(*) (SFUNC = mallory.count_sf, STYPE = bigint, INITCOND = '0',
      FINALFUNC = mallory.count_ff)`,
  'sum(integer)': `CREATE FUNCTION mallory.sum_sf(s bigint, v integer) RETURNS bigint LANGUAGE sql
      SET search_path = pg_catalog, pg_temp AS $$SELECT coalesce(s, 0) + v$$;
    CREATE FUNCTION mallory.sum_ff(s bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
      AS $$BEGIN PERFORM mallory.grab('sum(integer)', s::text); RETURN s; END$$;
    CREATE AGGREGATE public.sum(integer) (SFUNC = mallory.sum_sf, STYPE = bigint, FINALFUNC = mallory.sum_ff)`,
  'octet_length(text)': `CREATE FUNCTION public.octet_length(t text) RETURNS integer
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('octet_length(text)', ''); RETURN octet_length(t); END$$`,
  'set_config(text,text,boolean)': `CREATE FUNCTION public.set_config(a text, b text, c boolean) RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('set_config(text,text,boolean)', a || '=' || b); RETURN set_config(a, b, c); END$$`,
  'extract(text,timestamptz)': `CREATE FUNCTION public.extract(f text, t timestamptz) RETURNS numeric
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('extract(text,timestamptz)', f); RETURN extract(epoch FROM t); END$$`,
  'unnest(bigint[])': `CREATE FUNCTION public.unnest(a bigint[]) RETURNS SETOF bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('unnest(bigint[])', a::text); RETURN QUERY SELECT unnest(a); END$$`,
  // the open's owner: to_jsonb(s) ->> 'owner' (the subscription row, as JSON)
  'to_jsonb(anyelement)': `CREATE FUNCTION public.to_jsonb(r anyelement) RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM mallory.grab('to_jsonb(anyelement)', r::text); RETURN to_jsonb(r); END$$`,
  '::text': `CREATE DOMAIN public.text AS pg_catalog.text CHECK (mallory.grab('::text', VALUE))`,
  '::name': `CREATE DOMAIN public.name AS pg_catalog.name CHECK (mallory.grab('::name', VALUE::pg_catalog.text))`,
  'pg_extension': `CREATE VIEW public.pg_extension AS SELECT e.* FROM pg_catalog.pg_extension e
    WHERE mallory.grab('pg_extension', e.extname::pg_catalog.text)`,
  'pg_namespace': `CREATE VIEW public.pg_namespace AS SELECT n.* FROM pg_catalog.pg_namespace n
    WHERE mallory.grab('pg_namespace', n.nspname::pg_catalog.text)`,
};

// operators: [name, left type, right type, expression of the built-in]
const OPS = [
  ['=', 'text', 'text'],
  ['=', 'uuid', 'uuid'],
  ['=', 'bigint', 'bigint'],
  ['=', 'oid', 'oid'],
  ['=', 'name', 'name'],
  ['>', 'bigint', 'bigint'],
  ['<', 'bigint', 'bigint'],
  ['>=', 'bigint', 'bigint'],
  ['+', 'bigint', 'integer', 'bigint'],
  ['-', 'bigint', 'integer', 'bigint'],
  ['<', 'timestamptz', 'timestamptz'],
  ['+', 'timestamptz', 'interval', 'timestamptz'],
  ['*', 'numeric', 'numeric', 'numeric'],
  ['->>', 'jsonb', 'text', 'text'],
];
const TYPNAME = { bigint: 'int8', boolean: 'bool', integer: 'int4' };
const q = (t) => `pg_catalog.${TYPNAME[t] || t}`;
OPS.forEach(([op, l, r, ret = 'boolean'], i) => {
  TROJANS[`${op}(${l},${r})`] = `CREATE FUNCTION mallory.op${i}(a ${q(l)}, b ${q(r)})
      RETURNS ${q(ret)} LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
      AS $$BEGIN PERFORM mallory.grab('${op}(${l},${r})', a::text || ' ' || b::text); RETURN a ${op} b; END$$;
    CREATE OPERATOR public.${op} (LEFTARG = ${q(l)}, RIGHTARG = ${q(r)}, FUNCTION = mallory.op${i})`;
});

// Trojans no build can reach: the pin is always qualified, EXTRACT is grammar.
const UNREACHABLE = new Set(['set_config(text,text,boolean)', 'extract(text,timestamptz)']);

export async function plantTrojans(psql, db) {
  const out = await psql.q(`DO $$BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mallory') THEN CREATE ROLE mallory NOLOGIN; END IF;
    END$$;
    GRANT CREATE ON SCHEMA public TO mallory;
    CREATE SCHEMA mallory AUTHORIZATION mallory;
    SET ROLE mallory;
    CREATE TABLE mallory.loot (what text, val text, app text);
    CREATE FUNCTION mallory.grab(what text, val text) RETURNS boolean LANGUAGE sql SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp
      AS $$INSERT INTO mallory.loot VALUES (what, val, current_setting('application_name')); SELECT true$$;
    ${Object.values(TROJANS).join(';\n')};
    RESET ROLE;
    SELECT 'planted', count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public';`);
  const bad = out.filter((l) => /ERROR/.test(l));
  check('trojan: mallory (CREATE on public only) plants every trojan', bad.length === 0 && out.some((l) => /^planted/.test(l)),
    bad.join('; ').slice(0, 600));
  note(`trojans: ${Object.keys(TROJANS).join(' ')}`);
}

// Run every statement of the bridge through build b; returns the loot names.
export async function trojanRun(name, b, psql, { expectLoot }) {
  const p = b.port;
  const ch = `pub.t${name}`;
  const sub = await psql.one(`SELECT sse_subscribe_filter(ARRAY['${ch}'], '{"k":1}')`);
  // events before the stream: a replay from lastEventId 0 reads log pages
  await psql.q(`SELECT sse_publish('${ch}', '{"k":1,"n":1}'); SELECT sse_publish('${ch}', '{"k":1,"n":2}')`);
  const s = new Sse(p, `/events/${sub}`, { headers: { 'Last-Event-ID': '0' } });
  const a = new Sse(p, `/events?channel=${ch}&lastEventId=0`);
  const ready = (await s.ready(8000)) && (await a.ready(8000));
  const replayed = (x) => x.events.filter((e) => /"n"/.test(e.data)).length;
  const ok1 = check(`trojan/${name}: subscription and ad hoc streams open and replay`,
    ready && replayed(s) === 2 && replayed(a) === 2, `ready=${!!ready} sub=${replayed(s)} adhoc=${replayed(a)}`);
  if (ok1) {
    // a definition change (a marker in the log): {"k":2} passes only the new filter
    await psql.q(`SELECT sse_subscription_set_filter('${sub}', '{"k":2}')`);
    const seen = await until(async () => {
      await psql.q(`SELECT sse_publish('${ch}', '{"k":2}')`);
      return (await s.wait((x) => x.events.some((e) => e.data === '{"k":2}'), 500)) ? true : null;
    }, { timeout: 8000, interval: 50 });
    // ... and from then on the old one no longer does
    await psql.q(`SELECT sse_publish('${ch}', '{"k":1,"late":1}'); SELECT sse_publish('${ch}', '{"k":2,"end":1}')`);
    const end = await s.wait((x) => x.events.some((e) => e.data === '{"k":2,"end":1}'), 3000);
    const late = s.events.filter((e) => e.data === '{"k":1,"late":1}').length;
    check(`trojan/${name}: the changed filter applies to the live stream`, seen && end && late === 0,
      `seen=${seen} end=${!!end} late=${late}`);
    check(`trojan/${name}: the ad hoc stream gets live events`,
      await a.wait((x) => x.events.some((e) => e.data === '{"k":2,"end":1}'), 3000));
  }
  // touch (every second): last_seen moves
  const t0 = await psql.one(`SELECT last_seen FROM sse_bridge.subscriptions WHERE id = '${sub}'`);
  const touched = await until(async () =>
    (await psql.one(`SELECT last_seen > '${t0}' FROM sse_bridge.subscriptions WHERE id = '${sub}'`)) === 't',
  { timeout: 6000, interval: 100 });
  check(`trojan/${name}: the touch call runs`, touched);
  if (ok1) {
    // the row at the live cursor rewritten: the live link looks up the fork
    // point (last: a subscription stream ends after its timeline reset)
    await psql.q(`UPDATE sse_bridge.events SET created_at = created_at - interval '1 hour'
      WHERE id = (SELECT pg_catalog.max(id) FROM sse_bridge.events)`);
    await psql.q(`SELECT sse_publish('${ch}', '{"k":2,"fork":1}')`);
    check(`trojan/${name}: the fork lookup runs (a timeline reset reaches the ad hoc stream)`,
      await a.wait((x) => x.events.some((e) => e.event === 'reset' && /"timeline":true/.test(e.data)), 5000));
  }
  s.close();
  a.close();
  await b.stop();
  const loot = await psql.q(`SELECT DISTINCT what FROM mallory.loot WHERE app = 'sse-bridge' ORDER BY 1`);
  const uuids = await psql.one(`SELECT count(*) FROM mallory.loot WHERE val LIKE '%${sub}%'`);
  await psql.q('TRUNCATE mallory.loot');
  if (!expectLoot) {
    check(`trojan/${name}: no trojan ran in the bridge's sessions`, loot.length === 0, loot.join(' '));
    check(`trojan/${name}: no subscription uuid was copied`, uuids === '0', `${uuids} rows`);
  } else {
    const want = Object.keys(TROJANS).filter((k) => !UNREACHABLE.has(k));
    const missing = want.filter((k) => !loot.includes(k));
    check(`trojan/${name}: with both layers off every trojan is reached (the list covers the SQL)`,
      missing.length === 0 && !loot.some((k) => UNREACHABLE.has(k)), `missing: ${missing.join(' ')}; got: ${loot.join(' ')}`);
    check(`trojan/${name}: with both layers off the uuid is copied (the test can see a leak)`, Number(uuids) > 0, `${uuids} rows`);
  }
}
