/* trainer: the training job as a child process. See trainer.h. */
#include "trainer.h"

#include "hive_err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 64
#define MAX_ENV 512

int trainer_spawn(const char *command, const char *const *args, size_t nargs, const char *const *env,
                  const char *log_path, pid_t *out_pid, char *err, size_t errlen)
{
    char *cmd = strdup(command ? command : "");
    if (!cmd) {
        return hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
    }
    char *argv[MAX_ARGS + 1];
    size_t argc = 0;
    for (char *save = NULL, *t = strtok_r(cmd, " ", &save); t && argc < MAX_ARGS;
         t = strtok_r(NULL, " ", &save)) {
        argv[argc++] = t;
    }
    for (size_t i = 0; i < nargs && argc < MAX_ARGS; i++) {
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    if (argc == 0 || argc == MAX_ARGS) {
        free(cmd);
        return hive_err_set(err, errlen, HIVE_EINVAL, "TRAINING_COMMAND is empty or has too many words");
    }
    /* the environment: ours, then `env` (later entries win for getenv in Python) */
    char *envp[MAX_ENV + 1];
    size_t ne = 0;
    for (char **e = environ; *e && ne < MAX_ENV - 16; e++) {
        bool replaced = false;
        for (size_t i = 0; env && env[i] && !replaced; i++) {
            const char *eq = strchr(env[i], '=');
            replaced = eq && strncmp(*e, env[i], (size_t)(eq - env[i]) + 1) == 0;
        }
        if (!replaced) {
            envp[ne++] = *e;
        }
    }
    for (size_t i = 0; env && env[i] && ne < MAX_ENV; i++) {
        envp[ne++] = (char *)env[i];
    }
    envp[ne] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    /* its own process group: a Ctrl-C or a stop of the service leaves it
     * running, a timeout kills the whole group */
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        hive_err_set(err, errlen, HIVE_EINVAL, "cannot start %s: %s", argv[0], strerror(rc));
        free(cmd);
        return HIVE_EINVAL;
    }
    free(cmd);
    *out_pid = pid;
    return 0;
}

trainer_state_t trainer_poll(pid_t pid, int *out_code)
{
    if (pid <= 0) {
        return TRAINER_GONE;
    }
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
        *out_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return TRAINER_EXITED;
    }
    if (r == 0) {
        return TRAINER_RUNNING;
    }
    /* not our child: started before a restart; a zombie nobody reaps is gone too */
    if (kill(pid, 0) != 0 && errno != EPERM) {
        return TRAINER_GONE;
    }
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return (paren && paren[1] == ' ' && paren[2] == 'Z') ? TRAINER_GONE : TRAINER_RUNNING;
}

void trainer_kill(pid_t pid)
{
    if (pid > 0) {
        kill(-pid, SIGKILL);
    }
}
