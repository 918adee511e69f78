/* check: the seed's CLI for a CronJob or a person,
 *   model-monitor check --specialist-type technical|safety|business|ethical|legal|all
 *                       [--output-format text|json] [--export-metrics PUSHGATEWAY_URL]
 * (without --export-metrics, the environment's PUSHGATEWAY_URL, when set, is the target)
 * one check per specialist with the service's configuration (environment),
 * the seed's report on stdout, exit status: 0 every model OK, 1 a model
 * degraded, 4 a source unreachable, 3 a model without a run or without
 * feedback (not enough data to call it OK), 2 bad arguments. */
#include "app.h"

#include "hive_err.h"
#include "httpc_sync.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

static int usage(const char *why)
{
    fprintf(stderr,
            "model-monitor check: %s\nusage: model-monitor check --specialist-type "
            "technical|safety|business|ethical|legal|all [--output-format text|json] "
            "[--export-metrics PUSHGATEWAY_URL]\n",
            why);
    return 2;
}

/* The seed's gauges of one report, pushed to the Pushgateway under
 * job="model_performance_monitor", specialist=<name>. */
static int push_metrics(const char *url, const monitor_report_t *r)
{
    const health_run_t *run = &r->ml.run;
    const health_verdict_t *v = &r->verdict;
    char body[1024], target[512];
    size_t n = 0;
    n += (size_t)snprintf(body + n, sizeof(body) - n,
                          "# TYPE neural_hive_model_degradation_detected gauge\n"
                          "neural_hive_model_degradation_detected %d\n",
                          v->status == HEALTH_DEGRADED);
    if (v->has_aggregate) {
        n += (size_t)snprintf(body + n, sizeof(body) - n,
                              "# TYPE neural_hive_model_performance_score gauge\n"
                              "neural_hive_model_performance_score %.17g\n",
                              v->aggregate);
    }
    const struct {
        const char *name;
        bool has;
        double v;
    } g[] = {{"neural_hive_mlflow_model_precision", run->has_precision, run->precision},
             {"neural_hive_mlflow_model_recall", run->has_recall, run->recall},
             {"neural_hive_mlflow_model_f1", run->has_f1, run->f1}};
    for (size_t i = 0; i < 3; i++) {
        if (g[i].has) {
            n += (size_t)snprintf(body + n, sizeof(body) - n, "# TYPE %s gauge\n%s %.17g\n", g[i].name,
                                  g[i].name, g[i].v);
        }
    }
    size_t ulen = strlen(url);
    while (ulen > 0 && url[ulen - 1] == '/') {
        ulen--;
    }
    snprintf(target, sizeof(target), "%.*s/metrics/job/model_performance_monitor/specialist/%s", (int)ulen,
             url, r->specialist);
    long code = 0;
    char err[200] = "";
    int rc = httpc_sync_request("PUT", target, "text/plain; version=0.0.4", body, strlen(body), 10000, &code,
                                NULL, NULL, err, sizeof(err));
    if (rc != 0 || code < 200 || code > 299) {
        fprintf(stderr, "model-monitor check: cannot push to %s: %s\n", target,
                rc ? (err[0] ? err : hive_strerror(rc)) : "unexpected HTTP status");
        return -1;
    }
    return 0;
}

/* 1 (degraded) beats 4 (unreachable) beats 3 (not enough data) beats 0. */
static int worse(int a, int b)
{
    static const int rank[] = {0, 3, 0, 1, 2};
    return rank[b] > rank[a] ? b : a;
}

int app_check_main(app_t *app, int argc, char **argv)
{
    const char *type = NULL, *format = "text", *push = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--specialist-type") == 0  ? &type
                            : strcmp(a, "--output-format") == 0  ? &format
                            : strcmp(a, "--export-metrics") == 0 ? &push
                                                                 : NULL;
        if (!slot || i + 1 >= argc) {
            return usage(slot ? "missing value" : "unknown argument");
        }
        *slot = argv[++i];
    }
    if (!push) { /* a CronJob sets the Pushgateway once, in its environment */
        const char *env = getenv("PUSHGATEWAY_URL");
        push = env && env[0] ? env : NULL;
    }
    if (!type || (strcmp(type, "all") != 0 && !monitor_specialist_valid(type))) {
        return usage("--specialist-type must be technical, safety, business, ethical, legal or all");
    }
    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        return usage("--output-format must be text or json");
    }
    char err[300];
    app->feedback = store_create(app->cfg->feedback_uri, app->cfg->feedback_database, err, sizeof(err));
    if (!app->feedback) {
        fprintf(stderr, "model-monitor check: bad FEEDBACK_MONGODB_URI: %s\n", err);
        return 2;
    }
    app->mconf = (monitor_conf_t){.mlflow_uri = app->cfg->mlflow_uri,
                                  .name_suffix = app->cfg->mlflow_suffix,
                                  .mlflow_timeout_ms = app->cfg->mlflow_timeout_ms,
                                  .feedback = app->feedback,
                                  .feedback_collection = app->cfg->feedback_collection,
                                  .feedback_window_ms = app->cfg->feedback_window_days * 86400000LL,
                                  .th = app->cfg->th};
    json_t *all = json_array();
    int exit_code = 0;
    bool pushed_ok = true;
    for (size_t i = 0; i < 5; i++) {
        const char *sp = monitor_specialists[i];
        if (strcmp(type, "all") != 0 && strcmp(type, sp) != 0) {
            continue;
        }
        monitor_report_t r;
        monitor_check(&app->mconf, sp, timeutil_wall_ms(), &r);
        exit_code = worse(exit_code, monitor_report_exit_code(&r));
        if (strcmp(format, "json") == 0) {
            json_array_append_new(all, monitor_report_json(&r));
        } else {
            monitor_report_print(&r, stdout);
        }
        if (push && r.rc == 0 && push_metrics(push, &r) != 0) {
            pushed_ok = false;
        }
    }
    if (strcmp(format, "json") == 0) {
        json_t *doc = strcmp(type, "all") == 0 ? json_incref(all) : json_incref(json_array_get(all, 0));
        char *s = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", s ? s : "null");
        free(s);
        json_decref(doc);
    }
    json_decref(all);
    fflush(stdout);
    store_destroy(app->feedback);
    app->feedback = NULL;
    store_global_cleanup();
    return exit_code == 0 && !pushed_ok ? 4 : exit_code;
}
