#include "rpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_pb.h"
#include "hive_err.h"
#include "hive_status.h"
#include "hypothesis.h"
#include "learn_action.h"
#include "log.h"
#include "optimizer.pb-c.h"

typedef Neuralhive__Optimizer__V1__OptimizationInfo info_t;

struct rpc_s {
    ops_t *ops;
    size_t nchecks;
    struct {
        char name[32];
        rpc_check_fn fn;
        void *ctx;
    } checks[RPC_MAX_CHECKS];
};

/* A call waiting for its ops callback. It holds a reference on the call and
 * a copy of what the answer needs from the request (the request itself is
 * gone by then): the optimization id, or the component of a trigger. It
 * never points at the rpc_t, so the service may be freed while answers are
 * still owed. */
typedef struct {
    grpc_call_t *call;
    char key[]; /* NUL-terminated */
} pending_t;

/* ---- outcomes ------------------------------------------------------------ */

/* Finishes `call` with the status for `outcome` and ops's `message`, or a
 * message of our own when ops gave none. `id` (may be NULL) names the
 * optimization in that message. Failures the client cannot fix are logged. */
static void finish_error(grpc_call_t *call, int outcome, const char *message, const char *id)
{
    int status = hive_status_grpc(outcome);
    char own[160];
    if (!message || !*message) {
        switch (outcome) {
        case HIVE_ENOTFOUND:
            snprintf(own, sizeof(own), "optimization %s not found", id && *id ? id : "(none)");
            break;
        case HIVE_ECONFLICT:
            snprintf(own, sizeof(own), "the status of optimization %s does not allow it",
                     id && *id ? id : "(none)");
            break;
        case HIVE_EDELIVERY:
            snprintf(own, sizeof(own), "the record could not be delivered to Kafka");
            break;
        default:
            snprintf(own, sizeof(own), "%s", hive_strerror(outcome));
            break;
        }
        message = own;
    }
    if (status == GRPC_STATUS_INTERNAL || status == GRPC_STATUS_UNAVAILABLE) {
        log_warn("gRPC call failed", "method", grpc_call_method(call), "code", grpc_status_name(status),
                 "error", message);
    }
    grpc_call_finish(call, status, message);
}

/* ---- messages ------------------------------------------------------------ */

/* Every field of `h` into `info`. The strings are borrowed from `h`. */
static void info_from_hypothesis(info_t *info, const hypothesis_t *h)
{
    neuralhive__optimizer__v1__optimization_info__init(info);
    info->optimization_id = (char *)h->id;
    info->optimization_type = (char *)h->type;
    info->component = (char *)h->component;
    info->status = (char *)hyp_status_name(h->status);
    info->action = (char *)h->action;
    info->state_key = (char *)h->state_key;
    info->insight_id = (char *)h->insight_id;
    info->q_value = h->q_value;
    info->confidence = h->confidence;
    info->risk = h->risk;
    info->expected_improvement = h->expected_improvement;
    info->propensity = h->propensity;
    info->policy = (char *)h->policy;
    info->experiment_id = (char *)h->experiment_id;
    info->reward = h->has_result ? h->reward : 0.0;
    info->created_at_ms = h->created_at_ms;
    info->updated_at_ms = h->updated_at_ms;
    info->rationale = (char *)h->rationale;
}

/* ---- deferred answers ---------------------------------------------------- */

/* Retains `call` for an ops callback. Returns NULL (call finished
 * RESOURCE_EXHAUSTED, not retained) when out of memory. */
static pending_t *pending_new(grpc_call_t *call, const char *key)
{
    size_t n = strlen(key);
    pending_t *p = malloc(sizeof(*p) + n + 1);
    if (!p) {
        grpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    memcpy(p->key, key, n + 1);
    p->call = call;
    grpc_call_retain(call);
    return p;
}

static void pending_free(pending_t *p)
{
    grpc_call_release(p->call);
    free(p);
}

/* An ops_* call that returned non-zero: its callback will never come, so
 * answer now (still inside the handler) and drop the reference. */
static void pending_failed(pending_t *p, int rc)
{
    finish_error(p->call, rc, NULL, p->key);
    pending_free(p);
}

/* The start of every ops callback: true when the outcome is a result to
 * send. Otherwise the call is settled here (answered with the error, unless
 * the client has gone) and `p` freed. */
static bool pending_take(pending_t *p, int outcome, const char *message, bool have_result)
{
    bool alive = grpc_call_alive(p->call);
    if (alive && outcome == 0 && have_result) {
        return true;
    }
    if (alive) {
        finish_error(p->call, outcome ? outcome : HIVE_ESERVER, message, p->key);
    }
    pending_free(p);
    return false;
}

/* ---- TriggerOptimization ------------------------------------------------- */

/* proto3 strings are never absent, only empty: empty means "not given". */
static const char *given(const char *s)
{
    return s && *s ? s : NULL;
}

static void on_triggered(void *arg, int status, const char *message, const char *optimization_id,
                         const char *insight_id)
{
    pending_t *p = arg;
    if (!pending_take(p, status, message, optimization_id != NULL)) {
        return;
    }
    /* The engine has not seen the insight yet: only what is known now. */
    info_t info;
    neuralhive__optimizer__v1__optimization_info__init(&info);
    info.optimization_id = (char *)optimization_id;
    info.insight_id = (char *)(insight_id ? insight_id : "");
    info.component = p->key;
    info.status = (char *)hyp_status_name(HYP_PROPOSED);
    Neuralhive__Optimizer__V1__TriggerOptimizationResponse out =
        NEURALHIVE__OPTIMIZER__V1__TRIGGER_OPTIMIZATION_RESPONSE__INIT;
    out.optimization = &info;
    grpc_pb_reply(p->call, &out.base);
    pending_free(p);
}

static void trigger(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    rpc_t *r = ctx;
    Neuralhive__Optimizer__V1__TriggerOptimizationRequest *in = (void *)grpc_pb_decode(
        call, &neuralhive__optimizer__v1__trigger_optimization_request__descriptor, req, len);
    if (!in) {
        return;
    }
    const ops_trigger_t t = {
        .component = given(in->component),
        .problem = given(in->problem),
        .metric = given(in->metric),
        .current_value = in->current_value,
        .baseline_value = in->baseline_value,
        .priority = given(in->priority),
        .description = given(in->description),
    };
    pending_t *p = pending_new(call, in->component);
    if (p) {
        int rc = ops_trigger(r->ops, &t, on_triggered, p);
        if (rc != 0) {
            pending_failed(p, rc);
        }
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- GetOptimizationStatus, RollbackOptimization ------------------------- */

/* Answers `out`, a response whose one field `*slot` is the optimization. */
static void reply_optimization(pending_t *p, const hypothesis_t *h, ProtobufCMessage *out, info_t **slot)
{
    info_t info;
    info_from_hypothesis(&info, h);
    *slot = &info;
    grpc_pb_reply(p->call, out);
    pending_free(p);
}

static void on_got(void *arg, int status, const char *message, const hypothesis_t *h)
{
    pending_t *p = arg;
    if (pending_take(p, status, message, h != NULL)) {
        Neuralhive__Optimizer__V1__GetOptimizationStatusResponse out =
            NEURALHIVE__OPTIMIZER__V1__GET_OPTIMIZATION_STATUS_RESPONSE__INIT;
        reply_optimization(p, h, &out.base, &out.optimization);
    }
}

static void get_status(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    rpc_t *r = ctx;
    Neuralhive__Optimizer__V1__GetOptimizationStatusRequest *in = (void *)grpc_pb_decode(
        call, &neuralhive__optimizer__v1__get_optimization_status_request__descriptor, req, len);
    if (!in) {
        return;
    }
    if (!*in->optimization_id) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "optimization_id is required");
    } else {
        pending_t *p = pending_new(call, in->optimization_id);
        if (p) {
            int rc = ops_get(r->ops, in->optimization_id, on_got, p);
            if (rc != 0) {
                pending_failed(p, rc);
            }
        }
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void on_rolled_back(void *arg, int status, const char *message, const hypothesis_t *h)
{
    pending_t *p = arg;
    if (pending_take(p, status, message, h != NULL)) {
        Neuralhive__Optimizer__V1__RollbackOptimizationResponse out =
            NEURALHIVE__OPTIMIZER__V1__ROLLBACK_OPTIMIZATION_RESPONSE__INIT;
        reply_optimization(p, h, &out.base, &out.optimization);
    }
}

static void rollback(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    rpc_t *r = ctx;
    Neuralhive__Optimizer__V1__RollbackOptimizationRequest *in = (void *)grpc_pb_decode(
        call, &neuralhive__optimizer__v1__rollback_optimization_request__descriptor, req, len);
    if (!in) {
        return;
    }
    if (!*in->optimization_id) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "optimization_id is required");
    } else {
        pending_t *p = pending_new(call, in->optimization_id);
        if (p) {
            int rc = ops_rollback(r->ops, in->optimization_id, given(in->reason), on_rolled_back, p);
            if (rc != 0) {
                pending_failed(p, rc);
            }
        }
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- ListOptimizations --------------------------------------------------- */

#define LIST_MAX 500 /* repo_hyp_list's cap */

static void on_listed(void *arg, int status, const char *message, const hypothesis_t *items, size_t n,
                      size_t total)
{
    (void)total; /* gRPC trailers carry no custom metadata here; a client pages until a short page */
    pending_t *p = arg;
    if (!pending_take(p, status, message, n == 0 || items != NULL)) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        info_t info;
        info_from_hypothesis(&info, &items[i]);
        if (grpc_pb_send(p->call, &info.base) != 0) {
            grpc_call_finish(p->call, GRPC_STATUS_INTERNAL, "cannot send the response"); /* no-op when gone */
            pending_free(p);
            return;
        }
    }
    grpc_call_finish(p->call, GRPC_STATUS_OK, NULL);
    pending_free(p);
}

static bool known_type(const char *type)
{
    for (action_type_t t = ACTION_NO_OP; t <= ACTION_POLICY_CHANGE; t++) {
        if (strcmp(type, learn_action_type_name(t)) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks the filters that ops would otherwise take as "matches nothing", so
 * that a typo is an error rather than an empty list. Writes the reason and
 * returns false when one is bad. */
typedef Neuralhive__Optimizer__V1__ListOptimizationsRequest list_request_t;

static bool valid_filters(const list_request_t *in, char *why, size_t cap)
{
    hyp_status_t st = HYP_PROPOSED;
    if (*in->status && hyp_status_parse(in->status, &st) != 0) {
        snprintf(why, cap,
                 "status must be one of PROPOSED, AWAITING_APPROVAL, EXPERIMENTING, APPROVED, APPLIED, "
                 "REJECTED, ROLLED_BACK, FAILED, EXPIRED");
        return false;
    }
    if (*in->optimization_type && !known_type(in->optimization_type)) {
        snprintf(why, cap,
                 "optimization_type must be one of WEIGHT_RECALIBRATION, SLO_ADJUSTMENT, HEURISTIC_UPDATE, "
                 "POLICY_CHANGE, NO_OP");
        return false;
    }
    if (in->limit < 0 || in->limit > LIST_MAX) {
        snprintf(why, cap, "limit must be 0..%d (0 = 50)", LIST_MAX);
        return false;
    }
    if (in->offset < 0) {
        snprintf(why, cap, "offset must be >= 0");
        return false;
    }
    return true;
}

static void list_optimizations(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    rpc_t *r = ctx;
    list_request_t *in = (void *)grpc_pb_decode(
        call, &neuralhive__optimizer__v1__list_optimizations_request__descriptor, req, len);
    if (!in) {
        return;
    }
    char why[160];
    if (!valid_filters(in, why, sizeof(why))) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, why);
    } else {
        const repo_filter_t f = {
            .type = given(in->optimization_type),
            .component = given(in->component),
            .status = given(in->status),
            .limit = (size_t)in->limit,
            .offset = (size_t)in->offset,
        };
        pending_t *p = pending_new(call, "");
        if (p) {
            int rc = ops_list(r->ops, &f, on_listed, p);
            if (rc != 0) {
                pending_failed(p, rc);
            }
        }
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- GetStatistics ------------------------------------------------------- */

typedef Neuralhive__Optimizer__V1__GetStatisticsResponse__ByStatusEntry status_entry_t;
typedef Neuralhive__Optimizer__V1__GetStatisticsResponse__ByTypeEntry type_entry_t;

#define TYPE_ENTRIES (sizeof(((repo_stats_t *)0)->by_type) / sizeof(((repo_stats_t *)0)->by_type[0]))

static void on_statistics(void *arg, int status, const char *message, const ops_stats_t *stats)
{
    pending_t *p = arg;
    if (!pending_take(p, status, message, stats != NULL)) {
        return;
    }
    const repo_stats_t *rs = &stats->repo;

    /* Every status, zeros included, so a client can read any key. */
    status_entry_t statuses[HYP_STATUS_COUNT];
    status_entry_t *by_status[HYP_STATUS_COUNT];
    for (size_t i = 0; i < HYP_STATUS_COUNT; i++) {
        neuralhive__optimizer__v1__get_statistics_response__by_status_entry__init(&statuses[i]);
        statuses[i].key = (char *)hyp_status_name((hyp_status_t)i);
        statuses[i].value = (int64_t)rs->by_status[i];
        by_status[i] = &statuses[i];
    }
    type_entry_t types[TYPE_ENTRIES];
    type_entry_t *by_type[TYPE_ENTRIES];
    size_t ntypes = rs->by_type_count < TYPE_ENTRIES ? rs->by_type_count : TYPE_ENTRIES;
    for (size_t i = 0; i < ntypes; i++) {
        neuralhive__optimizer__v1__get_statistics_response__by_type_entry__init(&types[i]);
        types[i].key = (char *)rs->by_type[i].type;
        types[i].value = (int64_t)rs->by_type[i].n;
        by_type[i] = &types[i];
    }

    Neuralhive__Optimizer__V1__GetStatisticsResponse out =
        NEURALHIVE__OPTIMIZER__V1__GET_STATISTICS_RESPONSE__INIT;
    out.total = (int64_t)rs->total;
    out.n_by_status = HYP_STATUS_COUNT;
    out.by_status = by_status;
    out.n_by_type = ntypes;
    out.by_type = ntypes ? by_type : NULL;
    out.success_rate = rs->success_rate;
    out.average_improvement = rs->average_improvement;
    out.rollbacks = (int64_t)rs->rollbacks;
    out.application_failures = (int64_t)rs->application_failures;
    out.expired = (int64_t)rs->expired;
    out.q_table_size = (int64_t)stats->q_table_size;
    out.epsilon = stats->epsilon;
    grpc_pb_reply(p->call, &out.base);
    pending_free(p);
}

static void statistics(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    rpc_t *r = ctx;
    ProtobufCMessage *in =
        grpc_pb_decode(call, &neuralhive__optimizer__v1__get_statistics_request__descriptor, req, len);
    if (!in) {
        return;
    }
    pending_t *p = pending_new(call, "");
    if (p) {
        int rc = ops_statistics(r->ops, on_statistics, p);
        if (rc != 0) {
            pending_failed(p, rc);
        }
    }
    protobuf_c_message_free_unpacked(in, NULL);
}

/* ---- HealthCheck --------------------------------------------------------- */

typedef Neuralhive__Optimizer__V1__HealthCheckResponse__ChecksEntry check_entry_t;

static void health_check(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    rpc_t *r = ctx;
    Neuralhive__Optimizer__V1__HealthCheckRequest *in =
        (void *)grpc_pb_decode(call, &neuralhive__optimizer__v1__health_check_request__descriptor, req, len);
    if (!in) {
        return;
    }
    const char *service = in->service;
    if (*service && strcmp(service, "optimizer") != 0 && strcmp(service, RPC_SERVICE) != 0) {
        char why[160];
        snprintf(why, sizeof(why), "unknown service %.100s", service);
        grpc_call_finish(call, GRPC_STATUS_NOT_FOUND, why);
        protobuf_c_message_free_unpacked(&in->base, NULL);
        return;
    }
    check_entry_t entries[RPC_MAX_CHECKS];
    check_entry_t *checks[RPC_MAX_CHECKS];
    bool serving = true;
    for (size_t i = 0; i < r->nchecks; i++) {
        bool ok = r->checks[i].fn(r->checks[i].ctx);
        serving = serving && ok;
        neuralhive__optimizer__v1__health_check_response__checks_entry__init(&entries[i]);
        entries[i].key = r->checks[i].name;
        entries[i].value = ok;
        checks[i] = &entries[i];
    }
    Neuralhive__Optimizer__V1__HealthCheckResponse out =
        NEURALHIVE__OPTIMIZER__V1__HEALTH_CHECK_RESPONSE__INIT;
    out.status = serving ? NEURALHIVE__OPTIMIZER__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                         : NEURALHIVE__OPTIMIZER__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    out.n_checks = r->nchecks;
    out.checks = r->nchecks ? checks : NULL;
    grpc_pb_reply(call, &out.base);
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- the service --------------------------------------------------------- */

rpc_t *rpc_create(ops_t *ops)
{
    rpc_t *r = calloc(1, sizeof(*r));
    if (r) {
        r->ops = ops;
    }
    return r;
}

int rpc_add_check(rpc_t *r, const char *name, rpc_check_fn fn, void *ctx)
{
    if (!name || !*name || strlen(name) >= sizeof(r->checks[0].name) || !fn || r->nchecks == RPC_MAX_CHECKS) {
        return -1;
    }
    for (size_t i = 0; i < r->nchecks; i++) {
        if (strcmp(r->checks[i].name, name) == 0) {
            return -1;
        }
    }
    snprintf(r->checks[r->nchecks].name, sizeof(r->checks[0].name), "%s", name);
    r->checks[r->nchecks].fn = fn;
    r->checks[r->nchecks].ctx = ctx;
    r->nchecks++;
    return 0;
}

int rpc_register(rpc_t *r, grpc_server_t *grpc)
{
    static const struct {
        const char *path;
        grpc_handler_fn fn;
    } methods[] = {
        {"/" RPC_SERVICE "/TriggerOptimization", trigger},
        {"/" RPC_SERVICE "/GetOptimizationStatus", get_status},
        {"/" RPC_SERVICE "/ListOptimizations", list_optimizations},
        {"/" RPC_SERVICE "/RollbackOptimization", rollback},
        {"/" RPC_SERVICE "/GetStatistics", statistics},
        {"/" RPC_SERVICE "/HealthCheck", health_check},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (grpc_register(grpc, methods[i].path, methods[i].fn, r) != 0) {
            return -1;
        }
    }
    return 0;
}

void rpc_destroy(rpc_t *r)
{
    free(r);
}
