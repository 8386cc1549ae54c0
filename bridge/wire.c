/*
 * wire.c - the whole SSE wire format: every byte a stream sends after its
 * HTTP head line, and the stream's HTTP head itself.
 *
 * Invariants: formatting follows the WHATWG event-stream grammar; every
 * payload line break (CRLF, CR or LF) starts a new "data:" line, so a
 * conforming parser rebuilds the payload with LF line breaks.  Event names
 * reach here already validated (no CR/LF).  Control events (ready, reset)
 * carry an id so a reconnect resumes after them.  No other module formats
 * SSE text.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "logpos.h"
#include "wire.h"

/* Length of the line starting at p (excluding its break) and of its break. */
static size_t
wire_line(const char *p, const char *end, size_t *brk)
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
wire_event_size(int64_t id, uint32_t fp, size_t nlen, const char *data, size_t dlen)
{
	char		num[LOGPOS_STRLEN];
	size_t		size = 4 + logpos_format(num, id, fp) + 1;
	const char *p = data, *end = data + dlen;

	if (nlen > 0)
		size += 7 + nlen + 1;
	for (;;) {
		size_t		brk, len = wire_line(p, end, &brk);

		size += 6 + len + 1;
		p += len + brk;
		if (brk == 0)
			break;
	}
	return size + 1;
}

static char *
wire_put(char *w, const char *s, size_t n)
{
	memcpy(w, s, n);
	return w + n;
}

frame *
wire_event(int64_t id, uint32_t fp, const char *name, size_t nlen,
		   const char *data, size_t dlen)
{
	frame	   *f;
	char		num[LOGPOS_STRLEN];
	size_t		numlen;
	const char *p = data, *end = data + dlen;
	char	   *w;

	if (name == NULL)
		nlen = 0;
	f = frame_alloc(wire_event_size(id, fp, nlen, data, dlen));
	if (f == NULL)
		return NULL;
	numlen = logpos_format(num, id, fp);
	w = wire_put(f->data, "id: ", 4);
	w = wire_put(w, num, numlen);
	*w++ = '\n';
	if (nlen > 0) {
		w = wire_put(w, "event: ", 7);
		w = wire_put(w, name, nlen);
		*w++ = '\n';
	}
	for (;;) {
		size_t		brk, len = wire_line(p, end, &brk);

		w = wire_put(w, "data: ", 6);
		w = wire_put(w, p, len);
		*w++ = '\n';
		p += len + brk;
		if (brk == 0)
			break;
	}
	*w++ = '\n';
	return f;
}

frame *
wire_stream_head(const char *cors, unsigned long retry_ms)
{
	return frame_printf("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
						"Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
						"Connection: close\r\n%s\r\nretry: %lu\n\n",
						cors, retry_ms);
}

frame *
wire_reset(int64_t from, int64_t through, int64_t at, uint32_t at_fp, bool timeline)
{
	char		pos[LOGPOS_STRLEN];

	logpos_format(pos, at, at_fp);
	return frame_printf("id: %s\nevent: reset\ndata: {\"lost_from\":%" PRId64
						",\"lost_through\":%" PRId64 "%s}\n\n", pos, from, through,
						timeline ? ",\"timeline\":true" : "");
}

frame *
wire_ready(int64_t head, uint32_t fp)
{
	char		pos[LOGPOS_STRLEN];

	logpos_format(pos, head, fp);
	return frame_printf("id: %s\nevent: ready\ndata: {\"head\":%" PRId64 "}\n\n",
						pos, head);
}

frame *
wire_keepalive(void)
{
	return frame_printf(": keepalive\n\n");
}

frame *
wire_auth_expired(void)
{
	return frame_printf("event: auth-expired\ndata: {\"error\":\"token_expired\"}\n\n");
}
