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
 *
 * A fatal consumer (in practice: the static member fenced by the coordinator,
 * FENCED_INSTANCE_ID, e.g. after a coordinator failover) is replaced. Once no
 * batch is in flight (the one that was has committed or aborted, as its
 * offsets were refused), the loop destroys the consumer and creates a new one
 * with the same group.instance.id, which takes the member's place and resumes
 * from the offsets the transactions committed: nothing is lost or doubled.
 * More than KAFKA_REJOIN_MAX replacements within KAFKA_REJOIN_WINDOW_MS (two
 * replicas sharing one transactional id) end processing through on_fatal.
 * librdkafka reports a consumer's fatal error as a consumer-queue message,
 * never through error_cb; the loop reads rd_kafka_fatal_error() itself.
 *
 * Timers. The records of timers_topic never reach a batch: pump() hands them
 * to the timers table (kafka_timer.c), which says when the barrier or a tick
 * is due; pump() then runs that job on the same single worker, in place of a
 * batch, and the `due` timer wakes the loop for the next slot.
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
#define INIT_TOPIC_TRIES 5
#define FLUSH_MS 5000
#define DEFAULT_MAX_BATCH 500
#define KAFKA_REJOIN_MAX 5
#define KAFKA_REJOIN_WINDOW_MS 60000

typedef enum { ST_CREATED, ST_STARTING, ST_RUNNING, ST_STOPPING, ST_STOPPED } state_t;

struct kafka_pipeline_s {
    uv_loop_t *loop;
    char *bootstrap, *group_id, *txn_id, *service;
    char **topics;
    size_t ntopics;
    char *timers_topic; /* NULL without timers */
    void *ctx;          /* for on_fatal; the transform's is in the batch */
    void (*on_fatal)(void *ctx, const char *why);
    size_t max_batch;

    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *queue; /* the consumer queue: records and rebalances */
    int wake[2];             /* io-event pipe: librdkafka writes, uv_poll reads */

    uv_poll_t poll;
    uv_timer_t tick, backoff, due;
    bool handles; /* the four handles above were initialised */
    int open_handles;
    uv_work_t work;
    bool busy; /* a work item (init, batch or close) is in flight */

    state_t state;
    bool fatal, backing_off;
    bool closing;        /* set before the close work: the rebalance callback then runs on it */
    bool rejoining;      /* the consumer is being replaced (a work item in flight) */
    unsigned rebalances; /* rebalance callbacks served, to detect one inside a consume call */
    unsigned rejoins;    /* consumer replacements since rejoin_since_us */
    uint64_t rejoin_since_us;
    char rejoin_why[320];
    bool init_failed;
    char init_why[512];
    unsigned attempt;
    uint64_t rng;
    rd_kafka_topic_partition_list_t *assignment;
    kafka_batch_t batch;
    kafka_timers_t timers;
    size_t tick_index; /* the timer of the tick in flight */
    atomic_bool stop_flag, producer_fatal, consumer_fatal;
    /* /ready: the brokers answer and the transactions commit. */
    _Atomic int64_t down_at_us; /* last "all brokers down" (monotonic µs), any thread; 0 = none */
    kafka_liveness_t live;      /* from the consumer's statistics; loop thread */
    uint64_t batch_since_us;    /* when the batch in flight started */
    bool txn_failing;           /* the last transaction failed because of Kafka */
    char txn_why[160], fatal_why[160];
    void (*done)(void *arg);
    void *done_arg;

    metric_t *m_consumed, *m_produced, *m_dlq, *m_txn, *m_lag, *m_paused, *m_batch, *m_ticks;
};

static void pump(kafka_pipeline_t *p);
static void stop_continue(kafka_pipeline_t *p);
static void start_rejoin(kafka_pipeline_t *p, const char *why);
static int consumer_new(kafka_pipeline_t *p, char *err, size_t errlen);

/* ---- Small helpers ---------------------------------------------------------- */

static uint64_t rand64(kafka_pipeline_t *p)
{
    /* xorshift64*: jitter and barrier nonces only, no need for quality */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 2685821657736338717ULL;
}

static double rand01(kafka_pipeline_t *p)
{
    return (double)(rand64(p) >> 11) / (double)(1ULL << 53);
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
        uv_timer_stop(&p->due);
    }
    set_paused(p, false);
    if (p->on_fatal) {
        p->on_fatal(p->ctx, why);
    }
}

/* Fatal errors raised by librdkafka outside a transactional call: the
 * producer's come through error_cb, the consumer's as a consumer-queue message
 * (which a rebalance callback's rd_kafka_yield() can make librdkafka drop), so
 * both clients' fatal state is also read directly. A fatal producer ends
 * processing; a fatal consumer is replaced once no batch is in flight. Returns
 * true when the loop must not take new work. Loop thread. */
static bool check_fatal_flags(kafka_pipeline_t *p)
{
    if (p->rejoining) {
        return true;
    }
    bool prod =
        atomic_load(&p->producer_fatal) || (p->producer && rd_kafka_fatal_error(p->producer, NULL, 0));
    bool cons =
        atomic_load(&p->consumer_fatal) || (p->consumer && rd_kafka_fatal_error(p->consumer, NULL, 0));
    if (!prod && !cons) {
        return false;
    }
    char detail[256] = "", why[320];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(prod ? p->producer : p->consumer, detail, sizeof(detail));
    snprintf(why, sizeof(why), "%s %s: %s: %s", prod ? "producer" : "consumer",
             kafka_err_is_fenced(err) || err == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID ? "fenced"
                                                                                     : "fatal error",
             rd_kafka_err2name(err), detail);
    if (prod) {
        enter_fatal(p, why);
    } else if (!p->busy) {
        start_rejoin(p, why);
    }
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
        /* The producer's (librdkafka sends a consumer's to the consumer
         * queue). Logged and acted upon by check_fatal_flags() or the transaction. */
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

/* When `parts` holds partition 0 of the timers topic, makes it start at the
 * beginning (the markers are always read in full, whatever offset the group
 * holds) and returns true. */
static bool timers_partition_start(kafka_pipeline_t *p, rd_kafka_topic_partition_list_t *parts)
{
    bool found = false;
    for (int i = 0; p->timers.n > 0 && parts && i < parts->cnt; i++) {
        if (parts->elems[i].partition == 0 && strcmp(parts->elems[i].topic, p->timers_topic) == 0) {
            parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            found = true;
        }
    }
    return found;
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
    p->rebalances++;
    char list[512];
    kafka_format_partitions(parts, list, sizeof(list));
    if (p->assignment) {
        rd_kafka_topic_partition_list_destroy(p->assignment);
        p->assignment = NULL;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        bool timers = timers_partition_start(p, parts);
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e) {
            log_error("kafka assign failed", "group", p->group_id, "error", rd_kafka_err2str(e));
        } else {
            p->assignment = rd_kafka_topic_partition_list_copy(parts);
            if (p->backing_off) {
                rd_kafka_pause_partitions(rk, p->assignment);
            }
            if (timers) {
                kafka_timers_assigned(&p->timers, rand64(p) ^ ((uint64_t)getpid() << 40));
                log_info("kafka timers assigned here, reading their markers", "group", p->group_id, "topic",
                         p->timers_topic);
            }
        }
        log_info("kafka partitions assigned", "group", p->group_id, "partitions", list);
    } else {
        if (p->timers.state != KAFKA_TIMERS_IDLE) {
            log_info("kafka timers stopped: partition revoked", "group", p->group_id);
        }
        kafka_timers_revoked(&p->timers);
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
    /* No rd_kafka_yield() here: librdkafka's batch consume dequeues the op
     * after a yielding callback and then drops it (a record, or the consumer's
     * fatal error). pump_once() puts back a batch that spans a rebalance. */
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

/* ---- Timers ------------------------------------------------------------------- */

static bool is_timers_msg(const kafka_pipeline_t *p, const rd_kafka_message_t *m)
{
    return p->timers_topic && strcmp(rd_kafka_topic_name(m->rkt), p->timers_topic) == 0;
}

/* A committed record of the timers topic: a marker, or our barrier. */
static void on_timers_record(kafka_pipeline_t *p, const rd_kafka_message_t *m)
{
    if (m->partition != 0 || !kafka_timers_on_record(&p->timers, m->key, m->key_len, m->payload, m->len,
                                                     m->offset, kafka_now_ms())) {
        return;
    }
    for (size_t i = 0; i < p->timers.n; i++) {
        const kafka_timer_t *t = &p->timers.v[i];
        char marker[24], from[24];
        snprintf(marker, sizeof(marker), "%" PRId64, t->marker);
        snprintf(from, sizeof(from), "%" PRId64, kafka_timer_next_slot(t->marker, t->floor));
        log_info("kafka timer running", "group", p->group_id, "timer", t->name, "marker",
                 t->marker == KAFKA_SLOT_NONE ? "none" : marker, "from_slot", from);
    }
}

static void timer_after(uv_work_t *w, int status)
{
    kafka_pipeline_t *p = w->data;
    kafka_batch_t *b = &p->batch;
    kafka_batch_outcome_t outcome = b->outcome;
    bool barrier = b->job == KAFKA_JOB_MARK;
    const char *name = barrier ? "barrier" : b->tick.name;
    char why[sizeof(b->why)], slot[24];
    memcpy(why, b->why, sizeof(why));
    snprintf(slot, sizeof(slot), "%" PRId64, b->tick.slot);
    p->busy = false;
    int64_t now = kafka_now_ms();
    bool committed = outcome == KAFKA_BATCH_COMMITTED;
    if (committed) {
        kafka_batch_report(b, p->m_produced, p->m_dlq);
    }
    if (p->m_txn && outcome != KAFKA_BATCH_FATAL) {
        metric_add(p->m_txn, 1, committed ? "committed" : "aborted");
    }
    if (barrier) {
        kafka_timers_barrier_done(&p->timers, committed, now, rand01(p));
    } else {
        kafka_timers_tick_done(&p->timers, p->tick_index, b->tick.slot, committed, now, rand01(p));
        bool skipped = committed && b->tick.verdict == KAFKA_BAD_INPUT;
        if (p->m_ticks && outcome != KAFKA_BATCH_FATAL) {
            metric_add(p->m_ticks, 1, name, skipped ? "skipped" : committed ? "committed" : "aborted");
        }
        if (skipped) {
            log_warn("kafka timer slot skipped", "timer", name, "slot", slot, "reason",
                     b->tick.reason[0] ? b->tick.reason : "unspecified");
        }
    }
    if (outcome == KAFKA_BATCH_ABORTED) {
        log_warn("kafka timer transaction aborted", "group", p->group_id, "timer", name, "slot",
                 barrier ? NULL : slot, "why", why);
    }
    kafka_batch_clear(b);
    if (outcome == KAFKA_BATCH_FATAL) {
        enter_fatal(p, why);
    }
    if (p->state == ST_STOPPING) {
        stop_continue(p);
        return;
    }
    pump(p);
}

/* Queues the barrier or a due tick on the worker, in place of a batch.
 * Returns true when it did. */
static bool start_timer_job(kafka_pipeline_t *p)
{
    if (p->timers.n == 0) {
        return false;
    }
    kafka_batch_t *b = &p->batch;
    kafka_tick_job_t *t = &b->tick;
    int64_t now = kafka_now_ms(), slot = 0;
    ssize_t i = -1;
    if (kafka_timers_barrier_due(&p->timers, now)) {
        *t = (kafka_tick_job_t){.topic = p->timers_topic, .name = "barrier"};
        snprintf(t->key, sizeof(t->key), "%s", p->timers.barrier_key);
        snprintf(t->value, sizeof(t->value), "%s", p->timers.token);
        b->job = KAFKA_JOB_MARK;
    } else if ((i = kafka_timers_due(&p->timers, now, &slot)) >= 0) {
        const kafka_timer_t *tm = &p->timers.v[i];
        *t = (kafka_tick_job_t){.topic = p->timers_topic,
                                .name = tm->name,
                                .fn = tm->fn,
                                .ctx = tm->ctx,
                                .slot = slot,
                                .verdict = KAFKA_RETRY};
        snprintf(t->key, sizeof(t->key), "%s", tm->name);
        snprintf(t->value, sizeof(t->value), "%" PRId64, slot);
        /* The offset only carries the group's generation (the fencing of
         * kafka.h, "Timers"); it is never read back. */
        b->next = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(b->next, p->timers_topic, 0)->offset = p->timers.next_offset;
        b->job = KAFKA_JOB_TICK;
        p->tick_index = (size_t)i;
    } else {
        return false;
    }
    p->busy = true;
    p->batch_since_us = (uint64_t)now_us(); /* /ready times the tick like a batch */
    p->work.data = p;
    uv_queue_work(p->loop, &p->work, batch_work, timer_after);
    return true;
}

static void on_due(uv_timer_t *t)
{
    pump(t->data);
}

/* Arms the `due` timer for the next barrier or slot, when nothing is in flight. */
static void arm_due(kafka_pipeline_t *p)
{
    if (!p->handles || p->timers.n == 0) {
        return;
    }
    int64_t ms = p->state == ST_RUNNING && !p->fatal && !p->busy
                     ? kafka_timers_next_wake_ms(&p->timers, kafka_now_ms())
                     : -1;
    if (ms < 0) {
        uv_timer_stop(&p->due);
    } else {
        uv_timer_start(&p->due, on_due, (uint64_t)ms, 0);
    }
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

/* Serves the consumer queue (records, rebalances) and takes the next job
 * when the pipeline may process one: the timers' barrier or a due tick
 * first, else a batch. Never blocks. While backing
 * off the partitions are paused, so nothing should come; what does is put back. */
static void pump_once(kafka_pipeline_t *p)
{
    kafka_batch_t *b = &p->batch;
    while (p->state == ST_RUNNING && !p->busy && !p->fatal) {
        if (check_fatal_flags(p) || start_timer_job(p)) {
            return;
        }
        unsigned rebalances = p->rebalances;
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
            } else if (is_timers_msg(p, m)) {
                on_timers_record(p, m); /* never part of a batch */
                rd_kafka_message_destroy(m);
            } else {
                b->msgs[kept++] = m;
            }
        }
        b->n = kept;
        if (kept == 0) {
            continue;
        }
        if (p->backing_off || p->fatal || p->rebalances != rebalances) {
            /* A batch never spans a rebalance: what came with one comes again. */
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

static void pump(kafka_pipeline_t *p)
{
    pump_once(p);
    arm_due(p);
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
            break;
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
    if (p->timers.n == 0) {
        return;
    }
    static const char *const compact[] = {"cleanup.policy", "compact", NULL};
    char err[384] = "";
    for (int try = 0; try < INIT_TOPIC_TRIES && !atomic_load(&p->stop_flag); try++) {
        if (kafka_topic_ensure(p->producer, p->timers_topic, 1, compact, INIT_TRY_MS, err, sizeof(err)) ==
            0) {
            /* Subscribe only once the consumer sees it led: a group joined
             * without it keeps an assignment without the timers partition
             * (a static member that rejoins gets that assignment back), so
             * no timer would ever run. Waits until it is led or the stop. */
            for (int wait = 1; !atomic_load(&p->stop_flag); wait++) {
                int parts = kafka_topic_ready(p->consumer, p->timers_topic, INIT_TRY_MS);
                if (parts == 1) {
                    return;
                }
                if (parts > 1) {
                    /* The owner of partition 0 runs the timers and writes its
                     * markers there: more partitions would split them. */
                    snprintf(
                        p->init_why, sizeof(p->init_why),
                        "timers topic %s has %d partitions; it must have exactly 1 (cleanup.policy=compact)",
                        p->timers_topic, parts);
                    p->init_failed = true;
                    return;
                }
                if (wait % INIT_TOPIC_TRIES == 0) {
                    log_warn("kafka timers topic not led yet; waiting for it", "topic", p->timers_topic);
                }
                usleep(200 * 1000);
            }
            return;
        }
        log_warn("kafka timers topic not created, retrying", "topic", p->timers_topic, "error", err);
    }
    if (!atomic_load(&p->stop_flag)) {
        snprintf(p->init_why, sizeof(p->init_why), "timers topic: %s", err);
        p->init_failed = true;
    }
}

/* Subscribes the consumer to the topics (and the timers topic). On failure
 * the pipeline enters the fatal state and -1 is returned. Loop thread. */
static int subscribe(kafka_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)p->ntopics + 1);
    for (size_t i = 0; i < p->ntopics; i++) {
        rd_kafka_topic_partition_list_add(subs, p->topics[i], RD_KAFKA_PARTITION_UA);
    }
    if (p->timers.n > 0) {
        rd_kafka_topic_partition_list_add(subs, p->timers_topic, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(p->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        char why[256];
        snprintf(why, sizeof(why), "subscribe: %s", rd_kafka_err2str(err));
        enter_fatal(p, why);
        return -1;
    }
    return 0;
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
    if (subscribe(p) != 0) {
        return;
    }
    uv_poll_start(&p->poll, UV_READABLE, on_wake);
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    log_info("kafka pipeline started", "group", p->group_id, "transactional_id", p->txn_id);
    pump(p);
}

/* ---- Replacing a fatal consumer ----------------------------------------------- */

static void rejoin_work(uv_work_t *w)
{
    kafka_pipeline_t *p = w->data;
    /* A fatal consumer cannot leave its group nor commit: destroy it without
     * the close; its member id is dead anyway (the replacement takes the
     * static member's place). */
    rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
    rd_kafka_queue_destroy(p->queue);
    p->queue = NULL;
    rd_kafka_destroy_flags(p->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    p->consumer = NULL;
    p->batch.consumer = NULL;
    char err[512];
    if (consumer_new(p, err, sizeof(err)) != 0) {
        snprintf(p->rejoin_why, sizeof(p->rejoin_why), "new consumer: %.280s", err);
        p->init_failed = true;
    }
}

static void rejoin_after(uv_work_t *w, int status)
{
    kafka_pipeline_t *p = w->data;
    p->busy = false;
    p->closing = false;
    p->rejoining = false;
    atomic_store(&p->consumer_fatal, false);
    kafka_liveness_init(&p->live, now_us());
    if (p->init_failed) {
        /* close_work copes with the missing consumer */
        p->init_failed = false;
        enter_fatal(p, p->rejoin_why);
    }
    if (p->state == ST_STOPPING) {
        stop_continue(p);
        return;
    }
    if (p->fatal || subscribe(p) != 0) {
        return;
    }
    log_info("kafka consumer replaced; rejoining the group", "group", p->group_id, "group_instance_id",
             p->txn_id);
    pump(p);
}

/* Replaces the fatal consumer, on a worker. Loop thread, nothing in flight. */
static void start_rejoin(kafka_pipeline_t *p, const char *why)
{
    uint64_t now = (uint64_t)now_us();
    if (p->rejoins == 0 || now - p->rejoin_since_us > (uint64_t)KAFKA_REJOIN_WINDOW_MS * 1000) {
        p->rejoins = 0;
        p->rejoin_since_us = now;
    }
    if (++p->rejoins > KAFKA_REJOIN_MAX) {
        char fatal[400];
        snprintf(fatal, sizeof(fatal), "%s (consumer replaced %d times within %d s)", why, KAFKA_REJOIN_MAX,
                 KAFKA_REJOIN_WINDOW_MS / 1000);
        enter_fatal(p, fatal);
        return;
    }
    log_warn("kafka consumer hit a fatal error; replacing it", "group", p->group_id, "group_instance_id",
             p->txn_id, "why", why);
    /* Nothing is in flight: every batch taken has committed or aborted, and
     * the new consumer starts from the offsets the transactions committed. */
    if (p->assignment) {
        rd_kafka_topic_partition_list_destroy(p->assignment);
        p->assignment = NULL;
    }
    if (p->timers.state != KAFKA_TIMERS_IDLE) {
        log_info("kafka timers stopped: consumer replaced", "group", p->group_id);
    }
    kafka_timers_revoked(&p->timers);
    if (p->handles) {
        uv_timer_stop(&p->backoff);
        uv_timer_stop(&p->due);
    }
    set_paused(p, false);
    p->rejoining = true;
    p->closing = true; /* statistics and rebalances of the old consumer are ignored */
    p->busy = true;
    p->work.data = p;
    uv_queue_work(p->loop, &p->work, rejoin_work, rejoin_after);
}

int kafka_pipeline_start(kafka_pipeline_t *p)
{
    if (!p || p->state != ST_CREATED || (p->ntopics == 0 && p->timers.n == 0)) {
        return -1;
    }
    if (uv_poll_init(p->loop, &p->poll, p->wake[0]) != 0) {
        return -1;
    }
    uv_timer_init(p->loop, &p->tick);
    uv_timer_init(p->loop, &p->backoff);
    uv_timer_init(p->loop, &p->due);
    p->poll.data = p->tick.data = p->backoff.data = p->due.data = p;
    p->handles = true;
    p->open_handles = 4;
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
    /* Leaves the group; the revocation is served on this thread (p->closing).
     * A fatal consumer cannot: it is destroyed without the close. */
    if (p->consumer && !rd_kafka_fatal_error(p->consumer, NULL, 0)) {
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(p->consumer);
        if (err) {
            log_warn("kafka consumer close", "group", p->group_id, "error", rd_kafka_err2str(err));
        }
    }
    if (p->queue) {
        rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(p->queue);
        p->queue = NULL;
    }
    if (p->consumer) {
        rd_kafka_destroy_flags(p->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        p->consumer = NULL;
    }
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
    uv_close((uv_handle_t *)&p->due, on_closed);
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
        uv_timer_stop(&p->due);
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
    kafka_timers_deinit(&p->timers);
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
    free(p->timers_topic);
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
    p->m_ticks = metrics_counter(reg, "kafka_timer_ticks_total",
                                 "Timer slots by timer and result: committed, skipped (bad input) or aborted",
                                 "timer,result");
    if (p->m_paused) {
        metric_set(p->m_paused, 0);
    }
}

/* Creates the consumer, its queue and the queue's wake-up on p->wake[1]
 * (p->consumer and p->queue must be NULL). Static membership keyed by the
 * transactional id: both name this replica and survive its restarts, so a
 * restart takes the partitions back at once, and its producer fences the
 * previous incarnation's. Any thread; no I/O. */
static int consumer_new(kafka_pipeline_t *p, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_conf_t *cc = kafka_conf_consumer(p->bootstrap, p->group_id, p->service, p->txn_id, err, errlen);
    if (!cc) {
        return -1;
    }
    rd_kafka_conf_set_opaque(cc, p);
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    rd_kafka_conf_set_stats_cb(cc, stats_cb);
    rd_kafka_conf_set_error_cb(cc, error_cb);
    p->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why, sizeof(why));
    if (!p->consumer) {
        rd_kafka_conf_destroy(cc);
        snprintf(err, errlen, "kafka consumer: %s", why);
        return -1;
    }
    /* The main queue (errors, statistics) stays apart from the consumer
     * queue (records, rebalances): on_tick serves it even during a batch. */
    p->queue = rd_kafka_queue_get_consumer(p->consumer);
    if (!p->queue) {
        snprintf(err, errlen, "kafka consumer: no consumer queue");
        return -1;
    }
    rd_kafka_queue_io_event_enable(p->queue, p->wake[1], "1", 1);
    p->batch.consumer = p->consumer;
    return 0;
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
    const char *missing = !loop                                       ? "loop"
                          : !conf                                     ? "conf"
                          : !conf->bootstrap_servers                  ? "bootstrap_servers"
                          : !conf->group_id                           ? "group_id"
                          : !conf->service                            ? "service"
                          : conf->ntopics > 0 && !conf->topics        ? "topics"
                          : conf->ntopics == 0 && !conf->timers_topic ? "topics"
                          : conf->ntopics > 0 && !conf->transform && !conf->transform_batch ? "transform"
                                                                                            : NULL;
    if (missing) {
        snprintf(err, errlen, "kafka pipeline: %s is required", missing);
        return NULL;
    }
    if (conf->transform && conf->transform_batch) {
        snprintf(err, errlen, "kafka pipeline: set transform or transform_batch, not both");
        return NULL;
    }
    for (size_t i = 0; conf->timers_topic && i < conf->ntopics; i++) {
        if (conf->topics[i] && strcmp(conf->topics[i], conf->timers_topic) == 0) {
            snprintf(err, errlen, "kafka pipeline: timers_topic %s must not be one of the topics",
                     conf->timers_topic);
            return NULL;
        }
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
    p->timers_topic = dup_or_null(conf->timers_topic, &ok);
    p->topics = calloc(conf->ntopics ? conf->ntopics : 1, sizeof(char *));
    if (!p->topics || kafka_batch_init(&p->batch, p->max_batch) != 0 ||
        kafka_timers_init(&p->timers, p->txn_id) != 0) {
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

    if (kafka_wake_pipe(p->wake) != 0) {
        snprintf(err, errlen, "kafka pipeline: cannot create the wake-up pipe");
        goto fail;
    }
    if (consumer_new(p, err, errlen) != 0) {
        goto fail;
    }

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
    p->batch.transform = conf->transform;
    p->batch.ctx = conf->ctx;
    p->batch.stop = &p->stop_flag;
    /* One path: a per-record transform runs under the adapter. */
    p->batch.handler = conf->transform ? kafka_batch_per_record : conf->transform_batch;
    p->batch.handler_ctx = conf->transform ? (void *)&p->batch : conf->ctx;
    p->batch.service = p->service;
    return p;
fail:
    kafka_pipeline_destroy(p);
    return NULL;
}

int64_t kafka_pipeline_timer_marker(const kafka_pipeline_t *p, const char *name)
{
    for (size_t i = 0; p && name && i < p->timers.n; i++) {
        if (strcmp(p->timers.v[i].name, name) == 0) {
            return p->timers.v[i].marker;
        }
    }
    return INT64_MIN;
}

int kafka_pipeline_add_timer(kafka_pipeline_t *p, const char *name, uint64_t interval_ms, kafka_tick_fn fn,
                             void *ctx)
{
    if (!p || p->state != ST_CREATED || !p->timers_topic) {
        return -1;
    }
    return kafka_timers_add(&p->timers, name, interval_ms, fn, ctx);
}
