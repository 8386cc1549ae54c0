/*
 * filter_worst.c - the cost of filter evaluation at the worst case the
 * filter limits allow (make bench prints its figures).
 *
 * One event of about 1 MB (sse_bridge.max_payload's default) holding four
 * arrays of 30,000 scalars each (120,000 elements), and filters at the
 * limits: 1024 values, four arrays of ~255 scalars, each of which is in the
 * event (so no evaluation stops early).  Prints the time to parse the event
 * (once per event), to hash its arrays (once per event, on the first filter
 * that looks into them), per filter afterwards, and for comparison the
 * direct evaluation that scans the arrays (the cost before compilation).
 * Times are CPU time of the evaluating thread.
 *
 * Usage: filter_worst [filters]   (default 100)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sse_filter.h"

#define NARRAYS 4
#define PER_ARRAY 30000
#define FILTER_ELEMS 255

static double
now_us(void)
{
	struct timespec ts;

	/* CPU time of this thread: what an event costs the bridge's loop,
	 * without the preemptions of a shared machine */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static char *
append(char *p, const char *s)
{
	size_t		n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* Element i of array a: numbers written in several equal ways, and strings. */
static int
element(char *buf, size_t size, int a, int i)
{
	switch (i % 3)
	{
		case 0:
			return snprintf(buf, size, "%d.%d", 10000 + i, a + 1);
		case 1:
			return snprintf(buf, size, "\"%x-%d\"", i, a);
		default:
			return snprintf(buf, size, "%de-1", 100000 + i * 10 + a);
	}
}

int
main(int argc, char **argv)
{
	int			nfilters = argc > 1 ? atoi(argv[1]) : 100;
	size_t		cap = 2 * 1024 * 1024;
	char	   *ev = malloc(cap),
			   *p = ev;
	sse_filter **filters = calloc((size_t) nfilters, sizeof(sse_filter *));
	sse_doc    *doc;
	json_t	   *fj,
			   *dj;
	double		t0,
				parse_us,
				first_us,
				sum = 0,
				max = 0,
				direct_us;
	size_t		flen_max = 0;

	if (ev == NULL || filters == NULL || nfilters < 1)
		return 2;
	p = append(p, "{");
	for (int a = 0; a < NARRAYS; a++)
	{
		p += sprintf(p, "%s\"k%d\":[", a ? "," : "", a);
		for (int i = 0; i < PER_ARRAY; i++)
		{
			if (i)
				*p++ = ',';
			p += element(p, 64, a, i);
		}
		*p++ = ']';
	}
	p = append(p, "}");
	*p = '\0';

	/* filters: every element is in the event, picked differently per filter */
	for (int f = 0; f < nfilters; f++)
	{
		char		text[SSE_FILTER_SIZE_MAX + 1];
		char	   *q = text;
		const char *msg;

		q = append(q, "{");
		for (int a = 0; a < NARRAYS; a++)
		{
			int			n = FILTER_ELEMS - (a == 0);	/* 1 + 4 + 1019 = 1024 values */

			q += sprintf(q, "%s\"k%d\":[", a ? "," : "", a);
			for (int i = 0; i < n; i++)
			{
				if (i)
					*q++ = ',';
				q += element(q, 64, a, (int) (((long) f * 7919 + (long) i * 104729) % PER_ARRAY));
			}
			*q++ = ']';
		}
		q = append(q, "}");
		if ((size_t) (q - text) > flen_max)
			flen_max = (size_t) (q - text);
		if (sse_filter_compile(text, (size_t) (q - text), &filters[f], &msg) != SSE_JSON_OK)
		{
			fprintf(stderr, "filter refused: %s\n", msg);
			return 2;
		}
	}

	t0 = now_us();
	if (sse_doc_parse(ev, (size_t) (p - ev), &doc) != SSE_JSON_OK)
		return 2;
	parse_us = now_us() - t0;

	t0 = now_us();
	if (!sse_filter_eval(filters[0], doc))
		return 3;
	first_us = now_us() - t0;
	for (int rep = 0; rep < 3; rep++)
		for (int f = 0; f < nfilters; f++)
		{
			double		t;

			t0 = now_us();
			if (!sse_filter_eval(filters[f], doc))
				return 3;
			t = now_us() - t0;
			sum += t;
			if (t > max)
				max = t;
		}

	/* the direct evaluation, for comparison (one filter) */
	{
		char		text[SSE_FILTER_SIZE_MAX + 1];
		char	   *q = text;

		q = append(q, "{");
		for (int a = 0; a < NARRAYS; a++)
		{
			q += sprintf(q, "%s\"k%d\":[", a ? "," : "", a);
			for (int i = 0; i < FILTER_ELEMS - (a == 0); i++)
			{
				if (i)
					*q++ = ',';
				q += element(q, 64, a, PER_ARRAY - 1 - i);
			}
			*q++ = ']';
		}
		q = append(q, "}");
		fj = sse_json_parse(text, (size_t) (q - text));
		dj = sse_json_parse(ev, (size_t) (p - ev));
		t0 = now_us();
		if (!sse_filter_match(fj, dj))
			return 3;
		direct_us = now_us() - t0;
		json_decref(fj);
		json_decref(dj);
	}

	printf("filter worst case: event %zu bytes, %d array elements; filters of %d values, %zu bytes\n",
		   (size_t) (p - ev), NARRAYS * PER_ARRAY, SSE_FILTER_NODES_MAX, flen_max);
	printf("  parse the event (once per event):              %8.0f us\n", parse_us);
	printf("  first filter, hashing the event's arrays:       %8.0f us\n", first_us);
	printf("  each further filter (%d filters x 3): mean %.1f us, max %.1f us\n",
		   nfilters, sum / (3.0 * nfilters), max);
	printf("  direct evaluation (scans the arrays), one filter: %8.0f us\n", direct_us);
	printf("{\"event_bytes\":%zu,\"elements\":%d,\"filters\":%d,\"parse_us\":%.0f,"
		   "\"first_us\":%.0f,\"per_filter_mean_us\":%.1f,\"per_filter_max_us\":%.1f,\"direct_us\":%.0f}\n",
		   (size_t) (p - ev), NARRAYS * PER_ARRAY, nfilters, parse_us, first_us,
		   sum / (3.0 * nfilters), max, direct_us);
	for (int f = 0; f < nfilters; f++)
		sse_filter_free(filters[f]);
	free(filters);
	sse_doc_free(doc);
	free(ev);
	return 0;
}
