/*
 * request.h - the HTTP/1.1 request head, parsed with http-parser.
 *
 * A req collects the method, the request target and the headers the
 * bridge uses (Last-Event-ID, Origin, Authorization, Cookie) while bytes arrive in pieces.  It
 * enforces the head size limit (431) and refuses bodies, Transfer-Encoding
 * and conflicting Content-Length headers (400: request smuggling).  A
 * failed allocation is the bridge's fault, never the request's: 503.
 *
 * Ownership: req_feed copies what it keeps; the caller's bytes may be reused
 * as soon as it returns.  req_free releases everything a req holds.
 */
#ifndef BRIDGE_REQUEST_H
#define BRIDGE_REQUEST_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum req_status {
	REQ_MORE,					/* head incomplete, feed more bytes */
	REQ_DONE,					/* a complete request head without body */
	REQ_ERROR					/* status and detail say why */
} req_status;

typedef enum req_header {
	REQ_H_OTHER,
	REQ_H_LAST_EVENT_ID,
	REQ_H_ORIGIN,
	REQ_H_HOST,
	REQ_H_AUTHORIZATION,
	REQ_H_COOKIE
} req_header;

typedef struct req_str {
	char	   *s;				/* NUL-terminated, heap */
	size_t		len;
	bool		set;
} req_str;

typedef struct req {
	http_parser parser;
	size_t		max_head;		/* limit on bytes before the end of the head */
	size_t		head_bytes;		/* bytes consumed so far */
	req_str		url;
	req_str		last_event_id;
	req_str		origin;
	req_str		authorization;	/* at most one */
	req_str		cookie;			/* several Cookie headers joined by "; " */
	char		field[24];		/* current header name, lower case */
	size_t		field_len;		/* > sizeof(field) means "too long to care" */
	req_header	cur;			/* header the current value belongs to */
	bool		in_value;
	bool		done;
	bool		has_host;
	int			status;			/* on REQ_ERROR: 400, 431, or 503 (out of memory) */
	const char *error;			/* on REQ_ERROR: its code (static text) */
	const char *detail;			/* on REQ_ERROR: static text */
} req;

void		req_init(req *r, size_t max_head);
req_status	req_feed(req *r, const char *data, size_t len);
void		req_free(req *r);

/* Method name of a finished request ("GET", ...). */
const char *req_method(const req *r);

#endif
