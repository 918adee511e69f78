/* Unit tests of common/store: no server. Nothing here reaches a network:
 * store_create never connects, and the calls tested fail before they would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <string.h>

#include "log.h"
#include "store.h"

static void test_error_names_cover_every_code(void **state)
{
    (void)state;
    assert_string_equal(store_errname(0), "OK");
    assert_string_equal(store_errname(STORE_ECONFLICT), "STORE_ECONFLICT");
    assert_string_equal(store_errname(STORE_EUNAVAILABLE), "STORE_EUNAVAILABLE");
    assert_string_equal(store_errname(STORE_EINVALID), "STORE_EINVALID");
    assert_string_equal(store_errname(STORE_ENOTFOUND), "STORE_ENOTFOUND");
    assert_string_equal(store_errname(STORE_ESERVER), "STORE_ESERVER");
    assert_string_equal(store_errname(STORE_ENOMEM), "STORE_ENOMEM");
    assert_string_equal(store_errname(-999), "STORE_E?");
    assert_string_equal(store_strerror(STORE_EUNAVAILABLE), "server unavailable or timed out; retry later");
    assert_string_equal(store_strerror(-999), "unknown store error");
}

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

/* Bad arguments fail with STORE_EINVALID before any I/O. */
static void test_invalid_arguments_fail_before_io(void **state)
{
    (void)state;
    char err[256];
    store_t *s = store_create("mongodb://127.0.0.1:1/db", NULL, err, sizeof(err));
    assert_non_null(s);
    bson_t doc = BSON_INITIALIZER;
    bson_t *out = NULL;
    bool inserted = true;
    assert_int_equal(store_insert_once(s, "a$b", "id", &doc, &inserted), STORE_EINVALID);
    assert_true(inserted); /* untouched on failure */
    assert_int_equal(store_insert_once(s, "system.users", "id", &doc, NULL), STORE_EINVALID);
    assert_int_equal(store_insert_once(s, "c", "", &doc, NULL), STORE_EINVALID);
    assert_int_equal(store_upsert(s, "", "id", &doc), STORE_EINVALID);
    assert_int_equal(store_cas_revision(s, "c", "k", -1, &doc, NULL), STORE_EINVALID);
    assert_int_equal(store_cas_revision(s, "c", "", 0, &doc, NULL), STORE_EINVALID);
    assert_int_equal(store_find_one(s, "c", NULL, &out), STORE_EINVALID);
    assert_null(out);
    assert_int_equal(store_find_latest(s, "c", "", &out, NULL), STORE_EINVALID);
    assert_int_equal(store_find(s, "c", NULL, NULL, NULL, NULL), STORE_EINVALID);
    assert_int_equal(store_create_index(s, "c", "i", &doc, false), STORE_EINVALID); /* no keys */
    assert_true(strlen(store_last_error()) > 0);
    bson_destroy(&doc);
    store_destroy(s);
}

static void test_driver_errors_map_to_codes(void **state)
{
    (void)state;
    struct {
        uint32_t domain, code;
        int want;
    } cases[] = {
        {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE, STORE_EUNAVAILABLE},
        {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, STORE_EUNAVAILABLE},
        {MONGOC_ERROR_WRITE_CONCERN, 64, STORE_EUNAVAILABLE},
        {MONGOC_ERROR_SERVER, 11000, STORE_ECONFLICT},
        {MONGOC_ERROR_SERVER, 91, STORE_EUNAVAILABLE},    /* ShutdownInProgress */
        {MONGOC_ERROR_SERVER, 10107, STORE_EUNAVAILABLE}, /* NotWritablePrimary */
        {MONGOC_ERROR_SERVER, 2, STORE_EINVALID},         /* BadValue */
        {MONGOC_ERROR_SERVER, 13, STORE_ESERVER},         /* Unauthorized */
        {MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG, STORE_EINVALID},
        {MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID, STORE_EINVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e = {.domain = cases[i].domain, .code = cases[i].code};
        int got = store_error_code(&e);
        if (got != cases[i].want) {
            fail_msg("domain %u code %u: expected %s, got %s", cases[i].domain, cases[i].code,
                     store_errname(cases[i].want), store_errname(got));
        }
    }
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
    assert_int_equal(store_cas_build("k", 0, NULL, &bad), STORE_EINVALID);
    assert_int_equal(store_cas_build("", 1, NULL, &bad), STORE_EINVALID);
    bson_destroy(&bad);
}

static void test_revision_id(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(store_revision_id("slo@api", 12, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "slo@api@12");
    assert_int_equal(store_revision_id("a-very-long-key-name", 1234567890123, buf, 16), STORE_EINVALID);
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
    assert_int_equal(store_watch_start(s, NULL, 1000, NULL), STORE_EINVALID);
    store_destroy(s);
}

int main(void)
{
    log_init("test_store", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_names_cover_every_code),
        cmocka_unit_test(test_create_rejects_bad_uris),
        cmocka_unit_test(test_create_needs_a_valid_database_name),
        cmocka_unit_test(test_create_applies_default_timeouts),
        cmocka_unit_test(test_invalid_arguments_fail_before_io),
        cmocka_unit_test(test_driver_errors_map_to_codes),
        cmocka_unit_test(test_cas_document),
        cmocka_unit_test(test_revision_id),
        cmocka_unit_test(test_watch_stop_without_start),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
