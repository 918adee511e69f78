/* optimizer: learns which change to try and proves it before applying it. On the
 * service runtime: telemetry goes to the intake (degradations become insights);
 * insights, approvals, results and applications to the hypothesis engine; REST and
 * gRPC serve the operators; a timer refreshes the gauges. The decisions live in the
 * pure modules (degradation.c, hypothesis.c, learn_*); app.c builds the shell. */
#include "app.h"
#include "log.h"
#include "openapi_json.h" /* openapi_json[]: the REST API's OpenAPI document (meson.build) */
#include "reflect.h"
#include "rest.h"
#include "service.h"

static app_config_t cfg;
static app_t app = {.cfg = &cfg};

/* 1. The optimizer's own settings; the runtime adds the shared ones. */
static const config_item_t config_items[] = {
    {"KAFKA_APPROVALS_REQUESTS_TOPIC", CONFIG_STRING, "approvals.requests", 0, 0, NULL,
     &cfg.approvals_requests_topic, "ApprovalRequest output (to the Queen Agent)"},
    {"KAFKA_EXPERIMENT_REQUESTS_TOPIC", CONFIG_STRING, "experiments.requests", 0, 0, NULL,
     &cfg.experiments_requests_topic, "ExperimentRequest output"},
    {"KAFKA_COMMANDS_TOPIC", CONFIG_STRING, "optimization.commands", 0, 0, NULL, &cfg.commands_topic,
     "OptimizationCommand output (APPLY, ROLLBACK)"},
    {"SLO_COMPLIANCE_THRESHOLD", CONFIG_DOUBLE, "0.99", 0, 1, NULL, &cfg.th.slo_compliance_min,
     "degraded below this SLO compliance"},
    {"LATENCY_P95_THRESHOLD_MS", CONFIG_DOUBLE, "1000", 1, 3600000, NULL, &cfg.th.latency_p95_max_ms,
     "degraded above this p95 latency"},
    {"ERROR_RATE_THRESHOLD", CONFIG_DOUBLE, "0.01", 0, 1, NULL, &cfg.th.error_rate_max,
     "degraded above this error rate"},
    {"OPTIMIZER_POLICY", CONFIG_ENUM, "qlearning", 0, 0, "qlearning|thompson|linucb", &cfg.policy,
     "learning policy: the seed's epsilon-greedy Q-learning or a contextual bandit"},
    {"LEARNING_RATE", CONFIG_DOUBLE, "0.01", 0.0001, 1, NULL, &cfg.learning_rate, "Q-learning alpha"},
    {"DISCOUNT_FACTOR", CONFIG_DOUBLE, "0.95", 0, 1, NULL, &cfg.discount_factor, "Q-learning gamma"},
    {"EXPLORATION_RATE", CONFIG_DOUBLE, "0.1", 0, 1, NULL, &cfg.exploration_rate,
     "epsilon at start (seed: 0.1); decays per decision that changes something to EPSILON_MIN"},
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
    {"HYPOTHESIS_TIMEOUT_SECONDS", CONFIG_INT, "86400", 10, 2592000, NULL, &cfg.hypothesis_timeout_s,
     "an approval or experiment result not in by then expires its hypothesis"},
    {"POLICY_SEED", CONFIG_INT, "0", 0, 2147483647, NULL, &cfg.seed,
     "seed of the policy's random generator; 0 = from the clock"},
};

/* The defaults the optimizer has always documented for the shared keys. */
static const service_default_t defaults[] = {
    {"KAFKA_CONSUMER_GROUP", "optimizer-agents"},
    {"MONGODB_DATABASE", "optimizer_agents"},
};

/* 2. Inputs: telemetry (to the intake) and insights (to the engine) in batches. */
static kafka_verdict_t to_intake(void *ctx, kafka_in_t *in, const service_record_t *recs, size_t n)
{
    return intake_transform_batch(((app_t *)ctx)->intake, in, recs, n);
}
static kafka_verdict_t to_insights(void *ctx, kafka_in_t *in, const service_record_t *recs, size_t n)
{
    return engine_insights_batch(((app_t *)ctx)->engine, in, recs, n);
}

static kafka_verdict_t to_engine(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                 char *why, size_t len)
{
    return engine_transform(((app_t *)ctx)->engine, m, v, out, why, len);
}

static const service_input_t inputs[] = {
    {"KAFKA_TELEMETRY_TOPIC", "telemetry.aggregated", "TelemetryAggregated", NULL,
     "TelemetryAggregated input", &cfg.telemetry_topic, to_intake},
    {"KAFKA_INSIGHTS_TOPIC", "insights.generated", "Insight", NULL,
     "Insight input; where synthetic insights go", &cfg.insights_topic, to_insights},
    {"KAFKA_APPROVALS_RESPONSES_TOPIC", "approvals.responses", "ApprovalResponse", to_engine,
     "ApprovalResponse input", &cfg.approvals_responses_topic, NULL},
    {"KAFKA_EXPERIMENTS_TOPIC", "experiments.results", "ExperimentResult", to_engine,
     "ExperimentResult input", &cfg.experiments_results_topic, NULL},
    {"KAFKA_OPTIMIZATION_TOPIC", "optimization.applied", "OptimizationEvent", to_engine,
     "OptimizationEvent input (the appliers' confirmations)", &cfg.applied_topic, NULL},
};

/* 3. Timer: the seed's fleet-wide gauges, refreshed from MongoDB. */
static const service_timer_t timers[] = {{"gauges", 15000, 1000, app_refresh_gauges, NULL, NULL, 0}};

/* 4. Setup: the intake, learner, engine and ops; the REST routes over them. */
static int setup(service_t *svc, void *ctx)
{
    app_t *a = ctx;
    if (app_build(a, svc) != 0 || rest_register(service_http(svc), a->ops) != 0) {
        log_error("cannot set up the optimizer");
        return -1;
    }
    log_info("optimizer set up", "policy", cfg.policy);
    return 0;
}

/* 5. gRPC: the OptimizerAgent service (its HealthCheck answers like /ready)
 *    and server reflection. */
static int grpc_setup(service_t *svc, void *ctx, grpc_server_t *grpc)
{
    app_t *a = ctx;
    if (!(a->rpc = rpc_create(a->ops))) {
        return -1;
    }
    rpc_add_check(a->rpc, "kafka", service_kafka_ready, svc);
    rpc_add_check(a->rpc, "mongodb", service_mongodb_ready, svc);
    rpc_add_check(a->rpc, "redis", service_redis_ready, svc);
    return rpc_register(a->rpc, grpc) == 0 && reflect_register(grpc) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const service_def_t def = {
        .name = "optimizer",
        .summary = "Optimizer agent of the Neural Hive-Mind. Turns degraded telemetry into insights, and "
                   "HIGH/CRITICAL insights into hypotheses chosen by a learning policy (Q-learning, Thompson "
                   "sampling or LinUCB); sends risky ones for approval, proves each in an experiment, learns "
                   "from the result and asks the appliers to APPLY the winners. Exactly once, over Kafka.",
        .needs = SERVICE_STORE | SERVICE_REDIS | SERVICE_PRODUCER | SERVICE_PIPELINE | SERVICE_GRPC,
        .config = config_items,
        .nconfig = SERVICE_N(config_items),
        .defaults = defaults,
        .ndefaults = SERVICE_N(defaults),
        .inputs = inputs,
        .ninputs = SERVICE_N(inputs),
        .timers = timers,
        .ntimers = SERVICE_N(timers),
        .openapi = (const char *)openapi_json,
        .openapi_len = openapi_json_len,
        .setup = setup,
        .grpc_register = grpc_setup,
        .pending = app_pending,
        .teardown = app_teardown,
    };
    /* Config, logs, metrics, clients, setup, run until SIGTERM, drain, free. */
    return service_main(&def, &app, argc, argv);
}
