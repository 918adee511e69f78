/* timer_probe: a pipeline with one timer, for test_kafka_timers.py.
 *
 * Every slot of PROBE_INTERVAL_MS (default 200) the timer "probe" produces one
 * record to PROBE_OUT_TOPIC: key "probe", value the slot in decimal, header
 * "txn" = this process's transactional id. The pipeline's markers live in
 * PROBE_TIMERS_TOPIC. Runs until SIGTERM/SIGINT (then stops cleanly, exit 0)
 * or until killed; exits 1 when the pipeline reports a fatal error (fenced).
 *
 * Environment: KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092), PROBE_GROUP,
 * PROBE_TXN_ID, PROBE_TIMERS_TOPIC, PROBE_OUT_TOPIC, PROBE_INTERVAL_MS,
 * PROBE_TICK_SLEEP_MS (0: how long each tick takes), LOG_LEVEL. Logs are JSON
 * lines on stdout; "kafka timer running" carries the first slot this process
 * may run ("from_slot"); "probe readiness" each change of the pipeline's
 * readiness (checked every 50 ms) with its reason.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "lifecycle.h"
#include "log.h"

typedef struct {
    lifecycle_t *lc;
    kafka_pipeline_t *pipeline;
    const char *out_topic, *txn_id;
    unsigned tick_sleep_ms;
    uv_timer_t ready_timer;
    char ready_why[256];
    int ready_state; /* -1 unknown, 0 not ready, 1 ready */
    int exit_code;
} probe_t;

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static kafka_verdict_t tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                            size_t reasonlen)
{
    probe_t *pr = ctx;
    if (pr->tick_sleep_ms > 0) {
        usleep(pr->tick_sleep_ms * 1000u);
    }
    char value[24];
    snprintf(value, sizeof(value), "%" PRId64, slot);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "txn", -1, pr->txn_id, -1);
    if (kafka_out_add(out, pr->out_topic, "probe", 5, value, strlen(value), h) != 0) {
        snprintf(reason, reasonlen, "out of memory");
        return KAFKA_RETRY;
    }
    return KAFKA_OK;
}

static void on_fatal(void *ctx, const char *why)
{
    probe_t *pr = ctx;
    pr->exit_code = 1;
    lifecycle_stop(pr->lc, 1);
}

static void stage_done(void *arg)
{
    lifecycle_stage_done(arg);
}

/* Logs each change of the pipeline's readiness. Loop thread. */
static void on_ready_timer(uv_timer_t *t)
{
    probe_t *pr = t->data;
    char why[256] = "";
    int ok = kafka_pipeline_ready_detail(pr->pipeline, why, sizeof(why)) ? 1 : 0;
    if (ok != pr->ready_state || strcmp(why, pr->ready_why) != 0) {
        pr->ready_state = ok;
        snprintf(pr->ready_why, sizeof(pr->ready_why), "%s", why);
        log_info("probe readiness", "ready", ok ? "true" : "false", "why", why);
    }
}

static void stop_pipeline(lifecycle_t *lc, void *ctx)
{
    probe_t *pr = ctx;
    uv_close((uv_handle_t *)&pr->ready_timer, NULL);
    kafka_pipeline_stop(pr->pipeline, stage_done, lc);
}

int main(void)
{
    log_level_t level = LOG_INFO;
    log_level_parse(env_or("LOG_LEVEL", "info"), &level);
    log_init("timer_probe", level);
    probe_t pr = {.out_topic = env_or("PROBE_OUT_TOPIC", "probe.out"),
                  .txn_id = env_or("PROBE_TXN_ID", "timer-probe"),
                  .tick_sleep_ms = (unsigned)strtoul(env_or("PROBE_TICK_SLEEP_MS", "0"), NULL, 10),
                  .ready_state = -1};
    pr.lc = lifecycle_create(5000);
    if (!pr.lc) {
        return 2;
    }
    char err[512] = "";
    pr.pipeline =
        kafka_pipeline_create(lifecycle_loop(pr.lc),
                              &(kafka_pipeline_conf_t){
                                  .bootstrap_servers = env_or("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                                  .group_id = env_or("PROBE_GROUP", "timer-probe"),
                                  .transactional_id = pr.txn_id,
                                  .service = "timer_probe",
                                  .ctx = &pr,
                                  .on_fatal = on_fatal,
                                  .timers_topic = env_or("PROBE_TIMERS_TOPIC", "timer_probe.timers"),
                              },
                              err, sizeof(err));
    uint64_t interval = strtoull(env_or("PROBE_INTERVAL_MS", "200"), NULL, 10);
    if (!pr.pipeline || kafka_pipeline_add_timer(pr.pipeline, "probe", interval, tick, &pr) != 0 ||
        kafka_pipeline_start(pr.pipeline) != 0) {
        log_error("cannot start the probe", "error", err);
        kafka_pipeline_destroy(pr.pipeline);
        lifecycle_destroy(pr.lc);
        return 2;
    }
    uv_timer_init(lifecycle_loop(pr.lc), &pr.ready_timer);
    pr.ready_timer.data = &pr;
    uv_timer_start(&pr.ready_timer, on_ready_timer, 50, 50);
    lifecycle_add_stage(pr.lc, "kafka", stop_pipeline, &pr);
    int rc = lifecycle_run(pr.lc);
    kafka_pipeline_destroy(pr.pipeline);
    lifecycle_destroy(pr.lc);
    return rc != 0 ? rc : pr.exit_code;
}
