/* settings: the retrainer's own configuration keys (the runtime adds the
 * shared ones), each with its default and accepted range. */
#include "settings.h"

app_config_t settings;

#define S(name, def, out, doc)                                                                               \
    {                                                                                                        \
        name, CONFIG_STRING, def, 0, 0, NULL, &settings.out, doc                                             \
    }
#define I(name, def, min, max, out, doc)                                                                     \
    {                                                                                                        \
        name, CONFIG_INT, def, min, max, NULL, &settings.out, doc                                            \
    }
#define D(name, def, min, max, out, doc)                                                                     \
    {                                                                                                        \
        name, CONFIG_DOUBLE, def, min, max, NULL, &settings.out, doc                                         \
    }

const config_item_t settings_items[] = {
    S("KAFKA_LIFECYCLE_TOPIC", "models.lifecycle", lifecycle_topic,
      "ModelLifecycleEvent output, one per step"),
    S("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000", mlflow_uri,
      "MLflow tracking server and registry (REST)"),
    S("MLFLOW_NAME_SUFFIX", "", mlflow_suffix,
      "appended to the experiment and model names (isolation of shared servers; empty in production)"),
    I("MLFLOW_TIMEOUT_MS", "10000", 100, 120000, mlflow_timeout_ms, "timeout of one MLflow request"),
    S("TRAINING_COMMAND", "python3 retrainer/train/train.py", training_command,
      "the training job; --specialist-type --dataset --run-id --tracking-uri [...] are appended"),
    I("TRAINING_TIMEOUT_SECONDS", "3600", 10, 86400, training_timeout_s,
      "the MLflow run must end within this, or the job is killed and the run fails (seed 004: 1 h)"),
    I("TRAINER_GRACE_SECONDS", "60", 1, 3600, trainer_grace_s,
      "a job that ended while its MLflow run is still RUNNING fails the run after this"),
    S("DATASET_DIR", "/tmp/retrainer-datasets", dataset_dir, "datasets (JSONL) and the trainers' logs"),
    I("DATASET_NUM_SAMPLES", "1000", 10, 1000000, num_samples, "samples per generated dataset"),
    I("DATASET_MAX_AGE_DAYS", "90", 1, 3650, dataset_max_age_days, "older datasets are deleted"),
    D("RETRAINING_COOLDOWN_HOURS", "24", 0, 8760, cooldown_hours,
      "at most one retrain per specialist per this window (0: none); --force overrides"),
    D("VALIDATOR_MIN_PRECISION", "0.60", 0, 1, th.validator_precision, "seed 001's validator minimum"),
    D("VALIDATOR_MIN_RECALL", "0.60", 0, 1, th.validator_recall, "seed 001's validator minimum"),
    D("VALIDATOR_MIN_ACCURACY", "0.65", 0, 1, th.validator_accuracy, "seed 001's validator minimum"),
    D("PRECISION_THRESHOLD", "0.75", 0, 1, th.precision, "seed 003: a candidate needs at least this"),
    D("RECALL_THRESHOLD", "0.70", 0, 1, th.recall, "seed 003: a candidate needs at least this"),
    D("F1_THRESHOLD", "0.72", 0, 1, th.f1, "seed 003: a candidate needs at least this"),
    {"PROMOTE_IF_BETTER", CONFIG_BOOL, "true", 0, 0, NULL, &settings.promote_if_better,
     "promote a better candidate (alias production); false: register and compare only"},
    I("DRIVE_INTERVAL_MS", "1000", 100, 600000, drive_interval_ms,
      "how often the runs are advanced and the outbox published"),
    I("RUN_LOCK_TTL_MS", "60000", 0, 3600000, run_lock_ttl_ms,
      "the Redis lock retrainer:<specialist> a replica holds while it drives that specialist's runs, "
      "renewed each pass; longer than the longest step (0: no lock, one replica only)"),
    S("NOTIFICATION_CHANNELS", "", notification_channels,
      "default channels: \"\", slack, email or slack,email"),
    S("LLM_PROVIDER", "", llm_provider,
      "dataset generator: \"\" synthetic, local (Ollama), openai, anthropic"),
    S("LLM_MODEL", "", llm_model, "the provider's model"),
    S("LLM_BASE_URL", "", llm_base_url, "the provider's endpoint (empty: its public one)"),
    S("LLM_API_KEY", "", llm_api_key, "the provider's key"),
    D("LLM_TEMPERATURE", "0.7", 0, 2, llm_temperature, "sampling temperature"),
    I("LLM_TIMEOUT_SECONDS", "1800", 1, 86400, llm_timeout_s, "the whole generation (seed 004: 30 min)"),
    S("SLACK_WEBHOOK_URL", "", slack_webhook_url, "Slack incoming webhook"),
    S("SLACK_CHANNEL", "", slack_channel, "Slack channel"),
    S("SMTP_HOST", "", smtp_host, "SMTP server"),
    I("SMTP_PORT", "587", 1, 65535, smtp_port, "SMTP port"),
    S("SMTP_USER", "", smtp_user, "SMTP user (empty: no AUTH)"),
    S("SMTP_PASSWORD", "", smtp_password, "SMTP password"),
    S("SMTP_FROM", "retrainer@neural-hive.local", smtp_from, "sender address"),
    S("EMAIL_RECIPIENTS", "", email_recipients, "comma-separated recipients"),
    I("NOTIFY_RETRIES", "3", 0, 10, notify_retries, "retries of a failed notification"),
    I("NOTIFY_TIMEOUT_MS", "10000", 100, 120000, notify_timeout_ms, "timeout of one notification"),
    S("FEEDBACK_MONGODB_URI", "", feedback_uri, "the Hive's MongoDB with the feedback (empty: none merged)"),
    S("FEEDBACK_MONGODB_DATABASE", "neural_hive", feedback_database, "database of the feedback collection"),
    S("FEEDBACK_COLLECTION", "feedback", feedback_collection, "the last 1,000 of the specialist are merged"),
};

const size_t settings_nitems = sizeof(settings_items) / sizeof(settings_items[0]);
