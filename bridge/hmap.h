/*
 * hmap.h - a small chained hash map from byte strings to pointers.
 *
 * Ownership: the map copies keys; values are borrowed pointers the map never
 * frees.
 */
#ifndef BRIDGE_HMAP_H
#define BRIDGE_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hmap_entry {
	struct hmap_entry *next;
	uint64_t	hash;
	void	   *value;
	size_t		klen;
	char		key[];
} hmap_entry;

typedef struct hmap {
	hmap_entry **b;
	size_t		nb;				/* buckets, power of two (0 before first put) */
	size_t		n;
} hmap;

uint64_t	hmap_hash(const void *key, size_t len);
void	   *hmap_get(const hmap *m, const void *key, size_t klen);
/* Insert or replace; false on OOM. */
bool		hmap_put(hmap *m, const void *key, size_t klen, void *value);
/* Remove; returns the old value or NULL. */
void	   *hmap_del(hmap *m, const void *key, size_t klen);
/* Free the table (values untouched). */
void		hmap_clear(hmap *m);

/* Iterate: for (e = hmap_first(m, &i); e; e = hmap_next(m, e, &i)) */
hmap_entry *hmap_first(const hmap *m, size_t *i);
hmap_entry *hmap_next(const hmap *m, hmap_entry *e, size_t *i);

#endif
