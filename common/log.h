/* log: structured logs, one JSON object per line on stdout.
 *
 * Every line carries ts (RFC 3339, UTC, milliseconds), level, service and msg,
 * followed by the caller's key/value fields. Safe to call from any thread: each
 * line is written with a single write(2).
 */
#ifndef HIVE_LOG_H
#define HIVE_LOG_H

#include <stdio.h>

#define LOG_LEVEL_MAP(X)                                                                                     \
    X(DEBUG, "debug")                                                                                        \
    X(INFO, "info")                                                                                          \
    X(WARN, "warn")                                                                                          \
    X(ERROR, "error")

typedef enum {
#define X(name, str) LOG_##name,
    LOG_LEVEL_MAP(X)
#undef X
} log_level_t;

/* Sets the service name printed on every line and the lowest level written.
 * Until called, service is "hive" and level is INFO. `service` is copied. */
void log_init(const char *service, log_level_t min_level);

/* Parses "debug", "info", "warn" or "error". Returns 0 and sets *out_level, or -1. */
int log_level_parse(const char *s, log_level_t *out_level);

/* Returns the lower-case name of a level. */
const char *log_level_name(log_level_t level);

/* Redirects output (tests); NULL restores stdout. The stream is not closed. */
void log_set_stream(FILE *stream);

/* Writes one line. `msg` is a literal message; the variadic part is pairs of
 * (const char *key, const char *value) ending with NULL. A NULL value is
 * written as JSON null. Keys and values are JSON-escaped. */
void log_event(log_level_t level, const char *msg, ...);

#define log_debug(...) log_event(LOG_DEBUG, __VA_ARGS__, NULL)
#define log_info(...) log_event(LOG_INFO, __VA_ARGS__, NULL)
#define log_warn(...) log_event(LOG_WARN, __VA_ARGS__, NULL)
#define log_error(...) log_event(LOG_ERROR, __VA_ARGS__, NULL)

#endif
