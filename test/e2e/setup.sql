-- Database objects the end-to-end tests need besides the extension.
CREATE EXTENSION sse_bridge;

-- data as jsonb, or NULL when it is not JSON
CREATE FUNCTION e2e_try_jsonb(t text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- Whether an event with this payload should pass this filter, by
-- PostgreSQL's own jsonb containment: the empty filter passes everything,
-- otherwise only JSON objects that contain the filter.
CREATE FUNCTION e2e_filter_expect(filter jsonb, data text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT filter = '{}'::jsonb
        OR coalesce(jsonb_typeof(e2e_try_jsonb(data)) = 'object'
                    AND e2e_try_jsonb(data) @> filter, false)
$$;

-- A job table published through the generic trigger.
CREATE TABLE e2e_jobs (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text NOT NULL UNIQUE,
    state     text NOT NULL,
    progress  integer NOT NULL DEFAULT 0
);
CREATE TRIGGER e2e_jobs_sse AFTER INSERT OR UPDATE OR DELETE ON e2e_jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('job.{name}');
