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
    char *no_data_action, *canary_steps;
    double alpha, msprt_effect, bandit_floor, time_scale;
    long interval_ms, min_samples, no_data_intervals, canary_step_min_s;
} app_config_t;

typedef struct {
    app_config_t *cfg; /* borrowed */
    runner_conf_t rconf;
    runner_t *runner;
    rest_t rest;
    long every; /* looks every `every` ticks of APP_TICK_MS */
} app_t;

/* The base period of the transactional timer; EVALUATION_INTERVAL_MS is a
 * multiple of it (the runtime's timers have a fixed interval). */
#define APP_TICK_MS 1000

/* Builds the runner and the REST context; 0, or -1 after saying why. */
int app_build(app_t *app, service_t *svc);

/* The evaluation timer (kafka_tick_fn): runs the runner's look on every
 * `every`-th slot. */
kafka_verdict_t app_tick(void *app, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason, size_t rl);

size_t app_pending(void *app);
void app_teardown(service_t *svc, void *app);

/* Parses "10,25,50,100" (percent, increasing, ending at 100) into c->steps. */
int app_parse_steps(const char *s, judge_conf_t *c);

#endif
