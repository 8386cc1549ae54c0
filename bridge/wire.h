/*
 * wire.h - the SSE wire format (WHATWG event stream).
 *
 * Ownership: every constructor returns a new frame with one reference owned
 * by the caller, or NULL on OOM.
 */
#ifndef BRIDGE_WIRE_H
#define BRIDGE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/*
 * An event: "id: <id>-<fp>" (logpos.h), "event: <name>" when name is not NULL, then one
 * "data: " line per payload line (split on CRLF, CR or LF), then a blank
 * line.  name must already be a valid event name (no CR/LF).
 */
frame	   *wire_event(int64_t id, uint32_t fp, const char *name, size_t nlen,
					   const char *data, size_t dlen);

/* Bytes wire_event would produce (for accounting without formatting). */
size_t		wire_event_size(int64_t id, uint32_t fp, size_t nlen, const char *data,
							size_t dlen);

/*
 * The HTTP head of an event stream and the "retry:" line; cors is the CORS
 * header block (resp_cors), "" for none.
 */
frame	   *wire_stream_head(const char *cors, unsigned long retry_ms);

/*
 * "event: reset" with data {"lost_from":from,"lost_through":through} and,
 * for a timeline change, "timeline":true.  Its id is the position the
 * stream continues after: at-at_fp (through for a prune, the fork point
 * for a timeline change).
 */
frame	   *wire_reset(int64_t from, int64_t through, int64_t at, uint32_t at_fp,
					   bool timeline);

/* "event: ready": replay done, live from head on; its id is head-fp. */
frame	   *wire_ready(int64_t head, uint32_t fp);

/* The ": keepalive" comment. */
frame	   *wire_keepalive(void);

/*
 * "event: auth-expired": the token the stream opened with has expired and
 * the stream ends.  It has no id, so the client's Last-Event-ID stays the
 * last event it received.
 */
frame	   *wire_auth_expired(void);

#endif
