/* rpc: the optimizer's gRPC API, service neuralhive.optimizer.v1.OptimizerAgent
 * (schemas/proto/optimizer.proto), on common/grpc with protobuf-c messages.
 *
 * A thin shell over ops.h: each method decodes its request, calls one ops_*
 * function and turns the outcome into a response or a status. The answer
 * comes from the ops callback, on the loop thread; a client that went away
 * meanwhile is simply not answered.
 *
 *   TriggerOptimization    ops_trigger; answers the id the hypothesis will
 *                          have, status PROPOSED (the engine decides the
 *                          real status once it has consumed the insight).
 *   GetOptimizationStatus  ops_get; the stored hypothesis, every field.
 *   ListOptimizations      ops_list, newest first, one message per item.
 *                          Filters type, component, status (exact names);
 *                          limit 0 = 50, at most 500; offset >= 0.
 *   RollbackOptimization   ops_rollback; the hypothesis as stored when the
 *                          ROLLBACK command was published (still APPLIED:
 *                          ROLLED_BACK once the applier confirms).
 *   GetStatistics          ops_statistics; by_status names every status.
 *   HealthCheck            SERVING when every check added with
 *                          rpc_add_check() passes, NOT_SERVING otherwise,
 *                          with each check by name. `service` may be empty,
 *                          "optimizer" or the full service name; any other
 *                          is NOT_FOUND (as in grpc.health.v1).
 *
 * Status codes (ops outcomes through hive_status_grpc, hive_status.h):
 *   INVALID_ARGUMENT     a request that does not decode, an empty
 *                        optimization_id, a bad filter, limit or offset, or
 *                        what ops rejects (HIVE_EINVAL; the message names
 *                        the field)
 *   NOT_FOUND            no such optimization (HIVE_ENOTFOUND)
 *   FAILED_PRECONDITION  the status does not allow it (HIVE_ECONFLICT)
 *   UNAVAILABLE          MongoDB unreachable (HIVE_EUNAVAILABLE) or the
 *                        Kafka record not delivered (HIVE_EDELIVERY); retry
 *   INTERNAL             anything else
 */
#ifndef OPTIMIZER_RPC_H
#define OPTIMIZER_RPC_H

#include <stdbool.h>

#include "grpc.h"
#include "ops.h"

#define RPC_SERVICE "neuralhive.optimizer.v1.OptimizerAgent"
#define RPC_MAX_CHECKS 8

typedef struct rpc_s rpc_t;

/* A HealthCheck dependency check: true when healthy. Runs on the loop thread
 * on every HealthCheck call, so it must be quick (read a flag). The checks
 * /ready uses (http.h's http_check_fn) fit as they are. */
typedef bool (*rpc_check_fn)(void *ctx);

/* The service over `ops` (borrowed: it must outlive every call in flight,
 * which ops_pending() == 0 tells). Returns NULL when out of memory. Free
 * with rpc_destroy(). */
rpc_t *rpc_create(ops_t *ops);

/* Adds a named check ("kafka", "mongodb", "redis") to HealthCheck. `name`
 * is copied (at most 31 bytes). Returns 0, or -1 for an empty or long
 * name, a duplicate, or more than RPC_MAX_CHECKS. */
int rpc_add_check(rpc_t *r, const char *name, rpc_check_fn fn, void *ctx);

/* Registers the six methods on `grpc` ("/" RPC_SERVICE "/<Method>"). Returns
 * 0, or -1 when one could not be registered (grpc_register failed: a
 * duplicate, or the server is closing); methods registered before the
 * failure stay registered, so `r` must then still live until the server is
 * closed. */
int rpc_register(rpc_t *r, grpc_server_t *grpc);

/* Frees the service. No method may run any more: call it once
 * grpc_server_close() has completed (or if rpc_register was never called).
 * Answers still owed by ops callbacks do not need `r`. Accepts NULL. */
void rpc_destroy(rpc_t *r);

#endif
