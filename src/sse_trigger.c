/*
 * sse_trigger.c
 *		sse_notify_trigger(channel_template [, event]): publish table rows.
 *
 * An AFTER ... FOR EACH ROW trigger function.  For every row it publishes
 * the row (NEW, or OLD for DELETE) as a JSON object, the way row_to_json
 * renders it, on the channel obtained by replacing each "{column}" in the
 * template with the text form of that column of the row.  The event name is
 * the second trigger argument, or the lower-cased operation.
 *
 * Events go through the same pending list as sse_publish (sse_publish.c):
 * they get their ids when the transaction commits and disappear with a
 * rolled-back savepoint.  The function is SECURITY DEFINER, so the rows are
 * written as the extension owner; EXECUTE on it (checked by CREATE TRIGGER)
 * is what allows a role to publish from its tables.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "sse_bridge.h"

PG_FUNCTION_INFO_V1(sse_notify_trigger);

/*
 * CheckTriggerUsage
 *		The function must run as an AFTER row trigger on INSERT, UPDATE or
 *		DELETE, with one or two arguments.
 */
static void
CheckTriggerUsage(FunctionCallInfo fcinfo)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sse_notify_trigger must be called as a trigger"),
				 errhint("Use it in CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('channel.{column}').")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sse_notify_trigger must be fired AFTER ... FOR EACH ROW"),
				 errhint("Recreate the trigger as AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW.")));
	if (trigdata->tg_trigger->tgnargs < 1 || trigdata->tg_trigger->tgnargs > 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sse_notify_trigger takes a channel template and an optional event name"),
				 errhint("Pass the arguments in CREATE TRIGGER, for example sse_notify_trigger('jobs.{id}') or sse_notify_trigger('jobs', 'changed').")));
}

/*
 * Append the text form of column "name" of the row to buf.  The column must
 * exist and the value must not be NULL.
 */
static void
AppendColumnValue(StringInfo buf, const char *template, const char *name,
				  HeapTuple tuple, TupleDesc tupdesc, Relation rel)
{
	int			attnum = SPI_fnumber(tupdesc, name);
	char	   *value;

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of channel template \"%s\" does not exist in table \"%s\"",
						name, template, RelationGetRelationName(rel)),
				 errhint("Placeholders name columns of the table exactly, for example {id}.")));
	value = SPI_getvalue(tuple, tupdesc, attnum);
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"%s\" used in channel template \"%s\" is null",
						name, template),
				 errhint("Placeholders must name columns that are never null, or the channel cannot be built.")));
	appendStringInfoString(buf, value);
}

/*
 * ExpandChannelTemplate
 *		Replace every {column} in template with the row's value and check
 *		that the result is a valid channel.
 */
static char *
ExpandChannelTemplate(const char *template, HeapTuple tuple,
					  TupleDesc tupdesc, Relation rel)
{
	StringInfoData buf;
	const char *p = template;

	initStringInfo(&buf);
	while (*p)
	{
		const char *close;
		char	   *name;

		if (*p != '{')
		{
			appendStringInfoChar(&buf, *p++);
			continue;
		}
		close = strchr(p + 1, '}');
		if (close == NULL || close == p + 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid channel template \"%s\"", template),
					 errdetail("A \"{\" must be followed by a column name and \"}\"."),
					 errhint("Write placeholders as {column}, for example 'jobs.{id}'.")));
		name = pnstrdup(p + 1, close - p - 1);
		AppendColumnValue(&buf, template, name, tuple, tupdesc, rel);
		p = close + 1;
	}

	if (sse_channel_check(buf.data, buf.len) != SSE_NAME_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel template \"%s\" produced invalid channel name \"%s\"",
						template, SseDisplayName(buf.data, buf.len)),
				 errdetail("The channel name %s.",
						   sse_name_status_message(sse_channel_check(buf.data, buf.len))),
				 errhint("Channel names are dot-separated segments of letters, digits, \"_\" and \"-\"; use placeholders whose values fit that rule, such as ids.")));
	return buf.data;
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
	char	   *channel;
	text	   *json;

	CheckTriggerUsage(fcinfo);
	trigger = trigdata->tg_trigger;
	tupdesc = RelationGetDescr(trigdata->tg_relation);

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
	{
		event = trigger->tgargs[1];
		SseCheckEventName(event, strlen(event));
	}

	channel = ExpandChannelTemplate(trigger->tgargs[0], tuple, tupdesc,
									trigdata->tg_relation);
	json = DatumGetTextPP(DirectFunctionCall1(row_to_json,
											  heap_copy_tuple_as_datum(tuple, tupdesc)));

	SseEnqueueEvent(channel, strlen(channel), event, strlen(event),
					VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));

	return PointerGetDatum(NULL);
}
