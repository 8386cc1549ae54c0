/*
 * scope.c - pattern-within-patterns inclusion for --public-channels.
 *
 * Method: a pattern is a small NFA over channel segments (state i = "the
 * first i pattern segments are consumed"; "*" consumes one segment, "#"
 * loops and has an epsilon edge forward).  Segments are an infinite
 * alphabet, but every segment that is not a literal of some pattern behaves
 * the same everywhere, so the alphabet {literals} + {OTHER} is exact.  We
 * explore the product of the determinised requested NFA and the determinised
 * union of public NFAs; P is allowed iff no reachable pair (after at least
 * one segment, since channels are never empty) accepts in P but not in the
 * union.  The exploration is capped; hitting the cap denies (fails closed).
 * A failed allocation gives no verdict (SCOPE_INTERNAL), never a denial.
 *
 * Invariants: states of all patterns share one numbering; each pattern k
 * owns states [base[k], base[k] + nseg[k]], the last one accepting.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scope.h"
#include "sse_match.h"

#define SCOPE_MAX_PAIRS 4096
#define SCOPE_OTHER (-1)

typedef struct scope_seg {
	const char *s;
	size_t		len;
	char		kind;			/* 'l' literal, '*' one, '#' any */
	int			sym;			/* symbol id for literals */
} scope_seg;

typedef struct scope_nfa {
	scope_seg  *seg;			/* all segments; seg[i] leaves state i */
	uint8_t    *accept;			/* per state */
	size_t		nstates;
	size_t		words;			/* uint64 words per state set */
} scope_nfa;

struct scope {
	char	  **pats;
	size_t		npats;
};

static void
scope_trim(const char **b, const char **e)
{
	while (*b < *e && (**b == ' ' || **b == '\t'))
		(*b)++;
	while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static bool
scope_add(scope *s, const char *b, const char *e, char *err, size_t errsize)
{
	char	  **np;
	sse_name_status st = sse_pattern_check(b, (size_t) (e - b));

	if (st != SSE_NAME_OK) {
		snprintf(err, errsize, "public pattern \"%.*s\": %s", (int) (e - b), b,
				 sse_name_status_message(st));
		return false;
	}
	np = realloc(s->pats, sizeof(char *) * (s->npats + 1));
	if (np != NULL) {
		s->pats = np;
		if ((s->pats[s->npats] = strndup(b, (size_t) (e - b))) != NULL) {
			s->npats++;
			return true;
		}
	}
	snprintf(err, errsize, "out of memory");
	return false;
}

scope *
scope_new(const char *list, char *err, size_t errsize)
{
	scope	   *s = calloc(1, sizeof(scope));
	const char *p = list;

	if (s == NULL) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	while (*p) {
		const char *b = p, *e = strchr(p, ',');

		if (e == NULL)
			e = p + strlen(p);
		p = *e ? e + 1 : e;
		scope_trim(&b, &e);
		if (b == e)
			continue;
		if (!scope_add(s, b, e, err, errsize)) {
			scope_free(s);
			return NULL;
		}
	}
	return s;
}

scope *
scope_union(const scope *base, char *const *pats, size_t n)
{
	scope	   *s = calloc(1, sizeof(scope));
	size_t		total = base->npats + n;

	if (s == NULL || (total > 0 && (s->pats = calloc(total, sizeof(char *))) == NULL)) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < total; i++) {
		if ((s->pats[i] = strdup(i < base->npats ? base->pats[i] : pats[i - base->npats])) == NULL) {
			scope_free(s);
			return NULL;
		}
		s->npats++;
	}
	return s;
}

void
scope_free(scope *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->npats; i++)
		free(s->pats[i]);
	free(s->pats);
	free(s);
}

size_t
scope_count(const scope *s)
{
	return s->npats;
}

/* Append pattern's segments as states to nfa; nfa->seg has room. */
static void
scope_nfa_add(scope_nfa *nfa, const char *pat, size_t plen)
{
	const char *p = pat, *end = pat + plen;

	for (;;) {
		const char *q = memchr(p, '.', (size_t) (end - p));
		scope_seg  *sg = &nfa->seg[nfa->nstates];

		if (q == NULL)
			q = end;
		sg->s = p;
		sg->len = (size_t) (q - p);
		sg->kind = (sg->len == 1 && (*p == '*' || *p == '#')) ? *p : 'l';
		sg->sym = SCOPE_OTHER;
		nfa->accept[nfa->nstates++] = 0;
		if (q == end)
			break;
		p = q + 1;
	}
	nfa->seg[nfa->nstates].kind = 0;	/* the accepting state has no edge */
	nfa->accept[nfa->nstates++] = 1;
}

static size_t
scope_count_segs(const char *pat, size_t plen)
{
	size_t		n = 1;

	for (size_t i = 0; i < plen; i++)
		n += pat[i] == '.';
	return n;
}

typedef struct scope_ctx {
	scope_nfa	nfa;			/* states of P first, then of the public union */
	size_t		pstates;		/* states belonging to P */
	const char **syms;			/* distinct literal segments */
	size_t	   *symlen;
	int			nsyms;
	uint64_t   *pairs;			/* visited state sets, words each */
	size_t		npairs;
	uint32_t   *table;			/* hash table of pair indexes + 1 */
	size_t		tsize;
	size_t		qhead;			/* next pair to expand (pairs are in BFS order) */
} scope_ctx;

static void
scope_intern(scope_ctx *c)
{
	for (size_t i = 0; i < c->nfa.nstates; i++) {
		scope_seg  *sg = &c->nfa.seg[i];
		int			k;

		if (sg->kind != 'l')
			continue;
		for (k = 0; k < c->nsyms; k++)
			if (c->symlen[k] == sg->len && memcmp(c->syms[k], sg->s, sg->len) == 0)
				break;
		if (k == c->nsyms) {
			c->syms[k] = sg->s;
			c->symlen[k] = sg->len;
			c->nsyms++;
		}
		sg->sym = k;
	}
}

static inline bool
bit_get(const uint64_t *set, size_t i)
{
	return (set[i / 64] >> (i % 64)) & 1;
}

static inline void
bit_set(uint64_t *set, size_t i)
{
	set[i / 64] |= (uint64_t) 1 << (i % 64);
}

/* Epsilon closure in place: "#" lets a state move forward for free. */
static void
scope_close(const scope_nfa *nfa, uint64_t *set)
{
	for (size_t i = 0; i < nfa->nstates; i++)
		if (bit_get(set, i) && nfa->seg[i].kind == '#')
			bit_set(set, i + 1);
}

static void
scope_step(const scope_nfa *nfa, const uint64_t *from, uint64_t *to, int sym)
{
	memset(to, 0, nfa->words * sizeof(uint64_t));
	for (size_t i = 0; i < nfa->nstates; i++) {
		const scope_seg *sg = &nfa->seg[i];

		if (!bit_get(from, i))
			continue;
		if (sg->kind == '#')
			bit_set(to, i);
		else if (sg->kind == '*' || (sg->kind == 'l' && sg->sym == sym))
			bit_set(to, i + 1);
	}
	scope_close(nfa, to);
}

static uint64_t
scope_hash(const uint64_t *set, size_t words)
{
	uint64_t	h = 1469598103934665603ULL;

	for (size_t i = 0; i < words; i++)
		h = (h ^ set[i]) * 1099511628211ULL;
	return h;
}

/* Add set if unseen; returns false when the cap is reached. */
static bool
scope_visit(scope_ctx *c, const uint64_t *set)
{
	size_t		w = c->nfa.words;
	size_t		slot = scope_hash(set, w) & (c->tsize - 1);

	while (c->table[slot] != 0) {
		if (memcmp(&c->pairs[(c->table[slot] - 1) * w], set, w * sizeof(uint64_t)) == 0)
			return true;
		slot = (slot + 1) & (c->tsize - 1);
	}
	if (c->npairs == SCOPE_MAX_PAIRS)
		return false;
	memcpy(&c->pairs[c->npairs * w], set, w * sizeof(uint64_t));
	c->table[slot] = (uint32_t) ++c->npairs;
	return true;
}

/* Accepting in P (states < pstates) but in no public pattern? */
static bool
scope_escapes(const scope_ctx *c, const uint64_t *set)
{
	bool		p_acc = false, q_acc = false;

	for (size_t i = 0; i < c->nfa.nstates; i++) {
		if (!c->nfa.accept[i] || !bit_get(set, i))
			continue;
		if (i < c->pstates)
			p_acc = true;
		else
			q_acc = true;
	}
	return p_acc && !q_acc;
}

/* Breadth-first search over reachable set pairs; true = included. */
static bool
scope_search(scope_ctx *c, uint64_t *next)
{
	while (c->qhead < c->npairs) {
		const uint64_t *cur = &c->pairs[c->qhead++ * c->nfa.words];

		for (int sym = SCOPE_OTHER; sym < c->nsyms; sym++) {
			bool		alive = false;

			scope_step(&c->nfa, cur, next, sym);
			for (size_t i = 0; i < c->pstates && !alive; i++)
				alive = bit_get(next, i);
			if (!alive)
				continue;		/* P matches nothing down this path */
			if (scope_escapes(c, next) || !scope_visit(c, next))
				return false;
		}
	}
	return true;
}

static bool
scope_ctx_init(scope_ctx *c, const scope *s, const char *pat, size_t plen)
{
	size_t		total = scope_count_segs(pat, plen) + 1;

	for (size_t k = 0; k < s->npats; k++)
		total += scope_count_segs(s->pats[k], strlen(s->pats[k])) + 1;
	c->nfa.words = total / 64 + 1;
	c->nfa.seg = calloc(total + 1, sizeof(scope_seg));
	c->nfa.accept = calloc(total + 1, 1);
	c->syms = calloc(total, sizeof(char *));
	c->symlen = calloc(total, sizeof(size_t));
	c->pairs = calloc((size_t) SCOPE_MAX_PAIRS * c->nfa.words, sizeof(uint64_t));
	c->tsize = SCOPE_MAX_PAIRS * 2;
	c->table = calloc(c->tsize, sizeof(uint32_t));
	if (!c->nfa.seg || !c->nfa.accept || !c->syms || !c->symlen || !c->pairs ||
		!c->table)
		return false;
	scope_nfa_add(&c->nfa, pat, plen);
	c->pstates = c->nfa.nstates;
	for (size_t k = 0; k < s->npats; k++)
		scope_nfa_add(&c->nfa, s->pats[k], strlen(s->pats[k]));
	scope_intern(c);
	return true;
}

static void
scope_ctx_free(scope_ctx *c)
{
	free(c->nfa.seg);
	free(c->nfa.accept);
	free(c->syms);
	free(c->symlen);
	free(c->pairs);
	free(c->table);
}

scope_status
scope_check(const scope *s, const char *pat, size_t plen)
{
	scope_ctx	c = {0};
	uint64_t   *start = NULL, *next = NULL;
	scope_status rc = SCOPE_INTERNAL;

	if (s->npats == 0 || plen == 0)
		return SCOPE_OUTSIDE;
	if (scope_ctx_init(&c, s, pat, plen)) {
		start = calloc(c.nfa.words, sizeof(uint64_t));
		next = calloc(c.nfa.words, sizeof(uint64_t));
	}
	if (start && next) {
		bit_set(start, 0);
		for (size_t k = 0, st = c.pstates; k < s->npats; k++) {
			bit_set(start, st);
			st += scope_count_segs(s->pats[k], strlen(s->pats[k])) + 1;
		}
		scope_close(&c.nfa, start);
		/* the cap on explored pairs denies: a verdict, the same every time */
		rc = scope_visit(&c, start) && scope_search(&c, next) ? SCOPE_INSIDE : SCOPE_OUTSIDE;
	}
	free(start);
	free(next);
	scope_ctx_free(&c);
	return rc;
}
