/* rest: the REST API over the retrain runs (routes in main.c, document in
 * openapi.json). Every store or MLflow call runs on a worker (offload.h). */
#include "app.h"

#include "hive_err.h"
#include "hive_status.h"
#include "offload.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { JOB_LIST, JOB_GET, JOB_START, JOB_CANCEL } job_kind_t;

typedef struct {
    app_t *app;
    http_req_t *req;
    job_kind_t kind;
    char run_id[136], specialist[32], status[16], channels[64];
    long limit;
    run_request_t r;
    bool dry_run;
    json_t *result;
    int rc;
    char err[512];
} job_t;

static void work(void *arg)
{
    job_t *j = arg;
    const run_conf_t *c = &j->app->rc;
    switch (j->kind) {
    case JOB_LIST:
        j->rc = run_list(c, *j->specialist ? j->specialist : NULL, *j->status ? j->status : NULL, j->limit,
                         &j->result, j->err, sizeof(j->err));
        break;
    case JOB_GET:
        j->rc = run_get(c, j->run_id, &j->result, j->err, sizeof(j->err));
        break;
    case JOB_START:
        if (j->dry_run) {
            j->rc = run_plan(c, &j->r, timeutil_wall_ms(), &j->result, j->err, sizeof(j->err));
        } else {
            bool created = false;
            j->rc =
                run_create(c, &j->r, j->run_id, timeutil_wall_ms(), NULL, &created, j->err, sizeof(j->err));
            if (j->rc == 0) {
                j->rc = run_get(c, j->run_id, &j->result, j->err, sizeof(j->err));
            }
        }
        break;
    case JOB_CANCEL:
        /* with the driver stopped: the run document has one writer at a time */
        pthread_mutex_lock(&j->app->drive_mu);
        j->rc = run_cancel(c, j->run_id, timeutil_wall_ms(), j->err, sizeof(j->err));
        if (j->rc == 0) {
            j->rc = run_get(c, j->run_id, &j->result, j->err, sizeof(j->err));
        }
        pthread_mutex_unlock(&j->app->drive_mu);
        break;
    }
}

static void done(void *arg, int status)
{
    job_t *j = arg;
    if (http_req_alive(j->req)) {
        if (status != 0) {
            http_respond_error(j->req, 503, NULL, "the request was cancelled: the service is stopping");
        } else if (j->rc == HIVE_ENOTFOUND) {
            http_respond_error(j->req, 404, "run_id", "no such run");
        } else if (j->rc == HIVE_ECONFLICT) {
            http_respond_error(j->req, 409, "run_id", j->err);
        } else if (j->rc != 0) {
            http_respond_error(j->req, 503, NULL, j->err);
        } else if (j->kind == JOB_LIST) {
            http_respond_json(j->req, 200, json_pack("{s:O}", "runs", j->result));
        } else {
            http_respond_json(j->req, j->kind == JOB_START && !j->dry_run ? 202 : 200,
                              json_incref(j->result));
        }
    }
    http_req_release(j->req);
    json_decref(j->result);
    atomic_fetch_sub(&j->app->pending, 1);
    free(j);
}

static void start_job(app_t *app, http_req_t *req, job_t *j)
{
    j->app = app;
    j->req = req;
    http_req_retain(req);
    atomic_fetch_add(&app->pending, 1);
    if (offload_run(service_loop(app->svc), work, done, j) != 0) {
        atomic_fetch_sub(&app->pending, 1);
        http_respond_error(req, 503, NULL, "cannot queue the request");
        http_req_release(req);
        free(j);
    }
}

static job_t *new_job(http_req_t *req, job_kind_t kind)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
    } else {
        j->kind = kind;
    }
    return j;
}

static bool run_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 128) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '.' || ch == ':')) {
            return false;
        }
    }
    return true;
}

void rest_list(void *ctx, http_req_t *req)
{
    const char *sp = http_req_query(req, "specialist_type");
    const char *st = http_req_query(req, "status");
    const char *lim = http_req_query(req, "limit");
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : 50;
    if (lim && (end == lim || *end != '\0' || limit < 1 || limit > 500)) {
        http_respond_error(req, 400, "limit", "limit must be an integer in [1, 500]");
        return;
    }
    if (sp && !run_specialist_known(sp)) {
        http_respond_error(req, 400, "specialist_type", "one of technical, safety, business, ethical, legal");
        return;
    }
    static const char *const statuses[] = {"running", "succeeded", "failed", "skipped", "cancelled"};
    bool ok = !st;
    for (size_t i = 0; st && i < 5; i++) {
        ok |= strcmp(st, statuses[i]) == 0;
    }
    if (!ok) {
        http_respond_error(req, 400, "status", "one of running, succeeded, failed, skipped, cancelled");
        return;
    }
    job_t *j = new_job(req, JOB_LIST);
    if (j) {
        snprintf(j->specialist, sizeof(j->specialist), "%s", sp ? sp : "");
        snprintf(j->status, sizeof(j->status), "%s", st ? st : "");
        j->limit = limit;
        start_job(ctx, req, j);
    }
}

void rest_get(void *ctx, http_req_t *req)
{
    const char *id = http_req_param(req, "run_id");
    if (!run_id_ok(id)) {
        http_respond_error(req, 404, "run_id", "no such run");
        return;
    }
    job_t *j = new_job(req, JOB_GET);
    if (j) {
        snprintf(j->run_id, sizeof(j->run_id), "%s", id);
        start_job(ctx, req, j);
    }
}

void rest_cancel(void *ctx, http_req_t *req)
{
    const char *id = http_req_param(req, "run_id");
    if (!run_id_ok(id)) {
        http_respond_error(req, 404, "run_id", "no such run");
        return;
    }
    job_t *j = new_job(req, JOB_CANCEL);
    if (j) {
        snprintf(j->run_id, sizeof(j->run_id), "%s", id);
        start_job(ctx, req, j);
    }
}

static int bad(char *field, size_t fl, char *msg, size_t ml, const char *f, const char *m)
{
    snprintf(field, fl, "%s", f);
    snprintf(msg, ml, "%s", m);
    return -1;
}

static int get_bool(json_t *body, const char *key, bool *out, char *field, size_t fl, char *msg, size_t ml)
{
    json_t *v = json_object_get(body, key);
    if (!v) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return bad(field, fl, msg, ml, key, "a boolean");
    }
    *out = json_is_true(v);
    return 0;
}

static int get_int(json_t *body, const char *key, long min, long max, long *out, char *field, size_t fl,
                   char *msg, size_t ml)
{
    json_t *v = json_object_get(body, key);
    if (!v) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char m[80];
        snprintf(m, sizeof(m), "an integer in [%ld, %ld]", min, max);
        return bad(field, fl, msg, ml, key, m);
    }
    *out = (long)json_integer_value(v);
    return 0;
}

int rest_parse_start(json_t *body, bool default_promote, run_request_t *r, bool *dry_run, char *field,
                     size_t fl, char *msg, size_t ml)
{
    static const char *const allowed[] = {"specialist_type",       "force",       "skip_dataset_generation",
                                          "hyperparameter_tuning", "min_samples", "training_window_days",
                                          "promote_if_better",     "dry_run",     "notification_channels"};
    memset(r, 0, sizeof(*r));
    *dry_run = false;
    r->promote_if_better = default_promote;
    if (!json_is_object(body)) {
        return bad(field, fl, msg, ml, "body", "a JSON object");
    }
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]) && !ok; i++) {
            ok = strcmp(key, allowed[i]) == 0;
        }
        if (!ok) {
            return bad(field, fl, msg, ml, key, "unknown field");
        }
    }
    const char *sp = json_string_value(json_object_get(body, "specialist_type"));
    if (!sp || !run_specialist_known(sp)) {
        return bad(field, fl, msg, ml, "specialist_type",
                   "one of technical, safety, business, ethical, legal");
    }
    r->specialist = sp;
    json_t *ch = json_object_get(body, "notification_channels");
    if (ch) {
        const char *s = json_string_value(ch);
        bool ok = s && app_channels_valid(s);
        if (!ok) {
            return bad(field, fl, msg, ml, "notification_channels",
                       "a comma-separated subset of slack,email, or \"\"");
        }
        r->channels = s;
    }
    if (get_bool(body, "force", &r->force, field, fl, msg, ml) ||
        get_bool(body, "skip_dataset_generation", &r->skip_dataset, field, fl, msg, ml) ||
        get_bool(body, "hyperparameter_tuning", &r->hyperparameter_tuning, field, fl, msg, ml) ||
        get_bool(body, "promote_if_better", &r->promote_if_better, field, fl, msg, ml) ||
        get_bool(body, "dry_run", dry_run, field, fl, msg, ml) ||
        get_int(body, "min_samples", 1, 10000000, &r->min_samples, field, fl, msg, ml) ||
        get_int(body, "training_window_days", 1, 3650, &r->training_window_days, field, fl, msg, ml)) {
        return -1;
    }
    return 0;
}

void rest_start(void *ctx, http_req_t *req)
{
    app_t *app = ctx;
    char err[256], field[64] = "", msg[160] = "";
    json_t *body = http_req_json(req, err, sizeof(err));
    if (!body) {
        http_respond_error(req, 400, "body", err);
        return;
    }
    job_t *j = new_job(req, JOB_START);
    if (!j) {
        return;
    }
    if (rest_parse_start(body, app->cfg->promote_if_better, &j->r, &j->dry_run, field, sizeof(field), msg,
                         sizeof(msg)) != 0) {
        http_respond_error(req, 400, field, msg);
        free(j);
        return;
    }
    /* the strings live in the job: the body is the request's */
    snprintf(j->specialist, sizeof(j->specialist), "%s", j->r.specialist);
    j->r.specialist = j->specialist;
    if (j->r.channels) {
        snprintf(j->channels, sizeof(j->channels), "%s", j->r.channels);
        j->r.channels = j->channels;
    }
    j->r.trigger = "rest";
    j->r.driver = "service";
    static atomic_uint seq;
    snprintf(j->run_id, sizeof(j->run_id), "rest-%s-%lld-%u", j->specialist, (long long)timeutil_wall_ms(),
             atomic_fetch_add(&seq, 1));
    start_job(app, req, j);
}
