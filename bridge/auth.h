/*
 * auth.h - who may open a stream: JWTs from the request (Authorization:
 * Bearer, the --jwt-cookie cookie, ?access_token= with --jwt-query on),
 * verified (jwt.h) and cached, and what they grant (channel patterns, a
 * filter ANDed with the client's).
 *
 * Decisions (docs/auth.md):
 *   no token      the request is routed as before: public channels only;
 *                 a channel that is not public is 401 (a token would be
 *                 needed) when tokens are on, 403 when they are off
 *   invalid token 401 {"error":"invalid_token"} (token_expired when it has
 *                 expired), whatever the channel: never anonymous
 *   valid token   the patterns must lie inside the public patterns and the
 *                 granted ones together (else 403); the granted filter is
 *                 ANDed into the stream's filter (a conflict is 403)
 *   our failure   503 with Retry-After, never a 4xx
 *
 * Ownership: a grant is reference-counted (auth_grant_ref/unref); the
 * cache holds one reference per entry and every stream that opened with
 * the token one more.  Keys and the cache belong to this module; a reload
 * swaps the keys and empties the cache, and leaves open streams alone.
 */
#ifndef BRIDGE_AUTH_H
#define BRIDGE_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "request.h"
#include "route.h"
#include "scope.h"

typedef struct auth_grant {
	int			refs;
	char	   *sub;			/* the token's subject */
	int64_t		exp;			/* its exp claim */
	int64_t		end;			/* exp + leeway: from then on the token is refused */
	char	  **channels;		/* granted patterns */
	size_t		nchannels;
	char	   *filter;			/* granted filter (exact JSON text), NULL = none */
	char		hash[13];		/* short hash of the token, for logs */
	unsigned char digest[32];	/* SHA-256 of the token */
	size_t		bytes;			/* what the cache charges for it */
} auth_grant;

/*
 * Load the keys named by cfg (jwt_key, jwt_alg) and the claim policy.
 * True when tokens are off (no --jwt-key) or the keys loaded; false with
 * the reason in err.
 */
bool		auth_init(char *err, size_t errsize);
/* Tokens are accepted (a --jwt-key was given). */
bool		auth_enabled(void);
/*
 * Read the key file again (SIGHUP).  On success the new keys replace the
 * old ones and the cache is emptied; on failure the old keys stay and the
 * reason is logged.  Open streams are not touched either way.
 */
bool		auth_reload(void);
void		auth_shutdown(void);

/*
 * Route a request (route_request) under what its token grants.  *grant
 * is set (a new reference, NULL when no valid token came) for a stream
 * request whose token verified; rr is as route_request leaves it, with
 * 401/403/503 for the decisions above.
 */
void		auth_route(const req *r, const scope *pub, route_result *rr, auth_grant **grant);

/* The wall clock in seconds, as tokens count it. */
int64_t		auth_now(void);
/* Is the grant's token no longer accepted at now? */
static inline bool
auth_expired(const auth_grant *g, int64_t now)
{
	return now >= g->end;
}

auth_grant *auth_grant_ref(auth_grant *g);
void		auth_grant_unref(auth_grant *g);

/* Counters for /metrics: tokens answered from the cache, verified in full, and refused. */
extern uint64_t auth_cache_hits;
extern uint64_t auth_verifications;
extern uint64_t auth_refusals;

#endif
