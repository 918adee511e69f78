/* bench_passthrough: the ceiling of a consume-transform-produce job through real
 * Kafka with transactions. common/kafka's exactly-once pipeline with an
 * identity transform: every consumed record is copied, key and value, to the
 * output topic inside the batch's transaction, which also commits the offsets.
 * No decoding, no store: what is left is the cost of Kafka itself.
 *
 *   bench_passthrough BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP RECORDS
 *
 * Runs until RECORDS records have been transformed and their transactions
 * committed, then prints one JSON line: records, the seconds from the first
 * record transformed to the last one committed, and records per second. Exits 1
 * when the pipeline fails or nothing came within 300 s.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "kafka.h"
#include "log.h"

typedef struct {
    const char *out_topic;
    uint64_t want;
    atomic_uint_fast64_t done; /* records transformed */
    atomic_uint_fast64_t first_ns;
    uint64_t end_ns;
    uint64_t start_ns;
    kafka_pipeline_t *pipeline;
    uv_timer_t timer;
    int failed;
    bool stopping;
} bench_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static kafka_verdict_t copy_record(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out, char *reason,
                                   size_t reasonlen)
{
    bench_t *b = ctx;
    uint_fast64_t zero = 0;
    atomic_compare_exchange_strong(&b->first_ns, &zero, now_ns());
    if (kafka_out_add(out, b->out_topic, in->key, in->key_len, in->payload, in->len, NULL) != 0) {
        snprintf(reason, reasonlen, "cannot add the copy");
        return KAFKA_RETRY;
    }
    atomic_fetch_add(&b->done, 1);
    return KAFKA_OK;
}

static void on_fatal(void *ctx, const char *why)
{
    bench_t *b = ctx;
    fprintf(stderr, "bench_passthrough: pipeline failed: %s\n", why);
    b->failed = 1;
}

static void on_stopped(void *arg)
{
    bench_t *b = arg;
    uv_close((uv_handle_t *)&b->timer, NULL);
}

/* Every 20 ms: done once RECORDS were transformed and the pipeline has
 * committed them (stop lets the in-flight batch finish and commit). */
static void on_tick(uv_timer_t *t)
{
    bench_t *b = t->data;
    if (b->stopping) {
        return;
    }
    bool timeout = now_ns() - b->start_ns > 300ull * 1000000000u;
    if (atomic_load(&b->done) >= b->want || b->failed || timeout) {
        b->stopping = true;
        b->failed |= timeout;
        uv_timer_stop(t);
        kafka_pipeline_stop(b->pipeline, on_stopped, b);
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_passthrough BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP RECORDS\n");
        return 2;
    }
    log_init("bench_passthrough", LOG_WARN);
    bench_t b = {.out_topic = argv[3], .want = strtoull(argv[5], NULL, 10)};
    const char *topics[] = {argv[2]};
    char txid[160], err[256];
    snprintf(txid, sizeof(txid), "bench-passthrough-%s", argv[4]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kafka_pipeline_conf_t conf = {
        .bootstrap_servers = argv[1],
        .group_id = argv[4],
        .transactional_id = txid,
        .service = "bench_passthrough",
        .topics = topics,
        .ntopics = 1,
        .transform = copy_record,
        .ctx = &b,
        .on_fatal = on_fatal,
    };
    b.pipeline = kafka_pipeline_create(&loop, &conf, err, sizeof(err));
    if (!b.pipeline) {
        fprintf(stderr, "bench_passthrough: %s\n", err);
        uv_loop_close(&loop);
        return 1;
    }
    uv_timer_init(&loop, &b.timer);
    b.timer.data = &b;
    b.start_ns = now_ns();
    uv_timer_start(&b.timer, on_tick, 20, 20);
    if (kafka_pipeline_start(b.pipeline) != 0) {
        b.failed = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    b.end_ns = now_ns();
    kafka_pipeline_destroy(b.pipeline);
    int closed = uv_loop_close(&loop);
    uint64_t done = atomic_load(&b.done);
    uint64_t first = atomic_load(&b.first_ns);
    double seconds = first ? (double)(b.end_ns - first) / 1e9 : 0.0;
    printf("{\"records\": %" PRIu64 ", \"seconds\": %.3f, \"records_per_second\": %.0f}\n", done, seconds,
           seconds > 0 ? (double)done / seconds : 0.0);
    return b.failed || done < b.want || closed != 0;
}
