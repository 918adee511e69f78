/* kafka_internal: pieces shared by kafka.c, kafka_pipeline.c and
 * kafka_producer.c, declared here so that tests/unit/test_kafka.c can check
 * them alone. Services include kafka.h only.
 */
#ifndef HIVE_KAFKA_INTERNAL_H
#define HIVE_KAFKA_INTERNAL_H

#include <stdint.h>

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

typedef struct {
    /* Set once by the pipeline. */
    rd_kafka_t *producer, *consumer;
    kafka_transform_fn transform;
    void *ctx;
    const char *service;
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
    kafka_out_t out;
} kafka_batch_t;

/* Zeroes the batch and makes room for `max` messages. Returns 0 or -1. */
int kafka_batch_init(kafka_batch_t *b, size_t max);
/* Runs the whole transaction of msgs[0..n) (blocking: a worker thread only). */
void kafka_batch_run(kafka_batch_t *b);
/* After a commit, on the loop: adds the counts to the metrics (may be NULL)
 * and logs each dead letter with its reason and trace id. */
void kafka_batch_report(kafka_batch_t *b, metric_t *produced, metric_t *dlq);
/* Destroys the messages and results, keeps the arrays for the next batch. */
void kafka_batch_clear(kafka_batch_t *b);
void kafka_batch_deinit(kafka_batch_t *b);

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
