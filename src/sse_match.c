/*
 * sse_match.c
 *		Channel, pattern and event-name rules shared by extension and bridge.
 *
 * Pattern matching works on segments.  Both inputs are split into at most
 * SSE_MAX_SEGMENTS (offset, length) pairs on the stack, then matched with
 * the classic single-backtrack wildcard algorithm: "#" plays the role of a
 * glob star over whole segments and "*" that of a single-segment "?".
 * The algorithm is linear in the number of segments times the number of
 * "#" restarts, with no recursion and no allocation.
 */
#include "sse_match.h"

#include <string.h>

/* A 200-byte name has at most 100 segments ("a.a.a..."). */
#define SSE_MAX_SEGMENTS ((SSE_CHANNEL_MAX + 1) / 2)

typedef struct sse_segments
{
	int			n;
	unsigned char off[SSE_MAX_SEGMENTS];
	unsigned char len[SSE_MAX_SEGMENTS];
} sse_segments;

static bool
is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-';
}

/*
 * Check one segment [s, s+len).  Wildcards are accepted only when
 * allow_wildcards, and then only as the whole segment.
 */
static sse_name_status
check_segment(const char *s, size_t len, bool allow_wildcards)
{
	bool		has_wild = false;

	if (len == 0)
		return SSE_NAME_EMPTY_SEGMENT;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '*' || c == '#')
			has_wild = true;
		else if (!is_name_char(c))
			return SSE_NAME_BAD_CHAR;
	}
	if (!has_wild)
		return SSE_NAME_OK;
	if (!allow_wildcards)
		return SSE_NAME_WILDCARD;
	return len == 1 ? SSE_NAME_OK : SSE_NAME_BAD_WILDCARD;
}

/*
 * Check a whole dotted name.  A bad character anywhere wins over an empty
 * segment, so that "a..b\n" reports the character, which is the more
 * useful message.
 */
static sse_name_status
check_dotted(const char *s, size_t len, bool allow_wildcards)
{
	sse_name_status first = SSE_NAME_OK;
	size_t		start = 0;

	if (len == 0)
		return SSE_NAME_EMPTY;
	if (len > SSE_CHANNEL_MAX)
		return SSE_NAME_TOO_LONG;
	for (size_t i = 0; i <= len; i++)
	{
		if (i < len && s[i] != '.')
			continue;
		sse_name_status st = check_segment(s + start, i - start, allow_wildcards);

		if (st == SSE_NAME_BAD_CHAR)
			return st;
		if (first == SSE_NAME_OK)
			first = st;
		start = i + 1;
	}
	return first;
}

sse_name_status
sse_channel_check(const char *s, size_t len)
{
	return check_dotted(s, len, false);
}

sse_name_status
sse_pattern_check(const char *s, size_t len)
{
	return check_dotted(s, len, true);
}

/*
 * Event names are counted in characters (UTF-8 continuation bytes do not
 * count), and may hold any character except ASCII controls and DEL.
 * Validity of the UTF-8 itself is the database encoding's job.
 */
sse_name_status
sse_event_name_check(const char *s, size_t len)
{
	size_t		chars = 0;

	if (len == 0)
		return SSE_NAME_EMPTY;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7f)
			return SSE_NAME_BAD_CHAR;
		if ((c & 0xC0) != 0x80)
			chars++;
	}
	return chars > SSE_EVENT_NAME_MAX ? SSE_NAME_TOO_LONG : SSE_NAME_OK;
}

const char *
sse_name_status_message(sse_name_status st)
{
	switch (st)
	{
		case SSE_NAME_OK:
			return "valid";
		case SSE_NAME_EMPTY:
			return "is empty";
		case SSE_NAME_TOO_LONG:
			return "is too long";
		case SSE_NAME_BAD_CHAR:
			return "contains a character that is not allowed";
		case SSE_NAME_EMPTY_SEGMENT:
			return "has an empty segment";
		case SSE_NAME_WILDCARD:
			return "contains a wildcard";
		case SSE_NAME_BAD_WILDCARD:
			return "has a wildcard that is not a whole segment";
	}
	return "is invalid";
}

bool
sse_pattern_is_literal(const char *pat, size_t len)
{
	return memchr(pat, '*', len) == NULL && memchr(pat, '#', len) == NULL;
}

/* Split into segments; false when the name is too long to be valid. */
static bool
split_segments(const char *s, size_t len, sse_segments *out)
{
	size_t		start = 0;

	if (len > SSE_CHANNEL_MAX)
		return false;
	out->n = 0;
	for (size_t i = 0; i <= len; i++)
	{
		if (i < len && s[i] != '.')
			continue;
		if (out->n == SSE_MAX_SEGMENTS)
			return false;
		out->off[out->n] = (unsigned char) start;
		out->len[out->n] = (unsigned char) (i - start);
		out->n++;
		start = i + 1;
	}
	return true;
}

static bool
segment_is(const char *s, const sse_segments *sg, int i, char c)
{
	return sg->len[i] == 1 && s[sg->off[i]] == c;
}

static bool
segment_equal(const char *a, const sse_segments *sa, int i,
			  const char *b, const sse_segments *sb, int j)
{
	return sa->len[i] == sb->len[j] &&
		memcmp(a + sa->off[i], b + sb->off[j], sa->len[i]) == 0;
}

bool
sse_pattern_match(const char *pat, size_t plen, const char *ch, size_t clen)
{
	sse_segments ps,
				cs;
	int			p = 0,
				c = 0;
	int			star_p = -1,
				star_c = 0;

	if (plen == 0 || clen == 0 ||
		!split_segments(pat, plen, &ps) || !split_segments(ch, clen, &cs))
		return false;

	while (c < cs.n)
	{
		if (p < ps.n && segment_is(pat, &ps, p, '#'))
		{
			/* try "#" as zero segments first; remember where to resume */
			star_p = p++;
			star_c = c;
		}
		else if (p < ps.n && (segment_is(pat, &ps, p, '*') ||
							  segment_equal(pat, &ps, p, ch, &cs, c)))
		{
			p++;
			c++;
		}
		else if (star_p >= 0)
		{
			/* let the last "#" swallow one more segment */
			p = star_p + 1;
			c = ++star_c;
		}
		else
			return false;
	}
	while (p < ps.n && segment_is(pat, &ps, p, '#'))
		p++;
	return p == ps.n;
}
