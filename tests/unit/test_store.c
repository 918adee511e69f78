/* Unit tests of common/store: no server. Nothing here reaches a network:
 * store_create never connects, and the calls tested fail before they would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <mongoc/mongoc.h>
#include <string.h>

#include "log.h"
#include "store.h"

static void test_create_rejects_bad_uris(void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {"", "http://127.0.0.1:27017/db", "mongodb://", "mongodb://host:notaport/db"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        store_t *s = store_create(bad[i], "db", err, sizeof(err));
        if (s) {
            fail_msg("URI \"%s\": expected NULL, got a store", bad[i]);
        }
        if (!err[0]) {
            fail_msg("URI \"%s\": expected an error message, got none", bad[i]);
        }
    }
    assert_null(store_create(NULL, "db", err, sizeof(err)));
}

static void test_create_needs_a_valid_database_name(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(store_create("mongodb://127.0.0.1:27017", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "no database name"));
    const char *bad[] = {"a.b", "a b", "a$b",
                         "a/b", "",    "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        store_t *s = store_create("mongodb://127.0.0.1:27017", bad[i], err, sizeof(err));
        if (s) {
            fail_msg("database \"%s\": expected NULL, got a store", bad[i]);
        }
        assert_non_null(strstr(err, "invalid database name"));
    }
}

/* A good URI gives a store without connecting (port 1 has no server), with
 * the short default timeouts appended and the URI's own values kept. */
static void test_create_applies_default_timeouts(void **state)
{
    (void)state;
    char err[256] = "";
    store_info_t info;
    store_t *s = store_create("mongodb://127.0.0.1:1/optimizer_agents", NULL, err, sizeof(err));
    assert_non_null(s);
    store_info(s, &info);
    assert_string_equal(info.dbname, "optimizer_agents");
    assert_int_equal(info.server_selection_timeout_ms, STORE_DEFAULT_SERVER_SELECTION_TIMEOUT_MS);
    assert_int_equal(info.connect_timeout_ms, STORE_DEFAULT_CONNECT_TIMEOUT_MS);
    assert_int_equal(info.socket_timeout_ms, STORE_DEFAULT_SOCKET_TIMEOUT_MS);
    assert_false(store_healthy(s));
    store_destroy(s);

    s = store_create("mongodb://127.0.0.1:1/fromuri?serverSelectionTimeoutMS=500&socketTimeoutMS=700",
                     "explicit", err, sizeof(err));
    assert_non_null(s);
    store_info(s, &info);
    assert_string_equal(info.dbname, "explicit");
    assert_int_equal(info.server_selection_timeout_ms, 500);
    assert_int_equal(info.connect_timeout_ms, STORE_DEFAULT_CONNECT_TIMEOUT_MS);
    assert_int_equal(info.socket_timeout_ms, 700);
    store_destroy(s);
    store_destroy(NULL);
}

/* Bad arguments fail with HIVE_EINVAL before any I/O. */
static void test_invalid_arguments_fail_before_io(void **state)
{
    (void)state;
    char err[256];
    store_t *s = store_create("mongodb://127.0.0.1:1/db", NULL, err, sizeof(err));
    assert_non_null(s);
    bson_t doc = BSON_INITIALIZER;
    bson_t *out = NULL;
    bool inserted = true;
    assert_int_equal(store_insert_once(s, "a$b", "id", &doc, &inserted), HIVE_EINVAL);
    assert_true(inserted); /* untouched on failure */
    assert_int_equal(store_insert_once(s, "system.users", "id", &doc, NULL), HIVE_EINVAL);
    assert_int_equal(store_insert_once(s, "c", "", &doc, NULL), HIVE_EINVAL);
    assert_int_equal(store_upsert(s, "", "id", &doc), HIVE_EINVAL);
    assert_int_equal(store_cas_revision(s, "c", "k", -1, &doc, NULL), HIVE_EINVAL);
    assert_int_equal(store_cas_revision(s, "c", "", 0, &doc, NULL), HIVE_EINVAL);
    assert_int_equal(store_find_one(s, "c", NULL, &out), HIVE_EINVAL);
    assert_null(out);
    assert_int_equal(store_find_latest(s, "c", "", &out, NULL), HIVE_EINVAL);
    assert_int_equal(store_find(s, "c", NULL, NULL, NULL, NULL), HIVE_EINVAL);
    assert_int_equal(store_create_index(s, "c", "i", &doc, false), HIVE_EINVAL); /* no keys */
    assert_true(strlen(store_last_error()) > 0);
    bson_destroy(&doc);
    store_destroy(s);
}

/* Every class of driver and server error maps to its code: transient ones
 * (retry later) apart from the ones that refuse this document for good. */
static void test_driver_errors_map_to_codes(void **state)
{
    (void)state;
    struct {
        uint32_t domain, code;
        int want;
    } cases[] = {
        /* transient: connection, server selection, failover, time */
        {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE, HIVE_EUNAVAILABLE},
        {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, HIVE_EUNAVAILABLE},
        {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, HIVE_EUNAVAILABLE},
        {MONGOC_ERROR_WRITE_CONCERN, 64, HIVE_EUNAVAILABLE},
        {MONGOC_ERROR_SERVER, 91, HIVE_EUNAVAILABLE},    /* ShutdownInProgress */
        {MONGOC_ERROR_SERVER, 10107, HIVE_EUNAVAILABLE}, /* NotWritablePrimary */
        {MONGOC_ERROR_SERVER, 13435, HIVE_EUNAVAILABLE}, /* NotPrimaryNoSecondaryOk */
        {MONGOC_ERROR_SERVER, 189, HIVE_EUNAVAILABLE},   /* PrimarySteppedDown */
        {MONGOC_ERROR_SERVER, 50, HIVE_ETIMEDOUT},       /* MaxTimeMSExpired */
        {MONGOC_ERROR_SERVER, 89, HIVE_ETIMEDOUT},       /* NetworkTimeout */
        {MONGOC_ERROR_SERVER, 262, HIVE_ETIMEDOUT},      /* ExceededTimeLimit */
        {MONGOC_ERROR_SERVER, 13, HIVE_ESERVER},         /* Unauthorized: retried, not dead-lettered */
        {MONGOC_ERROR_SERVER, 1, HIVE_ESERVER},          /* InternalError */
        /* permanent for the document */
        {MONGOC_ERROR_SERVER, 2, HIVE_EREJECTED}, /* BadValue: FerretDB's "infinity values are not allowed" */
        {MONGOC_ERROR_SERVER, 121, HIVE_EREJECTED},                     /* DocumentValidationFailure */
        {MONGOC_ERROR_SERVER, 10334, HIVE_EREJECTED},                   /* BSONObjectTooLarge */
        {MONGOC_ERROR_SERVER, 17419, HIVE_EREJECTED},                   /* the update makes it too large */
        {MONGOC_ERROR_SERVER, 52, HIVE_EREJECTED},                      /* DollarPrefixedFieldName */
        {MONGOC_ERROR_SERVER, 57, HIVE_EREJECTED},                      /* DottedFieldName */
        {MONGOC_ERROR_SERVER, 56, HIVE_EREJECTED},                      /* EmptyFieldName */
        {MONGOC_ERROR_SERVER, 9, HIVE_EREJECTED},                       /* FailedToParse */
        {MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID, HIVE_EREJECTED}, /* too large for the driver */
        {MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG,
         HIVE_EREJECTED}, /* keys the driver refuses */
        /* duplicate key, bad namespace */
        {MONGOC_ERROR_SERVER, 11000, HIVE_ECONFLICT},
        {MONGOC_ERROR_SERVER, 11001, HIVE_ECONFLICT},
        {MONGOC_ERROR_COLLECTION, 11000, HIVE_ECONFLICT},
        {MONGOC_ERROR_SERVER, 73, HIVE_EINVAL}, /* InvalidNamespace */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e = {.domain = cases[i].domain, .code = cases[i].code};
        int got = store_error_code(&e);
        if (got != cases[i].want) {
            fail_msg("domain %u code %u: expected %s, got %s", cases[i].domain, cases[i].code,
                     hive_errname(cases[i].want), hive_errname(got));
        }
    }
    /* The classes the consumers act on. */
    bson_error_t down = {.domain = MONGOC_ERROR_STREAM, .code = MONGOC_ERROR_STREAM_SOCKET};
    bson_error_t bad = {.domain = MONGOC_ERROR_SERVER, .code = 2};
    assert_true(hive_err_transient(store_error_code(&down)));
    assert_false(hive_err_transient(store_error_code(&bad)));
}

/* A NaN at any depth is refused before it is sent (FerretDB would drop the
 * connection); infinities and ordinary values pass to the server. */
static void test_check_document(void **state)
{
    (void)state;
    char err[200] = "";
    bson_t *ok = BCON_NEW("a", BCON_DOUBLE(1.5), "b", "{", "c", BCON_DOUBLE(INFINITY), "}");
    bson_t *top = BCON_NEW("latency", BCON_DOUBLE(NAN));
    bson_t *deep = BCON_NEW("m", "{", "x", "[", BCON_DOUBLE(1.0), BCON_DOUBLE(NAN), "]", "}");
    assert_int_equal(store_check_document(ok, err, sizeof(err)), 0);
    assert_int_equal(store_check_document(NULL, err, sizeof(err)), 0);
    assert_int_equal(store_check_document(top, err, sizeof(err)), HIVE_EREJECTED);
    assert_non_null(strstr(err, "\"latency\": NaN"));
    assert_int_equal(store_check_document(deep, err, sizeof(err)), HIVE_EREJECTED);
    assert_non_null(strstr(err, "\"1\": NaN"));
    bson_destroy(ok);
    bson_destroy(top);
    bson_destroy(deep);
}

/* NaN documents and bad batch items fail before any I/O (port 1 has no server). */
static void test_refused_before_io(void **state)
{
    (void)state;
    char err[256];
    store_t *s = store_create("mongodb://127.0.0.1:1/db", NULL, err, sizeof(err));
    bson_t *nan = BCON_NEW("v", BCON_DOUBLE(NAN));
    assert_int_equal(store_upsert(s, "c", "id", nan), HIVE_EREJECTED);
    assert_non_null(strstr(store_last_error(), "NaN"));
    assert_int_equal(store_insert_once(s, "c", "id", nan, NULL), HIVE_EREJECTED);
    assert_int_equal(store_cas_revision(s, "c", "k", 0, nan, NULL), HIVE_EREJECTED);

    /* A batch whose documents are all refused needs no server. */
    store_doc_t docs[2] = {{"", nan}, {"x", nan}};
    store_result_t out[2];
    assert_int_equal(store_bulk_upsert(s, "c", docs, 2, out), 0);
    assert_int_equal(out[0].status, HIVE_EINVAL);
    assert_int_equal(out[1].status, HIVE_EREJECTED);
    assert_non_null(strstr(out[1].message, "NaN"));
    assert_int_equal(store_bulk_insert_once(s, "c", docs, 2, out), 0);
    assert_false(out[1].inserted);
    assert_int_equal(store_bulk_upsert(s, "c", NULL, 2, out), HIVE_EINVAL);
    assert_int_equal(store_bulk_upsert(s, "c", docs, 0, NULL), 0);
    const char *ids[] = {"a", ""};
    assert_int_equal(store_find_ids(s, "c", ids, 2, NULL, NULL), HIVE_EINVAL);
    bson_destroy(nan);
    store_destroy(s);
}

static void test_index_names(void **state)
{
    (void)state;
    char name[64];
    bson_t *keys = BCON_NEW("key", BCON_INT32(1), "revision", BCON_INT32(-1));
    bson_t *text = BCON_NEW("component", BCON_INT32(1), "loc", "2dsphere");
    bson_t *empty = bson_new();
    assert_int_equal(store_index_name(keys, name, sizeof(name)), 0);
    assert_string_equal(name, "key_1_revision_-1");
    assert_int_equal(store_index_name(text, name, sizeof(name)), 0);
    assert_string_equal(name, "component_1_loc_2dsphere");
    assert_int_equal(store_index_name(keys, name, 8), HIVE_EINVAL);
    assert_int_equal(store_index_name(empty, name, sizeof(name)), HIVE_EINVAL);
    bson_destroy(keys);
    bson_destroy(text);
    bson_destroy(empty);

    /* Keys that do not parse are named in the error, before any I/O. */
    char err[256];
    store_t *s = store_create("mongodb://127.0.0.1:1/db", NULL, err, sizeof(err));
    const store_index_t table[] = {{"c", "{key: 1", false}};
    assert_int_equal(store_ensure_indexes(s, table, 1), HIVE_EINVAL);
    assert_non_null(strstr(store_last_error(), "{key: 1"));
    store_destroy(s);
}

/* The document a compare-and-set inserts: _id "<key>@<rev>", key, revision
 * as int64, then the caller's fields minus its own _id/key/revision. */
static void test_cas_document(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("_id", "ignored", "revision", BCON_INT32(99), "key", "other", "weights", "{",
                           "technical", BCON_DOUBLE(0.3), "}", "fence", BCON_INT64(17));
    bson_t out = BSON_INITIALIZER;
    assert_int_equal(store_cas_build("consensus", 4, doc, &out), 0);
    bson_iter_t it;
    const char *want_keys[] = {"_id", "key", "revision", "weights", "fence"};
    size_t n = 0;
    assert_true(bson_iter_init(&it, &out));
    while (bson_iter_next(&it)) {
        assert_true(n < 5);
        assert_string_equal(bson_iter_key(&it), want_keys[n]);
        n++;
    }
    assert_int_equal(n, 5);
    assert_true(bson_iter_init_find(&it, &out, "_id"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "consensus@4");
    assert_true(bson_iter_init_find(&it, &out, "key"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "consensus");
    assert_true(bson_iter_init_find(&it, &out, "revision"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT64);
    assert_int_equal(bson_iter_int64(&it), 4);
    bson_iter_t child;
    assert_true(bson_iter_init(&it, &out));
    assert_true(bson_iter_find_descendant(&it, "weights.technical", &child));
    assert_float_equal(bson_iter_double(&child), 0.3, 0);
    assert_true(bson_iter_init_find(&it, &out, "fence"));
    assert_int_equal(bson_iter_int64(&it), 17);
    bson_destroy(&out);
    bson_destroy(doc);

    bson_t bad = BSON_INITIALIZER;
    assert_int_equal(store_cas_build("k", 0, NULL, &bad), HIVE_EINVAL);
    assert_int_equal(store_cas_build("", 1, NULL, &bad), HIVE_EINVAL);
    bson_destroy(&bad);
}

static void test_revision_id(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(store_revision_id("slo@api", 12, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "slo@api@12");
    assert_int_equal(store_revision_id("a-very-long-key-name", 1234567890123, buf, 16), HIVE_EINVAL);
}

static int done_calls;

static void on_done(void *arg)
{
    (void)arg;
    done_calls++;
}

static void test_watch_stop_without_start(void **state)
{
    (void)state;
    char err[256];
    store_t *s = store_create("mongodb://127.0.0.1:1/db", NULL, err, sizeof(err));
    done_calls = 0;
    store_watch_stop(s, on_done, NULL);
    assert_int_equal(done_calls, 1);
    assert_int_equal(store_watch_start(s, NULL, 1000, NULL), HIVE_EINVAL);
    store_destroy(s);
}

int main(void)
{
    log_init("test_store", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_uris),
        cmocka_unit_test(test_create_needs_a_valid_database_name),
        cmocka_unit_test(test_create_applies_default_timeouts),
        cmocka_unit_test(test_invalid_arguments_fail_before_io),
        cmocka_unit_test(test_driver_errors_map_to_codes),
        cmocka_unit_test(test_check_document),
        cmocka_unit_test(test_refused_before_io),
        cmocka_unit_test(test_index_names),
        cmocka_unit_test(test_cas_document),
        cmocka_unit_test(test_revision_id),
        cmocka_unit_test(test_watch_stop_without_start),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
