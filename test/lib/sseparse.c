/*
 * sseparse.c - the test clients' Server-Sent Events parser; see sseparse.h.
 */
#include "sseparse.h"

#include <stdlib.h>
#include <string.h>

static const char bom[3] = {'\xEF', '\xBB', '\xBF'};

static bool
buf_add(sse_parser *ps, sse_buf *b, const char *s, size_t n)
{
	if (ps->failed)
		return false;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 64;
		char	   *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
		{
			ps->failed = true;
			return false;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

static bool
buf_set(sse_parser *ps, sse_buf *b, const char *s, size_t n)
{
	b->len = 0;
	return buf_add(ps, b, s, n);
}

static void
buf_clear(sse_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void
sse_init(sse_parser *ps, const sse_callbacks *cb, void *arg)
{
	*ps = (sse_parser) {.cb = *cb, .arg = arg, .retry_ms = -1};
	sse_begin(ps);
}

void
sse_begin(sse_parser *ps)
{
	buf_clear(&ps->line);
	buf_clear(&ps->data);
	buf_clear(&ps->event);
	buf_set(ps, &ps->id, ps->last_id.p ? ps->last_id.p : "", ps->last_id.len);
	ps->after_cr = false;
	ps->at_start = true;
	ps->bom = 0;
	ps->stop = false;
}

void
sse_stop(sse_parser *ps)
{
	ps->stop = true;
}

bool
sse_set_last_id(sse_parser *ps, const char *id, size_t len)
{
	return buf_set(ps, &ps->last_id, id, len) && buf_set(ps, &ps->id, id, len);
}

void
sse_free(sse_parser *ps)
{
	free(ps->line.p);
	free(ps->data.p);
	free(ps->event.p);
	free(ps->id.p);
	free(ps->last_id.p);
	ps->line = ps->data = ps->event = ps->id = ps->last_id = (sse_buf) {0};
}

static void
dispatch(sse_parser *ps)
{
	sse_event	ev;

	if (!buf_set(ps, &ps->last_id, ps->id.p ? ps->id.p : "", ps->id.len))
		return;
	if (ps->data.len == 0)
	{
		buf_clear(&ps->event);
		return;
	}
	ps->data.p[--ps->data.len] = '\0';	/* the final LF */
	ev.id = ps->last_id.p;
	ev.id_len = ps->last_id.len;
	ev.event = ps->event.len ? ps->event.p : "message";
	ev.event_len = ps->event.len ? ps->event.len : 7;
	ev.data = ps->data.p;
	ev.data_len = ps->data.len;
	ps->cb.on_event(ps, &ev);
	buf_clear(&ps->data);
	buf_clear(&ps->event);
}

static bool
all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void
line(sse_parser *ps, const char *s, size_t n)
{
	const char *colon, *v;
	size_t		nl, vl;

	if (n == 0)
	{
		dispatch(ps);
		return;
	}
	if (s[0] == ':')
	{
		if (ps->cb.on_comment)
			ps->cb.on_comment(ps, s + 1, n - 1);
		return;
	}
	colon = memchr(s, ':', n);
	nl = colon ? (size_t) (colon - s) : n;
	v = colon ? colon + 1 : s + n;
	vl = colon ? n - nl - 1 : 0;
	if (vl > 0 && v[0] == ' ')
	{
		v++;
		vl--;
	}
	if (nl == 5 && memcmp(s, "event", 5) == 0)
		buf_set(ps, &ps->event, v, vl);
	else if (nl == 4 && memcmp(s, "data", 4) == 0)
	{
		if (buf_add(ps, &ps->data, v, vl))
			buf_add(ps, &ps->data, "\n", 1);
	}
	else if (nl == 2 && memcmp(s, "id", 2) == 0)
	{
		if (memchr(v, '\0', vl) == NULL)
			buf_set(ps, &ps->id, v, vl);
	}
	else if (nl == 5 && memcmp(s, "retry", 5) == 0)
	{
		if (all_digits(v, vl))
		{
			ps->retry_ms = strtol(v, NULL, 10);
			if (ps->cb.on_retry)
				ps->cb.on_retry(ps, ps->retry_ms);
		}
	}
}

/* Bytes after the BOM check. */
static void
feed_body(sse_parser *ps, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !ps->stop && !ps->failed; i++)
	{
		char		c = p[i];

		if (ps->after_cr)
		{
			ps->after_cr = false;
			if (c == '\n')
				continue;
		}
		if (c == '\r' || c == '\n')
		{
			line(ps, ps->line.p ? ps->line.p : "", ps->line.len);
			buf_clear(&ps->line);
			ps->after_cr = c == '\r';
		}
		else
		{
			/* take the run up to the next line end in one go */
			size_t		j = i;

			while (j < n && p[j] != '\r' && p[j] != '\n')
				j++;
			buf_add(ps, &ps->line, p + i, j - i);
			i = j - 1;
		}
	}
}

bool
sse_feed(sse_parser *ps, const char *p, size_t n)
{
	/* the BOM may be split across feeds: count the bytes matched so far */
	while (ps->at_start && n > 0)
	{
		if (*p == bom[ps->bom])
		{
			p++;
			n--;
			if (++ps->bom == 3)
				ps->at_start = false;
			continue;
		}
		ps->at_start = false;
		feed_body(ps, bom, ps->bom);	/* a partial BOM is data */
	}
	feed_body(ps, p, n);
	return !ps->failed;
}
