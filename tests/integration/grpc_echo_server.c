/* A tiny OptimizerAgent for test_grpc_transport.py: common/grpc serving the
 * real optimizer.proto messages (protobuf-c), with canned answers and no
 * optimizer behind it. It tests the transport against grpcio, not the
 * optimizer.
 *
 *   grpc_echo_server PORT     listens on 127.0.0.1:PORT; exits 0 on SIGTERM.
 *
 *   HealthCheck            SERVING, checks {"grpc": true}
 *   GetOptimizationStatus  NOT_FOUND for "missing", else an OptimizationInfo with that id
 *   ListOptimizations      `limit` OptimizationInfo messages (ids opt-0, opt-1, ...)
 *   RollbackOptimization   INVALID_ARGUMENT for an empty id, else status ROLLED_BACK
 *   TriggerOptimization    INVALID_ARGUMENT for an empty component, else status PROPOSED
 *   GetStatistics          fixed counts
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "lifecycle.h"
#include "log.h"
#include "optimizer.pb-c.h"

#define SERVICE "/neuralhive.optimizer.v1.OptimizerAgent/"
#define LIST_MAX 1000

typedef Neuralhive__Optimizer__V1__OptimizationInfo info_t;

/* ---- helpers ------------------------------------------------------------------ */

/* Decodes the request as `desc`; on failure finishes the call INVALID_ARGUMENT
 * and returns NULL. Free with protobuf_c_message_free_unpacked(). */
static ProtobufCMessage *decode(grpc_call_t *call, const ProtobufCMessageDescriptor *desc, const uint8_t *req,
                                size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, req);
    if (!m) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed request message");
    }
    return m;
}

/* Encodes `m` and sends it as one response message. */
static int send_message(grpc_call_t *call, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        return -1;
    }
    protobuf_c_message_pack(m, buf);
    int rc = grpc_call_send(call, buf, len);
    free(buf);
    return rc;
}

/* A plausible optimization; the strings are borrowed by `info`. */
static void fill_info(info_t *info, const char *id, const char *component, const char *status)
{
    neuralhive__optimizer__v1__optimization_info__init(info);
    info->optimization_id = (char *)id;
    info->optimization_type = "WEIGHT_RECALIBRATION";
    info->component = (char *)component;
    info->status = (char *)status;
    info->action = "increase_weight";
    info->state_key = "latency_p95_ms:high";
    info->insight_id = "ins-1";
    info->q_value = 0.42;
    info->confidence = 0.8;
    info->risk = 0.1;
    info->expected_improvement = 0.12;
    info->propensity = 0.9;
    info->policy = "epsilon_greedy";
    info->experiment_id = "";
    info->reward = 0.0;
    info->created_at_ms = 1700000000000;
    info->updated_at_ms = 1700000000500;
    info->rationale = "p95 latency above the SLO for 3 windows";
}

/* ---- handlers ------------------------------------------------------------------- */

static void health_check(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    ProtobufCMessage *in =
        decode(call, &neuralhive__optimizer__v1__health_check_request__descriptor, req, len);
    if (!in) {
        return;
    }
    Neuralhive__Optimizer__V1__HealthCheckResponse out =
        NEURALHIVE__OPTIMIZER__V1__HEALTH_CHECK_RESPONSE__INIT;
    Neuralhive__Optimizer__V1__HealthCheckResponse__ChecksEntry check =
        NEURALHIVE__OPTIMIZER__V1__HEALTH_CHECK_RESPONSE__CHECKS_ENTRY__INIT;
    Neuralhive__Optimizer__V1__HealthCheckResponse__ChecksEntry *checks[] = {&check};
    check.key = "grpc";
    check.value = 1;
    out.status = NEURALHIVE__OPTIMIZER__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    out.n_checks = 1;
    out.checks = checks;
    send_message(call, &out.base);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    protobuf_c_message_free_unpacked(in, NULL);
}

static void get_status(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    Neuralhive__Optimizer__V1__GetOptimizationStatusRequest *in = (void *)decode(
        call, &neuralhive__optimizer__v1__get_optimization_status_request__descriptor, req, len);
    if (!in) {
        return;
    }
    if (strcmp(in->optimization_id, "missing") == 0) {
        grpc_call_finish(call, GRPC_STATUS_NOT_FOUND, "optimization missing not found");
    } else {
        info_t info;
        fill_info(&info, in->optimization_id, "consensus-engine", "APPLIED");
        Neuralhive__Optimizer__V1__GetOptimizationStatusResponse out =
            NEURALHIVE__OPTIMIZER__V1__GET_OPTIMIZATION_STATUS_RESPONSE__INIT;
        out.optimization = &info;
        send_message(call, &out.base);
        grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void list_optimizations(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    Neuralhive__Optimizer__V1__ListOptimizationsRequest *in =
        (void *)decode(call, &neuralhive__optimizer__v1__list_optimizations_request__descriptor, req, len);
    if (!in) {
        return;
    }
    if (in->limit < 0 || in->limit > LIST_MAX) {
        grpc_call_finish(call, GRPC_STATUS_OUT_OF_RANGE, "limit must be 0..1000");
    } else {
        const char *component = in->component[0] ? in->component : "orchestrator";
        for (int i = 0; i < in->limit; i++) {
            char id[32];
            snprintf(id, sizeof(id), "opt-%d", in->offset + i);
            info_t info;
            fill_info(&info, id, component, "PROPOSED");
            send_message(call, &info.base);
        }
        grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void rollback(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    Neuralhive__Optimizer__V1__RollbackOptimizationRequest *in =
        (void *)decode(call, &neuralhive__optimizer__v1__rollback_optimization_request__descriptor, req, len);
    if (!in) {
        return;
    }
    if (!in->optimization_id[0]) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "optimization_id is required");
    } else {
        info_t info;
        fill_info(&info, in->optimization_id, "consensus-engine", "ROLLED_BACK");
        info.rationale = in->reason;
        Neuralhive__Optimizer__V1__RollbackOptimizationResponse out =
            NEURALHIVE__OPTIMIZER__V1__ROLLBACK_OPTIMIZATION_RESPONSE__INIT;
        out.optimization = &info;
        send_message(call, &out.base);
        grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void trigger(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    Neuralhive__Optimizer__V1__TriggerOptimizationRequest *in =
        (void *)decode(call, &neuralhive__optimizer__v1__trigger_optimization_request__descriptor, req, len);
    if (!in) {
        return;
    }
    if (!in->component[0]) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "component is required");
    } else {
        info_t info;
        fill_info(&info, "opt-triggered", in->component, "PROPOSED");
        info.rationale = in->description;
        Neuralhive__Optimizer__V1__TriggerOptimizationResponse out =
            NEURALHIVE__OPTIMIZER__V1__TRIGGER_OPTIMIZATION_RESPONSE__INIT;
        out.optimization = &info;
        send_message(call, &out.base);
        grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void statistics(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    ProtobufCMessage *in =
        decode(call, &neuralhive__optimizer__v1__get_statistics_request__descriptor, req, len);
    if (!in) {
        return;
    }
    typedef Neuralhive__Optimizer__V1__GetStatisticsResponse__ByStatusEntry status_entry_t;
    typedef Neuralhive__Optimizer__V1__GetStatisticsResponse__ByTypeEntry type_entry_t;
    status_entry_t applied = NEURALHIVE__OPTIMIZER__V1__GET_STATISTICS_RESPONSE__BY_STATUS_ENTRY__INIT;
    status_entry_t rolled = NEURALHIVE__OPTIMIZER__V1__GET_STATISTICS_RESPONSE__BY_STATUS_ENTRY__INIT;
    type_entry_t weights = NEURALHIVE__OPTIMIZER__V1__GET_STATISTICS_RESPONSE__BY_TYPE_ENTRY__INIT;
    applied.key = "APPLIED";
    applied.value = 7;
    rolled.key = "ROLLED_BACK";
    rolled.value = 3;
    weights.key = "WEIGHT_RECALIBRATION";
    weights.value = 10;
    status_entry_t *by_status[] = {&applied, &rolled};
    type_entry_t *by_type[] = {&weights};
    Neuralhive__Optimizer__V1__GetStatisticsResponse out =
        NEURALHIVE__OPTIMIZER__V1__GET_STATISTICS_RESPONSE__INIT;
    out.total = 10;
    out.n_by_status = 2;
    out.by_status = by_status;
    out.n_by_type = 1;
    out.by_type = by_type;
    out.success_rate = 0.7;
    out.average_improvement = 0.08;
    out.rollbacks = 3;
    out.q_table_size = 12;
    out.epsilon = 0.1;
    send_message(call, &out.base);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* ---- main ------------------------------------------------------------------------------ */

static void on_grpc_closed(void *arg)
{
    lifecycle_stage_done(arg);
}

static void stage_grpc(lifecycle_t *lc, void *ctx)
{
    grpc_server_close(ctx, on_grpc_closed, lc);
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);

    /* Logging, metrics and the loop. */
    log_init("grpc_echo_server", LOG_INFO);
    metrics_t *metrics = metrics_create();
    lifecycle_t *lc = lifecycle_create(5000);
    if (!metrics || !lc) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    /* The server and its six methods. */
    char err[256];
    grpc_server_t *srv = grpc_server_create(lifecycle_loop(lc), "127.0.0.1", port, metrics, err, sizeof(err));
    if (!srv) {
        log_error("cannot start the gRPC server", "error", err);
        lifecycle_destroy(lc);
        metrics_destroy(metrics);
        return 1;
    }
    grpc_register(srv, SERVICE "HealthCheck", health_check, NULL);
    grpc_register(srv, SERVICE "GetOptimizationStatus", get_status, NULL);
    grpc_register(srv, SERVICE "ListOptimizations", list_optimizations, NULL);
    grpc_register(srv, SERVICE "RollbackOptimization", rollback, NULL);
    grpc_register(srv, SERVICE "TriggerOptimization", trigger, NULL);
    grpc_register(srv, SERVICE "GetStatistics", statistics, NULL);

    /* On SIGTERM: close the server, then stop. */
    lifecycle_add_stage(lc, "grpc", stage_grpc, srv);
    log_info("grpc echo server listening", "port", argv[1]);
    int rc = lifecycle_run(lc);

    /* Tear down in reverse. */
    grpc_server_destroy(srv);
    lifecycle_destroy(lc);
    metrics_destroy(metrics);
    return rc;
}
