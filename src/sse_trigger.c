/*
 * sse_trigger.c
 *		sse_notify_trigger(channel_template [, event]): publish table rows;
 *		sse_channel_segment(value): the segment a value becomes;
 *		the event trigger that checks templates when triggers are created.
 *
 * sse_notify_trigger is an AFTER ... FOR EACH ROW trigger function.  For
 * every row it publishes the row (NEW, or OLD for DELETE) as a JSON object,
 * the way row_to_json renders it, on the channel obtained by replacing each
 * "{column}" in the template with that column's value, escaped into exactly
 * one channel segment (SseAppendSegment).  The event name is the second
 * trigger argument, or the lower-cased operation.
 *
 * Templates: segments separated by dots; a segment is letters, digits, "_"
 * and "-", and may contain one placeholder, "{column}", with literal text
 * around it.  The column is named exactly (case and all) and must be a
 * user column of the table.  A template must not be able to make a channel
 * longer than SSE_CHANNEL_MAX: the literal text plus, for each placeholder,
 * the longest segment its column's type can produce (SseTypeSegmentMax).
 * The same check runs when the trigger is created (the event trigger at
 * the end of this file), whenever the table is altered, and on every row.
 *
 * Segments: a value that is 1 to SSE_SEGMENT_MAX characters of [A-Za-z0-9-_]
 * and does not start with "_" is used unchanged.  NULL is "__null".  Any
 * other value is "_" followed by the value with every byte outside
 * [A-Za-z0-9-] written as "_" and two lower-case hex digits (so the empty
 * string is "_"); when that is longer than SSE_SEGMENT_MAX, the segment is
 * "__h" and the first 40 hex digits of the SHA-256 of the value.  Plain
 * forms never start with "_", escaped forms never have "_" followed by a
 * character other than a lower-case hex digit, so "__null" and "__h..."
 * are never escapes: the mapping is one to one up to the hash.
 *
 * Security: the function is SECURITY INVOKER.  Everything that touches the
 * row (output functions, casts to json called by row_to_json, whatever
 * those call) runs as the role whose statement fired the trigger.  Queuing
 * the event needs no rights: the rows are written at commit by the
 * extension (sse_publish.c).  EXECUTE on the function, checked by CREATE
 * TRIGGER, is what allows a role to publish from its tables.
 *
 * Events go through the same pending list as sse_publish (sse_publish.c):
 * they get their ids when the transaction commits and disappear with a
 * rolled-back savepoint.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "sse_bridge.h"

PG_FUNCTION_INFO_V1(sse_notify_trigger);
PG_FUNCTION_INFO_V1(sse_channel_segment);
PG_FUNCTION_INFO_V1(sse_check_notify_triggers);

/* The longest segment a placeholder can produce, and the hash form. */
#define SSE_SEGMENT_MAX			64
#define SSE_SEGMENT_NULL		"__null"
#define SSE_SEGMENT_HASH		"__h"
#define SSE_SEGMENT_HASH_HEX	40

/* One piece of a parsed template: literal text, or a column. */
typedef struct SseTemplatePart
{
	const char *text;			/* literal text (attnum == 0) */
	int			len;
	AttrNumber	attnum;			/* > 0: the column */
} SseTemplatePart;

static bool
IsSegmentChar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* ----------------------------------------------------------------
 *		Segments
 * ----------------------------------------------------------------
 */

/*
 * SseAppendSegment
 *		Append the segment that encodes a value (see the file header).
 */
static void
SseAppendSegment(StringInfo buf, const char *val, size_t len, bool isnull)
{
	static const char hex[] = "0123456789abcdef";
	bool		plain;
	size_t		escaped_len;

	if (isnull)
	{
		appendStringInfoString(buf, SSE_SEGMENT_NULL);
		return;
	}

	plain = len > 0 && len <= SSE_SEGMENT_MAX && val[0] != '_';
	escaped_len = 1;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) val[i];

		if (IsSegmentChar(c) && c != '_')
			escaped_len += 1;
		else
		{
			escaped_len += 3;
			if (c != '_')
				plain = false;
		}
	}

	if (plain)
		appendBinaryStringInfo(buf, val, (int) len);
	else if (escaped_len <= SSE_SEGMENT_MAX)
	{
		appendStringInfoChar(buf, '_');
		for (size_t i = 0; i < len; i++)
		{
			unsigned char c = (unsigned char) val[i];

			if (IsSegmentChar(c) && c != '_')
				appendStringInfoChar(buf, (char) c);
			else
			{
				appendStringInfoChar(buf, '_');
				appendStringInfoChar(buf, hex[c >> 4]);
				appendStringInfoChar(buf, hex[c & 15]);
			}
		}
	}
	else
	{
		uint8		d[PG_SHA256_DIGEST_LENGTH];
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

		if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) val, len) < 0 ||
#if PG_VERSION_NUM >= 150000
			pg_cryptohash_final(ctx, d, sizeof(d)) < 0)
#else
			pg_cryptohash_final(ctx, d) < 0)
#endif
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute the SHA-256 of a channel segment")));
		pg_cryptohash_free(ctx);
		appendStringInfoString(buf, SSE_SEGMENT_HASH);
		for (int i = 0; i < SSE_SEGMENT_HASH_HEX / 2; i++)
		{
			appendStringInfoChar(buf, hex[d[i] >> 4]);
			appendStringInfoChar(buf, hex[d[i] & 15]);
		}
	}
}

/*
 * The longest segment a value of the type can produce.  Types whose text
 * form is short and made of segment characters only are counted exactly;
 * everything else may take SSE_SEGMENT_MAX.
 */
static int
SseTypeSegmentMax(Oid typid)
{
	switch (getBaseType(typid))
	{
		case BOOLOID:
			return 1;			/* t, f */
		case INT2OID:
			return 6;			/* -32768 */
		case INT4OID:
			return 11;			/* -2147483648 */
		case INT8OID:
			return 20;			/* -9223372036854775808 */
		case OIDOID:
			return 10;			/* 4294967295 */
		case UUIDOID:
			return 36;
		default:
			return SSE_SEGMENT_MAX;
	}
}

/*
 * sse_channel_segment(value anycompatible) RETURNS text
 *
 * The segment that sse_notify_trigger makes of a column with this value:
 * the value's type's output function, then SseAppendSegment.  Runs as the
 * caller; STABLE, because some output functions depend on settings.
 */
Datum
sse_channel_segment(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (PG_ARGISNULL(0))
		SseAppendSegment(&buf, NULL, 0, true);
	else
	{
		Oid			typid = get_fn_expr_argtype(fcinfo->flinfo, 0);
		Oid			outfunc;
		bool		isvarlena;
		char	   *s;

		if (!OidIsValid(typid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("could not determine the type of the value")));
		getTypeOutputInfo(typid, &outfunc, &isvarlena);
		s = OidOutputFunctionCall(outfunc, PG_GETARG_DATUM(0));
		SseAppendSegment(&buf, s, strlen(s), false);
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/* ----------------------------------------------------------------
 *		Templates
 * ----------------------------------------------------------------
 */

static void
ReportBadTemplate(const char *template, const char *relname,
				  const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid channel template \"%s\" for table \"%s\"",
					SseDisplayName(template, strlen(template)), relname),
			 errdetail("%s", detail),
			 errhint("A template is dot-separated segments of letters, digits, \"_\" and \"-\"; a segment may hold one placeholder {column}, for example 'jobs.{id}' or 'user-{id}.jobs'.")));
}

/* The attribute number of a user column named exactly name, or 0. */
static AttrNumber
FindColumn(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return 0;
}

/*
 * SseParseTemplate
 *		Check a template against a table and split it into parts.
 *
 * Raises an error unless every channel the template can produce, whatever
 * the row, is valid (see the file header).
 */
static List *
SseParseTemplate(const char *template, TupleDesc desc, const char *relname)
{
	List	   *parts = NIL;
	const char *p = template;
	const char *lit = p;
	bool		seg_nonempty = false;
	bool		seg_placeholder = false;
	int64		max_len = 0;

	if (*p == '\0')
		ReportBadTemplate(template, relname, "The template is empty.");

	while (true)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '{' || c == '\0')
		{
			if (p > lit)
			{
				SseTemplatePart *part = palloc0(sizeof(SseTemplatePart));

				part->text = lit;
				part->len = (int) (p - lit);
				parts = lappend(parts, part);
			}
			if (c == '\0')
				break;
		}

		if (c == '{')
		{
			const char *close = strchr(p + 1, '}');
			SseTemplatePart *part;
			char	   *name;
			AttrNumber	attnum;

			if (close == NULL || close == p + 1)
				ReportBadTemplate(template, relname,
								  "A \"{\" must be followed by a column name and \"}\".");
			if (seg_placeholder)
				ReportBadTemplate(template, relname,
								  "A segment holds at most one placeholder.");
			name = pnstrdup(p + 1, close - p - 1);
			attnum = FindColumn(desc, name);
			if (attnum <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of channel template \"%s\" does not exist in table \"%s\"",
								SseDisplayName(name, strlen(name)),
								SseDisplayName(template, strlen(template)),
								relname),
						 errhint("Placeholders name columns of the table exactly, for example {id}.")));
			part = palloc0(sizeof(SseTemplatePart));
			part->attnum = attnum;
			parts = lappend(parts, part);
			max_len += SseTypeSegmentMax(TupleDescAttr(desc, attnum - 1)->atttypid);
			seg_nonempty = seg_placeholder = true;
			p = close + 1;
			lit = p;
			continue;
		}

		if (c == '.')
		{
			if (!seg_nonempty)
				ReportBadTemplate(template, relname,
								  "The template has an empty segment.");
			seg_nonempty = seg_placeholder = false;
		}
		else if (c == '}')
			ReportBadTemplate(template, relname,
							  "A \"}\" must close a placeholder.");
		else if (!IsSegmentChar(c))
			ReportBadTemplate(template, relname,
							  psprintf("The character \"%s\" is not allowed outside placeholders.",
									   SseDisplayName(p, pg_mblen(p))));
		else
			seg_nonempty = true;
		max_len++;
		p++;
	}

	if (!seg_nonempty)
		ReportBadTemplate(template, relname,
						  "The template has an empty segment.");
	if (max_len > SSE_CHANNEL_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("channel template \"%s\" for table \"%s\" can produce channel names longer than %d bytes",
						SseDisplayName(template, strlen(template)), relname,
						SSE_CHANNEL_MAX),
				 errdetail("Its literal text and placeholders can take up to " INT64_FORMAT " bytes; a placeholder takes up to %d bytes, or less for integer, boolean and uuid columns.",
						   max_len, SSE_SEGMENT_MAX),
				 errhint("Use fewer placeholders or shorter literal text.")));
	return parts;
}

/* ----------------------------------------------------------------
 *		The trigger
 * ----------------------------------------------------------------
 */

static void
ReportUsage(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("%s", msg),
			 errhint("%s", hint)));
}

/*
 * SseCheckTrigger
 *		Check timing, level, arguments and template of a trigger that runs
 *		sse_notify_trigger; returns the parsed template.
 */
static List *
SseCheckTrigger(int16 tgtype, int nargs, char **args, Relation rel)
{
	if (!TRIGGER_FOR_ROW(tgtype) || TRIGGER_FOR_BEFORE(tgtype) ||
		TRIGGER_FOR_INSTEAD(tgtype))
		ReportUsage("sse_notify_trigger must be fired AFTER ... FOR EACH ROW",
					"Create the trigger as AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW.");
	if (nargs < 1 || nargs > 2)
		ReportUsage("sse_notify_trigger takes a channel template and an optional event name",
					"Pass the arguments in CREATE TRIGGER, for example sse_notify_trigger('jobs.{id}') or sse_notify_trigger('jobs', 'changed').");
	if (nargs == 2)
		SseCheckEventName(args[1], strlen(args[1]));
	return SseParseTemplate(args[0], RelationGetDescr(rel),
							RelationGetRelationName(rel));
}

/*
 * sse_notify_trigger() RETURNS trigger
 */
Datum
sse_notify_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	const char *event;
	List	   *parts;
	ListCell   *lc;
	StringInfoData channel;
	text	   *json;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ReportUsage("sse_notify_trigger must be called as a trigger",
					"Use it in CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('channel.{column}').");
	trigger = trigdata->tg_trigger;
	tupdesc = RelationGetDescr(trigdata->tg_relation);

	/* The event trigger checked all this, unless it was bypassed. */
	parts = SseCheckTrigger(trigger->tgtype, trigger->tgnargs, trigger->tgargs,
							trigdata->tg_relation);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		tuple = trigdata->tg_trigtuple;
		event = "insert";
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		tuple = trigdata->tg_newtuple;
		event = "update";
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		tuple = trigdata->tg_trigtuple;
		event = "delete";
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sse_notify_trigger fires only on INSERT, UPDATE or DELETE")));
	if (trigger->tgnargs == 2)
		event = trigger->tgargs[1];

	initStringInfo(&channel);
	foreach(lc, parts)
	{
		SseTemplatePart *part = lfirst(lc);
		Datum		value;
		bool		isnull;
		Oid			outfunc;
		bool		isvarlena;
		char	   *s;

		if (part->attnum == 0)
		{
			appendBinaryStringInfo(&channel, part->text, part->len);
			continue;
		}
		value = heap_getattr(tuple, part->attnum, tupdesc, &isnull);
		if (isnull)
		{
			SseAppendSegment(&channel, NULL, 0, true);
			continue;
		}
		getTypeOutputInfo(TupleDescAttr(tupdesc, part->attnum - 1)->atttypid,
						  &outfunc, &isvarlena);
		s = OidOutputFunctionCall(outfunc, value);
		SseAppendSegment(&channel, s, strlen(s), false);
	}
	/* Cannot fail for a template that passed SseParseTemplate. */
	SseCheckChannel(channel.data, channel.len);

	json = DatumGetTextPP(DirectFunctionCall1(row_to_json,
											  heap_copy_tuple_as_datum(tuple, tupdesc)));

	SseEnqueueEvent(channel.data, channel.len, event, strlen(event),
					VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));

	return PointerGetDatum(NULL);
}

/* ----------------------------------------------------------------
 *		Checking templates at CREATE TRIGGER and ALTER TABLE
 * ----------------------------------------------------------------
 */

/*
 * Whether a function is sse_notify_trigger: a C function with that symbol
 * that resolves to this very function.  Only superusers create C functions.
 */
static bool
IsNotifyTriggerFunction(Oid fnoid)
{
	HeapTuple	tp;
	Form_pg_proc proc;
	bool		candidate = false;

	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));
	if (!HeapTupleIsValid(tp))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tp);
	if (proc->prolang == ClanguageId)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tp, Anum_pg_proc_prosrc,
										  &isnull);

		candidate = !isnull &&
			strcmp(TextDatumGetCString(src), "sse_notify_trigger") == 0;
	}
	ReleaseSysCache(tp);
	if (candidate)
	{
		FmgrInfo	flinfo;

		fmgr_info(fnoid, &flinfo);
		return flinfo.fn_addr == sse_notify_trigger;
	}
	return false;
}

/* Names the trigger being checked in error messages. */
static void
CheckTriggerContext(void *arg)
{
	const char *const *names = arg;

	errcontext("checking trigger \"%s\" on table \"%s\"", names[0], names[1]);
}

/*
 * Check the sse_notify_trigger triggers of a relation: the one trigger
 * tgoid, or all of them when tgoid is invalid.
 */
static void
CheckRelationTriggers(Oid relid, Oid tgoid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);

	if (rel == NULL)
		return;
	if (rel->trigdesc != NULL)
	{
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *tg = &rel->trigdesc->triggers[i];
			ErrorContextCallback errcb;
			const char *names[2];

			if (OidIsValid(tgoid) && tg->tgoid != tgoid)
				continue;
			if (!IsNotifyTriggerFunction(tg->tgfoid))
				continue;
			names[0] = tg->tgname;
			names[1] = RelationGetRelationName(rel);
			errcb.callback = CheckTriggerContext;
			errcb.arg = names;
			errcb.previous = error_context_stack;
			error_context_stack = &errcb;
			(void) SseCheckTrigger(tg->tgtype, tg->tgnargs, tg->tgargs, rel);
			error_context_stack = errcb.previous;
		}
	}
	relation_close(rel, AccessShareLock);
}

/* The table a trigger belongs to, or InvalidOid. */
static Oid
TriggerRelid(Oid tgoid)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return relid;
}

/*
 * sse_bridge.check_notify_triggers() RETURNS event_trigger
 *
 * At ddl_command_end of CREATE TRIGGER, CREATE SCHEMA (which may create
 * triggers) and ALTER TABLE: check the templates of the sse_notify_trigger
 * triggers the command created, or of the tables it altered, and fail the
 * command if one is invalid.  Runs as
 * the role that issued the command, with a pinned search_path; reads only
 * catalogs and calls no function a user can define.
 */
Datum
sse_check_notify_triggers(PG_FUNCTION_ARGS)
{
	Oid		   *classids;
	Oid		   *objids;
	uint64		n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sse_bridge.check_notify_triggers must be called as an event trigger")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT classid, objid FROM pg_catalog.pg_event_trigger_ddl_commands()",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading pg_event_trigger_ddl_commands() failed");
	n = SPI_processed;
	classids = SPI_palloc(Max(n, 1) * sizeof(Oid));
	objids = SPI_palloc(Max(n, 1) * sizeof(Oid));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull1,
					isnull2;

		classids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1,
													 &isnull1));
		objids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 2,
												   &isnull2));
		if (isnull1 || isnull2)
			classids[i] = InvalidOid;
	}
	SPI_finish();

	for (uint64 i = 0; i < n; i++)
	{
		if (classids[i] == TriggerRelationId)
		{
			Oid			relid = TriggerRelid(objids[i]);

			if (OidIsValid(relid))
				CheckRelationTriggers(relid, objids[i]);
		}
		else if (classids[i] == RelationRelationId)
			CheckRelationTriggers(objids[i], InvalidOid);
	}
	PG_RETURN_VOID();
}
