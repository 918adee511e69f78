#include "app.h"

#include "hive_err.h"
#include "log.h"
#include "repo.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define START_RETRY_MS 30000
#define START_RETRY_STEP_MS 500

static void learner_figures(void *ctx, double *out_epsilon, size_t *out_size)
{
    app_t *app = ctx;
    *out_epsilon = learner_epsilon(app->learner);
    *out_size = learner_table_size(app->learner);
}

static int learner_evaluate_log(void *ctx, const learn_ope_record_t *log, size_t n,
                                learn_ope_result_t out[LEARN_EVAL_COUNT], const char **out_policy)
{
    app_t *app = ctx;
    *out_policy = learner_policy_name(app->learner);
    if (n == 0) {
        memset(out, 0, LEARN_EVAL_COUNT * sizeof(*out));
        return 0;
    }
    return learner_evaluate(app->learner, log, n, out);
}

/* The learner of OPTIMIZER_POLICY with the configured parameters, restored
 * from MongoDB. */
static int build_learner(app_t *app, service_t *svc)
{
    const app_config_t *cfg = app->cfg;
    learn_policy_config_t pcfg;
    learn_policy_kind_t kind = POLICY_QLEARNING;
    learn_policy_kind_parse(cfg->policy, &kind);
    learn_policy_config_default(&pcfg, kind);
    pcfg.qlearn.learning_rate = cfg->learning_rate;
    pcfg.qlearn.discount_factor = cfg->discount_factor;
    pcfg.qlearn.epsilon_start = cfg->exploration_rate;
    pcfg.qlearn.epsilon_min = cfg->epsilon_min;
    pcfg.qlearn.epsilon_decay = cfg->epsilon_decay;
    pcfg.reward.penalty_factor = cfg->penalty_factor;
    pcfg.reward.min_improvement = cfg->min_improvement;
    pcfg.bandit.alpha = cfg->linucb_alpha;
    pcfg.max_weight_adjustment = cfg->max_weight_adjustment;
    const char *bad = learn_policy_config_check(&pcfg);
    if (bad) {
        fprintf(stderr, "optimizer: invalid configuration: %s\n", bad);
        return -1;
    }
    uint64_t seed = cfg->seed ? (uint64_t)cfg->seed : (uint64_t)uv_hrtime();
    app->learner = learner_create(&pcfg, seed, service_metrics(svc));
    if (app->learner) {
        learner_set_replica(app->learner, service_config(svc)->transactional_id);
    }
    /* At start MongoDB may still be coming up (a pod starting beside it): a
     * transient failure is retried for up to START_RETRY_MS before giving up. */
    store_t *store = service_store(svc);
    int restored = -1;
    for (unsigned waited = 0; app->learner; waited += START_RETRY_STEP_MS) {
        restored = store_ensure_indexes(store, repo_indexes, repo_indexes_count);
        if (restored != 0 && !hive_err_transient(restored)) {
            log_warn("cannot create the MongoDB indexes; lookups will scan", "error", store_last_error());
            restored = 0;
        }
        if (restored == 0) {
            restored = learner_restore(app->learner, store);
        }
        if (restored == 0 || !hive_err_transient(restored) || waited >= START_RETRY_MS) {
            break;
        }
        log_warn("MongoDB not answering at start, retrying", "error", hive_strerror(restored));
        usleep(START_RETRY_STEP_MS * 1000);
    }
    if (restored != 0) {
        log_error("cannot restore the learner from MongoDB", "error",
                  restored < 0 && app->learner ? hive_strerror(restored) : "bad policy");
        return -1;
    }
    return 0;
}

static void on_statistics(void *arg, int status, const char *message, const ops_stats_t *st)
{
    app_t *app = arg;
    (void)message;
    if (status == 0 && st) {
        metric_set(app->success_rate, st->repo.success_rate);
        metric_set(app->avg_improvement, 100.0 * st->repo.average_improvement);
        metric_set(app->experiments_active, (double)st->repo.by_status[HYP_EXPERIMENTING]);
    }
}

void app_refresh_gauges(void *ctx)
{
    app_t *app = ctx;
    ops_expire(app->ops, timeutil_wall_ms(), NULL, NULL);
    ops_statistics(app->ops, on_statistics, app);
}

int app_build(app_t *app, service_t *svc)
{
    const app_config_t *cfg = app->cfg;
    metrics_t *m = service_metrics(svc);
    app->success_rate =
        metrics_gauge(m, "optimization_success_rate",
                      "Share of experiments that met their criteria, over every hypothesis", NULL);
    app->avg_improvement =
        metrics_gauge(m, "average_improvement_percentage",
                      "Mean improvement of the experiments with a result, in percent", NULL);
    app->experiments_active = metrics_gauge(m, "experiments_active", "Hypotheses in EXPERIMENTING", NULL);
    app->intake = intake_create(&(intake_conf_t){
        .insights_topic = cfg->insights_topic,
        .thresholds = cfg->th,
        .codec = service_codec(svc),
        .store = service_store(svc),
        .metrics = service_metrics(svc),
    });
    if (!app->intake || build_learner(app, svc) != 0) {
        return -1;
    }
    app->engine = engine_create(&(engine_conf_t){
        .insights_topic = cfg->insights_topic,
        .approvals_requests_topic = cfg->approvals_requests_topic,
        .approvals_responses_topic = cfg->approvals_responses_topic,
        .experiments_requests_topic = cfg->experiments_requests_topic,
        .experiments_results_topic = cfg->experiments_results_topic,
        .commands_topic = cfg->commands_topic,
        .applied_topic = cfg->applied_topic,
        .risk_threshold = cfg->risk_threshold,
        .min_improvement = cfg->min_improvement,
        .experiment_duration_s = cfg->experiment_duration_s,
        .traffic_split = cfg->traffic_split,
        .guardrail_error_rate = cfg->guardrail_error_rate,
        .open_timeout_ms = (int64_t)cfg->hypothesis_timeout_s * 1000,
        .codec = service_codec(svc),
        .store = service_store(svc),
        .learner = app->learner,
        .metrics = service_metrics(svc),
    });
    /* The operators' changes go out through the idempotent producer. */
    app->ops = ops_create(&(ops_conf_t){
        .loop = service_loop(svc),
        .store = service_store(svc),
        .producer = service_producer(svc),
        .codec = service_codec(svc),
        .metrics = service_metrics(svc),
        .insights_topic = cfg->insights_topic,
        .approvals_topic = cfg->approvals_responses_topic,
        .commands_topic = cfg->commands_topic,
        .learner_figures = learner_figures,
        .learner_evaluate = learner_evaluate_log,
        .learner_ctx = app,
    });
    if (!app->engine || !app->ops) {
        log_error("out of memory building the optimizer");
        return -1;
    }
    return 0;
}

size_t app_pending(void *ctx)
{
    return ops_pending(((app_t *)ctx)->ops);
}

void app_teardown(service_t *svc, void *ctx)
{
    (void)svc;
    app_t *app = ctx;
    rpc_destroy(app->rpc);
    ops_destroy(app->ops);
    engine_destroy(app->engine);
    intake_destroy(app->intake);
    learner_destroy(app->learner);
    *app = (app_t){.cfg = app->cfg};
}
