/* sse_bridge--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sse_bridge UPDATE TO '1.1'" to load this file. \quit

-- Every change from 1.0 to 1.1 is made here too, so that an upgraded
-- database has exactly the objects of a fresh 1.1 install.
