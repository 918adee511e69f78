/* retrainer_parts_probe: drives the retrainer's parts from a test, one call a
 * run, the result as one JSON line on stdout (tests/integration/
 * test_retrainer_parts.py).
 *
 *   retrainer_parts_probe generate --dir D --specialist S --samples N [--seed X]
 *       [--provider P --model M --base-url U --api-key K --temperature T --timeout S]
 *   retrainer_parts_probe notify --channels slack,email [--webhook U] [--slack-channel C]
 *       [--smtp-host H --smtp-port P --smtp-user U --smtp-password W --from F --to R]
 *       [--retries N] [--timeout-ms T] [--success 0|1] [--specialist S] [--retrain-id I]
 *       [--run-id R] [--improved 0|1] [--baseline-f1 X] [--new-f1 Y] [--error E] [--action A]
 */
#include "dataset.h"
#include "hive_err.h"
#include "notify.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    O_DIR = 256,
    O_SPECIALIST,
    O_SAMPLES,
    O_SEED,
    O_PROVIDER,
    O_MODEL,
    O_BASE_URL,
    O_API_KEY,
    O_TEMPERATURE,
    O_TIMEOUT,
    O_CHANNELS,
    O_WEBHOOK,
    O_SLACK_CHANNEL,
    O_SMTP_HOST,
    O_SMTP_PORT,
    O_SMTP_USER,
    O_SMTP_PASSWORD,
    O_FROM,
    O_TO,
    O_RETRIES,
    O_TIMEOUT_MS,
    O_SUCCESS,
    O_RETRAIN_ID,
    O_RUN_ID,
    O_IMPROVED,
    O_BASELINE,
    O_NEW_F1,
    O_ERROR,
    O_ACTION,
};

static const struct option OPTIONS[] = {
    {"dir", 1, 0, O_DIR},
    {"specialist", 1, 0, O_SPECIALIST},
    {"samples", 1, 0, O_SAMPLES},
    {"seed", 1, 0, O_SEED},
    {"provider", 1, 0, O_PROVIDER},
    {"model", 1, 0, O_MODEL},
    {"base-url", 1, 0, O_BASE_URL},
    {"api-key", 1, 0, O_API_KEY},
    {"temperature", 1, 0, O_TEMPERATURE},
    {"timeout", 1, 0, O_TIMEOUT},
    {"channels", 1, 0, O_CHANNELS},
    {"webhook", 1, 0, O_WEBHOOK},
    {"slack-channel", 1, 0, O_SLACK_CHANNEL},
    {"smtp-host", 1, 0, O_SMTP_HOST},
    {"smtp-port", 1, 0, O_SMTP_PORT},
    {"smtp-user", 1, 0, O_SMTP_USER},
    {"smtp-password", 1, 0, O_SMTP_PASSWORD},
    {"from", 1, 0, O_FROM},
    {"to", 1, 0, O_TO},
    {"retries", 1, 0, O_RETRIES},
    {"timeout-ms", 1, 0, O_TIMEOUT_MS},
    {"success", 1, 0, O_SUCCESS},
    {"retrain-id", 1, 0, O_RETRAIN_ID},
    {"run-id", 1, 0, O_RUN_ID},
    {"improved", 1, 0, O_IMPROVED},
    {"baseline-f1", 1, 0, O_BASELINE},
    {"new-f1", 1, 0, O_NEW_F1},
    {"error", 1, 0, O_ERROR},
    {"action", 1, 0, O_ACTION},
    {0, 0, 0, 0},
};

static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(j);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s generate|notify [options]\n", argv[0]);
        return 2;
    }
    const char *cmd = argv[1];
    dataset_config_t dc = {.num_samples = 1000, .llm_temperature = 0.7, .seed = 42};
    notify_config_t nc = {.retries = 2, .timeout_ms = 5000};
    notify_event_t ev = {.success = 1};
    const char *specialist = "technical";
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", OPTIONS, NULL)) != -1) {
        switch (opt) {
        case O_DIR:
            dc.dir = optarg;
            break;
        case O_SPECIALIST:
            specialist = ev.specialist = optarg;
            break;
        case O_SAMPLES:
            dc.num_samples = atoi(optarg);
            break;
        case O_SEED:
            dc.seed = strtoull(optarg, NULL, 10);
            break;
        case O_PROVIDER:
            dc.llm_provider = optarg;
            break;
        case O_MODEL:
            dc.llm_model = optarg;
            break;
        case O_BASE_URL:
            dc.llm_base_url = optarg;
            break;
        case O_API_KEY:
            dc.llm_api_key = optarg;
            break;
        case O_TEMPERATURE:
            dc.llm_temperature = atof(optarg);
            break;
        case O_TIMEOUT:
            dc.llm_timeout_s = atoi(optarg);
            break;
        case O_CHANNELS: {
            int ok = 0;
            nc.channels = notify_parse_channels(optarg, &ok);
            if (!ok) {
                fprintf(stderr, "unknown channel in '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case O_WEBHOOK:
            nc.slack_webhook_url = optarg;
            break;
        case O_SLACK_CHANNEL:
            nc.slack_channel = optarg;
            break;
        case O_SMTP_HOST:
            nc.smtp_host = optarg;
            break;
        case O_SMTP_PORT:
            nc.smtp_port = atoi(optarg);
            break;
        case O_SMTP_USER:
            nc.smtp_user = optarg;
            break;
        case O_SMTP_PASSWORD:
            nc.smtp_password = optarg;
            break;
        case O_FROM:
            nc.smtp_from = optarg;
            break;
        case O_TO:
            nc.email_recipients = optarg;
            break;
        case O_RETRIES:
            nc.retries = atoi(optarg);
            break;
        case O_TIMEOUT_MS:
            nc.timeout_ms = atoi(optarg);
            break;
        case O_SUCCESS:
            ev.success = atoi(optarg);
            break;
        case O_RETRAIN_ID:
            ev.retrain_id = optarg;
            break;
        case O_RUN_ID:
            ev.mlflow_run_id = optarg;
            break;
        case O_IMPROVED:
            ev.improved = atoi(optarg);
            break;
        case O_BASELINE:
            ev.baseline_f1 = atof(optarg);
            break;
        case O_NEW_F1:
            ev.new_f1 = atof(optarg);
            break;
        case O_ERROR:
            ev.error = optarg;
            break;
        case O_ACTION:
            ev.action = optarg;
            break;
        default:
            return 2;
        }
    }
    if (strcmp(cmd, "generate") == 0) {
        dataset_result_t r;
        int rc = dataset_generate(&dc, specialist, &r);
        if (rc != 0) {
            return print_json(
                       json_pack("{s:s, s:s}", "error", hive_errname(rc), "message", dataset_error())) +
                   1;
        }
        return print_json(json_pack("{s:s, s:i, s:i, s:i, s:f, s:s}", "path", r.path, "samples", r.samples,
                                    "from_llm", r.from_llm, "llm_errors", r.llm_errors, "duration_s",
                                    r.duration_s, "llm_error", dataset_error()));
    }
    if (strcmp(cmd, "notify") == 0) {
        notify_outcome_t out[2];
        int rc = notify_send(&nc, &ev, out);
        json_t *j = json_pack("{s:s}", "rc", hive_errname(rc));
        const char *names[2] = {"slack", "email"};
        for (int i = 0; i < 2; i++) {
            json_object_set_new(j, names[i],
                                json_pack("{s:i, s:i, s:i, s:s}", "sent", out[i].sent, "failed",
                                          out[i].failed, "attempts", out[i].attempts, "error", out[i].error));
        }
        return print_json(j);
    }
    fprintf(stderr, "unknown command '%s'\n", cmd);
    return 2;
}
