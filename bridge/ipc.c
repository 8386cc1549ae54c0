/*
 * ipc.c - framed requests and answers over one socketpair (see ipc.h).
 *
 * Invariants: a frame is parsed only when it is complete and within
 * IPC_FRAME_MAX; a malformed frame closes the channel (both ends are the
 * same program, so it can only mean a bug or a dead peer); the worker's
 * pending jobs sit in a table by request id, each done exactly once (by
 * its answer, its deadline or the close); the supervisor keeps at most one
 * wake message unwritten per channel.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

#define IPC_FRAME_MAX ((uint32_t) 1 << 30)
#define IPC_SCAN_MS 250

typedef struct ipc_pend {
	uint32_t	id;
	db_job	   *job;
	uint64_t	expires;		/* loop ms */
} ipc_pend;

struct ipc_chan {
	uv_pipe_t	pipe;
	uv_timer_t	scan;			/* deadlines of pending requests */
	uv_loop_t  *loop;
	ipc_ops		ops;
	void	   *data;
	bool		open;
	int			handles;		/* still to close before the free */
	char	   *in;				/* bytes read, not yet parsed */
	size_t		inlen, incap;
	uint32_t	next_id;
	ipc_pend   *pend;			/* open addressing by id & (npend_cap - 1) */
	size_t		npend, pend_cap;
	unsigned	wakes;			/* wake frames not yet written */
};

typedef struct ipc_wreq {
	uv_write_t	w;
	ipc_chan   *c;
	bool		wake;
	char		buf[];
} ipc_wreq;

/* ---- a growable output buffer ---- */

typedef struct obuf {
	char	   *p;
	size_t		len, cap;
	bool		oom;
} obuf;

static void
ob_put(obuf *b, const void *v, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t		ncap = b->cap ? b->cap : 256;
		char	   *np;

		while (ncap < b->len + n)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

static void
ob_u32(obuf *b, uint32_t v)
{
	ob_put(b, &v, sizeof(v));
}

static void
ob_str(obuf *b, const char *s, int32_t len)
{
	ob_put(b, &len, sizeof(len));
	if (len > 0)
		ob_put(b, s, (size_t) len);
}

/* Start a frame: room for the header, filled by ob_send. */
static void
ob_start(obuf *b, char type)
{
	uint32_t	zero = 0;

	ob_put(b, &zero, sizeof(zero));
	ob_put(b, &type, 1);
}

/* ---- reading a frame ---- */

typedef struct ibuf {
	const char *p;
	size_t		left;
	bool		bad;
} ibuf;

static bool
ib_get(ibuf *b, void *v, size_t n)
{
	if (b->bad || b->left < n) {
		b->bad = true;
		return false;
	}
	memcpy(v, b->p, n);
	b->p += n;
	b->left -= n;
	return true;
}

static uint32_t
ib_u32(ibuf *b)
{
	uint32_t	v = 0;

	ib_get(b, &v, sizeof(v));
	return v;
}

/* A string as a pointer into the frame (not terminated): len -1 = NULL. */
static const char *
ib_str(ibuf *b, int32_t *len)
{
	const char *s;

	*len = -1;
	if (!ib_get(b, len, sizeof(*len)) || *len < -1 || (*len >= 0 && (size_t) *len > b->left)) {
		b->bad = true;
		*len = -1;
		return NULL;
	}
	if (*len < 0)
		return NULL;
	s = b->p;
	b->p += *len;
	b->left -= (size_t) *len;
	return s;
}

/* ---- the channel ---- */

static void
ipc_on_write(uv_write_t *w, int status)
{
	ipc_wreq   *r = (ipc_wreq *) w;

	if (r->wake)
		r->c->wakes--;
	if (status < 0 && r->c->open) {
		log_warn("ipc: write failed: %s", uv_strerror(status));
		ipc_close(r->c);
	}
	free(r);
}

/* Finish the frame in b and write it; frees b's buffer. */
static void
ob_send(ipc_chan *c, obuf *b, bool wake)
{
	ipc_wreq   *r;
	uv_buf_t	buf;
	uint32_t	len;

	if (b->oom || !c->open || (r = malloc(sizeof(*r) + b->len)) == NULL) {
		if (c->open)
			log_error("ipc: out of memory sending a message");
		free(b->p);
		return;
	}
	len = (uint32_t) (b->len - sizeof(uint32_t));
	memcpy(b->p, &len, sizeof(len));
	memcpy(r->buf, b->p, b->len);
	r->c = c;
	r->wake = wake;
	buf = uv_buf_init(r->buf, (unsigned) b->len);
	free(b->p);
	if (wake)
		c->wakes++;
	if (uv_write(&r->w, (uv_stream_t *) &c->pipe, &buf, 1, ipc_on_write) != 0) {
		if (wake)
			c->wakes--;
		free(r);
		ipc_close(c);
	}
}

/* -- pending table (worker) -- */

static ipc_pend *
ipc_slot(ipc_chan *c, uint32_t id)
{
	return &c->pend[id & (c->pend_cap - 1)];
}

static bool
ipc_pend_grow(ipc_chan *c)
{
	size_t		ncap = c->pend_cap ? c->pend_cap * 2 : 64;
	ipc_pend   *old = c->pend, *np = calloc(ncap, sizeof(*np));
	size_t		ocap = c->pend_cap;

	if (np == NULL)
		return false;
	for (;;) {
		bool		clash = false;

		for (size_t i = 0; i < ocap && !clash; i++) {
			if (old[i].job != NULL) {
				ipc_pend   *s = &np[old[i].id & (ncap - 1)];

				if (s->job != NULL)
					clash = true;
				else
					*s = old[i];
			}
		}
		if (!clash)
			break;
		ncap *= 2;
		free(np);
		if ((np = calloc(ncap, sizeof(*np))) == NULL)
			return false;
	}
	free(old);
	c->pend = np;
	c->pend_cap = ncap;
	return true;
}

static bool
ipc_pend_add(ipc_chan *c, uint32_t id, db_job *job, uint64_t expires)
{
	while (c->pend_cap == 0 || c->npend * 2 >= c->pend_cap || ipc_slot(c, id)->job != NULL)
		if (!ipc_pend_grow(c))
			return false;
	*ipc_slot(c, id) = (ipc_pend) {id, job, expires};
	c->npend++;
	return true;
}

/* Take the pending job of id (NULL: unknown, e.g. past its deadline). */
static db_job *
ipc_pend_take(ipc_chan *c, uint32_t id)
{
	ipc_pend   *s;
	db_job	   *job;

	if (c->pend_cap == 0)
		return NULL;
	s = ipc_slot(c, id);
	if (s->job == NULL || s->id != id)
		return NULL;
	job = s->job;
	s->job = NULL;
	c->npend--;
	return job;
}

static void
ipc_on_scan(uv_timer_t *t)
{
	ipc_chan   *c = t->data;
	uint64_t	now = uv_now(c->loop);

	for (size_t i = 0; i < c->pend_cap; i++) {
		ipc_pend   *s = &c->pend[i];

		if (s->job != NULL && s->expires <= now) {
			db_job	   *job = s->job;

			s->job = NULL;
			c->npend--;
			log_warn("a request to the supervisor got no answer in time");
			job->done(job, NULL);
		}
	}
}

bool
ipc_submit(ipc_chan *c, db_job *job, uint64_t deadline_ms)
{
	obuf		b = {0};
	uint32_t	id;
	uint8_t		flags = job->no_retry;

	if (!c->open || job->stmt == NULL)
		return false;
	id = c->next_id++;
	if (!ipc_pend_add(c, id, job, uv_now(c->loop) + deadline_ms)) {
		log_error("ipc: out of memory queueing a request");
		job->done(job, NULL);
		return true;
	}
	ob_start(&b, 'Q');
	ob_u32(&b, id);
	ob_put(&b, (uint8_t[]) {IPC_STMT}, 1);
	ob_put(&b, &flags, 1);
	ob_str(&b, job->stmt, (int32_t) strlen(job->stmt));
	ob_u32(&b, (uint32_t) job->nparams);
	for (int i = 0; i < job->nparams; i++)
		ob_str(&b, job->params[i], job->params[i] ? (int32_t) strlen(job->params[i]) : -1);
	if (b.oom) {
		free(b.p);
		ipc_pend_take(c, id);
		job->done(job, NULL);
		return true;
	}
	ob_send(c, &b, false);
	return true;
}

void
ipc_touch(ipc_chan *c, char *const *uuids, size_t n)
{
	obuf		b = {0};

	if (!c->open || n == 0)
		return;
	if (n > IPC_TOUCH_MAX)
		n = IPC_TOUCH_MAX;
	ob_start(&b, 'Q');
	ob_u32(&b, c->next_id++);
	ob_put(&b, (uint8_t[]) {IPC_TOUCH}, 1);
	ob_put(&b, (uint8_t[]) {0}, 1);
	ob_str(&b, "", 0);
	ob_u32(&b, (uint32_t) n);
	for (size_t i = 0; i < n; i++)
		ob_str(&b, uuids[i], (int32_t) strlen(uuids[i]));
	ob_send(c, &b, false);
}

size_t
ipc_pending(const ipc_chan *c)
{
	return c->npend;
}

void
ipc_wake(ipc_chan *c)
{
	obuf		b = {0};

	if (!c->open || c->wakes > 0)
		return;
	ob_start(&b, 'W');
	ob_send(c, &b, true);
}

void
ipc_answer(ipc_chan *c, uint32_t id, const PGresult *res)
{
	obuf		b = {0};
	int			nf, nt;

	if (!c->open)
		return;
	ob_start(&b, 'A');
	ob_u32(&b, id);
	ob_put(&b, (uint8_t[]) {res != NULL}, 1);
	if (res != NULL) {
		const char *msg = PQresultErrorMessage(res);

		nf = PQnfields(res);
		nt = PQntuples(res);
		ob_u32(&b, (uint32_t) PQresultStatus(res));
		ob_str(&b, msg, (int32_t) strlen(msg));
		ob_u32(&b, (uint32_t) nf);
		ob_u32(&b, (uint32_t) nt);
		for (int f = 0; f < nf; f++)
			ob_str(&b, PQfname(res, f), (int32_t) strlen(PQfname(res, f)));
		for (int t = 0; t < nt; t++)
			for (int f = 0; f < nf; f++)
				ob_str(&b, PQgetvalue(res, t, f),
					   PQgetisnull(res, t, f) ? -1 : PQgetlength(res, t, f));
	}
	ob_send(c, &b, false);
}

/*
 * The answer as a PGresult of its own.  An error's text cannot be set on a
 * result made here, so it is logged.  NULL on OOM or a malformed answer.
 */
static PGresult *
ipc_result(ibuf *in)
{
	ExecStatusType st = (ExecStatusType) ib_u32(in);
	int32_t		mlen, len;
	const char *msg = ib_str(in, &mlen);
	uint32_t	nf = ib_u32(in), nt = ib_u32(in);
	PGresult   *res;
	PGresAttDesc *att;

	if (in->bad || nf > 1600)
		return NULL;
	if (msg != NULL && mlen > 0 && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		log_warn("the supervisor's database answered: %.*s", (int) strcspn(msg, "\n") < mlen
				 ? (int) strcspn(msg, "\n") : mlen, msg);
	if ((res = PQmakeEmptyPGresult(NULL, st)) == NULL)
		return NULL;
	if (nf > 0) {
		if ((att = calloc(nf, sizeof(*att))) == NULL) {
			PQclear(res);
			return NULL;
		}
		for (uint32_t f = 0; f < nf; f++) {
			const char *name = ib_str(in, &len);
			char	   *z = len >= 0 ? strndup(name, (size_t) len) : strdup("?");

			if (z == NULL)
				in->bad = true;	/* out of memory: no answer, as a failed query */
			att[f] = (PGresAttDesc) {.name = z, .typid = 25, .typlen = -1, .atttypmod = -1};
		}
		if (in->bad || !PQsetResultAttrs(res, (int) nf, att)) {	/* not called with a NULL name */
			in->bad = true;
		}
		for (uint32_t f = 0; f < nf; f++)
			free(att[f].name);
		free(att);
		if (in->bad) {
			PQclear(res);
			return NULL;
		}
	}
	for (uint32_t t = 0; t < nt; t++)
		for (uint32_t f = 0; f < nf; f++) {
			const char *v = ib_str(in, &len);

			if (in->bad || !PQsetvalue(res, (int) t, (int) f, (char *) (v ? v : ""), len)) {
				PQclear(res);
				return NULL;
			}
		}
	return res;
}

static void
ipc_got_answer(ipc_chan *c, ibuf *in)
{
	uint32_t	id = ib_u32(in);
	uint8_t		has = 0;
	db_job	   *job;
	PGresult   *res = NULL;

	ib_get(in, &has, 1);
	if (in->bad || (job = ipc_pend_take(c, id)) == NULL)
		return;					/* past its deadline: already failed */
	if (has && (res = ipc_result(in)) == NULL)
		log_error("ipc: an answer could not be read (out of memory or malformed)");
	job->done(job, res);
	PQclear(res);
}

static void
ipc_got_request(ipc_chan *c, ibuf *in)
{
	ipc_req		req = {0};
	uint8_t		kind = 0, flags = 0;
	int32_t		len;
	const char *stmt;
	char		name[64];

	req.id = ib_u32(in);
	ib_get(in, &kind, 1);
	ib_get(in, &flags, 1);
	stmt = ib_str(in, &len);
	req.nparams = ib_u32(in);
	if (in->bad || stmt == NULL || len < 0 || (size_t) len >= sizeof(name) || req.nparams > IPC_TOUCH_MAX ||
		(kind != IPC_STMT && kind != IPC_TOUCH)) {
		in->bad = true;
		return;
	}
	memcpy(name, stmt, (size_t) len);
	name[len] = '\0';
	req.kind = (ipc_kind) kind;
	req.no_retry = flags & 1;
	req.stmt = name;
	if ((req.params = calloc(req.nparams + 1, sizeof(char *))) == NULL) {
		log_error("ipc: out of memory reading a request");
		ipc_answer(c, req.id, NULL);
		return;
	}
	for (uint32_t i = 0; i < req.nparams && !in->bad; i++) {
		const char *v = ib_str(in, &len);

		if (v != NULL && (req.params[i] = strndup(v, (size_t) len)) == NULL)
			in->bad = true;
	}
	if (!in->bad && c->ops.request)
		c->ops.request(c, &req);
	for (uint32_t i = 0; i < req.nparams; i++)
		free(req.params[i]);
	free(req.params);
}

static void
ipc_frames(ipc_chan *c)
{
	size_t		at = 0;

	while (c->open && c->inlen - at >= 5) {
		uint32_t	len;
		ibuf		in;
		char		type;

		memcpy(&len, c->in + at, sizeof(len));
		if (len == 0 || len > IPC_FRAME_MAX) {
			log_error("ipc: malformed frame; closing the channel");
			ipc_close(c);
			return;
		}
		if (c->inlen - at - sizeof(len) < len)
			break;
		type = c->in[at + sizeof(len)];
		in = (ibuf) {c->in + at + sizeof(len) + 1, len - 1, false};
		at += sizeof(len) + len;
		if (type == 'A')
			ipc_got_answer(c, &in);
		else if (type == 'Q')
			ipc_got_request(c, &in);
		else if (type == 'W') {
			if (c->ops.wake)
				c->ops.wake(c);
		} else
			in.bad = true;
		if (in.bad && c->open) {
			log_error("ipc: malformed message; closing the channel");
			ipc_close(c);
			return;
		}
	}
	if (at > 0 && c->open) {
		memmove(c->in, c->in + at, c->inlen - at);
		c->inlen -= at;
	}
}

static void
ipc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	ipc_chan   *c = h->data;
	size_t		want = 65536;
	uint32_t	flen;

	(void) hint;
	if (c->inlen >= 4) {
		memcpy(&flen, c->in, sizeof(flen));
		if ((size_t) flen + 5 > c->inlen + want && flen <= IPC_FRAME_MAX)
			want = (size_t) flen + 5 - c->inlen;
	}
	if (c->incap - c->inlen < want) {
		size_t		ncap = c->inlen + want;
		char	   *np = realloc(c->in, ncap);

		if (np == NULL) {
			*buf = uv_buf_init(NULL, 0);	/* libuv reports UV_ENOBUFS */
			return;
		}
		c->in = np;
		c->incap = ncap;
	}
	*buf = uv_buf_init(c->in + c->inlen, (unsigned) (c->incap - c->inlen));
}

static void
ipc_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	ipc_chan   *c = s->data;

	(void) buf;
	if (n < 0) {
		if (n != UV_EOF && n != UV_ECONNRESET)
			log_warn("ipc: read failed: %s", uv_strerror((int) n));
		ipc_close(c);
		return;
	}
	c->inlen += (size_t) n;
	ipc_frames(c);
}

ipc_chan *
ipc_open(uv_loop_t *loop, int fd, const ipc_ops *ops, void *data)
{
	ipc_chan   *c = calloc(1, sizeof(*c));

	if (c == NULL || uv_pipe_init(loop, &c->pipe, 0) != 0) {
		free(c);
		close(fd);
		return NULL;
	}
	c->loop = loop;
	c->ops = *ops;
	c->data = data;
	c->pipe.data = c;
	c->handles = 2;
	uv_timer_init(loop, &c->scan);
	c->scan.data = c;
	if (uv_pipe_open(&c->pipe, fd) != 0 ||
		uv_read_start((uv_stream_t *) &c->pipe, ipc_alloc, ipc_on_read) != 0) {
		c->open = true;
		ipc_close(c);
		return NULL;
	}
	c->open = true;
	uv_timer_start(&c->scan, ipc_on_scan, IPC_SCAN_MS, IPC_SCAN_MS);
	uv_unref((uv_handle_t *) &c->scan);
	return c;
}

static void
ipc_on_closed(uv_handle_t *h)
{
	ipc_chan   *c = h->data;

	if (--c->handles > 0)
		return;
	free(c->in);
	free(c->pend);
	free(c);
}

void
ipc_close(ipc_chan *c)
{
	if (!c->open)
		return;
	c->open = false;
	uv_close((uv_handle_t *) &c->pipe, ipc_on_closed);
	uv_close((uv_handle_t *) &c->scan, ipc_on_closed);
	for (size_t i = 0; i < c->pend_cap; i++) {
		db_job	   *job = c->pend[i].job;

		if (job != NULL) {
			c->pend[i].job = NULL;
			c->npend--;
			job->done(job, NULL);
		}
	}
	if (c->ops.closed)
		c->ops.closed(c);
}

void *
ipc_data(ipc_chan *c)
{
	return c->data;
}

bool
ipc_is_open(const ipc_chan *c)
{
	return c->open;
}
