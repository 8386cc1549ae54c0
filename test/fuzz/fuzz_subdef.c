/*
 * fuzz_subdef.c - libFuzzer target: subscription definitions (a marker's
 * data).  A definition is applied whole or refused: on success every
 * pattern passes sse_pattern_check and the sid is the one asked for; on
 * refusal nothing is left allocated (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse_match.h"
#include "subdef.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *) data;
	int64_t		sid = subdef_sid(text, size);
	const char *why = NULL;
	sub_def		d;
	sub_def_status rc = subdef_parse(text, size, sid > 0 ? sid : 7, &d, &why);

	if (rc == SUB_DEF_OK) {
		if (sid <= 0 || d.npatterns == 0 || why != NULL)
			abort();
		for (size_t i = 0; i < d.npatterns; i++)
			if (sse_pattern_check(d.patterns[i], strlen(d.patterns[i])) != SSE_NAME_OK)
				abort();
		if (d.state != SUB_ACTIVE && d.state != SUB_CLOSED && d.state != SUB_DROPPED)
			abort();
	}
	else if (d.patterns != NULL || d.filter != NULL || why == NULL)
		abort();
	subdef_clear(&d);
	return 0;
}
