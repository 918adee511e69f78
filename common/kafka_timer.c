/* kafka_timer: the timers of a pipeline and the state of the replica that runs
 * them (kafka.h, "Timers"): which slot comes next, when, what the markers read
 * back say, and when the owner has caught up with its barrier. No I/O and no
 * clock: time comes in as `now_ms`, so every decision can be replayed in a
 * test. The pipeline (kafka_pipeline.c) feeds it records and runs the
 * transactions it asks for (kafka_batch.c).
 */
#include "kafka.h"
#include "kafka_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Pure helpers ------------------------------------------------------------- */

int64_t kafka_timer_slot(int64_t now_ms, uint64_t interval_ms)
{
    int64_t iv = interval_ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(interval_ms ? interval_ms : 1);
    int64_t q = now_ms / iv;
    if (now_ms % iv != 0 && now_ms < 0) {
        q--; /* C truncates toward zero; a slot is a floor */
    }
    return q;
}

int64_t kafka_timer_next_slot(int64_t marker, int64_t floor)
{
    if (marker == KAFKA_SLOT_NONE || marker == INT64_MAX || marker + 1 < floor) {
        return floor;
    }
    return marker + 1;
}

int kafka_timer_marker_parse(const void *value, size_t len, int64_t *out_slot)
{
    const char *s = value;
    if (!s || len == 0 || len > 20) {
        return -1;
    }
    size_t i = 0;
    bool neg = s[0] == '-';
    if (neg && ++i == len) {
        return -1;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) {
        return -1;
    }
    *out_slot = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

bool kafka_timer_name_ok(const char *name)
{
    if (!name || !*name || strlen(name) > KAFKA_TIMER_NAME_MAX) {
        return false;
    }
    for (const char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '.' || *c == '_' || *c == ':' || *c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ---- The table ---------------------------------------------------------------- */

int kafka_timers_init(kafka_timers_t *ts, const char *txn_id)
{
    memset(ts, 0, sizeof(*ts));
    ts->state = KAFKA_TIMERS_IDLE;
    int n = snprintf(ts->barrier_key, sizeof(ts->barrier_key), "#barrier:%s", txn_id ? txn_id : "");
    return n > 0 && (size_t)n < sizeof(ts->barrier_key) ? 0 : -1;
}

void kafka_timers_deinit(kafka_timers_t *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->v[i].name);
    }
    free(ts->v);
    memset(ts, 0, sizeof(*ts));
}

int kafka_timers_add(kafka_timers_t *ts, const char *name, uint64_t interval_ms, kafka_tick_fn fn, void *ctx)
{
    if (!kafka_timer_name_ok(name) || !fn || interval_ms < KAFKA_TIMER_MIN_INTERVAL_MS ||
        interval_ms > (uint64_t)INT64_MAX / 2) {
        return -1;
    }
    for (size_t i = 0; i < ts->n; i++) {
        if (strcmp(ts->v[i].name, name) == 0) {
            return -1;
        }
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 4;
        kafka_timer_t *v = realloc(ts->v, cap * sizeof(*v));
        if (!v) {
            return -1;
        }
        ts->v = v;
        ts->cap = cap;
    }
    char *dup = strdup(name);
    if (!dup) {
        return -1;
    }
    ts->v[ts->n++] = (kafka_timer_t){.name = dup,
                                     .interval_ms = interval_ms,
                                     .fn = fn,
                                     .ctx = ctx,
                                     .marker = KAFKA_SLOT_NONE,
                                     .floor = KAFKA_SLOT_NONE};
    return 0;
}

static void forget(kafka_timers_t *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        kafka_timer_t *t = &ts->v[i];
        t->marker = t->floor = KAFKA_SLOT_NONE;
        t->attempt = 0;
        t->retry_at_ms = 0;
    }
    ts->next_offset = 0;
    ts->barrier_attempt = 0;
    ts->barrier_retry_at_ms = 0;
    ts->token[0] = '\0';
}

void kafka_timers_assigned(kafka_timers_t *ts, uint64_t nonce)
{
    forget(ts);
    ts->generation++;
    snprintf(ts->token, sizeof(ts->token), "%u-%016" PRIx64, ts->generation, nonce);
    ts->state = KAFKA_TIMERS_BARRIER;
}

void kafka_timers_revoked(kafka_timers_t *ts)
{
    forget(ts);
    ts->state = KAFKA_TIMERS_IDLE;
}

bool kafka_timers_on_record(kafka_timers_t *ts, const void *key, size_t keylen, const void *value, size_t len,
                            int64_t offset, int64_t now_ms)
{
    if (ts->state == KAFKA_TIMERS_IDLE) {
        return false;
    }
    if (offset + 1 > ts->next_offset) {
        ts->next_offset = offset + 1;
    }
    if (!key || keylen == 0 || !value) {
        return false; /* tombstones and keyless records carry no marker */
    }
    if (((const char *)key)[0] == '#') {
        bool ours = keylen == strlen(ts->barrier_key) && memcmp(key, ts->barrier_key, keylen) == 0 &&
                    len == strlen(ts->token) && memcmp(value, ts->token, len) == 0;
        if (!ours || ts->state != KAFKA_TIMERS_READING) {
            return false;
        }
        ts->state = KAFKA_TIMERS_RUNNING;
        for (size_t i = 0; i < ts->n; i++) {
            ts->v[i].floor = kafka_timer_slot(now_ms, ts->v[i].interval_ms);
        }
        return true;
    }
    for (size_t i = 0; i < ts->n; i++) {
        kafka_timer_t *t = &ts->v[i];
        int64_t slot;
        if (strlen(t->name) == keylen && memcmp(t->name, key, keylen) == 0 &&
            kafka_timer_marker_parse(value, len, &slot) == 0 &&
            (t->marker == KAFKA_SLOT_NONE || slot > t->marker)) {
            t->marker = slot;
        }
    }
    return false;
}

static int64_t retry_at(int64_t now_ms, unsigned *attempt, double r01)
{
    uint64_t ms = kafka_backoff_ms(*attempt, r01);
    if (*attempt < 32) {
        (*attempt)++;
    }
    return now_ms + (int64_t)ms;
}

void kafka_timers_barrier_done(kafka_timers_t *ts, bool committed, int64_t now_ms, double r01)
{
    if (ts->state != KAFKA_TIMERS_BARRIER) {
        return; /* revoked meanwhile */
    }
    if (committed) {
        ts->state = KAFKA_TIMERS_READING;
        ts->barrier_attempt = 0;
    } else {
        ts->barrier_retry_at_ms = retry_at(now_ms, &ts->barrier_attempt, r01);
    }
}

bool kafka_timers_barrier_due(const kafka_timers_t *ts, int64_t now_ms)
{
    return ts->n > 0 && ts->state == KAFKA_TIMERS_BARRIER && now_ms >= ts->barrier_retry_at_ms;
}

/* The wall-clock start of the timer's next slot (saturating). */
static int64_t next_start_ms(const kafka_timer_t *t)
{
    int64_t next = kafka_timer_next_slot(t->marker, t->floor);
    int64_t iv = (int64_t)t->interval_ms;
    if (next > INT64_MAX / iv) {
        return INT64_MAX;
    }
    if (next < INT64_MIN / iv) {
        return INT64_MIN;
    }
    return next * iv;
}

ssize_t kafka_timers_due(const kafka_timers_t *ts, int64_t now_ms, int64_t *out_slot)
{
    if (ts->state != KAFKA_TIMERS_RUNNING) {
        return -1;
    }
    ssize_t best = -1;
    int64_t best_start = 0;
    for (size_t i = 0; i < ts->n; i++) {
        const kafka_timer_t *t = &ts->v[i];
        int64_t next = kafka_timer_next_slot(t->marker, t->floor);
        if (next > kafka_timer_slot(now_ms, t->interval_ms) || now_ms < t->retry_at_ms) {
            continue;
        }
        int64_t start = next_start_ms(t);
        if (best < 0 || start < best_start) {
            best = (ssize_t)i;
            best_start = start;
        }
    }
    if (best >= 0) {
        *out_slot = kafka_timer_next_slot(ts->v[best].marker, ts->v[best].floor);
    }
    return best;
}

void kafka_timers_tick_done(kafka_timers_t *ts, size_t i, int64_t slot, bool committed, int64_t now_ms,
                            double r01)
{
    if (i >= ts->n || ts->state != KAFKA_TIMERS_RUNNING) {
        return;
    }
    kafka_timer_t *t = &ts->v[i];
    if (committed) {
        if (t->marker == KAFKA_SLOT_NONE || slot > t->marker) {
            t->marker = slot;
        }
        t->attempt = 0;
        t->retry_at_ms = 0;
    } else {
        t->retry_at_ms = retry_at(now_ms, &t->attempt, r01);
    }
}

int64_t kafka_timers_next_wake_ms(const kafka_timers_t *ts, int64_t now_ms)
{
    if (ts->n == 0) {
        return -1;
    }
    if (ts->state == KAFKA_TIMERS_BARRIER) {
        return ts->barrier_retry_at_ms > now_ms ? ts->barrier_retry_at_ms - now_ms : 0;
    }
    if (ts->state != KAFKA_TIMERS_RUNNING) {
        return -1;
    }
    int64_t wake = INT64_MAX;
    for (size_t i = 0; i < ts->n; i++) {
        const kafka_timer_t *t = &ts->v[i];
        int64_t at = next_start_ms(t);
        if (t->retry_at_ms > at) {
            at = t->retry_at_ms;
        }
        if (at < wake) {
            wake = at;
        }
    }
    return wake <= now_ms ? 0 : wake - now_ms;
}
