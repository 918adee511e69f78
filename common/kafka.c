/* kafka: the pieces both clients share (configuration, headers, dead-letter
 * headers, batch offsets, error classification, back-off, statistics, wake-up
 * pipe). The pipeline is in kafka_pipeline.c, the idempotent producer in
 * kafka_producer.c.
 */
#include "kafka.h"
#include "kafka_internal.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- kafka_out_t ----------------------------------------------------------- */

void kafka_out_init(kafka_out_t *out)
{
    memset(out, 0, sizeof(*out));
}

static void record_free(kafka_record_t *r)
{
    free(r->topic);
    free(r->key);
    free(r->value);
    if (r->headers) {
        rd_kafka_headers_destroy(r->headers);
    }
    memset(r, 0, sizeof(*r));
}

void kafka_out_reset(kafka_out_t *out)
{
    for (size_t i = 0; i < out->n; i++) {
        record_free(&out->recs[i]);
    }
    out->n = 0;
}

void kafka_out_deinit(kafka_out_t *out)
{
    kafka_out_reset(out);
    free(out->recs);
    kafka_out_init(out);
}

static void *memdup(const void *p, size_t len)
{
    /* malloc(0) may return NULL; an empty value is still a value. */
    void *q = malloc(len ? len : 1);
    if (q && len) {
        memcpy(q, p, len);
    }
    return q;
}

int kafka_out_add(kafka_out_t *out, const char *topic, const void *key, size_t keylen, const void *value,
                  size_t len, rd_kafka_headers_t *headers)
{
    kafka_record_t r = {.headers = headers};
    if (!out || !topic || !*topic || (!key && keylen) || (!value && len)) {
        goto fail;
    }
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 4;
        kafka_record_t *recs = realloc(out->recs, cap * sizeof(*recs));
        if (!recs) {
            goto fail;
        }
        out->recs = recs;
        out->cap = cap;
    }
    r.topic = strdup(topic);
    r.key = key ? memdup(key, keylen) : NULL;
    r.value = value ? memdup(value, len) : NULL;
    if (!r.topic || (key && !r.key) || (value && !r.value)) {
        goto fail;
    }
    r.keylen = keylen;
    r.len = len;
    out->recs[out->n++] = r;
    return 0;
fail:
    record_free(&r);
    return -1;
}

/* ---- Client configuration --------------------------------------------------- */

static int conf_set_all(rd_kafka_conf_t *conf, const char *const *kv, char *err, size_t errlen)
{
    for (size_t i = 0; kv[i]; i += 2) {
        char why[256];
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka: %s=%s: %s", kv[i], kv[i + 1], why);
            return -1;
        }
    }
    return 0;
}

rd_kafka_conf_t *kafka_conf_producer(const char *bootstrap, const char *client_id,
                                     const char *transactional_id, char *err, size_t errlen)
{
    /* clang-format off */
    const char *const common[] = {
        "bootstrap.servers", bootstrap,
        "client.id", client_id,
        "acks", "all",
        "enable.idempotence", "true",
        "linger.ms", "10",
        "batch.size", "16384",
        "compression.type", "snappy",
        /* Same key -> same partition as the Java client (and Kafka Streams). */
        "partitioner", "murmur2_random",
        NULL,
    };
    const char *const txn[] = {
        "transactional.id", transactional_id,
        "transaction.timeout.ms", "30000",
        NULL,
    };
    /* clang-format on */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set_all(conf, common, err, errlen) != 0 ||
        (transactional_id && conf_set_all(conf, txn, err, errlen) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    return conf;
}

#define STR_(x) #x
#define STR(x) STR_(x)

rd_kafka_conf_t *kafka_conf_consumer(const char *bootstrap, const char *group_id, const char *client_id,
                                     const char *group_instance_id, char *err, size_t errlen)
{
    /* clang-format off */
    const char *const kv[] = {
        "bootstrap.servers", bootstrap,
        "client.id", client_id,
        "group.id", group_id,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "isolation.level", "read_committed",
        "auto.offset.reset", "earliest",
        /* Every second: the lag gauge and the brokers' liveness for /ready. */
        "statistics.interval.ms", "1000",
        "partition.assignment.strategy", "range,roundrobin",
        "enable.partition.eof", "false",
        /* A killed member's partitions move after 10 s, not 45 s. */
        "session.timeout.ms", STR(KAFKA_SESSION_TIMEOUT_MS),
        "heartbeat.interval.ms", STR(KAFKA_HEARTBEAT_MS),
        NULL,
    };
    const char *const static_member[] = {
        "group.instance.id", group_instance_id,
        NULL,
    };
    /* clang-format on */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set_all(conf, kv, err, errlen) != 0 ||
        (group_instance_id && conf_set_all(conf, static_member, err, errlen) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    return conf;
}

void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* syslog levels: 0..3 error, 4 warning, 5..6 notice/info, 7 debug */
    log_level_t l = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_event(l, "librdkafka", "client", rk ? rd_kafka_name(rk) : NULL, "facility", fac, "detail", buf, NULL);
}

/* ---- Headers ---------------------------------------------------------------- */

const void *kafka_headers_find(const rd_kafka_headers_t *hdrs, const char *name, size_t *out_len)
{
    const void *val = NULL;
    size_t size = 0;
    if (!hdrs || !name || rd_kafka_header_get_last(hdrs, name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return NULL;
    }
    if (!val) {
        val = ""; /* a header with a null value is present but empty */
    }
    if (out_len) {
        *out_len = size;
    }
    return val;
}

const void *kafka_header_get(const rd_kafka_message_t *m, const char *name, size_t *out_len)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (!m || rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return NULL;
    }
    return kafka_headers_find(hdrs, name, out_len);
}

int kafka_header_copy(const rd_kafka_message_t *m, const char *name, char *buf, size_t buflen)
{
    size_t len = 0;
    const void *v = kafka_header_get(m, name, &len);
    if (buflen) {
        size_t n = v ? (len < buflen - 1 ? len : buflen - 1) : 0;
        if (n) {
            memcpy(buf, v, n);
        }
        buf[n] = '\0';
    }
    return v ? (int)len : -1;
}

rd_kafka_headers_t *kafka_dlq_headers(const rd_kafka_headers_t *orig, const char *topic, int32_t partition,
                                      int64_t offset, const char *service, const char *reason, int64_t now_ms)
{
    char part[16], off[24], at[24];
    snprintf(part, sizeof(part), "%" PRId32, partition);
    snprintf(off, sizeof(off), "%" PRId64, offset);
    snprintf(at, sizeof(at), "%" PRId64, now_ms);
    rd_kafka_headers_t *h = orig ? rd_kafka_headers_copy(orig) : rd_kafka_headers_new(6);
    if (!h) {
        return NULL;
    }
    /* clang-format off */
    const char *const kv[] = {
        "dlq.error.reason", reason && *reason ? reason : "unspecified",
        "dlq.original.topic", topic ? topic : "",
        "dlq.original.partition", part,
        "dlq.original.offset", off,
        "dlq.service", service ? service : "",
        "dlq.failed_at", at,
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i += 2) {
        if (rd_kafka_header_add(h, kv[i], -1, kv[i + 1], -1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_headers_destroy(h);
            return NULL;
        }
    }
    return h;
}

/* librdkafka's bound on the framing of one record (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD)
 * and of one header (two varint lengths), with room to spare. */
#define RECORD_OVERHEAD 64
#define HEADER_OVERHEAD 10

static size_t headers_size(const rd_kafka_headers_t *h, size_t *out_count)
{
    size_t total = 0, count = 0;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        total += strlen(name) + size + HEADER_OVERHEAD;
        count++;
    }
    if (out_count) {
        *out_count = count;
    }
    return total;
}

size_t kafka_record_size(size_t keylen, size_t len, const rd_kafka_headers_t *headers)
{
    return RECORD_OVERHEAD + keylen + len + headers_size(headers, NULL);
}

static int header_add_u64(rd_kafka_headers_t *h, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return rd_kafka_header_add(h, name, -1, buf, -1) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int kafka_dlq_build(const kafka_dlq_src_t *src, const char *service, const char *reason, int64_t now_ms,
                    size_t max_bytes, kafka_dlq_t *out)
{
    rd_kafka_headers_t *h =
        kafka_dlq_headers(src->headers, src->topic, src->partition, src->offset, service, reason, now_ms);
    if (!h) {
        return -1;
    }
    if (kafka_record_size(src->keylen, src->len, h) <= max_bytes) {
        *out = (kafka_dlq_t){.keylen = src->keylen, .len = src->len, .headers = h};
        return 0;
    }
    /* Too large to dead-letter whole: rebuild it small enough that the
     * producer always takes it, so that the partition moves on. */
    rd_kafka_headers_destroy(h);
    size_t norig = 0;
    bool keep_orig = headers_size(src->headers, &norig) <= KAFKA_DLQ_HEADER_BYTES;
    h = kafka_dlq_headers(keep_orig ? src->headers : NULL, src->topic, src->partition, src->offset, service,
                          reason, now_ms);
    size_t keylen = src->keylen < KAFKA_DLQ_KEY_BYTES ? src->keylen : KAFKA_DLQ_KEY_BYTES;
    if (!h || rd_kafka_header_add(h, "dlq.truncated", -1, "true", -1) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        header_add_u64(h, "dlq.original.size", src->len) != 0 ||
        (keylen < src->keylen && header_add_u64(h, "dlq.original.key.size", src->keylen) != 0) ||
        (!keep_orig && norig && header_add_u64(h, "dlq.original.headers.dropped", norig) != 0)) {
        if (h) {
            rd_kafka_headers_destroy(h);
        }
        return -1;
    }
    size_t fixed = kafka_record_size(keylen, 0, h);
    size_t room = max_bytes > fixed ? max_bytes - fixed : 0;
    size_t len = src->len < KAFKA_DLQ_PREFIX_BYTES ? src->len : KAFKA_DLQ_PREFIX_BYTES;
    *out = (kafka_dlq_t){.keylen = keylen, .len = len < room ? len : room, .headers = h, .truncated = true};
    return 0;
}

/* ---- Offsets of a batch ---------------------------------------------------- */

int kafka_batch_offsets(rd_kafka_message_t *const *msgs, size_t n,
                        rd_kafka_topic_partition_list_t **out_first,
                        rd_kafka_topic_partition_list_t **out_next)
{
    rd_kafka_topic_partition_list_t *first = rd_kafka_topic_partition_list_new(4);
    rd_kafka_topic_partition_list_t *next = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *f = rd_kafka_topic_partition_list_find(first, topic, m->partition);
        if (!f) {
            rd_kafka_topic_partition_list_add(first, topic, m->partition)->offset = m->offset;
            rd_kafka_topic_partition_list_add(next, topic, m->partition)->offset = m->offset + 1;
            continue;
        }
        rd_kafka_topic_partition_t *x = rd_kafka_topic_partition_list_find(next, topic, m->partition);
        if (m->offset < f->offset) {
            f->offset = m->offset;
        }
        if (m->offset + 1 > x->offset) {
            x->offset = m->offset + 1;
        }
    }
    *out_first = first;
    *out_next = next;
    return 0;
}

/* ---- Transactions ------------------------------------------------------------ */

bool kafka_err_is_fenced(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

kafka_txn_action_t kafka_txn_classify(const rd_kafka_error_t *error)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    if (rd_kafka_error_is_fatal(error) || kafka_err_is_fenced(code) || code == RD_KAFKA_RESP_ERR__FATAL) {
        return KAFKA_TXN_FATAL;
    }
    if (rd_kafka_error_txn_requires_abort(error)) {
        return KAFKA_TXN_ABORT;
    }
    if (rd_kafka_error_is_retriable(error)) {
        return KAFKA_TXN_RETRY_CALL;
    }
    return KAFKA_TXN_ABORT;
}

/* ---- Back-off ----------------------------------------------------------------- */

uint64_t kafka_backoff_ms(unsigned attempt, double r01)
{
    uint64_t cap = KAFKA_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < attempt && cap < KAFKA_BACKOFF_MAX_MS; i++) {
        cap *= 2;
    }
    if (cap > KAFKA_BACKOFF_MAX_MS) {
        cap = KAFKA_BACKOFF_MAX_MS;
    }
    if (!(r01 >= 0)) {
        r01 = 0;
    } else if (r01 >= 1) {
        r01 = 0.999999;
    }
    uint64_t ms = cap / 2 + (uint64_t)(r01 * (double)(cap - cap / 2));
    return ms < KAFKA_BACKOFF_MIN_MS ? KAFKA_BACKOFF_MIN_MS : ms;
}

/* ---- Statistics ----------------------------------------------------------------- */

static int64_t json_int_or(json_t *obj, const char *key, int64_t def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int kafka_stats_lag(const char *json, size_t len, kafka_lag_fn fn, void *ctx)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    const char *topic;
    json_t *t;
    json_object_foreach(json_object_get(root, "topics"), topic, t)
    {
        const char *key;
        json_t *part;
        json_object_foreach(json_object_get(t, "partitions"), key, part)
        {
            int64_t id = json_int_or(part, "partition", -1);
            if (id < 0 || id > INT32_MAX) {
                continue; /* -1 is the internal UA partition */
            }
            int64_t lag = json_int_or(part, "consumer_lag_stored", -1);
            if (lag < 0) {
                lag = json_int_or(part, "consumer_lag", -1);
            }
            fn(ctx, topic, (int32_t)id, lag);
        }
    }
    json_decref(root);
    return 0;
}

int kafka_stats_brokers(const char *json, size_t len, kafka_brokers_stats_t *out)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    int64_t ts = json_int_or(root, "ts", -1);
    if (!json_is_object(root) || ts < 0) {
        json_decref(root);
        return -1;
    }
    kafka_brokers_stats_t s = {.ts_us = ts};
    const char *name;
    json_t *b;
    json_object_foreach(json_object_get(root, "brokers"), name, b)
    {
        int64_t rx = json_int_or(b, "rx", 0);
        s.rx += rx > 0 ? rx : 0;
        const char *state = json_string_value(json_object_get(b, "state"));
        s.up += state && strcmp(state, "UP") == 0;
    }
    json_decref(root);
    *out = s;
    return 0;
}

/* ---- Broker liveness ------------------------------------------------------------- */

void kafka_liveness_init(kafka_liveness_t *l, int64_t now_us)
{
    *l = (kafka_liveness_t){.rx = -1, .seen_us = now_us, .alive_us = now_us};
}

void kafka_liveness_update(kafka_liveness_t *l, const kafka_brokers_stats_t *s)
{
    if (s->rx > l->rx && l->rx >= 0 && s->up > 0) {
        l->alive_us = s->ts_us;
    }
    l->rx = s->rx;
    if (s->ts_us > l->seen_us) {
        l->seen_us = s->ts_us;
    }
}

bool kafka_liveness_ok(const kafka_liveness_t *l, int64_t down_at_us, char *why, size_t whylen)
{
    int64_t quiet_ms = (l->seen_us - l->alive_us) / 1000;
    if (down_at_us > l->alive_us) {
        if (why && whylen) {
            snprintf(why, whylen, "all brokers down");
        }
        return false;
    }
    if (quiet_ms > KAFKA_STALL_MS) {
        if (why && whylen) {
            snprintf(why, whylen, "no response from any broker for %" PRId64 " ms", quiet_ms);
        }
        return false;
    }
    return true;
}

/* ---- Loop wake-up --------------------------------------------------------------- */

int kafka_wake_pipe(int fds[2])
{
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

void kafka_wake_drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

void kafka_format_partitions(const rd_kafka_topic_partition_list_t *l, char *buf, size_t len)
{
    size_t used = 0;
    const char *prev = NULL;
    if (!len) {
        return;
    }
    buf[0] = '\0';
    for (int i = 0; l && i < l->cnt && used < len; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        int w;
        if (prev && strcmp(prev, tp->topic) == 0) {
            w = snprintf(buf + used, len - used, ",%" PRId32, tp->partition);
        } else {
            w = snprintf(buf + used, len - used, "%s%s%s[%" PRId32, prev ? "]" : "", prev ? " " : "",
                         tp->topic, tp->partition);
        }
        if (w < 0) {
            break;
        }
        used += (size_t)w;
        prev = tp->topic;
    }
    if (prev && used < len) {
        snprintf(buf + used, len - used, "]");
    }
}

int64_t kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kafka_default_transactional_id(const char *service, char *buf, size_t buflen)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    int w = snprintf(buf, buflen, "%s-%s", service ? service : "hive", host);
    return w < 0 || (size_t)w >= buflen ? -1 : 0;
}

/* ---- Topics ------------------------------------------------------------------------ */

/* True when the cluster lists `topic` (a metadata request for all topics, which
 * never creates one the way a request naming it can). */
static bool topic_listed(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    bool found = false;
    for (int i = 0; i < md->topic_cnt && !found; i++) {
        found = strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    rd_kafka_metadata_destroy(md);
    return found;
}

int kafka_topic_ready(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return 0;
    }
    int ready = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (strcmp(t->topic, topic) != 0 || t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            continue;
        }
        ready = t->partition_cnt;
        for (int j = 0; j < t->partition_cnt; j++) {
            ready = t->partitions[j].leader >= 0 ? ready : 0;
        }
    }
    rd_kafka_metadata_destroy(md);
    return ready;
}

int kafka_topic_ensure(rd_kafka_t *rk, const char *topic, int partitions, const char *const *config,
                       int timeout_ms, char *err, size_t errlen)
{
    char why[256] = "";
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, why, sizeof(why));
    if (!nt) {
        snprintf(err, errlen, "create topic %s: %s", topic, why);
        return -1;
    }
    for (size_t i = 0; config && config[i]; i += 2) {
        rd_kafka_NewTopic_set_config(nt, config[i], config[i + 1]);
    }
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (ev && rd_kafka_event_error(ev)) {
        e = rd_kafka_event_error(ev);
        snprintf(why, sizeof(why), "%s", rd_kafka_event_error_string(ev));
    } else if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        e = n == 1 ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
        if (n == 1 && e) {
            snprintf(why, sizeof(why), "%s", rd_kafka_topic_result_error_string(res[0]));
        }
    }
    if (ev) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    /* A cluster that cannot create topics (an old broker, a mock) may still
     * hold it. */
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ||
        topic_listed(rk, topic, timeout_ms)) {
        return 0;
    }
    snprintf(err, errlen, "create topic %s: %s: %s", topic, rd_kafka_err2name(e), why[0] ? why : "no answer");
    return -1;
}
