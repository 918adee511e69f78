/* rest: the experiment manager's REST API (seed 000), JSON in and out; every
 * store call runs on a worker (offload.h).
 *
 *   POST /api/v1/experiments/submit              201 new, 200 existing id; 400 names the field
 *   GET  /api/v1/experiments?type=&status=&limit=&offset=
 *   GET  /api/v1/experiments/statistics/summary
 *   GET  /api/v1/experiments/{id}                404 unknown
 *   POST /api/v1/experiments/{id}/abort          202; 404 unknown; 409 finished
 *   GET  /api/v1/experiments/{id}/results        the analysis, the result, every interval
 *   GET  /api/v1/experiments/{id}/workflow       the experiment as an Argo Workflow (workflow.h)
 */
#ifndef EXPMGR_REST_H
#define EXPMGR_REST_H

#include <stddef.h>

#include "http.h"
#include "runner.h"
#include "store.h"

typedef struct {
    uv_loop_t *loop;
    store_t *store;
    runner_t *runner;
    const runner_conf_t *conf;
    size_t pending;          /* jobs on workers */
    const char *manager_url; /* WORKFLOW_MANAGER_URL: this service as Argo reaches it */
    long interval_s;         /* EVALUATION_INTERVAL_MS in seconds (the workflow's polling) */
} rest_t;

/* Registers the routes above on `http` with `rest` as their context.
 * Returns 0 or -1. */
int rest_register(http_server_t *http, rest_t *rest);

/* The routes (ctx: the rest_t). */
void rest_submit(void *rest, http_req_t *req);
void rest_list(void *rest, http_req_t *req);
void rest_summary(void *rest, http_req_t *req);
void rest_get(void *rest, http_req_t *req);
void rest_abort(void *rest, http_req_t *req);
void rest_results(void *rest, http_req_t *req);
void rest_workflow(void *rest, http_req_t *req);

/* Parses a submitted body into `e`; on failure names the field in `field`
 * and says why in `msg`. Durations are scaled by conf->time_scale. */
int rest_parse_submit(const runner_conf_t *conf, json_t *body, int64_t now_ms, exp_t *e, char *field,
                      size_t fieldlen, char *msg, size_t msglen);

#endif
