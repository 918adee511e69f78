/* rest: JSON in and out over ops.h.
 *
 * A handler checks what JSON can tell (types, presence, query syntax), names
 * the field on a 400 at once, then hands the call to ops, which checks the
 * rest (enums, lengths, finiteness) and answers later. Each deferred request
 * is retained until its ops callback has answered it; the callback answers
 * only if the client is still there (http_respond_* are then no-ops anyway,
 * the check saves building a body nobody reads).
 */
#include "rest.h"

#include "hive_status.h"
#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi_json.h" /* generated from openapi.json: openapi_json[], openapi_json_len */

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 500
#define LIST_OFFSET_MAX 1000000000UL

/* The types a hypothesis can have: the four optimization types and NO_OP
 * (a decision to change nothing), as gRPC accepts them. */
static const char *const optimization_types[] = {"WEIGHT_RECALIBRATION", "SLO_ADJUSTMENT", "HEURISTIC_UPDATE",
                                                 "POLICY_CHANGE", "NO_OP"};

/* ---- JSON ------------------------------------------------------------------ */

/* A number, or null when it has none (JSON has no NaN). */
static json_t *number(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Every field of a hypothesis, the status by name. */
static json_t *hypothesis_json(const hypothesis_t *h)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:b, s:o, s:o, "
        "s:s, s:s, s:I, s:I}",
        "optimization_id", h->id, "insight_id", h->insight_id, "component", h->component, "problem",
        h->problem, "state_key", h->state_key, "action", h->action, "type", h->type, "policy", h->policy,
        "status", hyp_status_name(h->status), "q_value", number(h->q_value), "confidence",
        number(h->confidence), "risk", number(h->risk), "expected_improvement",
        number(h->expected_improvement), "propensity", number(h->propensity), "experiment_id",
        h->experiment_id, "has_result", h->has_result, "improvement",
        h->has_result ? number(h->improvement) : json_null(), "reward",
        h->has_result ? number(h->reward) : json_null(), "reason", h->reason, "rationale", h->rationale,
        "created_at_ms", (json_int_t)h->created_at_ms, "updated_at_ms", (json_int_t)h->updated_at_ms);
}

/* Answers `req` with a body built by json_pack, or 500 when it could not be
 * built (a string that is not UTF-8 in a stored document). */
static void respond_built(http_req_t *req, int status, json_t *body)
{
    if (!body) {
        http_respond_error(req, 500, NULL, "cannot render the response");
        return;
    }
    http_respond_json(req, status, body);
}

/* Answers an ops outcome with its HTTP status (hive_status.h). HIVE_EINVAL
 * messages start with the field they are about ("priority: ..."). */
static void respond_ops_error(http_req_t *req, int status, const char *message)
{
    char field[48] = "";
    int code = hive_status_http(status);
    if (status == HIVE_EINVAL) {
        const char *colon = strchr(message, ':');
        size_t n = colon ? (size_t)(colon - message) : 0;
        if (n > 0 && n < sizeof(field)) {
            memcpy(field, message, n);
            field[n] = '\0';
        }
    }
    if (code >= 500) {
        log_warn("operator request failed", "path", http_req_path(req), "error", message);
    }
    http_respond_error(req, code, field[0] ? field : NULL, message);
}

/* The call could not even be queued: answer now and drop the reference. */
static void refuse(http_req_t *req, int rc)
{
    http_respond_error(req, rc == HIVE_ENOMEM ? 503 : 500, NULL, "cannot start the operation");
    http_req_release(req);
}

/* ---- request bodies -------------------------------------------------------- */

/* The body as a JSON object (borrowed from `req`), or NULL after answering 400. */
static json_t *body_object(http_req_t *req)
{
    char err[200];
    json_t *body = http_req_json(req, err, sizeof(err));
    if (!body) {
        http_respond_error(req, 400, "body", err);
        return NULL;
    }
    if (!json_is_object(body)) {
        http_respond_error(req, 400, "body", "the body must be a JSON object");
        return NULL;
    }
    return body;
}

/* False after answering 400 naming the first member of `body` that is not in
 * `allowed` (NULL-terminated): the OpenAPI document says additionalProperties
 * is false, so an unknown field is an error, not something silently ignored. */
static bool only_fields(http_req_t *req, json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0) {
            i++;
        }
        if (!allowed[i]) {
            char msg[160];
            snprintf(msg, sizeof(msg), "%.64s: unknown field", key);
            http_respond_error(req, 400, key, msg);
            return false;
        }
    }
    return true;
}

/* Reads an optional string member; false after answering 400 for another type. */
static bool opt_string(http_req_t *req, json_t *body, const char *field, const char **out)
{
    json_t *v = json_object_get(body, field);
    *out = NULL;
    if (!v || json_is_null(v)) {
        return true;
    }
    if (!json_is_string(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s: must be a string", field);
        http_respond_error(req, 400, field, msg);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* Reads a required string member; false after answering 400. Whether the
 * text itself is acceptable is ops' call. */
static bool req_string(http_req_t *req, json_t *body, const char *field, const char **out)
{
    json_t *v = json_object_get(body, field);
    if (!json_is_string(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s: required, a string", field);
        http_respond_error(req, 400, field, msg);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* Reads a required number member; false after answering 400. */
static bool req_number(http_req_t *req, json_t *body, const char *field, double *out)
{
    json_t *v = json_object_get(body, field);
    if (!json_is_number(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s: required, a number", field);
        http_respond_error(req, 400, field, msg);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* ---- POST /api/v1/optimizations/trigger ------------------------------------ */

static void on_triggered(void *arg, int status, const char *message, const char *optimization_id,
                         const char *insight_id)
{
    http_req_t *req = arg;
    if (http_req_alive(req)) {
        if (status != 0) {
            respond_ops_error(req, status, message);
        } else {
            respond_built(req, 202,
                          json_pack("{s:s, s:s, s:s}", "optimization_id", optimization_id, "insight_id",
                                    insight_id, "status", "accepted"));
        }
    }
    http_req_release(req);
}

static void handle_trigger(void *ctx, http_req_t *req)
{
    json_t *body = body_object(req);
    ops_trigger_t t = {0};
    if (!body) {
        return;
    }
    static const char *const fields[] = {"component",      "problem",  "metric",      "current_value",
                                         "baseline_value", "priority", "description", NULL};
    if (!only_fields(req, body, fields) || !req_string(req, body, "component", &t.component) ||
        !req_string(req, body, "problem", &t.problem) || !opt_string(req, body, "metric", &t.metric) ||
        !req_number(req, body, "current_value", &t.current_value) ||
        !req_number(req, body, "baseline_value", &t.baseline_value) ||
        !opt_string(req, body, "priority", &t.priority) ||
        !opt_string(req, body, "description", &t.description)) {
        return;
    }
    http_req_retain(req);
    int rc = ops_trigger(ctx, &t, on_triggered, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

/* ---- GET /api/v1/optimizations --------------------------------------------- */

static void on_listed(void *arg, int status, const char *message, const hypothesis_t *items, size_t n,
                      size_t total)
{
    http_req_t *req = arg;
    if (http_req_alive(req)) {
        if (status != 0) {
            respond_ops_error(req, status, message);
        } else {
            json_t *arr = json_array();
            for (size_t i = 0; arr && i < n; i++) {
                json_t *item = hypothesis_json(&items[i]);
                if (!item || json_array_append_new(arr, item) != 0) {
                    json_decref(arr);
                    arr = NULL;
                }
            }
            size_t limit = LIST_LIMIT_DEFAULT, offset = 0;
            http_req_query_size(req, "limit", 1, LIST_LIMIT_MAX, &limit); /* checked before the call */
            http_req_query_size(req, "offset", 0, LIST_OFFSET_MAX, &offset);
            respond_built(req, 200,
                          arr ? json_pack("{s:o, s:I, s:I, s:I}", "items", arr, "total", (json_int_t)total,
                                          "limit", (json_int_t)limit, "offset", (json_int_t)offset)
                              : NULL);
        }
    }
    http_req_release(req);
}

static void handle_list(void *ctx, http_req_t *req)
{
    repo_filter_t f = {.type = http_req_query(req, "type"),
                       .component = http_req_query(req, "component"),
                       .status = http_req_query(req, "status"),
                       .limit = LIST_LIMIT_DEFAULT};
    hyp_status_t st;
    if (f.status && hyp_status_parse(f.status, &st) != 0) {
        http_respond_error(req, 400, "status",
                           "status: one of PROPOSED, AWAITING_APPROVAL, EXPERIMENTING, APPROVED, APPLIED, "
                           "REJECTED, ROLLED_BACK, FAILED, EXPIRED");
        return;
    }
    if (f.type) {
        size_t i = 0;
        while (i < sizeof(optimization_types) / sizeof(optimization_types[0]) &&
               strcmp(f.type, optimization_types[i]) != 0) {
            i++;
        }
        if (i == sizeof(optimization_types) / sizeof(optimization_types[0])) {
            http_respond_error(
                req, 400, "type",
                "type: one of WEIGHT_RECALIBRATION, SLO_ADJUSTMENT, HEURISTIC_UPDATE, POLICY_CHANGE, NO_OP");
            return;
        }
    }
    if (!http_req_query_size(req, "limit", 1, LIST_LIMIT_MAX, &f.limit) ||
        !http_req_query_size(req, "offset", 0, LIST_OFFSET_MAX, &f.offset)) {
        return;
    }
    http_req_retain(req);
    int rc = ops_list(ctx, &f, on_listed, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

/* ---- GET /api/v1/optimizations/{id} ---------------------------------------- */

static void on_got(void *arg, int status, const char *message, const hypothesis_t *h)
{
    http_req_t *req = arg;
    if (http_req_alive(req)) {
        if (status != 0) {
            respond_ops_error(req, status, message);
        } else {
            respond_built(req, 200, hypothesis_json(h));
        }
    }
    http_req_release(req);
}

static void handle_get(void *ctx, http_req_t *req)
{
    http_req_retain(req);
    int rc = ops_get(ctx, http_req_param(req, "id"), on_got, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

/* ---- POST /api/v1/optimizations/{id}/rollback, /approve, /reject ------------ */

static void answer_change(http_req_t *req, int status, const char *message, const hypothesis_t *h,
                          const char *decision, const char *state)
{
    if (http_req_alive(req)) {
        if (status != 0) {
            respond_ops_error(req, status, message);
        } else if (decision) {
            respond_built(req, 202,
                          json_pack("{s:s, s:s, s:s}", "optimization_id", h->id, "decision", decision,
                                    "status", state));
        } else {
            respond_built(req, 202, json_pack("{s:s, s:s}", "optimization_id", h->id, "status", state));
        }
    }
    http_req_release(req);
}

static void on_rollback(void *arg, int status, const char *message, const hypothesis_t *h)
{
    answer_change(arg, status, message, h, NULL, "rollback_requested");
}

static void on_approved(void *arg, int status, const char *message, const hypothesis_t *h)
{
    answer_change(arg, status, message, h, "APPROVED", "decision_submitted");
}

static void on_rejected(void *arg, int status, const char *message, const hypothesis_t *h)
{
    answer_change(arg, status, message, h, "REJECTED", "decision_submitted");
}

/* The optional {"reason": "..."} of a change (no body at all is fine);
 * false after answering 400. */
static bool change_reason(http_req_t *req, const char **out_reason)
{
    size_t len = 0;
    *out_reason = NULL;
    if (!http_req_body(req, &len) || len == 0) {
        return true;
    }
    json_t *body = body_object(req);
    static const char *const fields[] = {"reason", NULL};
    return body && only_fields(req, body, fields) && opt_string(req, body, "reason", out_reason);
}

static void handle_rollback(void *ctx, http_req_t *req)
{
    const char *reason;
    if (!change_reason(req, &reason)) {
        return;
    }
    http_req_retain(req);
    int rc = ops_rollback(ctx, http_req_param(req, "id"), reason, on_rollback, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

static void decide(ops_t *ops, http_req_t *req, bool approve)
{
    const char *reason;
    if (!change_reason(req, &reason)) {
        return;
    }
    http_req_retain(req);
    int rc =
        ops_decide(ops, http_req_param(req, "id"), approve, reason, approve ? on_approved : on_rejected, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

static void handle_approve(void *ctx, http_req_t *req)
{
    decide(ctx, req, true);
}

static void handle_reject(void *ctx, http_req_t *req)
{
    decide(ctx, req, false);
}

/* ---- GET /api/v1/optimizations/statistics/summary --------------------------- */

/* The statistics body; NULL when it cannot be built. */
static json_t *statistics_json(const ops_stats_t *st)
{
    json_t *by_status = json_object(), *by_type = json_object();
    if (!by_status || !by_type) {
        json_decref(by_status);
        json_decref(by_type);
        return NULL;
    }
    for (int i = 0; i < HYP_STATUS_COUNT; i++) {
        json_object_set_new(by_status, hyp_status_name((hyp_status_t)i),
                            json_integer((json_int_t)st->repo.by_status[i]));
    }
    size_t cap = sizeof(st->repo.by_type) / sizeof(st->repo.by_type[0]);
    for (size_t i = 0; i < st->repo.by_type_count && i < cap; i++) {
        json_object_set_new(by_type, st->repo.by_type[i].type,
                            json_integer((json_int_t)st->repo.by_type[i].n));
    }
    /* "o" steals by_status and by_type, also when the pack fails. */
    return json_pack("{s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:o}", "total",
                     (json_int_t)st->repo.total, "by_status", by_status, "by_type", by_type, "with_result",
                     (json_int_t)st->repo.with_result, "succeeded", (json_int_t)st->repo.succeeded,
                     "success_rate", number(st->repo.success_rate), "average_improvement",
                     number(st->repo.average_improvement), "rollbacks", (json_int_t)st->repo.rollbacks,
                     "application_failures", (json_int_t)st->repo.application_failures, "expired",
                     (json_int_t)st->repo.expired, "q_table_size", (json_int_t)st->q_table_size, "epsilon",
                     number(st->epsilon));
}

static void on_statistics(void *arg, int status, const char *message, const ops_stats_t *st)
{
    http_req_t *req = arg;
    if (http_req_alive(req)) {
        if (status != 0) {
            respond_ops_error(req, status, message);
        } else {
            respond_built(req, 200, statistics_json(st));
        }
    }
    http_req_release(req);
}

static void handle_statistics(void *ctx, http_req_t *req)
{
    http_req_retain(req);
    int rc = ops_statistics(ctx, on_statistics, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

/* ---- GET /api/v1/policy/evaluation ------------------------------------------ */

static json_t *evaluation_json(const ops_eval_t *ev)
{
    json_t *estimates = json_object();
    if (!estimates) {
        return NULL;
    }
    for (int t = 0; t < LEARN_EVAL_COUNT; t++) {
        const learn_ope_result_t *r = &ev->estimates[t];
        json_object_set_new(estimates, learn_eval_target_name((learn_eval_target_t)t),
                            json_pack("{s:o, s:o, s:o, s:o}", "ips", number(r->ips), "snips",
                                      number(r->snips), "effective_sample_size", number(r->ess), "max_weight",
                                      number(r->max_weight)));
    }
    return json_pack("{s:s, s:I, s:o}", "policy", ev->policy, "records", (json_int_t)ev->records, "estimates",
                     estimates);
}

static void on_evaluation(void *arg, int status, const char *message, const ops_eval_t *ev)
{
    http_req_t *req = arg;
    if (http_req_alive(req)) {
        if (status != 0) {
            respond_ops_error(req, status, message);
        } else {
            respond_built(req, 200, evaluation_json(ev));
        }
    }
    http_req_release(req);
}

static void handle_evaluation(void *ctx, http_req_t *req)
{
    http_req_retain(req);
    int rc = ops_evaluation(ctx, on_evaluation, req);
    if (rc != 0) {
        refuse(req, rc);
    }
}

/* ---- GET /openapi.json ----------------------------------------------------- */

static void handle_openapi(void *ctx, http_req_t *req)
{
    http_respond_text(req, 200, "application/json", (const char *)openapi_json, openapi_json_len);
}

/* ---- registration ----------------------------------------------------------- */

int rest_register(http_server_t *http, ops_t *ops)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
    } routes[] = {
        {"POST", "/api/v1/optimizations/trigger", handle_trigger},
        {"GET", "/api/v1/optimizations", handle_list},
        {"GET", "/api/v1/optimizations/statistics/summary", handle_statistics},
        {"GET", "/api/v1/optimizations/{id}", handle_get},
        {"POST", "/api/v1/optimizations/{id}/rollback", handle_rollback},
        {"POST", "/api/v1/optimizations/{id}/approve", handle_approve},
        {"POST", "/api/v1/optimizations/{id}/reject", handle_reject},
        {"GET", "/api/v1/policy/evaluation", handle_evaluation},
        {"GET", "/openapi.json", handle_openapi},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (http_route(http, routes[i].method, routes[i].pattern, routes[i].fn, ops) != 0) {
            log_error("cannot register a REST route", "method", routes[i].method, "pattern",
                      routes[i].pattern);
            return -1;
        }
    }
    return 0;
}
