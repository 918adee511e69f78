/* service: the runtime every service of the suite stands on.
 *
 * A service declares WHAT it is in a service_def_t: its name and summary, its
 * own config table, its Kafka inputs (topic -> expected Avro record ->
 * handler), its timers, its REST routes and OpenAPI document, an optional
 * gRPC service, its readiness checks, the clients it needs, and a setup and a
 * teardown callback. service_main() does the rest the same way for everyone
 * (DESIGN.md, "The contract of every consumer"):
 *
 *   1. --help / --version (cli.h); the config table is the SHARED keys below,
 *      then one key per input topic, then the service's own keys;
 *   2. config validation: a bad value stops the service naming the variable
 *      and the accepted range, exit status 2;
 *   3. JSON logs (log.h) at LOG_LEVEL, a metrics registry, the lifecycle
 *      (libuv loop, SIGTERM/SIGINT);
 *   4. the clients asked for: MongoDB store with its health watcher, Redis,
 *      the Avro codec (with the Schema Registry when SCHEMA_REGISTRY_URL is
 *      set), the HTTP server with /health /ready /metrics, the idempotent
 *      producer, the exactly-once pipeline over the inputs, the gRPC server;
 *   5. setup(), then the declared routes, /openapi.json, the gRPC service,
 *      the pipeline and the timers start;
 *   6. run until SIGTERM, then drain within 10 s in this order: the APIs
 *      (HTTP, gRPC), the timers, the work they started (`pending`), the
 *      pipeline (finishes and commits its batch), the producer (flushes),
 *      Redis, the store's watcher, then the finalizers; uv_loop_close() == 0;
 *   7. teardown(), then every client freed in reverse.
 * A fatal Kafka error (fenced producer) stops the service with exit status 1.
 *
 * Shared keys (defaults can be overridden per service with `defaults`):
 *   always               SCHEMA_REGISTRY_URL (""), HTTP_HOST (127.0.0.1),
 *                        HTTP_PORT (8000; 0 = any free port), LOG_LEVEL (info)
 *   pipeline or producer KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092)
 *   pipeline             KAFKA_CONSUMER_GROUP (<name>), KAFKA_TRANSACTIONAL_ID
 *                        (auto = <name>-<hostname>), KAFKA_MAX_BATCH (500)
 *   transactional timers KAFKA_TIMERS_TOPIC (<name>.timers)
 *   store                MONGODB_URI (mongodb://127.0.0.1:27017),
 *                        MONGODB_DATABASE (<name>)
 *   redis                REDIS_HOST (127.0.0.1), REDIS_PORT (6379)
 *   grpc                 GRPC_PORT (50051; 0 = any free port)
 *
 * Threads: input handlers run on the pipeline's worker thread (they may block
 * on MongoDB); everything else (setup, teardown, timers, routes, checks, the
 * gRPC service) runs on the loop thread.
 *
 * A transactional timer is a service_timer_t whose `tick` is set: its
 * outputs are produced exactly once per slot (kafka_pipeline_add_timer). A
 * batch input is a service_input_t whose `handle_batch` is set: it gets the
 * valid records of one transaction together.
 */
#ifndef HIVE_SERVICE_H
#define HIVE_SERVICE_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "avro_codec.h"
#include "config.h"
#include "grpc.h"
#include "http.h"
#include "kafka.h"
#include "lifecycle.h"
#include "metrics.h"
#include "redis.h"
#include "store.h"

typedef struct service_s service_t;

/* Number of elements of a static table, for the n... fields below. */
#define SERVICE_N(table) (sizeof(table) / sizeof((table)[0]))

/* The clients a service needs (service_def_t.needs). */
typedef enum {
    SERVICE_STORE = 1 << 0,    /* MongoDB store + health watcher; /ready "mongodb" */
    SERVICE_REDIS = 1 << 1,    /* Redis client; /ready "redis" */
    SERVICE_PRODUCER = 1 << 2, /* idempotent producer for records not born from a consumed one */
    SERVICE_PIPELINE = 1 << 3, /* exactly-once pipeline over the inputs; /ready "kafka", "intake_flowing" */
    SERVICE_GRPC = 1 << 4,     /* gRPC server on GRPC_PORT; needs grpc_register */
} service_needs_t;

/* Handles one decoded record of an input, on the pipeline's WORKER thread,
 * inside the batch's transaction (kafka_transform_fn's contract). `value` is
 * the record decoded as the input's `record`, owned by the runtime (do not
 * decref); `msg` is the raw message (key, headers, offsets). */
typedef kafka_verdict_t (*service_input_fn)(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                            kafka_out_t *out, char *reason, size_t reasonlen);

/* One decoded record of a batch input. `value` is owned by the runtime (do
 * not decref); `out` receives the record's outputs; `index` is its place in
 * the transaction, for kafka_in_reject(). */
typedef struct {
    const rd_kafka_message_t *msg;
    avro_value_t *value;
    kafka_out_t *out;
    size_t index;
} service_record_t;

/* Handles the `n` valid records of one input in one transaction, on the
 * pipeline's WORKER thread (kafka_batch_fn's contract): a record that is bad
 * on its own is rejected with kafka_in_reject(in, recs[i].index, reason) and
 * goes to the DLQ alone; KAFKA_OK commits the others' outputs; KAFKA_RETRY
 * aborts and replays the whole transaction, so side effects must be
 * idempotent. Records that did not decode or validate never reach it. */
typedef kafka_verdict_t (*service_batch_fn)(void *ctx, kafka_in_t *in, const service_record_t *recs,
                                            size_t n);

/* The validation every decoded record passes before its handler: 0 when
 * valid, else non-zero with a reason (NUL-terminated, at most `reasonlen`
 * bytes); the record then goes to the DLQ. avro_validate() has this type. */
typedef int (*service_validate_fn)(const avro_codec_t *codec, const char *record, const avro_value_t *value,
                                   char *reason, size_t reasonlen);

/* One Kafka input. The runtime adds the config key `topic_var` (default
 * `topic_default`), subscribes to the topic, decodes each record as `record`
 * and calls `handle(ctx, ...)`. A record that does not decode, or does not
 * validate, goes to <topic>.dlq with the reason and never reaches `handle`;
 * a Schema Registry that cannot be reached retries the batch. */
typedef struct {
    const char *topic_var;     /* "KAFKA_TELEMETRY_TOPIC" */
    const char *topic_default; /* "telemetry.aggregated" */
    const char *record;        /* expected record name, "TelemetryAggregated" */
    service_input_fn handle;
    const char *doc; /* --help line of topic_var; NULL: "<record> input" */
    char **topic;    /* optional: receives the topic name (owned by the runtime) */
    /* Instead of `handle` (exactly one is set): all the valid records of this
     * input in one transaction, in partition order, handed together so that
     * the store work goes as one bulk operation (see service_batch_fn). */
    service_batch_fn handle_batch;
} service_input_t;

/* A plain timer on the loop thread: fn(ctx) after `first_ms` (0: after
 * `interval_ms`) and then every `interval_ms`. Stopped at shutdown after the
 * APIs and before the pipeline. With `interval_key` set, the interval is a
 * setting instead: the value of that INT or DOUBLE key of the merged config
 * table times `interval_unit_ms` (0: 1), rounded to whole milliseconds and
 * read by service_configure(), which refuses a result below 1 ms or above
 * 2^32 ms naming the key; `interval_ms` is then ignored. A transactional
 * timer's marker counts slots of its interval: after RAISING the interval of
 * a deployed timer, its stored marker lies far ahead and the timer waits for
 * it, so such a change goes with a new timer `name`. */
typedef struct {
    const char *name; /* logs */
    unsigned interval_ms;
    unsigned first_ms;
    void (*fn)(void *ctx);
    /* Instead of `fn` (exactly one is set): a transactional timer of the
     * pipeline (SERVICE_PIPELINE), kafka_pipeline_add_timer(): tick(ctx, slot,
     * now_ms, out, ...) runs on the pipeline's worker and its outputs are
     * produced exactly once per slot, across restarts and replicas. `name` keys
     * its marker in KAFKA_TIMERS_TOPIC, so it must not change between releases;
     * `first_ms` is ignored. */
    kafka_tick_fn tick;
    const char *interval_key; /* "MONITOR_INTERVAL_SECONDS"; NULL: interval_ms */
    double interval_unit_ms;  /* 1000 for seconds, 60000 for minutes */
} service_timer_t;

/* A REST route; the handler gets the service's ctx. */
typedef struct {
    const char *method;  /* "GET" */
    const char *pattern; /* "/api/v1/things/{id}" (router.h) */
    http_handler_fn fn;
} service_route_t;

/* A readiness check of the service's own, next to the runtime's. */
typedef struct {
    const char *name;
    http_check_fn fn; /* fn(ctx): quick, on the loop thread */
} service_check_t;

/* A per-service default of a shared (or input) key: {"KAFKA_CONSUMER_GROUP", "optimizer-agents"}. */
typedef struct {
    const char *name;
    const char *value;
} service_default_t;

typedef struct {
    const char *name;    /* "optimizer": logs, client ids, default group and database */
    const char *summary; /* --help paragraph */
    const char *version; /* --version; NULL: the suite's version */
    unsigned needs;      /* service_needs_t flags */

    const config_item_t *config; /* the service's own keys */
    size_t nconfig;
    const service_default_t *defaults; /* overrides of shared defaults */
    size_t ndefaults;

    const service_input_t *inputs; /* need SERVICE_PIPELINE */
    size_t ninputs;
    const service_timer_t *timers;
    size_t ntimers;
    const service_route_t *routes;
    size_t nroutes;
    const service_check_t *checks;
    size_t nchecks;

    /* Served at GET /openapi.json (application/json), `openapi_len` bytes.
     * NULL: a document of the built-in routes. A service whose setup
     * registered /openapi.json itself keeps its own. */
    const char *openapi;
    size_t openapi_len;

    /* After the clients exist, before anything runs: build the domain objects,
     * register extra routes (service_http). Returns 0, or non-zero after
     * logging why (the service then stops with status 1). */
    int (*setup)(service_t *svc, void *ctx);
    /* Registers the gRPC methods (SERVICE_GRPC). Returns 0 or non-zero. */
    int (*grpc_register)(service_t *svc, void *ctx, grpc_server_t *grpc);
    /* Work the APIs or timers started that has not answered yet (a job on a
     * worker thread, say). Once the APIs and timers are closed, the drain
     * waits until this returns 0, then stops the pipeline. NULL: none. */
    size_t (*pending)(void *ctx);
    /* After the loop has closed, before the clients are freed: free what
     * setup built. Called whenever setup was called, also if it failed. */
    void (*teardown)(service_t *svc, void *ctx);
} service_def_t;

/* The values of the shared keys, as loaded (strings owned by the runtime). */
typedef struct {
    char *bootstrap_servers, *consumer_group, *transactional_id; /* transactional_id: "auto" resolved */
    char *registry_url, *mongodb_uri, *mongodb_database, *redis_host, *http_host, *log_level;
    char *timers_topic; /* KAFKA_TIMERS_TOPIC, with transactional timers only */
    long max_batch, redis_port, http_port, grpc_port;
} service_config_t;

/* Runs the whole service: argv, config, clients, setup, run, drain, free.
 * `ctx` is passed to every callback of `def`. Returns the process's exit
 * status: 0 after --help/--version or a clean SIGTERM, 2 for a bad argument
 * or configuration, 1 for a failure at start or a fatal error. */
int service_main(const service_def_t *def, void *ctx, int argc, char **argv);

/* The steps of service_main, for tests. service_create validates `def` and
 * builds the merged config table (no environment read yet); NULL with a
 * reason in `err` for an inconsistent def. `def` and `ctx` must outlive the
 * service. Free with service_destroy(). */
service_t *service_create(const service_def_t *def, void *ctx, char *err, size_t errlen);
/* The merged config table: shared, input topics, own keys. */
const config_item_t *service_config_items(const service_t *svc, size_t *out_n);
/* The interval of timer `i` of the def in ms: its `interval_ms` as it is
 * at the call, or once configured the value of its `interval_key` (0 before). */
uint64_t service_timer_interval_ms(const service_t *svc, size_t i);
/* Prints --help (summary and the merged table) to `out`. */
void service_print_help(const service_t *svc, FILE *out);
/* Reads the environment: 0, or -1 with "invalid configuration: VAR=..."
 * naming the variable and the range in `err`. */
int service_configure(service_t *svc, char *err, size_t errlen);
/* Creates the clients, calls setup, starts everything. 0, or -1 after
 * logging why. */
int service_start(service_t *svc);
/* Runs the loop until the drain completes; returns the exit code. After a
 * failed start, drains what was started and returns 1. */
int service_run(service_t *svc);
/* Calls teardown (if setup ran) and frees everything in reverse. Accepts NULL. */
void service_destroy(service_t *svc);
/* Starts the drain, as SIGTERM does; `exit_code` as lifecycle_stop(). */
void service_stop(service_t *svc, int exit_code);

/* Accessors for setup, handlers and timers. A client the service did not ask
 * for is NULL. */
const char *service_name(const service_t *svc);
const service_config_t *service_config(const service_t *svc);

/* The database named in the path of a MongoDB URI ("mongodb://h:27017/db?x"
 * gives "db") into out. Returns its length, 0 when the URI names none (or it
 * does not fit). MONGODB_DATABASE, when unset, takes it over the default. */
int service_uri_database(const char *uri, char *out, size_t outlen);
uv_loop_t *service_loop(service_t *svc);
lifecycle_t *service_lifecycle(service_t *svc);
metrics_t *service_metrics(service_t *svc);
avro_codec_t *service_codec(service_t *svc);
store_t *service_store(service_t *svc);
redis_t *service_redis(service_t *svc);
kafka_producer_t *service_producer(service_t *svc);
kafka_pipeline_t *service_pipeline(service_t *svc);
http_server_t *service_http(service_t *svc);
grpc_server_t *service_grpc(service_t *svc);
/* The topic of input `topic_var` as configured, or NULL for an unknown variable. */
const char *service_topic(const service_t *svc, const char *topic_var);

/* The runtime's readiness checks (ctx: the service_t), for a gRPC health
 * service that should answer like /ready. False when the client is absent. */
bool service_kafka_ready(void *svc);
bool service_mongodb_ready(void *svc);
bool service_redis_ready(void *svc);

#endif
