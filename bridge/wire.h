/*
 * wire.h - the SSE wire format (WHATWG event stream).
 *
 * Ownership: every constructor returns a new frame with one reference owned
 * by the caller, or NULL on OOM.
 */
#ifndef BRIDGE_WIRE_H
#define BRIDGE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/*
 * An event: "id: <id>", "event: <name>" when name is not NULL, then one
 * "data: " line per payload line (split on CRLF, CR or LF), then a blank
 * line.  name must already be a valid event name (no CR/LF).
 */
frame	   *wire_event(int64_t id, const char *name, size_t nlen,
					   const char *data, size_t dlen);

/* Bytes wire_event would produce (for accounting without formatting). */
size_t		wire_event_size(int64_t id, size_t nlen, const char *data, size_t dlen);

/*
 * The HTTP head of an event stream and the "retry:" line; cors is the CORS
 * header block (resp_cors), "" for none.
 */
frame	   *wire_stream_head(const char *cors, unsigned long retry_ms);

/* "event: reset": ids from..through were lost; its id is through. */
frame	   *wire_reset(int64_t from, int64_t through);

/* "event: ready": replay done, live from head on; its id is head. */
frame	   *wire_ready(int64_t head);

/* The ": keepalive" comment. */
frame	   *wire_keepalive(void);

#endif
