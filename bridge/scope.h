/*
 * scope.h - which patterns an ad-hoc subscriber may use (--public-channels).
 *
 * A requested pattern P is allowed only when every channel P can match is
 * matched by at least one public pattern (P's language is a subset of the
 * union of the public patterns' languages).
 *
 * Ownership: a scope owns copies of its patterns; scope_allows keeps no
 * reference to its argument.
 */
#ifndef BRIDGE_SCOPE_H
#define BRIDGE_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct scope scope;

/*
 * Parse a comma-separated pattern list (spaces around items are ignored; an
 * empty list allows nothing).  NULL with a message in err on a bad pattern
 * or when out of memory.
 */
scope	   *scope_new(const char *list, char *err, size_t errsize);
/*
 * A new scope of base's patterns and n more (each must pass
 * sse_pattern_check): what a token adds to the public channels.  NULL
 * when out of memory.
 */
scope	   *scope_union(const scope *base, char *const *pats, size_t n);
void		scope_free(scope *s);
size_t		scope_count(const scope *s);

typedef enum scope_status {
	SCOPE_INSIDE,				/* every channel pat matches is public */
	SCOPE_OUTSIDE,				/* not (or not provably) inside: refuse, 403 */
	SCOPE_INTERNAL				/* an allocation failed: no verdict, 503 */
} scope_status;

/* Does pat (which must pass sse_pattern_check) lie inside the scope? */
scope_status scope_check(const scope *s, const char *pat, size_t plen);

#endif
