/* kafka_internal: pieces shared by kafka.c, kafka_pipeline.c and
 * kafka_producer.c, declared here so that tests/unit/test_kafka.c can check
 * them alone. Services include kafka.h only.
 */
#ifndef HIVE_KAFKA_INTERNAL_H
#define HIVE_KAFKA_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "kafka.h"

/* ---- kafka_out_t ----------------------------------------------------------- */

typedef struct {
    char *topic;
    void *key, *value; /* owned copies; NULL when absent */
    size_t keylen, len;
    rd_kafka_headers_t *headers; /* owned; NULL when absent */
} kafka_record_t;

struct kafka_out_s {
    kafka_record_t *recs;
    size_t n, cap;
};

void kafka_out_init(kafka_out_t *out);
/* Frees the records, keeps the array for the next input record. */
void kafka_out_reset(kafka_out_t *out);
void kafka_out_deinit(kafka_out_t *out);

/* ---- Client configuration --------------------------------------------------- */

/* Producer settings of the spec: acks=all, enable.idempotence=true, linger.ms=10,
 * batch.size=16384, compression.type=snappy, partitioner=murmur2_random, and with
 * a `transactional_id` (may be NULL) transaction.timeout.ms=30000. Logs go to
 * log.h. Returns NULL with a message in `err` on failure. */
rd_kafka_conf_t *kafka_conf_producer(const char *bootstrap, const char *client_id,
                                     const char *transactional_id, char *err, size_t errlen);

/* The consumer group's session timeout: a member that stops heartbeating for
 * this long loses its partitions (the broker accepts 6 s to 30 min). */
#define KAFKA_SESSION_TIMEOUT_MS 10000
#define KAFKA_HEARTBEAT_MS 1000

/* Consumer settings: enable.auto.commit=false, enable.auto.offset.store=false
 * (the pipeline stores offsets after each commit, for the lag statistics),
 * isolation.level=read_committed, auto.offset.reset=earliest,
 * statistics.interval.ms=1000 (lag and broker liveness), eager
 * range/roundrobin assignment, session.timeout.ms=KAFKA_SESSION_TIMEOUT_MS,
 * heartbeat.interval.ms=KAFKA_HEARTBEAT_MS. With a `group_instance_id` (may be
 * NULL) the member is static (KIP-345): a restarted process that presents the
 * same id takes its partitions back at once instead of after the session
 * timeout, and a clean close does not leave the group (its partitions wait
 * for it up to the session timeout). */
rd_kafka_conf_t *kafka_conf_consumer(const char *bootstrap, const char *group_id, const char *client_id,
                                     const char *group_instance_id, char *err, size_t errlen);

/* Routes librdkafka's log lines to log.h (any thread). */
void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* ---- Headers ---------------------------------------------------------------- */

/* kafka_header_get() on a header list; `hdrs` may be NULL. */
const void *kafka_headers_find(const rd_kafka_headers_t *hdrs, const char *name, size_t *out_len);

/* Builds the headers of a dead-letter record: a copy of the original headers
 * (may be NULL) plus dlq.error.reason, dlq.original.topic,
 * dlq.original.partition, dlq.original.offset, dlq.service and dlq.failed_at
 * (milliseconds since the epoch, decimal). Returns NULL on allocation failure. */
rd_kafka_headers_t *kafka_dlq_headers(const rd_kafka_headers_t *orig, const char *topic, int32_t partition,
                                      int64_t offset, const char *service, const char *reason,
                                      int64_t now_ms);

/* ---- Dead letters ------------------------------------------------------------ */

/* A dead letter that would not fit in the producer's message.max.bytes keeps at
 * most this much of the original value (and KAFKA_DLQ_KEY_BYTES of its key, and
 * its original headers only when they total at most KAFKA_DLQ_HEADER_BYTES). */
#define KAFKA_DLQ_PREFIX_BYTES 65536
#define KAFKA_DLQ_KEY_BYTES 1024
#define KAFKA_DLQ_HEADER_BYTES 16384

/* The record a dead letter is made from. */
typedef struct {
    const char *topic; /* original coordinates */
    int32_t partition;
    int64_t offset;
    const void *key, *value; /* may be NULL */
    size_t keylen, len;
    const rd_kafka_headers_t *headers; /* may be NULL */
} kafka_dlq_src_t;

/* What to produce to <topic>.dlq: the first `keylen` bytes of the source key
 * and the first `len` bytes of its value, with `headers` (owned by the caller). */
typedef struct {
    size_t keylen, len;
    rd_kafka_headers_t *headers;
    bool truncated;
} kafka_dlq_t;

/* Size librdkafka counts against message.max.bytes for a record with these
 * key and value lengths and headers (may be NULL), rounded up. */
size_t kafka_record_size(size_t keylen, size_t len, const rd_kafka_headers_t *headers);

/* Builds the dead letter of `src`: its key, value and headers plus
 * kafka_dlq_headers(). When that would exceed `max_bytes` (the producer's
 * message.max.bytes), the dead letter always still fits: it keeps a prefix of
 * the value (KAFKA_DLQ_PREFIX_BYTES at most) and of the key, drops large
 * original headers, and adds dlq.truncated=true, dlq.original.size (value
 * bytes), and dlq.original.key.size or dlq.original.headers.dropped when those
 * were cut. Returns 0 and fills `out`, or -1 on allocation failure. */
int kafka_dlq_build(const kafka_dlq_src_t *src, const char *service, const char *reason, int64_t now_ms,
                    size_t max_bytes, kafka_dlq_t *out);

/* ---- Offsets of a batch ---------------------------------------------------- */

/* A transaction stops taking records after this long and commits what it has,
 * well inside the producer's transaction timeout (30 s): a slow transform
 * (MongoDB under load) must not get the producer fenced. */
#define KAFKA_BATCH_BUDGET_MS 10000

/* For the messages of a batch, builds per partition the first offset seen
 * (where to rewind to) and the last offset + 1 (what to commit). Returns 0 and
 * two lists to free with rd_kafka_topic_partition_list_destroy(), or -1. */
int kafka_batch_offsets(rd_kafka_message_t *const *msgs, size_t n,
                        rd_kafka_topic_partition_list_t **out_first,
                        rd_kafka_topic_partition_list_t **out_next);

/* ---- Transactions ------------------------------------------------------------ */

typedef enum {
    KAFKA_TXN_RETRY_CALL, /* retriable: call the same function again */
    KAFKA_TXN_ABORT,      /* abort the transaction, rewind, back off */
    KAFKA_TXN_FATAL,      /* fenced or fatal: the producer is unusable */
} kafka_txn_action_t;

/* True for the errors that mean another instance with our transactional.id
 * took over: __FENCED, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH. */
bool kafka_err_is_fenced(rd_kafka_resp_err_t err);

/* What to do after a transactional call returned `error`. */
kafka_txn_action_t kafka_txn_classify(const rd_kafka_error_t *error);

/* ---- One batch and its transaction (kafka_batch.c) ----------------------------- */

typedef enum { KAFKA_BATCH_COMMITTED, KAFKA_BATCH_ABORTED, KAFKA_BATCH_FATAL } kafka_batch_outcome_t;

typedef struct {
    char *topic;
    double n;
} kafka_tally_t;

typedef struct {
    kafka_tally_t *v;
    size_t n, cap;
} kafka_tallies_t;

/* A record of the batch routed to its dead-letter topic, logged once committed. */
typedef struct {
    size_t msg; /* index in msgs */
    char *reason;
} kafka_dead_t;

struct kafka_in_s {
    rd_kafka_message_t **msgs; /* the batch's messages */
    size_t n;
    size_t cut;        /* records to commit: n, or fewer when the per-record
                        * adapter stopped at its time budget */
    kafka_out_t *outs; /* one per record */
    size_t cap;        /* room in outs, rejected, reasons: max_batch */
    bool *rejected;
    char **reasons; /* of the rejected records (may be NULL: "unspecified") */
    char why[320];  /* why the handler asked to retry, when it says */
};

/* What a transaction is for. */
typedef enum {
    KAFKA_JOB_BATCH, /* consumed records through the handler */
    KAFKA_JOB_TICK,  /* one timer slot: the tick's outputs and its marker */
    KAFKA_JOB_MARK,  /* one record alone (the timers' barrier) */
} kafka_job_t;

/* A tick or a barrier: one record (`key`, `value`) for `topic`, after the
 * outputs of `fn` when set. */
typedef struct {
    const char *topic;
    const char *name; /* timer name, for logs */
    char key[256];
    char value[128];
    kafka_tick_fn fn; /* NULL for a barrier */
    void *ctx;
    int64_t slot;
    kafka_verdict_t verdict; /* of fn, once run */
    char reason[256];
} kafka_tick_job_t;

typedef struct {
    /* Set once by the pipeline. */
    rd_kafka_t *producer, *consumer;
    kafka_batch_fn handler;       /* the batch handler, or kafka_batch_per_record */
    void *handler_ctx;            /* its ctx (the batch itself for the adapter) */
    kafka_transform_fn transform; /* per-record mode */
    void *ctx;                    /* the transform's ctx */
    const char *service;
    const atomic_bool *stop; /* the pipeline's stop request: the per-record adapter cuts there */
    /* The job of the next run, set on the loop thread. For a tick, `next`
     * holds the timers offset to send; for a barrier it is NULL. */
    kafka_job_t job;
    kafka_tick_job_t tick;
    /* Filled on the loop thread before the run; owned by the batch. */
    rd_kafka_message_t **msgs; /* room for max_batch */
    size_t n;
    rd_kafka_topic_partition_list_t *first, *next; /* rewind to / commit (last + 1) */
    /* Set by the run when it stopped at the time budget: where the records it
     * did not transform start, per partition (the loop seeks back there). */
    rd_kafka_topic_partition_list_t *rest;
    size_t done; /* records transformed in the committed transaction */
    /* Filled by the run, on the worker. */
    kafka_batch_outcome_t outcome;
    char why[512];     /* when not committed */
    bool kafka_failed; /* not committed because of Kafka (not the transform) */
    kafka_tallies_t produced, dlq;
    kafka_dead_t *dead;
    size_t ndead, deadcap;
    double seconds;
    kafka_in_t in;
} kafka_batch_t;

/* The batch handler that adapts a per-record transform (ctx: the batch). */
kafka_verdict_t kafka_batch_per_record(void *ctx, kafka_in_t *in);

/* Zeroes the batch and makes room for `max` messages. Returns 0 or -1. */
int kafka_batch_init(kafka_batch_t *b, size_t max);
/* Runs the whole transaction of the batch's job: msgs[0..n) for a batch, the
 * tick or the barrier otherwise (blocking: a worker thread only). */
void kafka_batch_run(kafka_batch_t *b);
/* After a commit, on the loop: adds the counts to the metrics (may be NULL)
 * and logs each dead letter with its reason and trace id. */
void kafka_batch_report(kafka_batch_t *b, metric_t *produced, metric_t *dlq);
/* Destroys the messages and results, keeps the arrays for the next batch. */
void kafka_batch_clear(kafka_batch_t *b);
void kafka_batch_deinit(kafka_batch_t *b);

/* ---- Timers (kafka_timer.c) ------------------------------------------------------ */

#define KAFKA_TIMER_MIN_INTERVAL_MS 100
#define KAFKA_TIMER_NAME_MAX 200
#define KAFKA_SLOT_NONE INT64_MIN

/* floor(now_ms / interval_ms), also for times before the epoch. */
int64_t kafka_timer_slot(int64_t now_ms, uint64_t interval_ms);

/* The slot to run next: max(marker + 1, floor). A marker of KAFKA_SLOT_NONE
 * (never run) gives `floor`. */
int64_t kafka_timer_next_slot(int64_t marker, int64_t floor);

/* Parses a marker value (a decimal int64, nothing else). Returns 0 and the
 * slot in *out_slot, or -1 (then untouched). */
int kafka_timer_marker_parse(const void *value, size_t len, int64_t *out_slot);

/* True for a valid timer name: 1..KAFKA_TIMER_NAME_MAX of [A-Za-z0-9._:-]. The
 * barrier's key starts with '#', so it never meets a timer's. */
bool kafka_timer_name_ok(const char *name);

typedef struct {
    char *name;
    uint64_t interval_ms;
    kafka_tick_fn fn;
    void *ctx;
    int64_t marker;      /* last slot done, KAFKA_SLOT_NONE when none */
    int64_t floor;       /* slot when the owner caught up: nothing before runs */
    unsigned attempt;    /* failed tries of the next slot */
    int64_t retry_at_ms; /* back-off: no try before */
} kafka_timer_t;

/* Where the owner of the timers partition stands. */
typedef enum {
    KAFKA_TIMERS_IDLE,    /* partition 0 not assigned here */
    KAFKA_TIMERS_BARRIER, /* assigned: the barrier must be written */
    KAFKA_TIMERS_READING, /* barrier committed: reading up to it */
    KAFKA_TIMERS_RUNNING, /* caught up: ticks run */
} kafka_timers_state_t;

typedef struct {
    kafka_timer_t *v;
    size_t n, cap;
    kafka_timers_state_t state;
    char barrier_key[256]; /* "#barrier:<transactional id>" */
    char token[128];       /* the value of this assignment's barrier */
    unsigned generation;   /* assignments seen, part of the token */
    int64_t next_offset;   /* in the timers partition: last read + 1 */
    unsigned barrier_attempt;
    int64_t barrier_retry_at_ms;
} kafka_timers_t;

/* Sets up an empty table; `txn_id` names the barrier key. Returns 0 or -1. */
int kafka_timers_init(kafka_timers_t *ts, const char *txn_id);
void kafka_timers_deinit(kafka_timers_t *ts);
/* Adds a timer (name copied). Returns 0, or -1 on a bad or duplicate name, an
 * interval below the minimum, a NULL fn, or out of memory. */
int kafka_timers_add(kafka_timers_t *ts, const char *name, uint64_t interval_ms, kafka_tick_fn fn, void *ctx);
/* Partition 0 was assigned: forget the markers, write a new barrier `nonce`
 * (anything unique to this process and assignment). */
void kafka_timers_assigned(kafka_timers_t *ts, uint64_t nonce);
/* Partition 0 was revoked (or lost): no more ticks. */
void kafka_timers_revoked(kafka_timers_t *ts);
/* A committed record of the timers partition at `offset`. Returns true when it
 * was this assignment's barrier, i.e. the owner has just caught up: the timers
 * then run from the slot of `now_ms` on (or their marker + 1). */
bool kafka_timers_on_record(kafka_timers_t *ts, const void *key, size_t keylen, const void *value, size_t len,
                            int64_t offset, int64_t now_ms);
/* The barrier's transaction: committed, or failed (back off, `r01` in [0, 1)). */
void kafka_timers_barrier_done(kafka_timers_t *ts, bool committed, int64_t now_ms, double r01);
/* True when the barrier should be written now. */
bool kafka_timers_barrier_due(const kafka_timers_t *ts, int64_t now_ms);
/* Index of a timer with a slot to run at `now_ms` (the one waiting longest),
 * and that slot in *out_slot; -1 when none. */
ssize_t kafka_timers_due(const kafka_timers_t *ts, int64_t now_ms, int64_t *out_slot);
/* A tick of timer i for `slot` committed (marker = slot), or failed (back off). */
void kafka_timers_tick_done(kafka_timers_t *ts, size_t i, int64_t slot, bool committed, int64_t now_ms,
                            double r01);
/* Milliseconds from `now_ms` until the next tick or barrier is due, 0 when one
 * is due now, -1 when nothing will be due without a record coming first. */
int64_t kafka_timers_next_wake_ms(const kafka_timers_t *ts, int64_t now_ms);

/* ---- Topics ------------------------------------------------------------------------ */

/* Its number of partitions once `topic` is in `rk`'s metadata with every
 * partition led, else 0. Asking
 * through the consumer also fills its metadata cache, so a subscription made
 * right after sees a topic just created instead of waiting for the next
 * periodic refresh (minutes). Blocking, up to `timeout_ms`. */
int kafka_topic_ready(rd_kafka_t *rk, const char *topic, int timeout_ms);

/* Creates `topic` with `partitions` partitions, the broker's replication
 * factor and the NULL-terminated key/value `config`, unless it exists
 * (blocking, up to `timeout_ms`: a worker thread only). Returns 0, or -1 with a
 * message in `err`. */
int kafka_topic_ensure(rd_kafka_t *rk, const char *topic, int partitions, const char *const *config,
                       int timeout_ms, char *err, size_t errlen);

/* ---- Back-off ----------------------------------------------------------------- */

#define KAFKA_BACKOFF_MIN_MS 100
#define KAFKA_BACKOFF_MAX_MS 30000

/* Delay before retry number `attempt` (0 = first): exponential from
 * KAFKA_BACKOFF_MIN_MS, doubled per attempt, capped at KAFKA_BACKOFF_MAX_MS,
 * with jitter: a uniform draw in [cap/2, cap] from `r01` in [0, 1), never below
 * the minimum. */
uint64_t kafka_backoff_ms(unsigned attempt, double r01);

/* ---- Statistics ----------------------------------------------------------------- */

/* Called per partition (never -1) found in a statistics document, with
 * consumer_lag_stored when known, else consumer_lag, else -1. */
typedef void (*kafka_lag_fn)(void *ctx, const char *topic, int32_t partition, int64_t lag);

/* Parses librdkafka's statistics JSON. Returns 0, or -1 when it is not JSON. */
int kafka_stats_lag(const char *json, size_t len, kafka_lag_fn fn, void *ctx);

/* The brokers part of one statistics document. */
typedef struct {
    int64_t ts_us; /* librdkafka's monotonic clock (CLOCK_MONOTONIC, as uv_hrtime) */
    int64_t rx;    /* responses received, summed over every broker connection */
    int up;        /* connections in state UP */
} kafka_brokers_stats_t;

/* Parses the brokers of a statistics document. Returns 0, or -1 when it is not
 * JSON or has no "ts". */
int kafka_stats_brokers(const char *json, size_t len, kafka_brokers_stats_t *out);

/* ---- Broker liveness (the Kafka part of /ready) --------------------------------- */

/* No response from any broker for this long means unreachable (a frozen or
 * partitioned broker keeps its connections open). A consumer hears from the
 * coordinator every KAFKA_HEARTBEAT_MS and, when it fetches, every 500 ms. */
#define KAFKA_STALL_MS 5000

typedef struct {
    int64_t rx;       /* responses received at the last document; -1 before the first */
    int64_t seen_us;  /* time of the last document */
    int64_t alive_us; /* time of the last document that showed a response with a connection up */
} kafka_liveness_t;

/* Starts tracking at `now_us` (monotonic µs): reachable until told otherwise. */
void kafka_liveness_init(kafka_liveness_t *l, int64_t now_us);
/* Takes one statistics document. */
void kafka_liveness_update(kafka_liveness_t *l, const kafka_brokers_stats_t *s);
/* True when the brokers answer: no "all brokers down" event at `down_at_us`
 * (0 = none) since the last response, and a response within KAFKA_STALL_MS of
 * the last document. Otherwise writes why into `why` (may be NULL). */
bool kafka_liveness_ok(const kafka_liveness_t *l, int64_t down_at_us, char *why, size_t whylen);

/* ---- Loop wake-up --------------------------------------------------------------- */

/* A non-blocking, close-on-exec pipe for rd_kafka_queue_io_event_enable(). */
int kafka_wake_pipe(int fds[2]);
/* Empties the read end. */
void kafka_wake_drain(int fd);

/* "topic[0,1,2] other[0]" for logs, truncated to `len`. */
void kafka_format_partitions(const rd_kafka_topic_partition_list_t *l, char *buf, size_t len);

/* Milliseconds since the epoch (wall clock). */
int64_t kafka_now_ms(void);

#endif
