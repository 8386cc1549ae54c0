/*
 * sse_sqlmatch.c
 *		SQL access to the shared matchers: sse_match and sse_filter_match.
 *
 * The semantics live in sse_match.c and sse_filter.c, which the bridge
 * compiles too; this file only converts arguments and reports errors.
 *
 * jansson allocates with malloc, outside PostgreSQL's memory contexts, so
 * every jansson value is released before anything here can raise an error.
 * This file must not include utils/builtins.h: its fmgr prototypes
 * (json_object, json_typeof) clash with jansson's names.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

#include "sse_bridge.h"
#include "sse_filter.h"

PG_FUNCTION_INFO_V1(sse_match_sql);
PG_FUNCTION_INFO_V1(sse_filter_match_sql);

static void
CheckMatchPattern(const char *s, size_t len)
{
	sse_name_status st = sse_pattern_check(s, len);

	if (st != SSE_NAME_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid channel pattern \"%s\"", SseDisplayName(s, len)),
				 errdetail("The pattern %s.", sse_name_status_message(st)),
				 errhint("A pattern is dot-separated segments of letters, digits, \"_\" and \"-\"; a whole segment may be \"*\" (exactly one segment) or \"#\" (zero or more segments).")));
}

/*
 * sse_match(pattern text, channel text) RETURNS boolean
 *
 * Whether a subscription with this pattern receives events of the channel.
 * Both arguments must be valid.
 */
Datum
sse_match_sql(PG_FUNCTION_ARGS)
{
	text	   *pattern = PG_GETARG_TEXT_PP(0);
	text	   *channel = PG_GETARG_TEXT_PP(1);

	CheckMatchPattern(VARDATA_ANY(pattern), VARSIZE_ANY_EXHDR(pattern));
	SseCheckChannel(VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel));

	PG_RETURN_BOOL(sse_pattern_match(VARDATA_ANY(pattern),
									 VARSIZE_ANY_EXHDR(pattern),
									 VARDATA_ANY(channel),
									 VARSIZE_ANY_EXHDR(channel)));
}

/*
 * sse_filter_match(filter jsonb, data text) RETURNS boolean
 *
 * Whether an event with this payload passes a subscription filter, exactly
 * as the bridge decides it: data::jsonb @> filter, where data that is not a
 * JSON object matches only the empty filter.
 */
Datum
sse_filter_match_sql(PG_FUNCTION_ARGS)
{
	Jsonb	   *filter = PG_GETARG_JSONB_P(0);
	text	   *data = PG_GETARG_TEXT_PP(1);
	char	   *filter_text;
	json_t	   *filter_json;
	json_t	   *data_json;
	bool		result;

	if (!JB_ROOT_IS_OBJECT(filter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter must be a JSON object"),
				 errhint("Use '{}' to match every event, or an object such as '{\"user\": 42}' that event data must contain.")));

	filter_text = JsonbToCString(NULL, &filter->root, VARSIZE(filter));
	filter_json = sse_json_parse(filter_text, strlen(filter_text));
	if (filter_json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("filter cannot be represented for matching"),
				 errdetail("A number in the filter is outside the range of a double precision value."),
				 errhint("Write such numbers as strings in both the filter and the event data.")));

	/* No PostgreSQL call between here and the decrefs: nothing can throw. */
	data_json = sse_json_parse(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	result = sse_filter_match(filter_json, data_json);
	json_decref(data_json);
	json_decref(filter_json);

	PG_RETURN_BOOL(result);
}
