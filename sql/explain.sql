--
-- sse_explain: why a stream does or does not carry an event
--
-- (event ids and positions shown as N: they depend on what ran before)
CREATE FUNCTION pg_temp.x(u uuid, e bigint)
RETURNS TABLE (step text, item text, ok boolean, detail text) LANGUAGE sql AS $$
    SELECT r.step, CASE WHEN r.step = 'event' THEN 'N' ELSE r.item END, r.ok,
           regexp_replace(r.detail, '(at|event|through) [0-9]+', '\1 N', 'g')
    FROM sse_explain(u, e) r
$$;
SELECT sse_subscribe_filter(ARRAY['orders.*', 'order.#'], '{"customer_id": "42", "x": 1}') AS s \gset
SELECT sse_publish('order.7', '{"customer_id": 42, "x": 1}');
SELECT max(id) AS e1 FROM sse_bridge.events \gset
SELECT sse_publish('order.7', '{"x": 2}');
SELECT max(id) AS e2 FROM sse_bridge.events \gset
SELECT sse_publish('order.7', '{"customer_id": "42", "x": 1.0}');
SELECT max(id) AS e3 FROM sse_bridge.events \gset
SELECT sse_publish('shop.orders.7', 'plain text');
SELECT max(id) AS e4 FROM sse_bridge.events \gset
-- type mismatch (string filter, number data); one pattern fails by segment
SELECT * FROM pg_temp.x(:'s', :e1);
-- missing key, value differs
SELECT * FROM pg_temp.x(:'s', :e2);
-- carried (1.0 equals 1 as in jsonb)
SELECT * FROM pg_temp.x(:'s', :e3);
-- no pattern matches, data not JSON
SELECT * FROM pg_temp.x(:'s', :e4);
-- before the subscription; unknown event; unknown subscription
SELECT sse_subscribe_filter(ARRAY['order.#']) AS late \gset
SELECT * FROM pg_temp.x(:'late', :e1);
SELECT * FROM pg_temp.x(:'s', :e4 + 1000);
SELECT * FROM pg_temp.x('00000000-0000-0000-0000-000000000000', :e1);
-- a role that cannot read the log and the subscriptions learns nothing
CREATE ROLE regress_sse_explain_nobody;
SET ROLE regress_sse_explain_nobody;
SELECT * FROM sse_explain(:'s', :e1);
RESET ROLE;
DROP ROLE regress_sse_explain_nobody;
SELECT sse_unsubscribe(:'s'), sse_unsubscribe(:'late');
