/* offload: uv_queue_work with the job's memory managed. See offload.h. */
#include "offload.h"

#include "hive_err.h"

#include <stdlib.h>

typedef struct {
    uv_work_t req;
    offload_work_fn work;
    offload_done_fn done;
    void *arg;
} job_t;

static void run_work(uv_work_t *req)
{
    job_t *j = req->data;
    j->work(j->arg);
}

static void run_done(uv_work_t *req, int status)
{
    job_t *j = req->data;
    offload_done_fn done = j->done;
    void *arg = j->arg;
    free(j); /* before the callback, which may end the loop's work */
    done(arg, status == 0 ? 0 : HIVE_ECANCELED);
}

int offload_run(uv_loop_t *loop, offload_work_fn work, offload_done_fn done, void *arg)
{
    if (!loop || !work || !done) {
        return HIVE_EINVAL;
    }
    job_t *j = malloc(sizeof(*j));
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->req.data = j;
    if (uv_queue_work(loop, &j->req, run_work, run_done) != 0) {
        free(j);
        return HIVE_EINVAL;
    }
    return 0;
}
