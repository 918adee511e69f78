/* store: the service's MongoDB database, through a mongo-c-driver client pool.
 *
 * Every store_* call below marked BLOCKING talks to the server and may wait up
 * to the server-selection timeout (2 s unless the URI says otherwise). Call
 * them only from worker threads (uv_queue_work, the Kafka pipeline's worker),
 * never from the loop thread; any number of threads may share one store_t
 * (each call borrows a client from the pool). store_watch_* run on the loop.
 *
 * A document holding a NaN double is refused (HIVE_EREJECTED) before it is
 * sent: FerretDB drops the connection on one, which would look transient.
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

#include "hive_err.h"
#include "metrics.h"

/* Errors are HIVE_E* codes (hive_err.h), classified for the caller:
 *  - transient, retry later: HIVE_EUNAVAILABLE (no connection, server
 *    selection failed, not primary, shutting down), HIVE_ETIMEDOUT (the server
 *    ran out of time), HIVE_ESERVER (another server failure);
 *  - permanent for this document: HIVE_EREJECTED (the server refuses the
 *    document: a bad value such as an infinity or NaN, a bad field name,
 *    validation, too large); store_last_error() holds the server's message,
 *    which is what a DLQ header should carry;
 *  - HIVE_ECONFLICT (duplicate key, revision moved), HIVE_ENOTFOUND,
 *    HIVE_EINVAL (bad argument), HIVE_ENOMEM. */

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
 * HIVE_ECONFLICT otherwise, without writing. Exactly one of several writers
 * racing on the same expected revision succeeds. On success sets
 * *out_new_revision (if not NULL). The stored document is `doc` plus
 * _id "<key>@<revision>", key and revision (int64); those three fields of
 * `doc` are ignored. Earlier revisions are kept (the key's history). Create
 * the index {key: 1, revision: -1} once so store_find_latest stays fast. */
int store_cas_revision(store_t *s, const char *coll, const char *key, int64_t expected_revision,
                       const bson_t *doc, int64_t *out_new_revision);

/* BLOCKING. Reads the current (highest) revision of a versioned key into
 * *out_doc (free with bson_destroy) and *out_revision (either may be NULL).
 * HIVE_ENOTFOUND when the key has no revision. */
int store_find_latest(store_t *s, const char *coll, const char *key, bson_t **out_doc, int64_t *out_revision);

/* BLOCKING. Reads the document with _id `id` into *out_doc (free with
 * bson_destroy). HIVE_ENOTFOUND when there is none. */
int store_find_one(store_t *s, const char *coll, const char *id, bson_t **out_doc);

/* BLOCKING. Calls each(arg, doc) for every document matching `filter` (NULL:
 * all) with find options `opts` (sort, limit, projection; may be NULL). The
 * document is valid only during the call. A non-zero return from `each`
 * stops the iteration and is returned as is (use positive values to tell
 * them from HIVE_E* codes). */
int store_find(store_t *s, const char *coll, const bson_t *filter, const bson_t *opts,
               int (*each)(void *arg, const bson_t *doc), void *arg);

/* BLOCKING. Creates an index on `keys` (e.g. {key: 1, revision: -1}) named
 * `name`, unique or not. Creating an existing index is a no-op. */
int store_create_index(store_t *s, const char *coll, const char *name, const bson_t *keys, bool unique);

/* One index a service's queries need: the collection, the keys as relaxed
 * JSON ("{\"key\": 1, \"revision\": -1}"), and whether it is unique. */
typedef struct {
    const char *coll;
    const char *keys;
    bool unique;
} store_index_t;

/* BLOCKING. Creates every index of `table` (n entries) that does not exist
 * yet, each named after its keys the way MongoDB names them ("key_1_revision_-1").
 * Run once at start, before the service reads. Returns 0, or the first
 * failure (HIVE_EINVAL for keys that do not parse) with the index named in
 * store_last_error(). */
int store_ensure_indexes(store_t *s, const store_index_t *table, size_t n);

/* ----------------------------------------------------------------- batches
 *
 * The bulk calls write n documents of one collection in one unordered bulk
 * operation (one round trip when every document is accepted) and report each
 * document's own outcome in out[i]: the caller dead-letters the rejected ones
 * and goes on with the rest. The call itself returns 0 when every document
 * has an outcome, or a code for the whole batch (HIVE_EUNAVAILABLE, ...;
 * out[] is then meaningless and the whole batch is to be retried: both calls
 * are idempotent). */

/* One document of a batch: its _id and its body (its own _id is ignored). */
typedef struct {
    const char *id;
    const bson_t *doc;
} store_doc_t;

/* The outcome of one document of a batch. */
typedef struct {
    int status;        /* 0, or HIVE_EREJECTED / HIVE_ECONFLICT / HIVE_EINVAL for this document alone */
    bool inserted;     /* store_bulk_insert_once: written by this call (false: it existed) */
    char message[200]; /* why, when status != 0: the server's message */
} store_result_t;

/* BLOCKING. Replaces or inserts each of docs[0..n) by _id, as store_upsert
 * does for one. A document the server refuses gets HIVE_EREJECTED and its
 * message in out[i]; the others are written. (FerretDB 1.24 answers an
 * unordered update batch by stopping at the first refused document and
 * reporting it at index 0; so when any document is refused, the batch is
 * replayed one document at a time, which is idempotent and gives each
 * document its own answer.) The documents go to the server a few per
 * command: FerretDB 1.24 holds a backend connection per matched update
 * until the command ends and hangs once its pool is used up. */
int store_bulk_upsert(store_t *s, const char *coll, const store_doc_t *docs, size_t n, store_result_t *out);

/* BLOCKING. Inserts each of docs[0..n) unless a document with its _id exists,
 * as store_insert_once does for one: out[i].inserted tells which were new,
 * so a replayed batch writes nothing and reports none new. */
int store_bulk_insert_once(store_t *s, const char *coll, const store_doc_t *docs, size_t n,
                           store_result_t *out);

/* BLOCKING. Reads the documents whose _id is one of ids[0..n), one {_id: id}
 * query per distinct id (an index lookup; FerretDB serves {_id: {$in: ...}}
 * by reading the whole collection), and calls each(arg, doc) once for every
 * one found (in no particular order; missing ids are skipped), like store_find. */
int store_find_ids(store_t *s, const char *coll, const char *const *ids, size_t n,
                   int (*each)(void *arg, const bson_t *doc), void *arg);

/* BLOCKING. Drops the store's database (tests and tooling only). */
int store_drop_database(store_t *s);

/* BLOCKING. Runs {ping: 1}: 0 when the server answers. */
int store_ping(store_t *s);

/* Starts the health watcher on `loop`: pings on a worker thread at once and
 * then every `interval_ms` (never two at a time), keeps store_healthy()
 * current, logs each transition and sets the gauge mongodb_up in `m` (may be
 * NULL). Returns 0, or HIVE_EINVAL when already started or arguments are
 * bad. */
int store_watch_start(store_t *s, uv_loop_t *loop, unsigned interval_ms, metrics_t *m);

/* True when the last ping succeeded (false before the first one answers).
 * Safe from any thread. */
bool store_healthy(const store_t *s);

/* Stops the watcher: closes its timer, waits for an in-flight ping, then
 * calls done(arg) on the loop. If the watcher was never started, done is
 * called at once. `done` may be NULL. */
void store_watch_stop(store_t *s, void (*done)(void *arg), void *arg);

/* Exposed for tests: how a mongo-c-driver error maps to a HIVE_E* code. */
int store_error_code(const bson_error_t *error);

/* Exposed for tests: HIVE_EREJECTED with a message in `err` when `doc`
 * holds a NaN double at any depth; 0 otherwise. */
int store_check_document(const bson_t *doc, char *err, size_t errlen);

/* Exposed for tests: the name MongoDB gives an index on `keys`
 * ({a: 1, b: -1} -> "a_1_b_-1"). Returns 0, or HIVE_EINVAL when it does not
 * fit in `len` bytes or a key's direction is not a number or a string. */
int store_index_name(const bson_t *keys, char *buf, size_t len);

/* Exposed for tests: builds the document store_cas_revision inserts for
 * revision `revision` of `key` into `out` (initialised by the caller). */
int store_cas_build(const char *key, int64_t revision, const bson_t *doc, bson_t *out);

/* Exposed for tests: the _id of revision `revision` of `key`. Returns 0, or
 * HIVE_EINVAL when it does not fit in `len` bytes. */
int store_revision_id(const char *key, int64_t revision, char *buf, size_t len);

#endif
