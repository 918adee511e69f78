/* trainer: the training job as a child process (TRAINING_COMMAND), started
 * without waiting for it and followed by its pid, so the loop never blocks and
 * a restarted service can still tell whether the job is alive. */
#ifndef RETRAINER_TRAINER_H
#define RETRAINER_TRAINER_H

#include <stddef.h>
#include <sys/types.h>

/* Starts `command` (split on spaces) followed by the `nargs` arguments of
 * `args`, in its own process group, stdin from /dev/null, stdout and stderr
 * appended to `log_path`, with `env` ("NAME=value", NULL-terminated; may be
 * NULL) added to the environment. 0 and *out_pid, or a HIVE_E* code with the
 * reason in `err`. */
int trainer_spawn(const char *command, const char *const *args, size_t nargs, const char *const *env,
                  const char *log_path, pid_t *out_pid, char *err, size_t errlen);

typedef enum {
    TRAINER_RUNNING = 0, /* alive */
    TRAINER_EXITED,      /* our child, ended: *out_code its exit status (or 128 + signal) */
    TRAINER_GONE,        /* not ours (a restart) and no longer alive, or never started */
} trainer_state_t;

/* The job's state, reaping it when it is our child. */
trainer_state_t trainer_poll(pid_t pid, int *out_code);

/* SIGKILL to the job's process group (a timeout, a cancel). */
void trainer_kill(pid_t pid);

#endif
