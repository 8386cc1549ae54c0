/*
 * sse_bridge.h
 *		Shared declarations of the sse_bridge extension.
 *
 * The extension keeps a commit-ordered event log in sse_bridge.events.
 * Events are collected in transaction memory (sse_publish.c) and written,
 * with their ids, from a pre-commit callback while the transaction holds the
 * publish lock declared below.  See docs/design.md for the contract with the
 * bridge daemon.
 */
#ifndef SSE_BRIDGE_H
#define SSE_BRIDGE_H

#include "postgres.h"

#include "sse_match.h"

/*
 * The publish lock: a transaction-scoped advisory lock tag, taken in
 * ExclusiveLock mode by every publishing commit (SseLockPublishing).  Its
 * fields are the database, the two halves of the key below (it spells
 * "SSE_PUB1" in ASCII) and SSE_PUBLISH_LOCK_FIELD4.  The SQL advisory-lock
 * functions always put 1 (int8 key) or 2 (int4 pair) in the fourth field,
 * so no SQL caller can name this tag, and no role can stall publishing by
 * holding an advisory lock.  It shows up in pg_locks as an advisory lock
 * with objsubid = SSE_PUBLISH_LOCK_FIELD4.  A session with EXECUTE on
 * sse_bridge.lock_publishing() (the extension owner's alone by default)
 * can hold it to stall publishing commits on purpose, e.g. to copy the log
 * consistently (the isolation specs and test/torture do).
 */
#define SSE_PUBLISH_LOCK_KEY		INT64CONST(0x5353455F50554231)
#define SSE_PUBLISH_LOCK_FIELD4		0x5353

/* The one NOTIFY channel, shared with the bridge. */
#define SSE_NOTIFY_CHANNEL			"sse_bridge"

/* Schema and relations, always referenced fully qualified. */
#define SSE_SCHEMA					"sse_bridge"
#define SSE_EVENTS_TABLE			"events"
#define SSE_EVENTS_SEQUENCE			"events_id_seq"
#define SSE_SUBSCRIPTIONS_TABLE		"subscriptions"
#define SSE_VERSIONS_TABLE			"subscription_versions"

/*
 * The reserved channel of subscription-change markers (docs/design.md).
 * No channel name or pattern can contain "$", so nothing can publish to it
 * and no pattern names it literally; readers recognise markers by channel.
 */
#define SSE_SUB_CHANNEL				"$sub"

/* Event names the bridge sends itself; sse_publish refuses them. */
#define SSE_EVENT_CLOSE				"close"

/* GUCs (sse_bridge.c) */
extern int	sse_max_payload;		/* bytes */
extern int	sse_retention;			/* seconds */
extern int	sse_retention_max_events;	/* 0 = no limit */

/* sse_publish.c */
extern void SsePublishInit(void);
extern void SseLockPublishing(void);
extern char *SseDisplayName(const char *s, size_t len);
extern void SseCheckChannel(const char *channel, size_t len);
extern void SseCheckEventName(const char *event, size_t len);
extern void SseCheckPayloadSize(size_t len);
extern void SseEnqueueEvent(const char *channel, size_t channel_len,
							const char *event, size_t event_len,
							const char *data, size_t data_len);
extern void SseEnqueueSubscription(int64 sid, Datum channels, Datum filter,
								   const char *state, bool created,
								   bool is_close);

/* sse_sqlmatch.c */
extern void SseCheckFilterText(const char *what, const char *json, size_t len);
extern void SseCheckPayload(const char *data, size_t len);

/* sse_subscription.c */
extern void SseNotifySubscription(int64 sid);
extern bool SseHasVersions(void);

#endif							/* SSE_BRIDGE_H */
