/*
 * resp.c - HTTP response heads and bodies (the event-stream head is in wire.c).
 *
 * Invariants: every non-stream response carries Content-Length (or is
 * body-less) and "Connection: close"; error bodies are built with jansson so
 * any text from the request is escaped; nothing here reads configuration
 * other than the CORS origins; no function returns NULL: when a response
 * cannot be allocated, the answer is the prebuilt 503 (resp_oom), so an
 * allocation failure never loses the response nor turns into another status.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "resp.h"

#define RESP_OOM_BODY "{\"error\":\"unavailable\",\"detail\":\"out of memory\"}\n"
#define RESP_OOM_TEXT "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" \
	"Content-Length: 49\r\nRetry-After: " RESP_RETRY_AFTER "\r\nCache-Control: no-store\r\n" \
	"Connection: close\r\n\r\n" RESP_OOM_BODY

/*
 * The out-of-memory answer lives in static storage, filled on first use
 * without allocating.  This module keeps one reference to it for ever, so
 * frame_unref never frees it.
 */
static union {
	frame		f;
	unsigned char bytes[sizeof(frame) + sizeof(RESP_OOM_TEXT)];
}			resp_oom_store;

frame *
resp_oom(void)
{
	frame	   *f = &resp_oom_store.f;

	_Static_assert(sizeof(RESP_OOM_BODY) - 1 == 49, "Content-Length of the 503 body");
	if (f->refs == 0) {
		memcpy(resp_oom_store.bytes + offsetof(frame, data), RESP_OOM_TEXT, sizeof(RESP_OOM_TEXT) - 1);
		f->len = (uint32_t) (sizeof(RESP_OOM_TEXT) - 1);
		f->refs = 1;
	}
	return frame_ref(f);
}

bool
resp_is_shared(const frame *f)
{
	return f == &resp_oom_store.f;
}

const char *
resp_reason(int status)
{
	switch (status) {
		case 200: return "OK";
		case 204: return "No Content";
		case 400: return "Bad Request";
		case 401: return "Unauthorized";
		case 403: return "Forbidden";
		case 404: return "Not Found";
		case 405: return "Method Not Allowed";
		case 408: return "Request Timeout";
		case 431: return "Request Header Fields Too Large";
		case 500: return "Internal Server Error";
		case 503: return "Service Unavailable";
		default: return "Unknown";
	}
}

/*
 * cfg.cors_origin is "", "*" or a list of origins normalised by
 * cfg_origin_list (config.h); browsers send Origin in that same form.
 */
const char *
resp_cors(const char *origin, char *buf, size_t size)
{
	const char *allowed = cfg.cors_origin;

	buf[0] = '\0';
	if (allowed == NULL || allowed[0] == '\0')
		return buf;
	if (strcmp(allowed, "*") == 0)
		snprintf(buf, size, "Access-Control-Allow-Origin: *\r\n");
	else if (origin != NULL && strlen(origin) < size / 2 && cfg_origin_in(allowed, origin))
		snprintf(buf, size, "Access-Control-Allow-Origin: %s\r\n"
				 "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n", origin);
	else
		snprintf(buf, size, "Vary: Origin\r\n");
	return buf;
}

static frame *
resp_build(int status, const char *ctype, const char *body, size_t len, const char *cors)
{
	frame	   *head, *f;

	head = frame_printf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
						"Cache-Control: no-store\r\n%s%s%sConnection: close\r\n%s\r\n",
						status, resp_reason(status), ctype, len,
						status == 503 ? "Retry-After: " RESP_RETRY_AFTER "\r\n" : "",
						status == 401 ? "WWW-Authenticate: Bearer realm=\"sse-bridge\"\r\n" : "",
						status == 405 ? "Allow: GET, OPTIONS\r\n" : "", cors);
	if (head == NULL)
		return resp_oom();
	f = frame_alloc(head->len + len);
	if (f != NULL) {
		memcpy(f->data, head->data, head->len);
		memcpy(f->data + head->len, body, len);
	}
	frame_unref(head);
	return f != NULL ? f : resp_oom();
}

frame *
resp_body(int status, const char *ctype, const char *body, size_t len, const char *origin)
{
	char		cors[512];

	return resp_build(status, ctype, body, len, resp_cors(origin, cors, sizeof(cors)));
}

frame *
resp_public(const char *ctype, const char *body, size_t len)
{
	return resp_build(200, ctype, body, len, "Access-Control-Allow-Origin: *\r\n");
}

/* A JSON body {key:word,"detail":detail} with a final newline. */
static frame *
resp_json(int status, const char *key, const char *word, const char *detail, const char *origin)
{
	json_t	   *o = json_pack("{s:s, s:s}", key, word, "detail", detail);
	char	   *body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	frame	   *f = resp_oom();

	if (body != NULL) {
		size_t		n = strlen(body);

		body[n] = '\n';			/* json_dumps leaves room: replace NUL */
		frame_unref(f);
		f = resp_body(status, "application/json", body, n + 1, origin);
	}
	free(body);
	json_decref(o);
	return f;
}

frame *
resp_error(int status, const char *code, const char *detail, const char *origin)
{
	return resp_json(status, "error", code, detail, origin);
}

frame *
resp_status(int status, const char *word, const char *detail, const char *origin)
{
	return resp_json(status, "status", word, detail, origin);
}

frame *
resp_busy(const char *origin, const char *detail)
{
	char		cors[512];
	frame	   *f;

	f = frame_printf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\nRetry-After: " RESP_RETRY_AFTER "\r\nConnection: close\r\n%s\r\n"
					 "{\"error\":\"unavailable\",\"detail\":\"%s\"}\n",
					 strlen(detail) + 36, resp_cors(origin, cors, sizeof(cors)), detail);
	return f != NULL ? f : resp_oom();
}

frame *
resp_empty(int status, const char *origin, int preflight)
{
	char		cors[512];
	const char *pre = "";

	if (preflight && cfg.cors_origin && cfg.cors_origin[0])
		pre = "Access-Control-Allow-Methods: GET, OPTIONS\r\n"
			"Access-Control-Allow-Headers: Last-Event-ID, Cache-Control, Authorization\r\n"
			"Access-Control-Max-Age: 600\r\n";
	frame	   *f = frame_printf("HTTP/1.1 %d %s\r\nConnection: close\r\n%s%s\r\n",
								 status, resp_reason(status), resp_cors(origin, cors, sizeof(cors)), pre);

	return f != NULL ? f : resp_oom();
}
