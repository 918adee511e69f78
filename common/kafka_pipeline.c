/* kafka_pipeline: the exactly-once consume-transform-produce loop.
 *
 * Threads. The loop thread owns the consumer: it is woken through the consumer
 * queue's io event (and a 200 ms timer), takes a batch with
 * rd_kafka_consume_batch_queue(timeout 0), serves rebalances, and hands the
 * batch to ONE worker (uv_queue_work). The worker runs the transaction: begin,
 * transform each record, produce outputs and dead letters, send the offsets,
 * commit (or abort). While a batch is in flight the loop consumes nothing, so
 * the rebalance callback never runs concurrently with a transaction and a
 * revocation always finds the previous batch committed or aborted.
 *
 * Failure. An abort leaves nothing visible to read_committed readers; the loop
 * then seeks every partition of the batch back to its first offset, pauses the
 * assignment and resumes after an exponential, jittered back-off. A fenced or
 * fatal producer ends processing and is reported through on_fatal.
 */
#include "kafka.h"
#include "kafka_internal.h"

#include "log.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 200
#define INIT_TRY_MS 3000
#define FLUSH_MS 5000
#define DEFAULT_MAX_BATCH 500

typedef enum { ST_CREATED, ST_STARTING, ST_RUNNING, ST_STOPPING, ST_STOPPED } state_t;

struct kafka_pipeline_s {
    uv_loop_t *loop;
    char *bootstrap, *group_id, *txn_id, *service;
    char **topics;
    size_t ntopics;
    void *ctx; /* for on_fatal; the transform's is in the batch */
    void (*on_fatal)(void *ctx, const char *why);
    size_t max_batch;

    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *queue; /* the consumer queue: records and rebalances */
    int wake[2];             /* io-event pipe: librdkafka writes, uv_poll reads */

    uv_poll_t poll;
    uv_timer_t tick, backoff;
    bool handles; /* the three handles above were initialised */
    int open_handles;
    uv_work_t work;
    bool busy; /* a work item (init, batch or close) is in flight */

    state_t state;
    bool fatal, backing_off;
    bool closing; /* set before the close work: the rebalance callback then runs on it */
    bool init_failed;
    char init_why[512];
    unsigned attempt;
    uint64_t rng;
    rd_kafka_topic_partition_list_t *assignment;
    kafka_batch_t batch;
    atomic_bool stop_flag, producer_fatal, consumer_fatal;
    /* /ready: the brokers answer and the transactions commit. */
    _Atomic int64_t down_at_us; /* last "all brokers down" (monotonic µs), any thread; 0 = none */
    kafka_liveness_t live;      /* from the consumer's statistics; loop thread */
    uint64_t batch_since_us;    /* when the batch in flight started */
    bool txn_failing;           /* the last transaction failed because of Kafka */
    char txn_why[160], fatal_why[160];
    void (*done)(void *arg);
    void *done_arg;

    metric_t *m_consumed, *m_produced, *m_dlq, *m_txn, *m_lag, *m_paused, *m_batch;
};

static void pump(kafka_pipeline_t *p);
static void stop_continue(kafka_pipeline_t *p);

/* ---- Small helpers ---------------------------------------------------------- */

static double rand01(kafka_pipeline_t *p)
{
    /* xorshift64*: jitter only, no need for quality */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return (double)((p->rng * 2685821657736338717ULL) >> 11) / (double)(1ULL << 53);
}

static void set_paused(kafka_pipeline_t *p, bool paused)
{
    p->backing_off = paused;
    if (p->m_paused) {
        metric_set(p->m_paused, paused ? 1 : 0);
    }
}

/* Stops processing for good and tells the service. Loop thread. */
static void enter_fatal(kafka_pipeline_t *p, const char *why)
{
    if (p->fatal) {
        return;
    }
    p->fatal = true;
    snprintf(p->fatal_why, sizeof(p->fatal_why), "%s", why);
    log_error("kafka pipeline stopped processing", "group", p->group_id, "transactional_id", p->txn_id, "why",
              why);
    if (p->handles) {
        uv_poll_stop(&p->poll);
        uv_timer_stop(&p->tick);
        uv_timer_stop(&p->backoff);
    }
    set_paused(p, false);
    if (p->on_fatal) {
        p->on_fatal(p->ctx, why);
    }
}

/* Fatal errors raised by librdkafka outside a transactional call (error_cb). */
static bool check_fatal_flags(kafka_pipeline_t *p)
{
    bool prod = atomic_load(&p->producer_fatal), cons = atomic_load(&p->consumer_fatal);
    if (!prod && !cons) {
        return false;
    }
    char detail[256], why[320];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(prod ? p->producer : p->consumer, detail, sizeof(detail));
    snprintf(why, sizeof(why), "%s %s: %s: %s", prod ? "producer" : "consumer",
             kafka_err_is_fenced(err) ? "fenced" : "fatal error", rd_kafka_err2name(err), detail);
    enter_fatal(p, why);
    return true;
}

/* ---- librdkafka callbacks ---------------------------------------------------- */

static int64_t now_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

/* Any thread: every connection of one client is down. /ready stays false until
 * the consumer's statistics show a broker answering again. */
static void note_client_error(kafka_pipeline_t *p, int err)
{
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        atomic_store(&p->down_at_us, now_us());
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_pipeline_t *p = opaque;
    note_client_error(p, err);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        /* Logged and acted upon by check_fatal_flags() or the transaction. */
        atomic_store(rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? &p->producer_fatal : &p->consumer_fatal, true);
        return;
    }
    log_warn("kafka client error", "client", rd_kafka_name(rk), "error", rd_kafka_err2name(err), "reason",
             reason);
}

static void on_lag(void *ctx, const char *topic, int32_t partition, int64_t lag)
{
    kafka_pipeline_t *p = ctx;
    char part[16];
    snprintf(part, sizeof(part), "%" PRId32, partition);
    /* Unknown lag (not assigned here, or not fetched yet) reads as 0 so that a
     * sum over replicas counts each partition once, at its owner. */
    metric_set(p->m_lag, lag < 0 ? 0 : (double)lag, topic, part);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    kafka_pipeline_t *p = opaque;
    kafka_brokers_stats_t bs;
    if (!p->closing && kafka_stats_brokers(json, len, &bs) == 0) {
        kafka_liveness_update(&p->live, &bs);
    }
    if (p->m_lag && kafka_stats_lag(json, len, on_lag, p) != 0) {
        log_warn("kafka statistics not parsed", "client", rd_kafka_name(rk));
    }
    return 0; /* librdkafka frees json */
}

/* Eager rebalance. Runs on the loop thread from pump() (never while a batch is
 * in flight), or on the close worker during rd_kafka_consumer_close(). */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    kafka_pipeline_t *p = opaque;
    if (p->closing) {
        rd_kafka_assign(rk, NULL);
        return;
    }
    char list[512];
    kafka_format_partitions(parts, list, sizeof(list));
    if (p->assignment) {
        rd_kafka_topic_partition_list_destroy(p->assignment);
        p->assignment = NULL;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e) {
            log_error("kafka assign failed", "group", p->group_id, "error", rd_kafka_err2str(e));
        } else {
            p->assignment = rd_kafka_topic_partition_list_copy(parts);
            if (p->backing_off) {
                rd_kafka_pause_partitions(rk, p->assignment);
            }
        }
        log_info("kafka partitions assigned", "group", p->group_id, "partitions", list);
    } else {
        rd_kafka_assign(rk, NULL);
        /* Our pause outlives the assignment: clear it, or these partitions
         * would stay paused if they come back after the back-off. */
        if (parts) {
            rd_kafka_resume_partitions(rk, parts);
        }
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
            log_info("kafka partitions revoked", "group", p->group_id, "partitions", list);
        } else {
            log_warn("kafka rebalance error", "group", p->group_id, "error", rd_kafka_err2str(err));
        }
    }
    /* End the current consume call here, so that a batch never spans a rebalance. */
    rd_kafka_yield(rk);
}

static bool assigned(const kafka_pipeline_t *p, const rd_kafka_message_t *m)
{
    return p->assignment &&
           rd_kafka_topic_partition_list_find(p->assignment, rd_kafka_topic_name(m->rkt), m->partition);
}

static void batch_work(uv_work_t *w)
{
    kafka_pipeline_t *p = w->data;
    kafka_batch_run(&p->batch);
}

/* ---- Back on the loop --------------------------------------------------------- */

static void on_backoff(uv_timer_t *t)
{
    kafka_pipeline_t *p = t->data;
    set_paused(p, false);
    if (p->assignment) {
        rd_kafka_resume_partitions(p->consumer, p->assignment);
    }
    log_info("kafka consumption resumed", "group", p->group_id);
    pump(p);
}

/* Seeks the batch's partitions back to their first offsets, pauses the
 * assignment and arms the back-off timer. */
static void rewind_and_back_off(kafka_pipeline_t *p, kafka_batch_t *b)
{
    rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, b->first, 0);
    if (e) {
        log_error("kafka seek failed", "group", p->group_id, "error", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    if (p->assignment) {
        rd_kafka_pause_partitions(p->consumer, p->assignment);
    }
    uint64_t ms = kafka_backoff_ms(p->attempt, rand01(p));
    if (p->attempt < 32) {
        p->attempt++;
    }
    set_paused(p, true);
    uv_timer_start(&p->backoff, on_backoff, ms, 0);
    char delay[24];
    snprintf(delay, sizeof(delay), "%" PRIu64, ms);
    log_info("kafka consumption paused", "group", p->group_id, "backoff_ms", delay);
}

static void batch_after(uv_work_t *w, int status)
{
    kafka_pipeline_t *p = w->data;
    kafka_batch_t *b = &p->batch;
    kafka_batch_outcome_t outcome = b->outcome;
    char why[sizeof(b->why)], parts[512];
    memcpy(why, b->why, sizeof(why));
    p->busy = false;
    if (p->m_batch) {
        metric_observe(p->m_batch, b->seconds);
    }
    switch (outcome) {
    case KAFKA_BATCH_COMMITTED:
        p->txn_failing = false;
        kafka_batch_report(b, p->m_produced, p->m_dlq);
        if (p->m_txn) {
            metric_add(p->m_txn, 1, "committed");
        }
        /* Record the position for the consumer_lag_stored statistic. */
        rd_kafka_offsets_store(p->consumer, b->next);
        p->attempt = 0;
        if (b->rest) {
            /* The transaction stopped at its time budget: the records it did
             * not take come again. */
            rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, b->rest, 0);
            if (e) {
                log_error("kafka seek failed", "group", p->group_id, "error", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
            char done[24];
            snprintf(done, sizeof(done), "%zu", b->done);
            log_debug("kafka transaction cut at its time budget", "group", p->group_id, "records", done);
        }
        break;
    case KAFKA_BATCH_ABORTED:
        if (b->kafka_failed) {
            p->txn_failing = true;
            snprintf(p->txn_why, sizeof(p->txn_why), "%s", why);
        }
        if (p->m_txn) {
            metric_add(p->m_txn, 1, "aborted");
        }
        kafka_format_partitions(b->first, parts, sizeof(parts));
        log_warn("kafka transaction aborted", "group", p->group_id, "why", why, "rewound", parts);
        if (p->state == ST_RUNNING) {
            rewind_and_back_off(p, b);
        }
        break;
    case KAFKA_BATCH_FATAL:
        break;
    }
    /* Release the messages before anything can start the close work, which
     * destroys the consumer they belong to. */
    kafka_batch_clear(b);
    if (outcome == KAFKA_BATCH_FATAL) {
        enter_fatal(p, why); /* on_fatal may call kafka_pipeline_stop() */
    }
    if (p->state == ST_STOPPING) {
        stop_continue(p);
        return;
    }
    pump(p);
}

/* Seeks the partitions of messages that must not be processed now back to
 * them, so that they come again, and drops the messages. */
static void put_back(kafka_pipeline_t *p, kafka_batch_t *b)
{
    kafka_batch_offsets(b->msgs, b->n, &b->first, &b->next);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, b->first, 0);
    if (e) {
        log_error("kafka seek failed", "group", p->group_id, "error", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    kafka_batch_clear(b);
}

/* Serves the consumer queue (records, rebalances) and takes the
 * next batch when the pipeline may process one. Never blocks. While backing
 * off the partitions are paused, so nothing should come; what does is put back. */
static void pump(kafka_pipeline_t *p)
{
    kafka_batch_t *b = &p->batch;
    while (p->state == ST_RUNNING && !p->busy && !p->fatal) {
        if (check_fatal_flags(p)) {
            return;
        }
        ssize_t n = rd_kafka_consume_batch_queue(p->queue, 0, b->msgs, p->max_batch);
        if (n <= 0) {
            return; /* empty: the io event fires on the next message */
        }
        size_t kept = 0;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = b->msgs[i];
            if (m->err) {
                note_client_error(p, m->err);
                if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                    atomic_store(&p->consumer_fatal, true);
                } else {
                    log_warn("kafka consumer error", "group", p->group_id, "error",
                             rd_kafka_message_errstr(m), "topic",
                             m->rkt ? rd_kafka_topic_name(m->rkt) : NULL);
                }
                rd_kafka_message_destroy(m);
            } else if (!assigned(p, m)) {
                rd_kafka_message_destroy(m); /* fetched before a revocation */
            } else {
                b->msgs[kept++] = m;
            }
        }
        b->n = kept;
        if (kept == 0) {
            continue;
        }
        if (p->backing_off || p->fatal) {
            put_back(p, b);
            continue;
        }
        for (size_t i = 0; p->m_consumed && i < kept; i++) {
            metric_add(p->m_consumed, 1, rd_kafka_topic_name(b->msgs[i]->rkt));
        }
        kafka_batch_offsets(b->msgs, b->n, &b->first, &b->next);
        p->busy = true;
        p->batch_since_us = (uint64_t)now_us();
        p->work.data = p;
        uv_queue_work(p->loop, &p->work, batch_work, batch_after);
        return;
    }
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    kafka_pipeline_t *p = h->data;
    kafka_wake_drain(p->wake[0]);
    pump(p);
}

/* Safety net: the io event only fires on empty -> non-empty, and rebalances
 * and max.poll.interval.ms need regular polls. */
static void on_tick(uv_timer_t *t)
{
    kafka_pipeline_t *p = t->data;
    if (!p->busy) {
        rd_kafka_poll(p->producer, 0);
    }
    /* The consumer's errors and statistics, also while a batch is in flight:
     * /ready must see a broker go away while a commit waits for it. */
    rd_kafka_poll(p->consumer, 0);
    if (!check_fatal_flags(p)) {
        pump(p);
    }
}

/* ---- Start ------------------------------------------------------------------- */

static void init_work(uv_work_t *w)
{
    kafka_pipeline_t *p = w->data;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(p->producer, INIT_TRY_MS);
        if (!e) {
            return;
        }
        if (rd_kafka_error_is_retriable(e) && !rd_kafka_error_is_fatal(e) && !atomic_load(&p->stop_flag)) {
            log_warn("kafka init_transactions failed, retrying", "transactional_id", p->txn_id, "error",
                     rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            continue;
        }
        snprintf(p->init_why, sizeof(p->init_why), "init_transactions: %s: %s", rd_kafka_error_name(e),
                 rd_kafka_error_string(e));
        p->init_failed = true;
        rd_kafka_error_destroy(e);
        return;
    }
}

static void init_after(uv_work_t *w, int status)
{
    kafka_pipeline_t *p = w->data;
    p->busy = false;
    if (p->state == ST_STOPPING) {
        stop_continue(p);
        return;
    }
    p->state = ST_RUNNING;
    kafka_liveness_init(&p->live, now_us());
    if (p->init_failed) {
        enter_fatal(p, p->init_why);
        return;
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)p->ntopics);
    for (size_t i = 0; i < p->ntopics; i++) {
        rd_kafka_topic_partition_list_add(subs, p->topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(p->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        char why[256];
        snprintf(why, sizeof(why), "subscribe: %s", rd_kafka_err2str(err));
        enter_fatal(p, why);
        return;
    }
    uv_poll_start(&p->poll, UV_READABLE, on_wake);
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    log_info("kafka pipeline started", "group", p->group_id, "transactional_id", p->txn_id);
    pump(p);
}

int kafka_pipeline_start(kafka_pipeline_t *p)
{
    if (!p || p->state != ST_CREATED) {
        return -1;
    }
    if (uv_poll_init(p->loop, &p->poll, p->wake[0]) != 0) {
        return -1;
    }
    uv_timer_init(p->loop, &p->tick);
    uv_timer_init(p->loop, &p->backoff);
    p->poll.data = p->tick.data = p->backoff.data = p;
    p->handles = true;
    p->open_handles = 3;
    p->state = ST_STARTING;
    p->busy = true;
    p->work.data = p;
    uv_queue_work(p->loop, &p->work, init_work, init_after);
    return 0;
}

/* ---- Stop ---------------------------------------------------------------------- */

static void finish_stop(kafka_pipeline_t *p)
{
    for (int i = 0; i < 2; i++) {
        if (p->wake[i] >= 0) {
            close(p->wake[i]);
            p->wake[i] = -1;
        }
    }
    log_info("kafka pipeline stopped", "group", p->group_id);
    if (p->done) {
        p->done(p->done_arg);
    }
}

static void on_closed(uv_handle_t *h)
{
    kafka_pipeline_t *p = h->data;
    if (--p->open_handles == 0) {
        finish_stop(p);
    }
}

static void close_work(uv_work_t *w)
{
    kafka_pipeline_t *p = w->data;
    /* Leaves the group; the revocation is served on this thread (p->closing). */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(p->consumer);
    if (err) {
        log_warn("kafka consumer close", "group", p->group_id, "error", rd_kafka_err2str(err));
    }
    rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
    rd_kafka_queue_destroy(p->queue);
    p->queue = NULL;
    rd_kafka_destroy(p->consumer);
    p->consumer = NULL;
    if (rd_kafka_fatal_error(p->producer, NULL, 0)) {
        rd_kafka_purge(p->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    rd_kafka_flush(p->producer, FLUSH_MS);
    rd_kafka_destroy(p->producer);
    p->producer = NULL;
}

static void close_after(uv_work_t *w, int status)
{
    kafka_pipeline_t *p = w->data;
    p->busy = false;
    p->state = ST_STOPPED;
    if (!p->handles) {
        finish_stop(p);
        return;
    }
    uv_close((uv_handle_t *)&p->poll, on_closed);
    uv_close((uv_handle_t *)&p->tick, on_closed);
    uv_close((uv_handle_t *)&p->backoff, on_closed);
}

/* Starts the close work, once, when nothing else is in flight. */
static void stop_continue(kafka_pipeline_t *p)
{
    if (p->busy || p->closing) {
        return;
    }
    /* The list holds references on librdkafka's partitions: drop it before
     * rd_kafka_destroy(), which waits for them. */
    if (p->assignment) {
        rd_kafka_topic_partition_list_destroy(p->assignment);
        p->assignment = NULL;
    }
    p->closing = true;
    p->busy = true;
    p->work.data = p;
    uv_queue_work(p->loop, &p->work, close_work, close_after);
}

void kafka_pipeline_stop(kafka_pipeline_t *p, void (*done)(void *arg), void *arg)
{
    if (!p || p->state == ST_STOPPING || p->state == ST_STOPPED) {
        return;
    }
    p->done = done;
    p->done_arg = arg;
    atomic_store(&p->stop_flag, true);
    p->state = ST_STOPPING;
    if (p->handles) {
        uv_poll_stop(&p->poll);
        uv_timer_stop(&p->tick);
        uv_timer_stop(&p->backoff);
    }
    set_paused(p, false);
    log_info("kafka pipeline stopping", "group", p->group_id, "in_flight", p->busy ? "true" : "false");
    if (!p->busy) {
        stop_continue(p);
    }
}

/* ---- Create, destroy, state ----------------------------------------------------- */

/* A batch in flight longer than this is stuck on Kafka: a healthy one stops
 * taking records at KAFKA_BATCH_BUDGET_MS and commits. */
#define STUCK_BATCH_MS (KAFKA_BATCH_BUDGET_MS + KAFKA_STALL_MS)

bool kafka_pipeline_ready_detail(const kafka_pipeline_t *p, char *detail, size_t detail_len)
{
    char why[256] = "";
    bool ok = false;
    if (!p || p->state == ST_CREATED || p->state == ST_STARTING) {
        snprintf(why, sizeof(why), "starting");
    } else if (p->state != ST_RUNNING) {
        snprintf(why, sizeof(why), "stopping");
    } else if (p->fatal) {
        snprintf(why, sizeof(why), "stopped: %s", p->fatal_why);
    } else if (!kafka_liveness_ok(&p->live, atomic_load(&((kafka_pipeline_t *)p)->down_at_us), why,
                                  sizeof(why))) {
        /* why is set */
    } else if (p->busy && now_us() - (int64_t)p->batch_since_us > (int64_t)STUCK_BATCH_MS * 1000) {
        snprintf(why, sizeof(why), "transaction in flight for over %d s", STUCK_BATCH_MS / 1000);
    } else if (p->txn_failing) {
        snprintf(why, sizeof(why), "transactions failing: %s", p->txn_why);
    } else if (!p->assignment || p->assignment->cnt == 0) {
        snprintf(why, sizeof(why), "no partitions assigned");
    } else {
        ok = true;
    }
    if (detail && detail_len) {
        snprintf(detail, detail_len, "%s", why);
    }
    return ok;
}

bool kafka_pipeline_ready(const kafka_pipeline_t *p)
{
    return kafka_pipeline_ready_detail(p, NULL, 0);
}

bool kafka_pipeline_paused(const kafka_pipeline_t *p)
{
    return p && p->backing_off;
}

void kafka_pipeline_destroy(kafka_pipeline_t *p)
{
    if (!p) {
        return;
    }
    if (p->handles && p->open_handles > 0) {
        /* Freeing now would corrupt the loop; this is a caller bug. */
        log_error("kafka_pipeline_destroy called before stop finished; leaking the pipeline", "group",
                  p->group_id);
        return;
    }
    kafka_batch_deinit(&p->batch);
    if (p->assignment) {
        rd_kafka_topic_partition_list_destroy(p->assignment);
    }
    if (p->queue) {
        rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(p->queue);
    }
    if (p->consumer) {
        rd_kafka_destroy(p->consumer);
    }
    if (p->producer) {
        rd_kafka_destroy(p->producer);
    }
    for (int i = 0; i < 2; i++) {
        if (p->wake[i] >= 0) {
            close(p->wake[i]);
        }
    }
    for (size_t i = 0; i < p->ntopics; i++) {
        free(p->topics[i]);
    }
    free(p->topics);
    free(p->bootstrap);
    free(p->group_id);
    free(p->txn_id);
    free(p->service);
    free(p);
}

static void register_metrics(kafka_pipeline_t *p, metrics_t *reg)
{
    p->m_consumed =
        metrics_counter(reg, "kafka_messages_consumed_total", "Records consumed, by topic", "topic");
    p->m_produced = metrics_counter(reg, "kafka_messages_produced_total",
                                    "Records produced and committed, by topic", "topic");
    p->m_dlq =
        metrics_counter(reg, "dlq_messages_total", "Records sent to <topic>.dlq, by source topic", "topic");
    p->m_txn = metrics_counter(reg, "kafka_transactions_total", "Kafka transactions, by result", "result");
    p->m_lag = metrics_gauge(reg, "kafka_consumer_lag", "Records behind the end of the partition",
                             "topic,partition");
    p->m_paused =
        metrics_gauge(reg, "kafka_consumer_paused", "1 while consumption backs off after a failure", NULL);
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    p->m_batch =
        metrics_histogram(reg, "kafka_batch_duration_seconds", "Time to transform and commit one batch", NULL,
                          bounds, sizeof(bounds) / sizeof(bounds[0]));
    if (p->m_paused) {
        metric_set(p->m_paused, 0);
    }
}

static char *dup_or_null(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d) {
        *ok = false;
    }
    return d;
}

kafka_pipeline_t *kafka_pipeline_create(uv_loop_t *loop, const kafka_pipeline_conf_t *conf, char *err,
                                        size_t errlen)
{
    char why[512];
    const char *missing = !loop                                 ? "loop"
                          : !conf                               ? "conf"
                          : !conf->bootstrap_servers            ? "bootstrap_servers"
                          : !conf->group_id                     ? "group_id"
                          : !conf->service                      ? "service"
                          : !conf->transform                    ? "transform"
                          : !conf->topics || conf->ntopics == 0 ? "topics"
                                                                : NULL;
    if (missing) {
        snprintf(err, errlen, "kafka pipeline: %s is required", missing);
        return NULL;
    }
    kafka_pipeline_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "kafka pipeline: out of memory");
        return NULL;
    }
    p->wake[0] = p->wake[1] = -1;
    p->loop = loop;
    p->state = ST_CREATED;
    p->ctx = conf->ctx;
    p->on_fatal = conf->on_fatal;
    p->max_batch = conf->max_batch ? conf->max_batch : DEFAULT_MAX_BATCH;
    p->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)p;
    if (!p->rng) {
        p->rng = 88172645463325252ULL;
    }
    atomic_init(&p->stop_flag, false);
    atomic_init(&p->producer_fatal, false);
    atomic_init(&p->consumer_fatal, false);
    atomic_init(&p->down_at_us, 0);
    kafka_liveness_init(&p->live, now_us());

    bool ok = true;
    p->bootstrap = dup_or_null(conf->bootstrap_servers, &ok);
    p->group_id = dup_or_null(conf->group_id, &ok);
    p->service = dup_or_null(conf->service, &ok);
    if (conf->transactional_id) {
        p->txn_id = dup_or_null(conf->transactional_id, &ok);
    } else if (kafka_default_transactional_id(conf->service, why, sizeof(why)) == 0) {
        p->txn_id = dup_or_null(why, &ok);
    } else {
        ok = false;
    }
    p->topics = calloc(conf->ntopics, sizeof(char *));
    if (!p->topics || kafka_batch_init(&p->batch, p->max_batch) != 0) {
        ok = false;
    }
    for (size_t i = 0; ok && i < conf->ntopics; i++) {
        p->topics[i] = dup_or_null(conf->topics[i] ? conf->topics[i] : "", &ok);
        p->ntopics = i + 1;
    }
    if (!ok) {
        snprintf(err, errlen, "kafka pipeline: out of memory");
        goto fail;
    }
    if (conf->metrics) {
        register_metrics(p, conf->metrics);
    }

    /* Static membership keyed by the transactional id: both name this replica
     * and survive its restarts, so a restart takes the partitions back at
     * once, and its producer fences the previous incarnation's. */
    rd_kafka_conf_t *cc = kafka_conf_consumer(p->bootstrap, p->group_id, p->service, p->txn_id, err, errlen);
    if (!cc) {
        goto fail;
    }
    rd_kafka_conf_set_opaque(cc, p);
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    rd_kafka_conf_set_stats_cb(cc, stats_cb);
    rd_kafka_conf_set_error_cb(cc, error_cb);
    p->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why, sizeof(why));
    if (!p->consumer) {
        rd_kafka_conf_destroy(cc);
        snprintf(err, errlen, "kafka consumer: %s", why);
        goto fail;
    }
    cc = NULL; /* owned by the consumer */
    /* The main queue (errors, statistics) stays apart from the consumer
     * queue (records, rebalances): on_tick serves it even during a batch. */
    p->queue = rd_kafka_queue_get_consumer(p->consumer);

    rd_kafka_conf_t *pc = kafka_conf_producer(p->bootstrap, p->service, p->txn_id, err, errlen);
    if (!pc) {
        goto fail;
    }
    rd_kafka_conf_set_opaque(pc, p);
    rd_kafka_conf_set_error_cb(pc, error_cb);
    p->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, why, sizeof(why));
    if (!p->producer) {
        rd_kafka_conf_destroy(pc);
        snprintf(err, errlen, "kafka producer: %s", why);
        goto fail;
    }
    pc = NULL; /* owned by the producer */
    p->batch.producer = p->producer;
    p->batch.consumer = p->consumer;
    p->batch.transform = conf->transform;
    p->batch.ctx = conf->ctx;
    p->batch.service = p->service;

    if (!p->queue || kafka_wake_pipe(p->wake) != 0) {
        snprintf(err, errlen, "kafka pipeline: cannot create the wake-up pipe");
        goto fail;
    }
    rd_kafka_queue_io_event_enable(p->queue, p->wake[1], "1", 1);
    return p;
fail:
    kafka_pipeline_destroy(p);
    return NULL;
}
