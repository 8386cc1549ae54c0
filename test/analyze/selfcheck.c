/*
 * selfcheck.c - defects both analyzers must report (test/analyze/run.sh
 * checks that they do before it trusts a clean result).  Never built.
 */
#include <stdlib.h>
#include <string.h>

int			selfcheck_null(int n);
char	   *selfcheck_leak(const char *s);

int
selfcheck_null(int n)
{
	int		   *p = NULL;

	if (n > 3)
		p = malloc(sizeof(int));
	return *p;					/* NULL when n <= 3 */
}

char *
selfcheck_leak(const char *s)
{
	char	   *copy = strdup(s);

	if (copy == NULL || copy[0] == 'x')
		return NULL;			/* leaks copy when it starts with x */
	return copy;
}
