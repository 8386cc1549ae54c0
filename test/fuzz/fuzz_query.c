/*
 * fuzz_query.c - libFuzzer target: query strings and Last-Event-ID values.
 * Decoded strings must never contain NUL; parsed ids are non-negative and
 * round-trip through their wire form ("<id>", "<id>-0", "<id>-<8 hex>").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logpos.h"
#include "query.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	query_params p;
	char		err[128];
	query_event_id id;

	if (query_parse((const char *) data, size, &p, err, sizeof(err)) == QUERY_OK) {
		if (p.nchannels > QUERY_MAX_CHANNELS)
			abort();
		query_params_free(&p);
	}
	if (query_parse_event_id((const char *) data, size, &id)) {
		char		buf[LOGPOS_STRLEN];
		size_t		n;
		const char *s = (const char *) data;
		size_t		b = 0, e = size;

		if (id.id < 0 || (!id.has_fp && id.fp != 0))
			abort();
		/*
		 * The value must print back to the input (after trimming and leading
		 * zeros): exactly "<digits>", "<digits>-0" or "<digits>-<8 hex>".
		 */
		if (id.has_fp)
			n = logpos_format(buf, id.id, id.fp);
		else
			n = (size_t) snprintf(buf, sizeof(buf), "%" PRId64, id.id);
		while (b < e && (s[b] == ' ' || s[b] == '\t'))
			b++;
		while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
			e--;
		while (e - b > 1 && s[b] == '0' && s[b + 1] >= '0' && s[b + 1] <= '9')
			b++;
		if (n == 0 || n != e - b || memcmp(buf, s + b, n) != 0)
			abort();
	}
	return 0;
}
