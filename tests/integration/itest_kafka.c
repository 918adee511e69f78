/* Integration test of common/kafka against the real broker of the local stack
 * (./hive stack up; KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092).
 *
 * 1. kafka_producer puts N records on a fresh 3-partition topic.
 * 2. The pipeline copies them to an output topic; a few records ask for a retry
 *    once (abort, rewind, back-off) and the "BAD" ones go to the DLQ. A plain
 *    read_committed consumer then finds exactly one output per good input (no
 *    loss, no duplicate, per-key order kept) and the bad ones in <topic>.dlq
 *    with their headers; after kafka_pipeline_stop the loop closes cleanly.
 * 3. A new pipeline of the same group only sees records produced after the
 *    stop: the offsets were committed with the transactions. Its statistics
 *    then report kafka_consumer_lag 0 on every partition.
 * 4. The same data set through a batch handler (transform_batch) on fresh
 *    topics: a BAD record is rejected alone to the DLQ, the other records of
 *    its batch commit once; a batch whose handler asks to retry is aborted and
 *    replayed, which changes nothing in what read_committed readers see.
 *
 * Topic, group and transactional ids are unique per run, so runs in several
 * build directories do not meet.
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
#include <time.h>
#include <unistd.h>

#include "kafka.h"
#include "kafka_internal.h"
#include "log.h"

#define N 2000
#define NMORE 10
#define IS_BAD(i) ((i) % 100 == 37) /* 20 of the first N */
#define NBAD (N / 100)

static char bootstrap[256], in_topic[128], out_topic[128], dlq_topic[160], group[128], txn_id[128];
static bool batch_mode; /* run_pipeline uses transform_batch */

/* ---- Plain librdkafka helpers (independent of the module under test) -------- */

static rd_kafka_conf_t *plain_conf(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    return conf;
}

static int create_topics(void)
{
    const char *names[] = {in_topic, out_topic, dlq_topic};
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, plain_conf(), errstr, sizeof(errstr));
    if (!rk) {
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "Kafka is not reachable at %s (./hive stack up)\n", bootstrap);
        rd_kafka_destroy(rk);
        return -1;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_NewTopic_t *nt[3];
    for (int i = 0; i < 3; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], 3, 1, errstr, sizeof(errstr));
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, 3, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = -1;
    if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rc = n == 3 ? 0 : -1;
        for (size_t i = 0; i < n; i++) {
            if (rd_kafka_topic_result_error(res[i])) {
                fprintf(stderr, "create %s: %s\n", rd_kafka_topic_result_name(res[i]),
                        rd_kafka_topic_result_error_string(res[i]));
                rc = -1;
            }
        }
    }
    if (ev) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, 3);
    rd_kafka_destroy(rk);
    return rc;
}

/* A record read back, detached from librdkafka. */
typedef struct {
    int index; /* from the value "rec-<i>" / "BAD-<i>" */
    char value[32], key[32];
    int32_t partition;
    int64_t offset;
    rd_kafka_headers_t *hdrs;
} rec_t;

/* Reads all partitions of `topic` with isolation.level=read_committed until
 * `want` records came and 3 s passed without more, or 60 s. */
static int read_committed(const char *topic, rec_t *out, int max, int want)
{
    char errstr[256];
    rd_kafka_conf_t *conf = plain_conf();
    rd_kafka_conf_set(conf, "group.id", "itest-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", errstr, sizeof(errstr));
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
    uint64_t deadline = uv_hrtime() + 60000000000ULL, quiet = 0;
    while (uv_hrtime() < deadline && (n < want || uv_hrtime() < quiet)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            continue;
        }
        if (!m->err && n < max) {
            rec_t *r = &out[n++];
            rd_kafka_headers_t *h = NULL;
            snprintf(r->value, sizeof(r->value), "%.*s", (int)m->len, (const char *)m->payload);
            snprintf(r->key, sizeof(r->key), "%.*s", (int)m->key_len, (const char *)m->key);
            r->index = atoi(r->value + 4);
            r->partition = m->partition;
            r->offset = m->offset;
            r->hdrs = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_headers_copy(h)
                                                                                    : NULL;
            quiet = uv_hrtime() + 3000000000ULL;
        } else if (m->err) {
            fprintf(stderr, "reader: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

static void recs_free(rec_t *recs, int n)
{
    for (int i = 0; i < n; i++) {
        if (recs[i].hdrs) {
            rd_kafka_headers_destroy(recs[i].hdrs);
        }
    }
}

static const char *hdr(const rd_kafka_headers_t *h, const char *name, char *buf, size_t buflen)
{
    size_t len = 0;
    const char *v = kafka_headers_find(h, name, &len);
    snprintf(buf, buflen, "%.*s", v ? (int)len : 0, v ? v : "");
    return v ? buf : NULL;
}

/* ---- 1. kafka_producer ---------------------------------------------------- */

typedef struct {
    uv_thread_t loop_thread;
    int delivered, ok, off_loop, closed;
} sends_t;

static void on_delivery(void *arg, rd_kafka_resp_err_t err)
{
    sends_t *s = arg;
    uv_thread_t self = uv_thread_self();
    s->delivered++;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->ok++;
    } else {
        fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(err));
    }
    s->off_loop += !uv_thread_equal(&self, &s->loop_thread);
}

static void on_closed(void *arg)
{
    ((sends_t *)arg)->closed++;
}

/* Produces records [from, to) of the data set through kafka_producer. */
static void produce_range(int from, int to)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    kafka_producer_t *p = kafka_producer_create(&loop, bootstrap, NULL, err, sizeof(err));
    if (!p) {
        fail_msg("kafka_producer_create: %s", err);
    }
    sends_t s = {.loop_thread = uv_thread_self()};
    for (int i = from; i < to; i++) {
        char key[16], val[32], trace[32];
        snprintf(key, sizeof(key), "key-%d", i % 50);
        snprintf(val, sizeof(val), IS_BAD(i) && i < N ? "BAD-%d" : "rec-%d", i);
        snprintf(trace, sizeof(trace), "trace-%d", i);
        rd_kafka_resp_err_t e;
        do {
            rd_kafka_headers_t *h = rd_kafka_headers_new(1); /* taken even on failure */
            rd_kafka_header_add(h, "trace_id", -1, trace, -1);
            e = kafka_producer_send(p, in_topic, key, strlen(key), val, strlen(val), h, on_delivery, &s);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                uv_run(&loop, UV_RUN_NOWAIT); /* let deliveries make room */
            }
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    kafka_producer_close(p, on_closed, &s);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (s.closed != 1 || s.delivered != to - from || s.ok != to - from || s.off_loop != 0) {
        fail_msg("producer: expected %d deliveries, all ok, on the loop thread, then close; got %d "
                 "delivered, %d ok, "
                 "%d off the loop, closed %d",
                 to - from, s.delivered, s.ok, s.off_loop, s.closed);
    }
    kafka_producer_destroy(p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_producer_delivers(void **state)
{
    (void)state;
    produce_range(0, N);
}

/* ---- 2. The pipeline -------------------------------------------------------- */

static const int retry_once[] = {3, 500, 1234, 1999};

typedef struct {
    pthread_mutex_t mu;
    int presented[N + NMORE];
    bool retried[N + NMORE];
    int missing_trace;
    /* loop thread */
    kafka_pipeline_t *p;
    metrics_t *reg;
    metric_t *produced, *dlq, *txn;
    uv_timer_t watch;
    double want_out, want_dlq;
    uint64_t deadline;
    bool want_lag; /* also wait for kafka_consumer_lag 0 on every input partition */
    bool stop_requested, saw_ready, saw_paused, timed_out;
    int stopped, fatal_calls;
} run_t;

static kafka_verdict_t copy_transform(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out, char *reason,
                                      size_t reasonlen)
{
    run_t *r = ctx;
    char val[32], trace[32];
    snprintf(val, sizeof(val), "%.*s", (int)in->len, (const char *)in->payload);
    int i = atoi(val + 4);
    if (i < 0 || i >= N + NMORE) {
        snprintf(reason, reasonlen, "unexpected value");
        return KAFKA_BAD_INPUT;
    }
    bool retry = false;
    pthread_mutex_lock(&r->mu);
    r->presented[i]++;
    for (size_t k = 0; k < sizeof(retry_once) / sizeof(retry_once[0]); k++) {
        if (retry_once[k] == i && !r->retried[i]) {
            r->retried[i] = retry = true;
        }
    }
    if (kafka_header_copy(in, "trace_id", trace, sizeof(trace)) < 0) {
        r->missing_trace++;
    }
    pthread_mutex_unlock(&r->mu);
    if (retry) {
        snprintf(reason, reasonlen, "transient failure for %d", i);
        return KAFKA_RETRY;
    }
    if (strncmp(val, "BAD", 3) == 0) {
        snprintf(reason, reasonlen, "value starts with BAD");
        return KAFKA_BAD_INPUT;
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "trace_id", -1, trace, -1);
    if (kafka_out_add(out, out_topic, in->key, in->key_len, in->payload, in->len, h) != 0) {
        return KAFKA_RETRY;
    }
    return KAFKA_OK;
}

/* The batch form of copy_transform: the same verdicts, record by record,
 * through kafka_in_t; a record asking to retry aborts the whole batch. */
static kafka_verdict_t copy_batch(void *ctx, kafka_in_t *in)
{
    for (size_t i = 0; i < kafka_in_count(in); i++) {
        char reason[256] = "";
        kafka_verdict_t v =
            copy_transform(ctx, kafka_in_msg(in, i), kafka_in_out(in, i), reason, sizeof(reason));
        if (v == KAFKA_BAD_INPUT) {
            kafka_in_reject(in, i, reason);
        } else if (v != KAFKA_OK) {
            return KAFKA_RETRY;
        }
    }
    return KAFKA_OK;
}

static void run_done(void *arg)
{
    ((run_t *)arg)->stopped++;
}

static void run_stop(run_t *r)
{
    if (!r->stop_requested) {
        r->stop_requested = true;
        uv_close((uv_handle_t *)&r->watch, NULL);
        kafka_pipeline_stop(r->p, run_done, r);
    }
}

static void run_fatal(void *ctx, const char *why)
{
    run_t *r = ctx;
    fprintf(stderr, "on_fatal: %s\n", why);
    r->fatal_calls++;
    run_stop(r);
}

static void on_watch(uv_timer_t *t)
{
    run_t *r = t->data;
    r->saw_ready |= kafka_pipeline_ready(r->p);
    r->saw_paused |= kafka_pipeline_paused(r->p);
    bool done =
        metric_value(r->produced, out_topic) >= r->want_out && metric_value(r->dlq, in_topic) >= r->want_dlq;
    if (done && r->want_lag) {
        /* statistics come every 5 s; the lag reads from the stored positions */
        char *text = metrics_render(r->reg, NULL);
        for (int p = 0; text && p < 3; p++) {
            char line[256];
            snprintf(line, sizeof(line), "kafka_consumer_lag{topic=\"%s\",partition=\"%d\"} 0\n", in_topic,
                     p);
            done &= strstr(text, line) != NULL;
        }
        free(text);
    }
    if (uv_now(t->loop) > r->deadline) {
        r->timed_out = true;
    }
    if (done || r->timed_out) {
        run_stop(r);
    }
}

/* Runs a pipeline of the test's group until `want_out` outputs and `want_dlq`
 * dead letters are committed, then stops it; the loop must close cleanly. */
static void run_pipeline(run_t *r, double want_out, double want_dlq)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pthread_mutex_init(&r->mu, NULL);
    r->reg = metrics_create();
    r->want_out = want_out;
    r->want_dlq = want_dlq;
    const char *topics[] = {in_topic};
    char err[256];
    kafka_pipeline_conf_t conf = {.bootstrap_servers = bootstrap,
                                  .group_id = group,
                                  .transactional_id = txn_id,
                                  .service = "itest-kafka",
                                  .topics = topics,
                                  .ntopics = 1,
                                  .transform = batch_mode ? NULL : copy_transform,
                                  .transform_batch = batch_mode ? copy_batch : NULL,
                                  .ctx = r,
                                  .metrics = r->reg,
                                  .on_fatal = run_fatal};
    r->p = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    if (!r->p) {
        fail_msg("kafka_pipeline_create: %s", err);
    }
    r->produced = metrics_counter(r->reg, "kafka_messages_produced_total", "", "topic");
    r->dlq = metrics_counter(r->reg, "dlq_messages_total", "", "topic");
    r->txn = metrics_counter(r->reg, "kafka_transactions_total", "", "result");
    assert_int_equal(kafka_pipeline_start(r->p), 0);
    uv_timer_init(&loop, &r->watch);
    r->watch.data = r;
    uv_timer_start(&r->watch, on_watch, 10, 10);
    r->deadline = uv_now(&loop) + 120000;
    uv_run(&loop, UV_RUN_DEFAULT);
    if (r->stopped != 1) {
        fail_msg("expected the stop's done callback once, got %d", r->stopped);
    }
    kafka_pipeline_destroy(r->p);
    int rc = uv_loop_close(&loop);
    if (rc != 0) {
        uv_print_all_handles(&loop, stderr);
        fail_msg("expected uv_loop_close() == 0 after kafka_pipeline_stop, got %s", uv_err_name(rc));
    }
}

static void run_free(run_t *r)
{
    metrics_destroy(r->reg);
    pthread_mutex_destroy(&r->mu);
}

/* Runs the pipeline over the N records and checks what read_committed readers
 * see: exactly one output per good input in per-key order, the bad ones once
 * each in the DLQ with their headers. */
static void check_exactly_once(run_t *r)
{
    run_pipeline(r, N - NBAD, NBAD);
    if (r->timed_out) {
        fail_msg("expected %d outputs and %d dead letters within 120 s, got %.0f and %.0f", N - NBAD, NBAD,
                 metric_value(r->produced, out_topic), metric_value(r->dlq, in_topic));
    }
    assert_int_equal(r->fatal_calls, 0);
    assert_true(r->saw_ready);
    assert_int_equal(r->missing_trace, 0);
    double aborted = metric_value(r->txn, "aborted");
    if (aborted < 4) {
        fail_msg("expected at least 4 aborted transactions (one per retried record), got %.0f", aborted);
    }
    for (int i = 0; i < N; i++) {
        if (r->presented[i] < 1) {
            fail_msg("record %d was never transformed", i);
        }
    }
    fprintf(stderr, "transactions: %.0f committed, %.0f aborted; paused seen: %s\n",
            metric_value(r->txn, "committed"), aborted, r->saw_paused ? "yes" : "no");
    char *text = metrics_render(r->reg, NULL);
    assert_non_null(strstr(text, "# TYPE kafka_consumer_paused gauge\n"));
    assert_non_null(strstr(text, "kafka_consumer_paused 0\n"));
    free(text);
    run_free(r);

    /* Exactly one output per good input, in per-key order, read_committed. */
    static rec_t outs[N + 100];
    int n = read_committed(out_topic, outs, N + 100, N - NBAD);
    static int seen[N];
    int last_for_key[50];
    memset(seen, 0, sizeof(seen));
    for (int k = 0; k < 50; k++) {
        last_for_key[k] = -1;
    }
    for (int j = 0; j < n; j++) {
        int i = outs[j].index;
        if (i < 0 || i >= N || IS_BAD(i)) {
            fail_msg("unexpected output \"%s\"", outs[j].value);
        }
        seen[i]++;
        int key = atoi(outs[j].key + 4);
        if (key != i % 50 || i <= last_for_key[key]) {
            fail_msg("output %d for key %s came after %d: per-key order broken", i, outs[j].key,
                     last_for_key[key]);
        }
        last_for_key[key] = i;
        char b[32], want[32];
        snprintf(want, sizeof(want), "trace-%d", i);
        if (!hdr(outs[j].hdrs, "trace_id", b, sizeof(b)) || strcmp(b, want) != 0) {
            fail_msg("output %d: expected trace_id %s, got \"%s\"", i, want, b);
        }
    }
    int lost = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        if (!IS_BAD(i)) {
            lost += seen[i] == 0;
            dup += seen[i] > 1;
        }
    }
    if (n != N - NBAD || lost || dup) {
        fail_msg("expected %d outputs, one per good input; got %d (%d inputs lost, %d duplicated)", N - NBAD,
                 n, lost, dup);
    }
    recs_free(outs, n);

    /* The bad ones, once each, in the DLQ with the original bytes and headers. */
    static rec_t dl[NBAD + 10];
    n = read_committed(dlq_topic, dl, NBAD + 10, NBAD);
    if (n != NBAD) {
        fail_msg("expected %d dead letters, got %d", NBAD, n);
    }
    int dlq_seen[N] = {0};
    for (int j = 0; j < n; j++) {
        char b[64], want[64];
        int i = dl[j].index;
        snprintf(want, sizeof(want), "BAD-%d", i);
        if (i < 0 || i >= N || !IS_BAD(i) || strcmp(dl[j].value, want) != 0 || dlq_seen[i]++) {
            fail_msg("unexpected or repeated dead letter \"%s\"", dl[j].value);
        }
        snprintf(want, sizeof(want), "key-%d", i % 50);
        assert_string_equal(dl[j].key, want);
        assert_non_null(hdr(dl[j].hdrs, "dlq.error.reason", b, sizeof(b)));
        assert_string_equal(b, "value starts with BAD");
        assert_non_null(hdr(dl[j].hdrs, "dlq.original.topic", b, sizeof(b)));
        assert_string_equal(b, in_topic);
        assert_non_null(hdr(dl[j].hdrs, "dlq.original.partition", b, sizeof(b)));
        assert_in_range(atoi(b), 0, 2);
        assert_non_null(hdr(dl[j].hdrs, "dlq.original.offset", b, sizeof(b)));
        assert_in_range(atoll(b), 0, N);
        assert_non_null(hdr(dl[j].hdrs, "dlq.service", b, sizeof(b)));
        assert_string_equal(b, "itest-kafka");
        assert_non_null(hdr(dl[j].hdrs, "dlq.failed_at", b, sizeof(b)));
        assert_true(atoll(b) > 1600000000000LL);
        snprintf(want, sizeof(want), "trace-%d", i);
        assert_non_null(hdr(dl[j].hdrs, "trace_id", b, sizeof(b)));
        assert_string_equal(b, want);
    }
    recs_free(dl, n);
}

static void test_pipeline_exactly_once(void **state)
{
    (void)state;
    static run_t r;
    check_exactly_once(&r);
}

/* ---- 3. Restart ---------------------------------------------------------------- */

static void test_restart_resumes_after_commit(void **state)
{
    (void)state;
    produce_range(N, N + NMORE);
    static run_t r;
    r.want_lag = true;
    run_pipeline(&r, NMORE, 0);
    if (r.timed_out) {
        fail_msg(
            "expected %d outputs and kafka_consumer_lag 0 on partitions 0..2 within 120 s, got %.0f outputs",
            NMORE, metric_value(r.produced, out_topic));
    }
    int old = 0;
    for (int i = 0; i < N; i++) {
        old += r.presented[i];
    }
    if (old != 0) {
        fail_msg(
            "expected the restarted group to start after its committed offsets; %d old records came again",
            old);
    }
    for (int i = N; i < N + NMORE; i++) {
        assert_int_equal(r.presented[i], 1);
    }
    run_free(&r);
}

/* ---- 4. Batch handler ----------------------------------------------------------- */

static void test_batch_handler_exactly_once(void **state)
{
    (void)state;
    /* the same data set on fresh topics, a fresh group and transactional id */
    strcat(in_topic, ".b");
    strcat(out_topic, ".b");
    snprintf(dlq_topic, sizeof(dlq_topic), "%s.dlq", in_topic);
    strcat(group, "-b");
    strcat(txn_id, "-b");
    assert_int_equal(create_topics(), 0);
    produce_range(0, N);
    batch_mode = true;
    static run_t r;
    check_exactly_once(&r);
}

static int setup(void **state)
{
    const char *bs = getenv("KAFKA_BOOTSTRAP_SERVERS");
    snprintf(bootstrap, sizeof(bootstrap), "%s", bs && *bs ? bs : "127.0.0.1:9092");
    char sfx[64];
    snprintf(sfx, sizeof(sfx), "%ld-%d", (long)time(NULL), (int)getpid());
    snprintf(in_topic, sizeof(in_topic), "itest.kafka.%s.in", sfx);
    snprintf(out_topic, sizeof(out_topic), "itest.kafka.%s.out", sfx);
    snprintf(dlq_topic, sizeof(dlq_topic), "%s.dlq", in_topic);
    snprintf(group, sizeof(group), "itest-kafka-%s", sfx);
    snprintf(txn_id, sizeof(txn_id), "itest-kafka-%s", sfx);
    return create_topics();
}

int main(void)
{
    log_level_t level = LOG_WARN;
    if (getenv("LOG_LEVEL")) {
        log_level_parse(getenv("LOG_LEVEL"), &level);
    }
    log_init("itest_kafka", level);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_delivers),
        cmocka_unit_test(test_pipeline_exactly_once),
        cmocka_unit_test(test_restart_resumes_after_commit),
        cmocka_unit_test(test_batch_handler_exactly_once),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
