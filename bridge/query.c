/*
 * query.c - query-string and Last-Event-ID parsing.
 *
 * Invariants: nothing here trusts lengths or terminators in the input; every
 * loop is bounded by len.  Decoded values never contain NUL, so they are
 * safe to use as C strings.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

static int
query_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Is s[0..len) a valid percent-encoding?  Decided without allocating. */
static bool
query_valid_escapes(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0')
			return false;
		if (s[i] == '%') {
			int			hi = i + 2 < len ? query_hex(s[i + 1]) : -1;
			int			lo = hi >= 0 ? query_hex(s[i + 2]) : -1;

			if (lo < 0 || (hi == 0 && lo == 0))
				return false;
			i += 2;
		}
	}
	return true;
}

query_status
query_decode(const char *s, size_t len, char **out)
{
	char	   *d;
	size_t		n = 0;

	/* the input is judged first, so a failed allocation is never "invalid" */
	if (!query_valid_escapes(s, len))
		return QUERY_INVALID;
	if ((d = malloc(len + 1)) == NULL)
		return QUERY_INTERNAL;
	for (size_t i = 0; i < len; i++) {
		char		c = s[i];

		if (c == '+')
			c = ' ';
		else if (c == '%') {
			c = (char) (query_hex(s[i + 1]) * 16 + query_hex(s[i + 2]));
			i += 2;
		}
		d[n++] = c;
	}
	d[n] = '\0';
	*out = d;
	return QUERY_OK;
}

void
query_params_free(query_params *p)
{
	for (size_t i = 0; i < p->nchannels; i++)
		free(p->channels[i]);
	free(p->filter);
	free(p->access_token);
	free(p->last_event_id);
	*p = (query_params) {0};
}

static bool
query_key_is(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

/* Store one decoded pair; false with err set on a problem. */
static bool
query_store(query_params *p, const char *k, size_t klen, char *val,
			char *err, size_t errsize)
{
	char	  **slot = NULL;

	if (query_key_is(k, klen, "channel")) {
		if (p->nchannels == QUERY_MAX_CHANNELS) {
			snprintf(err, errsize, "at most %d channel parameters", QUERY_MAX_CHANNELS);
			free(val);
			return false;
		}
		p->channels[p->nchannels++] = val;
		return true;
	}
	if (query_key_is(k, klen, "filter"))
		slot = &p->filter;
	else if (query_key_is(k, klen, "lastEventId"))
		slot = &p->last_event_id;
	else if (query_key_is(k, klen, "access_token"))
		slot = &p->access_token;
	if (slot == NULL) {
		free(val);
		return true;
	}
	if (*slot != NULL) {
		snprintf(err, errsize, "parameter %.*s given twice", (int) klen, k);
		free(val);
		return false;
	}
	*slot = val;
	return true;
}

/*
 * The reason for a bad escape names the parameter: at most 40 bytes of its
 * name, printable ASCII only (others become '?'), so the reason is always
 * valid UTF-8 for the JSON error body.
 */
static void
query_bad_escape(const char *key, size_t klen, char *err, size_t errsize)
{
	char		name[41];
	size_t		n = klen > 40 ? 40 : klen;

	for (size_t i = 0; i < n; i++)
		name[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
	name[n] = '\0';
	snprintf(err, errsize, "bad percent-encoding in parameter %s", name);
}

query_status
query_parse(const char *qs, size_t len, query_params *out, char *err, size_t errsize)
{
	size_t		i = 0;
	query_status st;

	*out = (query_params) {0};
	while (i < len) {
		size_t		start = i, eq = 0, klen, vlen;
		char	   *val;

		while (i < len && qs[i] != '&')
			i++;
		for (eq = start; eq < i && qs[eq] != '='; eq++)
			;
		klen = eq - start;
		vlen = eq < i ? i - eq - 1 : 0;
		if (i - start > 0) {
			st = query_decode(eq < i ? qs + eq + 1 : "", vlen, &val);
			if (st == QUERY_INTERNAL)
				snprintf(err, errsize, "out of memory");
			else if (st == QUERY_INVALID)
				query_bad_escape(qs + start, klen, err, errsize);
			else if (!query_store(out, qs + start, klen, val, err, errsize))
				st = QUERY_INVALID;
			if (st != QUERY_OK) {
				query_params_free(out);
				return st;
			}
		}
		i++;					/* skip '&' */
	}
	return QUERY_OK;
}

bool
query_parse_event_id(const char *s, size_t len, query_event_id *out)
{
	size_t		b = 0, e = len, dash;
	int64_t		v = 0;
	uint32_t	fp = 0;

	while (b < e && (s[b] == ' ' || s[b] == '\t'))
		b++;
	while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	for (dash = b; dash < e && s[dash] != '-'; dash++)
		;
	if (b == dash || dash - b > 19)
		return false;
	for (size_t i = b; i < dash; i++) {
		if (!isdigit((unsigned char) s[i]))
			return false;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	out->has_fp = dash < e;
	if (out->has_fp) {
		size_t		n = e - dash - 1;
		const char *h = s + dash + 1;

		if (n == 1 && h[0] == '0')
			fp = 0;
		else if (n == 8) {
			for (size_t i = 0; i < 8; i++) {
				int			d = (h[i] >= '0' && h[i] <= '9') ? h[i] - '0' :
					(h[i] >= 'a' && h[i] <= 'f') ? h[i] - 'a' + 10 : -1;

				if (d < 0)
					return false;
				fp = fp << 4 | (uint32_t) d;
			}
			if (fp == 0)
				return false;	/* a row's fingerprint is never 0 */
		}
		else
			return false;
	}
	out->id = v;
	out->fp = fp;
	return true;
}
