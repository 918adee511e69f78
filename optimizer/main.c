/* optimizer: learns which change to try and proves it before applying it.
 *
 * One exactly-once Kafka pipeline carries everything the optimizer consumes:
 * telemetry.aggregated (degradations become synthetic insights, intake.c),
 * insights.generated, approvals.responses, experiments.results and
 * optimization.applied (the hypothesis lifecycle, engine.c). main() only wires
 * the parts together, top-down; the decisions live in the pure modules
 * (degradation.c, hypothesis.c, the learn_* policies).
 */
#include "avro_codec.h"
#include "cli.h"
#include "config.h"
#include "engine.h"
#include "grpc.h"
#include "http.h"
#include "intake.h"
#include "kafka.h"
#include "learner.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "redis.h"
#include "repo.h"
#include "rest.h"
#include "rpc.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    char *bootstrap, *group, *transactional_id, *telemetry_topic, *insights_topic;
    char *approvals_requests_topic, *approvals_responses_topic, *experiments_requests_topic;
    char *experiments_results_topic, *commands_topic, *applied_topic;
    char *registry_url, *mongodb_uri, *mongodb_database, *redis_host, *http_host, *log_level, *policy;
    long redis_port, http_port, grpc_port, max_batch, experiment_duration_s, seed;
    degradation_thresholds_t th;
    double learning_rate, discount_factor, exploration_rate, epsilon_min, epsilon_decay, min_improvement;
    double penalty_factor, max_weight_adjustment, risk_threshold, traffic_split, guardrail_error_rate;
    double linucb_alpha;
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
    {"KAFKA_APPROVALS_REQUESTS_TOPIC", CONFIG_STRING, "approvals.requests", 0, 0, NULL,
     &cfg.approvals_requests_topic, "ApprovalRequest output (to the Queen Agent)"},
    {"KAFKA_APPROVALS_RESPONSES_TOPIC", CONFIG_STRING, "approvals.responses", 0, 0, NULL,
     &cfg.approvals_responses_topic, "ApprovalResponse input"},
    {"KAFKA_EXPERIMENT_REQUESTS_TOPIC", CONFIG_STRING, "experiments.requests", 0, 0, NULL,
     &cfg.experiments_requests_topic, "ExperimentRequest output"},
    {"KAFKA_EXPERIMENTS_TOPIC", CONFIG_STRING, "experiments.results", 0, 0, NULL,
     &cfg.experiments_results_topic, "ExperimentResult input"},
    {"KAFKA_COMMANDS_TOPIC", CONFIG_STRING, "optimization.commands", 0, 0, NULL, &cfg.commands_topic,
     "OptimizationCommand output (APPLY, ROLLBACK)"},
    {"KAFKA_OPTIMIZATION_TOPIC", CONFIG_STRING, "optimization.applied", 0, 0, NULL, &cfg.applied_topic,
     "OptimizationEvent input (the appliers' confirmations)"},
    {"KAFKA_MAX_BATCH", CONFIG_INT, "500", 1, 10000, NULL, &cfg.max_batch, "records per transaction"},
    {"SCHEMA_REGISTRY_URL", CONFIG_STRING, "", 0, 0, NULL, &cfg.registry_url,
     "Confluent-compatible registry; empty uses schemas/avro/ids.json"},
    {"MONGODB_URI", CONFIG_STRING, "mongodb://127.0.0.1:27017", 0, 0, NULL, &cfg.mongodb_uri, "MongoDB"},
    {"MONGODB_DATABASE", CONFIG_STRING, "optimizer_agents", 0, 0, NULL, &cfg.mongodb_database,
     "the optimizer's database"},
    {"REDIS_HOST", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, &cfg.redis_host, "Redis host"},
    {"REDIS_PORT", CONFIG_INT, "6379", 1, 65535, NULL, &cfg.redis_port, "Redis port"},
    {"HTTP_HOST", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, &cfg.http_host,
     "address of /health, /ready, /metrics"},
    {"HTTP_PORT", CONFIG_INT, "8000", 1, 65535, NULL, &cfg.http_port, "port of /health, /ready, /metrics"},
    {"SLO_COMPLIANCE_THRESHOLD", CONFIG_DOUBLE, "0.99", 0, 1, NULL, &cfg.th.slo_compliance_min,
     "degraded below this SLO compliance"},
    {"LATENCY_P95_THRESHOLD_MS", CONFIG_DOUBLE, "1000", 1, 3600000, NULL, &cfg.th.latency_p95_max_ms,
     "degraded above this p95 latency"},
    {"ERROR_RATE_THRESHOLD", CONFIG_DOUBLE, "0.01", 0, 1, NULL, &cfg.th.error_rate_max,
     "degraded above this error rate"},
    {"GRPC_PORT", CONFIG_INT, "50051", 1, 65535, NULL, &cfg.grpc_port, "port of the OptimizerAgent gRPC API"},
    {"OPTIMIZER_POLICY", CONFIG_ENUM, "qlearning", 0, 0, "qlearning|thompson|linucb", &cfg.policy,
     "learning policy: the seed's epsilon-greedy Q-learning or a contextual bandit"},
    {"LEARNING_RATE", CONFIG_DOUBLE, "0.01", 0.0001, 1, NULL, &cfg.learning_rate, "Q-learning alpha"},
    {"DISCOUNT_FACTOR", CONFIG_DOUBLE, "0.95", 0, 1, NULL, &cfg.discount_factor, "Q-learning gamma"},
    {"EXPLORATION_RATE", CONFIG_DOUBLE, "0.3", 0, 1, NULL, &cfg.exploration_rate,
     "epsilon at start; decays to EPSILON_MIN"},
    {"EPSILON_MIN", CONFIG_DOUBLE, "0.01", 0, 1, NULL, &cfg.epsilon_min, "floor of epsilon"},
    {"EPSILON_DECAY", CONFIG_DOUBLE, "0.999", 0.5, 1, NULL, &cfg.epsilon_decay,
     "epsilon factor per decision"},
    {"MIN_IMPROVEMENT_THRESHOLD", CONFIG_DOUBLE, "0.05", 0, 1, NULL, &cfg.min_improvement,
     "an experiment succeeds only above this improvement"},
    {"RISK_PENALTY_FACTOR", CONFIG_DOUBLE, "0.2", 0, 10, NULL, &cfg.penalty_factor,
     "reward = improvement - risk * penalty"},
    {"MAX_WEIGHT_ADJUSTMENT", CONFIG_DOUBLE, "0.2", 0.01, 0.3, NULL, &cfg.max_weight_adjustment,
     "largest weight move an action may propose"},
    {"LINUCB_ALPHA", CONFIG_DOUBLE, "0.1", 0, 10, NULL, &cfg.linucb_alpha, "LinUCB exploration bonus"},
    {"APPROVAL_RISK_THRESHOLD", CONFIG_DOUBLE, "0.5", 0, 1, NULL, &cfg.risk_threshold,
     "above this risk the Queen Agent must approve"},
    {"EXPERIMENT_DURATION_SECONDS", CONFIG_INT, "3600", 60, 604800, NULL, &cfg.experiment_duration_s,
     "duration asked of each experiment"},
    {"EXPERIMENT_TRAFFIC_SPLIT", CONFIG_DOUBLE, "0.1", 0.01, 0.5, NULL, &cfg.traffic_split,
     "share of traffic on the experimental variant"},
    {"GUARDRAIL_ERROR_RATE", CONFIG_DOUBLE, "0.05", 0.001, 1, NULL, &cfg.guardrail_error_rate,
     "experiments abort above this error rate"},
    {"POLICY_SEED", CONFIG_INT, "0", 0, 2147483647, NULL, &cfg.seed,
     "seed of the policy's random generator; 0 = from the clock"},
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
    learner_t *learner;
    engine_t *engine;
    kafka_pipeline_t *pipeline;
    kafka_producer_t *producer;
    ops_t *ops;
    rpc_t *rpc;
    http_server_t *http;
    grpc_server_t *grpc;
    uv_timer_t gauges_timer; /* refreshes the fleet-wide gauges from MongoDB */
    metric_t *success_rate, *avg_improvement, *experiments_active;
} app_t;

static bool kafka_ready(void *ctx)
{
    return kafka_pipeline_ready(((app_t *)ctx)->pipeline);
}

static bool kafka_ready_detail(void *ctx, char *detail, size_t detail_len)
{
    return kafka_pipeline_ready_detail(((app_t *)ctx)->pipeline, detail, detail_len);
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

/* The pipeline's context is the app, so that on_fatal can reach the lifecycle;
 * telemetry goes to the intake, everything else to the engine. */
static kafka_verdict_t transform(void *ctx, const rd_kafka_message_t *msg, kafka_out_t *out, char *reason,
                                 size_t reasonlen)
{
    app_t *app = ctx;
    if (strcmp(rd_kafka_topic_name(msg->rkt), cfg.telemetry_topic) == 0) {
        return intake_transform(app->intake, msg, out, reason, reasonlen);
    }
    return engine_transform(app->engine, msg, out, reason, reasonlen);
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

static void stop_grpc(lifecycle_t *lc, void *ctx)
{
    grpc_server_close(((app_t *)ctx)->grpc, stage_done, lc);
}

static void stop_producer(lifecycle_t *lc, void *ctx)
{
    kafka_producer_close(((app_t *)ctx)->producer, stage_done, lc);
}

static void learner_figures(void *ctx, double *out_epsilon, size_t *out_size)
{
    app_t *app = ctx;
    *out_epsilon = learner_epsilon(app->learner);
    *out_size = learner_table_size(app->learner);
}

/* The seed's fleet-wide gauges come from MongoDB (every replica sees the same
 * figures), refreshed every GAUGES_INTERVAL_MS off the loop thread. */
#define GAUGES_INTERVAL_MS 15000

static void on_statistics(void *arg, int status, const char *message, const ops_stats_t *st)
{
    app_t *app = arg;
    (void)message;
    if (status != 0 || !st) {
        return;
    }
    metric_set(app->success_rate, st->repo.success_rate);
    metric_set(app->avg_improvement, 100.0 * st->repo.average_improvement);
    metric_set(app->experiments_active, (double)st->repo.by_status[HYP_EXPERIMENTING]);
}

static void on_gauges_timer(uv_timer_t *t)
{
    app_t *app = t->data;
    ops_statistics(app->ops, on_statistics, app);
}

static void on_gauges_timer_closed(uv_handle_t *h)
{
    lifecycle_stage_done(((app_t *)h->data)->lc);
}

static void stop_gauges(lifecycle_t *lc, void *ctx)
{
    (void)lc;
    app_t *app = ctx;
    uv_close((uv_handle_t *)&app->gauges_timer, on_gauges_timer_closed);
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
        .summary = "Optimizer agent of the Neural Hive-Mind. Turns degraded telemetry into insights, and "
                   "HIGH/CRITICAL insights into hypotheses chosen by a learning policy (Q-learning, Thompson "
                   "sampling or LinUCB); sends risky ones for approval, proves each in an experiment, learns "
                   "from the result and asks the appliers to APPLY the winners. Exactly once, over Kafka.",
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
    if (strcmp(transactional_id, "auto") == 0 &&
        kafka_default_transactional_id("optimizer", txid, sizeof(txid)) == 0) {
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
    app.redis = redis_create(
        loop, &(redis_opts_t){.host = cfg.redis_host, .port = (int)cfg.redis_port, .metrics = app.metrics});
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
    http_add_ready_check_detail(app.http, "kafka", kafka_ready_detail, &app);
    http_add_ready_check(app.http, "mongodb", mongodb_ready, &app);
    http_add_ready_check(app.http, "redis", redis_ready, &app);
    http_add_ready_check(app.http, "intake_flowing", intake_flowing, &app);
    lifecycle_add_finalizer(app.lc, destroy_http, &app);

    /* 7. The idempotent producer of the operators' changes (stops after the
     * pipeline and the APIs, so nothing in flight loses its delivery). */
    app.producer = kafka_producer_create(loop, cfg.bootstrap, app.metrics, err, sizeof(err));
    if (!app.producer) {
        log_error("cannot create the Kafka producer", "error", err);
        goto out;
    }
    lifecycle_add_stage(app.lc, "producer", stop_producer, &app);

    /* 7a. The telemetry intake on the exactly-once pipeline. */
    app.intake = intake_create(&(intake_conf_t){
        .insights_topic = cfg.insights_topic,
        .thresholds = cfg.th,
        .codec = app.codec,
        .store = app.store,
        .metrics = app.metrics,
    });
    /* 7b. The learner (restored from MongoDB) and the hypothesis engine. */
    learn_policy_config_t pcfg;
    learn_policy_kind_t kind = POLICY_QLEARNING;
    learn_policy_kind_parse(cfg.policy, &kind);
    learn_policy_config_default(&pcfg, kind);
    pcfg.qlearn.learning_rate = cfg.learning_rate;
    pcfg.qlearn.discount_factor = cfg.discount_factor;
    pcfg.qlearn.epsilon_start = cfg.exploration_rate;
    pcfg.qlearn.epsilon_min = cfg.epsilon_min;
    pcfg.qlearn.epsilon_decay = cfg.epsilon_decay;
    pcfg.reward.penalty_factor = cfg.penalty_factor;
    pcfg.reward.min_improvement = cfg.min_improvement;
    pcfg.bandit.alpha = cfg.linucb_alpha;
    pcfg.max_weight_adjustment = cfg.max_weight_adjustment;
    const char *bad = learn_policy_config_check(&pcfg);
    if (bad) {
        fprintf(stderr, "optimizer: invalid configuration: %s\n", bad);
        goto out;
    }
    app.learner = learner_create(&pcfg, cfg.seed ? (uint64_t)cfg.seed : (uint64_t)uv_hrtime(), app.metrics);
    if (store_ensure_indexes(app.store, repo_indexes, repo_indexes_count) != 0) {
        log_warn("cannot create the MongoDB indexes; lookups will scan", "error", store_last_error());
    }
    int restored = app.learner ? learner_restore(app.learner, app.store) : -1;
    if (restored != 0) {
        log_error("cannot restore the learner from MongoDB", "error",
                  restored < 0 && app.learner ? hive_strerror(restored) : "bad policy");
        goto out;
    }
    app.engine = engine_create(&(engine_conf_t){
        .insights_topic = cfg.insights_topic,
        .approvals_requests_topic = cfg.approvals_requests_topic,
        .approvals_responses_topic = cfg.approvals_responses_topic,
        .experiments_requests_topic = cfg.experiments_requests_topic,
        .experiments_results_topic = cfg.experiments_results_topic,
        .commands_topic = cfg.commands_topic,
        .applied_topic = cfg.applied_topic,
        .risk_threshold = cfg.risk_threshold,
        .min_improvement = cfg.min_improvement,
        .experiment_duration_s = cfg.experiment_duration_s,
        .traffic_split = cfg.traffic_split,
        .guardrail_error_rate = cfg.guardrail_error_rate,
        .codec = app.codec,
        .store = app.store,
        .learner = app.learner,
        .metrics = app.metrics,
    });
    const char *topics[] = {cfg.telemetry_topic, cfg.insights_topic, cfg.approvals_responses_topic,
                            cfg.experiments_results_topic, cfg.applied_topic};
    app.pipeline = kafka_pipeline_create(loop,
                                         &(kafka_pipeline_conf_t){
                                             .bootstrap_servers = cfg.bootstrap,
                                             .group_id = cfg.group,
                                             .transactional_id = transactional_id,
                                             .service = "optimizer",
                                             .topics = topics,
                                             .ntopics = sizeof(topics) / sizeof(topics[0]),
                                             .transform = transform,
                                             .ctx = &app,
                                             .metrics = app.metrics,
                                             .max_batch = (size_t)cfg.max_batch,
                                             .on_fatal = on_fatal,
                                         },
                                         err, sizeof(err));
    if (!app.intake || !app.engine || !app.pipeline || kafka_pipeline_start(app.pipeline) != 0) {
        log_error("cannot start the Kafka pipeline", "error", err);
        goto out;
    }
    lifecycle_add_stage(app.lc, "kafka", stop_pipeline, &app);

    /* 8. The operators' APIs: REST on HTTP_PORT, gRPC on GRPC_PORT. Their
     * changes go out through the idempotent producer, as Kafka records. Both
     * stop first at shutdown, before the pipeline drains. */
    app.ops = ops_create(&(ops_conf_t){
        .loop = loop,
        .store = app.store,
        .producer = app.producer,
        .codec = app.codec,
        .metrics = app.metrics,
        .insights_topic = cfg.insights_topic,
        .approvals_topic = cfg.approvals_responses_topic,
        .commands_topic = cfg.commands_topic,
        .learner_figures = learner_figures,
        .learner_ctx = &app,
    });
    app.rpc = app.ops ? rpc_create(app.ops) : NULL;
    if (!app.rpc || rest_register(app.http, app.ops) != 0) {
        log_error("cannot register the REST routes");
        goto out;
    }
    rpc_add_check(app.rpc, "kafka", kafka_ready, &app);
    rpc_add_check(app.rpc, "mongodb", mongodb_ready, &app);
    rpc_add_check(app.rpc, "redis", redis_ready, &app);
    app.grpc = grpc_server_create(loop, cfg.http_host, (int)cfg.grpc_port, app.metrics, err, sizeof(err));
    if (!app.grpc || rpc_register(app.rpc, app.grpc) != 0) {
        log_error("cannot start the gRPC server", "error", err);
        goto out;
    }
    lifecycle_add_stage(app.lc, "http", stop_http, &app);
    lifecycle_add_stage(app.lc, "grpc", stop_grpc, &app);

    /* 8b. The fleet-wide gauges of seed 000. */
    app.success_rate =
        metrics_gauge(app.metrics, "optimization_success_rate",
                      "Share of experiments that met their criteria, over every hypothesis", NULL);
    app.avg_improvement =
        metrics_gauge(app.metrics, "average_improvement_percentage",
                      "Mean improvement of the experiments with a result, in percent", NULL);
    app.experiments_active =
        metrics_gauge(app.metrics, "experiments_active", "Hypotheses in EXPERIMENTING", NULL);
    uv_timer_init(loop, &app.gauges_timer);
    app.gauges_timer.data = &app;
    uv_timer_start(&app.gauges_timer, on_gauges_timer, 1000, GAUGES_INTERVAL_MS);
    lifecycle_add_stage(app.lc, "gauges", stop_gauges, &app);

    /* 9. Run until SIGTERM; the stages drain in reverse order. */
    char ports[64];
    snprintf(ports, sizeof(ports), "http %ld, grpc %ld", cfg.http_port, cfg.grpc_port);
    log_info("optimizer started", "telemetry_topic", cfg.telemetry_topic, "insights_topic",
             cfg.insights_topic, "transactional_id", transactional_id, "policy", cfg.policy, "ports", ports);
    exit_code = lifecycle_run(app.lc);

out:
    /* 10. Free in reverse. A start-up failure before run closes the loop first. */
    if (exit_code != 0 && app.lc && !lifecycle_stopping(app.lc)) {
        lifecycle_stop(app.lc, 1);
        lifecycle_run(app.lc);
    }
    grpc_server_destroy(app.grpc);
    rpc_destroy(app.rpc);
    ops_destroy(app.ops);
    kafka_producer_destroy(app.producer);
    kafka_pipeline_destroy(app.pipeline);
    intake_destroy(app.intake);
    engine_destroy(app.engine);
    learner_destroy(app.learner);
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
