/* Unit tests of the retrainer's notifications: channel names, the message
 * text, the Slack webhook POST against a one-shot HTTP server in a thread of
 * the test (payload, retries after a 5xx, no retry after a 4xx), email through
 * a scripted SMTP server in a thread (envelope and message), retries counted
 * against a closed port, and missing settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hive_err.h"
#include "notify.h"

typedef struct {
    int listener;
    int port;
    int smtp; /* 0: HTTP, answer `answer`; 1: speak SMTP */
    const char *answer;
    char request[16384];
    size_t request_len;
    pthread_t thread;
} server_t;

static void read_some(int fd, server_t *sv)
{
    ssize_t n = read(fd, sv->request + sv->request_len, sizeof(sv->request) - 1 - sv->request_len);
    if (n > 0) {
        sv->request_len += (size_t)n;
        sv->request[sv->request_len] = '\0';
    }
}

static void say(int fd, const char *s)
{
    ssize_t w = write(fd, s, strlen(s));
    (void)w;
}

/* A minimal SMTP server: every command answered 250 (DATA 354, QUIT 221),
 * the whole conversation kept in sv->request. */
static void serve_smtp(int fd, server_t *sv)
{
    say(fd, "220 test ESMTP\r\n");
    size_t seen = 0;
    int in_data = 0;
    while (sv->request_len < sizeof(sv->request) - 1) {
        size_t before = sv->request_len;
        read_some(fd, sv);
        if (sv->request_len == before) {
            return;
        }
        char *line;
        while ((line = strstr(sv->request + seen, "\r\n")) != NULL) {
            char *start = sv->request + seen;
            seen = (size_t)(line + 2 - sv->request);
            if (in_data) {
                if (line == start + 1 && start[0] == '.') {
                    in_data = 0;
                    say(fd, "250 queued\r\n");
                }
                continue;
            }
            if (strncasecmp(start, "EHLO", 4) == 0) {
                say(fd, "250 test\r\n");
            } else if (strncasecmp(start, "DATA", 4) == 0) {
                in_data = 1;
                say(fd, "354 go on\r\n");
            } else if (strncasecmp(start, "QUIT", 4) == 0) {
                say(fd, "221 bye\r\n");
                return;
            } else {
                say(fd, "250 ok\r\n");
            }
        }
    }
}

static void *serve_once(void *arg)
{
    server_t *sv = arg;
    int fd = accept(sv->listener, NULL, NULL);
    /* one connection only: the next one is refused */
    close(sv->listener);
    if (fd < 0) {
        return NULL;
    }
    if (sv->smtp) {
        serve_smtp(fd, sv);
    } else {
        for (;;) {
            size_t before = sv->request_len;
            read_some(fd, sv);
            char *end = strstr(sv->request, "\r\n\r\n");
            const char *cl = strcasestr(sv->request, "Content-Length: ");
            if (sv->request_len == before ||
                (end &&
                 (!cl || sv->request_len >= (size_t)(end + 4 - sv->request) + (size_t)atoi(cl + 16)))) {
                break;
            }
        }
        say(fd, sv->answer);
    }
    close(fd);
    return NULL;
}

static void server_start(server_t *sv, int smtp, const char *answer)
{
    memset(sv, 0, sizeof(*sv));
    sv->smtp = smtp;
    sv->answer = answer;
    sv->listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sv->listener >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sv->listener, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    assert_int_equal(getsockname(sv->listener, (struct sockaddr *)&a, &l), 0);
    sv->port = ntohs(a.sin_port);
    assert_int_equal(listen(sv->listener, 4), 0);
    assert_int_equal(pthread_create(&sv->thread, NULL, serve_once, sv), 0);
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

static const notify_event_t OK_EVENT = {.success = 1,
                                        .specialist = "technical",
                                        .retrain_id = "rt-1",
                                        .mlflow_run_id = "run-abc",
                                        .improved = 1,
                                        .baseline_f1 = 0.8,
                                        .new_f1 = 0.85};
static const notify_event_t FAIL_EVENT = {.success = 0,
                                          .specialist = "business",
                                          .retrain_id = "rt-2",
                                          .error = "training failed: exit 2",
                                          .action = "add samples"};

static void channels_parse(void **state)
{
    int ok = -1;
    assert_int_equal(notify_parse_channels("slack,email", &ok), NOTIFY_SLACK | NOTIFY_EMAIL);
    assert_int_equal(ok, 1);
    assert_int_equal(notify_parse_channels(" Email ", &ok), NOTIFY_EMAIL);
    assert_int_equal(ok, 1);
    assert_int_equal(notify_parse_channels("slack,pager", &ok), NOTIFY_SLACK);
    assert_int_equal(ok, 0);
    assert_int_equal(notify_parse_channels("", &ok), 0);
    assert_int_equal(ok, 1);
    assert_int_equal(notify_parse_channels(NULL, NULL), 0);
}

static void message_text(void **state)
{
    char subject[256], text[1024];
    notify_format(&OK_EVENT, subject, sizeof(subject), text, sizeof(text));
    assert_non_null(strstr(subject, "technical"));
    assert_non_null(strstr(subject, "improved"));
    assert_non_null(strstr(text, "run-abc"));
    assert_non_null(strstr(text, "Improved: yes (F1 0.8000 -> 0.8500)"));
    notify_format(&FAIL_EVENT, subject, sizeof(subject), text, sizeof(text));
    assert_non_null(strstr(subject, "FAILED"));
    assert_non_null(strstr(text, "Error: training failed: exit 2"));
    assert_non_null(strstr(text, "Action: add samples"));
}

static void slack_posts_json(void **state)
{
    server_t sv;
    server_start(&sv, 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", sv.port);
    notify_config_t cfg = {.channels = NOTIFY_SLACK,
                           .slack_webhook_url = url,
                           .slack_channel = "#ml-alerts",
                           .retries = 2,
                           .timeout_ms = 5000};
    notify_outcome_t out[2];
    assert_int_equal(notify_send(&cfg, &OK_EVENT, out), 0);
    pthread_join(sv.thread, NULL);
    assert_int_equal(out[NOTIFY_IDX_SLACK].sent, 1);
    assert_int_equal(out[NOTIFY_IDX_SLACK].failed, 0);
    assert_int_equal(out[NOTIFY_IDX_SLACK].attempts, 1);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].attempts, 0);
    assert_non_null(strstr(sv.request, "POST /hook "));
    const char *body = strstr(sv.request, "\r\n\r\n");
    assert_non_null(body);
    json_t *j = json_loads(body + 4, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "channel")), "#ml-alerts");
    assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "technical"));
    json_t *att = json_array_get(json_object_get(j, "attachments"), 0);
    assert_string_equal(json_string_value(json_object_get(att, "color")), "good");
    assert_non_null(strstr(json_string_value(json_object_get(att, "text")), "run-abc"));
    json_decref(j);
}

static void slack_retries_a_server_error_and_counts(void **state)
{
    server_t sv;
    server_start(&sv, 0, "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", sv.port);
    notify_config_t cfg = {
        .channels = NOTIFY_SLACK, .slack_webhook_url = url, .retries = 2, .timeout_ms = 5000};
    notify_outcome_t out[2];
    /* 503, then two refused connections: three attempts, the run unharmed */
    assert_int_equal(notify_send(&cfg, &FAIL_EVENT, out), 0);
    pthread_join(sv.thread, NULL);
    assert_int_equal(out[NOTIFY_IDX_SLACK].sent, 0);
    assert_int_equal(out[NOTIFY_IDX_SLACK].failed, 1);
    assert_int_equal(out[NOTIFY_IDX_SLACK].attempts, 3);
    assert_true(strlen(out[NOTIFY_IDX_SLACK].error) > 0);
}

static void slack_does_not_retry_a_client_error(void **state)
{
    server_t sv;
    server_start(&sv, 0,
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\nConnection: close\r\n\r\nno_such_hook!!");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", sv.port);
    notify_config_t cfg = {
        .channels = NOTIFY_SLACK, .slack_webhook_url = url, .retries = 3, .timeout_ms = 5000};
    notify_outcome_t out[2];
    assert_int_equal(notify_send(&cfg, &OK_EVENT, out), 0);
    pthread_join(sv.thread, NULL);
    assert_int_equal(out[NOTIFY_IDX_SLACK].failed, 1);
    assert_int_equal(out[NOTIFY_IDX_SLACK].attempts, 1);
    assert_non_null(strstr(out[NOTIFY_IDX_SLACK].error, "HTTP 404"));
}

static void email_goes_through_smtp(void **state)
{
    server_t sv;
    server_start(&sv, 1, NULL);
    notify_config_t cfg = {.channels = NOTIFY_EMAIL,
                           .smtp_host = "127.0.0.1",
                           .smtp_port = sv.port,
                           .smtp_from = "retrainer@example.org",
                           .email_recipients = "a@example.org, b@example.org",
                           .retries = 1,
                           .timeout_ms = 5000};
    notify_outcome_t out[2];
    assert_int_equal(notify_send(&cfg, &FAIL_EVENT, out), 0);
    pthread_join(sv.thread, NULL);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].sent, 1);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].attempts, 1);
    assert_non_null(strstr(sv.request, "MAIL FROM:<retrainer@example.org>"));
    assert_non_null(strstr(sv.request, "RCPT TO:<a@example.org>"));
    assert_non_null(strstr(sv.request, "RCPT TO:<b@example.org>"));
    assert_non_null(strstr(sv.request, "Subject: [auto-retrain] business: FAILED"));
    assert_non_null(strstr(sv.request, "Error: training failed: exit 2\r\n"));
}

static void email_retries_are_counted(void **state)
{
    notify_config_t cfg = {.channels = NOTIFY_EMAIL,
                           .smtp_host = "127.0.0.1",
                           .smtp_port = closed_port(),
                           .email_recipients = "a@example.org",
                           .retries = 2,
                           .timeout_ms = 2000};
    notify_outcome_t out[2];
    assert_int_equal(notify_send(&cfg, &OK_EVENT, out), 0);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].failed, 1);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].attempts, 3);
}

static void missing_settings(void **state)
{
    notify_config_t cfg = {.channels = NOTIFY_SLACK | NOTIFY_EMAIL, .smtp_host = "127.0.0.1"};
    notify_outcome_t out[2];
    assert_int_equal(notify_send(&cfg, &OK_EVENT, out), HIVE_EINVAL);
    assert_int_equal(out[NOTIFY_IDX_SLACK].failed, 1);
    assert_int_equal(out[NOTIFY_IDX_SLACK].attempts, 0);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].failed, 1);
    assert_int_equal(out[NOTIFY_IDX_EMAIL].attempts, 0);
    assert_int_equal(notify_send(NULL, &OK_EVENT, out), HIVE_EINVAL);
    cfg.channels = 0;
    assert_int_equal(notify_send(&cfg, &OK_EVENT, out), 0);
    assert_int_equal(out[0].attempts + out[1].attempts, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(channels_parse),
        cmocka_unit_test(message_text),
        cmocka_unit_test(slack_posts_json),
        cmocka_unit_test(slack_retries_a_server_error_and_counts),
        cmocka_unit_test(slack_does_not_retry_a_client_error),
        cmocka_unit_test(email_goes_through_smtp),
        cmocka_unit_test(email_retries_are_counted),
        cmocka_unit_test(missing_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
