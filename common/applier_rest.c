/* applier_rest: state, history and rollback over HTTP. See applier_rest.h. */
#include "applier_rest.h"

#include "avro_fields.h"
#include "avro_validate.h"
#include "hive_err.h"
#include "hive_status.h"
#include "log.h"
#include "offload.h"
#include "timeutil.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct applier_rest_s {
    applier_rest_conf_t c;
    char *routes[3];
    size_t pending;
};

typedef struct {
    applier_rest_t *r;
    http_req_t *req;
    char target[129];
    size_t limit; /* 0: current state */
    json_t *body;
    int status;
} read_job_t;

bool applier_rest_valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 128 || !isalnum((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && !strchr("._:/@+-", s[i])) {
            return false;
        }
    }
    return true;
}

static void read_work(void *arg)
{
    read_job_t *j = arg;
    j->status = j->limit ? applier_history_json(j->r->c.applier, j->target, j->limit, &j->body)
                         : applier_current_json(j->r->c.applier, j->target, &j->body);
}

static void read_done(void *arg, int status)
{
    read_job_t *j = arg;
    if (status != 0 || j->status != 0) {
        int code = status ? status : j->status;
        http_respond_error(j->req, hive_status_http(code), NULL, hive_strerror(code));
        json_decref(j->body);
    } else {
        http_respond_json(j->req, 200,
                          j->limit ? json_pack("{s:s, s:o}", "target", j->target, "revisions", j->body)
                                   : j->body);
    }
    http_req_release(j->req);
    j->r->pending--;
    free(j);
}

static void start_read(applier_rest_t *r, http_req_t *req, size_t limit)
{
    const char *target = http_req_param(req, "target");
    if (!applier_rest_valid_name(target)) {
        http_respond_error(req, 400, "target",
                           "target must match [A-Za-z0-9][A-Za-z0-9._:/@+-]*, 1..128 bytes");
        return;
    }
    read_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    *j = (read_job_t){.r = r, .req = req, .limit = limit};
    snprintf(j->target, sizeof(j->target), "%s", target);
    http_req_retain(req);
    if (offload_run(r->c.loop, read_work, read_done, j) != 0) {
        http_respond_error(req, 503, NULL, "cannot start the read");
        http_req_release(req);
        free(j);
        return;
    }
    r->pending++;
}

static void on_current(void *ctx, http_req_t *req)
{
    start_read(ctx, req, 0);
}

static void on_history(void *ctx, http_req_t *req)
{
    const char *q = http_req_query(req, "limit");
    long limit = 50;
    if (q) {
        char *end;
        limit = strtol(q, &end, 10);
        if (*q == '\0' || *end || limit < 1 || limit > 1000) {
            http_respond_error(req, 400, "limit", "limit must be an integer in [1, 1000]");
            return;
        }
    }
    start_read(ctx, req, (size_t)limit);
}

typedef struct {
    http_req_t *req;
    char command_id[129];
} send_job_t;

static void delivered(void *arg, rd_kafka_resp_err_t err)
{
    send_job_t *j = arg;
    if (err) {
        http_respond_error(j->req, 503, NULL, rd_kafka_err2str(err));
    } else {
        http_respond_json(j->req, 202,
                          json_pack("{s:s, s:s}", "command_id", j->command_id, "status", "queued"));
    }
    http_req_release(j->req);
    free(j);
}

static void on_rollback(void *ctx, http_req_t *req)
{
    applier_rest_t *r = ctx;
    const char *target = http_req_param(req, "target");
    char err[200];
    json_t *body = http_req_json(req, err, sizeof(err));
    if (!applier_rest_valid_name(target)) {
        http_respond_error(req, 400, "target",
                           "target must match [A-Za-z0-9][A-Za-z0-9._:/@+-]*, 1..128 bytes");
        return;
    }
    if (!body || !json_is_object(body)) {
        http_respond_error(req, 400, NULL, body ? "the body must be a JSON object" : err);
        return;
    }
    static const char *const allowed[] = {"optimization_id", "revision", "reason", NULL};
    const char *unknown = http_json_unknown_member(body, allowed);
    if (unknown) {
        http_respond_error(req, 400, unknown, "unknown field");
        return;
    }
    json_t *opt = json_object_get(body, "optimization_id"), *rev = json_object_get(body, "revision");
    json_t *why = json_object_get(body, "reason");
    if (!json_is_string(opt) || !applier_rest_valid_name(json_string_value(opt))) {
        http_respond_error(req, 400, "optimization_id", "optimization_id must be a name, 1..128 bytes");
        return;
    }
    /* JSON Schema counts 2.0 as an integer: an integral real is taken as one. */
    if (rev && json_is_real(rev) && fabs(json_real_value(rev)) <= 1e15 &&
        json_real_value(rev) == floor(json_real_value(rev))) {
        json_object_set_new(body, "revision", json_integer((json_int_t)json_real_value(rev)));
        rev = json_object_get(body, "revision");
    }
    if (rev && (!json_is_integer(rev) || json_integer_value(rev) < 1 ||
                json_integer_value(rev) > 1000000000000000LL)) {
        http_respond_error(req, 400, "revision", "revision must be an integer in [1, 1e15]");
        return;
    }
    if (why && (!json_is_string(why) || json_string_length(why) > 1024)) {
        http_respond_error(req, 400, "reason", "reason must be a string of at most 1024 bytes");
        return;
    }
    /* The consumer validates the command's reason as text (avro_validate.h):
     * refused here, not dead-lettered there. */
    if (why && !avro_validate_matches(json_string_value(why), json_string_length(why), AVRO_PATTERN_TEXT)) {
        http_respond_error(req, 400, "reason",
                           "reason must be text without control characters but tab, LF and CR");
        return;
    }
    send_job_t *j = calloc(1, sizeof(*j));
    avro_value_t v;
    if (!j || avro_codec_new_value(r->c.codec, "OptimizationCommand", &v) != 0) {
        free(j);
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    int64_t now = timeutil_wall_ms();
    snprintf(j->command_id, sizeof(j->command_id), "rest-rollback-%lld-%.100s", (long long)now,
             json_string_value(opt));
    int f = avro_set_string(&v, "command_id", j->command_id) ||
            avro_set_enum_name(&v, "command", "ROLLBACK") ||
            avro_set_string(&v, "optimization_id", json_string_value(opt)) ||
            avro_set_enum_name(&v, "optimization_type", r->c.optimization_type) ||
            avro_set_string(&v, "target", target) ||
            (rev ? avro_set_long(&v, "rollback_to_revision", json_integer_value(rev))
                 : avro_set_null(&v, "rollback_to_revision")) ||
            avro_set_string(&v, "reason", why ? json_string_value(why) : "rollback requested over REST") ||
            avro_set_long(&v, "issued_at", now);
    void *buf = NULL;
    size_t len = 0;
    int rc = f ? HIVE_EINVAL
               : avro_codec_encode(r->c.codec, r->c.commands_topic, &v, &buf, &len, err, sizeof(err));
    avro_value_decref(&v);
    if (rc != 0) {
        free(j);
        http_respond_error(req, hive_status_http(rc), NULL, f ? "cannot build the command" : err);
        return;
    }
    j->req = req;
    http_req_retain(req);
    rd_kafka_resp_err_t kerr = kafka_producer_send(r->c.producer, r->c.commands_topic, target, strlen(target),
                                                   buf, len, NULL, delivered, j);
    free(buf);
    if (kerr) {
        http_respond_error(req, 503, NULL, rd_kafka_err2str(kerr));
        http_req_release(req);
        free(j);
    }
}

applier_rest_t *applier_rest_create(http_server_t *http, const applier_rest_conf_t *conf)
{
    applier_rest_t *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->c = *conf;
    static const char *const suffix[3] = {"/{target}", "/{target}/history", "/{target}/rollback"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(conf->prefix) + strlen(suffix[i]) + 1;
        if (!(r->routes[i] = malloc(n))) {
            applier_rest_destroy(r);
            return NULL;
        }
        snprintf(r->routes[i], n, "%s%s", conf->prefix, suffix[i]);
    }
    if (http_route(http, "GET", r->routes[0], on_current, r) != 0 ||
        http_route(http, "GET", r->routes[1], on_history, r) != 0 ||
        http_route(http, "POST", r->routes[2], on_rollback, r) != 0) {
        applier_rest_destroy(r);
        return NULL;
    }
    return r;
}

size_t applier_rest_pending(const applier_rest_t *r)
{
    return r ? r->pending : 0;
}

void applier_rest_destroy(applier_rest_t *r)
{
    if (r) {
        for (int i = 0; i < 3; i++) {
            free(r->routes[i]);
        }
        free(r);
    }
}
