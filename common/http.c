#include "http.h"

#include <h2o.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "router.h"

#define LISTEN_BACKLOG 128

/* An accepted connection. The uv_tcp_t comes first: h2o hands it back to
 * conn_closed() once it has closed the socket. */
typedef struct http_conn_s {
    uv_tcp_t tcp;
    http_server_t *srv;
    struct http_conn_s *prev, *next;
} http_conn_t;

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

struct http_req_s {
    h2o_req_t *h2o;      /* NULL once h2o has disposed of the request */
    http_server_t *srv;  /* NULL once h2o has disposed of the request */
    http_req_t *prev, *next; /* in srv->inflight while unanswered */
    bool linked, answered;
    int refs;
    char *method, *path;
    const char *route; /* metrics label: the pattern, or "unmatched" */
    router_match_t match;
    router_query_t query;
    json_t *json;
    uint64_t started_ns;
};

/* ---- requests ------------------------------------------------------------ */

static void inflight_unlink(http_req_t *r)
{
    if (!r->linked) {
        return;
    }
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        r->srv->inflight = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
    r->linked = false;
}

/* Runs when h2o clears the request's memory pool: after the response was
 * sent, or when the connection closed first. From here on the h2o_req_t may
 * be reused for the next request on the connection, so forget it. */
static void on_h2o_req_disposed(void *p)
{
    http_req_t *r = *(http_req_t **)p;
    inflight_unlink(r);
    r->h2o = NULL;
    r->srv = NULL;
    http_req_release(r);
}

void http_req_retain(http_req_t *r)
{
    r->refs++;
}

bool http_req_alive(const http_req_t *r)
{
    return r && r->h2o && !r->answered;
}

void http_req_release(http_req_t *r)
{
    if (!r || --r->refs > 0) {
        return;
    }
    router_match_free(&r->match);
    router_query_free(&r->query);
    json_decref(r->json);
    free(r->method);
    free(r->path);
    free(r);
}

const char *http_req_method(const http_req_t *r)
{
    return r->method;
}

const char *http_req_path(const http_req_t *r)
{
    return r->path;
}

const char *http_req_param(const http_req_t *r, const char *name)
{
    return router_match_param(&r->match, name);
}

const char *http_req_query(const http_req_t *r, const char *name)
{
    return router_query_get(&r->query, name);
}

const char *http_req_body(const http_req_t *r, size_t *out_len)
{
    if (!r->h2o || !r->h2o->entity.base) {
        *out_len = 0;
        return NULL;
    }
    *out_len = r->h2o->entity.len;
    return r->h2o->entity.base;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* True for "application/json" and "application/<x>+json", parameters and
 * case ignored. */
static bool is_json_media_type(const char *ct, size_t len)
{
    const char *semi = memchr(ct, ';', len);
    size_t n = semi ? (size_t)(semi - ct) : len;
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    while (n > 0 && (*ct == ' ' || *ct == '\t')) {
        ct++;
        n--;
    }
    static const char app[] = "application/";
    if (n < sizeof(app) - 1 || strncasecmp(ct, app, sizeof(app) - 1) != 0) {
        return false;
    }
    const char *sub = ct + sizeof(app) - 1;
    size_t sublen = n - (sizeof(app) - 1);
    return (sublen == 4 && strncasecmp(sub, "json", 4) == 0) ||
           (sublen > 5 && strncasecmp(sub + sublen - 5, "+json", 5) == 0);
}

json_t *http_json_parse(const char *content_type, size_t ctlen, const char *body, size_t len, char *err,
                        size_t errlen)
{
    if (content_type && !is_json_media_type(content_type, ctlen)) {
        int shown = ctlen > 64 ? 64 : (int)ctlen;
        set_err(err, errlen, "Content-Type must be application/json, not \"%.*s\"", shown, content_type);
        return NULL;
    }
    if (!body || len == 0) {
        set_err(err, errlen, "request body is empty; a JSON object is expected");
        return NULL;
    }
    json_error_t jerr;
    json_t *json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json) {
        set_err(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    }
    return json;
}

json_t *http_req_json(http_req_t *r, char *err, size_t errlen)
{
    if (r->json) {
        return r->json;
    }
    if (!r->h2o) {
        set_err(err, errlen, "the request is no longer alive");
        return NULL;
    }
    const h2o_headers_t *headers = &r->h2o->headers;
    ssize_t i = h2o_find_header(headers, H2O_TOKEN_CONTENT_TYPE, -1);
    const char *ct = i >= 0 ? headers->entries[i].value.base : NULL;
    size_t ctlen = i >= 0 ? headers->entries[i].value.len : 0;
    r->json = http_json_parse(ct, ctlen, r->h2o->entity.base, r->h2o->entity.len, err, errlen);
    return r->json;
}

/* ---- responses ----------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : "Error";
    }
}

/* The method as a metrics label: the standard verbs, or "OTHER", so that a
 * client cannot grow the series without bound. */
static const char *method_label(const char *m)
{
    static const char *known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(m, known[i]) == 0) {
            return known[i];
        }
    }
    return "OTHER";
}

static void respond(http_req_t *r, int status, const char *content_type, const char *body, size_t len,
                    const char *allow)
{
    if (!http_req_alive(r)) {
        log_debug("http: response dropped, the request is gone", "path", r ? r->path : NULL);
        return;
    }
    http_server_t *s = r->srv;
    h2o_req_t *req = r->h2o;
    r->answered = true;
    inflight_unlink(r);

    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    metric_add(s->m_requests, 1, method_label(r->method), r->route, code);
    metric_observe(s->m_duration, (double)(uv_hrtime() - r->started_ns) / 1e9, r->route);

    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    h2o_iovec_t ct = h2o_strdup(&req->pool, content_type, SIZE_MAX);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct.base, ct.len);
    if (allow && *allow) {
        h2o_iovec_t a = h2o_strdup(&req->pool, allow, SIZE_MAX);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, a.base, a.len);
    }
    /* Copies the body into the request's pool; h2o may dispose of the
     * request from here on, so nothing touches `req` afterwards. */
    h2o_send_inline(req, body ? body : "", len);
}

void http_respond_text(http_req_t *r, int status, const char *content_type, const char *body, size_t len)
{
    respond(r, status, content_type ? content_type : "text/plain; charset=utf-8", body, len, NULL);
}

void http_respond_json(http_req_t *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        respond(r, 500, "application/json", oom, sizeof(oom) - 1, NULL);
        return;
    }
    respond(r, status, "application/json", text, strlen(text), NULL);
    free(text);
}

static void respond_error_allow(http_req_t *r, int status, const char *field, const char *message,
                                const char *allow)
{
    json_t *body = json_object();
    json_object_set_new(body, "error", json_string(message ? message : reason_phrase(status)));
    if (field) {
        json_object_set_new(body, "field", json_string(field));
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        respond(r, 500, "application/json", oom, sizeof(oom) - 1, NULL);
        return;
    }
    respond(r, status, "application/json", text, strlen(text), allow);
    free(text);
}

void http_respond_error(http_req_t *r, int status, const char *field, const char *message)
{
    respond_error_allow(r, status, field, message, NULL);
}

/* ---- dispatch -------------------------------------------------------------- */

static void dispatch(http_server_t *s, http_req_t *r, h2o_req_t *req)
{
    size_t pathlen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char msg[256];

    switch (router_match(s->router, r->method, req->path.base, pathlen, &r->match)) {
    case ROUTER_FOUND:
        break;
    case ROUTER_NOT_FOUND:
        snprintf(msg, sizeof(msg), "no route for %.100s %.100s", r->method, r->path);
        http_respond_error(r, 404, NULL, msg);
        return;
    case ROUTER_METHOD_NOT_ALLOWED:
        r->route = r->match.pattern;
        snprintf(msg, sizeof(msg), "method %.40s is not allowed on %.100s (allowed: %.60s)", r->method,
                 r->match.pattern, r->match.allow);
        respond_error_allow(r, 405, NULL, msg, r->match.allow);
        return;
    case ROUTER_BAD_PATH:
        http_respond_error(r, 400, NULL, "malformed path (bad %-encoding)");
        return;
    }
    r->route = r->match.pattern;
    if (req->query_at != SIZE_MAX) {
        const char *qs = req->path.base + req->query_at + 1;
        if (router_query_parse(qs, req->path.len - req->query_at - 1, &r->query) != 0) {
            http_respond_error(r, 400, NULL, "malformed query string (bad %-encoding)");
            return;
        }
    }
    const route_target_t *t = r->match.data;
    t->fn(t->ctx, r);
    /* Neither answered nor kept for later: nobody will answer, so say so
     * rather than leave the client hanging. */
    if (!r->answered && r->refs <= 2 && r->h2o) {
        log_error("http: handler returned without answering", "route", r->route);
        http_respond_error(r, 500, NULL, "the handler did not answer");
    }
}

static int on_h2o_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((root_handler_t *)self)->srv;
    http_req_t *r = calloc(1, sizeof(*r));
    if (!r) {
        h2o_send_error_503(req, "Service Unavailable", "out of memory", 0);
        return 0;
    }
    /* One reference for h2o's request, dropped by on_h2o_req_disposed when
     * h2o clears the request's pool; one for the duration of the handler. */
    r->refs = 2;
    r->h2o = req;
    r->srv = s;
    r->route = "unmatched";
    r->started_ns = uv_hrtime();
    http_req_t **guard = h2o_mem_alloc_shared(&req->pool, sizeof(*guard), on_h2o_req_disposed);
    *guard = r;
    r->linked = true;
    r->next = s->inflight;
    if (s->inflight) {
        s->inflight->prev = r;
    }
    s->inflight = r;

    size_t pathlen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    r->method = strndup(req->method.base, req->method.len);
    r->path = strndup(req->path.base, pathlen);
    if (!r->method || !r->path) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        respond(r, 500, "application/json", oom, sizeof(oom) - 1, NULL);
    } else {
        dispatch(s, r, req);
    }
    http_req_release(r);
    return 0;
}

/* ---- built-in routes ------------------------------------------------------- */

static void handle_health(void *ctx, http_req_t *r)
{
    (void)ctx;
    static const char body[] = "{\"status\":\"ok\"}";
    respond(r, 200, "application/json", body, sizeof(body) - 1, NULL);
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
        json_object_set_new(checks, "shutdown", json_pack("{s:b, s:s}", "ok", 0, "detail", "the server is closing"));
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
    respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
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

/* Opens a listening socket. Done with plain sockets so that every failure
 * is reported before any libuv handle exists. Returns the fd or -1. */
static int open_listener(const char *host, int port, char *err, size_t errlen)
{
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        set_err(err, errlen, "http: cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(err, errlen, "http: cannot listen on %s:%d: %s", host, port, strerror(saved));
    }
    return fd;
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
    if (!host) {
        host = "0.0.0.0";
    }
    if (!loop || port < 0 || port > 65535) {
        set_err(err, errlen, "http: invalid arguments (port %d must be 0..65535)", port);
        return NULL;
    }
    /* h2o writes with writev(2): a peer that has gone would raise SIGPIPE
     * and kill the process. Ignore it unless someone installed a handler. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
    http_server_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->router = router_create())) {
        set_err(err, errlen, "http: out of memory");
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->drain_ms = HTTP_DRAIN_MS_DEFAULT;
    s->metrics = metrics;
    if (http_route(s, "GET", "/health", handle_health, s) != 0 || http_route(s, "GET", "/ready", handle_ready, s) != 0 ||
        (metrics && http_route(s, "GET", "/metrics", handle_metrics, s) != 0)) {
        set_err(err, errlen, "http: out of memory");
        goto fail;
    }
    if (metrics) {
        s->m_requests = metrics_counter(metrics, "http_requests_total", "HTTP requests answered, by route and status.",
                                        "method,route,status");
        s->m_duration = metrics_histogram(metrics, "http_request_duration_seconds",
                                          "Time from routing an HTTP request to answering it.", "route", NULL, 0);
    }

    int fd = open_listener(host, port, err, errlen);
    if (fd < 0) {
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    }
    /* AF_UNSPEC: no socket is created, so this cannot fail. */
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_open(&s->listener, fd);
    if (rc != 0) {
        close(fd); /* not adopted by the handle */
    } else {
        rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_accept);
    }
    if (rc != 0) {
        /* Not seen in practice: the fd is fresh and already listening. The
         * handle exists, so `s` is freed by its close callback. */
        set_err(err, errlen, "http: cannot watch the listening socket: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed);
        return NULL;
    }

    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("hive"));
    s->config.max_request_entity_size = HTTP_MAX_BODY;
    s->config.http1.upgrade_to_http2 = 0; /* HTTP/1.1 only: keeps shutdown simple */
    h2o_hostconf_t *hostconf = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
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
 *      conn_closed after freeing its socket), dispose of the h2o context the
 *      way h2o_context_dispose() does, minus the nested uv_run, closing its
 *      timers ourselves with a counted callback.
 *   4. When the last of those handles is closed, free the configuration and
 *      the server and call done.
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
    h2o_config_dispose(&s->config);
    free_internals(s);
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
    free(s);
}

static void close_final(http_server_t *s, uv_handle_t *h)
{
    h->data = s;
    s->pending++;
    uv_close(h, on_final_handle_closed);
}

/* h2o_context_dispose() of h2o 2.2.5 (lib/core/context.c), without the
 * nested uv_run and with observable timer closes. */
static void dispose_h2o_context(http_server_t *s)
{
    h2o_context_t *ctx = &s->ctx;
    h2o_globalconf_t *config = ctx->globalconf;
    for (size_t i = 0; config->hosts[i] != NULL; ++i) {
        h2o_hostconf_t *hostconf = config->hosts[i];
        for (size_t j = 0; j != hostconf->paths.size; ++j) {
            h2o_context_dispose_pathconf_context(ctx, hostconf->paths.entries + j);
        }
        h2o_context_dispose_pathconf_context(ctx, &hostconf->fallback_path);
    }
    free(ctx->_pathconfs_inited.entries);
    free(ctx->_module_configs);
    h2o_timeout_t *timeouts[] = {&ctx->zero_timeout,       &ctx->one_sec_timeout,   &ctx->hundred_ms_timeout,
                                 &ctx->handshake_timeout,  &ctx->http1.req_timeout, &ctx->http2.idle_timeout,
                                 &ctx->http2.graceful_shutdown_timeout,             &ctx->proxy.io_timeout};
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        close_final(s, (uv_handle_t *)&timeouts[i]->_backend.timer);
    }
    h2o_filecache_destroy(ctx->filecache);
    ctx->filecache = NULL;
    for (size_t i = 0; i != ctx->storage.size; ++i) {
        if (ctx->storage.entries[i].dispose) {
            ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
        }
    }
    free(ctx->storage.entries);
    h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
    h2o_multithread_destroy_queue(ctx->queue); /* closes its uv_async_t, freed by h2o */
    if (ctx->_timestamp_cache.value) {
        h2o_mem_release_shared(ctx->_timestamp_cache.value);
    }
}

static void maybe_finish(http_server_t *s)
{
    if (!s->closing || s->disposing || !s->listener_closed || s->nconns > 0) {
        return;
    }
    s->disposing = true;
    close_final(s, (uv_handle_t *)&s->drain_timer);
    dispose_h2o_context(s);
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
    if (!s || s->closing) {
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
