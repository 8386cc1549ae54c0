/*
 * sse_publish.c
 *		Publishing: validation, the pending-event list and the commit hook.
 *
 * sse_publish() does not write anything.  It validates the event and appends
 * it to a list that lives in a memory context under TopTransactionContext,
 * tagged with the subtransaction nesting level that queued it.  The list is
 * always ordered by non-decreasing level: while level L is current, every
 * queued event has level <= L, because an inner subtransaction that ends
 * either drops its events (abort) or relabels them to its parent's level
 * (commit).  So both operations only touch a suffix of the list.
 *
 * Subscription changes (sse_subscription.c) are queued in the same list, as
 * marker rows on channel SSE_SUB_CHANNEL (SseEnqueueSubscription), so they
 * get ids from the same sequence and are dropped with their savepoint.  At
 * commit the rows are written in this order (SseOrderPending): subscription
 * changes, then events, then closes (close events, the markers of the
 * subscriptions they closed, and later changes of those), each group in
 * call order.  With the markers, one SPI statement writes the changed
 * subscriptions' rows of sse_bridge.subscription_versions and their def_id
 * and start_id.  A transaction without subscription changes or closes
 * writes its list as it is.
 *
 * At XACT_EVENT_PRE_COMMIT the transaction takes the publish lock (an
 * exclusive transaction-scoped advisory lock on a tag no SQL function can
 * name, see sse_bridge.h), draws
 * one id per event from sse_bridge.events_id_seq and inserts the rows, then
 * queues one NOTIFY "e <maxid>".  The lock is released only after the
 * commit is visible in the proc array, so ids become visible in id order:
 * once a reader sees id N, every smaller id that will ever commit is
 * already visible.  Publishing commits are therefore serialized, for the
 * time it takes to insert their rows and to commit.
 *
 * The rows are inserted as the owner of sse_bridge.events, in a restricted
 * security context, whoever queued them: queuing needs no rights beyond
 * EXECUTE on the entry points (sse_publish and sse_notify_trigger are
 * SECURITY INVOKER), and publishers need no table privileges.  Nothing a
 * publisher defines runs in that context: the events are plain text by
 * then, the direct write below looks nothing up by a name a user can
 * steer, and the write runs with search_path pinned to "pg_catalog,
 * pg_temp" (for the fallback INSERT, and for anything the table's owner
 * attached to the table).
 *
 * The work under the lock is kept small.  Before taking it, the commit hook
 * opens and locks the table, its indexes and the sequence, gets the
 * transaction id, and forms the heap tuples with placeholders for the id and
 * created_at.  Under the lock it only draws the ids (nextval_internal, which
 * must stay under the lock: ids follow lock order), writes them and the
 * commit time into the tuples in place, and hands the tuples to heap_insert
 * (heap_multi_insert for several, one WAL record per page) and their entries
 * to the indexes through ExecInsertIndexTuples, which evaluates the
 * predicate of the partial index on close events.  No INSERT statement, no
 * executor startup, no SPI.
 *
 * Lock order: sse_bridge.events, its indexes and its sequence (and, with
 * subscription changes, sse_bridge.subscriptions and
 * sse_bridge.subscription_versions) are locked (ROW EXCLUSIVE) before the
 * publish lock.  A session that takes the
 * publish lock by hand may read and delete rows, but must take any stronger
 * lock on those relations (TRUNCATE, LOCK TABLE, ALTER) before the publish
 * lock, or it can deadlock with a committing publisher.
 *
 * That direct write checks no privileges and runs nothing an INSERT would
 * run on the table.  Privileges: it writes as the table's owner, who may
 * write it anyway, and the only ways to queue events are the extension's
 * entry points, which need EXECUTE and validate every event; nothing here
 * is reachable with other rows.  Everything else is checked on each commit
 * (SseCanInsertDirectly): sse_bridge.events is internal to the extension,
 * but if someone who may alter it adds triggers, rules, row-level security,
 * CHECK constraints, generated or other columns, or turns it into a
 * partition, the commit falls back to the prepared INSERT through SPI,
 * which honours all of them.  Indexes need no fallback: all of them are
 * maintained.
 *
 * A transaction with pending events or subscription changes cannot be
 * prepared: its ids would have to be assigned at COMMIT PREPARED, which runs
 * no commit callbacks.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sse_bridge.h"

/*
 * What a queued row is, which decides where it goes in the transaction's
 * rows (see SseOrderPending): subscription changes first, then events, then
 * closes and the changes that follow a close of the same subscription.
 */
typedef enum SsePendingKind
{
	SSE_PENDING_EVENT,			/* sse_publish, the trigger */
	SSE_PENDING_CLOSE,			/* the close event of sse_close */
	SSE_PENDING_SUB,			/* a subscription change */
	SSE_PENDING_SUB_LATE		/* a change written with the closes */
} SsePendingKind;

/* One queued row; every pointer lives in PendingContext. */
typedef struct SsePendingEvent
{
	int			level;			/* nesting level of the queuing subxact */
	SsePendingKind kind;
	bool		created;		/* SUB*: the change creates the subscription */
	int64		sid;			/* SUB*: the subscription */
	text	   *channel;		/* SUB*: SSE_SUB_CHANNEL */
	text	   *event;			/* NULL: the SSE default, "message" */
	text	   *data;			/* SUB*: the definition, as JSON */
} SsePendingEvent;

/* State of the current transaction; all reset at transaction end. */
static MemoryContext PendingContext = NULL;
static List *PendingEvents = NIL;
static bool PendingLate = false;	/* a late row may be queued */

/* Saved across transactions; revalidated by the plan cache. */
static SPIPlanPtr InsertOnePlan = NULL;
static SPIPlanPtr InsertManyPlan = NULL;
static SPIPlanPtr VersionsPlan = NULL;

static void SseXactCallback(XactEvent event, void *arg);
static void SseSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
							   SubTransactionId parentSubid, void *arg);
static void SseFlushPending(void);
static void SseResetPending(void);
static text *SseCopyText(const char *s, size_t len);

PG_FUNCTION_INFO_V1(sse_publish_text);
PG_FUNCTION_INFO_V1(sse_publish_jsonb);

/*
 * SsePublishInit
 *		Register the transaction callbacks.  Called once from _PG_init.
 */
void
SsePublishInit(void)
{
	RegisterXactCallback(SseXactCallback, NULL);
	RegisterSubXactCallback(SseSubXactCallback, NULL);
}

/* ----------------------------------------------------------------
 *		Validation
 * ----------------------------------------------------------------
 */

/*
 * SseDisplayName
 *		A printable, bounded rendering of a user-supplied name for messages:
 *		control characters are escaped and long names are cut.
 */
char *
SseDisplayName(const char *s, size_t len)
{
	StringInfoData buf;
	int			shown = pg_mbcliplen(s, (int) Min(len, (size_t) INT_MAX), 64);

	initStringInfo(&buf);
	for (int i = 0; i < shown; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '\n')
			appendStringInfoString(&buf, "\\n");
		else if (c == '\r')
			appendStringInfoString(&buf, "\\r");
		else if (c < 0x20 || c == 0x7f)
			appendStringInfo(&buf, "\\x%02x", c);
		else
			appendStringInfoChar(&buf, (char) c);
	}
	if ((size_t) shown < len)
		appendStringInfoString(&buf, "...");
	return buf.data;
}

/*
 * SseCheckChannel
 *		Raise an error unless the name is a valid concrete channel.
 */
void
SseCheckChannel(const char *channel, size_t len)
{
	sse_name_status st = sse_channel_check(channel, len);

	if (st == SSE_NAME_WILDCARD || st == SSE_NAME_BAD_WILDCARD)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid channel name \"%s\"",
						SseDisplayName(channel, len)),
				 errdetail("The channel name %s.", sse_name_status_message(st)),
				 errhint("Wildcards \"*\" and \"#\" are allowed only in subscription patterns; publish to a concrete channel.")));
	if (st != SSE_NAME_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid channel name \"%s\"",
						SseDisplayName(channel, len)),
				 errdetail("The channel name %s.", sse_name_status_message(st)),
				 errhint("A channel name is 1 to %d characters: dot-separated, non-empty segments of letters, digits, \"_\" and \"-\".",
						 SSE_CHANNEL_MAX)));
}

/*
 * SseCheckEventName
 *		Raise an error unless the name is a valid SSE event name that the
 *		bridge does not reserve for itself.
 */
void
SseCheckEventName(const char *event, size_t len)
{
	static const char *const reserved[] = {"ready", "reset", SSE_EVENT_CLOSE};
	sse_name_status st = sse_event_name_check(event, len);

	if (st != SSE_NAME_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event name \"%s\"", SseDisplayName(event, len)),
				 errdetail("The event name %s.", sse_name_status_message(st)),
				 errhint("An event name is 1 to %d characters with no control characters such as CR or LF; pass NULL for the default event.",
						 SSE_EVENT_NAME_MAX)));

	for (int i = 0; i < lengthof(reserved); i++)
	{
		if (len == strlen(reserved[i]) && memcmp(event, reserved[i], len) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("event name \"%s\" is reserved", reserved[i]),
					 errdetail("The bridge itself sends the events \"ready\", \"reset\" and \"close\"."),
					 errhint("To end the streams of a channel, call sse_close(channel); otherwise choose another event name.")));
	}
}

/*
 * SseCheckPayloadSize
 *		Raise an error when a payload exceeds sse_bridge.max_payload.
 */
void
SseCheckPayloadSize(size_t len)
{
	if (len > (size_t) sse_max_payload)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event payload is too large"),
				 errdetail("The payload is %zu bytes; sse_bridge.max_payload is %d bytes.",
						   len, sse_max_payload),
				 errhint("Publish a reference to the data instead, or raise sse_bridge.max_payload.")));
}

/* Publishing writes at commit; refuse early where that cannot work. */
static void
CheckCanPublish(void)
{
	PreventCommandIfReadOnly("sse_publish()");
	PreventCommandIfParallelMode("sse_publish()");
	PreventCommandDuringRecovery("sse_publish()");
}

/* ----------------------------------------------------------------
 *		The pending list
 * ----------------------------------------------------------------
 */

static text *
SseCopyText(const char *s, size_t len)
{
	text	   *t = (text *) MemoryContextAlloc(PendingContext, len + VARHDRSZ);

	SET_VARSIZE(t, len + VARHDRSZ);
	memcpy(VARDATA(t), s, len);
	return t;
}

/* Create the pending list's context on first use in a transaction. */
static void
SsePendingStart(void)
{
	if (PendingContext == NULL)
	{
		PendingContext = AllocSetContextCreate(TopTransactionContext,
											   "sse_bridge pending events",
											   ALLOCSET_DEFAULT_SIZES);
	}
}

/*
 * SseEnqueueEvent
 *		Queue an event for the current transaction.
 *
 * The caller has validated channel and event (the event may be NULL, and may
 * be a reserved name only for sse_close, which is how a close is queued: it
 * is written after the transaction's other events).  The payload's size, and
 * that the filters can evaluate it exactly, are checked here.  Queuing needs no privilege: the rows are written at commit
 * as the owner of sse_bridge.events, whoever queued them.
 */
void
SseEnqueueEvent(const char *channel, size_t channel_len,
				const char *event, size_t event_len,
				const char *data, size_t data_len)
{
	SsePendingEvent *ev;
	MemoryContext oldcxt;

	SseCheckPayloadSize(data_len);
	SseCheckPayload(data, data_len);
	CheckCanPublish();
	SsePendingStart();

	oldcxt = MemoryContextSwitchTo(PendingContext);
	ev = palloc(sizeof(SsePendingEvent));
	ev->level = GetCurrentTransactionNestLevel();
	ev->kind = SSE_PENDING_EVENT;
	ev->created = false;
	ev->sid = 0;
	if (event != NULL && event_len == strlen(SSE_EVENT_CLOSE) &&
		memcmp(event, SSE_EVENT_CLOSE, event_len) == 0)
	{
		ev->kind = SSE_PENDING_CLOSE;
		PendingLate = true;
	}
	ev->channel = SseCopyText(channel, channel_len);
	ev->event = event ? SseCopyText(event, event_len) : NULL;
	ev->data = SseCopyText(data, data_len);
	PendingEvents = lappend(PendingEvents, ev);
	MemoryContextSwitchTo(oldcxt);
}

/* Whether a late change of subscription sid is queued. */
static bool
SseLateChangeQueued(int64 sid)
{
	ListCell   *lc;

	if (!PendingLate)
		return false;
	foreach(lc, PendingEvents)
	{
		SsePendingEvent *ev = lfirst(lc);

		if (ev->kind == SSE_PENDING_SUB_LATE && ev->sid == sid)
			return true;
	}
	return false;
}

/*
 * SseEnqueueSubscription
 *		Queue the marker of a subscription change for the current
 *		transaction.
 *
 * channels (text[]) and filter (jsonb) are the subscription's definition
 * after the change; state is "active", "closed" or "dropped".  The marker is
 * a row on channel SSE_SUB_CHANNEL whose data is
 *   {"sid":N,"channels":[...],"filter":{...},"state":"..."}
 * and, written with it, a row of sse_bridge.subscription_versions.  A close
 * (is_close) is written after the transaction's events, like its close
 * event; so is any later change of a subscription that already has such a
 * late change queued, so that its last marker stays its final definition.
 * Same calling rules as SseEnqueueEvent.
 */
void
SseEnqueueSubscription(int64 sid, Datum channels, Datum filter,
					   const char *state, bool created, bool is_close)
{
	ArrayType  *arr = DatumGetArrayTypeP(channels);
	Jsonb	   *jb = DatumGetJsonbP(filter);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData buf;
	SsePendingEvent *ev;
	MemoryContext oldcxt;

	CheckCanPublish();
	SsePendingStart();

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"sid\":" INT64_FORMAT ",\"channels\":[", sid);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			elog(ERROR, "subscription %lld has a null pattern", (long long) sid);
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, TextDatumGetCString(elems[i]));
	}
	appendStringInfoString(&buf, "],\"filter\":");
	(void) JsonbToCString(&buf, &jb->root, VARSIZE(jb));
	appendStringInfo(&buf, ",\"state\":\"%s\"}", state);

	oldcxt = MemoryContextSwitchTo(PendingContext);
	ev = palloc(sizeof(SsePendingEvent));
	ev->level = GetCurrentTransactionNestLevel();
	ev->kind = (is_close || SseLateChangeQueued(sid)) ?
		SSE_PENDING_SUB_LATE : SSE_PENDING_SUB;
	if (ev->kind == SSE_PENDING_SUB_LATE)
		PendingLate = true;
	ev->created = created;
	ev->sid = sid;
	ev->channel = SseCopyText(SSE_SUB_CHANNEL, strlen(SSE_SUB_CHANNEL));
	ev->event = NULL;
	ev->data = SseCopyText(buf.data, buf.len);
	PendingEvents = lappend(PendingEvents, ev);
	MemoryContextSwitchTo(oldcxt);
	pfree(buf.data);
}

static void
SseResetPending(void)
{
	/* The context itself goes away with TopTransactionContext. */
	PendingContext = NULL;
	PendingEvents = NIL;
	PendingLate = false;
}

/*
 * Subtransaction end: the events of level >= the ending level form a suffix
 * of the list; drop them on abort, hand them to the parent on commit.
 */
static void
SseSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
				   SubTransactionId parentSubid, void *arg)
{
	int			level;
	int			keep;

	if (PendingEvents == NIL)
		return;
	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;

	level = GetCurrentTransactionNestLevel();
	keep = list_length(PendingEvents);
	while (keep > 0)
	{
		SsePendingEvent *ev = list_nth(PendingEvents, keep - 1);

		if (ev->level < level)
			break;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			ev->level = level - 1;
		keep--;
	}
	if (event == SUBXACT_EVENT_ABORT_SUB)
		PendingEvents = list_truncate(PendingEvents, keep);
}

/* Whether every queued row is a subscription change. */
static bool
SsePendingOnlySubscriptions(void)
{
	ListCell   *lc;

	foreach(lc, PendingEvents)
	{
		SsePendingEvent *ev = lfirst(lc);

		if (ev->kind == SSE_PENDING_EVENT || ev->kind == SSE_PENDING_CLOSE)
			return false;
	}
	return true;
}

static void
SseXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (PendingEvents != NIL)
				SseFlushPending();
			break;

		case XACT_EVENT_PRE_PREPARE:
			if (PendingEvents != NIL && SsePendingOnlySubscriptions())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that has changed subscriptions"),
						 errdetail("A subscription change gets its position in the log when its transaction commits, and COMMIT PREPARED cannot assign it."),
						 errhint("Change the subscriptions in a separate transaction.")));
			if (PendingEvents != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that has published events"),
						 errdetail("Events get their ids when their transaction commits, and COMMIT PREPARED cannot assign them."),
						 errhint("Publish the events in a separate transaction, for example after COMMIT PREPARED.")));
			break;

		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			SseResetPending();
			break;

		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			/* sse_publish is parallel unsafe: workers never queue events */
			break;
	}
}

/* ----------------------------------------------------------------
 *		Writing the events at commit
 * ----------------------------------------------------------------
 */

/* The OID of a relation of the sse_bridge schema, or InvalidOid. */
static Oid
SseLookupRelation(const char *relname)
{
	Oid			nsp = get_namespace_oid(SSE_SCHEMA, true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

/* The OID of a relation of the sse_bridge schema; error if missing. */
static Oid
SseRelationOid(const char *relname, const char *what)
{
	Oid			relid = SseLookupRelation(relname);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s %s.%s does not exist", what, SSE_SCHEMA, relname),
				 errhint("Create the sse_bridge extension in this database.")));
	return relid;
}

/*
 * SseHasVersions
 *		Whether the database has the 1.1 schema (subscription versions).
 *
 * Between installing a new library and ALTER EXTENSION sse_bridge UPDATE, a
 * database still has the 1.0 objects: publishing, pruning and subscription
 * changes then behave as 1.0 did (no markers, no versions), instead of
 * failing on a table that does not exist yet.
 */
bool
SseHasVersions(void)
{
	return OidIsValid(SseLookupRelation(SSE_VERSIONS_TABLE));
}

/* Prepare and keep a plan; caller is connected to SPI. */
static SPIPlanPtr
SseKeepPlan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * The fallback: an INSERT statement through SPI, for a table that has
 * something only the executor handles (see SseCanInsertDirectly).
 * Everything but the ids is built before the publish lock is taken, so that
 * the lock covers drawing the ids, one executor run and the commit itself.
 */
typedef struct SseInsert
{
	SPIPlanPtr	plan;
	int			n;				/* number of events */
	Datum		values[4];		/* id (filled under the lock), channel, event, data */
	char		nulls[4];
	int64	   *ids;			/* the ids drawn, in row order */
} SseInsert;

/*
 * Prepare the insert of the given events: one row directly, several rows
 * through arrays and one INSERT ... SELECT (one executor run instead of one
 * per event).  Caller is connected to SPI.
 */
static void
SseInsertPrepare(SseInsert *ins, List *events)
{
	static Oid	onetypes[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};
	static Oid	manytypes[4] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	int			n = list_length(events);
	Datum	   *chd;
	Datum	   *evd;
	bool	   *evnull;
	Datum	   *dad;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	ListCell   *lc;

	ins->n = n;
	ins->ids = palloc(n * sizeof(int64));
	memset(ins->nulls, ' ', sizeof(ins->nulls));

	if (n == 1)
	{
		SsePendingEvent *ev = linitial(events);

		if (InsertOnePlan == NULL)
			InsertOnePlan = SseKeepPlan(
				"INSERT INTO sse_bridge.events (id, channel, event, data, created_at) "
				"VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp())",
				4, onetypes);
		ins->plan = InsertOnePlan;
		ins->values[1] = PointerGetDatum(ev->channel);
		ins->values[2] = PointerGetDatum(ev->event);
		ins->values[3] = PointerGetDatum(ev->data);
		if (ev->event == NULL)
			ins->nulls[2] = 'n';
		return;
	}

	if (InsertManyPlan == NULL)
		InsertManyPlan = SseKeepPlan(
			"INSERT INTO sse_bridge.events (id, channel, event, data, created_at) "
			"SELECT u.id, u.channel, u.event, u.data, pg_catalog.clock_timestamp() "
			"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
			"pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(id, channel, event, data)",
			4, manytypes);
	ins->plan = InsertManyPlan;

	chd = palloc(n * sizeof(Datum));
	evd = palloc(n * sizeof(Datum));
	evnull = palloc(n * sizeof(bool));
	dad = palloc(n * sizeof(Datum));
	foreach(lc, events)
	{
		SsePendingEvent *ev = lfirst(lc);
		int			i = foreach_current_index(lc);

		chd[i] = PointerGetDatum(ev->channel);
		evd[i] = PointerGetDatum(ev->event);
		evnull[i] = ev->event == NULL;
		dad[i] = PointerGetDatum(ev->data);
	}
	ins->values[1] = PointerGetDatum(construct_array(chd, n, TEXTOID, -1, false,
													 TYPALIGN_INT));
	ins->values[2] = PointerGetDatum(construct_md_array(evd, evnull, 1, dims, lbs,
														TEXTOID, -1, false,
														TYPALIGN_INT));
	ins->values[3] = PointerGetDatum(construct_array(dad, n, TEXTOID, -1, false,
													 TYPALIGN_INT));
}

/*
 * Draw the ids and insert the rows; returns the largest id.  Caller holds
 * the publish lock, is connected to SPI and has pushed a snapshot.
 */
static int64
SseInsertExecute(SseInsert *ins, Oid seqoid)
{
	int64		id = 0;
	int			rc;

	if (ins->n == 1)
	{
		id = nextval_internal(seqoid, false);
		ins->ids[0] = id;
		ins->values[0] = Int64GetDatum(id);
	}
	else
	{
		Datum	   *idd = palloc(ins->n * sizeof(Datum));

		for (int i = 0; i < ins->n; i++)
		{
			id = nextval_internal(seqoid, false);
			ins->ids[i] = id;
			idd[i] = Int64GetDatum(id);
		}
		ins->values[0] = PointerGetDatum(construct_array(idd, ins->n, INT8OID,
														 sizeof(int64),
														 FLOAT8PASSBYVAL,
														 TYPALIGN_DOUBLE));
	}

	/* The insert reads nothing: no need for a fresh snapshot. */
	rc = SPI_execute_snapshot(ins->plan, ins->values, ins->nulls,
							  GetActiveSnapshot(), InvalidSnapshot,
							  false, true, 0);
	if (rc != SPI_OK_INSERT || SPI_processed != (uint64) ins->n)
		elog(ERROR, "inserting into sse_bridge.events failed: %s",
			 SPI_result_code_string(rc));
	return id;
}

/* Attribute numbers of sse_bridge.events, as created by the extension. */
#define Anum_sse_events_id			1
#define Anum_sse_events_channel		2
#define Anum_sse_events_event		3
#define Anum_sse_events_data		4
#define Anum_sse_events_created_at	5
#define Natts_sse_events			5

/*
 * SseCanInsertDirectly
 *		Whether the rows can be written with heap_insert and the index AM
 *		instead of an INSERT statement.
 *
 * True when the table is exactly what the extension created: a plain heap
 * table with the five expected columns, and nothing that an INSERT would
 * run and a direct insert would skip: no triggers (this includes foreign
 * keys and deferrable constraints), rules, row-level security, CHECK
 * constraints or generated columns, and not a partition.  Indexes are fine,
 * whatever they are: ExecInsertIndexTuples maintains them all (partial
 * indexes by their predicate, expression indexes, exclusion constraints).
 * Anything else falls back to the INSERT, which handles everything.
 */
static bool
SseCanInsertDirectly(Relation rel)
{
	static const Oid types[Natts_sse_events] =
	{INT8OID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	static const char *const names[Natts_sse_events] =
	{"id", "channel", "event", "data", "created_at"};
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		rel->rd_rel->relispartition ||
		rel->rd_rel->relhasrules ||
		rel->rd_rel->relrowsecurity ||
		rel->trigdesc != NULL)
		return false;
	if (desc->natts != Natts_sse_events)
		return false;
	if (desc->constr != NULL &&
		(desc->constr->num_check > 0 || desc->constr->has_generated_stored))
		return false;
	for (int i = 0; i < Natts_sse_events; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != types[i] ||
			strcmp(NameStr(att->attname), names[i]) != 0)
			return false;
	}
	/* the only column that may be NULL in the rows */
	if (TupleDescAttr(desc, Anum_sse_events_event - 1)->attnotnull)
		return false;
	return true;
}

/*
 * The direct insert of one transaction's events.  The relation, its indexes
 * (with their predicates compiled), the slots and the heap tuples are all
 * made before the publish lock is taken; under the lock only the id and
 * created_at of each tuple are filled in, in place, before the tuples go to
 * the heap and the indexes.
 */
typedef struct SseDirectInsert
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	int			n;
	HeapTuple  *tuples;
	Size	   *created_at_off; /* offset of created_at in each tuple's data */
	TupleTableSlot **slots;
	int64	   *ids;			/* the ids drawn, in row order */
} SseDirectInsert;

/* Offset of created_at from the start of a formed tuple's data. */
static Size
SseCreatedAtOffset(TupleDesc desc, HeapTuple tup)
{
	char	   *tp = (char *) tup->t_data + tup->t_data->t_hoff;
	bits8	   *bp = tup->t_data->t_bits;
	bool		hasnulls = HeapTupleHasNulls(tup);
	Size		off = 0;

	for (int i = 0; i < Anum_sse_events_created_at - 1; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (hasnulls && att_isnull(i, bp))
			continue;
		off = att_align_pointer(off, att->attalign, att->attlen, tp + off);
		off = att_addlength_pointer(off, att->attlen, tp + off);
	}
	return att_align_nominal(off,
							 TupleDescAttr(desc, Anum_sse_events_created_at - 1)->attalign);
}

/* Everything but the ids and the timestamp; the relation is open. */
static void
SseDirectPrepare(SseDirectInsert *d, Relation rel, List *events)
{
	TupleDesc	desc = RelationGetDescr(rel);
	ListCell   *lc;

	d->rel = rel;
	d->n = list_length(events);
	d->estate = CreateExecutorState();
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, rel, 1, NULL, 0);
	ExecOpenIndices(d->rri, false);

	/* What ExecInsertIndexTuples would otherwise do for the first row. */
	(void) GetPerTupleExprContext(d->estate);
	for (int i = 0; i < d->rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = d->rri->ri_IndexRelationInfo[i];

		if (ii->ii_Predicate != NIL && ii->ii_PredicateState == NULL)
			ii->ii_PredicateState = ExecPrepareQual(ii->ii_Predicate, d->estate);
		if (ii->ii_Expressions != NIL && ii->ii_ExpressionsState == NIL)
			ii->ii_ExpressionsState = ExecPrepareExprList(ii->ii_Expressions,
														  d->estate);
	}

	d->tuples = palloc(d->n * sizeof(HeapTuple));
	d->created_at_off = palloc(d->n * sizeof(Size));
	d->slots = palloc(d->n * sizeof(TupleTableSlot *));
	d->ids = palloc(d->n * sizeof(int64));
	foreach(lc, events)
	{
		SsePendingEvent *ev = lfirst(lc);
		int			i = foreach_current_index(lc);
		Datum		values[Natts_sse_events];
		bool		nulls[Natts_sse_events] = {false};
		HeapTuple	tup;

		values[Anum_sse_events_id - 1] = Int64GetDatum(0);	/* set under the lock */
		values[Anum_sse_events_channel - 1] = PointerGetDatum(ev->channel);
		values[Anum_sse_events_event - 1] = PointerGetDatum(ev->event);
		nulls[Anum_sse_events_event - 1] = ev->event == NULL;
		values[Anum_sse_events_data - 1] = PointerGetDatum(ev->data);
		values[Anum_sse_events_created_at - 1] = TimestampTzGetDatum(0);	/* likewise */
		tup = heap_form_tuple(desc, values, nulls);
		d->tuples[i] = tup;
		d->created_at_off[i] = SseCreatedAtOffset(desc, tup);
		d->slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	}
}

/*
 * Draw the ids, set them and the commit time in the prepared tuples, and
 * write the tuples and their index entries; returns the largest id.  Caller
 * holds the publish lock.
 */
static int64
SseDirectExecute(SseDirectInsert *d, Oid seqoid)
{
	TimestampTz now = GetCurrentTimestamp();
	CommandId	cid = GetCurrentCommandId(true);
	int64		id = 0;
	MemoryContext oldcxt;

	for (int i = 0; i < d->n; i++)
	{
		char	   *tp = (char *) d->tuples[i]->t_data + d->tuples[i]->t_data->t_hoff;

		id = nextval_internal(seqoid, false);
		d->ids[i] = id;
		/* id is the first attribute: at offset 0, and never null */
		memcpy(tp, &id, sizeof(int64));
		memcpy(tp + d->created_at_off[i], &now, sizeof(TimestampTz));
		ExecStoreHeapTuple(d->tuples[i], d->slots[i], false);
	}

	if (d->n == 1)
	{
		heap_insert(d->rel, d->tuples[0], cid, 0, NULL);
		d->slots[0]->tts_tid = d->tuples[0]->t_self;
	}
	else
		heap_multi_insert(d->rel, d->slots, d->n, cid, 0, NULL);

	oldcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(d->estate));
	for (int i = 0; i < d->n; i++)
	{
#if PG_VERSION_NUM >= 160000
		(void) ExecInsertIndexTuples(d->rri, d->slots[i], d->estate,
									 false, false, NULL, NIL, false);
#else
		(void) ExecInsertIndexTuples(d->rri, d->slots[i], d->estate,
									 false, false, NULL, NIL);
#endif
		ResetPerTupleExprContext(d->estate);
	}
	MemoryContextSwitchTo(oldcxt);
	return id;
}

static void
SseDirectFinish(SseDirectInsert *d)
{
	for (int i = 0; i < d->n; i++)
		ExecDropSingleTupleTableSlot(d->slots[i]);
	ExecCloseIndices(d->rri);
	FreeExecutorState(d->estate);
}

/*
 * SseOrderPending
 *		The transaction's rows in the order they get their ids.
 *
 * Subscription changes come first, so that an event of the same
 * transaction is judged by the new definition; then the events; then the
 * closes (close events, the markers of the subscriptions they closed, and
 * later changes of those subscriptions), so that a close follows every
 * other event of its transaction.  Each group keeps call order.  Returns
 * the list itself when it holds only events, and sets *nmarkers.
 */
static List *
SseOrderPending(List *pending, int *nmarkers)
{
	int			nsub = 0;
	int			nlate = 0;
	List	   *rows = NIL;
	ListCell   *lc;

	foreach(lc, pending)
	{
		SsePendingEvent *ev = lfirst(lc);

		nsub += ev->kind == SSE_PENDING_SUB;
		nlate += ev->kind == SSE_PENDING_SUB_LATE;
		nlate += ev->kind == SSE_PENDING_CLOSE;
	}
	*nmarkers = 0;
	if (nsub == 0 && nlate == 0)
		return pending;

	foreach(lc, pending)
	{
		SsePendingEvent *ev = lfirst(lc);

		if (ev->kind == SSE_PENDING_SUB)
			rows = lappend(rows, ev);
	}
	foreach(lc, pending)
	{
		SsePendingEvent *ev = lfirst(lc);

		if (ev->kind == SSE_PENDING_EVENT)
			rows = lappend(rows, ev);
	}
	foreach(lc, pending)
	{
		SsePendingEvent *ev = lfirst(lc);

		if (ev->kind == SSE_PENDING_CLOSE || ev->kind == SSE_PENDING_SUB_LATE)
			rows = lappend(rows, ev);
		if (ev->kind == SSE_PENDING_SUB || ev->kind == SSE_PENDING_SUB_LATE)
			(*nmarkers)++;
	}
	return rows;
}

/*
 * The versions of the changed subscriptions, written with their markers:
 * one row of sse_bridge.subscription_versions per marker, and each
 * subscription's def_id (its last marker) and, when the transaction created
 * it, start_id (its creation marker).  The definition is parsed back from
 * the marker's data.  Caller is connected to SPI.
 */
static void
SseVersionsPrepare(void)
{
	static Oid	types[4] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, BOOLARRAYOID};

	/* Lock order: every relation written under the publish lock, before it. */
	LockRelationOid(SseRelationOid(SSE_VERSIONS_TABLE, "table"), RowExclusiveLock);
	LockRelationOid(SseRelationOid(SSE_SUBSCRIPTIONS_TABLE, "table"), RowExclusiveLock);
	if (VersionsPlan == NULL)
		VersionsPlan = SseKeepPlan(
			"WITH u AS ("
			"  SELECT u.sid, u.id, u.def::pg_catalog.jsonb AS def, u.created"
			"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			"                    pg_catalog.unnest($3), pg_catalog.unnest($4))"
			"         AS u(sid, id, def, created)"
			"), v AS ("
			"  INSERT INTO sse_bridge.subscription_versions"
			"         (sid, from_id, channels, filter, state)"
			"  SELECT u.sid, u.id,"
			"         ARRAY(SELECT c.p FROM pg_catalog.jsonb_array_elements_text("
			"                 u.def OPERATOR(pg_catalog.->) 'channels')"
			"               WITH ORDINALITY AS c(p, o) ORDER BY c.o),"
			"         u.def OPERATOR(pg_catalog.->) 'filter',"
			"         u.def OPERATOR(pg_catalog.->>) 'state'"
			"    FROM u"
			") "
			"UPDATE sse_bridge.subscriptions s"
			"   SET def_id = g.id, start_id = COALESCE(g.start_id, s.start_id)"
			"  FROM (SELECT u.sid, pg_catalog.max(u.id) AS id,"
			"               pg_catalog.min(u.id) FILTER (WHERE u.created) AS start_id"
			"          FROM u GROUP BY u.sid) g"
			" WHERE s.sid OPERATOR(pg_catalog.=) g.sid",
			4, types);
}

/* Caller holds the publish lock, is connected to SPI, has a snapshot. */
static void
SseVersionsExecute(List *rows, const int64 *ids, int nmarkers)
{
	Datum	   *sids = palloc(nmarkers * sizeof(Datum));
	Datum	   *mids = palloc(nmarkers * sizeof(Datum));
	Datum	   *defs = palloc(nmarkers * sizeof(Datum));
	Datum	   *created = palloc(nmarkers * sizeof(Datum));
	Datum		values[4];
	int			n = 0;
	int			rc;
	ListCell   *lc;

	foreach(lc, rows)
	{
		SsePendingEvent *ev = lfirst(lc);

		if (ev->kind != SSE_PENDING_SUB && ev->kind != SSE_PENDING_SUB_LATE)
			continue;
		sids[n] = Int64GetDatum(ev->sid);
		mids[n] = Int64GetDatum(ids[foreach_current_index(lc)]);
		defs[n] = PointerGetDatum(ev->data);
		created[n] = BoolGetDatum(ev->created);
		n++;
	}
	Assert(n == nmarkers);
	values[0] = PointerGetDatum(construct_array(sids, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(mids, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(defs, n, TEXTOID, -1, false,
												TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(created, n, BOOLOID, 1, true,
												TYPALIGN_CHAR));
	rc = SPI_execute_snapshot(VersionsPlan, values, NULL,
							  GetActiveSnapshot(), InvalidSnapshot,
							  false, true, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "writing sse_bridge.subscription_versions failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * SseFlushPending
 *		Assign ids to the pending events and insert them.
 *
 * Runs in XACT_EVENT_PRE_COMMIT, at top level, after deferred triggers have
 * fired.  Takes the publish lock and keeps it until the transaction ends.
 * Everything that does not depend on the ids is done before the lock:
 * opening and locking the table, the sequence and the indexes, the
 * transaction id, the tuples.
 */
static void
SseFlushPending(void)
{
	List	   *events;
	SseDirectInsert direct;
	SseInsert	ins;
	bool		use_direct;
	int			nmarkers;
	Relation	rel;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			seqoid;
	int64		maxid;
	char		payload[32];

	events = SseOrderPending(PendingEvents, &nmarkers);
	PendingEvents = NIL;

	/*
	 * Write as the table's owner, in a restricted context, with the
	 * search_path pinned as in a function with SET search_path, so that
	 * nothing the owner attached to the table (index expressions, and in
	 * the fallback triggers and rules) resolves a name through the
	 * caller's search_path.  Restored below, or by AbortTransaction if
	 * anything fails.  Opening the table checks no privilege; its name and
	 * schema are fixed, and only its owner creates relations there.
	 */
	rel = table_open(SseRelationOid(SSE_EVENTS_TABLE, "table"), RowExclusiveLock);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PushActiveSnapshot(GetTransactionSnapshot());

	seqoid = SseRelationOid(SSE_EVENTS_SEQUENCE, "sequence");
	/* nextval takes this lock too; once held, it is a local lock table hit */
	LockRelationOid(seqoid, RowExclusiveLock);
	(void) GetTopTransactionId();

	use_direct = SseCanInsertDirectly(rel);
	if (!use_direct || nmarkers > 0)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
	}
	if (use_direct)
		SseDirectPrepare(&direct, rel, events);
	else
		SseInsertPrepare(&ins, events);
	if (nmarkers > 0)
		SseVersionsPrepare();

	/* From here to the end of the transaction, commits are serialized. */
	SseLockPublishing();

	if (use_direct)
	{
		maxid = SseDirectExecute(&direct, seqoid);
		if (nmarkers > 0)
			SseVersionsExecute(events, direct.ids, nmarkers);
		SseDirectFinish(&direct);
	}
	else
	{
		maxid = SseInsertExecute(&ins, seqoid);
		if (nmarkers > 0)
			SseVersionsExecute(events, ins.ids, nmarkers);
	}
	if (!use_direct || nmarkers > 0)
		SPI_finish();
	table_close(rel, NoLock);
	PopActiveSnapshot();
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (PendingEvents != NIL)
		elog(ERROR, "events were published while sse_bridge.events was being written");

	snprintf(payload, sizeof(payload), "e " INT64_FORMAT, maxid);
	Async_Notify(SSE_NOTIFY_CHANNEL, payload);
}

/* ----------------------------------------------------------------
 *		SQL entry points
 * ----------------------------------------------------------------
 */

/*
 * SseLockPublishing
 *		Take the publish lock (sse_bridge.h) until the end of the
 *		transaction.
 */
void
SseLockPublishing(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId,
						 (uint32) (SSE_PUBLISH_LOCK_KEY >> 32),
						 (uint32) SSE_PUBLISH_LOCK_KEY,
						 SSE_PUBLISH_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * sse_bridge.lock_publishing() RETURNS void
 *
 * Hold the publish lock until the end of the transaction: publishing
 * commits (and subscription changes) wait until then, and every id that
 * will ever commit below the current maximum is already visible.  EXECUTE
 * is the extension owner's alone unless granted.
 */
PG_FUNCTION_INFO_V1(sse_lock_publishing);

Datum
sse_lock_publishing(PG_FUNCTION_ARGS)
{
	SseLockPublishing();
	PG_RETURN_VOID();
}

/* Common part of both sse_publish variants; data is not NULL. */
static void
SsePublish(FunctionCallInfo fcinfo, const char *data, size_t data_len)
{
	text	   *channel;
	text	   *event = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel must not be null"),
				 errhint("Pass the name of the channel to publish to.")));
	channel = PG_GETARG_TEXT_PP(0);
	SseCheckChannel(VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel));

	if (!PG_ARGISNULL(2))
	{
		event = PG_GETARG_TEXT_PP(2);
		SseCheckEventName(VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event));
	}

	SseEnqueueEvent(VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel),
					event ? VARDATA_ANY(event) : NULL,
					event ? VARSIZE_ANY_EXHDR(event) : 0,
					data, data_len);
}

static void
CheckDataNotNull(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event data must not be null"),
				 errhint("Publish an empty string, or 'null'::jsonb, for an event without data.")));
}

/*
 * sse_publish(channel text, data text, event text DEFAULT NULL) RETURNS void
 *
 * The text is stored exactly as given, line breaks included.
 */
Datum
sse_publish_text(PG_FUNCTION_ARGS)
{
	text	   *data;

	CheckDataNotNull(fcinfo);
	data = PG_GETARG_TEXT_PP(1);
	SsePublish(fcinfo, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	PG_RETURN_VOID();
}

/*
 * sse_publish(channel text, data jsonb, event text DEFAULT NULL) RETURNS void
 *
 * The data is stored in jsonb's canonical text form.
 */
Datum
sse_publish_jsonb(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb;
	char	   *data;

	CheckDataNotNull(fcinfo);
	jb = PG_GETARG_JSONB_P(1);
	data = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	SsePublish(fcinfo, data, strlen(data));
	PG_RETURN_VOID();
}
