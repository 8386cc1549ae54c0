/*
 * test_scope.c - pattern-within-patterns inclusion (--public-channels).
 */
#include <stdlib.h>

#include "test_util.h"
#include "scope.h"
#include "sse_match.h"

static bool
allows(const char *publics, const char *pat)
{
	char		err[128];
	scope	   *s = scope_new(publics, err, sizeof(err));
	bool		r;

	assert_non_null(s);
	r = scope_check(s, pat, strlen(pat)) == SCOPE_INSIDE;
	scope_free(s);
	return r;
}

static void
test_scope_literal(void **state)
{
	(void) state;
	assert_true(allows("a.b", "a.b"));
	assert_false(allows("a.b", "a.c"));
	assert_false(allows("a.b", "a.*"));
	assert_false(allows("", "a"));
	assert_true(allows(" x , a.b ", "a.b"));
}

static void
test_scope_wildcards(void **state)
{
	(void) state;
	assert_true(allows("a.*", "a.b"));
	assert_true(allows("a.*", "a.*"));
	assert_false(allows("a.*", "a.#"));		/* a.# also matches a and a.b.c */
	assert_true(allows("a.#", "a.#"));
	assert_true(allows("a.#", "a.*.c"));
	assert_true(allows("a.#", "a"));
	assert_false(allows("a.#", "#"));
	assert_true(allows("#", "#"));
	assert_true(allows("#", "x.*.#.y"));
	assert_false(allows("*.x", "*.*"));
	assert_true(allows("*.*", "a.*"));
	assert_false(allows("*.*", "a.#"));
	assert_true(allows("a.#.z", "a.*.z"));
	assert_false(allows("a.#.z", "a.#"));
	assert_true(allows("#.z", "a.#.z"));
	assert_false(allows("a.*.#", "a.#"));	/* misses the channel "a" */
	assert_true(allows("*.#", "a.#"));
	assert_false(allows("x.#", "*"));
}

static void
test_scope_union(void **state)
{
	(void) state;
	/* neither alone covers a.#, together they do */
	assert_true(allows("a,a.*.#", "a.#"));
	assert_false(allows("a,a.*.*.#", "a.#"));
	assert_true(allows("a.b,a.*", "a.*"));
	assert_false(allows("*.x,*.y,*.*.#", "*.#"));	/* "a" escapes */
	assert_true(allows("*,*.x,*.*.#", "*.#"));
	assert_false(allows("*.x,*.y", "*.*"));
	assert_true(allows("a.b.#,a.c.#,a.*", "a.*"));
}

/* Brute force cross-check on a small universe of channels. */
static void
test_scope_brute(void **state)
{
	const char *segs[] = {"a", "b", "q"};
	const char *pats[] = {"a", "*", "#", "a.*", "a.#", "*.b", "#.b", "*.#", "a.#.b",
		"*.*", "#.a.#", "b.*.#", "*.a.*"};
	size_t		np = sizeof(pats) / sizeof(pats[0]);
	char		ch[32];

	(void) state;
	for (size_t i = 0; i < np; i++) {
		for (size_t j = 0; j < np; j++) {
			bool		covered = true;

			/* channels of 1..4 segments over {a, b, q}; q stands for "other" */
			for (int len = 1; len <= 4 && covered; len++) {
				int			total = 1;

				for (int k = 0; k < len; k++)
					total *= 3;
				for (int n = 0; n < total && covered; n++) {
					int			x = n;

					ch[0] = '\0';
					for (int k = 0; k < len; k++, x /= 3) {
						if (k)
							strcat(ch, ".");
						strcat(ch, segs[x % 3]);
					}
					if (sse_pattern_match(pats[i], strlen(pats[i]), ch, strlen(ch)) &&
						!sse_pattern_match(pats[j], strlen(pats[j]), ch, strlen(ch)))
						covered = false;
				}
			}
			if (allows(pats[j], pats[i]) != covered)
				fail_msg("scope(%s) allows %s: expected %d", pats[j], pats[i], covered);
		}
	}
}

static void
test_scope_bad(void **state)
{
	char		err[128];

	(void) state;
	assert_null(scope_new("a,b..c", err, sizeof(err)));
	assert_non_null(strstr(err, "b..c"));
	assert_null(scope_new("a*", err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scope_literal),
		cmocka_unit_test(test_scope_wildcards),
		cmocka_unit_test(test_scope_union),
		cmocka_unit_test(test_scope_brute),
		cmocka_unit_test(test_scope_bad),
	};

	return cmocka_run_group_tests_name("scope", tests, NULL, NULL);
}
