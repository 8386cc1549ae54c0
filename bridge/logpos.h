/*
 * logpos.h - positions in the log as clients see them: "<id>-<fp>".
 *
 * A log id alone cannot tell two timelines apart: after a restore of an
 * older dump, point-in-time recovery or a failover to a standby that missed
 * the last commits, the same ids are written again with other events.  So
 * a position is its id and a fingerprint of the row at that id, a hash of
 * (id, created_at in microseconds).  created_at is the commit-time
 * clock_timestamp(); pg_dump/restore and pg_upgrade keep it, so a position
 * survives them, while a row written again on another timeline practically
 * never has the same one.
 *
 * Wire form (docs/design.md): "<id>-<8 lowercase hex digits>" for a
 * position with a row, "<id>-0" for one without (id <= pruned_through,
 * including the empty log "0-0").  The fingerprint is never 0 for a row.
 */
#ifndef BRIDGE_LOGPOS_H
#define BRIDGE_LOGPOS_H

#include <stddef.h>
#include <stdint.h>

/* created_us of a position that has no row (pruned, or the empty log). */
#define LOGPOS_NO_ROW INT64_MIN
/* created_us not known (no check possible). */
#define LOGPOS_UNKNOWN (INT64_MIN + 1)

/* Longest wire form: 19 digits, '-', 8 hex digits, NUL. */
#define LOGPOS_STRLEN 32

/* Fingerprint of the row (id, created_us); 0 for LOGPOS_NO_ROW. */
uint32_t	logpos_fp(int64_t id, int64_t created_us);

/* Write the wire form into buf (LOGPOS_STRLEN bytes); returns its length. */
size_t		logpos_format(char *buf, int64_t id, uint32_t fp);

#endif
