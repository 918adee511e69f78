#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text; /* literal text, or the parameter's name */
    bool param;
} segment_t;

typedef struct {
    char *method;
    char *pattern;
    char *segbuf; /* segment texts, NUL-separated */
    void *data;
    size_t nsegs;
    segment_t segs[ROUTER_MAX_SEGMENTS];
} route_t;

struct router_s {
    route_t *routes;
    size_t n, cap;
};

router_t *router_create(void)
{
    return calloc(1, sizeof(router_t));
}

static void route_free(route_t *rt)
{
    free(rt->method);
    free(rt->pattern);
    free(rt->segbuf);
}

void router_destroy(router_t *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        route_free(&r->routes[i]);
    }
    free(r->routes);
    free(r);
}

static bool valid_param_name(const char *s, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

/* Splits `rt->pattern` into segments. "/" has none; "/a/{b}" has "a" and the
 * parameter "b". Returns 0 or -1 for a malformed pattern. */
static int parse_pattern(route_t *rt)
{
    const char *p = rt->pattern;
    if (p[0] != '/') {
        return -1;
    }
    size_t len = strlen(p);
    rt->segbuf = malloc(len + 1);
    if (!rt->segbuf) {
        return -1;
    }
    rt->nsegs = 0;
    if (len == 1) {
        return 0;
    }
    char *out = rt->segbuf;
    size_t nparams = 0;
    const char *seg = p + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t seglen = end ? (size_t)(end - seg) : strlen(seg);
        if (rt->nsegs == ROUTER_MAX_SEGMENTS) {
            return -1;
        }
        segment_t *s = &rt->segs[rt->nsegs++];
        bool has_brace = memchr(seg, '{', seglen) || memchr(seg, '}', seglen);
        if (has_brace) {
            if (seglen < 2 || seg[0] != '{' || seg[seglen - 1] != '}' ||
                !valid_param_name(seg + 1, seglen - 2) || ++nparams > ROUTER_MAX_PARAMS) {
                return -1;
            }
            memcpy(out, seg + 1, seglen - 2);
            out[seglen - 2] = '\0';
            for (size_t i = 0; i + 1 < rt->nsegs; i++) {
                if (rt->segs[i].param && strcmp(rt->segs[i].text, out) == 0) {
                    return -1; /* the same name twice */
                }
            }
            s->param = true;
            s->text = out;
            out += seglen - 1;
        } else {
            memcpy(out, seg, seglen);
            out[seglen] = '\0';
            s->param = false;
            s->text = out;
            out += seglen + 1;
        }
        if (!end) {
            break;
        }
        seg = end + 1;
    }
    return 0;
}

int router_add(router_t *r, const char *method, const char *pattern, void *data)
{
    if (!r || !method || !*method || !pattern) {
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->routes[i].method, method) == 0 && strcmp(r->routes[i].pattern, pattern) == 0) {
            return -1;
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        route_t *routes = realloc(r->routes, cap * sizeof(*routes));
        if (!routes) {
            return -1;
        }
        r->routes = routes;
        r->cap = cap;
    }
    route_t rt = {.method = strdup(method), .pattern = strdup(pattern), .data = data};
    if (!rt.method || !rt.pattern || parse_pattern(&rt) != 0) {
        route_free(&rt);
        return -1;
    }
    r->routes[r->n++] = rt;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

long router_url_decode(const char *src, size_t len, bool plus_is_space, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3) {
                return -1;
            }
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return -1;
            }
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '\0') {
            return -1;
        } else {
            dst[o++] = (plus_is_space && c == '+') ? ' ' : c;
        }
    }
    dst[o] = '\0';
    return (long)o;
}

/* True when route `a` is more specific than `b` (same segment count): at the
 * first segment where one is a literal and the other a parameter, the
 * literal wins. */
static bool more_specific(const route_t *a, const route_t *b)
{
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].param != b->segs[i].param) {
            return !a->segs[i].param;
        }
    }
    return false;
}

/* True when `rt` matches the decoded segments (a parameter takes any
 * non-empty segment). */
static bool route_matches(const route_t *rt, const char *const *segv, size_t nsegs)
{
    if (rt->nsegs != nsegs) {
        return false;
    }
    for (size_t i = 0; i < nsegs; i++) {
        if (rt->segs[i].param ? segv[i][0] == '\0' : strcmp(rt->segs[i].text, segv[i]) != 0) {
            return false;
        }
    }
    return true;
}

static void allow_append(char *allow, size_t size, const char *method)
{
    size_t len = strlen(allow);
    /* skip duplicates: compare against each ", "-separated entry */
    for (const char *p = allow; *p;) {
        const char *e = strstr(p, ", ");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == strlen(method) && strncmp(p, method, n) == 0) {
            return;
        }
        p = e ? e + 2 : p + n;
    }
    snprintf(allow + len, size - len, "%s%s", len ? ", " : "", method);
}

router_result_t router_match(const router_t *r, const char *method, const char *path, size_t pathlen,
                             router_match_t *out)
{
    memset(out, 0, sizeof(*out));
    if (pathlen == 0 || path[0] != '/') {
        return ROUTER_BAD_PATH;
    }
    if (memchr(path, '\0', pathlen)) {
        return ROUTER_BAD_PATH;
    }
    out->_buf = malloc(pathlen + 1);
    if (!out->_buf) {
        return ROUTER_NOT_FOUND;
    }

    /* Decode each segment once, NUL-terminated, one after the other. */
    const char *segv[ROUTER_MAX_SEGMENTS];
    size_t nsegs = 0;
    if (pathlen > 1) {
        char *o = out->_buf;
        size_t i = 1;
        for (;;) {
            const char *slash = memchr(path + i, '/', pathlen - i);
            size_t seglen = slash ? (size_t)(slash - (path + i)) : pathlen - i;
            if (nsegs == ROUTER_MAX_SEGMENTS) {
                return ROUTER_NOT_FOUND; /* deeper than any pattern can be */
            }
            long n = router_url_decode(path + i, seglen, false, o);
            if (n < 0) {
                return ROUTER_BAD_PATH;
            }
            segv[nsegs++] = o;
            o += n + 1;
            if (!slash) {
                break;
            }
            i += seglen + 1;
        }
    }

    /* The path chooses the pattern first: among the patterns that match, the
     * most specific shape wins (a literal segment beats a parameter), so
     * "/x/trigger" belongs to "/x/trigger" alone even if "/x/{id}" would match.
     * The method then chooses among the routes of that shape; when none has it,
     * the answer is 405 with exactly that shape's methods in Allow. */
    const route_t *best_path = NULL;
    for (size_t k = 0; k < r->n; k++) {
        const route_t *rt = &r->routes[k];
        if (route_matches(rt, segv, nsegs) && (!best_path || more_specific(rt, best_path))) {
            best_path = rt;
        }
    }
    if (!best_path) {
        return ROUTER_NOT_FOUND;
    }
    bool is_head = strcmp(method, "HEAD") == 0;
    const route_t *best = NULL;
    for (size_t k = 0; k < r->n; k++) {
        const route_t *rt = &r->routes[k];
        if (!route_matches(rt, segv, nsegs) || more_specific(best_path, rt)) {
            continue;
        }
        if (strcmp(rt->method, method) == 0) {
            best = rt;
            break;
        }
        if (is_head && !best && strcmp(rt->method, "GET") == 0) {
            best = rt;
        }
    }

    if (best) {
        out->data = best->data;
        out->pattern = best->pattern;
        for (size_t i = 0; i < nsegs; i++) {
            if (best->segs[i].param) {
                out->params[out->nparams].name = best->segs[i].text;
                out->params[out->nparams].value = segv[i];
                out->nparams++;
            }
        }
        return ROUTER_FOUND;
    }
    out->pattern = best_path->pattern;
    for (size_t k = 0; k < r->n; k++) {
        const route_t *rt = &r->routes[k];
        if (route_matches(rt, segv, nsegs) && !more_specific(best_path, rt)) {
            allow_append(out->allow, sizeof(out->allow), rt->method);
        }
    }
    return ROUTER_METHOD_NOT_ALLOWED;
}

const char *router_match_param(const router_match_t *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++) {
        if (strcmp(m->params[i].name, name) == 0) {
            return m->params[i].value;
        }
    }
    return NULL;
}

void router_match_free(router_match_t *m)
{
    free(m->_buf);
    m->_buf = NULL;
    m->nparams = 0;
}

int router_query_parse(const char *qs, size_t len, router_query_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        return 0;
    }
    size_t npairs = 1;
    for (size_t i = 0; i < len; i++) {
        npairs += qs[i] == '&';
    }
    out->_buf = malloc(len + npairs + 1);
    out->names = malloc(npairs * sizeof(*out->names));
    out->values = malloc(npairs * sizeof(*out->values));
    if (!out->_buf || !out->names || !out->values) {
        goto fail;
    }
    char *o = out->_buf;
    size_t i = 0;
    while (i <= len) {
        const char *amp = i < len ? memchr(qs + i, '&', len - i) : NULL;
        size_t pairlen = amp ? (size_t)(amp - (qs + i)) : len - i;
        if (pairlen > 0) {
            const char *eq = memchr(qs + i, '=', pairlen);
            size_t namelen = eq ? (size_t)(eq - (qs + i)) : pairlen;
            long n = router_url_decode(qs + i, namelen, true, o);
            if (n < 0) {
                goto fail;
            }
            out->names[out->n] = o;
            o += n + 1;
            if (eq) {
                n = router_url_decode(eq + 1, pairlen - namelen - 1, true, o);
                if (n < 0) {
                    goto fail;
                }
                out->values[out->n] = o;
                o += n + 1;
            } else {
                out->values[out->n] = "";
            }
            out->n++;
        }
        if (!amp) {
            break;
        }
        i += pairlen + 1;
    }
    return 0;
fail:
    router_query_free(out);
    return -1;
}

const char *router_query_get(const router_query_t *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->names[i], name) == 0) {
            return q->values[i];
        }
    }
    return NULL;
}

void router_query_free(router_query_t *q)
{
    free(q->_buf);
    free(q->names);
    free(q->values);
    memset(q, 0, sizeof(*q));
}
