/*
 * sseparse.h - the test clients' Server-Sent Events parser.
 *
 * An incremental push parser for the WHATWG "interpreting an event stream"
 * rules: feed it body bytes in pieces of any size, and it calls back once
 * per dispatched event, comment and valid retry field.
 *
 * Rules kept: lines end in CRLF, LF or CR (a CRLF split between two feeds
 * is one line end); one leading BOM of a stream is skipped; a line starting
 * with ':' is a comment; "field: value" loses exactly one space after the
 * colon; a line without a colon is a field with an empty value; data lines
 * are joined with LF; an id containing NUL is ignored; retry is taken only
 * when all ASCII digits; unknown fields are ignored; an empty line
 * dispatches: it sets the last event ID string from the last event ID
 * buffer, and an event is delivered only when the data buffer is not
 * empty; an incomplete event at the end of a stream is discarded.
 *
 * Streams: sse_begin() starts a new stream (a new connection).  The line,
 * data and event type buffers are emptied and the last event ID buffer is
 * set back to the last event ID string, so the id line of an event cut off
 * by the end of the previous stream is never used to resume.
 *
 * Every buffer is owned by the parser and freed by sse_free().  An
 * allocation failure makes sse_feed() return false; the parser is then
 * unusable until sse_free().
 */
#ifndef SSEPARSE_H
#define SSEPARSE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sse_buf {
	char	   *p;				/* always NUL-terminated once allocated */
	size_t		len, cap;
} sse_buf;

typedef struct sse_event {
	const char *id;				/* the last event ID string, NUL-terminated */
	size_t		id_len;
	const char *event;			/* "message" when no event field was seen */
	size_t		event_len;
	const char *data;			/* final LF removed, NUL-terminated */
	size_t		data_len;
} sse_event;

typedef struct sse_parser sse_parser;

typedef struct sse_callbacks {
	void		(*on_event) (sse_parser *ps, const sse_event *ev);
	void		(*on_comment) (sse_parser *ps, const char *text, size_t len);	/* may be NULL */
	void		(*on_retry) (sse_parser *ps, long ms);	/* may be NULL */
} sse_callbacks;

struct sse_parser {
	sse_callbacks cb;
	void	   *arg;			/* for the callbacks */
	sse_buf		line;			/* current, unterminated line */
	sse_buf		data;			/* data buffer */
	sse_buf		event;			/* event type buffer */
	sse_buf		id;				/* last event ID buffer */
	sse_buf		last_id;		/* last event ID string */
	long		retry_ms;		/* last valid retry field, -1 none */
	bool		after_cr;		/* previous byte was CR: skip one LF */
	unsigned	bom;			/* BOM bytes matched at stream start */
	bool		at_start;		/* BOM check pending */
	bool		stop;			/* set by sse_stop(): feed returns */
	bool		failed;			/* an allocation failed */
};

void		sse_init(sse_parser *ps, const sse_callbacks *cb, void *arg);
void		sse_begin(sse_parser *ps);
bool		sse_feed(sse_parser *ps, const char *p, size_t n);
void		sse_stop(sse_parser *ps);
bool		sse_set_last_id(sse_parser *ps, const char *id, size_t len);
void		sse_free(sse_parser *ps);

#endif
