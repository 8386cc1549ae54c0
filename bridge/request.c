/*
 * request.c - incremental parsing of one HTTP request head.
 *
 * Invariants: parsing stops at the first complete message (the parser is
 * paused there), so pipelined bytes are never interpreted; every stored
 * string is bounded by max_head because bytes past the limit are never fed
 * to the parser; an error is sticky: once status is set, req_feed keeps
 * returning REQ_ERROR.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

static int req_on_url(http_parser *p, const char *at, size_t len);
static int req_on_field(http_parser *p, const char *at, size_t len);
static int req_on_value(http_parser *p, const char *at, size_t len);
static int req_on_headers_complete(http_parser *p);
static int req_on_message_complete(http_parser *p);

static const http_parser_settings req_settings = {
	.on_url = req_on_url,
	.on_header_field = req_on_field,
	.on_header_value = req_on_value,
	.on_headers_complete = req_on_headers_complete,
	.on_message_complete = req_on_message_complete,
};

void
req_init(req *r, size_t max_head)
{
	memset(r, 0, sizeof(*r));
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	r->max_head = max_head;
}

void
req_free(req *r)
{
	free(r->url.s);
	free(r->last_event_id.s);
	free(r->origin.s);
	free(r->authorization.s);
	free(r->cookie.s);
	r->url = r->last_event_id = r->origin = r->authorization = r->cookie = (req_str) {0};
}

const char *
req_method(const req *r)
{
	return http_method_str((enum http_method) r->parser.method);
}

static int
req_fail(req *r, int status, const char *detail)
{
	if (r->status == 0) {
		r->status = status;
		r->error = status == 503 ? "unavailable" : status == 431 ? "headers_too_large" : "bad_request";
		r->detail = detail;
	}
	return -1;
}

/* Append to a string; bounded by max_head because input is. */
static int
req_append(req *r, req_str *dst, const char *at, size_t len)
{
	char	   *n = realloc(dst->s, dst->len + len + 1);

	if (n == NULL)
		return req_fail(r, 503, "out of memory");
	memcpy(n + dst->len, at, len);
	dst->s = n;
	dst->len += len;
	dst->s[dst->len] = '\0';
	dst->set = true;
	return 0;
}

static int
req_on_url(http_parser *p, const char *at, size_t len)
{
	req		   *r = p->data;

	return req_append(r, &r->url, at, len);
}

/* RFC 9110 tchar: the only bytes a header name may hold. */
static bool
req_is_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * Header name bytes.  http-parser tolerates whitespace before the colon,
 * which would make "Last-Event-ID : 5" a different header to us than to a
 * proxy in front (RFC 9112 5.1 requires a 400): every byte is checked, not
 * only the prefix kept in r->field.
 */
static int
req_on_field(http_parser *p, const char *at, size_t len)
{
	req		   *r = p->data;

	if (r->in_value) {
		r->in_value = false;
		r->field_len = 0;
	}
	for (size_t i = 0; i < len; i++, r->field_len++) {
		if (!req_is_tchar((unsigned char) at[i]))
			return req_fail(r, 400, "invalid character in a header name");
		if (r->field_len < sizeof(r->field))
			r->field[r->field_len] = (char) tolower((unsigned char) at[i]);
	}
	return 0;
}

static req_header
req_classify(const req *r)
{
	if (r->field_len == 13 && memcmp(r->field, "last-event-id", 13) == 0)
		return REQ_H_LAST_EVENT_ID;
	if (r->field_len == 6 && memcmp(r->field, "origin", 6) == 0)
		return REQ_H_ORIGIN;
	if (r->field_len == 4 && memcmp(r->field, "host", 4) == 0)
		return REQ_H_HOST;
	if (r->field_len == 13 && memcmp(r->field, "authorization", 13) == 0)
		return REQ_H_AUTHORIZATION;
	if (r->field_len == 6 && memcmp(r->field, "cookie", 6) == 0)
		return REQ_H_COOKIE;
	return REQ_H_OTHER;
}

/* First piece of a header value: decide where it goes. */
static int
req_start_value(req *r)
{
	r->in_value = true;
	r->cur = req_classify(r);
	if (r->cur == REQ_H_LAST_EVENT_ID && r->last_event_id.set)
		return req_fail(r, 400, "Last-Event-ID given more than once");
	if (r->cur == REQ_H_ORIGIN && r->origin.set)
		return req_fail(r, 400, "Origin given more than once");
	if (r->cur == REQ_H_HOST && r->has_host)
		return req_fail(r, 400, "Host given more than once");
	if (r->cur == REQ_H_AUTHORIZATION && r->authorization.set)
		return req_fail(r, 400, "Authorization given more than once");
	r->has_host |= r->cur == REQ_H_HOST;
	if (r->cur == REQ_H_LAST_EVENT_ID)
		return req_append(r, &r->last_event_id, "", 0);
	if (r->cur == REQ_H_ORIGIN)
		return req_append(r, &r->origin, "", 0);
	if (r->cur == REQ_H_AUTHORIZATION)
		return req_append(r, &r->authorization, "", 0);
	if (r->cur == REQ_H_COOKIE)
		return req_append(r, &r->cookie, r->cookie.set ? "; " : "", r->cookie.set ? 2 : 0);
	return 0;
}

static int
req_on_value(http_parser *p, const char *at, size_t len)
{
	req		   *r = p->data;

	if (!r->in_value && req_start_value(r) != 0)
		return -1;
	switch (r->cur) {
		case REQ_H_LAST_EVENT_ID:
			return req_append(r, &r->last_event_id, at, len);
		case REQ_H_ORIGIN:
			return req_append(r, &r->origin, at, len);
		case REQ_H_AUTHORIZATION:
			return req_append(r, &r->authorization, at, len);
		case REQ_H_COOKIE:
			return req_append(r, &r->cookie, at, len);
		case REQ_H_HOST:
		case REQ_H_OTHER:
			break;
	}
	return 0;
}

static int
req_on_headers_complete(http_parser *p)
{
	req		   *r = p->data;

	if (p->http_major != 1 || p->http_minor > 1)
		return req_fail(r, 400, "unsupported HTTP version");
	if (p->http_minor == 1 && !r->has_host)
		return req_fail(r, 400, "HTTP/1.1 requires a Host header");
	if (p->uses_transfer_encoding || (p->flags & F_CHUNKED))
		return req_fail(r, 400, "Transfer-Encoding is not accepted");
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)
		return req_fail(r, 400, "a request body is not accepted");
	if (!r->url.set)
		return req_fail(r, 400, "missing request target");
	return 0;
}

static int
req_on_message_complete(http_parser *p)
{
	req		   *r = p->data;

	r->done = true;
	http_parser_pause(p, 1);
	return 0;
}

/* Map a parser error to our status (431 for size, 400 otherwise). */
static req_status
req_parser_error(req *r)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);

	if (r->status != 0)
		return REQ_ERROR;
	if (e == HPE_HEADER_OVERFLOW)
		req_fail(r, 431, "request line or headers too large");
	else if (e == HPE_UNEXPECTED_CONTENT_LENGTH || e == HPE_INVALID_CONTENT_LENGTH ||
			 e == HPE_INVALID_TRANSFER_ENCODING)
		req_fail(r, 400, "conflicting Content-Length or Transfer-Encoding");
	else
		req_fail(r, 400, "malformed HTTP request");
	return REQ_ERROR;
}

req_status
req_feed(req *r, const char *data, size_t len)
{
	size_t		room, take, used;
	enum http_errno e;

	if (r->status != 0)
		return REQ_ERROR;
	if (r->done)
		return REQ_DONE;
	if (len == 0) {				/* EOF before the head ended */
		req_fail(r, 400, "incomplete HTTP request");
		return REQ_ERROR;
	}
	room = r->max_head - r->head_bytes;
	if (room == 0) {
		req_fail(r, 431, "request line or headers too large");
		return REQ_ERROR;
	}
	take = len < room ? len : room;
	used = http_parser_execute(&r->parser, &req_settings, data, take);
	r->head_bytes += used;
	e = HTTP_PARSER_ERRNO(&r->parser);
	if (r->done && (e == HPE_OK || e == HPE_PAUSED))
		return REQ_DONE;
	if (e != HPE_OK)
		return req_parser_error(r);
	if (take < len && r->head_bytes >= r->max_head) {
		req_fail(r, 431, "request line or headers too large");
		return REQ_ERROR;
	}
	return REQ_MORE;
}
