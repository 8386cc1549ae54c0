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
 * At XACT_EVENT_PRE_COMMIT the transaction takes the publish lock (an
 * exclusive transaction-scoped advisory lock, SSE_PUBLISH_LOCK_KEY), draws
 * one id per event from sse_bridge.events_id_seq and inserts the rows, then
 * queues one NOTIFY "e <maxid>".  The lock is released only after the
 * commit is visible in the proc array, so ids become visible in id order:
 * once a reader sees id N, every smaller id that will ever commit is
 * already visible.  Publishing commits are therefore serialized, for the
 * time it takes to insert their rows and to commit.
 *
 * The rows are inserted as the role that owns the SECURITY DEFINER entry
 * points (the extension owner), recorded when the first event is queued, so
 * publishers need EXECUTE on the functions and no table privileges.
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
 * Lock order: sse_bridge.events, its indexes and its sequence are locked
 * (ROW EXCLUSIVE) before the publish lock.  A session that takes the
 * publish lock by hand may read and delete rows, but must take any stronger
 * lock on those relations (TRUNCATE, LOCK TABLE, ALTER) before the publish
 * lock, or it can deadlock with a committing publisher.
 *
 * That direct write checks no privileges and runs nothing an INSERT would
 * run on the table.  Privileges: the table belongs to the extension owner,
 * who may write it anyway, and the only ways to queue events are the
 * SECURITY DEFINER entry points, which validate every event; nothing here is
 * reachable with other rows.  Everything else is checked on each commit
 * (SseCanInsertDirectly): sse_bridge.events is internal to the extension,
 * but if someone who may alter it adds triggers, rules, row-level security,
 * CHECK constraints, generated or other columns, or turns it into a
 * partition, the commit falls back to the prepared INSERT through SPI,
 * which honours all of them.  Indexes need no fallback: all of them are
 * maintained.
 *
 * A transaction with pending events cannot be prepared: its ids would have
 * to be assigned at COMMIT PREPARED, which runs no commit callbacks.
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
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sse_bridge.h"

/* One queued event; every pointer lives in PendingContext. */
typedef struct SsePendingEvent
{
	int			level;			/* nesting level of the queuing subxact */
	text	   *channel;
	text	   *event;			/* NULL: the SSE default, "message" */
	text	   *data;
} SsePendingEvent;

/* State of the current transaction; all reset at transaction end. */
static MemoryContext PendingContext = NULL;
static List *PendingEvents = NIL;
static Oid	PendingOwner = InvalidOid;

/* Saved across transactions; revalidated by the plan cache. */
static SPIPlanPtr InsertOnePlan = NULL;
static SPIPlanPtr InsertManyPlan = NULL;

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

/*
 * SseEnqueueEvent
 *		Queue an event for the current transaction.
 *
 * The caller has validated channel and event (the event may be NULL, and may
 * be a reserved name only for sse_close).  The payload's size, and that the
 * filters can evaluate it exactly, are checked here.
 * Must be called with the extension owner as current user, i.e. from a
 * SECURITY DEFINER entry point: that role writes the rows at commit.
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

	if (PendingContext == NULL)
	{
		PendingContext = AllocSetContextCreate(TopTransactionContext,
											   "sse_bridge pending events",
											   ALLOCSET_DEFAULT_SIZES);
		PendingOwner = GetUserId();
	}

	oldcxt = MemoryContextSwitchTo(PendingContext);
	ev = palloc(sizeof(SsePendingEvent));
	ev->level = GetCurrentTransactionNestLevel();
	ev->channel = SseCopyText(channel, channel_len);
	ev->event = event ? SseCopyText(event, event_len) : NULL;
	ev->data = SseCopyText(data, data_len);
	PendingEvents = lappend(PendingEvents, ev);
	MemoryContextSwitchTo(oldcxt);
}

static void
SseResetPending(void)
{
	/* The context itself goes away with TopTransactionContext. */
	PendingContext = NULL;
	PendingEvents = NIL;
	PendingOwner = InvalidOid;
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

/* The OID of a relation of the sse_bridge schema; error if missing. */
static Oid
SseRelationOid(const char *relname, const char *what)
{
	Oid			nsp = get_namespace_oid(SSE_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ?
		get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s %s.%s does not exist", what, SSE_SCHEMA, relname),
				 errhint("Create the sse_bridge extension in this database.")));
	return relid;
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
		ins->values[0] = Int64GetDatum(id);
	}
	else
	{
		Datum	   *idd = palloc(ins->n * sizeof(Datum));

		for (int i = 0; i < ins->n; i++)
		{
			id = nextval_internal(seqoid, false);
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
	List	   *events = PendingEvents;
	SseDirectInsert direct;
	SseInsert	ins;
	bool		use_direct;
	Relation	rel;
	LOCKTAG		tag;
	Oid			save_userid;
	int			save_sec_context;
	Oid			seqoid;
	int64		maxid;
	char		payload[32];

	PendingEvents = NIL;

	/* Restored by AbortTransaction if anything below fails. */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(PendingOwner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PushActiveSnapshot(GetTransactionSnapshot());

	rel = table_open(SseRelationOid(SSE_EVENTS_TABLE, "table"), RowExclusiveLock);
	seqoid = SseRelationOid(SSE_EVENTS_SEQUENCE, "sequence");
	/* nextval takes this lock too; once held, it is a local lock table hit */
	LockRelationOid(seqoid, RowExclusiveLock);
	(void) GetTopTransactionId();

	use_direct = SseCanInsertDirectly(rel);
	if (use_direct)
		SseDirectPrepare(&direct, rel, events);
	else
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		SseInsertPrepare(&ins, events);
	}

	/* From here to the end of the transaction, commits are serialized. */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId,
						 (uint32) (SSE_PUBLISH_LOCK_KEY >> 32),
						 (uint32) SSE_PUBLISH_LOCK_KEY,
						 1);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	if (use_direct)
	{
		maxid = SseDirectExecute(&direct, seqoid);
		SseDirectFinish(&direct);
	}
	else
	{
		maxid = SseInsertExecute(&ins, seqoid);
		SPI_finish();
	}
	table_close(rel, NoLock);
	PopActiveSnapshot();
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
