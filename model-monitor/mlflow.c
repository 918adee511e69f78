/* mlflow: MLflow REST client for seed 004's flow. See mlflow.h. */
#include "mlflow.h"

#include "hive_err.h"
#include "httpc_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request; *out_json the parsed body of a 2xx answer, NULL for 404 (and
 * for 400 when `absent_on_400`: MLflow answers 400 INVALID_PARAMETER_VALUE for
 * an alias the model does not have). Returns 0 or a HIVE_E* code. */
static int call_ex(const char *method, const char *base, const char *path, const char *body, long timeout_ms,
                   bool absent_on_400, json_t **out_json, char *err, size_t errlen)
{
    char url[1024];
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') {
        blen--;
    }
    snprintf(url, sizeof(url), "%.*s%s", (int)blen, base, path);
    long code = 0;
    char *resp = NULL;
    size_t len = 0;
    int rc = httpc_sync_request(method, url, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
                                timeout_ms, &code, &resp, &len, err, errlen);
    *out_json = NULL;
    if (rc != 0) {
        return rc;
    }
    if (code == 404 || (absent_on_400 && code == 400)) {
        free(resp);
        return 0;
    }
    if (code < 200 || code > 299) {
        snprintf(err, errlen, "MLflow answered %ld to %s %s", code, method, path);
        free(resp);
        return HIVE_EPROTO;
    }
    json_error_t jerr;
    *out_json = json_loadb(resp ? resp : "", len, 0, &jerr);
    free(resp);
    if (!*out_json) {
        snprintf(err, errlen, "MLflow sent bad JSON for %s: %s", path, jerr.text);
        return HIVE_EPROTO;
    }
    return 0;
}

static int call(const char *method, const char *base, const char *path, const char *body, long timeout_ms,
                json_t **out_json, char *err, size_t errlen)
{
    return call_ex(method, base, path, body, timeout_ms, false, out_json, err, errlen);
}

static void metric_of(const json_t *metrics, const char *key, bool *has, double *value)
{
    size_t i;
    const json_t *m;
    json_array_foreach(metrics, i, m)
    {
        const char *k = json_string_value(json_object_get(m, "key"));
        const json_t *v = json_object_get(m, "value");
        if (k && strcmp(k, key) == 0 && json_is_number(v)) {
            *has = true;
            *value = json_number_value(v);
        }
    }
}

int mlflow_pick_run(const json_t *runs, const char *prefer_run_id, mlflow_result_t *out)
{
    if (!json_is_array(runs) || json_array_size(runs) == 0) {
        return HIVE_ENOTFOUND;
    }
    const json_t *pick = json_array_get(runs, 0);
    bool production = false;
    size_t i;
    const json_t *r;
    json_array_foreach(runs, i, r)
    {
        const char *id = json_string_value(json_object_get(json_object_get(r, "info"), "run_id"));
        if (prefer_run_id && *prefer_run_id && id && strcmp(id, prefer_run_id) == 0) {
            pick = r;
            production = true;
            break;
        }
    }
    const char *id = json_string_value(json_object_get(json_object_get(pick, "info"), "run_id"));
    const json_t *metrics = json_object_get(json_object_get(pick, "data"), "metrics");
    health_run_t run = {.found = true};
    metric_of(metrics, "precision", &run.has_precision, &run.precision);
    metric_of(metrics, "recall", &run.has_recall, &run.recall);
    metric_of(metrics, "f1_score", &run.has_f1, &run.f1);
    metric_of(metrics, "accuracy", &run.has_accuracy, &run.accuracy);
    out->run = run;
    out->production = production;
    snprintf(out->run_id, sizeof(out->run_id), "%s", id ? id : "");
    return 0;
}

/* The production version's run id and version: the `production` alias, else
 * the Production stage. Empty when neither exists. */
static int production_run(const char *base, const char *model, long timeout_ms, char *run_id, size_t rlen,
                          char *version, size_t vlen, char *err, size_t errlen)
{
    char path[512];
    json_t *j = NULL;
    snprintf(path, sizeof(path), "/api/2.0/mlflow/registered-models/alias?name=%s&alias=production", model);
    int rc = call_ex("GET", base, path, NULL, timeout_ms, true, &j, err, errlen);
    const json_t *mv = j ? json_object_get(j, "model_version") : NULL;
    if (rc == 0 && !mv) {
        json_decref(j);
        char body[300];
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"stages\":[\"Production\"]}", model);
        rc = call("POST", base, "/api/2.0/mlflow/registered-models/get-latest-versions", body, timeout_ms, &j,
                  err, errlen);
        mv = j ? json_array_get(json_object_get(j, "model_versions"), 0) : NULL;
    }
    if (rc == 0 && mv) {
        const char *r = json_string_value(json_object_get(mv, "run_id"));
        const char *v = json_string_value(json_object_get(mv, "version"));
        snprintf(run_id, rlen, "%s", r ? r : "");
        snprintf(version, vlen, "%s", v ? v : "");
    }
    json_decref(j);
    return rc;
}

int mlflow_fetch(const char *tracking_uri, const char *experiment, const char *model, long timeout_ms,
                 mlflow_result_t *out, char *err, size_t errlen)
{
    mlflow_result_t res = {0};
    char path[512], body[512];
    json_t *j = NULL;
    snprintf(path, sizeof(path), "/api/2.0/mlflow/experiments/get-by-name?experiment_name=%s", experiment);
    int rc = call("GET", tracking_uri, path, NULL, timeout_ms, &j, err, errlen);
    const char *exp_id =
        j ? json_string_value(json_object_get(json_object_get(j, "experiment"), "experiment_id")) : NULL;
    if (rc != 0 || !exp_id) {
        json_decref(j);
        if (rc == 0) {
            *out = res;
        }
        return rc;
    }
    snprintf(
        body, sizeof(body),
        "{\"experiment_ids\":[\"%s\"],\"max_results\":100,\"order_by\":[\"attributes.start_time DESC\"]}",
        exp_id);
    json_decref(j);
    j = NULL;
    rc = production_run(tracking_uri, model, timeout_ms, res.run_id, sizeof(res.run_id), res.version,
                        sizeof(res.version), err, errlen);
    char prefer[64];
    snprintf(prefer, sizeof(prefer), "%s", res.run_id);
    if (rc == 0) {
        rc = call("POST", tracking_uri, "/api/2.0/mlflow/runs/search", body, timeout_ms, &j, err, errlen);
    }
    if (rc == 0) {
        if (mlflow_pick_run(j ? json_object_get(j, "runs") : NULL, prefer, &res) != 0) {
            res.run = (health_run_t){0};
            res.run_id[0] = '\0';
        }
        if (!res.production) {
            res.version[0] = '\0';
        }
        *out = res;
    }
    json_decref(j);
    return rc;
}
