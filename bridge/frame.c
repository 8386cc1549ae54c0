/*
 * frame.c - shared SSE output buffers and the event wire format.
 *
 * Invariants: a frame's bytes are written once, in the constructor, and are
 * read-only afterwards; refs counts the holders (client queues, the replay
 * cache, in-flight writes).  Formatting follows the WHATWG event-stream
 * grammar: every payload line break (CRLF, CR or LF) starts a new "data:"
 * line, so a conforming parser rebuilds the payload with LF line breaks.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

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
	return f;
}

void
frame_unref(frame *f)
{
	if (f != NULL && --f->refs == 0)
		free(f);
}

/* Length of the line starting at p (excluding its break) and of its break. */
static size_t
frame_line(const char *p, const char *end, size_t *brk)
{
	const char *q = p;

	while (q < end && *q != '\n' && *q != '\r')
		q++;
	*brk = 0;
	if (q < end)
		*brk = (*q == '\r' && q + 1 < end && q[1] == '\n') ? 2 : 1;
	return (size_t) (q - p);
}

size_t
frame_event_size(int64_t id, size_t nlen, const char *data, size_t dlen)
{
	char		num[32];
	size_t		size = 4 + (size_t) snprintf(num, sizeof(num), "%" PRId64, id) + 1;
	const char *p = data, *end = data + dlen;

	if (nlen > 0)
		size += 7 + nlen + 1;
	for (;;) {
		size_t		brk, len = frame_line(p, end, &brk);

		size += 6 + len + 1;
		p += len + brk;
		if (brk == 0)
			break;
	}
	return size + 1;
}

static char *
frame_put(char *w, const char *s, size_t n)
{
	memcpy(w, s, n);
	return w + n;
}

frame *
frame_event(int64_t id, const char *name, size_t nlen, const char *data, size_t dlen)
{
	frame	   *f;
	char		num[32];
	int			numlen;
	const char *p = data, *end = data + dlen;
	char	   *w;

	if (name == NULL)
		nlen = 0;
	f = frame_alloc(frame_event_size(id, nlen, data, dlen));
	if (f == NULL)
		return NULL;
	numlen = snprintf(num, sizeof(num), "%" PRId64, id);
	w = frame_put(f->data, "id: ", 4);
	w = frame_put(w, num, (size_t) numlen);
	*w++ = '\n';
	if (nlen > 0) {
		w = frame_put(w, "event: ", 7);
		w = frame_put(w, name, nlen);
		*w++ = '\n';
	}
	for (;;) {
		size_t		brk, len = frame_line(p, end, &brk);

		w = frame_put(w, "data: ", 6);
		w = frame_put(w, p, len);
		*w++ = '\n';
		p += len + brk;
		if (brk == 0)
			break;
	}
	*w++ = '\n';
	return f;
}
