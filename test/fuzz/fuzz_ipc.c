/*
 * fuzz_ipc.c - libFuzzer target: bytes arriving on a worker's or the
 * supervisor's end of the socketpair (ipc.c's frame and message decoding).
 *
 * Each input is written to the far end of a fresh socketpair whose near end
 * is an open ipc channel with four requests pending (ids 0..3), then the far
 * end is closed.  Whatever arrives -- answers, requests, wakes, truncated or
 * malformed frames -- every pending job is done exactly once (by an answer
 * or by the close), an answer's result is readable to its last value, a
 * request handed up has a terminated statement name under 64 bytes and no
 * more parameters than allowed, and nothing is left allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

#define NJOBS 4

static uv_loop_t loop;
static int	done_count[NJOBS];
static bool closed_seen;

static void
job_done(db_job *job, PGresult *res)
{
	int			i = (int) job->mark;

	if (i < 0 || i >= NJOBS)
		abort();
	done_count[i]++;
	if (res != NULL)
		for (int t = 0; t < PQntuples(res); t++)
			for (int f = 0; f < PQnfields(res); f++)
				if (!PQgetisnull(res, t, f) &&
					strlen(PQgetvalue(res, t, f)) > (size_t) PQgetlength(res, t, f))
					abort();
}

static void
on_request(ipc_chan *c, const ipc_req *req)
{
	(void) c;
	if (req->stmt == NULL || strlen(req->stmt) >= 64 || req->nparams > IPC_TOUCH_MAX ||
		req->params == NULL || req->params[req->nparams] != NULL)
		abort();
	for (uint32_t i = 0; i < req->nparams; i++)
		if (req->params[i] != NULL)
			(void) strlen(req->params[i]);
}

static void
on_closed(ipc_chan *c)
{
	(void) c;
	closed_seen = true;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	log_threshold = LOG_ERROR;
	signal(SIGPIPE, SIG_IGN);
	return uv_loop_init(&loop);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ipc_ops ops = {.request = on_request, .closed = on_closed};
	int			sv[2];
	ipc_chan   *c;
	db_job		jobs[NJOBS];
	size_t		off = 0;

	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	memset(done_count, 0, sizeof(done_count));
	closed_seen = false;
	if ((c = ipc_open(&loop, sv[0], &ops, NULL)) == NULL)
		abort();
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (db_job) {.stmt = "fuzz", .nparams = 1, .done = job_done, .mark = i};
		jobs[i].params[0] = NULL;
		if (!ipc_submit(c, &jobs[i], 60000))
			abort();
	}
	while (off < size) {
		ssize_t		n = write(sv[1], data + off, size - off);

		if (n <= 0)
			abort();			/* an input under the socket buffer fits */
		off += (size_t) n;
	}
	close(sv[1]);
	uv_run(&loop, UV_RUN_DEFAULT);	/* until EOF or a bad frame closes it */
	if (!closed_seen)			/* c is freed by now */
		abort();
	for (int i = 0; i < NJOBS; i++)
		if (done_count[i] != 1)
			abort();
	return 0;
}
