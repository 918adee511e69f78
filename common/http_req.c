/* http_req: one request's life, from h2o handing it over to the answer:
 * routing, parameters, the JSON body, answers and the metrics they count,
 * and the guard that keeps deferred answers safe. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hive_err.h"
#include "http_internal.h"
#include "log.h"

struct http_req_s {
    h2o_req_t *h2o;          /* NULL once h2o has disposed of the request */
    http_server_t *srv;      /* NULL once h2o has disposed of the request */
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

const char *http_json_unknown_member(const json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)body, key, value)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0) {
            i++;
        }
        if (!allowed[i]) {
            return key;
        }
    }
    return NULL;
}

int http_parse_bounded(const char *s, size_t min, size_t max, size_t *out)
{
    if (!s || *s < '0' || *s > '9') {
        return HIVE_EINVAL;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v < min || v > max) {
        return HIVE_EINVAL;
    }
    *out = (size_t)v;
    return 0;
}

bool http_req_query_size(http_req_t *r, const char *name, size_t min, size_t max, size_t *out)
{
    const char *s = http_req_query(r, name);
    if (!s || http_parse_bounded(s, min, max, out) == 0) {
        return true;
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "%s: an integer from %zu to %zu", name, min, max);
    http_respond_error(r, 400, name, msg);
    return false;
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

void http_set_err(char *err, size_t errlen, const char *fmt, ...)
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
        http_set_err(err, errlen, "Content-Type must be application/json, not \"%.*s\"", shown, content_type);
        return NULL;
    }
    if (!body || len == 0) {
        http_set_err(err, errlen, "request body is empty; a JSON object is expected");
        return NULL;
    }
    json_error_t jerr;
    json_t *json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json) {
        http_set_err(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
    }
    return json;
}

json_t *http_req_json(http_req_t *r, char *err, size_t errlen)
{
    if (r->json) {
        return r->json;
    }
    if (!r->h2o) {
        http_set_err(err, errlen, "the request is no longer alive");
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
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : "Error";
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

int http_req_handle(http_server_t *s, h2o_req_t *req)
{
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
