/*
 * ring.h - the replay cache: the most recent events, in id order.
 *
 * The ring is "complete" for the id range (lo, hi]: every committed event
 * with an id in that range that was not pruned is in the ring.  hi is the
 * bridge's live cursor.  Until ring_reset is first called the ring is
 * invalid and covers nothing.
 *
 * Ownership: ring_push takes ownership of the event.  ring_at returns a
 * borrowed pointer, valid until the next ring_push or ring_reset.
 */
#ifndef BRIDGE_RING_H
#define BRIDGE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "logpos.h"

void		ring_init(size_t max_bytes, size_t max_events);
void		ring_shutdown(void);

/*
 * Forget everything; the ring now covers (cursor, cursor].  cursor_us is
 * the created_us of the row at cursor (LOGPOS_NO_ROW: none).
 */
void		ring_reset(int64_t cursor, int64_t cursor_us);
/* ring_reset for a timeline change: also counts it (ring_timeline). */
void		ring_rebase(int64_t cursor, int64_t cursor_us);
/* How many timeline changes the ring has seen. */
uint64_t	ring_timeline(void);

bool		ring_valid(void);
int64_t		ring_lo(void);
int64_t		ring_hi(void);
/* created_us of the row at hi (LOGPOS_NO_ROW: none). */
int64_t		ring_hi_us(void);
/* created_us of the row at id if the ring knows it (lo < id <= hi), else LOGPOS_UNKNOWN. */
int64_t		ring_us_at(int64_t id);

/* Append ev (ev->id > hi); evicts old events to respect the limits. */
void		ring_push(event *ev);

/* Index of the first event with id > cursor (== ring_count() if none). */
size_t		ring_find_after(int64_t cursor);
size_t		ring_count(void);
event	   *ring_at(size_t i);

#endif
