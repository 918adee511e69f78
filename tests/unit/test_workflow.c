/* The Argo Workflow manifest of an experiment: the seven steps in order,
 * a DNS-1123 name, the id escaped in the URLs, the polling bounded by the
 * duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "workflow.h"

static const char *str_at(json_t *o, const char *path)
{
    /* "a.b.c" through objects */
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
        cur = json_object_get(cur, tok);
    }
    return json_string_value(cur);
}

static json_t *template_named(json_t *wf, const char *name)
{
    json_t *ts = json_object_get(json_object_get(wf, "spec"), "templates");
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *t = json_array_get(ts, i);
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
            return t;
        }
    }
    return NULL;
}

static void test_manifest(void **state)
{
    (void)state;
    workflow_spec_t s = {.id = "Opt/Exp@1+x",
                         .type = "AB_TEST",
                         .target = "orchestrator",
                         .traffic_split = 0.1,
                         .duration_s = 3600,
                         .interval_s = 60,
                         .manager_url = "http://experiment-manager:8000"};
    json_t *wf = workflow_render(&s);
    assert_non_null(wf);
    assert_string_equal(str_at(wf, "apiVersion"), "argoproj.io/v1alpha1");
    assert_string_equal(str_at(wf, "kind"), "Workflow");
    assert_string_equal(str_at(wf, "metadata.name"), "experiment-opt-exp-1-x");
    json_t *md = json_object_get(wf, "metadata");
    assert_string_equal(json_string_value(json_object_get(json_object_get(md, "annotations"),
                                                          "neural-hive.io/experiment-id")),
                        "Opt/Exp@1+x");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(md, "labels"), "neural-hive.io/experiment-type")),
        "ab-test");
    assert_string_equal(str_at(wf, "spec.entrypoint"), "experiment");
    assert_string_equal(str_at(wf, "spec.onExit"), "cleanup");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(wf, "spec"), "activeDeadlineSeconds")),
        3600 + 600);

    /* the entrypoint: seven groups of one step each, in the seed's order */
    json_t *steps = json_object_get(template_named(wf, "experiment"), "steps");
    assert_int_equal(json_array_size(steps), WORKFLOW_NSTEPS);
    const char *want[] = {
        "setup-baseline", "setup-experimental", "traffic-split", "monitor", "collect", "analyze", "cleanup"};
    for (size_t i = 0; i < WORKFLOW_NSTEPS; i++) {
        json_t *g = json_array_get(steps, i);
        assert_int_equal(json_array_size(g), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(g, 0), "name")), want[i]);
        assert_string_equal(json_string_value(json_object_get(json_array_get(g, 0), "template")), want[i]);
        assert_non_null(template_named(wf, want[i]));
    }
    json_t *mon = template_named(wf, "monitor");
    assert_string_equal(str_at(mon, "http.url"),
                        "http://experiment-manager:8000/api/v1/experiments/Opt%2FExp%401%2Bx");
    assert_non_null(strstr(str_at(mon, "http.successCondition"), "'DONE'"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(mon, "retryStrategy"), "limit")), 62);
    assert_string_equal(str_at(mon, "retryStrategy.backoff.duration"), "60s");
    assert_string_equal(str_at(template_named(wf, "analyze"), "http.url"),
                        "http://experiment-manager:8000/api/v1/experiments/Opt%2FExp%401%2Bx/results");
    json_decref(wf);

    s.manager_url = NULL;
    assert_null(workflow_render(&s));
}

static void test_name(void **state)
{
    (void)state;
    char name[64];
    workflow_name("exp-1", name, sizeof(name));
    assert_string_equal(name, "experiment-exp-1");
    workflow_name("A__", name, sizeof(name));
    assert_string_equal(name, "experiment-a"); /* ends alphanumeric */
    char longid[200];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    workflow_name(longid, name, sizeof(name));
    assert_int_equal(strlen(name), 63);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
