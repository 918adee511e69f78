#include "redis.h"

#include "log.h"

#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 6379
#define MAX_ADDRS 4 /* addresses of a host name tried in turn */

typedef enum {
    ST_WAITING,    /* backoff timer armed before the next attempt */
    ST_RESOLVING,  /* uv_getaddrinfo in flight */
    ST_CONNECTING, /* socket connecting; timer is the connect deadline */
    ST_CONNECTED,  /* timer is the command watchdog */
    ST_CLOSING,
} state_t;

/* One hiredis connection and the uv_poll_t that drives its socket. It lives
 * until the poll handle's close callback, which may come after hiredis has
 * freed the context (ac is then NULL). */
typedef struct {
    redis_t *r;
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
} conn_t;

/* A command waiting for its reply; replies come in order, so the list (oldest
 * first) tells the watchdog how long the oldest one has waited. */
typedef struct req_s {
    struct req_s *prev, *next;
    redis_t *r;
    redis_reply_cb cb;
    void *arg;
    uint64_t sent_ms;
} req_t;

struct redis_s {
    uv_loop_t *loop;
    char *host;
    char addr[80]; /* "host:port", for logs */
    int port;
    char ips[MAX_ADDRS][64]; /* the host's numeric addresses */
    int nips, ip_idx;        /* how many, and the one being tried */
    unsigned connect_timeout_ms, command_timeout_ms, backoff_min_ms, backoff_max_ms;
    metric_t *up_gauge;

    state_t state;
    bool up;        /* connected and not known to be failing */
    bool timed_out; /* dropping the connection for a stuck command */
    bool resolving; /* gai is in flight */
    bool timer_closed;
    unsigned attempt; /* failed attempts since the last connection */
    conn_t *conn;     /* the connection being made or in use */
    int nconns;       /* conn_t whose poll handle is not closed yet */
    req_t pending;    /* list sentinel */
    uv_timer_t timer; /* backoff, connect deadline or watchdog, by state */
    uv_getaddrinfo_t gai;
    void (*close_done)(void *arg);
    void *close_arg;
};

static void start_connect(redis_t *r);
static void schedule_retry(redis_t *r);

/* ----------------------------------------------------------------- backoff */

unsigned redis_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms, uint32_t rnd)
{
    if (min_ms == 0) {
        min_ms = 1;
    }
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    uint64_t cap = min_ms;
    for (unsigned i = 0; i < attempt && cap < max_ms; i++) {
        cap *= 2;
    }
    if (cap > max_ms) {
        cap = max_ms;
    }
    uint64_t half = cap / 2;
    return (unsigned)(half + rnd % (cap - half + 1));
}

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        v = (uint32_t)uv_hrtime(); /* jitter only: any spread will do */
    }
    return v;
}

/* ------------------------------------------------- hiredis on a uv_poll_t */

/* The event hooks hiredis calls. Written here rather than taken from
 * <hiredis/adapters/libuv.h> because that adapter frees its uv_poll_t in a
 * close callback we cannot see, so redis_close could not know when every
 * handle is closed; and (in 0.14) it ignores poll errors, which can leave a
 * broken socket unnoticed. */
static void on_poll(uv_poll_t *h, int status, int events)
{
    conn_t *c = h->data;
    if (status < 0) {
        events = UV_READABLE | UV_WRITABLE; /* let hiredis read the socket error */
    }
    if (c->ac && (events & UV_READABLE)) {
        redisAsyncHandleRead(c->ac);
    }
    if (c->ac && (events & UV_WRITABLE)) {
        redisAsyncHandleWrite(c->ac);
    }
}

static void poll_update(conn_t *c, int add, int del)
{
    c->events = (c->events | add) & ~del;
    if (uv_is_closing((uv_handle_t *)&c->poll)) {
        return;
    }
    if (c->events) {
        uv_poll_start(&c->poll, c->events, on_poll);
    } else {
        uv_poll_stop(&c->poll);
    }
}

static void ev_add_read(void *p)
{
    poll_update(p, UV_READABLE, 0);
}

static void ev_del_read(void *p)
{
    poll_update(p, 0, UV_READABLE);
}

static void ev_add_write(void *p)
{
    poll_update(p, UV_WRITABLE, 0);
}

static void ev_del_write(void *p)
{
    poll_update(p, 0, UV_WRITABLE);
}

static void maybe_closed(redis_t *r)
{
    if (r->state != ST_CLOSING || !r->timer_closed || r->resolving || r->nconns > 0) {
        return;
    }
    void (*done)(void *) = r->close_done;
    void *arg = r->close_arg;
    free(r->host);
    free(r);
    if (done) {
        done(arg);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    redis_t *r = c->r;
    free(c);
    r->nconns--;
    maybe_closed(r);
}

/* hiredis is freeing the context: stop watching the socket. */
static void ev_cleanup(void *p)
{
    conn_t *c = p;
    c->ac = NULL;
    if (c->r->conn == c) {
        c->r->conn = NULL;
    }
    uv_close((uv_handle_t *)&c->poll, on_poll_closed);
}

/* ------------------------------------------------------------- connection */

static void set_up(redis_t *r, bool up)
{
    if (r->up == up) {
        return;
    }
    r->up = up;
    if (r->up_gauge) {
        metric_set(r->up_gauge, up ? 1.0 : 0.0);
    }
}

static void on_timer(uv_timer_t *t);
static void connect_next(redis_t *r);

/* The attempt on the current address failed: try the host's next address at
 * once, or back off once all have failed. Only the first failure of a streak
 * is logged, so a long outage does not flood the log. */
static void connect_failed(redis_t *r, const char *msg, const char *error)
{
    if (r->ip_idx + 1 < r->nips) {
        r->ip_idx++;
        connect_next(r);
        return;
    }
    if (r->attempt == 0) {
        log_warn(msg, "addr", r->addr, "error", error);
    }
    schedule_retry(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    redis_t *r = c->r;
    if (r->state == ST_CLOSING) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis frees this context (and calls ev_cleanup) after we return. */
        connect_failed(r, "redis connect failed, retrying with backoff", ac->errstr);
        return;
    }
    r->state = ST_CONNECTED;
    r->attempt = 0;
    set_up(r, true);
    log_info("redis connected", "addr", r->addr);
    unsigned tick = r->command_timeout_ms / 4 ? r->command_timeout_ms / 4 : 1;
    uv_timer_start(&r->timer, on_timer, tick, tick);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    redis_t *r = c->r;
    if (r->state == ST_CLOSING) {
        return;
    }
    if (r->timed_out) {
        log_warn("redis command timed out, reconnecting", "addr", r->addr);
    } else {
        log_warn("redis connection lost, reconnecting", "addr", r->addr, "error",
                 status == REDIS_OK ? "closed" : ac->errstr);
    }
    schedule_retry(r);
}

/* Arms the backoff timer for the next attempt. */
static void schedule_retry(redis_t *r)
{
    r->state = ST_WAITING;
    set_up(r, false);
    unsigned delay = redis_backoff_ms(r->attempt, r->backoff_min_ms, r->backoff_max_ms, random_u32());
    r->attempt++;
    uv_timer_start(&r->timer, on_timer, delay, 0);
}

/* Creates the hiredis context for the current numeric address and attaches
 * it to a uv_poll_t. hiredis connects non-blocking: the outcome comes to
 * on_connect, or the connect deadline fires. */
static void connect_next(redis_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->ips[r->ip_idx], r->port);
    if (!ac || ac->err) {
        char error[128];
        snprintf(error, sizeof(error), "%s", ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        connect_failed(r, "redis connect failed, retrying with backoff", error);
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (!c || uv_poll_init(r->loop, &c->poll, ac->c.fd) != 0) {
        free(c);
        redisAsyncFree(ac);
        connect_failed(r, "redis connect failed, retrying with backoff", "cannot watch the socket");
        return;
    }
    c->r = r;
    c->ac = ac;
    c->poll.data = c;
    r->nconns++;
    r->conn = c;
    ac->data = c;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    r->state = ST_CONNECTING;
    /* Setting the connect callback arms the write event that reports the
     * connect(2) outcome, so the hooks above must be in place first. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->timer, on_timer, r->connect_timeout_ms, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redis_t *r = req->data;
    r->resolving = false;
    r->nips = r->ip_idx = 0;
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai && r->nips < MAX_ADDRS; ai = ai->ai_next) {
        int rc =
            ai->ai_family == AF_INET6
                ? uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, r->ips[r->nips], sizeof(r->ips[0]))
                : uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, r->ips[r->nips], sizeof(r->ips[0]));
        if (rc == 0) {
            r->nips++;
        }
    }
    if (status == 0) {
        uv_freeaddrinfo(res);
    }
    if (r->state == ST_CLOSING) {
        maybe_closed(r);
        return;
    }
    if (r->nips == 0) {
        connect_failed(r, "redis host not resolved, retrying with backoff",
                       status ? uv_strerror(status) : "no address");
        return;
    }
    connect_next(r);
}

/* Resolves the host off the loop (getaddrinfo blocks) unless it is already a
 * numeric address. A name may resolve to several addresses ("localhost" to
 * ::1 and 127.0.0.1): each is tried in turn before backing off. */
static void start_connect(redis_t *r)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (uv_inet_pton(AF_INET, r->host, buf) == 0 || uv_inet_pton(AF_INET6, r->host, buf) == 0) {
        snprintf(r->ips[0], sizeof(r->ips[0]), "%s", r->host);
        r->nips = 1;
        r->ip_idx = 0;
        connect_next(r);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->gai.data = r;
    r->state = ST_RESOLVING;
    r->nips = r->ip_idx = 0;
    if (uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->host, NULL, &hints) != 0) {
        connect_failed(r, "redis host not resolved, retrying with backoff", "uv_getaddrinfo failed");
        return;
    }
    r->resolving = true;
}

/* Drops the connection now: hiredis completes every pending command with a
 * NULL reply and frees the context (on_disconnect is called if it was up). */
static void drop_connection(redis_t *r)
{
    conn_t *c = r->conn;
    if (c && c->ac) {
        redisAsyncFree(c->ac);
    }
    r->conn = NULL;
}

static void on_timer(uv_timer_t *t)
{
    redis_t *r = t->data;
    switch (r->state) {
    case ST_WAITING:
        start_connect(r);
        break;
    case ST_CONNECTING:
        drop_connection(r); /* not connected yet: hiredis calls neither callback */
        connect_failed(r, "redis connect timed out, retrying with backoff", "timeout");
        break;
    case ST_CONNECTED: {
        /* The watchdog: hiredis 0.14 has no command timeout of its own. */
        req_t *oldest = r->pending.next;
        if (oldest != &r->pending && uv_now(r->loop) - oldest->sent_ms >= r->command_timeout_ms) {
            r->timed_out = true;
            set_up(r, false);
            drop_connection(r); /* on_disconnect schedules the reconnect */
            r->timed_out = false;
        }
        break;
    }
    default:
        break;
    }
}

/* ---------------------------------------------------------------- commands */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    req_t *q = privdata;
    redis_t *r = q->r;
    const redisReply *rep = reply;
    int status = 0;
    q->prev->next = q->next;
    q->next->prev = q->prev;
    if (!rep) {
        /* The connection is going away: say so before the callback runs, so
         * a caller that retries at once sees "not connected". */
        status = r->state == ST_CLOSING ? HIVE_ECANCELED : r->timed_out ? HIVE_ETIMEDOUT : HIVE_EUNAVAILABLE;
        if (r->state != ST_CLOSING) {
            set_up(r, false);
        }
    } else if (rep->type == REDIS_REPLY_ERROR) {
        status = HIVE_EREJECTED;
    }
    q->cb(q->arg, status, rep);
    free(q);
}

int redis_command(redis_t *r, redis_reply_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen)
{
    if (!r || !cb || argc <= 0 || !argv) {
        return HIVE_EINVAL;
    }
    if (r->state != ST_CONNECTED || !r->up || !r->conn || !r->conn->ac) {
        return HIVE_EUNAVAILABLE;
    }
    req_t *q = calloc(1, sizeof(*q));
    if (!q) {
        return HIVE_ENOMEM;
    }
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->sent_ms = uv_now(r->loop);
    if (redisAsyncCommandArgv(r->conn->ac, on_reply, q, argc, argv, argvlen) != REDIS_OK) {
        free(q);
        return HIVE_EUNAVAILABLE;
    }
    q->prev = r->pending.prev;
    q->next = &r->pending;
    r->pending.prev->next = q;
    r->pending.prev = q;
    return 0;
}

/* ---------------------------------------------------------- create/close */

redis_t *redis_create(uv_loop_t *loop, const redis_opts_t *opts)
{
    redis_opts_t o = opts ? *opts : (redis_opts_t){0};
    if (!loop || o.port < 0 || o.port > 65535) {
        return NULL;
    }
    redis_t *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->host = strdup(o.host && o.host[0] ? o.host : DEFAULT_HOST);
    if (!r->host) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->port = o.port ? o.port : DEFAULT_PORT;
    r->connect_timeout_ms = o.connect_timeout_ms ? o.connect_timeout_ms : 2000;
    r->command_timeout_ms = o.command_timeout_ms ? o.command_timeout_ms : 2000;
    r->backoff_min_ms = o.backoff_min_ms ? o.backoff_min_ms : 100;
    r->backoff_max_ms = o.backoff_max_ms ? o.backoff_max_ms : 10000;
    snprintf(r->addr, sizeof(r->addr), strchr(r->host, ':') ? "[%.60s]:%d" : "%.60s:%d", r->host, r->port);
    r->pending.next = r->pending.prev = &r->pending;
    if (o.metrics) {
        r->up_gauge = metrics_gauge(o.metrics, "redis_up", "1 when connected to Redis, 0 otherwise", NULL);
        if (r->up_gauge) {
            metric_set(r->up_gauge, 0.0);
        }
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    start_connect(r);
    return r;
}

bool redis_connected(const redis_t *r)
{
    return r && r->state == ST_CONNECTED && r->up;
}

static void on_timer_closed(uv_handle_t *h)
{
    redis_t *r = h->data;
    r->timer_closed = true;
    maybe_closed(r);
}

void redis_close(redis_t *r, void (*done)(void *arg), void *arg)
{
    if (!r) {
        if (done) {
            done(arg);
        }
        return;
    }
    if (r->state == ST_CLOSING) {
        return;
    }
    r->state = ST_CLOSING;
    r->close_done = done;
    r->close_arg = arg;
    set_up(r, false);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    if (r->resolving) {
        uv_cancel((uv_req_t *)&r->gai); /* on_resolved still runs, with UV_ECANCELED */
    }
    drop_connection(r);
}
