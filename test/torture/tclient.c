/*
 * tclient.c - many reconnecting SSE subscribers in one process.
 *
 * Each subscriber is one HTTP/1.1 stream at a time against a bridge picked at
 * random from --ports on every (re)connection, so subscribers move between
 * bridges mid-stream.  The stream is parsed by test/lib/sseparse.c (the
 * WHATWG "interpreting an event stream" rules).  Like EventSource, a
 * subscriber reconnects after the server's retry delay whenever a 200
 * stream ends or the connection fails, and sends the parser's last event ID
 * string in a Last-Event-ID header (never the id of an event cut off by the
 * end of a stream).  A 204 ends
 * the subscriber; another 4xx is logged and also ends it.
 *
 * Every subscriber writes DIR/<name>.log, one JSON object per line:
 *   {"k":"c","port":P,"lid":"..."}            connection attempt
 *   {"k":"s","status":N}                       response status
 *   {"k":"e","id":"..","ev":"..","len":N,"md5":".."}   an event
 *   {"k":"y","id":"..","data":".."}            event "ready"
 *   {"k":"r","id":"..","data":".."}            event "reset"
 *   {"k":"x","why":".."}                       the connection ended
 *   {"k":"f","status":N,"body":".."}           a final non-200 answer
 *   {"k":"m","why":"drain"}                    drain mode started (SIGHUP)
 * An event's data is represented by its length and MD5; the verifier hashes
 * the database rows the same way (line ends normalised to LF).
 *
 * Faults made here: random disconnects (exponential intervals, also in the
 * middle of an event), one or more slow readers (tiny receive buffer; they
 * stall and crawl in turns, see the main loop) that the bridge must drop, and "race" subscribers that
 * SIGUSR1 disconnects and holds and SIGUSR2 releases (the harness prunes
 * the log in between).  SIGHUP switches to drain mode: no more random
 * disconnects, slow readers read at full speed.  SIGTERM or --seconds ends.
 * "lag" subscribers are held off the same way, one at a time, while the
 * file DIR/hold.<name> exists (acknowledged by DIR/held.<name>): the
 * harness holds a terminal subscriber across the change that ends it, so
 * it comes back below the marker and must replay up to it.
 *
 * Config (--config FILE, tab-separated, '#' comments), one subscriber a line:
 *   name client path initial_lid lid_mode flags patterns filter start
 * Only lines whose client is "c" are used here; initial_lid is "-" or an id;
 * lid_mode is "header" or "query" (used until the first event arrives, then
 * the Last-Event-ID header takes over); flags is a comma
 * list of slow, race, steady (no random disconnects), lag, or "-" (other
 * words, such as end=... and sid=..., are for the verifier).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAX_SUBS 256
#define MAX_PORTS 8
#define MAX_HEAD (64 * 1024)

#include "sbuf.h"
#include "sseparse.h"

static void
json_str(sbuf *o, const char *s, size_t n)
{
	sb_puts(o, "\"");
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		e[8];

		if (c == '"' || c == '\\')
		{
			e[0] = '\\';
			e[1] = (char) c;
			sb_add(o, e, 2);
		}
		else if (c < 0x20 || c == 0x7f)
		{
			snprintf(e, sizeof e, "\\u%04x", c);
			sb_add(o, e, 6);
		}
		else
			sb_add(o, (const char *) &s[i], 1);
	}
	sb_puts(o, "\"");
}

/* ---------------------------------------------------------------- state */

typedef enum sub_state {
	ST_WAIT,					/* waiting for next_ms to connect */
	ST_CONNECTING,				/* non-blocking connect in flight */
	ST_HEAD,					/* request sent, reading the response head */
	ST_BODY,					/* streaming */
	ST_HELD,					/* race hold: disconnected until released */
	ST_DONE						/* final answer: never reconnect */
} sub_state;

typedef struct sub {
	char		name[128];
	char		path[2048];
	char		initial_lid[32];
	bool		lid_query;
	bool		slow, race, steady;
	bool		lag;			/* may be held by DIR/hold.<name> */
	bool		lag_held;
	FILE	   *log;

	sub_state	state;
	int			fd;
	int			port;
	double		next_ms;		/* ST_WAIT: when to connect */
	double		cut_ms;			/* random disconnect time, 0 = none */
	int			attempts;
	sbuf			req;
	size_t		req_off;
	sbuf			head;
	int			status;
	bool		chunked;
	long		clen;			/* Content-Length of a non-200 answer, -1 none */
	double		next_read_ms;	/* slow readers: next read allowed */
	int			cstate;			/* chunk decoder state */
	uint64_t	chunk_left;
	sbuf			fbody;			/* body of a non-200 answer */

	sse_parser	ps;				/* test/lib/sseparse.c; ps.last_id is the
								 * last event ID string, sent to resume */
	long		retry_ms;

	long		events, connects, cuts;
} sub;

static sub	subs[MAX_SUBS];
static int	n_subs;
static int	ports[MAX_PORTS];
static int	n_ports;
static const char *dir = ".";
static double seconds = 600;
static double cut_mean_ms = 6000;
static uint64_t rng = 88172645463325252ULL;
static volatile sig_atomic_t sig_hold, sig_release, sig_drain, sig_term;
static bool drain;
static int	holds_done;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static uint64_t
rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static double
rnd01(void)
{
	return (double) (rnd() >> 11) / 9007199254740992.0;
}

static void
logline(sub *s, sbuf *l)
{
	sb_puts(l, "\n");
	fwrite(l->p, 1, l->len, s->log);
	fflush(s->log);
	free(l->p);
	*l = (sbuf) {0};
}

static void
log_end(sub *s, const char *why)
{
	sbuf			l = {0};

	sb_puts(&l, "{\"k\":\"x\",\"why\":\"");
	sb_puts(&l, why);
	sb_puts(&l, "\"}");
	logline(s, &l);
}

/* ---------------------------------------------------------------- SSE */

static void
md5_hex(const char *p, size_t n, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;

	EVP_Digest(p, n, d, &dl, EVP_md5(), NULL);
	for (unsigned i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void
on_event(sse_parser *ps, const sse_event *ev)
{
	sub		   *s = ps->arg;
	sbuf			l = {0};

	if (strcmp(ev->event, "ready") == 0 || strcmp(ev->event, "reset") == 0)
	{
		sb_puts(&l, ev->event[2] == 'a' ? "{\"k\":\"y\",\"id\":" : "{\"k\":\"r\",\"id\":");
		json_str(&l, ev->id, ev->id_len);
		sb_puts(&l, ",\"data\":");
		json_str(&l, ev->data, ev->data_len);
		sb_puts(&l, "}");
	}
	else
	{
		char		md5[33], num[32];

		md5_hex(ev->data, ev->data_len, md5);
		sb_puts(&l, "{\"k\":\"e\",\"id\":");
		json_str(&l, ev->id, ev->id_len);
		sb_puts(&l, ",\"ev\":");
		json_str(&l, ev->event, ev->event_len);
		snprintf(num, sizeof num, ",\"len\":%zu,\"md5\":\"", ev->data_len);
		sb_puts(&l, num);
		sb_puts(&l, md5);
		sb_puts(&l, "\"}");
		s->events++;
	}
	logline(s, &l);
}

static void
on_retry(sse_parser *ps, long ms)
{
	((sub *) ps->arg)->retry_ms = ms;
}

static const sse_callbacks sse_cbs = {on_event, NULL, on_retry};

static void
sse_feed_or_die(sub *s, const char *p, size_t n)
{
	if (!sse_feed(&s->ps, p, n))
	{
		fprintf(stderr, "tclient: out of memory\n");
		exit(2);
	}
}

/* ---------------------------------------------------------------- HTTP */

enum {
	CH_SIZE, CH_EXT, CH_LF, CH_DATA, CH_DCR, CH_DLF, CH_END
};

static void
body_bytes(sub *s, const char *p, size_t n)
{
	if (s->status == 200)
		sse_feed_or_die(s, p, n);
	else if (s->fbody.len < 4096)
		sb_add(&s->fbody, p, n);
}

/* Returns false on a framing error or the end of a chunked body. */
static bool
chunked(sub *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n;)
	{
		char		c = p[i];

		switch (s->cstate)
		{
			case CH_SIZE:
				if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
					s->chunk_left = s->chunk_left * 16 +
						(uint64_t) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
				else if (c == ';' || c == ' ')
					s->cstate = CH_EXT;
				else if (c == '\r')
					s->cstate = CH_LF;
				else
					return false;
				i++;
				break;
			case CH_EXT:
				if (c == '\r')
					s->cstate = CH_LF;
				i++;
				break;
			case CH_LF:
				if (c != '\n')
					return false;
				i++;
				if (s->chunk_left == 0)
				{
					s->cstate = CH_END;
					return false;
				}
				s->cstate = CH_DATA;
				break;
			case CH_DATA:
				{
					size_t		take = n - i;

					if (take > s->chunk_left)
						take = (size_t) s->chunk_left;
					body_bytes(s, p + i, take);
					i += take;
					s->chunk_left -= take;
					if (s->chunk_left == 0)
						s->cstate = CH_DCR;
					break;
				}
			case CH_DCR:
				if (c != '\r')
					return false;
				s->cstate = CH_DLF;
				i++;
				break;
			case CH_DLF:
				if (c != '\n')
					return false;
				s->cstate = CH_SIZE;
				s->chunk_left = 0;
				i++;
				break;
			default:
				return false;
		}
	}
	return true;
}

static void
sub_close(sub *s, const char *why, double delay_ms)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->state == ST_BODY && s->status != 200)
	{
		sbuf			l = {0};
		char		num[64];

		snprintf(num, sizeof num, "{\"k\":\"f\",\"status\":%d,\"body\":", s->status);
		sb_puts(&l, num);
		json_str(&l, s->fbody.p ? s->fbody.p : "", s->fbody.len);
		sb_puts(&l, "}");
		logline(s, &l);
		/* 5xx (over the client limit, no database) is retried; 204/4xx end */
		if (s->status < 500)
		{
			s->state = ST_DONE;
			return;
		}
	}
	else
		log_end(s, why);
	s->state = ST_WAIT;
	s->next_ms = now_ms() + delay_ms;
}

static double
retry_delay(sub *s)
{
	double		d = (double) (s->retry_ms < 1000 ? s->retry_ms : 1000);

	return d * (0.5 + rnd01());
}

static void
sub_connect(sub *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	char		lid_hdr[96] = "";
	const char *lid = NULL;
	char		path[2200];
	sbuf			l = {0};
	char		num[128];

	/* a slow reader stays on the last bridge listed (the small queue) */
	s->port = s->slow ? ports[n_ports - 1] : ports[rnd() % (uint64_t) n_ports];
	s->attempts++;
	/* the configured starting point holds until an event has been seen */
	bool		initial = s->ps.last_id.len == 0 && strcmp(s->initial_lid, "-") != 0;

	if (initial)
		lid = s->initial_lid;
	else if (s->ps.last_id.len)
		lid = s->ps.last_id.p;

	snprintf(num, sizeof num, "{\"k\":\"c\",\"port\":%d,\"lid\":", s->port);
	sb_puts(&l, num);
	json_str(&l, lid ? lid : "", lid ? strlen(lid) : 0);
	sb_puts(&l, "}");
	logline(s, &l);

	if (lid && initial && s->lid_query)
		snprintf(path, sizeof path, "%s%clastEventId=%s", s->path,
				 strchr(s->path, '?') ? '&' : '?', lid);
	else
	{
		snprintf(path, sizeof path, "%s", s->path);
		if (lid)
			snprintf(lid_hdr, sizeof lid_hdr, "Last-Event-ID: %s\r\n", lid);
	}
	s->req.len = 0;
	sb_puts(&s->req, "GET ");
	sb_puts(&s->req, path);
	snprintf(num, sizeof num, " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", s->port);
	sb_puts(&s->req, num);
	sb_puts(&s->req, "Accept: text/event-stream\r\nCache-Control: no-cache\r\n");
	sb_puts(&s->req, lid_hdr);
	sb_puts(&s->req, "\r\n");
	s->req_off = 0;
	s->head.len = 0;
	s->fbody.len = 0;
	s->status = 0;
	s->chunked = false;
	s->clen = -1;
	s->cstate = CH_SIZE;
	s->chunk_left = 0;
	sse_begin(&s->ps);

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->slow)
	{
		int			rb = 4096;

		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
	}
	a.sin_port = htons((uint16_t) s->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->connects++;
	if (connect(s->fd, (struct sockaddr *) &a, sizeof a) < 0 && errno != EINPROGRESS)
	{
		s->state = ST_HEAD;		/* so sub_close logs it as a failed attempt */
		sub_close(s, "connect", retry_delay(s));
		return;
	}
	s->state = ST_CONNECTING;
	s->cut_ms = (s->steady || drain) ? 0 :
		now_ms() + -log(1.0 - rnd01()) * cut_mean_ms;
}

/* Parse the response head in s->head; false if malformed. */
static bool
parse_head(sub *s)
{
	char	   *p = s->head.p;
	sbuf			l = {0};
	char		num[64];

	if (strncmp(p, "HTTP/1.", 7) != 0 || s->head.len < 12)
		return false;
	s->status = atoi(p + 9);
	for (char *h = strstr(p, "\r\n"); h && h[2] != '\r'; h = strstr(h + 2, "\r\n"))
	{
		char	   *hl = h + 2;

		if (strncasecmp(hl, "content-length:", 15) == 0)
			s->clen = atol(hl + 15);
		if (strncasecmp(hl, "transfer-encoding:", 18) == 0)
		{
			char	   *e = strstr(hl, "\r\n");
			char		save = *e;

			*e = 0;
			if (strcasestr(hl, "chunked"))
				s->chunked = true;
			*e = save;
		}
	}
	snprintf(num, sizeof num, "{\"k\":\"s\",\"status\":%d}", s->status);
	sb_puts(&l, num);
	logline(s, &l);
	return true;
}

/* Bytes from the socket.  Returns false when the response is over. */
static bool
sub_input(sub *s, const char *p, size_t n)
{
	if (s->state == ST_HEAD)
	{
		sb_add(&s->head, p, n);
		char	   *end = strstr(s->head.p, "\r\n\r\n");

		if (!end)
			return s->head.len < MAX_HEAD;
		size_t		hl = (size_t) (end - s->head.p) + 4;
		size_t		rest = s->head.len - hl;
		char	   *tmp = malloc(rest + 1);

		memcpy(tmp, s->head.p + hl, rest);
		s->head.p[hl - 2] = 0;
		if (!parse_head(s))
		{
			free(tmp);
			return false;
		}
		s->state = ST_BODY;
		if (s->status == 204 || (s->status != 200 && s->clen == 0))
		{
			free(tmp);
			return false;
		}
		bool		more = rest ? sub_input(s, tmp, rest) : true;

		free(tmp);
		return more;
	}
	if (s->chunked)
		return chunked(s, p, n);
	body_bytes(s, p, n);
	if (s->status != 200 && s->clen >= 0)
	{
		s->clen -= (long) n;
		return s->clen > 0;
	}
	return true;
}

static void
sub_readable(sub *s, char *rbuf, size_t cap)
{
	size_t		want = (s->slow && !drain && fmod(now_ms(), 10000.0) >= 2000) ? 1024 : cap;
	ssize_t		got = recv(s->fd, rbuf, want, 0);

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0)
	{
		sub_close(s, got == 0 ? "eof" : "error", retry_delay(s));
		return;
	}
	if (!sub_input(s, rbuf, (size_t) got))
		sub_close(s, "end", retry_delay(s));
}

static void
sub_writable(sub *s)
{
	if (s->state == ST_CONNECTING)
	{
		int			err = 0;
		socklen_t	el = sizeof err;

		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
		{
			sub_close(s, "connect", retry_delay(s));
			return;
		}
		s->state = ST_HEAD;
	}
	while (s->req_off < s->req.len)
	{
		ssize_t		w = send(s->fd, s->req.p + s->req_off, s->req.len - s->req_off, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w <= 0)
		{
			sub_close(s, "send", retry_delay(s));
			return;
		}
		s->req_off += (size_t) w;
	}
}

/* ---------------------------------------------------------------- config */

static bool
load_config(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[8192];

	if (!f)
	{
		perror(path);
		return false;
	}
	while (fgets(line, sizeof line, f))
	{
		char	   *fld[9];
		int			nf = 0;
		char	   *save = NULL;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = 0;
		for (char *t = strtok_r(line, "\t", &save); t && nf < 9; t = strtok_r(NULL, "\t", &save))
			fld[nf++] = t;
		if (nf < 6 || strcmp(fld[1], "c") != 0)
			continue;
		if (n_subs >= MAX_SUBS)
			break;
		sub		   *s = &subs[n_subs++];
		char		lp[4096];

		snprintf(s->name, sizeof s->name, "%s", fld[0]);
		snprintf(s->path, sizeof s->path, "%s", fld[2]);
		snprintf(s->initial_lid, sizeof s->initial_lid, "%s", fld[3]);
		s->lid_query = strcmp(fld[4], "query") == 0;
		s->slow = strstr(fld[5], "slow") != NULL;
		s->race = strstr(fld[5], "race") != NULL;
		/* a slow reader keeps its connection until the bridge drops it */
		s->steady = strstr(fld[5], "steady") != NULL || s->slow;
		s->lag = strstr(fld[5], "lag") != NULL;
		s->fd = -1;
		s->retry_ms = 3000;
		sse_init(&s->ps, &sse_cbs, s);
		s->state = ST_WAIT;
		s->next_ms = 0;
		snprintf(lp, sizeof lp, "%s/%s.log", dir, s->name);
		s->log = fopen(lp, "w");
		if (!s->log)
		{
			perror(lp);
			return false;
		}
	}
	fclose(f);
	return true;
}

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		sig_hold = 1;
	else if (sig == SIGUSR2)
		sig_release = 1;
	else if (sig == SIGHUP)
		sig_drain = 1;
	else
		sig_term = 1;
}

static void
write_state(void)
{
	char		p[4096], t[4200];
	FILE	   *f;

	snprintf(p, sizeof p, "%s/tclient.state", dir);
	snprintf(t, sizeof t, "%s.tmp", p);
	f = fopen(t, "w");
	if (!f)
		return;
	fprintf(f, "holds=%d drain=%d\n", holds_done, drain ? 1 : 0);
	fclose(f);
	rename(t, p);
}

static void
handle_signals(void)
{
	double		t = now_ms();

	if (sig_hold)
	{
		sig_hold = 0;
		for (int i = 0; i < n_subs; i++)
		{
			sub		   *s = &subs[i];

			if (!s->race || s->state == ST_DONE)
				continue;
			if (s->fd >= 0)
			{
				close(s->fd);
				s->fd = -1;
				log_end(s, "hold");
			}
			s->state = ST_HELD;
		}
		holds_done++;
		write_state();
	}
	if (sig_release)
	{
		sig_release = 0;
		for (int i = 0; i < n_subs; i++)
			if (subs[i].state == ST_HELD && !subs[i].lag_held)
			{
				subs[i].state = ST_WAIT;
				subs[i].next_ms = t;
			}
	}
	if (sig_drain)
	{
		sig_drain = 0;
		drain = true;
		for (int i = 0; i < n_subs; i++)
		{
			sbuf			l = {0};

			sb_puts(&l, "{\"k\":\"m\",\"why\":\"drain\"}");
			logline(&subs[i], &l);
			subs[i].cut_ms = 0;
			if (subs[i].state == ST_HELD)
			{
				subs[i].state = ST_WAIT;
				subs[i].next_ms = t;
			}
		}
		write_state();
	}
}

/*
 * Lagging subscribers: held (disconnected) while DIR/hold.<name> exists,
 * acknowledged by creating DIR/held.<name>; released when the file goes.
 * Drain mode releases them too.
 */
static void
lag_poll(double t)
{
	for (int i = 0; i < n_subs; i++)
	{
		sub		   *s = &subs[i];
		char		hp[4096], ap[4200];
		bool		want;

		if (!s->lag)
			continue;
		if (snprintf(hp, sizeof hp, "%s/hold.%s", dir, s->name) >= (int) sizeof hp ||
			snprintf(ap, sizeof ap, "%s/held.%s", dir, s->name) >= (int) sizeof ap)
			continue;
		want = !drain && access(hp, F_OK) == 0;
		if (want && !s->lag_held)
		{
			FILE	   *f;

			if (s->state != ST_DONE)
			{
				if (s->fd >= 0)
				{
					close(s->fd);
					s->fd = -1;
					log_end(s, "hold");
				}
				s->state = ST_HELD;
			}
			s->lag_held = true;
			f = fopen(ap, "w");
			if (f)
				fclose(f);
		}
		else if (!want && s->lag_held)
		{
			s->lag_held = false;
			unlink(ap);
			if (s->state == ST_HELD)
			{
				s->state = ST_WAIT;
				s->next_ms = t;
			}
		}
	}
}

int
main(int argc, char **argv)
{
	const char *config = NULL;
	static char rbuf[256 * 1024];
	struct pollfd pfd[MAX_SUBS];
	int			map[MAX_SUBS];
	double		deadline;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--config") == 0)
			config = argv[i + 1];
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--cut-mean-ms") == 0)
			cut_mean_ms = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--seed") == 0)
			rng ^= strtoull(argv[i + 1], NULL, 10) * 0x9E3779B97F4A7C15ULL;
		else if (strcmp(argv[i], "--ports") == 0)
		{
			char	   *save = NULL, *cp = strdup(argv[i + 1]);

			for (char *t = strtok_r(cp, ",", &save); t && n_ports < MAX_PORTS; t = strtok_r(NULL, ",", &save))
				ports[n_ports++] = atoi(t);
		}
		else
		{
			fprintf(stderr, "tclient: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!config || n_ports == 0 || !load_config(config))
	{
		fprintf(stderr, "usage: tclient --config FILE --dir DIR --ports P1,P2 [--seconds S]\n");
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	write_state();
	deadline = now_ms() + seconds * 1000;

	while (!sig_term && now_ms() < deadline)
	{
		int			n = 0;
		double		t = now_ms();
		int			timeout = 100;

		handle_signals();
		lag_poll(t);
		for (int i = 0; i < n_subs; i++)
		{
			sub		   *s = &subs[i];

			if (s->state == ST_WAIT && t >= s->next_ms)
				sub_connect(s);
			if ((s->state == ST_BODY || s->state == ST_HEAD) && s->cut_ms > 0 &&
				t >= s->cut_ms && !drain)
			{
				s->cuts++;
				s->state = ST_HEAD;		/* log as a plain cut, not a final answer */
				sub_close(s, "cut", retry_delay(s));
				continue;
			}
			if (s->fd < 0 || s->state == ST_WAIT)
				continue;
			if (s->slow && !drain && s->state == ST_BODY)
			{
				/*
				 * A slow reader cycles through 10 s: 2 s at full speed (so
				 * that it catches up and is a live stream again), 6 s not
				 * reading at all (its queue in the bridge overflows), 2 s
				 * at one small read per 20 ms.
				 */
				double		phase = fmod(t, 10000.0);

				if (phase >= 2000 && phase < 8000)
					continue;
				if (phase >= 8000)
				{
					if (t < s->next_read_ms)
						continue;
					s->next_read_ms = t + 20;
				}
			}
			pfd[n].fd = s->fd;
			pfd[n].events = (s->state == ST_CONNECTING ||
							 (s->state == ST_HEAD && s->req_off < s->req.len)) ? POLLOUT : POLLIN;
			map[n++] = i;
		}
		for (int i = 0; i < n_subs; i++)
			if (subs[i].slow && subs[i].state == ST_BODY && !drain)
				timeout = 20;
		int			r = poll(pfd, (nfds_t) n, timeout);

		if (r < 0 && errno != EINTR)
		{
			perror("poll");
			return 1;
		}
		for (int k = 0; r > 0 && k < n; k++)
		{
			sub		   *s = &subs[map[k]];

			if (!pfd[k].revents || s->fd != pfd[k].fd)
				continue;
			if (pfd[k].events & POLLOUT)
				sub_writable(s);
			else
				sub_readable(s, rbuf, sizeof rbuf);
		}
	}
	long		ev = 0, con = 0, cuts = 0;

	for (int i = 0; i < n_subs; i++)
	{
		if (subs[i].fd >= 0)
			close(subs[i].fd);
		fclose(subs[i].log);
		ev += subs[i].events;
		con += subs[i].connects;
		cuts += subs[i].cuts;
	}
	printf("tclient subscribers=%d events=%ld connects=%ld cuts=%ld\n", n_subs, ev, con, cuts);
	return 0;
}
