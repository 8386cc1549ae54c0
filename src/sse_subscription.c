/*
 * sse_subscription.c
 *		Server-side subscriptions and sse_close().
 *
 * A subscription is a row of sse_bridge.subscriptions: a list of channel
 * patterns, a JSON filter, a ttl, the log position of its creation
 * (start_id) and of its current definition (def_id).  Its uuid is the
 * capability a browser presents to the bridge, so it is never written to
 * the log, a NOTIFY payload or an error message; the log and notifications
 * carry the internal sid instead (see docs/design.md).
 *
 * Every function that changes a subscription row queues a marker of the
 * change (SseEnqueueSubscription): at commit it becomes a row of the log on
 * channel "$sub" and a row of sse_bridge.subscription_versions, and sets
 * start_id (creation) and def_id, so the change takes effect at a position
 * of the log.  Each change also queues the hint notification "s <sid>".
 * sse_touch only moves last_seen, which the bridge never applies, so it
 * neither logs nor notifies.
 *
 * Every statement that changes subscriptions returns the changed rows as
 * SSE_CHANGED_COLUMNS, which SseLogRows turns into markers.
 *
 * sse_unsubscribe keeps the row as a tombstone (dropped_at set; the commit
 * sets def_id to its drop marker), so that the bridge can still serve a
 * reader whose position is before the drop; sse_prune deletes it once the
 * drop is pruned.  No function finds a tombstone: a dropped subscription
 * "does not exist" for every change, sse_touch and sse_close, and
 * sse_expire does not drop it again.  With a 1.0 schema (no versions, no
 * dropped_at) unsubscribe deletes the row, as 1.0 did.
 *
 * All entry points are SECURITY DEFINER and run their SQL through SPI as the
 * extension owner, with fully qualified names.  Concurrent changes of one
 * subscription serialize on its row lock (every change is one UPDATE or
 * DELETE, computed from the current row).
 */
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "sse_bridge.h"

PG_FUNCTION_INFO_V1(sse_subscribe_filter);
PG_FUNCTION_INFO_V1(sse_subscription_add);
PG_FUNCTION_INFO_V1(sse_subscription_remove);
PG_FUNCTION_INFO_V1(sse_subscription_set_filter);
PG_FUNCTION_INFO_V1(sse_unsubscribe);
PG_FUNCTION_INFO_V1(sse_touch);
PG_FUNCTION_INFO_V1(sse_expire);
PG_FUNCTION_INFO_V1(sse_close);

/* What every changing statement returns, for SseLogRows. */
#define SSE_CHANGED_COLUMNS " RETURNING sid, channels, filter, closed_at"
#define SSE_COL_SID			1
#define SSE_COL_CHANNELS	2
#define SSE_COL_FILTER		3
#define SSE_COL_CLOSED_AT	4

typedef enum SseChange
{
	SSE_CHANGE_CREATE,
	SSE_CHANGE_UPDATE,
	SSE_CHANGE_DROP,
	SSE_CHANGE_CLOSE
} SseChange;

/*
 * The subscription with uuid $1, and (1.1 schema) only while it is not a
 * tombstone.  SSE_LIVE_SQL(prefix, suffix) picks the statement for the
 * schema at hand.
 */
#define SSE_BY_ID		" WHERE id OPERATOR(pg_catalog.=) $1"
#define SSE_NOT_DROPPED	" AND dropped_at IS NULL"
#define SSE_LIVE_SQL(head, tail) \
	(SseHasVersions() ? head SSE_BY_ID SSE_NOT_DROPPED tail : head SSE_BY_ID tail)

/* Keep the first occurrence of each pattern, in order. */
#define SSE_DEDUP(arr) \
	"ARRAY(SELECT p FROM pg_catalog.unnest(" arr ") WITH ORDINALITY AS u(p, o)" \
	" GROUP BY p ORDER BY pg_catalog.min(o))"

/*
 * SseNotifySubscription
 *		Tell listeners (at commit) that subscription sid changed.
 */
void
SseNotifySubscription(int64 sid)
{
	char		payload[32];

	snprintf(payload, sizeof(payload), "s " INT64_FORMAT, sid);
	Async_Notify(SSE_NOTIFY_CHANNEL, payload);
}

/* ----------------------------------------------------------------
 *		Argument checks
 * ----------------------------------------------------------------
 */

static void
CheckArgNotNull(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("Pass a value for every argument; omit the optional ones to get their defaults.")));
}

/*
 * CheckPatterns
 *		Every element must be a valid pattern; at least one element.
 */
static void
CheckPatterns(ArrayType *patterns)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(patterns, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a subscription needs at least one channel pattern"),
				 errhint("Pass an array such as ARRAY['jobs.42', 'news.#'].")));

	for (int i = 0; i < n; i++)
	{
		text	   *pat;
		sse_name_status st;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("channel pattern must not be null"),
					 errhint("Remove the NULL elements from the array.")));
		pat = DatumGetTextPP(elems[i]);
		st = sse_pattern_check(VARDATA_ANY(pat), VARSIZE_ANY_EXHDR(pat));
		if (st != SSE_NAME_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid channel pattern \"%s\"",
							SseDisplayName(VARDATA_ANY(pat),
										   VARSIZE_ANY_EXHDR(pat))),
					 errdetail("The pattern %s.", sse_name_status_message(st)),
					 errhint("A pattern is dot-separated segments of letters, digits, \"_\" and \"-\"; a whole segment may be \"*\" (exactly one segment) or \"#\" (zero or more segments).")));
	}
}

/*
 * The filter must be a JSON object (the containment target of data) that
 * the bridge evaluates exactly: within the limits of sse_json.h.
 */
static void
CheckFilter(Jsonb *filter)
{
	char	   *text;

	if (!JB_ROOT_IS_OBJECT(filter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription filter must be a JSON object"),
				 errhint("Use '{}' to receive every event, or an object such as '{\"user\": 42}' that event data must contain.")));
	text = JsonbToCString(NULL, &filter->root, VARSIZE(filter));
	SseCheckFilterText("subscription filter", text, strlen(text));
	pfree(text);
}

/* 0 < ttl <= 100 years, so that last_seen + ttl can never overflow. */
static void
CheckTtl(Interval *ttl)
{
	Interval   *zero = palloc0(sizeof(Interval));
	Interval   *limit = palloc0(sizeof(Interval));

	limit->month = 100 * MONTHS_PER_YEAR;
	if (!DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(ttl),
										  IntervalPGetDatum(zero))) ||
		DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(ttl),
										 IntervalPGetDatum(limit))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription ttl must be positive and at most 100 years"),
				 errhint("The ttl is how long an unused subscription survives sse_expire(), for example '1 hour'.")));
}

static void
ReportUnknownSubscription(void)
{
	/* The uuid is a capability: never echo it into the server log. */
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("subscription does not exist"),
			 errhint("It may have been dropped or expired; create a new one with sse_subscribe_filter().")));
}

/* ----------------------------------------------------------------
 *		SPI helpers
 * ----------------------------------------------------------------
 */

/*
 * Run one statement and return the number of rows it processed; the rows
 * (if any) are in SPI_tuptable.  Caller is connected to SPI.
 */
static uint64
SseExec(const char *sql, int nargs, Oid *argtypes, Datum *values, int expected)
{
	int			rc;

	rc = SPI_execute_with_args(sql, nargs, argtypes, values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed: %s",
			 SPI_result_code_string(rc));
	return SPI_processed;
}

static Datum
SseGetColumn(uint64 row, int col)
{
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
					  &isnull);
	if (isnull)
		elog(ERROR, "unexpected null in column %d", col);
	return d;
}

/*
 * Queue the marker of every changed row of SPI_tuptable (the columns of
 * SSE_CHANGED_COLUMNS first), and its hint notification.
 */
static void
SseLogRows(uint64 nrows, SseChange change)
{
	bool		versions = SseHasVersions();	/* else a 1.0 schema */

	for (uint64 i = 0; i < nrows; i++)
	{
		int64		sid = DatumGetInt64(SseGetColumn(i, SSE_COL_SID));
		bool		closed;
		const char *state;

		(void) SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
							 SSE_COL_CLOSED_AT, &closed);
		closed = !closed;
		state = change == SSE_CHANGE_DROP ? "dropped" :
			closed ? "closed" : "active";
		if (versions)
			SseEnqueueSubscription(sid,
								   SseGetColumn(i, SSE_COL_CHANNELS),
								   SseGetColumn(i, SSE_COL_FILTER),
								   state, change == SSE_CHANGE_CREATE,
								   change == SSE_CHANGE_CLOSE);
		SseNotifySubscription(sid);
	}
}

/*
 * Run an UPDATE ... WHERE id = $1 RETURNING SSE_CHANGED_COLUMNS on one
 * subscription, log it, and return the resulting patterns.
 */
static Datum
SseUpdatePatterns(const char *sql, Datum id, Datum patterns,
				  bool refuse_empty)
{
	Oid			argtypes[2] = {UUIDOID, TEXTARRAYOID};
	Datum		values[2] = {id, patterns};
	Datum		result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SseExec(sql, 2, argtypes, values, SPI_OK_UPDATE_RETURNING) == 0)
		ReportUnknownSubscription();
	result = SseGetColumn(0, SSE_COL_CHANNELS);
	if (refuse_empty && ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(result)),
									   ARR_DIMS(DatumGetArrayTypeP(result))) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot remove every pattern of a subscription"),
				 errhint("Call sse_unsubscribe() to drop the subscription instead.")));
	SseLogRows(1, SSE_CHANGE_UPDATE);
	result = SPI_datumTransfer(result, false, -1);
	SPI_finish();
	return result;
}

/* ----------------------------------------------------------------
 *		SQL entry points
 * ----------------------------------------------------------------
 */

/*
 * CheckOwner
 *		An owner is the subject of the tokens that may open the subscription
 *		(the bridge's --jwt-key): 1 to SSE_OWNER_MAX bytes.
 */
#define SSE_OWNER_MAX 256

static void
CheckOwner(text *owner)
{
	int			len = VARSIZE_ANY_EXHDR(owner);

	if (len < 1 || len > SSE_OWNER_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription owner must have 1 to %d bytes", SSE_OWNER_MAX),
				 errdetail("The owner has %d bytes.", len),
				 errhint("Pass the sub claim of the tokens that may open the subscription, or NULL for none.")));
}

/*
 * sse_subscribe_filter(channels text[], filter jsonb DEFAULT '{}',
 *						ttl interval DEFAULT '1 hour',
 *						owner text DEFAULT NULL) RETURNS uuid
 *
 * start_id is the id of the creation marker, assigned at commit (0 until
 * then): the subscription applies to exactly the events with larger ids,
 * which are the events of transactions that commit after this one, and
 * those of this transaction.
 *
 * owner (1.3): the bridge opens the subscription only for a token whose
 * sub is the owner; NULL keeps it a capability.  The 1.2 definition passes
 * three arguments, and its table has no owner column.
 */
Datum
sse_subscribe_filter(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {TEXTARRAYOID, JSONBOID, INTERVALOID, TEXTOID};
	Datum		values[4];
	Datum		id;
	bool		owned = PG_NARGS() > 3 && !PG_ARGISNULL(3);

	CheckArgNotNull(fcinfo, 0, "channels");
	CheckArgNotNull(fcinfo, 1, "filter");
	CheckArgNotNull(fcinfo, 2, "ttl");
	CheckPatterns(PG_GETARG_ARRAYTYPE_P(0));
	CheckFilter(PG_GETARG_JSONB_P(1));
	CheckTtl(PG_GETARG_INTERVAL_P(2));
	if (owned)
		CheckOwner(PG_GETARG_TEXT_PP(3));

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = owned ? PG_GETARG_DATUM(3) : (Datum) 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (owned)
		SseExec("INSERT INTO sse_bridge.subscriptions "
				"(id, channels, filter, ttl, start_id, def_id, owner) "
				"VALUES (pg_catalog.gen_random_uuid(), " SSE_DEDUP("$1") ", $2, $3, 0, 0, $4)"
				SSE_CHANGED_COLUMNS ", id",
				4, argtypes, values, SPI_OK_INSERT_RETURNING);
	else if (SseHasVersions())
		SseExec("INSERT INTO sse_bridge.subscriptions "
				"(id, channels, filter, ttl, start_id, def_id) "
				"VALUES (pg_catalog.gen_random_uuid(), " SSE_DEDUP("$1") ", $2, $3, 0, 0)"
				SSE_CHANGED_COLUMNS ", id",
				3, argtypes, values, SPI_OK_INSERT_RETURNING);
	else
	{
		/* 1.0 schema (not updated yet): start at the head, as 1.0 did */
		SseExec("INSERT INTO sse_bridge.subscriptions "
				"(id, channels, filter, ttl, start_id) "
				"SELECT pg_catalog.gen_random_uuid(), " SSE_DEDUP("$1") ", $2, $3, "
				"GREATEST((SELECT pg_catalog.max(id) FROM sse_bridge.events), "
				"m.pruned_through) "
				"FROM sse_bridge.meta m" SSE_CHANGED_COLUMNS ", id",
				3, argtypes, values, SPI_OK_INSERT_RETURNING);
		if (SPI_processed != 1)
			elog(ERROR, "sse_bridge.meta must hold exactly one row");
	}
	SseLogRows(1, SSE_CHANGE_CREATE);
	id = SPI_datumTransfer(SseGetColumn(0, SSE_COL_CLOSED_AT + 1), false,
						   UUID_LEN);
	SPI_finish();

	PG_RETURN_DATUM(id);
}

/*
 * sse_subscription_add(id uuid, channels text[]) RETURNS text[]
 *
 * Appends the patterns that are not there yet; returns the new list.
 */
Datum
sse_subscription_add(PG_FUNCTION_ARGS)
{
	CheckArgNotNull(fcinfo, 0, "subscription id");
	CheckArgNotNull(fcinfo, 1, "channels");
	CheckPatterns(PG_GETARG_ARRAYTYPE_P(1));

	PG_RETURN_DATUM(SseUpdatePatterns(
		SSE_LIVE_SQL("UPDATE sse_bridge.subscriptions "
					 "SET channels = " SSE_DEDUP("channels OPERATOR(pg_catalog.||) $2"),
					 SSE_CHANGED_COLUMNS),
		PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), false));
}

/*
 * sse_subscription_remove(id uuid, channels text[]) RETURNS text[]
 *
 * Removes the given patterns (absent ones are ignored); returns the new
 * list.  Removing the last pattern is an error.
 */
Datum
sse_subscription_remove(PG_FUNCTION_ARGS)
{
	CheckArgNotNull(fcinfo, 0, "subscription id");
	CheckArgNotNull(fcinfo, 1, "channels");
	CheckPatterns(PG_GETARG_ARRAYTYPE_P(1));

	PG_RETURN_DATUM(SseUpdatePatterns(
		SSE_LIVE_SQL("UPDATE sse_bridge.subscriptions "
					 "SET channels = ARRAY(SELECT p FROM pg_catalog.unnest(channels) "
					 "WITH ORDINALITY AS u(p, o) "
					 "WHERE p OPERATOR(pg_catalog.<>) ALL ($2) ORDER BY o)",
					 SSE_CHANGED_COLUMNS),
		PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), true));
}

/*
 * sse_subscription_set_filter(id uuid, filter jsonb) RETURNS void
 */
Datum
sse_subscription_set_filter(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {UUIDOID, JSONBOID};
	Datum		values[2];

	CheckArgNotNull(fcinfo, 0, "subscription id");
	CheckArgNotNull(fcinfo, 1, "filter");
	CheckFilter(PG_GETARG_JSONB_P(1));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SseExec(SSE_LIVE_SQL("UPDATE sse_bridge.subscriptions SET filter = $2",
							 SSE_CHANGED_COLUMNS),
				2, argtypes, values, SPI_OK_UPDATE_RETURNING) == 0)
		ReportUnknownSubscription();
	SseLogRows(1, SSE_CHANGE_UPDATE);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Run a statement on one subscription given by uuid; returns whether the
 * row existed, logging it as a drop when drop is set.
 */
static bool
SseOneSubscription(const char *sql, Datum id, int expected, bool drop)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {id};
	uint64		n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = SseExec(sql, 1, argtypes, values, expected);
	if (drop)
		SseLogRows(n, SSE_CHANGE_DROP);
	SPI_finish();
	return n > 0;
}

/*
 * sse_unsubscribe(id uuid) RETURNS boolean
 *
 * False when there was no such subscription (or it was dropped already):
 * dropping is idempotent.  The row stays as a tombstone until sse_prune
 * passes its drop marker.
 */
Datum
sse_unsubscribe(PG_FUNCTION_ARGS)
{
	CheckArgNotNull(fcinfo, 0, "subscription id");
	if (!SseHasVersions())		/* 1.0 schema */
		PG_RETURN_BOOL(SseOneSubscription(
			"DELETE FROM sse_bridge.subscriptions" SSE_BY_ID SSE_CHANGED_COLUMNS,
			PG_GETARG_DATUM(0), SPI_OK_DELETE_RETURNING, true));
	PG_RETURN_BOOL(SseOneSubscription(
		"UPDATE sse_bridge.subscriptions SET dropped_at = pg_catalog.now()"
		SSE_BY_ID SSE_NOT_DROPPED SSE_CHANGED_COLUMNS,
		PG_GETARG_DATUM(0), SPI_OK_UPDATE_RETURNING, true));
}

/*
 * sse_touch(id uuid) RETURNS boolean
 *
 * Marks the subscription as used now; false when it does not exist (the
 * bridge then ends the stream).  Does not notify.
 */
Datum
sse_touch(PG_FUNCTION_ARGS)
{
	CheckArgNotNull(fcinfo, 0, "subscription id");
	PG_RETURN_BOOL(SseOneSubscription(
		SSE_LIVE_SQL("UPDATE sse_bridge.subscriptions SET last_seen = pg_catalog.now()", ""),
		PG_GETARG_DATUM(0), SPI_OK_UPDATE, false));
}

/*
 * sse_expire() RETURNS integer
 *
 * Drops the subscriptions unused for longer than their ttl.  They are
 * deleted, not kept as tombstones: a reader behind the drop was away longer
 * than the ttl, and the bridge answers such a reader 404 anyway (docs/design.md).
 * A tombstone is not dropped again.
 */
Datum
sse_expire(PG_FUNCTION_ARGS)
{
	uint64		n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = SseExec(SseHasVersions()
				? "DELETE FROM sse_bridge.subscriptions "
				"WHERE last_seen OPERATOR(pg_catalog.+) ttl "
				"OPERATOR(pg_catalog.<) pg_catalog.now()" SSE_NOT_DROPPED SSE_CHANGED_COLUMNS
				: "DELETE FROM sse_bridge.subscriptions "
				"WHERE last_seen OPERATOR(pg_catalog.+) ttl "
				"OPERATOR(pg_catalog.<) pg_catalog.now()" SSE_CHANGED_COLUMNS,
				0, NULL, NULL, SPI_OK_DELETE_RETURNING);
	SseLogRows(n, SSE_CHANGE_DROP);
	SPI_finish();
	PG_RETURN_INT32((int32) Min(n, (uint64) PG_INT32_MAX));
}

/*
 * sse_close(channel text) RETURNS void
 *
 * Publishes the terminal "close" event on the channel (through the pending
 * list, so it is ordered and rolled back like any event) and marks closed
 * the subscriptions that list the channel literally among their patterns.
 * The close event and those subscriptions' markers are written after every
 * other event of the transaction, in that order.
 */
Datum
sse_close(PG_FUNCTION_ARGS)
{
	text	   *channel;
	StringInfoData data;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	uint64		n;

	CheckArgNotNull(fcinfo, 0, "channel");
	channel = PG_GETARG_TEXT_PP(0);
	SseCheckChannel(VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel));

	/* A valid channel name needs no escaping inside a JSON string. */
	initStringInfo(&data);
	appendStringInfoString(&data, "{\"channel\":\"");
	appendBinaryStringInfo(&data, VARDATA_ANY(channel),
						   VARSIZE_ANY_EXHDR(channel));
	appendStringInfoString(&data, "\"}");
	SseEnqueueEvent(VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel),
					SSE_EVENT_CLOSE, strlen(SSE_EVENT_CLOSE),
					data.data, data.len);

	values[0] = PointerGetDatum(channel);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = SseExec(SseHasVersions()
				? "UPDATE sse_bridge.subscriptions SET closed_at = pg_catalog.now() "
				"WHERE $1 OPERATOR(pg_catalog.=) ANY (channels)" SSE_NOT_DROPPED SSE_CHANGED_COLUMNS
				: "UPDATE sse_bridge.subscriptions SET closed_at = pg_catalog.now() "
				"WHERE $1 OPERATOR(pg_catalog.=) ANY (channels)" SSE_CHANGED_COLUMNS,
				1, argtypes, values, SPI_OK_UPDATE_RETURNING);
	SseLogRows(n, SSE_CHANGE_CLOSE);
	SPI_finish();
	PG_RETURN_VOID();
}
