/* store: the service's MongoDB database, through a mongo-c-driver client pool.
 *
 * Every store_* call below marked BLOCKING talks to the server and may wait up
 * to the server-selection timeout (2 s unless the URI says otherwise). Call
 * them only from worker threads (uv_queue_work, the Kafka pipeline's worker),
 * never from the loop thread; any number of threads may share one store_t
 * (each call borrows a client from the pool). store_watch_* run on the loop.
 *
 * Two kinds of documents:
 *  - plain documents keyed by a string _id (insert_once, upsert, find_one);
 *  - versioned documents, one document per revision of a key, written only by
 *    compare-and-set (store_cas_revision) and read with store_find_latest. The
 *    insert of a new revision is the atomic step, so the compare-and-set holds
 *    on servers whose updates are not atomic (FerretDB reads, then writes).
 */
#ifndef HIVE_STORE_H
#define HIVE_STORE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"

/* Error codes: 0 is success, each failure a distinct negative value, equal
 * to its HIVE_E* counterpart (hive_err.h) so callers can test HIVE_* names. */
#define STORE_ERRNO_MAP(X)                                                                                   \
    X(ECONFLICT, -4, "conflict: the document exists or its revision moved")                                  \
    X(EUNAVAILABLE, -5, "server unavailable or timed out; retry later")                                      \
    X(EINVALID, -2, "invalid argument or document")                                                          \
    X(ENOTFOUND, -3, "no such document")                                                                     \
    X(ESERVER, -8, "the server rejected the operation")                                                      \
    X(ENOMEM, -1, "out of memory")

typedef enum {
#define X(name, code, msg) STORE_##name = (code),
    STORE_ERRNO_MAP(X)
#undef X
} store_errno_t;

/* Timeouts a store applies when the URI does not set them. */
#define STORE_DEFAULT_SERVER_SELECTION_TIMEOUT_MS 2000
#define STORE_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define STORE_DEFAULT_SOCKET_TIMEOUT_MS 10000

typedef struct store_s store_t;

/* The effective settings of a store (for logs and tests). */
typedef struct {
    char dbname[64];
    int32_t server_selection_timeout_ms;
    int32_t connect_timeout_ms;
    int32_t socket_timeout_ms;
} store_info_t;

/* Returns the name of a code ("STORE_ECONFLICT", "OK" for 0) or "STORE_E?". */
const char *store_errname(int code);
/* Returns a one-line description of a code. */
const char *store_strerror(int code);

/* The driver's message for the last failed store call on this thread ("" if
 * none): what a caller puts in a log line or a DLQ header. */
const char *store_last_error(void);

/* Initialises mongo-c-driver once per process (store_create calls it too) and
 * routes the driver's own log messages to log.h. Thread-safe. */
void store_global_init(void);
/* Releases the driver's process-wide state. Call once at exit, after every
 * store is destroyed; no store may be created afterwards. */
void store_global_cleanup(void);

/* Validates `uri` (mongodb://...) and builds a client pool; does not connect.
 * `dbname` names the service's database; NULL takes it from the URI's path.
 * Appends the default timeouts above where the URI lacks them. Returns NULL
 * with a message in `err` (NUL-terminated) on a bad URI or database name.
 * Free with store_destroy(). */
store_t *store_create(const char *uri, const char *dbname, char *err, size_t errlen);

/* Frees the pool. The health watcher must be stopped (store_watch_stop done)
 * and no worker may be inside a store call. Accepts NULL. */
void store_destroy(store_t *s);

/* Fills *out with the store's effective settings. */
void store_info(const store_t *s, store_info_t *out);

/* BLOCKING. Inserts `doc` with _id `id` unless a document with that _id
 * exists: a replay is a no-op. *out_inserted (if not NULL) tells which
 * happened. `doc`'s own _id, if any, is replaced by `id`. */
int store_insert_once(store_t *s, const char *coll, const char *id, const bson_t *doc, bool *out_inserted);

/* BLOCKING. Replaces the document with _id `id` by `doc`, or inserts it. */
int store_upsert(store_t *s, const char *coll, const char *id, const bson_t *doc);

/* BLOCKING. Compare-and-set on a versioned key: writes `doc` as revision
 * expected_revision + 1 of `key` only if the current revision is exactly
 * `expected_revision` (0: the key must have no revision yet). Returns
 * STORE_ECONFLICT otherwise, without writing. Exactly one of several writers
 * racing on the same expected revision succeeds. On success sets
 * *out_new_revision (if not NULL). The stored document is `doc` plus
 * _id "<key>@<revision>", key and revision (int64); those three fields of
 * `doc` are ignored. Earlier revisions are kept (the key's history). Create
 * the index {key: 1, revision: -1} once so store_find_latest stays fast. */
int store_cas_revision(store_t *s, const char *coll, const char *key, int64_t expected_revision,
                       const bson_t *doc, int64_t *out_new_revision);

/* BLOCKING. Reads the current (highest) revision of a versioned key into
 * *out_doc (free with bson_destroy) and *out_revision (either may be NULL).
 * STORE_ENOTFOUND when the key has no revision. */
int store_find_latest(store_t *s, const char *coll, const char *key, bson_t **out_doc, int64_t *out_revision);

/* BLOCKING. Reads the document with _id `id` into *out_doc (free with
 * bson_destroy). STORE_ENOTFOUND when there is none. */
int store_find_one(store_t *s, const char *coll, const char *id, bson_t **out_doc);

/* BLOCKING. Calls each(arg, doc) for every document matching `filter` (NULL:
 * all) with find options `opts` (sort, limit, projection; may be NULL). The
 * document is valid only during the call. A non-zero return from `each`
 * stops the iteration and is returned as is (use positive values to tell
 * them from STORE_E* codes). */
int store_find(store_t *s, const char *coll, const bson_t *filter, const bson_t *opts,
               int (*each)(void *arg, const bson_t *doc), void *arg);

/* BLOCKING. Creates an index on `keys` (e.g. {key: 1, revision: -1}) named
 * `name`, unique or not. Creating an existing index is a no-op. */
int store_create_index(store_t *s, const char *coll, const char *name, const bson_t *keys, bool unique);

/* BLOCKING. Drops the store's database (tests and tooling only). */
int store_drop_database(store_t *s);

/* BLOCKING. Runs {ping: 1}: 0 when the server answers. */
int store_ping(store_t *s);

/* Starts the health watcher on `loop`: pings on a worker thread at once and
 * then every `interval_ms` (never two at a time), keeps store_healthy()
 * current, logs each transition and sets the gauge mongodb_up in `m` (may be
 * NULL). Returns 0, or STORE_EINVALID when already started or arguments are
 * bad. */
int store_watch_start(store_t *s, uv_loop_t *loop, unsigned interval_ms, metrics_t *m);

/* True when the last ping succeeded (false before the first one answers).
 * Safe from any thread. */
bool store_healthy(const store_t *s);

/* Stops the watcher: closes its timer, waits for an in-flight ping, then
 * calls done(arg) on the loop. If the watcher was never started, done is
 * called at once. `done` may be NULL. */
void store_watch_stop(store_t *s, void (*done)(void *arg), void *arg);

/* Exposed for tests: how a mongo-c-driver error maps to a STORE_E* code. */
int store_error_code(const bson_error_t *error);

/* Exposed for tests: builds the document store_cas_revision inserts for
 * revision `revision` of `key` into `out` (initialised by the caller). */
int store_cas_build(const char *key, int64_t revision, const bson_t *doc, bson_t *out);

/* Exposed for tests: the _id of revision `revision` of `key`. Returns 0, or
 * STORE_EINVALID when it does not fit in `len` bytes. */
int store_revision_id(const char *key, int64_t revision, char *buf, size_t len);

#endif
