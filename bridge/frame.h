/*
 * frame.h - immutable, reference-counted byte buffers shared by clients.
 *
 * Ownership: frame_alloc and every frame_* constructor return a frame with
 * one reference owned by the caller.  frame_ref adds one; frame_unref drops
 * one and frees at zero.  The bytes never change after construction, so one
 * frame may sit in many client queues at once.  Single-threaded only.
 */
#ifndef BRIDGE_FRAME_H
#define BRIDGE_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef struct frame {
	uint32_t	refs;
	uint32_t	len;
	char		data[];
} frame;

/* Uninitialised frame of len bytes (the caller fills data); NULL on OOM. */
frame	   *frame_alloc(size_t len);
frame	   *frame_from(const char *bytes, size_t len);
frame	   *frame_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline frame *
frame_ref(frame *f)
{
	f->refs++;
	return f;
}

void		frame_unref(frame *f);

#endif
