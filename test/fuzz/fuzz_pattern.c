/*
 * fuzz_pattern.c - libFuzzer target: the --public-channels inclusion check.
 * Input: "PUBLIC_LIST\nPATTERN\nCHANNEL".  If the scope allows PATTERN and
 * PATTERN matches CHANNEL, some public pattern must match CHANNEL too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scope.h"
#include "sse_match.h"

static bool
any_public_matches(const char *list, const char *ch, size_t clen)
{
	char	   *copy = strdup(list), *save = NULL;
	bool		hit = false;

	for (char *t = strtok_r(copy, ",", &save); t && !hit; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		size_t		n = strlen(t);

		while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			n--;
		hit = n > 0 && sse_pattern_match(t, n, ch, clen);
	}
	free(copy);
	return hit;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *buf = malloc(size + 1), *pat, *ch;
	char		err[256];
	scope	   *s;

	memcpy(buf, data, size);
	buf[size] = '\0';
	if (strlen(buf) != size || (pat = strchr(buf, '\n')) == NULL) {
		free(buf);
		return 0;
	}
	*pat++ = '\0';
	ch = strchr(pat, '\n');
	if (ch != NULL)
		*ch++ = '\0';
	s = scope_new(buf, err, sizeof(err));
	if (s != NULL && sse_pattern_check(pat, strlen(pat)) == SSE_NAME_OK &&
		scope_check(s, pat, strlen(pat)) == SCOPE_INSIDE && ch != NULL &&
		sse_channel_check(ch, strlen(ch)) == SSE_NAME_OK &&
		sse_pattern_match(pat, strlen(pat), ch, strlen(ch)) &&
		!any_public_matches(buf, ch, strlen(ch)))
		abort();				/* allowed a pattern that reaches a private channel */
	scope_free(s);
	free(buf);
	return 0;
}
