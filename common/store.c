#include "store.h"

#include "log.h"

#include <inttypes.h>
#include <math.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_s {
    mongoc_uri_t *uri;
    mongoc_client_pool_t *pool;
    char dbname[64];
    atomic_bool healthy;

    /* Health watcher; these fields are touched on the loop thread only, except
     * ping_result and ping_error, which the worker writes before after_work. */
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    metric_t *up;
    bool watching, ping_in_flight, timer_closed, have_result;
    int ping_result;
    char ping_error[BSON_ERROR_BUFFER_SIZE];
    void (*stop_done)(void *arg);
    void *stop_arg;
};

/* ------------------------------------------------------------ error codes */

static _Thread_local char last_error[BSON_ERROR_BUFFER_SIZE];

const char *store_last_error(void)
{
    return last_error;
}

static int fail(int code, const char *msg)
{
    return hive_err_set(last_error, sizeof(last_error), code, "%s", msg ? msg : hive_strerror(code));
}

static bool in_list(uint32_t code, const uint32_t *codes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (codes[i] == code) {
            return true;
        }
    }
    return false;
}

#define IN(code, list) in_list((code), (list), sizeof(list) / sizeof((list)[0]))

/* Server error codes that mean "the server cannot take this now": network,
 * shutdown, failover. Retrying later may succeed. */
static const uint32_t unavailable_codes[] = {
    6,     /* HostUnreachable */
    7,     /* HostNotFound */
    64,    /* WriteConcernFailed */
    91,    /* ShutdownInProgress */
    189,   /* PrimarySteppedDown */
    9001,  /* SocketException */
    10107, /* NotWritablePrimary */
    11600, /* InterruptedAtShutdown */
    11602, /* InterruptedDueToReplStateChange */
    13435, /* NotPrimaryNoSecondaryOk */
    13436, /* NotPrimaryOrSecondary */
};

/* Server error codes that mean "out of time". */
static const uint32_t timeout_codes[] = {
    50,  /* MaxTimeMSExpired */
    89,  /* NetworkTimeout */
    262, /* ExceededTimeLimit */
};

/* Server error codes that refuse the document or request itself: the same
 * write fails the same way however often it is retried. FerretDB answers 2
 * (BadValue) for "infinity values are not allowed", for a key starting with
 * '$' or holding a '.', and for other invalid values. */
static const uint32_t rejected_codes[] = {
    2,     /* BadValue */
    9,     /* FailedToParse */
    14,    /* TypeMismatch */
    22,    /* InvalidBSON */
    52,    /* DollarPrefixedFieldName */
    55,    /* InvalidDBRef */
    56,    /* EmptyFieldName */
    57,    /* DottedFieldName */
    66,    /* ImmutableField */
    121,   /* DocumentValidationFailure */
    10334, /* BSONObjectTooLarge */
    16837, /* legacy: the update is not valid */
    17280, /* KeyTooLong */
    17419, /* the update would make the document too large */
};

int store_error_code(const bson_error_t *error)
{
    switch (error->domain) {
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
    case MONGOC_ERROR_WRITE_CONCERN:
    case MONGOC_ERROR_CLIENT:
        return HIVE_EUNAVAILABLE;
    case MONGOC_ERROR_BSON:
    case MONGOC_ERROR_COMMAND:
        return HIVE_EREJECTED; /* the driver refuses the document before sending it: too large, bad keys */
    case MONGOC_ERROR_NAMESPACE:
        return HIVE_EINVAL;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_COLLECTION:
        if (error->code == MONGOC_ERROR_DUPLICATE_KEY || error->code == 11001 || error->code == 12582) {
            return HIVE_ECONFLICT;
        }
        if (IN(error->code, unavailable_codes)) {
            return HIVE_EUNAVAILABLE;
        }
        if (IN(error->code, timeout_codes)) {
            return HIVE_ETIMEDOUT;
        }
        if (IN(error->code, rejected_codes)) {
            return HIVE_EREJECTED;
        }
        if (error->code == 73) {
            return HIVE_EINVAL; /* InvalidNamespace */
        }
        return HIVE_ESERVER;
    default:
        return HIVE_ESERVER;
    }
}

static int fail_bson(const bson_error_t *error)
{
    return fail(store_error_code(error), error->message);
}

/* A NaN anywhere in a document: FerretDB 1.24 closes the connection on one
 * instead of answering, which the driver reports as a network error. */
static int check_iter(bson_iter_t *it, char *err, size_t errlen, int depth)
{
    while (bson_iter_next(it)) {
        bson_iter_t child;
        if (BSON_ITER_HOLDS_DOUBLE(it) && isnan(bson_iter_double(it))) {
            return hive_err_set(err, errlen, HIVE_EREJECTED,
                                "invalid value: { \"%s\": NaN } (NaN values are not allowed)",
                                bson_iter_key(it));
        }
        if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) && depth < 100 &&
            bson_iter_recurse(it, &child)) {
            int rc = check_iter(&child, err, errlen, depth + 1);
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

int store_check_document(const bson_t *doc, char *err, size_t errlen)
{
    bson_iter_t it;
    if (!doc || !bson_iter_init(&it, doc)) {
        return 0;
    }
    return check_iter(&it, err, errlen, 0);
}

static int check_doc(const bson_t *doc)
{
    return store_check_document(doc, last_error, sizeof(last_error));
}

/* ------------------------------------------------------ process-wide state */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

/* Routes mongo-c-driver's messages (server selection, topology changes) to
 * our JSON log instead of its own stderr format. */
static void on_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message, void *user_data)
{
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
        log_error("mongoc", "domain", domain, "detail", message);
        break;
    case MONGOC_LOG_LEVEL_WARNING:
        /* FerretDB lacks endSessions, which the driver sends when a pool is
         * destroyed: harmless, so not worth a warning at every shutdown. */
        if (strstr(message, "endSessions")) {
            log_debug("mongoc", "domain", domain, "detail", message);
        } else {
            log_warn("mongoc", "domain", domain, "detail", message);
        }
        break;
    case MONGOC_LOG_LEVEL_MESSAGE:
    case MONGOC_LOG_LEVEL_INFO:
        log_debug("mongoc", "domain", domain, "detail", message);
        break;
    default:
        break; /* debug and trace */
    }
}

static void global_init_once(void)
{
    mongoc_init();
    mongoc_log_set_handler(on_mongoc_log, NULL);
}

void store_global_init(void)
{
    pthread_once(&global_once, global_init_once);
}

void store_global_cleanup(void)
{
    mongoc_cleanup();
}

/* ----------------------------------------------------------- create/destroy */

/* MongoDB database names: 1..63 bytes, none of / \ . " $ space. */
static bool valid_dbname(const char *db)
{
    size_t n = strlen(db);
    return n > 0 && n < 64 && strpbrk(db, "/\\. \"$") == NULL;
}

static bool valid_coll(const char *coll)
{
    return coll && coll[0] && strlen(coll) < 120 && !strchr(coll, '$') && strncmp(coll, "system.", 7) != 0;
}

static void default_option(mongoc_uri_t *uri, const char *option, int32_t value)
{
    if (!mongoc_uri_has_option(uri, option)) {
        mongoc_uri_set_option_as_int32(uri, option, value);
    }
}

store_t *store_create(const char *uri, const char *dbname, char *err, size_t errlen)
{
    bson_error_t error;
    store_global_init();
    if (!uri || !uri[0]) {
        snprintf(err, errlen, "MongoDB URI is empty");
        return NULL;
    }
    store_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->uri = mongoc_uri_new_with_error(uri, &error);
    if (!s->uri) {
        /* The driver's message names the problem; the URI itself may hold a
         * password, so it is not echoed. */
        snprintf(err, errlen, "invalid MongoDB URI: %s", error.message);
        goto fail;
    }
    const char *db = dbname ? dbname : mongoc_uri_get_database(s->uri);
    if (!db) {
        snprintf(err, errlen, "no database name: give one or put it in the URI path (mongodb://host/db)");
        goto fail;
    }
    if (!valid_dbname(db)) {
        snprintf(err, errlen, "invalid database name \"%.64s\": 1 to 63 bytes, none of / \\ . \" $ or space",
                 db);
        goto fail;
    }
    snprintf(s->dbname, sizeof(s->dbname), "%s", db);
    default_option(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, STORE_DEFAULT_SERVER_SELECTION_TIMEOUT_MS);
    default_option(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, STORE_DEFAULT_CONNECT_TIMEOUT_MS);
    default_option(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, STORE_DEFAULT_SOCKET_TIMEOUT_MS);
    s->pool = mongoc_client_pool_new_with_error(s->uri, &error);
    if (!s->pool) {
        snprintf(err, errlen, "cannot create MongoDB client pool: %s", error.message);
        goto fail;
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    atomic_init(&s->healthy, false);
    return s;
fail:
    store_destroy(s);
    return NULL;
}

void store_destroy(store_t *s)
{
    if (!s) {
        return;
    }
    if (s->pool) {
        mongoc_client_pool_destroy(s->pool);
    }
    mongoc_uri_destroy(s->uri);
    free(s);
}

void store_info(const store_t *s, store_info_t *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->dbname, sizeof(out->dbname), "%s", s->dbname);
    out->server_selection_timeout_ms =
        mongoc_uri_get_option_as_int32(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0);
    out->connect_timeout_ms = mongoc_uri_get_option_as_int32(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, 0);
    out->socket_timeout_ms = mongoc_uri_get_option_as_int32(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, 0);
}

/* -------------------------------------------------------------- operations */

/* A client popped from the pool and one collection of the store's database;
 * released together by op_end. */
typedef struct {
    store_t *s;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} op_t;

static int op_begin(op_t *op, store_t *s, const char *coll)
{
    if (!s || !valid_coll(coll)) {
        return fail(HIVE_EINVAL, "invalid store or collection name");
    }
    op->s = s;
    op->client = mongoc_client_pool_pop(s->pool);
    if (!op->client) {
        return fail(HIVE_EUNAVAILABLE, "no client available in the pool");
    }
    op->coll = mongoc_client_get_collection(op->client, s->dbname, coll);
    if (!op->coll) {
        mongoc_client_pool_push(s->pool, op->client);
        return fail(HIVE_ENOMEM, NULL);
    }
    return 0;
}

static void op_end(op_t *op)
{
    mongoc_collection_destroy(op->coll);
    mongoc_client_pool_push(op->s->pool, op->client);
}

/* Runs a find and hands each document to `each`. */
static int run_find(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts,
                    int (*each)(void *arg, const bson_t *doc), void *arg)
{
    bson_t empty = BSON_INITIALIZER;
    bson_error_t error;
    const bson_t *doc;
    int rc = 0;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter ? filter : &empty, opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        rc = each(arg, doc);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && mongoc_cursor_error(cur, &error)) {
        rc = fail_bson(&error);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&empty);
    return rc;
}

/* `each` for the single-document reads: keeps a copy of the first match. */
static int keep_first(void *arg, const bson_t *doc)
{
    bson_t **out = arg;
    *out = bson_copy(doc);
    return *out ? 1 : HIVE_ENOMEM;
}

/* Reads one document matching `filter` into *out_doc; ENOTFOUND if none. */
static int find_first(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts, bson_t **out_doc)
{
    bson_t *doc = NULL;
    int rc = run_find(coll, filter, opts, keep_first, &doc);
    if (rc < 0) {
        return rc;
    }
    if (!doc) {
        return fail(HIVE_ENOTFOUND, NULL);
    }
    *out_doc = doc;
    return 0;
}

static bool id_exists(mongoc_collection_t *coll, const char *id, int *out_rc)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "_id", 1);
    bson_append_document_end(&opts, &proj);
    BSON_APPEND_INT64(&opts, "limit", 1);
    bson_t *doc = NULL;
    int rc = find_first(coll, &filter, &opts, &doc);
    bson_destroy(doc);
    bson_destroy(&filter);
    bson_destroy(&opts);
    *out_rc = rc == HIVE_ENOTFOUND ? 0 : rc;
    return rc == 0;
}

/* `doc` with _id `id` in front and any _id of its own dropped. */
static void with_id(const char *id, const bson_t *doc, bson_t *out)
{
    bson_init(out);
    BSON_APPEND_UTF8(out, "_id", id);
    if (doc) {
        bson_copy_to_excluding_noinit(doc, out, "_id", NULL);
    }
}

int store_insert_once(store_t *s, const char *coll, const char *id, const bson_t *doc, bool *out_inserted)
{
    if (!id || !id[0]) {
        return fail(HIVE_EINVAL, "empty _id");
    }
    if (check_doc(doc)) {
        return HIVE_EREJECTED;
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    bson_t full;
    bson_error_t error;
    with_id(id, doc, &full);
    bool inserted = mongoc_collection_insert_one(op.coll, &full, NULL, NULL, &error);
    if (!inserted) {
        rc = fail_bson(&error);
        /* A duplicate key is the replay we expect, unless a unique index on
         * another field refused a new _id: then it is a real conflict. */
        if (rc == HIVE_ECONFLICT) {
            int erc;
            if (id_exists(op.coll, id, &erc)) {
                rc = 0;
            } else if (erc) {
                rc = erc;
            }
        }
    }
    bson_destroy(&full);
    op_end(&op);
    if (rc == 0 && out_inserted) {
        *out_inserted = inserted;
    }
    return rc;
}

/* Replaces or inserts one document by _id. Two upserts of a new _id can both
 * decide to insert; the loser sees a duplicate key and its second try
 * replaces (MongoDB documents the same retry for concurrent upserts). */
static int upsert_one(mongoc_collection_t *coll, const char *id, const bson_t *doc)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, full;
    bson_error_t error;
    int rc = 0;
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    with_id(id, doc, &full);
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = 0;
        if (!mongoc_collection_replace_one(coll, &filter, &full, &opts, NULL, &error)) {
            rc = fail_bson(&error);
        }
        if (rc != HIVE_ECONFLICT) {
            break;
        }
    }
    bson_destroy(&full);
    bson_destroy(&opts);
    bson_destroy(&filter);
    return rc;
}

int store_upsert(store_t *s, const char *coll, const char *id, const bson_t *doc)
{
    if (!id || !id[0]) {
        return fail(HIVE_EINVAL, "empty _id");
    }
    if (check_doc(doc)) {
        return HIVE_EREJECTED;
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    rc = upsert_one(op.coll, id, doc);
    op_end(&op);
    return rc;
}

int store_revision_id(const char *key, int64_t revision, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s@%" PRId64, key, revision);
    return n < 0 || (size_t)n >= len ? HIVE_EINVAL : 0;
}

int store_cas_build(const char *key, int64_t revision, const bson_t *doc, bson_t *out)
{
    char id[512];
    if (!key || !key[0] || revision < 1 || store_revision_id(key, revision, id, sizeof(id)) != 0) {
        return HIVE_EINVAL;
    }
    BSON_APPEND_UTF8(out, "_id", id);
    BSON_APPEND_UTF8(out, "key", key);
    BSON_APPEND_INT64(out, "revision", revision);
    if (doc) {
        bson_copy_to_excluding_noinit(doc, out, "_id", "key", "revision", NULL);
    }
    return 0;
}

/* Why an insert and not a conditional update: on MongoDB an update filtered
 * on {revision: expected} is atomic, but FerretDB runs it as a read followed
 * by a write by _id, so two writers can both "match". Inserting revision n+1
 * under the unique _id "<key>@<n+1>" is atomic on both: exactly one insert
 * wins. Checking first that revision n exists keeps the revisions of a key
 * contiguous (1, 2, 3 ...), so "n exists and n+1 does not" is the same as
 * "the current revision is n". */
int store_cas_revision(store_t *s, const char *coll, const char *key, int64_t expected_revision,
                       const bson_t *doc, int64_t *out_new_revision)
{
    if (expected_revision < 0 || expected_revision == INT64_MAX) {
        return fail(HIVE_EINVAL, "expected revision out of range");
    }
    if (check_doc(doc)) {
        return HIVE_EREJECTED;
    }
    bson_t full = BSON_INITIALIZER;
    if (store_cas_build(key, expected_revision + 1, doc, &full) != 0) {
        bson_destroy(&full);
        return fail(HIVE_EINVAL, "empty or too long key");
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        bson_destroy(&full);
        return rc;
    }
    if (expected_revision > 0) {
        char prev[512];
        store_revision_id(key, expected_revision, prev, sizeof(prev));
        if (!id_exists(op.coll, prev, &rc) && rc == 0) {
            rc = fail(HIVE_ECONFLICT, "expected revision does not exist");
        }
    }
    bson_error_t error;
    if (rc == 0 && !mongoc_collection_insert_one(op.coll, &full, NULL, NULL, &error)) {
        rc = fail_bson(&error);
    }
    bson_destroy(&full);
    op_end(&op);
    if (rc == 0 && out_new_revision) {
        *out_new_revision = expected_revision + 1;
    }
    return rc;
}

int store_find_latest(store_t *s, const char *coll, const char *key, bson_t **out_doc, int64_t *out_revision)
{
    if (!key || !key[0]) {
        return fail(HIVE_EINVAL, "empty key");
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    BSON_APPEND_UTF8(&filter, "key", key);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "revision", -1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", 1);
    bson_t *doc = NULL;
    rc = find_first(op.coll, &filter, &opts, &doc);
    bson_destroy(&filter);
    bson_destroy(&opts);
    op_end(&op);
    if (rc) {
        return rc;
    }
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "revision") || !BSON_ITER_HOLDS_NUMBER(&it)) {
        bson_destroy(doc);
        return fail(HIVE_EPROTO, "latest revision document has no numeric revision");
    }
    if (out_revision) {
        *out_revision = bson_iter_as_int64(&it);
    }
    if (out_doc) {
        *out_doc = doc;
    } else {
        bson_destroy(doc);
    }
    return 0;
}

int store_find_one(store_t *s, const char *coll, const char *id, bson_t **out_doc)
{
    if (!id || !id[0] || !out_doc) {
        return fail(HIVE_EINVAL, "empty _id or no output");
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_INT64(&opts, "limit", 1);
    rc = find_first(op.coll, &filter, &opts, out_doc);
    bson_destroy(&filter);
    bson_destroy(&opts);
    op_end(&op);
    return rc;
}

int store_find(store_t *s, const char *coll, const bson_t *filter, const bson_t *opts,
               int (*each)(void *arg, const bson_t *doc), void *arg)
{
    if (!each) {
        return fail(HIVE_EINVAL, "no callback");
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    rc = run_find(op.coll, filter, opts, each, arg);
    op_end(&op);
    return rc;
}

int store_create_index(store_t *s, const char *coll, const char *name, const bson_t *keys, bool unique)
{
    if (!name || !name[0] || !keys || bson_empty(keys)) {
        return fail(HIVE_EINVAL, "index needs a name and keys");
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    bson_t cmd = BSON_INITIALIZER, indexes, index;
    bson_error_t error;
    BSON_APPEND_UTF8(&cmd, "createIndexes", mongoc_collection_get_name(op.coll));
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
    BSON_APPEND_DOCUMENT(&index, "key", keys);
    BSON_APPEND_UTF8(&index, "name", name);
    if (unique) {
        BSON_APPEND_BOOL(&index, "unique", true);
    }
    bson_append_document_end(&indexes, &index);
    bson_append_array_end(&cmd, &indexes);
    if (!mongoc_collection_write_command_with_opts(op.coll, &cmd, NULL, NULL, &error)) {
        rc = fail_bson(&error);
    }
    bson_destroy(&cmd);
    op_end(&op);
    return rc;
}

int store_index_name(const bson_t *keys, char *buf, size_t len)
{
    bson_iter_t it;
    size_t used = 0;
    if (!keys || !bson_iter_init(&it, keys) || len == 0) {
        return HIVE_EINVAL;
    }
    buf[0] = '\0';
    while (bson_iter_next(&it)) {
        char dir[64];
        if (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it)) {
            snprintf(dir, sizeof(dir), "%" PRId64, bson_iter_as_int64(&it));
        } else if (BSON_ITER_HOLDS_DOUBLE(&it)) {
            snprintf(dir, sizeof(dir), "%g", bson_iter_double(&it));
        } else if (BSON_ITER_HOLDS_UTF8(&it)) {
            snprintf(dir, sizeof(dir), "%s", bson_iter_utf8(&it, NULL));
        } else {
            return HIVE_EINVAL;
        }
        int n = snprintf(buf + used, len - used, "%s%s_%s", used ? "_" : "", bson_iter_key(&it), dir);
        if (n < 0 || (size_t)n >= len - used) {
            return HIVE_EINVAL;
        }
        used += (size_t)n;
    }
    return used ? 0 : HIVE_EINVAL;
}

int store_ensure_indexes(store_t *s, const store_index_t *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bson_error_t error;
        char name[128];
        int rc;
        bson_t *keys = table[i].keys ? bson_new_from_json((const uint8_t *)table[i].keys, -1, &error) : NULL;
        if (!keys) {
            return hive_err_set(
                last_error, sizeof(last_error), HIVE_EINVAL, "index keys %s of %s do not parse: %s",
                table[i].keys ? table[i].keys : "(null)", table[i].coll ? table[i].coll : "(null)",
                table[i].keys ? error.message : "no keys");
        }
        rc = store_index_name(keys, name, sizeof(name));
        if (rc == 0) {
            rc = store_create_index(s, table[i].coll, name, keys, table[i].unique);
        } else {
            fail(rc, "index keys are not {field: direction, ...} or too long");
        }
        bson_destroy(keys);
        if (rc) {
            char why[sizeof(last_error)];
            snprintf(why, sizeof(why), "%s", last_error);
            return hive_err_set(last_error, sizeof(last_error), rc, "index %s on %s: %s", table[i].keys,
                                table[i].coll ? table[i].coll : "(null)", why);
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- batches */

static int find_ids(mongoc_collection_t *coll, const char *const *ids, size_t n, bool ids_only,
                    int (*each)(void *arg, const bson_t *doc), void *arg);

static void result_set(store_result_t *r, int status, const char *msg)
{
    r->status = hive_err_set(r->message, sizeof(r->message), status, "%s", msg ? msg : hive_strerror(status));
}

/* Clears out[0..n) and settles the documents that cannot be sent (no _id, a
 * NaN). Returns how many are left to send. */
static size_t batch_begin(const store_doc_t *docs, size_t n, store_result_t *out)
{
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if (!docs[i].id || !docs[i].id[0]) {
            result_set(&out[i], HIVE_EINVAL, "empty _id");
        } else {
            out[i].status = store_check_document(docs[i].doc, out[i].message, sizeof(out[i].message));
        }
        left += out[i].status == 0;
    }
    return left;
}

/* The reply's writeErrors array, if it has at least one element. */
static bool write_errors(const bson_t *reply, bson_iter_t *out_array)
{
    bson_iter_t it, probe;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, out_array)) {
        return false;
    }
    probe = *out_array;
    return bson_iter_next(&probe);
}

/* After a bulk execute failed: the code of a failure of the whole batch
 * (connection, timeout, server selection, write concern), recorded in
 * store_last_error(); 0 when the server answered with errors of single
 * documents only. */
static int batch_failure(const bson_error_t *error, const bson_t *reply)
{
    bson_iter_t arr;
    int code = store_error_code(error);
    if (hive_err_transient(code) || !write_errors(reply, &arr)) {
        return fail(code, error->message);
    }
    return 0;
}

/* One element of writeErrors: the position of the document in the batch,
 * the server's code and message. False when the element is not that. */
static bool write_error_next(bson_iter_t *arr, uint32_t *out_index, uint32_t *out_code, const char **out_msg)
{
    bson_iter_t el, f;
    while (bson_iter_next(arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(arr) || !bson_iter_recurse(arr, &el)) {
            continue;
        }
        *out_index = UINT32_MAX;
        *out_code = 0;
        *out_msg = "refused by the server";
        while (bson_iter_next(&el)) {
            const char *k = bson_iter_key(&el);
            if (strcmp(k, "index") == 0 && BSON_ITER_HOLDS_NUMBER(&el)) {
                int64_t v = bson_iter_as_int64(&el);
                *out_index = v >= 0 && v < UINT32_MAX ? (uint32_t)v : UINT32_MAX;
            } else if (strcmp(k, "code") == 0 && BSON_ITER_HOLDS_NUMBER(&el)) {
                *out_code = (uint32_t)bson_iter_as_int64(&el);
            } else if (strcmp(k, "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&el)) {
                f = el;
                *out_msg = bson_iter_utf8(&f, NULL);
            }
        }
        return true;
    }
    return false;
}

/* The HIVE_E* code of a server error code met in a reply. */
static int server_code(uint32_t code)
{
    bson_error_t e = {.domain = MONGOC_ERROR_SERVER, .code = code};
    return store_error_code(&e);
}

/* The update statements of one command. FerretDB 1.24 leaves the query of
 * each statement that matched a document open (its backend connection held)
 * until the command ends; once the backend's pool is used up (100
 * connections on SQLite, 50 on PostgreSQL) the command waits for a
 * connection for ever, and so does every later command on that database. So
 * a bulk upsert goes to the server UPSERT_CHUNK statements at a time. */
#define UPSERT_CHUNK 8

/* One unordered bulk of replace-or-insert by _id for docs[0..n), n <= UPSERT_CHUNK. */
static int bulk_upsert_chunk(op_t *o, const store_doc_t *docs, size_t n, store_result_t *out)
{
    int rc = 0;
    bson_t bopts = BSON_INITIALIZER, uopts = BSON_INITIALIZER, reply;
    bson_error_t error;
    size_t appended = 0;
    BSON_APPEND_BOOL(&bopts, "ordered", false);
    BSON_APPEND_BOOL(&uopts, "upsert", true);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(o->coll, &bopts);
    for (size_t i = 0; i < n; i++) {
        if (out[i].status != 0) {
            continue;
        }
        bson_t filter = BSON_INITIALIZER, full;
        BSON_APPEND_UTF8(&filter, "_id", docs[i].id);
        with_id(docs[i].id, docs[i].doc, &full);
        if (mongoc_bulk_operation_replace_one_with_opts(bulk, &filter, &full, &uopts, &error)) {
            appended++;
        } else {
            result_set(&out[i], store_error_code(&error), error.message);
        }
        bson_destroy(&full);
        bson_destroy(&filter);
    }
    if (appended > 0 && !mongoc_bulk_operation_execute(bulk, &reply, &error)) {
        rc = batch_failure(&error, &reply);
        /* Some document was refused. FerretDB stops an unordered update batch
         * at the first refused document and reports it at index 0, so the
         * reply cannot say which: replay the batch one document at a time
         * (idempotent), which gives each its own answer. */
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (out[i].status != 0) {
                continue;
            }
            int one = upsert_one(o->coll, docs[i].id, docs[i].doc);
            if (hive_err_transient(one)) {
                rc = one;
            } else if (one != 0) {
                result_set(&out[i], one, last_error);
            }
        }
        bson_destroy(&reply);
    } else if (appended > 0) {
        bson_destroy(&reply);
    }
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&uopts);
    bson_destroy(&bopts);
    return rc;
}

int store_bulk_upsert(store_t *s, const char *coll, const store_doc_t *docs, size_t n, store_result_t *out)
{
    if (n > 0 && (!docs || !out)) {
        return fail(HIVE_EINVAL, "no documents or no results");
    }
    if (batch_begin(docs, n, out) == 0) {
        return 0;
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    for (size_t at = 0; rc == 0 && at < n; at += UPSERT_CHUNK) {
        rc = bulk_upsert_chunk(&op, docs + at, n - at < UPSERT_CHUNK ? n - at : UPSERT_CHUNK, out + at);
    }
    op_end(&op);
    return rc;
}

/* The items of a batch that met a duplicate key, sorted by _id, so that a
 * returned _id finds its items. */
typedef struct {
    const char *id;
    store_result_t *r;
} dup_t;

typedef struct {
    dup_t *v;
    size_t n;
} dups_t;

static int cmp_dup(const void *a, const void *b)
{
    return strcmp(((const dup_t *)a)->id, ((const dup_t *)b)->id);
}

/* `each` of the existence check: the document exists, so its items were
 * replays, not conflicts. */
static int mark_existing(void *arg, const bson_t *doc)
{
    dups_t *d = arg;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it)) {
        return 0;
    }
    dup_t key = {bson_iter_utf8(&it, NULL), NULL};
    dup_t *hit = bsearch(&key, d->v, d->n, sizeof(dup_t), cmp_dup);
    if (!hit) {
        return 0;
    }
    while (hit > d->v && strcmp(hit[-1].id, key.id) == 0) {
        hit--; /* a batch may name one _id twice */
    }
    for (; hit < d->v + d->n && strcmp(hit->id, key.id) == 0; hit++) {
        hit->r->status = 0;
        hit->r->message[0] = '\0';
    }
    return 0;
}

int store_bulk_insert_once(store_t *s, const char *coll, const store_doc_t *docs, size_t n,
                           store_result_t *out)
{
    if (n > 0 && (!docs || !out)) {
        return fail(HIVE_EINVAL, "no documents or no results");
    }
    size_t left = batch_begin(docs, n, out);
    if (left == 0) {
        return 0;
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    size_t *pos = malloc(left * sizeof(*pos)); /* position in the bulk -> item */
    if (!pos) {
        op_end(&op);
        return fail(HIVE_ENOMEM, NULL);
    }
    bson_t bopts = BSON_INITIALIZER, reply = BSON_INITIALIZER;
    bson_error_t error;
    size_t appended = 0, dups = 0;
    BSON_APPEND_BOOL(&bopts, "ordered", false);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(op.coll, &bopts);
    for (size_t i = 0; i < n; i++) {
        if (out[i].status != 0) {
            continue;
        }
        bson_t full;
        with_id(docs[i].id, docs[i].doc, &full);
        if (mongoc_bulk_operation_insert_with_opts(bulk, &full, NULL, &error)) {
            pos[appended++] = i;
            out[i].inserted = true;
        } else {
            result_set(&out[i], store_error_code(&error), error.message);
        }
        bson_destroy(&full);
    }
    bson_destroy(&reply);
    if (appended > 0 && !mongoc_bulk_operation_execute(bulk, &reply, &error)) {
        bson_iter_t arr;
        rc = batch_failure(&error, &reply);
        if (rc == 0 && write_errors(&reply, &arr)) {
            uint32_t index, code;
            const char *msg;
            while (rc == 0 && write_error_next(&arr, &index, &code, &msg)) {
                if (index >= appended) {
                    rc = fail(HIVE_EPROTO, "a write error names no document of the batch");
                    break;
                }
                store_result_t *r = &out[pos[index]];
                int status = server_code(code);
                r->inserted = false;
                if (hive_err_transient(status)) {
                    rc = fail(status, msg);
                } else {
                    result_set(r, status, msg);
                    dups += status == HIVE_ECONFLICT;
                }
            }
        }
        bson_destroy(&reply);
    } else if (appended > 0) {
        bson_destroy(&reply);
    }
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&bopts);
    free(pos);

    /* A duplicate key is the replay we expect, unless a unique index on
     * another field refused a new _id: one read of those _ids tells. */
    if (rc == 0 && dups > 0) {
        dups_t d = {malloc(dups * sizeof(dup_t)), 0};
        const char **ids = malloc(dups * sizeof(*ids));
        if (!d.v || !ids) {
            rc = fail(HIVE_ENOMEM, NULL);
        } else {
            for (size_t i = 0; i < n; i++) {
                if (out[i].status == HIVE_ECONFLICT) {
                    ids[d.n] = docs[i].id;
                    d.v[d.n++] = (dup_t){docs[i].id, &out[i]};
                }
            }
            qsort(d.v, d.n, sizeof(dup_t), cmp_dup);
            rc = find_ids(op.coll, ids, d.n, true, mark_existing, &d);
        }
        free(ids);
        free(d.v);
    }
    op_end(&op);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads each distinct id of ids[0..n) with its own {_id: id} query (only _id
 * when `ids_only`) and hands each document found to `each`. One query per id,
 * not one {_id: {$in: ids}}: FerretDB 1.24 pushes down to its backend only
 * top-level equalities, so an $in reads the whole collection. */
static int find_ids(mongoc_collection_t *coll, const char *const *ids, size_t n, bool ids_only,
                    int (*each)(void *arg, const bson_t *doc), void *arg)
{
    const char **sorted = malloc(n * sizeof(*sorted));
    if (!sorted) {
        return fail(HIVE_ENOMEM, NULL);
    }
    memcpy(sorted, ids, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    bson_t opts = BSON_INITIALIZER, proj;
    BSON_APPEND_INT64(&opts, "limit", 1);
    if (ids_only) {
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, "_id", 1);
        bson_append_document_end(&opts, &proj);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0) {
            continue;
        }
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&filter, "_id", sorted[i]);
        rc = run_find(coll, &filter, &opts, each, arg);
        bson_destroy(&filter);
    }
    bson_destroy(&opts);
    free(sorted);
    return rc;
}

int store_find_ids(store_t *s, const char *coll, const char *const *ids, size_t n,
                   int (*each)(void *arg, const bson_t *doc), void *arg)
{
    if (!each || (n > 0 && !ids) || n > UINT32_MAX) {
        return fail(HIVE_EINVAL, "no callback or no ids");
    }
    for (size_t i = 0; i < n; i++) {
        if (!ids[i] || !ids[i][0]) {
            return fail(HIVE_EINVAL, "empty _id");
        }
    }
    if (n == 0) {
        return 0;
    }
    op_t op = {0};
    int rc = op_begin(&op, s, coll);
    if (rc) {
        return rc;
    }
    rc = find_ids(op.coll, ids, n, false, each, arg);
    op_end(&op);
    return rc;
}

int store_drop_database(store_t *s)
{
    if (!s) {
        return fail(HIVE_EINVAL, NULL);
    }
    bson_error_t error;
    int rc = 0;
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(client, s->dbname);
    if (!mongoc_database_drop_with_opts(db, NULL, &error)) {
        rc = fail_bson(&error);
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, client);
    return rc;
}

int store_ping(store_t *s)
{
    if (!s) {
        return fail(HIVE_EINVAL, NULL);
    }
    bson_t cmd = BSON_INITIALIZER;
    bson_error_t error;
    int rc = 0;
    BSON_APPEND_INT32(&cmd, "ping", 1);
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    if (!mongoc_client_command_simple(client, "admin", &cmd, NULL, NULL, &error)) {
        rc = fail_bson(&error);
    }
    mongoc_client_pool_push(s->pool, client);
    bson_destroy(&cmd);
    return rc;
}

/* ---------------------------------------------------------- health watcher */

static void ping_work(uv_work_t *w)
{
    store_t *s = w->data;
    s->ping_result = store_ping(s);
    snprintf(s->ping_error, sizeof(s->ping_error), "%s", s->ping_result ? store_last_error() : "");
}

static void maybe_stopped(store_t *s)
{
    if (!s->timer_closed || s->ping_in_flight) {
        return;
    }
    s->watching = false;
    if (s->stop_done) {
        void (*done)(void *) = s->stop_done;
        s->stop_done = NULL;
        done(s->stop_arg);
    }
}

static void ping_done(uv_work_t *w, int status)
{
    store_t *s = w->data;
    s->ping_in_flight = false;
    if (status == 0) {
        bool up = s->ping_result == 0;
        bool was = atomic_exchange(&s->healthy, up);
        if (!s->have_result || was != up) {
            if (up) {
                log_info("mongodb reachable", "db", s->dbname);
            } else {
                log_warn("mongodb unreachable", "db", s->dbname, "error", s->ping_error);
            }
        }
        s->have_result = true;
        if (s->up) {
            metric_set(s->up, up ? 1.0 : 0.0);
        }
    }
    maybe_stopped(s);
}

static void on_tick(uv_timer_t *t)
{
    store_t *s = t->data;
    if (s->ping_in_flight) {
        return; /* a ping that waits on server selection outlasts a short interval */
    }
    s->work.data = s;
    if (uv_queue_work(s->loop, &s->work, ping_work, ping_done) == 0) {
        s->ping_in_flight = true;
    }
}

int store_watch_start(store_t *s, uv_loop_t *loop, unsigned interval_ms, metrics_t *m)
{
    if (!s || !loop || interval_ms == 0 || s->watching) {
        return HIVE_EINVAL;
    }
    s->loop = loop;
    s->up = m ? metrics_gauge(m, "mongodb_up", "1 when the last MongoDB ping succeeded, 0 otherwise", NULL)
              : NULL;
    if (s->up) {
        metric_set(s->up, 0.0);
    }
    if (uv_timer_init(loop, &s->timer) != 0) {
        return HIVE_EINVAL;
    }
    s->timer.data = s;
    s->watching = true;
    s->timer_closed = false;
    s->have_result = false;
    uv_timer_start(&s->timer, on_tick, 0, interval_ms);
    return 0;
}

bool store_healthy(const store_t *s)
{
    return s && atomic_load(&((store_t *)s)->healthy);
}

static void on_timer_closed(uv_handle_t *h)
{
    store_t *s = h->data;
    s->timer_closed = true;
    maybe_stopped(s);
}

void store_watch_stop(store_t *s, void (*done)(void *arg), void *arg)
{
    if (!s || !s->watching) {
        if (done) {
            done(arg);
        }
        return;
    }
    s->stop_done = done;
    s->stop_arg = arg;
    if (!uv_is_closing((uv_handle_t *)&s->timer)) {
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
    if (s->ping_in_flight) {
        uv_cancel((uv_req_t *)&s->work); /* fails harmlessly once the ping runs */
    }
}
