/* rest: the optimizer's REST API (seed 000, "APIs"), on the service's HTTP
 * server next to /health, /ready and /metrics.
 *
 *   POST /api/v1/optimizations/trigger             202 {optimization_id, insight_id, status}
 *   GET  /api/v1/optimizations                     200 {items, total, limit, offset}
 *        ?type=&component=&status=&limit=&offset=
 *   GET  /api/v1/optimizations/statistics/summary  200 {total, by_status, by_type, ...}
 *   GET  /api/v1/optimizations/{id}                200 the optimization
 *   POST /api/v1/optimizations/{id}/rollback       202 {optimization_id, status}
 *   POST /api/v1/optimizations/{id}/approve        202 {optimization_id, decision, status}
 *   POST /api/v1/optimizations/{id}/reject         202 {optimization_id, decision, status}
 *   GET  /openapi.json                             the OpenAPI 3.0 document of all of the above
 *
 * Errors are {"error": message, "field": name}: 400 for a bad body or query
 * parameter (naming it), 404 for an unknown id, 409 when the optimization's
 * status does not allow the change, 503 when MongoDB or Kafka cannot be
 * reached. Every handler answers from an ops.h callback (deferred).
 */
#ifndef OPTIMIZER_REST_H
#define OPTIMIZER_REST_H

#include "http.h"
#include "ops.h"

/* Registers the routes above on `http`; `ops` (borrowed) must outlive the
 * server and must not be destroyed before the server has closed and
 * ops_pending() is 0. Returns 0, or -1 when a route cannot be registered. */
int rest_register(http_server_t *http, ops_t *ops);

#endif
