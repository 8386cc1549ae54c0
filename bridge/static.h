/*
 * static.h - files the bridge serves from memory: the browser helper
 * (/sse-bridge.js and its types) and, with --demo on, the jobs demo page at
 * "/".  bridge/bridge.mk embeds them from client/ at build time.
 *
 * Ownership: assets are static, read-only data; static_respond returns a new
 * frame owned by the caller.
 */
#ifndef BRIDGE_STATIC_H
#define BRIDGE_STATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "frame.h"
#include "request.h"

typedef struct static_asset {
	const char *path;
	const char *content_type;
	const unsigned char *body;
	size_t		len;
	bool		demo;			/* served only with --demo on */
} static_asset;

/* The asset at this exact path (no query string), or NULL. */
const static_asset *static_lookup(const char *path, size_t len, bool demo);

/*
 * If the request is a GET of an asset, set *out to its 200 response (the
 * out-of-memory 503 when it cannot be built) and return true; otherwise
 * return false and leave *out alone.  The helper's files carry
 * Access-Control-Allow-Origin: * (public code, loaded from any page); the
 * demo page follows --cors-origin.
 */
bool		static_respond(const req *r, bool demo, const char *origin, frame **out);

#endif
