/* mlflow_api: MLflow REST (2.0 API) over httpc_sync. See mlflow_api.h. */
#include "mlflow_api.h"

#include "hive_err.h"
#include "httpc_sync.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The string member `key` of `o`, or "". */
static const char *jget(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* One request. A 2xx answer: *out (if not NULL) the parsed body. A 404 or
 * RESOURCE_DOES_NOT_EXIST: HIVE_ENOTFOUND. Otherwise a HIVE_E* code. */
static int call(mlflow_api_t *m, const char *method, const char *path, json_t *body, json_t **out)
{
    char url[2048];
    size_t blen = strlen(m->base);
    while (blen > 0 && m->base[blen - 1] == '/') {
        blen--;
    }
    snprintf(url, sizeof(url), "%.*s%s", (int)blen, m->base, path);
    char *req = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    long code = 0;
    char *resp = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = httpc_sync_request(method, url, req ? "application/json" : NULL, req, req ? strlen(req) : 0,
                                m->timeout_ms, &code, &resp, &len, err, sizeof(err));
    free(req);
    if (out) {
        *out = NULL;
    }
    if (rc != 0) {
        return hive_err_set(m->err, sizeof(m->err), rc, "MLflow %s %s: %s", method, path, err);
    }
    json_t *j = json_loadb(resp ? resp : "", len, 0, NULL);
    const char *ecode = json_string_value(json_object_get(j, "error_code"));
    const char *emsg = json_string_value(json_object_get(j, "message"));
    /* an absent alias is a 400 INVALID_PARAMETER_VALUE "... not found" */
    bool absent = code == 400 && ecode && strcmp(ecode, "INVALID_PARAMETER_VALUE") == 0 && emsg &&
                  strstr(emsg, "not found");
    if (code == 404 || absent || (ecode && strcmp(ecode, "RESOURCE_DOES_NOT_EXIST") == 0)) {
        rc = hive_err_set(m->err, sizeof(m->err), HIVE_ENOTFOUND, "MLflow %s %s: not found", method, path);
    } else if (code < 200 || code > 299 || !j) {
        rc = hive_err_set(m->err, sizeof(m->err), code >= 500 ? HIVE_EUNAVAILABLE : HIVE_EPROTO,
                          "MLflow answered %ld to %s %s: %.200s", code, method, path, resp ? resp : "");
    }
    free(resp);
    if (rc == 0 && out) {
        *out = j;
    } else {
        json_decref(j);
    }
    return rc;
}

/* `s` URL-encoded into `out`. */
static void escape(const char *s, char *out, size_t len)
{
    char *e = curl_easy_escape(NULL, s, 0);
    snprintf(out, len, "%s", e ? e : "");
    curl_free(e);
}

int mlflow_api_experiment(mlflow_api_t *m, const char *name, char *out_id, size_t len)
{
    char esc[512], path[700];
    escape(name, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/2.0/mlflow/experiments/get-by-name?experiment_name=%s", esc);
    json_t *j = NULL;
    int rc = call(m, "GET", path, NULL, &j);
    if (rc == HIVE_ENOTFOUND) {
        rc = call(m, "POST", "/api/2.0/mlflow/experiments/create", json_pack("{s:s}", "name", name), &j);
        if (rc == 0) {
            snprintf(out_id, len, "%s", jget(j, "experiment_id"));
        } else if (rc == HIVE_EPROTO) {
            /* created meanwhile by someone else: read it again */
            rc = call(m, "GET", path, NULL, &j);
            if (rc == 0) {
                const json_t *e = json_object_get(j, "experiment");
                snprintf(out_id, len, "%s", jget(e, "experiment_id"));
            }
        }
    } else if (rc == 0) {
        const json_t *e = json_object_get(j, "experiment");
        snprintf(out_id, len, "%s", jget(e, "experiment_id"));
    }
    json_decref(j);
    if (rc == 0 && !*out_id) {
        rc = hive_err_set(m->err, sizeof(m->err), HIVE_EPROTO, "MLflow gave no id for experiment %s", name);
    }
    return rc;
}

int mlflow_api_create_run(mlflow_api_t *m, const char *exp_id, const char *run_name, const char *retrain_id,
                          char *out_run_id, size_t len)
{
    json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "experiment_id", exp_id, "run_name", run_name,
                             "tags", "key", "retrain_run_id", "value", retrain_id);
    json_t *j = NULL;
    int rc = call(m, "POST", "/api/2.0/mlflow/runs/create", body, &j);
    if (rc == 0) {
        const json_t *info = json_object_get(json_object_get(j, "run"), "info");
        const char *id = json_string_value(json_object_get(info, "run_id"));
        if (!id) {
            rc = hive_err_set(m->err, sizeof(m->err), HIVE_EPROTO, "MLflow gave no run id");
        } else {
            snprintf(out_run_id, len, "%s", id);
        }
    }
    json_decref(j);
    return rc;
}

static void metric_of(const json_t *metrics, const char *key, bool *has, double *value)
{
    size_t i;
    const json_t *mm;
    json_array_foreach(metrics, i, mm)
    {
        const char *k = json_string_value(json_object_get(mm, "key"));
        const json_t *v = json_object_get(mm, "value");
        if (k && strcmp(k, key) == 0 && json_is_number(v)) {
            *has = true;
            *value = json_number_value(v);
        }
    }
}

int mlflow_api_run(mlflow_api_t *m, const char *run_id, char *status, size_t slen, decide_metrics_t *out)
{
    char esc[256], path[400];
    escape(run_id, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/2.0/mlflow/runs/get?run_id=%s", esc);
    json_t *j = NULL;
    int rc = call(m, "GET", path, NULL, &j);
    if (rc == 0) {
        const json_t *run = json_object_get(j, "run");
        const char *st = json_string_value(json_object_get(json_object_get(run, "info"), "status"));
        snprintf(status, slen, "%s", st ? st : "");
        const json_t *metrics = json_object_get(json_object_get(run, "data"), "metrics");
        decide_metrics_t d = {0};
        metric_of(metrics, "precision", &d.has_precision, &d.precision);
        metric_of(metrics, "recall", &d.has_recall, &d.recall);
        metric_of(metrics, "f1_score", &d.has_f1, &d.f1);
        metric_of(metrics, "accuracy", &d.has_accuracy, &d.accuracy);
        if (out) {
            *out = d;
        }
    }
    json_decref(j);
    return rc;
}

int mlflow_api_fail_run(mlflow_api_t *m, const char *run_id, long long end_ms)
{
    json_t *body =
        json_pack("{s:s, s:s, s:I}", "run_id", run_id, "status", "FAILED", "end_time", (json_int_t)end_ms);
    return call(m, "POST", "/api/2.0/mlflow/runs/update", body, NULL);
}

int mlflow_api_version_of_run(mlflow_api_t *m, const char *run_id, char *name, size_t nlen, char *version,
                              size_t vlen)
{
    char filter[300], esc[600], path[800];
    snprintf(filter, sizeof(filter), "run_id='%s'", run_id);
    escape(filter, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/2.0/mlflow/model-versions/search?filter=%s", esc);
    json_t *j = NULL;
    int rc = call(m, "GET", path, NULL, &j);
    if (rc == 0) {
        const json_t *mv = json_array_get(json_object_get(j, "model_versions"), 0);
        const char *n = json_string_value(json_object_get(mv, "name"));
        const char *v = json_string_value(json_object_get(mv, "version"));
        if (!n || !v) {
            rc = hive_err_set(m->err, sizeof(m->err), HIVE_ENOTFOUND, "run %s registered no model version",
                              run_id);
        } else {
            snprintf(name, nlen, "%s", n);
            snprintf(version, vlen, "%s", v);
        }
    }
    json_decref(j);
    return rc;
}

int mlflow_api_alias(mlflow_api_t *m, const char *name, const char *alias, char *version, size_t vlen,
                     char *run_id, size_t rlen)
{
    char esc[400], path[700];
    escape(name, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/2.0/mlflow/registered-models/alias?name=%s&alias=%s", esc, alias);
    json_t *j = NULL;
    int rc = call(m, "GET", path, NULL, &j);
    if (rc == 0) {
        const json_t *mv = json_object_get(j, "model_version");
        const char *v = json_string_value(json_object_get(mv, "version"));
        const char *r = json_string_value(json_object_get(mv, "run_id"));
        if (!v) {
            rc = HIVE_ENOTFOUND;
        } else {
            snprintf(version, vlen, "%s", v);
            if (run_id) {
                snprintf(run_id, rlen, "%s", r ? r : "");
            }
        }
    }
    json_decref(j);
    return rc;
}

int mlflow_api_set_alias(mlflow_api_t *m, const char *name, const char *alias, const char *version)
{
    json_t *body = json_pack("{s:s, s:s, s:s}", "name", name, "alias", alias, "version", version);
    return call(m, "POST", "/api/2.0/mlflow/registered-models/alias", body, NULL);
}

int mlflow_api_delete_alias(mlflow_api_t *m, const char *name, const char *alias)
{
    char esc[400], path[700];
    escape(name, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/2.0/mlflow/registered-models/alias?name=%s&alias=%s", esc, alias);
    int rc = call(m, "DELETE", path, NULL, NULL);
    return rc == HIVE_ENOTFOUND ? 0 : rc;
}
