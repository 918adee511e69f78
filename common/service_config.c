/* service_config: the merged config table of a service (service.h): the
 * shared keys with their per-service defaults, one key per input topic, then
 * the service's own keys; loading and --help.
 */
#include "service_internal.h"

#include "cli.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* ---- The config table ------------------------------------------------------ */

static void add_item(service_t *s, const char *name, config_type_t type, const char *def, double min,
                     double max, const char *choices, void *out, const char *doc)
{
    s->items[s->nitems++] = (config_item_t){name, type, def, min, max, choices, out, doc};
}

static void add_shared_items(service_t *s)
{
    const service_def_t *d = s->def;
    service_config_t *c = &s->cfg;
    if (d->needs & (SERVICE_PIPELINE | SERVICE_PRODUCER)) {
        add_item(s, "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, "127.0.0.1:9092", 0, 0, NULL,
                 &c->bootstrap_servers, "Kafka brokers");
    }
    if (d->needs & SERVICE_PIPELINE) {
        add_item(s, "KAFKA_CONSUMER_GROUP", CONFIG_STRING, d->name, 0, 0, NULL, &c->consumer_group,
                 "consumer group shared by the replicas");
        add_item(s, "KAFKA_TRANSACTIONAL_ID", CONFIG_STRING, "auto", 0, 0, NULL, &c->transactional_id,
                 "stable per replica (a restart fences its predecessor); auto = <service>-<hostname>");
        add_item(s, "KAFKA_MAX_BATCH", CONFIG_INT, "500", 1, 10000, NULL, &c->max_batch,
                 "records per transaction");
        bool ticks = false;
        for (size_t i = 0; i < d->ntimers; i++) {
            ticks |= d->timers[i].tick != NULL;
        }
        if (ticks) {
            snprintf(s->timers_topic_default, sizeof(s->timers_topic_default), "%s.timers", d->name);
            add_item(s, "KAFKA_TIMERS_TOPIC", CONFIG_STRING, s->timers_topic_default, 0, 0, NULL,
                     &c->timers_topic,
                     "compacted topic of the transactional timers' markers (created when missing)");
        }
    }
    add_item(s, "SCHEMA_REGISTRY_URL", CONFIG_STRING, "", 0, 0, NULL, &c->registry_url,
             "Confluent-compatible registry; empty uses schemas/avro/ids.json");
    if (d->needs & SERVICE_STORE) {
        add_item(s, "MONGODB_URI", CONFIG_STRING, "mongodb://127.0.0.1:27017", 0, 0, NULL, &c->mongodb_uri,
                 "MongoDB");
        add_item(s, "MONGODB_DATABASE", CONFIG_STRING, d->name, 0, 0, NULL, &c->mongodb_database,
                 "the service's own database (unset: the database in MONGODB_URI's path, if any)");
    }
    if (d->needs & SERVICE_REDIS) {
        add_item(s, "REDIS_HOST", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, &c->redis_host, "Redis host");
        add_item(s, "REDIS_PORT", CONFIG_INT, "6379", 1, 65535, NULL, &c->redis_port, "Redis port");
    }
    add_item(s, "HTTP_HOST", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, &c->http_host,
             "address of the REST API, /health, /ready, /metrics (and gRPC)");
    add_item(s, "HTTP_PORT", CONFIG_INT, "8000", 0, 65535, NULL, &c->http_port,
             "port of the REST API, /health, /ready, /metrics; 0 = any free port");
    if (d->needs & SERVICE_GRPC) {
        add_item(s, "GRPC_PORT", CONFIG_INT, "50051", 0, 65535, NULL, &c->grpc_port,
                 "port of the gRPC API; 0 = any free port");
    }
    add_item(s, "LOG_LEVEL", CONFIG_ENUM, "info", 0, 0, "debug|info|warn|error", &c->log_level,
             "lowest level logged");
}

static config_item_t *find_item(service_t *s, const char *name)
{
    for (size_t i = 0; i < s->nitems; i++) {
        if (strcmp(s->items[i].name, name) == 0) {
            return &s->items[i];
        }
    }
    return NULL;
}

/* Builds the merged table; fails on a def that contradicts itself. */
int service_config_build(service_t *s, char *err, size_t errlen)
{
    const service_def_t *d = s->def;
    size_t cap = SERVICE_SHARED_MAX + d->ninputs + d->nconfig;
    s->items = calloc(cap, sizeof(*s->items));
    s->own_topics = calloc(d->ninputs + 1, sizeof(*s->own_topics));
    s->topic_slots = calloc(d->ninputs + 1, sizeof(*s->topic_slots));
    s->topics = calloc(d->ninputs + 1, sizeof(*s->topics));
    if (!s->items || !s->own_topics || !s->topic_slots || !s->topics) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    add_shared_items(s);
    for (size_t i = 0; i < d->ninputs; i++) {
        const service_input_t *in = &d->inputs[i];
        if (!in->topic_var || !in->topic_default || !in->record || !in->handle == !in->handle_batch) {
            snprintf(err, errlen,
                     "input %zu lacks its topic variable, default, record or exactly one handler", i);
            return -1;
        }
        s->topic_slots[i] = in->topic ? in->topic : &s->own_topics[i];
        add_item(s, in->topic_var, CONFIG_STRING, in->topic_default, 0, 0, NULL, s->topic_slots[i],
                 in->doc ? in->doc : in->record);
    }
    for (size_t i = 0; i < d->nconfig; i++) {
        s->items[s->nitems++] = d->config[i];
    }
    for (size_t i = 0; i < s->nitems; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->items[i].name, s->items[j].name) == 0) {
                snprintf(err, errlen, "%s is declared twice", s->items[i].name);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < d->ndefaults; i++) {
        config_item_t *it = find_item(s, d->defaults[i].name);
        if (!it) {
            snprintf(err, errlen, "default for %s, which this service does not read", d->defaults[i].name);
            return -1;
        }
        it->def = d->defaults[i].value;
    }
    s->intervals = calloc(d->ntimers + 1, sizeof(*s->intervals));
    if (!s->intervals) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < d->ntimers; i++) {
        const service_timer_t *t = &d->timers[i];
        const config_item_t *it = t->interval_key ? find_item(s, t->interval_key) : NULL;
        if (t->interval_key && (!it || (it->type != CONFIG_INT && it->type != CONFIG_DOUBLE))) {
            snprintf(err, errlen, "timer %s: interval key %s is not an INT or DOUBLE key of this service",
                     t->name ? t->name : "?", t->interval_key);
            return -1;
        }
        s->intervals[i] = t->interval_key ? 0 : t->interval_ms;
    }
    return 0;
}

/* The timers' intervals taken from their keys, once the table is loaded. */
static int resolve_intervals(service_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->def->ntimers; i++) {
        const service_timer_t *t = &s->def->timers[i];
        if (!t->interval_key) {
            continue;
        }
        const config_item_t *it = find_item(s, t->interval_key);
        double v = it->type == CONFIG_INT ? (double)*(const long *)it->out : *(const double *)it->out;
        double ms = v * (t->interval_unit_ms > 0 ? t->interval_unit_ms : 1.0) + 0.5;
        if (!(ms >= 1.0) || ms >= 4294967296.0) {
            snprintf(err, errlen,
                     "invalid configuration: %s=%g: the interval of timer %s must be from 1 ms to 2^32 ms",
                     t->interval_key, v, t->name ? t->name : "?");
            return -1;
        }
        s->intervals[i] = (uint64_t)ms;
    }
    return 0;
}

uint64_t service_timer_interval_ms(const service_t *svc, size_t i)
{
    if (i >= svc->def->ntimers) {
        return 0;
    }
    /* without a key, interval_ms as it is now (a caller may set it before service_start) */
    return svc->def->timers[i].interval_key ? svc->intervals[i] : svc->def->timers[i].interval_ms;
}

const config_item_t *service_config_items(const service_t *svc, size_t *out_n)
{
    *out_n = svc->nitems;
    return svc->items;
}

void service_print_help(const service_t *svc, FILE *out)
{
    cli_spec_t spec = {svc->def->name, svc->def->summary, svc->items, svc->nitems, svc->def->version};
    cli_print_help(&spec, out);
}

int service_configure(service_t *s, char *err, size_t errlen)
{
    s->configured = true; /* config_free runs in destroy from here on */
    if (config_load(s->items, s->nitems, err, errlen) != 0 || resolve_intervals(s, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < s->def->ninputs; i++) {
        s->topics[i] = *s->topic_slots[i];
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->topics[i], s->topics[j]) == 0) {
                snprintf(err, errlen,
                         "invalid configuration: %s and %s both name topic \"%s\": expected distinct topics",
                         s->def->inputs[j].topic_var, s->def->inputs[i].topic_var, s->topics[i]);
                return -1;
            }
        }
    }
    if (s->cfg.transactional_id && strcmp(s->cfg.transactional_id, "auto") == 0) {
        char id[256];
        char *copy = kafka_default_transactional_id(s->def->name, id, sizeof(id)) == 0 ? strdup(id) : NULL;
        if (!copy) {
            snprintf(err, errlen,
                     "invalid configuration: KAFKA_TRANSACTIONAL_ID=auto: cannot build <service>-<hostname>");
            return -1;
        }
        free(s->cfg.transactional_id); /* the slot stays the item's: config_free frees the copy */
        s->cfg.transactional_id = copy;
    }
    if (s->cfg.mongodb_uri && !getenv("MONGODB_DATABASE")) {
        /* Unset: the database named in the URI's path wins over the default. */
        char db[128];
        if (service_uri_database(s->cfg.mongodb_uri, db, sizeof(db)) > 0) {
            char *copy = strdup(db);
            if (!copy) {
                snprintf(err, errlen, "invalid configuration: out of memory");
                return -1;
            }
            free(s->cfg.mongodb_database); /* the slot stays the item's: config_free frees the copy */
            s->cfg.mongodb_database = copy;
        }
    }
    log_level_t level = LOG_INFO;
    log_level_parse(s->cfg.log_level, &level);
    log_init(s->def->name, level);
    return 0;
}

int service_uri_database(const char *uri, char *out, size_t outlen)
{
    const char *p = strstr(uri, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    size_t n = p ? strcspn(p + 1, "?") : 0;
    if (n == 0 || n >= outlen) {
        return 0;
    }
    memcpy(out, p + 1, n);
    out[n] = '\0';
    return (int)n;
}

const service_config_t *service_config(const service_t *svc)
{
    return &svc->cfg;
}

const char *service_topic(const service_t *svc, const char *topic_var)
{
    for (size_t i = 0; i < svc->def->ninputs; i++) {
        if (strcmp(svc->def->inputs[i].topic_var, topic_var) == 0) {
            return *svc->topic_slots[i];
        }
    }
    return NULL;
}
