/*
 * mem.h - memory accounting, the process-wide bound (--max-memory) and the
 * allocation fault injector.
 *
 * Accounting: the allocations that grow with load are charged to a kind
 * (frames hold every byte queued to clients and the cached frames of the
 * replay cache; events are decoded rows; pages are replay pages held while
 * their client drains; json is an estimate of parsed payloads).  mem_used() is their sum; what is not charged is small
 * and fixed per connection (client structs, request parsers) or per process.
 *
 * The bound (--max-memory): charged bytes stay under 3/4 of it, the rest
 * is headroom for what is not charged (code, libpq buffers, connections).
 * Above the soft limit (5/8) new streams are refused with 503; above the
 * hard limit (3/4) replays wait and the clients with the largest queues are
 * dropped until the soft limit is reached again.
 *
 * Fault injection (builds with -DBRIDGE_FAULT_INJECT, linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup):
 * every allocation the bridge's own code makes, and every jansson
 * allocation, passes mem_should_fail().  SSE_BRIDGE_FAIL_EVERY=N fails every
 * Nth one while armed; SSE_BRIDGE_FAIL_ARMED=1 arms at start, SIGUSR1 arms
 * and SIGUSR2 disarms.  libuv and libpq allocate on their own and are not
 * injected (libuv aborts by design when its internal arrays cannot grow).
 */
#ifndef BRIDGE_MEM_H
#define BRIDGE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mem_kind {
	MEM_FRAMES,
	MEM_EVENTS,
	MEM_PAGES,
	MEM_JSON,
	MEM_KINDS
} mem_kind;

/* Allocator settings and jansson's allocator; call once, early in main. */
void		mem_init(void);

void		mem_charge(mem_kind k, size_t n);
void		mem_release(mem_kind k, size_t n);
size_t		mem_used(void);
size_t		mem_kind_used(mem_kind k);
const char *mem_kind_name(mem_kind k);

/* The bound (bytes; 0 = unbounded); the soft and hard limits follow. */
void		mem_set_limit(size_t max_bytes);
size_t		mem_limit(void);
bool		mem_over_soft(void);
bool		mem_over_hard(void);

/* How far above the soft limit, in bytes (0 when at or below it). */
size_t		mem_excess(void);

/* Jansson allocations that failed so far (a parse that fails while this
 * moves ran out of memory; it does not prove the payload is not JSON). */
uint64_t	mem_json_failures(void);

/* Injected allocation failures so far, and whether the next one fails. */
uint64_t	mem_injected(void);
bool		mem_should_fail(void);

#ifdef BRIDGE_FAULT_INJECT
/* Fail every nth allocation from now (0: none). */
void		mem_fail_every(uint64_t n);
/* Fail only the kth allocation from now (1 = the next), then none. */
void		mem_fail_at(uint64_t k);
/* Allocations counted since the last mem_fail_* call. */
uint64_t	mem_allocs(void);
#endif

#endif
