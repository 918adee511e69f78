#include "redis_sync.h"

#include "hive_err.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct redis_sync_s {
    char *host;
    int port;
    struct timeval connect_timeout, command_timeout;
    unsigned max_conns;
    pthread_mutex_t mu;
    pthread_cond_t freed;
    redisContext **idle; /* connections not in use, up to max_conns */
    unsigned nidle;
    unsigned open; /* connections in use or idle */
};

static struct timeval tv_of(unsigned ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000};
}

redis_sync_t *redis_sync_create(const redis_sync_opts_t *opts)
{
    if (!opts || !opts->host || !opts->host[0] || opts->port <= 0 || opts->port > 65535) {
        return NULL;
    }
    redis_sync_t *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->host = strdup(opts->host);
    s->port = opts->port;
    s->connect_timeout = tv_of(opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000);
    s->command_timeout = tv_of(opts->command_timeout_ms ? opts->command_timeout_ms : 2000);
    s->max_conns = opts->max_conns ? opts->max_conns : 4;
    s->idle = calloc(s->max_conns, sizeof(*s->idle));
    if (!s->host || !s->idle) {
        free(s->idle);
        free(s->host);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->freed, NULL);
    return s;
}

void redis_sync_destroy(redis_sync_t *s)
{
    if (!s) {
        return;
    }
    for (unsigned i = 0; i < s->nidle; i++) {
        redisFree(s->idle[i]);
    }
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->mu);
    free(s->idle);
    free(s->host);
    free(s);
}

/* Takes an idle connection, or the right to open one, waiting while all
 * max_conns are in use. Sets *out to the connection or NULL (open a new one). */
static void take(redis_sync_t *s, redisContext **out)
{
    pthread_mutex_lock(&s->mu);
    while (s->nidle == 0 && s->open >= s->max_conns) {
        pthread_cond_wait(&s->freed, &s->mu);
    }
    if (s->nidle > 0) {
        *out = s->idle[--s->nidle];
    } else {
        *out = NULL;
        s->open++;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Gives a connection back: kept if healthy, otherwise freed (c may be NULL). */
static void give(redis_sync_t *s, redisContext *c, bool healthy)
{
    if (c && !healthy) {
        redisFree(c);
        c = NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (c) {
        s->idle[s->nidle++] = c;
    } else {
        s->open--;
    }
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->mu);
}

static redisContext *connect_one(redis_sync_t *s, int *out_rc)
{
    redisContext *c = redisConnectWithTimeout(s->host, s->port, s->connect_timeout);
    if (!c) {
        *out_rc = HIVE_ENOMEM;
        return NULL;
    }
    if (c->err) {
        log_warn("redis: cannot connect", "error", c->errstr);
        *out_rc = c->err == REDIS_ERR_IO && (errno == ETIMEDOUT || errno == EINPROGRESS) ? HIVE_ETIMEDOUT
                                                                                         : HIVE_EUNAVAILABLE;
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, s->command_timeout) != REDIS_OK) {
        *out_rc = HIVE_EUNAVAILABLE;
        redisFree(c);
        return NULL;
    }
    return c;
}

int redis_sync_command(redis_sync_t *s, int argc, const char *const *argv, const size_t *argvlen,
                       redisReply **out_reply)
{
    if (!s || argc <= 0 || !argv || !out_reply) {
        return HIVE_EINVAL;
    }
    *out_reply = NULL;
    redisContext *c;
    take(s, &c);
    int rc = 0;
    if (!c && !(c = connect_one(s, &rc))) {
        give(s, NULL, false);
        return rc;
    }
    errno = 0;
    /* hiredis does not write through argv; its prototype predates const. */
    redisReply *reply = redisCommandArgv(c, argc, (const char **)argv, argvlen);
    if (!reply) {
        /* The context is unusable after an I/O error or a timeout: drop it. */
        bool timeout = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        rc = c->err == REDIS_ERR_OOM ? HIVE_ENOMEM : timeout ? HIVE_ETIMEDOUT : HIVE_EUNAVAILABLE;
        give(s, c, false);
        return rc;
    }
    give(s, c, true);
    *out_reply = reply;
    return reply->type == REDIS_REPLY_ERROR ? HIVE_EREJECTED : 0;
}
