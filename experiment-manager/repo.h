/* repo: the experiment manager's MongoDB documents (its own database).
 *
 *   experiments   _id experiment_id: the definition, `status` (RUNNING,
 *                 PAUSED, DONE), `committed` (the judge state of the last
 *                 look known published), `staged` (the last look: its slot,
 *                 state, analysis and the exact bytes it published), `result`
 *   measurements  _id "<experiment>|<variant>|<service>|<start>|<end>": one
 *                 telemetry window of one variant (idempotent upsert)
 *   intervals     _id "<experiment>@<slot>": the analysis of each look
 *   aborts        _id experiment_id: an operator's abort request
 * Every call is BLOCKING (store.h): worker threads only.
 */
#ifndef EXPMGR_REPO_H
#define EXPMGR_REPO_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#include "judge.h"
#include "store.h"

#define EXP_MAX_PARAMS 64
#define EXP_ID 129

typedef struct {
    char name[JUDGE_NAME];
    double value;
} exp_param_t;

/* A metric read from Prometheus instead of telemetry.aggregated (prom.h). */
#define EXP_MAX_SOURCES 4
#define EXP_QUERY 512       /* bytes, NUL included */
#define EXP_QUERY_CHARS 127 /* code points: at most 508 bytes of UTF-8 */
typedef struct {
    char metric[JUDGE_NAME];
    char query[EXP_QUERY]; /* PromQL with a $variant placeholder */
} exp_source_t;

/* An experiment as requested (ExperimentRequest or POST /submit). */
typedef struct {
    char id[EXP_ID], optimization_id[EXP_ID], requested_by[EXP_ID], target[EXP_ID], candidate_version[65];
    char hypothesis[512];
    int64_t requested_at_ms;
    long duration_s;
    judge_def_t def; /* def.duration_ms = duration_s scaled by EXPERIMENT_TIME_SCALE */
    exp_param_t params[EXP_MAX_PARAMS];
    size_t nparams;
    exp_source_t sources[EXP_MAX_SOURCES]; /* metric_sources with provider prometheus */
    size_t nsources;
} exp_t;

/* Who the measurements of a variant label belong to: 0 baseline, 1 candidate,
 * -1 neither. "baseline"/"control" and "experimental"/"candidate"/"treatment". */
int repo_variant_index(const char *label);

/* Whether `key` can name a field of a stored document: not empty, no '.',
 * not starting with '$' (MongoDB refuses the others). Parameter names are
 * stored as keys. */
bool repo_key_ok(const char *key);

/* Appends the definition's fields to `doc`; reads them back. */
void repo_def_append(bson_t *doc, const exp_t *e);
int repo_def_read(const bson_t *doc, exp_t *out);

/* Appends `s` as a subdocument `key`; reads it back (HIVE_ENOTFOUND if absent). */
void repo_state_append(bson_t *doc, const char *key, const judge_state_t *s);
int repo_state_read(const bson_t *doc, const char *key, judge_state_t *out);

/* Stores a new experiment (RUNNING, initial state) unless one with its id
 * exists; *out_inserted tells which. */
int repo_create(store_t *s, const exp_t *e, int64_t now_ms, bool *out_inserted);

/* Stores one telemetry window of a variant (idempotent). `metrics` names and
 * values, n of them. */
int repo_measure(store_t *s, const char *experiment_id, const char *variant, const char *service,
                 int64_t window_start, int64_t window_end, int64_t requests, int64_t errors,
                 const char *const *names, const double *values, size_t n);

/* Aggregates the stored windows of an experiment into the two variants'
 * observations, for the metrics `wanted` (nwanted names). */
int repo_observe(store_t *s, const char *experiment_id, const char *const *wanted, size_t nwanted,
                 judge_obs_t *base, judge_obs_t *cand);

/* Records an operator's abort (idempotent). */
int repo_abort(store_t *s, const char *experiment_id, int64_t now_ms);
/* Whether an abort was requested. */
int repo_aborted(store_t *s, const char *experiment_id, bool *out);

#endif
