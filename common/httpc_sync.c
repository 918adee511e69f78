#include "httpc_sync.h"

#include "hive_err.h"
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool too_big;
} sink_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    sink_t *s = arg;
    size_t n = size * nmemb;
    if (s->len + n > HTTPC_MAX_RESPONSE) {
        s->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1) {
            cap *= 2;
        }
        char *b = realloc(s->buf, cap);
        if (!b) {
            return 0;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static int code_of(CURLcode rc, bool too_big)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return HIVE_ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return HIVE_EUNAVAILABLE;
    case CURLE_WRITE_ERROR:
        return too_big ? HIVE_ETOOBIG : HIVE_ENOMEM;
    case CURLE_OUT_OF_MEMORY:
        return HIVE_ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return HIVE_EINVAL;
    default:
        return HIVE_EPROTO;
    }
}

int httpc_sync_request(const char *method, const char *url, const char *content_type, const char *body,
                       size_t len, long timeout_ms, long *out_http_code, char **out_body, size_t *out_len,
                       char *err, size_t errlen)
{
    return httpc_sync_request_headers(method, url, content_type, NULL, body, len, timeout_ms, out_http_code,
                                      out_body, out_len, err, errlen);
}

int httpc_sync_request_headers(const char *method, const char *url, const char *content_type,
                               const char *const *extra, const char *body, size_t len, long timeout_ms,
                               long *out_http_code, char **out_body, size_t *out_len, char *err,
                               size_t errlen)
{
    if (err && errlen) {
        err[0] = '\0';
    }
    if (!method || !method[0] || !url || !url[0] || timeout_ms <= 0 || !out_http_code || (len && !body)) {
        return HIVE_EINVAL;
    }
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        return HIVE_ENOMEM;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        return HIVE_ENOMEM;
    }
    sink_t sink = {0};
    struct curl_slist *headers = NULL;
    char ctype[256];
    char curl_err[CURL_ERROR_SIZE] = "";
    if (content_type) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, ctype);
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        struct curl_slist *h2 = curl_slist_append(headers, extra[i]);
        if (!h2) {
            curl_slist_free_all(headers);
            curl_easy_cleanup(h);
            return HIVE_ENOMEM;
        }
        headers = h2;
    }
    /* Nothing else in the process may get a signal from libcurl (threads). */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    if (headers) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(h);
    int out = 0;
    if (rc != CURLE_OK) {
        out = code_of(rc, sink.too_big);
        if (err && errlen) {
            snprintf(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
        }
        free(sink.buf);
    } else {
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (out_body && !sink.buf && !(sink.buf = calloc(1, 1))) {
            out = HIVE_ENOMEM;
        } else {
            *out_http_code = code;
            if (out_len) {
                *out_len = sink.len;
            }
            if (out_body) {
                *out_body = sink.buf;
                sink.buf = NULL;
            }
        }
        free(sink.buf);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return out;
}
