/*
 * fuzz_frame.c - libFuzzer target: SSE framing.  Parses the produced frame
 * the way a WHATWG EventSource does and checks that it rebuilds the
 * payload (line breaks normalised to LF) and the id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame	   *f = wire_event(42, NULL, 0, (const char *) data, size);
	char	   *want = malloc(size + 1), *got = malloc(f->len + 1);
	size_t		wn = 0, gn = 0;
	const char *p = f->data, *end = f->data + f->len;

	if (f->len != wire_event_size(42, 0, (const char *) data, size))
		abort();
	for (size_t i = 0; i < size; i++) {	/* CRLF, CR -> LF */
		if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')
			continue;
		want[wn++] = data[i] == '\r' ? '\n' : (char) data[i];
	}
	/* WHATWG: lines end in LF here (the frame only uses LF) */
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t) (end - p));

		if (e == NULL)
			abort();
		if (e - p >= 6 && memcmp(p, "data: ", 6) == 0) {
			memcpy(got + gn, p + 6, (size_t) (e - p - 6));
			gn += (size_t) (e - p - 6);
			got[gn++] = '\n';
		}
		else if (e != p && !(e - p == 6 && memcmp(p, "id: 42", 6) == 0))
			abort();			/* only id, data and the blank line */
		p = e + 1;
	}
	if (gn == 0 || (gn - 1) != wn || memcmp(got, want, wn) != 0)
		abort();
	free(want);
	free(got);
	frame_unref(f);
	return 0;
}
