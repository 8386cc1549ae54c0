/*
 * sse_prune.c
 *		Retention: sse_prune(older_than interval DEFAULT NULL).
 *
 * Pruning deletes a contiguous prefix of the log, ids 1..X, and raises
 * sse_bridge.meta.pruned_through to X in the same statement (never lowers
 * it).  Readers join meta into every read of the log, so a reader whose
 * cursor is below pruned_through learns in the same snapshot that events
 * are gone (the bridge then sends "reset").  X is one less than the first
 * id, in id order, committed at or after now() - older_than, or the largest
 * id when every event is older.  Ids are assigned under the publish lock and
 * created_at is taken right after, so created_at grows with id; cutting a
 * prefix rather than deleting by date keeps the log gap-free.
 *
 * With sse_bridge.retention_max_events = N > 0, X is raised to at least the
 * id of the N+1-th newest row of the log, so at most N rows are left.
 *
 * Subscription-change markers are rows of the log and go with the prefix.
 * In the same statement, sse_bridge.subscription_versions loses what no
 * position above the new pruned_through P can need: for each subscription,
 * every version older than its newest version with from_id <= P, and that
 * version too when it is a drop; with the drop go the tombstone of an
 * unsubscribed subscription (its row in sse_bridge.subscriptions, kept so
 * that readers behind the drop could finish).  The definition valid at any
 * position L >= P stays the newest version with from_id <= L.
 *
 * Concurrent prunes (several bridges, cron jobs) serialize on the meta row:
 * each one first locks it, then computes X from a snapshot taken after the
 * lock, so it sees what an earlier prune deleted and never deletes rows
 * another prune is deleting at the same time (no deadlock).  Publishing
 * commits are not blocked: they only add ids (and versions) above X.
 */
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "sse_bridge.h"

/*
 * One statement: cut the log, raise the prune mark, and (1.1 schema) drop
 * the subscription versions no position after the mark needs.
 */
#define PRUNE_VERSIONS_CTE \
	", old_versions AS (" \
	"  DELETE FROM sse_bridge.subscription_versions v USING meta" \
	"   WHERE v.from_id OPERATOR(pg_catalog.<=) meta.pruned_through" \
	"     AND (v.state OPERATOR(pg_catalog.=) 'dropped' OR EXISTS (" \
	"          SELECT FROM sse_bridge.subscription_versions w" \
	"           WHERE w.sid OPERATOR(pg_catalog.=) v.sid" \
	"             AND w.from_id OPERATOR(pg_catalog.>) v.from_id" \
	"             AND w.from_id OPERATOR(pg_catalog.<=) meta.pruned_through))" \
	"  RETURNING v.sid, v.state" \
	"), tombstones AS (" \
	"  DELETE FROM sse_bridge.subscriptions s USING old_versions o" \
	"   WHERE s.sid OPERATOR(pg_catalog.=) o.sid" \
	"     AND o.state OPERATOR(pg_catalog.=) 'dropped' AND s.dropped_at IS NOT NULL" \
	")"
#define PRUNE_SQL(versions_cte) \
	"WITH cut AS (" \
	"  SELECT GREATEST(COALESCE(" \
	"    (SELECT e.id OPERATOR(pg_catalog.-) 1 FROM sse_bridge.events e" \
	"      WHERE e.created_at OPERATOR(pg_catalog.>=)" \
	"            (pg_catalog.now() OPERATOR(pg_catalog.-) $1)" \
	"      ORDER BY e.id LIMIT 1)," \
	"    (SELECT pg_catalog.max(e.id) FROM sse_bridge.events e)," \
	"    0)," \
	"    (SELECT e.id FROM sse_bridge.events e WHERE $2 OPERATOR(pg_catalog.>) 0" \
	"      ORDER BY e.id DESC OFFSET $2 LIMIT 1)) AS x" \
	"), meta AS (" \
	"  UPDATE sse_bridge.meta" \
	"     SET pruned_through = GREATEST(pruned_through, (SELECT x FROM cut))" \
	"  RETURNING pruned_through" \
	"), gone AS (" \
	"  DELETE FROM sse_bridge.events e USING cut" \
	"   WHERE e.id OPERATOR(pg_catalog.<=) cut.x" \
	"  RETURNING 1" \
	")" versions_cte " " \
	"SELECT (SELECT pg_catalog.count(*) FROM gone)," \
	"       (SELECT pg_catalog.count(*) FROM meta)"

PG_FUNCTION_INFO_V1(sse_prune);

/* The age must not be negative: that would prune events not yet written. */
static void
CheckPruneAge(Interval *age)
{
	Interval   *zero = palloc0(sizeof(Interval));

	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(age),
										 IntervalPGetDatum(zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sse_prune age must not be negative"),
				 errhint("Pass how old events must be to be deleted, for example '1 day', or NULL for sse_bridge.retention.")));
}

/*
 * sse_prune(older_than interval DEFAULT NULL) RETURNS bigint
 *
 * NULL means sse_bridge.retention.  Returns the number of events deleted.
 */
Datum
sse_prune(PG_FUNCTION_ARGS)
{
	Interval   *age;
	Oid			argtypes[2] = {INTERVALOID, INT8OID};
	Datum		values[2];
	int			rc;
	bool		isnull;
	int64		deleted;

	if (PG_ARGISNULL(0))
	{
		age = palloc0(sizeof(Interval));
		age->time = (int64) sse_retention * USECS_PER_SEC;
	}
	else
		age = PG_GETARG_INTERVAL_P(0);
	CheckPruneAge(age);
	values[0] = IntervalPGetDatum(age);
	values[1] = Int64GetDatum((int64) sse_retention_max_events);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * Wait for any other prune first.  Not read-only: the next statement
	 * then runs with a new snapshot, taken after that prune committed.
	 */
	rc = SPI_execute("SELECT 1 FROM sse_bridge.meta FOR UPDATE", false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "locking sse_bridge.meta failed: %s", SPI_result_code_string(rc));

	rc = SPI_execute_with_args(SseHasVersions() ? PRUNE_SQL(PRUNE_VERSIONS_CTE)
							   : PRUNE_SQL(""),
							   2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pruning sse_bridge.events failed: %s",
			 SPI_result_code_string(rc));
	deleted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 2, &isnull)) != 1)
		elog(ERROR, "sse_bridge.meta must hold exactly one row");
	SPI_finish();

	PG_RETURN_INT64(deleted);
}
