/*
 * shr.h - the shared ring: the one copy of the live feed that every worker
 * reads (--workers 2 or more).
 *
 * One MAP_SHARED mapping of a memfd, made by the supervisor before it
 * starts its workers (each maps the inherited descriptor), holds a byte ring of records and a small header.  Only the
 * supervisor writes records (shr_put_*); a record is immutable once
 * published.  Workers read them in order by offset (shr_read); an offset is
 * a count of bytes ever written, so it never repeats.  When the supervisor
 * needs room it first moves `tail` past the oldest records, then overwrites
 * them: a reader that copied a record checks afterwards that `tail` did not
 * pass it, and a reader whose offset is below `tail` has fallen behind (it
 * must read the log by position instead; it never skips).
 *
 * Record kinds: an event (a row of the log, `$sub` markers included), a
 * prune (the log was pruned past the supervisor's cursor) and a timeline
 * change; each carries the position (id and created_us) the supervisor's
 * live cursor had before it, so a reader applies a record only when it is
 * exactly at that position.  A hole stands for an event too large for the
 * ring: the reader fetches it by position.
 *
 * The header also carries the supervisor's view of its database links
 * (for /healthz) and one slot per worker (shr_slot) that only that worker
 * writes and everyone reads (for /metrics).
 *
 * Ownership: the mapping is created once and inherited; nobody unmaps it
 * while a worker may run.  Events returned by shr_read are new and owned by
 * the caller.
 */
#ifndef BRIDGE_SHR_H
#define BRIDGE_SHR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "metrics.h"

typedef enum shr_kind {
	SHR_EVENT = 1,
	SHR_PRUNED,					/* id: pruned through */
	SHR_TIMELINE,				/* id, us: the fork point the feed continues after */
	SHR_HOLE,					/* id, us: an event not stored; read it by position */
	SHR_PAD						/* filler up to the end of the buffer */
} shr_kind;

/* What a reader gets for one record. */
typedef struct shr_item {
	shr_kind	kind;
	int64_t		prev_id;		/* the supervisor's cursor before this record */
	int64_t		prev_us;
	int64_t		id;
	int64_t		us;
	event	   *ev;				/* SHR_EVENT: new, owned by the caller */
} shr_item;

/*
 * Per-process figures, written only by that process: slots 0..N-1 are the
 * workers', slot N the supervisor's.
 */
typedef struct shr_slot {
	int32_t		pid;			/* 0: never written */
	uint32_t	seq;			/* odd while its process writes */
	metrics_view v;				/* what its /metrics would show alone */
	uint64_t	ring_behind;	/* times the worker fell behind the shared ring */
	/* the supervisor's setup verdict (preflight.h); problem "" = none */
	char		problem[256];
	char		unavailable[400];
} shr_slot;

typedef struct shr shr;

/*
 * Make the ring (data bytes, rounded up to a power of two, and nslots
 * slots) in a memfd (close-on-exec) and map it; NULL on failure.
 */
shr		   *shr_create(size_t bytes, unsigned nslots);
/* Map a ring made by shr_create from its inherited descriptor. */
shr		   *shr_attach(int fd);
int			shr_fd(shr *r);
/* Bytes of the mapping. */
size_t		shr_bytes(shr *r);
void		shr_destroy(shr *r);

/* ---- supervisor: the one writer ---- */
void		shr_put_event(shr *r, int64_t prev_id, int64_t prev_us, const event *ev);
void		shr_put_mark(shr *r, shr_kind kind, int64_t prev_id, int64_t prev_us,
						 int64_t id, int64_t us);
/* The states (db_state) of the supervisor's live link and best work link. */
void		shr_set_links(shr *r, int live, int work);

/* ---- readers ---- */
typedef enum shr_status {
	SHR_OK,						/* *item filled, *off moved past it */
	SHR_EMPTY,					/* nothing after *off yet */
	SHR_BEHIND					/* *off was overwritten: read the log instead */
} shr_status;

/* Offset of the next record to be written (where a new reader starts). */
uint64_t	shr_head(shr *r);
/* Offset of the oldest record still intact (it may move on at any time). */
uint64_t	shr_tail(shr *r);
/* The record at *off; SHR_OK also when an allocation failed (ev NULL: a hole). */
shr_status	shr_read(shr *r, uint64_t *off, shr_item *item);
int			shr_live_state(shr *r);
int			shr_work_state(shr *r);

/* Slot i (0-based, < nslots). */
shr_slot   *shr_slot_at(shr *r, unsigned i);
unsigned	shr_nslots(shr *r);
/* Copy slot i consistently into *out (false: never written or torn twice). */
bool		shr_slot_read(shr *r, unsigned i, shr_slot *out);
void		shr_slot_begin(shr_slot *s);
void		shr_slot_end(shr_slot *s);
/*
 * The supervisor, once slot s's worker has exited: nobody is there (pid 0,
 * figures zero) until the next worker writes it.
 */
void		shr_slot_clear(shr_slot *s);

#endif
