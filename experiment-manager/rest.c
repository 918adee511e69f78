/* rest: see rest.h. */
#include "rest.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdoc.h"
#include "fnv.h"
#include "hive_err.h"
#include "hive_status.h"
#include "log.h"
#include "offload.h"
#include "timeutil.h"
#include "workflow.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 500
#define OFFSET_MAX 1000000

/* ---- validation of a submitted experiment ---------------------------------- */

/* [A-Za-z0-9][A-Za-z0-9._:/@+-]*, 1..max characters (hive.pattern "name"). */
static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !isalnum((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && !strchr("._:/@+-", s[i])) {
            return false;
        }
    }
    return true;
}

static int fail(char *field, size_t fl, char *msg, size_t ml, const char *f, const char *m)
{
    snprintf(field, fl, "%s", f);
    snprintf(msg, ml, "%s: %s", f, m);
    return HIVE_EINVAL;
}

static int name_field(json_t *body, const char *key, bool required, size_t max, char *dst, size_t cap,
                      char *field, size_t fl, char *msg, size_t ml)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) {
        return required ? fail(field, fl, msg, ml, key, "required") : 0;
    }
    char m[96];
    snprintf(m, sizeof(m), "a name of 1 to %zu characters [A-Za-z0-9._:/@+-]", max);
    if (!json_is_string(v) || !name_ok(json_string_value(v), max) || max >= cap) {
        return fail(field, fl, msg, ml, key, m);
    }
    snprintf(dst, cap, "%s", json_string_value(v));
    return 0;
}

static int criteria_field(json_t *body, const char *key, judge_criterion_t *out, size_t *n, char *field,
                          size_t fl, char *msg, size_t ml)
{
    json_t *arr = json_object_get(body, key);
    *n = 0;
    if (!arr) {
        return 0;
    }
    if (!json_is_array(arr) || json_array_size(arr) > JUDGE_MAX_CRITERIA) {
        return fail(field, fl, msg, ml, key, "an array of at most 16 {metric, operator, threshold}");
    }
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        char f[64];
        snprintf(f, sizeof(f), "%s[%zu]", key, i);
        json_t *metric = json_object_get(item, "metric"), *op = json_object_get(item, "operator"),
               *th = json_object_get(item, "threshold");
        if (!json_is_object(item) || json_object_size(item) != 3 || !json_is_string(metric) ||
            !name_ok(json_string_value(metric), JUDGE_NAME - 1) || !json_is_string(op) ||
            judge_op_parse(json_string_value(op), &out[i].op) != 0 || !json_is_number(th) ||
            !isfinite(json_number_value(th))) {
            return fail(field, fl, msg, ml, f,
                        "{metric: a name, operator: LT|LE|GT|GE, threshold: a number} and nothing else");
        }
        snprintf(out[i].metric, JUDGE_NAME, "%s", json_string_value(metric));
        out[i].threshold = json_number_value(th);
    }
    *n = json_array_size(arr);
    return 0;
}

/* Characters (code points) of a UTF-8 string, as JSON Schema's maxLength counts them. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

int rest_parse_submit(const runner_conf_t *conf, json_t *body, int64_t now_ms, exp_t *e, char *field,
                      size_t fl, char *msg, size_t ml)
{
    static const char *const allowed[] = {"experiment_id",    "optimization_id",
                                          "requested_by",     "experiment_type",
                                          "target",           "hypothesis",
                                          "parameters",       "candidate_version",
                                          "traffic_split",    "duration_seconds",
                                          "success_criteria", "guardrails",
                                          "metric_sources",   NULL};
    memset(e, 0, sizeof(*e));
    if (!json_is_object(body)) {
        return fail(field, fl, msg, ml, "body", "a JSON object");
    }
    const char *unknown = http_json_unknown_member(body, allowed);
    if (unknown) {
        return fail(field, fl, msg, ml, unknown, "unknown field");
    }
    const char *key;
    json_t *val;
    int rc;
    if ((rc = name_field(body, "experiment_id", false, 128, e->id, sizeof(e->id), field, fl, msg, ml)) ||
        (rc = name_field(body, "optimization_id", false, 128, e->optimization_id, sizeof(e->optimization_id),
                         field, fl, msg, ml)) ||
        (rc = name_field(body, "requested_by", false, 128, e->requested_by, sizeof(e->requested_by), field,
                         fl, msg, ml)) ||
        (rc = name_field(body, "target", true, 128, e->target, sizeof(e->target), field, fl, msg, ml)) ||
        (rc = name_field(body, "candidate_version", false, 64, e->candidate_version,
                         sizeof(e->candidate_version), field, fl, msg, ml))) {
        return rc;
    }
    json_t *type = json_object_get(body, "experiment_type");
    if (!json_is_string(type) || judge_type_parse(json_string_value(type), &e->def.type) != 0) {
        return fail(field, fl, msg, ml, "experiment_type", "one of AB_TEST, CANARY, SHADOW, BANDIT");
    }
    json_t *hyp = json_object_get(body, "hypothesis");
    if (hyp && (!json_is_string(hyp) || json_string_length(hyp) >= sizeof(e->hypothesis))) {
        return fail(field, fl, msg, ml, "hypothesis", "a string of at most 511 bytes");
    }
    snprintf(e->hypothesis, sizeof(e->hypothesis), "%s", hyp ? json_string_value(hyp) : "");
    json_t *split = json_object_get(body, "traffic_split");
    e->def.split = 0.1;
    if (split &&
        (!json_is_number(split) || !(json_number_value(split) > 0 && json_number_value(split) < 1))) {
        return fail(field, fl, msg, ml, "traffic_split", "a number strictly between 0 and 1");
    }
    if (split) {
        e->def.split = json_number_value(split);
    }
    json_t *dur = json_object_get(body, "duration_seconds");
    e->duration_s = 3600;
    if (dur) {
        /* JSON Schema counts a number with a zero fractional part (2.0) as an integer. */
        double d = json_is_number(dur) ? json_number_value(dur) : NAN;
        if (!(d >= 1 && d <= 31622400) || d != floor(d)) {
            return fail(field, fl, msg, ml, "duration_seconds", "an integer from 1 to 31622400");
        }
        e->duration_s = json_is_integer(dur) ? (long)json_integer_value(dur) : (long)d;
    }
    e->def.duration_ms = (int64_t)llround((double)e->duration_s * 1000.0 * conf->time_scale);
    json_t *params = json_object_get(body, "parameters");
    if (params) {
        if (!json_is_object(params) || json_object_size(params) > EXP_MAX_PARAMS) {
            return fail(field, fl, msg, ml, "parameters", "an object of at most 64 numbers by name");
        }
        json_object_foreach(params, key, val)
        {
            if (!name_ok(key, JUDGE_NAME - 1) || !repo_key_ok(key) || !json_is_number(val) ||
                !isfinite(json_number_value(val))) {
                char f[96];
                snprintf(f, sizeof(f), "parameters.%.80s", key);
                return fail(field, fl, msg, ml, f, "a number, keyed by a name [A-Za-z0-9_:/@+-] (no '.')");
            }
            snprintf(e->params[e->nparams].name, JUDGE_NAME, "%s", key);
            e->params[e->nparams++].value = json_number_value(val);
        }
    }
    if ((rc = criteria_field(body, "success_criteria", e->def.criteria, &e->def.ncriteria, field, fl, msg,
                             ml)) ||
        (rc = criteria_field(body, "guardrails", e->def.guardrails, &e->def.nguardrails, field, fl, msg,
                             ml))) {
        return rc;
    }
    json_t *sources = json_object_get(body, "metric_sources");
    if (sources && (!json_is_object(sources) || json_object_size(sources) > EXP_MAX_SOURCES)) {
        return fail(field, fl, msg, ml, "metric_sources", "an object of at most 4 sources by metric name");
    }
    json_object_foreach(sources, key, val)
    {
        char f[96];
        snprintf(f, sizeof(f), "metric_sources.%.70s", key);
        const char *provider = json_string_value(json_object_get(val, "provider"));
        json_t *query = json_object_get(val, "query");
        bool prom = provider && strcmp(provider, "prometheus") == 0;
        bool fields_ok = json_is_object(val) && json_object_size(val) == (size_t)(query ? 2 : 1);
        if (!name_ok(key, JUDGE_NAME - 1) || !repo_key_ok(key) || !fields_ok || !provider ||
            (!prom && strcmp(provider, "telemetry") != 0) || (prom != (query != NULL)) ||
            (query && (!json_is_string(query) || utf8_chars(json_string_value(query)) == 0 ||
                       utf8_chars(json_string_value(query)) > EXP_QUERY_CHARS))) {
            return fail(
                field, fl, msg, ml, f,
                "{\"provider\": \"telemetry\"} or {\"provider\": \"prometheus\", \"query\": PromQL of 1 "
                "to 127 characters, $variant for the variant}");
        }
        if (prom) {
            exp_source_t *s = &e->sources[e->nsources++];
            snprintf(s->metric, sizeof(s->metric), "%s", key);
            snprintf(s->query, sizeof(s->query), "%s", json_string_value(query));
        }
    }
    if (!e->requested_by[0]) {
        snprintf(e->requested_by, sizeof(e->requested_by), "api");
    }
    if (!e->id[0]) {
        char *dump = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
        uint64_t h = fnv1a64_str(FNV1A64_INIT, dump ? dump : "");
        free(dump);
        h = fnv1a64(h, &now_ms, sizeof(now_ms));
        snprintf(e->id, sizeof(e->id), "exp-%016llx", (unsigned long long)h);
    }
    e->requested_at_ms = now_ms;
    return 0;
}

/* ---- jobs on workers ----------------------------------------------------- */

typedef enum { JOB_SUBMIT, JOB_LIST, JOB_SUMMARY, JOB_GET, JOB_ABORT, JOB_RESULTS, JOB_WORKFLOW } job_kind_t;

typedef struct {
    rest_t *rest;
    http_req_t *req;
    job_kind_t kind;
    exp_t *exp;
    char id[EXP_ID], type[32], status[32];
    size_t limit, offset;
    int http;      /* status to answer */
    json_t *body;  /* answer */
    char msg[256]; /* error message when body is NULL */
    bool inserted;
} job_t;

/* The document as JSON, without the staged bytes. */
static json_t *doc_json(const bson_t *doc)
{
    bson_t clean = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(doc, &clean, "staged", "committed", NULL);
    size_t len;
    char *s = bson_as_relaxed_extended_json(&clean, &len);
    bson_destroy(&clean);
    json_t *j = s ? json_loadb(s, len, 0, NULL) : NULL;
    bson_free(s);
    if (j) {
        json_object_del(j, "_id");
    }
    return j;
}

typedef struct {
    job_t *job;
    size_t total;
    json_t *items;
    json_t *by_status, *by_type;
    double improvement_sum;
    size_t finished, accepted;
} list_t;

static int each_listed(void *arg, const bson_t *doc)
{
    list_t *l = arg;
    if (l->items) {
        if (l->total >= l->job->offset && l->total < l->job->offset + l->job->limit) {
            json_t *j = doc_json(doc);
            if (j) {
                json_object_del(j, "intervals");
                json_array_append_new(l->items, j);
            }
        }
    } else {
        const char *st = bdoc_str(doc, "status"), *ty = bdoc_str(doc, "type");
        json_t *c = json_object_get(l->by_status, st ? st : "?");
        json_object_set_new(l->by_status, st ? st : "?", json_integer(c ? json_integer_value(c) + 1 : 1));
        c = json_object_get(l->by_type, ty ? ty : "?");
        json_object_set_new(l->by_type, ty ? ty : "?", json_integer(c ? json_integer_value(c) + 1 : 1));
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "result") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_iter_t r;
            l->finished++;
            if (bson_iter_recurse(&it, &r) && bson_iter_find(&r, "decision") &&
                strcmp(bson_iter_utf8(&r, NULL), "ACCEPT") == 0) {
                l->accepted++;
            }
            if (bson_iter_recurse(&it, &r) && bson_iter_find(&r, "improvement")) {
                l->improvement_sum += bson_iter_as_double(&r);
            }
        }
    }
    l->total++;
    return 0;
}

static int each_interval(void *arg, const bson_t *doc)
{
    json_t *j = doc_json(doc);
    if (j) {
        json_array_append_new(arg, j);
    }
    return 0;
}

/* A document the store refuses on a write (HIVE_EREJECTED) is the request's
 * fault: 422. hive_status maps it to 500 for every service because elsewhere
 * it also means a refused Redis command. */
static void answer_store_error(job_t *j, int rc)
{
    j->http =
        rc == HIVE_EREJECTED && (j->kind == JOB_SUBMIT || j->kind == JOB_ABORT) ? 422 : hive_status_http(rc);
    snprintf(j->msg, sizeof(j->msg), "store: %s", hive_strerror(rc));
}

static void work(void *arg)
{
    job_t *j = arg;
    store_t *s = j->rest->store;
    bson_t *doc = NULL;
    int rc = 0;
    switch (j->kind) {
    case JOB_SUBMIT:
        rc = repo_create(s, j->exp, timeutil_wall_ms(), &j->inserted);
        if (rc == 0) {
            j->http = j->inserted ? 201 : 200;
            j->body = json_pack("{s:s, s:s, s:b}", "experiment_id", j->exp->id, "status", "RUNNING",
                                "created", j->inserted);
        }
        break;
    case JOB_LIST:
    case JOB_SUMMARY: {
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
        if (j->type[0]) {
            BSON_APPEND_UTF8(&filter, "type", j->type);
        }
        if (j->status[0]) {
            BSON_APPEND_UTF8(&filter, "status", j->status);
        }
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_at", -1);
        bson_append_document_end(&opts, &sort);
        list_t l = {.job = j};
        if (j->kind == JOB_LIST) {
            l.items = json_array();
        } else {
            l.by_status = json_object();
            l.by_type = json_object();
        }
        rc = store_find(s, "experiments", &filter, &opts, each_listed, &l);
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (rc == 0 && j->kind == JOB_LIST) {
            j->http = 200;
            j->body = json_pack("{s:o, s:I, s:I, s:I}", "items", l.items, "total", (json_int_t)l.total,
                                "limit", (json_int_t)j->limit, "offset", (json_int_t)j->offset);
            l.items = NULL;
        } else if (rc == 0) {
            j->http = 200;
            j->body = json_pack("{s:I, s:o, s:o, s:I, s:I, s:o}", "total", (json_int_t)l.total, "by_status",
                                l.by_status, "by_type", l.by_type, "finished", (json_int_t)l.finished,
                                "accepted", (json_int_t)l.accepted, "average_improvement",
                                l.finished ? json_real(l.improvement_sum / (double)l.finished) : json_null());
            l.by_status = l.by_type = NULL;
        }
        json_decref(l.items);
        json_decref(l.by_status);
        json_decref(l.by_type);
        break;
    }
    case JOB_GET:
    case JOB_ABORT:
    case JOB_RESULTS:
    case JOB_WORKFLOW:
        rc = store_find_one(s, "experiments", j->id, &doc);
        if (rc == HIVE_ENOTFOUND) {
            j->http = 404;
            snprintf(j->msg, sizeof(j->msg), "no experiment %s", j->id);
            return;
        }
        if (rc != 0) {
            break;
        }
        if (j->kind == JOB_GET) {
            j->http = 200;
            j->body = doc_json(doc);
        } else if (j->kind == JOB_WORKFLOW) {
            const char *target = bdoc_str(doc, "target");
            workflow_spec_t spec = {.id = j->id,
                                    .type = bdoc_str(doc, "type"),
                                    .target = target ? target : "",
                                    .traffic_split = bdoc_num(doc, "traffic_split"),
                                    .duration_s = (long)bdoc_num(doc, "duration_seconds"),
                                    .interval_s = j->rest->interval_s,
                                    .manager_url = j->rest->manager_url};
            j->http = 200;
            j->body = spec.type ? workflow_render(&spec) : NULL;
        } else if (j->kind == JOB_ABORT) {
            const char *status = bdoc_str(doc, "status");
            if (status && strcmp(status, "DONE") == 0) {
                j->http = 409;
                snprintf(j->msg, sizeof(j->msg), "experiment %s has already finished", j->id);
            } else if ((rc = repo_abort(s, j->id, timeutil_wall_ms())) == 0) {
                j->http = 202;
                j->body = json_pack("{s:s, s:s}", "experiment_id", j->id, "status", "ABORT_REQUESTED");
            }
        } else {
            json_t *d = doc_json(doc), *intervals = json_array();
            bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
            BSON_APPEND_UTF8(&filter, "experiment_id", j->id);
            BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
            BSON_APPEND_INT32(&sort, "slot", 1);
            bson_append_document_end(&opts, &sort);
            rc = store_find(s, "intervals", &filter, &opts, each_interval, intervals);
            bson_destroy(&filter);
            bson_destroy(&opts);
            if (rc == 0 && d) {
                json_t *an = json_object_get(d, "analysis"), *res = json_object_get(d, "result");
                j->http = 200;
                j->body = json_pack("{s:s, s:O?, s:O?, s:O?, s:O}", "experiment_id", j->id, "status",
                                    json_object_get(d, "status"), "analysis", an, "result", res, "intervals",
                                    intervals);
            }
            json_decref(d);
            json_decref(intervals);
        }
        bson_destroy(doc);
        break;
    }
    if (rc != 0) {
        json_decref(j->body);
        j->body = NULL;
        answer_store_error(j, rc);
    } else if (!j->body && j->http < 300) {
        j->http = 500;
        snprintf(j->msg, sizeof(j->msg), "cannot render the response");
    }
}

static void done(void *arg, int status)
{
    job_t *j = arg;
    j->rest->pending--;
    if (http_req_alive(j->req)) {
        if (status != 0) {
            http_respond_error(j->req, 503, NULL, "shutting down");
        } else if (j->body) {
            http_respond_json(j->req, j->http, j->body);
            j->body = NULL;
        } else {
            http_respond_error(j->req, j->http, NULL, j->msg);
        }
    }
    if (status == 0 && j->kind == JOB_SUBMIT && j->inserted) {
        runner_count_submitted(j->rest->runner, j->exp->def.type);
        log_info("experiment submitted", "experiment_id", j->exp->id, "type",
                 judge_type_name(j->exp->def.type));
    }
    json_decref(j->body);
    http_req_release(j->req);
    free(j->exp);
    free(j);
}

static void start(rest_t *rest, http_req_t *req, job_t *j)
{
    j->rest = rest;
    j->req = req;
    http_req_retain(req);
    if (offload_run(rest->loop, work, done, j) != 0) {
        http_respond_error(req, 503, NULL, "cannot queue the request");
        http_req_release(req);
        free(j->exp);
        free(j);
        return;
    }
    rest->pending++;
}

static job_t *new_job(http_req_t *req, job_kind_t kind)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
        return NULL;
    }
    j->kind = kind;
    return j;
}

/* ---- routes -------------------------------------------------------------- */

void rest_submit(void *ctx, http_req_t *req)
{
    rest_t *rest = ctx;
    char err[200], field[96], msg[256];
    json_t *body = http_req_json(req, err, sizeof(err));
    if (!body) {
        http_respond_error(req, 400, "body", err);
        return;
    }
    job_t *j = new_job(req, JOB_SUBMIT);
    if (!j) {
        return;
    }
    if (!(j->exp = malloc(sizeof(*j->exp)))) {
        free(j);
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    if (rest_parse_submit(rest->conf, body, timeutil_wall_ms(), j->exp, field, sizeof(field), msg,
                          sizeof(msg)) != 0) {
        http_respond_error(req, 400, field, msg);
        free(j->exp);
        free(j);
        return;
    }
    start(rest, req, j);
}

static void list_or_summary(rest_t *rest, http_req_t *req, job_kind_t kind)
{
    const char *type = http_req_query(req, "type"), *status = http_req_query(req, "status");
    judge_type_t t;
    if (type && judge_type_parse(type, &t) != 0) {
        http_respond_error(req, 400, "type", "type: one of AB_TEST, CANARY, SHADOW, BANDIT");
        return;
    }
    if (status && strcmp(status, "RUNNING") != 0 && strcmp(status, "PAUSED") != 0 &&
        strcmp(status, "DONE") != 0) {
        http_respond_error(req, 400, "status", "status: one of RUNNING, PAUSED, DONE");
        return;
    }
    size_t limit = LIMIT_DEFAULT, offset = 0;
    if (!http_req_query_size(req, "limit", 1, LIMIT_MAX, &limit) ||
        !http_req_query_size(req, "offset", 0, OFFSET_MAX, &offset)) {
        return;
    }
    job_t *j = new_job(req, kind);
    if (!j) {
        return;
    }
    snprintf(j->type, sizeof(j->type), "%s", type ? type : "");
    snprintf(j->status, sizeof(j->status), "%s", status ? status : "");
    j->limit = limit;
    j->offset = offset;
    start(rest, req, j);
}

void rest_list(void *ctx, http_req_t *req)
{
    list_or_summary(ctx, req, JOB_LIST);
}

void rest_summary(void *ctx, http_req_t *req)
{
    list_or_summary(ctx, req, JOB_SUMMARY);
}

static void by_id(rest_t *rest, http_req_t *req, job_kind_t kind)
{
    const char *id = http_req_param(req, "id");
    if (!id || !name_ok(id, 128)) {
        http_respond_error(req, 400, "id", "id: a name of 1 to 128 characters [A-Za-z0-9._:/@+-]");
        return;
    }
    job_t *j = new_job(req, kind);
    if (!j) {
        return;
    }
    snprintf(j->id, sizeof(j->id), "%s", id);
    start(rest, req, j);
}

void rest_get(void *ctx, http_req_t *req)
{
    by_id(ctx, req, JOB_GET);
}

void rest_abort(void *ctx, http_req_t *req)
{
    by_id(ctx, req, JOB_ABORT);
}

void rest_results(void *ctx, http_req_t *req)
{
    by_id(ctx, req, JOB_RESULTS);
}

void rest_workflow(void *ctx, http_req_t *req)
{
    by_id(ctx, req, JOB_WORKFLOW);
}

int rest_register(http_server_t *http, rest_t *rest)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
    } routes[] = {
        {"POST", "/api/v1/experiments/submit", rest_submit},
        {"GET", "/api/v1/experiments", rest_list},
        {"GET", "/api/v1/experiments/statistics/summary", rest_summary},
        {"GET", "/api/v1/experiments/{id}", rest_get},
        {"POST", "/api/v1/experiments/{id}/abort", rest_abort},
        {"GET", "/api/v1/experiments/{id}/results", rest_results},
        {"GET", "/api/v1/experiments/{id}/workflow", rest_workflow},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (http_route(http, routes[i].method, routes[i].pattern, routes[i].fn, rest) != 0) {
            return -1;
        }
    }
    return 0;
}
