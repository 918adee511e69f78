/* workflow: an experiment as an Argo Workflow manifest (pure: values in,
 * JSON out).
 *
 * The manifest (argoproj.io/v1alpha1, kind Workflow) runs the seed's seven
 * steps in order, one `steps` group each: setup-baseline, setup-experimental,
 * traffic-split, monitor, collect, analyze, cleanup. The built-in runner
 * does the work; each step is an Argo `http` template that follows it through
 * this service's REST API at `manager_url`:
 *   - the three setup steps: GET /api/v1/experiments/{id} answers 200 (the
 *     experiment is registered, its split published);
 *   - monitor: GET /api/v1/experiments/{id} until its status is DONE, retried
 *     every interval (retryStrategy) up to the experiment's duration;
 *   - collect and analyze: GET /api/v1/experiments/{id}/results answers 200
 *     with an analysis, then with a result;
 *   - cleanup (also the workflow's onExit handler): the results say DONE,
 *     the runner having returned all traffic to the baseline.
 * metadata.name is "experiment-" and the id lowered to a DNS-1123 name
 * (other characters become '-', at most 63 characters); the exact id is in
 * the annotation neural-hive.io/experiment-id and the parameter experiment_id.
 */
#ifndef EXPMGR_WORKFLOW_H
#define EXPMGR_WORKFLOW_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    const char *id;          /* experiment_id */
    const char *type;        /* "AB_TEST", "CANARY", "SHADOW", "BANDIT" */
    const char *target;      /* the component under test ("" when none) */
    double traffic_split;    /* the candidate's share */
    long duration_s;         /* the experiment's longest duration */
    long interval_s;         /* the runner's evaluation interval */
    const char *manager_url; /* "http://experiment-manager:8000", no trailing slash */
} workflow_spec_t;

/* The seven steps, in order. */
#define WORKFLOW_NSTEPS 7
extern const char *const workflow_steps[WORKFLOW_NSTEPS];

/* "experiment-<id lowered>" as a DNS-1123 name into `out` (cap >= 64). */
void workflow_name(const char *id, char *out, size_t cap);

/* The manifest, a new reference; NULL when out of memory or a field is missing. */
json_t *workflow_render(const workflow_spec_t *spec);

#endif
