/* kafka_producer: an idempotent producer whose delivery reports come back on
 * the loop.
 *
 * Delivery reports are read as events (RD_KAFKA_EVENT_DR) from the main queue,
 * which wakes the loop through its io event. With events, rd_kafka_flush() only
 * waits for the count of outstanding records to reach zero and serves nothing
 * itself, so it can run on a worker while the loop keeps delivering callbacks.
 */
#include "kafka.h"
#include "kafka_internal.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 1000
#define FLUSH_MS 5000
#define PURGE_FLUSH_MS 1000

struct kafka_producer_s {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* main queue: delivery reports and errors */
    int wake[2];
    uv_poll_t poll;
    uv_timer_t tick;
    int open_handles; /* 0 before create finished and after close */
    uv_work_t work;
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    metric_t *m_produced;
};

/* The per-record opaque. */
typedef struct {
    kafka_delivery_fn cb;
    void *arg;
} delivery_t;

/* Delivers what the queue holds. Loop thread. */
static void serve(kafka_producer_t *p)
{
    rd_kafka_event_t *ev;
    while (p->queue && (ev = rd_kafka_queue_poll(p->queue, 0))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
            const rd_kafka_message_t *m;
            while ((m = rd_kafka_event_message_next(ev))) {
                delivery_t *d = m->_private;
                if (!m->err && p->m_produced) {
                    metric_add(p->m_produced, 1, rd_kafka_topic_name(m->rkt));
                }
                if (d) {
                    d->cb(d->arg, m->err);
                    free(d);
                }
            }
        } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR) {
            bool fatal = rd_kafka_event_error_is_fatal(ev);
            char detail[256] = "";
            if (fatal) {
                rd_kafka_fatal_error(p->rk, detail, sizeof(detail));
            }
            log_event(fatal ? LOG_ERROR : LOG_WARN, "kafka producer error", "error",
                      rd_kafka_err2name(rd_kafka_event_error(ev)), "reason", rd_kafka_event_error_string(ev),
                      "fatal", fatal ? detail : NULL, NULL);
        }
        rd_kafka_event_destroy(ev);
    }
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    kafka_producer_t *p = h->data;
    kafka_wake_drain(p->wake[0]);
    serve(p);
}

static void on_tick(uv_timer_t *t)
{
    serve(t->data);
}

kafka_producer_t *kafka_producer_create(uv_loop_t *loop, const char *bootstrap_servers, metrics_t *metrics,
                                        char *err, size_t errlen)
{
    char why[512];
    if (!loop || !bootstrap_servers) {
        snprintf(err, errlen, "kafka producer: loop and bootstrap_servers are required");
        return NULL;
    }
    kafka_producer_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "kafka producer: out of memory");
        return NULL;
    }
    p->loop = loop;
    p->wake[0] = p->wake[1] = -1;
    if (metrics) {
        p->m_produced = metrics_counter(metrics, "kafka_messages_produced_total",
                                        "Records produced and committed, by topic", "topic");
    }
    rd_kafka_conf_t *conf = kafka_conf_producer(bootstrap_servers, "hive-producer", NULL, err, errlen);
    if (!conf) {
        goto fail;
    }
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", why);
        goto fail;
    }
    conf = NULL; /* owned by the producer */
    p->queue = rd_kafka_queue_get_main(p->rk);
    if (!p->queue || kafka_wake_pipe(p->wake) != 0 || uv_poll_init(loop, &p->poll, p->wake[0]) != 0) {
        snprintf(err, errlen, "kafka producer: cannot create the wake-up pipe");
        goto fail;
    }
    uv_timer_init(loop, &p->tick);
    p->poll.data = p->tick.data = p;
    p->open_handles = 2;
    rd_kafka_queue_io_event_enable(p->queue, p->wake[1], "1", 1);
    uv_poll_start(&p->poll, UV_READABLE, on_wake);
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    return p;
fail:
    kafka_producer_destroy(p);
    return NULL;
}

rd_kafka_resp_err_t kafka_producer_send(kafka_producer_t *p, const char *topic, const void *key,
                                        size_t keylen, const void *value, size_t len,
                                        rd_kafka_headers_t *headers, kafka_delivery_fn cb, void *arg)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__STATE;
    delivery_t *d = NULL;
    if (!p || p->closing || !p->rk) {
        goto fail;
    }
    if (!topic) {
        err = RD_KAFKA_RESP_ERR__INVALID_ARG;
        goto fail;
    }
    if (cb) {
        d = malloc(sizeof(*d));
        if (!d) {
            err = RD_KAFKA_RESP_ERR__FAIL;
            goto fail;
        }
        *d = (delivery_t){cb, arg};
    }
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return err; /* headers and d now travel with the record */
    }
fail:
    free(d);
    if (headers) {
        rd_kafka_headers_destroy(headers);
    }
    return err;
}

/* ---- Close: flush on a worker, destroy on a worker, close the handles ---------- */

static void on_closed(uv_handle_t *h)
{
    kafka_producer_t *p = h->data;
    if (--p->open_handles == 0) {
        for (int i = 0; i < 2; i++) {
            close(p->wake[i]);
            p->wake[i] = -1;
        }
        if (p->done) {
            p->done(p->done_arg);
        }
    }
}

static void destroy_work(uv_work_t *w)
{
    kafka_producer_t *p = w->data;
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
}

static void destroy_after(uv_work_t *w, int status)
{
    kafka_producer_t *p = w->data;
    uv_close((uv_handle_t *)&p->poll, on_closed);
    uv_close((uv_handle_t *)&p->tick, on_closed);
}

static void flush_work(uv_work_t *w)
{
    kafka_producer_t *p = w->data;
    /* The loop keeps serving delivery reports meanwhile. */
    if (rd_kafka_flush(p->rk, FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char n[16];
        snprintf(n, sizeof(n), "%d", rd_kafka_outq_len(p->rk));
        log_warn("kafka producer flush timed out, purging", "outstanding", n);
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, PURGE_FLUSH_MS);
    }
}

static void flush_after(uv_work_t *w, int status)
{
    kafka_producer_t *p = w->data;
    serve(p);
    rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
    rd_kafka_queue_destroy(p->queue);
    p->queue = NULL;
    uv_poll_stop(&p->poll);
    uv_timer_stop(&p->tick);
    uv_queue_work(p->loop, &p->work, destroy_work, destroy_after);
}

void kafka_producer_close(kafka_producer_t *p, void (*done)(void *arg), void *arg)
{
    if (!p || p->closing) {
        return;
    }
    p->closing = true;
    p->done = done;
    p->done_arg = arg;
    p->work.data = p;
    uv_queue_work(p->loop, &p->work, flush_work, flush_after);
}

void kafka_producer_destroy(kafka_producer_t *p)
{
    if (!p) {
        return;
    }
    if (p->open_handles > 0) {
        log_error("kafka_producer_destroy called before close finished; leaking the producer", "reason",
                  NULL);
        return;
    }
    if (p->queue) {
        rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(p->queue);
    }
    if (p->rk) {
        rd_kafka_destroy(p->rk);
    }
    for (int i = 0; i < 2; i++) {
        if (p->wake[i] >= 0) {
            close(p->wake[i]);
        }
    }
    free(p);
}
