/* router: maps an HTTP method and path to a registered route, and decodes
 * URL query strings. Pure: no I/O, no globals, no clock; the HTTP server and
 * the fuzz targets use it the same way.
 *
 * A pattern is an absolute path whose segments are literals or parameters
 * written "{name}" ("/api/v1/optimizations/{id}"). A parameter matches one
 * whole, non-empty segment. Matching is exact (no trailing-slash folding);
 * when several patterns match, the one with a literal at the first segment
 * where they differ wins ("/x/stats" beats "/x/{id}") for EVERY method, as
 * OpenAPI matches concrete paths before templated ones: a method the winning
 * pattern lacks is 405 with that pattern's methods in Allow, even if a less
 * specific pattern has it. HEAD falls back to the GET route of the same pattern.
 */
#ifndef HIVE_ROUTER_H
#define HIVE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTER_MAX_PARAMS 8
#define ROUTER_MAX_SEGMENTS 32

typedef struct router_s router_t;

typedef enum {
    ROUTER_FOUND,              /* method and path matched a route */
    ROUTER_NOT_FOUND,          /* no pattern matches the path (404) */
    ROUTER_METHOD_NOT_ALLOWED, /* a pattern matches, but not for this method (405) */
    ROUTER_BAD_PATH,           /* the path is not absolute or has broken %-encoding (400) */
} router_result_t;

typedef struct {
    const char *name;  /* parameter name, owned by the router */
    const char *value; /* percent-decoded, NUL-terminated, owned by the match */
} router_param_t;

typedef struct {
    void *data;          /* what router_add() was given (ROUTER_FOUND only) */
    const char *pattern; /* matched pattern, owned by the router (FOUND and METHOD_NOT_ALLOWED) */
    char allow[96];      /* "GET, POST" for METHOD_NOT_ALLOWED, empty otherwise */
    size_t nparams;
    router_param_t params[ROUTER_MAX_PARAMS];
    char *_buf; /* decoded segments; freed by router_match_free() */
} router_match_t;

/* Creates an empty router. Free with router_destroy(). */
router_t *router_create(void);

/* Frees the router and its routes. Accepts NULL. */
void router_destroy(router_t *r);

/* Registers `data` for `method` (upper case, e.g. "GET") and `pattern`; both
 * are copied. Returns 0, or -1 when the pattern is malformed (not absolute,
 * a "{" that is not a whole segment, an empty or non-[A-Za-z0-9_] name, more
 * than ROUTER_MAX_PARAMS parameters or ROUTER_MAX_SEGMENTS segments), when
 * the same method and pattern are already registered, or on allocation
 * failure. */
int router_add(router_t *r, const char *method, const char *pattern, void *data);

/* Matches `path` (`pathlen` bytes, the part before any '?', still
 * percent-encoded) for `method`. Always fills *out (call router_match_free()
 * afterwards whatever the result). */
router_result_t router_match(const router_t *r, const char *method, const char *path, size_t pathlen,
                             router_match_t *out);

/* Looks up a path parameter of a match; NULL when absent. */
const char *router_match_param(const router_match_t *m, const char *name);

/* Frees what a match holds. Accepts a zeroed or already freed match. */
void router_match_free(router_match_t *m);

/* Decodes %XX escapes of `len` bytes at `src` into `dst` (room for len + 1
 * bytes) and NUL-terminates it; with `plus_is_space`, '+' becomes ' '.
 * Returns the decoded length, or -1 for a truncated or non-hex escape or an
 * escape that decodes to NUL (values are C strings). */
long router_url_decode(const char *src, size_t len, bool plus_is_space, char *dst);

/* A decoded query string ("a=1&b=x+y&c"). */
typedef struct {
    size_t n;
    const char **names;  /* decoded, NUL-terminated */
    const char **values; /* decoded; "" for a name without '=' */
    char *_buf;
} router_query_t;

/* Parses a query string of `len` bytes (without the '?'); empty pairs
 * ("a=1&&b=2") are skipped. Returns 0, or -1 on broken %-encoding or
 * allocation failure, leaving *out empty. Free with router_query_free(). */
int router_query_parse(const char *qs, size_t len, router_query_t *out);

/* The value of the first pair named `name`, or NULL. */
const char *router_query_get(const router_query_t *q, const char *name);

/* Frees a parsed query. Accepts a zeroed or already freed query. */
void router_query_free(router_query_t *q);

#endif
