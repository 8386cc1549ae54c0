/*
 * work.c - jobs on the work link.
 *
 * Every statement is prepared at connect time and every value is bound as a
 * parameter, never spliced into SQL.  The schema of the extension's
 * functions is looked up at connect, quoted with PQescapeIdentifier, and
 * used for the touch/expire statements.
 * Invariants: a stream has at most one job in flight (c->st->job); a
 * callback for a cancelled job only frees it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "replay.h"
#include "ring.h"
#include "work.h"

/*
 * Subscription changes noticed so far.  A change notice for a stream whose
 * open is still in flight finds no stream with that sid yet and is dropped,
 * so an open records this count when it is sent, and replay_open reloads
 * the definition if the count moved before the answer was adopted.  The
 * reload runs on this link after the open, so it sees the change.
 */
static uint64_t work_changes;

const char *const work_fetch_sql =
	"SELECT m.pruned_through, e.id, e.channel, e.event, e.data, "
	"(extract(epoch FROM e.created_at) * 1000000)::bigint AS created_us "
	"FROM sse_bridge.meta m LEFT JOIN LATERAL ("
	"SELECT * FROM sse_bridge.events WHERE id > $1 ORDER BY id LIMIT $2) e ON true";

#define WORK_HEAD_SQL \
	"SELECT greatest((SELECT max(id) FROM sse_bridge.events), m.pruned_through) AS head, " \
	"m.pruned_through FROM sse_bridge.meta m"

static const char work_open_adhoc_sql[] =
	"SELECT h.head, h.pruned_through, "
	"(SELECT min(id) FROM sse_bridge.events WHERE event = 'close' "
	" AND channel = ANY($1::text[]) AND id > 0) AS close_id "
	"FROM (" WORK_HEAD_SQL ") h";

static const char work_open_sub_sql[] =
	"SELECT h.head, h.pruned_through, "
	"(SELECT min(id) FROM sse_bridge.events WHERE event = 'close' "
	" AND channel = ANY(s.channels) AND id > 0) AS close_id, "
	"s.sid, array_to_json(s.channels)::text, s.filter::text, s.start_id, "
	"s.closed_at IS NOT NULL, (s.last_seen + s.ttl < now()) "
	"FROM (" WORK_HEAD_SQL ") h LEFT JOIN sse_bridge.subscriptions s ON s.id = $1::uuid";

static const char work_reload_sql[] =
	"SELECT 0, 0, NULL::bigint, s.sid, array_to_json(s.channels)::text, s.filter::text, "
	"s.start_id, s.closed_at IS NOT NULL, (s.last_seen + s.ttl < now()) "
	"FROM sse_bridge.subscriptions s WHERE s.sid = $1";

static char *work_touch_sql;
static char *work_expire_sql;
static uv_timer_t work_timer;

static bool work_schema(db_link *l, PGresult *res);

static const db_step work_steps[] = {
	{NULL, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
	 "ON n.oid = e.extnamespace WHERE e.extname = 'sse_bridge'", work_schema},
	{"fetch", NULL, NULL},
	{"open_adhoc", work_open_adhoc_sql, NULL},
	{"open_sub", work_open_sub_sql, NULL},
	{"reload_sub", work_reload_sql, NULL},
};

static db_step work_steps_rt[sizeof(work_steps) / sizeof(work_steps[0])];

static bool
work_schema(db_link *l, PGresult *res)
{
	char	   *q;

	if (PQntuples(res) != 1) {
		log_error("the sse_bridge extension is not installed in this database");
		return false;
	}
	q = PQescapeIdentifier(l->conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
	if (q == NULL)
		return false;
	free(work_touch_sql);
	free(work_expire_sql);
	if (asprintf(&work_touch_sql, "SELECT count(*) FILTER (WHERE %s.sse_touch(u)) "
				 "FROM unnest($1::uuid[]) u", q) < 0)
		work_touch_sql = NULL;
	if (asprintf(&work_expire_sql, "SELECT %s.sse_expire()", q) < 0)
		work_expire_sql = NULL;
	PQfreemem(q);
	return work_touch_sql != NULL && work_expire_sql != NULL;
}

static int64_t
work_int(PGresult *res, int row, int col, int64_t dflt)
{
	if (PQgetisnull(res, row, col))
		return dflt;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool
work_bool(PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static char *
work_text(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

/* Decode an open/reload row into info (columns as in the SQL above). */
static void
work_decode(PGresult *res, bool is_sub, open_info *info)
{
	memset(info, 0, sizeof(*info));
	info->head = work_int(res, 0, 0, 0);
	info->pruned = work_int(res, 0, 1, 0);
	info->close_id = work_int(res, 0, 2, -1);
	info->found = !is_sub;
	if (!is_sub || PQnfields(res) < 9 || PQgetisnull(res, 0, 3))
		return;
	info->found = true;
	info->sid = work_int(res, 0, 3, 0);
	info->channels_json = work_text(res, 0, 4);
	info->filter_json = work_text(res, 0, 5);
	info->start_id = work_int(res, 0, 6, 0);
	info->closed = work_bool(res, 0, 7);
	info->expired = work_bool(res, 0, 8);
}

static client *
work_claim(db_job *job)
{
	client	   *c = job->owner;

	if (c != NULL)
		c->st->job = NULL;
	return c;
}

static void
work_open_done(db_job *job, PGresult *res)
{
	client	   *c = work_claim(job);
	open_info	info;

	db_job_free(job);
	if (c == NULL)
		return;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_warn("opening a stream failed: %s", res ? PQresultErrorMessage(res) : "stopped");
		client_respond_error(c, 503, "unavailable", "the database lookup failed");
		return;
	}
	work_decode(res, c->st->sub_id != NULL, &info);
	replay_open(c, &info);
}

/* Patterns as a PostgreSQL text[] literal, every element quoted. */
static char *
work_array_literal(char **items, size_t n)
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

void
work_open(client *c)
{
	stream	   *st = c->st;
	char	   *arr = NULL;
	const char *param;
	db_job	   *job;

	if (st->sub_id != NULL)
		param = st->sub_id;
	else if ((arr = work_array_literal(st->sub.patterns, st->sub.npatterns)) != NULL)
		param = arr;
	else {
		client_respond_error(c, 503, "unavailable", "out of memory");
		return;
	}
	job = db_job_new(st->sub_id ? "open_sub" : "open_adhoc", 1, &param, work_open_done, c);
	free(arr);
	if (job == NULL) {
		client_respond_error(c, 503, "unavailable", "out of memory");
		return;
	}
	st->job = job;
	st->open_changes = work_changes;
	db_submit(&br.work, job);
}

static void
work_page_done(db_job *job, PGresult *res)
{
	client	   *c = work_claim(job);
	int64_t		live_at_send = job->aux;

	db_job_free(job);
	if (c == NULL)
		return;
	metrics.replay_pages++;
	replay_page(c, res, live_at_send);
}

void
work_page(client *c)
{
	char		cursor[24], limit[24];
	const char *params[2] = {cursor, limit};
	db_job	   *job;

	if (c->st->job != NULL)
		return;					/* a page is already on its way */
	snprintf(cursor, sizeof(cursor), "%" PRId64, c->cursor);
	snprintf(limit, sizeof(limit), "%d", WORK_PAGE_ROWS);
	job = db_job_new("fetch", 2, params, work_page_done, c);
	if (job == NULL) {
		client_close(c);
		return;
	}
	job->aux = ring_valid() ? ring_hi() : -1;
	c->st->job = job;
	db_submit(&br.work, job);
}

/* Apply a reloaded (or vanished) subscription to every stream using it. */
static void
work_apply(int64_t sid, const open_info *info)
{
	for (client *c = client_list; c; c = c->next) {
		stream	   *st = c->st;

		if (st == NULL || st->sid != sid ||
			(c->state != CS_REPLAYING && c->state != CS_LIVE))
			continue;
		if (!info->found || info->expired) {
			log_info("ending a stream: its subscription was dropped or expired");
			client_end(c);
			continue;
		}
		bool		live = c->state == CS_LIVE;

		if (live)
			hub_remove(&st->sub);
		if (!replay_set_spec(st, info->channels_json, info->filter_json))
			client_end(c);
		if (live && !hub_add(&st->sub))
			c->flags |= CF_DOOMED;
	}
}

static void
work_reload_done(db_job *job, PGresult *res)
{
	int64_t		sid = job->aux;
	open_info	info;

	db_job_free(job);
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warn("reloading a subscription failed: %s", PQresultErrorMessage(res));
		return;
	}
	if (PQntuples(res) == 0)
		memset(&info, 0, sizeof(info));
	else
		work_decode(res, true, &info);
	work_apply(sid, &info);
	free(info.channels_json);
	free(info.filter_json);
}

uint64_t
work_sub_changes(void)
{
	return work_changes;
}

void
work_reload(int64_t sid)
{
	char		buf[24];
	const char *param = buf;
	db_job	   *job;

	snprintf(buf, sizeof(buf), "%" PRId64, sid);
	job = db_job_new("reload_sub", 1, &param, work_reload_done, NULL);
	if (job == NULL)
		return;
	job->aux = sid;
	db_submit(&br.work, job);
}

void
work_sub_changed(int64_t sid)
{
	work_changes++;
	for (client *c = client_list; c; c = c->next) {
		if (c->st != NULL && c->st->sid == sid) {
			work_reload(sid);
			return;
		}
	}
}

static int
work_cmp_sid(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/*
 * One reload per distinct subscription in use.  Called when the live link
 * has LISTENed again: notices sent while it was down are gone.
 */
void
work_reload_all(void)
{
	size_t		n = 0,
				cap = 0;
	int64_t    *sids = NULL;

	work_changes++;
	for (client *c = client_list; c; c = c->next) {
		if (c->st == NULL || c->st->sid == 0)
			continue;
		if (n == cap) {
			size_t		ncap = cap ? cap * 2 : 64;
			int64_t    *g = realloc(sids, ncap * sizeof(*sids));

			if (g == NULL)
				break;			/* the opens in flight will see the count moved */
			sids = g;
			cap = ncap;
		}
		sids[n++] = c->st->sid;
	}
	if (n > 0)
		qsort(sids, n, sizeof(*sids), work_cmp_sid);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || sids[i] != sids[i - 1])
			work_reload(sids[i]);
	free(sids);
}

static void
work_house_done(db_job *job, PGresult *res)
{
	db_job_free(job);
	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warn("housekeeping call failed: %s", PQresultErrorMessage(res));
}

/* Every subscription uuid with a stream, as a uuid[] literal. */
static char *
work_live_uuids(void)
{
	size_t		n = 0, k = 0;
	char	  **ids;
	char	   *lit;

	for (client *c = client_list; c; c = c->next)
		n += c->st != NULL && c->st->sub_id != NULL && c->state != CS_READING;
	if (n == 0)
		return NULL;
	ids = malloc(sizeof(char *) * n);
	if (ids == NULL)
		return NULL;
	for (client *c = client_list; c && k < n; c = c->next)
		if (c->st != NULL && c->st->sub_id != NULL && c->state != CS_READING)
			ids[k++] = c->st->sub_id;
	lit = work_array_literal(ids, k);
	free(ids);
	return lit;
}

static void
work_on_timer(uv_timer_t *t)
{
	char	   *ids;
	db_job	   *job;

	(void) t;
	if (!db_link_up(&br.work) || db_queue_len(&br.work) > 100 || work_touch_sql == NULL)
		return;
	ids = work_live_uuids();
	if (ids != NULL) {
		const char *param = ids;

		job = db_job_sql(work_touch_sql, 1, &param, work_house_done, NULL);
		if (job)
			db_submit(&br.work, job);
		free(ids);
	}
	job = db_job_sql(work_expire_sql, 0, NULL, work_house_done, NULL);
	if (job)
		db_submit(&br.work, job);
}

void
work_init(void)
{
	memcpy(work_steps_rt, work_steps, sizeof(work_steps));
	work_steps_rt[1].sql = work_fetch_sql;
	db_link_init(&br.work, br.loop, "work", work_steps_rt,
				 sizeof(work_steps) / sizeof(work_steps[0]), (db_ops) {0});
	uv_timer_init(br.loop, &work_timer);
}

void
work_start(void)
{
	db_link_start(&br.work);
	uv_timer_start(&work_timer, work_on_timer, cfg.touch_interval * 1000,
				   cfg.touch_interval * 1000);
}

void
work_stop(void)
{
	uv_timer_stop(&work_timer);
	uv_close((uv_handle_t *) &work_timer, NULL);
	db_link_stop(&br.work);
	free(work_touch_sql);
	free(work_expire_sql);
	work_touch_sql = work_expire_sql = NULL;
}
