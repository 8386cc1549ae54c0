/*
 * logread.h - the log reader: every SQL statement the bridge sends, the
 * setup steps of both database links, and the one decoder of their rows.
 *
 * Nothing else in the bridge holds SQL text or reads a PGresult column by
 * number.  Every statement is prepared at connect time (or, for the two
 * housekeeping calls, built once from the quoted extension schema) and
 * every value is bound as a parameter, never spliced into SQL.
 *
 * Ownership: the job constructors return a new db_job (NULL on OOM) owned by
 * the caller until db_submit; logread_open_info fills strings that
 * open_info_clear frees; logread_event returns a new event owned by the
 * caller.
 */
#ifndef BRIDGE_LOGREAD_H
#define BRIDGE_LOGREAD_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "event.h"

/* Rows per replay page. */
#define LOGREAD_PAGE_ROWS 500

/* What the database says about a stream being opened. */
typedef struct open_info {
	bool		found;			/* subscription row exists (ad hoc: true) */
	bool		expired;
	bool		closed;			/* closed_at is set */
	bool		dropped;		/* a tombstone: unsubscribed, its def_id the drop */
	int64_t		sid;
	int64_t		def_pos;		/* position def_json was taken at, -1 none */
	char	   *def_json;		/* definition valid at def_pos, as a marker's data;
								 * NULL: none (no version at or before def_pos) */
	int64_t		start_id;
	int64_t		start_us;		/* created_us of the row at start_id (LOGPOS_NO_ROW) */
	int64_t		head;
	int64_t		head_us;		/* created_us of the row at head (LOGPOS_NO_ROW) */
	int64_t		at_us;			/* ... at the resume point asked for */
	int64_t		pruned;
	int64_t		close_id;		/* first close event that ends the stream, -1 none:
								 * ad hoc, on a literal pattern; subscription, on a
								 * literal pattern of the version valid at its id */
	char	   *owner;			/* the subscription's owner (a token subject), NULL:
								 * none, a capability (also before extension 1.3) */
} open_info;

/* Setup steps of the live link (LISTEN, fetch, head) and the work link. */
const db_step *logread_live_steps(size_t *n);
const db_step *logread_work_steps(size_t *n);
/* Setup steps of the --primary-db link (touches only). */
const db_step *logread_primary_steps(size_t *n);
/* Free what the work link's setup built (shutdown). */
void		logread_shutdown(void);

/* db_session_sql for this deadline (a static buffer) and db_heartbeat_sql. */
const char *logread_session_sql(uint64_t timeout_ms);
const char *logread_heartbeat_sql(void);

/*
 * The log from `after` on (live fetches and replay pages): the row at
 * `after` itself first when it exists (checked with logread_us_at), then
 * at most limit rows after it, and no row after the first of those once
 * `bytes` of their payload precede it, so a result holds about `bytes`
 * plus one event (and the row at `after`).
 */
db_job	   *logread_fetch(int64_t after, int64_t limit, size_t bytes, db_done_fn done,
						  void *owner);
/* The log head (live link, before the first fetch). */
db_job	   *logread_head(db_done_fn done, void *owner);
/*
 * Open lookup: a subscription by uuid (with its definition valid where a
 * reader resuming after last_event_id, -1 for none, starts), or ad hoc
 * patterns (sub_id NULL); both return the created_us of the row at
 * last_event_id (open_info.at_us).
 */
db_job	   *logread_open(const char *sub_id, int64_t last_event_id, char *const *patterns,
						 size_t npatterns, db_done_fn done, void *owner);
/* The fork point: the newest of these rows (id, created_us) still in the log. */
db_job	   *logread_fork(const int64_t *ids, const int64_t *us, size_t n,
						 db_done_fn done, void *owner);
/* sse_touch for these subscription uuids, and sse_expire; NULL before setup. */
db_job	   *logread_touch(char *const *uuids, size_t n, db_done_fn done);
db_job	   *logread_expire(db_done_fn done);
/* May this role execute sse_prune?  And the call itself (NULL before setup). */
db_job	   *logread_prune_grant(db_done_fn done, void *owner);
db_job	   *logread_prune(db_done_fn done, void *owner);

/* Is the server in recovery, its replay position and log head (hot standbys). */
db_job	   *logread_replay(db_done_fn done, void *owner);
/* LISTEN sse_bridge, for a live link whose standby was promoted. */
db_job	   *logread_listen(db_done_fn done, void *owner);
/*
 * Is job an open lookup (logread_open)?  Then whether of a subscription,
 * and the resume point it asks for (-1: none).
 */
bool		logread_open_job(const db_job *job, bool *is_sub, int64_t *after);

/* ---- decoding ---- */

/* A replay answer: lsn ("" when none) points into res; head: the log head there. */
bool		logread_replay_answer(const PGresult *res, bool *in_recovery, const char **lsn,
								  int64_t *head);

/*
 * A fetch/page result: true when usable (at least the meta row) and read
 * from the cursor `from` (anything else proves nothing about that cursor).
 */
bool		logread_fetch_ok(const PGresult *res, int64_t from);
/* The prune point carried by every fetch/page row. */
int64_t		logread_pruned(const PGresult *res);

typedef enum logread_row {
	LR_NONE,					/* the empty LEFT JOIN row: no event */
	LR_EVENT,					/* *ev is a new event */
	LR_OOM						/* out of memory: the row was not read */
} logread_row;

logread_row logread_event(const PGresult *res, int row, event **ev);

/* Payload bytes of a fetch row (0 for the empty row). */
size_t		logread_payload_bytes(const PGresult *res, int row);

/*
 * A fetch row's event id (-1 for the empty row) and an upper bound of its
 * SSE frame, without decoding it (replay checks the room before copying).
 */
size_t		logread_frame_bound(const PGresult *res, int row, int64_t *id);

/* The head of a head result and its row's created_us (true when usable). */
bool		logread_head_value(const PGresult *res, int64_t *head, int64_t *head_us);

/*
 * created_us of the row at cursor in a fetch/page read after cursor
 * (its first row), LOGPOS_NO_ROW when the log has no row there.
 */
int64_t		logread_us_at(const PGresult *res, int64_t cursor);

/* A fork answer: id -1 when none of the rows is left (us LOGPOS_NO_ROW). */
bool		logread_fork_answer(const PGresult *res, int64_t *pruned, int64_t *id,
								int64_t *us);

/*
 * Decode an open answer (one row; is_sub: a subscription) into info.  False
 * when res is not a usable answer.
 */
/* Columns of the subscription open answer (a test builds one by hand). */
#define LOGREAD_OPEN_SUB_COLS 14

bool		logread_open_answer(const PGresult *res, bool is_sub, open_info *info);
void		open_info_clear(open_info *info);

typedef enum logread_grant {
	LG_ERROR,					/* the lookup failed */
	LG_MISSING,					/* no sse_prune(interval) in the extension */
	LG_GRANTED,
	LG_DENIED
} logread_grant;

/* The grant lookup; role and schema (quoted) point into res. */
logread_grant logread_prune_grant_answer(const PGresult *res, const char **role,
										 const char **schema);
/* An sse_prune answer: true with the number of events deleted. */
bool		logread_prune_answer(const PGresult *res, int64_t *deleted);

#endif
