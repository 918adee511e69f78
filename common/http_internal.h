/* http_internal: what http.c (the server: listener, connections, shutdown)
 * and http_req.c (one request: routing, body, answers) share. Not for use
 * outside common/http*.c. */
#ifndef HIVE_HTTP_INTERNAL_H
#define HIVE_HTTP_INTERNAL_H

#include <h2o.h>

#include "http.h"
#include "router.h"

/* An accepted connection. The uv_tcp_t comes first: h2o hands it back to
 * conn_closed() once it has closed the socket. */
typedef struct http_conn_s {
    uv_tcp_t tcp;
    http_server_t *srv;
    struct http_conn_s *prev, *next;
} http_conn_t;

/* What the router holds for a route. */
typedef struct {
    http_handler_fn fn;
    void *ctx;
} route_target_t;

typedef struct {
    char *name;
    http_check_fn fn;
    http_check_detail_fn detail_fn;
    void *ctx;
} ready_check_t;

/* The one h2o handler, on "/": every request goes through the router. */
typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} root_handler_t;

struct http_server_s {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_timer_t drain_timer;
    int port;
    unsigned drain_ms;

    router_t *router;
    route_target_t **targets;
    size_t ntargets;
    ready_check_t *checks;
    size_t nchecks;

    metrics_t *metrics;
    metric_t *m_requests, *m_duration;

    http_conn_t *conns; /* open connections */
    size_t nconns;
    http_req_t *inflight; /* requests not answered yet */

    bool closing, listener_closed, disposing, closed;
    int pending; /* handles still closing in the last stage of close */
    void (*done)(void *arg);
    void *done_arg;
};

/* Routes an h2o request and calls its handler (the h2o handler's on_req). */
int http_req_handle(http_server_t *s, h2o_req_t *req);

/* snprintf into `err` when it is not NULL. */
void http_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
