/*
 * log.h - leveled, one-line log messages on stderr.
 */
#ifndef BRIDGE_LOG_H
#define BRIDGE_LOG_H

#include <stdbool.h>

typedef enum log_level {
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
} log_level;

extern log_level log_threshold;

/* Parse "error", "warn", "info" or "debug"; returns false if unknown. */
bool log_parse_level(const char *s, log_level *out);

/*
 * Write one line "<time> sse-bridge <level>: <message>" to stderr if level is
 * enabled; under journald "<N><level>: <message>" (N: the syslog priority).
 */
/* Is stderr the journal (JOURNAL_STREAM matches it)?  Decided once. */
bool log_to_journal(void);

void log_msg(log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_threshold >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
