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
