/* http: the server. Listener, connections and h2o's context on the
 * service's loop, the built-in routes, and an orderly shutdown. A request's
 * own life is in http_req.c. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"
#include "listen.h"
#include "log.h"

/* ---- built-in routes ------------------------------------------------------- */

static void handle_health(void *ctx, http_req_t *r)
{
    (void)ctx;
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond_text(r, 200, "application/json", body, sizeof(body) - 1);
}

static void handle_ready(void *ctx, http_req_t *r)
{
    http_server_t *s = ctx;
    json_t *checks = json_object();
    bool ready = true;
    for (size_t i = 0; i < s->nchecks; i++) {
        char detail[256] = "";
        const ready_check_t *c = &s->checks[i];
        bool ok = c->detail_fn ? c->detail_fn(c->ctx, detail, sizeof(detail)) : c->fn(c->ctx);
        detail[sizeof(detail) - 1] = '\0';
        json_t *entry = json_object();
        json_object_set_new(entry, "ok", json_boolean(ok));
        if (detail[0]) {
            json_object_set_new(entry, "detail", json_string(detail));
        }
        json_object_set_new(checks, c->name, entry);
        ready = ready && ok;
    }
    if (s->closing) {
        json_object_set_new(checks, "shutdown",
                            json_pack("{s:b, s:s}", "ok", 0, "detail", "the server is closing"));
        ready = false;
    }
    json_t *body = json_object();
    json_object_set_new(body, "status", json_string(ready ? "ready" : "not_ready"));
    json_object_set_new(body, "checks", checks);
    http_respond_json(r, ready ? 200 : 503, body);
}

static void handle_metrics(void *ctx, http_req_t *r)
{
    http_server_t *s = ctx;
    size_t len = 0;
    char *text = metrics_render(s->metrics, &len);
    if (!text) {
        http_respond_error(r, 500, NULL, "out of memory");
        return;
    }
    http_respond_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

/* ---- set-up ------------------------------------------------------------- */

int http_route(http_server_t *s, const char *method, const char *pattern, http_handler_fn fn, void *ctx)
{
    if (!s || !fn || s->closing) {
        return -1;
    }
    route_target_t **targets = realloc(s->targets, (s->ntargets + 1) * sizeof(*targets));
    if (!targets) {
        return -1;
    }
    s->targets = targets;
    route_target_t *t = malloc(sizeof(*t));
    if (!t) {
        return -1;
    }
    t->fn = fn;
    t->ctx = ctx;
    if (router_add(s->router, method, pattern, t) != 0) {
        free(t);
        return -1;
    }
    s->targets[s->ntargets++] = t;
    return 0;
}

static int add_check(http_server_t *s, const char *name, http_check_fn fn, http_check_detail_fn detail_fn,
                     void *ctx)
{
    if (!s || !name || (!fn && !detail_fn)) {
        return -1;
    }
    ready_check_t *checks = realloc(s->checks, (s->nchecks + 1) * sizeof(*checks));
    if (!checks) {
        return -1;
    }
    s->checks = checks;
    char *copy = strdup(name);
    if (!copy) {
        return -1;
    }
    s->checks[s->nchecks++] = (ready_check_t){copy, fn, detail_fn, ctx};
    return 0;
}

int http_add_ready_check(http_server_t *s, const char *name, http_check_fn fn, void *ctx)
{
    return add_check(s, name, fn, NULL, ctx);
}

int http_add_ready_check_detail(http_server_t *s, const char *name, http_check_detail_fn fn, void *ctx)
{
    return add_check(s, name, NULL, fn, ctx);
}

void http_server_set_drain_ms(http_server_t *s, unsigned ms)
{
    s->drain_ms = ms;
}

int http_server_port(const http_server_t *s)
{
    return s->port;
}

static void conn_closed(uv_handle_t *h);
static void maybe_finish(http_server_t *s);

static int on_h2o_req(h2o_handler_t *self, h2o_req_t *req)
{
    return http_req_handle(((root_handler_t *)self)->srv, req);
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_server_t *s = H2O_STRUCT_FROM_MEMBER(http_server_t, listener, listener);
    if (status < 0) {
        log_warn("http: accept failed", "error", uv_strerror(status));
        return;
    }
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("http: out of memory accepting a connection");
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    c->srv = s;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
        return;
    }
    /* h2o owns the socket from here; it closes the handle and then calls
     * conn_closed. */
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_closed);
    h2o_accept(&s->accept_ctx, sock);
}

/* Frees what the server owns, not the server itself. */
static void free_internals(http_server_t *s)
{
    router_destroy(s->router);
    s->router = NULL;
    for (size_t i = 0; i < s->ntargets; i++) {
        free(s->targets[i]);
    }
    free(s->targets);
    s->targets = NULL;
    s->ntargets = 0;
    for (size_t i = 0; i < s->nchecks; i++) {
        free(s->checks[i].name);
    }
    free(s->checks);
    s->checks = NULL;
    s->nchecks = 0;
}

static void free_server(http_server_t *s)
{
    free_internals(s);
    free(s);
}

static void on_failed_listener_closed(uv_handle_t *h)
{
    free_server(h->data);
}

http_server_t *http_server_create(uv_loop_t *loop, const char *host, int port, metrics_t *metrics, char *err,
                                  size_t errlen)
{
    if (listen_prepare("http", loop, &host, port, err, errlen) != 0) {
        return NULL;
    }
    http_server_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->router = router_create())) {
        http_set_err(err, errlen, "http: out of memory");
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->drain_ms = HTTP_DRAIN_MS_DEFAULT;
    s->metrics = metrics;
    if (http_route(s, "GET", "/health", handle_health, s) != 0 ||
        http_route(s, "GET", "/ready", handle_ready, s) != 0 ||
        (metrics && http_route(s, "GET", "/metrics", handle_metrics, s) != 0)) {
        http_set_err(err, errlen, "http: out of memory");
        goto fail;
    }
    if (metrics) {
        s->m_requests =
            metrics_counter(metrics, "http_requests_total", "HTTP requests answered, by route and status.",
                            "method,route,status");
        s->m_duration =
            metrics_histogram(metrics, "http_request_duration_seconds",
                              "Time from routing an HTTP request to answering it.", "route", NULL, 0);
    }

    int fd = listen_open("http", host, port, &s->port, err, errlen);
    if (fd < 0) {
        goto fail;
    }
    int rc = listen_start(loop, &s->listener, fd, on_accept);
    s->listener.data = s;
    if (rc != 0) {
        /* Not seen in practice: the fd is fresh and already listening. The
         * handle exists, so `s` is freed by its close callback. */
        http_set_err(err, errlen, "http: cannot watch the listening socket: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed);
        return NULL;
    }

    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("hive"));
    s->config.max_request_entity_size = HTTP_MAX_BODY;
    s->config.http1.upgrade_to_http2 = 0; /* HTTP/1.1 only: keeps shutdown simple */
    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    root_handler_t *handler = (root_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_h2o_req;
    handler->srv = s;
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    uv_timer_init(loop, &s->drain_timer);
    return s;

fail:
    free_server(s);
    return NULL;
}

/* ---- shutdown ----------------------------------------------------------------
 *
 * h2o 2.2 has no "close everything" call for the libuv binding, and its
 * h2o_context_dispose() runs uv_run(NOWAIT) inside whatever callback we are
 * in (libuv's uv_run is not reentrant) and closes its timers without telling
 * anyone when they are gone. So the server closes in stages it can observe:
 *
 *   1. Close the listener; set ctx.shutdown_requested so that responses from
 *      now on carry "Connection: close"; shutdown(SHUT_RD) every accepted
 *      socket. Idle keep-alive connections see EOF at once and h2o closes
 *      them; a connection with a request in progress has reading stopped,
 *      answers, then reads EOF and closes.
 *   2. If requests are still unanswered after drain_ms, answer them 503 and
 *      shutdown(SHUT_RDWR) every socket so that h2o's next read or write
 *      fails and it closes the connection.
 *   3. Once the listener and every connection are closed (h2o calls
 *      conn_closed after freeing its socket) and the drain timer is closed,
 *      call done. Only h2o's own context timers remain, inactive.
 *   4. http_server_destroy(), called after uv_run() has returned and before
 *      uv_loop_close() (a lifecycle finalizer), disposes of the h2o context
 *      with h2o_context_dispose(), whose nested uv_run(NOWAIT) is legal there,
 *      then frees the configuration and the server. A server whose close never
 *      completed stays allocated: libuv may still point into it.
 */

static void shutdown_conn(http_conn_t *c, int how)
{
    uv_os_fd_t fd;
    if (!uv_is_closing((uv_handle_t *)&c->tcp) && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        shutdown(fd, how);
    }
}

static void conn_closed(uv_handle_t *h)
{
    http_conn_t *c = (http_conn_t *)h;
    http_server_t *s = c->srv;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    free(c);
    maybe_finish(s);
}

static void on_final_handle_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    if (--s->pending > 0) {
        return;
    }
    s->closed = true;
    if (s->done) {
        s->done(s->done_arg);
    }
}

void http_server_destroy(http_server_t *s)
{
    if (!s) {
        return;
    }
    if (!s->closed) {
        log_error("http: server destroyed before its close completed; leaving it allocated");
        return;
    }
    /* h2o_context_dispose() closes the context's timers and runs the loop once
     * (UV_RUN_NOWAIT) to finish those closes, which is only legal outside any
     * libuv callback: hence "after uv_run returned" in the contract. */
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    free_internals(s);
    free(s);
}

static void close_final(http_server_t *s, uv_handle_t *h)
{
    h->data = s;
    s->pending++;
    uv_close(h, on_final_handle_closed);
}

static void maybe_finish(http_server_t *s)
{
    if (!s->closing || s->disposing || !s->listener_closed || s->nconns > 0) {
        return;
    }
    s->disposing = true;
    close_final(s, (uv_handle_t *)&s->drain_timer);
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->listener_closed = true;
    maybe_finish(s);
}

static void on_drain_timeout(uv_timer_t *t)
{
    http_server_t *s = t->data;
    if (s->inflight) {
        log_warn("http: answering 503 to requests still in progress at shutdown");
    }
    while (s->inflight) {
        http_respond_error(s->inflight, 503, NULL, "the server is shutting down");
    }
    for (http_conn_t *c = s->conns; c; c = c->next) {
        shutdown_conn(c, SHUT_RDWR);
    }
}

void http_server_close(http_server_t *s, void (*done)(void *arg), void *arg)
{
    if (!s) {
        if (done) {
            done(arg);
        }
        return;
    }
    if (s->closing) {
        return;
    }
    s->closing = true;
    s->done = done;
    s->done_arg = arg;
    /* What h2o_context_request_shutdown() does for HTTP/1, without arming
     * HTTP/2's graceful-shutdown timer (HTTP/2 is off). */
    s->ctx.shutdown_requested = 1;
    s->listener.data = s;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (http_conn_t *c = s->conns; c; c = c->next) {
        shutdown_conn(c, SHUT_RD);
    }
    s->drain_timer.data = s;
    uv_timer_start(&s->drain_timer, on_drain_timeout, s->drain_ms, 0);
}
