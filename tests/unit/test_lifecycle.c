#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <signal.h>
#include <unistd.h>

#include "lifecycle.h"
#include "log.h"

static char order[8];
static int norder;

typedef struct {
    char tag;
    uv_timer_t timer; /* an async stage: finishes after a short timer */
    lifecycle_t *lc;
} stage_ctx_t;

static void sync_stage(lifecycle_t *lc, void *ctx)
{
    order[norder++] = ((stage_ctx_t *)ctx)->tag;
    lifecycle_stage_done(lc);
}

static void on_timer_closed(uv_handle_t *h)
{
    stage_ctx_t *s = h->data;
    lifecycle_stage_done(s->lc);
}

static void on_timer(uv_timer_t *t)
{
    stage_ctx_t *s = t->data;
    order[norder++] = s->tag;
    uv_close((uv_handle_t *)t, on_timer_closed);
}

static void async_stage(lifecycle_t *lc, void *ctx)
{
    stage_ctx_t *s = ctx;
    s->lc = lc;
    uv_timer_start(&s->timer, on_timer, 20, 0);
}

static void on_kick(uv_timer_t *t)
{
    raise(SIGTERM);
    uv_close((uv_handle_t *)t, NULL);
}

/* SIGTERM runs the stages in reverse order, async ones included, and the loop
 * closes cleanly with exit code 0. */
static void test_sigterm_runs_stages_in_reverse(void **state)
{
    (void)state;
    log_init("test", LOG_ERROR);
    lifecycle_t *lc = lifecycle_create(2000);
    assert_non_null(lc);
    stage_ctx_t a = {.tag = 'a'}, b = {.tag = 'b'}, c = {.tag = 'c'};
    uv_timer_init(lifecycle_loop(lc), &b.timer);
    b.timer.data = &b;
    lifecycle_add_stage(lc, "a", sync_stage, &a);
    lifecycle_add_stage(lc, "b", async_stage, &b);
    lifecycle_add_stage(lc, "c", sync_stage, &c);
    uv_timer_t kick;
    uv_timer_init(lifecycle_loop(lc), &kick);
    uv_timer_start(&kick, on_kick, 10, 0);
    norder = 0;
    assert_int_equal(lifecycle_run(lc), 0);
    assert_int_equal(norder, 3);
    assert_memory_equal(order, "cba", 3);
    lifecycle_destroy(lc);
}

static void hung_stage(lifecycle_t *lc, void *ctx)
{
    (void)lc;
    (void)ctx; /* never calls lifecycle_stage_done */
}

static void on_fatal(uv_timer_t *t)
{
    lifecycle_t *lc = t->data;
    uv_close((uv_handle_t *)t, NULL);
    lifecycle_stop(lc, 4);
}

/* A stage that never finishes makes the run fail at the deadline. */
static void test_deadline_fails_run(void **state)
{
    (void)state;
    log_init("test", LOG_ERROR + 1);
    lifecycle_t *lc = lifecycle_create(50);
    uv_timer_t keep;
    uv_timer_init(lifecycle_loop(lc), &keep); /* an open handle the stage forgot */
    lifecycle_add_stage(lc, "hung", hung_stage, NULL);
    uv_timer_t fatal;
    uv_timer_init(lifecycle_loop(lc), &fatal);
    fatal.data = lc;
    uv_timer_start(&fatal, on_fatal, 5, 0);
    assert_int_equal(lifecycle_run(lc), 1);
    lifecycle_destroy(lc);
}

/* lifecycle_stop's exit code comes back from run when shutdown is clean. */
static void test_exit_code_propagates(void **state)
{
    (void)state;
    lifecycle_t *lc = lifecycle_create(1000);
    uv_timer_t fatal;
    uv_timer_init(lifecycle_loop(lc), &fatal);
    fatal.data = lc;
    uv_timer_start(&fatal, on_fatal, 5, 0);
    assert_int_equal(lifecycle_run(lc), 4);
    lifecycle_destroy(lc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_runs_stages_in_reverse),
        cmocka_unit_test(test_deadline_fails_run),
        cmocka_unit_test(test_exit_code_propagates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
