/* app: the weight-recalibrator's objects around its pure core (projection.h):
 * the weights domain of the shared applier (applier.h) and its REST API. */
#ifndef HIVE_WR_APP_H
#define HIVE_WR_APP_H

#include "applier_service.h"
#include "projection.h"
#include "service.h"

typedef struct {
    applier_service_config_t applier; /* the keys every applier service has */
    char *weights_topic, *decisions_topic;
    double max_adjustment, min_weight, max_weight, hedge_eta;
} wr_config_t;

typedef struct {
    applier_service_t base; /* first: the shared handlers' ctx (applier_service.h) */
    wr_config_t *cfg;
    weights_bounds_t bounds;
    metric_t *magnitude; /* weight_adjustment_magnitude */
    store_t *store;      /* the decisions' outcomes (collection "decisions") */
    service_t *svc;      /* the REST route's producer and codec */
} wr_app_t;

/* Builds the applier and the REST routes (setup). 0, or -1 after logging why. */
int wr_app_build(wr_app_t *app, service_t *svc);
size_t wr_app_pending(void *ctx);
void wr_app_teardown(service_t *svc, void *ctx);

/* The weights domain, exposed for tests: an APPLY's new weights from `cur`. */
int wr_compute(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
               applier_note_t *note);

/* The consensus.decisions input: a decision with an outcome is stored once
 * under its decision_id (engine, each specialist's correctness), so a replay
 * does not count it twice; one without an outcome is skipped. */
kafka_verdict_t wr_on_decision(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                               char *why, size_t len);

#endif
