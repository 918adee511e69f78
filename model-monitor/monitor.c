/* monitor: one check, its report. See monitor.h. */
#include "monitor.h"

#include "hive_err.h"
#include <bson/bson.h>
#include <string.h>
#include <time.h>

static void iso8601(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *const monitor_specialists[5] = {"technical", "safety", "business", "ethical", "legal"};

bool monitor_specialist_valid(const char *name)
{
    for (size_t i = 0; i < 5; i++) {
        if (name && strcmp(name, monitor_specialists[i]) == 0) {
            return true;
        }
    }
    return false;
}

void monitor_model_name(const monitor_conf_t *c, const char *specialist, char *buf, size_t len)
{
    snprintf(buf, len, "%s-evaluator%s", specialist, c->name_suffix ? c->name_suffix : "");
}

int monitor_check(const monitor_conf_t *c, const char *specialist, int64_t now_ms, monitor_report_t *out)
{
    monitor_report_t *r = out;
    memset(r, 0, sizeof(*r));
    snprintf(r->specialist, sizeof(r->specialist), "%s", specialist);
    monitor_model_name(c, specialist, r->model, sizeof(r->model));
    char experiment[128];
    snprintf(experiment, sizeof(experiment), "%s-specialist%s", specialist,
             c->name_suffix ? c->name_suffix : "");
    r->at_ms = now_ms;
    char err[200] = "";
    int rc =
        mlflow_fetch(c->mlflow_uri, experiment, r->model, c->mlflow_timeout_ms, &r->ml, err, sizeof(err));
    if (rc != 0) {
        snprintf(r->error, sizeof(r->error), "mlflow: %s (%s)", hive_strerror(rc), err);
        return r->rc = rc;
    }
    rc = feedback_fetch(c->feedback, c->feedback_collection, specialist, now_ms - c->feedback_window_ms,
                        now_ms + 1, &r->fb, NULL);
    if (rc != 0) {
        snprintf(r->error, sizeof(r->error), "feedback mongodb: %s (%s)", hive_strerror(rc),
                 store_last_error());
        return r->rc = rc;
    }
    health_evaluate(&c->th, &r->ml.run, &r->fb, &r->verdict);
    return 0;
}

int monitor_report_exit_code(const monitor_report_t *r)
{
    if (r->rc != 0) {
        return 4;
    }
    switch (r->verdict.status) {
    case HEALTH_OK:
        return 0;
    case HEALTH_DEGRADED:
        return 1;
    default:
        return 3;
    }
}

static void print_metric(FILE *out, const char *label, bool has, double v)
{
    if (has) {
        fprintf(out, "  - %s: %.3f\n", label, v);
    } else {
        fprintf(out, "  - %s: n/d\n", label);
    }
}

void monitor_report_print(const monitor_report_t *r, FILE *out)
{
    char ts[40];
    iso8601(r->at_ms, ts, sizeof(ts));
    const char *rule = "============================================================";
    fprintf(out, "%s\nRELATÓRIO DE PERFORMANCE - %s\n%s\n\nTimestamp: %s\n", rule, r->specialist, rule, ts);
    if (r->rc != 0) {
        fprintf(out, "Status: ❓ INDISPONÍVEL\nErro: %s\n\n", r->error);
        return;
    }
    const health_verdict_t *v = &r->verdict;
    if (v->has_aggregate) {
        fprintf(out, "Score Agregado: %.3f\n", v->aggregate);
    } else {
        fprintf(out, "Score Agregado: n/d\n");
    }
    static const char *const icons[] = {"✅ OK", "⚠️ DEGRADED", "❔ NO_FEEDBACK", "❔ NO_RUN"};
    fprintf(out, "Status: %s\n\nMLflow Metrics:\n", icons[v->status]);
    const health_run_t *run = &r->ml.run;
    print_metric(out, "Precision", run->has_precision, run->precision);
    print_metric(out, "Recall", run->has_recall, run->recall);
    print_metric(out, "F1 Score", run->has_f1, run->f1);
    print_metric(out, "Accuracy", run->has_accuracy, run->accuracy);
    fprintf(out, "  - Run ID: %s%s\n", run->found ? r->ml.run_id : "n/d",
            r->ml.production ? " (production)" : "");
    double avg = 0;
    fprintf(out, "\nFeedback Stats:\n");
    if (feedback_stats_avg(&r->fb, &avg)) {
        fprintf(out, "  - Média: %.2f\n", avg);
    } else {
        fprintf(out, "  - Média: n/d\n");
    }
    fprintf(out, "  - Total: %llu\n  - Positivo: %llu\n  - Neutro: %llu\n  - Negativo: %llu\n",
            (unsigned long long)r->fb.count, (unsigned long long)r->fb.positive,
            (unsigned long long)r->fb.neutral, (unsigned long long)r->fb.negative);
    fprintf(out, "\nRecomendações:\n");
    switch (v->status) {
    case HEALTH_OK:
        fprintf(out,
                "  - Performance dentro dos thresholds esperados\n  - Continuar monitoramento regular\n");
        break;
    case HEALTH_DEGRADED:
        for (size_t i = 0; i < v->nreasons; i++) {
            fprintf(out, "  - Abaixo do threshold: %s\n", v->reasons[i]);
        }
        fprintf(out, "  - Considerar retreinamento (auto_retrain)\n");
        break;
    case HEALTH_NO_FEEDBACK:
        fprintf(out, "  - Sem feedback humano na janela: score agregado indisponível\n"
                     "  - Verificar a coleta de feedback\n");
        break;
    case HEALTH_NO_RUN:
        fprintf(out, "  - %s: nada a avaliar\n  - Verificar o treinamento e o registro no MLflow\n",
                v->nreasons ? v->reasons[0] : "sem run");
        break;
    }
    fprintf(out, "\n");
}

static json_t *num_or_null(bool has, double v)
{
    return has ? json_real(v) : json_null();
}

json_t *monitor_report_json(const monitor_report_t *r)
{
    char ts[40];
    iso8601(r->at_ms, ts, sizeof(ts));
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "specialist_type", r->specialist, "model", r->model, "timestamp", ts);
    if (r->rc != 0) {
        json_object_set_new(o, "status", json_string("UNAVAILABLE"));
        json_object_set_new(o, "error", json_string(r->error));
        return o;
    }
    const health_verdict_t *v = &r->verdict;
    const health_run_t *run = &r->ml.run;
    double avg = 0;
    bool has_avg = feedback_stats_avg(&r->fb, &avg);
    json_object_set_new(o, "status", json_string(health_status_name(v->status)));
    json_object_set_new(o, "degraded", json_boolean(v->status == HEALTH_DEGRADED));
    json_object_set_new(o, "aggregate_score", num_or_null(v->has_aggregate, v->aggregate));
    json_object_set_new(o, "mlflow",
                        json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:b}", "precision",
                                  num_or_null(run->has_precision, run->precision), "recall",
                                  num_or_null(run->has_recall, run->recall), "f1_score",
                                  num_or_null(run->has_f1, run->f1), "accuracy",
                                  num_or_null(run->has_accuracy, run->accuracy), "run_id",
                                  run->found ? json_string(r->ml.run_id) : json_null(), "model_version",
                                  r->ml.version, "production", r->ml.production));
    json_object_set_new(o, "feedback",
                        json_pack("{s:o, s:I, s:I, s:I, s:I}", "avg", num_or_null(has_avg, avg), "count",
                                  (json_int_t)r->fb.count, "positive", (json_int_t)r->fb.positive, "neutral",
                                  (json_int_t)r->fb.neutral, "negative", (json_int_t)r->fb.negative));
    json_t *reasons = json_array();
    for (size_t i = 0; i < v->nreasons; i++) {
        json_array_append_new(reasons, json_string(v->reasons[i]));
    }
    json_object_set_new(o, "reasons", reasons);
    return o;
}

json_t *monitor_doc_json(const bson_t *doc)
{
    size_t len = 0;
    char *s = bson_as_relaxed_extended_json(doc, &len);
    json_t *j = s ? json_loadb(s, len, 0, NULL) : NULL;
    bson_free(s);
    if (j) {
        /* timestamps as milliseconds, the way the Avro records carry them */
        json_t *ts = json_object_get(j, "timestamp");
        if (json_is_object(ts)) {
            json_t *d = json_object_get(ts, "$date");
            json_object_set_new(j, "timestamp",
                                json_is_integer(d) ? json_integer(json_integer_value(d)) : json_deep_copy(d));
        }
        json_object_set_new(j, "report_id", json_deep_copy(json_object_get(j, "_id")));
        json_object_del(j, "_id");
    }
    return j;
}
