/* applier_rest: the REST API both appliers serve over an applier (applier.h).
 *
 *   GET  <prefix>/{target}           current state (revision 0: the initial values, never written)
 *   GET  <prefix>/{target}/history   revisions, newest first (?limit=1..1000, default 50)
 *   POST <prefix>/{target}/rollback  {"optimization_id": "...", "revision": n?, "reason": "..."}:
 *                                    sends a ROLLBACK OptimizationCommand on the commands topic,
 *                                    202 {"command_id": ...}; the applier executes it like any
 *                                    other (lock, fence, exactly once) and publishes ROLLED_BACK
 *                                    or REJECTED on optimization.applied.
 * Reads run on a worker (offload.h); everything else on the loop thread.
 */
#ifndef HIVE_APPLIER_REST_H
#define HIVE_APPLIER_REST_H

#include <stddef.h>
#include <uv.h>

#include "applier.h"
#include "avro_codec.h"
#include "http.h"
#include "kafka.h"

typedef struct applier_rest_s applier_rest_t;

typedef struct {
    const char *prefix;            /* "/api/v1/weights" */
    const char *optimization_type; /* type of the rollback commands it sends */
    const char *commands_topic;    /* optimization.commands */
    applier_t *applier;
    uv_loop_t *loop;
    kafka_producer_t *producer;
    avro_codec_t *codec;
} applier_rest_conf_t;

/* Registers the routes on `http`. `conf` is copied; its strings and clients
 * are borrowed. Returns the REST state (free with applier_rest_destroy after
 * the loop has closed), or NULL. */
applier_rest_t *applier_rest_create(http_server_t *http, const applier_rest_conf_t *conf);

/* Reads in flight (the drain waits for 0). */
size_t applier_rest_pending(const applier_rest_t *r);

void applier_rest_destroy(applier_rest_t *r);

/* True when `s` is a name of the schemas' "name" pattern, 1..128 bytes. */
bool applier_rest_valid_name(const char *s);

#endif
