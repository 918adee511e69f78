/* Unit tests of common/kafka: the pure helpers, then the pipeline and the
 * producer against librdkafka's in-process mock cluster (no outside broker),
 * for the fault cases a real broker cannot easily show: an aborted commit, a
 * transform asking to retry, a fenced producer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "kafka_internal.h"
#include "log.h"

#include <librdkafka/rdkafka_mock.h>

/* Kafka protocol ApiKeys (not in the public headers). */
#define API_END_TXN 26

/* ---- Pure helpers ------------------------------------------------------------ */

static void test_out_add_copies_and_owns(void **state)
{
    (void)state;
    kafka_out_t out;
    kafka_out_init(&out);
    char key[] = "k1", val[] = "value";
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "trace_id", -1, "abc", -1);
    assert_int_equal(kafka_out_add(&out, "t.out", key, 2, val, 5, h), 0);
    key[0] = val[0] = 'X';                                                     /* the record holds copies */
    assert_int_equal(kafka_out_add(&out, "t.out", NULL, 0, NULL, 0, NULL), 0); /* tombstone, no key */
    for (int i = 0; i < 10; i++) { /* grows past the first array */
        assert_int_equal(kafka_out_add(&out, "t.more", "k", 1, "v", 1, NULL), 0);
    }
    assert_int_equal(out.n, 12);
    assert_string_equal(out.recs[0].topic, "t.out");
    assert_memory_equal(out.recs[0].key, "k1", 2);
    assert_memory_equal(out.recs[0].value, "value", 5);
    assert_ptr_equal(out.recs[0].headers, h);
    assert_null(out.recs[1].key);
    assert_null(out.recs[1].value);

    /* Bad arguments fail and still take the headers (ASan would see a leak). */
    rd_kafka_headers_t *h2 = rd_kafka_headers_new(1);
    assert_int_equal(kafka_out_add(&out, NULL, "k", 1, "v", 1, h2), -1);
    assert_int_equal(kafka_out_add(&out, "", "k", 1, "v", 1, NULL), -1);
    assert_int_equal(kafka_out_add(&out, "t", NULL, 3, "v", 1, NULL), -1);
    assert_int_equal(out.n, 12);

    kafka_out_reset(&out);
    assert_int_equal(out.n, 0);
    assert_int_equal(kafka_out_add(&out, "t.out", "k", 1, "v", 1, NULL), 0);
    kafka_out_deinit(&out);
}

static void test_headers_find(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "trace_id", -1, "first", -1);
    rd_kafka_header_add(h, "trace_id", -1, "second", -1);
    rd_kafka_header_add(h, "empty", -1, NULL, 0);
    size_t len = 99;
    const char *v = kafka_headers_find(h, "trace_id", &len);
    assert_non_null(v);
    assert_int_equal(len, 6);
    assert_memory_equal(v, "second", 6); /* the last one wins */
    v = kafka_headers_find(h, "empty", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);
    assert_null(kafka_headers_find(h, "absent", &len));
    assert_null(kafka_headers_find(NULL, "trace_id", &len));
    rd_kafka_headers_destroy(h);
}

static const char *hdr(const rd_kafka_headers_t *h, const char *name, char *buf, size_t buflen)
{
    size_t len = 0;
    const char *v = kafka_headers_find(h, name, &len);
    if (!v) {
        return NULL;
    }
    snprintf(buf, buflen, "%.*s", (int)len, v);
    return buf;
}

static void test_dlq_headers(void **state)
{
    (void)state;
    char b[128];
    rd_kafka_headers_t *orig = rd_kafka_headers_new(1);
    rd_kafka_header_add(orig, "trace_id", -1, "t-42", -1);
    rd_kafka_headers_t *h = kafka_dlq_headers(orig, "telemetry.aggregated", 2, 12345678901LL, "optimizer",
                                              "bad avro", 1700000000123LL);
    assert_non_null(h);
    assert_string_equal(hdr(h, "trace_id", b, sizeof(b)), "t-42"); /* original headers kept */
    assert_string_equal(hdr(h, "dlq.error.reason", b, sizeof(b)), "bad avro");
    assert_string_equal(hdr(h, "dlq.original.topic", b, sizeof(b)), "telemetry.aggregated");
    assert_string_equal(hdr(h, "dlq.original.partition", b, sizeof(b)), "2");
    assert_string_equal(hdr(h, "dlq.original.offset", b, sizeof(b)), "12345678901");
    assert_string_equal(hdr(h, "dlq.service", b, sizeof(b)), "optimizer");
    assert_string_equal(hdr(h, "dlq.failed_at", b, sizeof(b)), "1700000000123");
    /* the original list is untouched */
    assert_null(kafka_headers_find(orig, "dlq.error.reason", NULL));
    rd_kafka_headers_destroy(h);
    rd_kafka_headers_destroy(orig);

    h = kafka_dlq_headers(NULL, "t", 0, 0, "svc", "", 1);
    assert_string_equal(hdr(h, "dlq.error.reason", b, sizeof(b)), "unspecified");
    rd_kafka_headers_destroy(h);
}

static void test_batch_offsets(void **state)
{
    (void)state;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_t *a = rd_kafka_topic_new(rk, "a", NULL), *b = rd_kafka_topic_new(rk, "b", NULL);
    /* Partition order holds inside a partition; partitions interleave. */
    rd_kafka_message_t m[] = {
        {.rkt = a, .partition = 0, .offset = 10}, {.rkt = a, .partition = 1, .offset = 5},
        {.rkt = a, .partition = 0, .offset = 11}, {.rkt = b, .partition = 0, .offset = 7},
        {.rkt = a, .partition = 0, .offset = 14}, {.rkt = a, .partition = 1, .offset = 6},
    };
    rd_kafka_message_t *msgs[6];
    for (int i = 0; i < 6; i++) {
        msgs[i] = &m[i];
    }
    rd_kafka_topic_partition_list_t *first = NULL, *next = NULL;
    assert_int_equal(kafka_batch_offsets(msgs, 6, &first, &next), 0);
    assert_int_equal(first->cnt, 3);
    assert_int_equal(next->cnt, 3);
    struct {
        const char *t;
        int32_t p;
        int64_t first, next;
    } want[] = {{"a", 0, 10, 15}, {"a", 1, 5, 7}, {"b", 0, 7, 8}};
    for (int i = 0; i < 3; i++) {
        rd_kafka_topic_partition_t *f = rd_kafka_topic_partition_list_find(first, want[i].t, want[i].p);
        rd_kafka_topic_partition_t *n = rd_kafka_topic_partition_list_find(next, want[i].t, want[i].p);
        assert_non_null(f);
        assert_non_null(n);
        assert_int_equal(f->offset, want[i].first);
        assert_int_equal(n->offset, want[i].next); /* last + 1 is what gets committed */
    }
    rd_kafka_topic_partition_list_destroy(first);
    rd_kafka_topic_partition_list_destroy(next);
    rd_kafka_topic_destroy(a);
    rd_kafka_topic_destroy(b);
    rd_kafka_destroy(rk);
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    assert_int_equal(kafka_backoff_ms(0, 0.0), KAFKA_BACKOFF_MIN_MS);
    assert_int_equal(kafka_backoff_ms(0, 0.99), KAFKA_BACKOFF_MIN_MS);
    uint64_t prev_hi = 0;
    for (unsigned a = 0; a < 64; a++) {
        uint64_t lo = kafka_backoff_ms(a, 0.0), hi = kafka_backoff_ms(a, 0.999999);
        assert_true(lo >= KAFKA_BACKOFF_MIN_MS);
        assert_true(hi <= KAFKA_BACKOFF_MAX_MS);
        assert_true(lo <= hi);
        assert_true(hi >= prev_hi); /* never shrinks as attempts grow */
        prev_hi = hi;
    }
    /* attempt 3: cap 800 ms, drawn in [400, 800] */
    assert_int_equal(kafka_backoff_ms(3, 0.0), 400);
    assert_in_range(kafka_backoff_ms(3, 0.5), 599, 601);
    assert_in_range(kafka_backoff_ms(3, 0.999999), 799, 800);
    /* saturates at 30 s with jitter in [15 s, 30 s] */
    assert_int_equal(kafka_backoff_ms(40, 0.0), KAFKA_BACKOFF_MAX_MS / 2);
    assert_in_range(kafka_backoff_ms(1000, 0.999999), KAFKA_BACKOFF_MAX_MS - 1, KAFKA_BACKOFF_MAX_MS);
    /* out-of-range draws are clamped */
    assert_in_range(kafka_backoff_ms(40, 7.0), KAFKA_BACKOFF_MAX_MS / 2, KAFKA_BACKOFF_MAX_MS);
    assert_int_equal(kafka_backoff_ms(40, -1.0), KAFKA_BACKOFF_MAX_MS / 2);
}

static void test_txn_classify(void **state)
{
    (void)state;
    struct {
        rd_kafka_resp_err_t code;
        kafka_txn_action_t want;
    } cases[] = {
        {RD_KAFKA_RESP_ERR__FENCED, KAFKA_TXN_FATAL},
        {RD_KAFKA_RESP_ERR_PRODUCER_FENCED, KAFKA_TXN_FATAL},
        {RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, KAFKA_TXN_FATAL},
        {RD_KAFKA_RESP_ERR__FATAL, KAFKA_TXN_FATAL},
        /* a plain (non-retriable, non-fatal) error: abort and start over */
        {RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, KAFKA_TXN_ABORT},
        {RD_KAFKA_RESP_ERR__TIMED_OUT, KAFKA_TXN_ABORT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rd_kafka_error_t *e = rd_kafka_error_new(cases[i].code, "test");
        if (kafka_txn_classify(e) != cases[i].want) {
            fail_msg("%s: expected action %d, got %d", rd_kafka_err2name(cases[i].code), cases[i].want,
                     kafka_txn_classify(e));
        }
        rd_kafka_error_destroy(e);
    }
}

typedef struct {
    char topic[32];
    int32_t partition;
    int64_t lag;
} lag_row_t;

typedef struct {
    lag_row_t rows[8];
    int n;
} lag_rows_t;

static void collect_lag(void *ctx, const char *topic, int32_t partition, int64_t lag)
{
    lag_rows_t *r = ctx;
    if (r->n < 8) {
        snprintf(r->rows[r->n].topic, sizeof(r->rows[r->n].topic), "%s", topic);
        r->rows[r->n].partition = partition;
        r->rows[r->n].lag = lag;
        r->n++;
    }
}

static void test_stats_lag(void **state)
{
    (void)state;
    const char *json = "{\"name\":\"c#consumer-1\",\"type\":\"consumer\",\"topics\":{"
                       "\"telemetry.aggregated\":{\"topic\":\"telemetry.aggregated\",\"partitions\":{"
                       "\"0\":{\"partition\":0,\"consumer_lag\":40,\"consumer_lag_stored\":12},"
                       "\"1\":{\"partition\":1,\"consumer_lag\":7,\"consumer_lag_stored\":-1},"
                       "\"2\":{\"partition\":2,\"consumer_lag\":-1,\"consumer_lag_stored\":-1},"
                       "\"-1\":{\"partition\":-1,\"consumer_lag\":-1}}}}}";
    lag_rows_t r = {0};
    assert_int_equal(kafka_stats_lag(json, strlen(json), collect_lag, &r), 0);
    assert_int_equal(r.n, 3); /* partition -1 skipped */
    for (int i = 0; i < r.n; i++) {
        assert_string_equal(r.rows[i].topic, "telemetry.aggregated");
        int64_t want = r.rows[i].partition == 0 ? 12 : r.rows[i].partition == 1 ? 7 : -1;
        if (r.rows[i].lag != want) {
            fail_msg("partition %d: expected lag %" PRId64 ", got %" PRId64, r.rows[i].partition, want,
                     r.rows[i].lag);
        }
    }
    r.n = 0;
    assert_int_equal(kafka_stats_lag("not json", 8, collect_lag, &r), -1);
    assert_int_equal(kafka_stats_lag("{}", 2, collect_lag, &r), 0);
    assert_int_equal(r.n, 0);
}

static void test_format_partitions(void **state)
{
    (void)state;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    char buf[64];
    kafka_format_partitions(l, buf, sizeof(buf));
    assert_string_equal(buf, "");
    rd_kafka_topic_partition_list_add(l, "a", 0);
    rd_kafka_topic_partition_list_add(l, "a", 2);
    rd_kafka_topic_partition_list_add(l, "b", 1);
    kafka_format_partitions(l, buf, sizeof(buf));
    assert_string_equal(buf, "a[0,2] b[1]");
    kafka_format_partitions(l, buf, 5); /* truncates, stays terminated */
    assert_int_equal(strlen(buf), 4);
    rd_kafka_topic_partition_list_destroy(l);
}

static void test_default_transactional_id(void **state)
{
    (void)state;
    char host[256], want[300], buf[300];
    gethostname(host, sizeof(host));
    snprintf(want, sizeof(want), "optimizer-%s", host);
    assert_int_equal(kafka_default_transactional_id("optimizer", buf, sizeof(buf)), 0);
    assert_string_equal(buf, want); /* stable across restarts of the same host */
    assert_int_equal(kafka_default_transactional_id("optimizer", buf, 4), -1);
}

static void test_timer_slot_maths(void **state)
{
    (void)state;
    assert_int_equal(kafka_timer_slot(0, 200), 0);
    assert_int_equal(kafka_timer_slot(199, 200), 0);
    assert_int_equal(kafka_timer_slot(200, 200), 1);
    assert_int_equal(kafka_timer_slot(1700000000123LL, 200), 8500000000LL);
    assert_int_equal(kafka_timer_slot(-1, 200), -1); /* a floor, not a truncation */
    assert_int_equal(kafka_timer_slot(-200, 200), -1);
    assert_int_equal(kafka_timer_slot(-201, 200), -2);
    /* next = max(marker + 1, floor) */
    assert_int_equal(kafka_timer_next_slot(KAFKA_SLOT_NONE, 50), 50);
    assert_int_equal(kafka_timer_next_slot(60, 50), 61);
    assert_int_equal(kafka_timer_next_slot(49, 50), 50);
    assert_int_equal(kafka_timer_next_slot(10, 50), 50);
}

static void test_timer_marker_parse(void **state)
{
    (void)state;
    struct {
        const char *in;
        int rc;
        int64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"8500000000", 0, 8500000000LL},
        {"-5", 0, -5},
        {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775808", -1, 0},
        {"", -1, 0},
        {"-", -1, 0},
        {"12a", -1, 0},
        {" 12", -1, 0},
        {"1.5", -1, 0},
        {"123456789012345678901", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got = 77;
        int rc = kafka_timer_marker_parse(cases[i].in, strlen(cases[i].in), &got);
        if (rc != cases[i].rc || (rc == 0 && got != cases[i].want) || (rc != 0 && got != 77)) {
            fail_msg("\"%s\": expected rc %d value %" PRId64 ", got rc %d value %" PRId64, cases[i].in,
                     cases[i].rc, cases[i].want, rc, got);
        }
    }
    int64_t got = 0;
    assert_int_equal(kafka_timer_marker_parse(NULL, 0, &got), -1);
    assert_int_equal(kafka_timer_marker_parse("42xyz", 2, &got), 0); /* only `len` bytes count */
    assert_int_equal(got, 42);
    assert_true(kafka_timer_name_ok("experiment.interval:tick-1_a"));
    assert_false(kafka_timer_name_ok(""));
    assert_false(kafka_timer_name_ok("#barrier"));
    assert_false(kafka_timer_name_ok("has space"));
    char longname[KAFKA_TIMER_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(kafka_timer_name_ok(longname));
    longname[KAFKA_TIMER_NAME_MAX] = '\0';
    assert_true(kafka_timer_name_ok(longname));
}

static kafka_verdict_t noop_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                                 size_t reasonlen)
{
    return KAFKA_OK;
}

static void rec(kafka_timers_t *ts, const char *key, const char *value, int64_t off, int64_t now, bool want)
{
    bool got = kafka_timers_on_record(ts, key, strlen(key), value, strlen(value), off, now);
    if (got != want) {
        fail_msg("record %s=%s: expected caught-up %d, got %d", key, value, want, got);
    }
}

/* The owner's life: assignment, barrier (failing once), markers read back,
 * caught up at the barrier, ticks due in order with catch-up, a failed tick
 * retried on the same slot after its back-off, revocation. */
static void test_timers_state_machine(void **state)
{
    (void)state;
    kafka_timers_t ts;
    assert_int_equal(kafka_timers_init(&ts, "svc-host"), 0);
    assert_string_equal(ts.barrier_key, "#barrier:svc-host");
    assert_int_equal(kafka_timers_add(&ts, "fast", 200, noop_tick, NULL), 0);
    assert_int_equal(kafka_timers_add(&ts, "slow", 1000, noop_tick, NULL), 0);
    assert_int_equal(kafka_timers_add(&ts, "fast", 300, noop_tick, NULL), -1); /* duplicate */
    assert_int_equal(kafka_timers_add(&ts, "quick", 99, noop_tick, NULL), -1); /* below 100 ms */
    assert_int_equal(kafka_timers_add(&ts, "bad name", 200, noop_tick, NULL), -1);
    assert_int_equal(kafka_timers_add(&ts, "nofn", 200, NULL, NULL), -1);
    int64_t now = 1000000, slot = -1;

    /* not the owner: nothing is due, nothing wakes */
    assert_false(kafka_timers_barrier_due(&ts, now));
    assert_int_equal(kafka_timers_due(&ts, now, &slot), -1);
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now), -1);
    rec(&ts, "fast", "4990", 0, now, false);
    assert_true(ts.v[0].marker == KAFKA_SLOT_NONE); /* not read while idle */

    kafka_timers_assigned(&ts, 0xabcdef);
    assert_true(kafka_timers_barrier_due(&ts, now));
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now), 0);
    char token[128];
    snprintf(token, sizeof(token), "%s", ts.token);
    kafka_timers_barrier_done(&ts, false, now, 0.0); /* aborted: back off */
    assert_false(kafka_timers_barrier_due(&ts, now));
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now), KAFKA_BACKOFF_MIN_MS);
    assert_true(kafka_timers_barrier_due(&ts, now + KAFKA_BACKOFF_MIN_MS));
    kafka_timers_barrier_done(&ts, true, now, 0.0);
    assert_false(kafka_timers_barrier_due(&ts, now));
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now), -1); /* reading: records drive it */

    /* markers: the highest wins; garbage and other barriers are ignored */
    rec(&ts, "fast", "4990", 0, now, false);
    rec(&ts, "fast", "4980", 1, now, false);
    rec(&ts, "fast", "junk", 2, now, false);
    rec(&ts, "gone", "12", 3, now, false);
    rec(&ts, "#barrier:other-host", token, 4, now, false);
    rec(&ts, "#barrier:svc-host", "0-0000000000000001", 5, now, false); /* an older barrier of ours */
    assert_int_equal(kafka_timers_due(&ts, now, &slot), -1);
    rec(&ts, "#barrier:svc-host", token, 6, now, true);
    assert_int_equal(ts.next_offset, 7);
    assert_int_equal(ts.v[0].marker, 4990);
    assert_true(ts.v[1].marker == KAFKA_SLOT_NONE);

    /* now = 1000000: fast's slot 5000 (from its marker 4990: the owner caught
     * up at 5000, so 4991..4999 passed without one), slow's slot 1000 */
    ssize_t i = kafka_timers_due(&ts, now, &slot);
    assert_int_equal(i, 0); /* both slots start at 1000000: the first timer first */
    assert_int_equal(slot, 5000);
    kafka_timers_tick_done(&ts, 0, 5000, true, now, 0.0);
    i = kafka_timers_due(&ts, now, &slot);
    assert_int_equal(i, 1);
    assert_int_equal(slot, 1000);
    kafka_timers_tick_done(&ts, 1, 1000, true, now, 0.0);
    assert_int_equal(kafka_timers_due(&ts, now, &slot), -1);
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now + 50), 150); /* fast's 5001 at 1000200 */

    /* late by 1 s: every missed slot runs, in order, once */
    now += 1000;
    int64_t want = 5001;
    for (;;) {
        i = kafka_timers_due(&ts, now, &slot);
        if (i < 0) {
            break;
        }
        if (i == 1) {
            assert_int_equal(slot, 1001);
        } else {
            assert_int_equal(slot, want++);
        }
        kafka_timers_tick_done(&ts, (size_t)i, slot, true, now, 0.0);
    }
    assert_int_equal(want, 5006);

    /* a failed tick: the same slot again, after its back-off */
    now += 200;
    assert_int_equal(kafka_timers_due(&ts, now, &slot), 0);
    assert_int_equal(slot, 5006);
    kafka_timers_tick_done(&ts, 0, 5006, false, now, 0.0);
    assert_int_equal(kafka_timers_due(&ts, now, &slot), -1);
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now), KAFKA_BACKOFF_MIN_MS);
    assert_int_equal(kafka_timers_due(&ts, now + KAFKA_BACKOFF_MIN_MS, &slot), 0);
    assert_int_equal(slot, 5006);
    /* a marker read back that is older changes nothing */
    rec(&ts, "fast", "5003", 8, now, false);
    assert_int_equal(ts.v[0].marker, 5005);

    /* revoked: nothing runs, the markers are forgotten; a tick that ends
     * after the revocation changes nothing */
    kafka_timers_revoked(&ts);
    kafka_timers_tick_done(&ts, 0, 5006, true, now, 0.0);
    assert_true(ts.v[0].marker == KAFKA_SLOT_NONE);
    assert_int_equal(kafka_timers_due(&ts, now + 10000, &slot), -1);
    assert_int_equal(kafka_timers_next_wake_ms(&ts, now), -1);
    /* a new assignment writes a new barrier */
    kafka_timers_assigned(&ts, 0xabcdef);
    assert_string_not_equal(ts.token, token);
    kafka_timers_deinit(&ts);
}

/* kafka_in_t as a handler sees it, without a broker. */
static void test_in_api(void **state)
{
    (void)state;
    kafka_batch_t b;
    assert_int_equal(kafka_batch_init(&b, 4), 0);
    rd_kafka_message_t m[3] = {{.offset = 10}, {.offset = 11}, {.offset = 12}};
    rd_kafka_message_t *msgs[3] = {&m[0], &m[1], &m[2]};
    b.in.msgs = msgs;
    b.in.n = b.in.cut = 3;
    kafka_in_t *in = &b.in;
    assert_int_equal(kafka_in_count(in), 3);
    assert_int_equal(kafka_in_msg(in, 2)->offset, 12);
    assert_null(kafka_in_msg(in, 3));
    assert_null(kafka_in_out(in, 3));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kafka_out_add(kafka_in_out(in, i), "out", "k", 1, "v", 1, NULL), 0);
    }
    kafka_in_reject(in, 1, "bad record");
    assert_int_equal(kafka_in_out(in, 1)->n, 0); /* its outputs are dropped */
    assert_int_equal(kafka_in_out(in, 0)->n, 1);
    assert_true(in->rejected[1]);
    assert_string_equal(in->reasons[1], "bad record");
    kafka_in_reject(in, 1, "worse"); /* the last reason wins */
    assert_string_equal(in->reasons[1], "worse");
    kafka_in_reject(in, 2, NULL);
    assert_true(in->rejected[2]);
    assert_null(in->reasons[2]); /* reads "unspecified" in the DLQ headers */
    kafka_in_reject(in, 7, "ignored");
    assert_int_equal(kafka_in_count(NULL), 0);
    kafka_batch_clear(&b); /* frees the outputs and reasons, not the messages (b.n == 0) */
    assert_false(in->rejected[1]);
    kafka_batch_deinit(&b);
}

/* ---- Pipeline without a broker ----------------------------------------------- */

static kafka_verdict_t copy_transform(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out, char *reason,
                                      size_t reasonlen)
{
    return KAFKA_OK;
}

/* The per-record adapter: a stop request cuts the batch after the record in
 * hand (the drain has its own deadline); the rest is not transformed. */
static kafka_verdict_t stop_after_first(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out,
                                        char *reason, size_t reasonlen)
{
    (void)in, (void)out, (void)reason, (void)reasonlen;
    kafka_batch_t *b = ctx;
    b->done++;
    atomic_store((atomic_bool *)b->stop, true);
    return KAFKA_OK;
}

static void test_per_record_stops_on_request(void **state)
{
    (void)state;
    kafka_batch_t b;
    assert_int_equal(kafka_batch_init(&b, 4), 0);
    atomic_bool stop;
    atomic_init(&stop, false);
    b.stop = &stop;
    b.transform = stop_after_first;
    b.ctx = &b;
    rd_kafka_message_t m[3] = {{.offset = 10}, {.offset = 11}, {.offset = 12}};
    rd_kafka_message_t *msgs[3] = {&m[0], &m[1], &m[2]};
    b.in.msgs = msgs;
    b.in.n = b.in.cut = 3;
    assert_int_equal(kafka_batch_per_record(&b, &b.in), KAFKA_OK);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.in.cut, 1);
    /* without a stop request every record is taken */
    atomic_store(&stop, false);
    b.transform = copy_transform;
    b.in.cut = 3;
    assert_int_equal(kafka_batch_per_record(&b, &b.in), KAFKA_OK);
    assert_int_equal(b.in.cut, 3);
    kafka_batch_clear(&b);
    kafka_batch_deinit(&b);
}

static kafka_verdict_t batch_noop(void *ctx, kafka_in_t *in)
{
    return KAFKA_OK;
}

static void count_done(void *arg)
{
    (*(int *)arg)++;
}

static void test_pipeline_create_validates(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *topics[] = {"in"};
    char err[256] = "";
    kafka_pipeline_conf_t conf = {.bootstrap_servers = "127.0.0.1:1",
                                  .group_id = "g",
                                  .service = "test",
                                  .topics = topics,
                                  .ntopics = 1,
                                  .transform = copy_transform};
    kafka_pipeline_conf_t bad = conf;
    bad.group_id = NULL;
    assert_null(kafka_pipeline_create(&loop, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "group_id"));
    bad = conf;
    bad.ntopics = 0;
    assert_null(kafka_pipeline_create(&loop, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "topics"));
    bad = conf;
    bad.transform = NULL;
    assert_null(kafka_pipeline_create(&loop, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "transform"));
    bad = conf;
    bad.transform_batch = batch_noop; /* one handler, not two */
    assert_null(kafka_pipeline_create(&loop, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "not both"));
    bad = conf;
    bad.timers_topic = "in";
    assert_null(kafka_pipeline_create(&loop, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "timers_topic"));

    /* created, never started: destroy alone is enough */
    kafka_pipeline_t *p = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(kafka_pipeline_add_timer(p, "t", 1000, noop_tick, NULL), -1); /* no timers_topic */
    assert_false(kafka_pipeline_ready(p));
    assert_false(kafka_pipeline_paused(p));
    kafka_pipeline_destroy(p);
    kafka_pipeline_destroy(NULL);

    /* created, stopped without a start: done comes from the loop */
    p = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    assert_non_null(p);
    int done = 0;
    kafka_pipeline_stop(p, count_done, &done);
    assert_int_equal(done, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    kafka_pipeline_destroy(p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct {
    kafka_pipeline_t *p;
    int done, fatal_calls;
} init_run_t;

static void init_run_done(void *arg)
{
    ((init_run_t *)arg)->done++;
}

static void init_run_fatal(void *ctx, const char *why)
{
    ((init_run_t *)ctx)->fatal_calls++;
}

static void stop_on_timer(uv_timer_t *t)
{
    init_run_t *r = t->data;
    kafka_pipeline_stop(r->p, init_run_done, r);
    uv_close((uv_handle_t *)t, NULL);
}

/* The broker is unreachable, so init_transactions keeps retrying on its
 * worker; a stop must still complete, without on_fatal, and free the loop. */
static void test_pipeline_stop_while_initialising(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    init_run_t r = {0};
    const char *topics[] = {"in"};
    char err[256];
    kafka_pipeline_conf_t conf = {.bootstrap_servers = "127.0.0.1:1",
                                  .group_id = "g",
                                  .service = "test",
                                  .topics = topics,
                                  .ntopics = 1,
                                  .transform = copy_transform,
                                  .ctx = &r,
                                  .on_fatal = init_run_fatal};
    r.p = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    assert_non_null(r.p);
    assert_int_equal(kafka_pipeline_start(r.p), 0);
    assert_int_equal(kafka_pipeline_start(r.p), -1); /* only once */
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &r;
    uv_timer_start(&t, stop_on_timer, 300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.fatal_calls, 0);
    assert_false(kafka_pipeline_ready(r.p));
    kafka_pipeline_destroy(r.p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- Against the mock cluster ----------------------------------------------- */

typedef struct {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[256];
} mock_t;

static void mock_start(mock_t *m, const char *const *topics, size_t n)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(m->rk);
    m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
    assert_non_null(m->mc);
    snprintf(m->bootstraps, sizeof(m->bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rd_kafka_mock_topic_create(m->mc, topics[i], 3, 1), 0);
    }
}

static void mock_stop(mock_t *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

/* Record i: key "k<i>", value "v<i>" ("BAD-<i>" when i == bad), header
 * trace_id "t<i>", partition i % 3. */
static void produce_inputs(const char *bootstraps, const char *topic, int n, int bad)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr));
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    for (int i = 0; i < n; i++) {
        char key[16], val[16], trace[16];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), i == bad ? "BAD-%d" : "v%d", i);
        snprintf(trace, sizeof(trace), "t%d", i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "trace_id", -1, trace, -1);
        assert_int_equal(rd_kafka_producev(
                             rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(i % 3),
                             RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, strlen(val)),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                         0);
    }
    assert_int_equal(rd_kafka_flush(rk, 10000), 0);
    rd_kafka_destroy(rk);
}

/* A record read back, detached from librdkafka (a message keeps its client
 * alive, so nothing may outlive rd_kafka_destroy()). */
typedef struct {
    char key[32], value[64];
    int32_t partition;
    int64_t offset;
    rd_kafka_headers_t *hdrs; /* owned, may be NULL */
} rec_t;

static void recs_free(rec_t *recs, int n)
{
    for (int i = 0; i < n; i++) {
        if (recs[i].hdrs) {
            rd_kafka_headers_destroy(recs[i].hdrs);
        }
    }
}

/* Reads partitions 0..2 of `topic` from the start until `want` records came
 * (and half a second more, to see extras) or 10 s passed. Returns the count. */
static int read_topic(const char *bootstraps, const char *topic, rec_t *out, int max, int want)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    for (int p = 0; p < 3; p++) {
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0;
    uint64_t deadline = uv_hrtime() + 10000000000ULL, extra = 0;
    while (uv_hrtime() < deadline && (!extra || uv_hrtime() < extra)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            continue;
        }
        if (!m->err && n < max) {
            rec_t *r = &out[n++];
            rd_kafka_headers_t *h = NULL;
            snprintf(r->key, sizeof(r->key), "%.*s", (int)m->key_len, (const char *)m->key);
            snprintf(r->value, sizeof(r->value), "%.*s", (int)m->len, (const char *)m->payload);
            r->partition = m->partition;
            r->offset = m->offset;
            r->hdrs = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_headers_copy(h)
                                                                                    : NULL;
            if (n >= want && !extra) {
                extra = uv_hrtime() + 500000000ULL;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

#define NIN 30

typedef struct {
    pthread_mutex_t mu;
    mock_t *mock;
    const char *out_topic;
    int retry_index, abort_index; /* -1: none */
    bool fence_first, always_retry;
    int presented[NIN], total_presented;
    int64_t offset_of[NIN];
    int64_t seq[3][NIN * 2];
    int nseq[3];
    bool missing_trace, api_wrong;
    /* batch mode: the handler's calls; the first one asks to retry */
    bool batch_mode;
    int batch_calls, max_seen_batch;
    /* timers: each tick's slot as presented; tick_retry asks once to retry
     * the first slot, tick_bad rejects the second one */
    const char *timers_topic;
    int64_t ticks[256];
    int nticks;
    bool tick_retry, tick_bad;
    double want_ticks, want_out;
    metric_t *m_ticks, *m_produced;
    /* loop thread */
    kafka_pipeline_t *p;
    metrics_t *metrics;
    metric_t *m_txn;
    uv_timer_t watch;
    double want_committed;
    bool stop_requested, saw_ready, ready_at_fatal, stop_when_paused, saw_paused;
    int stopped, fatal_calls;
    char fatal_why[512];
    uint64_t deadline;
} run_t;

static int index_of(const rd_kafka_message_t *in)
{
    char key[16] = "";
    snprintf(key, sizeof(key), "%.*s", (int)in->key_len, (const char *)in->key);
    int i = atoi(key + 1);
    return i >= 0 && i < NIN ? i : 0;
}

static kafka_verdict_t test_transform(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out, char *reason,
                                      size_t reasonlen)
{
    run_t *r = ctx;
    int i = index_of(in);
    pthread_mutex_lock(&r->mu);
    bool first = r->presented[i]++ == 0;
    int total = ++r->total_presented;
    r->offset_of[i] = in->offset;
    if (in->partition >= 0 && in->partition < 3 && r->nseq[in->partition] < NIN * 2) {
        r->seq[in->partition][r->nseq[in->partition]++] = in->offset;
    }
    pthread_mutex_unlock(&r->mu);

    if (in->len >= 3 && memcmp(in->payload, "BAD", 3) == 0) {
        snprintf(reason, reasonlen, "value starts with BAD");
        return KAFKA_BAD_INPUT;
    }
    if ((i == r->retry_index && first) || r->always_retry) {
        snprintf(reason, reasonlen, "test retry");
        return KAFKA_RETRY;
    }
    if (i == r->abort_index && first) {
        /* The commit of this record's transaction will fail, abortably. */
        rd_kafka_mock_push_request_errors(r->mock->mc, API_END_TXN, 1,
                                          RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    }
    if (r->fence_first && total == 1) {
        rd_kafka_mock_push_request_errors(r->mock->mc, API_END_TXN, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
    }
    char trace[32];
    if (kafka_header_copy(in, "trace_id", trace, sizeof(trace)) < 0) {
        r->missing_trace = true;
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "trace_id", -1, trace, -1);
    if (kafka_out_add(out, r->out_topic, in->key, in->key_len, in->payload, in->len, h) != 0) {
        return KAFKA_RETRY;
    }
    return KAFKA_OK;
}

static void run_stopped(void *arg)
{
    ((run_t *)arg)->stopped++;
}

static void run_stop(run_t *r)
{
    if (r->stop_requested) {
        return;
    }
    r->stop_requested = true;
    uv_close((uv_handle_t *)&r->watch, NULL);
    kafka_pipeline_stop(r->p, run_stopped, r);
}

static void run_fatal(void *ctx, const char *why)
{
    run_t *r = ctx;
    r->fatal_calls++;
    snprintf(r->fatal_why, sizeof(r->fatal_why), "%s", why);
    r->ready_at_fatal = kafka_pipeline_ready(r->p);
    run_stop(r); /* what a service does: lifecycle_stop() */
}

static void on_watch(uv_timer_t *t)
{
    run_t *r = t->data;
    if (kafka_pipeline_ready(r->p)) {
        r->saw_ready = true;
    }
    if (kafka_pipeline_paused(r->p)) {
        r->saw_paused = true;
    }
    bool ticks_done = r->want_ticks > 0 && metric_value(r->m_ticks, "t", "committed") >= r->want_ticks;
    bool out_done = r->want_out > 0 && metric_value(r->m_produced, r->out_topic) >= r->want_out;
    bool txn_done =
        r->want_ticks == 0 && r->want_out == 0 && metric_value(r->m_txn, "committed") >= r->want_committed;
    if (txn_done || ticks_done || out_done || uv_now(t->loop) > r->deadline ||
        (r->stop_when_paused && r->saw_paused && metric_value(r->m_txn, "aborted") >= 2)) {
        run_stop(r);
    }
}

static kafka_verdict_t test_batch(void *ctx, kafka_in_t *in)
{
    run_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    int call = r->batch_calls++;
    if ((int)kafka_in_count(in) > r->max_seen_batch) {
        r->max_seen_batch = (int)kafka_in_count(in);
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < kafka_in_count(in); i++) {
        const rd_kafka_message_t *m = kafka_in_msg(in, i);
        int k = index_of(m);
        pthread_mutex_lock(&r->mu);
        r->presented[k]++;
        pthread_mutex_unlock(&r->mu);
        /* outputs first, then the rejection: they must be dropped */
        if (kafka_out_add(kafka_in_out(in, i), r->out_topic, m->key, m->key_len, m->payload, m->len, NULL) !=
            0) {
            r->api_wrong = true;
        }
        if (m->len >= 3 && memcmp(m->payload, "BAD", 3) == 0) {
            kafka_in_reject(in, i, "value starts with BAD");
        }
    }
    if (kafka_in_msg(in, kafka_in_count(in)) || kafka_in_out(in, kafka_in_count(in))) {
        r->api_wrong = true; /* out of range must be NULL (no assert off the test's thread) */
    }
    kafka_in_reject(in, kafka_in_count(in), "out of range: ignored");
    return call == 0 ? KAFKA_RETRY : KAFKA_OK;
}

static kafka_verdict_t test_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                                 size_t reasonlen)
{
    run_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    int k = r->nticks < 256 ? r->nticks++ : 255;
    r->ticks[k] = slot;
    pthread_mutex_unlock(&r->mu);
    if (kafka_timer_slot(now_ms, 100) < slot) {
        r->api_wrong = true; /* a slot never runs before its time */
    }
    char v[24];
    snprintf(v, sizeof(v), "%" PRId64, slot);
    if (kafka_out_add(out, r->out_topic, "t", 1, v, strlen(v), NULL) != 0) {
        return KAFKA_RETRY;
    }
    if (r->tick_retry && k == 0) {
        snprintf(reason, reasonlen, "first try fails");
        return KAFKA_RETRY;
    }
    if (r->tick_bad && k == 2) {
        snprintf(reason, reasonlen, "no data for this slot");
        return KAFKA_BAD_INPUT;
    }
    return KAFKA_OK;
}

static void run_pipeline(run_t *r, const char *topic, const char *group, size_t max_batch)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *topics[] = {topic};
    char err[256];
    kafka_pipeline_conf_t conf = {.bootstrap_servers = r->mock->bootstraps,
                                  .group_id = group,
                                  .transactional_id = group,
                                  .service = "test",
                                  .topics = topics,
                                  .ntopics = topic ? 1 : 0,
                                  .transform = r->batch_mode || !topic ? NULL : test_transform,
                                  .transform_batch = r->batch_mode ? test_batch : NULL,
                                  .ctx = r,
                                  .metrics = r->metrics,
                                  .max_batch = max_batch,
                                  .on_fatal = run_fatal,
                                  .timers_topic = r->timers_topic};
    r->p = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    if (!r->p) {
        fail_msg("kafka_pipeline_create: %s", err);
    }
    if (r->timers_topic) {
        assert_int_equal(kafka_pipeline_add_timer(r->p, "t", 100, test_tick, r), 0);
        assert_int_equal(kafka_pipeline_add_timer(r->p, "t", 100, test_tick, r), -1); /* duplicate */
    }
    r->m_txn = metrics_counter(r->metrics, "kafka_transactions_total", "", "result");
    r->m_ticks = metrics_counter(r->metrics, "kafka_timer_ticks_total", "", "timer,result");
    r->m_produced = metrics_counter(r->metrics, "kafka_messages_produced_total", "", "topic");
    assert_int_equal(kafka_pipeline_start(r->p), 0);
    if (r->timers_topic) {
        assert_int_equal(kafka_pipeline_add_timer(r->p, "late", 100, test_tick, r), -1); /* after start */
    }
    uv_timer_init(&loop, &r->watch);
    r->watch.data = r;
    uv_timer_start(&r->watch, on_watch, 20, 20);
    r->deadline = uv_now(&loop) + 40000;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r->stopped, 1);
    kafka_pipeline_destroy(r->p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void run_init(run_t *r, mock_t *m, const char *out_topic)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->mock = m;
    r->out_topic = out_topic;
    r->retry_index = r->abort_index = -1;
    r->metrics = metrics_create();
}

static void run_deinit(run_t *r)
{
    metrics_destroy(r->metrics);
    pthread_mutex_destroy(&r->mu);
}

/* One record per transaction (max_batch 1) makes every step observable:
 * record 12 asks to retry once, the commit of record 20 fails once (abortable),
 * record 7 is bad input. Each of 12 and 20 must be presented exactly twice,
 * every other record once, each partition in order with only the rewound
 * offset repeated, and the bad record must be in the DLQ once with its reason. */
static void test_mock_retry_abort_and_dlq(void **state)
{
    (void)state;
    const char *topics[] = {"in-a", "out-a", "in-a.dlq"};
    mock_t m;
    mock_start(&m, topics, 3);
    produce_inputs(m.bootstraps, "in-a", NIN, 7);
    run_t r;
    run_init(&r, &m, "out-a");
    r.retry_index = 12;
    r.abort_index = 20;
    r.want_committed = NIN;
    run_pipeline(&r, "in-a", "g-retry", 1);

    assert_int_equal(r.fatal_calls, 0);
    assert_true(r.saw_ready);
    assert_false(r.missing_trace);
    for (int i = 0; i < NIN; i++) {
        int want = i == 12 || i == 20 ? 2 : 1;
        if (r.presented[i] != want) {
            fail_msg("record %d: expected %d presentation(s), got %d", i, want, r.presented[i]);
        }
    }
    for (int p = 0; p < 3; p++) {
        int repeats = 0;
        assert_int_equal(r.seq[p][0], 0);
        for (int k = 1; k < r.nseq[p]; k++) {
            int64_t a = r.seq[p][k - 1], b = r.seq[p][k];
            if (b == a) {
                repeats++;
            } else if (b != a + 1) {
                fail_msg("partition %d: offset %" PRId64 " followed by %" PRId64 " (expected in order)", p, a,
                         b);
            }
        }
        assert_int_equal(r.seq[p][r.nseq[p] - 1], NIN / 3 - 1); /* reached the end */
        /* 12 and 20 live on partitions 0 and 2 */
        assert_int_equal(repeats, p == 0 || p == 2 ? 1 : 0);
    }
    metric_t *txn = metrics_counter(r.metrics, "kafka_transactions_total", "", "result");
    metric_t *consumed = metrics_counter(r.metrics, "kafka_messages_consumed_total", "", "topic");
    metric_t *produced = metrics_counter(r.metrics, "kafka_messages_produced_total", "", "topic");
    metric_t *dlq = metrics_counter(r.metrics, "dlq_messages_total", "", "topic");
    metric_t *paused = metrics_gauge(r.metrics, "kafka_consumer_paused", "", NULL);
    assert_float_equal(metric_value(txn, "committed"), NIN, 0);
    assert_float_equal(metric_value(txn, "aborted"), 2, 0);
    assert_float_equal(metric_value(consumed, "in-a"), NIN + 2, 0);
    assert_float_equal(metric_value(produced, "out-a"), NIN - 1, 0); /* committed outputs only */
    assert_float_equal(metric_value(produced, "in-a.dlq"), 1, 0);
    assert_float_equal(metric_value(dlq, "in-a"), 1, 0);
    assert_float_equal(metric_value(paused), 0, 0);
    char *text = metrics_render(r.metrics, NULL);
    assert_non_null(strstr(text, "kafka_batch_duration_seconds_count 32\n"));
    free(text);

    rec_t dl[4];
    int n = read_topic(m.bootstraps, "in-a.dlq", dl, 4, 1);
    assert_int_equal(n, 1);
    char b[64], want[32];
    assert_string_equal(dl[0].key, "k7");
    assert_string_equal(dl[0].value, "BAD-7"); /* original bytes */
    assert_string_equal(hdr(dl[0].hdrs, "dlq.error.reason", b, sizeof(b)), "value starts with BAD");
    assert_string_equal(hdr(dl[0].hdrs, "dlq.original.topic", b, sizeof(b)), "in-a");
    assert_string_equal(hdr(dl[0].hdrs, "dlq.original.partition", b, sizeof(b)), "1");
    snprintf(want, sizeof(want), "%" PRId64, r.offset_of[7]);
    assert_string_equal(hdr(dl[0].hdrs, "dlq.original.offset", b, sizeof(b)), want);
    assert_string_equal(hdr(dl[0].hdrs, "dlq.service", b, sizeof(b)), "test");
    assert_true(strlen(hdr(dl[0].hdrs, "dlq.failed_at", b, sizeof(b))) >= 13);
    assert_string_equal(hdr(dl[0].hdrs, "trace_id", b, sizeof(b)), "t7");
    recs_free(dl, n);

    /* outputs carry the input's trace id, read by the transform with
     * kafka_header_copy() (the mock keeps aborted records too, so the exact
     * count is checked against the real broker instead) */
    static rec_t outs[64];
    n = read_topic(m.bootstraps, "out-a", outs, 64, NIN - 1);
    assert_true(n >= NIN - 1);
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "t%s", outs[i].key + 1);
        assert_string_equal(hdr(outs[i].hdrs, "trace_id", b, sizeof(b)), want);
    }
    recs_free(outs, n);
    run_deinit(&r);
    mock_stop(&m);
}

/* A fenced producer (EndTxn answers PRODUCER_FENCED) stops the pipeline:
 * on_fatal once, nothing committed, nothing more transformed. */
static void test_mock_fenced_is_fatal(void **state)
{
    (void)state;
    const char *topics[] = {"in-b", "out-b"};
    mock_t m;
    mock_start(&m, topics, 2);
    produce_inputs(m.bootstraps, "in-b", 6, -1);
    run_t r;
    run_init(&r, &m, "out-b");
    r.fence_first = true;
    r.want_committed = 1000; /* never: the stop comes from on_fatal */
    run_pipeline(&r, "in-b", "g-fenced", 1);

    assert_int_equal(r.fatal_calls, 1);
    if (!strstr(r.fatal_why, "FENCED") && !strstr(r.fatal_why, "fenced")) {
        fail_msg("expected a fencing reason, got \"%s\"", r.fatal_why);
    }
    assert_false(r.ready_at_fatal);
    assert_int_equal(r.total_presented, 1);
    metric_t *txn = metrics_counter(r.metrics, "kafka_transactions_total", "", "result");
    assert_float_equal(metric_value(txn, "committed"), 0, 0);
    run_deinit(&r);
    mock_stop(&m);
}

/* A transform that keeps failing leaves the pipeline backing off (paused);
 * a stop then still completes at once and frees the loop. */
static void test_mock_stop_while_backing_off(void **state)
{
    (void)state;
    const char *topics[] = {"in-d", "out-d"};
    mock_t m;
    mock_start(&m, topics, 2);
    produce_inputs(m.bootstraps, "in-d", 3, -1);
    run_t r;
    run_init(&r, &m, "out-d");
    r.always_retry = true;
    r.stop_when_paused = true;
    r.want_committed = 1000;
    run_pipeline(&r, "in-d", "g-backoff", 0);

    assert_int_equal(r.fatal_calls, 0);
    assert_true(r.saw_paused);
    metric_t *txn = metrics_counter(r.metrics, "kafka_transactions_total", "", "result");
    metric_t *paused = metrics_gauge(r.metrics, "kafka_consumer_paused", "", NULL);
    assert_float_equal(metric_value(txn, "committed"), 0, 0);
    assert_true(metric_value(txn, "aborted") >= 2);
    assert_float_equal(metric_value(paused), 0, 0); /* cleared by the stop */
    /* every attempt started again from the first record of its partition */
    for (int p = 0; p < 3; p++) {
        for (int k = 0; k < r.nseq[p]; k++) {
            if (r.seq[p][k] != 0) {
                fail_msg("partition %d: expected every retry at offset 0, got %" PRId64, p, r.seq[p][k]);
            }
        }
    }
    run_deinit(&r);
    mock_stop(&m);
}

/* Batch mode: the first call asks to retry (everything rewinds and comes
 * again), then each batch commits with its BAD record alone in the DLQ and the
 * others' outputs once (counted in the metrics; the mock keeps aborted records,
 * so the exact read-back is the integration test's). */
static void test_mock_batch_handler(void **state)
{
    (void)state;
    const char *topics[] = {"in-e", "out-e", "in-e.dlq"};
    mock_t m;
    mock_start(&m, topics, 3);
    produce_inputs(m.bootstraps, "in-e", NIN, 13);
    run_t r;
    run_init(&r, &m, "out-e");
    r.batch_mode = true;
    r.want_out = NIN - 1;
    run_pipeline(&r, "in-e", "g-batch", 10);

    assert_int_equal(r.fatal_calls, 0);
    assert_false(r.api_wrong);
    assert_true(r.batch_calls >= 2);
    metric_t *produced = metrics_counter(r.metrics, "kafka_messages_produced_total", "", "topic");
    metric_t *dlq = metrics_counter(r.metrics, "dlq_messages_total", "", "topic");
    metric_t *txn = metrics_counter(r.metrics, "kafka_transactions_total", "", "result");
    assert_float_equal(metric_value(produced, "out-e"), NIN - 1, 0);
    assert_float_equal(metric_value(produced, "in-e.dlq"), 1, 0);
    assert_float_equal(metric_value(dlq, "in-e"), 1, 0);
    assert_true(metric_value(txn, "aborted") >= 1);
    int again = 0;
    for (int i = 0; i < NIN; i++) {
        if (r.presented[i] < 1) {
            fail_msg("record %d was never presented", i);
        }
        again += r.presented[i] > 1;
    }
    assert_true(again >= 1); /* the retried batch came again */
    rec_t dl[4];
    int n = read_topic(m.bootstraps, "in-e.dlq", dl, 4, 1);
    assert_int_equal(n, 1);
    char b[64];
    assert_string_equal(dl[0].key, "k13");
    assert_string_equal(hdr(dl[0].hdrs, "dlq.error.reason", b, sizeof(b)), "value starts with BAD");
    recs_free(dl, n);
    run_deinit(&r);
    mock_stop(&m);
}

/* Reads the slots ("<slot>" values) of `topic` in order. */
static int read_slots(const char *bootstraps, const char *topic, int64_t *slots, int max)
{
    static rec_t recs[256];
    int n = read_topic(bootstraps, topic, recs, max < 256 ? max : 256, 1);
    for (int i = 0; i < n; i++) {
        slots[i] = atoll(recs[i].value);
    }
    recs_free(recs, n);
    return n;
}

/* A pipeline of a timer alone (no input topic): the first try of the first
 * slot fails and runs again, the third tick is bad input (marked, no output),
 * the others each produce their slot. A second run with the same ids reads the
 * markers back and goes on after them: no slot twice. */
static void test_mock_timer_ticks(void **state)
{
    (void)state;
    const char *topics[] = {"out-t"};
    mock_t m;
    mock_start(&m, topics, 1);
    assert_int_equal(rd_kafka_mock_topic_create(m.mc, "svc.timers", 1, 1), 0);
    run_t r;
    run_init(&r, &m, "out-t");
    r.timers_topic = "svc.timers";
    r.tick_retry = r.tick_bad = true;
    r.want_ticks = 5;
    run_pipeline(&r, NULL, "g-timer", 0);
    assert_int_equal(r.fatal_calls, 0);
    assert_false(r.api_wrong);
    assert_true(r.saw_ready);
    metric_t *ticks = metrics_counter(r.metrics, "kafka_timer_ticks_total", "", "timer,result");
    assert_true(metric_value(ticks, "t", "committed") >= 5);
    assert_float_equal(metric_value(ticks, "t", "skipped"), 1, 0);
    assert_true(metric_value(ticks, "t", "aborted") >= 1);
    assert_true(r.nticks >= 7);
    assert_int_equal(r.ticks[1], r.ticks[0]); /* the retried slot came again */
    for (int k = 2; k < r.nticks; k++) {
        if (r.ticks[k] != r.ticks[k - 1] + 1) {
            fail_msg("tick %d: slot %" PRId64 " after %" PRId64 " (expected the next one)", k, r.ticks[k],
                     r.ticks[k - 1]);
        }
    }
    int64_t last = r.ticks[r.nticks - 1], bad = r.ticks[2];
    int64_t first_run[256];
    int n1 = read_slots(m.bootstraps, "out-t", first_run, 256);
    assert_true(n1 >= 4);
    run_deinit(&r);

    run_init(&r, &m, "out-t");
    r.timers_topic = "svc.timers";
    r.want_ticks = 3;
    run_pipeline(&r, NULL, "g-timer-2", 0); /* the mock's group would wait for the first member's session */
    assert_int_equal(r.fatal_calls, 0);
    assert_true(r.nticks >= 3);
    if (r.ticks[0] <= last) {
        fail_msg("the second run started at slot %" PRId64 ", not after the first run's last %" PRId64,
                 r.ticks[0], last);
    }
    run_deinit(&r);

    /* Every slot in out-t at most once, the bad one absent (a retried tick
     * produced nothing, so the mock's keeping aborted records does not show). */
    int64_t slots[256];
    int n = read_slots(m.bootstraps, "out-t", slots, 256);
    assert_true(n >= n1 + 3);
    int dup = 0;
    for (int a = 0; a < n; a++) {
        for (int b = a + 1; b < n; b++) {
            dup += slots[a] == slots[b];
        }
    }
    assert_int_equal(dup, 0);
    for (int a = 0; a < n; a++) {
        if (slots[a] == bad) {
            fail_msg("slot %" PRId64 " was skipped (bad input) but has an output", bad);
        }
    }
    mock_stop(&m);
}

typedef struct {
    uv_thread_t loop_thread;
    int delivered, ok, off_loop, at_done;
} deliveries_t;

static void on_delivery(void *arg, rd_kafka_resp_err_t err)
{
    deliveries_t *d = arg;
    uv_thread_t self = uv_thread_self();
    d->delivered++;
    d->ok += err == RD_KAFKA_RESP_ERR_NO_ERROR;
    d->off_loop += !uv_thread_equal(&self, &d->loop_thread);
}

static void on_producer_closed(void *arg)
{
    deliveries_t *d = arg;
    d->at_done = d->delivered;
}

static void never_called(void *arg, rd_kafka_resp_err_t err)
{
    fail_msg("delivery callback of a refused record");
}

/* Records sent right before close are flushed and their callbacks delivered on
 * the loop thread before done; afterwards sends are refused. */
static void test_mock_producer_close_flushes(void **state)
{
    (void)state;
    const char *topics[] = {"out-c"};
    mock_t m;
    mock_start(&m, topics, 1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    metrics_t *reg = metrics_create();
    char err[256];
    kafka_producer_t *p = kafka_producer_create(&loop, m.bootstraps, reg, err, sizeof(err));
    assert_non_null(p);
    deliveries_t d = {.loop_thread = uv_thread_self()};
    for (int i = 0; i < 10; i++) {
        char v[32];
        snprintf(v, sizeof(v), "event-%d", i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "trace_id", -1, "rest-1", -1);
        assert_int_equal(kafka_producer_send(p, "out-c", "k", 1, v, strlen(v), h, on_delivery, &d), 0);
    }
    kafka_producer_close(p, on_producer_closed, &d);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    assert_int_equal(kafka_producer_send(p, "out-c", "k", 1, "late", 4, h, never_called, NULL),
                     RD_KAFKA_RESP_ERR__STATE);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(d.at_done, 10);
    assert_int_equal(d.ok, 10);
    assert_int_equal(d.off_loop, 0);
    metric_t *produced = metrics_counter(reg, "kafka_messages_produced_total", "", "topic");
    assert_float_equal(metric_value(produced, "out-c"), 10, 0);
    kafka_producer_destroy(p);
    assert_int_equal(uv_loop_close(&loop), 0);

    rec_t recs[16];
    int n = read_topic(m.bootstraps, "out-c", recs, 16, 10);
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++) {
        char b[16];
        assert_string_equal(hdr(recs[i].hdrs, "trace_id", b, sizeof(b)), "rest-1");
    }
    recs_free(recs, n);
    metrics_destroy(reg);
    mock_stop(&m);
}

/* ---- Dead letters that must always fit, readiness, static membership ---------- */

static const char *hdr_or_null(const rd_kafka_headers_t *h, const char *name, char *buf, size_t buflen)
{
    return kafka_headers_find(h, name, NULL) ? hdr(h, name, buf, buflen) : NULL;
}

/* A record well under the limit is dead-lettered whole, original headers and all. */
static void test_dlq_build_whole(void **state)
{
    (void)state;
    char b[64];
    rd_kafka_headers_t *orig = rd_kafka_headers_new(1);
    rd_kafka_header_add(orig, "trace_id", -1, "t-1", -1);
    kafka_dlq_src_t src = {.topic = "in",
                           .partition = 1,
                           .offset = 7,
                           .key = "k",
                           .keylen = 1,
                           .value = "not avro",
                           .len = 8,
                           .headers = orig};
    kafka_dlq_t d;
    assert_int_equal(kafka_dlq_build(&src, "svc", "bad", 5, 1000000, &d), 0);
    assert_false(d.truncated);
    assert_int_equal(d.keylen, 1);
    assert_int_equal(d.len, 8);
    assert_string_equal(hdr(d.headers, "trace_id", b, sizeof(b)), "t-1");
    assert_string_equal(hdr(d.headers, "dlq.error.reason", b, sizeof(b)), "bad");
    assert_null(hdr_or_null(d.headers, "dlq.truncated", b, sizeof(b)));
    assert_null(hdr_or_null(d.headers, "dlq.original.size", b, sizeof(b)));
    rd_kafka_headers_destroy(d.headers);
    rd_kafka_headers_destroy(orig);
}

/* A 1 MiB value over the producer's 1,000,000-byte limit keeps a 64 KiB prefix,
 * its coordinates, its reason and its size, and says it was cut. */
static void test_dlq_build_truncates_a_huge_value(void **state)
{
    (void)state;
    char b[64];
    size_t big = 1 << 20;
    char *value = malloc(big);
    assert_non_null(value);
    memset(value, 'x', big);
    rd_kafka_headers_t *orig = rd_kafka_headers_new(1);
    rd_kafka_header_add(orig, "trace_id", -1, "t-2", -1);
    kafka_dlq_src_t src = {.topic = "telemetry",
                           .partition = 2,
                           .offset = 99,
                           .key = "svc-1",
                           .keylen = 5,
                           .value = value,
                           .len = big,
                           .headers = orig};
    kafka_dlq_t d;
    assert_int_equal(kafka_dlq_build(&src, "optimizer", "avro: bad magic byte", 1700000000000LL, 1000000, &d),
                     0);
    assert_true(d.truncated);
    assert_int_equal(d.len, KAFKA_DLQ_PREFIX_BYTES);
    assert_int_equal(d.keylen, 5);
    assert_true(kafka_record_size(d.keylen, d.len, d.headers) <= 1000000);
    assert_string_equal(hdr(d.headers, "dlq.truncated", b, sizeof(b)), "true");
    assert_string_equal(hdr(d.headers, "dlq.original.size", b, sizeof(b)), "1048576");
    assert_string_equal(hdr(d.headers, "dlq.error.reason", b, sizeof(b)), "avro: bad magic byte");
    assert_string_equal(hdr(d.headers, "dlq.original.topic", b, sizeof(b)), "telemetry");
    assert_string_equal(hdr(d.headers, "dlq.original.partition", b, sizeof(b)), "2");
    assert_string_equal(hdr(d.headers, "dlq.original.offset", b, sizeof(b)), "99");
    assert_string_equal(hdr(d.headers, "dlq.service", b, sizeof(b)), "optimizer");
    assert_string_equal(hdr(d.headers, "trace_id", b, sizeof(b)), "t-2"); /* small headers are kept */
    assert_null(hdr_or_null(d.headers, "dlq.original.key.size", b, sizeof(b)));
    assert_null(hdr_or_null(d.headers, "dlq.original.headers.dropped", b, sizeof(b)));
    rd_kafka_headers_destroy(d.headers);

    /* Exactly at the limit: still whole. One byte more: cut. */
    size_t fit = 0;
    assert_int_equal(kafka_dlq_build(&src, "optimizer", "r", 1, (size_t)-1, &d), 0);
    fit = kafka_record_size(d.keylen, d.len, d.headers);
    rd_kafka_headers_destroy(d.headers);
    assert_int_equal(kafka_dlq_build(&src, "optimizer", "r", 1, fit, &d), 0);
    assert_false(d.truncated);
    assert_int_equal(d.len, big);
    rd_kafka_headers_destroy(d.headers);
    assert_int_equal(kafka_dlq_build(&src, "optimizer", "r", 1, fit - 1, &d), 0);
    assert_true(d.truncated);
    rd_kafka_headers_destroy(d.headers);

    rd_kafka_headers_destroy(orig);
    free(value);
}

/* A huge key and huge headers are cut too (and said so), and a limit smaller
 * than the prefix shrinks the prefix: the dead letter always fits. */
static void test_dlq_build_cuts_key_and_headers(void **state)
{
    (void)state;
    char b[64];
    char key[5000], hval[20000];
    memset(key, 'k', sizeof(key));
    memset(hval, 'h', sizeof(hval));
    rd_kafka_headers_t *orig = rd_kafka_headers_new(2);
    rd_kafka_header_add(orig, "trace_id", -1, "t-3", -1);
    rd_kafka_header_add(orig, "blob", -1, hval, sizeof(hval));
    kafka_dlq_src_t src = {.topic = "in",
                           .partition = 0,
                           .offset = 1,
                           .key = key,
                           .keylen = sizeof(key),
                           .value = "v",
                           .len = 1,
                           .headers = orig};
    kafka_dlq_t d;
    assert_int_equal(kafka_dlq_build(&src, "svc", "too big", 1, 10000, &d), 0);
    assert_true(d.truncated);
    assert_int_equal(d.keylen, KAFKA_DLQ_KEY_BYTES);
    assert_int_equal(d.len, 1);
    assert_string_equal(hdr(d.headers, "dlq.original.key.size", b, sizeof(b)), "5000");
    assert_string_equal(hdr(d.headers, "dlq.original.headers.dropped", b, sizeof(b)), "2");
    assert_null(hdr_or_null(d.headers, "trace_id", b, sizeof(b)));
    assert_null(hdr_or_null(d.headers, "blob", b, sizeof(b)));
    assert_string_equal(hdr(d.headers, "dlq.original.offset", b, sizeof(b)), "1");
    assert_true(kafka_record_size(d.keylen, d.len, d.headers) <= 10000);
    rd_kafka_headers_destroy(d.headers);

    char *value = calloc(1, 200000);
    assert_non_null(value);
    src = (kafka_dlq_src_t){.topic = "in", .partition = 0, .offset = 2, .value = value, .len = 200000};
    assert_int_equal(kafka_dlq_build(&src, "svc", "too big", 1, 20000, &d), 0);
    assert_true(d.truncated);
    assert_true(d.len > 0 && d.len < 20000);
    assert_true(kafka_record_size(d.keylen, d.len, d.headers) <= 20000);
    rd_kafka_headers_destroy(d.headers);
    free(value);
    rd_kafka_headers_destroy(orig);
}

static void test_stats_brokers(void **state)
{
    (void)state;
    const char *json = "{\"name\":\"c#consumer-1\",\"ts\":123456789,\"brokers\":{"
                       "\"127.0.0.1:9092/bootstrap\":{\"nodeid\":-1,\"state\":\"INIT\",\"rx\":3},"
                       "\"127.0.0.1:9092/1\":{\"nodeid\":1,\"state\":\"UP\",\"rx\":40},"
                       "\"GroupCoordinator\":{\"nodeid\":-1,\"state\":\"UP\",\"rx\":12}}}";
    kafka_brokers_stats_t s;
    assert_int_equal(kafka_stats_brokers(json, strlen(json), &s), 0);
    assert_int_equal(s.ts_us, 123456789);
    assert_int_equal(s.rx, 55);
    assert_int_equal(s.up, 2);
    assert_int_equal(kafka_stats_brokers("{\"brokers\":{}}", 14, &s), -1); /* no ts */
    assert_int_equal(kafka_stats_brokers("nope", 4, &s), -1);
}

static kafka_brokers_stats_t bs(int64_t ts_s, int64_t rx, int up)
{
    return (kafka_brokers_stats_t){.ts_us = ts_s * 1000000, .rx = rx, .up = up};
}

/* Reachable after a response; "all brokers down" until a response comes after
 * it; a broker that answers nothing for over KAFKA_STALL_MS (frozen) is not. */
static void test_liveness(void **state)
{
    (void)state;
    char why[128];
    kafka_liveness_t l;
    kafka_liveness_init(&l, 1000000);
    assert_true(kafka_liveness_ok(&l, 0, why, sizeof(why)));
    kafka_brokers_stats_t s = bs(2, 10, 1);
    kafka_liveness_update(&l, &s);
    s = bs(3, 20, 1);
    kafka_liveness_update(&l, &s);
    assert_true(kafka_liveness_ok(&l, 0, why, sizeof(why)));
    /* the broker stops */
    int64_t down = 3500000;
    assert_false(kafka_liveness_ok(&l, down, why, sizeof(why)));
    assert_string_equal(why, "all brokers down");
    s = bs(4, 20, 0);
    kafka_liveness_update(&l, &s);
    assert_false(kafka_liveness_ok(&l, down, NULL, 0));
    /* a document written before the stop but read after it changes nothing */
    s = bs(3, 25, 1);
    kafka_liveness_update(&l, &s);
    assert_false(kafka_liveness_ok(&l, down, NULL, 0));
    /* it comes back */
    s = bs(5, 30, 1);
    kafka_liveness_update(&l, &s);
    assert_true(kafka_liveness_ok(&l, down, why, sizeof(why)));
    /* connections up, but no response for 6 s: frozen */
    for (int t = 6; t <= 11; t++) {
        s = bs(t, 30, 1);
        kafka_liveness_update(&l, &s);
        assert_true(kafka_liveness_ok(&l, down, NULL, 0) == (t - 5 <= KAFKA_STALL_MS / 1000));
    }
    assert_false(kafka_liveness_ok(&l, down, why, sizeof(why)));
    assert_non_null(strstr(why, "no response from any broker"));
    s = bs(12, 31, 1);
    kafka_liveness_update(&l, &s);
    assert_true(kafka_liveness_ok(&l, down, NULL, 0));
}

/* Static membership keyed by the given id, and the short session timeout. */
static void test_conf_consumer_static_member(void **state)
{
    (void)state;
    char err[256], v[64];
    size_t n = sizeof(v);
    rd_kafka_conf_t *c = kafka_conf_consumer("127.0.0.1:1", "g", "svc", "svc-host-1", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(rd_kafka_conf_get(c, "group.instance.id", v, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "svc-host-1");
    n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(c, "session.timeout.ms", v, &n), RD_KAFKA_CONF_OK);
    assert_int_equal(atoi(v), KAFKA_SESSION_TIMEOUT_MS);
    n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(c, "heartbeat.interval.ms", v, &n), RD_KAFKA_CONF_OK);
    assert_true(atoi(v) * 3 <= KAFKA_SESSION_TIMEOUT_MS);
    rd_kafka_conf_destroy(c);
    c = kafka_conf_consumer("127.0.0.1:1", "g", "svc", NULL, err, sizeof(err));
    assert_non_null(c);
    n = sizeof(v);
    v[0] = '\0';
    rd_kafka_conf_get(c, "group.instance.id", v, &n);
    assert_string_equal(v, "");
    rd_kafka_conf_destroy(c);
}

/* The first record read back from partitions 0..2 of `topic`: its value's
 * length, its first byte and a copy of its headers (NULL when none came). */
static rd_kafka_headers_t *read_first(const char *bootstraps, const char *topic, size_t *out_len,
                                      int *out_first_byte)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "reader-first", errstr, sizeof(errstr));
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    for (int p = 0; p < 3; p++) {
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_headers_t *out = NULL;
    uint64_t deadline = uv_hrtime() + 10000000000ULL;
    while (!out && uv_hrtime() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err) {
            rd_kafka_headers_t *h = NULL;
            *out_len = m->len;
            *out_first_byte = m->len ? ((const unsigned char *)m->payload)[0] : -1;
            out = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_headers_copy(h)
                                                                                : rd_kafka_headers_new(0);
        }
        if (m) {
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

/* A bad record of 1.2 MB among good ones: the pipeline's producer cannot send
 * it whole (message.max.bytes 1,000,000), so its dead letter is a 64 KiB
 * prefix marked truncated; the transaction commits and the stream goes on. */
static void test_mock_huge_bad_record_is_dead_lettered(void **state)
{
    (void)state;
    const char *topics[] = {"in-h", "out-h", "in-h.dlq"};
    mock_t m;
    mock_start(&m, topics, 3);
    size_t big = 1200000;
    char *value = malloc(big);
    assert_non_null(value);
    memset(value, 'B', big);
    memcpy(value, "BAD", 3);
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", m.bootstraps, errstr, sizeof(errstr));
    assert_int_equal(rd_kafka_conf_set(conf, "message.max.bytes", "2000000", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        const void *v = i == 1 ? value : "v";
        size_t len = i == 1 ? big : 1;
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("in-h"), RD_KAFKA_V_PARTITION(i),
                                           RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)v, len),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                         0);
    }
    assert_int_equal(rd_kafka_flush(rk, 10000), 0);
    rd_kafka_destroy(rk);
    free(value);

    run_t r;
    run_init(&r, &m, "out-h");
    r.want_committed = 3; /* one record per transaction */
    run_pipeline(&r, "in-h", "g-huge", 1);
    assert_int_equal(r.fatal_calls, 0);
    metric_t *txn = metrics_counter(r.metrics, "kafka_transactions_total", "", "result");
    metric_t *dlq = metrics_counter(r.metrics, "dlq_messages_total", "", "topic");
    assert_float_equal(metric_value(txn, "committed"), 3, 0);
    assert_float_equal(metric_value(txn, "aborted"), 0, 0);
    assert_float_equal(metric_value(dlq, "in-h"), 1, 0);

    size_t len = 0;
    int first = 0;
    char b[64];
    rd_kafka_headers_t *h = read_first(m.bootstraps, "in-h.dlq", &len, &first);
    assert_non_null(h);
    assert_int_equal(len, KAFKA_DLQ_PREFIX_BYTES);
    assert_int_equal(first, 'B');
    assert_string_equal(hdr(h, "dlq.truncated", b, sizeof(b)), "true");
    assert_string_equal(hdr(h, "dlq.original.size", b, sizeof(b)), "1200000");
    assert_string_equal(hdr(h, "dlq.original.partition", b, sizeof(b)), "1");
    assert_string_equal(hdr(h, "dlq.error.reason", b, sizeof(b)), "value starts with BAD");
    rd_kafka_headers_destroy(h);
    run_deinit(&r);
    mock_stop(&m);
}

/* /ready follows the broker: true once assigned, false with "all brokers down"
 * when the (mock) broker goes down, true again by itself when it comes back. */
typedef struct {
    kafka_pipeline_t *p;
    rd_kafka_mock_cluster_t *mc;
    uv_timer_t watch;
    int phase; /* 0 wait ready, 1 wait not ready, 2 wait ready again */
    char detail_down[128], detail_up[128];
    uint64_t deadline;
    int stopped;
} ready_run_t;

static void ready_stopped(void *arg)
{
    ((ready_run_t *)arg)->stopped++;
}

static void ready_watch(uv_timer_t *t)
{
    ready_run_t *r = t->data;
    char d[128];
    bool ready = kafka_pipeline_ready_detail(r->p, d, sizeof(d));
    if (r->phase == 0 && ready) {
        snprintf(r->detail_up, sizeof(r->detail_up), "%s", d);
        rd_kafka_mock_broker_set_down(r->mc, 1);
        r->phase = 1;
    } else if (r->phase == 1 && !ready) {
        snprintf(r->detail_down, sizeof(r->detail_down), "%s", d);
        rd_kafka_mock_broker_set_up(r->mc, 1);
        r->phase = 2;
    } else if (r->phase == 2 && ready) {
        r->phase = 3;
    }
    if (r->phase == 3 || uv_now(t->loop) > r->deadline) {
        uv_close((uv_handle_t *)&r->watch, NULL);
        kafka_pipeline_stop(r->p, ready_stopped, r);
    }
}

static kafka_verdict_t pass_transform(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out, char *reason,
                                      size_t reasonlen)
{
    return KAFKA_OK;
}

static void test_mock_ready_follows_the_broker(void **state)
{
    (void)state;
    const char *topics[] = {"in-r"};
    mock_t m;
    mock_start(&m, topics, 1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    kafka_pipeline_conf_t conf = {.bootstrap_servers = m.bootstraps,
                                  .group_id = "g-ready",
                                  .transactional_id = "g-ready",
                                  .service = "test",
                                  .topics = topics,
                                  .ntopics = 1,
                                  .transform = pass_transform};
    ready_run_t r = {.mc = m.mc};
    r.p = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    assert_non_null(r.p);
    char d[128];
    assert_false(kafka_pipeline_ready_detail(r.p, d, sizeof(d)));
    assert_string_equal(d, "starting");
    assert_int_equal(kafka_pipeline_start(r.p), 0);
    uv_timer_init(&loop, &r.watch);
    r.watch.data = &r;
    uv_timer_start(&r.watch, ready_watch, 50, 50);
    r.deadline = uv_now(&loop) + 60000;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.stopped, 1);
    if (r.phase != 3) {
        fail_msg("expected ready, then not ready, then ready again; stuck in phase %d", r.phase);
    }
    assert_string_equal(r.detail_up, "");
    assert_string_equal(r.detail_down, "all brokers down");
    kafka_pipeline_destroy(r.p);
    assert_int_equal(uv_loop_close(&loop), 0);
    mock_stop(&m);
}

int main(void)
{
    /* TEST_FILTER=test_mock* runs a subset; LOG_LEVEL=debug shows the pipeline's logs */
    log_level_t level = LOG_WARN;
    if (getenv("LOG_LEVEL")) {
        log_level_parse(getenv("LOG_LEVEL"), &level);
    }
    log_init("test_kafka", level);
    if (getenv("TEST_FILTER")) {
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_add_copies_and_owns),
        cmocka_unit_test(test_headers_find),
        cmocka_unit_test(test_dlq_headers),
        cmocka_unit_test(test_batch_offsets),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_txn_classify),
        cmocka_unit_test(test_stats_lag),
        cmocka_unit_test(test_format_partitions),
        cmocka_unit_test(test_default_transactional_id),
        cmocka_unit_test(test_timer_slot_maths),
        cmocka_unit_test(test_timer_marker_parse),
        cmocka_unit_test(test_timers_state_machine),
        cmocka_unit_test(test_in_api),
        cmocka_unit_test(test_per_record_stops_on_request),
        cmocka_unit_test(test_pipeline_create_validates),
        cmocka_unit_test(test_pipeline_stop_while_initialising),
        cmocka_unit_test(test_mock_retry_abort_and_dlq),
        cmocka_unit_test(test_mock_fenced_is_fatal),
        cmocka_unit_test(test_mock_stop_while_backing_off),
        cmocka_unit_test(test_mock_batch_handler),
        cmocka_unit_test(test_mock_timer_ticks),
        cmocka_unit_test(test_mock_producer_close_flushes),
        cmocka_unit_test(test_dlq_build_whole),
        cmocka_unit_test(test_dlq_build_truncates_a_huge_value),
        cmocka_unit_test(test_dlq_build_cuts_key_and_headers),
        cmocka_unit_test(test_stats_brokers),
        cmocka_unit_test(test_liveness),
        cmocka_unit_test(test_conf_consumer_static_member),
        cmocka_unit_test(test_mock_huge_bad_record_is_dead_lettered),
        cmocka_unit_test(test_mock_ready_follows_the_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
