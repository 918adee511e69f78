/* notify: the retrainer's notifications (seed 004 step 7): a Slack incoming
 * webhook (JSON POSTed through httpc_sync) and email (libcurl SMTP, AUTH when a
 * user is set, STARTTLS when the server offers it). BLOCKING: worker threads.
 *
 * On success the message says the run id and whether the candidate improved
 * (with both F1); on failure the error and what to do. A failed send is
 * retried `retries` times with back-off (NOTIFY_BACKOFF_MS, doubled each time,
 * at most NOTIFY_BACKOFF_MAX_MS) and counted in the channel's outcome; a
 * notification never makes the run fail.
 */
#ifndef RETRAINER_NOTIFY_H
#define RETRAINER_NOTIFY_H

#include <stddef.h>

enum {
    NOTIFY_SLACK = 1 << 0,
    NOTIFY_EMAIL = 1 << 1,
};

/* Indexes of notify_send's outcomes. */
enum { NOTIFY_IDX_SLACK = 0, NOTIFY_IDX_EMAIL = 1 };

#define NOTIFY_BACKOFF_MS 200
#define NOTIFY_BACKOFF_MAX_MS 5000

typedef struct notify_config {
    unsigned channels;                             /* NOTIFY_SLACK | NOTIFY_EMAIL */
    const char *slack_webhook_url, *slack_channel; /* channel: "" or NULL = the webhook's own */
    const char *smtp_host;
    int smtp_port;                         /* <= 0: 587 */
    const char *smtp_user, *smtp_password; /* user "" or NULL: no AUTH */
    const char *smtp_from;                 /* "" or NULL: "retrainer@localhost" */
    const char *email_recipients;          /* comma separated */
    int retries;                           /* extra attempts after a failure, >= 0 */
    int timeout_ms;                        /* per attempt; <= 0: 10000 */
} notify_config_t;

typedef struct notify_event {
    int success;
    const char *specialist, *retrain_id, *mlflow_run_id;
    int improved;
    double baseline_f1, new_f1;
    const char *error, *action; /* on failure: what went wrong, what to do */
} notify_event_t;

/* Per channel. `error` is the last failure's reason ("" when sent). */
typedef struct notify_outcome {
    int sent;
    int failed;
    int attempts;
    char error[200];
} notify_outcome_t;

/* "slack,email" (spaces allowed, case-insensitive; "" = none) to NOTIFY_*
 * bits; *ok (may be NULL) is 0 when a name is unknown (it is then ignored). */
unsigned notify_parse_channels(const char *csv, int *ok);

/* Sends `ev` on each channel of cfg->channels and fills out[NOTIFY_IDX_*]
 * (both zeroed first). Returns 0 — also when a send failed (see out) — or
 * HIVE_EINVAL when cfg or ev is NULL, or a chosen channel lacks its settings
 * (webhook URL; SMTP host or recipients), the other channel being sent all
 * the same. */
int notify_send(const notify_config_t *cfg, const notify_event_t *ev, notify_outcome_t out[2]);

/* Pure: the message's subject line and body text, NUL-terminated, cut to fit. */
void notify_format(const notify_event_t *ev, char *subject, size_t slen, char *text, size_t tlen);

#endif
