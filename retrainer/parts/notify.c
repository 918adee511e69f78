/* notify: Slack webhook and SMTP email with retries. See notify.h. */
#include "notify.h"

#include "hive_err.h"
#include "httpc_sync.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *nz(const char *s)
{
    return s ? s : "";
}

unsigned notify_parse_channels(const char *csv, int *ok)
{
    unsigned bits = 0;
    int good = 1;
    const char *p = nz(csv);
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) {
            p++;
        }
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p)) {
            p++;
        }
        size_t n = (size_t)(p - start);
        if (n == 0) {
            continue;
        }
        if (n == 5 && strncasecmp(start, "slack", 5) == 0) {
            bits |= NOTIFY_SLACK;
        } else if (n == 5 && strncasecmp(start, "email", 5) == 0) {
            bits |= NOTIFY_EMAIL;
        } else {
            good = 0;
        }
    }
    if (ok) {
        *ok = good;
    }
    return bits;
}

void notify_format(const notify_event_t *ev, char *subject, size_t slen, char *text, size_t tlen)
{
    const char *sp = nz(ev->specialist);
    if (ev->success) {
        snprintf(subject, slen, "[auto-retrain] %s: retrained, %s", sp,
                 ev->improved ? "improved" : "not improved");
        snprintf(text, tlen,
                 "Auto-retrain of the %s specialist finished.\n"
                 "Retrain: %s\nMLflow run: %s\nImproved: %s (F1 %.4f -> %.4f)\n%s",
                 sp, nz(ev->retrain_id), nz(ev->mlflow_run_id), ev->improved ? "yes" : "no", ev->baseline_f1,
                 ev->new_f1,
                 ev->improved ? "The candidate beat the production model."
                              : "The production model stays: the candidate did not beat it.");
    } else {
        snprintf(subject, slen, "[auto-retrain] %s: FAILED", sp);
        snprintf(
            text, tlen,
            "Auto-retrain of the %s specialist failed.\n"
            "Retrain: %s\nMLflow run: %s\nError: %s\nAction: %s",
            sp, nz(ev->retrain_id), ev->mlflow_run_id && ev->mlflow_run_id[0] ? ev->mlflow_run_id : "(none)",
            ev->error && ev->error[0] ? ev->error : "unknown",
            ev->action && ev->action[0] ? ev->action : "look at the retrainer's logs and the run's record");
    }
}

/* ---- Slack ---- */

/* One POST of `payload`; 0 when the webhook answered 2xx, else a HIVE_E*
 * code, *permanent set for a 4xx other than 429. */
static int slack_once(const notify_config_t *cfg, const char *payload, long timeout_ms, bool *permanent,
                      char *err, size_t errlen)
{
    long code = 0;
    char *answer = NULL, cerr[160] = "";
    int rc = httpc_sync_request("POST", cfg->slack_webhook_url, "application/json", payload, strlen(payload),
                                timeout_ms, &code, &answer, NULL, cerr, sizeof(cerr));
    if (rc != 0) {
        hive_err_set(err, errlen, rc, "slack: %s (%s)", hive_strerror(rc), cerr);
    } else if (code < 200 || code > 299) {
        *permanent = code >= 400 && code < 500 && code != 429;
        rc = hive_err_set(err, errlen, code >= 500 || code == 429 ? HIVE_ESERVER : HIVE_EREJECTED,
                          "slack: HTTP %ld: %.80s", code, nz(answer));
    }
    free(answer);
    return rc;
}

static char *slack_payload(const notify_config_t *cfg, const notify_event_t *ev, const char *subject,
                           const char *text)
{
    char f1[64];
    snprintf(f1, sizeof(f1), "%.4f -> %.4f", ev->baseline_f1, ev->new_f1);
    json_t *fields = json_pack("[{s:s,s:s,s:b},{s:s,s:s,s:b},{s:s,s:s,s:b}]", "title", "Specialist", "value",
                               nz(ev->specialist), "short", 1, "title", "MLflow run", "value",
                               nz(ev->mlflow_run_id), "short", 1, "title", ev->success ? "F1" : "Error",
                               "value", ev->success ? f1 : nz(ev->error), "short", 0);
    json_t *p = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:o}]}", "username", "auto-retrain", "text", subject,
                          "icon_emoji", ev->success ? ":white_check_mark:" : ":x:", "attachments", "color",
                          ev->success ? (ev->improved ? "good" : "warning") : "danger", "text", text,
                          "fields", fields);
    if (p && cfg->slack_channel && cfg->slack_channel[0]) {
        json_object_set_new(p, "channel", json_string(cfg->slack_channel));
    }
    char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return s;
}

/* ---- email ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    const char *data;
    size_t len, off;
} reader_t;

static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    reader_t *r = arg;
    size_t n = size * nmemb;
    if (n > r->len - r->off) {
        n = r->len - r->off;
    }
    memcpy(buf, r->data + r->off, n);
    r->off += n;
    return n;
}

/* The RFC 5322 message (malloc'd). */
static char *email_message(const char *from, const char *to, const char *subject, const char *text)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    size_t cap = strlen(text) * 2 + 1024 + strlen(to) + strlen(subject);
    char *m = malloc(cap);
    if (!m) {
        return NULL;
    }
    int n = snprintf(m, cap,
                     "Date: %s\r\nFrom: <%s>\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                     date, from, to, subject);
    /* bare \n to \r\n */
    for (const char *p = text; *p && (size_t)n + 3 < cap; p++) {
        if (*p == '\n') {
            m[n++] = '\r';
        }
        m[n++] = *p;
    }
    m[n++] = '\r';
    m[n++] = '\n';
    m[n] = '\0';
    return m;
}

static int email_once(const notify_config_t *cfg, struct curl_slist *rcpts, const char *msg, long timeout_ms,
                      bool *permanent, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    if (!h) {
        return hive_err_set(err, errlen, HIVE_ENOMEM, "email: out of memory");
    }
    char url[512], from[320], cerr[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof(url), "smtp://%s:%d", cfg->smtp_host, cfg->smtp_port > 0 ? cfg->smtp_port : 587);
    snprintf(from, sizeof(from), "<%s>",
             cfg->smtp_from && cfg->smtp_from[0] ? cfg->smtp_from : "retrainer@localhost");
    reader_t r = {msg, strlen(msg), 0};
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &r);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    if (cfg->smtp_user && cfg->smtp_user[0]) {
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->smtp_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, nz(cfg->smtp_password));
    }
    CURLcode c = curl_easy_perform(h);
    int rc = 0;
    if (c != CURLE_OK) {
        long resp = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp);
        /* 5xx replies (bad recipient, auth refused) will not change on a retry */
        *permanent = c == CURLE_LOGIN_DENIED || (resp >= 500 && resp < 600);
        rc = hive_err_set(err, errlen,
                          c == CURLE_OPERATION_TIMEDOUT                                   ? HIVE_ETIMEDOUT
                          : c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST ? HIVE_EUNAVAILABLE
                          : *permanent                                                    ? HIVE_EREJECTED
                                                                                          : HIVE_EPROTO,
                          "email: %s (SMTP %ld)", cerr[0] ? cerr : curl_easy_strerror(c), resp);
    }
    curl_easy_cleanup(h);
    return rc;
}

/* ---- sending with retries ---- */

typedef enum { CH_SLACK, CH_EMAIL } channel_t;

typedef struct {
    const notify_config_t *cfg;
    const char *payload;      /* slack */
    struct curl_slist *rcpts; /* email */
    const char *msg;          /* email */
} send_ctx_t;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void send_with_retries(channel_t ch, const send_ctx_t *c, notify_outcome_t *o)
{
    long timeout_ms = c->cfg->timeout_ms > 0 ? c->cfg->timeout_ms : 10000;
    int tries = 1 + (c->cfg->retries > 0 ? c->cfg->retries : 0);
    long backoff = NOTIFY_BACKOFF_MS;
    for (int i = 0; i < tries; i++) {
        if (i > 0) {
            sleep_ms(backoff);
            backoff = backoff * 2 > NOTIFY_BACKOFF_MAX_MS ? NOTIFY_BACKOFF_MAX_MS : backoff * 2;
        }
        bool permanent = false;
        o->attempts++;
        int rc =
            ch == CH_SLACK
                ? slack_once(c->cfg, c->payload, timeout_ms, &permanent, o->error, sizeof(o->error))
                : email_once(c->cfg, c->rcpts, c->msg, timeout_ms, &permanent, o->error, sizeof(o->error));
        if (rc == 0) {
            o->sent = 1;
            o->error[0] = '\0';
            return;
        }
        if (permanent) {
            break;
        }
    }
    o->failed = 1;
}

/* The recipients as "<a>" entries and the To: header line; NULL when none. */
static struct curl_slist *parse_rcpts(const char *csv, char *to, size_t tolen)
{
    struct curl_slist *list = NULL;
    to[0] = '\0';
    const char *p = nz(csv);
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) {
            p++;
        }
        const char *start = p;
        while (*p && *p != ',') {
            p++;
        }
        const char *end = p;
        while (end > start && isspace((unsigned char)end[-1])) {
            end--;
        }
        if (end == start) {
            continue;
        }
        char addr[320];
        snprintf(addr, sizeof(addr), "<%.*s>", (int)(end - start), start);
        struct curl_slist *l2 = curl_slist_append(list, addr);
        if (!l2) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = l2;
        size_t n = strlen(to);
        snprintf(to + n, tolen - n, "%s%s", n ? ", " : "", addr);
    }
    return list;
}

int notify_send(const notify_config_t *cfg, const notify_event_t *ev, notify_outcome_t out[2])
{
    if (!out) {
        return HIVE_EINVAL;
    }
    memset(out, 0, 2 * sizeof(*out));
    if (!cfg || !ev) {
        return HIVE_EINVAL;
    }
    int rc = 0;
    char subject[256], text[2048];
    notify_format(ev, subject, sizeof(subject), text, sizeof(text));
    if (cfg->channels & NOTIFY_SLACK) {
        notify_outcome_t *o = &out[NOTIFY_IDX_SLACK];
        char *payload = NULL;
        if (!cfg->slack_webhook_url || !cfg->slack_webhook_url[0]) {
            o->failed = 1;
            rc = hive_err_set(o->error, sizeof(o->error), HIVE_EINVAL,
                              "slack: no webhook URL (SLACK_WEBHOOK_URL)");
        } else if (!(payload = slack_payload(cfg, ev, subject, text))) {
            o->failed = 1;
            hive_err_set(o->error, sizeof(o->error), HIVE_ENOMEM, "slack: out of memory");
        } else {
            send_ctx_t c = {.cfg = cfg, .payload = payload};
            send_with_retries(CH_SLACK, &c, o);
        }
        free(payload);
    }
    if (cfg->channels & NOTIFY_EMAIL) {
        notify_outcome_t *o = &out[NOTIFY_IDX_EMAIL];
        char to[2048];
        pthread_once(&curl_once, curl_init_once);
        struct curl_slist *rcpts = parse_rcpts(cfg->email_recipients, to, sizeof(to));
        char *msg = NULL;
        if (!cfg->smtp_host || !cfg->smtp_host[0] || !rcpts) {
            o->failed = 1;
            rc = hive_err_set(o->error, sizeof(o->error), HIVE_EINVAL,
                              "email: SMTP_HOST and EMAIL_RECIPIENTS are required");
        } else if (!(msg = email_message(cfg->smtp_from && cfg->smtp_from[0] ? cfg->smtp_from
                                                                             : "retrainer@localhost",
                                         to, subject, text))) {
            o->failed = 1;
            hive_err_set(o->error, sizeof(o->error), HIVE_ENOMEM, "email: out of memory");
        } else {
            send_ctx_t c = {.cfg = cfg, .rcpts = rcpts, .msg = msg};
            send_with_retries(CH_EMAIL, &c, o);
        }
        free(msg);
        curl_slist_free_all(rcpts);
    }
    return rc;
}
