/* app: see app.h. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_err.h"
#include "log.h"

int app_parse_steps(const char *s, judge_conf_t *c)
{
    size_t n = 0;
    double prev = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || n == JUDGE_MAX_STEPS || !(v > prev) || v > 100) {
            return HIVE_EINVAL;
        }
        c->steps[n++] = v / 100.0;
        prev = v;
        p = end;
        if (*p == ',') {
            p++;
        } else if (*p) {
            return HIVE_EINVAL;
        }
    }
    if (n == 0 || prev != 100) {
        return HIVE_EINVAL;
    }
    c->nsteps = n;
    return 0;
}

int app_build(app_t *a, service_t *svc)
{
    const app_config_t *cfg = a->cfg;
    runner_conf_t *rc = &a->rconf;
    judge_conf_default(&rc->judge);
    rc->judge.alpha = cfg->alpha;
    rc->judge.tau = cfg->msprt_effect;
    rc->judge.min_samples = cfg->min_samples;
    rc->judge.max_empty = cfg->no_data_intervals;
    rc->judge.fail_on_no_data = strcmp(cfg->no_data_action, "fail") == 0;
    rc->judge.step_min_ms = (int64_t)((double)cfg->canary_step_min_s * 1000.0 * cfg->time_scale);
    rc->judge.bandit_floor = cfg->bandit_floor;
    if (app_parse_steps(cfg->canary_steps, &rc->judge) != 0) {
        log_error(
            "invalid configuration: CANARY_STEPS: increasing percentages ending at 100, e.g. 10,25,50,100",
            "value", cfg->canary_steps);
        return -1;
    }
    rc->time_scale = cfg->time_scale;
    rc->prometheus_url = cfg->prometheus_url;
    rc->prometheus_timeout_ms = cfg->prometheus_timeout_ms;
    rc->interval_ms = cfg->interval_ms;
    rc->assignments_topic = cfg->assignments_topic;
    rc->results_topic = cfg->results_topic;
    if (!(a->runner = runner_create(rc, svc))) {
        log_error("cannot build the runner");
        return -1;
    }
    a->rest = (rest_t){.loop = service_loop(svc),
                       .store = service_store(svc),
                       .runner = a->runner,
                       .conf = rc,
                       .manager_url = cfg->manager_url,
                       .interval_s = (cfg->interval_ms + 999) / 1000};
    static const store_index_t indexes[] = {
        {"measurements", "{\"experiment_id\": 1}", false},
        {"intervals", "{\"experiment_id\": 1, \"slot\": 1}", false},
        {"experiments", "{\"committed.phase\": 1}", false},
    };
    int rc2 = store_ensure_indexes(service_store(svc), indexes, sizeof(indexes) / sizeof(indexes[0]));
    if (rc2 != 0) {
        log_warn("cannot create the indexes yet", "error", hive_strerror(rc2));
    }
    return 0;
}

kafka_verdict_t app_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason, size_t rl)
{
    return runner_tick(((app_t *)ctx)->runner, slot, now_ms, out, reason, rl);
}

size_t app_pending(void *ctx)
{
    return ((app_t *)ctx)->rest.pending;
}

void app_teardown(service_t *svc, void *ctx)
{
    app_t *a = ctx;
    runner_destroy(a->runner);
    a->runner = NULL;
}
