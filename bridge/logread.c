/*
 * logread.c - every SQL statement of the bridge and the decoders of their
 * answers.
 *
 * The live link LISTENs and prepares "fetch" and "head"; the work link looks
 * up the extension's schema (quoted with PQescapeIdentifier, for the
 * touch/expire calls) and prepares "fetch", "open_adhoc" and "open_sub".  Both links read the log with the same "fetch" statement
 * and both kinds of reader decode its rows with logread_event, so live
 * delivery and replay cannot disagree about an event.
 *
 * Invariants: values are always bound parameters (arrays as quoted
 * PostgreSQL array literals); the column order of each statement is
 * written once, next to the statement, and read only by the decoder below.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logread.h"

/* Columns of "fetch": one row per event, or one row of NULLs after the meta. */
enum {FETCH_PRUNED, FETCH_ID, FETCH_CHANNEL, FETCH_EVENT, FETCH_DATA, FETCH_CREATED_US};

static const char logread_fetch_sql[] =
	"SELECT m.pruned_through, e.id, e.channel, e.event, e.data, "
	"(extract(epoch FROM e.created_at) * 1000000)::bigint AS created_us "
	"FROM sse_bridge.meta m LEFT JOIN LATERAL ("
	"SELECT * FROM sse_bridge.events WHERE id > $1 ORDER BY id LIMIT $2) e ON true";

static const char logread_head_sql[] =
	"SELECT greatest((SELECT max(id) FROM sse_bridge.events), m.pruned_through) "
	"FROM sse_bridge.meta m";

#define LOGREAD_HEAD_PRUNED_SQL \
	"SELECT greatest((SELECT pg_catalog.max(id) FROM sse_bridge.events), m.pruned_through) AS head, " \
	"m.pruned_through FROM sse_bridge.meta m"

/* Columns of open_adhoc (the first three) and open_sub (all). */
enum {OPEN_HEAD, OPEN_PRUNED, OPEN_CLOSE_ID, OPEN_SID, OPEN_START_ID, OPEN_CLOSED,
	OPEN_EXPIRED, OPEN_DEF_POS, OPEN_DEF, OPEN_NCOLS};

static const char logread_open_adhoc_sql[] =
	"SELECT h.head, h.pruned_through, "
	"(SELECT min(id) FROM sse_bridge.events WHERE event = 'close' "
	" AND channel = ANY($1::text[]) AND id > 0) AS close_id "
	"FROM (" LOGREAD_HEAD_PRUNED_SQL ") h";

/*
 * A subscription by uuid ($1) for a reader resuming after $2 (-1: none),
 * with its definition valid at the position the stream starts from
 * (def_pos: the resume point, not before the creation marker, clamped to
 * the head, then moved up to the prune point; the same as stream_decide
 * followed by a reset), in the form of a marker's data.  Operators and
 * functions are qualified with pg_catalog, so the session's search_path
 * cannot change what this statement does.
 */
static const char logread_open_sub_sql[] =
	"SELECT h.head, h.pruned_through, "
	"(SELECT pg_catalog.min(id) FROM sse_bridge.events WHERE event OPERATOR(pg_catalog.=) 'close' "
	" AND channel OPERATOR(pg_catalog.=) ANY(s.channels) AND id OPERATOR(pg_catalog.>) 0) AS close_id, "
	"s.sid, s.start_id, s.closed_at IS NOT NULL, "
	"(s.last_seen OPERATOR(pg_catalog.+) s.ttl OPERATOR(pg_catalog.<) pg_catalog.now()), "
	"p.pos, v.def "
	"FROM (" LOGREAD_HEAD_PRUNED_SQL ") h "
	"LEFT JOIN sse_bridge.subscriptions s ON s.id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid "
	"LEFT JOIN LATERAL (SELECT GREATEST(LEAST(GREATEST($2::pg_catalog.int8, s.start_id), h.head), "
	" h.pruned_through, 0) AS pos) p ON s.sid IS NOT NULL "
	"LEFT JOIN LATERAL (SELECT pg_catalog.json_build_object('sid', v.sid, 'channels', v.channels, "
	" 'filter', v.filter, 'state', v.state)::pg_catalog.text AS def "
	" FROM sse_bridge.subscription_versions v "
	" WHERE v.sid OPERATOR(pg_catalog.=) s.sid AND v.from_id OPERATOR(pg_catalog.<=) p.pos "
	" ORDER BY v.from_id DESC LIMIT 1) v ON true";

static char *logread_touch_sql;
static char *logread_expire_sql;

static bool logread_schema(db_link *l, PGresult *res);

static const db_step live_steps[] = {
	{NULL, "LISTEN sse_bridge", NULL},
	{"fetch", logread_fetch_sql, NULL},
	{"head", logread_head_sql, NULL},
};

static const db_step work_steps[] = {
	{NULL, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
	 "ON n.oid = e.extnamespace WHERE e.extname = 'sse_bridge'", logread_schema},
	{"fetch", logread_fetch_sql, NULL},
	{"open_adhoc", logread_open_adhoc_sql, NULL},
	{"open_sub", logread_open_sub_sql, NULL},
};

const db_step *
logread_live_steps(size_t *n)
{
	*n = sizeof(live_steps) / sizeof(live_steps[0]);
	return live_steps;
}

const db_step *
logread_work_steps(size_t *n)
{
	*n = sizeof(work_steps) / sizeof(work_steps[0]);
	return work_steps;
}

void
logread_shutdown(void)
{
	free(logread_touch_sql);
	free(logread_expire_sql);
	logread_touch_sql = logread_expire_sql = NULL;
}

/* Work link setup: build the housekeeping calls on the extension's schema. */
static bool
logread_schema(db_link *l, PGresult *res)
{
	char	   *q;

	if (PQntuples(res) != 1) {
		log_error("the sse_bridge extension is not installed in this database");
		return false;
	}
	q = PQescapeIdentifier(l->conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
	if (q == NULL)
		return false;
	logread_shutdown();
	if (asprintf(&logread_touch_sql, "SELECT count(*) FILTER (WHERE %s.sse_touch(u)) "
				 "FROM unnest($1::uuid[]) u", q) < 0)
		logread_touch_sql = NULL;
	if (asprintf(&logread_expire_sql, "SELECT %s.sse_expire()", q) < 0)
		logread_expire_sql = NULL;
	PQfreemem(q);
	return logread_touch_sql != NULL && logread_expire_sql != NULL;
}

/* Strings as a PostgreSQL array literal, every element quoted. */
static char *
logread_array_literal(char *const *items, size_t n)
{
	size_t		size = 3;
	char	   *s, *w;

	for (size_t i = 0; i < n; i++)
		size += strlen(items[i]) * 2 + 3;
	s = w = malloc(size);
	if (s == NULL)
		return NULL;
	*w++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			*w++ = ',';
		*w++ = '"';
		for (const char *p = items[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				*w++ = '\\';
			*w++ = *p;
		}
		*w++ = '"';
	}
	*w++ = '}';
	*w = '\0';
	return s;
}

db_job *
logread_fetch(int64_t after, int64_t limit, db_done_fn done, void *owner)
{
	char		a[24], b[24];
	const char *params[2] = {a, b};

	snprintf(a, sizeof(a), "%" PRId64, after);
	snprintf(b, sizeof(b), "%" PRId64, limit);
	return db_job_new("fetch", 2, params, done, owner);
}

db_job *
logread_head(db_done_fn done, void *owner)
{
	return db_job_new("head", 0, NULL, done, owner);
}

db_job *
logread_open(const char *sub_id, int64_t last_event_id, char *const *patterns,
			 size_t npatterns, db_done_fn done, void *owner)
{
	char	   *arr = NULL;
	char		after[24];
	const char *params[2] = {sub_id, after};
	db_job	   *job;

	if (sub_id == NULL &&
		(params[0] = arr = logread_array_literal(patterns, npatterns)) == NULL)
		return NULL;
	snprintf(after, sizeof(after), "%" PRId64, last_event_id < 0 ? -1 : last_event_id);
	job = db_job_new(sub_id ? "open_sub" : "open_adhoc", sub_id ? 2 : 1, params, done, owner);
	free(arr);
	return job;
}

db_job *
logread_touch(char *const *uuids, size_t n, db_done_fn done)
{
	char	   *lit;
	const char *param;
	db_job	   *job;

	if (logread_touch_sql == NULL || (lit = logread_array_literal(uuids, n)) == NULL)
		return NULL;
	param = lit;
	job = db_job_sql(logread_touch_sql, 1, &param, done, NULL);
	free(lit);
	return job;
}

db_job *
logread_expire(db_done_fn done)
{
	if (logread_expire_sql == NULL)
		return NULL;
	return db_job_sql(logread_expire_sql, 0, NULL, done, NULL);
}

/* ---- decoding ---- */

static int64_t
logread_int(const PGresult *res, int row, int col, int64_t dflt)
{
	if (PQgetisnull(res, row, col))
		return dflt;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool
logread_bool(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static char *
logread_text(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

bool
logread_fetch_ok(const PGresult *res)
{
	return res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) >= 1 &&
		PQnfields(res) == FETCH_CREATED_US + 1;
}

int64_t
logread_pruned(const PGresult *res)
{
	return logread_int(res, 0, FETCH_PRUNED, 0);
}

logread_row
logread_event(const PGresult *res, int row, event **ev)
{
	*ev = NULL;
	if (PQgetisnull(res, row, FETCH_ID))
		return LR_NONE;
	*ev = event_new(logread_int(res, row, FETCH_ID, 0),
					logread_int(res, row, FETCH_CREATED_US, 0),
					PQgetvalue(res, row, FETCH_CHANNEL),
					(size_t) PQgetlength(res, row, FETCH_CHANNEL),
					PQgetisnull(res, row, FETCH_EVENT) ? NULL : PQgetvalue(res, row, FETCH_EVENT),
					(size_t) PQgetlength(res, row, FETCH_EVENT),
					PQgetvalue(res, row, FETCH_DATA),
					(size_t) PQgetlength(res, row, FETCH_DATA));
	return *ev ? LR_EVENT : LR_OOM;
}

bool
logread_head_value(const PGresult *res, int64_t *head)
{
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		return false;
	*head = logread_int(res, 0, 0, 0);
	return true;
}

static void
logread_open_info(const PGresult *res, bool is_sub, open_info *info)
{
	info->head = logread_int(res, 0, OPEN_HEAD, 0);
	info->pruned = logread_int(res, 0, OPEN_PRUNED, 0);
	info->close_id = logread_int(res, 0, OPEN_CLOSE_ID, -1);
	if (!is_sub || PQnfields(res) < OPEN_NCOLS || PQgetisnull(res, 0, OPEN_SID))
		return;
	info->found = true;
	info->sid = logread_int(res, 0, OPEN_SID, 0);
	info->start_id = logread_int(res, 0, OPEN_START_ID, 0);
	info->closed = logread_bool(res, 0, OPEN_CLOSED);
	info->expired = logread_bool(res, 0, OPEN_EXPIRED);
	info->def_pos = logread_int(res, 0, OPEN_DEF_POS, -1);
	info->def_json = logread_text(res, 0, OPEN_DEF);
}

bool
logread_open_answer(const PGresult *res, bool is_sub, open_info *info)
{
	memset(info, 0, sizeof(*info));
	info->close_id = -1;
	info->def_pos = -1;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		return false;
	info->found = !is_sub;
	logread_open_info(res, is_sub, info);
	/* a row whose definition could not be copied is not a usable answer */
	return !(info->found && is_sub && info->def_json == NULL && !PQgetisnull(res, 0, OPEN_DEF));
}

void
open_info_clear(open_info *info)
{
	free(info->def_json);
	info->def_json = NULL;
}
