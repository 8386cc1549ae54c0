/*
 * outq.c - bounded per-client output queue of frame references.
 *
 * Invariants: entries [head, head+inflight) are in flight, the rest queued;
 * cap is 0 or a power of two, so slot i of the ring is (head + i) & (cap - 1)
 * (no division on the per-event path); bytes is the sum of all entries'
 * lengths; the array is freed whenever the queue empties and has grown past
 * OUTQ_KEEP slots, so an idle client holds at most a small array.
 */
#include <stdlib.h>

#include "outq.h"

#define OUTQ_KEEP 4				/* a power of two */

static inline uint32_t
outq_slot(const outq *q, uint32_t i)
{
	return (q->head + i) & (q->cap - 1);
}

static bool
outq_grow(outq *q)
{
	uint32_t	ncap = q->cap ? q->cap * 2 : OUTQ_KEEP;
	frame	  **nv;

	if (ncap == 0)				/* 2^32 slots: cannot grow */
		return false;
	nv = malloc(sizeof(frame *) * ncap);
	if (nv == NULL)
		return false;
	for (uint32_t i = 0; i < q->n; i++)
		nv[i] = q->v[outq_slot(q, i)];
	free(q->v);
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

uint32_t
outq_take(outq *q, uv_buf_t *bufs, uint32_t max)
{
	uint32_t	k = 0;

	while (k < max && q->inflight < q->n) {
		frame	   *f = q->v[outq_slot(q, q->inflight)];

		bufs[k++] = uv_buf_init(f->data, f->len);
		q->inflight++;
	}
	return k;
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

void
outq_complete(outq *q)
{
	while (q->inflight > 0) {
		frame	   *f = q->v[q->head];

		q->bytes -= f->len;
		frame_unref(f);
		q->head = (q->head + 1) & (q->cap - 1);
		q->n--;
		q->inflight--;
	}
	outq_shrink(q);
}

void
outq_clear(outq *q)
{
	for (uint32_t i = 0; i < q->n; i++)
		frame_unref(q->v[outq_slot(q, i)]);
	free(q->v);
	*q = (outq) {0};
}
