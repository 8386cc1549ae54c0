/*
 * sse_filter.c
 *		jsonb containment (@>) evaluated exactly, shared by the extension
 *		and the bridge.
 *
 * The rules follow PostgreSQL's JsonbDeepContains:
 *   - object A contains object B when every key of B is in A and A's value
 *     contains B's value (scalars: equal; containers: contained, same kind);
 *   - array A contains array B when every scalar of B equals some scalar of
 *     A, and every container of B is contained in some container of A;
 *   - below the top level a scalar is never contained in an array.
 *
 * Numbers.  jsonb compares numbers as numeric, i.e. as exact decimals.
 * jansson would read them as int64 or double, so before jansson sees the
 * text, scan() rewrites every number token into a string holding a NUL byte
 * and the number's canonical form: the significant digits without leading
 * or trailing zeros, and the power of ten they are scaled by ("1" for 1,
 * 1.0 and 10e-1; "-15e1" for -150; "5e-1" for 0.5; "0" for every zero).
 * Two numbers are equal as numeric exactly when their canonical forms are
 * equal as bytes.  A string that jsonb can hold never contains a NUL byte
 * (jsonb refuses \u0000, and scan() refuses it too), so the marker cannot
 * be forged, and a number used as an object key makes jansson fail (it
 * refuses NUL bytes in keys), as it must.  Numbers are limited so that
 * every accepted number is also a valid numeric in every supported
 * PostgreSQL version (see sse_json.h).
 *
 * Cost.  A compiled filter's arrays hold only scalars, deduplicated.  An
 * array of the payload that a filter array is compared with is hashed once
 * (in the sse_doc, with a keyed hash) and then probed once per filter
 * element.  Evaluating a
 * filter therefore costs O(filter size) probes, plus, once per payload, a
 * hash of each array looked into.  Object members are looked up through
 * jansson's hash tables.
 */
#include "sse_filter.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ----------------------------------------------------------------
 *		Status messages
 * ----------------------------------------------------------------
 */

const char *
sse_json_status_message(sse_json_status st)
{
	switch (st)
	{
		case SSE_JSON_OK:
			return "valid";
		case SSE_JSON_NOMEM:
			return "out of memory";
		case SSE_JSON_SYNTAX:
			return "is not valid JSON";
		case SSE_JSON_NOT_OBJECT:
			return "is not a JSON object";
		case SSE_JSON_TOO_LARGE:
			return "is longer than 16384 bytes";
		case SSE_JSON_TOO_DEEP:
			return "nests objects and arrays too deep";
		case SSE_JSON_TOO_MANY_NODES:
			return "has more than 1024 values";
		case SSE_JSON_ARRAY_TOO_LONG:
			return "has an array of more than 256 elements";
		case SSE_JSON_ARRAY_CONTAINER:
			return "has an object or array inside an array";
		case SSE_JSON_NUMBER:
			return "has a number longer than 4096 characters or with an exponent beyond 1000";
		case SSE_JSON_NUL:
			return "has a string with \\u0000, which jsonb cannot store";
	}
	return "is invalid";
}

/* ----------------------------------------------------------------
 *		The scanner: limits, and numbers rewritten into canonical form
 * ----------------------------------------------------------------
 */

typedef struct outbuf
{
	char	   *p;
	size_t		len;
	size_t		cap;
} outbuf;

static bool
out_reserve(outbuf *o, size_t more)
{
	if (o->p == NULL || o->cap - o->len < more)
	{
		size_t		cap = o->cap ? o->cap : 256;
		char	   *p;

		while (cap - o->len < more)
		{
			if (cap > SIZE_MAX / 2)
				return false;
			cap *= 2;
		}
		p = realloc(o->p, cap);
		if (p == NULL)
			return false;
		o->p = p;
		o->cap = cap;
	}
	return true;
}

static bool
out_add(outbuf *o, const char *s, size_t n)
{
	if (!out_reserve(o, n))
		return false;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	return true;
}

static inline bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Scan one number token at s[*pos]; on success *pos is past it and, when o
 * is not NULL, the canonical marker string is appended to o.
 */
static sse_json_status
scan_number(const char *s, size_t n, size_t *pos, outbuf *o)
{
	size_t		i = *pos;
	bool		neg = false;
	size_t		int_start,
				int_len,
				frac_start = 0,
				frac_len = 0;
	long		exp = 0;

	if (s[i] == '-')
	{
		neg = true;
		i++;
	}
	if (i >= n || !is_digit(s[i]))
		return SSE_JSON_SYNTAX;
	int_start = i;
	if (s[i] == '0')
		i++;
	else
		while (i < n && is_digit(s[i]))
			i++;
	int_len = i - int_start;
	if (i < n && s[i] == '.')
	{
		i++;
		frac_start = i;
		while (i < n && is_digit(s[i]))
			i++;
		frac_len = i - frac_start;
		if (frac_len == 0)
			return SSE_JSON_SYNTAX;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		bool		eneg = false;
		size_t		e0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		e0 = i;
		while (i < n && is_digit(s[i]))
		{
			if (exp <= SSE_NUMBER_EXP_MAX)
				exp = exp * 10 + (s[i] - '0');
			i++;
		}
		if (i == e0)
			return SSE_JSON_SYNTAX;
		if (eneg)
			exp = -exp;
	}
	if (i - *pos > SSE_NUMBER_LEN_MAX || exp > SSE_NUMBER_EXP_MAX ||
		exp < -SSE_NUMBER_EXP_MAX)
		return SSE_JSON_NUMBER;
	*pos = i;
	if (o == NULL)
		return SSE_JSON_OK;

	/* digit k of int part followed by frac part */
#define DIGIT(k) ((k) < int_len ? s[int_start + (k)] : s[frac_start + (k) - int_len])
	size_t		total = int_len + frac_len;
	size_t		first = 0,
				last = total;
	char		ebuf[24];
	int			elen = 0;

	while (first < total && DIGIT(first) == '0')
		first++;
	if (!out_reserve(o, 8 + 1 + (total - first) + sizeof(ebuf) + 1))
		return SSE_JSON_NOMEM;
	memcpy(o->p + o->len, "\"\\u0000", 7);
	o->len += 7;
	if (first == total)
		o->p[o->len++] = '0';
	else
	{
		long		e;

		while (DIGIT(last - 1) == '0')
			last--;
		e = exp - (long) frac_len + (long) (total - last);
		if (neg)
			o->p[o->len++] = '-';
		for (size_t k = first; k < last; k++)
			o->p[o->len++] = DIGIT(k);
		if (e != 0)
			elen = snprintf(ebuf, sizeof(ebuf), "e%ld", e);
		memcpy(o->p + o->len, ebuf, (size_t) elen);
		o->len += (size_t) elen;
	}
#undef DIGIT
	o->p[o->len++] = '"';
	return SSE_JSON_OK;
}

/*
 * Check s against the limits (nesting up to depth_max, numbers, \u0000)
 * and, when o is not NULL, copy it to o with numbers rewritten.  Returns
 * SSE_JSON_SYNTAX where s is certainly not JSON, but does not validate the
 * rest of the grammar: jansson does that on the copy.  The rewrite keeps
 * every invalid text invalid (a number stays a single token; as a key it
 * becomes a key with a NUL byte, which jansson refuses).
 */
static sse_json_status
scan(const char *s, size_t n, int depth_max, outbuf *o)
{
	size_t		i = 0,
				run = 0;
	int			depth = 0;
	sse_json_status st;

	while (i < n)
	{
		char		c = s[i];

		if (c == '"')
		{
			const char *q = NULL;

			i++;
			for (;;)
			{
				const char *b;

				if (q == NULL || (size_t) (q - s) < i)
					q = memchr(s + i, '"', n - i);
				if (q == NULL)
					return SSE_JSON_SYNTAX;
				b = memchr(s + i, '\\', (size_t) (q - s) - i);
				if (b == NULL)
				{
					i = (size_t) (q - s) + 1;
					break;
				}
				i = (size_t) (b - s);
				if (i + 1 >= n)
					return SSE_JSON_SYNTAX;
				if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
					return SSE_JSON_NUL;
				i += 2;
			}
		}
		else if (c == '-' || is_digit(c))
		{
			if (o != NULL && !out_add(o, s + run, i - run))
				return SSE_JSON_NOMEM;
			if ((st = scan_number(s, n, &i, o)) != SSE_JSON_OK)
				return st;
			run = i;
		}
		else
		{
			if (c == '{' || c == '[')
			{
				if (++depth > depth_max)
					return SSE_JSON_TOO_DEEP;
			}
			else if (c == '}' || c == ']')
			{
				if (--depth < 0)
					return SSE_JSON_SYNTAX;
			}
			i++;
		}
	}
	if (o != NULL && !out_add(o, s + run, n - run))
		return SSE_JSON_NOMEM;
	return SSE_JSON_OK;
}

/*
 * jansson does not say when a parse failed for want of memory: most
 * allocation failures come back as a syntax error ("invalid token") or with
 * no error code set at all, and some not at all (a character dropped from
 * a string).  So while load() parses, jansson's allocations
 * pass through load_malloc, which notes a failure.  The extension's backends
 * and the bridge's event loop are single-threaded, as this requires.
 */
static json_malloc_t load_next_malloc;
static bool load_nomem;

static void *
load_malloc(size_t n)
{
	void	   *p = load_next_malloc(n);

	if (p == NULL)
		load_nomem = true;
	return p;
}

/* scan, then jansson on the rewritten copy; *v NULL when not JSON. */
static sse_json_status
load(const char *buf, size_t len, int depth_max, json_t **v)
{
	outbuf		o = {0};
	json_error_t err;
	sse_json_status st;

	*v = NULL;
	if (!out_reserve(&o, len + len / 4 + 16))
		return SSE_JSON_NOMEM;
	st = scan(buf, len, depth_max, &o);
	if (st == SSE_JSON_OK)
	{
		json_free_t free_fn;

		json_get_alloc_funcs(&load_next_malloc, &free_fn);
		json_set_alloc_funcs(load_malloc, free_fn);
		load_nomem = false;
		*v = json_loadb(o.p, o.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
		json_set_alloc_funcs(load_next_malloc, free_fn);
		/*
		 * A parse that met a failed allocation is not used even when it
		 * returned a tree: jansson's lexer drops a character it cannot
		 * append to a string buffer and goes on, so the tree may hold a
		 * shortened string or number.
		 */
		if (*v != NULL && load_nomem)
		{
			json_decref(*v);
			*v = NULL;
		}
		if (*v == NULL)
			st = load_nomem ? SSE_JSON_NOMEM : SSE_JSON_SYNTAX;
	}
	free(o.p);
	return st;
}

static bool
starts_object(const char *buf, size_t len)
{
	size_t		i = 0;

	while (i < len && is_blank(buf[i]))
		i++;
	return i < len && buf[i] == '{';
}

sse_json_status
sse_payload_check(const char *buf, size_t len)
{
	sse_json_status st;

	if (!starts_object(buf, len))
		return SSE_JSON_OK;
	st = scan(buf, len, SSE_DATA_DEPTH_MAX, NULL);
	return st == SSE_JSON_SYNTAX ? SSE_JSON_OK : st;
}

json_t *
sse_json_parse(const char *buf, size_t len)
{
	json_t	   *v;

	(void) load(buf, len, SSE_DATA_DEPTH_MAX, &v);
	return v;
}

/* ----------------------------------------------------------------
 *		Scalars
 * ----------------------------------------------------------------
 */

bool
sse_json_scalar(const json_t *v, sse_scalar *out)
{
	switch (json_typeof(v))
	{
		case JSON_STRING:
			out->s = json_string_value(v);
			out->len = json_string_length(v);
			out->tag = 's';
			if (out->len > 0 && out->s[0] == '\0')
			{
				out->tag = 'n';
				out->s++;
				out->len--;
			}
			return true;
		case JSON_TRUE:
			*out = (sse_scalar) {'t', "", 0};
			return true;
		case JSON_FALSE:
			*out = (sse_scalar) {'f', "", 0};
			return true;
		case JSON_NULL:
			*out = (sse_scalar) {'z', "", 0};
			return true;
		default:
			/* jansson numbers only come from other parsers */
			return false;
	}
}

static inline bool
scalar_eq(const sse_scalar *a, const sse_scalar *b)
{
	return a->tag == b->tag && a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/*
 * Scalar hashes: SipHash-1-3 with a per-process random key, so that the
 * author of a payload cannot choose strings that all land in one slot of a
 * payload array's hash (which would make building it quadratic).
 */
static uint64_t sip_k0,
			sip_k1;
static bool sip_keyed;

static void
sip_key(void)
{
	uint64_t	k[2] = {0, 0};
	FILE	   *f = fopen("/dev/urandom", "rb");

	if (f == NULL || fread(k, sizeof(k), 1, f) != 1)
	{
		/* no entropy: still a key that differs between processes */
		k[0] = (uint64_t) (uintptr_t) &sip_k0 ^ (uint64_t) time(NULL);
		k[1] = (uint64_t) clock() * 0x9e3779b97f4a7c15ULL ^ (uint64_t) (uintptr_t) f;
	}
	if (f != NULL)
		fclose(f);
	sip_k0 = k[0];
	sip_k1 = k[1];
	sip_keyed = true;
}

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t
scalar_hash(const sse_scalar *sc)
{
	const unsigned char *p = (const unsigned char *) sc->s;
	size_t		len = sc->len;
	uint64_t	v0,
				v1,
				v2,
				v3,
				b;
	size_t		i;

	if (!sip_keyed)
		sip_key();
	v0 = sip_k0 ^ 0x736f6d6570736575ULL;
	v1 = (sip_k1 ^ (unsigned char) sc->tag) ^ 0x646f72616e646f6dULL;
	v2 = sip_k0 ^ 0x6c7967656e657261ULL;
	v3 = sip_k1 ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= len; i += 8)
	{
		uint64_t	m = 0;

		for (int k = 7; k >= 0; k--)
			m = (m << 8) | p[i + k];
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	b = (uint64_t) len << 56;
	for (int k = (int) (len - i) - 1; k >= 0; k--)
		b |= (uint64_t) p[i + k] << (8 * k);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ----------------------------------------------------------------
 *		Documents and their array hashes
 * ----------------------------------------------------------------
 */

/* 8 bytes a slot: half the hash, and the element's position + 1 (0: empty). */
typedef struct arr_slot
{
	uint32_t	hash;
	uint32_t	pos;
} arr_slot;

typedef struct arr_index
{
	const json_t *arr;
	size_t		mask;
	arr_slot   *slots;
} arr_index;

struct sse_doc
{
	json_t	   *root;			/* NULL: not JSON, or not worth parsing */
	arr_index  *idx;			/* open addressing on the array pointer */
	size_t		idx_mask;
	size_t		idx_n;
};

static void
doc_free_index(arr_index *ix)
{
	free(ix->slots);
}

void
sse_doc_free(sse_doc *doc)
{
	if (doc == NULL)
		return;
	for (size_t i = 0; doc->idx && i <= doc->idx_mask; i++)
		if (doc->idx[i].arr != NULL)
			doc_free_index(&doc->idx[i]);
	free(doc->idx);
	json_decref(doc->root);
	free(doc);
}

sse_json_status
sse_doc_parse(const char *buf, size_t len, sse_doc **out)
{
	sse_doc    *doc;
	sse_json_status st = SSE_JSON_OK;

	*out = NULL;
	doc = calloc(1, sizeof(sse_doc));
	if (doc == NULL)
		return SSE_JSON_NOMEM;
	/* Only objects can match a non-empty filter: nothing else is read. */
	if (starts_object(buf, len))
		st = load(buf, len, SSE_DATA_DEPTH_MAX, &doc->root);
	if (st == SSE_JSON_SYNTAX)
		st = SSE_JSON_OK;
	if (st != SSE_JSON_OK)
	{
		sse_doc_free(doc);
		return st;
	}
	*out = doc;
	return SSE_JSON_OK;
}

bool
sse_doc_is_object(const sse_doc *doc)
{
	return doc != NULL && json_is_object(doc->root);
}

const json_t *
sse_doc_json(const sse_doc *doc)
{
	return doc ? doc->root : NULL;
}

bool
sse_doc_member_scalar(const sse_doc *doc, const char *key, size_t klen,
					  sse_scalar *val)
{
	const json_t *v;

	if (!sse_doc_is_object(doc))
		return false;
	v = json_object_getn(doc->root, key, klen);
	return v != NULL && sse_json_scalar(v, val);
}

static inline size_t
ptr_hash(const void *p)
{
	uintptr_t	x = (uintptr_t) p;

	x ^= x >> 17;
	x *= (uintptr_t) 0xed5ad4bbU;
	x ^= x >> 11;
	return (size_t) x;
}

/* Element pos of ix's array is a scalar equal to sc with hash h. */
static inline bool
slot_is(const arr_index *ix, const arr_slot *slot, const sse_scalar *sc, uint64_t h)
{
	sse_scalar	e;

	return slot->hash == (uint32_t) (h >> 32) &&
		sse_json_scalar(json_array_get(ix->arr, slot->pos - 1), &e) &&
		scalar_eq(&e, sc);
}

/*
 * Hash the scalars of arr; false when out of memory or when the array is
 * too long for 32-bit positions (then evaluation scans it).
 */
static bool
index_build(arr_index *ix, const json_t *arr)
{
	size_t		n = json_array_size(arr);
	size_t		cap = 8;

	if (n >= UINT32_MAX / 4)
		return false;
	while (cap < 2 * n)
		cap *= 2;
	ix->slots = calloc(cap, sizeof(arr_slot));
	if (ix->slots == NULL)
		return false;
	ix->mask = cap - 1;
	ix->arr = arr;
	for (size_t i = 0; i < n; i++)
	{
		sse_scalar	sc;
		uint64_t	h;
		size_t		j;

		if (!sse_json_scalar(json_array_get(arr, i), &sc))
			continue;
		h = scalar_hash(&sc);
		for (j = (size_t) h & ix->mask; ix->slots[j].pos != 0; j = (j + 1) & ix->mask)
			if (slot_is(ix, &ix->slots[j], &sc, h))
				break;
		if (ix->slots[j].pos == 0)
		{
			ix->slots[j].hash = (uint32_t) (h >> 32);
			ix->slots[j].pos = (uint32_t) i + 1;
		}
	}
	return true;
}

static bool
doc_grow(sse_doc *doc)
{
	size_t		cap = doc->idx ? 2 * (doc->idx_mask + 1) : 16;
	arr_index  *nidx = calloc(cap, sizeof(arr_index));

	if (nidx == NULL)
		return false;
	for (size_t i = 0; doc->idx && i <= doc->idx_mask; i++)
	{
		size_t		j;

		if (doc->idx[i].arr == NULL)
			continue;
		for (j = ptr_hash(doc->idx[i].arr) & (cap - 1); nidx[j].arr != NULL; j = (j + 1) & (cap - 1))
			;
		nidx[j] = doc->idx[i];
	}
	free(doc->idx);
	doc->idx = nidx;
	doc->idx_mask = cap - 1;
	return true;
}

/* The hash of array arr of doc, built on first use; NULL when out of memory. */
static const arr_index *
doc_index(sse_doc *doc, const json_t *arr)
{
	size_t		j;

	if (doc->idx != NULL)
		for (j = ptr_hash(arr) & doc->idx_mask; doc->idx[j].arr != NULL; j = (j + 1) & doc->idx_mask)
			if (doc->idx[j].arr == arr)
				return &doc->idx[j];
	if ((doc->idx == NULL || (doc->idx_n + 1) * 2 > doc->idx_mask + 1) && !doc_grow(doc))
		return NULL;
	for (j = ptr_hash(arr) & doc->idx_mask; doc->idx[j].arr != NULL; j = (j + 1) & doc->idx_mask)
		;
	if (!index_build(&doc->idx[j], arr))
		return NULL;
	doc->idx_n++;
	return &doc->idx[j];
}

static bool
index_has(const arr_index *ix, const sse_scalar *sc, uint64_t h)
{
	for (size_t j = (size_t) h & ix->mask; ix->slots[j].pos != 0; j = (j + 1) & ix->mask)
		if (slot_is(ix, &ix->slots[j], sc, h))
			return true;
	return false;
}

/* ----------------------------------------------------------------
 *		Compiled filters
 * ----------------------------------------------------------------
 */

typedef struct fnode fnode;
typedef struct fmember fmember;

struct fnode
{
	char		kind;			/* 'o' object, 'a' array, 's' scalar */
	sse_scalar	sc;				/* 's' */
	uint64_t	hash;			/* 's' */
	size_t		n;				/* 'o': members; 'a': distinct elements */
	fmember    *members;		/* 'o' */
	fnode	   *elems;			/* 'a': scalars only */
};

struct fmember
{
	const char *key;
	size_t		klen;
	fnode		val;
};

struct sse_filter
{
	json_t	   *root;			/* owns every string the nodes point to */
	fnode		top;
};

static void
fnode_free(fnode *f)
{
	if (f->kind == 'o')
	{
		for (size_t i = 0; i < f->n; i++)
			fnode_free(&f->members[i].val);
		free(f->members);
	}
	else if (f->kind == 'a')
		free(f->elems);
}

static sse_json_status
fnode_build(fnode *f, const json_t *v, size_t *nodes)
{
	memset(f, 0, sizeof(*f));
	if (++*nodes > SSE_FILTER_NODES_MAX)
		return SSE_JSON_TOO_MANY_NODES;
	if (json_is_object(v))
	{
		const char *key;
		json_t	   *child;
		size_t		i = 0;

		f->kind = 'o';
		if (json_object_size(v) == 0)
			return SSE_JSON_OK;
		f->members = calloc(json_object_size(v), sizeof(fmember));
		if (f->members == NULL)
			return SSE_JSON_NOMEM;
		json_object_foreach((json_t *) v, key, child)
		{
			sse_json_status st;

			f->members[i].key = key;
			f->members[i].klen = json_object_iter_key_len(json_object_key_to_iter(key));
			st = fnode_build(&f->members[i].val, child, nodes);
			f->n = ++i;
			if (st != SSE_JSON_OK)
				return st;
		}
		return SSE_JSON_OK;
	}
	if (json_is_array(v))
	{
		size_t		n = json_array_size(v);

		f->kind = 'a';
		if (n > SSE_FILTER_ARRAY_MAX)
			return SSE_JSON_ARRAY_TOO_LONG;
		*nodes += n;
		if (*nodes > SSE_FILTER_NODES_MAX)
			return SSE_JSON_TOO_MANY_NODES;
		if (n == 0)
			return SSE_JSON_OK;
		f->elems = calloc(n, sizeof(fnode));
		if (f->elems == NULL)
			return SSE_JSON_NOMEM;
		for (size_t i = 0; i < n; i++)
		{
			fnode		e = {.kind = 's'};
			bool		dup = false;

			if (!sse_json_scalar(json_array_get(v, i), &e.sc))
				return SSE_JSON_ARRAY_CONTAINER;
			e.hash = scalar_hash(&e.sc);
			for (size_t k = 0; k < f->n && !dup; k++)
				dup = f->elems[k].hash == e.hash && scalar_eq(&f->elems[k].sc, &e.sc);
			if (!dup)
				f->elems[f->n++] = e;
		}
		return SSE_JSON_OK;
	}
	f->kind = 's';
	if (!sse_json_scalar(v, &f->sc))
		return SSE_JSON_SYNTAX;
	f->hash = scalar_hash(&f->sc);
	return SSE_JSON_OK;
}

void
sse_filter_free(sse_filter *f)
{
	if (f == NULL)
		return;
	fnode_free(&f->top);
	json_decref(f->root);
	free(f);
}

sse_json_status
sse_filter_compile(const char *json, size_t len, sse_filter **out,
				   const char **errmsg)
{
	sse_filter *f = NULL;
	sse_json_status st;
	size_t		nodes = 0;

	*out = NULL;
	if (len > SSE_FILTER_SIZE_MAX)
		st = SSE_JSON_TOO_LARGE;
	else if ((f = calloc(1, sizeof(sse_filter))) == NULL)
		st = SSE_JSON_NOMEM;
	else if ((st = load(json, len, SSE_FILTER_DEPTH_MAX, &f->root)) == SSE_JSON_OK)
	{
		if (!json_is_object(f->root))
			st = SSE_JSON_NOT_OBJECT;
		else
			st = fnode_build(&f->top, f->root, &nodes);
	}

	if (st != SSE_JSON_OK)
	{
		sse_filter_free(f);
		f = NULL;
	}
	if (errmsg != NULL)
		*errmsg = sse_json_status_message(st);
	*out = f;
	return st;
}

bool
sse_filter_is_empty(const sse_filter *f)
{
	return f->top.n == 0;
}

size_t
sse_filter_nmembers(const sse_filter *f)
{
	return f->top.n;
}

bool
sse_filter_member(const sse_filter *f, size_t i, const char **key,
				  size_t *klen, bool *is_scalar, sse_scalar *val)
{
	const fmember *m;

	if (i >= f->top.n)
		return false;
	m = &f->top.members[i];
	*key = m->key;
	*klen = m->klen;
	*is_scalar = m->val.kind == 's';
	if (*is_scalar)
		*val = m->val.sc;
	return true;
}

/* Array arr has a scalar equal to e (without the hash: out of memory). */
static bool
array_scan_has(const json_t *arr, const fnode *e)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
	{
		sse_scalar	sc;

		if (sse_json_scalar(json_array_get(arr, i), &sc) && scalar_eq(&sc, &e->sc))
			return true;
	}
	return false;
}

/* Does data value v contain filter node f?  Recursion: the filter's depth. */
static bool
fn_match(sse_doc *doc, const json_t *v, const fnode *f)
{
	switch (f->kind)
	{
		case 's':
			{
				sse_scalar	sc;

				return sse_json_scalar(v, &sc) && scalar_eq(&sc, &f->sc);
			}
		case 'o':
			if (!json_is_object(v))
				return false;
			for (size_t i = 0; i < f->n; i++)
			{
				const json_t *c = json_object_getn(v, f->members[i].key, f->members[i].klen);

				if (c == NULL || !fn_match(doc, c, &f->members[i].val))
					return false;
			}
			return true;
		default:
			{
				const arr_index *ix;

				if (!json_is_array(v))
					return false;
				if (f->n == 0)
					return true;
				ix = doc_index(doc, v);
				for (size_t i = 0; i < f->n; i++)
					if (ix ? !index_has(ix, &f->elems[i].sc, f->elems[i].hash)
						: !array_scan_has(v, &f->elems[i]))
						return false;
				return true;
			}
	}
}

bool
sse_filter_eval(const sse_filter *f, sse_doc *doc)
{
	if (f->top.n == 0)
		return true;
	if (!sse_doc_is_object(doc))
		return false;
	return fn_match(doc, doc->root, &f->top);
}

/* ----------------------------------------------------------------
 *		Direct evaluation on jansson trees (the reference)
 * ----------------------------------------------------------------
 */

static bool contains(const json_t *val, const json_t *sub);

static bool
is_container(const json_t *v)
{
	return json_is_object(v) || json_is_array(v);
}

bool
sse_json_scalar_equal(const json_t *a, const json_t *b)
{
	sse_scalar	x,
				y;

	if (json_is_number(a) && json_is_number(b))
	{
		/* trees from other parsers */
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	return sse_json_scalar(a, &x) && sse_json_scalar(b, &y) && scalar_eq(&x, &y);
}

/* Does value val contain value sub?  Both at a nested position. */
static bool
value_contains(const json_t *val, const json_t *sub)
{
	if (is_container(sub) || is_container(val))
		return json_typeof(val) == json_typeof(sub) && contains(val, sub);
	return sse_json_scalar_equal(val, sub);
}

static bool
object_contains(const json_t *val, const json_t *sub)
{
	const char *key;
	json_t	   *subval;

	json_object_foreach((json_t *) sub, key, subval)
	{
		const json_t *v = json_object_getn(val, key,
										   json_object_iter_key_len(json_object_key_to_iter(key)));

		if (v == NULL || !value_contains(v, subval))
			return false;
	}
	return true;
}

static bool
array_has_scalar(const json_t *arr, const json_t *scalar)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
	{
		const json_t *e = json_array_get(arr, i);

		if (!is_container(e) && sse_json_scalar_equal(e, scalar))
			return true;
	}
	return false;
}

static bool
array_has_container(const json_t *arr, const json_t *cont)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
	{
		const json_t *e = json_array_get(arr, i);

		if (json_typeof(e) == json_typeof(cont) && contains(e, cont))
			return true;
	}
	return false;
}

static bool
array_contains(const json_t *val, const json_t *sub)
{
	for (size_t i = 0; i < json_array_size(sub); i++)
	{
		const json_t *e = json_array_get(sub, i);
		bool		found = is_container(e) ? array_has_container(val, e)
			: array_has_scalar(val, e);

		if (!found)
			return false;
	}
	return true;
}

/* val and sub are containers of the same kind. */
static bool
contains(const json_t *val, const json_t *sub)
{
	if (json_is_object(sub))
		return object_contains(val, sub);
	return array_contains(val, sub);
}

bool
sse_filter_match(const json_t *filter, const json_t *data)
{
	if (json_object_size(filter) == 0)
		return true;
	if (data == NULL || !json_is_object(data))
		return false;
	return object_contains(data, filter);
}
