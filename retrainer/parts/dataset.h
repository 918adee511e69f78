/* dataset: the retrainer's training datasets (seed 004 steps 1-2, seed 003's
 * synthetic fallback). BLOCKING: call on a worker thread.
 *
 * A dataset is a JSONL file, one sample a line:
 *   {"features":[f0,...,f(K-1)],"label":0|1,"source":"synthetic|llm|feedback","text":"..."}
 * with K = DATASET_NUM_FEATURES numbers in [0, 1] and `text` optional. Files
 * are named `{specialist}-dataset-{UTC yyyymmddThhmmss.mmm}Z.jsonl` in the
 * dataset directory, so their names sort by creation time; a file appears
 * whole (written aside, then renamed).
 *
 * Samples come from the built-in synthetic generator (the default), or from an
 * LLM through its provider's real HTTP API (Ollama /api/chat, OpenAI
 * /v1/chat/completions, Anthropic /v1/messages), DATASET_LLM_BATCH samples a
 * request. An LLM failure (transport, HTTP status, unparsable answer, time
 * budget spent) is counted and the rest of the dataset is synthetic.
 *
 * The synthetic generator: each specialist has a fixed hidden linear rule over
 * the K features (its weights derived from the specialist's name), so that
 * datasets of one specialist made with different seeds describe the same
 * concept; a sample's features are uniform in [0, 1] and its label is the sign
 * of the rule plus Gaussian noise (sd DATASET_SYNTH_NOISE).
 *
 * Every function returns 0 or a HIVE_E* code (hive_err.h); on failure the
 * calling thread's dataset_error() says why.
 */
#ifndef RETRAINER_DATASET_H
#define RETRAINER_DATASET_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

/* Features per sample, the same for every specialist. */
#define DATASET_NUM_FEATURES 8
/* Samples asked of the LLM per request. */
#define DATASET_LLM_BATCH 20
/* Standard deviation of the synthetic rule's noise. */
#define DATASET_SYNTH_NOISE 0.25
/* Feedback with rating >= this is label 1 (an approved opinion). */
#define DATASET_FEEDBACK_POSITIVE 0.6

typedef struct dataset_config {
    const char *dir;          /* dataset directory, created if missing */
    int num_samples;          /* > 0 (DATASET_NUM_SAMPLES, 1000) */
    int max_age_days;         /* used by dataset_cleanup (90) */
    const char *llm_provider; /* "" or NULL = synthetic, "local"/"ollama", "openai", "anthropic" */
    const char *llm_model;    /* e.g. "llama2", "gpt-4", "claude-3-opus-20240229" */
    const char *llm_base_url; /* NULL/"": the provider's public URL (Ollama: http://127.0.0.1:11434) */
    const char *llm_api_key;  /* openai and anthropic */
    double llm_temperature;   /* 0.7 */
    int llm_timeout_s;        /* the whole LLM budget of one dataset; <= 0: 1800 */
    uint64_t seed;            /* synthetic samples are a function of (specialist, seed) */
} dataset_config_t;

typedef struct dataset_result {
    char path[512];    /* the file written */
    int samples;       /* lines written */
    int from_llm;      /* of which the LLM's */
    int from_feedback; /* filled by the caller after dataset_append_feedback */
    int llm_errors;    /* failed LLM requests (0 or 1: the first failure ends the LLM's part) */
    double duration_s;
} dataset_result_t;

/* One sample, as written on a line. */
typedef struct dataset_sample {
    double features[DATASET_NUM_FEATURES];
    int label;
} dataset_sample_t;

/* The calling thread's message of the last failure ("" if none). */
const char *dataset_error(void);

/* Writes a new dataset of cfg->num_samples samples for `specialist`
 * ([a-z0-9_-], 1..63 chars) into cfg->dir and fills *out. Errors:
 * HIVE_EINVAL (config, specialist or provider), HIVE_EUNAVAILABLE (the file
 * cannot be written), HIVE_ENOMEM. LLM failures are not errors (llm_errors). */
int dataset_generate(const dataset_config_t *cfg, const char *specialist, dataset_result_t *out);

/* Appends the feedback documents (the monitor's neural_hive.feedback shape:
 * specialist_type, rating in [0, 1], created_at, ...) to the dataset at
 * `path` as source "feedback" samples, label = rating >= 0.6. A document's
 * features are its `features` array when it has K numbers in [0, 1], else
 * those of its `text` (or `comment`) through dataset_text_features; a
 * document with neither, or without a valid rating, is skipped. *appended
 * (may be NULL) gets the number of lines added. */
int dataset_append_feedback(const char *path, const bson_t *const *docs, size_t n, int *appended);

/* Removes the dataset files of `dir` last modified more than max_age_days
 * (> 0) ago; *removed (may be NULL) gets how many. A missing directory is
 * empty. */
int dataset_cleanup(const char *dir, int max_age_days, int *removed);

/* The path of the newest dataset of `specialist` in `dir` (for
 * --skip-dataset-generation). HIVE_ENOTFOUND if there is none, HIVE_ETOOBIG
 * if it does not fit `len`. */
int dataset_latest(const char *dir, const char *specialist, char *path, size_t len);

/* Pure: the synthetic sample number `i` of `specialist` for `seed`. */
void dataset_synth_sample(const char *specialist, uint64_t seed, uint64_t i, dataset_sample_t *out);

/* Pure: features of a text by the hashing trick (lower-cased alphanumeric
 * words counted into K buckets by FNV-1a, divided by the largest count). */
void dataset_text_features(const char *text, double out[DATASET_NUM_FEATURES]);

#endif
