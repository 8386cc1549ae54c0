/*
 * logread.c - every SQL statement of the bridge and the decoders of their
 * answers.
 *
 * The live link LISTENs and prepares "fetch" and "head"; the work link looks
 * up the extension's schema (quoted with PQescapeIdentifier, for the
 * touch/expire calls) and prepares "fetch", "head", "fork" (a worker of
 * --workers N reads the log by position through it), "open_adhoc" and
 * "open_sub".  Both links read the log with the same "fetch" statement
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
#include "logpos.h"
#include "logread.h"
#include "preflight.h"
#include "wire.h"

/*
 * Immune to search_path: every function, operator, type and catalog table
 * below is schema-qualified (OPERATOR(pg_catalog.=), pg_catalog.text, ...;
 * bigint and GREATEST/EXTRACT are grammar that names pg_catalog itself), and
 * the first setup step of each link pins the session's search_path to
 * pg_catalog, pg_temp.  Either layer alone keeps objects that other roles
 * create in public (or in any schema on the role's path) out of the
 * bridge's statements; the test builds LOGREAD_UNQUALIFIED and
 * LOGREAD_NO_PIN each drop one layer so test/abuse can prove the other.
 */
#ifndef LOGREAD_UNQUALIFIED
#define PGC "pg_catalog."
#define OP(o) " OPERATOR(pg_catalog." o ") "
#else
#define PGC ""
#define OP(o) " " o " "
#endif

/* The pin itself is always qualified: it runs under whatever path the role has. */
#define LOGREAD_PIN_SQL \
	"SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)"

/* A row's created_at in microseconds (the fingerprint's input, logpos.h). */
#define LOGREAD_US(e) \
	"(EXTRACT(epoch FROM " e ".created_at)" OP("*") "1000000::numeric)::bigint"
/* created_us of the row at id x, NULL when there is none. */
#define LOGREAD_US_AT(x) \
	"(SELECT " LOGREAD_US("a") " FROM sse_bridge.events a WHERE a.id" OP("=") x ")"

/*
 * Columns of "fetch": one row per event, or one row of NULLs after the meta.
 * It reads from the cursor $1 itself (id >= $1), so the first row is the
 * row at the cursor when it exists: the reader checks it is still the row
 * it read before (a timeline check, docs/design.md) and skips it; up to
 * $2 rows after the cursor follow, and none after the first of them once
 * $3 bytes of their payload precede it (the row at the cursor is not
 * counted).  Every row repeats $1 (FETCH_FROM): an answer is used only for
 * the cursor it was read from, so an empty page can only ever prove that
 * nothing follows that cursor.
 */
enum {FETCH_PRUNED, FETCH_ID, FETCH_CHANNEL, FETCH_EVENT, FETCH_DATA, FETCH_CREATED_US,
FETCH_FROM};

static const char logread_fetch_sql[] =
	"SELECT m.pruned_through, e.id, e.channel, e.event, e.data, "
	LOGREAD_US("e") " AS created_us, $1::bigint AS from_id "
	"FROM sse_bridge.meta m LEFT JOIN LATERAL ("
	"SELECT * FROM (SELECT x.*, COALESCE(" PGC "sum(" PGC "octet_length(x.data)) "
	"FILTER (WHERE x.id" OP(">") "$1::bigint) OVER (ORDER BY x.id)"
	OP("-") PGC "octet_length(x.data), 0) AS before "
	"FROM sse_bridge.events x WHERE x.id" OP(">=") "$1::bigint "
	"ORDER BY x.id LIMIT $2::bigint" OP("+") "1) w "
	"WHERE w.before" OP("<") "$3::bigint ORDER BY w.id) e ON true";

#define LOGREAD_HEAD_SQL "GREATEST((SELECT " PGC "max(id) FROM sse_bridge.events), m.pruned_through)"

#define LOGREAD_HEAD_PRUNED_SQL \
	"SELECT " LOGREAD_HEAD_SQL " AS head, m.pruned_through FROM sse_bridge.meta m"

/* Columns of "head": the head and the created_us of its row (NULL: none). */
static const char logread_head_sql[] =
	"SELECT h.head, " LOGREAD_US_AT("h.head") " FROM (" LOGREAD_HEAD_PRUNED_SQL ") h";

/*
 * "fork": the newest of the given rows ($1 ids, $2 their created_us) that
 * is still in the log unchanged, with pruned_through; no such row: NULLs.
 */
enum {FORK_PRUNED, FORK_ID, FORK_US};

static const char logread_fork_sql[] =
	"SELECT m.pruned_through, f.id, f.us FROM sse_bridge.meta m LEFT JOIN LATERAL ("
	"SELECT e.id, " LOGREAD_US("e") " AS us "
	"FROM ROWS FROM (" PGC "unnest($1::bigint[]), "
	PGC "unnest($2::bigint[])) AS r(id, us) "
	"JOIN sse_bridge.events e ON e.id" OP("=") "r.id AND " LOGREAD_US("e") OP("=") "r.us "
	"ORDER BY e.id DESC LIMIT 1) f ON true";

/* The first close event on a channel in `list` (an array expression). */
#define LOGREAD_CLOSE_SQL(list) \
	"(SELECT " PGC "min(id) FROM sse_bridge.events WHERE event" OP("=") "'close'::" PGC "text " \
	" AND channel" OP("=") "ANY(" list ") AND id" OP(">") "0::bigint) AS close_id"

/*
 * The first close event that ends subscription s by position: a close on a
 * channel that is literally one of the patterns of the version valid at its
 * id (the version with the greatest from_id below it).  Each version is
 * searched in its own id range (from_id, next from_id) for each of its
 * channels, through events_close_idx; every version's from_id is at least
 * the creation marker, so a close before the subscription never counts.
 */
#define LOGREAD_SUB_CLOSE_SQL \
	"(SELECT " PGC "min(e.id) FROM sse_bridge.subscription_versions v " \
	"CROSS JOIN LATERAL (SELECT " PGC "min(n.from_id) AS until " \
	" FROM sse_bridge.subscription_versions n " \
	" WHERE n.sid" OP("=") "v.sid AND n.from_id" OP(">") "v.from_id) n " \
	"JOIN sse_bridge.events e ON e.event" OP("=") "'close'::" PGC "text " \
	" AND e.channel" OP("=") "ANY(v.channels) AND e.id" OP(">") "v.from_id " \
	" AND (n.until IS NULL OR e.id" OP("<") "n.until) " \
	"WHERE v.sid" OP("=") "s.sid) AS close_id"


/*
 * Columns of open_adhoc (the first five) and open_sub (all).  head_us /
 * at_us / start_us: created_us of the rows at the head, the resume point
 * $2 and start_id (NULL: no row).
 */
enum {OPEN_HEAD, OPEN_PRUNED, OPEN_HEAD_US, OPEN_AT_US, OPEN_CLOSE_ID, OPEN_SID,
	OPEN_START_ID, OPEN_START_US, OPEN_CLOSED, OPEN_EXPIRED, OPEN_DEF_POS, OPEN_DEF,
	OPEN_DROPPED, OPEN_OWNER, OPEN_NCOLS};
_Static_assert(OPEN_NCOLS == LOGREAD_OPEN_SUB_COLS, "logread.h names the open answer's width");

#define LOGREAD_OPEN_HEAD \
	"SELECT h.head, h.pruned_through, " LOGREAD_US_AT("h.head") ", " \
	LOGREAD_US_AT("$2::bigint") ", "

static const char logread_open_adhoc_sql[] =
	LOGREAD_OPEN_HEAD LOGREAD_CLOSE_SQL("$1::" PGC "text[]") " "
	"FROM (" LOGREAD_HEAD_PRUNED_SQL ") h";

/*
 * A subscription by uuid ($1) for a reader resuming after $2 (-1: none),
 * with its definition valid at the position the stream starts from
 * (def_pos: the resume point, not before the creation marker, clamped to
 * the head, then moved up to the prune point; the same as stream_decide
 * followed by a reset), in the form of a marker's data, and whether the row
 * is the tombstone of an unsubscribed subscription, and its owner (read
 * from the row as JSON, so the statement also runs against extension
 * versions before 1.3, which have no owner column: NULL).  Operators and
 * functions are qualified with pg_catalog, so the session's search_path
 * cannot change what this statement does.
 */
static const char logread_open_sub_sql[] =
	LOGREAD_OPEN_HEAD LOGREAD_SUB_CLOSE_SQL ", "
	"s.sid, s.start_id, " LOGREAD_US_AT("s.start_id") ", s.closed_at IS NOT NULL, "
	"((s.last_seen" OP("+") "s.ttl)" OP("<") PGC "now()), "
	"p.pos, v.def, s.dropped_at IS NOT NULL, "
	PGC "to_jsonb(s)" OP("->>") "'owner'::" PGC "text "
	"FROM (" LOGREAD_HEAD_PRUNED_SQL ") h LEFT JOIN sse_bridge.subscriptions s "
	"ON s.id" OP("=") "$1::" PGC "uuid "
	"LEFT JOIN LATERAL (SELECT GREATEST(LEAST(GREATEST($2::bigint, s.start_id), h.head), "
	" h.pruned_through, 0::bigint) AS pos) p ON s.sid IS NOT NULL "
	"LEFT JOIN LATERAL (SELECT " PGC "json_build_object('sid'::" PGC "text, v.sid, "
	" 'channels'::" PGC "text, v.channels, 'filter'::" PGC "text, v.filter, "
	" 'state'::" PGC "text, v.state)::" PGC "text AS def "
	" FROM sse_bridge.subscription_versions v "
	" WHERE v.sid" OP("=") "s.sid AND v.from_id" OP("<=") "p.pos "
	" ORDER BY v.from_id DESC LIMIT 1) v ON true";

static char *logread_touch_sql;
static char *logread_expire_sql;
static char *logread_prune_sql;

/*
 * Session settings, first on every connection: the server cancels a lock
 * wait at 80 % of --db-timeout and any statement at 90 %, before the
 * bridge's own deadline, so its error says which (db.h).  JIT is off: every
 * statement here reads a few rows through indexes, but the planner's
 * estimates (meta has no statistics, open_sub's subqueries run per row of
 * it) can pass jit_above_cost, and compiling then costs hundreds of
 * milliseconds per open.
 */
static char logread_session_buf[256];

/*
 * The heartbeat of an idle link names both tables the bridge reads, so
 * parse analysis takes their locks: a lock held on either is noticed like a
 * stopped server.  It reads no rows and calls no function or operator.
 */
static const char logread_heartbeat[] =
	"SELECT FROM sse_bridge.meta, sse_bridge.events WHERE false";

/*
 * May this role run the extension's sse_prune?  Every name is qualified and
 * every operator is pg_catalog's, so no search_path can redirect it.
 */
enum {GRANT_OK, GRANT_ROLE, GRANT_SCHEMA};
static const char logread_prune_grant_sql[] =
	"SELECT pg_catalog.has_function_privilege(p.oid, 'EXECUTE'), "
	"pg_catalog.quote_ident(CURRENT_USER), pg_catalog.quote_ident(n.nspname) "
	"FROM pg_catalog.pg_extension e "
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
	"JOIN pg_catalog.pg_proc p ON p.pronamespace OPERATOR(pg_catalog.=) n.oid "
	"AND p.proname OPERATOR(pg_catalog.=) 'sse_prune' "
	"AND p.pronargs OPERATOR(pg_catalog.=) 1 "
	"WHERE e.extname OPERATOR(pg_catalog.=) 'sse_bridge'";

/*
 * What the bridge needs, checked on every connection of both links before
 * anything else (preflight.h): the extension and its version, USAGE on the
 * schema of the tables and on the schema of the functions, SELECT on every
 * table the statements above read, EXECUTE on every function the work link
 * calls (sse_touch, sse_expire; sse_prune is optional, prune.c asks for it
 * itself).  Rows: kind (-1: the head row, then PF_SCHEMA, PF_TABLE,
 * PF_FUNCTION), name, exists, granted; the head row has the database and
 * role as names and extversion (NULL: not installed).  Objects are found by
 * name in the catalogs and checked by OID, so a schema the role may not use
 * or a table an older version lacks is reported, not an error; every name
 * is pg_catalog's and argument types are compared by OID (a type's name as
 * text would depend on search_path), so no search_path changes the answer.
 */
enum {PF_COL_KIND, PF_COL_NAME, PF_COL_ROLE, PF_COL_VERSION, PF_COL_EXISTS, PF_COL_GRANTED};

#define PF_NAME(x) "(" x ")::pg_catalog.name"
#define PF_NSP \
	"(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) " \
	PF_NAME("'sse_bridge'") ")"

static const char logread_preflight_sql[] =
	"WITH x AS (SELECT e.extversion, e.extnamespace FROM pg_catalog.pg_extension e "
	" WHERE e.extname OPERATOR(pg_catalog.=) " PF_NAME("'sse_bridge'") ") "
	"SELECT -1, pg_catalog.quote_ident(pg_catalog.current_database()::pg_catalog.text), "
	" pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text), (SELECT x.extversion FROM x), "
	" true, true "
	"UNION ALL "
	"SELECT 0, pg_catalog.quote_ident(n.nspname::pg_catalog.text), NULL, NULL, true, "
	" pg_catalog.has_schema_privilege(n.oid, 'USAGE') "
	"FROM pg_catalog.pg_namespace n "
	"WHERE n.oid OPERATOR(pg_catalog.=) " PF_NSP
	" OR n.oid OPERATOR(pg_catalog.=) (SELECT x.extnamespace FROM x) "
	"UNION ALL "
	"SELECT 1, pg_catalog.concat('sse_bridge.', pg_catalog.quote_ident(t.name::pg_catalog.text)), "
	" NULL, NULL, c.oid IS NOT NULL, "
	" COALESCE(pg_catalog.has_table_privilege(c.oid, 'SELECT'), false) "
	"FROM (VALUES (" PF_NAME("'events'") "), ('meta'), ('subscriptions'), "
	" ('subscription_versions')) t(name) "
	"LEFT JOIN pg_catalog.pg_class c ON c.relname OPERATOR(pg_catalog.=) t.name "
	" AND c.relnamespace OPERATOR(pg_catalog.=) " PF_NSP " "
	"UNION ALL "
	"SELECT 2, pg_catalog.concat(pg_catalog.quote_ident(n.nspname::pg_catalog.text), '.', "
	" f.name, '(', f.args, ')'), NULL, NULL, p.oid IS NOT NULL, "
	" COALESCE(pg_catalog.has_function_privilege(p.oid, 'EXECUTE'), false) "
	"FROM (VALUES (" PF_NAME("'sse_touch'") ", 'uuid'::pg_catalog.text, 1::pg_catalog.int2, "
	" 'pg_catalog.uuid'::pg_catalog.regtype::pg_catalog.oid), "
	" ('sse_expire', '', 0, NULL)) f(name, args, nargs, arg0) "
	"CROSS JOIN x JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) x.extnamespace "
	"LEFT JOIN pg_catalog.pg_proc p ON p.pronamespace OPERATOR(pg_catalog.=) x.extnamespace "
	" AND p.proname OPERATOR(pg_catalog.=) f.name "
	" AND p.pronargs OPERATOR(pg_catalog.=) f.nargs "
	" AND (f.nargs OPERATOR(pg_catalog.=) 0::pg_catalog.int2 "
	"  OR p.proargtypes[0] OPERATOR(pg_catalog.=) f.arg0) "
	"ORDER BY 1, 2";

_Static_assert(PF_SCHEMA == 0 && PF_TABLE == 1 && PF_FUNCTION == 2,
			   "the kinds of logread_preflight_sql");

static db_verdict logread_preflight(db_link *l, PGresult *res);
static bool logread_bool(const PGresult *res, int row, int col);
static int64_t logread_int(const PGresult *res, int row, int col, int64_t dflt);
static db_verdict logread_schema(db_link *l, PGresult *res);
static db_verdict logread_recovery(db_link *l, PGresult *res);
static db_verdict logread_primary(db_link *l, PGresult *res);

/*
 * Hot standbys (docs/scaling.md): every link asks whether its server is in
 * recovery and notes it in db_link.standby; a link on a standby never
 * writes there (no LISTEN, touch, expire or prune: the server would refuse
 * them) and learns of new rows by watching the replay position ("replay":
 * whether the server is still in recovery, and how far it has replayed).
 */
#define LOGREAD_RECOVERY_SQL "SELECT " PGC "pg_is_in_recovery()"
#define LOGREAD_RECOVERY_STEP {NULL, LOGREAD_RECOVERY_SQL, logread_recovery, NULL},

enum {REPLAY_IN_RECOVERY, REPLAY_LSN, REPLAY_HEAD};

static const char logread_replay_sql[] =
	"SELECT " PGC "pg_is_in_recovery(), " PGC "pg_last_wal_replay_lsn()::" PGC "text, "
	LOGREAD_HEAD_SQL " FROM sse_bridge.meta m";

static bool
logread_on_standby(const db_link *l)
{
	return l->standby;
}

#ifndef LOGREAD_NO_PIN
#define LOGREAD_PIN_STEP {NULL, LOGREAD_PIN_SQL, NULL, NULL},
#else
#define LOGREAD_PIN_STEP
#endif

#define LOGREAD_PREFLIGHT_STEP {NULL, logread_preflight_sql, logread_preflight, NULL},

static const db_step live_steps[] = {
	LOGREAD_PIN_STEP
	LOGREAD_PREFLIGHT_STEP
	LOGREAD_RECOVERY_STEP
	{NULL, "LISTEN sse_bridge", NULL, logread_on_standby},
	{"fetch", logread_fetch_sql, NULL, NULL},
	{"head", logread_head_sql, NULL, NULL},
	{"fork", logread_fork_sql, NULL, NULL},
	{"replay", logread_replay_sql, NULL, NULL},
};

static const db_step work_steps[] = {
	LOGREAD_PIN_STEP
	LOGREAD_PREFLIGHT_STEP
	{NULL, "SELECT n.nspname FROM " PGC "pg_extension e JOIN " PGC "pg_namespace n "
	 "ON n.oid" OP("=") "e.extnamespace WHERE e.extname" OP("=") "'sse_bridge'::" PGC "name",
	 logread_schema, NULL},
	LOGREAD_RECOVERY_STEP
	{"fetch", logread_fetch_sql, NULL, NULL},
	{"head", logread_head_sql, NULL, NULL},
	{"fork", logread_fork_sql, NULL, NULL},
	{"open_adhoc", logread_open_adhoc_sql, NULL, NULL},
	{"open_sub", logread_open_sub_sql, NULL, NULL},
	{"replay", logread_replay_sql, NULL, NULL},
};

/*
 * The --primary-db link: touches only.  It needs the extension's schema
 * for the call, and a server that is not in recovery (held otherwise).
 */
static const db_step primary_steps[] = {
	LOGREAD_PIN_STEP
	{NULL, "SELECT n.nspname FROM " PGC "pg_extension e JOIN " PGC "pg_namespace n "
	 "ON n.oid" OP("=") "e.extnamespace WHERE e.extname" OP("=") "'sse_bridge'::" PGC "name",
	 logread_schema, NULL},
	{NULL, LOGREAD_RECOVERY_SQL, logread_primary, NULL},
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

const db_step *
logread_primary_steps(size_t *n)
{
	*n = sizeof(primary_steps) / sizeof(primary_steps[0]);
	return primary_steps;
}

void
logread_shutdown(void)
{
	free(logread_touch_sql);
	free(logread_expire_sql);
	free(logread_prune_sql);
	logread_touch_sql = logread_expire_sql = logread_prune_sql = NULL;
}

const char *
logread_session_sql(uint64_t timeout_ms)
{
	uint64_t	stmt = timeout_ms - timeout_ms / 10,
				lock = timeout_ms - timeout_ms / 5;

	snprintf(logread_session_buf, sizeof(logread_session_buf),
			 "SELECT pg_catalog.set_config('statement_timeout', '%" PRIu64 "', false), "
			 "pg_catalog.set_config('lock_timeout', '%" PRIu64 "', false), "
			 "pg_catalog.set_config('jit', 'off', false)",
			 stmt > 0 ? stmt : 1, lock > 0 ? lock : 1);
	return logread_session_buf;
}

const char *
logread_heartbeat_sql(void)
{
	return logread_heartbeat;
}

/* Setup of both links: does the database have what the bridge needs? */
static db_verdict
logread_preflight(db_link *l, PGresult *res)
{
	preflight_facts f = {0};
	int			rows = PQntuples(res);

	(void) l;
	if (PQnfields(res) != PF_COL_GRANTED + 1 || rows < 1 ||
		strtol(PQgetvalue(res, 0, PF_COL_KIND), NULL, 10) != -1 ||
		rows - 1 > PREFLIGHT_MAX_ITEMS) {
		log_error("checking the database: unexpected answer");
		return DB_STEP_FAIL;
	}
	f.db = PQgetvalue(res, 0, PF_COL_NAME);
	f.role = PQgetvalue(res, 0, PF_COL_ROLE);
	f.version = PQgetisnull(res, 0, PF_COL_VERSION) ? NULL : PQgetvalue(res, 0, PF_COL_VERSION);
	for (int i = 1; i < rows; i++) {
		preflight_item *it = &f.items[f.n++];

		it->kind = (preflight_kind) strtol(PQgetvalue(res, i, PF_COL_KIND), NULL, 10);
		it->name = PQgetvalue(res, i, PF_COL_NAME);
		it->exists = logread_bool(res, i, PF_COL_EXISTS);
		it->granted = logread_bool(res, i, PF_COL_GRANTED);
	}
	return preflight_judge(&f) ? DB_STEP_OK : DB_STEP_HOLD;
}

/* Setup of every link: note whether the server is a hot standby. */
static db_verdict
logread_recovery(db_link *l, PGresult *res)
{
	bool		standby;

	if (PQntuples(res) != 1 || PQnfields(res) != 1)
		return DB_STEP_FAIL;
	standby = logread_bool(res, 0, 0);
	if (standby && !l->standby)
		log_info("db %s: the server is a hot standby: this link reads only, and follows "
				 "the replay position instead of LISTEN", l->name);
	else if (!standby && l->standby)
		log_info("db %s: the server is not in recovery (any more)", l->name);
	l->standby = standby;
	return DB_STEP_OK;
}

/* Setup of the --primary-db link: a server in recovery cannot take touches. */
static db_verdict
logread_primary(db_link *l, PGresult *res)
{
	if (PQntuples(res) != 1 || PQnfields(res) != 1)
		return DB_STEP_FAIL;
	l->standby = logread_bool(res, 0, 0);
	if (l->standby) {
		log_warn("db %s: --primary-db names a server in recovery; touches wait until it "
				 "is promoted (or name the primary, e.g. with target_session_attrs=read-write)",
				 l->name);
		return DB_STEP_HOLD;
	}
	return DB_STEP_OK;
}

/* Work link setup: build the housekeeping calls on the extension's schema. */
static db_verdict
logread_schema(db_link *l, PGresult *res)
{
	char	   *q;

	if (PQntuples(res) != 1) {
		/* dropped since the check: reconnect, and the check says what to run */
		log_warn("the sse_bridge extension was dropped while connecting");
		return DB_STEP_FAIL;
	}
	q = PQescapeIdentifier(l->conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
	if (q == NULL)
		return DB_STEP_FAIL;
	logread_shutdown();
	if (asprintf(&logread_touch_sql, "SELECT " PGC "count(*) FILTER (WHERE %s.sse_touch(u)) "
				 "FROM " PGC "unnest($1::" PGC "uuid[]) u", q) < 0)
		logread_touch_sql = NULL;
	if (asprintf(&logread_expire_sql, "SELECT %s.sse_expire()", q) < 0)
		logread_expire_sql = NULL;
	if (asprintf(&logread_prune_sql, "SELECT %s.sse_prune()", q) < 0)
		logread_prune_sql = NULL;
	PQfreemem(q);
	return logread_touch_sql != NULL && logread_expire_sql != NULL && logread_prune_sql != NULL
		? DB_STEP_OK : DB_STEP_FAIL;
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
logread_fetch(int64_t after, int64_t limit, size_t bytes, db_done_fn done, void *owner)
{
	char		a[24], b[24], s[24];
	const char *params[3] = {a, b, s};

	snprintf(a, sizeof(a), "%" PRId64, after);
	snprintf(b, sizeof(b), "%" PRId64, limit);
	snprintf(s, sizeof(s), "%zu", bytes > 0 ? bytes : 1);
	return db_job_new("fetch", 3, params, done, owner);
}

db_job *
logread_head(db_done_fn done, void *owner)
{
	return db_job_new("head", 0, NULL, done, owner);
}

/* Integers as a PostgreSQL array literal. */
static char *
logread_int_array(const int64_t *v, size_t n)
{
	char	   *s = malloc(n * 21 + 3), *w = s;

	if (s == NULL)
		return NULL;
	*w++ = '{';
	for (size_t i = 0; i < n; i++)
		w += sprintf(w, i > 0 ? ",%" PRId64 : "%" PRId64, v[i]);
	*w++ = '}';
	*w = '\0';
	return s;
}

db_job *
logread_fork(const int64_t *ids, const int64_t *us, size_t n, db_done_fn done, void *owner)
{
	char	   *a = logread_int_array(ids, n), *b = logread_int_array(us, n);
	const char *params[2] = {a, b};
	db_job	   *job = NULL;

	if (a != NULL && b != NULL)
		job = db_job_new("fork", 2, params, done, owner);
	free(a);
	free(b);
	return job;
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
	job = db_job_new(sub_id ? "open_sub" : "open_adhoc", 2, params, done, owner);
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

db_job *
logread_prune_grant(db_done_fn done, void *owner)
{
	return db_job_sql(logread_prune_grant_sql, 0, NULL, done, owner);
}

db_job *
logread_prune(db_done_fn done, void *owner)
{
	if (logread_prune_sql == NULL)
		return NULL;
	return db_job_sql(logread_prune_sql, 0, NULL, done, owner);
}

db_job *
logread_replay(db_done_fn done, void *owner)
{
	return db_job_new("replay", 0, NULL, done, owner);
}

db_job *
logread_listen(db_done_fn done, void *owner)
{
	return db_job_sql("LISTEN sse_bridge", 0, NULL, done, owner);
}

bool
logread_open_job(const db_job *job, bool *is_sub, int64_t *after)
{
	if (job->stmt == NULL || (strcmp(job->stmt, "open_sub") != 0 &&
							  strcmp(job->stmt, "open_adhoc") != 0) || job->nparams != 2)
		return false;
	*is_sub = strcmp(job->stmt, "open_sub") == 0;
	*after = job->params[1] != NULL ? strtoll(job->params[1], NULL, 10) : -1;
	return true;
}

/* ---- decoding ---- */

bool
logread_replay_answer(const PGresult *res, bool *in_recovery, const char **lsn, int64_t *head)
{
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
		PQnfields(res) != REPLAY_HEAD + 1)
		return false;
	*in_recovery = logread_bool(res, 0, REPLAY_IN_RECOVERY);
	*lsn = PQgetisnull(res, 0, REPLAY_LSN) ? "" : PQgetvalue(res, 0, REPLAY_LSN);
	*head = logread_int(res, 0, REPLAY_HEAD, 0);
	return true;
}

logread_grant
logread_prune_grant_answer(const PGresult *res, const char **role, const char **schema)
{
	*role = *schema = "?";
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		return LG_ERROR;
	if (PQntuples(res) != 1)
		return LG_MISSING;
	*role = PQgetvalue(res, 0, GRANT_ROLE);
	*schema = PQgetvalue(res, 0, GRANT_SCHEMA);
	return PQgetvalue(res, 0, GRANT_OK)[0] == 't' ? LG_GRANTED : LG_DENIED;
}

bool
logread_prune_answer(const PGresult *res, int64_t *deleted)
{
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		return false;
	*deleted = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	return true;
}

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
logread_fetch_ok(const PGresult *res, int64_t from)
{
	return res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) >= 1 &&
		PQnfields(res) == FETCH_FROM + 1 && logread_int(res, 0, FETCH_FROM, -1) == from;
}

int64_t
logread_pruned(const PGresult *res)
{
	return logread_int(res, 0, FETCH_PRUNED, 0);
}

size_t
logread_payload_bytes(const PGresult *res, int row)
{
	return PQgetisnull(res, row, FETCH_ID) ? 0 : (size_t) PQgetlength(res, row, FETCH_DATA);
}

size_t
logread_frame_bound(const PGresult *res, int row, int64_t *id)
{
	if (PQgetisnull(res, row, FETCH_ID)) {
		*id = -1;
		return 0;
	}
	*id = strtoll(PQgetvalue(res, row, FETCH_ID), NULL, 10);
	return wire_event_size(*id, logpos_fp(*id, logread_int(res, row, FETCH_CREATED_US, 0)),
						   PQgetisnull(res, row, FETCH_EVENT) ? 0 :
						   (size_t) PQgetlength(res, row, FETCH_EVENT),
						   PQgetvalue(res, row, FETCH_DATA),
						   (size_t) PQgetlength(res, row, FETCH_DATA));
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
logread_head_value(const PGresult *res, int64_t *head, int64_t *head_us)
{
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
		PQnfields(res) != 2)
		return false;
	*head = logread_int(res, 0, 0, 0);
	*head_us = logread_int(res, 0, 1, LOGPOS_NO_ROW);
	return true;
}

int64_t
logread_us_at(const PGresult *res, int64_t cursor)
{
	if (PQntuples(res) < 1 || PQgetisnull(res, 0, FETCH_ID) ||
		logread_int(res, 0, FETCH_ID, 0) != cursor)
		return LOGPOS_NO_ROW;
	return logread_int(res, 0, FETCH_CREATED_US, LOGPOS_NO_ROW);
}

bool
logread_fork_answer(const PGresult *res, int64_t *pruned, int64_t *id, int64_t *us)
{
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
		PQnfields(res) != FORK_US + 1)
		return false;
	*pruned = logread_int(res, 0, FORK_PRUNED, 0);
	*id = logread_int(res, 0, FORK_ID, -1);
	*us = logread_int(res, 0, FORK_US, LOGPOS_NO_ROW);
	return true;
}

static void
logread_open_info(const PGresult *res, bool is_sub, open_info *info)
{
	info->head = logread_int(res, 0, OPEN_HEAD, 0);
	info->pruned = logread_int(res, 0, OPEN_PRUNED, 0);
	info->head_us = logread_int(res, 0, OPEN_HEAD_US, LOGPOS_NO_ROW);
	info->at_us = logread_int(res, 0, OPEN_AT_US, LOGPOS_NO_ROW);
	info->close_id = logread_int(res, 0, OPEN_CLOSE_ID, -1);
	if (!is_sub || PQnfields(res) < OPEN_NCOLS || PQgetisnull(res, 0, OPEN_SID))
		return;
	info->found = true;
	info->sid = logread_int(res, 0, OPEN_SID, 0);
	info->start_id = logread_int(res, 0, OPEN_START_ID, 0);
	info->start_us = logread_int(res, 0, OPEN_START_US, LOGPOS_NO_ROW);
	info->closed = logread_bool(res, 0, OPEN_CLOSED);
	info->expired = logread_bool(res, 0, OPEN_EXPIRED);
	info->def_pos = logread_int(res, 0, OPEN_DEF_POS, -1);
	info->def_json = logread_text(res, 0, OPEN_DEF);
	info->dropped = logread_bool(res, 0, OPEN_DROPPED);
	info->owner = logread_text(res, 0, OPEN_OWNER);
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
	return !(info->found && is_sub &&
			 ((info->def_json == NULL && !PQgetisnull(res, 0, OPEN_DEF)) ||
			  (info->owner == NULL && !PQgetisnull(res, 0, OPEN_OWNER))));
}

void
open_info_clear(open_info *info)
{
	free(info->def_json);
	free(info->owner);
	info->def_json = NULL;
	info->owner = NULL;
}
