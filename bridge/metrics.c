/*
 * metrics.c - Prometheus text exposition of the bridge's counters.
 *
 * Invariants: counters only grow; gauges are read at render time from the
 * modules that own them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "hub.h"
#include "mem.h"
#include "metrics.h"
#include "prune.h"
#include "replica.h"
#include "ring.h"
#include "work.h"

metrics_counters metrics;
static const db_link *live_link, *work_link;
static void (*view_fill)(metrics_view *v);
static void (*view_extra)(FILE *f);

void
metrics_set_view(void (*fill)(metrics_view *v), void (*extra)(FILE *f))
{
	view_fill = fill;
	view_extra = extra;
}

void
metrics_init(const db_link *live, const db_link *work)
{
	live_link = live;
	work_link = work;
}

static const char *const close_reason_names[CLOSE_COUNT] = {
	[CLOSE_OOM] = "out_of_memory",
	[CLOSE_SLOW] = "slow_client",
	[CLOSE_MEMORY] = "memory_limit",
	[CLOSE_DATABASE] = "database",
	[CLOSE_TIMELINE] = "timeline",
	[CLOSE_RESUME] = "resume",
	[CLOSE_DEFINITION] = "bad_definition",
	[CLOSE_SUBSCRIPTION] = "subscription_ended",
	[CLOSE_END_EVENT] = "close_event",
	[CLOSE_AUTH_EXPIRED] = "token_expired",
};

const char *
close_reason_name(close_reason r)
{
	return r < CLOSE_COUNT ? close_reason_names[r] : "unknown";
}

static const double lag_bounds[12] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10
};

void
metrics_observe_lag(int64_t created_us, int64_t now_us)
{
	double		s = (double) (now_us - created_us) / 1e6;

	if (s < 0)
		s = 0;
	metrics.lag_count++;
	metrics.lag_sum += s;
	for (int i = 0; i < 12; i++)
		if (s <= lag_bounds[i])
			metrics.lag_buckets[i]++;
}

static void
metrics_line(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

static void
metrics_lag(FILE *f, const metrics_counters *m)
{
	const char *n = "sse_bridge_lag_seconds";

	fprintf(f, "# HELP %s Time from commit to queueing for clients.\n# TYPE %s histogram\n", n, n);
	for (int i = 0; i < 12; i++)
		fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", n, lag_bounds[i], m->lag_buckets[i]);
	fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n",
			n, m->lag_count, n, m->lag_sum, n, m->lag_count);
}

void
metrics_own_view(metrics_view *v)
{
	*v = (metrics_view) {0};
	v->c = metrics;
	v->indexed = hub_count();
	v->filter_evals = hub_filter_evals;
	v->db_reconnects = live_link->reconnects + work_link->reconnects;
	v->db_timeouts = live_link->timeouts + work_link->timeouts;
	v->prune_runs = prune_stats.runs;
	v->prune_deleted = prune_stats.deleted;
	v->prune_failures = prune_stats.failures;
	v->db_up = db_link_up(live_link);
	v->head_id = ring_valid() ? (uint64_t) ring_hi() : 0;
	v->cache_events = ring_count();
	v->mem_limit = mem_limit();
	for (int k = 0; k < MEM_KINDS && k < 8; k++)
		v->mem_kind[k] = mem_kind_used((mem_kind) k);
	v->injected = mem_injected();
	v->tokens_verified = auth_verifications;
	v->token_cache_hits = auth_cache_hits;
	v->token_refusals = auth_refusals;
	v->standby = live_link->standby;
	v->replay_polls = replica_stats.polls;
	v->replay_moves = replica_stats.moves;
	v->promotions = replica_stats.promotions;
	v->lag_held = work_lag_stats.held;
	v->lag_expired = work_lag_stats.expired;
}

char *
metrics_render(size_t *len)
{
	char	   *buf = NULL;
	FILE	   *f = open_memstream(&buf, len);
	metrics_view v;

	if (f == NULL)
		return NULL;
	if (view_fill != NULL)
		view_fill(&v);
	else
		metrics_own_view(&v);
	metrics_line(f, "sse_bridge_clients", "gauge", "Open client connections.", v.c.clients);
	metrics_line(f, "sse_bridge_streams", "gauge", "Clients replaying or live.", v.c.streams);
	metrics_line(f, "sse_bridge_subscriptions_indexed", "gauge", "Live streams in the fan-out index.", v.indexed);
	metrics_line(f, "sse_bridge_connections_total", "counter", "Accepted connections.", v.c.connections);
	metrics_line(f, "sse_bridge_rejected_total", "counter", "Connections refused over --max-clients.", v.c.rejected);
	metrics_line(f, "sse_bridge_events_fetched_total", "counter", "Events read from the log.", v.c.events_fetched);
	metrics_line(f, "sse_bridge_events_sent_total", "counter", "Event frames queued to clients.", v.c.events_sent);
	metrics_line(f, "sse_bridge_run_events_sent_total", "counter",
				 "Of those, live events queued as part of a batch's run (one frame for several events).", v.c.run_sent);
	metrics_line(f, "sse_bridge_bytes_sent_total", "counter", "Bytes written to clients.", v.c.bytes_sent);
	metrics_line(f, "sse_bridge_replayed_events_total", "counter", "Event frames sent while replaying.", v.c.replayed);
	metrics_line(f, "sse_bridge_replay_pages_total", "counter", "Replay pages read from the log.", v.c.replay_pages);
	metrics_line(f, "sse_bridge_notifications_total", "counter", "NOTIFY payloads received.", v.c.notices);
	metrics_line(f, "sse_bridge_resets_total", "counter", "Reset events sent.", v.c.resets);
	metrics_line(f, "sse_bridge_timelines_total", "counter", "Times the log was found replaced or gone back.", v.c.timelines);
	metrics_line(f, "sse_bridge_redefinitions_total", "counter",
				 "Subscription changes applied to streams at their log position.", v.c.redefinitions);
	metrics_line(f, "sse_bridge_definition_errors_total", "counter",
				 "Streams ended on a subscription definition the bridge cannot apply.", v.c.def_errors);
	metrics_line(f, "sse_bridge_slow_client_drops_total", "counter", "Clients dropped over --client-queue.", v.c.slow_drops);
	metrics_line(f, "sse_bridge_filter_evaluations_total", "counter", "JSON filter evaluations during fan-out.", v.filter_evals);
	metrics_line(f, "sse_bridge_db_reconnects_total", "counter", "Database reconnections.", v.db_reconnects);
	metrics_line(f, "sse_bridge_db_timeouts_total", "counter", "Database links declared dead after missing --db-timeout.", v.db_timeouts);
	metrics_line(f, "sse_bridge_prune_runs_total", "counter", "Successful sse_prune calls by the bridge.", v.prune_runs);
	metrics_line(f, "sse_bridge_prune_deleted_total", "counter", "Events deleted by the bridge's sse_prune calls.", v.prune_deleted);
	metrics_line(f, "sse_bridge_prune_failures_total", "counter", "sse_prune calls that failed.", v.prune_failures);
	metrics_line(f, "sse_bridge_standby", "gauge", "1 while the live link is on a hot standby (no LISTEN; the replay position is watched).", v.standby);
	metrics_line(f, "sse_bridge_replay_polls_total", "counter", "Replay-position queries answered on a standby.", v.replay_polls);
	metrics_line(f, "sse_bridge_replay_moves_total", "counter", "Replay-position queries that found it moved (each asks for a fetch).", v.replay_moves);
	metrics_line(f, "sse_bridge_promotions_total", "counter", "Times the live link's standby was seen promoted.", v.promotions);
	metrics_line(f, "sse_bridge_lag_holds_total", "counter", "Open answers held on a standby because they were behind the client.", v.lag_held);
	metrics_line(f, "sse_bridge_lag_expired_total", "counter", "Held opens still behind after --lag-wait.", v.lag_expired);
	metrics_line(f, "sse_bridge_db_up", "gauge", "1 while the live database link is up.", v.db_up);
	metrics_line(f, "sse_bridge_head_id", "gauge", "Last event id read from the log.", v.head_id);
	metrics_line(f, "sse_bridge_replay_cache_events", "gauge", "Events in the replay cache.", v.cache_events);
	metrics_line(f, "sse_bridge_memory_limit_bytes", "gauge", "--max-memory (0: none).", v.mem_limit);
	fprintf(f, "# HELP sse_bridge_memory_bytes Memory charged to queued output, cached and decoded events.\n"
			"# TYPE sse_bridge_memory_bytes gauge\n");
	for (int k = 0; k < MEM_KINDS; k++)
		fprintf(f, "sse_bridge_memory_bytes{kind=\"%s\"} %zu\n", mem_kind_name((mem_kind) k),
				(size_t) v.mem_kind[k]);
	metrics_line(f, "sse_bridge_memory_refused_total", "counter", "Streams refused (503) over the soft memory limit.", v.c.mem_refused);
	metrics_line(f, "sse_bridge_memory_shed_total", "counter", "Streams dropped over the hard memory limit.", v.c.mem_shed);
	fprintf(f, "# HELP sse_bridge_disconnects_total Streams the bridge ended or closed, by reason.\n"
			"# TYPE sse_bridge_disconnects_total counter\n");
	for (int r = 0; r < CLOSE_COUNT; r++)
		fprintf(f, "sse_bridge_disconnects_total{reason=\"%s\"} %" PRIu64 "\n",
				close_reason_name((close_reason) r), v.c.disconnects[r]);
	metrics_line(f, "sse_bridge_alloc_failures_total", "counter", "Clients closed because an allocation failed.", v.c.alloc_failures);
	metrics_line(f, "sse_bridge_alloc_failures_injected_total", "counter", "Allocation failures injected (test builds).", v.injected);
	metrics_line(f, "sse_bridge_client_queue_peak_bytes", "gauge", "Largest client queue of more than one frame.", v.c.queue_peak);
	metrics_line(f, "sse_bridge_client_queue_over_total", "counter", "Frames that left such a queue over --client-queue.", v.c.queue_over);
	metrics_line(f, "sse_bridge_token_verifications_total", "counter", "Tokens verified in full (signature and claims).", v.tokens_verified);
	metrics_line(f, "sse_bridge_token_cache_hits_total", "counter", "Tokens found in the cache of verified tokens.", v.token_cache_hits);
	metrics_line(f, "sse_bridge_token_refusals_total", "counter", "Requests refused for their token (401, 431).", v.token_refusals);
	metrics_lag(f, &v.c);
	if (view_extra != NULL)
		view_extra(f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
