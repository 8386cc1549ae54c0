/*
 * log.c - leveled log lines on stderr.
 *
 * Under journald (JOURNAL_STREAM names the device and inode of stderr, as
 * systemd sets it for a service's output) a line carries its priority as an
 * sd-daemon "<N>" prefix and no timestamp, since the journal adds its own;
 * elsewhere it starts with a UTC timestamp, "sse-bridge" and the level.
 *
 * Invariants: every message is written with a single write(2) so lines from
 * one process never interleave, and is one line (its newlines, as in
 * libpq's error messages, are dropped at the end and spaces inside);
 * messages longer than the line buffer are truncated.  Callers never pass subscription ids at LOG_INFO or above.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

log_level log_threshold = LOG_INFO;

static const char *const log_names[] = {"error", "warn", "info", "debug"};
/* sd-daemon priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const char log_prio[] = {'3', '4', '6', '7'};

static int	log_journal = -1;	/* unknown until the first line */

bool
log_to_journal(void)
{
	if (log_journal < 0) {
		const char *js = getenv("JOURNAL_STREAM");
		unsigned long long dev, ino;
		struct stat st;

		log_journal = js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
			fstat(STDERR_FILENO, &st) == 0 &&
			(unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
	}
	return log_journal == 1;
}

bool
log_parse_level(const char *s, log_level *out)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (strcasecmp(s, log_names[i]) == 0) {
			*out = (log_level) i;
			return true;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return true;
	}
	return false;
}

void
log_msg(log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_threshold)
		return;
	if (log_to_journal())
		n = snprintf(line, sizeof(line), "<%c>%s: ", log_prio[level], log_names[level]);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = (int) strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t) n, ".%03ldZ sse-bridge %s: ",
					  ts.tv_nsec / 1000000, log_names[level]);
	}
	int start = n;

	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int) sizeof(line) - 2)
		n = (int) sizeof(line) - 2;
	/* one line: a message's own line ends (libpq's errors have them) become spaces */
	while (n > start && line[n - 1] == '\n')
		n--;
	for (int i = start; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t) n);
	(void) w;
}
