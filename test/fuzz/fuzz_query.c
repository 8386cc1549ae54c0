/*
 * fuzz_query.c - libFuzzer target: query strings and Last-Event-ID values.
 * Decoded strings must never contain NUL; parsed ids are non-negative and
 * round-trip through their decimal form.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	query_params p;
	char		err[128];
	int64_t		id;

	if (query_parse((const char *) data, size, &p, err, sizeof(err))) {
		if (p.nchannels > QUERY_MAX_CHANNELS)
			abort();
		query_params_free(&p);
	}
	if (query_parse_event_id((const char *) data, size, &id)) {
		char		buf[32];
		int			n = snprintf(buf, sizeof(buf), "%" PRId64, id);

		if (id < 0 || n <= 0)
			abort();
		/* the digits (after trimming and leading zeros) must be the value */
		const char *s = (const char *) data;
		size_t		b = 0, e = size;

		while (b < e && (s[b] == ' ' || s[b] == '\t'))
			b++;
		while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
			e--;
		while (e - b > 1 && s[b] == '0')
			b++;
		if ((size_t) n != e - b || memcmp(buf, s + b, (size_t) n) != 0)
			abort();
	}
	return 0;
}
