/* steps_parts: the dataset and notify steps of a run, over the parts library
 * (retrainer/parts: dataset generation with its LLM providers, Slack and
 * email). When the parts are not built in (RETRAINER_HAVE_PARTS undefined),
 * a built-in synthetic generator writes the dataset and notifications are
 * reported as not available. BLOCKING, worker threads only. */
#ifndef RETRAINER_STEPS_PARTS_H
#define RETRAINER_STEPS_PARTS_H

#include "run.h"

#include <jansson.h>

/* The parts' settings (run_conf_t.parts), strings borrowed from the config. */
typedef struct {
    const char *llm_provider, *llm_model, *llm_base_url, *llm_api_key;
    double llm_temperature;
    long llm_timeout_s;
    const char *slack_webhook_url, *slack_channel;
    const char *smtp_host, *smtp_user, *smtp_password, *smtp_from, *email_recipients;
    long smtp_port, notify_retries, notify_timeout_ms;
    store_t *feedback; /* the Hive's feedback (NULL: none merged) */
    const char *feedback_collection;
} parts_conf_t;

typedef struct {
    char path[512];
    int samples, from_llm, from_feedback, llm_errors;
    double duration_s;
} parts_dataset_t;

/* The dataset of run `run_id`: a new one, or the latest of the specialist
 * when `reuse`. Old datasets are deleted. 0, or a HIVE_E* code with `why`. */
int parts_dataset(const run_conf_t *c, const char *specialist, const char *run_id, bool reuse,
                  parts_dataset_t *out, char *why, size_t whylen);

/* Sends the run's outcome on its channels; never fails the run: `detail`
 * says what was sent, failed or skipped. */
void parts_notify(const run_conf_t *c, const json_t *doc, bool success, char *detail, size_t len);

/* Are the parts (LLM providers, Slack, email) built in? */
bool parts_available(void);

#endif
