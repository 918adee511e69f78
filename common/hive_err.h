/* hive_err: the one error space of the suite.
 *
 * Every module of common/ and every service returns 0 on success or one of the
 * negative codes below, so that a code can always be printed and compared,
 * whichever module it came from (libuv's UV_ERRNO_MAP). Codes are stable: a
 * new one is added at the end of the table with the next free value.
 *
 * Whether a failure is worth retrying is part of the code: hive_err_transient()
 * answers it once for everyone (a consumer retries with back-off on a transient
 * code and dead-letters the record on a permanent one).
 */
#ifndef HIVE_ERR_H
#define HIVE_ERR_H

#include <stdbool.h>
#include <stddef.h>

/* X(name, value, transient, message) */
#define HIVE_ERRNO_MAP(X)                                                                                    \
    X(ENOMEM, -1, true, "out of memory")                                                                     \
    X(EINVAL, -2, false, "invalid argument")                                                                 \
    X(ENOTFOUND, -3, false, "not found")                                                                     \
    X(ECONFLICT, -4, false, "conflict: it exists already, its revision moved or its state forbids it")       \
    X(EUNAVAILABLE, -5, true, "server unavailable; retry later")                                             \
    X(ETIMEDOUT, -6, true, "no answer in time; retry later")                                                 \
    X(EREJECTED, -7, false, "rejected by the server: the request or document is not acceptable")             \
    X(ESERVER, -8, true, "the server failed the operation")                                                  \
    X(EPROTO, -9, false, "unexpected answer from the server")                                                \
    X(ECANCELED, -10, false, "cancelled: the client is closing")                                             \
    X(EBUSY, -11, true, "held by another owner")                                                             \
    X(ENOTHELD, -12, false, "not held with this token (expired or taken over)")                              \
    X(EBADMSG, -13, false, "undecodable or invalid record")                                                  \
    X(EDELIVERY, -14, true, "the record could not be delivered")                                             \
    X(ETOOBIG, -15, false, "too large")

typedef enum {
    HIVE_OK = 0,
#define HIVE_ERR_ENUM(name, value, transient, msg) HIVE_##name = (value),
    HIVE_ERRNO_MAP(HIVE_ERR_ENUM)
#undef HIVE_ERR_ENUM
} hive_err_t;

/* "HIVE_ECONFLICT" for a code of the table, "OK" for 0, "HIVE_E?" otherwise. */
const char *hive_errname(int code);

/* A one-line description of a code ("ok" for 0, "unknown error" otherwise). */
const char *hive_strerror(int code);

/* True for the codes a caller should retry later (the server is unavailable,
 * slow, failing or busy); false for success, for permanent failures and for
 * codes outside the table. */
bool hive_err_transient(int code);

/* Formats a message (printf-style) into `err` (`errlen` bytes, always
 * NUL-terminated; nothing is written when err is NULL or errlen is 0) and
 * returns `code`, so a failure reads `return hive_err_set(err, errlen,
 * HIVE_EINVAL, "bad %s", what);`. */
int hive_err_set(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
