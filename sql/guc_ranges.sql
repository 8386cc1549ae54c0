-- Settings out of range are refused.  PostgreSQL 17 added units to the
-- range in this message: guc_ranges_1.out is that form.
SELECT sse_match('a', 'a');   -- loads the library, which defines the settings
SET sse_bridge.retention = 0;
SET sse_bridge.max_payload = 0;
SHOW sse_bridge.retention;
SHOW sse_bridge.max_payload;
