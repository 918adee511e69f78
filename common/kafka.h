/* kafka: librdkafka driven by the libuv loop.
 *
 * Two clients:
 *
 * - kafka_pipeline_t, the exactly-once consume-transform-produce loop every
 *   consumer of the suite runs on (DESIGN.md, "The contract of every consumer").
 *   A consumer group member reads `read_committed`; each batch of records is
 *   transformed on a worker thread and its outputs, its dead-letter records and
 *   its consumed offsets are committed in one Kafka transaction. A transient
 *   failure aborts the transaction, rewinds the partitions to the batch's first
 *   offsets, pauses them and backs off with jitter: nothing is lost, nothing is
 *   produced twice.
 *
 * - kafka_producer_t, an idempotent (non-transactional) producer for events that
 *   are not born from a consumed record, such as a REST call.
 *
 * Both wake the loop through rd_kafka_queue_io_event_enable() on a non-blocking
 * pipe, and run every blocking librdkafka call (transactions, close, flush) on
 * libuv worker threads. All functions below are called on the loop thread
 * unless stated otherwise, and all callbacks run on the loop thread, except the
 * handlers (transform, transform_batch, timer ticks), which run on a worker.
 */
#ifndef HIVE_KAFKA_H
#define HIVE_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"

/* ---- Records a transform wants produced --------------------------------- */

/* The outputs of one input record, produced inside the batch's transaction. */
typedef struct kafka_out_s kafka_out_t;

/* Adds a record to produce to `topic` inside the current transaction. `key`
 * (may be NULL) and `value` (may be NULL for a tombstone) are copied. `headers`
 * may be NULL; ownership of it is always taken, also on failure. The record is
 * partitioned by key (murmur2, like the Java client). Returns 0, or -1 on bad
 * arguments or allocation failure. */
int kafka_out_add(kafka_out_t *out, const char *topic, const void *key, size_t keylen, const void *value,
                  size_t len, rd_kafka_headers_t *headers);

/* ---- Headers -------------------------------------------------------------- */

/* Returns the value of the last header called `name` of a consumed message and
 * its length in *out_len (if not NULL), or NULL when absent. The value is NOT
 * NUL-terminated and lives as long as the message. */
const void *kafka_header_get(const rd_kafka_message_t *m, const char *name, size_t *out_len);

/* Copies the value of header `name` into `buf` as a NUL-terminated string,
 * truncated to buflen-1 bytes. Returns the full length of the value, or -1 when
 * absent (buf then holds ""). For ids such as "trace_id" in logs. */
int kafka_header_copy(const rd_kafka_message_t *m, const char *name, char *buf, size_t buflen);

/* ---- The exactly-once pipeline -------------------------------------------- */

typedef enum {
    KAFKA_OK = 0,         /* outputs (if any) are produced, the record is done */
    KAFKA_BAD_INPUT = -1, /* the record goes to <topic>.dlq with `reason`; the stream goes on */
    KAFKA_RETRY = -2,     /* transient: abort the batch, rewind, back off, try again */
} kafka_verdict_t;

/* Transforms one consumed record. Called on a WORKER thread (never the loop
 * thread), one message at a time, in partition order, inside the batch's
 * transaction; it may block (MongoDB writes), but the whole batch must fit well
 * within transaction.timeout.ms (30 s), or the broker aborts the transaction and
 * fences the producer. A record may be presented again after KAFKA_RETRY (or an
 * aborted commit), so side effects outside Kafka must be idempotent.
 *
 * On KAFKA_BAD_INPUT, write a reason into `reason` (NUL-terminated, at most
 * `reasonlen` bytes); outputs added for that record are discarded. Any value
 * other than the three verdicts is treated as KAFKA_RETRY. */
typedef kafka_verdict_t (*kafka_transform_fn)(void *ctx, const rd_kafka_message_t *in, kafka_out_t *out,
                                              char *reason, size_t reasonlen);

/* ---- Batch handlers --------------------------------------------------------- */

/* The records of one transaction, as a batch handler sees them: in partition
 * order, each with its own outputs. Valid during the handler's call only. */
typedef struct kafka_in_s kafka_in_t;

/* Number of records in the batch (at least 1). */
size_t kafka_in_count(const kafka_in_t *in);

/* Record i (0 <= i < count), or NULL when out of range. The message lives as
 * long as the handler's call. */
const rd_kafka_message_t *kafka_in_msg(const kafka_in_t *in, size_t i);

/* The outputs of record i, for kafka_out_add(); NULL when out of range. They
 * are produced in record order once the handler returns KAFKA_OK. */
kafka_out_t *kafka_in_out(kafka_in_t *in, size_t i);

/* Sends record i alone to <topic>.dlq with `reason` (copied; NULL or "" reads
 * "unspecified") and drops its outputs, also those added later. The other
 * records of the batch commit as usual. Out-of-range indexes are ignored. */
void kafka_in_reject(kafka_in_t *in, size_t i, const char *reason);

/* Handles the whole batch of one transaction. Called on a WORKER thread, inside
 * the transaction; may block, but must finish well within the transaction
 * timeout (30 s): size max_batch to the work. KAFKA_OK commits the outputs of
 * every record not rejected, the dead letters of the rejected ones and the
 * consumed offsets, once. KAFKA_RETRY (and any value other than KAFKA_OK)
 * aborts all of it: the partitions rewind, back off, and the same records come
 * again, possibly in a batch cut differently, so side effects outside Kafka must
 * be idempotent. KAFKA_BAD_INPUT for the whole batch is not a verdict: reject
 * the bad records with kafka_in_reject(). The per-record `transform` runs
 * through this same path (one handler call per batch that calls the transform
 * record by record, and stops taking records after KAFKA_BATCH_BUDGET_MS). */
typedef kafka_verdict_t (*kafka_batch_fn)(void *ctx, kafka_in_t *in);

/* ---- Timers, exactly once ------------------------------------------------------ */

/* Runs one slot of a timer. Called on a WORKER thread, never concurrently with
 * a batch or another tick, inside its own transaction: `out` is produced and
 * the slot marked done in one commit. `slot` = floor(time / interval_ms) of the
 * slot being run, `now_ms` the wall clock when called. KAFKA_OK commits the
 * outputs; KAFKA_BAD_INPUT logs `reason`, drops the outputs and marks the slot
 * done (skipped); KAFKA_RETRY aborts, backs off and runs the same slot again.
 * A slot may be presented again after a retry or a crash, never committed
 * twice: side effects outside Kafka must be idempotent (key them by slot). */
typedef kafka_verdict_t (*kafka_tick_fn)(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out,
                                         char *reason, size_t reasonlen);

typedef struct {
    const char *bootstrap_servers; /* "127.0.0.1:9092" */
    const char *group_id;          /* consumer group */
    /* Stable id of this producer instance. NULL selects "<service>-<hostname>",
     * so that a restarted process fences its killed predecessor and aborts its
     * open transaction at once. Two pipelines in one process need two ids. */
    const char *transactional_id;
    const char *service;       /* logs, client.id, dlq.service header */
    const char *const *topics; /* subscribed topics */
    size_t ntopics;
    /* Exactly one of the two handlers; both may be NULL only when `topics` is
     * empty (a pipeline of timers alone). */
    kafka_transform_fn transform;   /* one record at a time */
    kafka_batch_fn transform_batch; /* the whole batch of a transaction */
    void *ctx;                      /* passed to the handler and on_fatal */
    metrics_t *metrics;             /* may be NULL */
    size_t max_batch;               /* records per transaction; 0 selects 500 */
    /* The producer was fenced or hit a fatal error, or the transactions could
     * not be initialised, or the consumer hit a fatal error more than 5 times
     * in 60 s: the pipeline has stopped processing and the service must stop
     * (call kafka_pipeline_stop). Called once, on the loop thread. May be NULL.
     * A consumer's fatal error (its static member fenced, FENCED_INSTANCE_ID)
     * is not reported here: the pipeline replaces the consumer, which resumes
     * from the committed offsets. */
    void (*on_fatal)(void *ctx, const char *why);
    /* Compacted topic holding the timers' markers, "<service>.timers"; needed
     * by kafka_pipeline_add_timer(). Created at start when missing (1 partition,
     * cleanup.policy=compact); must not be one of `topics`. May be NULL. */
    const char *timers_topic;
} kafka_pipeline_conf_t;

typedef struct kafka_pipeline_s kafka_pipeline_t;

/* Creates the consumer and the transactional producer (no I/O yet). Producer:
 * acks=all, enable.idempotence, linger.ms=10, batch.size=16384, snappy,
 * transaction.timeout.ms=30000. Consumer: no auto-commit, read_committed,
 * auto.offset.reset=earliest, eager range assignment, statistics every 1 s,
 * a 10 s session timeout, and static membership with the transactional id as
 * group.instance.id: a replica restarted with the same id gets its partitions
 * back at once (and its producer fences the old one's); a replica that stops
 * for good leaves its partitions idle for the session timeout. A dead letter
 * that would exceed the producer's message.max.bytes is cut to a prefix and
 * marked with the header dlq.truncated=true.
 * Strings and the topic array of `conf` are copied. Returns NULL with a message
 * in `err` on failure. Free with kafka_pipeline_destroy(). */
kafka_pipeline_t *kafka_pipeline_create(uv_loop_t *loop, const kafka_pipeline_conf_t *conf, char *err,
                                        size_t errlen);

/* Adds a timer whose `fn` runs once per slot of `interval_ms` (>= 100),
 * exactly once across restarts and replicas (see "Timers" below). `name` keys
 * the timer's marker, so it must stay the same across releases: 1 to 200
 * characters of [A-Za-z0-9._:-], unique in the pipeline. Call before
 * kafka_pipeline_start(); needs conf.timers_topic. `ctx` is passed to `fn`.
 * Returns 0, or -1 on bad arguments, a duplicate name, after start, or out of
 * memory.
 *
 * Timers. slot = floor(now_ms / interval_ms) on the wall clock, the same on
 * every replica. The timers run on the replica that owns partition 0 of
 * timers_topic, on the pipeline's worker, each tick in its own transaction
 * that also writes the marker (key = timer name, value = the slot, decimal)
 * to timers_topic. So a slot's outputs and its marker commit together or not
 * at all. Why no slot commits twice:
 * - On every assignment of that partition the owner reads it from the start
 *   (never from a committed offset) up to a barrier: a record it writes in a
 *   transaction of its own right after the assignment. A read_committed reader
 *   cannot pass a transaction still open before the barrier, so once it reads
 *   the barrier, every marker committed before the assignment (and every
 *   transaction that might still commit one) has been read. Only then does a
 *   tick run; a slot <= the timer's marker is never run.
 * - A restarted process keeps its transactional id: init_transactions fences
 *   its predecessor and aborts the transaction it left open.
 * - A replica that lost the partition without noticing (paused, cut off) is
 *   fenced by the group: each tick flushes its records (so the marker is in the
 *   log) and then sends an offset of timers_topic with the consumer group's
 *   generation in the transaction; the group coordinator refuses it once the
 *   partition moved on, and the tick aborts. A tick whose offsets were accepted
 *   wrote its marker before the new owner's barrier, which therefore waits for
 *   that transaction's outcome. (That offset is never read back: assignment
 *   always starts at the beginning of the partition.)
 * Slots are contiguous while a replica owns the timers: a tick that comes late
 * (a long batch, a back-off) runs every slot it missed since it took over, in
 * order. Slots that passed while no replica owned the timers are not run: the
 * first tick of an owner is max(marker + 1, the slot when it caught up). Ticks
 * stop on revocation and at stop. */
int kafka_pipeline_add_timer(kafka_pipeline_t *p, const char *name, uint64_t interval_ms, kafka_tick_fn fn,
                             void *ctx);

/* The last committed slot of timer `name` (its marker), or INT64_MIN when none
 * is known or the name is unknown. Meant for a tick, on the worker: it is then
 * the last slot committed before the running one, so a tick can tell whether
 * what it staged outside Kafka in an earlier slot was committed with it. */
int64_t kafka_pipeline_timer_marker(const kafka_pipeline_t *p, const char *name);

/* Initialises the transactions on a worker (retrying while the broker is
 * unreachable), creates timers_topic when timers were added and it is missing,
 * then subscribes and starts consuming. Returns 0, or -1 when
 * already started or the loop refused a handle. Later failures go to on_fatal. */
int kafka_pipeline_start(kafka_pipeline_t *p);

/* Stops intake, lets the in-flight batch finish and commit, closes the consumer
 * and flushes the producer (off the loop thread), closes the handles, then calls
 * done(arg) on the loop thread. Afterwards the pipeline holds no handle on the
 * loop. Works in any state (also never started, or after on_fatal); call once. */
void kafka_pipeline_stop(kafka_pipeline_t *p, void (*done)(void *arg), void *arg);

/* Frees the pipeline: after stop's done, or when it was never started (then
 * it destroys the idle clients itself, which blocks briefly). Accepts NULL. */
void kafka_pipeline_destroy(kafka_pipeline_t *p);

/* True when the pipeline runs (not fenced, not stopping), a broker answers
 * (no "all brokers down" since the last response, and a response within the
 * last 5 s), the last transaction did not fail on Kafka, no transaction has
 * been in flight for over 15 s, and partitions are assigned: the Kafka part of
 * /ready. It comes back by itself when the broker does. */
bool kafka_pipeline_ready(const kafka_pipeline_t *p);

/* kafka_pipeline_ready(), and when false a short reason in `detail` (may be
 * NULL; NUL-terminated, truncated to `detail_len`), e.g. "all brokers down".
 * Same shape as http_check_detail_fn. */
bool kafka_pipeline_ready_detail(const kafka_pipeline_t *p, char *detail, size_t detail_len);

/* True while backing off after KAFKA_RETRY or an aborted transaction. */
bool kafka_pipeline_paused(const kafka_pipeline_t *p);

/* Writes "<service>-<hostname>" into `buf`. Returns 0, or -1 when it does not fit. */
int kafka_default_transactional_id(const char *service, char *buf, size_t buflen);

/* ---- The idempotent producer ---------------------------------------------- */

typedef struct kafka_producer_s kafka_producer_t;

/* Outcome of one record: 0 once the broker acknowledged it (acks=all), else
 * the error (print with rd_kafka_err2str). Called once, on the loop thread. */
typedef void (*kafka_delivery_fn)(void *arg, rd_kafka_resp_err_t err);

/* Creates an idempotent producer (acks=all, enable.idempotence, linger.ms=10,
 * batch.size=16384, snappy) whose delivery reports come back on the loop.
 * `metrics` may be NULL. Returns NULL with a message in `err` on failure. Stop
 * with kafka_producer_close(), then free with kafka_producer_destroy(). */
kafka_producer_t *kafka_producer_create(uv_loop_t *loop, const char *bootstrap_servers, metrics_t *metrics,
                                        char *err, size_t errlen);

/* Queues a record; key and value are copied. `headers` may be NULL; ownership
 * is always taken. `cb` (may be NULL) is called with the outcome. Returns 0, or
 * the error (e.g. RD_KAFKA_RESP_ERR__QUEUE_FULL, or RD_KAFKA_RESP_ERR__STATE
 * after close), in which case `cb` is never called. */
rd_kafka_resp_err_t kafka_producer_send(kafka_producer_t *p, const char *topic, const void *key,
                                        size_t keylen, const void *value, size_t len,
                                        rd_kafka_headers_t *headers, kafka_delivery_fn cb, void *arg);

/* Refuses new records, flushes the queued ones off the loop thread (up to 5 s;
 * what is left then fails with RD_KAFKA_RESP_ERR__PURGE_QUEUE), delivers every
 * outstanding callback, closes the handles and calls done(arg). Call once. */
void kafka_producer_close(kafka_producer_t *p, void (*done)(void *arg), void *arg);

/* Frees the producer: after close's done, or right after a failed create. Accepts NULL. */
void kafka_producer_destroy(kafka_producer_t *p);

#endif
