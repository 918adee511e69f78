/* Unit tests of the retrainer's datasets: the synthetic generator (a function
 * of specialist, seed and index; balanced labels), text features, the JSONL
 * file (lines, fields, name, latest), the feedback merge (label from the 0.6
 * rating threshold, skipped documents), the age-based cleanup, and each LLM
 * provider's request and answer against a one-shot HTTP server in a thread of
 * the test, with the fall-back to synthetic when the LLM fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "dataset.h"
#include "hive_err.h"

/* ---- a one-shot HTTP server ---- */

typedef struct {
    int listener;
    int port;
    const char *answer;
    char request[16384];
    size_t request_len;
    pthread_t thread;
} server_t;

static void *serve_once(void *arg)
{
    server_t *sv = arg;
    int fd = accept(sv->listener, NULL, NULL);
    /* one request only: a second connection is refused */
    close(sv->listener);
    if (fd < 0) {
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, sv->request + sv->request_len, sizeof(sv->request) - 1 - sv->request_len);
        if (n <= 0) {
            break;
        }
        sv->request_len += (size_t)n;
        sv->request[sv->request_len] = '\0';
        char *end = strstr(sv->request, "\r\n\r\n");
        const char *cl = strcasestr(sv->request, "Content-Length: ");
        if (end && (!cl || sv->request_len >= (size_t)(end + 4 - sv->request) + (size_t)atoi(cl + 16))) {
            break;
        }
    }
    ssize_t w = write(fd, sv->answer, strlen(sv->answer));
    (void)w;
    close(fd);
    return NULL;
}

static void server_start(server_t *sv, const char *answer)
{
    memset(sv, 0, sizeof(*sv));
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

static void server_stop(server_t *sv)
{
    pthread_join(sv->thread, NULL);
}

/* An HTTP 200 answer with `body` (malloc'd). */
static char *http_ok(const char *body)
{
    char *s = NULL;
    assert_true(asprintf(&s,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n%s",
                         strlen(body), body) > 0);
    return s;
}

/* ---- helpers ---- */

static char tmpdir[64];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_dataset.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[512];
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
    return rmdir(tmpdir);
}

typedef struct {
    int lines, ones, llm, synthetic, feedback, with_text;
    int labels[64];
} file_stats_t;

/* Reads a dataset file, asserting every line's shape. */
static void read_dataset(const char *path, file_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        json_t *feats = json_object_get(j, "features");
        assert_int_equal(json_array_size(feats), DATASET_NUM_FEATURES);
        for (size_t k = 0; k < DATASET_NUM_FEATURES; k++) {
            double v = json_number_value(json_array_get(feats, k));
            assert_true(v >= 0 && v <= 1);
        }
        json_int_t label = json_integer_value(json_object_get(j, "label"));
        assert_true(label == 0 || label == 1);
        const char *src = json_string_value(json_object_get(j, "source"));
        assert_non_null(src);
        st->llm += strcmp(src, "llm") == 0;
        st->synthetic += strcmp(src, "synthetic") == 0;
        st->feedback += strcmp(src, "feedback") == 0;
        st->with_text += json_object_get(j, "text") != NULL;
        if (st->lines < 64) {
            st->labels[st->lines] = (int)label;
        }
        st->ones += (int)label;
        st->lines++;
        json_decref(j);
    }
    fclose(f);
}

/* ---- synthetic ---- */

static void synth_is_a_function_of_specialist_seed_and_index(void **state)
{
    dataset_sample_t a, b, c, d;
    dataset_synth_sample("technical", 7, 3, &a);
    dataset_synth_sample("technical", 7, 3, &b);
    assert_memory_equal(a.features, b.features, sizeof(a.features));
    assert_int_equal(a.label, b.label);
    dataset_synth_sample("technical", 8, 3, &c);
    dataset_synth_sample("technical", 7, 4, &d);
    assert_memory_not_equal(a.features, c.features, sizeof(a.features));
    assert_memory_not_equal(a.features, d.features, sizeof(a.features));
}

static void synth_labels_are_balanced_and_features_in_range(void **state)
{
    const char *specialists[] = {"technical", "business", "behavior", "evolution", "architecture"};
    for (size_t s = 0; s < 5; s++) {
        int ones = 0;
        for (uint64_t i = 0; i < 1000; i++) {
            dataset_sample_t x;
            dataset_synth_sample(specialists[s], 42, i, &x);
            for (int k = 0; k < DATASET_NUM_FEATURES; k++) {
                assert_true(x.features[k] >= 0 && x.features[k] < 1);
            }
            ones += x.label;
        }
        /* the boundary crosses the middle of the cube: neither class is rare */
        assert_in_range(ones, 300, 700);
    }
}

static void text_features_hash_words(void **state)
{
    double a[DATASET_NUM_FEATURES], b[DATASET_NUM_FEATURES], z[DATASET_NUM_FEATURES];
    dataset_text_features("Great plan, low risk", a);
    dataset_text_features("great PLAN low -- risk!", b);
    assert_memory_equal(a, b, sizeof(a));
    double max = 0;
    for (int k = 0; k < DATASET_NUM_FEATURES; k++) {
        max = a[k] > max ? a[k] : max;
    }
    assert_true(max == 1.0);
    dataset_text_features("", z);
    for (int k = 0; k < DATASET_NUM_FEATURES; k++) {
        assert_true(z[k] == 0.0);
    }
}

/* ---- files ---- */

static void generate_writes_a_whole_jsonl_file(void **state)
{
    dataset_config_t cfg = {.dir = tmpdir, .num_samples = 250, .seed = 1};
    dataset_result_t r;
    assert_int_equal(dataset_generate(&cfg, "technical", &r), 0);
    assert_int_equal(r.samples, 250);
    assert_int_equal(r.from_llm, 0);
    assert_int_equal(r.llm_errors, 0);
    assert_non_null(strstr(r.path, "/technical-dataset-"));
    file_stats_t st;
    read_dataset(r.path, &st);
    assert_int_equal(st.lines, 250);
    assert_int_equal(st.synthetic, 250);
    /* the same seed gives the same labels */
    dataset_result_t r2;
    struct timespec ms = {0, 2000000};
    nanosleep(&ms, NULL);
    assert_int_equal(dataset_generate(&cfg, "technical", &r2), 0);
    file_stats_t st2;
    read_dataset(r2.path, &st2);
    assert_memory_equal(st.labels, st2.labels, sizeof(st.labels));
    assert_string_not_equal(r.path, r2.path);
    /* the newest is the latest; another specialist has none */
    char latest[512];
    assert_int_equal(dataset_latest(tmpdir, "technical", latest, sizeof(latest)), 0);
    assert_string_equal(latest, r2.path);
    assert_int_equal(dataset_latest(tmpdir, "business", latest, sizeof(latest)), HIVE_ENOTFOUND);
    assert_int_equal(dataset_latest(tmpdir, "technical", latest, 10), HIVE_ETOOBIG);
}

static void generate_rejects_bad_input(void **state)
{
    dataset_result_t r;
    dataset_config_t cfg = {.dir = tmpdir, .num_samples = 10};
    assert_int_equal(dataset_generate(&cfg, "../etc", &r), HIVE_EINVAL);
    assert_int_equal(dataset_generate(&cfg, "", &r), HIVE_EINVAL);
    assert_non_null(strstr(dataset_error(), "specialist"));
    cfg.llm_provider = "gemini";
    assert_int_equal(dataset_generate(&cfg, "technical", &r), HIVE_EINVAL);
    assert_non_null(strstr(dataset_error(), "gemini"));
    cfg.llm_provider = NULL;
    cfg.num_samples = 0;
    assert_int_equal(dataset_generate(&cfg, "technical", &r), HIVE_EINVAL);
    assert_int_equal(dataset_latest(tmpdir, "technical", (char[64]){0}, 64), HIVE_ENOTFOUND);
}

static void feedback_is_labelled_by_rating(void **state)
{
    dataset_config_t cfg = {.dir = tmpdir, .num_samples = 5, .seed = 1};
    dataset_result_t r;
    assert_int_equal(dataset_generate(&cfg, "technical", &r), 0);
    bson_t *docs[6];
    docs[0] = BCON_NEW("specialist_type", "technical", "rating", BCON_DOUBLE(0.6), "features", "[",
                       BCON_DOUBLE(0.1), BCON_DOUBLE(0.2), BCON_DOUBLE(0.3), BCON_DOUBLE(0.4),
                       BCON_DOUBLE(0.5), BCON_DOUBLE(0.6), BCON_DOUBLE(0.7), BCON_INT32(1), "]");
    docs[1] =
        BCON_NEW("specialist_type", "technical", "rating", BCON_DOUBLE(0.59), "text", "risky and slow plan");
    docs[2] = BCON_NEW("specialist_type", "technical", "rating", BCON_DOUBLE(1.5), "text", "out of range");
    docs[3] = BCON_NEW("specialist_type", "technical", "text", "no rating");
    docs[4] = BCON_NEW("specialist_type", "technical", "rating", BCON_DOUBLE(0.9));
    docs[5] = BCON_NEW("specialist_type", "technical", "rating", BCON_INT32(1), "comment", "excellent");
    int appended = -1;
    assert_int_equal(dataset_append_feedback(r.path, (const bson_t *const *)docs, 6, &appended), 0);
    assert_int_equal(appended, 3);
    file_stats_t st;
    read_dataset(r.path, &st);
    assert_int_equal(st.lines, 8);
    assert_int_equal(st.feedback, 3);
    assert_int_equal(st.labels[5], 1); /* rating 0.6 */
    assert_int_equal(st.labels[6], 0); /* rating 0.59 */
    assert_int_equal(st.labels[7], 1); /* rating 1 (int) */
    assert_int_equal(st.with_text, 2);
    for (int i = 0; i < 6; i++) {
        bson_destroy(docs[i]);
    }
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/nope/x.jsonl", tmpdir);
    assert_int_equal(dataset_append_feedback(missing, NULL, 0, &appended), HIVE_ENOTFOUND);
}

static void cleanup_removes_only_old_datasets(void **state)
{
    const char *names[] = {"technical-dataset-20200101T000000.000Z.jsonl",
                           "business-dataset-20260101T000000.000Z.jsonl", "notes.txt"};
    char p[3][512];
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, names[i]);
        FILE *f = fopen(p[i], "w");
        assert_non_null(f);
        fputs("{}\n", f);
        fclose(f);
    }
    time_t old = time(NULL) - 91 * 86400;
    struct utimbuf ub = {old, old};
    assert_int_equal(utime(p[0], &ub), 0);
    assert_int_equal(utime(p[2], &ub), 0);
    time_t recent = time(NULL) - 89 * 86400;
    struct utimbuf ub2 = {recent, recent};
    assert_int_equal(utime(p[1], &ub2), 0);
    int removed = -1;
    assert_int_equal(dataset_cleanup(tmpdir, 90, &removed), 0);
    assert_int_equal(removed, 1);
    struct stat st;
    assert_int_not_equal(stat(p[0], &st), 0);
    assert_int_equal(stat(p[1], &st), 0);
    assert_int_equal(stat(p[2], &st), 0);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/none", tmpdir);
    assert_int_equal(dataset_cleanup(missing, 90, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(dataset_cleanup(tmpdir, 0, &removed), HIVE_EINVAL);
}

/* ---- LLM providers ---- */

#define SAMPLES_JSON                                                                                         \
    "{\\\"samples\\\": [{\\\"features\\\": [0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8], \\\"label\\\": 1, "            \
    "\\\"text\\\": "                                                                                         \
    "\\\"safe plan\\\"}, {\\\"features\\\": [0.9,0.9,0.9,0.9,0.9,0.9,0.9,0.9], \\\"label\\\": 0, "           \
    "\\\"text\\\": "                                                                                         \
    "\\\"risky plan\\\"}, {\\\"features\\\": [2,0,0,0,0,0,0,0], \\\"label\\\": 1}]}"

typedef struct {
    const char *provider, *answer, *path, *header1, *header2;
} provider_case_t;

static void llm_case(const provider_case_t *pc)
{
    server_t sv;
    char *answer = http_ok(pc->answer);
    server_start(&sv, answer);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sv.port);
    dataset_config_t cfg = {.dir = tmpdir,
                            .num_samples = 5,
                            .llm_provider = pc->provider,
                            .llm_model = "m1",
                            .llm_base_url = url,
                            .llm_api_key = "k-123",
                            .llm_temperature = 0.5,
                            .llm_timeout_s = 30};
    dataset_result_t r;
    assert_int_equal(dataset_generate(&cfg, "technical", &r), 0);
    server_stop(&sv);
    /* one request of 5 samples; 2 of the 3 answered are valid, the
     * third has a feature out of range; then a second request fails (the
     * server is gone): the remaining 3 are synthetic */
    assert_int_equal(r.samples, 5);
    assert_int_equal(r.from_llm, 2);
    assert_int_equal(r.llm_errors, 1);
    file_stats_t st;
    read_dataset(r.path, &st);
    assert_int_equal(st.llm, 2);
    assert_int_equal(st.synthetic, 3);
    assert_int_equal(st.with_text, 2);
    assert_non_null(strstr(sv.request, pc->path));
    assert_non_null(strstr(sv.request, "\"model\":\"m1\""));
    assert_non_null(strstr(sv.request, "\"temperature\":0.5"));
    if (pc->header1) {
        assert_non_null(strstr(sv.request, pc->header1));
    }
    if (pc->header2) {
        assert_non_null(strstr(sv.request, pc->header2));
    }
    free(answer);
}

static void llm_ollama(void **state)
{
    provider_case_t pc = {"local",
                          "{\"model\":\"m1\",\"message\":{\"role\":\"assistant\",\"content\":\"" SAMPLES_JSON
                          "\"},\"done\":true}",
                          "POST /api/chat ", NULL, NULL};
    llm_case(&pc);
}

static void llm_openai(void **state)
{
    provider_case_t pc = {
        "openai",
        "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{"
        "\"role\":\"assistant\",\"content\":\"" SAMPLES_JSON "\"},\"finish_reason\":\"stop\"}]}",
        "POST /v1/chat/completions ", "Authorization: Bearer k-123", NULL};
    llm_case(&pc);
}

static void llm_anthropic(void **state)
{
    provider_case_t pc = {
        "anthropic",
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"Here you are: " SAMPLES_JSON "\"}],\"stop_reason\":\"end_turn\"}",
        "POST /v1/messages ", "x-api-key: k-123", "anthropic-version: 2023-06-01"};
    llm_case(&pc);
}

static void llm_error_falls_back_to_synthetic(void **state)
{
    server_t sv;
    const char *answer =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom";
    server_start(&sv, answer);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sv.port);
    dataset_config_t cfg = {
        .dir = tmpdir, .num_samples = 30, .llm_provider = "openai", .llm_base_url = url, .llm_timeout_s = 30};
    dataset_result_t r;
    assert_int_equal(dataset_generate(&cfg, "technical", &r), 0);
    server_stop(&sv);
    assert_int_equal(r.samples, 30);
    assert_int_equal(r.from_llm, 0);
    assert_int_equal(r.llm_errors, 1);
    assert_non_null(strstr(dataset_error(), "HTTP 500"));
    file_stats_t st;
    read_dataset(r.path, &st);
    assert_int_equal(st.synthetic, 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(synth_is_a_function_of_specialist_seed_and_index),
        cmocka_unit_test(synth_labels_are_balanced_and_features_in_range),
        cmocka_unit_test(text_features_hash_words),
        cmocka_unit_test_setup_teardown(generate_writes_a_whole_jsonl_file, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(generate_rejects_bad_input, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(feedback_is_labelled_by_rating, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(cleanup_removes_only_old_datasets, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(llm_ollama, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(llm_openai, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(llm_anthropic, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(llm_error_falls_back_to_synthetic, setup_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
