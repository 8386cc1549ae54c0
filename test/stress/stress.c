/*
 * stress.c
 *		Concurrent publishers against a tailing reader: does the reader ever
 *		miss a row?
 *
 * N publisher threads (one connection each) run transactions of 1-4 events,
 * some with a savepoint that is rolled back (its event must vanish), wait a
 * random 0-4 ms before ending, and roll back about one transaction in ten.
 * One reader thread repeatedly runs
 *		SELECT id FROM <log> WHERE id > $last ORDER BY id
 * and advances $last to the largest id it got, like a naive SSE bridge.
 *
 * At the end the rows the reader saw are compared with the table, and the
 * table with what the publishers committed:
 *		skipped		rows in the table the reader never saw (it read past them)
 *		duplicated	ids the reader got more than once
 *		lost		committed events missing from the table
 *		phantom		rows whose transaction or savepoint was rolled back
 *		split		committed transactions whose events do not have
 *					consecutive ids, in publish order (sse_publish only)
 *
 * --plain publishes with a plain INSERT into a bigserial table instead of
 * sse_publish: ids are then drawn when the row is inserted, not at commit,
 * and the reader skips rows.  That mode is expected to fail.
 *
 * Each payload is "k<thread>:<seq>" (kept) or "d<thread>:<seq>" (published
 * in a savepoint that is rolled back), so every row can be traced back.
 */
#define _DEFAULT_SOURCE

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

typedef struct
{
	int64_t    *v;
	size_t		n;
	size_t		cap;
} I64Vec;

typedef struct
{
	int			index;
	unsigned int seed;
	PGconn	   *conn;
	I64Vec		committed;		/* keys (thread << 32 | seq) */
	unsigned char *txn_start;	/* per kept seq: 1 if first of its txn */
	size_t		txn_start_cap;
	uint32_t	kept_seq;
	uint32_t	discard_seq;
	long		txns;
	long		rollbacks;
	long		savepoint_rollbacks;
} Publisher;

static const char *conninfo = "";
static bool plain = false;
static int	npublishers = 16;
static long target_rows = 30000;
static int	max_delay_us = 4000;
static const char *log_table = "sse_bridge.events";

static atomic_long committed_rows = 0;
static atomic_bool publishers_done = false;

static I64Vec seen;

static void
vec_push(I64Vec *v, int64_t x)
{
	if (v->n == v->cap)
	{
		v->cap = v->cap ? v->cap * 2 : 1024;
		v->v = realloc(v->v, v->cap * sizeof(int64_t));
		if (v->v == NULL)
		{
			perror("realloc");
			exit(2);
		}
	}
	v->v[v->n++] = x;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

static PGconn *
connect_db(void)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "connection failed: %s", PQerrorMessage(conn));
		exit(2);
	}
	return conn;
}

static void
die_result(PGconn *conn, PGresult *res, const char *what)
{
	fprintf(stderr, "%s failed: %s", what, PQerrorMessage(conn));
	PQclear(res);
	exit(2);
}

static void
exec_cmd(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
		die_result(conn, res, sql);
	PQclear(res);
}

static void
prepare(PGconn *conn, const char *name, const char *sql, int nparams)
{
	PGresult   *res = PQprepare(conn, name, sql, nparams, NULL);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die_result(conn, res, sql);
	PQclear(res);
}

/* ----------------------------------------------------------------
 *		Publishers
 * ----------------------------------------------------------------
 */

static void
publish(Publisher *p, char kind, uint32_t seq)
{
	char		channel[32];
	char		data[32];
	const char *params[2] = {channel, data};
	PGresult   *res;

	snprintf(channel, sizeof(channel), "stress.%d", p->index);
	snprintf(data, sizeof(data), "%c%d:%" PRIu32, kind, p->index, seq);
	res = PQexecPrepared(p->conn, "publish", 2, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
		PQresultStatus(res) != PGRES_COMMAND_OK)
		die_result(p->conn, res, "publish");
	PQclear(res);
}

static void
mark_txn_start(Publisher *p, uint32_t seq)
{
	if (seq >= p->txn_start_cap)
	{
		size_t		cap = p->txn_start_cap ? p->txn_start_cap * 2 : 4096;

		while (cap <= seq)
			cap *= 2;
		p->txn_start = realloc(p->txn_start, cap);
		if (p->txn_start == NULL)
		{
			perror("realloc");
			exit(2);
		}
		memset(p->txn_start + p->txn_start_cap, 0, cap - p->txn_start_cap);
		p->txn_start_cap = cap;
	}
	p->txn_start[seq] = 1;
}

/* One transaction; returns the number of events it committed. */
static int
run_transaction(Publisher *p)
{
	int			nevents = 1 + rand_r(&p->seed) % 4;
	uint32_t	first = p->kept_seq;
	PGresult   *res;

	exec_cmd(p->conn, "BEGIN");
	for (int e = 0; e < nevents; e++)
	{
		if (rand_r(&p->seed) % 6 == 0)
		{
			exec_cmd(p->conn, "SAVEPOINT s");
			publish(p, 'd', p->discard_seq++);
			exec_cmd(p->conn, "ROLLBACK TO SAVEPOINT s");
			p->savepoint_rollbacks++;
		}
		if (rand_r(&p->seed) % 5 == 0)
		{
			/* a kept event inside a released savepoint */
			exec_cmd(p->conn, "SAVEPOINT r");
			publish(p, 'k', p->kept_seq++);
			exec_cmd(p->conn, "RELEASE SAVEPOINT r");
		}
		else
			publish(p, 'k', p->kept_seq++);
	}

	/* simulated work between the last publish and the end */
	usleep(rand_r(&p->seed) % (max_delay_us + 1));

	p->txns++;
	if (rand_r(&p->seed) % 10 == 0)
	{
		exec_cmd(p->conn, "ROLLBACK");
		p->rollbacks++;
		/* those seqs are never committed; the next txn starts fresh */
		return 0;
	}

	res = PQexec(p->conn, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die_result(p->conn, res, "COMMIT");
	PQclear(res);

	mark_txn_start(p, first);
	for (uint32_t s = first; s < p->kept_seq; s++)
		vec_push(&p->committed, ((int64_t) p->index << 32) | s);
	return (int) (p->kept_seq - first);
}

static void *
publisher_main(void *arg)
{
	Publisher  *p = arg;

	p->conn = connect_db();
	if (plain)
		prepare(p->conn, "publish",
				"INSERT INTO stress_plain (channel, data) VALUES ($1, $2)", 2);
	else
		prepare(p->conn, "publish", "SELECT sse_publish($1, $2)", 2);

	while (atomic_load(&committed_rows) < target_rows)
		atomic_fetch_add(&committed_rows, run_transaction(p));
	PQfinish(p->conn);
	return NULL;
}

/* ----------------------------------------------------------------
 *		Reader
 * ----------------------------------------------------------------
 */

/* One poll; returns the number of rows read. */
static int
read_new(PGconn *conn, int64_t *last)
{
	char		buf[32];
	const char *params[1] = {buf};
	PGresult   *res;
	int			n;

	snprintf(buf, sizeof(buf), "%" PRId64, *last);
	res = PQexecPrepared(conn, "tail", 1, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die_result(conn, res, "tail");
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
	{
		int64_t		id = strtoll(PQgetvalue(res, i, 0), NULL, 10);

		vec_push(&seen, id);
		if (id > *last)
			*last = id;
	}
	PQclear(res);
	return n;
}

static void *
reader_main(void *arg)
{
	PGconn	   *conn = connect_db();
	char		sql[128];
	int64_t		last = 0;
	long	   *polls = arg;

	snprintf(sql, sizeof(sql),
			 "SELECT id FROM %s WHERE id > $1 ORDER BY id", log_table);
	prepare(conn, "tail", sql, 1);

	while (!atomic_load(&publishers_done))
	{
		read_new(conn, &last);
		(*polls)++;
	}
	/* everything has committed: one last read picks up the tail */
	while (read_new(conn, &last) > 0)
		(*polls)++;
	PQfinish(conn);
	return NULL;
}

/* ----------------------------------------------------------------
 *		Verification
 * ----------------------------------------------------------------
 */

typedef struct
{
	int64_t		id;
	int64_t		key;			/* -1 for a discarded ("d") payload */
} Row;

static Row *
fetch_table(PGconn *conn, long *nrows)
{
	char		sql[128];
	PGresult   *res;
	Row		   *rows;
	long		n;

	snprintf(sql, sizeof(sql), "SELECT id, data FROM %s ORDER BY id", log_table);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die_result(conn, res, sql);
	n = PQntuples(res);
	rows = calloc(n + 1, sizeof(Row));
	for (long i = 0; i < n; i++)
	{
		const char *data = PQgetvalue(res, i, 1);
		int			t;
		uint32_t	s;

		rows[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		if (data[0] == 'k' && sscanf(data + 1, "%d:%" SCNu32, &t, &s) == 2)
			rows[i].key = ((int64_t) t << 32) | s;
		else
			rows[i].key = -1;
	}
	PQclear(res);
	*nrows = n;
	return rows;
}

/* Count elements of sorted a missing from sorted b. */
static long
count_missing(const int64_t *a, size_t na, const int64_t *b, size_t nb)
{
	size_t		j = 0;
	long		missing = 0;

	for (size_t i = 0; i < na; i++)
	{
		while (j < nb && b[j] < a[i])
			j++;
		if (j == nb || b[j] != a[i])
			missing++;
	}
	return missing;
}

static void
usage(const char *prog)
{
	fprintf(stderr,
			"usage: %s [--plain] [--dbname NAME] [--publishers N] [--rows N] [--max-delay-us N]\n",
			prog);
	exit(2);
}

int
main(int argc, char **argv)
{
	static char conn_buf[256];
	Publisher  *pubs;
	pthread_t  *threads;
	pthread_t	reader;
	long		polls = 0;
	struct timespec t0, t1;
	PGconn	   *conn;
	Row		   *rows;
	long		nrows;
	I64Vec		committed = {0};
	I64Vec		table_ids = {0};
	I64Vec		table_keys = {0};
	long		skipped, duplicated = 0, lost, phantom = 0, split = 0;
	long		txns = 0, rollbacks = 0, sp_rollbacks = 0;
	double		elapsed;
	bool		ok;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--plain") == 0)
			plain = true;
		else if (strcmp(argv[i], "--dbname") == 0 && i + 1 < argc)
		{
			snprintf(conn_buf, sizeof(conn_buf), "dbname=%s", argv[++i]);
			conninfo = conn_buf;
		}
		else if (strcmp(argv[i], "--publishers") == 0 && i + 1 < argc)
			npublishers = atoi(argv[++i]);
		else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
			target_rows = atol(argv[++i]);
		else if (strcmp(argv[i], "--max-delay-us") == 0 && i + 1 < argc)
			max_delay_us = atoi(argv[++i]);
		else
			usage(argv[0]);
	}
	if (npublishers < 1 || target_rows < 1 || max_delay_us < 0)
		usage(argv[0]);

	conn = connect_db();
	if (plain)
	{
		log_table = "stress_plain";
		exec_cmd(conn, "CREATE TABLE stress_plain (id bigserial PRIMARY KEY, "
				 "channel text NOT NULL, event text, data text NOT NULL, "
				 "created_at timestamptz NOT NULL DEFAULT clock_timestamp())");
	}

	pubs = calloc(npublishers, sizeof(Publisher));
	threads = calloc(npublishers, sizeof(pthread_t));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&reader, NULL, reader_main, &polls);
	for (int i = 0; i < npublishers; i++)
	{
		pubs[i].index = i;
		pubs[i].seed = 0x5eed + i;
		pthread_create(&threads[i], NULL, publisher_main, &pubs[i]);
	}
	for (int i = 0; i < npublishers; i++)
		pthread_join(threads[i], NULL);
	atomic_store(&publishers_done, true);
	pthread_join(reader, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	elapsed = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	rows = fetch_table(conn, &nrows);
	PQfinish(conn);

	for (int i = 0; i < npublishers; i++)
	{
		for (size_t j = 0; j < pubs[i].committed.n; j++)
			vec_push(&committed, pubs[i].committed.v[j]);
		txns += pubs[i].txns;
		rollbacks += pubs[i].rollbacks;
		sp_rollbacks += pubs[i].savepoint_rollbacks;
	}
	for (long i = 0; i < nrows; i++)
	{
		vec_push(&table_ids, rows[i].id);
		if (rows[i].key < 0)
			phantom++;
		else
			vec_push(&table_keys, rows[i].key);

		/* events of one transaction: consecutive ids, in publish order */
		if (rows[i].key >= 0)
		{
			Publisher  *p = &pubs[rows[i].key >> 32];
			uint32_t	s = (uint32_t) rows[i].key;

			if (s < p->txn_start_cap && !p->txn_start[s] &&
				(i == 0 || rows[i - 1].key != rows[i].key - 1 ||
				 rows[i - 1].id != rows[i].id - 1))
				split++;
		}
	}

	qsort(seen.v, seen.n, sizeof(int64_t), cmp_i64);
	for (size_t i = 1; i < seen.n; i++)
		if (seen.v[i] == seen.v[i - 1])
			duplicated++;
	skipped = count_missing(table_ids.v, table_ids.n, seen.v, seen.n);

	qsort(committed.v, committed.n, sizeof(int64_t), cmp_i64);
	qsort(table_keys.v, table_keys.n, sizeof(int64_t), cmp_i64);
	lost = count_missing(committed.v, committed.n, table_keys.v, table_keys.n);
	phantom += count_missing(table_keys.v, table_keys.n, committed.v, committed.n);

	printf("mode=%s publishers=%d txns=%ld rollbacks=%ld savepoint_rollbacks=%ld polls=%ld elapsed=%.1fs\n",
		   plain ? "plain-bigserial" : "sse_publish", npublishers, txns,
		   rollbacks, sp_rollbacks, polls, elapsed);
	printf("rows=%ld skipped=%ld duplicated=%ld lost=%ld phantom=%ld split=%ld\n",
		   nrows, skipped, duplicated, lost, phantom, split);

	ok = skipped == 0 && duplicated == 0 && lost == 0 && phantom == 0 &&
		nrows >= target_rows && (plain || split == 0);
	if (!ok)
		printf("FAILED: the reader's view or the table disagrees with what was committed\n");
	return ok ? 0 : 1;
}
