/*
 * whole.c - the whole bridge's /metrics, summed from the process slots
 * (see whole.h).
 *
 * Invariants: only reads the slots (shr_slot_read, consistent copies);
 * the supervisor's slot is the last one.
 */
#include <inttypes.h>

#include "whole.h"

static shr *whole_ring;
static unsigned whole_self;

void
whole_init(shr *ring, unsigned self)
{
	whole_ring = ring;
	whole_self = self;
}

/* Slot i's view: this worker's own, live; false when the slot is empty. */
static bool
whole_get(unsigned i, shr_slot *s)
{
	if (i == whole_self) {
		s->pid = 1;
		metrics_own_view(&s->v);
		s->ring_behind = shr_slot_at(whole_ring, i)->ring_behind;
		return true;
	}
	return shr_slot_read(whole_ring, i, s);
}

uint64_t
whole_clients_elsewhere(void)
{
	unsigned	n = shr_nslots(whole_ring);
	uint64_t	sum = 0;
	shr_slot	s;

	for (unsigned i = 0; i + 1 < n; i++)	/* the workers' slots; the supervisor holds none */
		if (i != whole_self && shr_slot_read(whole_ring, i, &s))
			sum += s.v.c.clients;
	return sum;
}

static void
whole_add(metrics_counters *t, const metrics_counters *m)
{
	t->events_sent += m->events_sent;
	t->run_sent += m->run_sent;
	t->bytes_sent += m->bytes_sent;
	t->replayed += m->replayed;
	t->replay_pages += m->replay_pages;
	t->slow_drops += m->slow_drops;
	t->resets += m->resets;
	t->timelines += m->timelines;
	t->redefinitions += m->redefinitions;
	t->def_errors += m->def_errors;
	t->connections += m->connections;
	t->rejected += m->rejected;
	t->mem_refused += m->mem_refused;
	t->mem_shed += m->mem_shed;
	t->alloc_failures += m->alloc_failures;
	if (m->queue_peak > t->queue_peak)
		t->queue_peak = m->queue_peak;
	t->queue_over += m->queue_over;
	for (int r = 0; r < CLOSE_COUNT; r++)
		t->disconnects[r] += m->disconnects[r];
	t->clients += m->clients;
	t->streams += m->streams;
	t->lag_count += m->lag_count;
	t->lag_sum += m->lag_sum;
	for (int i = 0; i < 12; i++)
		t->lag_buckets[i] += m->lag_buckets[i];
}

void
whole_fill(metrics_view *v)
{
	unsigned	n = shr_nslots(whole_ring), sup = n - 1;
	shr_slot	s;

	*v = (metrics_view) {0};
	for (unsigned i = 0; i < n; i++) {
		if (!whole_get(i, &s))
			continue;
		whole_add(&v->c, &s.v.c);
		v->indexed += s.v.indexed;
		v->filter_evals += s.v.filter_evals;
		v->mem_limit += s.v.mem_limit;
		for (int k = 0; k < 8; k++)
			v->mem_kind[k] += s.v.mem_kind[k];
		v->injected += s.v.injected;
		v->tokens_verified += s.v.tokens_verified;
		v->token_cache_hits += s.v.token_cache_hits;
		v->token_refusals += s.v.token_refusals;
		if (s.v.cache_events > v->cache_events)
			v->cache_events = s.v.cache_events;
		if (i == sup) {
			/* the database side is the supervisor's alone */
			v->c.events_fetched = s.v.c.events_fetched;
			v->c.notices = s.v.c.notices;
			v->db_reconnects = s.v.db_reconnects;
			v->db_timeouts = s.v.db_timeouts;
			v->prune_runs = s.v.prune_runs;
			v->prune_deleted = s.v.prune_deleted;
			v->prune_failures = s.v.prune_failures;
			v->db_up = s.v.db_up;
			v->head_id = s.v.head_id;
			v->standby = s.v.standby;
			v->replay_polls = s.v.replay_polls;
			v->replay_moves = s.v.replay_moves;
			v->promotions = s.v.promotions;
			v->lag_held = s.v.lag_held;
			v->lag_expired = s.v.lag_expired;
		}
	}
}

void
whole_extra(FILE *f)
{
	unsigned	n = shr_nslots(whole_ring);
	shr_slot	s;
	static const struct {
		const char *name, *type, *help;
	} series[] = {
		{"sse_bridge_worker_clients", "gauge", "Open client connections of each worker."},
		{"sse_bridge_worker_events_sent_total", "counter", "Event frames queued to clients by each worker."},
		{"sse_bridge_worker_memory_bytes", "gauge", "Memory charged in each worker (all kinds)."},
		{"sse_bridge_worker_memory_limit_bytes", "gauge", "Each worker's share of --max-memory."},
		{"sse_bridge_worker_ring_behind_total", "counter", "Times each worker fell behind the shared ring and read the log."},
	};

	for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
				series[k].name, series[k].type);
		for (unsigned i = 0; i + 1 < n; i++) {
			uint64_t	val = 0;

			if (!whole_get(i, &s))
				continue;
			switch (k) {
				case 0: val = s.v.c.clients; break;
				case 1: val = s.v.c.events_sent; break;
				case 2:
					for (int m = 0; m < 8; m++)
						val += s.v.mem_kind[m];
					break;
				case 3: val = s.v.mem_limit; break;
				case 4: val = s.ring_behind; break;
			}
			fprintf(f, "%s{worker=\"%u\"} %" PRIu64 "\n", series[k].name, i, val);
		}
	}
}
