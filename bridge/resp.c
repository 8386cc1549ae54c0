/*
 * resp.c - HTTP response heads and bodies (the event-stream head is in wire.c).
 *
 * Invariants: every non-stream response carries Content-Length (or is
 * body-less) and "Connection: close"; error bodies are built with jansson so
 * any text from the request is escaped; nothing here reads configuration
 * other than the CORS origin.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "resp.h"

const char *
resp_reason(int status)
{
	switch (status) {
		case 200: return "OK";
		case 204: return "No Content";
		case 400: return "Bad Request";
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

const char *
resp_cors(const char *origin, char *buf, size_t size)
{
	const char *allowed = cfg.cors_origin;

	buf[0] = '\0';
	if (allowed == NULL || allowed[0] == '\0')
		return buf;
	if (strcmp(allowed, "*") == 0)
		snprintf(buf, size, "Access-Control-Allow-Origin: *\r\n");
	else if (origin != NULL && strcmp(origin, allowed) == 0)
		snprintf(buf, size, "Access-Control-Allow-Origin: %s\r\n"
				 "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n", allowed);
	else
		snprintf(buf, size, "Vary: Origin\r\n");
	return buf;
}

frame *
resp_body(int status, const char *ctype, const char *body, size_t len, const char *origin)
{
	char		cors[512];
	frame	   *head, *f;

	head = frame_printf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
						"Cache-Control: no-store\r\n%s%sConnection: close\r\n%s\r\n",
						status, resp_reason(status), ctype, len,
						status == 503 ? "Retry-After: " RESP_RETRY_AFTER "\r\n" : "",
						status == 405 ? "Allow: GET, OPTIONS\r\n" : "",
						resp_cors(origin, cors, sizeof(cors)));
	if (head == NULL)
		return NULL;
	f = frame_alloc(head->len + len);
	if (f != NULL) {
		memcpy(f->data, head->data, head->len);
		memcpy(f->data + head->len, body, len);
	}
	frame_unref(head);
	return f;
}

/* A JSON body {key:word,"detail":detail} with a final newline. */
static frame *
resp_json(int status, const char *key, const char *word, const char *detail, const char *origin)
{
	json_t	   *o = json_pack("{s:s, s:s}", key, word, "detail", detail);
	char	   *body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	frame	   *f = NULL;

	if (body != NULL) {
		size_t		n = strlen(body);

		body[n] = '\n';			/* json_dumps leaves room: replace NUL */
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

	return frame_printf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
						"Content-Length: %zu\r\nRetry-After: " RESP_RETRY_AFTER "\r\nConnection: close\r\n%s\r\n"
						"{\"error\":\"unavailable\",\"detail\":\"%s\"}\n",
						strlen(detail) + 36, resp_cors(origin, cors, sizeof(cors)), detail);
}

frame *
resp_empty(int status, const char *origin, int preflight)
{
	char		cors[512];
	const char *pre = "";

	if (preflight && cfg.cors_origin && cfg.cors_origin[0])
		pre = "Access-Control-Allow-Methods: GET, OPTIONS\r\n"
			"Access-Control-Allow-Headers: Last-Event-ID, Cache-Control\r\n"
			"Access-Control-Max-Age: 600\r\n";
	return frame_printf("HTTP/1.1 %d %s\r\nConnection: close\r\n%s%s\r\n",
						status, resp_reason(status), resp_cors(origin, cors, sizeof(cors)), pre);
}
