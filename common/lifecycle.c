#include "lifecycle.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STAGES 32

typedef struct {
    const char *name;
    lifecycle_stage_fn fn;
    void *ctx;
} stage_t;

typedef struct {
    lifecycle_finalizer_fn fn;
    void *ctx;
} finalizer_t;

struct lifecycle_s {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t deadline;
    unsigned deadline_ms;
    stage_t stages[MAX_STAGES];
    int nstages;
    finalizer_t finalizers[MAX_STAGES];
    int nfinalizers;
    int current; /* index of the running stage; -1 before shutdown */
    bool stopping, timed_out;
    bool exit_on_deadline;
    int exit_code;
};

static void on_signal(uv_signal_t *h, int signum)
{
    lifecycle_t *lc = h->data;
    log_info("signal received, shutting down", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    lifecycle_stop(lc, 0);
}

static void count_open(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        (*(unsigned *)arg)++;
    }
}

/* The shutdown deadline passed: a stage is still waiting, typically for work
 * blocked on a worker thread (a MongoDB call to a frozen server, a Kafka
 * transaction to a frozen broker). Nothing can be freed safely while that work
 * holds pointers into the service, and closing its handles behind the owners'
 * backs makes their own teardown close them twice (libuv aborts). So the
 * process ends here, at once: the log line says which stage did not finish and
 * which were never run; the exit status says the shutdown was not clean. Kafka
 * aborts the open transaction (or the next incarnation fences it) and the
 * consumed offsets were not committed, so nothing is lost. */
static void on_deadline(uv_timer_t *t)
{
    lifecycle_t *lc = t->data;
    /* current < 0: every stage finished, but work queued on worker threads had not. */
    const char *stage = lc->current >= 0 && lc->current < lc->nstages ? lc->stages[lc->current].name
                        : lc->current < 0                             ? "work on worker threads"
                                                                      : "?";
    char pending[512] = "";
    size_t off = 0;
    for (int i = lc->current - 1; i >= 0 && off < sizeof(pending); i--) {
        int n = snprintf(pending + off, sizeof(pending) - off, "%s%s", off ? "," : "", lc->stages[i].name);
        off += n > 0 ? (size_t)n : 0;
    }
    unsigned open = 0;
    uv_walk(&lc->loop, count_open, &open);
    char deadline[24], handles[24], work[24];
    snprintf(deadline, sizeof(deadline), "%u", lc->deadline_ms);
    snprintf(handles, sizeof(handles), "%u", open);
    snprintf(work, sizeof(work), "%u", lc->loop.active_reqs.count);
    log_error("shutdown deadline passed; exiting without finishing", "stage", stage, "stages_not_run",
              pending, "deadline_ms", deadline, "open_handles", handles, "requests_in_flight", work);
    lc->timed_out = true;
    if (lc->exit_on_deadline) {
        fflush(NULL);
        _exit(LIFECYCLE_EXIT_DEADLINE);
    }
    uv_stop(&lc->loop);
}

lifecycle_t *lifecycle_create(unsigned deadline_ms)
{
    lifecycle_t *lc = calloc(1, sizeof(*lc));
    if (!lc) {
        return NULL;
    }
    if (uv_loop_init(&lc->loop) != 0) {
        free(lc);
        return NULL;
    }
    lc->deadline_ms = deadline_ms ? deadline_ms : 10000;
    lc->current = -1;
    lc->exit_on_deadline = true;
    uv_signal_init(&lc->loop, &lc->sigterm);
    uv_signal_init(&lc->loop, &lc->sigint);
    uv_timer_init(&lc->loop, &lc->deadline);
    lc->sigterm.data = lc->sigint.data = lc->deadline.data = lc;
    uv_signal_start(&lc->sigterm, on_signal, SIGTERM);
    uv_signal_start(&lc->sigint, on_signal, SIGINT);
    /* A peer closing a socket must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    return lc;
}

uv_loop_t *lifecycle_loop(lifecycle_t *lc)
{
    return &lc->loop;
}

int lifecycle_add_stage(lifecycle_t *lc, const char *name, lifecycle_stage_fn fn, void *ctx)
{
    if (lc->nstages == MAX_STAGES || !fn) {
        return -1;
    }
    lc->stages[lc->nstages++] = (stage_t){name, fn, ctx};
    return 0;
}

static void close_own_handles(lifecycle_t *lc)
{
    uv_timer_stop(&lc->deadline);
    if (!uv_is_closing((uv_handle_t *)&lc->deadline)) {
        uv_close((uv_handle_t *)&lc->deadline, NULL);
    }
}

int lifecycle_add_finalizer(lifecycle_t *lc, lifecycle_finalizer_fn fn, void *ctx)
{
    if (lc->nfinalizers == MAX_STAGES || !fn) {
        return -1;
    }
    lc->finalizers[lc->nfinalizers++] = (finalizer_t){fn, ctx};
    return 0;
}

/* Runs stages from the top of the stack down; a stage that completes inside
 * its own call simply recurses one level. */
static void run_next(lifecycle_t *lc)
{
    lc->current--;
    if (lc->current < 0) {
        log_info("shutdown complete");
        /* Stop the loop even if a library keeps an idle handle referenced
         * (h2o's context does); finalizers close those, and uv_loop_close()
         * then proves nothing is left. */
        uv_stop(&lc->loop);
        return;
    }
    stage_t *st = &lc->stages[lc->current];
    log_debug("shutdown stage", "stage", st->name);
    st->fn(lc, st->ctx);
}

void lifecycle_stage_done(lifecycle_t *lc)
{
    if (lc->stopping && lc->current >= 0) {
        run_next(lc);
    }
}

void lifecycle_stop(lifecycle_t *lc, int exit_code)
{
    if (exit_code > lc->exit_code) {
        lc->exit_code = exit_code;
    }
    if (lc->stopping) {
        return;
    }
    lc->stopping = true;
    uv_close((uv_handle_t *)&lc->sigterm, NULL);
    uv_close((uv_handle_t *)&lc->sigint, NULL);
    uv_timer_start(&lc->deadline, on_deadline, lc->deadline_ms, 0);
    uv_unref((uv_handle_t *)&lc->deadline);
    lc->current = lc->nstages;
    run_next(lc);
}

void lifecycle_set_exit_on_deadline(lifecycle_t *lc, bool exit_on_deadline)
{
    lc->exit_on_deadline = exit_on_deadline;
}

bool lifecycle_stopping(const lifecycle_t *lc)
{
    return lc->stopping;
}

static void report_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    log_error("handle still open at exit", "type", uv_handle_type_name(h->type));
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int lifecycle_run(lifecycle_t *lc)
{
    uv_run(&lc->loop, UV_RUN_DEFAULT);
    /* Every stage is done, but a module may still have work on a worker thread
     * (uv_queue_work) whose completion callback will run on this loop: wait for
     * it, within the same deadline, before anything is freed. Returning now
     * would let that thread wake a loop that no longer exists. */
    while (lc->stopping && !lc->timed_out && lc->loop.active_reqs.count > 0) {
        uv_run(&lc->loop, UV_RUN_ONCE);
    }
    close_own_handles(lc);
    int rc = lc->timed_out ? LIFECYCLE_EXIT_DEADLINE : lc->exit_code;
    if (!lc->timed_out) {
        while (lc->nfinalizers > 0) {
            finalizer_t *f = &lc->finalizers[--lc->nfinalizers];
            f->fn(f->ctx);
        }
    }
    /* Complete the closes still pending; never block on a forgotten handle. */
    for (int i = 0; i < 8 && uv_loop_alive(&lc->loop); i++) {
        uv_run(&lc->loop, UV_RUN_NOWAIT);
    }
    if (uv_loop_close(&lc->loop) != 0) {
        uv_walk(&lc->loop, report_handle, NULL);
        rc = lc->timed_out ? rc : 1;
        /* Close what is left so the loop can be freed; this path already failed. */
        uv_walk(&lc->loop, close_any, NULL);
        uv_run(&lc->loop, UV_RUN_NOWAIT);
        uv_loop_close(&lc->loop);
    }
    return rc;
}

void lifecycle_destroy(lifecycle_t *lc)
{
    free(lc);
}
