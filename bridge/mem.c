/*
 * mem.c - memory accounting, the soft and hard limits, jansson's allocator
 * and, in fault-injection builds, the failing allocation wrappers.
 *
 * Invariants: used[k] is the sum of the charges of kind k not yet released;
 * the injector never fails an allocation while disarmed.
 */
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static size_t used[MEM_KINDS];
static size_t used_total;
static size_t limit_max;
static size_t limit_hard;
static size_t limit_soft;
static uint64_t injected;
static uint64_t json_failures;

static const char *const kind_names[MEM_KINDS] = {"frames", "events", "pages", "json"};

#ifdef BRIDGE_FAULT_INJECT
void	   *__real_malloc(size_t n);
void	   *__real_calloc(size_t n, size_t size);
void	   *__real_realloc(void *p, size_t n);
char	   *__real_strdup(const char *s);
char	   *__real_strndup(const char *s, size_t n);
#define REAL_MALLOC __real_malloc
#else
#define REAL_MALLOC malloc
#endif

void
mem_charge(mem_kind k, size_t n)
{
	used[k] += n;
	used_total += n;
}

void
mem_release(mem_kind k, size_t n)
{
	n = n < used[k] ? n : used[k];
	used[k] -= n;
	used_total -= n;
}

size_t
mem_used(void)
{
	return used_total;
}

size_t
mem_kind_used(mem_kind k)
{
	return used[k];
}

const char *
mem_kind_name(mem_kind k)
{
	return kind_names[k];
}

void
mem_set_limit(size_t max_bytes)
{
	limit_max = max_bytes;
	limit_hard = max_bytes / 4 * 3;
	limit_soft = max_bytes / 8 * 5;
}

size_t
mem_limit(void)
{
	return limit_max;
}

bool
mem_over_soft(void)
{
	return limit_hard > 0 && used_total > limit_soft;
}

bool
mem_over_hard(void)
{
	return limit_hard > 0 && used_total > limit_hard;
}

size_t
mem_excess(void)
{
	return mem_over_soft() ? used_total - limit_soft : 0;
}

uint64_t
mem_injected(void)
{
	return injected;
}

/* ---- the injector ---- */

#ifdef BRIDGE_FAULT_INJECT
static volatile sig_atomic_t armed;
static uint64_t every;
static uint64_t at;
static uint64_t count;

bool
mem_should_fail(void)
{
	if (!armed)
		return false;
	count++;
	if ((every > 0 && count % every == 0) || (at > 0 && count == at)) {
		injected++;
		return true;
	}
	return false;
}

void
mem_fail_every(uint64_t n)
{
	every = n;
	at = 0;
	count = 0;
	armed = n > 0;
}

void
mem_fail_at(uint64_t k)
{
	every = 0;
	at = k;
	count = 0;
	armed = k > 0;
}

uint64_t
mem_allocs(void)
{
	return count;
}

void	   *
__wrap_malloc(size_t n)
{
	return mem_should_fail() ? NULL : __real_malloc(n);
}

void	   *
__wrap_calloc(size_t n, size_t size)
{
	return mem_should_fail() ? NULL : __real_calloc(n, size);
}

void	   *
__wrap_realloc(void *p, size_t n)
{
	return mem_should_fail() ? NULL : __real_realloc(p, n);
}

char	   *
__wrap_strdup(const char *s)
{
	return mem_should_fail() ? NULL : __real_strdup(s);
}

char	   *
__wrap_strndup(const char *s, size_t n)
{
	return mem_should_fail() ? NULL : __real_strndup(s, n);
}

static void
mem_on_signal(int sig)
{
	armed = sig == SIGUSR1 && every > 0;
}

/* Fault-injection builds set themselves up before main from the environment. */
__attribute__((constructor)) static void
mem_inject_setup(void)
{
	const char *e = getenv("SSE_BRIDGE_FAIL_EVERY");
	const char *a = getenv("SSE_BRIDGE_FAIL_ARMED");
	struct sigaction sa;

	mem_init();
	if (e == NULL || atoll(e) <= 0)
		return;
	every = (uint64_t) atoll(e);
	armed = a != NULL && strcmp(a, "1") == 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mem_on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
}
#else
bool
mem_should_fail(void)
{
	return false;
}
#endif

/* ---- jansson ---- */

/*
 * Jansson allocates through these only to pass the injector: its strings
 * (json_dumps) are freed with plain free() by callers, so no header can be
 * added.  Parsed payloads are charged by event.c instead.
 */
static void *
mem_json_malloc(size_t n)
{
	void	   *p = mem_should_fail() ? NULL : REAL_MALLOC(n);

	json_failures += p == NULL;
	return p;
}

uint64_t
mem_json_failures(void)
{
	return json_failures;
}

void
mem_init(void)
{
	static bool done;

	if (done)
		return;
	done = true;
#ifdef M_MMAP_THRESHOLD
	/*
	 * Fixed thresholds: large frames and pages get their own mappings and go
	 * back to the system when freed, so the resident size follows mem_used()
	 * instead of the high-water mark of the heap.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif
	json_set_alloc_funcs(mem_json_malloc, free);
}
