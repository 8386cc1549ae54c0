/*
 * listen.c - the listening socket, accepted by hand (see listen.h).
 *
 * Invariants: the socket and every accepted descriptor are non-blocking and
 * close-on-exec; at most LISTEN_BURST connections are accepted per wakeup
 * so one busy listener cannot hold the loop; when no reserve descriptor is
 * left the poll pauses for LISTEN_PAUSE_MS instead of spinning on a
 * readable socket it cannot accept from.  A worker that should leave the
 * waiting connections to the others (client_should_yield) stops polling
 * for LISTEN_YIELD_MS at a time, and accepts anyway only when the others
 * took none for LISTEN_STUCK_MS while one kept waiting: yielding never
 * leaves a connection unanswered.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"

#define LISTEN_BACKLOG 1024
#define LISTEN_BURST 128
#define LISTEN_PAUSE_MS 100
#define LISTEN_LOG_MS 1000
#define LISTEN_YIELD_MS 10
#define LISTEN_STUCK_MS 2000

static struct {
	uv_loop_t  *loop;
	int			fd;
	int			spare;			/* the reserve descriptor (/dev/null), -1 when used */
	bool		polling;
	bool		open;
	uv_poll_t	poll;
	uv_timer_t	pause;
	uint64_t	logged_ms;		/* last accept failure logged */
	uint64_t	unlogged;		/* failures since then */
	uint64_t	refused;		/* 503s at the limit since then */
	uint64_t	yield_since;	/* loop ms this worker began to yield; 0: it does not */
	uint64_t	yield_others;	/* the others' clients then */
	bool		stuck_logged;
} ls = {.fd = -1, .spare = -1};

#define LISTEN_FULL_BODY "{\"error\":\"unavailable\",\"detail\":\"server is out of file descriptors\"}\n"
_Static_assert(sizeof(LISTEN_FULL_BODY) - 1 == 69, "Content-Length below");
static const char listen_full[] =
	"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
	"Content-Length: 69\r\nRetry-After: 5\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
	LISTEN_FULL_BODY;

/* Split HOST:PORT ([v6]:port accepted) and resolve it. */
static struct addrinfo *
listen_resolve(const char *spec)
{
	char		host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {0}, *res = NULL;
	size_t		hl;

	if (colon == NULL || colon[1] == '\0')
		return NULL;
	hl = (size_t) (colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return NULL;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res) != 0)
		return NULL;
	return res;
}

static void listen_on_ready(uv_poll_t *h, int status, int events);

static void
listen_reserve(void)
{
	if (ls.spare < 0)
		ls.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Log an accept failure, at most once per LISTEN_LOG_MS. */
static void
listen_failed(const char *what, int err)
{
	uint64_t	now = uv_now(ls.loop);

	if (ls.logged_ms != 0 && now - ls.logged_ms < LISTEN_LOG_MS) {
		ls.unlogged++;
		return;
	}
	log_warn("accept failed: %s: %s (%llu more not logged, %llu refused with 503 since the last report)",
			 what, strerror(err), (unsigned long long) ls.unlogged,
			 (unsigned long long) ls.refused);
	ls.logged_ms = now;
	ls.unlogged = ls.refused = 0;
}

static void
listen_on_pause(uv_timer_t *t)
{
	struct pollfd p = {.fd = ls.fd, .events = POLLIN};

	(void) t;
	listen_reserve();
	if (ls.yield_since != 0 && poll(&p, 1, 0) == 0)
		ls.yield_since = 0;		/* the others took what was waiting */
	if (ls.open && !ls.polling && uv_poll_start(&ls.poll, UV_READABLE, listen_on_ready) == 0)
		ls.polling = true;
}

/* Stop polling for ms: nothing can (or should) be accepted now. */
static void
listen_pause(uint64_t ms)
{
	if (ls.polling) {
		uv_poll_stop(&ls.poll);
		ls.polling = false;
	}
	uv_timer_start(&ls.pause, listen_on_pause, ms, 0);
}

/*
 * Leave the waiting connections to the other workers for a moment?  False
 * when this one should accept: it need not yield, or it has yielded for
 * LISTEN_STUCK_MS while the others' count did not move (they are stopped
 * or hung, and a connection must not wait for ever).
 */
static bool
listen_yield(void)
{
	uint64_t	now = uv_now(ls.loop), others;

	if (!client_should_yield(&others)) {
		ls.yield_since = 0;
		ls.stuck_logged = false;
		return false;
	}
	if (ls.yield_since == 0 || others != ls.yield_others) {
		ls.yield_since = now;
		ls.yield_others = others;
		ls.stuck_logged = false;
	} else if (now - ls.yield_since >= LISTEN_STUCK_MS) {
		if (!ls.stuck_logged)
			log_warn("the other workers took no connection for %d ms; this one accepts past its share",
					 LISTEN_STUCK_MS);
		ls.stuck_logged = true;
		return false;
	}
	listen_pause(LISTEN_YIELD_MS);
	return true;
}

/*
 * Out of descriptors: spend the reserve on one waiting connection, tell it
 * to come back later, and take the reserve again.  False when that was not
 * possible (no reserve, or nothing was waiting).
 */
static bool
listen_refuse_one(void)
{
	int			fd;

	if (ls.spare < 0)
		return false;
	close(ls.spare);
	ls.spare = -1;
	fd = accept4(ls.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0) {
		client_turn_away(fd, listen_full, sizeof(listen_full) - 1);
		ls.refused++;
		metrics.rejected++;
	}
	listen_reserve();
	return fd >= 0;
}

static void
listen_on_ready(uv_poll_t *h, int status, int events)
{
	(void) h;
	(void) events;
	if (status < 0) {
		listen_failed("poll", -status);
		return;
	}
	for (int i = 0; i < LISTEN_BURST && ls.open; i++) {
		int			fd, err;

		if (listen_yield())
			return;
		fd = accept4(ls.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		err = errno;

		if (fd >= 0) {
			client_adopt(fd);
			continue;
		}
		if (err == EAGAIN || err == EWOULDBLOCK)
			return;
		if (err == EINTR || err == ECONNABORTED)
			continue;
		listen_failed("accept", err);
		if ((err == EMFILE || err == ENFILE) && listen_refuse_one())
			continue;
		listen_pause(LISTEN_PAUSE_MS);	/* ENOBUFS, ENOMEM, no reserve: try again shortly */
		return;
	}
}

int
listen_bind(void)
{
	struct addrinfo *ai = listen_resolve(cfg.listen);
	int			one = 1, fd;

	if (ai == NULL) {
		log_error("cannot resolve --listen %s (want HOST:PORT)", cfg.listen);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		log_error("cannot listen on %s: %s", cfg.listen, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Log the address fd listens on. */
static void
listen_log(int fd)
{
	struct sockaddr_storage name = {0};
	socklen_t	namelen = sizeof(name);
	char		addr[INET6_ADDRSTRLEN] = "?";
	int			port;

	if (getsockname(fd, (struct sockaddr *) &name, &namelen) != 0) {
		log_info("listening on %s", cfg.listen);
		return;
	}
	if (name.ss_family == AF_INET6) {
		struct sockaddr_in6 a6;

		memcpy(&a6, &name, sizeof(a6));
		inet_ntop(AF_INET6, &a6.sin6_addr, addr, sizeof(addr));
		port = ntohs(a6.sin6_port);
	} else {
		struct sockaddr_in a4;

		memcpy(&a4, &name, sizeof(a4));
		inet_ntop(AF_INET, &a4.sin_addr, addr, sizeof(addr));
		port = ntohs(a4.sin_port);
	}
	log_info("listening on %s:%d", addr, port);
}

bool
listen_adopt(uv_loop_t *loop, int fd, bool quiet)
{
	ls.loop = loop;
	ls.fd = fd;
	listen_reserve();
	if (ls.spare < 0)
		log_warn("no reserve descriptor: %s", strerror(errno));
	uv_timer_init(ls.loop, &ls.pause);
	if (uv_poll_init_socket(ls.loop, &ls.poll, ls.fd) != 0) {
		log_error("cannot poll the listening socket");
		uv_close((uv_handle_t *) &ls.pause, NULL);
		close(ls.fd);
		ls.fd = -1;
		return false;
	}
	ls.open = true;
	ls.polling = uv_poll_start(&ls.poll, UV_READABLE, listen_on_ready) == 0;
	if (!quiet)
		listen_log(ls.fd);
	return true;
}

bool
listen_start(uv_loop_t *loop)
{
	int			fd = listen_bind();

	return fd >= 0 && listen_adopt(loop, fd, false);
}

void
listen_announce(int fd)
{
	listen_log(fd);
}

static void
listen_on_closed(uv_handle_t *h)
{
	(void) h;
	if (ls.fd >= 0)
		close(ls.fd);
	ls.fd = -1;
}

void
listen_stop(void)
{
	if (!ls.open)
		return;
	ls.open = false;
	ls.polling = false;
	uv_close((uv_handle_t *) &ls.pause, NULL);
	uv_close((uv_handle_t *) &ls.poll, listen_on_closed);	/* stops the poll first */
	if (ls.spare >= 0)
		close(ls.spare);
	ls.spare = -1;
}
