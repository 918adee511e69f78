/* optimizer: learns which change to try and proposes it.
 *
 * This binary runs the telemetry intake today (the walking skeleton): consume
 * telemetry.aggregated, detect seed 000's degradations, store each degraded
 * observation in MongoDB and produce one synthetic Insight per degraded window,
 * exactly once. main() only wires the parts together, top-down; the decision
 * is in degradation.c and the shell around it in intake.c.
 */
#include "avro_codec.h"
#include "cli.h"
#include "config.h"
#include "http.h"
#include "intake.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    char *bootstrap, *group, *transactional_id, *telemetry_topic, *insights_topic;
    char *registry_url, *mongodb_uri, *mongodb_database, *redis_host, *http_host, *log_level;
    long redis_port, http_port, max_batch;
    degradation_thresholds_t th;
} cfg;

static const config_item_t config_items[] = {
    {"KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, "127.0.0.1:9092", 0, 0, NULL, &cfg.bootstrap, "Kafka brokers"},
    {"KAFKA_CONSUMER_GROUP", CONFIG_STRING, "optimizer-agents", 0, 0, NULL, &cfg.group,
     "consumer group shared by the replicas"},
    {"KAFKA_TRANSACTIONAL_ID", CONFIG_STRING, "auto", 0, 0, NULL, &cfg.transactional_id,
     "stable per replica; auto = optimizer-<hostname>"},
    {"KAFKA_TELEMETRY_TOPIC", CONFIG_STRING, "telemetry.aggregated", 0, 0, NULL, &cfg.telemetry_topic,
     "TelemetryAggregated input"},
    {"KAFKA_INSIGHTS_TOPIC", CONFIG_STRING, "insights.generated", 0, 0, NULL, &cfg.insights_topic,
     "where synthetic insights go"},
    {"KAFKA_MAX_BATCH", CONFIG_INT, "500", 1, 10000, NULL, &cfg.max_batch, "records per transaction"},
    {"SCHEMA_REGISTRY_URL", CONFIG_STRING, "", 0, 0, NULL, &cfg.registry_url,
     "Confluent-compatible registry; empty uses schemas/avro/ids.json"},
    {"MONGODB_URI", CONFIG_STRING, "mongodb://127.0.0.1:27017", 0, 0, NULL, &cfg.mongodb_uri, "MongoDB"},
    {"MONGODB_DATABASE", CONFIG_STRING, "optimizer_agents", 0, 0, NULL, &cfg.mongodb_database,
     "the optimizer's database"},
    {"REDIS_HOST", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, &cfg.redis_host, "Redis host"},
    {"REDIS_PORT", CONFIG_INT, "6379", 1, 65535, NULL, &cfg.redis_port, "Redis port"},
    {"HTTP_HOST", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, &cfg.http_host, "address of /health, /ready, /metrics"},
    {"HTTP_PORT", CONFIG_INT, "8000", 1, 65535, NULL, &cfg.http_port, "port of /health, /ready, /metrics"},
    {"SLO_COMPLIANCE_THRESHOLD", CONFIG_DOUBLE, "0.99", 0, 1, NULL, &cfg.th.slo_compliance_min,
     "degraded below this SLO compliance"},
    {"LATENCY_P95_THRESHOLD_MS", CONFIG_DOUBLE, "1000", 1, 3600000, NULL, &cfg.th.latency_p95_max_ms,
     "degraded above this p95 latency"},
    {"ERROR_RATE_THRESHOLD", CONFIG_DOUBLE, "0.01", 0, 1, NULL, &cfg.th.error_rate_max,
     "degraded above this error rate"},
    {"LOG_LEVEL", CONFIG_ENUM, "info", 0, 0, "debug|info|warn|error", &cfg.log_level, "lowest level logged"},
};
#define NCONFIG (sizeof(config_items) / sizeof(config_items[0]))

/* Everything the service holds, torn down in reverse. */
typedef struct {
    lifecycle_t *lc;
    metrics_t *metrics;
    store_t *store;
    redis_t *redis;
    avro_codec_t *codec;
    registry_t *registry;
    intake_t *intake;
    kafka_pipeline_t *pipeline;
    http_server_t *http;
} app_t;

static bool kafka_ready(void *ctx)
{
    return kafka_pipeline_ready(((app_t *)ctx)->pipeline);
}

static bool mongodb_ready(void *ctx)
{
    return store_healthy(((app_t *)ctx)->store);
}

static bool redis_ready(void *ctx)
{
    return redis_connected(((app_t *)ctx)->redis);
}

static bool intake_flowing(void *ctx)
{
    return !kafka_pipeline_paused(((app_t *)ctx)->pipeline);
}

/* The pipeline's context is the app, so that on_fatal can reach the lifecycle. */
static kafka_verdict_t transform(void *ctx, const rd_kafka_message_t *msg, kafka_out_t *out, char *reason,
                                 size_t reasonlen)
{
    return intake_transform(((app_t *)ctx)->intake, msg, out, reason, reasonlen);
}

static void on_fatal(void *ctx, const char *why)
{
    app_t *app = ctx;
    log_error("fatal Kafka error, stopping", "reason", why);
    lifecycle_stop(app->lc, 1);
}

/* Shutdown stages, registered in start order and run in reverse. */
static void stage_done(void *arg)
{
    lifecycle_stage_done(arg);
}

static void stop_store_watch(lifecycle_t *lc, void *ctx)
{
    store_watch_stop(((app_t *)ctx)->store, stage_done, lc);
}

static void stop_redis(lifecycle_t *lc, void *ctx)
{
    app_t *app = ctx;
    redis_close(app->redis, stage_done, lc); /* frees the client */
    app->redis = NULL;
}

static void stop_http(lifecycle_t *lc, void *ctx)
{
    http_server_close(((app_t *)ctx)->http, stage_done, lc);
}

static void destroy_http(void *ctx)
{
    app_t *app = ctx;
    http_server_destroy(app->http);
    app->http = NULL;
}

static void stop_pipeline(lifecycle_t *lc, void *ctx)
{
    kafka_pipeline_stop(((app_t *)ctx)->pipeline, stage_done, lc);
}

int main(int argc, char **argv)
{
    const cli_spec_t spec = {
        .name = "optimizer",
        .summary = "Optimizer agent of the Neural Hive-Mind. Runs the telemetry intake: consumes "
                   "telemetry.aggregated, detects degradations (SLO compliance, p95 latency, error rate), stores "
                   "each degraded observation in MongoDB and produces one Insight per degraded window to "
                   "insights.generated, exactly once. The learning engine and its APIs are being built.",
        .config = config_items,
        .nconfig = NCONFIG,
    };
    int rc = cli_handle(&spec, argc, argv);
    if (rc >= 0) {
        return rc;
    }
    app_t app = {0};
    char err[512];
    char txid[160];
    int exit_code = 1;

    /* 1. Configuration: a bad value stops the service here, naming the variable. */
    if (config_load(config_items, NCONFIG, err, sizeof(err)) != 0) {
        fprintf(stderr, "optimizer: %s\n", err);
        config_free(config_items, NCONFIG);
        return 2;
    }
    log_level_t level = LOG_INFO;
    log_level_parse(cfg.log_level, &level);
    log_init("optimizer", level);
    const char *transactional_id = cfg.transactional_id;
    if (strcmp(transactional_id, "auto") == 0 && kafka_default_transactional_id("optimizer", txid, sizeof(txid)) == 0) {
        transactional_id = txid;
    }

    /* 2. Loop, metrics. */
    app.lc = lifecycle_create(10000);
    app.metrics = metrics_create();
    if (!app.lc || !app.metrics) {
        log_error("out of memory at start");
        goto out;
    }
    uv_loop_t *loop = lifecycle_loop(app.lc);

    /* 3. MongoDB (used off the loop only) with its health watcher. */
    app.store = store_create(cfg.mongodb_uri, cfg.mongodb_database, err, sizeof(err));
    if (!app.store || store_watch_start(app.store, loop, 2000, app.metrics) != 0) {
        log_error("cannot set up MongoDB", "error", err);
        goto out;
    }
    lifecycle_add_stage(app.lc, "mongodb", stop_store_watch, &app);

    /* 4. Redis (readiness now; locks for the writers later). */
    app.redis = redis_create(loop, &(redis_opts_t){.host = cfg.redis_host,
                                                   .port = (int)cfg.redis_port,
                                                   .metrics = app.metrics});
    if (!app.redis) {
        log_error("cannot set up Redis");
        goto out;
    }
    lifecycle_add_stage(app.lc, "redis", stop_redis, &app);

    /* 5. Avro codec, with the Schema Registry when one is configured. */
    if (*cfg.registry_url) {
        app.registry = registry_create(cfg.registry_url, 5000, err, sizeof(err));
        if (!app.registry) {
            log_error("cannot set up the schema registry client", "error", err);
            goto out;
        }
    }
    app.codec = avro_codec_create(app.registry, err, sizeof(err));
    if (!app.codec) {
        log_error("cannot load the Avro schemas", "error", err);
        goto out;
    }

    /* 6. HTTP: /health, /ready with its checks, /metrics. */
    app.http = http_server_create(loop, cfg.http_host, (int)cfg.http_port, app.metrics, err, sizeof(err));
    if (!app.http) {
        log_error("cannot start the HTTP server", "error", err);
        goto out;
    }
    http_add_ready_check(app.http, "kafka", kafka_ready, &app);
    http_add_ready_check(app.http, "mongodb", mongodb_ready, &app);
    http_add_ready_check(app.http, "redis", redis_ready, &app);
    http_add_ready_check(app.http, "intake_flowing", intake_flowing, &app);
    lifecycle_add_stage(app.lc, "http", stop_http, &app);
    lifecycle_add_finalizer(app.lc, destroy_http, &app);

    /* 7. The telemetry intake on the exactly-once pipeline. */
    app.intake = intake_create(&(intake_conf_t){
        .insights_topic = cfg.insights_topic,
        .thresholds = cfg.th,
        .codec = app.codec,
        .store = app.store,
        .metrics = app.metrics,
    });
    const char *topics[] = {cfg.telemetry_topic};
    app.pipeline = kafka_pipeline_create(loop,
                                         &(kafka_pipeline_conf_t){
                                             .bootstrap_servers = cfg.bootstrap,
                                             .group_id = cfg.group,
                                             .transactional_id = transactional_id,
                                             .service = "optimizer",
                                             .topics = topics,
                                             .ntopics = 1,
                                             .transform = transform,
                                             .ctx = &app,
                                             .metrics = app.metrics,
                                             .max_batch = (size_t)cfg.max_batch,
                                             .on_fatal = on_fatal,
                                         },
                                         err, sizeof(err));
    if (!app.intake || !app.pipeline || kafka_pipeline_start(app.pipeline) != 0) {
        log_error("cannot start the Kafka pipeline", "error", err);
        goto out;
    }
    lifecycle_add_stage(app.lc, "kafka", stop_pipeline, &app);

    /* 8. Run until SIGTERM; the stages drain in reverse order. */
    log_info("optimizer started", "telemetry_topic", cfg.telemetry_topic, "insights_topic", cfg.insights_topic,
             "transactional_id", transactional_id);
    exit_code = lifecycle_run(app.lc);

out:
    /* 9. Free in reverse. A start-up failure before run closes the loop first. */
    if (exit_code != 0 && app.lc && !lifecycle_stopping(app.lc)) {
        lifecycle_stop(app.lc, 1);
        lifecycle_run(app.lc);
    }
    kafka_pipeline_destroy(app.pipeline);
    intake_destroy(app.intake);
    http_server_destroy(app.http);
    avro_codec_destroy(app.codec);
    registry_destroy(app.registry);
    store_destroy(app.store);
    store_global_cleanup();
    metrics_destroy(app.metrics);
    lifecycle_destroy(app.lc);
    config_free(config_items, NCONFIG);
    log_info("optimizer stopped", "exit_code", exit_code ? "non-zero" : "0");
    return exit_code;
}
