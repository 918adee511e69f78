/* service: the runtime every service stands on (see service.h).
 *
 * Start order is the order of the shutdown stages reversed: each client is
 * created and its stage registered at once, so that a failure half-way drains
 * exactly what exists. Registration order: store, Redis, producer, pipeline,
 * the wait for pending work, timers, gRPC, HTTP; the drain therefore runs
 * HTTP, gRPC, timers, pending work, pipeline, producer, Redis, store, and the
 * finalizers after the loop has stopped.
 */
#include "service_internal.h"

#include "avro_validate.h"
#include "cli.h"
#include "log.h"
#include "registry.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- Create ---------------------------------------------------------------- */

service_t *service_create(const service_def_t *def, void *ctx, char *err, size_t errlen)
{
    if (!def || !def->name || !*def->name) {
        snprintf(err, errlen, "a service needs a name");
        return NULL;
    }
    const char *bad = NULL;
    if (def->ninputs && !(def->needs & SERVICE_PIPELINE)) {
        bad = "inputs need SERVICE_PIPELINE";
    } else if (!(def->needs & SERVICE_GRPC) != !def->grpc_register) {
        bad = "SERVICE_GRPC and grpc_register go together";
    }
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        return NULL;
    }
    service_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->def = def;
    s->ctx = ctx;
    s->validate = avro_validate; /* the declared ranges of every schema (avro_validate.h) */
    if (service_config_build(s, err, errlen) != 0) {
        service_destroy(s);
        return NULL;
    }
    return s;
}

/* ---- Shutdown stages ----------------------------------------------------- */

static void stage_done(void *arg)
{
    lifecycle_stage_done(arg);
}

static void stop_store_watch(lifecycle_t *lc, void *ctx)
{
    store_watch_stop(((service_t *)ctx)->store, stage_done, lc);
}

static void stop_redis(lifecycle_t *lc, void *ctx)
{
    service_t *s = ctx;
    redis_close(s->redis, stage_done, lc); /* frees the client */
    s->redis = NULL;
}

static void stop_producer(lifecycle_t *lc, void *ctx)
{
    kafka_producer_close(((service_t *)ctx)->producer, stage_done, lc);
}

static void stop_pipeline(lifecycle_t *lc, void *ctx)
{
    kafka_pipeline_stop(((service_t *)ctx)->pipeline, stage_done, lc);
}

static void on_pending_poll_closed(uv_handle_t *h)
{
    lifecycle_stage_done(((service_t *)h->data)->lc);
}

static void on_pending_poll(uv_timer_t *t)
{
    service_t *s = t->data;
    if (s->def->pending(s->ctx) == 0) {
        uv_close((uv_handle_t *)t, on_pending_poll_closed);
    }
}

/* The APIs and timers are closed, but a job they started may still run on a
 * worker; its answer must come back before its objects go. */
static void wait_pending(lifecycle_t *lc, void *ctx)
{
    (void)lc;
    service_t *s = ctx;
    uv_timer_start(&s->pending_poll, on_pending_poll, 0, SERVICE_PENDING_POLL_MS);
}

static void on_timer_closed(uv_handle_t *h)
{
    service_t *s = ((service_timer_rt_t *)h->data)->svc;
    if (--s->timers_open == 0) {
        lifecycle_stage_done(s->lc);
    }
}

static void stop_timers(lifecycle_t *lc, void *ctx)
{
    service_t *s = ctx;
    if (s->timers_open == 0) {
        lifecycle_stage_done(lc);
        return;
    }
    for (size_t i = 0; i < s->def->ntimers; i++) {
        if (s->def->timers[i].fn) {
            uv_close((uv_handle_t *)&s->timers[i].handle, on_timer_closed);
        }
    }
}

static void stop_grpc(lifecycle_t *lc, void *ctx)
{
    grpc_server_close(((service_t *)ctx)->grpc, stage_done, lc);
}

static void stop_http(lifecycle_t *lc, void *ctx)
{
    http_server_close(((service_t *)ctx)->http, stage_done, lc);
}

static void destroy_http(void *ctx)
{
    service_t *s = ctx;
    http_server_destroy(s->http);
    s->http = NULL;
}

/* ---- Checks, handlers ------------------------------------------------------ */

bool service_kafka_ready(void *svc)
{
    kafka_pipeline_t *p = ((service_t *)svc)->pipeline;
    return p && kafka_pipeline_ready(p);
}

/* The Kafka part of /ready with the pipeline's reason when it is not ready
 * ("all brokers down", "no partitions assigned", ...). */
static bool kafka_ready_detail(void *svc, char *detail, size_t detail_len)
{
    kafka_pipeline_t *p = ((service_t *)svc)->pipeline;
    if (!p) {
        snprintf(detail, detail_len, "no pipeline");
        return false;
    }
    return kafka_pipeline_ready_detail(p, detail, detail_len);
}

bool service_mongodb_ready(void *svc)
{
    store_t *st = ((service_t *)svc)->store;
    return st && store_healthy(st);
}

bool service_redis_ready(void *svc)
{
    redis_t *r = ((service_t *)svc)->redis;
    return r && redis_connected(r);
}

static bool intake_flowing(void *svc)
{
    kafka_pipeline_t *p = ((service_t *)svc)->pipeline;
    return p && !kafka_pipeline_paused(p);
}

/* The input of a record's topic, or NULL. */
static const service_input_t *input_of(const service_t *s, const rd_kafka_message_t *msg)
{
    const char *topic = rd_kafka_topic_name(msg->rkt);
    for (size_t i = 0; i < s->def->ninputs; i++) {
        if (strcmp(s->topics[i], topic) == 0) {
            return &s->def->inputs[i];
        }
    }
    return NULL;
}

/* Decodes a record as its input's record and validates it. KAFKA_OK with
 * *out_value to decref, or the verdict (bad input with the reason, or a retry
 * while the Schema Registry cannot be reached). */
static kafka_verdict_t decode_input(service_t *s, const service_input_t *in, const rd_kafka_message_t *msg,
                                    avro_value_t *out_value, char *reason, size_t reasonlen)
{
    if (!in) {
        snprintf(reason, reasonlen, "no input for topic %s", rd_kafka_topic_name(msg->rkt));
        return KAFKA_BAD_INPUT;
    }
    int rc = avro_codec_decode(s->codec, msg->payload, msg->len, in->record, out_value, reason, reasonlen);
    if (rc != 0) {
        return rc == HIVE_EUNAVAILABLE ? KAFKA_RETRY : KAFKA_BAD_INPUT;
    }
    if (s->validate && s->validate(s->codec, in->record, out_value, reason, reasonlen) != 0) {
        avro_value_decref(out_value);
        return KAFKA_BAD_INPUT;
    }
    return KAFKA_OK;
}

/* The pipeline's transform when every input handles records one at a time,
 * on its worker thread: find the input, decode, validate, hand over. */
static kafka_verdict_t dispatch(void *ctx, const rd_kafka_message_t *msg, kafka_out_t *out, char *reason,
                                size_t reasonlen)
{
    service_t *s = ctx;
    const service_input_t *in = input_of(s, msg);
    avro_value_t v;
    kafka_verdict_t verdict = decode_input(s, in, msg, &v, reason, reasonlen);
    if (verdict != KAFKA_OK) {
        return verdict;
    }
    verdict = in->handle(s->ctx, msg, &v, out, reason, reasonlen);
    avro_value_decref(&v);
    return verdict;
}

/* The pipeline's batch transform when an input takes batches, on its worker
 * thread. Each record is decoded and validated (a bad one is rejected alone);
 * records of per-record inputs are handled in order as they come, and the
 * valid records of each batch input go to its handler together, once. */
static kafka_verdict_t dispatch_batch(void *ctx, kafka_in_t *kin)
{
    service_t *s = ctx;
    size_t n = kafka_in_count(kin);
    kafka_verdict_t verdict = KAFKA_OK;
    avro_value_t *values = calloc(n ? n : 1, sizeof(*values));
    service_record_t *recs = calloc(n ? n : 1, sizeof(*recs));
    const service_input_t **owner = calloc(n ? n : 1, sizeof(*owner));
    char reason[512];
    if (!values || !recs || !owner) {
        verdict = KAFKA_RETRY;
        goto out;
    }
    for (size_t i = 0; i < n && verdict == KAFKA_OK; i++) {
        const rd_kafka_message_t *msg = kafka_in_msg(kin, i);
        const service_input_t *in = input_of(s, msg);
        reason[0] = '\0';
        kafka_verdict_t v = decode_input(s, in, msg, &values[i], reason, sizeof(reason));
        if (v == KAFKA_BAD_INPUT) {
            kafka_in_reject(kin, i, reason);
            continue;
        }
        if (v != KAFKA_OK) {
            verdict = v;
            break;
        }
        owner[i] = in;
        if (in->handle) {
            reason[0] = '\0';
            v = in->handle(s->ctx, msg, &values[i], kafka_in_out(kin, i), reason, sizeof(reason));
            if (v == KAFKA_BAD_INPUT) {
                kafka_in_reject(kin, i, reason[0] ? reason : "rejected by the handler");
            } else if (v != KAFKA_OK) {
                verdict = KAFKA_RETRY;
            }
        }
    }
    for (size_t k = 0; k < s->def->ninputs && verdict == KAFKA_OK; k++) {
        const service_input_t *in = &s->def->inputs[k];
        if (!in->handle_batch) {
            continue;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (owner[i] == in) {
                recs[m++] = (service_record_t){kafka_in_msg(kin, i), &values[i], kafka_in_out(kin, i), i};
            }
        }
        if (m > 0 && in->handle_batch(s->ctx, kin, recs, m) != KAFKA_OK) {
            verdict = KAFKA_RETRY;
        }
    }
out:
    for (size_t i = 0; owner && values && i < n; i++) {
        if (owner[i]) {
            avro_value_decref(&values[i]);
        }
    }
    free(owner);
    free(recs);
    free(values);
    return verdict;
}

static void on_fatal(void *ctx, const char *why)
{
    service_t *s = ctx;
    log_error("fatal Kafka error, stopping", "reason", why);
    lifecycle_stop(s->lc, 1);
}

static void on_timer(uv_timer_t *t)
{
    service_timer_rt_t *rt = t->data;
    rt->def->fn(rt->svc->ctx);
}

static void serve_openapi(void *ctx, http_req_t *req)
{
    service_t *s = ctx;
    const char *doc = s->def->openapi ? s->def->openapi : s->openapi;
    size_t len = s->def->openapi ? s->def->openapi_len : strlen(s->openapi);
    http_respond_text(req, 200, "application/json", doc, len);
}

/* The document of the built-in routes, for a service that brings none. */
static char *builtin_openapi(const service_def_t *d)
{
    json_t *ok = json_pack("{s:{s:s}}", "200", "description", "OK");
    json_t *doc =
        json_pack("{s:s, s:{s:s, s:s}, s:{s:{s:{s:s, s:O}}, s:{s:{s:s, s:{s:{s:s}, s:{s:s}}}}, "
                  "s:{s:{s:s, s:O}}, s:{s:{s:s, s:O}}}}",
                  "openapi", "3.0.3", "info", "title", d->name, "version", d->version ? d->version : "0",
                  "paths", "/health", "get", "summary", "alive", "responses", ok, "/ready", "get", "summary",
                  "ready when every check passes", "responses", "200", "description", "ready", "503",
                  "description", "a check fails", "/metrics", "get", "summary", "Prometheus text format",
                  "responses", ok, "/openapi.json", "get", "summary", "this document", "responses", ok);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    json_decref(ok);
    return text;
}

/* ---- Start, run, destroy --------------------------------------------------- */

static int start_store(service_t *s, char *err, size_t errlen)
{
    s->store = store_create(s->cfg.mongodb_uri, s->cfg.mongodb_database, err, errlen);
    if (!s->store || store_watch_start(s->store, service_loop(s), SERVICE_STORE_WATCH_MS, s->metrics) != 0) {
        log_error("cannot set up MongoDB", "error", err);
        return -1;
    }
    return lifecycle_add_stage(s->lc, "mongodb", stop_store_watch, s);
}

static int start_redis(service_t *s)
{
    s->redis = redis_create(
        service_loop(s),
        &(redis_opts_t){.host = s->cfg.redis_host, .port = (int)s->cfg.redis_port, .metrics = s->metrics});
    if (!s->redis) {
        log_error("cannot set up Redis");
        return -1;
    }
    return lifecycle_add_stage(s->lc, "redis", stop_redis, s);
}

static int start_codec(service_t *s, char *err, size_t errlen)
{
    if (*s->cfg.registry_url) {
        s->registry = registry_create(s->cfg.registry_url, SERVICE_REGISTRY_TIMEOUT_MS, err, errlen);
        if (!s->registry) {
            log_error("cannot set up the schema registry client", "error", err);
            return -1;
        }
    }
    s->codec = avro_codec_create(s->registry, err, errlen);
    if (!s->codec) {
        log_error("cannot load the Avro schemas", "error", err);
        return -1;
    }
    for (size_t i = 0; i < s->def->ninputs; i++) { /* an unknown record name is the def's bug */
        avro_value_t v;
        if (avro_codec_new_value(s->codec, s->def->inputs[i].record, &v) != 0) {
            log_error("input names an unknown Avro record", "topic_var", s->def->inputs[i].topic_var,
                      "record", s->def->inputs[i].record);
            return -1;
        }
        avro_value_decref(&v);
    }
    return 0;
}

static int start_pipeline(service_t *s, char *err, size_t errlen)
{
    kafka_pipeline_conf_t conf = {
        .bootstrap_servers = s->cfg.bootstrap_servers,
        .group_id = s->cfg.consumer_group,
        .transactional_id = s->cfg.transactional_id,
        .service = s->def->name,
        .topics = s->topics,
        .ntopics = s->def->ninputs,
        .ctx = s,
        .metrics = s->metrics,
        .max_batch = (size_t)s->cfg.max_batch,
        .on_fatal = on_fatal,
    };
    bool batches = false;
    for (size_t i = 0; i < s->def->ninputs; i++) {
        batches |= s->def->inputs[i].handle_batch != NULL;
    }
    /* Per-record inputs alone keep the per-record transform (and its time
     * budget per transaction); a batch input needs the batch transform. */
    if (batches) {
        conf.transform_batch = dispatch_batch;
    } else if (s->def->ninputs > 0) {
        conf.transform = dispatch;
    }
    conf.timers_topic = s->cfg.timers_topic;
    s->pipeline = kafka_pipeline_create(service_loop(s), &conf, err, errlen);
    if (!s->pipeline) {
        log_error("cannot create the Kafka pipeline", "error", err);
        return -1;
    }
    for (size_t i = 0; i < s->def->ntimers; i++) {
        const service_timer_t *t = &s->def->timers[i];
        if (t->tick && kafka_pipeline_add_timer(s->pipeline, t->name, service_timer_interval_ms(s, i),
                                                t->tick, s->ctx) != 0) {
            log_error("cannot add the transactional timer", "timer", t->name);
            return -1;
        }
    }
    return lifecycle_add_stage(s->lc, "kafka", stop_pipeline, s);
}

/* Plain timers on the loop (a timer with a tick is the pipeline's). */
static int start_timers(service_t *s)
{
    s->timers = calloc(s->def->ntimers + 1, sizeof(*s->timers));
    if (!s->timers) {
        return -1;
    }
    for (size_t i = 0; i < s->def->ntimers; i++) {
        if (!s->def->timers[i].fn) {
            continue;
        }
        uv_timer_init(service_loop(s), &s->timers[i].handle);
        s->timers[i].handle.data = &s->timers[i];
        s->timers[i].svc = s;
        s->timers[i].def = &s->def->timers[i];
        s->timers_open++;
    }
    return lifecycle_add_stage(s->lc, "timers", stop_timers, s);
}

static int start_http(service_t *s, char *err, size_t errlen)
{
    s->http =
        http_server_create(service_loop(s), s->cfg.http_host, (int)s->cfg.http_port, s->metrics, err, errlen);
    if (!s->http) {
        log_error("cannot start the HTTP server", "error", err);
        return -1;
    }
    lifecycle_add_finalizer(s->lc, destroy_http, s);
    int rc = lifecycle_add_stage(s->lc, "http", stop_http, s);
    if (s->pipeline) {
        rc |= http_add_ready_check_detail(s->http, "kafka", kafka_ready_detail, s);
    }
    if (s->store) {
        rc |= http_add_ready_check(s->http, "mongodb", service_mongodb_ready, s);
    }
    if (s->redis) {
        rc |= http_add_ready_check(s->http, "redis", service_redis_ready, s);
    }
    if (s->pipeline) {
        rc |= http_add_ready_check(s->http, "intake_flowing", intake_flowing, s);
    }
    for (size_t i = 0; i < s->def->nchecks; i++) {
        rc |= http_add_ready_check(s->http, s->def->checks[i].name, s->def->checks[i].fn, s->ctx);
    }
    return rc;
}

/* What setup may use exists; after it, the routes, the gRPC service, the
 * pipeline and the timers start. */
static int start_after_setup(service_t *s)
{
    const service_def_t *d = s->def;
    for (size_t i = 0; i < d->nroutes; i++) {
        if (http_route(s->http, d->routes[i].method, d->routes[i].pattern, d->routes[i].fn, s->ctx) != 0) {
            log_error("cannot register a route", "method", d->routes[i].method, "pattern",
                      d->routes[i].pattern);
            return -1;
        }
    }
    if (!d->openapi && !(s->openapi = builtin_openapi(d))) {
        return -1;
    }
    if (http_route(s->http, "GET", "/openapi.json", serve_openapi, s) != 0) {
        log_debug("the service serves its own /openapi.json");
    }
    if (s->grpc && d->grpc_register(s, s->ctx, s->grpc) != 0) {
        log_error("cannot register the gRPC service");
        return -1;
    }
    if (s->pipeline && kafka_pipeline_start(s->pipeline) != 0) {
        log_error("cannot start the Kafka pipeline");
        return -1;
    }
    for (size_t i = 0; i < d->ntimers; i++) {
        const service_timer_t *t = &d->timers[i];
        if (!t->fn) {
            continue;
        }
        uint64_t iv = service_timer_interval_ms(s, i);
        uv_timer_start(&s->timers[i].handle, on_timer, t->first_ms ? t->first_ms : iv, iv);
    }
    return 0;
}

static void log_started(service_t *s)
{
    char topics[512] = "", ports[64];
    for (size_t i = 0, off = 0; i < s->def->ninputs && off < sizeof(topics); i++) {
        off += (size_t)snprintf(topics + off, sizeof(topics) - off, "%s%s", i ? "," : "", s->topics[i]);
    }
    snprintf(ports, sizeof(ports), "http %d, grpc %d", http_server_port(s->http),
             s->grpc ? grpc_server_port(s->grpc) : 0);
    log_info("service started", "inputs", topics, "transactional_id", s->cfg.transactional_id, "ports",
             ports);
}

static int start_all(service_t *s)
{
    char err[512] = "";
    const unsigned needs = s->def->needs;
    s->started = true;
    s->lc = lifecycle_create(SERVICE_DRAIN_MS);
    s->metrics = metrics_create();
    if (!s->lc || !s->metrics) {
        log_error("out of memory at start");
        return -1;
    }
    if (((needs & SERVICE_STORE) && start_store(s, err, sizeof(err)) != 0) ||
        ((needs & SERVICE_REDIS) && start_redis(s) != 0) || start_codec(s, err, sizeof(err)) != 0) {
        return -1;
    }
    if (needs & SERVICE_PRODUCER) {
        s->producer =
            kafka_producer_create(service_loop(s), s->cfg.bootstrap_servers, s->metrics, err, sizeof(err));
        if (!s->producer || lifecycle_add_stage(s->lc, "producer", stop_producer, s) != 0) {
            log_error("cannot create the Kafka producer", "error", err);
            return -1;
        }
    }
    if ((needs & SERVICE_PIPELINE) && start_pipeline(s, err, sizeof(err)) != 0) {
        return -1;
    }
    if (s->def->pending) {
        uv_timer_init(service_loop(s), &s->pending_poll);
        s->pending_poll.data = s;
        if (lifecycle_add_stage(s->lc, "pending", wait_pending, s) != 0) {
            return -1;
        }
    }
    if (start_timers(s) != 0) {
        return -1;
    }
    if (needs & SERVICE_GRPC) {
        s->grpc = grpc_server_create(service_loop(s), s->cfg.http_host, (int)s->cfg.grpc_port, s->metrics,
                                     err, sizeof(err));
        if (!s->grpc || lifecycle_add_stage(s->lc, "grpc", stop_grpc, s) != 0) {
            log_error("cannot start the gRPC server", "error", err);
            return -1;
        }
    }
    if (start_http(s, err, sizeof(err)) != 0) {
        return -1;
    }
    s->setup_called = true;
    if (s->def->setup && s->def->setup(s, s->ctx) != 0) {
        return -1;
    }
    if (start_after_setup(s) != 0) {
        return -1;
    }
    log_started(s);
    return 0;
}

int service_start(service_t *s)
{
    s->start_failed = start_all(s) != 0;
    return s->start_failed ? -1 : 0;
}

int service_run(service_t *s)
{
    if (!s->lc) {
        return 1;
    }
    if (s->start_failed) {
        lifecycle_stop(s->lc, 1); /* drain what was started, then close the loop */
    }
    return lifecycle_run(s->lc);
}

void service_stop(service_t *s, int exit_code)
{
    if (s->lc) {
        lifecycle_stop(s->lc, exit_code);
    }
}

void service_destroy(service_t *s)
{
    if (!s) {
        return;
    }
    if (s->setup_called && s->def->teardown) {
        s->def->teardown(s, s->ctx);
    }
    grpc_server_destroy(s->grpc);
    kafka_pipeline_destroy(s->pipeline);
    kafka_producer_destroy(s->producer);
    http_server_destroy(s->http);
    avro_codec_destroy(s->codec);
    registry_destroy(s->registry);
    store_destroy(s->store);
    if ((s->def->needs & SERVICE_STORE) && s->started) {
        store_global_cleanup();
    }
    metrics_destroy(s->metrics);
    lifecycle_destroy(s->lc);
    if (s->configured) {
        config_free(s->items, s->nitems);
    }
    free(s->timers);
    free(s->intervals);
    free(s->openapi);
    free(s->topics);
    free(s->topic_slots);
    free(s->own_topics);
    free(s->items);
    free(s);
}

int service_main(const service_def_t *def, void *ctx, int argc, char **argv)
{
    char err[512];
    service_t *s = service_create(def, ctx, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "%s: %s\n", def && def->name ? def->name : "service", err);
        return 1;
    }
    const cli_spec_t spec = {def->name, def->summary, s->items, s->nitems, def->version};
    int rc = cli_handle(&spec, argc, argv);
    if (rc >= 0) {
        service_destroy(s);
        return rc;
    }
    if (service_configure(s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", def->name, err);
        service_destroy(s);
        return 2;
    }
    service_start(s); /* on failure, service_run drains what was started */
    rc = service_run(s);
    service_destroy(s);
    log_info("service stopped", "exit_code", rc ? "non-zero" : "0");
    return rc;
}

/* ---- Accessors ------------------------------------------------------------- */

const char *service_name(const service_t *svc)
{
    return svc->def->name;
}

uv_loop_t *service_loop(service_t *svc)
{
    return lifecycle_loop(svc->lc);
}

lifecycle_t *service_lifecycle(service_t *svc)
{
    return svc->lc;
}

metrics_t *service_metrics(service_t *svc)
{
    return svc->metrics;
}

avro_codec_t *service_codec(service_t *svc)
{
    return svc->codec;
}

store_t *service_store(service_t *svc)
{
    return svc->store;
}

redis_t *service_redis(service_t *svc)
{
    return svc->redis;
}

kafka_producer_t *service_producer(service_t *svc)
{
    return svc->producer;
}

kafka_pipeline_t *service_pipeline(service_t *svc)
{
    return svc->pipeline;
}

http_server_t *service_http(service_t *svc)
{
    return svc->http;
}

grpc_server_t *service_grpc(service_t *svc)
{
    return svc->grpc;
}
