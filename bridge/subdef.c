/*
 * subdef.c - parse a subscription definition without trusting it: every
 * pattern passes sse_pattern_check and the filter compiles from its own
 * text (exact numbers), else the definition is refused, never applied in
 * part.  Allocation failures are told apart from malformed text.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mem.h"
#include "sse_match.h"
#include "subdef.h"

void
subdef_clear(sub_def *d)
{
	for (size_t i = 0; d->patterns != NULL && i < d->npatterns; i++)
		free(d->patterns[i]);
	free(d->patterns);
	sse_filter_free(d->filter);
	memset(d, 0, sizeof(*d));
}

/*
 * Top-level members of a definition's JSON text, found without building a
 * tree, so the filter's own text (numbers exactly as written) goes to
 * sse_filter_compile.  Each helper returns the index after what it skipped,
 * or 0 when the text is malformed there.
 */
static size_t
def_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static size_t
def_string(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return 0;
}

static size_t
def_value(const char *s, size_t i, size_t n)
{
	size_t		depth = 0;

	if (i >= n)
		return 0;
	if (s[i] == '"')
		return def_string(s, i, n);
	if (s[i] != '{' && s[i] != '[') {
		while (i < n && !strchr(",}] \t\r\n", s[i]))
			i++;
		return i;
	}
	while (i < n) {
		if (s[i] == '"') {
			if ((i = def_string(s, i, n)) == 0)
				return 0;
			continue;
		}
		if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
		i++;
	}
	return 0;
}

/* The text of the top-level member `key` of the object in s[0..n). */
static bool
def_member(const char *s, size_t n, const char *key, const char **v, size_t *vlen)
{
	size_t		i = def_ws(s, 0, n), klen = strlen(key);

	if (i >= n || s[i] != '{')
		return false;
	for (i = def_ws(s, i + 1, n); i < n && s[i] == '"';) {
		size_t		k = i + 1, e = def_string(s, i, n), vs;

		if (e == 0)
			return false;
		i = def_ws(s, e, n);
		if (i >= n || s[i] != ':')
			return false;
		vs = i = def_ws(s, i + 1, n);
		if ((i = def_value(s, i, n)) == 0)
			return false;
		if (e - 1 - k == klen && memcmp(s + k, key, klen) == 0) {
			*v = s + vs;
			*vlen = i - vs;
			return true;
		}
		i = def_ws(s, i, n);
		if (i >= n || s[i] != ',')
			return false;
		i = def_ws(s, i + 1, n);
	}
	return false;
}

int64_t
subdef_sid(const char *text, size_t len)
{
	const char *v;
	size_t		vlen;
	int64_t		sid = 0;

	if (!def_member(text, len, "sid", &v, &vlen) || vlen == 0 || vlen > 18)
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		sid = sid * 10 + (v[i] - '0');
	}
	return sid > 0 ? sid : -1;
}

sub_def_status
subdef_parse(const char *text, size_t len, int64_t sid, sub_def *d, const char **why)
{
	const char *cv, *fv, *sv, *msg = NULL;
	size_t		cl, fl, sl, n;
	uint64_t	fails = mem_json_failures();
	json_t	   *chans = NULL, *state = NULL;
	sub_def_status rc = SUB_DEF_INVALID;
	sse_json_status fs;

	memset(d, 0, sizeof(*d));
	*why = "not a subscription definition";
	if (subdef_sid(text, len) != sid || !def_member(text, len, "channels", &cv, &cl) ||
		!def_member(text, len, "filter", &fv, &fl) || !def_member(text, len, "state", &sv, &sl))
		return SUB_DEF_INVALID;
	chans = json_loadb(cv, cl, 0, NULL);
	state = json_loadb(sv, sl, JSON_DECODE_ANY, NULL);
	if ((chans == NULL || state == NULL) && mem_json_failures() != fails) {
		rc = SUB_DEF_OOM;
		goto out;
	}
	if (!json_is_string(state))
		goto out;
	if (strcmp(json_string_value(state), "active") == 0)
		d->state = SUB_ACTIVE;
	else if (strcmp(json_string_value(state), "closed") == 0)
		d->state = SUB_CLOSED;
	else if (strcmp(json_string_value(state), "dropped") == 0)
		d->state = SUB_DROPPED;
	else
		goto out;
	*why = "invalid channel patterns";
	if (!json_is_array(chans) || (n = json_array_size(chans)) == 0)
		goto out;
	if ((d->patterns = calloc(n, sizeof(char *))) == NULL) {
		rc = SUB_DEF_OOM;
		goto out;
	}
	d->npatterns = n;
	for (size_t i = 0; i < n; i++) {
		const char *p = json_string_value(json_array_get(chans, i));

		if (p == NULL || sse_pattern_check(p, strlen(p)) != SSE_NAME_OK)
			goto out;
		if ((d->patterns[i] = strdup(p)) == NULL) {
			rc = SUB_DEF_OOM;
			goto out;
		}
	}
	/* a filter the matcher cannot evaluate exactly refuses the definition */
	fs = sse_filter_compile(fv, fl, &d->filter, &msg);
	if (fs != SSE_JSON_OK) {
		d->filter = NULL;
		*why = msg ? msg : "a filter that cannot be evaluated";
		rc = fs == SSE_JSON_NOMEM ? SUB_DEF_OOM : SUB_DEF_INVALID;
		goto out;
	}
	if (sse_filter_is_empty(d->filter)) {
		sse_filter_free(d->filter);
		d->filter = NULL;
	}
	rc = SUB_DEF_OK;
	*why = NULL;
out:
	json_decref(chans);
	json_decref(state);
	if (rc != SUB_DEF_OK)
		subdef_clear(d);
	if (rc == SUB_DEF_OOM)
		*why = "out of memory";
	return rc;
}

