/*
 * resp.h - complete HTTP responses as frames.
 *
 * Ownership: each function returns a new frame (one reference, owned by the
 * caller) or NULL on OOM.  Arguments are copied.
 */
#ifndef BRIDGE_RESP_H
#define BRIDGE_RESP_H

#include "frame.h"

/* Seconds a client is asked to wait after any 503. */
#define RESP_RETRY_AFTER "5"

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

const char *resp_reason(int status);

#endif
