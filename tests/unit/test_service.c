/* The service runtime: the merged config table (shared keys with per-service
 * defaults, input topics, own keys), --help, a bad value naming the variable,
 * and a minimal service (no Kafka, no store) started on an ephemeral port,
 * probed over HTTP by a client thread and stopped with SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "service.h"

/* ---- definitions used by the tests ------------------------------------------ */

static long limit;
static char *probe_topic;

static kafka_verdict_t on_record(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                 kafka_out_t *out, char *reason, size_t reasonlen)
{
    (void)ctx, (void)msg, (void)value, (void)out, (void)reason, (void)reasonlen;
    return KAFKA_OK;
}

static const config_item_t own_items[] = {
    {"PROBE_LIMIT", CONFIG_INT, "5", 1, 10, NULL, &limit, "how many probes"},
};

static const service_input_t probe_inputs[] = {
    {"PROBE_TOPIC", "probe.in", "Insight", on_record, "Insight input", &probe_topic, NULL},
    {"PROBE_OTHER_TOPIC", "probe.other", "TelemetryAggregated", on_record, NULL, NULL, NULL},
};

static const service_default_t group_default[] = {{"KAFKA_CONSUMER_GROUP", "probe-agents"}};

/* A service that asks for every Kafka/Mongo/Redis client (never started here). */
static service_def_t full_def(void)
{
    return (service_def_t){
        .name = "probe",
        .summary = "Probes the runtime.",
        .needs = SERVICE_STORE | SERVICE_REDIS | SERVICE_PRODUCER | SERVICE_PIPELINE,
        .config = own_items,
        .nconfig = SERVICE_N(own_items),
        .inputs = probe_inputs,
        .ninputs = SERVICE_N(probe_inputs),
    };
}

static const config_item_t *item(const service_t *svc, const char *name)
{
    size_t n = 0;
    const config_item_t *items = service_config_items(svc, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].name, name) == 0) {
            return &items[i];
        }
    }
    return NULL;
}

static void assert_default(const service_t *svc, const char *name, const char *def)
{
    const config_item_t *it = item(svc, name);
    if (!it) {
        fail_msg("expected config key %s, it is missing", name);
    }
    if (!it->def || strcmp(it->def, def) != 0) {
        fail_msg("expected %s to default to \"%s\", got \"%s\"", name, def, it->def ? it->def : "(null)");
    }
}

static void clear_env(void)
{
    const char *vars[] = {"PROBE_LIMIT",      "PROBE_TOPIC", "PROBE_OTHER_TOPIC",      "REDIS_PORT",
                          "HTTP_PORT",        "LOG_LEVEL",   "KAFKA_TRANSACTIONAL_ID", "KAFKA_CONSUMER_GROUP",
                          "MONGODB_DATABASE", "MONGODB_URI"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
}

/* Issue 15 item 9: the database in the path of MONGODB_URI (seed 000:
 * mongodb://mongodb:27017/optimizer_agents) is used when MONGODB_DATABASE is
 * unset; MONGODB_DATABASE still wins when set. */
static void test_uri_database(void **state)
{
    (void)state;
    char db[64];
    assert_int_equal(service_uri_database("mongodb://mongodb:27017/optimizer_agents", db, sizeof(db)), 16);
    assert_string_equal(db, "optimizer_agents");
    assert_int_equal(service_uri_database("mongodb://a:1,b:2/x?replicaSet=rs", db, sizeof(db)), 1);
    assert_string_equal(db, "x");
    assert_int_equal(service_uri_database("mongodb://127.0.0.1:27017", db, sizeof(db)), 0);
    assert_int_equal(service_uri_database("mongodb://127.0.0.1:27017/?w=1", db, sizeof(db)), 0);
    assert_int_equal(service_uri_database("mongodb://h/0123456789", db, 4), 0);

    clear_env();
    setenv("LOG_LEVEL", "error", 1);
    setenv("MONGODB_URI", "mongodb://mongodb:27017/optimizer_agents", 1);
    char err[256] = "";
    service_def_t def = full_def();
    service_t *svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_string_equal(service_config(svc)->mongodb_database, "optimizer_agents");
    service_destroy(svc);

    setenv("MONGODB_DATABASE", "mine", 1);
    svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_string_equal(service_config(svc)->mongodb_database, "mine");
    service_destroy(svc);
    clear_env();
}

/* ---- the config table ---------------------------------------------------------- */

static void test_config_merge(void **state)
{
    (void)state;
    clear_env();
    setenv("LOG_LEVEL", "error", 1);
    char err[256] = "";
    service_def_t def = full_def();
    service_t *svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    /* Without an override, group and database are the service's name. */
    assert_default(svc, "KAFKA_CONSUMER_GROUP", "probe");
    assert_default(svc, "MONGODB_DATABASE", "probe");
    assert_default(svc, "KAFKA_TRANSACTIONAL_ID", "auto");
    assert_default(svc, "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
    assert_default(svc, "REDIS_PORT", "6379");
    assert_default(svc, "HTTP_PORT", "8000");
    assert_default(svc, "PROBE_TOPIC", "probe.in");
    assert_default(svc, "PROBE_OTHER_TOPIC", "probe.other");
    assert_default(svc, "PROBE_LIMIT", "5");
    assert_null(item(svc, "GRPC_PORT")); /* no gRPC asked for */
    /* Loaded: the values land where the service and the runtime read them. */
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    const service_config_t *c = service_config(svc);
    assert_string_equal(c->consumer_group, "probe");
    assert_string_equal(c->mongodb_database, "probe");
    assert_int_equal(c->redis_port, 6379);
    assert_int_equal(c->max_batch, 500);
    assert_true(strncmp(c->transactional_id, "probe-", 6) == 0 && strlen(c->transactional_id) > 6);
    assert_string_equal(probe_topic, "probe.in");
    assert_string_equal(service_topic(svc, "PROBE_OTHER_TOPIC"), "probe.other");
    assert_null(service_topic(svc, "NO_SUCH_TOPIC"));
    assert_int_equal(limit, 5);
    service_destroy(svc);
    assert_null(probe_topic); /* freed with the service */

    /* A per-service override keeps a documented default. */
    def.defaults = group_default;
    def.ndefaults = SERVICE_N(group_default);
    svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    assert_default(svc, "KAFKA_CONSUMER_GROUP", "probe-agents");
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_string_equal(service_config(svc)->consumer_group, "probe-agents");
    service_destroy(svc);

    /* A service without clients reads only the keys that concern it. */
    service_def_t bare = {.name = "bare"};
    svc = service_create(&bare, NULL, err, sizeof(err));
    assert_non_null(svc);
    size_t n = 0;
    service_config_items(svc, &n);
    assert_int_equal(n, 4);
    assert_non_null(item(svc, "HTTP_PORT"));
    assert_non_null(item(svc, "LOG_LEVEL"));
    assert_null(item(svc, "KAFKA_CONSUMER_GROUP"));
    assert_null(item(svc, "MONGODB_URI"));
    service_destroy(svc);
    clear_env();
}

/* A def that contradicts itself is refused, saying why. */
static void test_inconsistent_defs(void **state)
{
    (void)state;
    char err[256] = "";
    service_def_t def = full_def();
    const service_default_t unknown[] = {{"NO_SUCH_KEY", "x"}};
    def.defaults = unknown;
    def.ndefaults = 1;
    assert_null(service_create(&def, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "NO_SUCH_KEY"));

    def = full_def();
    const config_item_t dup[] = {{"HTTP_PORT", CONFIG_INT, "1", 1, 2, NULL, &limit, "again"}};
    def.config = dup;
    def.nconfig = 1;
    assert_null(service_create(&def, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "HTTP_PORT"));

    def = full_def();
    def.needs = SERVICE_STORE; /* inputs without the pipeline */
    assert_null(service_create(&def, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "SERVICE_PIPELINE"));

    service_def_t grpc = {.name = "g", .needs = SERVICE_GRPC}; /* no grpc_register */
    assert_null(service_create(&grpc, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "grpc_register"));
}

static char *help_of(const service_def_t *def)
{
    char err[256] = "";
    service_t *svc = service_create(def, NULL, err, sizeof(err));
    assert_non_null(svc);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    service_print_help(svc, f);
    fclose(f);
    service_destroy(svc);
    return text;
}

static void assert_contains(const char *text, const char *what)
{
    if (!text) {
        fail_msg("expected \"%s\", got no text", what);
    } else if (!strstr(text, what)) {
        fail_msg("expected \"%s\" in:\n%s", what, text);
    }
}

/* ---- timer intervals taken from the configuration ------------------------------ */

static double probe_minutes;
static char *probe_mode;
static void no_tick(void *ctx)
{
    (void)ctx;
}

static const config_item_t interval_items[] = {
    {"PROBE_LIMIT", CONFIG_INT, "5", 0, 10, NULL, &limit, "how many probes"},
    {"PROBE_MINUTES", CONFIG_DOUBLE, "0.5", 0, 100, NULL, &probe_minutes, "minutes"},
    {"PROBE_MODE", CONFIG_STRING, "a", 0, 0, NULL, &probe_mode, "a string"},
};

static service_def_t interval_def(const service_timer_t *timers, size_t n)
{
    return (service_def_t){.name = "interval",
                           .summary = "Timers from settings.",
                           .config = interval_items,
                           .nconfig = SERVICE_N(interval_items),
                           .timers = timers,
                           .ntimers = n};
}

static void test_timer_interval_from_config(void **state)
{
    (void)state;
    clear_env();
    unsetenv("PROBE_MINUTES");
    const service_timer_t timers[] = {
        {"fixed", 250, 0, no_tick, NULL, NULL, 0},
        {"seconds", 1, 0, no_tick, NULL, "PROBE_LIMIT", 1000},
        {"minutes", 1, 0, no_tick, NULL, "PROBE_MINUTES", 60000},
        {"plain-ms", 1, 0, no_tick, NULL, "PROBE_LIMIT", 0},
    };
    char err[256] = "";
    service_def_t def = interval_def(timers, SERVICE_N(timers));
    service_t *svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_timer_interval_ms(svc, 0), 250);
    assert_int_equal(service_timer_interval_ms(svc, 1), 0); /* not read yet */
    setenv("PROBE_LIMIT", "7", 1);
    setenv("PROBE_MINUTES", "1.5", 1);
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_int_equal(service_timer_interval_ms(svc, 0), 250);
    assert_int_equal(service_timer_interval_ms(svc, 1), 7000);
    assert_int_equal(service_timer_interval_ms(svc, 2), 90000);
    assert_int_equal(service_timer_interval_ms(svc, 3), 7);
    assert_int_equal(service_timer_interval_ms(svc, 4), 0); /* no such timer */
    service_destroy(svc);

    /* The defaults when the environment says nothing. */
    unsetenv("PROBE_LIMIT");
    unsetenv("PROBE_MINUTES");
    svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_int_equal(service_timer_interval_ms(svc, 1), 5000);
    assert_int_equal(service_timer_interval_ms(svc, 2), 30000);
    service_destroy(svc);

    /* A value that gives no interval is refused, naming the key. */
    setenv("PROBE_LIMIT", "0", 1);
    svc = service_create(&def, NULL, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_configure(svc, err, sizeof(err)), -1);
    assert_contains(err, "PROBE_LIMIT");
    assert_contains(err, "seconds");
    service_destroy(svc);
    unsetenv("PROBE_LIMIT");

    /* An unknown key, or one that is not a number, is a def that contradicts itself. */
    const service_timer_t unknown[] = {{"t", 1, 0, no_tick, NULL, "NO_SUCH_KEY", 1000}};
    def = interval_def(unknown, 1);
    assert_null(service_create(&def, NULL, err, sizeof(err)));
    assert_contains(err, "NO_SUCH_KEY");
    const service_timer_t text[] = {{"t", 1, 0, no_tick, NULL, "PROBE_MODE", 1000}};
    def = interval_def(text, 1);
    assert_null(service_create(&def, NULL, err, sizeof(err)));
    assert_contains(err, "PROBE_MODE");
    clear_env();
}

static void test_help(void **state)
{
    (void)state;
    service_def_t def = full_def();
    def.defaults = group_default;
    def.ndefaults = SERVICE_N(group_default);
    char *text = help_of(&def);
    assert_contains(text, "Usage: probe [--help] [--version]");
    assert_contains(text, "Probes the runtime.");
    assert_contains(text, "KAFKA_CONSUMER_GROUP");
    assert_contains(text, "default probe-agents; a non-empty string");
    assert_contains(text, "MONGODB_DATABASE");
    assert_contains(text, "default probe; a non-empty string");
    assert_contains(text, "REDIS_PORT");
    assert_contains(text, "default 6379; an integer in [1, 65535]");
    assert_contains(text, "KAFKA_MAX_BATCH");
    assert_contains(text, "default 500; an integer in [1, 10000]");
    assert_contains(text, "PROBE_TOPIC");
    assert_contains(text, "default probe.in");
    assert_contains(text, "PROBE_OTHER_TOPIC"); /* doc defaults to the record name */
    assert_contains(text, "TelemetryAggregated");
    assert_contains(text, "PROBE_LIMIT");
    assert_contains(text, "default 5; an integer in [1, 10]");
    assert_contains(text, "SCHEMA_REGISTRY_URL");
    assert_contains(text, "default (empty)");
    assert_contains(text, "LOG_LEVEL");
    assert_contains(text, "one of debug|info|warn|error");
    assert_null(strstr(text, "GRPC_PORT"));
    free(text);
}

static void test_bad_value_names_the_variable(void **state)
{
    (void)state;
    clear_env();
    char err[256] = "";
    service_def_t def = full_def();
    const struct {
        const char *var, *value, *range;
    } cases[] = {
        {"PROBE_LIMIT", "11", "[1, 10]"},    {"REDIS_PORT", "0", "[1, 65535]"},
        {"HTTP_PORT", "http", "[0, 65535]"}, {"LOG_LEVEL", "loud", "debug|info|warn|error"},
        {"PROBE_TOPIC", "", "non-empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv(cases[i].var, cases[i].value, 1);
        service_t *svc = service_create(&def, NULL, err, sizeof(err));
        assert_non_null(svc);
        assert_int_equal(service_configure(svc, err, sizeof(err)), -1);
        assert_contains(err, cases[i].var);
        assert_contains(err, cases[i].range);
        service_destroy(svc);
        unsetenv(cases[i].var);
    }
    /* Two inputs on one topic would be subscribed once and handled twice. */
    setenv("PROBE_OTHER_TOPIC", "probe.in", 1);
    service_t *svc = service_create(&def, NULL, err, sizeof(err));
    assert_int_equal(service_configure(svc, err, sizeof(err)), -1);
    assert_contains(err, "PROBE_TOPIC");
    assert_contains(err, "PROBE_OTHER_TOPIC");
    service_destroy(svc);
    clear_env();

    /* service_main stops there with status 2; --help and --version answer 0. */
    setenv("PROBE_LIMIT", "0", 1);
    char *argv0[] = {"probe", NULL};
    fflush(stderr);
    assert_int_equal(service_main(&def, NULL, 1, argv0), 2);
    unsetenv("PROBE_LIMIT");
    char *argv_bad[] = {"probe", "--frobnicate", NULL};
    assert_int_equal(service_main(&def, NULL, 2, argv_bad), 2);
    char *argv_version[] = {"probe", "--version", NULL};
    assert_int_equal(service_main(&def, NULL, 2, argv_version), 0);
}

/* ---- a minimal service, run ------------------------------------------------------ */

#define RESP_MAX 16384

typedef struct {
    int port;
    atomic_int ticks, setups, teardowns;
    bool setup_fails;
    int status[5];
    char resp[5][RESP_MAX];
} run_t;

static run_t run;

static int http_get(int port, const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    char raw[256];
    int n = snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    if (send(fd, raw, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = recv(fd, buf + len, cap - 1 - len, 0)) > 0) {
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fd);
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

static void on_tick(void *ctx)
{
    atomic_fetch_add(&((run_t *)ctx)->ticks, 1);
}

static bool probe_ready(void *ctx)
{
    return ctx == &run;
}

static void handle_hello(void *ctx, http_req_t *req)
{
    (void)ctx;
    http_respond_text(req, 200, "text/plain", "hello", 5);
}

static int setup(service_t *svc, void *ctx)
{
    run_t *r = ctx;
    atomic_fetch_add(&r->setups, 1);
    r->port = http_server_port(service_http(svc));
    return r->setup_fails ? -1 : 0;
}

static void teardown(service_t *svc, void *ctx)
{
    (void)svc;
    atomic_fetch_add(&((run_t *)ctx)->teardowns, 1);
}

static const service_timer_t minimal_timers[] = {{"tick", 5, 1, on_tick, NULL, NULL, 0}};
static const service_route_t minimal_routes[] = {{"GET", "/hello", handle_hello}};
static const service_check_t minimal_checks[] = {{"probe", probe_ready}};

static service_def_t minimal_def(void)
{
    return (service_def_t){
        .name = "minimal",
        .summary = "A service with an API and a timer, and no Kafka.",
        .timers = minimal_timers,
        .ntimers = SERVICE_N(minimal_timers),
        .routes = minimal_routes,
        .nroutes = SERVICE_N(minimal_routes),
        .checks = minimal_checks,
        .nchecks = SERVICE_N(minimal_checks),
        .setup = setup,
        .teardown = teardown,
    };
}

/* The client: probes every built-in route, waits for a timer tick, then
 * sends SIGTERM to the process. */
static void client(void *arg)
{
    run_t *r = arg;
    const char *paths[] = {"/health", "/ready", "/metrics", "/openapi.json", "/hello"};
    for (int i = 0; i < 5; i++) {
        r->status[i] = http_get(r->port, paths[i], r->resp[i], RESP_MAX);
    }
    for (int i = 0; i < 500 && atomic_load(&r->ticks) == 0; i++) {
        usleep(10000);
    }
    kill(getpid(), SIGTERM);
}

static void test_minimal_service_runs_and_drains(void **state)
{
    (void)state;
    clear_env();
    memset(&run, 0, sizeof(run));
    setenv("HTTP_PORT", "0", 1);
    setenv("LOG_LEVEL", "error", 1);
    char err[256] = "";
    service_def_t def = minimal_def();
    service_t *svc = service_create(&def, &run, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_int_equal(service_start(svc), 0);
    assert_int_equal(atomic_load(&run.setups), 1);
    assert_true(run.port > 0);
    assert_null(service_store(svc));
    assert_null(service_pipeline(svc));
    assert_non_null(service_codec(svc));

    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, client, &run), 0);
    int rc = service_run(svc); /* returns once SIGTERM has drained everything */
    uv_thread_join(&th);
    assert_int_equal(rc, 0);
    assert_int_equal(atomic_load(&run.teardowns), 0); /* teardown comes with destroy */
    service_destroy(svc);
    assert_int_equal(atomic_load(&run.teardowns), 1);
    clear_env();

    assert_int_equal(run.status[0], 200);
    assert_contains(run.resp[0], "\"status\"");
    assert_int_equal(run.status[1], 200); /* no client to wait for; the service's own check passes */
    assert_contains(run.resp[1], "\"probe\"");
    assert_null(strstr(run.resp[1], "kafka"));
    assert_int_equal(run.status[2], 200);
    assert_contains(run.resp[2], "http_requests_total");
    assert_int_equal(run.status[3], 200);
    assert_contains(run.resp[3], "application/json");
    assert_contains(run.resp[3], "\"openapi\":\"3.0.3\"");
    assert_contains(run.resp[3], "\"title\":\"minimal\"");
    assert_contains(run.resp[3], "\"/ready\"");
    assert_int_equal(run.status[4], 200);
    assert_contains(run.resp[4], "hello");
    assert_true(atomic_load(&run.ticks) >= 1);
}

/* A setup that fails: the start stops, what was started drains, the loop
 * closes, and teardown still runs once. */
static void test_failed_setup_drains(void **state)
{
    (void)state;
    clear_env();
    memset(&run, 0, sizeof(run));
    run.setup_fails = true;
    setenv("HTTP_PORT", "0", 1);
    setenv("LOG_LEVEL", "error", 1);
    char err[256] = "";
    service_def_t def = minimal_def();
    service_t *svc = service_create(&def, &run, err, sizeof(err));
    assert_non_null(svc);
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_int_equal(service_start(svc), -1);
    assert_int_equal(service_run(svc), 1);
    service_destroy(svc);
    assert_int_equal(atomic_load(&run.setups), 1);
    assert_int_equal(atomic_load(&run.teardowns), 1);
    assert_int_equal(atomic_load(&run.ticks), 0); /* timers start only after setup */
    clear_env();
}

/* A service's own document is served as given. */
static void client_openapi(void *arg)
{
    run_t *r = arg;
    r->status[0] = http_get(r->port, "/openapi.json", r->resp[0], RESP_MAX);
    kill(getpid(), SIGTERM);
}

static void test_own_openapi(void **state)
{
    (void)state;
    clear_env();
    memset(&run, 0, sizeof(run));
    setenv("HTTP_PORT", "0", 1);
    setenv("LOG_LEVEL", "error", 1);
    static const char doc[] =
        "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"own\",\"version\":\"1\"},\"paths\":{}}";
    service_def_t def = minimal_def();
    def.openapi = doc;
    def.openapi_len = sizeof(doc) - 1;
    char err[256] = "";
    service_t *svc = service_create(&def, &run, err, sizeof(err));
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_int_equal(service_start(svc), 0);
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, client_openapi, &run), 0);
    assert_int_equal(service_run(svc), 0);
    uv_thread_join(&th);
    service_destroy(svc);
    clear_env();
    assert_int_equal(run.status[0], 200);
    assert_contains(run.resp[0], doc);
}

/* Work an API started on a worker thread is answered before the drain goes
 * on: the loop closes cleanly and teardown finds nothing in flight. */
static atomic_int jobs, jobs_done, jobs_at_teardown = -1;
static atomic_bool sigterm_sent;
static uv_work_t job;
static service_t *job_svc;

static void job_work(uv_work_t *w)
{
    (void)w;
    for (int i = 0; i < 1000 && !atomic_load(&sigterm_sent); i++) {
        usleep(1000);
    }
    usleep(50000); /* still running while the APIs close */
}

static void job_after(uv_work_t *w, int status)
{
    (void)w, (void)status;
    atomic_fetch_add(&jobs_done, 1);
    atomic_fetch_sub(&jobs, 1);
}

static void handle_work(void *ctx, http_req_t *req)
{
    (void)ctx;
    atomic_fetch_add(&jobs, 1);
    uv_queue_work(service_loop(job_svc), &job, job_work, job_after);
    http_respond_text(req, 202, "text/plain", "started", 7);
}

static size_t pending_jobs(void *ctx)
{
    (void)ctx;
    return (size_t)atomic_load(&jobs);
}

static void teardown_jobs(service_t *svc, void *ctx)
{
    (void)svc, (void)ctx;
    atomic_store(&jobs_at_teardown, atomic_load(&jobs));
}

static void client_work(void *arg)
{
    run_t *r = arg;
    r->status[0] = http_get(r->port, "/work", r->resp[0], RESP_MAX);
    kill(getpid(), SIGTERM);
    atomic_store(&sigterm_sent, true);
}

static void test_drain_waits_for_pending_work(void **state)
{
    (void)state;
    clear_env();
    memset(&run, 0, sizeof(run));
    setenv("HTTP_PORT", "0", 1);
    setenv("LOG_LEVEL", "error", 1);
    static const service_route_t routes[] = {{"GET", "/work", handle_work}};
    service_def_t def = minimal_def();
    def.routes = routes;
    def.nroutes = SERVICE_N(routes);
    def.pending = pending_jobs;
    def.teardown = teardown_jobs;
    char err[256] = "";
    service_t *svc = service_create(&def, &run, err, sizeof(err));
    assert_int_equal(service_configure(svc, err, sizeof(err)), 0);
    assert_int_equal(service_start(svc), 0);
    job_svc = svc;
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, client_work, &run), 0);
    assert_int_equal(service_run(svc), 0); /* no work left on the loop when it closed */
    uv_thread_join(&th);
    service_destroy(svc);
    clear_env();
    assert_int_equal(run.status[0], 202);
    assert_int_equal(atomic_load(&jobs_done), 1);
    assert_int_equal(atomic_load(&jobs_at_teardown), 0);
}

int main(void)
{
    log_init("test_service", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_merge),
        cmocka_unit_test(test_uri_database),
        cmocka_unit_test(test_inconsistent_defs),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_timer_interval_from_config),
        cmocka_unit_test(test_bad_value_names_the_variable),
        cmocka_unit_test(test_minimal_service_runs_and_drains),
        cmocka_unit_test(test_failed_setup_drains),
        cmocka_unit_test(test_own_openapi),
        cmocka_unit_test(test_drain_waits_for_pending_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
