/* Integration tests of common/store against the local stack's FerretDB
 * (MONGODB_URI, default mongodb://127.0.0.1:27017). Each run uses its own
 * database, itest_<pid>, dropped at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "store.h"

static store_t *st;
static char dbname[64];

static const char *mongo_uri(void)
{
    const char *u = getenv("MONGODB_URI");
    return u && u[0] ? u : "mongodb://127.0.0.1:27017";
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    snprintf(dbname, sizeof(dbname), "itest_%ld", (long)getpid());
    st = store_create(mongo_uri(), dbname, err, sizeof(err));
    if (!st) {
        fprintf(stderr, "store_create: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = store_drop_database(st);
    if (rc) {
        fprintf(stderr, "drop database %s: %s (%s)\n", dbname, hive_errname(rc), store_last_error());
    }
    store_destroy(st);
    return rc ? -1 : 0;
}

/* Asserts a store call's outcome, printing both names and the driver's
 * message when they differ. */
#define assert_store(call, want)                                                                             \
    do {                                                                                                     \
        int got_ = (call);                                                                                   \
        if (got_ != (want)) {                                                                                \
            fail_msg("%s: expected %s, got %s (%s)", #call, hive_errname(want), hive_errname(got_),          \
                     store_last_error());                                                                    \
        }                                                                                                    \
    } while (0)

static int count_each(void *arg, const bson_t *doc)
{
    (void)doc;
    (*(int *)arg)++;
    return 0;
}

static int count(const char *coll, const bson_t *filter)
{
    int n = 0;
    assert_store(store_find(st, coll, filter, NULL, count_each, &n), 0);
    return n;
}

static int64_t int_field(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, name) || !BSON_ITER_HOLDS_NUMBER(&it)) {
        fail_msg("expected a numeric field %s, got none", name);
    }
    return bson_iter_as_int64(&it);
}

static void test_ping(void **state)
{
    (void)state;
    assert_store(store_ping(st), 0);
}

/* A replayed insert changes nothing: one document, the first content, and
 * out_inserted tells the replay apart. */
static void test_insert_once_is_idempotent(void **state)
{
    (void)state;
    bson_t *first = BCON_NEW("event", "e1", "n", BCON_INT32(1));
    bson_t *replay = BCON_NEW("event", "e1", "n", BCON_INT32(2));
    bool inserted = false;
    assert_store(store_insert_once(st, "events", "evt-1", first, &inserted), 0);
    assert_true(inserted);
    inserted = true;
    assert_store(store_insert_once(st, "events", "evt-1", replay, &inserted), 0);
    assert_false(inserted);
    bson_t *filter = BCON_NEW("_id", "evt-1");
    assert_int_equal(count("events", filter), 1);
    bson_t *got = NULL;
    assert_store(store_find_one(st, "events", "evt-1", &got), 0);
    assert_int_equal(int_field(got, "n"), 1);
    bson_destroy(got);
    bson_destroy(filter);
    bson_destroy(first);
    bson_destroy(replay);
}

static void test_upsert_replaces_or_inserts(void **state)
{
    (void)state;
    bson_t *v1 = BCON_NEW("v", BCON_INT32(1), "old", BCON_BOOL(true));
    bson_t *v2 = BCON_NEW("v", BCON_INT32(2));
    assert_store(store_upsert(st, "config", "cfg", v1), 0);
    assert_store(store_upsert(st, "config", "cfg", v2), 0);
    bson_t *got = NULL;
    assert_store(store_find_one(st, "config", "cfg", &got), 0);
    assert_int_equal(int_field(got, "v"), 2);
    assert_false(bson_has_field(got, "old")); /* replaced, not merged */
    bson_destroy(got);
    bson_t *filter = BCON_NEW("_id", "cfg");
    assert_int_equal(count("config", filter), 1);
    bson_destroy(filter);
    bson_destroy(v1);
    bson_destroy(v2);
}

static void test_find_one_missing(void **state)
{
    (void)state;
    bson_t *got = NULL;
    assert_store(store_find_one(st, "events", "no-such-id", &got), HIVE_ENOTFOUND);
    assert_null(got);
    assert_store(store_find_latest(st, "weights", "no-such-key", &got, NULL), HIVE_ENOTFOUND);
}

static void test_cas_sequence(void **state)
{
    (void)state;
    int64_t rev = -1;
    bson_t *doc = BCON_NEW("w", BCON_DOUBLE(0.1));
    assert_store(store_cas_revision(st, "weights", "consensus", 0, doc, &rev), 0);
    assert_int_equal(rev, 1);
    assert_store(store_cas_revision(st, "weights", "consensus", 0, doc, &rev), HIVE_ECONFLICT);
    assert_int_equal(rev, 1); /* untouched on failure */
    bson_t *doc2 = BCON_NEW("w", BCON_DOUBLE(0.2));
    assert_store(store_cas_revision(st, "weights", "consensus", 1, doc2, &rev), 0);
    assert_int_equal(rev, 2);
    assert_store(store_cas_revision(st, "weights", "consensus", 1, doc, NULL), HIVE_ECONFLICT); /* stale */
    assert_store(store_cas_revision(st, "weights", "consensus", 5, doc, NULL), HIVE_ECONFLICT); /* ahead */
    bson_t *latest = NULL;
    int64_t latest_rev = 0;
    assert_store(store_find_latest(st, "weights", "consensus", &latest, &latest_rev), 0);
    assert_int_equal(latest_rev, 2);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, latest, "w"));
    assert_float_equal(bson_iter_double(&it), 0.2, 0);
    bson_destroy(latest);
    bson_destroy(doc);
    bson_destroy(doc2);
}

#define RACERS 8
#define ROUNDS 5

typedef struct {
    pthread_barrier_t *barrier;
    int64_t expected;
    int id, rc;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    bson_t *doc = BCON_NEW("writer", BCON_INT32(r->id));
    pthread_barrier_wait(r->barrier);
    r->rc = store_cas_revision(st, "weights", "race", r->expected, doc, NULL);
    bson_destroy(doc);
    return NULL;
}

/* Writers racing on the same expected revision: exactly one wins each round,
 * the rest get HIVE_ECONFLICT, and the winner's document is the current one. */
static void test_cas_race_has_one_winner(void **state)
{
    (void)state;
    for (int64_t round = 0; round < ROUNDS; round++) {
        pthread_t th[RACERS];
        racer_t rs[RACERS];
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, RACERS);
        for (int i = 0; i < RACERS; i++) {
            rs[i] = (racer_t){.barrier = &barrier, .expected = round, .id = i};
            assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
        }
        int winners = 0, winner = -1;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(th[i], NULL);
            if (rs[i].rc == 0) {
                winners++;
                winner = i;
            } else if (rs[i].rc != HIVE_ECONFLICT) {
                fail_msg("round %ld racer %d: expected OK or HIVE_ECONFLICT, got %s", (long)round, i,
                         hive_errname(rs[i].rc));
            }
        }
        pthread_barrier_destroy(&barrier);
        if (winners != 1) {
            fail_msg("round %ld: expected exactly 1 winner, got %d", (long)round, winners);
        }
        bson_t *latest = NULL;
        int64_t rev = 0;
        assert_store(store_find_latest(st, "weights", "race", &latest, &rev), 0);
        assert_int_equal(rev, round + 1);
        assert_int_equal(int_field(latest, "writer"), winner);
        bson_destroy(latest);
    }
}

typedef struct {
    int n[8];
    int len;
} seen_t;

static int collect(void *arg, const bson_t *doc)
{
    seen_t *s = arg;
    s->n[s->len++] = (int)int_field(doc, "n");
    return s->len == 3 ? 42 : 0; /* stop after three */
}

static void test_find_filters_sorts_and_stops(void **state)
{
    (void)state;
    for (int i = 5; i >= 1; i--) {
        char id[16];
        snprintf(id, sizeof(id), "item-%d", i);
        bson_t *doc = BCON_NEW("grp", i % 2 ? "odd" : "even", "n", BCON_INT32(i));
        assert_store(store_insert_once(st, "items", id, doc, NULL), 0);
        bson_destroy(doc);
    }
    bson_t *filter = BCON_NEW("grp", "odd");
    bson_t *opts = BCON_NEW("sort", "{", "n", BCON_INT32(1), "}");
    seen_t seen = {0};
    assert_int_equal(store_find(st, "items", filter, opts, collect, &seen), 42);
    assert_int_equal(seen.len, 3);
    assert_int_equal(seen.n[0], 1);
    assert_int_equal(seen.n[1], 3);
    assert_int_equal(seen.n[2], 5);
    assert_int_equal(count("items", NULL), 5);
    bson_destroy(filter);
    bson_destroy(opts);
}

static void test_create_index(void **state)
{
    (void)state;
    bson_t *keys = BCON_NEW("key", BCON_INT32(1), "revision", BCON_INT32(-1));
    assert_store(store_create_index(st, "weights", "key_revision", keys, false), 0);
    assert_store(store_create_index(st, "weights", "key_revision", keys, false), 0); /* again: no-op */
    bson_destroy(keys);
}

/* ---------------------------------------------------------- the watcher */

typedef struct {
    store_t *s;
    FILE *log;
    const char *want_log; /* stop when the log holds this */
    bool want_healthy;
    uv_timer_t poll;
    int stopped, timed_out;
    uint64_t deadline;
} watch_ctx_t;

static bool log_contains(FILE *f, const char *needle)
{
    char buf[8192];
    fflush(f);
    long end = ftell(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fseek(f, end, SEEK_SET);
    return strstr(buf, needle) != NULL;
}

static void on_watch_stopped(void *arg)
{
    ((watch_ctx_t *)arg)->stopped++;
}

static void on_poll(uv_timer_t *t)
{
    watch_ctx_t *c = t->data;
    bool reached = log_contains(c->log, c->want_log) && store_healthy(c->s) == c->want_healthy;
    if (!reached && uv_now(t->loop) < c->deadline) {
        return;
    }
    c->timed_out = !reached;
    uv_close((uv_handle_t *)t, NULL);
    store_watch_stop(c->s, on_watch_stopped, c);
}

/* Runs a watcher until the log shows `want_log` and store_healthy() equals
 * `want_healthy` (or 8 s pass), stops it, and checks the loop closes. */
static void watch_until(store_t *s, const char *want_log, bool want_healthy, double want_gauge)
{
    uv_loop_t loop;
    metrics_t *m = metrics_create();
    watch_ctx_t c = {.s = s, .want_log = want_log, .want_healthy = want_healthy};
    c.log = tmpfile();
    assert_non_null(c.log);
    log_set_stream(c.log);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(store_watch_start(s, &loop, 200, m), 0);
    assert_int_equal(store_watch_start(s, &loop, 200, m), HIVE_EINVAL); /* once */
    uv_timer_init(&loop, &c.poll);
    c.poll.data = &c;
    c.deadline = uv_now(&loop) + 8000;
    uv_timer_start(&c.poll, on_poll, 50, 50);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    log_set_stream(NULL);
    if (c.timed_out) {
        fail_msg("expected log \"%s\" and healthy=%d within 8 s, got healthy=%d", want_log, want_healthy,
                 store_healthy(s));
    }
    assert_int_equal(c.stopped, 1);
    assert_float_equal(metric_value(metrics_gauge(m, "mongodb_up", "", NULL)), want_gauge, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    fclose(c.log);
    metrics_destroy(m);
}

/* FerretDB refuses an infinite double; the store says the document is
 * rejected (permanent: dead-letter it), with the server's message, and the
 * connection stays usable. A NaN is refused before it is sent. */
static void test_infinity_is_rejected(void **state)
{
    (void)state;
    bson_t *inf = BCON_NEW("latency_p95_ms", BCON_DOUBLE(INFINITY));
    bson_t *nan = BCON_NEW("latency_p95_ms", BCON_DOUBLE(NAN));
    bson_t *ok = BCON_NEW("latency_p95_ms", BCON_DOUBLE(12.5));
    int rc = store_upsert(st, "hostile", "inf", inf);
    assert_int_equal(rc, HIVE_EREJECTED);
    assert_false(hive_err_transient(rc));
    if (!strstr(store_last_error(), "infinity values are not allowed")) {
        fail_msg("expected FerretDB's message about infinity, got \"%s\"", store_last_error());
    }
    assert_store(store_insert_once(st, "hostile", "inf", inf, NULL), HIVE_EREJECTED);
    assert_store(store_upsert(st, "hostile", "nan", nan), HIVE_EREJECTED);
    assert_non_null(strstr(store_last_error(), "NaN"));
    assert_store(store_upsert(st, "hostile", "fine", ok), 0);
    assert_int_equal(count("hostile", NULL), 1);
    bson_destroy(inf);
    bson_destroy(nan);
    bson_destroy(ok);
}

#define NBULK 100

typedef struct {
    char ids[NBULK][16];
    bson_t *docs[NBULK];
    store_doc_t items[NBULK];
    store_result_t out[NBULK];
} batch_t;

/* NBULK documents "b-<i>" with n = i + base; document `bad` (if < NBULK)
 * holds +Inf instead. */
static batch_t *batch_new(int base, int bad)
{
    batch_t *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    for (int i = 0; i < NBULK; i++) {
        snprintf(b->ids[i], sizeof(b->ids[i]), "b-%03d", i);
        b->docs[i] = i == bad ? BCON_NEW("n", BCON_DOUBLE(INFINITY)) : BCON_NEW("n", BCON_INT32(i + base));
        b->items[i] = (store_doc_t){b->ids[i], b->docs[i]};
    }
    return b;
}

static void batch_free(batch_t *b)
{
    for (int i = 0; i < NBULK; i++) {
        bson_destroy(b->docs[i]);
    }
    free(b);
}

typedef struct {
    int n;
    int64_t sum;
} tally_t;

static int tally_each(void *arg, const bson_t *doc)
{
    tally_t *t = arg;
    t->n++;
    t->sum += int_field(doc, "n");
    return 0;
}

/* One +Inf among 100 in an unordered bulk upsert: the 99 others are written,
 * exactly the bad one is reported, with FerretDB's message. */
static void test_bulk_upsert_one_bad_document(void **state)
{
    (void)state;
    batch_t *b = batch_new(0, 37);
    assert_store(store_bulk_upsert(st, "bulk_up", b->items, NBULK, b->out), 0);
    for (int i = 0; i < NBULK; i++) {
        if (i == 37) {
            assert_int_equal(b->out[i].status, HIVE_EREJECTED);
            if (!strstr(b->out[i].message, "infinity")) {
                fail_msg("document 37: expected FerretDB's message, got \"%s\"", b->out[i].message);
            }
        } else if (b->out[i].status != 0) {
            fail_msg("document %d: expected 0, got %s (%s)", i, hive_errname(b->out[i].status),
                     b->out[i].message);
        }
    }
    tally_t t = {0, 0};
    assert_store(store_find(st, "bulk_up", NULL, NULL, tally_each, &t), 0);
    assert_int_equal(t.n, NBULK - 1);
    assert_int_equal(t.sum, NBULK * (NBULK - 1) / 2 - 37);
    batch_free(b);

    /* A clean batch replaces every document in one call. */
    b = batch_new(1000, NBULK);
    assert_store(store_bulk_upsert(st, "bulk_up", b->items, NBULK, b->out), 0);
    for (int i = 0; i < NBULK; i++) {
        assert_int_equal(b->out[i].status, 0);
    }
    t = (tally_t){0, 0};
    assert_store(store_find(st, "bulk_up", NULL, NULL, tally_each, &t), 0);
    assert_int_equal(t.n, NBULK);
    assert_int_equal(t.sum, NBULK * 1000 + NBULK * (NBULK - 1) / 2);
    batch_free(b);
}

/* Bulk insert-once: the first call writes the 99 good documents and reports
 * them new; a replay (with other contents) writes nothing and reports none
 * new; the bad document is rejected both times. */
static void test_bulk_insert_once_replay(void **state)
{
    (void)state;
    batch_t *b = batch_new(0, 5);
    assert_store(store_bulk_insert_once(st, "bulk_once", b->items, NBULK, b->out), 0);
    for (int i = 0; i < NBULK; i++) {
        if (i == 5) {
            assert_int_equal(b->out[i].status, HIVE_EREJECTED);
            assert_false(b->out[i].inserted);
            assert_non_null(strstr(b->out[i].message, "infinity"));
        } else if (b->out[i].status != 0 || !b->out[i].inserted) {
            fail_msg("document %d: expected new, got %s inserted=%d (%s)", i, hive_errname(b->out[i].status),
                     b->out[i].inserted, b->out[i].message);
        }
    }
    batch_free(b);

    b = batch_new(1000, 5);
    assert_store(store_bulk_insert_once(st, "bulk_once", b->items, NBULK, b->out), 0);
    for (int i = 0; i < NBULK; i++) {
        if (i == 5) {
            assert_int_equal(b->out[i].status, HIVE_EREJECTED);
        } else if (b->out[i].status != 0 || b->out[i].inserted) {
            fail_msg("replayed document %d: expected existing, got %s inserted=%d (%s)", i,
                     hive_errname(b->out[i].status), b->out[i].inserted, b->out[i].message);
        }
    }
    tally_t t = {0, 0};
    assert_store(store_find(st, "bulk_once", NULL, NULL, tally_each, &t), 0);
    assert_int_equal(t.n, NBULK - 1);
    assert_int_equal(t.sum, NBULK * (NBULK - 1) / 2 - 5); /* the first contents */
    batch_free(b);
}

/* A unique index on another field refuses a new _id: that is a conflict,
 * not a replay. */
static void test_bulk_insert_once_conflict(void **state)
{
    (void)state;
    bson_t *keys = BCON_NEW("email", BCON_INT32(1));
    assert_store(store_create_index(st, "bulk_users", "email_1", keys, true), 0);
    bson_t *a = BCON_NEW("email", "a@x");
    bson_t *a2 = BCON_NEW("email", "a@x");
    bson_t *c = BCON_NEW("email", "c@x");
    store_doc_t items[] = {{"u1", a}, {"u2", a2}, {"u3", c}};
    store_result_t out[3];
    assert_store(store_bulk_insert_once(st, "bulk_users", items, 3, out), 0);
    assert_int_equal(out[0].status, 0);
    assert_true(out[0].inserted);
    assert_int_equal(out[1].status, HIVE_ECONFLICT);
    assert_false(out[1].inserted);
    assert_int_equal(out[2].status, 0);
    assert_true(out[2].inserted);
    bson_destroy(keys);
    bson_destroy(a);
    bson_destroy(a2);
    bson_destroy(c);
}

/* A bulk upsert of more documents that already exist than FerretDB's backend
 * pool has connections (100 on SQLite, 50 on PostgreSQL) replaces them all,
 * in one call, and the database answers afterwards. */
#define NBIG 150
static void test_bulk_upsert_many_existing(void **state)
{
    (void)state;
    static char ids[NBIG][16];
    static store_doc_t items[NBIG];
    static store_result_t out[NBIG];
    bson_t *docs[NBIG];
    for (int round = 1; round <= 2; round++) {
        for (int i = 0; i < NBIG; i++) {
            snprintf(ids[i], sizeof(ids[i]), "m-%03d", i);
            docs[i] = BCON_NEW("n", BCON_INT32(round * 1000 + i));
            items[i] = (store_doc_t){ids[i], docs[i]};
        }
        assert_store(store_bulk_upsert(st, "bulk_many", items, NBIG, out), 0);
        for (int i = 0; i < NBIG; i++) {
            if (out[i].status != 0) {
                fail_msg("round %d, document %d: %s (%s)", round, i, hive_errname(out[i].status),
                         out[i].message);
            }
            bson_destroy(docs[i]);
        }
    }
    tally_t t = {0, 0};
    assert_store(store_find(st, "bulk_many", NULL, NULL, tally_each, &t), 0);
    assert_int_equal(t.n, NBIG);
    assert_int_equal(t.sum, NBIG * 2000 + NBIG * (NBIG - 1) / 2);
}

/* find_ids: every existing id once, missing and repeated ones skipped. */
static void test_find_ids(void **state)
{
    (void)state;
    batch_t *b = batch_new(0, NBULK);
    assert_store(store_bulk_upsert(st, "bulk_read", b->items, NBULK, b->out), 0);
    const char *ids[] = {"b-001", "b-050", "nope", "b-099", "b-001"};
    tally_t t = {0, 0};
    assert_store(store_find_ids(st, "bulk_read", ids, 5, tally_each, &t), 0);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.sum, 1 + 50 + 99);
    batch_free(b);
}

static const store_index_t test_indexes[] = {
    {"idx_a", "{\"key\": 1, \"revision\": -1}", false},
    {"idx_b", "{\"component\": 1, \"problem\": 1}", true},
};

/* store_ensure_indexes creates each index once; a second run is a no-op. */
static void test_ensure_indexes(void **state)
{
    (void)state;
    assert_store(store_ensure_indexes(st, test_indexes, 2), 0);
    assert_store(store_ensure_indexes(st, test_indexes, 2), 0);
    bson_t *d1 = BCON_NEW("component", "api", "problem", "LATENCY");
    bson_t *d2 = BCON_NEW("component", "api", "problem", "LATENCY");
    assert_store(store_upsert(st, "idx_b", "one", d1), 0);
    assert_store(store_upsert(st, "idx_b", "two", d2), HIVE_ECONFLICT); /* the unique index holds */
    bson_destroy(d1);
    bson_destroy(d2);
}

static void test_watch_reports_healthy(void **state)
{
    (void)state;
    watch_until(st, "mongodb reachable", true, 1);
}

/* A port with no server: the ping fails within the short server-selection
 * timeout, the store reports unhealthy, logs it, and stops cleanly. */
static void test_watch_wrong_port_reports_unhealthy(void **state)
{
    (void)state;
    char err[256];
    store_t *bad =
        store_create("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500", dbname, err, sizeof(err));
    assert_non_null(bad);
    assert_store(store_ping(bad), HIVE_EUNAVAILABLE);
    watch_until(bad, "mongodb unreachable", false, 0);
    store_destroy(bad);
}

int main(void)
{
    log_init("itest_store", LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_insert_once_is_idempotent),
        cmocka_unit_test(test_upsert_replaces_or_inserts),
        cmocka_unit_test(test_find_one_missing),
        cmocka_unit_test(test_cas_sequence),
        cmocka_unit_test(test_cas_race_has_one_winner),
        cmocka_unit_test(test_find_filters_sorts_and_stops),
        cmocka_unit_test(test_create_index),
        cmocka_unit_test(test_infinity_is_rejected),
        cmocka_unit_test(test_bulk_upsert_one_bad_document),
        cmocka_unit_test(test_bulk_insert_once_replay),
        cmocka_unit_test(test_bulk_insert_once_conflict),
        cmocka_unit_test(test_bulk_upsert_many_existing),
        cmocka_unit_test(test_find_ids),
        cmocka_unit_test(test_ensure_indexes),
        cmocka_unit_test(test_watch_reports_healthy),
        cmocka_unit_test(test_watch_wrong_port_reports_unhealthy),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    store_global_cleanup();
    return rc;
}
