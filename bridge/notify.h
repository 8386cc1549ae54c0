/*
 * notify.h - the service manager's notification protocol (sd_notify of
 * libsystemd): READY=1, RELOADING=1, STOPPING=1, STATUS=, and WATCHDOG=1
 * pings from the event loop when the unit sets WatchdogSec=.
 *
 * Without NOTIFY_SOCKET (not run by systemd with Type=notify) every call
 * does nothing and no timer runs.
 */
#ifndef BRIDGE_NOTIFY_H
#define BRIDGE_NOTIFY_H

#include <stdbool.h>
#include <uv.h>

/* Start the watchdog pings (at half WATCHDOG_USEC) when the manager asks for them. */
void		notify_init(uv_loop_t *loop);
/* Stop the pings and close the timer (shutdown). */
void		notify_close(void);

void		notify_ready(const char *status);
void		notify_reloading(void);
void		notify_stopping(void);
void		notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog period in ms (0: none). */
uint64_t	notify_watchdog_ms(void);

#endif
