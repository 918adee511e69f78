/* service_internal: what service.c and service_config.c share; not for
 * services. */
#ifndef HIVE_SERVICE_INTERNAL_H
#define HIVE_SERVICE_INTERNAL_H

#include "service.h"

#define SERVICE_DRAIN_MS 10000      /* the whole shutdown, DESIGN.md */
#define SERVICE_STORE_WATCH_MS 2000 /* MongoDB health ping */
#define SERVICE_REGISTRY_TIMEOUT_MS 5000
#define SERVICE_PENDING_POLL_MS 5 /* how often the drain looks at def->pending() */
#define SERVICE_SHARED_MAX 14     /* shared keys at most */

typedef struct {
    uv_timer_t handle;
    service_t *svc;
    const service_timer_t *def;
} service_timer_rt_t;

struct service_s {
    const service_def_t *def;
    void *ctx;
    service_config_t cfg;
    config_item_t *items; /* shared, input topics, own */
    size_t nitems;
    char **own_topics;   /* slots for inputs that do not name one */
    char ***topic_slots; /* where each input's topic lives */
    const char **topics; /* the input topics, for the pipeline */
    char *openapi;       /* the generated document when the def has none */

    lifecycle_t *lc;
    metrics_t *metrics;
    store_t *store;
    redis_t *redis;
    registry_t *registry;
    avro_codec_t *codec;
    kafka_producer_t *producer;
    kafka_pipeline_t *pipeline;
    uv_timer_t pending_poll; /* the drain's wait for def->pending() == 0 */
    service_timer_rt_t *timers;
    uint64_t *intervals; /* per def timer, in ms: interval_ms or its key's value */
    size_t timers_open;
    grpc_server_t *grpc;
    http_server_t *http;
    service_validate_fn validate;
    char timers_topic_default[128]; /* "<name>.timers" */
    bool configured, started, start_failed, setup_called;
};

/* Builds the merged config table of `s->def` (no environment read): shared
 * keys, input topics, own keys, with the per-service defaults applied.
 * Returns 0, or -1 with a reason in `err` for a def that contradicts itself. */
int service_config_build(service_t *s, char *err, size_t errlen);

#endif
