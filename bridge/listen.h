/*
 * listen.h - the listening socket.
 *
 * Connections are accepted by hand (a uv_poll_t on a non-blocking socket)
 * so that the descriptor limit is visible: one descriptor is kept in
 * reserve, and when accept fails with EMFILE/ENFILE the reserve is closed,
 * the waiting connection accepted, answered "503 Service Unavailable" with
 * Retry-After and closed, and the reserve reopened.  Accept failures are
 * logged at most once a second (with the count of the ones not logged).
 */
#ifndef BRIDGE_LISTEN_H
#define BRIDGE_LISTEN_H

#include <stdbool.h>
#include <uv.h>

/* Bind and listen on cfg.listen, polled on loop; false (logged) on failure. */
bool		listen_start(uv_loop_t *loop);

/*
 * The two halves of listen_start, for --workers 2 or more: the supervisor
 * binds (a close-on-exec socket, -1 logged on failure) and every worker
 * polls the same socket it inherited (takes ownership of fd; quiet: do not
 * log the address again).
 */
int			listen_bind(void);
bool		listen_adopt(uv_loop_t *loop, int fd, bool quiet);
/* Log "listening on ADDR:PORT" for a bound socket. */
void		listen_announce(int fd);
/* Stop accepting and close the socket and the reserve (idempotent). */
void		listen_stop(void);

#endif
