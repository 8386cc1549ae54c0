/*
 * hub.c - subscription index and per-event fan-out.
 *
 * Invariants:
 *  - every added hub_sub has exactly one entry per pattern, each in exactly
 *    one list of the bucket for that pattern text;
 *  - a bucket exists while it has entries; a key list exists while it has
 *    entries; empty ones are freed at once;
 *  - literal buckets are visited before wildcard buckets, so a close event
 *    that ends a stream reaches it through its literal pattern first;
 *  - a close ends (and reaches, whatever the filter) exactly the streams
 *    with its channel as a literal pattern; through a wildcard pattern it is
 *    an ordinary event, judged by the filter;
 *  - hub_dispatch never changes the index (callbacks defer changes);
 *  - hub_dispatch parses a payload only when a matching bucket holds a
 *    filter, and before it delivers anything;
 *  - a solo entry (its subscription has one pattern, and no filter or one
 *    that is exactly its key list's pair) sits in the solo group of its
 *    bucket or key list: every member of a group is due exactly the
 *    group's events.  Inside a batch a group's events wait in its run (a
 *    chain through the batch's item array, in id order) and the group is
 *    on the touched list; outside a batch, and while flushing, no group
 *    has a run;
 *  - hub_matches agrees with sse_pattern_match for every pattern: a
 *    prepared literal pattern (checked, so at most SSE_CHANNEL_MAX bytes of
 *    non-empty segments) matches exactly the byte-equal channel, which is
 *    what sse_pattern_match decides for it.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "hub.h"
#include "sse_filter.h"
#include "sse_match.h"

#define HUB_KEY_MAX 512

typedef struct hub_list {
	hub_entry  *first;
} hub_list;

typedef struct hub_solo {
	hub_list	list;
	int			first;			/* the batch's items for it (-1: none) */
	int			last;
	struct hub_solo *tnext;		/* touched list (first >= 0) */
} hub_solo;

typedef struct hub_bucket {
	char	   *pattern;
	size_t		plen;
	bool		literal;
	size_t		n;
	hub_list	all;			/* no filter, several patterns */
	hub_solo	solo;			/* no filter, this one pattern */
	hub_list	scan;			/* filter with no indexable member */
	hmap		keys;			/* encoded (key, scalar) -> hub_keylist */
	struct hub_bucket *wnext;	/* wildcard buckets list */
	struct hub_bucket **wpprev;
} hub_bucket;

typedef struct hub_keylist {
	hub_list	list;
	hub_solo	solo;			/* exactly this pair, one pattern */
	size_t		klen;
	char		key[];
} hub_keylist;

struct hub_entry {
	hub_entry  *next;
	hub_entry **pprev;
	hub_sub    *sub;
	hub_bucket *bucket;
	hub_keylist *kl;			/* NULL when in all or scan */
	bool		exact;			/* the filter is exactly kl's key/value pair */
	hub_solo   *group;			/* its solo group, or NULL */
};

/* Events a batch holds back for solo subscriptions before it flushes. */
#define HUB_BATCH_MAX 512

static struct {
	hmap		literal;		/* pattern text -> bucket */
	hmap		wild_by_text;	/* pattern text -> bucket */
	hub_bucket *wild;			/* all wildcard buckets */
	size_t		nsubs;
	hub_deliver_fn deliver;
	hub_deliver_run_fn deliver_run;
	bool		index;			/* key/value index on (off: every filter scanned) */
	/* the batch */
	bool		batching;
	bool		flushing;
	size_t		piece_max;
	hub_solo   *touched;
	size_t		nitems;
	hub_item	items[HUB_BATCH_MAX];
	int			next[HUB_BATCH_MAX];	/* the next item of the same group */
} hub;

uint64_t	hub_filter_evals;

void
hub_init(hub_deliver_fn deliver)
{
	memset(&hub, 0, sizeof(hub));
	hub.deliver = deliver;
	hub.index = true;
}

void
hub_set_run(hub_deliver_run_fn deliver_run)
{
	if (hub.nsubs == 0)
		hub.deliver_run = deliver_run;
}

void
hub_set_index(bool use_index)
{
	if (hub.nsubs == 0)
		hub.index = use_index;
}

void
hub_shutdown(void)
{
	hub_batch_end();
	hmap_clear(&hub.literal);
	hmap_clear(&hub.wild_by_text);
	hub.wild = NULL;
}

size_t
hub_count(void)
{
	return hub.nsubs;
}

/*
 * Encode (key, canonical scalar) into buf; returns the length, or 0 when the
 * encoding would not fit.  Scalars are canonical (sse_json.h): two are
 * equal under jsonb exactly when their encodings are equal.
 */
static size_t
hub_encode(const char *k, size_t klen, const sse_scalar *v, char *buf, size_t size)
{
	uint32_t	kl;

	if (klen > UINT32_MAX || sizeof(uint32_t) + klen + 1 + v->len > size)
		return 0;
	kl = (uint32_t) klen;
	memcpy(buf, &kl, sizeof(kl));
	memcpy(buf + sizeof(kl), k, klen);
	buf[sizeof(kl) + klen] = v->tag;
	if (v->len > 0)
		memcpy(buf + sizeof(kl) + klen + 1, v->s, v->len);
	return sizeof(kl) + klen + 1 + v->len;
}

/*
 * The index key of a filter: its first scalar member, or 0 if none fits.
 * *exact: the filter has no other member, so the key/value lookup alone
 * decides (canonical scalars compare exactly).
 */
static size_t
hub_filter_key(const sse_filter *filter, char *buf, size_t size, bool *exact)
{
	size_t		nm = sse_filter_nmembers(filter);

	*exact = false;
	for (size_t i = 0; i < nm; i++) {
		const char *k;
		size_t		klen, n;
		bool		is_scalar;
		sse_scalar	v;

		if (!sse_filter_member(filter, i, &k, &klen, &is_scalar, &v) || !is_scalar)
			continue;
		n = hub_encode(k, klen, &v, buf, size);
		if (n > 0) {
			*exact = nm == 1;
			return n;
		}
	}
	return 0;
}

static void
hub_list_insert(hub_list *l, hub_entry *e)
{
	e->next = l->first;
	if (e->next)
		e->next->pprev = &e->next;
	e->pprev = &l->first;
	l->first = e;
}

static void
hub_list_unlink(hub_entry *e)
{
	*e->pprev = e->next;
	if (e->next)
		e->next->pprev = e->pprev;
	e->next = NULL;
	e->pprev = NULL;
}

static hub_bucket *
hub_bucket_get(const char *pat, bool create)
{
	size_t		plen = strlen(pat);
	bool		literal = sse_pattern_is_literal(pat, plen);
	hmap	   *m = literal ? &hub.literal : &hub.wild_by_text;
	hub_bucket *b = hmap_get(m, pat, plen);

	if (b != NULL || !create)
		return b;
	b = calloc(1, sizeof(hub_bucket));
	if (b == NULL || (b->pattern = strdup(pat)) == NULL || !hmap_put(m, pat, plen, b)) {
		if (b)
			free(b->pattern);
		free(b);
		return NULL;
	}
	b->plen = plen;
	b->literal = literal;
	b->solo.first = b->solo.last = -1;
	if (!literal) {
		b->wnext = hub.wild;
		if (b->wnext)
			b->wnext->wpprev = &b->wnext;
		b->wpprev = &hub.wild;
		hub.wild = b;
	}
	return b;
}

static void
hub_bucket_release(hub_bucket *b)
{
	if (b->n > 0)
		return;
	hmap_del(b->literal ? &hub.literal : &hub.wild_by_text, b->pattern, b->plen);
	if (!b->literal) {
		*b->wpprev = b->wnext;
		if (b->wnext)
			b->wnext->wpprev = b->wpprev;
	}
	hmap_clear(&b->keys);
	free(b->pattern);
	free(b);
}

/* Put e into the right list of bucket b for filter f. */
static bool
hub_place(hub_bucket *b, hub_entry *e, const sse_filter *f)
{
	char		key[HUB_KEY_MAX];
	bool		exact = false;
	size_t		klen = f && hub.index ? hub_filter_key(f, key, sizeof(key), &exact) : 0;
	hub_keylist *kl;
	bool		solo = e->sub->npatterns == 1 && hub.deliver_run != NULL;

	if (f == NULL && solo) {
		hub_list_insert(&b->solo.list, e);
		e->group = &b->solo;
		return true;
	}
	if (f == NULL || klen == 0) {
		hub_list_insert(f == NULL ? &b->all : &b->scan, e);
		return true;
	}
	kl = hmap_get(&b->keys, key, klen);
	if (kl == NULL) {
		kl = calloc(1, sizeof(hub_keylist) + klen);
		if (kl == NULL || !hmap_put(&b->keys, key, klen, kl)) {
			free(kl);
			return false;
		}
		kl->klen = klen;
		memcpy(kl->key, key, klen);
		kl->solo.first = kl->solo.last = -1;
	}
	e->kl = kl;
	if (exact && solo) {
		hub_list_insert(&kl->solo.list, e);
		e->group = &kl->solo;
		e->exact = true;
		return true;
	}
	hub_list_insert(&kl->list, e);
	e->exact = exact;
	return true;
}

static void
hub_unplace(hub_entry *e)
{
	hub_keylist *kl = e->kl;

	hub_list_unlink(e);
	e->group = NULL;
	if (kl != NULL && kl->list.first == NULL && kl->solo.list.first == NULL) {
		hmap_del(&e->bucket->keys, kl->key, kl->klen);
		free(kl);
	}
	e->kl = NULL;
	e->exact = false;
	e->bucket->n--;
	hub_bucket_release(e->bucket);
	e->bucket = NULL;
}

bool
hub_add(hub_sub *s)
{
	assert(!hub.flushing);
	hub_flush();				/* it gets only the events after now */
	s->entries = calloc(s->npatterns, sizeof(hub_entry));
	if (s->entries == NULL)
		return false;
	for (size_t i = 0; i < s->npatterns; i++) {
		hub_entry  *e = &s->entries[i];
		hub_bucket *b = hub_bucket_get(s->patterns[i], true);

		e->sub = s;
		if (b == NULL || !hub_place(b, e, s->filter)) {
			if (b)
				hub_bucket_release(b);
			hub_remove(s);
			return false;
		}
		e->bucket = b;
		b->n++;
	}
	s->seen = -1;
	hub.nsubs++;
	return true;
}

void
hub_remove(hub_sub *s)
{
	bool		complete = true;

	if (s->entries == NULL)
		return;
	assert(!hub.flushing);
	hub_flush();				/* what it was due; and no run holds an emptied bucket */
	for (size_t i = 0; i < s->npatterns; i++) {
		if (s->entries[i].bucket != NULL)
			hub_unplace(&s->entries[i]);
		else
			complete = false;
	}
	if (complete)
		hub.nsubs--;
	free(s->entries);
	s->entries = NULL;
}

static void
hub_send(hub_sub *s, event *ev, bool ends)
{
	if (s->seen >= ev->id)
		return;
	s->seen = ev->id;
	hub.deliver(s, ev, ends);
}

static void
hub_list_all(hub_list *l, event *ev, bool ends)
{
	for (hub_entry *e = l->first, *next; e; e = next) {
		next = e->next;
		hub_send(e->sub, ev, ends);
	}
}

static void
hub_list_filtered(hub_list *l, event *ev, sse_doc *doc)
{
	for (hub_entry *e = l->first, *next; e; e = next) {
		next = e->next;
		if (e->sub->seen >= ev->id)
			continue;
		if (!e->exact) {		/* exact: the key/value lookup already decided */
			hub_filter_evals++;
			if (!sse_filter_eval(e->sub->filter, doc))
				continue;
		}
		hub_send(e->sub, ev, false);
	}
}

/*
 * A close in a literal bucket ends every stream there, whatever its filter:
 * they all get it.  (In a wildcard bucket it is an ordinary event.)
 */
static void
hub_bucket_close(hub_bucket *b, event *ev)
{
	size_t		i;

	hub_list_all(&b->all, ev, true);
	hub_list_all(&b->solo.list, ev, true);
	hub_list_all(&b->scan, ev, true);
	for (hmap_entry *he = hmap_first(&b->keys, &i); he; he = hmap_next(&b->keys, he, &i)) {
		hub_list_all(&((hub_keylist *) he->value)->list, ev, true);
		hub_list_all(&((hub_keylist *) he->value)->solo.list, ev, true);
	}
}

/* Hold ev back for group's members (a batch); false: deliver it now. */
static bool
hub_solo_defer(hub_solo *g, event *ev)
{
	frame	   *f;
	int			i;

	if (!hub.batching || ev->is_close)
		return false;			/* a close may end streams: in order, at once */
	if ((f = event_frame(ev)) == NULL) {
		hub_flush();			/* what came before, then ev alone (its OOM per stream) */
		return false;
	}
	if (hub.nitems == HUB_BATCH_MAX)
		hub_flush();
	i = (int) hub.nitems++;
	hub.items[i] = (hub_item) {frame_ref(f), ev->id, ev->created_us};
	hub.next[i] = -1;
	if (g->first < 0) {
		g->first = i;
		g->tnext = hub.touched;
		hub.touched = g;
	} else
		hub.next[g->last] = i;
	g->last = i;
	return true;
}

/* ev (not a close on a literal pattern) for every member of group g. */
static void
hub_solo_deliver(hub_solo *g, event *ev)
{
	if (g->list.first != NULL && !hub_solo_defer(g, ev))
		hub_list_all(&g->list, ev, false);
}

static void
hub_bucket_keyed(hub_bucket *b, event *ev, sse_doc *doc)
{
	const char *k;
	json_t	   *v;
	char		key[HUB_KEY_MAX];

	json_object_foreach((json_t *) sse_doc_json(doc), k, v) {
		sse_scalar	sc;
		size_t		klen = 0;
		hub_keylist *kl;

		if (sse_json_scalar(v, &sc))
			klen = hub_encode(k, json_object_iter_key_len(json_object_key_to_iter(k)),
							  &sc, key, sizeof(key));
		kl = klen ? hmap_get(&b->keys, key, klen) : NULL;
		if (kl == NULL)
			continue;
		hub_list_filtered(&kl->list, ev, doc);
		hub_solo_deliver(&kl->solo, ev);
	}
}

/* Does a filtered entry of b need ev's parsed payload? */
static inline bool
hub_bucket_needs_doc(const hub_bucket *b, const event *ev)
{
	if (ev->is_close && b->literal)
		return false;			/* a close reaches them all, whatever the filter */
	return b->scan.first != NULL || b->keys.n > 0;
}

static void
hub_bucket_dispatch(hub_bucket *b, event *ev)
{
	sse_doc    *doc;

	if (ev->is_close && b->literal) {
		hub_bucket_close(b, ev);
		return;
	}
	hub_list_all(&b->all, ev, false);
	hub_solo_deliver(&b->solo, ev);
	if (b->scan.first == NULL && b->keys.n == 0)
		return;
	/* only an object payload that parsed matches a non-empty filter */
	if ((doc = event_doc(ev)) == NULL || !sse_doc_is_object(doc))
		return;
	if (b->scan.first != NULL)
		hub_list_filtered(&b->scan, ev, doc);
	if (b->keys.n > 0)
		hub_bucket_keyed(b, ev, doc);
}

/* Wildcard buckets a dispatch remembers so it matches each pattern once. */
#define HUB_WILD_SEEN 32

bool
hub_dispatch(event *ev)
{
	hub_bucket *lit = hmap_get(&hub.literal, ev->channel, ev->chlen);
	hub_bucket *seen[HUB_WILD_SEEN], *b, *rest = NULL;
	size_t		nseen = 0;
	bool		need = lit != NULL && hub_bucket_needs_doc(lit, ev);

	/*
	 * First the matching buckets, and whether a filter among them needs the
	 * payload parsed: it is parsed only then, and before anything is
	 * delivered, so an allocation failure delivers nothing (the caller reads
	 * the row again) instead of hiding the event from filtered streams.
	 */
	for (b = hub.wild; b != NULL; b = b->wnext) {
		if (!sse_pattern_match(b->pattern, b->plen, ev->channel, ev->chlen))
			continue;
		need = need || hub_bucket_needs_doc(b, ev);
		if (nseen == HUB_WILD_SEEN) {
			rest = b;			/* matched again below */
			if (need)
				break;
			continue;
		}
		seen[nseen++] = b;
	}
	if (need && event_doc(ev) == NULL && ev->json_oom)
		return false;
	if (ev->is_close)
		hub_flush();			/* it may end streams that have a run pending */
	if (lit != NULL)
		hub_bucket_dispatch(lit, ev);
	for (size_t i = 0; i < nseen; i++)
		hub_bucket_dispatch(seen[i], ev);
	for (b = rest != NULL ? seen[HUB_WILD_SEEN - 1]->wnext : NULL; b != NULL; b = b->wnext)
		if (sse_pattern_match(b->pattern, b->plen, ev->channel, ev->chlen))
			hub_bucket_dispatch(b, ev);
	return true;
}

/* ---- batches ---- */

void
hub_batch_begin(size_t piece_max)
{
	hub.batching = hub.deliver_run != NULL;
	hub.piece_max = piece_max;
}

void
hub_batch_end(void)
{
	hub_flush();
	hub.batching = false;
}

/*
 * Join the frames of items[0..n) into pieces of at most max bytes each (a
 * larger frame is a piece alone, so max 0 leaves every frame alone; a join
 * that cannot be allocated leaves its frames as pieces of one).  Returns
 * the number of pieces; each holds one reference.
 */
static size_t
hub_join(const hub_item *items, size_t n, size_t max, frame **pieces, size_t *end)
{
	size_t		np = 0;

	for (size_t i = 0, j; i < n; i = j) {
		size_t		len = items[i].f->len;
		frame	   *f;

		for (j = i + 1; j < n && len + items[j].f->len <= max; j++)
			len += items[j].f->len;
		if (j - i == 1 || (f = frame_alloc(len)) == NULL) {
			j = i + 1;
			pieces[np] = frame_ref(items[i].f);
		} else {
			len = 0;
			for (size_t k = i; k < j; k++) {
				memcpy(f->data + len, items[k].f->data, items[k].f->len);
				len += items[k].f->len;
			}
			pieces[np] = f;
		}
		end[np++] = j;
	}
	return np;
}

static void
hub_flush_solo(hub_solo *g)
{
	static hub_item items[HUB_BATCH_MAX];
	static frame *pieces[HUB_BATCH_MAX];
	static size_t end[HUB_BATCH_MAX];
	hub_run		run = {items, 0, pieces, end, 0};
	size_t		n = 0;

	for (int i = g->first; i >= 0; i = hub.next[i])
		items[n++] = hub.items[i];
	g->first = g->last = -1;
	run.n = n;
	/* a join pays off only when two or more members share it */
	run.npieces = hub_join(items, n, g->list.first != NULL && g->list.first->next != NULL
						   ? hub.piece_max : 0, pieces, end);
	for (hub_entry *e = g->list.first; e != NULL; e = e->next) {
		hub_sub    *s = e->sub;
		size_t		from = 0;

		while (from < n && items[from].id <= s->seen)
			from++;
		if (from == n)
			continue;
		s->seen = items[n - 1].id;
		hub.deliver_run(s, &run, from);
	}
	for (size_t p = 0; p < run.npieces; p++)
		frame_unref(pieces[p]);
}

void
hub_flush(void)
{
	hub_solo   *g;

	if (hub.flushing || hub.nitems == 0)
		return;
	hub.flushing = true;
	while ((g = hub.touched) != NULL) {
		hub.touched = g->tnext;
		g->tnext = NULL;
		hub_flush_solo(g);
	}
	for (size_t i = 0; i < hub.nitems; i++)
		frame_unref(hub.items[i].f);
	hub.nitems = 0;
	hub.flushing = false;
}

void
hub_sub_prepare(hub_sub *s)
{
	hub_sub_unprepare(s);
	if (s->npatterns == 0 || (s->pinfo = calloc(s->npatterns, sizeof(hub_pat))) == NULL)
		return;
	for (size_t i = 0; i < s->npatterns; i++) {
		size_t		plen = strlen(s->patterns[i]);

		s->pinfo[i].len = (uint32_t) plen;
		s->pinfo[i].literal = plen > 0 && plen <= SSE_CHANNEL_MAX &&
			sse_pattern_is_literal(s->patterns[i], plen);
	}
}

void
hub_sub_unprepare(hub_sub *s)
{
	free(s->pinfo);
	s->pinfo = NULL;
}

/* sse_pattern_match for pattern i of s, with the literal fast path. */
static inline bool
hub_pattern_match(const hub_sub *s, size_t i, const event *ev, size_t *plen)
{
	const char *p = s->patterns[i];

	if (s->pinfo == NULL) {
		*plen = strlen(p);
		return sse_pattern_match(p, *plen, ev->channel, ev->chlen);
	}
	*plen = s->pinfo[i].len;
	if (s->pinfo[i].literal)
		return *plen == ev->chlen && memcmp(p, ev->channel, *plen) == 0;
	return sse_pattern_match(p, *plen, ev->channel, ev->chlen);
}

bool
hub_matches(const hub_sub *s, event *ev, bool *ends)
{
	bool		matched = false;

	*ends = false;
	for (size_t i = 0; i < s->npatterns; i++) {
		const char *p = s->patterns[i];
		size_t		plen;

		if (!hub_pattern_match(s, i, ev, &plen))
			continue;
		matched = true;
		if (ev->is_close && plen == ev->chlen && memcmp(p, ev->channel, plen) == 0)
			*ends = true;
	}
	if (!matched)
		return false;
	if (*ends || s->filter == NULL)
		return true;			/* a close on a literal pattern ignores the filter */
	return sse_filter_eval(s->filter, event_doc(ev));
}
