/* applier_service: the wiring both appliers share. See applier_service.h. */
#include "applier_service.h"

#include "hive_err.h"
#include "log.h"

int applier_service_open(applier_service_t *s, service_t *svc)
{
    const service_config_t *sc = service_config(svc);
    s->redis = redis_sync_create(&(redis_sync_opts_t){.host = sc->redis_host, .port = (int)sc->redis_port});
    if (!s->redis) {
        log_error("cannot create the Redis client", "host", sc->redis_host);
        return -1;
    }
    return 0;
}

applier_t *applier_service_add(applier_service_t *s, service_t *svc, const applier_unit_t *u)
{
    const applier_service_config_t *cfg = s->cfg;
    if (s->n == APPLIER_SERVICE_MAX || !s->redis) {
        log_error("cannot add an applier", "name", s->name, "coll", u->coll);
        return NULL;
    }
    applier_t *a = applier_create(&(applier_conf_t){
        .name = s->name,
        .lock_prefix = u->lock_prefix,
        .coll = u->coll,
        .state_record = u->state_record,
        .state_topic = u->state_topic,
        .events_topic = cfg->applied_topic,
        .types = u->types,
        .ntypes = u->ntypes,
        .lock_ttl_ms = (unsigned)cfg->lock_ttl_ms,
        .watch_metric = cfg->watch_metric,
        .watch_threshold = cfg->watch_threshold,
        .watch_window_ms = (int64_t)cfg->watch_window_s * 1000,
        .store = u->store ? u->store : service_store(svc),
        .redis = s->redis,
        .codec = service_codec(svc),
        .metrics = service_metrics(svc),
        .domain = u->domain,
        .domain_ctx = u->domain_ctx,
    });
    if (!a) {
        log_error("cannot build the applier", "coll", u->coll);
        return NULL;
    }
    s->applier[s->n++] = a; /* freed by applier_service_close from here on */
    int rc = applier_ensure_indexes(a);
    if (rc != 0) {
        log_warn("cannot create the MongoDB indexes; lookups will scan", "coll", u->coll, "error",
                 hive_strerror(rc));
    }
    s->rest[s->n - 1] = applier_rest_create(service_http(svc), &(applier_rest_conf_t){
                                                                   .prefix = u->rest_prefix,
                                                                   .optimization_type = u->rest_type,
                                                                   .commands_topic = cfg->commands_topic,
                                                                   .applier = a,
                                                                   .loop = service_loop(svc),
                                                                   .producer = service_producer(svc),
                                                                   .codec = service_codec(svc),
                                                               });
    if (!s->rest[s->n - 1]) {
        log_error("cannot register the REST routes", "prefix", u->rest_prefix);
        return NULL;
    }
    return a;
}

kafka_verdict_t applier_service_on_command(void *ctx, const rd_kafka_message_t *m, avro_value_t *v,
                                           kafka_out_t *out, char *why, size_t len)
{
    applier_service_t *s = ctx;
    kafka_verdict_t r = KAFKA_OK;
    for (size_t i = 0; i < s->n && r == KAFKA_OK; i++) {
        r = applier_on_command(s->applier[i], m, v, out, why, len); /* each skips the types it does not own */
    }
    return r;
}

kafka_verdict_t applier_service_on_telemetry(void *ctx, const rd_kafka_message_t *m, avro_value_t *v,
                                             kafka_out_t *out, char *why, size_t len)
{
    applier_service_t *s = ctx;
    kafka_verdict_t r = KAFKA_OK;
    for (size_t i = 0; i < s->n && r == KAFKA_OK; i++) {
        r = applier_on_telemetry(s->applier[i], m, v, out, why, len);
    }
    return r;
}

kafka_verdict_t applier_service_watch_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out,
                                           char *why, size_t len)
{
    applier_service_t *s = ctx;
    kafka_verdict_t r = KAFKA_OK;
    for (size_t i = 0; i < s->n && r == KAFKA_OK; i++) {
        r = applier_watch_tick(s->applier[i], slot, now_ms, out, why, len);
    }
    return r;
}

size_t applier_service_pending(const applier_service_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        n += applier_rest_pending(s->rest[i]);
    }
    return n;
}

void applier_service_close(applier_service_t *s)
{
    for (size_t i = s->n; i-- > 0;) {
        applier_rest_destroy(s->rest[i]);
        applier_destroy(s->applier[i]);
    }
    redis_sync_destroy(s->redis);
    *s = (applier_service_t){.cfg = s->cfg, .name = s->name};
}
