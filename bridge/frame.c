/*
 * frame.c - shared, reference-counted output buffers.
 *
 * Invariants: a frame's bytes are written once, in the constructor, and are
 * read-only afterwards; refs counts the holders (client queues, the replay
 * cache, in-flight writes).  What the bytes mean is decided elsewhere: the
 * SSE wire format in wire.c, HTTP responses in resp.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "mem.h"

frame *
frame_alloc(size_t len)
{
	frame	   *f;

	if (len > UINT32_MAX)
		return NULL;
	f = malloc(sizeof(frame) + len);
	if (f == NULL)
		return NULL;
	f->refs = 1;
	f->len = (uint32_t) len;
	mem_charge(MEM_FRAMES, sizeof(frame) + len);
	return f;
}

frame *
frame_from(const char *bytes, size_t len)
{
	frame	   *f = frame_alloc(len);

	if (f != NULL)
		memcpy(f->data, bytes, len);
	return f;
}

frame *
frame_printf(const char *fmt, ...)
{
	va_list		ap;
	int			n;
	frame	   *f;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (f = frame_alloc((size_t) n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(f->data, (size_t) n + 1, fmt, ap);
	va_end(ap);
	f->len = (uint32_t) n;		/* drop the terminating NUL */
	mem_release(MEM_FRAMES, 1);
	return f;
}

void
frame_unref(frame *f)
{
	if (f != NULL && --f->refs == 0) {
		mem_release(MEM_FRAMES, sizeof(frame) + f->len);
		free(f);
	}
}
