/*
 * sbuf.h - a growable, always NUL-terminated byte buffer for the torture
 * programs.  The buffer owns p; a zeroed sbuf is empty and valid.  Allocation
 * failure aborts: these are test tools, not the product.
 */
#ifndef TORTURE_SBUF_H
#define TORTURE_SBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
	char	   *p;
	size_t		len, cap;
} sbuf;

static inline void
sb_add(sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static inline void
sb_puts(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

#endif
