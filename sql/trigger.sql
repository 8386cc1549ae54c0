--
-- sse_notify_trigger: publishing table rows
--
\set VERBOSITY default
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset

CREATE TABLE jobs (
    id      int PRIMARY KEY,
    name    text,
    state   text NOT NULL DEFAULT 'queued',
    tags    text[],
    info    jsonb
);
CREATE TRIGGER jobs_sse AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('job.{name}.{id}');

INSERT INTO jobs (id, name, tags, info) VALUES (1, 'resize', '{a,b}', '{"w": 640}');
UPDATE jobs SET state = 'running' WHERE id = 1;
DELETE FROM jobs WHERE id = 1;
-- several rows in one statement, in one transaction: ids in statement order
BEGIN;
INSERT INTO jobs (id, name) VALUES (2, 'thumb'), (3, 'thumb');
UPDATE jobs SET state = 'done';
COMMIT;
SELECT id - :base AS n, channel, event, data FROM sse_bridge.events
WHERE id > :base ORDER BY id;

-- the payload is exactly row_to_json of the row
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
INSERT INTO jobs (id, name, info) VALUES (4, 'x', '{"nested": [1, {"k": null}]}');
SELECT e.data = row_to_json(j)::text AS same_as_row_to_json
FROM sse_bridge.events e, jobs j WHERE e.id > :base AND j.id = 4;

-- a fixed event name, and a template without placeholders
CREATE TABLE notes (k text, body text);
CREATE TRIGGER notes_sse AFTER INSERT OR DELETE ON notes
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('notes', 'note-changed');
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
INSERT INTO notes VALUES ('a', E'multi\nline');
DELETE FROM notes;
SELECT id - :base AS n, channel, event, data FROM sse_bridge.events
WHERE id > :base ORDER BY id;

-- rolled-back savepoints discard trigger events too
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
BEGIN;
INSERT INTO notes VALUES ('kept', '1');
SAVEPOINT s;
INSERT INTO notes VALUES ('discarded', '2');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT id - :base AS n, data FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- deferred constraint triggers fire before the commit hook writes the log
CREATE TABLE deferred_jobs (id int);
CREATE CONSTRAINT TRIGGER deferred_sse AFTER INSERT ON deferred_jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('deferred.{id}');
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
BEGIN;
INSERT INTO deferred_jobs VALUES (1);
SELECT sse_publish('deferred.0', 'published directly, after the insert');
COMMIT;
SELECT id - :base AS n, channel, data FROM sse_bridge.events WHERE id > :base ORDER BY id;

-- odd placeholder values publish on one escaped segment each (the rule is
-- tested in trigger_segments)
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
INSERT INTO jobs (id, name) VALUES (10, NULL), (11, 'has space'), (12, 'a.*'), (13, '');
SELECT id - :base AS n, channel FROM sse_bridge.events WHERE id > :base ORDER BY id;
SELECT coalesce(max(id), 0) AS base FROM sse_bridge.events \gset
-- a template that escaped the check at CREATE TRIGGER (here: the event
-- trigger disabled by a superuser) is refused when it fires, with the same
-- message
ALTER EVENT TRIGGER sse_bridge_check_notify_triggers DISABLE;
CREATE TABLE t_bad_col (id int);
CREATE TRIGGER t AFTER INSERT ON t_bad_col
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('x.{nope}');
CREATE TABLE t_wild (id int);
CREATE TRIGGER t AFTER INSERT ON t_wild
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('x.*');
CREATE TABLE t_event (id int);
CREATE TRIGGER t AFTER INSERT ON t_event
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('x', 'close');
CREATE TABLE t_usage (id int);
CREATE TRIGGER t BEFORE INSERT ON t_usage
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('a');
ALTER EVENT TRIGGER sse_bridge_check_notify_triggers ENABLE;
INSERT INTO t_bad_col VALUES (1);
INSERT INTO t_wild VALUES (1);
INSERT INTO t_event VALUES (1);
INSERT INTO t_usage VALUES (1);
-- the size limit applies to rows as well
SET sse_bridge.max_payload = 20;
INSERT INTO notes VALUES ('long', repeat('x', 20));
RESET sse_bridge.max_payload;

-- a direct call
SELECT sse_notify_trigger();

-- none of the failed statements left an event behind
SELECT count(*) AS leftovers FROM sse_bridge.events
WHERE id > :base;

DROP TABLE jobs, notes, deferred_jobs, t_bad_col, t_wild, t_event, t_usage;
