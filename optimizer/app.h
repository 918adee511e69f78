/* app: the optimizer's own objects on the service runtime (service.h).
 *
 * main.c declares the configuration, the inputs, the APIs and the timers;
 * app builds what they reach: the telemetry intake, the learner (restored
 * from MongoDB), the hypothesis engine and the operators' ops, over the
 * runtime's store, codec, producer and metrics.
 */
#ifndef OPTIMIZER_APP_H
#define OPTIMIZER_APP_H

#include "degradation.h"
#include "engine.h"
#include "intake.h"
#include "learner.h"
#include "ops.h"
#include "rpc.h"
#include "service.h"

/* The optimizer's settings, filled by the runtime from the environment. */
typedef struct {
    /* input topics */
    char *telemetry_topic, *insights_topic, *approvals_responses_topic, *experiments_results_topic,
        *applied_topic;
    /* output topics */
    char *approvals_requests_topic, *experiments_requests_topic, *commands_topic;
    char *policy;
    degradation_thresholds_t th;
    double learning_rate, discount_factor, exploration_rate, epsilon_min, epsilon_decay, min_improvement;
    double penalty_factor, max_weight_adjustment, risk_threshold, traffic_split, guardrail_error_rate;
    double linucb_alpha;
    long experiment_duration_s, seed;
    long hypothesis_timeout_s; /* HYPOTHESIS_TIMEOUT_SECONDS */
} app_config_t;

typedef struct {
    const app_config_t *cfg; /* borrowed */
    intake_t *intake;
    learner_t *learner;
    engine_t *engine;
    ops_t *ops;
    rpc_t *rpc;
    metric_t *success_rate, *avg_improvement, *experiments_active;
} app_t;

/* Builds the intake, the learner (BLOCKING: restored from MongoDB, before the
 * loop runs), the engine and the ops over the clients of `svc`. Returns 0, or
 * -1 after saying why; app_teardown() then frees what was built. */
int app_build(app_t *app, service_t *svc);

/* A plain timer (service_timer_t): expires the hypotheses whose answer is
 * overdue (ops_expire), then refreshes the seed's fleet-wide gauges
 * (optimization_success_rate, average_improvement_percentage,
 * experiments_active) from MongoDB, so every replica shows the same figures. */
void app_refresh_gauges(void *app);

/* The service's pending work (service_def_t.pending): operator calls still
 * running on a worker. */
size_t app_pending(void *app);

/* The service's teardown (service_def_t.teardown; `app` is the app_t): frees
 * what app_build() built, in reverse, once the loop has closed. */
void app_teardown(service_t *svc, void *app);

#endif
