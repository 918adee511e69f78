#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_version.h"

/* One socket curl asked us to watch. */
typedef struct httpc_sock_s {
    uv_poll_t poll;
    curl_socket_t fd;
    httpc_t *c;
    bool closing;
    struct httpc_sock_s *prev, *next;
} httpc_sock_t;

typedef struct httpc_req_s {
    CURL *easy;
    httpc_t *c;
    struct curl_slist *headers;
    char *body;
    char *resp;
    size_t resp_len, resp_cap;
    bool too_big;                 /* the answer passed HTTPC_MAX_RESPONSE */
    char errbuf[CURL_ERROR_SIZE]; /* libcurl's message for a failed transfer */
    httpc_done_fn cb;
    void *arg;
    struct httpc_req_s *prev, *next;
} httpc_req_t;

struct httpc_s {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    httpc_sock_t *socks; /* watched sockets, not closing */
    httpc_req_t *reqs;   /* requests in flight */
    size_t nreqs;
    int depth; /* > 0 while calling user callbacks */
    bool closing, finishing, closed;
    int pending; /* handles being closed */
    void (*done)(void *arg);
    void *done_arg;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int httpc_error_code(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return HIVE_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return HIVE_ENOMEM;
    case CURLE_WRITE_ERROR: /* on_write refused: too large, or no memory */
        return HIVE_ETOOBIG;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
        return HIVE_EINVAL;
    default: /* resolve, connect, send, receive, TLS handshake ...: the peer may come back */
        return HIVE_EUNAVAILABLE;
    }
}

size_t httpc_pending(const httpc_t *c)
{
    return c->nreqs;
}

/* ---- handles ----------------------------------------------------------------- */

static void maybe_done(httpc_t *c)
{
    if (!c->finishing || c->pending > 0 || c->closed) {
        return;
    }
    c->closed = true;
    if (c->done) {
        c->done(c->done_arg);
    }
}

void httpc_destroy(httpc_t *c)
{
    if (c && c->closed) {
        free(c);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    httpc_t *c = h->data;
    c->pending--;
    maybe_done(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    httpc_sock_t *sk = (httpc_sock_t *)h;
    httpc_t *c = sk->c;
    free(sk);
    c->pending--;
    maybe_done(c);
}

/* Stops watching a socket at once (before curl closes the fd) and frees it
 * when libuv is done with the handle. */
static void sock_close(httpc_sock_t *sk)
{
    if (sk->closing) {
        return;
    }
    httpc_t *c = sk->c;
    sk->closing = true;
    if (sk->prev) {
        sk->prev->next = sk->next;
    } else {
        c->socks = sk->next;
    }
    if (sk->next) {
        sk->next->prev = sk->prev;
    }
    c->pending++;
    uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

/* ---- requests ----------------------------------------------------------------- */

static void req_free(httpc_req_t *q)
{
    if (q->easy) {
        curl_easy_cleanup(q->easy);
    }
    curl_slist_free_all(q->headers);
    free(q->body);
    free(q->resp);
    free(q);
}

static void req_unlink(httpc_req_t *q)
{
    httpc_t *c = q->c;
    if (q->prev) {
        q->prev->next = q->next;
    } else {
        c->reqs = q->next;
    }
    if (q->next) {
        q->next->prev = q->prev;
    }
    c->nreqs--;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    httpc_req_t *q = userp;
    size_t n = size * nmemb;
    if (n > HTTPC_MAX_RESPONSE - q->resp_len) {
        q->too_big = true;
        return 0; /* too large: curl fails with CURLE_WRITE_ERROR */
    }
    if (q->resp_len + n + 1 > q->resp_cap) {
        size_t cap = q->resp_cap ? q->resp_cap : 4096;
        while (cap < q->resp_len + n + 1) {
            cap *= 2;
        }
        char *resp = realloc(q->resp, cap);
        if (!resp) {
            return 0;
        }
        q->resp = resp;
        q->resp_cap = cap;
    }
    memcpy(q->resp + q->resp_len, data, n);
    q->resp_len += n;
    q->resp[q->resp_len] = '\0';
    return n;
}

static void finish_close(httpc_t *c);

/* Hands finished transfers to their callbacks. User code may start new
 * requests or close the client from a callback; closing is completed here,
 * once no callback is on the stack. */
static void process_done(httpc_t *c)
{
    c->depth++;
    CURLMsg *msg;
    int left;
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result; /* msg is invalid after remove_handle */
        char *priv = NULL;
        long code = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        httpc_req_t *q = (httpc_req_t *)priv;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(c->multi, easy);
        req_unlink(q);
        if (rc == CURLE_OK) {
            q->cb(q->arg, 0, code, q->resp ? q->resp : "", q->resp_len);
        } else {
            int status = rc == CURLE_WRITE_ERROR && !q->too_big ? HIVE_ENOMEM : httpc_error_code(rc);
            const char *why = q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc);
            q->cb(q->arg, status, code, why, strlen(why));
        }
        req_free(q);
    }
    c->depth--;
    if (c->closing && c->depth == 0) {
        finish_close(c);
    }
}

/* ---- curl <-> libuv ---------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    httpc_sock_t *sk = h->data;
    httpc_t *c = sk->c;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    int running;
    curl_multi_socket_action(c->multi, sk->fd, flags, &running);
    process_done(c);
}

static void on_timer(uv_timer_t *t)
{
    httpc_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process_done(c);
}

/* CURLMOPT_SOCKETFUNCTION: curl says which events it wants on a socket, or
 * that it is about to close it (CURL_POLL_REMOVE). */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    httpc_t *c = userp;
    httpc_sock_t *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            sock_close(sk);
        }
        return 0;
    }
    if (c->finishing) {
        return 0;
    }
    if (!sk) {
        sk = calloc(1, sizeof(*sk));
        if (!sk) {
            return -1;
        }
        if (uv_poll_init_socket(c->loop, &sk->poll, fd) != 0) {
            free(sk);
            return -1;
        }
        sk->fd = fd;
        sk->c = c;
        sk->poll.data = sk;
        sk->next = c->socks;
        if (c->socks) {
            c->socks->prev = sk;
        }
        c->socks = sk;
        curl_multi_assign(c->multi, fd, sk);
    }
    int events = 0;
    events |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    events |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    uv_poll_start(&sk->poll, events, on_poll);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    httpc_t *c = userp;
    if (c->finishing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- public -------------------------------------------------------------------------- */

httpc_t *httpc_create(uv_loop_t *loop)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK || !loop) {
        return NULL;
    }
    httpc_t *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    return c;
}

static struct curl_slist *add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *l = curl_slist_append(*list, h);
    if (l) {
        *list = l;
    }
    return l;
}

int httpc_request(httpc_t *c, const char *method, const char *url, const char *content_type, const char *body,
                  size_t len, long timeout_ms, httpc_done_fn cb, void *arg)
{
    if (!c || c->closing || !method || !url || !cb || (!body && len > 0)) {
        return HIVE_EINVAL;
    }
    bool is_get = strcmp(method, "GET") == 0, is_head = strcmp(method, "HEAD") == 0;
    if ((is_get || is_head) && len > 0) {
        return HIVE_EINVAL;
    }
    httpc_req_t *q = calloc(1, sizeof(*q));
    if (!q) {
        return HIVE_ENOMEM;
    }
    q->c = c;
    q->cb = cb;
    q->arg = arg;
    if (!(q->easy = curl_easy_init())) {
        req_free(q);
        return HIVE_ENOMEM;
    }

    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                                        \
    do {                                                                                                     \
        if (rc == CURLE_OK) {                                                                                \
            rc = curl_easy_setopt(q->easy, opt, val);                                                        \
        }                                                                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PRIVATE, (void *)q);
    SET(CURLOPT_ERRORBUFFER, q->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_USERAGENT, "hive/" HIVE_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, (void *)q);
    if (timeout_ms > 0) {
        SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    }

    /* No "Expect: 100-continue" round trip; no form-urlencoded default. */
    char ct[256];
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type ? content_type : "");
    if (!add_header(&q->headers, "Expect:") || !add_header(&q->headers, ct)) {
        rc = CURLE_OUT_OF_MEMORY;
    }
    SET(CURLOPT_HTTPHEADER, q->headers);

    if (is_get) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (is_head) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0) {
            SET(CURLOPT_CUSTOMREQUEST, method);
        }
        if (body || strcmp(method, "POST") == 0) {
            q->body = malloc(len + 1);
            if (!q->body) {
                rc = CURLE_OUT_OF_MEMORY;
            } else if (len > 0) {
                memcpy(q->body, body, len);
            }
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            SET(CURLOPT_POSTFIELDS, q->body);
        }
    }
#undef SET
    if (rc != CURLE_OK) {
        req_free(q);
        return httpc_error_code(rc);
    }
    if (curl_multi_add_handle(c->multi, q->easy) != CURLM_OK) {
        req_free(q);
        return HIVE_ENOMEM;
    }
    q->next = c->reqs;
    if (c->reqs) {
        c->reqs->prev = q;
    }
    c->reqs = q;
    c->nreqs++;
    return 0;
}

/* Tears down curl and closes every handle; the client is freed by the last
 * close callback. Runs once no user callback is on the stack. */
static void finish_close(httpc_t *c)
{
    if (c->finishing) {
        return;
    }
    c->finishing = true;
    /* Stop watching the sockets before curl closes them. */
    while (c->socks) {
        sock_close(c->socks);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    c->pending++;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void httpc_close(httpc_t *c, void (*done)(void *arg), void *arg)
{
    if (!c) {
        if (done) {
            done(arg);
        }
        return;
    }
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    c->depth++;
    while (c->reqs) {
        httpc_req_t *q = c->reqs;
        curl_multi_remove_handle(c->multi, q->easy);
        req_unlink(q);
        const char *msg = hive_strerror(HIVE_ECANCELED);
        q->cb(q->arg, HIVE_ECANCELED, 0, msg, strlen(msg));
        req_free(q);
    }
    c->depth--;
    if (c->depth == 0) {
        finish_close(c);
    }
}
