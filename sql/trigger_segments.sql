--
-- Channel templates: every placeholder value becomes exactly one segment
--
\set VERBOSITY default

-- plain values are unchanged: letters, digits, "-" and "_", not starting
-- with "_", at most 64 bytes
SELECT v, sse_channel_segment(v) FROM (VALUES
    ('alice'), ('42'), ('-7'), ('build-docs_v2'), ('A'),
    ('6f1c2a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6'),
    (repeat('p', 64))) AS t(v);

-- anything else is escaped into one segment that starts with "_"
SELECT v, sse_channel_segment(v) FROM (VALUES
    ('alice.admin'), ('1.5'), ('has space'), (''), ('_'), ('_private'),
    ('__null'), ('a*b'), ('#'), ('*'), ('a.*.#'), ('é'), (E'line\nbreak'),
    ('%20'), ('_2e')) AS t(v);

-- NULL has its own form; values whose escaped form would be longer than 64
-- bytes get a fixed-length hash form
SELECT sse_channel_segment(NULL) AS null_value,
       sse_channel_segment(NULL::int) AS null_int;
SELECT length(sse_channel_segment(repeat('p', 65))) AS len,
       sse_channel_segment(repeat('p', 65)) = sse_channel_segment(repeat('p', 65)) AS stable,
       sse_channel_segment(repeat('p', 65)) <> sse_channel_segment(repeat('p', 66)) AS distinct_,
       sse_channel_segment(repeat('p', 65)) ~ '^__h[0-9a-f]{40}$' AS hash_form,
       sse_channel_segment(repeat('p', 65)) =
           '__h' || left(encode(sha256(convert_to(repeat('p', 65), 'UTF8')), 'hex'), 40) AS sha256;
SELECT sse_channel_segment(repeat('.', 21)) AS escaped_63,
       sse_channel_segment(repeat('.', 22)) ~ '^__h[0-9a-f]{40}$' AS escaped_66_hashed;

-- non-text values are rendered with their type's output function, as the
-- trigger renders columns
SELECT sse_channel_segment(42) AS int, sse_channel_segment(1.5::float8) AS float,
       sse_channel_segment(1.50::numeric) AS numeric, sse_channel_segment(true) AS bool,
       sse_channel_segment('2024-05-01'::date) AS date;

-- the escaping is reversible: decode every escaped form back
CREATE FUNCTION regress_segment_decode(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    out bytea := '';
    i int := 2;
BEGIN
    IF s = '__null' THEN RETURN NULL; END IF;
    IF left(s, 1) <> '_' THEN RETURN s; END IF;
    WHILE i <= length(s) LOOP
        IF substr(s, i, 1) = '_' THEN
            out := out || decode(substr(s, i + 1, 2), 'hex');
            i := i + 3;
        ELSE
            out := out || convert_to(substr(s, i, 1), 'UTF8');
            i := i + 1;
        END IF;
    END LOOP;
    RETURN convert_from(out, 'UTF8');
END
$$;

-- 1,000 odd values: all valid single segments, all distinct, and all
-- (short enough to escape) decode to the value
CREATE TEMP TABLE odd AS
SELECT i, CASE i % 20
    WHEN 0 THEN NULL
    WHEN 1 THEN ''
    WHEN 2 THEN ' ' || i
    WHEN 3 THEN 'alice.admin.' || i
    WHEN 4 THEN i || '.5'
    WHEN 5 THEN repeat('x', 60 + i % 97)
    WHEN 6 THEN '*.' || i
    WHEN 7 THEN '#' || i
    WHEN 8 THEN '_' || i
    WHEN 9 THEN '__null' || i
    WHEN 10 THEN 'é' || i
    WHEN 11 THEN E'tab\t' || i
    WHEN 12 THEN '_2e' || i
    WHEN 13 THEN 'plain-' || i
    WHEN 14 THEN 'UPPER_' || i
    WHEN 15 THEN repeat('.', i % 40)
    WHEN 16 THEN '{' || i || '}'
    WHEN 17 THEN 'a/b\c' || i
    WHEN 18 THEN '"' || i || '"'
    ELSE i::text
    END AS v
FROM generate_series(1, 1000) AS i;
SELECT count(*) AS n,
       count(DISTINCT coalesce(v, '<null>')) AS distinct_values,
       count(DISTINCT sse_channel_segment(v)) AS distinct_segments,
       bool_and(sse_match('x.*', 'x.' || sse_channel_segment(v))) AS one_segment_each,
       bool_and(length(sse_channel_segment(v)) <= 64) AS bounded,
       bool_and(sse_channel_segment(v) ~ '^__h'
                OR regress_segment_decode(sse_channel_segment(v)) IS NOT DISTINCT FROM v) AS reversible
FROM odd;

--
-- The trigger uses the same rule
--
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
CREATE TABLE seg_jobs (id int PRIMARY KEY, name text, f float8);
CREATE TRIGGER seg_jobs_sse AFTER INSERT OR UPDATE OR DELETE ON seg_jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('job.{name}');
CREATE TRIGGER seg_jobs_float AFTER INSERT ON seg_jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('x.{f}.{id}', 'float');
INSERT INTO seg_jobs VALUES (1, 'alice', NULL), (2, 'alice.admin', 1.5);
SELECT id - :base AS n, channel, event FROM sse_bridge.events
WHERE id > :base ORDER BY id;
-- job.* receives alice.admin's event on one segment; job.alice.# does not
SELECT channel, sse_match('job.*', channel) AS "job.*",
       sse_match('job.alice.#', channel) AS "job.alice.#",
       sse_match('job.' || sse_channel_segment('alice.admin'), channel) AS built_with_function
FROM sse_bridge.events WHERE id > :base AND channel LIKE 'job.%' ORDER BY id;

-- a bulk insert of the 1,000 odd values: every row published, on the
-- channel the SQL function predicts
DROP TRIGGER seg_jobs_float ON seg_jobs;
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
INSERT INTO seg_jobs (id, name) SELECT 100 + i, v FROM odd;
SELECT count(*) AS events,
       count(DISTINCT channel) AS channels,
       bool_and(e.channel = 'job.' || sse_channel_segment(j.name)) AS as_predicted,
       bool_and(sse_match('job.*', e.channel)) AS all_in_job_star
FROM sse_bridge.events e
JOIN seg_jobs j ON j.id = (e.data::jsonb ->> 'id')::int
WHERE e.id > :base;
-- updates and deletes too
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
UPDATE seg_jobs SET name = name || '.' WHERE id > 100;
DELETE FROM seg_jobs WHERE id > 100;
SELECT event, count(*) FROM sse_bridge.events WHERE id > :base GROUP BY event ORDER BY event;

--
-- Templates are checked when the trigger is created
--
CREATE TABLE seg_t (id int, name text, "Mixed" text, "a.b" int, big text, f float8);
-- well-formed: placeholders with literal text around them, quoted names
CREATE TRIGGER ok1 AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.user-{id}-x.{Mixed}.{a.b}');
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
INSERT INTO seg_t (id, "Mixed", "a.b") VALUES (1, 'M.x', 7);
SELECT channel FROM sse_bridge.events WHERE id > :base;
DROP TRIGGER ok1 ON seg_t;
-- a missing column, a case mismatch, a system column
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{nope}');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{ID}');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{ctid}');
-- malformed templates
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{id');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{}');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.id}');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{id}{name}');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t..{id}');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.*');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.a b');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('');
-- channels that could exceed 200 bytes: each text placeholder may take 64
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{name}.{big}.{Mixed}.{f}');
-- ...while integers take at most 11 bytes
CREATE TRIGGER ok2 AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{name}.{big}.{id}.{a.b}');
-- bad event name, wrong timing or level, wrong argument count
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t', 'close');
CREATE TRIGGER bad BEFORE INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH STATEMENT EXECUTE FUNCTION sse_notify_trigger('t');
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger();
CREATE TRIGGER bad AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('a', 'b', 'c');
-- so are triggers created inside CREATE SCHEMA
CREATE SCHEMA seg_s
    CREATE TABLE t (id int)
    CREATE TRIGGER bad AFTER INSERT ON t
        FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{nope}');
SELECT count(*) FROM pg_namespace WHERE nspname = 'seg_s';
-- CREATE OR REPLACE is checked too
CREATE OR REPLACE TRIGGER ok2 AFTER INSERT ON seg_t
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('t.{gone}');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'seg_t'::regclass ORDER BY 1;

-- later changes of the table are checked against its templates
ALTER TABLE seg_t RENAME COLUMN big TO bigger;
ALTER TABLE seg_t DROP COLUMN "a.b";
ALTER TABLE seg_t ALTER COLUMN id TYPE text;
ALTER TABLE seg_t RENAME COLUMN f TO g;
ALTER TABLE seg_t ALTER COLUMN g TYPE numeric;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'seg_t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

-- an unrelated trigger and unrelated DDL are left alone
CREATE FUNCTION seg_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER other AFTER INSERT ON seg_t FOR EACH ROW EXECUTE FUNCTION seg_noop('{nope}');
ALTER TABLE seg_t ADD COLUMN extra int;

DROP TABLE seg_jobs, seg_t;
DROP FUNCTION seg_noop(), regress_segment_decode(text);
