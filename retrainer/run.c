/* run: the stored retrain state machine. See run.h. */
#include "run.h"

#include "fnv.h"
#include "hive_err.h"
#include "log.h"
#include "mlflow_api.h"
#include "steps_parts.h"
#include "trainer.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const specialists[] = {"technical", "safety", "business", "ethical", "legal"};

bool run_specialist_known(const char *s)
{
    for (size_t i = 0; s && i < 5; i++) {
        if (strcmp(s, specialists[i]) == 0) {
            return true;
        }
    }
    return false;
}

void run_id_for_degradation(const char *degradation_id, char *out, size_t len)
{
    snprintf(out, len, "deg-%.120s", degradation_id);
}

/* ---- documents: JSON in memory, BSON in the store ------------------------- */

static int save(const run_conf_t *c, const char *coll, const char *id, const json_t *doc, char *err,
                size_t errlen)
{
    char *s = json_dumps(doc, JSON_COMPACT);
    bson_error_t be;
    bson_t *b = s ? bson_new_from_json((const uint8_t *)s, -1, &be) : NULL;
    free(s);
    if (!b) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "run %s does not convert to BSON", id);
    }
    int rc = store_upsert(c->store, coll, id, b);
    bson_destroy(b);
    if (rc != 0) {
        hive_err_set(err, errlen, rc, "store %s/%s: %s", coll, id, store_last_error());
    }
    return rc;
}

static json_t *to_json(const bson_t *doc)
{
    size_t len = 0;
    char *s = bson_as_relaxed_extended_json(doc, &len);
    json_t *j = s ? json_loadb(s, len, 0, NULL) : NULL;
    bson_free(s);
    return j;
}

static int load(const run_conf_t *c, const char *coll, const char *id, json_t **out, char *err, size_t errlen)
{
    bson_t *doc = NULL;
    int rc = store_find_one(c->store, coll, id, &doc);
    if (rc != 0) {
        return hive_err_set(err, errlen, rc, "%s %s: %s", coll, id,
                            rc == HIVE_ENOTFOUND ? "not found" : store_last_error());
    }
    *out = to_json(doc);
    bson_destroy(doc);
    return *out ? 0 : hive_err_set(err, errlen, HIVE_EPROTO, "%s %s does not read back", coll, id);
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int64_t jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v)
           : json_is_real(v)  ? (int64_t)json_real_value(v)
                              : 0;
}

static json_t *metrics_json(const decide_metrics_t *m)
{
    json_t *j = json_object();
    if (m->has_precision) {
        json_object_set_new(j, "precision", json_real(m->precision));
    }
    if (m->has_recall) {
        json_object_set_new(j, "recall", json_real(m->recall));
    }
    if (m->has_f1) {
        json_object_set_new(j, "f1_score", json_real(m->f1));
    }
    if (m->has_accuracy) {
        json_object_set_new(j, "accuracy", json_real(m->accuracy));
    }
    return j;
}

/* ---- steps and events ----------------------------------------------------- */

static json_t *step_of(json_t *doc, const char *name)
{
    json_t *steps = json_object_get(doc, "steps");
    json_t *s = json_object_get(steps, name);
    if (!s) {
        s = json_object();
        json_object_set_new(steps, name, s);
    }
    return s;
}

static void step_begin(json_t *doc, const char *name, int64_t now_ms)
{
    json_t *s = step_of(doc, name);
    if (!json_object_get(s, "started_ms")) {
        json_object_set_new(s, "started_ms", json_integer(now_ms));
    }
}

static void step_end(json_t *doc, const char *name, const char *outcome, const char *detail, int64_t now_ms)
{
    json_t *s = step_of(doc, name);
    if (!json_object_get(s, "started_ms")) {
        json_object_set_new(s, "started_ms", json_integer(now_ms));
    }
    json_object_set_new(s, "ended_ms", json_integer(now_ms));
    json_object_set_new(s, "duration_s", json_real((double)(now_ms - jint(s, "started_ms")) / 1000.0));
    json_object_set_new(s, "outcome", json_string(outcome));
    json_object_set_new(s, "detail", json_string(detail ? detail : ""));
}

/* Writes the step's ModelLifecycleEvent to the outbox (once: its id is the
 * run, the step and the type). */
static int emit(const run_conf_t *c, const json_t *doc, const char *type, const char *step,
                const char *reason, int64_t now_ms, char *err, size_t errlen)
{
    const char *run_id = jstr(doc, "run_id");
    char id[300];
    snprintf(id, sizeof(id), "%s.%s.%s", run_id, step, type);
    const json_t *cand = json_object_get(doc, "candidate");
    const json_t *base = json_object_get(doc, "baseline");
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "event_id", id, "model",
                          jstr(doc, "model"), "event_type", type, "step", step, "reason",
                          reason ? reason : "", "retrain_run_id", run_id, "specialist",
                          jstr(doc, "specialist"), "timestamp", (json_int_t)now_ms, "published", 0);
    const char *mr = jstr(json_object_get(doc, "mlflow"), "run_id");
    if (*mr) {
        json_object_set_new(e, "mlflow_run_id", json_string(mr));
    }
    if (*jstr(doc, "degradation_id")) {
        json_object_set_new(e, "degradation_id", json_string(jstr(doc, "degradation_id")));
    }
    if (*jstr(base, "version")) {
        json_object_set_new(e, "from_version", json_string(jstr(base, "version")));
    }
    if (*jstr(cand, "version")) {
        json_object_set_new(e, "to_version", json_string(jstr(cand, "version")));
    }
    json_t *m = json_object_get(cand, "metrics");
    json_object_set_new(e, "metrics", m ? json_deep_copy(m) : json_object());
    char *s = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    bson_error_t be;
    bson_t *b = s ? bson_new_from_json((const uint8_t *)s, -1, &be) : NULL;
    free(s);
    if (!b) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "event %s does not convert to BSON", id);
    }
    int rc = store_insert_once(c->store, OUTBOX_COLLECTION, id, b, NULL);
    bson_destroy(b);
    if (rc != 0) {
        hive_err_set(err, errlen, rc, "outbox %s: %s", id, store_last_error());
    }
    return rc;
}

static void model_name(const run_conf_t *c, const char *specialist, char *out, size_t len)
{
    snprintf(out, len, "%s-evaluator%s", specialist, c->mlflow_suffix ? c->mlflow_suffix : "");
}

/* ---- creation ------------------------------------------------------------- */

static int64_t cooldown_started(const run_conf_t *c, const char *specialist, char *run_id, size_t rlen,
                                int *rc)
{
    bson_t *doc = NULL;
    *rc = store_find_one(c->store, COOLDOWNS_COLLECTION, specialist, &doc);
    if (*rc == HIVE_ENOTFOUND) {
        *rc = 0;
        return 0;
    }
    if (*rc != 0) {
        return 0;
    }
    json_t *j = to_json(doc);
    bson_destroy(doc);
    int64_t t = jint(j, "last_started_ms");
    snprintf(run_id, rlen, "%s", jstr(j, "run_id"));
    json_decref(j);
    return t;
}

static json_t *new_doc(const run_conf_t *c, const run_request_t *r, const char *run_id, int64_t now_ms)
{
    char model[200];
    if (r->model && *r->model) {
        snprintf(model, sizeof(model), "%s", r->model);
    } else {
        model_name(c, r->specialist, model, sizeof(model));
    }
    json_t *opts =
        json_pack("{s:b, s:b, s:b, s:b, s:I, s:I, s:s}", "force", r->force, "skip_dataset_generation",
                  r->skip_dataset, "hyperparameter_tuning", r->hyperparameter_tuning, "promote_if_better",
                  r->promote_if_better, "min_samples", (json_int_t)r->min_samples, "training_window_days",
                  (json_int_t)r->training_window_days, "notification_channels",
                  r->channels ? r->channels : (c->notification_channels ? c->notification_channels : ""));
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:{}, s:I, s:I, s:n}", "run_id", run_id,
                            "specialist", r->specialist, "model", model, "trigger",
                            r->trigger ? r->trigger : "rest", "driver", r->driver ? r->driver : "service",
                            "options", opts, "status", "running", "step", "dataset", "steps", "created_ms",
                            (json_int_t)now_ms, "updated_ms", (json_int_t)now_ms, "error");
    if (r->degradation_id) {
        json_object_set_new(doc, "degradation_id", json_string(r->degradation_id));
    }
    return doc;
}

int run_create(const run_conf_t *c, const run_request_t *r, const char *run_id, int64_t now_ms,
               json_t **out_doc, bool *out_created, char *err, size_t errlen)
{
    if (out_created) {
        *out_created = false;
    }
    json_t *doc = NULL;
    int rc = load(c, RUNS_COLLECTION, run_id, &doc, err, errlen);
    if (rc == 0) {
        /* a replay: the run exists; make sure its cooldown was recorded */
        if (strcmp(jstr(doc, "status"), "skipped") != 0) {
            json_t *cd = json_pack("{s:I, s:s}", "last_started_ms", (json_int_t)jint(doc, "created_ms"),
                                   "run_id", run_id);
            rc = save(c, COOLDOWNS_COLLECTION, jstr(doc, "specialist"), cd, err, errlen);
            json_decref(cd);
        }
        goto out;
    }
    if (rc != HIVE_ENOTFOUND) {
        return rc;
    }
    char last_run[136] = "";
    int64_t last = cooldown_started(c, r->specialist, last_run, sizeof(last_run), &rc);
    if (rc != 0) {
        return hive_err_set(err, errlen, rc, "cooldowns: %s", store_last_error());
    }
    doc = new_doc(c, r, run_id, now_ms);
    char detail[300];
    bool cool = decide_in_cooldown(last, now_ms, c->cooldown_hours, r->force);
    if (cool) {
        snprintf(detail, sizeof(detail), "in cooldown: run %s started %.1f h ago, cooldown %.1f h", last_run,
                 (double)(now_ms - last) / 3600000.0, c->cooldown_hours);
        step_end(doc, "cooldown", "skipped", detail, now_ms);
        json_object_set_new(doc, "status", json_string("skipped"));
        json_object_set_new(doc, "step", json_string("done"));
        json_object_set_new(doc, "finished_ms", json_integer(now_ms));
        rc = emit(c, doc, "REJECTED", "cooldown", detail, now_ms, err, errlen);
    } else {
        snprintf(detail, sizeof(detail), "%s",
                 r->force ? "forced: cooldown overridden" : "no retrain within the cooldown");
        step_end(doc, "cooldown", "ok", detail, now_ms);
        rc = emit(c, doc, "RETRAIN_STARTED", "cooldown", detail, now_ms, err, errlen);
    }
    if (rc == 0) {
        /* the run first: a crash before the cooldown is written is mended by the replay above */
        bson_error_t be;
        char *s = json_dumps(doc, JSON_COMPACT);
        bson_t *b = s ? bson_new_from_json((const uint8_t *)s, -1, &be) : NULL;
        free(s);
        bool inserted = false;
        rc = b ? store_insert_once(c->store, RUNS_COLLECTION, run_id, b, &inserted) : HIVE_EINVAL;
        bson_destroy(b);
        if (rc != 0) {
            hive_err_set(err, errlen, rc, "retrain_runs %s: %s", run_id, store_last_error());
        } else if (out_created) {
            *out_created = inserted;
        }
    }
    if (rc == 0 && !cool) {
        json_t *cd = json_pack("{s:I, s:s}", "last_started_ms", (json_int_t)now_ms, "run_id", run_id);
        rc = save(c, COOLDOWNS_COLLECTION, r->specialist, cd, err, errlen);
        json_decref(cd);
        if (c->m_triggered) {
            metric_add(c->m_triggered, 1, r->specialist);
        }
    }
out:
    if (rc == 0 && out_doc) {
        *out_doc = doc;
    } else {
        json_decref(doc);
    }
    return rc;
}

int run_plan(const run_conf_t *c, const run_request_t *r, int64_t now_ms, json_t **out, char *err,
             size_t errlen)
{
    int rc = 0;
    char last_run[136] = "";
    int64_t last = cooldown_started(c, r->specialist, last_run, sizeof(last_run), &rc);
    if (rc != 0) {
        return hive_err_set(err, errlen, rc, "cooldowns: %s", store_last_error());
    }
    bool cool = decide_in_cooldown(last, now_ms, c->cooldown_hours, r->force);
    char model[200];
    model_name(c, r->specialist, model, sizeof(model));
    mlflow_api_t m = {.base = c->mlflow_uri, .timeout_ms = c->mlflow_timeout_ms};
    char version[64] = "", prod_run[64] = "";
    int arc = mlflow_api_alias(&m, model, "production", version, sizeof(version), prod_run, sizeof(prod_run));
    json_t *plan = json_pack(
        "{s:s, s:s, s:b, s:s, s:s, s:s, s:b, s:b}", "specialist", r->specialist, "model", model, "would_run",
        !cool, "cooldown",
        cool ? "in cooldown: nothing would run (use --force)" : "no retrain within the cooldown", "dataset",
        r->skip_dataset ? "the latest existing dataset" : "a new dataset", "training_command",
        c->training_command, "promote_if_better", r->promote_if_better, "dry_run", 1);
    json_object_set_new(plan, "production_version",
                        arc == 0 ? json_string(version)
                                 : json_string(arc == HIVE_ENOTFOUND ? "none" : m.err));
    if (cool) {
        json_object_set_new(plan, "cooldown_run", json_string(last_run));
    }
    *out = plan;
    return 0;
}

/* ---- the steps ------------------------------------------------------------ */

typedef struct {
    const run_conf_t *c;
    json_t *doc;
    int64_t now_ms;
    char *err;
    size_t errlen;
} ctx_t;

/* Ends the current step as failed and sends the run to notify; the run ends failed there. */
static int fail(ctx_t *x, const char *step, const char *why)
{
    step_end(x->doc, step, "failed", why, x->now_ms);
    json_object_set_new(x->doc, "error", json_string(why));
    json_object_set_new(x->doc, "step", json_string("notify"));
    return emit(x->c, x->doc, "RETRAIN_FAILED", step, why, x->now_ms, x->err, x->errlen);
}

static int step_dataset(ctx_t *x, bool *more)
{
    step_begin(x->doc, "dataset", x->now_ms);
    const json_t *o = json_object_get(x->doc, "options");
    parts_dataset_t d = {0};
    char why[512] = "";
    int rc = parts_dataset(x->c, jstr(x->doc, "specialist"), jstr(x->doc, "run_id"),
                           json_is_true(json_object_get(o, "skip_dataset_generation")), &d, why, sizeof(why));
    if (x->c->m_dataset_duration) {
        metric_observe(x->c->m_dataset_duration, d.duration_s, jstr(x->doc, "specialist"));
    }
    if (x->c->m_dataset_errors && (rc != 0 || d.llm_errors > 0)) {
        metric_add(x->c->m_dataset_errors, rc != 0 ? 1 : d.llm_errors, jstr(x->doc, "specialist"));
    }
    *more = true;
    if (rc != 0) {
        return fail(x, "dataset", why);
    }
    json_object_set_new(x->doc, "dataset",
                        json_pack("{s:s, s:i, s:i, s:i, s:i, s:f}", "path", d.path, "samples", d.samples,
                                  "from_llm", d.from_llm, "from_feedback", d.from_feedback, "llm_errors",
                                  d.llm_errors, "duration_s", d.duration_s));
    char detail[700];
    snprintf(detail, sizeof(detail), "%d samples (%d from feedback, %d LLM errors) in %s", d.samples,
             d.from_feedback, d.llm_errors, d.path);
    step_end(x->doc, "dataset", "ok", detail, x->now_ms);
    json_object_set_new(x->doc, "step", json_string("train"));
    return emit(x->c, x->doc, "RETRAIN_STARTED", "dataset", detail, x->now_ms, x->err, x->errlen);
}

static int step_train(ctx_t *x, bool *more)
{
    const run_conf_t *c = x->c;
    step_begin(x->doc, "train", x->now_ms);
    json_t *ml = json_object_get(x->doc, "mlflow");
    if (!ml) {
        ml = json_object();
        json_object_set_new(x->doc, "mlflow", ml);
    }
    mlflow_api_t m = {.base = c->mlflow_uri, .timeout_ms = c->mlflow_timeout_ms};
    const char *specialist = jstr(x->doc, "specialist");
    const char *run_id = jstr(x->doc, "run_id");
    int rc;
    if (!*jstr(ml, "run_id")) {
        /* the MLflow run first, stored before the job starts: a restart never
         * creates a second one */
        char exp_name[200], exp_id[64], mrun[64];
        snprintf(exp_name, sizeof(exp_name), "%s-specialist%s", specialist,
                 c->mlflow_suffix ? c->mlflow_suffix : "");
        if ((rc = mlflow_api_experiment(&m, exp_name, exp_id, sizeof(exp_id))) != 0 ||
            (rc = mlflow_api_create_run(&m, exp_id, run_id, run_id, mrun, sizeof(mrun))) != 0) {
            if (hive_err_transient(rc)) {
                return hive_err_set(x->err, x->errlen, rc, "%s", m.err);
            }
            *more = true;
            return fail(x, "train", m.err);
        }
        json_object_set_new(ml, "experiment_id", json_string(exp_id));
        json_object_set_new(ml, "run_id", json_string(mrun));
        if ((rc = save(c, RUNS_COLLECTION, run_id, x->doc, x->err, x->errlen)) != 0) {
            return rc;
        }
    }
    const json_t *o = json_object_get(x->doc, "options");
    const char *dataset = jstr(json_object_get(x->doc, "dataset"), "path");
    char min_samples[32], log_path[700];
    snprintf(min_samples, sizeof(min_samples), "%ld", (long)jint(o, "min_samples"));
    snprintf(log_path, sizeof(log_path), "%s/%s.train.log", c->dataset_dir, run_id);
    const char *args[12] = {"--specialist-type", specialist,         "--dataset",      dataset,
                            "--run-id",          jstr(ml, "run_id"), "--tracking-uri", c->mlflow_uri};
    size_t n = 8;
    if (jint(o, "min_samples") > 0) {
        args[n++] = "--min-samples";
        args[n++] = min_samples;
    }
    if (json_is_true(json_object_get(o, "hyperparameter_tuning"))) {
        args[n++] = "--hyperparameter-tuning";
    }
    char env_uri[600], env_suffix[200];
    snprintf(env_uri, sizeof(env_uri), "MLFLOW_TRACKING_URI=%s", c->mlflow_uri);
    snprintf(env_suffix, sizeof(env_suffix), "MLFLOW_NAME_SUFFIX=%s",
             c->mlflow_suffix ? c->mlflow_suffix : "");
    const char *env[] = {env_uri, env_suffix, NULL};
    pid_t pid = 0;
    char why[600];
    rc = trainer_spawn(c->training_command, args, n, env, log_path, &pid, why, sizeof(why));
    *more = true;
    if (rc != 0) {
        mlflow_api_fail_run(&m, jstr(ml, "run_id"), x->now_ms);
        return fail(x, "train", why);
    }
    json_object_set_new(ml, "trainer_pid", json_integer(pid));
    json_object_set_new(ml, "trainer_started_ms", json_integer(x->now_ms));
    json_object_set_new(ml, "trainer_log", json_string(log_path));
    char detail[800];
    snprintf(detail, sizeof(detail), "trainer pid %d on MLflow run %s (log %s)", (int)pid, jstr(ml, "run_id"),
             log_path);
    step_end(x->doc, "train", "ok", detail, x->now_ms);
    json_object_set_new(x->doc, "step", json_string("monitor"));
    return emit(c, x->doc, "RETRAIN_STARTED", "train", detail, x->now_ms, x->err, x->errlen);
}

static int step_monitor(ctx_t *x, bool *more)
{
    const run_conf_t *c = x->c;
    step_begin(x->doc, "monitor", x->now_ms);
    json_t *ml = json_object_get(x->doc, "mlflow");
    mlflow_api_t m = {.base = c->mlflow_uri, .timeout_ms = c->mlflow_timeout_ms};
    char status[32] = "";
    const char *mrun = jstr(ml, "run_id");
    int rc = mlflow_api_run(&m, mrun, status, sizeof(status), NULL);
    if (rc != 0 && rc != HIVE_ENOTFOUND) {
        return hive_err_set(x->err, x->errlen, rc, "%s", m.err); /* retried on the next pass */
    }
    json_object_set_new(ml, "status", json_string(rc == 0 ? status : "MISSING"));
    pid_t pid = (pid_t)jint(ml, "trainer_pid");
    int code = 0;
    trainer_state_t ts = strcmp(status, "RUNNING") == 0 || strcmp(status, "SCHEDULED") == 0
                             ? trainer_poll(pid, &code)
                             : TRAINER_GONE;
    char why[700];
    *more = true;
    if (strcmp(status, "FINISHED") == 0) {
        trainer_poll(pid, &code); /* reap it if it is ours */
        step_end(x->doc, "monitor", "ok", "MLflow run FINISHED", x->now_ms);
        json_object_set_new(x->doc, "step", json_string("compare"));
        return 0;
    }
    if (strcmp(status, "FAILED") == 0 || strcmp(status, "KILLED") == 0 || rc == HIVE_ENOTFOUND) {
        trainer_poll(pid, &code);
        snprintf(why, sizeof(why), "MLflow run %s ended %s; see %s", mrun, rc == 0 ? status : "MISSING",
                 jstr(ml, "trainer_log"));
        return fail(x, "monitor", why);
    }
    int64_t started = jint(ml, "trainer_started_ms");
    if (x->now_ms - started > c->training_timeout_s * 1000) {
        trainer_kill(pid);
        trainer_poll(pid, &code);
        mlflow_api_fail_run(&m, mrun, x->now_ms);
        snprintf(why, sizeof(why), "training timed out after %ld s; trainer killed, MLflow run %s failed",
                 c->training_timeout_s, mrun);
        return fail(x, "monitor", why);
    }
    if (ts == TRAINER_EXITED) {
        json_object_set_new(ml, "trainer_exit", json_integer(code));
    }
    if (ts != TRAINER_RUNNING) {
        /* the job is over but its run is not: give MLflow a grace, then fail */
        int64_t gone = jint(ml, "trainer_gone_ms");
        if (!gone) {
            json_object_set_new(ml, "trainer_gone_ms", json_integer(x->now_ms));
        } else if (x->now_ms - gone > c->trainer_grace_s * 1000) {
            mlflow_api_fail_run(&m, mrun, x->now_ms);
            snprintf(why, sizeof(why), "the trainer ended (exit %d) but MLflow run %s stayed %s; see %s",
                     (int)jint(ml, "trainer_exit"), mrun, status, jstr(ml, "trainer_log"));
            return fail(x, "monitor", why);
        }
    }
    *more = false; /* wait for the job */
    return 0;
}

static int step_compare(ctx_t *x, bool *more)
{
    const run_conf_t *c = x->c;
    step_begin(x->doc, "compare", x->now_ms);
    json_t *ml = json_object_get(x->doc, "mlflow");
    const char *mrun = jstr(ml, "run_id");
    mlflow_api_t m = {.base = c->mlflow_uri, .timeout_ms = c->mlflow_timeout_ms};
    char status[32], name[200], version[64];
    decide_metrics_t cand = {0};
    int rc = mlflow_api_run(&m, mrun, status, sizeof(status), &cand);
    if (rc == 0) {
        rc = mlflow_api_version_of_run(&m, mrun, name, sizeof(name), version, sizeof(version));
    }
    *more = true;
    if (rc != 0) {
        return hive_err_transient(rc) ? hive_err_set(x->err, x->errlen, rc, "%s", m.err)
                                      : fail(x, "compare", m.err);
    }
    json_object_set_new(x->doc, "model", json_string(name));
    json_object_set_new(
        x->doc, "candidate",
        json_pack("{s:s, s:s, s:o}", "model", name, "version", version, "metrics", metrics_json(&cand)));
    char base_version[64] = "", base_run[64] = "";
    decide_metrics_t base = {0};
    rc = mlflow_api_alias(&m, name, "production", base_version, sizeof(base_version), base_run,
                          sizeof(base_run));
    bool has_base = rc == 0;
    if (rc == 0 && *base_run) {
        rc = mlflow_api_run(&m, base_run, status, sizeof(status), &base);
    }
    if (rc != 0 && rc != HIVE_ENOTFOUND) {
        return hive_err_transient(rc) ? hive_err_set(x->err, x->errlen, rc, "%s", m.err)
                                      : fail(x, "compare", m.err);
    }
    /* a production version without an F1 counts as 0: any valid candidate beats it */
    double base_f1 = base.has_f1 ? base.f1 : 0.0;
    if (has_base) {
        json_object_set_new(x->doc, "baseline",
                            json_pack("{s:s, s:s, s:f, s:o}", "version", base_version, "run_id", base_run,
                                      "f1_score", base_f1, "metrics", metrics_json(&base)));
    }
    const json_t *o = json_object_get(x->doc, "options");
    decide_verdict_t v;
    decide_compare(&cand, has_base, base_f1, &c->th, json_is_true(json_object_get(o, "promote_if_better")),
                   &v);
    json_object_set_new(x->doc, "decision",
                        json_pack("{s:b, s:b, s:b, s:s}", "passes_minimums", v.passes_minimums,
                                  "beats_baseline", v.beats_baseline, "promote", v.promote, "reason",
                                  v.reason));
    step_end(x->doc, "compare", v.promote ? "better" : "not_better", v.reason, x->now_ms);
    json_object_set_new(x->doc, "step", json_string("promote"));
    return emit(c, x->doc, "REGISTERED", "compare", v.reason, x->now_ms, x->err, x->errlen);
}

static int step_promote(ctx_t *x, bool *more)
{
    const run_conf_t *c = x->c;
    step_begin(x->doc, "promote", x->now_ms);
    const json_t *cand = json_object_get(x->doc, "candidate");
    const json_t *dec = json_object_get(x->doc, "decision");
    *more = true;
    if (!json_is_true(json_object_get(dec, "promote"))) {
        step_end(x->doc, "promote", "rejected", jstr(dec, "reason"), x->now_ms);
        json_object_set_new(x->doc, "promoted", json_false());
        json_object_set_new(x->doc, "step", json_string("notify"));
        return emit(c, x->doc, "REJECTED", "promote", jstr(dec, "reason"), x->now_ms, x->err, x->errlen);
    }
    mlflow_api_t m = {.base = c->mlflow_uri, .timeout_ms = c->mlflow_timeout_ms};
    const char *name = jstr(cand, "model");
    const char *version = jstr(cand, "version");
    int rc = mlflow_api_set_alias(&m, name, "challenger", version);
    if (rc == 0) {
        rc = mlflow_api_set_alias(&m, name, "production", version);
    }
    if (rc != 0) {
        return hive_err_transient(rc) ? hive_err_set(x->err, x->errlen, rc, "%s", m.err)
                                      : fail(x, "promote", m.err);
    }
    char detail[400];
    const char *from = jstr(json_object_get(x->doc, "baseline"), "version");
    snprintf(detail, sizeof(detail), "%s version %s is production (was %s)", name, version,
             *from ? from : "none");
    step_end(x->doc, "promote", "promoted", detail, x->now_ms);
    json_object_set_new(x->doc, "promoted", json_true());
    json_object_set_new(x->doc, "step", json_string("notify"));
    return emit(c, x->doc, "PROMOTED", "promote", detail, x->now_ms, x->err, x->errlen);
}

static int step_notify(ctx_t *x, bool *more, bool *ended)
{
    const run_conf_t *c = x->c;
    step_begin(x->doc, "notify", x->now_ms);
    bool failed = !json_is_null(json_object_get(x->doc, "error")) && json_object_get(x->doc, "error");
    char detail[400] = "";
    parts_notify(c, x->doc, !failed, detail, sizeof(detail));
    step_end(x->doc, "notify", "ok", detail, x->now_ms);
    const char *final = strcmp(jstr(x->doc, "status"), "cancelled") == 0 ? "cancelled"
                        : failed                                         ? "failed"
                                                                         : "succeeded";
    json_object_set_new(x->doc, "status", json_string(final));
    json_object_set_new(x->doc, "step", json_string("done"));
    json_object_set_new(x->doc, "finished_ms", json_integer(x->now_ms));
    const char *specialist = jstr(x->doc, "specialist");
    double dur = (double)(x->now_ms - jint(x->doc, "created_ms")) / 1000.0;
    json_object_set_new(x->doc, "duration_s", json_real(dur));
    if (c->m_duration) {
        metric_observe(c->m_duration, dur, specialist);
    }
    if (c->m_success && !failed) {
        metric_add(c->m_success, 1, specialist);
    }
    if (c->m_events) {
        metric_add(c->m_events, 1, specialist, failed ? "false" : "true");
    }
    *more = false;
    *ended = true;
    const char *type = failed                                              ? "RETRAIN_FAILED"
                       : json_is_true(json_object_get(x->doc, "promoted")) ? "PROMOTED"
                                                                           : "REJECTED";
    char reason[600];
    snprintf(reason, sizeof(reason), "run %s: %s", final, detail);
    return emit(c, x->doc, type, "notify", reason, x->now_ms, x->err, x->errlen);
}

int run_advance(const run_conf_t *c, const char *run_id, int64_t now_ms, bool *out_more, bool *out_ended,
                char *err, size_t errlen)
{
    *out_more = false;
    if (out_ended) {
        *out_ended = false;
    }
    json_t *doc = NULL;
    int rc = load(c, RUNS_COLLECTION, run_id, &doc, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (!json_object_get(doc, "steps")) {
        json_object_set_new(doc, "steps", json_object());
    }
    ctx_t x = {c, doc, now_ms, err, errlen};
    bool more = false, ended = false;
    const char *status = jstr(doc, "status");
    int step = decide_step_parse(jstr(doc, "step"));
    if (strcmp(status, "running") != 0 || step == STEP_DONE) {
        ended = true;
    } else {
        switch (step) {
        case STEP_DATASET:
            rc = step_dataset(&x, &more);
            break;
        case STEP_TRAIN:
            rc = step_train(&x, &more);
            break;
        case STEP_MONITOR:
            rc = step_monitor(&x, &more);
            break;
        case STEP_COMPARE:
            rc = step_compare(&x, &more);
            break;
        case STEP_PROMOTE:
            rc = step_promote(&x, &more);
            break;
        case STEP_NOTIFY:
            rc = step_notify(&x, &more, &ended);
            break;
        default:
            rc = hive_err_set(err, errlen, HIVE_EINVAL, "run %s has an unknown step", run_id);
        }
        json_object_set_new(doc, "updated_ms", json_integer(now_ms));
        if (rc == 0) {
            rc = save(c, RUNS_COLLECTION, run_id, doc, err, errlen);
        }
    }
    json_decref(doc);
    if (rc == 0) {
        *out_more = more;
        if (out_ended) {
            *out_ended = ended;
        }
    }
    return rc;
}

/* ---- queries -------------------------------------------------------------- */

typedef struct {
    char (*ids)[136];
    size_t max, n;
} ids_t;

static int each_id(void *arg, const bson_t *doc)
{
    ids_t *a = arg;
    bson_iter_t it;
    if (a->n < a->max && bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(a->ids[a->n++], 136, "%s", bson_iter_utf8(&it, NULL));
    }
    return 0;
}

int run_active(const run_conf_t *c, const char *driver, char ids[][136], size_t max, size_t *out_n, char *err,
               size_t errlen)
{
    ids_t a = {ids, max, 0};
    bson_t *filter = BCON_NEW("status", BCON_UTF8("running"), "driver", BCON_UTF8(driver));
    bson_t *opts = BCON_NEW("sort", "{", "created_ms", BCON_INT32(1), "}", "limit", BCON_INT64((int64_t)max));
    int rc = store_find(c->store, RUNS_COLLECTION, filter, opts, each_id, &a);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc != 0) {
        return hive_err_set(err, errlen, rc, "retrain_runs: %s", store_last_error());
    }
    *out_n = a.n;
    return 0;
}

int run_cancel(const run_conf_t *c, const char *run_id, int64_t now_ms, char *err, size_t errlen)
{
    json_t *doc = NULL;
    int rc = load(c, RUNS_COLLECTION, run_id, &doc, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(jstr(doc, "status"), "running") != 0) {
        json_decref(doc);
        return hive_err_set(err, errlen, HIVE_ECONFLICT, "run %s has ended", run_id);
    }
    json_t *ml = json_object_get(doc, "mlflow");
    const char *step = jstr(doc, "step");
    if (jint(ml, "trainer_pid") > 0 && (strcmp(step, "monitor") == 0)) {
        int code = 0;
        pid_t pid = (pid_t)jint(ml, "trainer_pid");
        if (trainer_poll(pid, &code) == TRAINER_RUNNING) {
            trainer_kill(pid);
            trainer_poll(pid, &code);
        }
        mlflow_api_t m = {.base = c->mlflow_uri, .timeout_ms = c->mlflow_timeout_ms};
        mlflow_api_fail_run(&m, jstr(ml, "run_id"), now_ms);
    }
    if (!json_object_get(doc, "steps")) {
        json_object_set_new(doc, "steps", json_object());
    }
    step_end(doc, step, "cancelled", "cancelled by an operator", now_ms);
    json_object_set_new(doc, "error", json_string("cancelled"));
    json_object_set_new(doc, "status", json_string("cancelled"));
    json_object_set_new(doc, "step", json_string("done"));
    json_object_set_new(doc, "finished_ms", json_integer(now_ms));
    json_object_set_new(doc, "updated_ms", json_integer(now_ms));
    rc = emit(c, doc, "RETRAIN_FAILED", "cancel", "cancelled by an operator", now_ms, err, errlen);
    if (rc == 0) {
        rc = save(c, RUNS_COLLECTION, run_id, doc, err, errlen);
    }
    json_decref(doc);
    return rc;
}

static json_t *public_doc(json_t *j)
{
    json_object_del(j, "_id");
    return j;
}

int run_get(const run_conf_t *c, const char *run_id, json_t **out, char *err, size_t errlen)
{
    int rc = load(c, RUNS_COLLECTION, run_id, out, err, errlen);
    if (rc == 0) {
        public_doc(*out);
    }
    return rc;
}

static int each_doc(void *arg, const bson_t *doc)
{
    json_t *j = to_json(doc);
    if (j) {
        json_array_append_new(arg, public_doc(j));
    }
    return 0;
}

int run_list(const run_conf_t *c, const char *specialist, const char *status, long limit, json_t **out,
             char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    if (specialist) {
        BSON_APPEND_UTF8(&filter, "specialist", specialist);
    }
    if (status) {
        BSON_APPEND_UTF8(&filter, "status", status);
    }
    bson_t *opts =
        BCON_NEW("sort", "{", "created_ms", BCON_INT32(-1), "}", "limit", BCON_INT64((int64_t)limit));
    json_t *arr = json_array();
    int rc = store_find(c->store, RUNS_COLLECTION, &filter, opts, each_doc, arr);
    bson_destroy(&filter);
    bson_destroy(opts);
    if (rc != 0) {
        json_decref(arr);
        return hive_err_set(err, errlen, rc, "retrain_runs: %s", store_last_error());
    }
    *out = arr;
    return 0;
}

int run_outbox_pending(const run_conf_t *c, size_t max, json_t **out, char *err, size_t errlen)
{
    bson_t *filter = BCON_NEW("published", BCON_BOOL(false));
    bson_t *opts = BCON_NEW("sort", "{", "timestamp", BCON_INT32(1), "}", "limit", BCON_INT64((int64_t)max));
    json_t *arr = json_array();
    int rc = store_find(c->store, OUTBOX_COLLECTION, filter, opts, each_doc, arr);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc != 0) {
        json_decref(arr);
        return hive_err_set(err, errlen, rc, "lifecycle_outbox: %s", store_last_error());
    }
    *out = arr;
    return 0;
}

int run_outbox_mark(const run_conf_t *c, const char *event_id, char *err, size_t errlen)
{
    json_t *e = NULL;
    int rc = load(c, OUTBOX_COLLECTION, event_id, &e, err, errlen);
    if (rc == 0) {
        json_object_set_new(e, "published", json_true());
        rc = save(c, OUTBOX_COLLECTION, event_id, e, err, errlen);
        json_decref(e);
    }
    return rc;
}
