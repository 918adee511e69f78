/* applier_service: the service wiring both appliers share (weight-recalibrator,
 * slo-adjuster) on the service runtime (service.h).
 *
 * An applier service holds one Redis client and one or more appliers
 * (applier.h), each with its REST routes (applier_rest.h). Its inputs and its
 * impact-watch timer hand every record to each applier in turn; each skips
 * what it does not own. The config keys and inputs every applier service has
 * come from APPLIER_SERVICE_CONFIG and APPLIER_SERVICE_INPUTS; the service's
 * ctx (service_main's) must start with its applier_service_t, so that the
 * shared handlers read it.
 */
#ifndef HIVE_APPLIER_SERVICE_H
#define HIVE_APPLIER_SERVICE_H

#include <stddef.h>

#include "applier.h"
#include "applier_rest.h"
#include "redis_sync.h"
#include "service.h"

#define APPLIER_SERVICE_MAX 2

/* The settings every applier service reads (see APPLIER_SERVICE_CONFIG). */
typedef struct {
    char *commands_topic, *telemetry_topic, *applied_topic, *watch_metric;
    double watch_threshold;
    long watch_window_s, lock_ttl_ms;
} applier_service_config_t;

/* clang-format off */
/* The config items of applier_service_config_t `c` (an lvalue); `window`: the
 * default impact-watch window in seconds, as a string; `what`: what one lock
 * and one watch are about ("engine", "service"). */
#define APPLIER_SERVICE_CONFIG(c, window, what)                                                              \
    {"KAFKA_APPLIED_TOPIC", CONFIG_STRING, "optimization.applied", 0, 0, NULL, &(c).applied_topic,           \
     "OptimizationEvent output (APPLIED, ROLLED_BACK, REJECTED)"},                                           \
    {"IMPACT_WATCH_METRIC", CONFIG_ENUM, "error_rate", 0, 0,                                                 \
     "error_rate|latency_p95_ms|latency_p99_ms|slo_compliance|availability", &(c).watch_metric,              \
     what " telemetry watched after each change"},                                                           \
    {"IMPACT_WATCH_THRESHOLD", CONFIG_DOUBLE, "0.1", 0.001, 10, NULL, &(c).watch_threshold,                  \
     "relative worsening of the watched metric that rolls the change back"},                                 \
    {"IMPACT_WATCH_WINDOW_SECONDS", CONFIG_INT, window, 1, 2592000, NULL, &(c).watch_window_s,               \
     "how long after a change its impact is watched"},                                                       \
    {"LOCK_TTL_MS", CONFIG_INT, "10000", 100, 600000, NULL, &(c).lock_ttl_ms,                                \
     "time to live of the Redis lock per " what}

/* The two inputs of applier_service_config_t `c`; `commands_doc`, `telemetry_doc`:
 * the --help lines of KAFKA_COMMANDS_TOPIC (the types owned) and KAFKA_TELEMETRY_TOPIC. */
#define APPLIER_SERVICE_INPUTS(c, commands_doc, telemetry_doc)                                               \
    {"KAFKA_COMMANDS_TOPIC", "optimization.commands", "OptimizationCommand", applier_service_on_command,     \
     commands_doc, &(c).commands_topic, NULL},                                                               \
    {"KAFKA_TELEMETRY_TOPIC", "telemetry.aggregated", "TelemetryAggregated", applier_service_on_telemetry,   \
     telemetry_doc, &(c).telemetry_topic, NULL}

/* The impact-watch timer (transactional, every 5 s). */
#define APPLIER_SERVICE_TIMER {"impact-watch", 5000, 0, NULL, applier_service_watch_tick, NULL, 0}
/* clang-format on */

typedef struct {
    const applier_service_config_t *cfg;
    const char *name; /* "weight-recalibrator": applied_by, logs */
    redis_sync_t *redis;
    size_t n;
    applier_t *applier[APPLIER_SERVICE_MAX];
    applier_rest_t *rest[APPLIER_SERVICE_MAX];
} applier_service_t;

/* One applier of the service: applier_conf_t's own part, and its REST routes. */
typedef struct {
    const char *lock_prefix, *coll, *state_record, *state_topic;
    const char *const *types;
    size_t ntypes;
    store_t *store; /* NULL: the service's */
    applier_domain_t domain;
    void *domain_ctx;
    const char *rest_prefix; /* "/api/v1/weights" */
    const char *rest_type;   /* optimization type of the rollbacks the REST API sends */
} applier_unit_t;

/* Setup: connects the Redis client (for worker threads). `s->cfg` and
 * `s->name` must be set. Returns 0, or -1 after logging why. */
int applier_service_open(applier_service_t *s, service_t *svc);

/* Setup: adds an applier with its REST routes and creates its indexes (a
 * failure there is logged: lookups scan). Returns the applier, or NULL after
 * logging why. */
applier_t *applier_service_add(applier_service_t *s, service_t *svc, const applier_unit_t *u);

/* The inputs' and the timer's handlers (ctx: a struct starting with an applier_service_t). */
kafka_verdict_t applier_service_on_command(void *ctx, const rd_kafka_message_t *m, avro_value_t *v,
                                           kafka_out_t *out, char *why, size_t len);
kafka_verdict_t applier_service_on_telemetry(void *ctx, const rd_kafka_message_t *m, avro_value_t *v,
                                             kafka_out_t *out, char *why, size_t len);
kafka_verdict_t applier_service_watch_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out,
                                           char *why, size_t len);

/* REST reads in flight (the drain waits for 0). */
size_t applier_service_pending(const applier_service_t *s);

/* Teardown: frees the appliers, their routes' state and the Redis client; keeps cfg and name. */
void applier_service_close(applier_service_t *s);

#endif
