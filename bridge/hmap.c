/*
 * hmap.c - chained hash map with FNV-1a hashing and power-of-two tables.
 *
 * Invariants: n entries; the table doubles when n exceeds nb, so chains stay
 * short; every entry's hash is the hash of its key.
 */
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

uint64_t
hmap_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t	h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

static hmap_entry **
hmap_slot(const hmap *m, const void *key, size_t klen, uint64_t h)
{
	hmap_entry **pp = &m->b[h & (m->nb - 1)];

	while (*pp && !((*pp)->hash == h && (*pp)->klen == klen &&
					memcmp((*pp)->key, key, klen) == 0))
		pp = &(*pp)->next;
	return pp;
}

void *
hmap_get(const hmap *m, const void *key, size_t klen)
{
	hmap_entry **pp;

	if (m->n == 0)
		return NULL;
	pp = hmap_slot(m, key, klen, hmap_hash(key, klen));
	return *pp ? (*pp)->value : NULL;
}

static bool
hmap_grow(hmap *m)
{
	size_t		nb = m->nb ? m->nb * 2 : 16;
	hmap_entry **b = calloc(nb, sizeof(hmap_entry *));

	if (b == NULL)
		return false;
	for (size_t i = 0; i < m->nb; i++) {
		hmap_entry *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return true;
}

bool
hmap_put(hmap *m, const void *key, size_t klen, void *value)
{
	uint64_t	h = hmap_hash(key, klen);
	hmap_entry **pp, *e;

	if ((m->n >= m->nb) && !hmap_grow(m) && m->nb == 0)
		return false;
	pp = hmap_slot(m, key, klen, h);
	if (*pp) {
		(*pp)->value = value;
		return true;
	}
	e = malloc(sizeof(hmap_entry) + klen);
	if (e == NULL)
		return false;
	e->next = NULL;
	e->hash = h;
	e->value = value;
	e->klen = klen;
	memcpy(e->key, key, klen);
	*pp = e;
	m->n++;
	return true;
}

void *
hmap_del(hmap *m, const void *key, size_t klen)
{
	hmap_entry **pp, *e;
	void	   *v;

	if (m->n == 0)
		return NULL;
	pp = hmap_slot(m, key, klen, hmap_hash(key, klen));
	if ((e = *pp) == NULL)
		return NULL;
	*pp = e->next;
	v = e->value;
	free(e);
	m->n--;
	return v;
}

void
hmap_clear(hmap *m)
{
	for (size_t i = 0; i < m->nb; i++) {
		hmap_entry *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->b);
	*m = (hmap) {0};
}

hmap_entry *
hmap_first(const hmap *m, size_t *i)
{
	for (*i = 0; *i < m->nb; (*i)++)
		if (m->b[*i])
			return m->b[*i];
	return NULL;
}

hmap_entry *
hmap_next(const hmap *m, hmap_entry *e, size_t *i)
{
	if (e->next)
		return e->next;
	for ((*i)++; *i < m->nb; (*i)++)
		if (m->b[*i])
			return m->b[*i];
	return NULL;
}
