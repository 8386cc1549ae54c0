/*
 * sse_sqlmatch.c
 *		SQL access to the shared matchers: sse_match and sse_filter_match.
 *
 * The semantics live in sse_match.c and sse_filter.c, which the bridge
 * compiles too; this file only converts arguments and reports errors.
 *
 * The matchers allocate with malloc, outside PostgreSQL's memory contexts,
 * so every compiled filter and parsed payload is released before anything
 * here can raise an error.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

#include "sse_bridge.h"
#include "sse_json.h"

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
 * SseReportFilterStatus
 *		Raise the error for a filter that sse_filter_compile refused.
 */
static void
SseReportFilterStatus(const char *what, sse_json_status st)
{
	switch (st)
	{
		case SSE_JSON_OK:
			return;
		case SSE_JSON_NOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
			break;
		case SSE_JSON_TOO_LARGE:
		case SSE_JSON_TOO_DEEP:
		case SSE_JSON_TOO_MANY_NODES:
		case SSE_JSON_ARRAY_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s %s", what, sse_json_status_message(st)),
					 errdetail("A filter is at most %d bytes of text (as jsonb prints it), nests at most %d levels deep, holds at most %d values and at most %d elements per array.",
							   SSE_FILTER_SIZE_MAX, SSE_FILTER_DEPTH_MAX,
							   SSE_FILTER_NODES_MAX, SSE_FILTER_ARRAY_MAX),
					 errhint("Filter on fewer keys, or give the events a key that sums up what the filter tests.")));
			break;
		case SSE_JSON_ARRAY_CONTAINER:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s %s", what, sse_json_status_message(st)),
					 errdetail("Arrays in a filter may hold only strings, numbers, true, false and null."),
					 errhint("Match the nested values through object keys, or list the scalar values the array must contain.")));
			break;
		case SSE_JSON_NUMBER:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("%s %s", what, sse_json_status_message(st)),
					 errhint("Write such numbers as strings in both the filter and the event data.")));
			break;
		case SSE_JSON_NUL:
			ereport(ERROR,
					(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
					 errmsg("%s %s", what, sse_json_status_message(st))));
			break;
		case SSE_JSON_NOT_OBJECT:
		case SSE_JSON_SYNTAX:
			/* callers check for an object first; jsonb prints valid JSON */
			elog(ERROR, "%s %s", what, sse_json_status_message(st));
			break;
	}
}

/*
 * SseCheckFilterText
 *		Refuse, with an error, a filter (jsonb's text of a JSON object) that
 *		the matchers could not evaluate exactly.
 */
void
SseCheckFilterText(const char *what, const char *json, size_t len)
{
	sse_filter *f;
	sse_json_status st = sse_filter_compile(json, len, &f, NULL);

	sse_filter_free(f);
	SseReportFilterStatus(what, st);
}

static void
SseReportPayloadStatus(sse_json_status st)
{
	switch (st)
	{
		case SSE_JSON_OK:
			return;
		case SSE_JSON_NOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
			break;
		case SSE_JSON_TOO_DEEP:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("event data cannot be matched against filters"),
					 errdetail("Its objects and arrays nest more than %d levels deep.",
							   SSE_DATA_DEPTH_MAX),
					 errhint("Data that starts with \"{\" is read as JSON by subscription filters; flatten it, or publish it as a JSON string.")));
			break;
		case SSE_JSON_NUMBER:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("event data cannot be matched against filters"),
					 errdetail("A number is longer than %d characters or has an exponent beyond %d.",
							   SSE_NUMBER_LEN_MAX, SSE_NUMBER_EXP_MAX),
					 errhint("Data that starts with \"{\" is read as JSON by subscription filters; write such numbers as strings.")));
			break;
		case SSE_JSON_NUL:
			ereport(ERROR,
					(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
					 errmsg("event data cannot be matched against filters"),
					 errdetail("A string contains \\u0000, which jsonb cannot store."),
					 errhint("Data that starts with \"{\" is read as JSON by subscription filters; leave out the NUL characters.")));
			break;
		default:
			elog(ERROR, "unexpected payload status %d", (int) st);
	}
}

/*
 * SseCheckPayload
 *		Refuse event data that the matchers could not evaluate exactly, so
 *		that no event is judged differently from data::jsonb @> filter.
 *		Only data whose first non-blank byte is "{" is scanned (once, no
 *		allocation).
 */
void
SseCheckPayload(const char *data, size_t len)
{
	SseReportPayloadStatus(sse_payload_check(data, len));
}

/*
 * sse_filter_match(filter jsonb, data text) RETURNS boolean
 *
 * Whether an event with this payload passes a subscription filter, exactly
 * as the bridge decides it: data::jsonb @> filter, where data that is not a
 * JSON object matches only the empty filter.  A filter or payload beyond the
 * limits raises the error subscribing or publishing would raise.
 */
Datum
sse_filter_match_sql(PG_FUNCTION_ARGS)
{
	Jsonb	   *filter = PG_GETARG_JSONB_P(0);
	text	   *data = PG_GETARG_TEXT_PP(1);
	char	   *filter_text;
	sse_filter *f;
	sse_doc    *doc;
	sse_json_status st;
	bool		result;

	if (!JB_ROOT_IS_OBJECT(filter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter must be a JSON object"),
				 errhint("Use '{}' to match every event, or an object such as '{\"user\": 42}' that event data must contain.")));

	filter_text = JsonbToCString(NULL, &filter->root, VARSIZE(filter));
	SseReportFilterStatus("filter", sse_filter_compile(filter_text, strlen(filter_text), &f, NULL));

	st = sse_doc_parse(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), &doc);
	if (st != SSE_JSON_OK)
	{
		sse_filter_free(f);
		SseReportPayloadStatus(st);
	}

	/* No PostgreSQL call between here and the frees: nothing can throw. */
	result = sse_filter_eval(f, doc);
	sse_doc_free(doc);
	sse_filter_free(f);

	PG_RETURN_BOOL(result);
}
