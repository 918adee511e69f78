/* command: `retrainer run`, seed 004's one-shot for a CronJob or a person,
 * with seed 002's flags mapped onto the same run:
 *
 *   retrainer run --specialist-type technical|...|all [--force]
 *       [--skip-dataset-generation] [--dry-run] [--notification-channels slack,email]
 *       [--model-type X] [--promote-if-better | --no-promote] [--training-window-days N]
 *       [--hyperparameter-tuning] [--min-samples N]
 *
 * The run is stored like the service's (driver "cli") and driven to its end in
 * this process; its lifecycle events wait in the outbox for the service to
 * publish them. --dry-run prints what would happen and writes nothing.
 * Exit status: 0 when every run succeeded or was skipped by the cooldown,
 * 1 when one failed, 2 for bad arguments. */
#include "app.h"

#include "hive_err.h"
#include "timeutil.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The string member `key` of `o`, or "". */
static const char *jget(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static const char *const all[] = {"technical", "safety", "business", "ethical", "legal"};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: retrainer run --specialist-type technical|safety|business|ethical|legal|all [--force]\n"
            "         [--skip-dataset-generation] [--dry-run] [--notification-channels slack,email]\n"
            "         [--model-type TYPE] [--promote-if-better | --no-promote] [--training-window-days N]\n"
            "         [--hyperparameter-tuning] [--min-samples N]\n");
}

static long number(const char *s, long min, long max, bool *ok)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max) {
        *ok = false;
    }
    return v;
}

/* Drives one run to its end; prints it; its final status in *status. */
static int drive(app_t *app, const char *run_id, char *status, size_t slen)
{
    char err[512];
    bool more = true, ended = false;
    while (!ended) {
        int rc = run_advance(&app->rc, run_id, timeutil_wall_ms(), &more, &ended, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "retrainer: run %s: %s\n", run_id, err);
            if (!hive_err_transient(rc)) {
                return rc;
            }
            more = false;
        }
        if (!more && !ended) {
            nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
        }
    }
    json_t *doc = NULL;
    if (run_get(&app->rc, run_id, &doc, err, sizeof(err)) != 0) {
        fprintf(stderr, "retrainer: %s\n", err);
        return HIVE_EUNAVAILABLE;
    }
    snprintf(status, slen, "%s", jget(doc, "status"));
    json_dumpf(doc, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(doc);
    return 0;
}

int app_command_main(app_t *app, const service_config_t *shared, int argc, char **argv)
{
    static const struct option opts[] = {{"specialist-type", required_argument, NULL, 's'},
                                         {"model-type", required_argument, NULL, 's'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"skip-dataset-generation", no_argument, NULL, 'k'},
                                         {"dry-run", no_argument, NULL, 'd'},
                                         {"notification-channels", required_argument, NULL, 'n'},
                                         {"promote-if-better", no_argument, NULL, 'p'},
                                         {"no-promote", no_argument, NULL, 'P'},
                                         {"training-window-days", required_argument, NULL, 'w'},
                                         {"hyperparameter-tuning", no_argument, NULL, 'h'},
                                         {"min-samples", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    run_request_t r = {.trigger = "cli", .driver = "cli", .promote_if_better = app->cfg->promote_if_better};
    const char *which = NULL;
    bool dry = false, ok = true;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            which = optarg;
            break;
        case 'f':
            r.force = true;
            break;
        case 'k':
            r.skip_dataset = true;
            break;
        case 'd':
            dry = true;
            break;
        case 'n':
            r.channels = optarg;
            break;
        case 'p':
            r.promote_if_better = true;
            break;
        case 'P':
            r.promote_if_better = false;
            break;
        case 'w':
            r.training_window_days = number(optarg, 1, 3650, &ok);
            break;
        case 'h':
            r.hyperparameter_tuning = true;
            break;
        case 'm':
            r.min_samples = number(optarg, 1, 10000000, &ok);
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            ok = false;
        }
    }
    bool is_all = which && strcmp(which, "all") == 0;
    if (!ok || optind != argc || !which || (!is_all && !run_specialist_known(which)) ||
        (r.channels && !app_channels_valid(r.channels))) {
        usage(stderr);
        return 2;
    }
    char err[512];
    store_t *store = store_create(shared->mongodb_uri, shared->mongodb_database, err, sizeof(err));
    if (!store) {
        fprintf(stderr, "retrainer: %s\n", err);
        return 2;
    }
    int status = 0;
    if (app_init(app, store, NULL) != 0) {
        store_destroy(store);
        return 2;
    }
    for (size_t i = 0; i < 5; i++) {
        if (!is_all && strcmp(which, all[i]) != 0) {
            continue;
        }
        r.specialist = all[i];
        int rc;
        if (dry) {
            json_t *plan = NULL;
            rc = run_plan(&app->rc, &r, timeutil_wall_ms(), &plan, err, sizeof(err));
            if (rc == 0) {
                json_dumpf(plan, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
                json_decref(plan);
            }
        } else {
            char run_id[136], final[32] = "";
            snprintf(run_id, sizeof(run_id), "cli-%s-%lld", all[i], (long long)timeutil_wall_ms());
            rc = run_create(&app->rc, &r, run_id, timeutil_wall_ms(), NULL, NULL, err, sizeof(err));
            if (rc == 0) {
                rc = drive(app, run_id, final, sizeof(final));
                if (rc == 0 && strcmp(final, "failed") == 0) {
                    status = 1;
                }
                snprintf(err, sizeof(err), "run %s did not finish", run_id);
            }
        }
        if (rc != 0) {
            fprintf(stderr, "retrainer: %s: %s\n", all[i], err);
            status = 1;
        }
    }
    app_deinit(app);
    store_destroy(store);
    return status;
}
