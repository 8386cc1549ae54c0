/*
 * logpos.c - the fingerprint and wire form of a log position (logpos.h).
 *
 * The hash is fixed: a restarted bridge, or another bridge on the same
 * database, must give the same position the same fingerprint.  It is two
 * rounds of the splitmix64 finalizer; it only has to tell rows apart, it
 * is no secret.
 */
#include <inttypes.h>
#include <stdio.h>

#include "logpos.h"

static uint64_t
logpos_mix(uint64_t z)
{
	z += UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint32_t
logpos_fp(int64_t id, int64_t created_us)
{
	uint32_t	fp;

	if (created_us == LOGPOS_NO_ROW || created_us == LOGPOS_UNKNOWN)
		return 0;
	fp = (uint32_t) (logpos_mix((uint64_t) id ^ logpos_mix((uint64_t) created_us)) >> 32);
	return fp == 0 ? 1 : fp;
}

size_t
logpos_format(char *buf, int64_t id, uint32_t fp)
{
	int			n;

	if (fp == 0)
		n = snprintf(buf, LOGPOS_STRLEN, "%" PRId64 "-0", id);
	else
		n = snprintf(buf, LOGPOS_STRLEN, "%" PRId64 "-%08" PRIx32, id, fp);
	return n < 0 ? 0 : (size_t) n;
}
