/*
 * route.h - turn a parsed request head into a decision: an error status, a
 * small fixed response, or the specification of a stream.
 *
 * Ownership: route_request fills a route_result that owns its patterns and
 * filter; a caller that keeps them sets the fields to NULL/0 before
 * route_result_free.  The req and scope are only read.
 */
#ifndef BRIDGE_ROUTE_H
#define BRIDGE_ROUTE_H

#include <stdint.h>

#include "request.h"
#include "scope.h"
#include "sse_json.h"

typedef enum route_kind {
	ROUTE_ERROR,				/* status, error, detail */
	ROUTE_PREFLIGHT,			/* OPTIONS: 204 with CORS headers */
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_ADHOC,				/* GET /events?channel=... */
	ROUTE_SUB					/* GET /events/<uuid> */
} route_kind;

typedef struct route_result {
	route_kind	kind;
	int			status;
	const char *error;			/* short machine-readable code */
	char		detail[256];
	char	  **patterns;		/* ROUTE_ADHOC */
	size_t		npatterns;
	sse_filter *filter;			/* ROUTE_ADHOC, compiled; NULL = empty filter */
	int64_t		last_event_id;	/* -1 = none given */
	char		sub_id[37];		/* ROUTE_SUB: lower-case canonical uuid */
} route_result;

void		route_request(const req *r, const scope *pub, route_result *out);
void		route_result_free(route_result *out);

/* Is s a canonical 8-4-4-4-12 hex uuid?  Writes the lower-case form to out. */
bool		route_parse_uuid(const char *s, size_t len, char out[37]);

#endif
