/* kafka_batch: one batch of consumed records and its Kafka transaction.
 *
 * kafka_batch_run() is the worker side of the pipeline (kafka_pipeline.c):
 * begin, hand the records to the batch handler (a per-record transform goes
 * through kafka_batch_per_record, so there is one path), produce in record
 * order each record's outputs or its dead letter, send the consumed offsets
 * (last + 1 per partition) with the consumer group metadata, commit. Any
 * failure before the commit succeeds aborts the transaction, so read_committed
 * readers see all of the batch or nothing. A timer's tick and the timers'
 * barrier run through the same transaction code (tick_body). The loop thread
 * reads the outcome once the work is done.
 */
#include "kafka.h"
#include "kafka_internal.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXN_TIMEOUT_MS 30000
#define TXN_CALL_TRIES 5
#define FLUSH_BEFORE_ABORT_MS 10000

/* ---- Per-topic counts, turned into metrics once the batch commits ------------- */

static void tally_add(kafka_tallies_t *t, const char *topic)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].topic, topic) == 0) {
            t->v[i].n++;
            return;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        kafka_tally_t *v = realloc(t->v, cap * sizeof(*v));
        if (!v) {
            return; /* a metric is lost, not a record */
        }
        t->v = v;
        t->cap = cap;
    }
    char *dup = strdup(topic);
    if (dup) {
        t->v[t->n++] = (kafka_tally_t){dup, 1};
    }
}

static void tally_flush(kafka_tallies_t *t, metric_t *m)
{
    for (size_t i = 0; i < t->n; i++) {
        if (m) {
            metric_add(m, t->v[i].n, t->v[i].topic);
        }
        free(t->v[i].topic);
    }
    t->n = 0;
}

static void dead_add(kafka_batch_t *b, size_t msg, const char *reason)
{
    if (b->ndead == b->deadcap) {
        size_t cap = b->deadcap ? b->deadcap * 2 : 4;
        kafka_dead_t *v = realloc(b->dead, cap * sizeof(*v));
        if (!v) {
            return; /* a log line is lost, not a record */
        }
        b->dead = v;
        b->deadcap = cap;
    }
    b->dead[b->ndead++] = (kafka_dead_t){msg, strdup(reason)};
}

/* ---- Lifecycle ----------------------------------------------------------------- */

int kafka_batch_init(kafka_batch_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->msgs = calloc(max, sizeof(*b->msgs));
    b->in.outs = calloc(max, sizeof(*b->in.outs));
    b->in.rejected = calloc(max, sizeof(*b->in.rejected));
    b->in.reasons = calloc(max, sizeof(*b->in.reasons));
    if (!b->msgs || !b->in.outs || !b->in.rejected || !b->in.reasons) {
        return -1;
    }
    b->in.cap = max;
    for (size_t i = 0; i < max; i++) {
        kafka_out_init(&b->in.outs[i]);
    }
    return 0;
}

/* Empties the outputs and verdicts of the first `n` records. */
static void in_reset(kafka_in_t *in, size_t n)
{
    for (size_t i = 0; i < n && i < in->cap; i++) {
        kafka_out_reset(&in->outs[i]);
        in->rejected[i] = false;
        free(in->reasons[i]);
        in->reasons[i] = NULL;
    }
    in->why[0] = '\0';
}

void kafka_batch_clear(kafka_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_destroy(b->msgs[i]);
    }
    size_t used = b->n > b->in.n ? b->n : b->in.n;
    in_reset(&b->in, used > 0 ? used : 1); /* a tick uses outs[0] */
    b->in.msgs = NULL;
    b->in.n = b->in.cut = 0;
    b->n = 0;
    if (b->first) {
        rd_kafka_topic_partition_list_destroy(b->first);
    }
    if (b->next) {
        rd_kafka_topic_partition_list_destroy(b->next);
    }
    if (b->rest) {
        rd_kafka_topic_partition_list_destroy(b->rest);
    }
    b->first = b->next = b->rest = NULL;
    b->done = 0;
    b->job = KAFKA_JOB_BATCH;
    tally_flush(&b->produced, NULL);
    tally_flush(&b->dlq, NULL);
    for (size_t i = 0; i < b->ndead; i++) {
        free(b->dead[i].reason);
    }
    b->ndead = 0;
    b->why[0] = '\0';
}

void kafka_batch_deinit(kafka_batch_t *b)
{
    if (b->in.outs) {
        kafka_batch_clear(b);
        for (size_t i = 0; i < b->in.cap; i++) {
            kafka_out_deinit(&b->in.outs[i]);
        }
    }
    free(b->msgs);
    free(b->in.outs);
    free(b->in.rejected);
    free(b->in.reasons);
    free(b->produced.v);
    free(b->dlq.v);
    free(b->dead);
    memset(b, 0, sizeof(*b));
}

/* ---- What a batch handler sees ---------------------------------------------------- */

size_t kafka_in_count(const kafka_in_t *in)
{
    return in ? in->n : 0;
}

const rd_kafka_message_t *kafka_in_msg(const kafka_in_t *in, size_t i)
{
    return in && i < in->n ? in->msgs[i] : NULL;
}

kafka_out_t *kafka_in_out(kafka_in_t *in, size_t i)
{
    return in && i < in->n ? &in->outs[i] : NULL;
}

void kafka_in_reject(kafka_in_t *in, size_t i, const char *reason)
{
    if (!in || i >= in->n) {
        return;
    }
    kafka_out_reset(&in->outs[i]);
    free(in->reasons[i]);
    in->reasons[i] = reason && *reason ? strdup(reason) : NULL;
    in->rejected[i] = true;
}

kafka_verdict_t kafka_batch_per_record(void *ctx, kafka_in_t *in)
{
    kafka_batch_t *b = ctx;
    uint64_t deadline = uv_hrtime() + (uint64_t)KAFKA_BATCH_BUDGET_MS * 1000000u;
    for (size_t i = 0; i < in->n; i++) {
        /* At the time budget, or once the service is stopping (the drain has
         * its own deadline), the rest comes again in the next transaction. */
        if (i > 0 && (uv_hrtime() > deadline || (b->stop && atomic_load(b->stop)))) {
            in->cut = i;
            break;
        }
        const rd_kafka_message_t *m = in->msgs[i];
        char reason[256] = "";
        kafka_verdict_t v = b->transform(b->ctx, m, &in->outs[i], reason, sizeof(reason));
        reason[sizeof(reason) - 1] = '\0';
        if (v == KAFKA_OK) {
            continue;
        }
        if (v == KAFKA_BAD_INPUT) {
            kafka_in_reject(in, i, reason);
            continue;
        }
        snprintf(in->why, sizeof(in->why), "transform asked to retry %s[%" PRId32 "]@%" PRId64 "%s%.200s",
                 rd_kafka_topic_name(m->rkt), m->partition, m->offset, reason[0] ? ": " : "", reason);
        return KAFKA_RETRY;
    }
    return KAFKA_OK;
}

void kafka_batch_report(kafka_batch_t *b, metric_t *produced, metric_t *dlq)
{
    tally_flush(&b->produced, produced);
    tally_flush(&b->dlq, dlq);
    for (size_t i = 0; i < b->ndead; i++) {
        const rd_kafka_message_t *m = b->msgs[b->dead[i].msg];
        char part[16], off[24], trace[128];
        snprintf(part, sizeof(part), "%" PRId32, m->partition);
        snprintf(off, sizeof(off), "%" PRId64, m->offset);
        bool traced = kafka_header_copy(m, "trace_id", trace, sizeof(trace)) >= 0;
        log_warn("record sent to dead-letter topic", "topic", rd_kafka_topic_name(m->rkt), "partition", part,
                 "offset", off, "reason", b->dead[i].reason, "trace_id", traced ? trace : NULL);
    }
}

/* ---- The transaction, on a worker ------------------------------------------------ */

/* Produces one record inside the transaction; takes `hdrs`. Returns 0, or -1
 * with b->why set (and the outcome FATAL when the producer is dead). */
static int produce(kafka_batch_t *b, const char *topic, const void *key, size_t keylen, const void *value,
                   size_t len, rd_kafka_headers_t *hdrs)
{
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(b->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                              RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return 0;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(b->producer, 100); /* wait for deliveries to make room */
            continue;
        }
        if (hdrs) {
            rd_kafka_headers_destroy(hdrs);
        }
        if (err == RD_KAFKA_RESP_ERR__FATAL || kafka_err_is_fenced(err) ||
            rd_kafka_fatal_error(b->producer, NULL, 0)) {
            b->outcome = KAFKA_BATCH_FATAL;
        }
        snprintf(b->why, sizeof(b->why), "produce to %s: %s", topic, rd_kafka_err2str(err));
        b->kafka_failed = true;
        return -1;
    }
}

/* Handles the error of a transactional call. Returns true when the caller
 * should call again (retriable, tries left); otherwise records why. */
static bool txn_error(kafka_batch_t *b, const char *call, rd_kafka_error_t *e, int try)
{
    kafka_txn_action_t a = kafka_txn_classify(e);
    bool again = a == KAFKA_TXN_RETRY_CALL && try + 1 < TXN_CALL_TRIES;
    if (again) {
        log_warn("kafka transactional call failed, retrying", "call", call, "error",
                 rd_kafka_error_string(e));
    } else {
        snprintf(b->why, sizeof(b->why), "%s%s: %s: %s", a == KAFKA_TXN_FATAL ? "fatal: " : "", call,
                 rd_kafka_error_name(e), rd_kafka_error_string(e));
        b->kafka_failed = true;
        if (a == KAFKA_TXN_FATAL) {
            b->outcome = KAFKA_BATCH_FATAL;
        }
    }
    rd_kafka_error_destroy(e);
    return again;
}

/* The producer's message.max.bytes: a dead letter must stay under it. */
static size_t max_message_bytes(rd_kafka_t *producer)
{
    char buf[32];
    size_t size = sizeof(buf);
    if (rd_kafka_conf_get(rd_kafka_conf(producer), "message.max.bytes", buf, &size) != RD_KAFKA_CONF_OK) {
        return 1000000; /* librdkafka's default */
    }
    return (size_t)strtoull(buf, NULL, 10);
}

/* Routes record i to <topic>.dlq with its original key, value and headers
 * (a bounded prefix of them when the whole would not fit). */
static int dead_letter(kafka_batch_t *b, size_t i, const char *reason)
{
    const rd_kafka_message_t *m = b->msgs[i];
    const char *topic = rd_kafka_topic_name(m->rkt);
    char dlq[512];
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_message_headers(m, &orig);
    snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
    kafka_dlq_src_t src = {.topic = topic,
                           .partition = m->partition,
                           .offset = m->offset,
                           .key = m->key,
                           .keylen = m->key_len,
                           .value = m->payload,
                           .len = m->len,
                           .headers = orig};
    kafka_dlq_t d;
    if (kafka_dlq_build(&src, b->service, reason, kafka_now_ms(), max_message_bytes(b->producer), &d) != 0) {
        snprintf(b->why, sizeof(b->why), "out of memory building dead-letter headers");
        return -1;
    }
    if (produce(b, dlq, m->key, d.keylen, m->payload, d.len, d.headers) != 0) {
        return -1;
    }
    tally_add(&b->produced, dlq);
    tally_add(&b->dlq, topic);
    dead_add(b, i, reason);
    return 0;
}

/* Ends the transaction after record `done` - 1: commits offsets up to it and
 * notes where the rest starts, for the loop to seek back to. Returns 0 or -1. */
static int cut_at(kafka_batch_t *b, size_t done)
{
    rd_kafka_topic_partition_list_t *first = NULL, *next = NULL, *rest = NULL, *unused = NULL;
    if (kafka_batch_offsets(b->msgs, done, &first, &next) != 0 ||
        kafka_batch_offsets(b->msgs + done, b->n - done, &rest, &unused) != 0) {
        if (first) {
            rd_kafka_topic_partition_list_destroy(first);
            rd_kafka_topic_partition_list_destroy(next);
        }
        return -1;
    }
    rd_kafka_topic_partition_list_destroy(first);
    rd_kafka_topic_partition_list_destroy(unused);
    rd_kafka_topic_partition_list_destroy(b->next);
    b->next = next;
    b->rest = rest;
    return 0;
}

/* Produces the outputs collected in `out`. Returns 0 or -1 (b->why set). */
static int produce_out(kafka_batch_t *b, kafka_out_t *out)
{
    for (size_t r = 0; r < out->n; r++) {
        kafka_record_t *rec = &out->recs[r];
        rd_kafka_headers_t *h = rec->headers;
        rec->headers = NULL; /* handed to produce() */
        if (produce(b, rec->topic, rec->key, rec->keylen, rec->value, rec->len, h) != 0) {
            return -1;
        }
        tally_add(&b->produced, rec->topic);
    }
    return 0;
}

/* Hands the batch to its handler, then produces, record by record in order,
 * the outputs of the records it kept and the dead letters of the ones it
 * rejected. Returns 0, or -1 with b->why set (abort). */
static int batch_body(kafka_batch_t *b)
{
    kafka_in_t *in = &b->in;
    in_reset(in, b->n);
    in->msgs = b->msgs;
    in->n = in->cut = b->n;
    kafka_verdict_t v = b->handler(b->handler_ctx, in);
    if (v != KAFKA_OK) {
        if (in->why[0]) {
            snprintf(b->why, sizeof(b->why), "%s", in->why);
        } else {
            snprintf(b->why, sizeof(b->why),
                     "batch handler asked to retry %zu record(s) from %s[%" PRId32 "]@%" PRId64, b->n,
                     rd_kafka_topic_name(b->msgs[0]->rkt), b->msgs[0]->partition, b->msgs[0]->offset);
        }
        return -1;
    }
    b->done = b->n;
    if (in->cut < b->n) {
        if (cut_at(b, in->cut) != 0) {
            snprintf(b->why, sizeof(b->why), "out of memory cutting the batch at its time budget");
            return -1;
        }
        b->done = in->cut;
    }
    for (size_t i = 0; i < b->done; i++) {
        if (in->rejected[i]) {
            if (dead_letter(b, i, in->reasons[i] ? in->reasons[i] : "") != 0) {
                return -1;
            }
        } else if (produce_out(b, &in->outs[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* A timer's slot (the tick's outputs, then its marker) or a barrier (the
 * record alone). Before the offsets go out, every record must be in the log:
 * the fencing argument of kafka.h ("Timers") rests on it. Returns 0 or -1. */
static int tick_body(kafka_batch_t *b)
{
    kafka_tick_job_t *t = &b->tick;
    kafka_out_t *out = &b->in.outs[0];
    kafka_out_reset(out);
    if (t->fn) {
        t->reason[0] = '\0';
        kafka_verdict_t v = t->fn(t->ctx, t->slot, kafka_now_ms(), out, t->reason, sizeof(t->reason));
        t->reason[sizeof(t->reason) - 1] = '\0';
        t->verdict = v == KAFKA_OK || v == KAFKA_BAD_INPUT ? v : KAFKA_RETRY;
        if (t->verdict == KAFKA_RETRY) {
            snprintf(b->why, sizeof(b->why), "timer %s asked to retry slot %" PRId64 "%s%.200s", t->name,
                     t->slot, t->reason[0] ? ": " : "", t->reason);
            kafka_out_reset(out);
            return -1;
        }
        if (t->verdict == KAFKA_BAD_INPUT) {
            kafka_out_reset(out); /* the slot is marked done, without its outputs */
        }
        if (produce_out(b, out) != 0) {
            return -1;
        }
    }
    if (produce(b, t->topic, t->key, strlen(t->key), t->value, strlen(t->value), NULL) != 0) {
        return -1;
    }
    if (b->next) {
        rd_kafka_resp_err_t err = rd_kafka_flush(b->producer, FLUSH_BEFORE_ABORT_MS);
        if (err) {
            snprintf(b->why, sizeof(b->why), "flush before the timers offset: %s", rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

static void abort_txn(kafka_batch_t *b)
{
    char why[sizeof(b->why)];
    memcpy(why, b->why, sizeof(why));
    b->outcome = KAFKA_BATCH_ABORTED;
    /* Let the records already produced reach the broker first: aborting
     * while their AddPartitionsToTxn is still in flight can make the broker
     * answer EndTxn with INVALID_TXN_STATE, which librdkafka 2.0 treats as
     * fatal (librdkafka #4849). They are invisible to read_committed readers
     * once the abort marker is written. */
    rd_kafka_flush(b->producer, FLUSH_BEFORE_ABORT_MS);
    for (int try = 0;; try++) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(b->producer, TXN_TIMEOUT_MS);
        if (!e) {
            return;
        }
        if (kafka_txn_classify(e) == KAFKA_TXN_RETRY_CALL && try + 1 < TXN_CALL_TRIES) {
            rd_kafka_error_destroy(e);
            continue;
        }
        /* An abort that cannot complete leaves the producer unusable. */
        snprintf(b->why, sizeof(b->why), "fatal: abort_transaction after \"%.200s\": %s: %s", why,
                 rd_kafka_error_name(e), rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        b->outcome = KAFKA_BATCH_FATAL;
        return;
    }
}

static void run(kafka_batch_t *b)
{
    rd_kafka_error_t *e = rd_kafka_begin_transaction(b->producer);
    if (e) {
        /* No transaction is open: nothing to abort; rewind and back off. */
        txn_error(b, "begin_transaction", e, TXN_CALL_TRIES);
        return;
    }
    if ((b->job == KAFKA_JOB_BATCH ? batch_body(b) : tick_body(b)) != 0) {
        goto abort;
    }
    for (int try = 0; b->next; try++) {
        rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(b->consumer);
        e = rd_kafka_send_offsets_to_transaction(b->producer, b->next, cgmd, -1);
        rd_kafka_consumer_group_metadata_destroy(cgmd);
        if (!e) {
            break;
        }
        if (!txn_error(b, "send_offsets_to_transaction", e, try)) {
            goto abort;
        }
    }
    for (int try = 0;; try++) {
        e = rd_kafka_commit_transaction(b->producer, TXN_TIMEOUT_MS);
        if (!e) {
            b->outcome = KAFKA_BATCH_COMMITTED;
            return;
        }
        if (!txn_error(b, "commit_transaction", e, try)) {
            goto abort;
        }
    }
abort:
    if (b->outcome != KAFKA_BATCH_FATAL) {
        abort_txn(b); /* a fatal producer cannot abort; its successor's init does */
    }
}

void kafka_batch_run(kafka_batch_t *b)
{
    uint64_t t0 = uv_hrtime();
    b->outcome = KAFKA_BATCH_ABORTED;
    b->kafka_failed = false;
    run(b);
    rd_kafka_poll(b->producer, 0); /* serve the producer's error callbacks */
    b->seconds = (double)(uv_hrtime() - t0) / 1e9;
}
