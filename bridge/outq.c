/*
 * outq.c - bounded per-client output queue of frame references.
 *
 * Invariants: entries [head, head+inflight) are in flight, the rest queued;
 * cap is 0 or a power of two, so slot i of the ring is (head + i) & (cap - 1)
 * (no division on the per-event path); off < the oldest entry's length, and
 * 0 when the queue is empty; bytes is the sum of all entries' lengths less
 * off.  An array of more than OUTQ_KEEP slots is freed as soon as the queue
 * empties; a smaller one is kept for the next burst (a client that gets a
 * batch of events every loop turn allocates nothing) until outq_trim, which
 * the client sweep calls, so an idle client holds no array.
 */
#include <assert.h>
#include <stdlib.h>

#include "outq.h"

#define OUTQ_FIRST 4			/* slots of a new array; a power of two */
#define OUTQ_KEEP 1024			/* an empty queue keeps an array this small */

static inline uint32_t
outq_slot(const outq *q, uint32_t i)
{
	return (q->head + i) & (q->cap - 1);
}

static bool
outq_grow(outq *q)
{
	uint32_t	ncap = q->cap ? q->cap * 2 : OUTQ_FIRST;
	frame	  **nv;

	if (ncap == 0)				/* 2^32 slots: cannot grow */
		return false;
	if (q->head == 0) {			/* not wrapped: the array may grow in place */
		nv = realloc(q->v, sizeof(frame *) * ncap);
		if (nv == NULL)
			return false;
	} else {
		nv = malloc(sizeof(frame *) * ncap);
		if (nv == NULL)
			return false;
		for (uint32_t i = 0; i < q->n; i++)
			nv[i] = q->v[outq_slot(q, i)];
		free(q->v);
	}
	q->v = nv;
	q->head = 0;
	q->cap = ncap;
	return true;
}

bool
outq_push(outq *q, frame *f)
{
	if (q->n == q->cap && !outq_grow(q)) {
		frame_unref(f);
		return false;
	}
	q->v[outq_slot(q, q->n)] = f;
	q->n++;
	q->bytes += f->len;
	return true;
}

static void
outq_shrink(outq *q)
{
	if (q->n == 0 && q->cap > OUTQ_KEEP) {
		free(q->v);
		q->v = NULL;
		q->cap = 0;
		q->head = 0;
	}
}

/* Entry i described from what is not yet sent of it. */
static inline uv_buf_t
outq_buf(const outq *q, uint32_t i)
{
	frame	   *f = q->v[outq_slot(q, i)];
	uint32_t	skip = i == 0 ? q->off : 0;

	return uv_buf_init(f->data + skip, f->len - skip);
}

uint32_t
outq_take(outq *q, uv_buf_t *bufs, uint32_t max)
{
	uint32_t	k = 0;

	while (k < max && q->inflight < q->n) {
		bufs[k++] = outq_buf(q, q->inflight);
		q->inflight++;
	}
	return k;
}

uint32_t
outq_peek(const outq *q, uv_buf_t *bufs, uint32_t max)
{
	uint32_t	k = 0;

	assert(q->inflight == 0);
	while (k < max && k < q->n) {
		bufs[k] = outq_buf(q, k);
		k++;
	}
	return k;
}

/* Release the oldest entry (sent whole). */
static inline void
outq_pop(outq *q)
{
	frame	   *f = q->v[q->head];

	q->bytes -= f->len - q->off;
	q->off = 0;
	frame_unref(f);
	q->head = (q->head + 1) & (q->cap - 1);
	q->n--;
}

void
outq_consume(outq *q, size_t sent)
{
	assert(q->inflight == 0 && sent <= q->bytes);
	while (sent > 0) {
		size_t		rest = q->v[q->head]->len - q->off;

		if (sent < rest) {
			q->off += (uint32_t) sent;
			q->bytes -= sent;
			break;
		}
		sent -= rest;
		outq_pop(q);
	}
	outq_shrink(q);
}

void
outq_complete(outq *q)
{
	while (q->inflight > 0) {
		outq_pop(q);
		q->inflight--;
	}
	outq_shrink(q);
}

void
outq_trim(outq *q)
{
	if (q->n == 0 && q->cap > 0) {
		free(q->v);
		q->v = NULL;
		q->cap = 0;
		q->head = 0;
	}
}

void
outq_clear(outq *q)
{
	for (uint32_t i = 0; i < q->n; i++)
		frame_unref(q->v[outq_slot(q, i)]);
	free(q->v);
	*q = (outq) {0};
}
