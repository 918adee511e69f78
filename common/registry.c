#include "registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define CONTENT_TYPE "application/vnd.schemaregistry.v1+json"
#define MAX_RESPONSE (1 << 20) /* a schema is a few kB; refuse to buffer more than this */
#define MISS_TTL_MS 30000
#define MISS_SLOTS 64

typedef struct {
    char *subject;
    char *schema;
    int32_t id;
} subject_entry_t;

typedef struct {
    int32_t id;
    char *schema;
} id_entry_t;

typedef struct {
    int32_t id;
    int64_t until_ms;
} miss_t;

struct registry_s {
    char **urls;    /* base URLs without trailing '/' */
    char **display; /* the same without user:password, for messages */
    size_t nurls;
    long timeout_ms;
    pthread_mutex_t lock; /* guards the caches below */
    subject_entry_t *subjects;
    size_t nsubjects;
    id_entry_t *ids;
    size_t nids;
    miss_t misses[MISS_SLOTS]; /* recent 404s, a ring */
    size_t next_miss;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "http://user:pw@host:8081/" -> "http://host:8081" */
static char *strip_userinfo(const char *url)
{
    const char *host = strstr(url, "://") + 3;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    if (!at || (slash && slash < at)) {
        return strdup(url);
    }
    size_t scheme = (size_t)(host - url);
    char *out = malloc(strlen(url) + 1);
    if (out) {
        memcpy(out, url, scheme);
        strcpy(out + scheme, at + 1);
    }
    return out;
}

registry_t *registry_create(const char *url, long timeout_ms, char *err, size_t errlen)
{
    registry_t *r = calloc(1, sizeof(*r));
    char *list = url ? strdup(url) : NULL;
    char *save = NULL;
    if (!r || !list) {
        hive_err_set(err, errlen, 0, url ? "out of memory" : "no schema registry URL");
        goto fail;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == '/' || tok[n - 1] == ' ')) {
            tok[--n] = '\0';
        }
        if (!n) {
            continue;
        }
        if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0) {
            hive_err_set(err, errlen, 0, "schema registry URL \"%s\" is not http:// or https://", tok);
            goto fail;
        }
        char **urls = realloc(r->urls, (r->nurls + 1) * sizeof(*urls));
        char **display = urls ? realloc(r->display, (r->nurls + 1) * sizeof(*display)) : NULL;
        if (urls) {
            r->urls = urls;
        }
        if (display) {
            r->display = display;
        }
        if (!urls || !display || !(r->urls[r->nurls] = strdup(tok))) {
            hive_err_set(err, errlen, 0, "out of memory");
            goto fail;
        }
        if (!(r->display[r->nurls++] = strip_userinfo(tok))) {
            free(r->urls[r->nurls - 1]);
            r->nurls--;
            hive_err_set(err, errlen, 0, "out of memory");
            goto fail;
        }
    }
    if (!r->nurls) {
        hive_err_set(err, errlen, 0, "no schema registry URL in \"%s\"", url);
        goto fail;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        hive_err_set(err, errlen, 0, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        goto fail;
    }
    free(list);
    return r;
fail:
    free(list);
    registry_destroy(r);
    return NULL;
}

void registry_destroy(registry_t *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->nurls; i++) {
        free(r->urls[i]);
        free(r->display[i]);
    }
    free(r->urls);
    free(r->display);
    for (size_t i = 0; i < r->nsubjects; i++) {
        free(r->subjects[i].subject);
        free(r->subjects[i].schema);
    }
    free(r->subjects);
    for (size_t i = 0; i < r->nids; i++) {
        free(r->ids[i].schema);
    }
    free(r->ids);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    char *data;
    size_t len;
} body_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    body_t *b = ud;
    size_t k = size * n;
    if (b->len + k > MAX_RESPONSE) {
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    char *data = realloc(b->data, b->len + k + 1);
    if (!data) {
        return 0;
    }
    memcpy(data + b->len, p, k);
    b->len += k;
    data[b->len] = '\0';
    b->data = data;
    return k;
}

/* Sends the request to each base URL in turn until one answers. Returns 0 with the
 * HTTP status, the body (malloc'd, NUL-terminated, maybe empty) and the URL's name
 * for messages, or HIVE_EUNAVAILABLE when none answered. */
static int request(registry_t *r, const char *path, const char *post, long *out_status, char **out_body,
                   const char **out_url, char *err, size_t errlen)
{
    for (size_t i = 0; i < r->nurls; i++) {
        char errbuf[CURL_ERROR_SIZE] = "";
        body_t body = {NULL, 0};
        struct curl_slist *headers = NULL, *h;
        size_t n = strlen(r->urls[i]) + strlen(path) + 1;
        char *url = malloc(n);
        CURL *c = curl_easy_init();
        CURLcode rc = CURLE_OUT_OF_MEMORY;
        if (url && c) {
            snprintf(url, n, "%s%s", r->urls[i], path);
            h = curl_slist_append(headers, "Content-Type: " CONTENT_TYPE);
            headers = h ? h : headers;
            h = h ? curl_slist_append(headers, "Accept: " CONTENT_TYPE ", application/json") : NULL;
            headers = h ? h : headers;
            if (h) {
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
                curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
                curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
                curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
                if (post) {
                    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
                    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
                }
                rc = curl_easy_perform(c);
            }
        }
        if (rc == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, out_status);
            *out_body = body.data ? body.data : strdup("");
        } else {
            free(body.data);
            hive_err_set(err, errlen, 0, "schema registry %s: %s", r->display[i],
                         errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        free(url);
        if (rc == CURLE_OK) {
            *out_url = r->display[i];
            return *out_body ? 0 : HIVE_EUNAVAILABLE;
        }
    }
    return HIVE_EUNAVAILABLE;
}

/* Maps a non-200 status to a code, with the registry's message when it sent one. */
static int status_error(const char *url, long status, const char *body, const char *what, char *err,
                        size_t errlen)
{
    json_t *j = json_loads(body, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    hive_err_set(err, errlen, 0, "schema registry %s: %s: HTTP %ld%s%s", url, what, status, msg ? ": " : "",
                 msg ? msg : "");
    json_decref(j);
    if (status == 404) {
        return HIVE_ENOTFOUND;
    }
    if (status == 401 || status == 403 || status == 408 || status == 429 || status >= 500) {
        return HIVE_EUNAVAILABLE;
    }
    return HIVE_EREJECTED;
}

/* Percent-encodes a path segment (RFC 3986 unreserved characters pass). */
static char *escape_segment(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out) {
        return NULL;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------ caches (lock held) */

static const char *cached_schema(registry_t *r, int32_t id)
{
    for (size_t i = 0; i < r->nids; i++) {
        if (r->ids[i].id == id) {
            return r->ids[i].schema;
        }
    }
    return NULL;
}

static void cache_schema(registry_t *r, int32_t id, const char *schema)
{
    if (cached_schema(r, id)) {
        return;
    }
    id_entry_t *ids = realloc(r->ids, (r->nids + 1) * sizeof(*ids));
    char *copy = strdup(schema);
    if (ids) {
        r->ids = ids;
    }
    if (!ids || !copy) {
        free(copy); /* a cache miss later is the only cost */
        return;
    }
    r->ids[r->nids++] = (id_entry_t){id, copy};
}

/* ------------------------------------------------------------------ API */

int registry_register(registry_t *r, const char *subject, const char *schema_json, int32_t *out_id, char *err,
                      size_t errlen)
{
    int rc = HIVE_ENOMEM;
    long status = 0;
    char *path = NULL, *esc = NULL, *post = NULL, *resp = NULL;
    const char *url = NULL;
    json_t *req = NULL, *j = NULL;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nsubjects; i++) {
        if (!strcmp(r->subjects[i].subject, subject) && !strcmp(r->subjects[i].schema, schema_json)) {
            *out_id = r->subjects[i].id;
            pthread_mutex_unlock(&r->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&r->lock);

    esc = escape_segment(subject);
    req = json_pack("{s:s}", "schema", schema_json);
    post = req ? json_dumps(req, JSON_COMPACT) : NULL;
    path = esc ? malloc(strlen(esc) + 32) : NULL;
    if (!post || !path) {
        hive_err_set(err, errlen, 0, "out of memory (or schema text not UTF-8)");
        goto out;
    }
    snprintf(path, strlen(esc) + 32, "/subjects/%s/versions", esc);
    if ((rc = request(r, path, post, &status, &resp, &url, err, errlen)) != 0) {
        goto out;
    }
    if (status != 200) {
        rc = status_error(url, status, resp, "registering a schema", err, errlen);
        goto out;
    }
    j = json_loads(resp, 0, NULL);
    json_t *id = json_object_get(j, "id");
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX) {
        rc = hive_err_set(err, errlen, HIVE_EPROTO,
                          "schema registry %s: no id in the answer to a registration", url);
        goto out;
    }
    *out_id = (int32_t)json_integer_value(id);
    rc = 0;

    pthread_mutex_lock(&r->lock);
    subject_entry_t *subjects = realloc(r->subjects, (r->nsubjects + 1) * sizeof(*subjects));
    if (subjects) {
        r->subjects = subjects;
        subject_entry_t e = {strdup(subject), strdup(schema_json), *out_id};
        if (e.subject && e.schema) {
            r->subjects[r->nsubjects++] = e;
        } else {
            free(e.subject);
            free(e.schema);
        }
    }
    cache_schema(r, *out_id, schema_json);
    pthread_mutex_unlock(&r->lock);

    char idbuf[16];
    snprintf(idbuf, sizeof(idbuf), "%d", *out_id);
    log_info("schema registered", "subject", subject, "schema_id", idbuf);
out:
    json_decref(j);
    json_decref(req);
    free(resp);
    free(post);
    free(path);
    free(esc);
    return rc;
}

int registry_fetch(registry_t *r, int32_t id, char **out_json, char *err, size_t errlen)
{
    int rc;
    long status = 0;
    char path[48], *resp = NULL, *copy = NULL;
    const char *url = NULL;
    json_t *j = NULL;

    pthread_mutex_lock(&r->lock);
    const char *hit = cached_schema(r, id);
    if (hit) {
        copy = strdup(hit);
        pthread_mutex_unlock(&r->lock);
        if (!copy) {
            return hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
        }
        *out_json = copy;
        return 0;
    }
    int64_t now = now_ms();
    for (size_t i = 0; i < MISS_SLOTS; i++) {
        if (r->misses[i].id == id && r->misses[i].until_ms > now) {
            pthread_mutex_unlock(&r->lock);
            return hive_err_set(err, errlen, HIVE_ENOTFOUND, "schema id %d not found in the schema registry",
                                id);
        }
    }
    pthread_mutex_unlock(&r->lock);

    snprintf(path, sizeof(path), "/schemas/ids/%d", id);
    if ((rc = request(r, path, NULL, &status, &resp, &url, err, errlen)) != 0) {
        goto out;
    }
    if (status != 200) {
        rc = status_error(url, status, resp, "fetching a schema", err, errlen);
        if (rc == HIVE_ENOTFOUND) {
            hive_err_set(err, errlen, 0, "schema id %d not found in the schema registry", id);
            pthread_mutex_lock(&r->lock);
            r->misses[r->next_miss++ % MISS_SLOTS] = (miss_t){id, now_ms() + MISS_TTL_MS};
            pthread_mutex_unlock(&r->lock);
        }
        goto out;
    }
    j = json_loads(resp, 0, NULL);
    const char *schema = json_string_value(json_object_get(j, "schema"));
    const char *type = json_string_value(json_object_get(j, "schemaType"));
    if (!schema) {
        rc = hive_err_set(err, errlen, HIVE_EPROTO, "schema registry %s: no schema in the answer for id %d",
                          url, id);
        goto out;
    }
    if (type && strcmp(type, "AVRO") != 0) {
        rc = hive_err_set(err, errlen, HIVE_ENOTFOUND, "schema id %d is a %s schema, not Avro", id, type);
        goto out;
    }
    if (!(copy = strdup(schema))) {
        rc = hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&r->lock);
    cache_schema(r, id, schema);
    pthread_mutex_unlock(&r->lock);
    *out_json = copy;
    rc = 0;
out:
    json_decref(j);
    free(resp);
    return rc;
}
