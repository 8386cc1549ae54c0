/*
 * shr.c - the shared ring (see shr.h).
 *
 * Layout: one mapping holds the header, the worker slots and the data
 * buffer (cap bytes, a power of two).  A record starts at an offset that is
 * a multiple of 8 and never wraps: when it does not fit before the end of
 * the buffer, a pad record fills the rest and the record starts at the
 * beginning.
 *
 * Ordering (the supervisor writes, workers read, on any core):
 *   writer: tail = new tail; release fence; write the bytes; head = end
 *           (release store)
 *   reader: off < head (acquire load); copy the record; acquire fence;
 *           tail <= off, or the copy may be torn and is thrown away.
 * So a reader never acts on bytes that were being overwritten: either it
 * saw the old tail and the old bytes, or it sees the new tail afterwards.
 * Worker slots use a sequence count the same way (odd while written).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "shr.h"

#define SHR_ALIGN 8
#define SHR_NAME_NULL UINT32_MAX

typedef struct shr_rec {
	uint32_t	len;			/* whole record, a multiple of SHR_ALIGN */
	uint32_t	kind;
	int64_t		prev_id;
	int64_t		prev_us;
	int64_t		id;
	int64_t		us;
	uint32_t	chlen;
	uint32_t	nlen;			/* SHR_NAME_NULL: no event name */
	uint64_t	dlen;
	/* channel, name, data follow */
} shr_rec;

/* The header at the start of the mapping: offsets only, no pointers (each
 * process maps it at its own address). */
struct shr {
	_Atomic uint64_t head;		/* end of the last published record */
	_Atomic uint64_t tail;		/* start of the oldest record still intact */
	_Atomic uint32_t live_up;
	_Atomic uint32_t work_up;
	uint64_t	cap;
	uint64_t	map_bytes;
	uint32_t	nslots;
	uint64_t	slots_off;
	uint64_t	data_off;
	int			fd;				/* this process's descriptor of the memfd */
};

#define SHR_SLOTS(r) ((shr_slot *) ((unsigned char *) (r) + (r)->slots_off))
#define SHR_DATA(r) ((unsigned char *) (r) + (r)->data_off)

static size_t
shr_round(size_t n)
{
	return (n + SHR_ALIGN - 1) & ~(size_t) (SHR_ALIGN - 1);
}

shr *
shr_create(size_t bytes, unsigned nslots)
{
	size_t		cap = 1 << 16, hdr, total;
	void	   *m;
	shr		   *r;
	int			fd = memfd_create("sse-bridge-ring", MFD_CLOEXEC);

	while (cap < bytes && cap < ((size_t) 1 << 40))
		cap <<= 1;
	hdr = shr_round(sizeof(shr)) + shr_round(sizeof(shr_slot) * nslots);
	hdr = (hdr + 4095) & ~(size_t) 4095;
	total = hdr + cap;
	if (fd < 0 || ftruncate(fd, (off_t) total) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	r = m;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->live_up, 0);
	atomic_init(&r->work_up, 0);
	r->cap = cap;
	r->map_bytes = total;
	r->nslots = nslots;
	r->slots_off = shr_round(sizeof(shr));
	r->data_off = hdr;
	r->fd = fd;
	return r;
}

shr *
shr_attach(int fd)
{
	struct stat st;
	void	   *m;
	shr		   *r;

	if (fstat(fd, &st) != 0 || (size_t) st.st_size < sizeof(shr))
		return NULL;
	m = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return NULL;
	r = m;
	if (r->map_bytes != (uint64_t) st.st_size) {
		munmap(m, (size_t) st.st_size);
		return NULL;
	}
	return r;
}

int
shr_fd(shr *r)
{
	return r->fd;
}

size_t
shr_bytes(shr *r)
{
	return (size_t) r->map_bytes;
}

void
shr_destroy(shr *r)
{
	if (r != NULL)
		munmap(r, r->map_bytes);
}

/* ---- the writer ---- */

static shr_rec *
shr_at(shr *r, uint64_t off)
{
	return (shr_rec *) (SHR_DATA(r) + (off & (r->cap - 1)));
}

/*
 * Room for a record of len bytes at the head: a pad first if it would
 * cross the end, and the tail moved past everything the two overwrite.
 * Returns the offset the record starts at.
 */
static uint64_t
shr_reserve(shr *r, size_t len)
{
	uint64_t	head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t	tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t	room = r->cap - (head & (r->cap - 1));
	uint64_t	start = room < len ? head + room : head;

	while (start + len - tail > r->cap)
		tail += shr_at(r, tail)->len;
	atomic_store_explicit(&r->tail, tail, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	if (start != head) {
		shr_rec    *pad = shr_at(r, head);

		pad->len = (uint32_t) room;
		pad->kind = SHR_PAD;
	}
	return start;
}

static void
shr_publish(shr *r, uint64_t end)
{
	atomic_store_explicit(&r->head, end, memory_order_release);
}

void
shr_put_mark(shr *r, shr_kind kind, int64_t prev_id, int64_t prev_us, int64_t id, int64_t us)
{
	size_t		len = shr_round(sizeof(shr_rec));
	uint64_t	at = shr_reserve(r, len);
	shr_rec    *rec = shr_at(r, at);

	*rec = (shr_rec) {(uint32_t) len, kind, prev_id, prev_us, id, us, 0, SHR_NAME_NULL, 0};
	shr_publish(r, at + len);
}

void
shr_put_event(shr *r, int64_t prev_id, int64_t prev_us, const event *ev)
{
	size_t		body = (size_t) ev->chlen + (ev->name ? ev->nlen : 0) + ev->dlen;
	size_t		len = shr_round(sizeof(shr_rec) + body);
	uint64_t	at;
	shr_rec    *rec;
	unsigned char *p;

	if (len > r->cap / 4 || len > UINT32_MAX) {
		/* too large to keep here: readers fetch it from the log */
		shr_put_mark(r, SHR_HOLE, prev_id, prev_us, ev->id, ev->created_us);
		return;
	}
	at = shr_reserve(r, len);
	rec = shr_at(r, at);
	*rec = (shr_rec) {(uint32_t) len, SHR_EVENT, prev_id, prev_us, ev->id, ev->created_us,
		ev->chlen, ev->name ? ev->nlen : SHR_NAME_NULL, ev->dlen};
	p = (unsigned char *) (rec + 1);
	memcpy(p, ev->channel, ev->chlen);
	p += ev->chlen;
	if (ev->name) {
		memcpy(p, ev->name, ev->nlen);
		p += ev->nlen;
	}
	memcpy(p, ev->data, ev->dlen);
	shr_publish(r, at + len);
}

void
shr_set_links(shr *r, int live, int work)
{
	atomic_store(&r->live_up, (uint32_t) live);
	atomic_store(&r->work_up, (uint32_t) work);
}

/* ---- readers ---- */

uint64_t
shr_head(shr *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire);
}

uint64_t
shr_tail(shr *r)
{
	return atomic_load_explicit(&r->tail, memory_order_acquire);
}

int
shr_live_state(shr *r)
{
	return (int) atomic_load(&r->live_up);
}

int
shr_work_state(shr *r)
{
	return (int) atomic_load(&r->work_up);
}

/* Did the writer overwrite anything from off on since the bytes were read? */
static bool
shr_torn(shr *r, uint64_t off)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&r->tail, memory_order_relaxed) > off;
}

shr_status
shr_read(shr *r, uint64_t *off, shr_item *item)
{
	for (;;) {
		uint64_t	head = shr_head(r);
		shr_rec		rec;
		const char *body;

		if (*off >= head)
			return SHR_EMPTY;
		if (atomic_load_explicit(&r->tail, memory_order_relaxed) > *off)
			return SHR_BEHIND;
		memcpy(&rec, shr_at(r, *off), sizeof(rec));
		if (shr_torn(r, *off))
			return SHR_BEHIND;
		if (rec.len < sizeof(uint64_t) || rec.len % SHR_ALIGN != 0 ||
			(rec.kind != SHR_PAD && rec.len < sizeof(rec)) ||
			(*off & (r->cap - 1)) + rec.len > r->cap ||
			(rec.kind == SHR_EVENT &&
			 sizeof(rec) + (uint64_t) rec.chlen + (rec.nlen == SHR_NAME_NULL ? 0 : rec.nlen) +
			 rec.dlen > rec.len)) {
			if (!shr_torn(r, *off))
				log_error("shared ring: the record at %llu is malformed", (unsigned long long) *off);
			return SHR_BEHIND;
		}
		if (rec.kind == SHR_PAD) {
			*off += rec.len;
			continue;
		}
		*item = (shr_item) {(shr_kind) rec.kind, rec.prev_id, rec.prev_us, rec.id, rec.us, NULL};
		if (rec.kind == SHR_EVENT) {
			body = (const char *) (shr_at(r, *off)) + sizeof(shr_rec);
			item->ev = event_new(rec.id, rec.us, body, rec.chlen,
								 rec.nlen == SHR_NAME_NULL ? NULL : body + rec.chlen,
								 rec.nlen == SHR_NAME_NULL ? 0 : rec.nlen,
								 body + rec.chlen + (rec.nlen == SHR_NAME_NULL ? 0 : rec.nlen),
								 rec.dlen);
			if (shr_torn(r, *off)) {
				if (item->ev)
					event_free(item->ev);
				item->ev = NULL;
				return SHR_BEHIND;
			}
			if (item->ev == NULL)
				item->kind = SHR_HOLE;	/* out of memory: read it from the log */
		}
		*off += rec.len;
		return SHR_OK;
	}
}

/* ---- worker slots ---- */

shr_slot *
shr_slot_at(shr *r, unsigned i)
{
	return &SHR_SLOTS(r)[i];
}

unsigned
shr_nslots(shr *r)
{
	return r->nslots;
}

void
shr_slot_begin(shr_slot *s)
{
	/*
	 * Odd from here on, and another value than before: a writer killed
	 * between begin and end left it odd already.
	 */
	atomic_store_explicit((_Atomic uint32_t *) &s->seq, (s->seq + 1) | 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

void
shr_slot_end(shr_slot *s)
{
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit((_Atomic uint32_t *) &s->seq, s->seq + 1, memory_order_relaxed);
}

void
shr_slot_clear(shr_slot *s)
{
	shr_slot_begin(s);
	s->pid = 0;
	memset(&s->v, 0, sizeof(s->v));
	s->ring_behind = 0;
	shr_slot_end(s);
}

bool
shr_slot_read(shr *r, unsigned i, shr_slot *out)
{
	shr_slot   *s = &SHR_SLOTS(r)[i];

	for (int tries = 0; tries < 100; tries++) {
		uint32_t	a = atomic_load_explicit((_Atomic uint32_t *) &s->seq, memory_order_acquire);

		if (a & 1)
			continue;
		memcpy(out, s, sizeof(*out));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit((_Atomic uint32_t *) &s->seq, memory_order_relaxed) == a)
			return out->pid != 0;
	}
	return false;
}
