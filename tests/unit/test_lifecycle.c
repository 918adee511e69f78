#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
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

static void on_keep(uv_timer_t *t)
{
    (void)t;
}

/* A stage that never finishes while a handle keeps the loop alive makes the run
 * fail at the deadline (here without ending the process). */
static void test_deadline_fails_run(void **state)
{
    (void)state;
    log_init("test", LOG_ERROR + 1);
    lifecycle_t *lc = lifecycle_create(50);
    lifecycle_set_exit_on_deadline(lc, false);
    uv_timer_t keep;
    uv_timer_init(lifecycle_loop(lc), &keep); /* an open handle the stage forgot */
    uv_timer_start(&keep, on_keep, 1000, 1000);
    lifecycle_add_stage(lc, "hung", hung_stage, NULL);
    uv_timer_t fatal;
    uv_timer_init(lifecycle_loop(lc), &fatal);
    fatal.data = lc;
    uv_timer_start(&fatal, on_fatal, 5, 0);
    assert_int_equal(lifecycle_run(lc), LIFECYCLE_EXIT_DEADLINE);
    lifecycle_destroy(lc);
}

/* A stage that never finishes with nothing left to wait for ends the loop at
 * once; the handle it forgot makes the run fail. */
static void test_forgotten_handle_fails_run(void **state)
{
    (void)state;
    log_init("test", LOG_ERROR + 1);
    lifecycle_t *lc = lifecycle_create(5000);
    uv_timer_t keep;
    uv_timer_init(lifecycle_loop(lc), &keep);
    lifecycle_add_stage(lc, "hung", hung_stage, NULL);
    uv_timer_t fatal;
    uv_timer_init(lifecycle_loop(lc), &fatal);
    fatal.data = lc;
    uv_timer_start(&fatal, on_fatal, 5, 0);
    assert_int_equal(lifecycle_run(lc), 1);
    lifecycle_destroy(lc);
}

static int blocker[2]; /* a pipe nobody writes: the worker below blocks on it */

static void blocked_work(uv_work_t *req)
{
    (void)req;
    char c;
    while (read(blocker[0], &c, 1) != 0) {
    }
}

static void blocked_done(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
}

/* The default at the deadline, with work still blocked on a worker thread and a
 * stage waiting for it: the process ends with LIFECYCLE_EXIT_DEADLINE (no
 * abort, no signal) after a log line naming the stage that did not finish and
 * the stages never run. */
static void test_deadline_exits_with_blocked_worker(void **state)
{
    (void)state;
    int logs[2];
    assert_int_equal(pipe(logs), 0);
    assert_int_equal(pipe(blocker), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(logs[0]);
        FILE *out = fdopen(logs[1], "w");
        log_set_stream(out);
        log_init("test", LOG_ERROR);
        lifecycle_t *lc = lifecycle_create(100);
        static uv_work_t work;
        uv_queue_work(lifecycle_loop(lc), &work, blocked_work, blocked_done);
        lifecycle_add_stage(lc, "store", hung_stage, NULL);
        lifecycle_add_stage(lc, "kafka", hung_stage, NULL);
        uv_timer_t fatal;
        uv_timer_init(lifecycle_loop(lc), &fatal);
        fatal.data = lc;
        uv_timer_start(&fatal, on_fatal, 5, 0);
        lifecycle_run(lc);
        _exit(0); /* not reached: the deadline ends the process */
    }
    close(logs[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 && (n = read(logs[0], buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(logs[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(blocker[0]);
    close(blocker[1]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), LIFECYCLE_EXIT_DEADLINE);
    assert_non_null(strstr(buf, "shutdown deadline passed"));
    assert_non_null(strstr(buf, "\"stage\":\"kafka\""));
    assert_non_null(strstr(buf, "\"stages_not_run\":\"store\""));
    assert_non_null(strstr(buf, "\"requests_in_flight\":\"1\""));
}

static bool slow_work_done;

static void slow_work(uv_work_t *req)
{
    (void)req;
    usleep(200 * 1000);
}

static void slow_work_after(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
    slow_work_done = true;
}

/* Every stage finishes while work queued by a module still runs on a worker
 * thread: run waits for its completion callback (within the deadline) and then
 * closes the loop cleanly. */
static void test_run_waits_for_worker_threads(void **state)
{
    (void)state;
    lifecycle_t *lc = lifecycle_create(5000);
    static uv_work_t work;
    slow_work_done = false;
    assert_int_equal(uv_queue_work(lifecycle_loop(lc), &work, slow_work, slow_work_after), 0);
    uv_timer_t fatal;
    uv_timer_init(lifecycle_loop(lc), &fatal);
    fatal.data = lc;
    uv_timer_start(&fatal, on_fatal, 5, 0);
    assert_int_equal(lifecycle_run(lc), 4);
    assert_true(slow_work_done);
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
        cmocka_unit_test(test_forgotten_handle_fails_run),
        cmocka_unit_test(test_deadline_exits_with_blocked_worker),
        cmocka_unit_test(test_exit_code_propagates),
        cmocka_unit_test(test_run_waits_for_worker_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
