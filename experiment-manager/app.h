/* app: the experiment manager's objects on the service runtime (service.h).
 *
 * main.c declares the configuration, inputs, timer and routes; app turns the
 * settings into the judge's configuration and builds the runner (Kafka side)
 * and the REST context over the runtime's store, codec and metrics.
 */
#ifndef EXPMGR_APP_H
#define EXPMGR_APP_H

#include "rest.h"
#include "runner.h"
#include "service.h"

/* The settings, filled by the runtime from the environment. */
typedef struct {
    char *requests_topic, *telemetry_topic; /* inputs */
    char *assignments_topic, *results_topic;
    char *no_data_action, *canary_steps, *manager_url, *prometheus_url;
    long prometheus_timeout_ms;
    double alpha, msprt_effect, bandit_floor, time_scale;
    long interval_ms, min_samples, no_data_intervals, canary_step_min_s;
} app_config_t;

typedef struct {
    app_config_t *cfg; /* borrowed */
    runner_conf_t rconf;
    runner_t *runner;
    rest_t rest;
} app_t;

/* Builds the runner and the REST context; 0, or -1 after saying why. */
int app_build(app_t *app, service_t *svc);

/* The evaluation timer (kafka_tick_fn), every EVALUATION_INTERVAL_MS: the runner's look. */
kafka_verdict_t app_tick(void *app, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason, size_t rl);

size_t app_pending(void *app);
void app_teardown(service_t *svc, void *app);

/* Parses "10,25,50,100" (percent, increasing, ending at 100) into c->steps. */
int app_parse_steps(const char *s, judge_conf_t *c);

#endif
