/*
 * outq.h - a client's bounded output queue of shared frame references.
 *
 * Frames move through three stages: queued (not yet handed to the kernel),
 * in flight (handed to one uv_write, waiting for its callback), released.
 * In-flight frames are always the oldest ones, at the front.  A direct write
 * (outq_peek + outq_consume, no write in flight) may take part of the oldest
 * frame: `off` of its bytes are then already sent, and the rest of it is
 * described from there on.
 *
 * Ownership: outq_push takes ownership of the caller's reference.  The
 * queue releases references in outq_complete and outq_clear.  Buffers
 * returned by outq_take point into frames the queue still owns; they stay
 * valid until the matching outq_complete.
 */
#ifndef BRIDGE_OUTQ_H
#define BRIDGE_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "frame.h"

typedef struct outq {
	frame	  **v;				/* circular array, NULL when empty and small */
	uint32_t	head;			/* index of the oldest entry */
	uint32_t	n;				/* entries (in flight + queued) */
	uint32_t	cap;			/* 0 or a power of two */
	uint32_t	inflight;		/* entries at the front handed to uv_write */
	uint32_t	off;			/* bytes of the oldest entry already sent */
	size_t		bytes;			/* bytes in all entries, less off */
} outq;

/* Append f; takes the caller's reference.  False (reference dropped) on OOM. */
bool		outq_push(outq *q, frame *f);

/* Bytes queued or in flight (not yet sent). */
static inline size_t
outq_bytes(const outq *q)
{
	return q->bytes;
}

/* Entries not yet in flight. */
static inline uint32_t
outq_pending(const outq *q)
{
	return q->n - q->inflight;
}

/*
 * Mark up to max queued entries in flight and describe them in bufs.
 * Returns how many were taken (0 when nothing is queued).
 */
uint32_t	outq_take(outq *q, uv_buf_t *bufs, uint32_t max);

/*
 * Describe up to max queued entries in bufs without marking them in flight
 * (the oldest one from `off`); for a direct write.  Precondition: nothing
 * is in flight.  Returns how many were described.
 */
uint32_t	outq_peek(const outq *q, uv_buf_t *bufs, uint32_t max);

/*
 * A direct write sent the first `sent` bytes of what outq_peek described:
 * release the entries sent whole and remember how much of the next one
 * went.  Precondition: nothing in flight, sent <= outq_bytes(q).
 */
void		outq_consume(outq *q, size_t sent);

/* Release the in-flight entries (their write finished or failed). */
void		outq_complete(outq *q);

/* An idle queue (empty) gives back its array (the client sweep calls this). */
void		outq_trim(outq *q);

/* Release everything. */
void		outq_clear(outq *q);

#endif
