/*
 * resp.h - complete HTTP responses as frames.
 *
 * Ownership: each function returns a frame with one reference owned by the
 * caller; arguments are copied.  None returns NULL: when memory runs out the
 * frame is the shared out-of-memory answer (resp_oom), which must not be
 * changed (resp_is_shared).
 */
#ifndef BRIDGE_RESP_H
#define BRIDGE_RESP_H

#include <stdbool.h>

#include "frame.h"

/* Seconds a client is asked to wait after any 503. */
#define RESP_RETRY_AFTER "5"

/*
 * 503 {"error":"unavailable","detail":"out of memory"} with Retry-After,
 * prebuilt: it needs no allocation.  It carries no CORS headers, so a
 * cross-origin caller sees a network error (EventSource retries on that).
 */
frame	   *resp_oom(void);
/* Is f a shared, prebuilt frame (resp_oom) that must not be modified? */
bool		resp_is_shared(const frame *f);

/* CORS headers for a request with this Origin (may be NULL). */
const char *resp_cors(const char *origin, char *buf, size_t size);

/* An error with a JSON body {"error":code,"detail":detail}, Connection: close. */
frame	   *resp_error(int status, const char *code, const char *detail, const char *origin);

/* A status report {"status":word,"detail":detail} (/healthz). */
frame	   *resp_status(int status, const char *word, const char *detail, const char *origin);

/* 503 with Retry-After (over --max-clients or --max-memory); detail is plain text. */
frame	   *resp_busy(const char *origin, const char *detail);

/* A body-less response (204 preflight, 204 closed subscription). */
frame	   *resp_empty(int status, const char *origin, int preflight);

/* A 200 with the given content type and body. */
frame	   *resp_body(int status, const char *ctype, const char *body, size_t len,
					  const char *origin);

/*
 * A 200 of public content (the helper's script and types): readable from
 * any origin (Access-Control-Allow-Origin: *), whatever --cors-origin says.
 */
frame	   *resp_public(const char *ctype, const char *body, size_t len);

const char *resp_reason(int status);

#endif
