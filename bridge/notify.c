/*
 * notify.c - sd_notify messages and the watchdog timer (notify.h).
 *
 * The watchdog is pinged from a loop timer, so a loop that stops turning
 * (a blocked callback) stops the pings and systemd restarts the service.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static uv_timer_t watchdog;
static bool watchdog_on;
static uint64_t watchdog_ms;

static void
notify_on_watchdog(uv_timer_t *t)
{
	(void) t;
	sd_notify(0, "WATCHDOG=1");
}

void
notify_init(uv_loop_t *loop)
{
	uint64_t	usec = 0;

	if (getenv("NOTIFY_SOCKET") == NULL || sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	watchdog_ms = usec / 2000 ? usec / 2000 : 1;
	uv_timer_init(loop, &watchdog);
	uv_timer_start(&watchdog, notify_on_watchdog, 0, watchdog_ms);
	uv_unref((uv_handle_t *) &watchdog);
	watchdog_on = true;
	log_info("systemd watchdog: pinging every %llu ms", (unsigned long long) watchdog_ms);
}

void
notify_close(void)
{
	if (watchdog_on) {
		uv_close((uv_handle_t *) &watchdog, NULL);
		watchdog_on = false;
	}
}

uint64_t
notify_watchdog_ms(void)
{
	return watchdog_on ? watchdog_ms : 0;
}

void
notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the settings",
			   (unsigned long long) ts.tv_sec * 1000000ULL + (unsigned long long) ts.tv_nsec / 1000);
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
}

void
notify_status(const char *fmt, ...)
{
	char		buf[256];
	va_list		ap;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}
