/* Unit tests of the Schema Registry client (registry.c) and of avro_codec with a
 * registry.
 *
 * No Confluent-compatible Schema Registry can be installed on this machine, so the
 * server here is a TEST FIXTURE for the shape of the Confluent REST API, not a
 * registry: a loopback HTTP/1.1 server in a thread that implements only
 *   POST /subjects/{subject}/versions  {"schema": "..."} -> 200 {"id": N}
 *   GET  /schemas/ids/{id}                               -> 200 {"schema": "..."}
 *                                                           404 {"error_code": 40403, ...}
 * as documented by Confluent, ids starting at 1 and shared by identical schema
 * texts, and 415 when the Content-Type is not application/vnd.schemaregistry.v1+json.
 * It counts requests so the tests can check the client's caches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "avro_codec.h"
#include "log.h"
#include "registry.h"

#define MAX_SCHEMAS 32

typedef struct {
    int listen_fd;
    int port;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t lock;
    char *schemas[MAX_SCHEMAS]; /* id i+1 */
    int nschemas;
    int posts, gets, bad_content_type;
    int fail_next; /* answer the next N requests with 503 */
    char last_path[256];
    FILE *devnull; /* the client's log lines go here */
} fixture_t;

static fixture_t fx;

static void respond(int fd, int status, const char *body)
{
    char head[256];
    const char *text = status == 200 ? "OK" : status == 404 ? "Not Found" : "Error";
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, text, strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0) {
        return;
    }
}

/* Reads one request: returns the malloc'd head+body, sets *body to the body. */
static char *read_request(int fd, char **body)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    char *end = NULL;
    long want = -1;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t k = read(fd, buf + len, cap - len);
        if (k <= 0) {
            break;
        }
        len += (size_t)k;
        buf[len] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strcasestr(buf, "Content-Length:");
            want = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (end && (long)(len - (size_t)(end + 4 - buf)) >= want) {
            break;
        }
        if (end) {
            end = strstr(buf, "\r\n\r\n"); /* buf may have moved */
        }
    }
    buf[len] = '\0';
    end = strstr(buf, "\r\n\r\n");
    *body = end ? end + 4 : buf + len;
    return buf;
}

static void handle(int fd)
{
    char *body;
    char *req = read_request(fd, &body);
    char method[8] = "", path[256] = "";
    sscanf(req, "%7s %255s", method, path);
    pthread_mutex_lock(&fx.lock);
    snprintf(fx.last_path, sizeof(fx.last_path), "%s", path);
    int id;
    if (fx.fail_next > 0) {
        fx.fail_next--;
        respond(fd, 503, "{\"error_code\":50301,\"message\":\"fixture told to fail\"}");
    } else if (!strcmp(method, "POST") && !strncmp(path, "/subjects/", 10) && strstr(path, "/versions")) {
        fx.posts++;
        json_t *j = json_loads(body, 0, NULL);
        const char *schema = json_string_value(json_object_get(j, "schema"));
        if (!strcasestr(req, "Content-Type: application/vnd.schemaregistry.v1+json")) {
            fx.bad_content_type++;
            respond(fd, 415, "{\"error_code\":415,\"message\":\"Unsupported Media Type\"}");
        } else if (!schema) {
            respond(fd, 422, "{\"error_code\":42201,\"message\":\"Invalid schema\"}");
        } else {
            int found = 0;
            for (int i = 0; i < fx.nschemas && !found; i++) {
                found = !strcmp(fx.schemas[i], schema) ? i + 1 : 0;
            }
            if (!found && fx.nschemas < MAX_SCHEMAS) {
                fx.schemas[fx.nschemas++] = strdup(schema);
                found = fx.nschemas;
            }
            char out[64];
            snprintf(out, sizeof(out), "{\"id\":%d}", found);
            respond(fd, 200, out);
        }
        json_decref(j);
    } else if (!strcmp(method, "GET") && sscanf(path, "/schemas/ids/%d", &id) == 1) {
        fx.gets++;
        if (id >= 1 && id <= fx.nschemas) {
            json_t *j = json_pack("{s:s}", "schema", fx.schemas[id - 1]);
            char *out = json_dumps(j, JSON_COMPACT);
            respond(fd, 200, out);
            free(out);
            json_decref(j);
        } else {
            respond(fd, 404, "{\"error_code\":40403,\"message\":\"Schema not found\"}");
        }
    } else {
        respond(fd, 404, "{\"error_code\":404,\"message\":\"HTTP 404 Not Found\"}");
    }
    pthread_mutex_unlock(&fx.lock);
    free(req);
}

static void *serve(void *arg)
{
    (void)arg;
    while (!fx.stop) {
        struct pollfd p = {fx.listen_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(fx.listen_fd, NULL, NULL);
        if (fd >= 0) {
            handle(fd);
            close(fd);
        }
    }
    return NULL;
}

static int fixture_start(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    (void)state;
    memset(&fx, 0, sizeof(fx));
    pthread_mutex_init(&fx.lock, NULL);
    fx.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fx.listen_fd < 0 || bind(fx.listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
        listen(fx.listen_fd, 16) || getsockname(fx.listen_fd, (struct sockaddr *)&a, &alen)) {
        return -1;
    }
    fx.port = ntohs(a.sin_port);
    fx.devnull = fopen("/dev/null", "w");
    log_set_stream(fx.devnull);
    return pthread_create(&fx.thread, NULL, serve, NULL);
}

static int fixture_stop(void **state)
{
    (void)state;
    fx.stop = 1;
    pthread_join(fx.thread, NULL);
    close(fx.listen_fd);
    for (int i = 0; i < fx.nschemas; i++) {
        free(fx.schemas[i]);
    }
    pthread_mutex_destroy(&fx.lock);
    log_set_stream(NULL);
    fclose(fx.devnull);
    return 0;
}

static char *fixture_url(void)
{
    static char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", fx.port);
    return url;
}

static const char *last_path(void)
{
    static char copy[256];
    pthread_mutex_lock(&fx.lock);
    snprintf(copy, sizeof(copy), "%s", fx.last_path);
    pthread_mutex_unlock(&fx.lock);
    return copy;
}

static int counter(int *c)
{
    pthread_mutex_lock(&fx.lock);
    int v = *c;
    pthread_mutex_unlock(&fx.lock);
    return v;
}

/* ------------------------------------------------------------------ tests */

static void test_create_validates_urls(void **state)
{
    (void)state;
    char err[256];
    registry_t *r = registry_create("ftp://x", 1000, err, sizeof(err));
    assert_null(r);
    assert_non_null(strstr(err, "not http:// or https://"));
    assert_null(registry_create(" , ", 1000, err, sizeof(err)));
    assert_null(registry_create(NULL, 1000, err, sizeof(err)));
    r = registry_create("http://a:8081/, https://user:pw@b:8081", 1000, err, sizeof(err));
    assert_non_null(r);
    registry_destroy(r);
    registry_destroy(NULL);
}

static void test_register_and_fetch_are_cached(void **state)
{
    (void)state;
    char err[256] = "";
    int32_t id1 = 0, id2 = 0, id3 = 0;
    char *json = NULL;
    registry_t *r = registry_create(fixture_url(), 2000, err, sizeof(err));
    assert_non_null(r);
    int posts = counter(&fx.posts), gets = counter(&fx.gets);

    static const char schema[] = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}";
    assert_int_equal(registry_register(r, "topic.a-value", schema, &id1, err, sizeof(err)), 0);
    assert_true(id1 >= 1);
    assert_string_equal(last_path(), "/subjects/topic.a-value/versions");
    assert_int_equal(counter(&fx.bad_content_type), 0);
    assert_int_equal(registry_register(r, "topic.a-value", schema, &id2, err, sizeof(err)), 0);
    assert_int_equal(id2, id1);
    assert_int_equal(counter(&fx.posts), posts + 1); /* the second came from the cache */
    /* Another subject: a request, and the registry's existing id. */
    assert_int_equal(registry_register(r, "topic b-value", schema, &id3, err, sizeof(err)), 0);
    assert_int_equal(id3, id1);
    assert_string_equal(last_path(), "/subjects/topic%20b-value/versions");

    /* A schema this client registered needs no GET. */
    assert_int_equal(registry_fetch(r, id1, &json, err, sizeof(err)), 0);
    assert_string_equal(json, schema);
    free(json);
    assert_int_equal(counter(&fx.gets), gets);
    registry_destroy(r);

    /* A fresh client fetches once, then serves from its cache. */
    r = registry_create(fixture_url(), 2000, err, sizeof(err));
    assert_int_equal(registry_fetch(r, id1, &json, err, sizeof(err)), 0);
    assert_string_equal(json, schema);
    free(json);
    assert_int_equal(registry_fetch(r, id1, &json, err, sizeof(err)), 0);
    free(json);
    assert_int_equal(counter(&fx.gets), gets + 1);
    registry_destroy(r);
}

static void test_errors_are_classified(void **state)
{
    (void)state;
    char err[256] = "";
    char *json = NULL;
    int32_t id;
    registry_t *r = registry_create(fixture_url(), 2000, err, sizeof(err));
    int gets = counter(&fx.gets);

    assert_int_equal(registry_fetch(r, 4242, &json, err, sizeof(err)), HIVE_ENOTFOUND);
    assert_non_null(strstr(err, "schema id 4242 not found"));
    assert_null(json);
    /* The 404 is remembered: no second request. */
    assert_int_equal(registry_fetch(r, 4242, &json, err, sizeof(err)), HIVE_ENOTFOUND);
    assert_int_equal(counter(&fx.gets), gets + 1);

    pthread_mutex_lock(&fx.lock);
    fx.fail_next = 1;
    pthread_mutex_unlock(&fx.lock);
    assert_int_equal(registry_register(r, "x-value", "{\"type\":\"string\"}", &id, err, sizeof(err)),
                     HIVE_EUNAVAILABLE);
    assert_non_null(strstr(err, "HTTP 503: fixture told to fail"));
    registry_destroy(r);

    /* Nothing listening: unavailable, with the URL (without credentials) in the reason. */
    r = registry_create("http://user:secret@127.0.0.1:1", 2000, err, sizeof(err));
    assert_int_equal(registry_fetch(r, 1, &json, err, sizeof(err)), HIVE_EUNAVAILABLE);
    assert_non_null(strstr(err, "http://127.0.0.1:1"));
    assert_null(strstr(err, "secret"));
    registry_destroy(r);

    /* A dead first URL falls over to the next. */
    char urls[128];
    snprintf(urls, sizeof(urls), "http://127.0.0.1:1,%s", fixture_url());
    r = registry_create(urls, 2000, err, sizeof(err));
    assert_int_equal(registry_register(r, "y-value", "{\"type\":\"string\"}", &id, err, sizeof(err)), 0);
    registry_destroy(r);
}

static void test_codec_with_registry(void **state)
{
    (void)state;
    char err[256] = "";
    registry_t *r1 = registry_create(fixture_url(), 2000, err, sizeof(err));
    registry_t *r2 = registry_create(fixture_url(), 2000, err, sizeof(err));
    avro_codec_t *producer = avro_codec_create(r1, err, sizeof(err));
    avro_codec_t *consumer = avro_codec_create(r2, err, sizeof(err));
    assert_non_null(producer);
    assert_non_null(consumer);

    avro_value_t v, out;
    void *buf, *buf2;
    size_t len, len2;
    const char *s;
    size_t slen;
    assert_int_equal(avro_codec_new_value(producer, "ServiceSLO", &v), 0);
    assert_int_equal(avro_set_string(&v, "service", "orchestrator"), 0);
    assert_int_equal(avro_set_double(&v, "latency_ms", 900), 0);
    int posts = counter(&fx.posts), gets = counter(&fx.gets);
    assert_int_equal(avro_codec_encode(producer, "orchestrator.slos", &v, &buf, &len, err, sizeof(err)), 0);
    assert_string_equal(last_path(), "/subjects/orchestrator.slos-value/versions");
    assert_int_equal(avro_codec_encode(producer, "orchestrator.slos", &v, &buf2, &len2, err, sizeof(err)), 0);
    assert_int_equal(counter(&fx.posts), posts + 1);
    assert_memory_equal(buf, buf2, len);
    free(buf2);

    /* The id is the registry's, not the local 1013. */
    const uint8_t *p = buf;
    int32_t id = (p[1] << 24) | (p[2] << 16) | (p[3] << 8) | p[4];
    assert_int_not_equal(id, 1013);
    assert_true(id >= 1 && id <= MAX_SCHEMAS);

    /* The producer decodes its own records without asking; the consumer asks once. */
    assert_int_equal(avro_codec_decode(producer, buf, len, "ServiceSLO", &out, err, sizeof(err)), 0);
    avro_value_decref(&out);
    assert_int_equal(counter(&fx.gets), gets);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(avro_codec_decode(consumer, buf, len, "ServiceSLO", &out, err, sizeof(err)), 0);
        assert_int_equal(avro_get_string(&out, "service", &s, &slen), 0);
        assert_string_equal(s, "orchestrator");
        avro_value_decref(&out);
    }
    assert_int_equal(counter(&fx.gets), gets + 1);

    /* Local ids mean nothing to a registry codec. */
    uint8_t local[] = {0, 0, 0, 0x03, 0xf5, 0x02};
    assert_int_equal(avro_codec_decode(consumer, local, sizeof(local), "ServiceSLO", &out, err, sizeof(err)),
                     HIVE_EBADMSG);
    assert_non_null(strstr(err, "unknown schema id 1013"));

    /* A registry that is down: transient, not a bad record. */
    registry_t *down = registry_create("http://127.0.0.1:1", 1000, err, sizeof(err));
    avro_codec_t *lost = avro_codec_create(down, err, sizeof(err));
    assert_int_equal(avro_codec_decode(lost, buf, len, "ServiceSLO", &out, err, sizeof(err)),
                     HIVE_EUNAVAILABLE);
    assert_int_equal(avro_codec_encode(lost, "orchestrator.slos", &v, &buf2, &len2, err, sizeof(err)),
                     HIVE_EUNAVAILABLE);
    avro_codec_destroy(lost);
    registry_destroy(down);

    free(buf);
    avro_value_decref(&v);
    avro_codec_destroy(producer);
    avro_codec_destroy(consumer);
    registry_destroy(r1);
    registry_destroy(r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_validates_urls),
        cmocka_unit_test(test_register_and_fetch_are_cached),
        cmocka_unit_test(test_errors_are_classified),
        cmocka_unit_test(test_codec_with_registry),
    };
    return cmocka_run_group_tests(tests, fixture_start, fixture_stop);
}
