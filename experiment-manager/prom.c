/* prom: see prom.h. */
#include "prom.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_err.h"
#include "httpc_sync.h"

#define PLACEHOLDER "$variant"

int prom_expand(const char *tmpl, const char *variant, char *out, size_t cap)
{
    size_t n = 0, pl = strlen(PLACEHOLDER), vl = strlen(variant);
    for (const char *p = tmpl; *p;) {
        const char *piece = p;
        size_t len = 1;
        if (strncmp(p, PLACEHOLDER, pl) == 0) {
            piece = variant;
            len = vl;
            p += pl;
        } else {
            p++;
        }
        if (n + len >= cap) {
            return HIVE_ETOOBIG;
        }
        memcpy(out + n, piece, len);
        n += len;
    }
    if (n >= cap) {
        return HIVE_ETOOBIG;
    }
    out[n] = '\0';
    return 0;
}

/* [time, "value"] -> value */
static int sample_value(json_t *pair, double *out, char *err, size_t errlen)
{
    const char *s = json_string_value(json_array_get(pair, 1));
    char *end = NULL;
    double v = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || !isfinite(v)) {
        snprintf(err, errlen, "prometheus: the sample is not a finite number (%s)", s ? s : "missing");
        return HIVE_EPROTO;
    }
    *out = v;
    return 0;
}

int prom_parse_value(const char *body, size_t len, double *out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    int rc = HIVE_EPROTO;
    const char *status = json_string_value(json_object_get(root, "status"));
    json_t *data = json_object_get(root, "data");
    const char *type = json_string_value(json_object_get(data, "resultType"));
    json_t *result = json_object_get(data, "result");
    if (!root) {
        snprintf(err, errlen, "prometheus: not JSON: %s", je.text);
    } else if (!status || strcmp(status, "success") != 0) {
        const char *e = json_string_value(json_object_get(root, "error"));
        snprintf(err, errlen, "prometheus: %s", e ? e : "the query failed");
    } else if (type && strcmp(type, "scalar") == 0) {
        rc = sample_value(result, out, err, errlen);
    } else if (!type || strcmp(type, "vector") != 0 || !json_is_array(result)) {
        snprintf(err, errlen, "prometheus: a %s result, expected a scalar or a vector",
                 type ? type : "missing");
    } else if (json_array_size(result) == 0) {
        snprintf(err, errlen, "prometheus: no sample");
        rc = HIVE_ENOTFOUND;
    } else if (json_array_size(result) > 1) {
        snprintf(err, errlen, "prometheus: %zu samples, expected one (aggregate the query)",
                 json_array_size(result));
    } else {
        rc = sample_value(json_object_get(json_array_get(result, 0), "value"), out, err, errlen);
    }
    json_decref(root);
    return rc;
}

int prom_query(const char *base_url, const char *query, long timeout_ms, double *out, char *err,
               size_t errlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t bl = strlen(base_url), ql = strlen(query);
    char *url = malloc(bl + 3 * ql + 32);
    if (!url) {
        return HIVE_ENOMEM;
    }
    size_t n = (size_t)sprintf(
        url, "%.*s/api/v1/query?query=", (int)(bl && base_url[bl - 1] == '/' ? bl - 1 : bl), base_url);
    for (const char *p = query; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            url[n++] = (char)c;
        } else {
            url[n++] = '%';
            url[n++] = hex[c >> 4];
            url[n++] = hex[c & 15];
        }
    }
    url[n] = '\0';
    long code = 0;
    char *body = NULL;
    size_t len = 0;
    int rc = httpc_sync_request("GET", url, NULL, NULL, 0, timeout_ms, &code, &body, &len, err, errlen);
    free(url);
    if (rc == 0) {
        rc = body && (code == 200 || code == 400 || code == 422)
                 ? prom_parse_value(body, len, out, err, errlen)
                 : HIVE_EUNAVAILABLE;
        if (rc == HIVE_EUNAVAILABLE) {
            snprintf(err, errlen, "prometheus: HTTP %ld", code);
        }
    }
    free(body);
    return rc;
}
